// SwallocStatistics and SwallocOptions: Swalloc's figures and settings as Swift values.
import CShim

/// A snapshot of an allocator state's statistics: the same figures `SWALLOC_SHOW_STATS` prints.
///
/// Two states can exist in a Swift process: libswalloc.so's, when it is the process allocator
/// (``process``), and the Swift API's own, which holds every ``SwallocHeap`` (``heaps``).
public struct SwallocStatistics: Sendable, Equatable {
  /// Allocations that returned memory.
  public var allocationCount = 0
  /// Blocks given back (allocations minus live blocks).
  public var freeCount = 0
  /// Bytes in live blocks, in whole blocks (usable sizes). Blocks freed by other threads count as live until
  /// their page's owner collects them.
  public var liveByteCount = 0
  /// Peak of the bytes in pages in use plus huge blocks.
  public var peakByteCount = 0
  /// Bytes mapped from the kernel and not unmapped yet.
  public var mappedByteCount = 0
  /// The process's resident set size.
  public var residentByteCount = 0
  /// Bytes given back to the kernel with `MADV_DONTNEED` so far.
  public var purgedByteCount = 0
  /// Live blocks above 512 KiB (each in its own span).
  public var hugeBlockCount = 0
  /// Bytes in live huge blocks.
  public var hugeByteCount = 0
  /// Segments and huge spans mapped fresh from the kernel.
  public var freshSpanCount = 0
  /// Segments and huge spans taken from the span cache instead of the kernel.
  public var reusedSpanCount = 0
  /// Heaps created (thread heaps; for ``heaps``, user heaps too): destroyed and exited ones are reused.
  public var heapCount = 0
  /// Frees of pointers the allocator does not own, or of blocks not in use: reported and ignored.
  public var invalidFreeCount = 0
  /// Spans mapped on explicit huge pages.
  public var hugePageSpanCount = 0
  /// Times explicit huge pages were asked for and normal pages used.
  public var hugePageFallbackCount = 0
  /// Bytes of the huge-page reserve (`SWALLOC_HUGE_RESERVE`).
  public var hugeReserveByteCount = 0
  /// Bytes mapped with `MAP_LOCKED`.
  public var lockedByteCount = 0
  /// Times locking was refused (`RLIMIT_MEMLOCK`) and memory left unlocked.
  public var lockedFallbackCount = 0

  /// The process allocator's statistics when it is libswalloc.so (preloaded or linked), else nil.
  public static var process: SwallocStatistics? {
    guard let get = ProcessAllocator.getStatistics else { return nil }
    var raw = swalloc_statistics()
    get(&raw)
    return SwallocStatistics(raw)
  }

  /// The statistics of the Swift API's own allocator state: every ``SwallocHeap``, live and destroyed.
  public static var heaps: SwallocStatistics {
    SwallocStatistics(Statistics.snapshot())
  }

  init(_ s: StatisticsSnapshot) {
    allocationCount = s.allocationCount
    freeCount = s.freeCount
    liveByteCount = s.liveByteCount
    peakByteCount = s.peakByteCount
    mappedByteCount = s.mappedByteCount
    residentByteCount = s.residentByteCount
    purgedByteCount = s.purgedByteCount
    hugeBlockCount = s.hugeLiveCount
    hugeByteCount = s.hugeLiveByteCount
    freshSpanCount = s.freshSpanCount
    reusedSpanCount = s.reusedSpanCount
    heapCount = s.heapCount
    invalidFreeCount = s.invalidFreeCount
    hugePageSpanCount = s.hugePageSpanCount
    hugePageFallbackCount = s.hugePageFallbackCount
    hugeReserveByteCount = s.hugeReserveByteCount
    lockedByteCount = s.lockedByteCount
    lockedFallbackCount = s.lockedFallbackCount
  }

