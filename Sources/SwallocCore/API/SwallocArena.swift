// SwallocArena: bump allocation for work scoped to a request or a frame; reset reuses the memory.
import CShim
import Glibc

/// A region allocator: each allocation moves a cursor forward in a chunk of memory, nothing is freed one by
/// one, and ``reset(releasingMemory:)`` makes all of it available again (the chunks stay mapped, so a frame or request loop
/// touches the same memory every time).
///
/// ```swift
/// let total = withArena { arena in
///   let values = arena.allocate(of: Int.self, count: 1000)
///   for i in values.indices { values[i] = i }
///   return values.reduce(0, +)
/// }
/// ```
///
/// Chunks come straight from `mmap`, with the ``Backing`` asked for: normal pages, transparent huge pages,
/// explicit huge pages (`MAP_HUGETLB`) or locked memory (`MAP_LOCKED`). When the kernel refuses huge or
/// locked pages, the chunk falls back to normal pages and ``Statistics/fallbackCount`` says so.
///
/// The arena is noncopyable and not `Sendable`: one owner at a time. Its memory is released when the arena
/// is (`deinit`); pointers into it must not outlive it or a ``reset(releasingMemory:)``. Typed allocation requires
/// `BitwiseCopyable` types: an arena never runs deinitializers.
public struct SwallocArena: ~Copyable {
  /// What backs an arena's chunks.
  public enum Backing: Sendable, Equatable {
    /// Normal 4 KiB pages.
    case normal
    /// Normal pages with `madvise(MADV_HUGEPAGE)` on 2 MiB-aligned chunks (transparent huge pages).
    case transparentHugePages
    /// Explicit 2 MiB huge pages (`MAP_HUGETLB`) from the kernel's pool (`/proc/sys/vm/nr_hugepages`).
    case hugePages
    /// Memory locked in RAM (`MAP_LOCKED`), within `RLIMIT_MEMLOCK`.
    case locked
  }

  /// The chunk being carved: the cursor and the end of its usable part.
  @usableFromInline var cursor: UInt
  @usableFromInline var limit: UInt
  @usableFromInline var allocationCount: Int
  /// The first chunk and the current one (chunks are linked through their headers).
  var firstChunk: UnsafeMutableRawPointer?
  var currentChunk: UnsafeMutableRawPointer?
  var resetCount: Int
  var fallbackCount: Int
  /// Bytes handed out in chunks before the current one, since the last reset.
  var retiredByteCount: Int
  /// Size of a new chunk (at least; a larger request gets a chunk of its own size).
  public let chunkByteCount: Int
  /// The backing asked for (chunks the kernel refused it to are on normal pages: see ``Statistics``).
  public let backing: Backing

  /// Creates an empty arena; memory is mapped on the first allocation, `chunkByteCount` bytes at a time
  /// (rounded up to whole pages, or to 2 MiB for huge-page backings).
  public init(chunkByteCount: Int = 1 << 20, backing: Backing = .normal) {
    if chunkByteCount <= 0 { fatalError("SwallocArena: chunkByteCount \(chunkByteCount) must be positive") }
    Options.initializeIfNeeded()
    self.chunkByteCount = chunkByteCount
    self.backing = backing
    // No chunk yet: every request fails the fast path's `end <= limit` (and never yields address 0).
    cursor = 1
    limit = 0
    allocationCount = 0
    firstChunk = nil
    currentChunk = nil
    resetCount = 0
    fallbackCount = 0
    retiredByteCount = 0
  }

  deinit {
    var chunk = firstChunk
    while let current = chunk {
      chunk = ArenaChunk.next(current)
      ArenaChunk.release(current)
    }
  }

