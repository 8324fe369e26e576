// Segment: a 4 MiB-aligned region holding a header, the page descriptors, and the pages themselves.
// free() finds a block's page by masking the address down to the segment and shifting the offset.
import CShim
import Synchronization

/// How a segment is divided.
enum SegmentKind: UInt8 {
  /// 64 pages of 64 KiB, blocks up to 8 KiB. Page 0's blocks start 16 KiB in (after the header).
  case small = 0
  /// 8 pages of 512 KiB, blocks up to 64 KiB. Page 0's blocks start 64 KiB in.
  case medium = 1
  /// One page of 4 MiB less 64 KiB, blocks up to 512 KiB.
  case large = 2
  /// One block of any size (its own mapping, 4 MiB-aligned, possibly many units long).
  case huge = 3
}

/// The header at the start of every segment. Page descriptors follow at `pageDescriptorOffset`.
///
/// Invariant for small and medium segments: `usedPageCount + popcount(freeMask) == pageCount`;
/// `dirtyMask` is a subset of `freeMask` (free pages not purged yet).
struct Segment: ~Copyable {
  var kind: SegmentKind
  /// log2 of the page size: 16, 19 or 22. Fast path (free).
  var pageShift: UInt8
  var pageCount: Int32
  var usedPageCount: Int32
  var freeMask: UInt64
  var dirtyMask: UInt64
  /// The owning heap (small, medium, large); nil for huge spans and cached spans.
  var heap: UnsafeMutableRawPointer?
  /// Links in the owning heap's list of all its segments.
  var nextInHeap: UnsafeMutablePointer<Segment>?
  var previousInHeap: UnsafeMutablePointer<Segment>?
  /// Links in the owning heap's list of segments with free pages (per kind).
  var nextAvailable: UnsafeMutablePointer<Segment>?
  var previousAvailable: UnsafeMutablePointer<Segment>?
  var isAvailable: Bool
  /// The whole mapping: the segment itself starts here, and it is `mappingByteCount` long.
  var mappingByteCount: Int
  /// What backs the mapping (kept, like `mappingByteCount`, across `format`). Pinned memory is never purged.
  var backing: SpanBacking
  /// Secure mode: whether the guard page after the header is set (kept, like `backing`, across `format` and
  /// in the span cache: a span's guard pages are set once, not at each reuse).
  var isHeaderGuarded: Bool
  /// When the span entered the span cache (monotonic ms).
  var cachedAt: UInt64
  /// Secure mode: the offset of the span's trailing guard page (0: none). A segment's is on its last 4 KiB,
  /// a huge span's on the last 4 KiB of its mapping. Kept across `format` and in the span cache.
  var trailingGuardOffset: Int
  /// SWALLOC_SECURE=full, large segments: how many freed blocks of the page have their middle inaccessible
  /// (SecureLargeBlocks.swift); 0 elsewhere. Any thread that frees a block adds one; the owner's malloc
  /// takes one away; releasing the segment makes all of them accessible again and sets it to 0.
  let protectedBlockCount: Atomic<Int>
  /// SWALLOC_SECURE=full, large segments: the blocks of the page that its owner parked, wholly inaccessible and
  /// on no list (bit i: block i; freed by the owner, or by other threads and collected; SecureLargeBlocks.swift).
  /// The owner's alone; 0 elsewhere.
  var parkedMask: UInt64

  static let shift = Int(SWALLOC_SEGMENT_SHIFT)
  static let byteCount = 1 << shift
  static let mask = UInt(byteCount - 1)
  static let pageDescriptorOffset = 128
  /// Every segment has one descriptor per 64 KiB slice, so that free finds a block's descriptor with a
  /// constant shift. In medium, large and huge segments the descriptors after a page's first slice are
  /// stubs (`PageState.stub`) that send free to its slow path, which looks up the page itself.
  static let sliceShift = 16
  static let sliceCount = byteCount >> sliceShift

  /// Bytes reserved at the start of a segment for the header and the 64 slice descriptors.
  static let headerByteCount = 16 * 1024

  /// Offset of the first block area of page 0 in each kind of segment (huge spans: see HugeSpan).
  static func firstPageOffset(_ kind: SegmentKind) -> Int {
    kind == .small ? headerByteCount : 64 * 1024
  }

