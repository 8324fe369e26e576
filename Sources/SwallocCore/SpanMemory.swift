// SpanMemory: where fresh spans come from, by the options: the explicit huge-page reserve, explicit huge pages
// (MAP_HUGETLB), locked memory (MAP_LOCKED), or normal pages (with MADV_HUGEPAGE in transparent mode).
// Each fallback to normal pages is counted, and reported once under SWALLOC_VERBOSE.
import CShim
import Synchronization

/// What backs a span. Pinned memory (huge pages, locked) is never purged.
enum SpanBacking: UInt8 {
  case normal = 0
  case hugePages = 1
  case locked = 2
  /// A 4 MiB unit of the huge-page reserve (huge pages, returned to the reserve, never unmapped).
  case reserve = 3

  var isPinned: Bool { self != .normal }
}

enum SpanMemory {
  static let hugePageByteCount = 2 << 20

  static let hugePageSpanCount = Atomic<Int>(0)
  static let hugePageFallbackCount = Atomic<Int>(0)
  static let lockedByteCount = Atomic<Int>(0)
  static let lockedFallbackCount = Atomic<Int>(0)

  /// Maps a fresh span of at least `byteCount` bytes aligned to `alignment` (a multiple of 4 MiB). Returns
  /// it with its backing and real size (explicit huge pages round up to 2 MiB), or nil.
  static func map(byteCount: Int, alignment: Int, forBlock: Bool)
    -> (address: UnsafeMutableRawPointer, backing: SpanBacking, byteCount: Int)?
  {
    let lockFlag: Int32 = Options.locked ? MAP_LOCKED : 0
    if Options.hugePages == .explicit {
      if byteCount == Segment.byteCount, let unit = HugeReserve.take() {
        return (unit, .reserve, byteCount)
      }
      let rounded = (byteCount + hugePageByteCount - 1) & ~(hugePageByteCount - 1)
      if let address = OSMemory.reserveAligned(byteCount: rounded, alignment: alignment,
                                               flags: MAP_HUGETLB | lockFlag) {
        hugePageSpanCount.wrappingAdd(1, ordering: .relaxed)
        if Options.locked { lockedByteCount.wrappingAdd(rounded, ordering: .relaxed) }
        return (address, .hugePages, rounded)
      }
      if hugePageFallbackCount.wrappingAdd(1, ordering: .relaxed).oldValue == 0 {
        Diagnostics.note(
          "SWALLOC_HUGE_PAGES=explicit: the kernel has no free huge pages (/proc/sys/vm/nr_hugepages); using normal pages")
      }
    }
    if Options.locked {
      // The kernel enforces RLIMIT_MEMLOCK (and lets a process with CAP_IPC_LOCK go past it): mmap with
      // MAP_LOCKED fails with EAGAIN beyond what it allows.
      if let address = OSMemory.reserveAligned(byteCount: byteCount, alignment: alignment, flags: MAP_LOCKED) {
        lockedByteCount.wrappingAdd(byteCount, ordering: .relaxed)
        return (address, .locked, byteCount)
      }
      if lockedFallbackCount.wrappingAdd(1, ordering: .relaxed).oldValue == 0 {
        Diagnostics.note("SWALLOC_LOCKED=1: RLIMIT_MEMLOCK reached (ulimit -l); using unlocked memory")
      }
    }
    guard let address = OSMemory.reserveAligned(byteCount: byteCount, alignment: alignment) else { return nil }
    if Options.hugePages == .transparent
      || (Options.hugePages == .large && forBlock && byteCount >= hugePageByteCount)
    {
      OSMemory.adviseHugePages(address, byteCount: byteCount)
    }
    return (address, .normal, byteCount)
  }