  /// Allocates `byteCount` uninitialized bytes aligned to `alignment` (a power of two). Traps when memory is
  /// exhausted or the arguments are invalid.
  @inlinable
  public mutating func allocate(byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer {
    let mask = UInt(bitPattern: alignment) &- 1
    let start = (cursor &+ mask) & ~mask
    let end = start &+ UInt(bitPattern: byteCount)
    if byteCount >= 0 && mask < 4096 && alignment & Int(bitPattern: mask) == 0 && end <= limit && end >= start {
      cursor = end
      allocationCount &+= 1
      return UnsafeMutableRawPointer(bitPattern: start).unsafelyUnwrapped
    }
    return allocateSlow(byteCount: byteCount, alignment: alignment)
  }

  /// Allocates uninitialized memory for `count` instances of `T`.
  @inlinable
  public mutating func allocate<T: BitwiseCopyable>(of type: T.Type, count: Int) -> UnsafeMutableBufferPointer<T> {
    let (byteCount, overflow) = MemoryLayout<T>.stride.multipliedReportingOverflow(by: count)
    let raw = allocate(byteCount: overflow || count < 0 ? -1 : byteCount, alignment: MemoryLayout<T>.alignment)
    return UnsafeMutableBufferPointer(start: raw.bindMemory(to: T.self, capacity: count), count: count)
  }

  /// Allocates one `T` initialized to `value`.
  @inlinable
  public mutating func create<T: BitwiseCopyable>(_ value: T) -> UnsafeMutablePointer<T> {
    let pointer = allocate(byteCount: MemoryLayout<T>.size, alignment: MemoryLayout<T>.alignment)
      .bindMemory(to: T.self, capacity: 1)
    pointer.initialize(to: value)
    return pointer
  }

  /// Another chunk: the next one kept from before a reset if it is large enough, else a new mapping.
  @usableFromInline
  @inline(never)
  mutating func allocateSlow(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
    swallocCheck(byteCount: byteCount, alignment: alignment, caller: "SwallocArena.allocate")
    // Alignments the fast path does not take may still fit in the current chunk.
    if let block = carve(byteCount: byteCount, alignment: alignment) { return block }
    let needed = byteCount &+ alignment
    if needed < byteCount { swallocOutOfMemory(byteCount: byteCount) }
    if let current = currentChunk {
      retiredByteCount += Int(bitPattern: cursor &- ArenaChunk.dataStart(current))
    }
    // After a reset the chunks are carved again in order; one too small for this request is skipped.
    var next = currentChunk.map(ArenaChunk.next) ?? firstChunk
    while let candidate = next, ArenaChunk.usableByteCount(candidate) < needed {
      next = ArenaChunk.next(candidate)
    }
    let chunk: UnsafeMutableRawPointer
    if let reused = next {
      chunk = reused
    } else {
      guard let mapped = ArenaChunk.map(byteCount: Swift.max(chunkByteCount, needed), backing: backing,
                                        fallbackCount: &fallbackCount)
      else { swallocOutOfMemory(byteCount: byteCount) }
      // A new chunk goes after the current one, so that reset order stays the order of use.
      if let current = currentChunk {
        ArenaChunk.setNext(mapped, ArenaChunk.next(current))
        ArenaChunk.setNext(current, mapped)
      } else {
        ArenaChunk.setNext(mapped, firstChunk)
        firstChunk = mapped
      }
      chunk = mapped
    }
    currentChunk = chunk
    cursor = ArenaChunk.dataStart(chunk)
    limit = cursor &+ UInt(ArenaChunk.usableByteCount(chunk))
    // The chunk has room for `byteCount + alignment` bytes.
    return carve(byteCount: byteCount, alignment: alignment).unsafelyUnwrapped
  }

  /// Bumps the cursor in the current chunk, or nil when the request does not fit there.
  mutating func carve(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    let mask = UInt(alignment) &- 1
    let start = (cursor &+ mask) & ~mask
    if start < cursor || UInt(byteCount) > limit &- Swift.min(start, limit) || currentChunk == nil { return nil }
    cursor = start &+ UInt(byteCount)
    allocationCount &+= 1
    return UnsafeMutableRawPointer(bitPattern: start)
  }

  /// Makes all the arena's memory available again. Every pointer it handed out becomes invalid. The chunks
  /// stay mapped (and resident): the next round reuses them. With `releasingMemory`, every chunk but the
  /// first is unmapped, and the first one's pages are given back to the kernel.
  public mutating func reset(releasingMemory: Bool = false) {
    resetCount += 1
    retiredByteCount = 0
    if releasingMemory, let first = firstChunk {
      var chunk = ArenaChunk.next(first)
      while let current = chunk {
        chunk = ArenaChunk.next(current)
        ArenaChunk.release(current)
      }
      ArenaChunk.setNext(first, nil)
      ArenaChunk.purge(first)
    }
    currentChunk = firstChunk
    if let first = firstChunk {
      cursor = ArenaChunk.dataStart(first)
      limit = cursor &+ UInt(ArenaChunk.usableByteCount(first))
    } else {
      cursor = 1
      limit = 0
    }
  }

  /// This arena's statistics.
  public var statistics: Statistics {
    var result = Statistics()
    result.allocationCount = allocationCount
    result.resetCount = resetCount
    result.fallbackCount = fallbackCount
    result.allocatedByteCount = retiredByteCount
    if let current = currentChunk {
      result.allocatedByteCount += Int(bitPattern: cursor &- ArenaChunk.dataStart(current))
    }
    var chunk = firstChunk
    while let current = chunk {
      chunk = ArenaChunk.next(current)
      result.chunkCount += 1
      result.mappedByteCount += ArenaChunk.mappingByteCount(current)
      switch ArenaChunk.backing(current) {
      case .hugePages: result.hugePageByteCount += ArenaChunk.mappingByteCount(current)
      case .locked: result.lockedByteCount += ArenaChunk.mappingByteCount(current)
      default: break
      }
    }
    return result
  }

  /// A snapshot of an arena's statistics.
  public struct Statistics: Sendable, Equatable {
    /// Allocations since the arena was created.
    public var allocationCount = 0
    /// Bytes handed out since the last reset (alignment padding and skipped chunk tails included).
    public var allocatedByteCount = 0
    /// Chunks mapped.
    public var chunkCount = 0
    /// Bytes of the chunks mapped (headers included).
    public var mappedByteCount = 0
    /// Bytes of chunks on explicit huge pages.
    public var hugePageByteCount = 0
    /// Bytes of chunks locked in memory.
    public var lockedByteCount = 0
    /// Chunks that asked for huge or locked pages and got normal ones.
    public var fallbackCount = 0
    /// Calls to ``SwallocArena/reset(releasingMemory:)``.
    public var resetCount = 0
  }
}

/// Runs `body` with a new arena and releases the arena's memory when it returns. Nothing allocated in the
/// arena may escape `body`.
public func withArena<Result, Failure: Error>(
  chunkByteCount: Int = 1 << 20, backing: SwallocArena.Backing = .normal,
  _ body: (inout SwallocArena) throws(Failure) -> Result
) throws(Failure) -> Result {
  var arena = SwallocArena(chunkByteCount: chunkByteCount, backing: backing)
  return try body(&arena)
}

/// The header at the start of each arena chunk: the next chunk, the mapping's size, and its backing.
enum ArenaChunk {
  static let headerByteCount = 64
  static let hugePageByteCount = 2 << 20

