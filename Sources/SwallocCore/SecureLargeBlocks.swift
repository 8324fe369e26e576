// SecureLargeBlocks: SWALLOC_SECURE=full's freed large blocks (80 KiB to 512 KiB, the blocks of large pages).
// While such a block is free, all of it but its first and last 4 KiB is inaccessible, so a read or a write
// after free there faults at once (hardened_malloc unmaps its freed large allocations). The memory stays
// backed, as a freed block's does at the other levels: purging it as well (madvise) made a 4-thread churn of
// 60 KB to 540 KB blocks, every page touched, 15x slower than the default mode instead of 5x (a page fault
// for each page touched again). The first 4 KiB keep the free-list link, the freed marker and a flag word, the
// last 4 KiB the zero last word (the next block's underflow check reads it); both edges are filled and
// checked at malloc as small blocks are. An access to the middle is reported by the SIGSEGV handler of
// guarded sampling (CShim/guarded.c), which it installs. A large page hands out all of its blocks before a freed one again
// (`Heap.findPage`), so a stale pointer does not reach the next block of its class at once.
import CShim
import Synchronization

extension Secure {
  /// Bytes at each end of a freed large block that stay accessible. Large blocks are multiples of 16 KiB
  /// from a 64 KiB-aligned page start: both edges and the middle are whole OS pages.
  static let largeEdgeByteCount = OSMemory.pageByteCount

  /// Freed large blocks with an inaccessible middle, all segments together. Each splits its segment's
  /// mapping in up to three (two more VMAs in the process); beyond this count freed blocks stay accessible
  /// (the kernel's default vm.max_map_count is 65 530, and the program needs mappings of its own).
  static let protectedBlockLimit = 8192
  static let protectedBlockTotal = Atomic<Int>(0)

