// SecureChecks: secure mode's checks of what the program says about a block (issue 15, part 2): the size a
// C++ sized operator delete (or C23's free_sized) gives must be the block's size class (a `delete` through a
// pointer of the wrong type, or of an object from `new char`, aborts). malloc(0)'s inaccessible pointers
// are in GuardedSlots.swift.
import CShim

enum SecureChecks {
  /// C++'s sized operator delete (CheckedDelete.c jumps here, `exact`) and free_sized in secure mode:
  /// checks `size`, then frees. free_sized is not exact: a block from posix_memalign or memalign, which
  /// glibc lets a program free with free_sized, sits in a class rounded up for its alignment, so only a
  /// size larger than the block is a certain misuse there (issue 12: a correct program is never stopped).
  static func checkedSizedFree(_ pointer: UnsafeMutableRawPointer?, _ size: Int, exact: Bool = true) {
    guard let pointer else { return }
    checkSize(pointer, size) { usable in exact ? fits(size, usable: usable) : size <= usable }
    LibC.release(pointer)
  }

  /// Aborts when `pointer`, a live block, does not hold what the program says it freed: `matches` judges its
  /// usable size. Not a live block: nothing here (free() then reports what it is). A block start's usable
  /// size is its class's size (or, for a huge block, its span's room); guarded blocks and the profiler's
  /// sampled blocks, whose room differs, are let through when they hold the size.
  @inline(__always)
  static func checkSize(_ pointer: UnsafeMutableRawPointer, _ size: Int, matches: (Int) -> Bool) {
    if Guarded.isEnabled && Guarded.contains(pointer) { return }
    let usable = LibC.usableSize(pointer)
    if usable >= 0 && !matches(usable)
      && !Profile.isSampledSpanBlock(pointer, holding: size) && !(Options.secureFull && Secure.looksFreed(pointer))
    {
      sizeMismatch(pointer, size: size, usable: usable)
    }
  }

  /// C++'s aligned sized operator delete (`exact`) and C23's free_aligned_sized in secure mode: the alignment
  /// must be a power of two that the pointer has, and the size the block's (as `new` with that alignment, or
  /// aligned_alloc, gives it: the class `SizeClass.of(byteCount:alignment:)` chooses; free_aligned_sized only
  /// checks that the block holds the size, as free_sized does). Then frees.
  static func checkedAlignedSizedFree(_ pointer: UnsafeMutableRawPointer?, alignment: Int, _ size: Int, exact: Bool) {
    guard let pointer else { return }
    let a = UInt(bitPattern: alignment)
    if a == 0 || a & (a &- 1) != 0 || UInt(bitPattern: pointer) & (a &- 1) != 0 {
      alignmentMismatch(pointer, alignment: alignment)
    }
    checkSize(pointer, size) { usable in exact ? fitsAligned(size, alignment: alignment, usable: usable) : size <= usable }
    LibC.release(pointer)
  }

  /// Whether a block of `usable` bytes is what aligned `new` gives for `size` bytes aligned to `alignment`.
  static func fitsAligned(_ size: Int, alignment: Int, usable: Int) -> Bool {
    let sizeClass = SizeClass.of(byteCount: Secure.sealedRequest(size), alignment: alignment)
    // A huge block (its own span): it holds the size.
    if sizeClass == 0 { return size <= usable }
    // A sealed block's usable size is the size it was allocated with (its trailer records it).
    let blockByteCount = SizeClass.blockByteCount(sizeClass)
    return Secure.isSealed(blockByteCount: blockByteCount) ? size == usable : blockByteCount == usable
  }

