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
      for index in 0..<count {
        let word = slot(index).pointee.load(ordering: .relaxed)
        if word == 0 || (word & ~Segment.mask) & UInt(alignment &- 1) != 0 { continue }
        let spanByteCount = Int(word & Segment.mask) &<< sizeShift
        if spanByteCount < byteCount { continue }
        let kept = spanByteCount - headByteCount >= Segment.byteCount ? headByteCount : spanByteCount
        if kept <= byteCount &* reuseFactor && kept < bestKept {
          bestIndex = index
          bestWord = word
          bestKept = kept
        }
      }
      if bestIndex < 0 { return nil }
      if !slot(bestIndex).pointee.compareExchange(expected: bestWord, desired: 0, ordering: .acquiring).exchanged {
        continue  // another thread took it: look again
      }
      let spanByteCount = Int(bestWord & Segment.mask) &<< sizeShift
      cachedByteCount.wrappingSubtract(spanByteCount, ordering: .relaxed)
      Statistics.reusedSpanCount.wrappingAdd(1, ordering: .relaxed)
      let span = UnsafeMutablePointer<Segment>(bitPattern: bestWord & ~Segment.mask)!
      span.pointee.mappingByteCount = bestKept
      if bestKept < spanByteCount {
        let tail = (span.address + bestKept).assumingMemoryBound(to: Segment.self)
        tail.pointee.mappingByteCount = spanByteCount - bestKept
        tail.pointee.backing = span.pointee.backing
        // Secure mode's guard pages: the tail's header area held data; the trailing guard (the span's last
        // 4 KiB, or a segment's) is in the tail when it lies past the head.
        tail.pointee.isHeaderGuarded = false
        tail.pointee.trailingGuardOffset = 0
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

  /// Caches a span that nobody uses any more, or returns it to the kernel when every slot is taken.
  static func putOrRelease(_ segment: UnsafeMutablePointer<Segment>) {
    let byteCount = segment.pointee.mappingByteCount
    let word = UInt(bitPattern: segment) | UInt(byteCount &>> sizeShift)
    let now = swalloc_now_ms()
    purgeIfDue(now: now)
    // Reserve room in the byte budget first; give it back if no slot is free.
    if cachedByteCount.wrappingAdd(byteCount, ordering: .relaxed).newValue <= maximumCachedByteCount {
      for index in 0..<count where slot(index).pointee.load(ordering: .relaxed) == 0 {
        time(index).pointee.store(now, ordering: .relaxed)
        if slot(index).pointee.compareExchange(expected: 0, desired: word, ordering: .releasing).exchanged {
          let due = now &+ UInt64(Options.purgeDelayMs)
          if due < nextPurgeCheck.load(ordering: .relaxed) { nextPurgeCheck.store(due, ordering: .relaxed) }
          return
        }
      }
    }
    cachedByteCount.wrappingSubtract(byteCount, ordering: .relaxed)
    release(segment)
  }

  /// The cache holds at most this many bytes of spans (their memory stays resident until they are released,
  /// and without a background thread a process that goes idle keeps them).
  static let maximumCachedByteCount = 64 << 20
  static let cachedByteCount = Atomic<Int>(0)
  /// Segments enter the cache unpurged while it holds less than this (see Heap.releaseSegment).
  static let residentSegmentBudget = 16 << 20

  /// Returns a span to the kernel (and forgets it in the segment map), or a reserve unit to the reserve.
  static func release(_ segment: UnsafeMutablePointer<Segment>) {
    let byteCount = segment.pointee.mappingByteCount
    let backing = segment.pointee.backing
    // A statistics walk may still hold a link to a span that was once a segment in a heap's list: wait until
    // it is done (walks are rare and short; this is one load otherwise).
    while Statistics.segmentWalkers.load(ordering: .sequentiallyConsistent) != 0 { sched_yield() }
    if backing != .reserve {
      let base = UInt(bitPattern: segment)
      var unit = base
      while unit < base &+ UInt(byteCount) {
        SegmentMap.set(unit, 0)
        unit &+= UInt(Segment.byteCount)
      }
      Statistics.mapped(adding: -byteCount)
    }
    SpanMemory.unmap(UnsafeMutableRawPointer(segment), byteCount: byteCount, backing: backing)
  }

  /// When the oldest cached span becomes due (monotonic ms). A hint: a race only delays a purge.
  static let nextPurgeCheck = Atomic<UInt64>(UInt64.max)

  /// Releases the spans cached longer than the purge delay (all of them when `force`).
  static func purgeIfDue(now: UInt64, force: Bool = false) {
    if !force && now < nextPurgeCheck.load(ordering: .relaxed) { return }
    let delay = UInt64(Options.purgeDelayMs)
    var earliest = UInt64.max
    for index in 0..<count {
      let word = slot(index).pointee.load(ordering: .relaxed)
      if word == 0 { continue }
      let cachedAt = time(index).pointee.load(ordering: .relaxed)
      if force || cachedAt &+ delay <= now {
        if slot(index).pointee.compareExchange(expected: word, desired: 0, ordering: .acquiring).exchanged {
          cachedByteCount.wrappingSubtract(Int(word & Segment.mask) &<< sizeShift, ordering: .relaxed)
          release(UnsafeMutablePointer<Segment>(bitPattern: word & ~Segment.mask)!)
        }
      } else if cachedAt &+ delay < earliest {
        earliest = cachedAt &+ delay
      }
    }
    nextPurgeCheck.store(earliest, ordering: .relaxed)
  }
}