  /// The large segment that holds `block` (large segments are one 4 MiB unit).
  @inline(__always)
  static func largeSegment(_ block: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Segment> {
    UnsafeMutablePointer<Segment>(bitPattern: UInt(bitPattern: block) & ~Segment.mask).unsafelyUnwrapped
  }

  /// Stores `fill` in every word of `block` in `[start, end)` (multiples of 8).
  @inline(__always)
  static func fillWords(_ block: UnsafeMutableRawPointer, from start: Int, to end: Int, _ fill: UInt) {
    var offset = start
    while offset < end {
      block.storeBytes(of: fill, toByteOffset: offset, as: UInt.self)
      offset &+= 8
    }
  }

  /// The words of `block` in `[start, end)` xored with `fill`, or-ed together (zero: all equal to it).
  @inline(__always)
  static func wordsDiffer(_ block: UnsafeMutableRawPointer, from start: Int, to end: Int, _ fill: UInt) -> UInt {
    var difference: UInt = 0
    var offset = start
    while offset < end {
      difference |= block.load(fromByteOffset: offset, as: UInt.self) ^ fill
      offset &+= 8
    }
    return difference
  }

  /// `fill` for a large block being freed: fills its edges (from byte 24), zeroes its last word, makes its
  /// middle inaccessible when it can, and records which in the flag word at byte 16: the fill word when the
  /// middle stays accessible, its complement when it does not.
  @inline(never)
  static func fillLarge(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    let fill = fillWord
    let edge = largeEdgeByteCount
    fillWords(block, from: 24, to: edge, fill)
    fillWords(block, from: blockByteCount &- edge, to: blockByteCount &- 8, fill)
    block.storeBytes(of: 0, toByteOffset: blockByteCount &- 8, as: UInt.self)
    let hidden = protectMiddle(block, blockByteCount: blockByteCount)
    block.storeBytes(of: hidden ? ~fill : fill, toByteOffset: 16, as: UInt.self)
  }

  /// Makes the middle of a freed large block inaccessible; false when the limit is reached,
  /// the block is not page-aligned, or the kernel refuses (out of mappings, or huge-page backing).
  static func protectMiddle(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> Bool {
    let edge = largeEdgeByteCount
    if protectedBlockTotal.load(ordering: .relaxed) >= protectedBlockLimit { return false }
    if UInt(bitPattern: block) & UInt(edge &- 1) != 0 || blockByteCount <= 2 &* edge { return false }
    let middle = block + edge
    let byteCount = blockByteCount &- 2 &* edge
    // The fault handler reports an access to the middle (installed once; the flag tells it to look).
    if swalloc_freed_large_faults_enabled() == 0 {
      if swalloc_guarded_install_handler() != 0 { return false }
      swalloc_freed_large_faults_enable()
    }
    if !OSMemory.protect(middle, byteCount: byteCount, accessible: false) {
      // A refusal changes nothing; made accessible again all the same, should part of it have changed.
      _ = OSMemory.protect(middle, byteCount: byteCount, accessible: true)
      return false
    }
    protectedBlockTotal.wrappingAdd(1, ordering: .relaxed)
    largeSegment(block).pointee.protectedBlockCount.wrappingAdd(1, ordering: .relaxed)
    return true
  }

  /// `takeFromList` for a large block: a block carved and never handed out passes; a freed one must have
  /// its marker, its flag word, its filled edges and its zero last word, and gets its middle back.
  @inline(never)
  static func takeLargeFromList(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    let marked = block.load(fromByteOffset: 8, as: UInt.self) ^ freedMarker(block)
    if marked != 2 {
      let fill = fillWord
      let edge = largeEdgeByteCount
      let flag = block.load(fromByteOffset: 16, as: UInt.self)
      let differs = wordsDiffer(block, from: 24, to: edge, fill)
        | wordsDiffer(block, from: blockByteCount &- edge, to: blockByteCount &- 8, fill)
        | block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self)
      if marked != 0 || (flag != fill && flag != ~fill) || differs != 0 {
        fillBroken(block, blockByteCount: blockByteCount)
      }
      if flag == ~fill { unprotectMiddle(block, blockByteCount: blockByteCount) }
    }
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
  }

  /// Makes the middle of a freed large block accessible again.
  static func unprotectMiddle(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    let edge = largeEdgeByteCount
    // Joins three mappings into one: the kernel needs no new mapping for it.
    if !OSMemory.protect(block + edge, byteCount: blockByteCount &- 2 &* edge, accessible: true) {
      ErrorWriter.withWriter { writer in
        writer.text("swalloc: malloc(): the kernel refused to make freed block ")
        writer.hexadecimal(UInt(bitPattern: block))
        writer.text(" accessible again (mprotect); aborting (SWALLOC_SECURE=full)\n")
      }
      swalloc_abort()
    }
    protectedBlockTotal.wrappingAdd(-1, ordering: .relaxed)
    largeSegment(block).pointee.protectedBlockCount.wrappingAdd(-1, ordering: .relaxed)
  }

  /// A large segment leaves its heap (every block free, or its user heap destroyed): the middles of its
  /// freed blocks become accessible again, with one call over its whole page, before any other use of the
  /// memory.
  static func unprotectSegment(_ segment: UnsafeMutablePointer<Segment>) {
    let count = segment.pointee.protectedBlockCount.exchange(0, ordering: .relaxed)
    if count == 0 { return }
    let area = segment.pageArea(at: 0)
    _ = OSMemory.protect(area.start, byteCount: area.byteCount, accessible: true)
    protectedBlockTotal.wrappingAdd(-count, ordering: .relaxed)
  }

  /// Whether `page` (whose free list is empty) should carve a block rather than take its freed ones: at
  /// SWALLOC_SECURE=full, a large page with blocks left to carve.
  @inline(__always)
  static func defersReuse(_ page: UnsafeMutablePointer<Page>) -> Bool {
    Options.secureFull && page.pointee.blockByteCount > wholeFillMaxByteCount
      && page.pointee.capacity < page.pointee.reserved
  }
}

/// The SIGSEGV/SIGBUS handler's second question (CShim/guarded.c): is `address` in the inaccessible middle of
/// a freed large block? If so, the report (the access then faults again and the process dies of it).
@_cdecl("swalloc_core_freed_large_fault")
func swallocCoreFreedLargeFault(_ address: UInt, _ access: Int32, _ pc: UInt) -> Int32 {
  guard let segment = SegmentMap.segment(of: address), segment.pointee.kind == .large else { return 0 }
  let page = segment.page(at: 0)
  guard page.pointee.state == .inUse, let start = page.pointee.start else { return 0 }
  let blockByteCount = page.pointee.blockByteCount
  let offset = address &- UInt(bitPattern: start)
  let index = offset / UInt(bitPattern: blockByteCount)
  if index >= UInt(truncatingIfNeeded: page.pointee.capacity) { return 0 }
  let block = start + Int(bitPattern: index) &* blockByteCount
  let inside = Int(bitPattern: address &- UInt(bitPattern: block))
  let edge = Secure.largeEdgeByteCount
  // Freed, its middle inaccessible, the address in the middle: the first page of the block is readable.
  guard inside >= edge && inside < blockByteCount &- edge,
    block.load(fromByteOffset: 8, as: UInt.self) == Secure.freedMarker(block),
    block.load(fromByteOffset: 16, as: UInt.self) == ~Secure.fillWord
  else { return 0 }
  ErrorWriter.withWriter { writer in
    writer.text("swalloc: heap-use-after-free: ")
    let size = Int(access >> 4)
    writer.text(access & 3 == 2 ? "write" : access & 3 == 1 ? "read" : "access")
    if size > 0 {
      writer.text(" of ")
      writer.decimal(size)
      writer.text(size == 1 ? " byte" : " bytes")
    }
    writer.text(" at ")
    writer.hexadecimal(address)
    writer.text(", ")
    writer.decimal(inside)
    writer.text(" bytes inside the freed ")
    writer.decimal(blockByteCount)
    writer.text("-byte block at ")
    writer.hexadecimal(UInt(bitPattern: block))
    writer.text(" (SWALLOC_SECURE=full: a freed large block is inaccessible but for its first and last 4 KiB)\n")
    if pc != 0 {
      writer.text("  at:                     ")
      GuardedReport.frame(&writer, 0, pc)
      writer.text("\n")
    }
  }
  return 1
}
