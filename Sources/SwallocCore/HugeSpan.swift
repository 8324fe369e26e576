// HugeSpan: a block above 512 KiB (or with an alignment above 64 KiB) gets a span of its own: a 4 MiB-aligned
// mapping whose segment header describes one page holding one block. Freed spans wait in the span cache.
import CShim
import Synchronization

enum HugeSpan {
  /// Spans are sized in steps of 64 KiB (the span cache stores sizes in those units).
  static let granularity = 64 * 1024

  /// Allocates a huge block of `byteCount` bytes aligned to `alignment` (a power of two). On failure sets
  /// `ENOMEM` and returns nil. `zeroed`, when given, is set to whether the memory is known to be zero.
  /// A cached span up to `reuseFactor` times the size needed is reused (its pages are already backed: no page
  /// faults); a fresh span is mapped with room for `spareFactor` times the size (untouched, so free of RSS).
  /// realloc growth passes larger factors: the block is likely to keep growing, in place, into the room.
  /// `owner` is a user heap (Swift API) that keeps the span on its list until the block is freed.
  static func allocate(
    byteCount: Int, alignment: Int, zeroed: UnsafeMutablePointer<Bool>?, reuseFactor: Int = 2, spareFactor: Int = 1,
    owner: Heap? = nil
  ) -> UnsafeMutableRawPointer? {
    // Requests above PTRDIFF_MAX arrive negative. The largest span the segment map can describe with its
    // one-byte back distance bounds the alignment.
    Options.initializeIfNeeded()
    // The block starts after the header and slice descriptors (so that a free of any address in the first
    // 4 MiB finds a descriptor, not block data), or at its alignment.
    let dataOffset = Swift.max(Segment.headerByteCount, alignment)
    let limit = Int.max / 2
    if byteCount < 0 || byteCount > limit || alignment > 254 * Segment.byteCount {
      swalloc_errno_set(ENOMEM)
      return nil
    }
    // At least one byte: a zero-byte request still gets a distinct, writable block. The usable size is the
    // request in 64 KiB steps; in secure mode a guard page follows the mapping's room for the block.
    let secure = Options.secure
    let guardByteCount = secure ? Secure.guardByteCount : 0
    let usable = (Swift.max(byteCount, 1) + granularity - 1) & ~(granularity - 1)
    let needed = secure ? usable + guardByteCount : Swift.max(byteCount, 1)
    let mappingByteCount = (dataOffset + needed + granularity - 1) & ~(granularity - 1)
    let spanAlignment = Swift.max(Segment.byteCount, alignment)
    var segment: UnsafeMutablePointer<Segment>
    var fresh = false
    SpanCache.purgeIfDue(now: swalloc_now_ms())
    if let cached = SpanCache.take(byteCount: mappingByteCount, alignment: spanAlignment, reuseFactor: reuseFactor)
      ?? SpanCache.takeGrown(byteCount: mappingByteCount, alignment: spanAlignment)
    {
      segment = cached
    } else {
      let reservedByteCount = spareFactor == 1 || byteCount > limit / spareFactor
        ? mappingByteCount
        : Swift.max(mappingByteCount, (dataOffset + byteCount &* spareFactor + granularity - 1) & ~(granularity - 1))
      guard let mapped = SpanMemory.newSpan(byteCount: reservedByteCount, alignment: spanAlignment, forBlock: true) else {
        swalloc_errno_set(ENOMEM)
        return nil
      }
      segment = mapped.segment
      fresh = mapped.isZeroed
    }
    segment.format(kind: .huge, heap: nil)
    segment.pointee.freeMask = 0
    segment.pointee.usedPageCount = 1
    let block = segment.address + dataOffset
    if dataOffset >= Segment.byteCount {
      // The block starts in a later unit: its map entry says how many units back the header is.
      SegmentMap.set(UInt(bitPattern: block), UInt8(1 + dataOffset >> Segment.shift))
    }
    let page = segment.page(at: 0)
    page.pointee.state = .huge
    page.pointee.used = 1
    page.pointee.start = block
    // The block's usable size is what was asked for (in 64 KiB steps); the rest of a larger reused span is
    // room to grow in place (see `resize`). In secure mode the block is the whole room, up to the guard page
    // on the mapping's last 4 KiB: an overflow faults right past the usable size, and a reused span keeps its
    // guard where it was (no system call).
    let room = segment.pointee.mappingByteCount - dataOffset - guardByteCount
    page.pointee.blockByteCount = secure ? room : Swift.min(room, usable)
    if secure { Secure.placeTrailingGuard(segment, at: segment.pointee.mappingByteCount - guardByteCount) }
    page.pointee.sizeClass = 0
    Statistics.huge(allocatedByteCount: page.pointee.blockByteCount)
    if let owner { owner.linkHugeSpan(segment) }
    zeroed?.pointee = fresh
    return block
  }

