// Introspection: glibc's malloc_trim, mallinfo2, mallinfo, malloc_stats, mallopt and malloc_info, and
// Swalloc's own C API (swalloc.h), all answered from Swalloc's statistics.
import CShim
import Synchronization

extension LibC {
  /// Purges now (`malloc_trim`, `swalloc_purge`): the calling thread's free pages, those of the heaps that
  /// exited threads left in the pool, and every cached span. Live threads' heaps are theirs alone: their
  /// free pages go on their own purge delay. Returns the bytes given back.
  static func purgeNow() -> Int {
    let purgedBefore = Statistics.purgedByteCount.load(ordering: .relaxed)
    let mappedBefore = Statistics.mappedByteCount.load(ordering: .relaxed)
    let heap = Heap.owned
    if !heap.isEmpty { heap.trim() }
    // A heap popped from the pool is ours until pushed back. The popped ones are linked through nextInPool.
    var trimmed: UnsafeMutableRawPointer? = nil
    while let pooled = Heap.popPool(heapPool) {
      pooled.trim()
      pooled.state.pointee.nextInPool = UInt(bitPattern: trimmed)
      trimmed = pooled.base
    }
    while let base = trimmed {
      let pooled = Heap(base)
      trimmed = UnsafeMutableRawPointer(bitPattern: pooled.state.pointee.nextInPool)
      pooled.pushPool(heapPool)
    }
    SpanCache.purgeIfDue(now: swalloc_now_ms(), force: true)
    SampleSlots.purgeIfDue(now: swalloc_now_ms(), force: true)
    let purged = Statistics.purgedByteCount.load(ordering: .relaxed) - purgedBefore
    let unmapped = mappedBefore - Statistics.mappedByteCount.load(ordering: .relaxed)
    return purged + Swift.max(0, unmapped)
  }

  /// glibc's `malloc_trim(pad)`: 1 when memory went back to the kernel, else 0. `pad` is ignored.
  static func mallocTrim(_ pad: Int) -> Int32 {
    purgeNow() > 0 ? 1 : 0
  }

  /// glibc's `mallinfo2`, from Swalloc's statistics: `arena` = bytes mapped for pages, `uordblks` = live
  /// bytes in pages, `fordblks` = the rest of `arena`, `hblks`/`hblkhd` = huge blocks and their bytes.
  static func mallinfo2() -> CShim.mallinfo2 {
    let s = Statistics.snapshot()
    let pageMapped = Swift.max(0, s.mappedByteCount - s.hugeLiveByteCount)
    let pageLive = Swift.max(0, s.liveByteCount - s.hugeLiveByteCount)
    var info = CShim.mallinfo2()
    info.arena = pageMapped
    info.ordblks = 1
    info.hblks = s.hugeLiveCount
    info.hblkhd = s.hugeLiveByteCount
    info.usmblks = s.peakByteCount
    info.uordblks = pageLive
    info.fordblks = Swift.max(0, pageMapped - pageLive)
    info.keepcost = 0
    return info
  }

  /// glibc's `mallinfo`: `mallinfo2` in `int` fields (which wrap above 2 GiB, as glibc's do).
  static func mallinfo() -> CShim.mallinfo {
    let wide = mallinfo2()
    var info = CShim.mallinfo()
    info.arena = Int32(truncatingIfNeeded: wide.arena)
    info.ordblks = Int32(truncatingIfNeeded: wide.ordblks)
    info.hblks = Int32(truncatingIfNeeded: wide.hblks)
    info.hblkhd = Int32(truncatingIfNeeded: wide.hblkhd)
    info.usmblks = Int32(truncatingIfNeeded: wide.usmblks)
    info.uordblks = Int32(truncatingIfNeeded: wide.uordblks)
    info.fordblks = Int32(truncatingIfNeeded: wide.fordblks)
    return info
  }

  /// glibc's `mallopt`: accepted (returns 1) and without effect, since Swalloc has no arenas, trim threshold
  /// or mmap threshold to tune; use the SWALLOC_* options instead. As in glibc, an unknown parameter also
  /// returns 1, and M_MXFAST (1) outside 0 ... 160 returns 0.
  static func mallopt(_ parameter: Int32, _ value: Int32) -> Int32 {
    parameter == 1 && (value < 0 || value > 160) ? 0 : 1
  }

  /// glibc's `malloc_info(options, stream)`: an XML description on `stream`. As in glibc, options other
  /// than 0 return EINVAL (the value, not errno).
  static func mallocInfo(_ options: Int32, _ stream: UnsafeMutableRawPointer?) -> Int32 {
    if options != 0 { return EINVAL }
    guard let stream else {
      swalloc_errno_set(EINVAL)
      return -1
    }
    let s = Statistics.snapshot()
    let descriptor = swalloc_stream_descriptor(stream)
    if descriptor < 0 { return -1 }
    let saved = OSMemory.errorDescriptor
    OSMemory.errorDescriptor = descriptor
    ErrorWriter.withWriter { w in
      w.text("<malloc version=\"swalloc-1\">\n")
      w.text("<heap nr=\"0\">\n")
      xml(&w, "system type=\"current\" size", s.mappedByteCount)
      xml(&w, "system type=\"max\" size", s.peakByteCount)
      xml(&w, "total type=\"live\" size", s.liveByteCount)
      xml(&w, "total type=\"mmap\" count", s.hugeLiveCount)
      xml(&w, "total type=\"purged\" size", s.purgedByteCount)
      w.text("</heap>\n")
      xml(&w, "total type=\"allocations\" count", s.allocationCount)
      xml(&w, "total type=\"frees\" count", s.freeCount)
      xml(&w, "system type=\"resident\" size", s.residentByteCount)
      w.text("</malloc>\n")
    }
    OSMemory.errorDescriptor = saved
    return 0
  }

  static func xml(_ w: inout ErrorWriter, _ element: StaticString, _ value: Int) {
    w.text("<")
    w.text(element)
    w.text("=\"")
    w.decimal(value)
    w.text("\"/>\n")
  }

  /// Swalloc's C API: fills a `swalloc_statistics`.
  static func statistics(_ out: UnsafeMutablePointer<swalloc_statistics>) {
    let s = Statistics.snapshot()
    out.pointee.allocations = UInt64(s.allocationCount)
    out.pointee.frees = UInt64(Swift.max(0, s.freeCount))
    out.pointee.live_bytes = UInt64(Swift.max(0, s.liveByteCount))
    out.pointee.peak_bytes = UInt64(s.peakByteCount)
    out.pointee.mapped_bytes = UInt64(Swift.max(0, s.mappedByteCount))
    out.pointee.resident_bytes = UInt64(s.residentByteCount)
    out.pointee.purged_bytes = UInt64(s.purgedByteCount)
    out.pointee.huge_live_blocks = UInt64(s.hugeLiveCount)
    out.pointee.huge_live_bytes = UInt64(Swift.max(0, s.hugeLiveByteCount))
    out.pointee.spans_mapped = UInt64(s.freshSpanCount)
    out.pointee.spans_reused = UInt64(s.reusedSpanCount)
    out.pointee.heaps = UInt64(s.heapCount)
    out.pointee.invalid_frees = UInt64(s.invalidFreeCount)
    out.pointee.huge_page_spans = UInt64(s.hugePageSpanCount)
    out.pointee.huge_page_fallbacks = UInt64(s.hugePageFallbackCount)
    out.pointee.huge_reserve_bytes = UInt64(s.hugeReserveByteCount)
    out.pointee.locked_bytes = UInt64(s.lockedByteCount)
    out.pointee.locked_fallbacks = UInt64(s.lockedFallbackCount)
  }
}
