// SecureCanary: SWALLOC_SECURE=full's per-block checks of overflows, underflows and writes after free (issue
// 15, part 2), kept to a few instructions each on malloc's and free's fast paths. They are a level of their
// own: SWALLOC_SECURE=1 has none of them (its malloc and free are separate entry points, compiled without
// them: Exports.c, Secure.malloc(_:full:)), and its slow paths test `Options.secureFull`. Every page block
// handed out at full (blocks up to 512 KiB; huge blocks have guard pages instead) sits in a size class chosen for the
// requested size plus 8 bytes, and carries:
//
// - a trailer in its last 8 bytes: the requested size n xored with a keyed word of the block's address (the
//   mask). It decodes only to a size that fits the block: a change to its upper five bytes, or a trailer
//   copied from another block, fails to decode; a change to its low bytes decodes to another size, whose
//   canary check then fails (the canary sits elsewhere);
// - a canary: the mask with its low bit set, 8 bytes stored (unaligned) right after the requested size, the
//   trailer stored after it (so fewer canary bytes remain when the trailer starts sooner). The first byte is
//   never zero, so a string's terminating zero written one past the end is caught.
//
// `free` (and `realloc`) check both, so any overflow that starts at the end of the requested size (one byte,
// or a memcpy of 32 more), or that reaches the end of the block, aborts with the block named. The previous
// block's last word is checked too when the calling thread frees a block of its own page: an underflow of
// this block (or an overflow of that one) aborts. `malloc_usable_size` returns n: the program may write all
// of what it is told it has, and nothing of the canary.
//
// Freed blocks keep the encoded link in their first word and the freed marker in their second; a freed
// small or medium block (up to 64 KiB) gets a keyed non-zero fill byte over the rest, except its last word,
// which gets zero. malloc checks all of it when it hands the block out again: a write after free anywhere in
// the block, a zero included, aborts with its offset (hardened_malloc checks its zeroed freed blocks the
// same way). Fill and check are inline word loops up to 256 bytes, libc's memset and memcmp beyond. Large blocks (80 KiB to 512 KiB)
// are wholly inaccessible while they are free, or when that fails get the fill in their first and last 4 KiB
// with their middle inaccessible (SecureLargeBlocks.swift). The zero last word also serves C++: it reads the
// element count of an array deleted with delete[] from the 8 bytes before it, so a delete[] of an object
// from new finds a count of zero when the block before it is free (and reaches the sized delete's check)
// instead of running destructors over a count read from a fill. Blocks carved but never handed out carry a
// "fresh" marker instead of the freed one and a zero last word, and no fill (nothing wrote into them).
import CShim
import Synchronization

extension Secure {
  /// The key of trailers and canaries (independent of the link and marker keys).
  static let canaryKeyWord = Atomic<UInt>(0)
  /// The fill byte of freed blocks, repeated to a word: random, never zero (a zero written is caught).
  static let fillWordStorage = Atomic<UInt>(0)

  /// Bytes every secure page block keeps after the requested size (the trailer).
  static let trailerByteCount = 8
  static func initializeCanaries(seed: UInt) {
    _ = canaryKeyWord.compareExchange(expected: 0, desired: mix(seed ^ 0x6A09_E667_F3BC_C908), ordering: .relaxed)
    var byte = mix(seed ^ 0x3C6E_F372_FE94_F82B) & 0xFF
    if byte == 0 { byte = 0xA5 }
    _ = fillWordStorage.compareExchange(expected: 0, desired: byte &* 0x0101_0101_0101_0101, ordering: .relaxed)
  }

  @inline(__always)
  static var fillWord: UInt { fillWordStorage.load(ordering: .relaxed) }

  /// The keyed word of the block at `address` that its trailer is xored with.
  @inline(__always)
  static func trailerMask(_ address: UInt) -> UInt {
    canaryKeyWord.load(ordering: .relaxed) ^ rotated(address)
  }

  /// The canary of the block whose trailer mask is `mask`: its first byte is never zero.
  @inline(__always)
  static func canary(_ mask: UInt) -> UInt { mask | 1 }

