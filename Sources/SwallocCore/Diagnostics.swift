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
  /// Double frees that a check saw (Page+DoubleFree.swift); also counted in `invalidFreeCount`.
  static let doubleFreeCount = Atomic<Int>(0)
  /// Double frees reported on stderr without SWALLOC_VERBOSE; later ones are counted only.
  static let doubleFreeReportLimit = 10

  /// Where a double free was seen.
  enum DoubleFreeWitness {
    /// At the second free itself: the block carries its freed marker, or is the head of its page's local or
    /// free list, or of its thread-free list. That free is ignored.
    case atFree
    /// A realloc of a freed block (it carries its freed marker): the block stays free; realloc returns a new
    /// block with a copy of what the freed one holds.
    case atRealloc
    /// Later, in the page's lists (a cycle, or a wrong count when the page empties). The page's free blocks
    /// are set aside: none can be handed out twice.
    case inPageLists
  }

  /// A one-line note on stderr under SWALLOC_VERBOSE (fallbacks and the like; always counted elsewhere).
  static func note(_ message: StaticString) {
    if !Options.verbose { return }
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: ")
      writer.text(message)
      writer.byte(10)
    }
  }

  /// A block freed twice. Always reported on stderr (the first `doubleFreeReportLimit`, every one under
  /// SWALLOC_VERBOSE), like glibc's "free(): double free detected", which aborts; here the program goes on,
  /// and nothing is corrupted. `block` is the block freed twice, or (`inPageLists`, when the lists do not
  /// say which) a block of the page.
  static func doubleFree(_ block: UnsafeMutableRawPointer, witness: DoubleFreeWitness, identified: Bool = true) {
    invalidFreeCount.wrappingAdd(1, ordering: .relaxed)
    guard let number = reportNumber(doubleFreeCount) else { return }
    ErrorWriter.withWriter { writer in
      switch witness {
      case .atFree:
        writer.text("swalloc: free(")
        writer.hexadecimal(UInt(bitPattern: block))
        writer.text("): double free detected; ignored\n")
      case .atRealloc:
        writer.text("swalloc: realloc(")
        writer.hexadecimal(UInt(bitPattern: block))
        writer.text("): freed block; it stays free, a new block gets its contents\n")
      case .inPageLists:
        writer.text(identified ? "swalloc: double free of " : "swalloc: double free detected in the page of ")
        writer.hexadecimal(UInt(bitPattern: block))
        writer.text(identified ? " detected" : "")
        writer.text(" (the free list of its page is corrupted); the page's free blocks are set aside\n")
      }
      noteLimitReached(&writer, number: number, kind: "double frees")
    }
  }

  /// The number of a report of a kind that `counter` counts and `doubleFreeReportLimit` limits (double frees,
  /// frees of pointers into blocks), or nil past the limit without SWALLOC_VERBOSE.
  static func reportNumber(_ counter: borrowing Atomic<Int>) -> Int? {
    let number = counter.wrappingAdd(1, ordering: .relaxed).newValue
    return number > doubleFreeReportLimit && !Options.verbose ? nil : number
  }

  /// After the last report such a kind gets (`number` at the limit, without SWALLOC_VERBOSE), the line that
  /// says the rest are counted.
  static func noteLimitReached(_ writer: inout ErrorWriter, number: Int, kind: StaticString) {
    if number != doubleFreeReportLimit || Options.verbose { return }
    writer.text("swalloc: further ")
    writer.text(kind)
    writer.text(" are counted, not reported (SWALLOC_VERBOSE=1 reports them)\n")
  }

  /// Frees of a pointer into a block, reported on stderr without SWALLOC_VERBOSE (the first
  /// `doubleFreeReportLimit`).
  static let interiorFreeCount = Atomic<Int>(0)

  /// A free() that Swalloc cannot honour. The block is left alone (never corrupts memory); the event is
  /// counted, and reported on stderr under SWALLOC_VERBOSE. A pointer into a block is always reported (the
  /// first `doubleFreeReportLimit`), as a double free is: glibc usually aborts on one ("free(): invalid
  /// pointer"), and it is the program's bug, where a foreign pointer may be another allocator's.
  static func invalidFree(_ block: UnsafeMutableRawPointer, reason: InvalidFreeReason) {
    invalidFreeCount.wrappingAdd(1, ordering: .relaxed)
    var number = 0
    if reason == .interior {
      guard let counted = reportNumber(interiorFreeCount) else { return }
      number = counted
    } else if !Options.verbose {
      return
    }
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: free(")
      writer.hexadecimal(UInt(bitPattern: block))
      switch reason {
      case .foreign: writer.text("): pointer not allocated by swalloc; ignored\n")
      case .pageNotInUse: writer.text("): double free or stale pointer; ignored\n")
      case .interior: writer.text("): pointer into the middle of a block; ignored\n")
      }
      noteLimitReached(&writer, number: number, kind: "frees of pointers into blocks")
    }
  }
}
