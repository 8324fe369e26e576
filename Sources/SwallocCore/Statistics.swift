// Statistics: global counters (atomic, updated on slow paths only) plus a walk of every heap's pages.
// Allocation counts come from each heap's fast-path counter; frees are derived (allocations - live blocks),
// so the free fast path counts nothing.
import CShim
import Synchronization

/// A snapshot of Swalloc's statistics. `liveByteCount` counts whole blocks (usable sizes); blocks freed by
/// other threads count as live until their page's owner collects them.
struct StatisticsSnapshot {
  var allocationCount = 0
  var freeCount = 0
  var liveByteCount = 0
  var peakByteCount = 0
  var mappedByteCount = 0
  var residentByteCount = 0
  var purgedByteCount = 0
  var heapCount = 0
  var invalidFreeCount = 0
  var hugeLiveCount = 0
  var hugeLiveByteCount = 0
  var freshSpanCount = 0
  var reusedSpanCount = 0
  var hugePageSpanCount = 0
  var hugePageFallbackCount = 0
  var hugeReserveByteCount = 0
  var lockedByteCount = 0
  var lockedFallbackCount = 0
}

enum Statistics {
  static let mappedByteCount = Atomic<Int>(0)
  static let inUseByteCount = Atomic<Int>(0)
  static let peakInUseByteCount = Atomic<Int>(0)
  static let purgedByteCount = Atomic<Int>(0)
  static let hugeAllocationCount = Atomic<Int>(0)
  static let hugeLiveCount = Atomic<Int>(0)
  static let hugeLiveByteCount = Atomic<Int>(0)
  static let unownedRemoteFrees = Atomic<Int>(0)
  /// Statistics walks in progress (see `snapshot`).
  static let segmentWalkers = Atomic<Int>(0)
  /// Spans (segments and huge blocks) mapped fresh from the kernel, and taken from the span cache instead.
  static let freshSpanCount = Atomic<Int>(0)
  static let reusedSpanCount = Atomic<Int>(0)
  /// What destroyed user heaps (Swift API) had counted: their allocations, and the remote frees they
  /// collected. Their blocks count as freed.
  static let destroyedHeapAllocationCount = Atomic<Int>(0)
  static let destroyedHeapCollectedRemoteFrees = Atomic<Int>(0)

  static func mapped(adding byteCount: Int) {
    mappedByteCount.wrappingAdd(byteCount, ordering: .relaxed)
  }

  static func purged(byteCount: Int) {
    purgedByteCount.wrappingAdd(byteCount, ordering: .relaxed)
  }

  /// Bytes in pages handed to heaps plus huge blocks: the peak of this is the reported peak.
  static func pageBytesInUse(adding byteCount: Int) {
    let now = inUseByteCount.wrappingAdd(byteCount, ordering: .relaxed).newValue
    if byteCount > 0 { raisePeak(now) }
  }

  static func raisePeak(_ value: Int) {
    var peak = peakInUseByteCount.load(ordering: .relaxed)
    while value > peak {
      let (raised, original) = peakInUseByteCount.compareExchange(
        expected: peak, desired: value, ordering: .relaxed)
      if raised { return }
      peak = original
    }
  }

  static func huge(allocatedByteCount: Int) {
    hugeAllocationCount.wrappingAdd(1, ordering: .relaxed)
    hugeLiveCount.wrappingAdd(1, ordering: .relaxed)
    hugeLiveByteCount.wrappingAdd(allocatedByteCount, ordering: .relaxed)
    pageBytesInUse(adding: allocatedByteCount)
  }

  static func huge(freedByteCount: Int) {
    hugeLiveCount.wrappingSubtract(1, ordering: .relaxed)
    hugeLiveByteCount.wrappingSubtract(freedByteCount, ordering: .relaxed)
    pageBytesInUse(adding: -freedByteCount)
  }

