import Testing
import CShim
import Synchronization
@testable import Swalloc

@Suite("Size classes")
struct SizeClassTests {
  @Test("every request fits its class, classes grow with the size")
  func everySizeFits() {
    var previous = 1
    for byteCount in 0...SizeClass.largeMaxByteCount {
      let sizeClass = SizeClass.of(byteCount: byteCount)
      #expect(sizeClass >= previous)
      #expect(sizeClass < SizeClass.count)
      let blockByteCount = SizeClass.blockByteCount(sizeClass)
      if blockByteCount < byteCount || sizeClass < previous { Issue.record("size \(byteCount) class \(sizeClass)"); return }
      previous = sizeClass
    }
    #expect(SizeClass.of(byteCount: SizeClass.largeMaxByteCount) == SizeClass.largeMaxClass)
    #expect(SizeClass.of(byteCount: SizeClass.smallMaxByteCount) == SizeClass.smallMaxClass)
    #expect(SizeClass.of(byteCount: SizeClass.mediumMaxByteCount) == SizeClass.mediumMaxClass)
  }

  @Test("a page's reciprocal divides exactly and tells block starts from offsets inside blocks (one multiplication)")
  func reciprocalDivision() {
    let limit = UInt(Segment.byteCount)  // offsets within a page are below 4 MiB
    for sizeClass in 1..<SizeClass.count {
      let size = UInt(SizeClass.blockByteCount(sizeClass))
      let reciprocal = Page.reciprocal(of: Int(size))
      var failures = 0
      var start: UInt = 0
      while start < limit {
        // The block start, and offsets just inside it, at its middle and at its end.
        for offset in [start, start + 1, start + 15, start + 16, start + size / 2, start + size - 1]
        where offset < limit {
          let index = Page.blockIndex(offset: offset, reciprocal: reciprocal)
          if index != offset / size || Page.isMultiple(offset: offset, reciprocal: reciprocal) != (offset % size == 0) {
            failures += 1
          }
        }
        start += size
      }
      #expect(failures == 0, "block size \(size)")
    }
  }

  @Test("an extension carves 8 KiB's worth of blocks (at least one, at most those left), as a division would")
  func extensionCount() {
    for sizeClass in 1..<SizeClass.count {
      let size = SizeClass.blockByteCount(sizeClass)
      withTestPage(byteCount: size, blockByteCount: size) { page, _ in
        for (reserved, capacity) in [(1000, 0), (1000, 999), (1000, 1000 - 8192 / size), (3, 1), (1, 0)] {
          page.pointee.reserved = Int32(reserved)
          page.pointee.capacity = Int32(capacity)
          let expected = min(reserved - capacity, max(1, Page.extendByteCount / size))
          #expect(page.extensionCount == expected, "block size \(size), \(capacity) of \(reserved) carved")
        }
      }
    }
  }

  @Test("each class is the smallest that fits: the previous class is too small")
  func smallestClass() {
    for byteCount in 17...SizeClass.largeMaxByteCount {
      let sizeClass = SizeClass.of(byteCount: byteCount)
      #expect(SizeClass.blockByteCount(sizeClass - 1) < byteCount, "size \(byteCount)")
      if SizeClass.blockByteCount(sizeClass - 1) >= byteCount { return }
    }
  }

  @Test("rounding loss is under 20 % above 64 bytes, and every block is a multiple of 16")
  func internalWaste() {
    for sizeClass in 1..<SizeClass.count {
      let blockByteCount = SizeClass.blockByteCount(sizeClass)
      #expect(blockByteCount % 16 == 0)
      let smallestRequest = sizeClass == 1 ? 1 : SizeClass.blockByteCount(sizeClass - 1) + 1
      if smallestRequest > 64 {
        let waste = Double(blockByteCount - smallestRequest) / Double(blockByteCount)
        #expect(waste < 0.20, "class \(sizeClass): \(smallestRequest) -> \(blockByteCount)")
      }
    }
  }

  @Test("class table: 16-byte steps, then four classes per power of two")
  func table() {
    let expected = [16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640]
    for (index, byteCount) in expected.enumerated() {
      #expect(SizeClass.blockByteCount(index + 1) == byteCount)
    }
    #expect(SizeClass.blockByteCount(SizeClass.smallMaxClass) == 8 * 1024)
    #expect(SizeClass.blockByteCount(SizeClass.largeMaxClass) == 512 * 1024)
  }

