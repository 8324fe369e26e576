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
    if !(Guarded.isEnabled && Guarded.contains(pointer)) {
      let usable = LibC.usableSize(pointer)
      // Not a live block: free() reports what it is. A block start's usable size is its class's size (or,
      // for a huge block, its span's room).
      if usable >= 0 && !(exact ? fits(size, usable: usable) : size <= usable)
        && !Profile.isSampledSpanBlock(pointer, holding: size) && !(Options.secureFull && Secure.looksFreed(pointer))
      {
        sizeMismatch(pointer, size: size, usable: usable)
      }
    }
    LibC.release(pointer)
  }

  /// Whether a block of `usable` bytes is what `new` gives for `size` bytes (C++ passes the size it
  /// allocated: the same class, or a huge block that holds it).
  static func fits(_ size: Int, usable: Int) -> Bool {
    if Options.secureFull {
      // A page block's usable size is the size it was allocated with (its trailer records it).
      if UInt(bitPattern: size) > UInt(SizeClass.largeMaxByteCount &- Secure.trailerByteCount) { return size <= usable }
      return size == usable
    }
    if UInt(bitPattern: size) > UInt(SizeClass.largeMaxByteCount) { return size <= usable }
    return SizeClass.blockByteCount(SizeClass.of(byteCount: size)) == usable
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
      writer.text(Options.secureFull ? " bytes allocated from there)" : " bytes from there to the end of its block)")
      writer.text(": deleted through a pointer of the wrong type, or ")
      writer.text("with delete instead of delete[] or the reverse; aborting (SWALLOC_SECURE=1)\n")
    }
    swalloc_abort()
  }
}
