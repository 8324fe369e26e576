// Options: SWALLOC_* environment variables, read once by walking `environ` (getenv-style helpers that copy
// are off limits inside malloc). A malformed value gets one warning naming the accepted values; the default
// applies.
import CShim

enum StatisticsOutput: UInt8 {
  case off = 0
  case table = 1
  case json = 2
}

enum HugePageMode: UInt8 {
  /// Normal 4 KiB pages (the kernel may still use transparent huge pages if its policy is `always`).
  case off = 0
  /// `madvise(MADV_HUGEPAGE)` on segments and huge spans; purging keeps whole 2 MiB pages.
  case transparent = 1
  /// `mmap(MAP_HUGETLB)`: explicit 2 MiB pages from the kernel's pool (`/proc/sys/vm/nr_hugepages`), never
  /// purged; normal pages when the pool is empty.
  case explicit = 2
}

enum Options {
  nonisolated(unsafe) static var isInitialized = false
  /// SWALLOC_SHOW_STATS: 0 (default), 1 (a table on stderr at exit), json.
  nonisolated(unsafe) static var showStatistics = StatisticsOutput.off
  /// SWALLOC_VERBOSE: 0 (default) or 1: report invalid frees and fallbacks on stderr.
  nonisolated(unsafe) static var verbose = false
  /// SWALLOC_PURGE_DELAY_MS: how long a free page keeps its memory before MADV_DONTNEED (default 10).
  nonisolated(unsafe) static var purgeDelayMs = 10
  /// SWALLOC_HUGE_PAGES: off (default), transparent, explicit.
  nonisolated(unsafe) static var hugePages = HugePageMode.off
  /// SWALLOC_HUGE_RESERVE: bytes of explicit huge pages mapped at start for segments (default 0).
  nonisolated(unsafe) static var hugeReserveByteCount = 0
  /// SWALLOC_LOCKED: 0 (default) or 1: map memory with MAP_LOCKED (never swapped out, never purged).
  nonisolated(unsafe) static var locked = false

  /// Reads the environment the first time it is called with one. Racing threads read the same values.
  /// The first allocations can come before libc has set `environ` (the loader allocates early): those leave
  /// the options for a later call, at the latest the library constructor.
  static func initializeIfNeeded() {
    if isInitialized { return }
    guard let environment = swalloc_environ() else { return }
    isInitialized = true
    var index = 0
    while let entry = environment[index] {
      index &+= 1
      if let value = match(entry, "SWALLOC_SHOW_STATS=") {
        if equals(value, "0") || equals(value, "") {
          showStatistics = .off
        } else if equals(value, "1") {
          showStatistics = .table
        } else if equals(value, "json") {
          showStatistics = .json
        } else {
          warn(entry, accepted: "0, 1, json")
        }
        if showStatistics != .off { OSMemory.keepStandardError() }
      } else if let value = match(entry, "SWALLOC_VERBOSE=") {
        if equals(value, "0") || equals(value, "") {
          verbose = false
        } else if equals(value, "1") {
          verbose = true
        } else {
          warn(entry, accepted: "0, 1")
        }
      } else if let value = match(entry, "SWALLOC_PURGE_DELAY_MS=") {
        if let milliseconds = parseInteger(value), milliseconds <= 3_600_000 {
          purgeDelayMs = milliseconds
        } else {
          warn(entry, accepted: "a number of milliseconds from 0 to 3600000")
        }
      } else if let value = match(entry, "SWALLOC_HUGE_PAGES=") {
        if equals(value, "off") || equals(value, "0") || equals(value, "") {
          hugePages = .off
        } else if equals(value, "transparent") {
          hugePages = .transparent
        } else if equals(value, "explicit") {
          hugePages = .explicit
        } else {
          warn(entry, accepted: "off, transparent, explicit")
        }
      } else if let value = match(entry, "SWALLOC_HUGE_RESERVE=") {
        if let byteCount = parseByteCount(value), byteCount <= HugeReserve.maximumByteCount {
          hugeReserveByteCount = byteCount
        } else {
          warn(entry, accepted: "a size in bytes up to 4G, with an optional K, M or G suffix (64M)")
        }
      } else if let value = match(entry, "SWALLOC_LOCKED=") {
        if equals(value, "0") || equals(value, "") {
          locked = false
        } else if equals(value, "1") {
          locked = true
        } else {
          warn(entry, accepted: "0, 1")
        }
      } else if match(entry, "SWALLOC_") != nil && !isKnown(entry) {
        warnUnknown(entry)
      }
    }
    if hugeReserveByteCount > 0 {
      if hugePages == .explicit {
        HugeReserve.initialize()
      } else {
        Diagnostics.note("SWALLOC_HUGE_RESERVE applies only with SWALLOC_HUGE_PAGES=explicit; ignored")
      }
    }
  }