  /// The marker of a block carved and never handed out (word 8, as the freed marker).
  @inline(__always)
  static func freshMarker(_ block: UInt) -> UInt { block ^ markerKey ^ 2 }

  /// SWALLOC_SECURE=full: whether `block`, whose word 8 holds `word`, is a block boundary carved and never
  /// handed out: the fresh marker, and a last word that decodes to no size (a 16-byte block's trailer is its
  /// word 8: a live one's decodes).
  static func isFresh(_ block: UnsafeMutableRawPointer, word: UInt, blockByteCount: Int) -> Bool {
    word == freshMarker(UInt(bitPattern: block))
      && decodedSize(block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self), UInt(bitPattern: block),
                     blockByteCount: blockByteCount) < 0
  }

  // MARK: sealing

  /// Writes the canary after `byteCount` (at most `blockByteCount - 8`) bytes of `block`, then the trailer
  /// that records `byteCount`. The trailer word changes in one store, from one valid trailer (or zero) to the
  /// next: the previous-block check of a free on the page owner's thread may read it while another thread's
  /// realloc reseals the block in place. So a canary with fewer than 8 bytes of room before the trailer is
  /// written byte by byte, never over it.
  @inline(__always)
  static func seal(_ block: UnsafeMutableRawPointer, byteCount: Int, blockByteCount: Int) {
    let mask = trailerMask(UInt(bitPattern: block))
    let trailerOffset = blockByteCount &- 8
    if byteCount &+ 8 <= trailerOffset {
      block.storeBytes(of: canary(mask), toByteOffset: byteCount, as: UInt.self)
    } else {
      sealShortCanary(block, byteCount: byteCount, trailerOffset: trailerOffset, canary: canary(mask))
    }
    block.storeBytes(of: mask ^ UInt(bitPattern: byteCount), toByteOffset: trailerOffset, as: UInt.self)
  }

  /// The canary's bytes from `byteCount` up to the trailer (fewer than 8), one at a time.
  @inline(never)
  static func sealShortCanary(_ block: UnsafeMutableRawPointer, byteCount: Int, trailerOffset: Int, canary: UInt) {
    var offset = byteCount
    var bytes = canary
    while offset < trailerOffset {
      block.storeBytes(of: UInt8(truncatingIfNeeded: bytes), toByteOffset: offset, as: UInt8.self)
      bytes &>>= 8
      offset &+= 1
    }
  }

  /// The requested size recorded in a trailer word, or -1 when the word is not a valid trailer of `block`
  /// (overwritten).
  @inline(__always)
  static func decodedSize(_ trailer: UInt, _ block: UInt, blockByteCount: Int) -> Int {
    let size = trailer ^ trailerMask(block)
    return size > UInt(bitPattern: blockByteCount &- trailerByteCount) ? -1 : Int(bitPattern: size)
  }

  /// Checks the trailer and the canary of a live block; aborts when either was overwritten.
  @inline(__always)
  static func checkSeal(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    let mask = trailerMask(UInt(bitPattern: block))
    let room = UInt(bitPattern: blockByteCount &- trailerByteCount)
    let size = block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self) ^ mask
    if size > room { sealBroken(block, blockByteCount: blockByteCount, byteCount: -1) }
    let differs = block.loadUnaligned(fromByteOffset: Int(bitPattern: size), as: UInt.self) ^ canary(mask)
    // Fewer than 8 bytes before the trailer: only those are the canary's (none when the size fills the room).
    let slack = room &- size
    if differs != 0 && (slack >= 8 || differs & ((1 &<< (slack &* 8)) &- 1) != 0) {
      sealBroken(block, blockByteCount: blockByteCount, byteCount: Int(bitPattern: size))
    }
  }

  /// The requested size of a live secure page block (its usable size), or `blockByteCount - 8` when its
  /// trailer does not decode (the block was freed, or overwritten: free reports that).
  static func requestedSize(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> Int {
    let trailer = block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self)
    let size = decodedSize(trailer, UInt(bitPattern: block), blockByteCount: blockByteCount)
    return size < 0 ? blockByteCount &- trailerByteCount : size
  }

  /// The free of a block of the calling thread's own page: checks the end of the block before it (if
  /// any), whose trailer an underflow of `block` overwrites. Its last word is a valid trailer (live), zero
  /// (freed, or carved and never handed out: `extend` writes it), or, in 16-byte blocks, the freed or
  /// fresh marker. Only the page's owner carves and hands out blocks, so no malloc races this read; a
  /// concurrent remote free only moves the word from one accepted value to another.
  @inline(__always)
  static func checkPrevious(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    if previousLooksIntact(block, blockByteCount: blockByteCount) { return }
    failCorruption(.underflow, block: block, other: block - blockByteCount, blockByteCount: blockByteCount,
                   offset: -1)
  }

  /// Whether the last word of the block before `block` (not the first of its page) is one it may hold.
  @inline(__always)
  static func previousLooksIntact(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> Bool {
    let previous = UInt(bitPattern: block) &- UInt(bitPattern: blockByteCount)
    let last = block.load(fromByteOffset: -8, as: UInt.self)
    return last == 0 || last ^ trailerMask(previous) <= UInt(bitPattern: blockByteCount &- trailerByteCount)
      || (last ^ previous ^ markerKey) & ~2 == 0
  }

  // MARK: fill

  /// Blocks up to this size (the small and medium classes) get the fill over all of their bytes after the
  /// link and the marker; larger ones (the large classes, 80 KiB to 512 KiB) over their first and last
  /// 4 KiB, the rest being made inaccessible while they are free (SecureLargeBlocks.swift).
  static let wholeFillMaxByteCount = SizeClass.mediumMaxByteCount

  /// Blocks up to this size are filled and checked by inline word loops; larger ones by libc's memset and
  /// memcmp, whose vector loops cost fewer instructions per byte than the call costs here (churn-lifo at
  /// SWALLOC_SECURE=full: 3.4x the default mode's instructions with inline loops only).
  static let inlineFillMaxByteCount = 256

  /// Fills a block being freed: the fill word over bytes 16 to `blockByteCount - 8`, zero in its last word
  /// (large blocks: `fillLarge`).
  @inline(__always)
  static func fill(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    if blockByteCount <= 16 { return }
    if blockByteCount > wholeFillMaxByteCount { return fillLarge(block, blockByteCount: blockByteCount) }
    let fill = fillWord
    if blockByteCount > inlineFillMaxByteCount {
      fillRange(block, from: 16, to: blockByteCount &- 8)
      block.storeBytes(of: 0, toByteOffset: blockByteCount &- 8, as: UInt.self)
      return
    }
    // 16 bytes a step up to the last 16 (blocks are multiples of 16 bytes), then the word before the last.
    let end = blockByteCount &- 16
    var offset = 16
    while offset < end {
      block.storeBytes(of: fill, toByteOffset: offset, as: UInt.self)
      block.storeBytes(of: fill, toByteOffset: offset &+ 8, as: UInt.self)
      offset &+= 16
    }
    block.storeBytes(of: fill, toByteOffset: end, as: UInt.self)
    block.storeBytes(of: 0, toByteOffset: blockByteCount &- 8, as: UInt.self)
  }

  /// Stores the fill in `block`'s bytes `[start, end)` (multiples of 8, at least one word) with libc's
  /// memset (the fill word is one byte repeated; 32 or 64 bytes a step where the CPU has them): the fill of
  /// blocks above `inlineFillMaxByteCount`, and of a large block's edges.
  static func fillRange(_ block: UnsafeMutableRawPointer, from start: Int, to end: Int) {
    memset(block + start, Int32(truncatingIfNeeded: fillWord & 0xFF), end &- start)
  }

  /// Zero when `block`'s bytes `[start, end)` (as `fillRange`'s) all hold the fill: they do when the first
  /// word does and every byte equals the byte 8 after it, one memcmp of the range against itself shifted by
  /// a word.
  static func rangeDifference(_ block: UnsafeMutableRawPointer, from start: Int, to end: Int) -> UInt {
    let difference = block.load(fromByteOffset: start, as: UInt.self) ^ fillWord
    return memcmp(block + start, block + (start &+ 8), end &- start &- 8) != 0 ? difference | 1 : difference
  }

  /// A block leaves its page's free list (malloc): a freed block's fill must be intact, and its marker is
  /// cleared (in 16-byte blocks the trailer that `seal` writes replaces it).
  @inline(__always)
  static func takeFromList(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    if blockByteCount <= 16 { return }
    if blockByteCount > wholeFillMaxByteCount { return takeLargeFromList(block, blockByteCount: blockByteCount) }
    if !fillIntact(block, blockByteCount: blockByteCount) { fillBroken(block, blockByteCount: blockByteCount) }
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
  }

  /// Whether a block on a free list is as `free` or `extend` left it: the freed marker and the fill, or the
  /// fresh marker (a block carved and never handed out has no fill: nothing was written into it). 16-byte
  /// blocks have neither fill nor room to check. Blocks up to `wholeFillMaxByteCount` only.
  @inline(__always)
  static func fillIntact(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> Bool {
    if blockByteCount <= 16 { return true }
    let marked = block.load(fromByteOffset: 8, as: UInt.self) ^ freedMarker(block)
    if marked != 0 { return marked == 2 }  // the fresh marker, or a write over the freed one
    return fillDifference(block, blockByteCount: blockByteCount) == 0
  }

  /// The fill of a freed block xored with what it holds (zero: intact), its last word included.
  @inline(__always)
  static func fillDifference(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> UInt {
    let fill = fillWord
    var difference = block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self)
    if blockByteCount > inlineFillMaxByteCount {
      return difference | rangeDifference(block, from: 16, to: blockByteCount &- 8)
    }
    // An or-reduction without an early exit, 16 bytes a step up to the last 16 (blocks are multiples of 16
    // bytes), then the word before the last.
    let end = blockByteCount &- 16
    difference |= block.load(fromByteOffset: end, as: UInt.self) ^ fill
    var offset = 16
    while offset < end {
      difference |= (block.load(fromByteOffset: offset, as: UInt.self) ^ fill)
        | (block.load(fromByteOffset: offset &+ 8, as: UInt.self) ^ fill)
      offset &+= 16
    }
    return difference
  }

  // MARK: failures

  enum Corruption {
    case overflow, underflow, writeAfterFree
  }

  @inline(never)
  static func sealBroken(_ block: UnsafeMutableRawPointer, blockByteCount: Int, byteCount: Int) -> Never {
    // A block boundary carved and never handed out is an invalid pointer, not an overflow: full marks it
    // with the fresh marker; level 1 leaves the zero its carving wrote in the trailer's place (a handed-out
    // block's trailer is a keyed word, zero with probability 2^-64; an overflow that zeroes the whole
    // trailer is reported the same way).
    if block.load(fromByteOffset: 8, as: UInt.self) == freshMarker(UInt(bitPattern: block))
      || (!Options.secureFull && block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self) == 0)
    {
      fail(block, .neverAllocated)
    }
    // Full: a block whose fill is intact is a freed one, freed again after a write over its freed marker.
    if Options.secureFull && blockByteCount > 16 && blockByteCount <= wholeFillMaxByteCount
      && fillDifference(block, blockByteCount: blockByteCount) == 0
    {
      fail(block, .doubleFree)
    }
    var offset = -1
    if byteCount >= 0 {
      let canary = canary(trailerMask(UInt(bitPattern: block)))
      for index in 0..<Swift.min(8, blockByteCount &- trailerByteCount &- byteCount) {
        let stored = block.load(fromByteOffset: byteCount &+ index, as: UInt8.self)
        if stored != UInt8(truncatingIfNeeded: canary &>> UInt(index &* 8)) {
          offset = byteCount &+ index
          break
        }
      }
    }
    failCorruption(.overflow, block: block, other: nil, blockByteCount: blockByteCount, offset: offset,
                   byteCount: byteCount)
  }

  /// A block on a free list whose marker or fill differs (`fillIntact` said so): reports the first byte
  /// written after the free.
  @inline(never)
  static func fillBroken(_ block: UnsafeMutableRawPointer, blockByteCount: Int) -> Never {
    let marker = freedMarker(block)
    let large = blockByteCount > wholeFillMaxByteCount
    let edge = largeEdgeByteCount
    // Large blocks: the flag word at 16 may be the fill's complement (SecureLargeBlocks.swift).
    let flag = block.load(fromByteOffset: 16, as: UInt.self)
    let flagWord = large && flag == ~fillWord ? flag : fillWord
    // The first byte that differs from what free left: the marker (bytes 8 to 15), the fill, the zero last
    // word. Large blocks: their middle is not looked at (inaccessible, or not filled).
    var offset = -1
    var index = 8
    while offset < 0 && index < blockByteCount {
      if large && index == edge { index = blockByteCount &- edge }
      let expected: UInt8
      if index < 16 {
        expected = UInt8(truncatingIfNeeded: marker &>> UInt((index &- 8) &* 8))
      } else if index < 24 {
        expected = UInt8(truncatingIfNeeded: flagWord &>> UInt((index &- 16) &* 8))
      } else if index >= blockByteCount &- 8 {
        expected = 0
      } else {
        expected = UInt8(truncatingIfNeeded: fillWord)
      }
      if block.load(fromByteOffset: index, as: UInt8.self) != expected { offset = index }
      index &+= 1
    }
    failCorruption(.writeAfterFree, block: block, other: nil, blockByteCount: blockByteCount, offset: offset)
  }

  /// Reports an overwritten canary, trailer or fill and aborts.
  @inline(never)
  static func failCorruption(_ corruption: Corruption, block: UnsafeMutableRawPointer,
                             other: UnsafeMutableRawPointer?, blockByteCount: Int, offset: Int,
                             byteCount: Int = -1) -> Never
  {
    ErrorWriter.withWriter { writer in
      switch corruption {
      case .overflow:
        writer.text("swalloc: free(): heap-buffer-overflow: block ")
        writer.hexadecimal(UInt(bitPattern: block))
        if byteCount >= 0 {
          writer.text(" of ")
          writer.decimal(byteCount)
          writer.text(" bytes was written past its end (its canary at offset ")
          writer.decimal(offset)
          writer.text(" was overwritten)")
        } else {
          writer.text(" (a ")
          writer.decimal(blockByteCount)
          writer.text("-byte block) had its trailer overwritten: an overflow past its end, or an underflow of the")
          writer.text(" block after it")
        }
      case .underflow:
        writer.text("swalloc: free(): heap-buffer-underflow: the bytes just before block ")
        writer.hexadecimal(UInt(bitPattern: block))
        writer.text(" were overwritten (the trailer of the ")
        writer.decimal(blockByteCount)
        writer.text("-byte block before it, ")
        writer.hexadecimal(UInt(bitPattern: other))
        writer.text(", which an overflow of that block reaches too)")
      case .writeAfterFree:
        writer.text("swalloc: malloc(): write after free: freed block ")
        writer.hexadecimal(UInt(bitPattern: block))
        writer.text(" (")
        writer.decimal(blockByteCount)
        writer.text(" bytes) was written at offset ")
        writer.decimal(offset)
        writer.text(" after it was freed")
      }
      writer.text(Secure.abortingAtLevel)
    }
    swalloc_abort()
  }
}