  /// malloc_usable_size in secure mode: the usable size of a live block; anything else (a pointer inside a
  /// block or past it, a freed block, memory Swalloc never handed out) aborts with free's messages, as
  /// hardened_malloc does (the default mode answers 0). NULL: 0.
  /// `function`: the call that was given the pointer (realloc's checks are these: a freed block, a pointer
  /// inside a block, memory never handed out must not be resized in place).
  static func checkedUsableSize(_ pointer: UnsafeMutableRawPointer?,
                                function: StaticString = "malloc_usable_size()") -> Int {
    guard let pointer else { return 0 }
    if Guarded.isEnabled && Guarded.contains(pointer) {
      if Guarded.isZeroSize(UInt(bitPattern: pointer)) { return 0 }
      let usable = Guarded.usableSize(pointer)
      if usable < 0 { Secure.fail(pointer, .notLive, function: function) }
      return usable
    }
    if SamplePoints.isEnabled && SampleSlots.contains(pointer) {
      let usable = SampleSlots.usableSize(pointer)
      if usable < 0 { Secure.fail(pointer, .notLive, function: function) }
      return usable
    }
    let address = UInt(bitPattern: pointer)
    guard let segment = SegmentMap.segment(of: address) else {
      Secure.fail(pointer, .foreign, function: function)
    }
    if segment.pointee.kind == .huge {
      let page = segment.page(at: 0)
      if page.pointee.state != .huge { Secure.fail(pointer, .freed, function: function) }
      if pointer != page.pointee.start { Secure.fail(pointer, .interior, function: function) }
      return page.pointee.blockByteCount
    }
    let page = segment.page(containing: address)
    if page.pointee.state != .inUse { Secure.fail(pointer, .notLive, function: function) }
    checkLive(pointer, page, function: function)
    return Swift.max(0, LibC.usableSize(pointer))
  }

  /// Aborts, with free's message for what it is, unless `pointer`, an address in `page` (in use), is a live
  /// block: a block start, not freed (parked, or carrying the freed marker), at full not a block carved and
  /// never handed out. malloc_usable_size's and realloc's checks (`function` names the call).
  static func checkLive(_ pointer: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>,
                        function: StaticString) {
    if !Secure.isBlockStart(UInt(bitPattern: pointer), page) { Secure.fail(pointer, .interior, function: function) }
    if Secure.isParked(pointer, page) { Secure.fail(pointer, .freed, function: function) }
    let word = pointer.load(fromByteOffset: 8, as: UInt.self)
    if word == Secure.freedMarker(pointer) {
      let failure = Secure.markedFailure(pointer, page)
      Secure.fail(pointer, failure == .doubleFree ? .freed : failure, function: function)
    }
    if Options.secureFull && Secure.isFresh(pointer, word: word, blockByteCount: page.pointee.blockByteCount) {
      Secure.fail(pointer, .neverAllocated, function: function)
    }
  }

  @inline(never)
  static func alignmentMismatch(_ block: UnsafeMutableRawPointer, alignment: Int) -> Never {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: aligned sized free: alignment ")
      writer.decimal(alignment)
      writer.text(" does not fit ")
      writer.hexadecimal(UInt(bitPattern: block))
      writer.text(" (not a power of two, or not the pointer's)")
      writer.text(Secure.abortingAtLevel)
    }
    swalloc_abort()
  }

  /// Whether a block of `usable` bytes is what `new` gives for `size` bytes (C++ passes the size it
  /// allocated: the same class, or a huge block that holds it).
  static func fits(_ size: Int, usable: Int) -> Bool {
    if Secure.isSealedRequest(size) {
      // A sealed block's usable size is the size it was allocated with (its trailer records it): every page
      // block at full, those above 1 KiB at 1.
      if UInt(bitPattern: size) > UInt(SizeClass.largeMaxByteCount &- Secure.trailerByteCount) { return size <= usable }
      return size == usable
    }
    return SizeClass.blockByteCount(SizeClass.of(byteCount: size)) == usable
  }

  /// Whether `block` is a page block of a sealed class (its usable size is the size it was allocated with).
  static func isSealedPageBlock(_ block: UnsafeMutableRawPointer) -> Bool {
    guard let segment = SegmentMap.segment(of: UInt(bitPattern: block)), segment.pointee.kind != .huge else { return false }
    return Secure.isSealed(blockByteCount: segment.page(containing: UInt(bitPattern: block)).pointee.blockByteCount)
  }

  @inline(never)
  static func sizeMismatch(_ block: UnsafeMutableRawPointer, size: Int, usable: Int) -> Never {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: operator delete(): size mismatch at ")
      writer.hexadecimal(UInt(bitPattern: block))
      writer.text(" (deleted as ")
      writer.decimal(size)
      writer.text(" bytes; ")
      writer.decimal(usable)
      writer.text(isSealedPageBlock(block) ? " bytes allocated from there)" : " bytes from there to the end of its block)")
      writer.text(": deleted through a pointer of the wrong type, or ")
      writer.text("with delete instead of delete[] or the reverse")
      writer.text(Secure.abortingAtLevel)
    }
    swalloc_abort()
  }
}
