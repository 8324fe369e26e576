// SizeClass: request size -> size class -> block size, by arithmetic (no tables on the fast path).
//
// Classes 1...8 are 16-byte steps (16 ... 128 bytes): every block is 16-byte aligned. Above 128 bytes there are
// four classes per power of two (160, 192, 224, 256, 320, ...), so the rounding loss of a request above 64 bytes
// is under 20 % (129 -> 160 loses 31/160). Below 64 bytes the 16-byte alignment dominates (17 -> 32).

/// Size-class arithmetic and the limits of each page kind.
enum SizeClass {
  /// Largest request served from the heap's direct slots (one slot per 16-byte granule).
  static let directMaxByteCount = 1024
  /// Largest block served from small pages (64 KiB).
  static let smallMaxByteCount = 8 * 1024
  /// Largest block served from medium pages (512 KiB).
  static let mediumMaxByteCount = 64 * 1024
  /// Largest block served from large pages (one per 4 MiB segment). Above this, a request is a huge span.
  static let largeMaxByteCount = 512 * 1024

  /// Number of classes including the unused class 0.
  static let count = 57
  static let smallMaxClass = 32   // 8 KiB
  static let mediumMaxClass = 44  // 64 KiB
  static let largeMaxClass = 56   // 512 KiB

  /// The class of a request of `byteCount` bytes, 0 < byteCount <= largeMaxByteCount (0 maps to class 1).
  @inline(__always)
  static func of(byteCount: Int) -> Int {
    let n = UInt(bitPattern: byteCount)
    if n <= 128 {
      // Wrapping is safe: n <= 128. max(.., 1) makes malloc(0) a 16-byte block.
      return Int(bitPattern: (n &+ 15) &>> 4) | (n == 0 ? 1 : 0)
    }
    let m = n &- 1
    let bit = UInt(63 &- m.leadingZeroBitCount)            // 7 ... 18 for 129 ... 512 KiB
    let sub = (m &>> (bit &- 2)) & 3
    return Int(bitPattern: 9 &+ (bit &- 7) &* 4 &+ sub)
  }

  /// The block size of class `sizeClass` (1 ..< count).
  @inline(__always)
  static func blockByteCount(_ sizeClass: Int) -> Int {
    if sizeClass <= 8 { return sizeClass &* 16 }
    let k = sizeClass &- 9
    let bit = 7 &+ (k &>> 2)
    return (1 &<< bit) &+ ((k & 3) &+ 1) &* (1 &<< (bit &- 2))
  }

  /// The page kind that holds blocks of class `sizeClass`.
  @inline(__always)
  static func pageKind(_ sizeClass: Int) -> SegmentKind {
    if sizeClass <= smallMaxClass { return .small }
    if sizeClass <= mediumMaxClass { return .medium }
    return .large
  }

  /// The smallest class that holds `byteCount` bytes and whose blocks are all `alignment`-aligned
  /// (the block size is a multiple of the alignment, and page starts are aligned to at least 64 KiB / 16 KiB).
  /// Returns 0 when no class qualifies (the request must be a huge span).
  static func of(byteCount: Int, alignment: Int) -> Int {
    if byteCount > largeMaxByteCount || alignment > maxPageAlignment { return 0 }
    var sizeClass = of(byteCount: Swift.max(byteCount, alignment))
    while sizeClass < count {
      let blockByteCount = blockByteCount(sizeClass)
      if blockByteCount & (alignment &- 1) == 0 {
        // Small pages start 16 KiB-aligned (page 0) or 64 KiB-aligned; medium and large ones 64 KiB-aligned.
        if sizeClass > smallMaxClass || alignment <= 16 * 1024 { return sizeClass }
      }
      sizeClass &+= 1
    }
    return 0
  }

  /// Largest alignment a page-backed block can have.
  static let maxPageAlignment = 64 * 1024
}
