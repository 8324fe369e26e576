// SpanCache: recently freed segments and huge spans, kept for reuse and returned to the kernel after the
// purge delay (page faults cost about 1.6 us each here: returning every large block at once is slow).
// Lock-free: each slot is one atomic word, so a forked child or a signal handler never waits on it.
import CShim
import Synchronization

enum SpanCache {
  @inline(__always)
  static func slot(_ index: Int) -> UnsafeMutablePointer<Atomic<UInt>> {
    UnsafeMutableRawPointer(swalloc_span_cache_address()).assumingMemoryBound(to: Atomic<UInt>.self) + index
  }

  @inline(__always)
  static func time(_ index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
    UnsafeMutableRawPointer(swalloc_span_cache_time_address()).assumingMemoryBound(to: Atomic<UInt64>.self)
      + index
  }

  static let count = Int(SWALLOC_SPAN_CACHE_COUNT)
  /// Mapping sizes are multiples of 64 KiB; the slot word keeps `byteCount >> 16` in the low 22 bits.
  static let sizeShift = 16

  /// Takes the cached span that best fits a mapping of `byteCount` bytes aligned to `alignment`, or nil.
  /// A span with 4 MiB or more to spare is split: its tail (4 MiB-aligned) goes back to the cache as a span of
  /// its own. A span is taken only if what is kept is at most `reuseFactor` times `byteCount`; the kept span's
  /// `mappingByteCount` says its size.
  static func take(byteCount: Int, alignment: Int, reuseFactor: Int) -> UnsafeMutablePointer<Segment>? {
    let headByteCount = (byteCount + Segment.byteCount - 1) & ~(Segment.byteCount - 1)
    while true {
      var bestIndex = -1
      var bestWord: UInt = 0
      var bestKept = Int.max
      var bestByteCount = Int.max
      for index in 0..<count {
        let word = slot(index).pointee.load(ordering: .relaxed)
        if word == 0 || (word & ~Segment.mask) & UInt(alignment &- 1) != 0 { continue }
        let spanByteCount = Int(word & Segment.mask) &<< sizeShift
        if spanByteCount < byteCount { continue }
        let kept = spanByteCount - headByteCount >= Swift.max(Segment.byteCount, headByteCount) ? headByteCount : spanByteCount
        // The smallest span that fits: splitting a larger one would leave the cache only small pieces, and
        // the next large request would map afresh (largeblocks: half its spans were fresh).
        if kept <= byteCount &* reuseFactor && spanByteCount < bestByteCount {
          bestIndex = index
          bestWord = word
          bestKept = kept
          bestByteCount = spanByteCount
        }
      }
      if bestIndex < 0 { return nil }
      guard let span = claim(bestIndex, bestWord) else { continue }  // another thread took it: look again
      // SWALLOC_SECURE=full: a freed huge block was made inaccessible; should it stay so, the span goes.
      if !Secure.restoreCachedSpan(span) {
        release(span)
        continue
      }
      Statistics.reusedSpanCount.wrappingAdd(1, ordering: .relaxed)
      span.pointee.mappingByteCount = bestKept
      if bestKept < bestByteCount {
        let tail = (span.address + bestKept).assumingMemoryBound(to: Segment.self)
        tail.pointee.mappingByteCount = bestByteCount - bestKept
        tail.pointee.backing = span.pointee.backing
        // Secure mode's guard pages: the tail's header area held data; the trailing guard (the span's last
        // 4 KiB, or a segment's) is in the tail when it lies past the head.
        tail.pointee.isHeaderGuarded = false
        tail.pointee.trailingGuardOffset = 0
        tail.pointee.protectedBlockCount.store(0, ordering: .relaxed)  // its header area held data
        if span.pointee.trailingGuardOffset >= bestKept {
          tail.pointee.trailingGuardOffset = span.pointee.trailingGuardOffset - bestKept
          span.pointee.trailingGuardOffset = 0
        }
        SegmentMap.set(UInt(bitPattern: tail), 1)
        putOrRelease(tail)
      }
      return span
    }
  }