  @Test("aligned classes are multiples of the alignment", arguments: [32, 64, 128, 256, 1024, 4096, 8192, 65536])
  func alignedClasses(alignment: Int) {
    for byteCount in [1, 15, 16, 17, 100, 1000, 5000, 40000, 300_000] {
      let sizeClass = SizeClass.of(byteCount: byteCount, alignment: alignment)
      if sizeClass == 0 { continue }  // a huge span
      let blockByteCount = SizeClass.blockByteCount(sizeClass)
      #expect(blockByteCount >= byteCount)
      #expect(blockByteCount % alignment == 0)
    }
  }
}

@Suite("Layout")
struct LayoutTests {
  @Test("descriptors fit their slots")
  func descriptorSizes() {
    #expect(MemoryLayout<Page>.stride <= Page.stride)
    #expect(MemoryLayout<Segment>.size <= Segment.pageDescriptorOffset)
    // Small segments: the header and 64 descriptors end before page 0's blocks.
    #expect(Segment.pageDescriptorOffset + Segment.sliceCount * Page.stride <= Segment.headerByteCount)
    // SWALLOC_SECURE=full's table of hidden large blocks (a mask and a link per block of a large page, at most
    // 64) lies after the descriptors and before the header's guard page.
    #expect(Secure.hiddenTableOffset >= Segment.pageDescriptorOffset + Segment.sliceCount * Page.stride)
    #expect(Secure.hiddenTableOffset + 8 + 64 * 8 <= Secure.headerGuardOffset)
    #expect(Segment.byteCount / (SizeClass.mediumMaxByteCount + 1) < 64)
    #expect(Segment.firstPageOffset(.small) >= Segment.headerByteCount)
    #expect(Heap.stateOffset >= Int(SWALLOC_DIRECT_COUNT) * 8)
    #expect(Heap.stateOffset + MemoryLayout<HeapState>.size <= Heap.queuesOffset)
    #expect(Heap.queuesOffset + SizeClass.count * MemoryLayout<PageQueue>.stride <= Heap.byteCount)
  }

  @Test("the fast-path fields of a page share its first cache line; threadFree lives in the second")
  func pageCacheLines() {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: Page.stride, alignment: 64)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: Page.stride)
    let page = raw.assumingMemoryBound(to: Page.self)
    /// The offset at which a field's 8-byte marker landed.
    func offset(of marker: UInt) -> Int? {
      (0..<(Page.stride / 8)).first { raw.load(fromByteOffset: $0 * 8, as: UInt.self) == marker }.map { $0 * 8 }
    }
    page.pointee.free = UnsafeMutableRawPointer(bitPattern: 0x1111_0000)
    page.pointee.localFree = UnsafeMutableRawPointer(bitPattern: 0x2222_0000)
    page.pointee.ownerWord.store(0x3333_0000, ordering: .relaxed)
    page.pointee.start = UnsafeMutableRawPointer(bitPattern: 0x4444_0000)
    page.pointee.threadFree.store(0x5555_0000, ordering: .relaxed)
    for marker: UInt in [0x1111_0000, 0x2222_0000, 0x3333_0000, 0x4444_0000] {
      #expect((offset(of: marker) ?? 64) < 64)
    }
    #expect((offset(of: 0x5555_0000) ?? 0) >= 64)
  }

  @Test("page areas tile each segment kind", arguments: [SegmentKind.small, .medium, .large])
  func pageAreas(kind: SegmentKind) throws {
    let raw = try #require(OSMemory.reserveAligned(byteCount: Segment.byteCount, alignment: Segment.byteCount))
    defer { OSMemory.release(raw, byteCount: Segment.byteCount) }
    let segment = raw.assumingMemoryBound(to: Segment.self)
    segment.format(kind: kind, heap: nil)
    var end = raw + Segment.firstPageOffset(kind)
    for index in 0..<Segment.pageCount(kind) {
      let area = segment.pageArea(at: index)
      #expect(area.start == end)
      #expect(UInt(bitPattern: area.start) % 16384 == 0)
      end = area.start + area.byteCount
      #expect(segment.index(of: segment.page(at: index)) == index)
      // Every slice of the page leads to it: its own descriptor first, stubs after.
      let firstSlice = (area.start - raw) >> Segment.sliceShift
      let lastSlice = (area.start + area.byteCount - 1 - raw) >> Segment.sliceShift
      for slice in firstSlice...lastSlice {
        #expect(segment.page(ofSlice: slice) == segment.page(at: index))
        let slicesPerPage = 1 << (Segment.pageShift(kind) - Segment.sliceShift)
        #expect((segment.descriptor(ofSlice: slice).pointee.state == .stub) == (slice % slicesPerPage != 0))
      }
    }
    #expect(end == raw + Segment.byteCount)
    #expect(segment.pointee.freeMask.nonzeroBitCount == Segment.pageCount(kind))
  }
}
