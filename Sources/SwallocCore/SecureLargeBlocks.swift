// SecureLargeBlocks: SWALLOC_SECURE=full's freed large blocks (80 KiB to 512 KiB, the blocks of large pages). A block
// freed by its page's owner is parked: all of it inaccessible and on no list (`park`, `unpark`), so that a read or a
// write after free anywhere in it faults at once (hardened_malloc unmaps its freed large allocations). A block freed by
// another thread is hidden: all of it inaccessible too, its bit set in its segment's hidden mask and its thread-free
// link kept in a table in the segment header (`hideRemote`), until the owner collects the list and parks it
// (`collectLarge`). When it cannot be hidden (the limit of protected blocks, or mprotect refuses), its link is in the
// block as on any list, and all of it but its first and last 4 KiB is made inaccessible (`fillLarge`). The memory stays
// backed, as a freed block's does at the other levels: purging it as well (madvise) made a 4-thread churn of 60 KB to
// 540 KB blocks, every page touched, 15x slower than the default mode instead of 5x (a page fault for each page touched
// again). In a block freed by another thread that could not be hidden, the first 4 KiB keep the free-list link, the
// freed marker and a flag word, the last 4 KiB the zero last word (the next block's underflow check reads it); both
// edges are filled and checked at malloc as small blocks are. An access to an inaccessible block is reported by the
// SIGSEGV handler of guarded sampling (CShim/guarded.c), which it installs. A large page carves all of its blocks
// before it hands a freed one out again (`Heap.findPage`), and takes back a parked one last, so a stale pointer does
// not reach the next block of its class at once. Freed huge blocks (above 512 KiB) are inaccessible while their span
// waits in the span cache.
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

  /// Where a segment keeps its hidden blocks (`hideRemote`): the mask (bit i: block i of its page) and one
  /// link word per block, in the segment header after the page descriptors (unused there in every kind of
  /// segment, before the header's guard page at 12 KiB).
  static let hiddenTableOffset = Segment.pageDescriptorOffset + Segment.sliceCount * Page.stride

  /// The blocks of `segment`'s page that other threads freed and made wholly inaccessible, not yet collected
  /// by the page's owner. Set by the freeing thread, cleared by the owner when it collects (and at release).
  @inline(__always)
  static func hiddenMask(_ segment: UnsafeMutablePointer<Segment>) -> UnsafeMutablePointer<Atomic<UInt64>> {
    UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: UInt(bitPattern: segment) &+ UInt(hiddenTableOffset))
      .unsafelyUnwrapped
  }

  /// The word that holds the thread-free link of the hidden block of index `index` in `segment`'s page.
  @inline(__always)
  static func hiddenLinkWord(_ segment: UnsafeMutablePointer<Segment>, index: Int) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(segment) + (hiddenTableOffset &+ 8 &+ index &* 8)
  }

  /// The index of `block` in `page` (a large page has at most 51 blocks: 4 MiB in blocks of 80 KiB or more).
  @inline(__always)
  static func largeIndex(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> Int {
    (block - page.pointee.start.unsafelyUnwrapped) / page.pointee.blockByteCount
  }

  /// The free of a large block by another thread than its page's owner at SWALLOC_SECURE=full, its checks
  /// done: all of it becomes inaccessible and it goes on the page's thread-free list with its link in the
  /// segment's table, its bit set in the hidden mask (a second free of it by any thread then reports a double
  /// free without reading it). False when it cannot be hidden (the caller fills and pushes it as before).
  static func hideRemote(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>, heap: Heap) -> Bool {
    let segment = page.segment
    let index = largeIndex(block, page)
    let bit = bit(index: index)
    let mask = hiddenMask(segment)
    // Claimed first: two threads freeing the block at once, one of them reports it.
    if mask.pointee.bitwiseOr(bit, ordering: .relaxed).oldValue & bit != 0 { fail(block, .doubleFree) }
    if !protectCounted(block, byteCount: page.pointee.blockByteCount, of: block) {
      mask.pointee.bitwiseAnd(~bit, ordering: .relaxed)
      return false
    }
    Heap.freeRemote(page, block, heap, encoded: true, linkWord: hiddenLinkWord(segment, index: index))
    return true
  }

  /// The link after `block` on `page`'s thread-free list: in the segment's table when the block is hidden,
  /// in the block otherwise. Decoded, unchecked. (Only the page's owner, or a walk of a list it took, may
  /// ask: the hidden bit is read once the block is on the list.)
  static func threadFreeNext(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>)
    -> UnsafeMutableRawPointer?
  {
    if Options.secureFull && page.pointee.blockByteCount > wholeFillMaxByteCount {
      let segment = page.segment
      let index = largeIndex(block, page)
      if hiddenMask(segment).pointee.load(ordering: .relaxed) & bit(index: index) != 0 {
        return loadLink(of: block, at: hiddenLinkWord(segment, index: index))
      }
    }
    return next(block, key: threadFreeKey)
  }

  /// The large segment that holds `block` (large segments are one 4 MiB unit).
  @inline(__always)
  static func largeSegment(_ block: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Segment> {
    UnsafeMutablePointer<Segment>(bitPattern: UInt(bitPattern: block) & ~Segment.mask).unsafelyUnwrapped
  }

  /// `fill` for a large block being freed: fills its edges (from byte 24), zeroes its last word, makes its
  /// middle inaccessible when it can, and records which in the flag word at byte 16: the fill word when the
  /// middle stays accessible, its complement when it does not.
  @inline(never)
  static func fillLarge(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    let fill = fillWord
    let edge = largeEdgeByteCount
    fillRange(block, from: 24, to: edge)
    fillRange(block, from: blockByteCount &- edge, to: blockByteCount &- 8)
    block.storeBytes(of: 0, toByteOffset: blockByteCount &- 8, as: UInt.self)
    let hidden = protectMiddle(block, blockByteCount: blockByteCount)
    block.storeBytes(of: hidden ? ~fill : fill, toByteOffset: 16, as: UInt.self)
  }

  /// Makes the middle of a freed large block inaccessible; false when the limit is reached,
  /// the block is not page-aligned, or the kernel refuses (out of mappings, or huge-page backing).
  static func protectMiddle(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> Bool {
    let edge = largeEdgeByteCount
    return blockByteCount > 2 &* edge
      && protectCounted(block + edge, byteCount: blockByteCount &- 2 &* edge, of: block)
  }

  /// Makes `byteCount` bytes at `address`, in the freed large block `block`, inaccessible, and counts the block
  /// as protected (`protectedBlockTotal`, its segment's count); false when the limit is reached, the block is
  /// not page-aligned, the fault handler cannot be installed or the kernel refuses (out of mappings, or
  /// huge-page backing).
  static func protectCounted(_ address: UnsafeMutableRawPointer, byteCount: Int, of block: UnsafeMutableRawPointer)
    -> Bool
  {
    if protectedBlockTotal.load(ordering: .relaxed) >= protectedBlockLimit { return false }
    if UInt(bitPattern: block) & UInt(OSMemory.pageByteCount &- 1) != 0 || !enableFaultReports() { return false }
    if !OSMemory.protect(address, byteCount: byteCount, accessible: false) {
      // A refusal changes nothing; made accessible again all the same, should part of it have changed.
      _ = OSMemory.protect(address, byteCount: byteCount, accessible: true)
      return false
    }
    protectedBlockTotal.wrappingAdd(1, ordering: .relaxed)
    largeSegment(block).pointee.protectedBlockCount.wrappingAdd(1, ordering: .relaxed)
    return true
  }

  /// Makes `byteCount` bytes at `address`, in the protected block `block`, accessible again, and counts the
  /// block as protected no more. A refusal aborts: the block is about to be handed out.
  static func restoreCounted(_ address: UnsafeMutableRawPointer, byteCount: Int, of block: UnsafeMutableRawPointer) {
    if !OSMemory.protect(address, byteCount: byteCount, accessible: true) {
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

  /// `takeFromList` for a large block: a block carved and never handed out passes; a freed one must have
  /// its marker, its flag word, its filled edges and its zero last word, and gets its middle back.
  @inline(never)
  static func takeLargeFromList(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    if block.load(fromByteOffset: 8, as: UInt.self) ^ freedMarker(block) != 2
      && checkedFreedLarge(block, blockByteCount: blockByteCount) == ~fillWord
    {
      unprotectMiddle(block, blockByteCount: blockByteCount)
    }
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
  }

  /// The flag word of a freed large block whose marker, flag and edges are as `fillLarge` left them; any
  /// other is reported as a write after free.
  static func checkedFreedLarge(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> UInt {
    let fill = fillWord
    let edge = largeEdgeByteCount
    let flag = block.load(fromByteOffset: 16, as: UInt.self)
    let differs = rangeDifference(block, from: 24, to: edge)
      | rangeDifference(block, from: blockByteCount &- edge, to: blockByteCount &- 8)
      | block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self)
    if block.load(fromByteOffset: 8, as: UInt.self) != freedMarker(block) || (flag != fill && flag != ~fill)
      || differs != 0
    {
      fillBroken(block, blockByteCount: blockByteCount)
    }
    return flag
  }

  /// Makes the middle of a freed large block accessible again.
  static func unprotectMiddle(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    let edge = largeEdgeByteCount
    // Joins three mappings into one: the kernel needs no new mapping for it.
    restoreCounted(block + edge, byteCount: blockByteCount &- 2 &* edge, of: block)
  }

  // MARK: parked blocks

  /// Whether `block`, a block start of `page` (in use), is parked: freed, wholly inaccessible and on no list. Nothing of it may be read then (its marker, its trailer, the last word the next block's
  /// underflow check reads): the checks that would read it ask this first. False at the other levels.
  @inline(__always)
  static func isParked(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> Bool {
    if !Options.secureFull { return false }
    let segment = page.segment
    if segment.pointee.kind != .large { return false }
    let blocks = segment.pointee.parkedMask | hiddenMask(segment).pointee.load(ordering: .relaxed)
    return blocks != 0 && blocks & parkedBit(block, page) != 0
  }

  /// The bit of `block` in its segment's `parkedMask` and hidden mask.
  @inline(__always)
  static func parkedBit(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> UInt64 {
    bit(index: largeIndex(block, page))
  }

  /// The bit of the block of index `index` in its segment's masks.
  @inline(__always)
  static func bit(index: Int) -> UInt64 { UInt64(1) &<< UInt64(truncatingIfNeeded: index) }

  /// The free of a large block by its page's owner at SWALLOC_SECURE=full, its checks done: the whole block
  /// becomes inaccessible and goes on no list (its link and marker would keep its first bytes readable: a read
  /// of a freed block's byte 0, hardened_malloc's `read_after_free_large`, went unseen), and the page's count
  /// drops as `Heap.freeOwned`'s does. The page takes it back (`unpark`) when it has no other block to hand
  /// out. False when the block cannot be parked (the limit of protected blocks, or mprotect refused): the
  /// caller fills and pushes it as before.
  static func park(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>, heap: Heap) -> Bool {
    if !protectCounted(block, byteCount: page.pointee.blockByteCount, of: block) { return false }
    page.segment.pointee.parkedMask |= parkedBit(block, page)
    if page.pointee.isFull {
      heap.processDelayed()
      if page.pointee.isFull { heap.moveFromFullToQueue(page) }
    }
    page.pointee.used &-= 1
    if page.pointee.used == 0 { heap.retire(page) }
    return true
  }

  /// `Page.collect` at SWALLOC_SECURE=full for a large page: the blocks other threads freed are parked by
  /// the owner, which alone may touch the bitmap: a hidden one as it is (its link in the segment's table),
  /// one that could not be hidden (its link in its first 4 KiB) once its edges are checked as `malloc` would
  /// check them; a block that cannot be parked goes on `localFree` as before. Returns how many blocks the
  /// list held.
  @inline(never)
  static func collectLarge(_ page: UnsafeMutablePointer<Page>, head: UnsafeMutableRawPointer) -> Int {
    let blockByteCount = page.pointee.blockByteCount
    // `used` counts every block on the list: a longer one loops (two threads freed a block at once).
    let limit = Int(page.pointee.used)
    var collected = 0
    var next: UnsafeMutableRawPointer? = head
    let segment = page.segment
    let hidden = hiddenMask(segment)
    while let block = next {
      collected &+= 1
      if collected > limit { fail(head, .doubleFree) }
      let index = largeIndex(block, page)
      let bit = bit(index: index)
      if hidden.pointee.load(ordering: .relaxed) & bit != 0 {
        // Hidden by the thread that freed it (wholly inaccessible, counted): parked as it is.
        next = loadLink(of: block, at: hiddenLinkWord(segment, index: index))
        if !isValidLink(next, page) { fail(block, .corruptedFreeList) }
        if segment.pointee.parkedMask & bit != 0 { fail(block, .doubleFree) }
        hidden.pointee.bitwiseAnd(~bit, ordering: .relaxed)
        segment.pointee.parkedMask |= bit
        continue
      }
      next = Secure.next(block, key: threadFreeKey)
      if !isValidLink(next, page) { fail(block, .corruptedFreeList) }
      if !parkCollected(block, page, blockByteCount: blockByteCount) {
        setNext(block, page.pointee.localFree)
        page.pointee.localFree = block
      }
    }
    return collected
  }

  /// Parks `block`, freed by another thread: its edges must hold what that free left (else the write after
  /// free is reported), then all of it becomes inaccessible. Its middle, when already inaccessible, was
  /// counted then. False when it cannot be parked.
  static func parkCollected(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>,
                            blockByteCount: Int) -> Bool {
    let edge = largeEdgeByteCount
    if checkedFreedLarge(block, blockByteCount: blockByteCount) == ~fillWord {
      // Its middle is inaccessible already: the edges join it (the kernel merges the mappings).
      if !OSMemory.protect(block, byteCount: blockByteCount, accessible: false) {
        // The edges as they were, should part of them have changed.
        _ = OSMemory.protect(block, byteCount: edge, accessible: true)
        _ = OSMemory.protect(block + (blockByteCount &- edge), byteCount: edge, accessible: true)
        return false
      }
    } else if !protectCounted(block, byteCount: blockByteCount, of: block) {
      return false
    }
    page.segment.pointee.parkedMask |= parkedBit(block, page)
    return true
  }

  /// `Heap.findPage` at SWALLOC_SECURE=full, for a page with no block left to hand out or carve: takes back
  /// one of its parked blocks (the lowest), accessible again and marked as a block carved and never handed
  /// out (its old contents stay, as any freed block's), as the page's free list. Nothing when none is parked.
  /// Out of line: inlined, it cost `findPage` an instruction per call at every level (a register spilled).
  @inline(never)
  static func unpark(_ page: UnsafeMutablePointer<Page>) {
    let segment = page.segment
    let mask = segment.pointee.parkedMask
    if segment.pointee.kind != .large || mask == 0 { return }
    let index = mask.trailingZeroBitCount
    let blockByteCount = page.pointee.blockByteCount
    let block = page.pointee.start.unsafelyUnwrapped + index &* blockByteCount
    restoreCounted(block, byteCount: blockByteCount, of: block)
    segment.pointee.parkedMask = mask & ~bit(index: index)
    mark(UInt(bitPattern: block), size: UInt(bitPattern: blockByteCount), marker: markerKey ^ 2, full: true)
    setNext(block, nil)
    page.pointee.free = block
  }

  /// A large segment leaves its heap (every block free, or its user heap destroyed): the middles of its
  /// freed blocks, and its parked blocks, become accessible again, with one call over its whole page, before
  /// any other use of the memory.
  static func unprotectSegment(_ segment: UnsafeMutablePointer<Segment>) {
    segment.pointee.parkedMask = 0
    hiddenMask(segment).pointee.store(0, ordering: .relaxed)
    let count = segment.pointee.protectedBlockCount.exchange(0, ordering: .relaxed)
    if count == 0 { return }
    let area = segment.pageArea(at: 0)
    _ = OSMemory.protect(area.start, byteCount: area.byteCount, accessible: true)
    protectedBlockTotal.wrappingAdd(-count, ordering: .relaxed)
  }

  /// Installs the fault handler that reports accesses to freed blocks made inaccessible (once; the flag
  /// tells it to look). False when it cannot be installed.
  static func enableFaultReports() -> Bool {
    if swalloc_freed_large_faults_enabled() != 0 { return true }
    if swalloc_guarded_install_handler() != 0 { return false }
    swalloc_freed_large_faults_enable()
    return true
  }

  // MARK: huge blocks in the span cache

  /// `HugeSpan.free` at SWALLOC_SECURE=full: the freed huge block (its room, up to the trailing guard) is
  /// inaccessible while its span waits in the span cache, until `restoreCachedSpan` (a read after a
  /// `realloc` that moved the block faults too). The span's mappings do not grow in number: the block joins
  /// its trailing guard. Spans of explicit huge pages are left alone (mprotect works on whole huge pages).
  static func protectFreedSpan(_ span: UnsafeMutablePointer<Segment>, _ block: UnsafeMutableRawPointer,
                               byteCount: Int) {
    let backing = span.pointee.backing
    if backing != .normal && backing != .locked { return }
    let pageMask = OSMemory.pageByteCount &- 1
    if UInt(bitPattern: block) & UInt(pageMask) != 0 || byteCount & pageMask != 0 || byteCount <= 0 { return }
    if !enableFaultReports() { return }
    if OSMemory.protect(block, byteCount: byteCount, accessible: false) {
      span.pointee.protectedBlockCount.store(1, ordering: .relaxed)
    } else {
      _ = OSMemory.protect(block, byteCount: byteCount, accessible: true)
    }
  }

  /// A span leaves the span cache for a new use: its freed huge block, and a tail that a shrink cut off,
  /// become accessible again, up to the trailing guard on the mapping's last 4 KiB. False when the kernel
  /// refuses (splitting the block from its guard takes one more mapping): the caller releases the span
  /// instead of using it.
  static func restoreCachedSpan(_ span: UnsafeMutablePointer<Segment>) -> Bool {
    if span.pointee.protectedBlockCount.load(ordering: .relaxed) == 0 { return true }
    guard let start = span.page(at: 0).pointee.start else { return false }
    let guardOffset = span.pointee.mappingByteCount &- guardByteCount
    guard OSMemory.protect(start, byteCount: span.address + guardOffset - start, accessible: true) else {
      return false
    }
    span.pointee.trailingGuardOffset = guardOffset
    span.pointee.protectedBlockCount.store(0, ordering: .relaxed)
    return true
  }

  /// `realloc` shrinking a huge block in place at SWALLOC_SECURE=full: the room beyond the new size (in
  /// whole OS pages) becomes inaccessible, the start of a longer trailing guard, and the block's usable size
  /// ends there (hardened_malloc's read_after_realloc_shrink_large: a read past the new end faults). The
  /// mappings do not grow in number: the tail joins the guard. `restoreCachedSpan` lifts it with the block.
  static func shrinkHugeBlock(_ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer, byteCount: Int) {
    let span = page.segment
    let backing = span.pointee.backing
    if backing != .normal && backing != .locked { return }
    let pageMask = OSMemory.pageByteCount &- 1
    let room = page.pointee.blockByteCount
    let kept = (byteCount &+ pageMask) & ~pageMask
    if kept >= room || UInt(bitPattern: block) & UInt(pageMask) != 0 || !enableFaultReports() { return }
    if !OSMemory.protect(block + kept, byteCount: room &- kept, accessible: false) {
      _ = OSMemory.protect(block + kept, byteCount: room &- kept, accessible: true)
      return
    }
    span.pointee.trailingGuardOffset = block + kept - span.address
    // Nonzero: the span has memory to make accessible again before its next use.
    span.pointee.protectedBlockCount.store(2, ordering: .relaxed)
    page.pointee.blockByteCount = kept
    Statistics.hugeLiveByteCount.wrappingAdd(kept &- room, ordering: .relaxed)
    Statistics.pageBytesInUse(adding: kept &- room)
  }

  /// `realloc` growing a huge block that a shrink cut (`shrinkHugeBlock`) back within its span's room: the
  /// tail becomes accessible again, the trailing guard goes back to the mapping's last 4 KiB, and the block
  /// fills its room again (one mprotect; a move would copy the block: the realloc workload's chains that
  /// halve and grow again ran 1.8x the default mode's time with moves). False when the room is too small
  /// or the kernel refuses (the caller moves the block). Nothing to regrow at level 1 (it does not cut).
  static func regrowHugeBlock(_ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer, byteCount: Int)
    -> Bool
  {
    let span = page.segment
    let guardOffset = span.pointee.mappingByteCount &- guardByteCount
    let room = span.address + guardOffset - block
    let kept = page.pointee.blockByteCount
    if byteCount > room || span.pointee.trailingGuardOffset != block + kept - span.address { return false }
    if !OSMemory.protect(block + kept, byteCount: room &- kept, accessible: true) { return false }
    span.pointee.trailingGuardOffset = guardOffset
    span.pointee.protectedBlockCount.store(0, ordering: .relaxed)
    page.pointee.blockByteCount = room
    Statistics.hugeLiveByteCount.wrappingAdd(room &- kept, ordering: .relaxed)
    Statistics.pageBytesInUse(adding: room &- kept)
    return true
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
/// a freed large block, or in a freed huge block in the span cache? If so, the report (the access then faults again and the process dies of it).
@_cdecl("swalloc_core_freed_large_fault")
func swallocCoreFreedLargeFault(_ address: UInt, _ access: Int32, _ pc: UInt) -> Int32 {
  guard let segment = SegmentMap.segment(of: address) else { return 0 }
  let page = segment.page(at: 0)
  guard let start = page.pointee.start else { return 0 }
  let blockByteCount = page.pointee.blockByteCount
  let offset = address &- UInt(bitPattern: start)
  let block: UnsafeMutableRawPointer
  if segment.pointee.kind == .huge {
    guard segment.pointee.protectedBlockCount.load(ordering: .relaxed) != 0 else { return 0 }
    if page.pointee.state == .huge && offset >= UInt(bitPattern: blockByteCount)
      && address < UInt(bitPattern: segment.address) &+ UInt(bitPattern: segment.pointee.mappingByteCount)
    {
      // Past a live huge block that a realloc shrank: in the tail it cut off.
      ErrorWriter.withWriter { writer in
        writer.text("swalloc: heap-buffer-overflow: ")
        GuardedReport.writeAccess(&writer, address, access)
        writer.text(", ")
        writer.decimal(Int(bitPattern: offset) &- blockByteCount)
        writer.text(" bytes after the end of the ")
        writer.decimal(blockByteCount)
        writer.text("-byte block at ")
        writer.hexadecimal(UInt(bitPattern: start))
        writer.text(" (SWALLOC_SECURE=full makes the tail a realloc cut off inaccessible)\n")
        writeFrame(&writer, pc)
      }
      return 1
    }
    // A freed huge block in the span cache.
    guard page.pointee.state == .free, offset < UInt(bitPattern: blockByteCount) else { return 0 }
    block = start
  } else {
    guard segment.pointee.kind == .large, page.pointee.state == .inUse else { return 0 }
    let index = offset / UInt(bitPattern: blockByteCount)
    if index >= UInt(truncatingIfNeeded: page.pointee.capacity) { return 0 }
    block = start + Int(bitPattern: index) &* blockByteCount
    let inside = Int(bitPattern: address &- UInt(bitPattern: block))
    let edge = Secure.largeEdgeByteCount
    // Parked (freed by the page's owner, or collected) or hidden (freed by another thread): all of it. Freed by
    // another thread when it could not be hidden, its middle inaccessible: the address in the middle.
    let bit = Secure.parkedBit(block, page)
    if (segment.pointee.parkedMask | Secure.hiddenMask(segment).pointee.load(ordering: .relaxed)) & bit == 0 {
      guard inside >= edge && inside < blockByteCount &- edge,
        block.load(fromByteOffset: 8, as: UInt.self) == Secure.freedMarker(block),
        block.load(fromByteOffset: 16, as: UInt.self) == ~Secure.fillWord
      else { return 0 }
    }
  }
  let inside = Int(bitPattern: address &- UInt(bitPattern: block))
  ErrorWriter.withWriter { writer in
    writer.text("swalloc: heap-use-after-free: ")
    GuardedReport.writeAccess(&writer, address, access)
    writer.text(", ")
    writer.decimal(inside)
    writer.text(" bytes inside the freed ")
    writer.decimal(blockByteCount)
    writer.text("-byte block at ")
    writer.hexadecimal(UInt(bitPattern: block))
    writer.text(" (SWALLOC_SECURE=full makes freed blocks above 64 KiB inaccessible)\n")
    writeFrame(&writer, pc)
  }
  return 1
}

/// The faulting instruction's line of a report, symbolized.
private func writeFrame(_ writer: inout ErrorWriter, _ pc: UInt) {
  if pc == 0 { return }
  writer.text("  at:                     ")
  GuardedReport.frame(&writer, 0, pc)
  writer.text("\n")
}
