// SwallocHeap: a first-class heap for Swift programs (mimalloc's mi_heap_t, with ownership in the type).
import CShim
import Glibc

/// A private heap: blocks allocated from it live in its own pages, and destroying it releases all of them at
/// once.
///
/// Create a heap, allocate from it on the thread that created it, free its blocks on any thread, and destroy
/// it (or let it go out of scope) to give everything it holds back:
///
/// ```swift
/// let heap = SwallocHeap()
/// let node = heap.allocate(byteCount: 48)
/// ...
/// heap.destroy()   // every block still allocated from `heap` is released here
/// ```
///
/// The handle is noncopyable: once `destroy()` consumed it, the compiler rejects any further use, and its
/// lifetime ends exactly once (`deinit` destroys a heap that was not destroyed explicitly). It is not
/// `Sendable`: the heap's page lists belong to one thread at a time. Its blocks are plain memory that any
/// thread may free with ``deallocateOnAnyThread(_:)``.
///
/// Heaps are separate from `malloc`: even when `libswalloc.so` is the process allocator, a heap's blocks are
/// not `malloc` blocks. Free them with ``deallocate(_:)-(UnsafeMutableRawPointer)`` or ``deallocateOnAnyThread(_:)``, never with
/// `free()` (see the README, "Swift API").
public struct SwallocHeap: ~Copyable {
  let heap: Heap

  /// Creates an empty heap owned by the calling thread. Traps when the system refuses the heap's 4 KiB.
  public init() {
    guard let heap = Heap.makeUserHeap() else { swallocOutOfMemory(byteCount: Heap.byteCount) }
    self.heap = heap
  }

  /// Destroys the heap: every block still allocated from it is released, with its pages and huge spans.
  deinit { heap.destroyUser() }

  /// Destroys the heap now, releasing every block still allocated from it. Blocks freed on other threads must
  /// be freed before this call (a free after it is a use after free). Owning thread only.
  public consuming func destroy() {
    heap.destroyUser()
    discard self
  }

  // MARK: allocation (owning thread)