  init(_ raw: swalloc_statistics) {
    allocationCount = Int(raw.allocations)
    freeCount = Int(raw.frees)
    liveByteCount = Int(raw.live_bytes)
    peakByteCount = Int(raw.peak_bytes)
    mappedByteCount = Int(raw.mapped_bytes)
    residentByteCount = Int(raw.resident_bytes)
    purgedByteCount = Int(raw.purged_bytes)
    hugeBlockCount = Int(raw.huge_live_blocks)
    hugeByteCount = Int(raw.huge_live_bytes)
    freshSpanCount = Int(raw.spans_mapped)
    reusedSpanCount = Int(raw.spans_reused)
    heapCount = Int(raw.heaps)
    invalidFreeCount = Int(raw.invalid_frees)
    hugePageSpanCount = Int(raw.huge_page_spans)
    hugePageFallbackCount = Int(raw.huge_page_fallbacks)
    hugeReserveByteCount = Int(raw.huge_reserve_bytes)
    lockedByteCount = Int(raw.locked_bytes)
    lockedFallbackCount = Int(raw.locked_fallbacks)
  }
}

/// The active `SWALLOC_*` options, as read from the environment at start-up (the same reading
/// libswalloc.so makes; a malformed value falls back to its default with one warning).
public struct SwallocOptions: Sendable, Equatable {
  /// `SWALLOC_SHOW_STATS`: what libswalloc.so prints at exit.
  public enum StatisticsOutput: Sendable, Equatable {
    /// Nothing (`0`, the default).
    case off
    /// A table on stderr (`1`).
    case table
    /// One JSON object on stderr (`json`).
    case json
  }

  /// `SWALLOC_HUGE_PAGES`.
  public enum HugePages: Sendable, Equatable {
    /// Normal pages (the default).
    case off
    /// `madvise(MADV_HUGEPAGE)` on the spans of huge blocks of 2 MiB and more only.
    case large
    /// `madvise(MADV_HUGEPAGE)` on segments and huge spans.
    case transparent
    /// `MAP_HUGETLB` pages from the kernel's pool, normal pages when it is empty.
    case explicit
  }

  /// `SWALLOC_SHOW_STATS`: what libswalloc.so prints at exit.
  public var showStatistics: StatisticsOutput
  /// `SWALLOC_VERBOSE`: notes (fallbacks, invalid frees) on stderr.
  public var verbose: Bool
  /// `SWALLOC_PURGE_DELAY_MS`: the shortest time a free page keeps its memory before it goes back to the
  /// kernel.
  public var purgeDelayMilliseconds: Int
  /// `SWALLOC_PURGE_DELAY_MAX_MS`: the longest that time grows to when purged memory is soon wanted back.
  public var purgeDelayMaxMilliseconds: Int
  /// `SWALLOC_HUGE_PAGES`: which pages back segments and huge spans.
  public var hugePages: HugePages
  /// `SWALLOC_HUGE_RESERVE`: bytes of explicit huge pages taken at start-up.
  public var hugeReserveByteCount: Int
  /// `SWALLOC_LOCKED`: segments mapped with `MAP_LOCKED`.
  public var locked: Bool
  /// `SWALLOC_SECURE`: encoded free lists, aborting double and invalid frees, guard pages, random block order.
  public var secure: Bool

  static var hugePages: HugePages {
    switch Options.hugePages {
    case .off: return .off
    case .large: return .large
    case .transparent: return .transparent
    case .explicit: return .explicit
    }
  }

  /// The options in effect.
  public static var current: SwallocOptions {
    Options.initializeIfNeeded()
    return SwallocOptions(
      showStatistics: Options.showStatistics == .off ? .off : Options.showStatistics == .json ? .json : .table,
      verbose: Options.verbose,
      purgeDelayMilliseconds: Options.purgeDelayMs,
      purgeDelayMaxMilliseconds: Options.purgeDelayMaxMs,
      hugePages: hugePages,
      hugeReserveByteCount: Options.hugeReserveByteCount,
      locked: Options.locked,
      secure: Options.secure)
  }
}