  static func next(_ chunk: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    chunk.load(as: UnsafeMutableRawPointer?.self)
  }

  static func setNext(_ chunk: UnsafeMutableRawPointer, _ next: UnsafeMutableRawPointer?) {
    chunk.storeBytes(of: next, as: UnsafeMutableRawPointer?.self)
  }

  static func mappingByteCount(_ chunk: UnsafeMutableRawPointer) -> Int {
    chunk.load(fromByteOffset: 8, as: Int.self)
  }

  static func backing(_ chunk: UnsafeMutableRawPointer) -> SwallocArena.Backing {
    switch chunk.load(fromByteOffset: 16, as: UInt8.self) {
    case 1: return .transparentHugePages
    case 2: return .hugePages
    case 3: return .locked
    default: return .normal
    }
  }

  static func dataStart(_ chunk: UnsafeMutableRawPointer) -> UInt {
    UInt(bitPattern: chunk + headerByteCount)
  }

  static func usableByteCount(_ chunk: UnsafeMutableRawPointer) -> Int {
    mappingByteCount(chunk) - headerByteCount
  }

  /// Maps a chunk of at least `byteCount` usable bytes. Huge and locked backings fall back to normal pages
  /// when the kernel refuses them (counted in `fallbackCount`).
  static func map(byteCount: Int, backing: SwallocArena.Backing, fallbackCount: inout Int)
    -> UnsafeMutableRawPointer?
  {
    let wanted = byteCount + headerByteCount
    if wanted < byteCount { return nil }
    let hugeRounded = (wanted + hugePageByteCount - 1) & ~(hugePageByteCount - 1)
    let pageRounded = (wanted + OSMemory.pageByteCount - 1) & ~(OSMemory.pageByteCount - 1)
    var chunk: UnsafeMutableRawPointer? = nil
    var mappedByteCount = pageRounded
    var actual = backing
    switch backing {
    case .hugePages:
      chunk = OSMemory.reserveAligned(byteCount: hugeRounded, alignment: hugePageByteCount, flags: MAP_HUGETLB)
      mappedByteCount = hugeRounded
    case .locked:
      chunk = OSMemory.reserveAligned(byteCount: pageRounded, alignment: OSMemory.pageByteCount,
                                      flags: MAP_LOCKED)
    case .transparentHugePages:
      chunk = OSMemory.reserveAligned(byteCount: hugeRounded, alignment: hugePageByteCount)
      mappedByteCount = hugeRounded
      if let chunk { OSMemory.adviseHugePages(chunk, byteCount: hugeRounded) }
    case .normal:
      break
    }
    if chunk == nil {
      if backing == .hugePages || backing == .locked { fallbackCount += 1 }
      actual = .normal
      mappedByteCount = pageRounded
      chunk = OSMemory.reserve(byteCount: pageRounded)
    }
    guard let chunk else { return nil }
    setNext(chunk, nil)
    chunk.storeBytes(of: mappedByteCount, toByteOffset: 8, as: Int.self)
    let code: UInt8
    switch actual {
    case .normal: code = 0
    case .transparentHugePages: code = 1
    case .hugePages: code = 2
    case .locked: code = 3
    }
    chunk.storeBytes(of: code, toByteOffset: 16, as: UInt8.self)
    return chunk
  }

  static func release(_ chunk: UnsafeMutableRawPointer) {
    OSMemory.release(chunk, byteCount: mappingByteCount(chunk))
  }

  /// Gives a chunk's pages (all but the header's) back to the kernel; pinned chunks keep theirs.
  static func purge(_ chunk: UnsafeMutableRawPointer) {
    let kind = backing(chunk)
    if kind == .hugePages || kind == .locked { return }
    let start = OSMemory.pageByteCount
    OSMemory.purge(chunk + start, byteCount: mappingByteCount(chunk) - start)
  }
}