  /// Allocates `byteCount` uninitialized bytes aligned to `alignment` (a power of two; 16 at least is
  /// guaranteed). Traps when memory is exhausted, on a negative size or a bad alignment, and when called on a
  /// thread that does not own the heap.
  public func allocate(byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer {
    if UInt(bitPattern: alignment) &- 1 < 16 && alignment & (alignment &- 1) == 0,
      let block = heap.allocateUser(byteCount: byteCount)
    {
      return block
    }
    return allocateSlow(byteCount: byteCount, alignment: alignment)
  }

  @inline(never)
  func allocateSlow(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
    swallocCheck(byteCount: byteCount, alignment: alignment, caller: "SwallocHeap.allocate")
    guard let block = heap.allocateUserSlow(byteCount: byteCount, alignment: alignment) else {
      swallocOutOfMemory(byteCount: byteCount)
    }
    return block
  }

  /// Allocates uninitialized memory for `count` instances of `type`, aligned for `T`.
  public func allocate<T>(of type: T.Type, count: Int) -> UnsafeMutableBufferPointer<T> {
    let byteCount = swallocByteCount(of: type, count: count, caller: "SwallocHeap.allocate(of:count:)")
    let raw = allocate(byteCount: byteCount, alignment: Swift.max(MemoryLayout<T>.alignment, 16))
    return UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: count), count: count)
  }

  /// Allocates `byteCount` bytes set to zero.
  public func allocateZeroed(byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer {
    let block = allocate(byteCount: byteCount, alignment: alignment)
    block.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    return block
  }

  /// Resizes a block of this heap to `byteCount` bytes, keeping its contents up to the smaller size; returns
  /// the (possibly moved) block. The block stays in this heap. Owning thread only.
  public func reallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int, alignment: Int = 16)
    -> UnsafeMutableRawPointer
  {
    // Secure mode: a live block only, checked as free checks it (a freed block came back resized in place).
    // The default mode: a freed block carries its freed marker (Heap.free), which tells it from a live one.
    var mayBeSampled = false
    let usable = Options.secure
      ? SecureChecks.checkedUsableSize(pointer, function: "SwallocHeap.reallocate()")
      : LibC.usableSize(pointer, mayBeSampled: &mayBeSampled)
    if usable < 0 || (!Options.secure && LibC.isFreedBlock(pointer, mayBeSampled: mayBeSampled)) {
      fatalError("SwallocHeap.reallocate: \(pointer) is not a live Swalloc heap block")
    }
    if byteCount >= 0 && byteCount <= usable && byteCount >= usable / 2
      && Int(bitPattern: pointer) & (Swift.max(alignment, 1) &- 1) == 0
    {
      return pointer
    }
    let block = allocate(byteCount: byteCount, alignment: alignment)
    block.copyMemory(from: pointer, byteCount: Swift.min(usable, byteCount))
    deallocate(pointer)
    return block
  }

  // MARK: deallocation

  /// Frees a block on the heap's owning thread (the fastest path for blocks of this heap). A block of another
  /// Swalloc heap is freed correctly too (as a remote free).
  public func deallocate(_ pointer: UnsafeMutableRawPointer) {
    heap.deallocateUser(pointer)
  }

  /// Frees the memory of a buffer from ``allocate(of:count:)`` (it must be deinitialized first if needed).
  public func deallocate<T>(_ buffer: UnsafeMutableBufferPointer<T>) {
    if let base = buffer.baseAddress { heap.deallocateUser(UnsafeMutableRawPointer(base)) }
  }

  /// Frees a block of any Swalloc heap, on any thread. A block freed on a thread other than its heap's owner
  /// goes on its page's thread-free list with one atomic operation; the owner collects it when it needs
  /// memory. A pointer that is not a live block is reported (under `SWALLOC_VERBOSE`) and ignored.
  public static func deallocateOnAnyThread(_ pointer: UnsafeMutableRawPointer) {
    Heap.free(pointer)
  }

  /// The usable size of a live block of any Swalloc heap (at least what was asked for), or nil when the
  /// pointer is not one.
  public static func usableSize(of pointer: UnsafeRawPointer) -> Int? {
    let size = LibC.usableSize(UnsafeMutableRawPointer(mutating: pointer))
    return size < 0 ? nil : size
  }

  /// Whether `pointer` is the start of a live block of this heap.
  public func owns(_ pointer: UnsafeRawPointer) -> Bool {
    heap.ownsBlock(UnsafeMutableRawPointer(mutating: pointer))
  }

  // MARK: maintenance

  /// Collects the frees other threads made into this heap and gives empty pages back to their segments
  /// (like `mi_heap_collect`). With `purge`, the free pages' memory goes back to the kernel now instead of
  /// after the purge delay. Owning thread only.
  public func collect(purge: Bool = false) {
    heap.checkOwner()
    heap.collectUser(purge: purge)
  }

  /// Makes the calling thread the owner, after the heap's handle was handed over to it (for example with a
  /// `sending` parameter). The previous owner must no longer use it.
  public func adoptOnCallingThread() {
    heap.adoptByCallingThread()
  }

  /// This heap's statistics, exact at the time of the call. Owning thread only.
  public var statistics: Statistics {
    heap.checkOwner()
    return Statistics(heap.userFigures())
  }

  /// A snapshot of one heap's statistics.
  public struct Statistics: Sendable, Equatable, CustomStringConvertible {
    /// Allocations served by the heap since it was created.
    public var allocationCount: Int
    /// Blocks allocated and not freed (frees other threads made and the heap has not collected yet count
    /// as freed).
    public var liveBlockCount: Int
    /// Bytes in live blocks, counted in whole blocks (usable sizes).
    public var liveByteCount: Int
    /// Bytes of the pages the heap holds (live blocks, free blocks in those pages, and what is not carved).
    public var pageByteCount: Int
    /// Segments (4 MiB) the heap holds.
    public var segmentCount: Int
    /// Live huge blocks (above 512 KiB), each its own span; included in `liveBlockCount`.
    public var hugeBlockCount: Int
    /// Bytes in live huge blocks; included in `liveByteCount`.
    public var hugeByteCount: Int
    /// Blocks other threads freed that wait for the heap to collect them.
    public var pendingRemoteFreeCount: Int

    init(_ figures: UserHeapFigures) {
      allocationCount = figures.allocationCount
      liveBlockCount = figures.liveBlockCount
      liveByteCount = figures.liveByteCount
      pageByteCount = figures.pageByteCount
      segmentCount = figures.segmentCount
      hugeBlockCount = figures.hugeBlockCount
      hugeByteCount = figures.hugeByteCount
      pendingRemoteFreeCount = figures.pendingRemoteFreeCount
    }

    /// The figures on one line.
    public var description: String {
      "allocations \(allocationCount), live \(liveBlockCount) blocks / \(liveByteCount) bytes, "
        + "pages \(pageByteCount) bytes in \(segmentCount) segments, huge \(hugeBlockCount) / \(hugeByteCount) "
        + "bytes, pending remote frees \(pendingRemoteFreeCount)"
    }
  }
}

// MARK: - checks shared by the API

/// Traps with a message naming the caller when a size or an alignment is invalid.
func swallocCheck(byteCount: Int, alignment: Int, caller: StaticString) {
  if byteCount < 0 { fatalError("\(caller): negative byteCount \(byteCount)") }
  if alignment <= 0 || alignment & (alignment &- 1) != 0 {
    fatalError("\(caller): alignment \(alignment) is not a power of two")
  }
}

/// `count * MemoryLayout<T>.stride`, trapping on a negative count or an overflow.
func swallocByteCount<T>(of type: T.Type, count: Int, caller: StaticString) -> Int {
  if count < 0 { fatalError("\(caller): negative count \(count)") }
  let (byteCount, overflow) = MemoryLayout<T>.stride.multipliedReportingOverflow(by: count)
  if overflow { fatalError("\(caller): \(count) instances of \(T.self) overflow the address space") }
  return byteCount
}

/// Out of memory: Swift's allocation functions trap, and so do Swalloc's.
func swallocOutOfMemory(byteCount: Int) -> Never {
  fatalError("Swalloc: out of memory allocating \(byteCount) bytes")
}
