// Diagnostics: messages on standard error, formatted in a stack buffer and written with write(2):
// nothing here allocates, so it is safe inside malloc.
import CShim
import Synchronization

/// Builds one or more lines in a caller-provided buffer and writes them to standard error.
struct ErrorWriter {
  let buffer: UnsafeMutableRawPointer
  let capacity: Int
  var count = 0

  /// Runs `body` with a writer over a 1 KiB stack buffer, then writes what it built.
  static func withWriter(_ body: (inout ErrorWriter) -> Void) {
    withUnsafeTemporaryAllocation(byteCount: 1024, alignment: 16) { raw in
      var writer = ErrorWriter(buffer: raw.baseAddress!, capacity: 1024)
      body(&writer)
      writer.flush()
    }
  }

  mutating func flush() {
    if count > 0 { OSMemory.writeStandardError(buffer, byteCount: count) }
    count = 0
  }

  mutating func byte(_ value: UInt8) {
    if count == capacity { flush() }
    buffer.storeBytes(of: value, toByteOffset: count, as: UInt8.self)
    count &+= 1
  }

  mutating func text(_ string: StaticString) {
    let start = string.utf8Start
    for index in 0..<string.utf8CodeUnitCount { byte(start[index]) }
  }

  /// Writes a NUL-terminated C string (at most `limit` bytes).
  mutating func cString(_ string: UnsafePointer<CChar>, limit: Int = 200) {
    var index = 0
    while index < limit && string[index] != 0 {
      byte(UInt8(bitPattern: string[index]))
      index &+= 1
    }
  }

  /// Writes `value` in decimal, right-aligned in `width` columns.
  mutating func decimal(_ value: Int, width: Int = 0) {
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: enough for 20 digits and a sign
    var length = 0
    withUnsafeMutableBytes(of: &digits) { scratch in
      var magnitude = value.magnitude
      repeat {
        scratch[23 - length] = UInt8(48 + magnitude % 10)
        magnitude /= 10
        length += 1
      } while magnitude != 0
      if value < 0 {
        scratch[23 - length] = 45  // "-"
        length += 1
      }
    }
    if width > length { for _ in 0..<(width - length) { byte(32) } }
    withUnsafeBytes(of: &digits) { scratch in
      for index in (24 - length)..<24 { byte(scratch[index]) }
    }
  }

  mutating func hexadecimal(_ value: UInt) {
    text("0x")
    var started = false
    var shift = 60
    while shift >= 0 {
      let nibble = UInt8((value &>> UInt(shift)) & 0xF)
      if nibble != 0 || started || shift == 0 {
        started = true
        byte(nibble < 10 ? 48 + nibble : 87 + nibble)
      }
      shift -= 4
    }
  }
}

enum Diagnostics {
  enum InvalidFreeReason {
    /// The address is not in any Swalloc segment (another allocator's, or garbage).
    case foreign
    /// The page the address points into holds no blocks: a double free, or a stale pointer.
    case pageNotInUse
    /// The address is inside a block but not at its start.
    case interior
  }

  static let invalidFreeCount = Atomic<Int>(0)

  /// A one-line note on stderr under SWALLOC_VERBOSE (fallbacks and the like; always counted elsewhere).
  static func note(_ message: StaticString) {
    if !Options.verbose { return }
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: ")
      writer.text(message)
      writer.byte(10)
    }
  }

  /// A free() that Swalloc cannot honour. The block is left alone (never corrupts memory); the event is
  /// counted, and reported on stderr under SWALLOC_VERBOSE.
  static func invalidFree(_ block: UnsafeMutableRawPointer, reason: InvalidFreeReason) {
    invalidFreeCount.wrappingAdd(1, ordering: .relaxed)
    if !Options.verbose { return }
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: free(")
      writer.hexadecimal(UInt(bitPattern: block))
      switch reason {
      case .foreign: writer.text("): pointer not allocated by swalloc; ignored\n")
      case .pageNotInUse: writer.text("): double free or stale pointer; ignored\n")
      case .interior: writer.text("): pointer into the middle of a block; ignored\n")
      }
    }
  }
}