extension Secure {
  /// Whether the page blocks of `blockByteCount` bytes are sealed (a canary and a trailer): every class at
  /// SWALLOC_SECURE=full; at 1 the classes above the direct classes (above 1 KiB), whose mallocs never take
  /// level 1's inline fast path and whose pages carry Page.sealedTag, which sends their frees to the slow
  /// path (level 1's fast paths stay the instructions they were). Secure mode only (the default mode seals
  /// nothing).
  @inline(__always)
  static func isSealed(blockByteCount: Int) -> Bool {
    Options.secureFull || blockByteCount > SizeClass.directMaxByteCount
  }

  /// The request size to choose a class for in secure mode: with room for the trailer where the block will
  /// be sealed (at 1: requests above 1 KiB, whose classes are all above the direct ones; a request of at most
  /// 1 KiB lands in a sealed class only when its alignment is above 1 KiB, which leaves the room).
  @inline(__always)
  static func sealedRequest(_ byteCount: Int) -> Int {
    isSealedRequest(byteCount) ? withTrailer(byteCount) : byteCount
  }

  /// Whether a request of `byteCount` bytes (alignment at most 1 KiB) gets a sealed block: every request at
  /// full, those above 1 KiB at 1.
  @inline(__always)
  static func isSealedRequest(_ byteCount: Int) -> Bool {
    Options.secureFull || byteCount > SizeClass.directMaxByteCount
  }