  /// If `entry` starts with `prefix`, the rest of it.
  static func match(_ entry: UnsafeMutablePointer<CChar>, _ prefix: StaticString) -> UnsafeMutablePointer<CChar>? {
    let bytes = prefix.utf8Start
    for index in 0..<prefix.utf8CodeUnitCount where UInt8(bitPattern: entry[index]) != bytes[index] {
      return nil
    }
    return entry + prefix.utf8CodeUnitCount
  }

  static func equals(_ value: UnsafeMutablePointer<CChar>, _ expected: StaticString) -> Bool {
    guard let rest = match(value, expected) else { return false }
    return rest.pointee == 0
  }

  /// The decimal digits at the start of `value`: their number, and how many characters they take; nil when
  /// there are none or they overflow.
  static func leadingDecimal(_ value: UnsafeMutablePointer<CChar>) -> (value: Int, length: Int)? {
    var result = 0
    var length = 0
    while value[length] >= 48 && value[length] <= 57 {
      if result > (Int.max - 9) / 10 { return nil }
      result = result * 10 + Int(value[length]) - 48
      length &+= 1
    }
    return length == 0 ? nil : (result, length)
  }

  /// A non-negative decimal integer, or nil.
  static func parseInteger(_ value: UnsafeMutablePointer<CChar>) -> Int? {
    guard let (result, length) = leadingDecimal(value), value[length] == 0 else { return nil }
    return result
  }

  /// A byte count: decimal digits with an optional K, M or G suffix (powers of 1024), or nil.
  static func parseByteCount(_ value: UnsafeMutablePointer<CChar>) -> Int? {
    guard let (result, length) = leadingDecimal(value) else { return nil }
    var shift = 0
    if value[length] != 0 {
      switch UInt8(bitPattern: value[length]) | 0x20 {  // lower case
      case 107: shift = 10  // k
      case 109: shift = 20  // m
      case 103: shift = 30  // g
      default: return nil
      }
      if value[length + 1] != 0 { return nil }
    }
    return result <= Int.max >> shift ? result << shift : nil
  }

  /// The options this version knows (a misspelt SWALLOC_ variable gets a warning).
  static func isKnown(_ entry: UnsafeMutablePointer<CChar>) -> Bool {
    match(entry, "SWALLOC_SECURE=") != nil
  }

  static func warnUnknown(_ entry: UnsafeMutablePointer<CChar>) {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: warning: ignoring unknown option ")
      writer.cString(entry)
      writer.text(" (known: SWALLOC_SHOW_STATS, SWALLOC_VERBOSE, SWALLOC_PURGE_DELAY_MS, SWALLOC_HUGE_PAGES, ")
      writer.text("SWALLOC_HUGE_RESERVE, SWALLOC_LOCKED)\n")
    }
  }

  static func warn(_ entry: UnsafeMutablePointer<CChar>, accepted: StaticString) {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: warning: ignoring malformed ")
      writer.cString(entry)
      writer.text(" (accepted values: ")
      writer.text(accepted)
      writer.text("); using the default\n")
    }
  }
}