  /// A fresh span set up as Swalloc's: its header records its size and backing, it is in the segment map and
  /// counted. `isZeroed` is false for a reserve unit, which has been used before.
  /// `forBlock`: the span holds one huge block (not a segment of pages), see `HugePageMode.large`.
  static func newSpan(byteCount: Int, alignment: Int, forBlock: Bool = false)
    -> (segment: UnsafeMutablePointer<Segment>, isZeroed: Bool)?
  {
    guard let mapped = map(byteCount: byteCount, alignment: alignment, forBlock: forBlock) else { return nil }
    let segment = mapped.address.assumingMemoryBound(to: Segment.self)
    segment.pointee.mappingByteCount = mapped.byteCount
    segment.pointee.backing = mapped.backing
    // A reserve unit's header is left from its last use; huge pages never held guards (mprotect needs
    // 2 MiB granularity there), so none is recorded.
    segment.pointee.isHeaderGuarded = false
    segment.pointee.trailingGuardOffset = 0
    if mapped.backing == .reserve { return (segment, false) }  // counted and in the map since start-up
    Statistics.mapped(adding: mapped.byteCount)
    Statistics.freshSpanCount.wrappingAdd(1, ordering: .relaxed)
    // Fresh memory faults in: if memory was just given back, the purge delay grows.
    PurgeDelay.noteRefault(now: swalloc_now_ms())
    SegmentMap.set(UInt(bitPattern: mapped.address), 1)
    return (segment, true)
  }

  /// Gives a span's memory back: to the reserve, or to the kernel.
  static func unmap(_ address: UnsafeMutableRawPointer, byteCount: Int, backing: SpanBacking) {
    switch backing {
    case .reserve:
      HugeReserve.giveBack(address)
    case .locked:
      lockedByteCount.wrappingSubtract(byteCount, ordering: .relaxed)
      OSMemory.release(address, byteCount: byteCount)
    case .hugePages:
      if Options.locked { lockedByteCount.wrappingSubtract(byteCount, ordering: .relaxed) }
      OSMemory.release(address, byteCount: byteCount)
    case .normal:
      OSMemory.release(address, byteCount: byteCount)
    }
  }
}

/// SWALLOC_HUGE_RESERVE: explicit huge pages mapped once at start and carved into 4 MiB segments, so that a
/// program gets its huge pages even if others take the kernel's pool later. Units are claimed and returned
/// through an atomic bitmap (lock-free: fork-safe).
enum HugeReserve {
  static let maximumByteCount = 4 << 30
  static let wordCount = maximumByteCount / Segment.byteCount / 64

  @exclusivity(unchecked) nonisolated(unsafe) static var base: UnsafeMutableRawPointer? = nil
  @exclusivity(unchecked) nonisolated(unsafe) static var unitCount = 0

  /// Bit `i` set: unit `i` free. `wordCount` words live in the C shim's static storage.
  static func word(_ index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
    UnsafeMutableRawPointer(swalloc_huge_reserve_bits_address()).assumingMemoryBound(to: Atomic<UInt64>.self)
      + index
  }

  /// Maps the reserve (once, when the options ask for one).
  static func initialize() {
    let byteCount = (Options.hugeReserveByteCount + Segment.byteCount - 1) & ~(Segment.byteCount - 1)
    if byteCount == 0 || base != nil { return }
    guard let address = OSMemory.reserveAligned(byteCount: byteCount, alignment: Segment.byteCount,
                                                flags: MAP_HUGETLB | MAP_POPULATE)
    else {
      SpanMemory.hugePageFallbackCount.wrappingAdd(1, ordering: .relaxed)
      Diagnostics.note(
        "SWALLOC_HUGE_RESERVE: the kernel could not give the reserve in huge pages (/proc/sys/vm/nr_hugepages); none reserved")
      return
    }
    Statistics.mapped(adding: byteCount)
    unitCount = byteCount / Segment.byteCount
    for unit in 0..<unitCount {
      word(unit / 64).pointee.bitwiseOr(UInt64(1) << UInt64(unit % 64), ordering: .relaxed)
      SegmentMap.set(UInt(bitPattern: address) + UInt(unit * Segment.byteCount), 1)
    }
    base = address
  }

  /// A free 4 MiB unit of the reserve, or nil.
  static func take() -> UnsafeMutableRawPointer? {
    guard let base else { return nil }
    for index in 0..<((unitCount + 63) / 64) {
      var bits = word(index).pointee.load(ordering: .relaxed)
      while bits != 0 {
        let bit = UInt64(bits.trailingZeroBitCount)
        let (exchanged, original) = word(index).pointee.compareExchange(
          expected: bits, desired: bits & ~(1 << bit), ordering: .acquiring)
        if exchanged { return base + (index * 64 + Int(bit)) * Segment.byteCount }
        bits = original
      }
    }
    return nil
  }

  static func giveBack(_ unit: UnsafeMutableRawPointer) {
    let index = (unit - base!) / Segment.byteCount
    word(index / 64).pointee.bitwiseOr(UInt64(1) << UInt64(index % 64), ordering: .releasing)
  }
}