  /// The request size to choose a class for in secure mode: room for the trailer (sizes beyond a page
  /// block's stay as they are: huge blocks have a guard page instead).
  @inline(__always)
  static func withTrailer(_ byteCount: Int) -> Int {
    UInt(bitPattern: byteCount) <= UInt(SizeClass.largeMaxByteCount &- trailerByteCount)
      ? byteCount &+ trailerByteCount : Swift.max(byteCount, SizeClass.largeMaxByteCount &+ 1)
  }

  /// What `resizeInPlace` found.
  enum Resize {
    /// Not a page block (huge, guarded, foreign): realloc's general path handles it.
    case notPageBlock
    /// Resized in place (resealed).
    case resized
    /// A live page block, checked, of `usable` bytes (what `LibC.usableSize` gives for it), that realloc
    /// resizes or moves as any block; `sampled`: its page holds a block the heap profiler samples
    /// (`LibC.usableSize`'s `mayBeSampled`). `mustMove`: a sealed block the new size does not fit.
    case checked(usable: Int, sampled: Bool, mustMove: Bool)
  }

  /// `realloc` of a secure page block: checks that it is a live block start (as free does: not inside a
  /// block, not freed, at full not a block never handed out) and its seal, then resizes it in place
  /// (resealed) when the new size still uses at least half of the block's room. A block of a class without
  /// a seal (level 1's direct classes), or one that must move, comes back checked with its usable size, so
  /// that realloc does not look it up a second time.
  static func resizeInPlace(_ pointer: UnsafeMutableRawPointer, byteCount: Int) -> Resize {
    let address = UInt(bitPattern: pointer)
    guard let segment = SegmentMap.segment(of: address), segment.pointee.kind != .huge else { return .notPageBlock }
    let page = segment.page(containing: address)
    guard page.pointee.state == .inUse else { return .notPageBlock }
    SecureChecks.checkLive(pointer, page, function: "realloc()")
    let blockByteCount = page.pointee.blockByteCount
    let sampled = page.pointee.owner & Page.sampledTag != 0
    // Level 1: the blocks of the direct classes have no seal (realloc's general path resizes them).
    guard isSealed(blockByteCount: blockByteCount) else {
      return .checked(usable: blockByteCount, sampled: sampled, mustMove: false)
    }
    checkSeal(pointer, blockByteCount: blockByteCount)
    let room = UInt(bitPattern: blockByteCount &- trailerByteCount)
    let wanted = UInt(bitPattern: byteCount)
    if wanted > room || wanted < room / 2 {
      return .checked(usable: requestedSize(pointer, blockByteCount: blockByteCount), sampled: sampled, mustMove: true)
    }
    seal(pointer, byteCount: byteCount, blockByteCount: blockByteCount)
    return .resized
  }
}

extension Secure {
  /// Whether `pointer`, which `LibC.usableSize` accepted, is a 16-byte-aligned block carrying its freed
  /// marker (a sized delete of a freed block: free reports the double free).
  static func looksFreed(_ pointer: UnsafeMutableRawPointer) -> Bool {
    UInt(bitPattern: pointer) & 15 == 0 && pointer.load(fromByteOffset: 8, as: UInt.self) == freedMarker(pointer)
  }
}
