// Heap+Segments: where a heap gets its segments (span cache, then the kernel) and where they go back.
import CShim
import Synchronization

extension Heap {
  /// A new segment of `kind` owned by this heap: a recycled span of 4 MiB, or a fresh 4 MiB-aligned mapping.
  func acquireSegment(kind: SegmentKind) -> UnsafeMutablePointer<Segment>? {
    let segment: UnsafeMutablePointer<Segment>
    if let cached = SpanCache.take(byteCount: Segment.byteCount, alignment: Segment.byteCount, reuseFactor: 2) {
      segment = cached
    } else {
      guard let fresh = SpanMemory.newSpan(byteCount: Segment.byteCount, alignment: Segment.byteCount) else {
        return nil
      }
      segment = fresh.segment
    }
    segment.format(kind: kind, heap: base)
    if Options.secure { Secure.placeTrailingGuard(segment, at: Segment.byteCount - Secure.guardByteCount) }
    segment.pointee.nextInHeap = state.pointee.segments
    if let first = state.pointee.segments { first.pointee.previousInHeap = segment }
    state.pointee.segments = segment
    return segment
  }

  /// Gives an entirely free segment back: to the span cache, or to the kernel when the cache is full.
  func releaseSegment(_ segment: UnsafeMutablePointer<Segment>) {
    // SWALLOC_SECURE=full: the freed large blocks' middles are made accessible before any reuse.
    if Options.secureFull && segment.pointee.kind == .large { Secure.unprotectSegment(segment) }
    if segment.pointee.isAvailable { removeAvailable(segment) }
    let next = segment.pointee.nextInHeap
    let previous = segment.pointee.previousInHeap
    if let next { next.pointee.previousInHeap = previous }
    if let previous { previous.pointee.nextInHeap = next } else { state.pointee.segments = next }
    segment.pointee.heap = nil
    // Secure mode: the guard pages stay; a reuse as a huge span moves the trailing one if it must.
    // The span cache keeps spans backed for reuse (under thread churn a segment often comes back within
    // milliseconds). But an idle process keeps what is cached resident, since nothing purges without
    // allocator activity: beyond a small budget, segments enter the cache purged (memreturn: 1 GiB of small
    // objects freed leaves 4 MB resident).
    if segment.pointee.backing == .reserve { return SpanMemory.unmap(segment.address, byteCount: 0, backing: .reserve) }
    let now = swalloc_now_ms()
    if SpanCache.cachedByteCount.load(ordering: .relaxed) + Segment.byteCount > SpanCache.residentSegmentBudget(now: now) {
      _ = segment.purgePages(now: now, delay: 0, force: true)
    }
    SpanCache.putOrRelease(segment)
  }

  func addAvailable(_ segment: UnsafeMutablePointer<Segment>) {
    let small = segment.pointee.kind == .small
    let head = small ? state.pointee.availableSmall : state.pointee.availableMedium
    segment.pointee.previousAvailable = nil
    segment.pointee.nextAvailable = head
    if let head { head.pointee.previousAvailable = segment }
    if small { state.pointee.availableSmall = segment } else { state.pointee.availableMedium = segment }
    segment.pointee.isAvailable = true
  }

  func removeAvailable(_ segment: UnsafeMutablePointer<Segment>) {
    let next = segment.pointee.nextAvailable
    let previous = segment.pointee.previousAvailable
    if let next { next.pointee.previousAvailable = previous }
    if let previous {
      previous.pointee.nextAvailable = next
    } else if segment.pointee.kind == .small {
      state.pointee.availableSmall = next
    } else {
      state.pointee.availableMedium = next
    }
    segment.pointee.nextAvailable = nil
    segment.pointee.previousAvailable = nil
    segment.pointee.isAvailable = false
  }
}
