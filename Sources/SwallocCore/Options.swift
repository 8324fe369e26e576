// Options: SWALLOC_* environment variables, read once by walking `environ` (getenv-style helpers that copy
// are off limits inside malloc). A malformed value gets one warning naming the accepted values; the default
// applies.
import CShim

public enum StatisticsOutput: UInt8 {
  case off = 0
  case table = 1
  case json = 2
}

enum Options {
  nonisolated(unsafe) static var isInitialized = false
  /// SWALLOC_SHOW_STATS: 0 (default), 1 (a table on stderr at exit), json.
  nonisolated(unsafe) static var showStatistics = StatisticsOutput.off
  /// SWALLOC_VERBOSE: 0 (default) or 1: report invalid frees and fallbacks on stderr.
  nonisolated(unsafe) static var verbose = false
  /// SWALLOC_PURGE_DELAY_MS: how long a free page keeps its memory before MADV_DONTNEED (default 10).
  nonisolated(unsafe) static var purgeDelayMs = 10

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

  /// A non-negative decimal integer, or nil.
  static func parseInteger(_ value: UnsafeMutablePointer<CChar>) -> Int? {
    var result = 0
    var index = 0
    while value[index] != 0 {
      let digit = Int(value[index]) - 48
      if digit < 0 || digit > 9 || result > (Int.max - 9) / 10 { return nil }
      result = result * 10 + digit
      index &+= 1
    }
    return index == 0 ? nil : result
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