  static func pageShift(_ kind: SegmentKind) -> Int {
    switch kind {
    case .small: return 16
    case .medium: return 19
    case .large, .huge: return 22
    }
  }

  static func pageCount(_ kind: SegmentKind) -> Int {
    switch kind {
    case .small: return 64
    case .medium: return 8
    case .large, .huge: return 1
    }
  }
}

extension UnsafeMutablePointer where Pointee == Segment {
  @inline(__always)
  var address: UnsafeMutableRawPointer { UnsafeMutableRawPointer(self) }

  /// log2 of the number of slices per page: 0 (small), 3 (medium), 6 (large and huge).
  @inline(__always)
  var slicesPerPageShift: Int { Int(pointee.pageShift) &- Segment.sliceShift }

  /// The descriptor of page `index` (the descriptor of its first slice).
  @inline(__always)
  func page(at index: Int) -> UnsafeMutablePointer<Page> {
    descriptor(ofSlice: index &<< slicesPerPageShift)
  }

  /// The descriptor of slice `slice`: a page's own descriptor for the first slice of a page, a stub after it.
  @inline(__always)
  func descriptor(ofSlice slice: Int) -> UnsafeMutablePointer<Page> {
    (address + Segment.pageDescriptorOffset + (slice &<< Page.strideShift)).assumingMemoryBound(to: Page.self)
  }

  /// The index of a page of this segment, from its descriptor.
  @inline(__always)
  func index(of page: UnsafeMutablePointer<Page>) -> Int {
    ((UnsafeMutableRawPointer(page) - (address + Segment.pageDescriptorOffset)) &>> Page.strideShift)
      &>> slicesPerPageShift
  }

  /// The slice index of a descriptor of this segment.
  @inline(__always)
  func index(ofSlice descriptor: UnsafeMutablePointer<Page>) -> Int {
    (UnsafeMutableRawPointer(descriptor) - (address + Segment.pageDescriptorOffset)) &>> Page.strideShift
  }

  /// The descriptor of the page that holds `address`, an address inside this segment's span. A huge span has
  /// one page, whose block may start in a later 4 MiB unit (alignments of 4 MiB and more): shifting the
  /// offset would land past its only descriptor.
  @inline(__always)
  func page(containing address: UInt) -> UnsafeMutablePointer<Page> {
    if pointee.kind == .huge { return page(at: 0) }
    return page(at: Int(bitPattern: (address &- UInt(bitPattern: self)) &>> UInt(pointee.pageShift)))
  }

  /// The page that holds slice `slice`.
  @inline(__always)
  func page(ofSlice slice: Int) -> UnsafeMutablePointer<Page> {
    page(at: slice &>> slicesPerPageShift)
  }

  /// The first byte of page `index`'s block area and the number of bytes it has.
  func pageArea(at index: Int) -> (start: UnsafeMutableRawPointer, byteCount: Int) {
    let kind = pointee.kind
    let pageByteCount = 1 << Segment.pageShift(kind)
    // Secure mode: the segment's last 4 KiB are a guard page, taken from its last page.
    let guardByteCount = Options.secure && index == Segment.pageCount(kind) - 1 ? Secure.guardByteCount : 0
    if index == 0 {
      let offset = Segment.firstPageOffset(kind)
      return (address + offset, pageByteCount - offset - guardByteCount)
    }
    return (address + (index &<< Segment.pageShift(kind)), pageByteCount - guardByteCount)
  }

