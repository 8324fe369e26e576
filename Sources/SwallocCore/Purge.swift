// Purge: free pages keep their memory for `purgeDelayMs` (a page reused soon costs no page faults), then
// their physical memory goes back to the kernel with MADV_DONTNEED.
import CShim
import Synchronization

extension Heap {
  /// Purges the pages (and cached spans) whose delay has passed. Cheap when nothing is due.
  func purgeIfDue(now: UInt64?) {
    let due = state.pointee.purgeDueAt
    let spansDue = SpanCache.nextPurgeCheck.load(ordering: .relaxed)
    if due == 0 && spansDue == UInt64.max { return }
    let now = now ?? swalloc_now_ms()
    if due != 0 && now >= due { purgePages(now: now, force: false) }
    if now >= spansDue { SpanCache.purgeIfDue(now: now) }
  }

  /// Purges free, dirty pages of every segment of this heap: those retired at least the delay ago, or all.
  /// Adjacent pages are purged with one call.
  func purgePages(now: UInt64, force: Bool) {
    let delay = UInt64(Options.purgeDelayMs)
    var nextDue: UInt64 = 0
    var candidate = state.pointee.segments
    while let segment = candidate {
      candidate = segment.pointee.nextInHeap
      var dirty = segment.pointee.dirtyMask
      var runStart: UnsafeMutableRawPointer? = nil
      var runEnd: UnsafeMutableRawPointer? = nil
      while dirty != 0 {
        let index = dirty.trailingZeroBitCount
        dirty &= dirty &- 1
        let retiredAt = segment.page(at: index).pointee.retiredAt
        if force || retiredAt &+ delay <= now {
          let area = segment.pageArea(at: index)
          segment.pointee.dirtyMask &= ~(UInt64(1) &<< UInt64(index))
          if runEnd == area.start {
            runEnd = area.start + area.byteCount
          } else {
            if let start = runStart { OSMemory.purge(start, byteCount: runEnd! - start) }
            runStart = area.start
            runEnd = area.start + area.byteCount
          }
          Statistics.purged(byteCount: area.byteCount)
        } else if nextDue == 0 || retiredAt &+ delay < nextDue {
          nextDue = retiredAt &+ delay
        }
      }
      if let start = runStart { OSMemory.purge(start, byteCount: runEnd! - start) }
    }
    state.pointee.purgeDueAt = nextDue
  }
}