  /// When no cached span fits a mapping of `byteCount` bytes: takes the largest cached span of at least half
  /// that size and moves it, grown, to a fresh `alignment`-aligned place (mremap). Its pages come along
  /// resident, and only the growth faults in: a program that replaces large blocks with larger ones reuses
  /// what it freed instead of mapping afresh. Normal pages only. In secure mode the span's guard pages split
  /// it into several mappings, which mremap cannot move as one: they are lifted first (the span is nobody's
  /// while cached), and the span's next use puts them back (`Segment.format` the header's, `HugeSpan.allocate`
  /// the trailing one). Nil when there is no such span.
  static func takeGrown(byteCount: Int, alignment: Int) -> UnsafeMutablePointer<Segment>? {
    while true {
      var bestIndex = -1
      var bestWord: UInt = 0
      var bestByteCount = byteCount / 2 - 1
      for index in 0..<count {
        let word = slot(index).pointee.load(ordering: .relaxed)
        let spanByteCount = Int(word & Segment.mask) &<< sizeShift
        if word != 0 && spanByteCount < byteCount && spanByteCount > bestByteCount {
          bestIndex = index
          bestWord = word
          bestByteCount = spanByteCount
        }
      }
      if bestIndex < 0 { return nil }
      guard let span = claim(bestIndex, bestWord) else { continue }  // another thread took it: look again
      // SWALLOC_SECURE=full: a freed huge block was made inaccessible (mremap moves one mapping only).
      if !Secure.restoreCachedSpan(span) {
        release(span)
        return nil
      }
      guard span.pointee.backing == .normal else {
        putOrRelease(span)
        return nil
      }
      // As in `release`: a statistics walk may hold a link to the old address. The old range leaves the
      // segment map while it is still mapped (ours): once mremap has moved it, another thread may map a span
      // of its own there and set the entry, which a later clear would wipe out (its blocks would then look
      // foreign: the stress program saw malloc_usable_size of a live huge block drop to 0).
      while Statistics.segmentWalkers.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
      if Options.secure { liftGuards(span) }
      forget(UInt(bitPattern: span), byteCount: bestByteCount)
      guard let moved = OSMemory.move(span.address, byteCount: bestByteCount, growingTo: byteCount, alignment: alignment)
      else {
        SegmentMap.set(UInt(bitPattern: span), 1)
        putOrRelease(span)
        return nil
      }
      SegmentMap.set(UInt(bitPattern: moved), 1)
      Statistics.mapped(adding: byteCount - bestByteCount)
      Statistics.reusedSpanCount.wrappingAdd(1, ordering: .relaxed)
      let grown = moved.assumingMemoryBound(to: Segment.self)
      grown.pointee.mappingByteCount = byteCount
      return grown
    }
  }

  /// Makes a cached secure-mode span's guard pages accessible again, so that it is one mapping (the span
  /// records that it has none: its next use sets them).
  static func liftGuards(_ span: UnsafeMutablePointer<Segment>) {
    if span.pointee.trailingGuardOffset != 0 {
      Secure.guardRange(span.address + span.pointee.trailingGuardOffset, byteCount: Secure.guardByteCount, on: false)
      span.pointee.trailingGuardOffset = 0
    }
    if span.pointee.isHeaderGuarded {
      Secure.guardRange(span.address + Secure.headerGuardOffset, byteCount: Secure.guardByteCount, on: false)
      span.pointee.isHeaderGuarded = false
    }
  }

  /// Empties slot `index` if it still holds `word` (a span and its size) and takes the span out of the byte
  /// budget; nil when another thread took it first.
  static func claim(_ index: Int, _ word: UInt) -> UnsafeMutablePointer<Segment>? {
    if !slot(index).pointee.compareExchange(expected: word, desired: 0, ordering: .acquiring).exchanged { return nil }
    cachedByteCount.wrappingSubtract(Int(word & Segment.mask) &<< sizeShift, ordering: .relaxed)
    return UnsafeMutablePointer<Segment>(bitPattern: word & ~Segment.mask)!
  }

  /// Clears the segment-map entries of the 4 MiB units of a span that is gone from `base`.
  static func forget(_ base: UInt, byteCount: Int) {
    var unit = base
    while unit < base &+ UInt(byteCount) {
      SegmentMap.set(unit, 0)
      unit &+= UInt(Segment.byteCount)
    }
  }

