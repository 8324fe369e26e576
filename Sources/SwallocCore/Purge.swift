// Purge: free pages keep their memory for `purgeDelayMs` (a page reused soon costs no page faults), then
// their physical memory goes back to the kernel with MADV_DONTNEED.
import CShim
import Synchronization

extension Heap {
  /// Purges the pages (and cached spans) whose delay has passed, and retires idle current pages. Called on
  /// slow paths that map or retire pages.
  func purgeIfDue(now: UInt64?) {
    let now = now ?? swalloc_now_ms()
    PurgeDelay.relax(now: now)
    if now >= state.pointee.idleCheckDueAt { retireIdleCurrentPages(now: now) }
    let due = state.pointee.purgeDueAt
    if due != 0 && now >= due { purgePages(now: now, force: false) }
    if now >= SpanCache.nextPurgeCheck.load(ordering: .relaxed) { SpanCache.purgeIfDue(now: now) }
    if now >= SampleSlots.nextPurgeCheck.load(ordering: .relaxed) { SampleSlots.purgeIfDue(now: now) }
  }

  /// The current page of each class keeps an extra `used` count so that it is never retired on a free (no
  /// retire/refault cycle for a loop that allocates and frees one object). A class the program stopped using
  /// would then keep its page forever: here a current page found holding no block on two checks a purge
  /// delay apart is retired (second chance), so its memory can be purged.
  func retireIdleCurrentPages(now: UInt64) {
    let delay = PurgeDelay.milliseconds
    state.pointee.idleCheckDueAt = now &+ Swift.max(delay, 1)
    for sizeClass in 1..<SizeClass.count {
      guard let page = queue(sizeClass).pointee.current else { continue }
      if usedBlockCount(page) != 0 {
        page.pointee.emptySince = 0
      } else if page.pointee.emptySince == 0 {
        page.pointee.emptySince = now
      } else if now &- page.pointee.emptySince >= delay {
        page.collect()
        if usedBlockCount(page) == 0 { retire(page) }
      }
    }
  }

  /// Purges free, dirty pages of every segment of this heap: those retired at least the delay ago, or all.
  /// Adjacent pages are purged with one call.
  func purgePages(now: UInt64, force: Bool) {
    let delay = PurgeDelay.milliseconds
    var nextDue: UInt64 = 0
    var candidate = state.pointee.segments
    while let segment = candidate {
      candidate = segment.pointee.nextInHeap
      if let due = segment.purgePages(now: now, delay: delay, force: force), nextDue == 0 || due < nextDue {
        nextDue = due
      }
    }
    state.pointee.purgeDueAt = nextDue
  }
}

extension UnsafeMutablePointer where Pointee == Segment {
  /// Purges this segment's free, dirty pages retired at least `delay` ago (all of them when `force`), with
  /// one call per run of adjacent pages. Returns when the next page becomes due, or nil.
  func purgePages(now: UInt64, delay: UInt64, force: Bool) -> UInt64? {
    // Huge pages and locked memory are never purged.
    if pointee.backing.isPinned { return nil }
    if Options.hugePages == .transparent { return purgeHugePageHalf(now: now, delay: delay, force: force) }
    var nextDue: UInt64? = nil
    var dirty = pointee.dirtyMask
    var runStart: UnsafeMutableRawPointer? = nil
    var runEnd: UnsafeMutableRawPointer? = nil
    while dirty != 0 {
      let index = dirty.trailingZeroBitCount
      dirty &= dirty &- 1
      let due = page(at: index).pointee.retiredAt &+ delay
      if !force && due > now {
        if nextDue == nil || due < nextDue! { nextDue = due }
        continue
      }
      let area = pageArea(at: index)
      pointee.dirtyMask &= ~(UInt64(1) &<< UInt64(index))
      Statistics.purged(byteCount: area.byteCount)
      if runEnd == area.start {
        runEnd = area.start + area.byteCount
        continue
      }
      if let start = runStart { OSMemory.purge(start, byteCount: runEnd! - start) }
      runStart = area.start
      runEnd = area.start + area.byteCount
    }
    if let start = runStart {
      OSMemory.purge(start, byteCount: runEnd! - start)
      PurgeDelay.notePurge(now: now)
    }
    return nextDue
  }

  /// Transparent huge pages: purging 64 KiB inside a 2 MiB huge page would split it. The first half of a
  /// segment holds the header, so only the second half is purged, and only when every page in it is free
  /// and due. Returns when the next page becomes due, or nil.
  func purgeHugePageHalf(now: UInt64, delay: UInt64, force: Bool) -> UInt64? {
    let half = Segment.byteCount / 2
    let pageCount = Int(pointee.pageCount)
    let firstIndex = pageCount == 1 ? 0 : pageCount / 2
    var halfMask: UInt64 = 0
    for index in firstIndex..<pageCount { halfMask |= UInt64(1) &<< UInt64(index) }
    if pointee.dirtyMask & halfMask == 0 { return nil }
    if pointee.freeMask & halfMask != halfMask { return nil }  // a page in the half is in use
    var latest: UInt64 = 0
    for index in firstIndex..<pageCount where pointee.dirtyMask & (UInt64(1) &<< UInt64(index)) != 0 {
      latest = Swift.max(latest, page(at: index).pointee.retiredAt &+ delay)
    }
    if !force && latest > now { return latest }
    OSMemory.purge(address + half, byteCount: Segment.byteCount - half)
    PurgeDelay.notePurge(now: now)
    Statistics.purged(byteCount: Segment.byteCount - half)
    pointee.dirtyMask &= ~halfMask
    return nil
  }
}