  /// Frees the block of a huge span: the span goes to the span cache (or back to the kernel).
  static func free(_ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer) {
    if block != page.pointee.start || page.pointee.used != 1 {
      return Diagnostics.invalidFree(block, reason: page.pointee.used == 1 ? .interior : .pageNotInUse)
    }
    page.pointee.used = 0
    page.pointee.state = .free
    Statistics.huge(freedByteCount: page.pointee.blockByteCount)
    let segment = page.segment
    // Sampled blocks are huge spans: their free takes them out of the profile's live figures.
    if Profile.isActive { Profile.noteFree(segment, block) }
    if let owner = segment.pointee.heap { Heap(owner).unlinkHugeSpan(segment) }
    if block - segment.address >= Segment.byteCount { SegmentMap.set(UInt(bitPattern: block), 0) }
    // SWALLOC_SECURE=full: inaccessible while cached (SecureLargeBlocks.swift).
    if Options.secureFull { Secure.protectFreedSpan(segment, block, byteCount: page.pointee.blockByteCount) }
    SpanCache.putOrRelease(segment)
  }

  /// Resizes the huge block `block` in place, within its span, to `byteCount` (above
  /// `SizeClass.largeMaxByteCount`). False when the span is too small, or so much larger that keeping it
  /// would waste more than `reuseFactor`-fold (the caller then moves the block).
  static func resize(_ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer, byteCount: Int,
                     reuseFactor: Int) -> Bool {
    let segment = page.segment
    let capacity = segment.pointee.mappingByteCount - (block - segment.address)
    // Secure mode: the block fills its room, up to the guard page. SWALLOC_SECURE=full: a shrink makes the
    // tail cut off inaccessible (SecureLargeBlocks.swift: one mprotect, and the block's usable size ends
    // there), and a growth within the room makes it accessible again (one mprotect, instead of a move). Not
    // at level 1: the realloc workload, whose chains halve and grow again, took 1.5x the time with both
    // (each mprotect of a populated tail about 15 us here).
    if Options.secure {
      if byteCount &* reuseFactor < capacity { return false }
      if byteCount > page.pointee.blockByteCount { return Secure.regrowHugeBlock(page, block, byteCount: byteCount) }
      if Options.secureFull { Secure.shrinkHugeBlock(page, block, byteCount: byteCount) }
      return true
    }
    if byteCount > capacity || byteCount &* reuseFactor < capacity { return false }
    let usable = Swift.min(capacity, (byteCount + granularity - 1) & ~(granularity - 1))
    let delta = usable - page.pointee.blockByteCount
    page.pointee.blockByteCount = usable
    Statistics.hugeLiveByteCount.wrappingAdd(delta, ordering: .relaxed)
    Statistics.pageBytesInUse(adding: delta)
    return true
  }
}

extension Heap {
  /// Puts a huge span on this user heap's list (any thread may free it later, hence the lock).
  func linkHugeSpan(_ segment: UnsafeMutablePointer<Segment>) {
    segment.pointee.heap = base
    lockHugeSpans()
    segment.pointee.previousInHeap = nil
    segment.pointee.nextInHeap = state.pointee.hugeSpans
    if let first = state.pointee.hugeSpans { first.pointee.previousInHeap = segment }
    state.pointee.hugeSpans = segment
    state.pointee.hugeAllocationCount &+= 1
    unlockHugeSpans()
  }

  /// Takes a huge span off this user heap's list (the block is being freed, on any thread).
  func unlinkHugeSpan(_ segment: UnsafeMutablePointer<Segment>) {
    lockHugeSpans()
    let next = segment.pointee.nextInHeap
    let previous = segment.pointee.previousInHeap
    if let next { next.pointee.previousInHeap = previous }
    if let previous { previous.pointee.nextInHeap = next } else { state.pointee.hugeSpans = next }
    unlockHugeSpans()
    segment.pointee.heap = nil
    segment.pointee.nextInHeap = nil
    segment.pointee.previousInHeap = nil
  }

  /// A spin lock: huge blocks cost an mmap or a cache search each, so contention here is rare and short.
  func lockHugeSpans() {
    while state.pointee.hugeLock.exchange(true, ordering: .acquiring) { sched_yield() }
  }

  func unlockHugeSpans() {
    state.pointee.hugeLock.store(false, ordering: .releasing)
  }
}
