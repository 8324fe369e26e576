// SwallocGlobal: allocation through the process allocator (malloc and its family), which is Swalloc when
// libswalloc.so is preloaded or linked into the executable.
import CShim
import Glibc

/// Raw and typed allocation through the process's `malloc`: Swalloc's global fast path when
/// `libswalloc.so` is the process allocator (preloaded, or linked into the executable: see the README), the
/// system allocator otherwise. ``isSwallocProcessAllocator`` tells which.
///
/// Because these are `malloc` blocks, passing one to C's `free()` is always correct, and so is freeing a
/// block that C code allocated with ``deallocate(_:)-(UnsafeMutableRawPointer?)``.
public enum SwallocGlobal {
  /// Whether `malloc` in this process is Swalloc's (libswalloc.so loaded ahead of the C library).
  public static var isSwallocProcessAllocator: Bool { ProcessAllocator.isSwalloc }

  /// Allocates `byteCount` uninitialized bytes aligned to `alignment` (a power of two). Traps when memory is
  /// exhausted or the arguments are invalid (like `UnsafeMutableRawPointer.allocate`).
  public static func allocate(byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer {
    if UInt(bitPattern: alignment) &- 1 < 16 && alignment & (alignment &- 1) == 0,
      let block = Glibc.malloc(byteCount < 0 ? Int.max : byteCount)
    {
      return block
    }
    return allocateSlow(byteCount: byteCount, alignment: alignment)
  }

  @inline(never)
  static func allocateSlow(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
    swallocCheck(byteCount: byteCount, alignment: alignment, caller: "SwallocGlobal.allocate")
    var block: UnsafeMutableRawPointer? = nil
    if alignment <= 16 {
      block = Glibc.malloc(byteCount)
    } else if posix_memalign(&block, Swift.max(alignment, MemoryLayout<UnsafeRawPointer>.size), byteCount) != 0 {
      block = nil
    }
    guard let block else { swallocOutOfMemory(byteCount: byteCount) }
    return block
  }

  /// Allocates `byteCount` bytes set to zero (`calloc`).
  public static func allocateZeroed(byteCount: Int) -> UnsafeMutableRawPointer {
    swallocCheck(byteCount: byteCount, alignment: 16, caller: "SwallocGlobal.allocateZeroed")
    guard let block = calloc(1, byteCount) else { swallocOutOfMemory(byteCount: byteCount) }
    return block
  }

  /// Allocates uninitialized memory for `count` instances of `T`, aligned for `T`.
  public static func allocate<T>(of type: T.Type, count: Int) -> UnsafeMutableBufferPointer<T> {
    let byteCount = swallocByteCount(of: type, count: count, caller: "SwallocGlobal.allocate(of:count:)")
    let raw = allocate(byteCount: byteCount, alignment: MemoryLayout<T>.alignment)
    return UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: count), count: count)
  }

  /// Frees a block (`free`). Nil is allowed.
  public static func deallocate(_ pointer: UnsafeMutableRawPointer?) {
    Glibc.free(pointer)
  }

  /// Frees the memory of a buffer from ``allocate(of:count:)`` (deinitialize its elements first if needed).
  public static func deallocate<T>(_ buffer: UnsafeMutableBufferPointer<T>) {
    Glibc.free(buffer.baseAddress)
  }

  /// Resizes a block, keeping its contents up to the smaller size (`realloc`); returns the possibly moved
  /// block. With an `alignment` above 16 the new block is aligned too (realloc itself only guarantees 16).
  /// Traps when memory is exhausted; the old block is then still valid.
  public static func reallocate(_ pointer: UnsafeMutableRawPointer?, byteCount: Int, alignment: Int = 16)
    -> UnsafeMutableRawPointer
  {
    swallocCheck(byteCount: byteCount, alignment: alignment, caller: "SwallocGlobal.reallocate")
    guard let pointer else { return allocate(byteCount: byteCount, alignment: alignment) }
    if alignment <= 16 {
      // realloc(p, 0) frees p in glibc and Swalloc: ask for one byte instead, so a block always comes back.
      guard let block = realloc(pointer, Swift.max(byteCount, 1)) else { swallocOutOfMemory(byteCount: byteCount) }
      return block
    }
    let usable = malloc_usable_size(pointer)
    if byteCount <= usable && Int(bitPattern: pointer) & (alignment - 1) == 0 { return pointer }
    let block = allocate(byteCount: byteCount, alignment: alignment)
    block.copyMemory(from: pointer, byteCount: Swift.min(usable, byteCount))
    Glibc.free(pointer)
    return block
  }

  /// The usable size of a block (`malloc_usable_size`): at least what was asked for.
  public static func usableSize(of pointer: UnsafeMutableRawPointer) -> Int {
    malloc_usable_size(pointer)
  }

  /// Gives free memory back to the kernel now: `swalloc_purge()` under Swalloc (the calling thread's free
  /// pages, those of exited threads, the span cache), `malloc_trim(0)` otherwise. Returns the bytes Swalloc
  /// gave back (0 under another allocator).
  @discardableResult
  public static func purge() -> Int {
    if let purge = ProcessAllocator.swallocPurge { return purge() }
    _ = malloc_trim(0)
    return 0
  }
}

/// How the Swift API reaches libswalloc.so when it is in the process: its C API, looked up once with
/// dlsym (the Swift API never links it, so that a program decides whether Swalloc replaces malloc).
enum ProcessAllocator {
  typealias GetStatistics = @convention(c) (UnsafeMutablePointer<swalloc_statistics>) -> Void
  typealias Purge = @convention(c) () -> Int

  static let isSwalloc: Bool = {
    // malloc is an alias of swalloc_malloc in libswalloc.so: the same address when it won the symbol lookup.
    guard let swallocMalloc = dlsym(swallocDefaultHandle, "swalloc_malloc"),
      let malloc = dlsym(swallocDefaultHandle, "malloc")
    else { return false }
    return swallocMalloc == malloc
  }()

  static let getStatistics: GetStatistics? = {
    guard isSwalloc, let symbol = dlsym(swallocDefaultHandle, "swalloc_get_statistics") else { return nil }
    return unsafeBitCast(symbol, to: GetStatistics.self)
  }()

  static let swallocPurge: Purge? = {
    guard isSwalloc, let symbol = dlsym(swallocDefaultHandle, "swalloc_purge") else { return nil }
    return unsafeBitCast(symbol, to: Purge.self)
  }()

  /// RTLD_DEFAULT (a null handle: the global symbol search order).
  static var swallocDefaultHandle: UnsafeMutableRawPointer? { nil }
}