  /// Caches a span that nobody uses any more, or returns it to the kernel when every slot is taken.
  static func putOrRelease(_ segment: UnsafeMutablePointer<Segment>) {
    let byteCount = segment.pointee.mappingByteCount
    let word = UInt(bitPattern: segment) | UInt(byteCount &>> sizeShift)
    let now = swalloc_now_ms()
    purgeIfDue(now: now)
    // Reserve room in the byte budget first; give it back if no slot is free.
    let budget = maximumCachedByteCount(now: now, freeing: byteCount)
    if cachedByteCount.wrappingAdd(byteCount, ordering: .relaxed).newValue <= budget {
      for index in 0..<count where slot(index).pointee.load(ordering: .relaxed) == 0 {
        time(index).pointee.store(now, ordering: .relaxed)
        if slot(index).pointee.compareExchange(expected: 0, desired: word, ordering: .releasing).exchanged {
          let due = now &+ PurgeDelay.milliseconds
          if due < nextPurgeCheck.load(ordering: .relaxed) { nextPurgeCheck.store(due, ordering: .relaxed) }
          return
        }
      }
    }
    cachedByteCount.wrappingSubtract(byteCount, ordering: .relaxed)
    release(segment)
  }

  /// The cache holds at most 3/4 of the program's recent peak of bytes in use, and at least 64 MiB: a program
  /// that replaces large blocks finds the sizes it needs here (backed: no page faults), and one that has
  /// shrunk keeps little. Cached spans go back to the kernel after the purge delay all the same.
  static func maximumCachedByteCount(now: UInt64, freeing byteCount: Int) -> Int {
    Swift.max(64 << 20, recentPeakInUse(now: now, freeing: byteCount) * 3 / 4)
  }

  static let cachedByteCount = Atomic<Int>(0)

  /// Segments enter the cache unpurged while it holds less than a quarter of the recent peak in use, and at
  /// least 16 MiB (see Heap.releaseSegment): beyond, a process that goes idle with no further call would keep
  /// too much resident. (Half the peak while the delay is raised cut thread-churn faults by a further 15 %,
  /// but raised mstress's peak RSS by 40 % and python's by 30 %.)
  static func residentSegmentBudget(now: UInt64) -> Int {
    Swift.max(16 << 20, recentPeakInUse(now: now, freeing: Segment.byteCount) / 4)
  }

  /// The largest number of bytes in use (pages and huge blocks) seen at a release within the last ceiling
  /// of the purge delay (a hint: races only blur it). `freeing` is the size being released, still counted
  /// as in use just before.
  static func recentPeakInUse(now: UInt64, freeing byteCount: Int) -> Int {
    let inUse = Statistics.inUseByteCount.load(ordering: .relaxed) &+ byteCount
    let peak = recentPeak.load(ordering: .relaxed)
    if inUse >= peak || now &- recentPeakAt.load(ordering: .relaxed) > UInt64(Options.purgeDelayMaxMs) {
      recentPeak.store(inUse, ordering: .relaxed)
      recentPeakAt.store(now, ordering: .relaxed)
      return inUse
    }
    return peak
  }

  static let recentPeak = Atomic<Int>(0)
  static let recentPeakAt = Atomic<UInt64>(0)

  /// Returns a span to the kernel (and forgets it in the segment map), or a reserve unit to the reserve.
  static func release(_ segment: UnsafeMutablePointer<Segment>) {
    let byteCount = segment.pointee.mappingByteCount
    let backing = segment.pointee.backing
    // A statistics walk may still hold a link to a span that was once a segment in a heap's list: wait until
    // it is done (walks are rare and short; this is one load otherwise).
    while Statistics.segmentWalkers.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
    if backing != .reserve {
      forget(UInt(bitPattern: segment), byteCount: byteCount)
      Statistics.mapped(adding: -byteCount)
    }
    SpanMemory.unmap(UnsafeMutableRawPointer(segment), byteCount: byteCount, backing: backing)
    PurgeDelay.notePurge(now: swalloc_now_ms())
  }

  /// When the oldest cached span becomes due (monotonic ms). A hint: a race only delays a purge.
  static let nextPurgeCheck = Atomic<UInt64>(UInt64.max)

  /// Releases the spans cached longer than the purge delay (all of them when `force`).
  static func purgeIfDue(now: UInt64, force: Bool = false) {
    if !force && now < nextPurgeCheck.load(ordering: .relaxed) { return }
    PurgeDelay.relax(now: now)
    let delay = PurgeDelay.milliseconds
    var earliest = UInt64.max
    for index in 0..<count {
      let word = slot(index).pointee.load(ordering: .relaxed)
      if word == 0 { continue }
      let cachedAt = time(index).pointee.load(ordering: .relaxed)
      if force || cachedAt &+ delay <= now {
        if let span = claim(index, word) { release(span) }
      } else if cachedAt &+ delay < earliest {
        earliest = cachedAt &+ delay
      }
    }
    nextPurgeCheck.store(earliest, ordering: .relaxed)
  }
}