  /// Lays out a fresh or recycled span as a segment of `kind` owned by `heap`: every page free.
  func format(kind: SegmentKind, heap: UnsafeMutableRawPointer?) {
    let pageCount = Segment.pageCount(kind)
    pointee.kind = kind
    pointee.pageShift = UInt8(Segment.pageShift(kind))
    pointee.pageCount = Int32(pageCount)
    pointee.usedPageCount = 0
    pointee.freeMask = pageCount == 64 ? ~0 : (UInt64(1) &<< UInt64(pageCount)) &- 1
    pointee.dirtyMask = 0
    pointee.heap = heap
    pointee.nextInHeap = nil
    pointee.previousInHeap = nil
    pointee.nextAvailable = nil
    pointee.previousAvailable = nil
    pointee.isAvailable = false
    pointee.protectedBlockCount.store(0, ordering: .relaxed)  // 0 at every release already (SecureLargeBlocks)
    pointee.parkedMask = 0
    Secure.hiddenMask(self).pointee.store(0, ordering: .relaxed)
    if Options.secure && !pointee.isHeaderGuarded {
      // Between the descriptors and the first block: an underflow of page 0 or an overflow from the mapping
      // below cannot reach the metadata. Every use of the span keeps it (no block starts before 16 KiB).
      Secure.guardRange(address + Secure.headerGuardOffset, byteCount: Secure.guardByteCount, on: true)
      pointee.isHeaderGuarded = true
    }
    for slice in 0..<Segment.sliceCount {
      let page = descriptor(ofSlice: slice)
      page.pointee.threadFree.store(0, ordering: .relaxed)
      page.pointee.free = nil
      page.pointee.localFree = nil
      page.pointee.held = nil
      page.pointee.heldCount = 0
      page.pointee.samplePoint = 0
      page.pointee.heap = nil
      page.pointee.used = 0
      page.pointee.state = slice & ((1 << slicesPerPageShift) - 1) == 0 ? .free : .stub
      page.clearCarving()
      page.pointee.reserved = 0
      page.pointee.next = nil
      page.pointee.previous = nil
      page.pointee.nextDelayed = nil
    }
  }

  /// Takes a free page (preferring one not yet purged: it is already backed) and marks it in use. A page
  /// that is not backed will fault in: if memory was purged just before, the purge delay grows.
  func takeFreePage() -> Int {
    if pointee.dirtyMask == 0 { PurgeDelay.noteRefault(now: swalloc_now_ms()) }
    let mask = pointee.dirtyMask != 0 ? pointee.dirtyMask : pointee.freeMask
    let index = mask.trailingZeroBitCount
    let bit = UInt64(1) &<< UInt64(index)
    pointee.freeMask &= ~bit
    pointee.dirtyMask &= ~bit
    pointee.usedPageCount &+= 1
    return index
  }

  /// Marks page `index` free and dirty (its memory is still backed until purged).
  func returnPage(at index: Int) {
    let bit = UInt64(1) &<< UInt64(index)
    pointee.freeMask |= bit
    pointee.dirtyMask |= bit
    pointee.usedPageCount &-= 1
  }

  var isEntirelyFree: Bool { pointee.usedPageCount == 0 }
}

/// The segment map: for each 4 MiB unit of the address space, whether a Swalloc segment starts there.
/// A miss makes "is this pointer ours?" one load, and is how a foreign pointer is told apart.
enum SegmentMap {
  @inline(__always)
  static var base: UnsafeMutablePointer<UInt8> { swalloc_segment_map_address() }

  static let unitMask = UInt(SWALLOC_SEGMENT_MAP_COUNT) - 1

  /// The map entry of the unit that holds `address` (addresses beyond 47 bits wrap; they are never ours).
  @inline(__always)
  static func entry(_ address: UInt) -> UInt8 {
    entry(unit: unit(address))
  }

  /// The number of the 4 MiB unit that holds `address` (beyond 47 bits: wrapped).
  @inline(__always)
  static func unit(_ address: UInt) -> UInt { (address &>> UInt(Segment.shift)) & unitMask }

  @inline(__always)
  static func entry(unit: UInt) -> UInt8 { base[Int(bitPattern: unit)] }

  static func set(_ address: UInt, _ value: UInt8) {
    // Atomic byte stores are plain stores on x86-64; readers only test for 0 / 1 / distance.
    base[Int(bitPattern: (address &>> UInt(Segment.shift)) & unitMask)] = value
  }

  /// The segment holding `address`, or nil when the address is not Swalloc's.
  @inline(__always)
  static func segment(of address: UInt) -> UnsafeMutablePointer<Segment>? {
    let entry = entry(address)
    if entry == 0 { return nil }
    let unitStart = address & ~Segment.mask
    return UnsafeMutablePointer<Segment>(bitPattern: unitStart &- (UInt(entry &- 1) &<< UInt(Segment.shift)))
  }
}