  /// Walks every heap. Reads other threads' page counters without synchronization: exact when they are
  /// quiet (at exit), approximate while they run. `perClass`, when given, receives (blocks in use, pages)
  /// per size class.
  static func snapshot(perClass: UnsafeMutablePointer<(Int, Int)>? = nil) -> StatisticsSnapshot {
    // Other threads' segment lists are walked without their owners' knowledge: while a walk is on, no
    // segment is unmapped (SpanCache.release waits), so a segment read through a stale link is still there.
    segmentWalkers.wrappingAdd(1, ordering: .sequentiallyConsistent)
    defer { segmentWalkers.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
    var result = StatisticsSnapshot()
    var remoteIssued = unownedRemoteFrees.load(ordering: .relaxed)
    var remoteCollected = destroyedHeapCollectedRemoteFrees.load(ordering: .relaxed)
    result.allocationCount = destroyedHeapAllocationCount.load(ordering: .relaxed)
    var usedBlocks = 0
    var word = heapRegistry.load(ordering: .acquiring)
    while let base = UnsafeMutableRawPointer(bitPattern: word) {
      let heap = Heap(base)
      result.heapCount += 1
      result.allocationCount += heap.state.pointee.mallocCount
      remoteIssued += heap.state.pointee.remoteFreeCount
      remoteCollected += heap.state.pointee.collectedRemoteFreeCount
      var candidate = heap.state.pointee.segments
      while let segment = candidate {
        candidate = segment.pointee.nextInHeap
        // Clamped: a segment being formatted for another heap may be read half-written.
        for index in 0..<Swift.min(Swift.max(Int(segment.pointee.pageCount), 0), Segment.sliceCount) {
          let page = segment.page(at: index)
          if page.pointee.state != .inUse { continue }
          let used = heap.usedBlockCount(page)
          usedBlocks += used
          result.liveByteCount += used * page.pointee.blockByteCount
          if let perClass {
            perClass[Int(page.pointee.sizeClass)].0 += used
            perClass[Int(page.pointee.sizeClass)].1 += 1
          }
        }
      }
      word = UInt(bitPattern: heap.state.pointee.nextInRegistry)
    }
    // Remote frees not yet collected are still counted in `used`.
    let uncollected = Swift.max(0, remoteIssued - remoteCollected)
    let liveBlocks = Swift.max(0, usedBlocks - uncollected)
    result.hugeLiveCount = hugeLiveCount.load(ordering: .relaxed)
    result.hugeLiveByteCount = hugeLiveByteCount.load(ordering: .relaxed)
    result.allocationCount += hugeAllocationCount.load(ordering: .relaxed)
    result.freeCount = result.allocationCount - liveBlocks - result.hugeLiveCount
    result.liveByteCount += result.hugeLiveByteCount
    result.peakByteCount = peakInUseByteCount.load(ordering: .relaxed)
    result.mappedByteCount = mappedByteCount.load(ordering: .relaxed)
    result.purgedByteCount = purgedByteCount.load(ordering: .relaxed)
    result.residentByteCount = residentByteCount()
    result.invalidFreeCount = Diagnostics.invalidFreeCount.load(ordering: .relaxed)
    result.freshSpanCount = freshSpanCount.load(ordering: .relaxed)
    result.reusedSpanCount = reusedSpanCount.load(ordering: .relaxed)
    result.hugePageSpanCount = SpanMemory.hugePageSpanCount.load(ordering: .relaxed)
    result.hugePageFallbackCount = SpanMemory.hugePageFallbackCount.load(ordering: .relaxed)
    result.hugeReserveByteCount = HugeReserve.unitCount * Segment.byteCount
    result.lockedByteCount = SpanMemory.lockedByteCount.load(ordering: .relaxed)
    result.lockedFallbackCount = SpanMemory.lockedFallbackCount.load(ordering: .relaxed)
    return result
  }

  /// The process's resident set size, from the second field of /proc/self/statm (raw open/read).
  static func residentByteCount() -> Int {
    var buffer: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    return withUnsafeMutableBytes(of: &buffer) { raw -> Int in
      let saved = swalloc_errno_get()
      defer { swalloc_errno_set(saved) }
      let descriptor = swalloc_open_read_only("/proc/self/statm")
      if descriptor < 0 { return 0 }
      let length = read(descriptor, raw.baseAddress, raw.count - 1)
      close(descriptor)
      if length <= 0 { return 0 }
      var index = 0
      while index < length && raw[index] != 32 { index += 1 }  // skip the first field
      index += 1
      var pages = 0
      while index < length && raw[index] >= 48 && raw[index] <= 57 {
        pages = pages * 10 + Int(raw[index] - 48)
        index += 1
      }
      return pages * OSMemory.pageByteCount
    }
  }

  /// Prints the statistics on stderr, as a table or as JSON (SWALLOC_SHOW_STATS).
  static func print() { print(json: Options.showStatistics == .json) }

  static func print(json: Bool) {
    withUnsafeTemporaryAllocation(of: (Int, Int).self, capacity: SizeClass.count) { buffer in
      let perClass = buffer.baseAddress!
      perClass.initialize(repeating: (0, 0), count: SizeClass.count)
      let snapshot = snapshot(perClass: perClass)
      if json {
        printJSON(snapshot, perClass: perClass)
      } else {
        printTable(snapshot, perClass: perClass)
      }
    }
  }

  static func printTable(_ s: StatisticsSnapshot, perClass: UnsafeMutablePointer<(Int, Int)>) {
    ErrorWriter.withWriter { w in
      w.text("swalloc: statistics (pid ")
      w.decimal(Int(getpid()))
      w.text(")\n")
      w.text("swalloc:   version                    ")
      w.cString(swalloc_version_text())
      w.byte(10)
      row(&w, "allocations     ", s.allocationCount)
      row(&w, "frees           ", s.freeCount)
      row(&w, "live bytes      ", s.liveByteCount)
      row(&w, "peak bytes      ", s.peakByteCount)
      row(&w, "mapped bytes    ", s.mappedByteCount)
      row(&w, "resident bytes  ", s.residentByteCount)
      row(&w, "purged bytes    ", s.purgedByteCount)
      row(&w, "huge live blocks", s.hugeLiveCount)
      row(&w, "spans mapped    ", s.freshSpanCount)
      row(&w, "spans reused    ", s.reusedSpanCount)
      row(&w, "heaps           ", s.heapCount)
      row(&w, "invalid frees   ", s.invalidFreeCount)
      // Says which mode served the process (tests prove with it that SWALLOC_SECURE=1 took effect).
      // Its value is the level: 1, or 2 for SWALLOC_SECURE=full.
      if Options.secure { row(&w, "secure mode     ", Options.secureLevel) }
      if Options.profile != .off {
        row(&w, "profile samples ", Profile.sampleCount.load(ordering: .relaxed))
        row(&w, "profile bytes   ", Profile.representedByteCount.load(ordering: .relaxed))
      }
      if Options.hugePages == .explicit {
        row(&w, "huge page spans ", s.hugePageSpanCount)
        row(&w, "huge page fallbacks", s.hugePageFallbackCount)
        row(&w, "huge reserve bytes", s.hugeReserveByteCount)
      }
      if Options.locked {
        row(&w, "locked bytes    ", s.lockedByteCount)
        row(&w, "locked fallbacks", s.lockedFallbackCount)
      }
      w.text("swalloc:   class  block bytes  blocks in use  pages\n")
      for sizeClass in 1..<SizeClass.count where perClass[sizeClass].1 > 0 {
        w.text("swalloc:   ")
        w.decimal(sizeClass, width: 5)
        w.decimal(SizeClass.blockByteCount(sizeClass), width: 13)
        w.decimal(perClass[sizeClass].0, width: 15)
        w.decimal(perClass[sizeClass].1, width: 7)
        w.byte(10)
      }
    }
  }

  static func row(_ w: inout ErrorWriter, _ label: StaticString, _ value: Int) {
    w.text("swalloc:   ")
    w.text(label)
    w.decimal(value, width: Swift.max(1, 32 - label.utf8CodeUnitCount))
    w.byte(10)
  }

  static func printJSON(_ s: StatisticsSnapshot, perClass: UnsafeMutablePointer<(Int, Int)>) {
    ErrorWriter.withWriter { w in
      w.text("{\"swalloc\":{\"pid\":")
      w.decimal(Int(getpid()))
      w.text(",\"version\":\"")
      w.cString(swalloc_version_text())
      w.byte(34)
      field(&w, "allocations", s.allocationCount)
      field(&w, "frees", s.freeCount)
      field(&w, "live_bytes", s.liveByteCount)
      field(&w, "peak_bytes", s.peakByteCount)
      field(&w, "mapped_bytes", s.mappedByteCount)
      field(&w, "resident_bytes", s.residentByteCount)
      field(&w, "purged_bytes", s.purgedByteCount)
      field(&w, "huge_live_blocks", s.hugeLiveCount)
      field(&w, "spans_mapped", s.freshSpanCount)
      field(&w, "spans_reused", s.reusedSpanCount)
      field(&w, "heaps", s.heapCount)
      field(&w, "invalid_frees", s.invalidFreeCount)
      field(&w, "huge_page_spans", s.hugePageSpanCount)
      field(&w, "huge_page_fallbacks", s.hugePageFallbackCount)
      field(&w, "huge_reserve_bytes", s.hugeReserveByteCount)
      field(&w, "locked_bytes", s.lockedByteCount)
      field(&w, "locked_fallbacks", s.lockedFallbackCount)
      field(&w, "secure", Options.secureLevel)
      field(&w, "profile_samples", Profile.sampleCount.load(ordering: .relaxed))
      field(&w, "profile_bytes_represented", Profile.representedByteCount.load(ordering: .relaxed))
      w.text(",\"classes\":[")
      var first = true
      for sizeClass in 1..<SizeClass.count where perClass[sizeClass].1 > 0 {
        if !first { w.byte(44) }
        first = false
        w.text("{\"class\":")
        w.decimal(sizeClass)
        field(&w, "block_bytes", SizeClass.blockByteCount(sizeClass))
        field(&w, "blocks_in_use", perClass[sizeClass].0)
        field(&w, "pages", perClass[sizeClass].1)
        w.byte(125)
      }
      w.text("]}}\n")
    }
  }

  static func field(_ w: inout ErrorWriter, _ name: StaticString, _ value: Int) {
    w.text(",\"")
    w.text(name)
    w.text("\":")
    w.decimal(value)
  }
}
