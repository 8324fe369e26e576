// OSMemory: the only file that calls mmap, munmap, madvise and mprotect (guard pages, guarded slots, freed blocks
// made inaccessible). Every call preserves the caller's errno (free must not change errno; a failed purge is not
// the program's business).
import CShim

/// Thin wrappers over the kernel's memory calls.
enum OSMemory {
  static let pageByteCount = 4096

  /// Maps `byteCount` bytes of fresh, zeroed, private anonymous memory; nil when the kernel refuses.
  /// The corresponding call is `mmap(MAP_PRIVATE | MAP_ANONYMOUS)` (plus `MAP_NORESERVE`: commit is lazy anyway).
  static func reserve(byteCount: Int) -> UnsafeMutableRawPointer? {
    let saved = swalloc_errno_get()
    defer { swalloc_errno_set(saved) }
    let address = mmap(nil, byteCount, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if address == UnsafeMutableRawPointer(bitPattern: UInt.max) { return nil }  // MAP_FAILED
    return address
  }

  /// Reserves `byteCount` bytes of address space that faults on every access (guarded sampling's region:
  /// its slots are opened page by page). The corresponding call is `mmap(PROT_NONE)`.
  static func reserveInaccessible(byteCount: Int) -> UnsafeMutableRawPointer? {
    let saved = swalloc_errno_get()
    defer { swalloc_errno_set(saved) }
    let address = mmap(nil, byteCount, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if address == UnsafeMutableRawPointer(bitPattern: UInt.max) { return nil }  // MAP_FAILED
    return address
  }

  /// Maps `byteCount` bytes aligned to `alignment` (a power of two >= the page size).
  /// Maps `byteCount + alignment` and releases the unaligned head and the tail.
  static func reserveAligned(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    guard let raw = reserve(byteCount: byteCount + alignment) else { return nil }
    let address = UInt(bitPattern: raw)
    let aligned = (address &+ UInt(alignment) &- 1) & ~(UInt(alignment) &- 1)
    let head = Int(aligned &- address)
    if head > 0 { release(raw, byteCount: head) }
    let tail = alignment - head
    if tail > 0 { release(UnsafeMutableRawPointer(bitPattern: aligned &+ UInt(byteCount))!, byteCount: tail) }
    return UnsafeMutableRawPointer(bitPattern: aligned)
  }

  /// Maps `byteCount` bytes at an `alignment`-aligned address with extra `flags` (MAP_HUGETLB, MAP_LOCKED,
  /// MAP_POPULATE) that apply to exactly those bytes; nil when the kernel refuses. Explicit huge pages are
  /// committed at mmap time (no MAP_NORESERVE: a later fault cannot then fail with SIGBUS), and none are spent
  /// on alignment slack.
  ///
  /// A mapping the kernel may refuse is first asked for where the kernel likes (no MAP_FIXED), so that a refusal
  /// leaves nothing behind: Linux refuses a MAP_FIXED huge-page mapping (no free huge pages) only after it has
  /// unmapped what was in the way, and the hole it leaves in the alignment reservation is anyone's. Another
  /// thread's mmap took it, and unmapping the whole reservation then unmapped that thread's fresh mapping (its
  /// segment vanished or was replaced: crashes in SWALLOC_HUGE_PAGES=explicit with no huge pages free, where
  /// every segment took this path). When the first mapping is not aligned it goes, and an aligned one replaces
  /// the aligned part of an inaccessible reservation; should that fail (another taker of huge pages got there
  /// in between), only the reservation's slack on either side, ours for certain, is unmapped. MAP_LOCKED is
  /// applied with mlock once the mapping stands (a refusal then leaves a whole mapping of ours to unmap), and
  /// MAP_POPULATE with MADV_POPULATE_WRITE (a populated first mapping may be thrown away).
  /// The corresponding calls are `mmap`, `mmap(PROT_NONE)`, `mmap(MAP_FIXED | flags)`, `munmap`, `mlock` and
  /// `madvise(MADV_POPULATE_WRITE)`.
  static func reserveAligned(byteCount: Int, alignment: Int, flags: Int32) -> UnsafeMutableRawPointer? {
    let saved = swalloc_errno_get()
    defer { swalloc_errno_set(saved) }
    let failed = UnsafeMutableRawPointer(bitPattern: UInt.max)  // MAP_FAILED
    let mapFlags = MAP_PRIVATE | MAP_ANONYMOUS | (flags & ~(MAP_LOCKED | MAP_POPULATE))
    guard var mapped = mmap(nil, byteCount, PROT_READ | PROT_WRITE, mapFlags, -1, 0), mapped != failed else {
      return nil
    }
    if UInt(bitPattern: mapped) & UInt(alignment &- 1) != 0 {
      _ = munmap(mapped, byteCount)
      let slackByteCount = byteCount + alignment
      let area = mmap(nil, slackByteCount, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
      if area == failed { return nil }
      let start = UInt(bitPattern: area)
      let aligned = (start &+ UInt(alignment) &- 1) & ~(UInt(alignment) &- 1)
      let end = aligned &+ UInt(byteCount)
      let slackEnd = start &+ UInt(slackByteCount)
      if aligned > start { _ = munmap(area, Int(aligned &- start)) }
      if slackEnd > end { _ = munmap(UnsafeMutableRawPointer(bitPattern: end), Int(slackEnd &- end)) }
      guard let fixed = mmap(UnsafeMutableRawPointer(bitPattern: aligned), byteCount, PROT_READ | PROT_WRITE,
                             mapFlags | MAP_FIXED, -1, 0), fixed != failed
      else { return nil }  // the aligned part is left alone: it may be a hole that is someone else's by now
      mapped = fixed
    }
    if flags & MAP_LOCKED != 0 && mlock(mapped, byteCount) != 0 {
      _ = munmap(mapped, byteCount)
      return nil
    }
    if flags & MAP_POPULATE != 0 { _ = madvise(mapped, byteCount, MADV_POPULATE_WRITE) }
    return mapped
  }

  /// Moves the mapping of `byteCount` bytes at `address` to a fresh `alignment`-aligned place of `newByteCount`
  /// bytes (larger): its pages move without a fault, the rest is fresh. Nil when the kernel refuses (the old
  /// mapping is then untouched). The corresponding calls are `mmap`, `munmap` and
  /// `mremap(MREMAP_MAYMOVE | MREMAP_FIXED)`.
  static func move(_ address: UnsafeMutableRawPointer, byteCount: Int, growingTo newByteCount: Int, alignment: Int)
    -> UnsafeMutableRawPointer?
  {
    guard let target = reserveAligned(byteCount: newByteCount, alignment: alignment) else { return nil }
    if swalloc_move_mapping(address, byteCount, newByteCount, target) != 0 { return target }
    releaseIfStillOurs(target, byteCount: newByteCount)
    return nil
  }

  /// After a refused MAP_FIXED mmap or MREMAP_FIXED mremap onto a range of ours: the kernel may have unmapped
  /// the range before refusing (mremap does when it runs out of mappings), leaving a hole that another thread's
  /// mmap may have taken by now. Unmaps the range only when it is ours for certain: taken back whole with
  /// MAP_FIXED_NOREPLACE (it was a hole, and nobody else's yet). Where any of it is mapped, whose it is cannot
  /// be told (ours, untouched because the refusal came first, or another thread's): it is left alone, and at
  /// worst a mapping of untouched memory leaks (no memory, address space only), after a refusal that comes
  /// only to a process short of mappings or memory.
  static func releaseIfStillOurs(_ address: UnsafeMutableRawPointer, byteCount: Int) {
    let saved = swalloc_errno_get()
    defer { swalloc_errno_set(saved) }
    let taken = mmap(address, byteCount, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
                     -1, 0)
    if taken == address { _ = munmap(address, byteCount) }
    // A kernel before 4.17 takes the flag for a hint and maps elsewhere.
    else if taken != UnsafeMutableRawPointer(bitPattern: UInt.max), let taken { _ = munmap(taken, byteCount) }
  }

  /// Asks the kernel to back a range with transparent huge pages. The corresponding call is
  /// `madvise(MADV_HUGEPAGE)`.
  static func adviseHugePages(_ address: UnsafeMutableRawPointer, byteCount: Int) {
    let saved = swalloc_errno_get()
    _ = madvise(address, byteCount, MADV_HUGEPAGE)
    swalloc_errno_set(saved)
  }

  /// Returns a mapping to the kernel. The corresponding call is `munmap`.
  static func release(_ address: UnsafeMutableRawPointer, byteCount: Int) {
    let saved = swalloc_errno_get()
    _ = munmap(address, byteCount)
    swalloc_errno_set(saved)
  }

  /// Drops the physical pages behind a range; the next touch gets zeroed pages. RSS drops at once.
  /// The corresponding call is `madvise(MADV_DONTNEED)` (not MADV_FREE: with it RSS stops dropping).
  static func purge(_ address: UnsafeMutableRawPointer, byteCount: Int) {
    let saved = swalloc_errno_get()
    _ = madvise(address, byteCount, MADV_DONTNEED)
    swalloc_errno_set(saved)
  }

  /// Drops the physical pages behind a range of a private anonymous `MAP_NORESERVE` mapping and makes it
  /// inaccessible, in one call: a fresh inaccessible mapping replaces the range (`mmap(MAP_FIXED, PROT_NONE)`).
  /// `mprotect` then `madvise` would flush the other CPUs' TLBs twice; in a process whose other threads run,
  /// each flush is an interrupt to every CPU running it (a VM exit per CPU on a virtual machine): 32 us
  /// against 16 us a guarded free and reuse on this project's 2-core VM, measured. When the kernel refuses,
  /// the range is made inaccessible and purged with the two calls.
  static func discardInaccessible(_ address: UnsafeMutableRawPointer, byteCount: Int) {
    let saved = swalloc_errno_get()
    defer { swalloc_errno_set(saved) }
    let mapped = mmap(address, byteCount, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0)
    if mapped == address { return }
    if mprotect(address, byteCount, PROT_NONE) == 0 {
      _ = madvise(address, byteCount, MADV_DONTNEED)
      return
    }
    // Part of the range is unmapped: the kernel unmapped it before refusing. Taken back, inaccessible, where
    // no other thread's mmap has got there first.
    _ = mmap(address, byteCount, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0)
  }

  /// Makes a range inaccessible, or readable and writable again; false when the kernel refuses (with
  /// `ENOMEM` when the split would exceed `vm.max_map_count`). The corresponding call is `mprotect`.
  static func protect(_ address: UnsafeMutableRawPointer, byteCount: Int, accessible: Bool) -> Bool {
    let saved = swalloc_errno_get()
    let result = mprotect(address, byteCount, accessible ? PROT_READ | PROT_WRITE : PROT_NONE)
    swalloc_errno_set(saved)
    return result == 0
  }

  /// Where diagnostics go: standard error, or a duplicate of it taken at start-up when statistics are to be
  /// printed at exit (some programs close standard error before exiting: coreutils' close_stdout does).
  @exclusivity(unchecked) nonisolated(unsafe) static var errorDescriptor: Int32 = 2

  /// Keeps a private duplicate of standard error for the statistics printed at exit.
  static func keepStandardError() {
    let saved = swalloc_errno_get()
    let duplicate = swalloc_duplicate_descriptor(2)
    if duplicate >= 0 { errorDescriptor = duplicate }
    swalloc_errno_set(saved)
  }

  /// Writes `byteCount` bytes to standard error, ignoring failures. The corresponding call is `write(2)`.
  static func writeStandardError(_ bytes: UnsafeRawPointer, byteCount: Int) {
    let saved = swalloc_errno_get()
    var offset = 0
    while offset < byteCount {
      let written = write(errorDescriptor, bytes + offset, byteCount - offset)
      if written <= 0 { break }
      offset += written
    }
    swalloc_errno_set(saved)
  }
}
