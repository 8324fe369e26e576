// LibC: the C library's allocation semantics on top of the heap, as glibc defines them (DESIGN.md section 4):
// errno, overflow, realloc(p, 0), alignment rules, usable size. The exported C symbols forward here.
import CShim

enum LibC {
  /// Alignment of every block (glibc's MALLOC_ALIGNMENT on x86-64).
  static let minimumAlignment = 16

  @inline(__always)
  static func malloc(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    Heap.allocate(byteCount: byteCount)
  }

  @inline(__always)
  static func free(_ pointer: UnsafeMutableRawPointer?) {
    Heap.free(pointer)
  }

  /// malloc inside calloc, realloc and the aligned family: secure mode's own entry point when it is on
  /// (its TLS slot keeps the default fast path on the empty heap, which would send each call to the slow
  /// path). One load and branch more than `malloc`; the exported malloc does not pay it.
  @inline(__always)
  static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    // SWALLOC_SECURE=full tested after the mode: the default path pays nothing more.
    Options.secure
      ? (Options.secureFull ? Secure.malloc(byteCount, full: true) : Secure.malloc(byteCount, full: false))
      : Heap.allocate(byteCount: byteCount)
  }

  /// free inside realloc and the sized frees, as `allocate`.
  @inline(__always)
  static func release(_ pointer: UnsafeMutableRawPointer?) {
    if Guarded.isEnabled, let pointer, Guarded.contains(pointer) { return Guarded.free(pointer, caller: 0) }
    if SamplePoints.isEnabled, let pointer, SampleSlots.contains(pointer) { return SampleSlots.free(pointer) }
    if Options.secure {
      if Options.secureFull { Secure.free(pointer, full: true) } else { Secure.free(pointer, full: false) }
    } else {
      Heap.free(pointer)
    }
  }

  static func calloc(_ count: Int, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    let (total, overflow) = UInt(bitPattern: count).multipliedReportingOverflow(by: UInt(bitPattern: byteCount))
    if overflow || total > UInt(Int.max) {
      swalloc_errno_set(ENOMEM)
      return nil
    }
    let n = Int(bitPattern: total)
    if n > SizeClass.largeMaxByteCount {
      var zeroed = false
      guard let block = HugeSpan.allocate(byteCount: n, alignment: minimumAlignment, zeroed: &zeroed) else {
        return nil
      }
      if !zeroed { memset(block, 0, n) }
      if SamplePoints.isEnabled { SamplePoints.countHuge(block, byteCount: n, heap: Heap.owned) }
      return block
    }
    guard let block = allocate(n) else { return nil }
    memset(block, 0, n)
    return block
  }

  static func realloc(_ pointer: UnsafeMutableRawPointer?, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    guard let pointer else { return allocate(byteCount) }
    if Guarded.isEnabled && Guarded.contains(pointer) {
      if byteCount == 0 {
        Guarded.free(pointer, caller: 0)
        return nil
      }
      return Guarded.reallocate(pointer, byteCount: byteCount, caller: 0)
    }
    if byteCount == 0 {
      // glibc: realloc(p, 0) frees p and returns NULL.
      release(pointer)
      return nil
    }
    // Secure mode: a page block is checked as free checks it (a live block start: a freed block, or a
    // pointer inside one, came back resized in place until 2026-12-07), a sealed one's seal too, and that one
    // is resized in place within its room. A block it checked and did not resize (level 1's direct classes,
    // or one that must move) comes with its usable size, not looked up again below; guarded and sample slots
    // and huge blocks go the general way. When it must move, it moves as any block does below (a block
    // growing past 64 KiB into a huge span with room to grow: moving it into each large class on the way made
    // level 1's realloc workload 1.6x slower).
    var mustMove = false
    var mayBeSampled = false
    let usable: Int
    switch Options.secure ? Secure.resizeInPlace(pointer, byteCount: byteCount) : .notPageBlock {
    case .resized:
      // A block the heap profiler samples where it is (level 1's sealed classes) keeps its sample.
      if SamplePoints.isEnabled { SamplePoints.resizedInPlace(pointer, byteCount: byteCount) }
      return pointer
    case .checked(let size, let sampled, let move):
      usable = size
      mayBeSampled = sampled
      mustMove = move
    case .notPageBlock:
      // A sampled block in a sample slot is resized like the block it stands for (its usable size is its
      // class's): in place where that block would stay (keeping its sample), else moved as that block would
      // be (a block growing past 64 KiB into a huge span with room to grow).
      usable = usableSize(pointer, mayBeSampled: &mayBeSampled)
    }
    if usable < 0 {
      // A slot that holds no live block is reported as its free would be.
      if mayBeSampled && SamplePoints.isEnabled && SampleSlots.contains(pointer) {
        release(pointer)
        swalloc_errno_set(ENOMEM)
        return nil
      }
      // Not ours: we cannot know how much to copy. Refuse rather than guess (secure mode: abort, saying what
      // the pointer is: a freed huge block, a pointer inside one, memory never handed out).
      if Options.secure {
        _ = SecureChecks.checkedUsableSize(pointer, function: "realloc()")
        Secure.fail(pointer, .foreign)
      }
      Diagnostics.invalidFree(pointer, reason: .foreign)
      swalloc_errno_set(ENOMEM)
      return nil
    }
    // Default mode: a freed block (free marked it) stays free; the program gets a new block with its copy.
    // (It came back resized in place, still on its page's free list, and was then handed out twice.)
    if !Options.secure && isFreedBlock(pointer, mayBeSampled: mayBeSampled) {
      Diagnostics.doubleFree(pointer, witness: .atRealloc)
      guard let block = allocate(byteCount) else { return nil }
      memcpy(block, pointer, Swift.min(usable, byteCount))
      return block
    }
    let requested = UInt(bitPattern: byteCount)
    // Shrink or grow within the block when the new size still uses at least half of it (a quarter for huge
    // blocks: giving back their tail and growing again later costs page faults).
    if !mustMove && requested <= UInt(usable)
      && requested >= UInt(usable > SizeClass.largeMaxByteCount ? usable / 4 : usable / 2)
    {
      if mayBeSampled && SamplePoints.isEnabled { SamplePoints.resizedInPlace(pointer, byteCount: byteCount) }
      return pointer
    }
    // A huge block grows or shrinks within its span (a larger reused one, or one mapped with room to grow)
    // without a copy.
    if requested > UInt(SizeClass.mediumMaxByteCount),
      let segment = SegmentMap.segment(of: UInt(bitPattern: pointer)), segment.pointee.kind == .huge,
      HugeSpan.resize(segment.page(at: 0), pointer, byteCount: byteCount, reuseFactor: hugeReuseFactor)
    {
      if SamplePoints.isEnabled { SamplePoints.resizedInPlace(pointer, byteCount: byteCount) }
      return pointer
    }
    // Huge blocks are not resized in place with mremap: the grown part would be faulted in fresh, while a
    // copy into a cached span (already backed, and usually larger, so later growth stays in place) costs no
    // faults. Measured on the realloc workload: 0.66 s with mremap growth, 0.50 s with copies; unmapping the
    // tail on a shrink made it 0.9 s (the chain grows back into it).
    // A block growing past 64 KiB becomes a huge span with room to grow in place: growth chains then copy
    // a geometric series instead of every size class on the way (realloc workload, full scale: 1.68 s ->
    // 1.3 s; jemalloc grows such blocks in place too).
    let growsLarge = requested > UInt(SizeClass.mediumMaxByteCount) && requested > UInt(usable)
    guard let block = growsLarge
      ? HugeSpan.allocate(byteCount: byteCount, alignment: minimumAlignment, zeroed: nil,
                          reuseFactor: hugeReuseFactor, spareFactor: 2)
      : allocate(byteCount)
    else { return nil }
    if growsLarge && SamplePoints.isEnabled { SamplePoints.countHuge(block, byteCount: byteCount, heap: Heap.owned) }
    memcpy(block, pointer, Swift.min(usable, byteCount))
    release(pointer)
    return block
  }

  /// Default mode: whether `pointer`, whose `usableSize` was not negative, is a freed page block (it carries
  /// the freed marker: Heap.freedMarker). `usable` >= 0 means a block of a page in use, unless `mayBeSampled`
  /// says it may be a huge block or a sample slot, whose memory may hold a stale marker: then the full check.
  /// realloc's and SwallocHeap.reallocate's check.
  @inline(__always)
  static func isFreedBlock(_ pointer: UnsafeMutableRawPointer, mayBeSampled: Bool) -> Bool {
    UInt(bitPattern: pointer) & 15 == 0
      && (mayBeSampled ? Heap.isFreedPageBlock(pointer)
        : pointer.load(fromByteOffset: 8, as: UInt.self) == Heap.freedMarker(UInt(bitPattern: pointer)))
  }

  /// How much larger than a growing huge block its span may be (a block that keeps growing fills it).
  static let hugeReuseFactor = 8

  static func reallocarray(_ pointer: UnsafeMutableRawPointer?, _ count: Int, _ byteCount: Int)
    -> UnsafeMutableRawPointer?
  {
    let (total, overflow) = UInt(bitPattern: count).multipliedReportingOverflow(by: UInt(bitPattern: byteCount))
    if overflow || total > UInt(Int.max) {
      swalloc_errno_set(ENOMEM)
      return nil
    }
    return realloc(pointer, Int(bitPattern: total))
  }

  /// A block of `byteCount` bytes aligned to `alignment`, a power of two. Sets `ENOMEM` on failure.
  static func allocateAligned(_ byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    if alignment <= minimumAlignment { return allocate(byteCount) }
    if byteCount < 0 {
      swalloc_errno_set(ENOMEM)
      return nil
    }
    var heap = Heap.owned
    if heap.isEmpty {
      guard let initialized = Heap.initializeForThread() else {
        swalloc_errno_set(ENOMEM)
        return nil
      }
      heap = initialized
    }
    // Secure mode: room for the trailer where the class is sealed; `allocate(sizeClass:byteCount:alignment:)`
    // seals the block it pops.
    let sizeClass = SizeClass.of(byteCount: Options.secure ? Secure.sealedRequest(byteCount) : byteCount,
                                 alignment: alignment)
    if sizeClass != 0 { return heap.allocate(sizeClass: sizeClass, byteCount: byteCount, alignment: alignment) }
    let block = HugeSpan.allocate(byteCount: byteCount, alignment: alignment, zeroed: nil)
    if SamplePoints.isEnabled, let block { SamplePoints.countHuge(block, byteCount: byteCount, heap: heap) }
    return block
  }

  static func posixMemalign(
    _ result: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ byteCount: Int
  ) -> Int32 {
    let a = UInt(bitPattern: alignment)
    if a < UInt(MemoryLayout<UnsafeRawPointer>.size) || a & (a &- 1) != 0 { return EINVAL }
    // Out of memory also leaves errno at ENOMEM, as glibc does (its allocator sets it, and glibc's own
    // RLIMIT_AS tests check it); the EINVAL answer above leaves errno alone, as glibc's does.
    guard let block = allocateAligned(byteCount, alignment: alignment) else { return ENOMEM }
    result.pointee = block
    return 0
  }

  /// C11 aligned_alloc: any size (not only multiples of the alignment); a non-power-of-two alignment is
  /// EINVAL (glibc 2.38 and later).
  static func alignedAlloc(_ alignment: Int, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    let a = UInt(bitPattern: alignment)
    if a == 0 || a & (a &- 1) != 0 {
      swalloc_errno_set(EINVAL)
      return nil
    }
    return allocateAligned(byteCount, alignment: alignment)
  }

  /// memalign: glibc rounds an alignment that is not a power of two up to the next one, and refuses
  /// alignments above half the address space with EINVAL.
  static func memalign(_ alignment: Int, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    var a = UInt(bitPattern: alignment)
    if a > UInt(Int.max) / 2 + 1 {
      swalloc_errno_set(EINVAL)
      return nil
    }
    if a & (a &- 1) != 0 { a = 1 &<< UInt(UInt.bitWidth - a.leadingZeroBitCount) }
    return allocateAligned(byteCount, alignment: Int(bitPattern: Swift.max(a, 1)))
  }

  static func valloc(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    allocateAligned(byteCount, alignment: OSMemory.pageByteCount)
  }

  /// pvalloc: page-aligned, size rounded up to whole pages (0 becomes one page).
  static func pvalloc(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    let page = UInt(OSMemory.pageByteCount)
    let n = UInt(bitPattern: byteCount)
    if n > UInt(Int.max) - page {
      swalloc_errno_set(ENOMEM)
      return nil
    }
    let rounded = n == 0 ? page : (n &+ page &- 1) & ~(page &- 1)
    return allocateAligned(Int(bitPattern: rounded), alignment: OSMemory.pageByteCount)
  }

  static func mallocUsableSize(_ pointer: UnsafeMutableRawPointer?) -> Int {
    guard let pointer else { return 0 }
    return Swift.max(0, usableSize(pointer))
  }

  /// The usable size of a live block, or -1 when the pointer is not a live Swalloc block.
  static func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
    var mayBeSampled = false
    return usableSize(pointer, mayBeSampled: &mayBeSampled)
  }

  /// The same; `mayBeSampled` is set when `pointer` may be a block the heap profiler sampled: a sample slot's,
  /// a huge span's, or a block of a page tagged as holding a sample (Profile.sampleInPage).
  @inline(__always)
  static func usableSize(_ pointer: UnsafeMutableRawPointer, mayBeSampled: inout Bool) -> Int {
    // Guarded blocks first: the region may share a 4 MiB unit of the segment map with a huge span.
    if Guarded.isEnabled && Guarded.contains(pointer) { return Guarded.usableSize(pointer) }
    if SamplePoints.isEnabled && SampleSlots.contains(pointer) {
      mayBeSampled = true
      return SampleSlots.usableSize(pointer)
    }
    let address = UInt(bitPattern: pointer)
    guard let segment = SegmentMap.segment(of: address) else { return -1 }
    if segment.pointee.kind == .huge {
      mayBeSampled = true
      let page = segment.page(at: 0)
      // Only the block's own address: the rest of the 4 MiB unit past a short span may be someone else's.
      if page.pointee.state != .huge || pointer != page.pointee.start { return -1 }
      return page.pointee.blockByteCount
    }
    let page = segment.page(containing: address)
    if page.pointee.state != .inUse { return -1 }
    // A page block sampled where it is (Profile.sampleInPage).
    if page.pointee.owner & Page.sampledTag != 0 { mayBeSampled = true }
    let offset = pointer - page.pointee.start!
    if offset < 0 { return -1 }
    // Interior pointers get what is left of their block: the offset past the block's start from the block
    // index, which the page's reciprocal gives exactly for any offset in the page (a 64-bit division before:
    // realloc and malloc_usable_size paid for one each call).
    let blockByteCount = page.pointee.blockByteCount
    let index = Page.blockIndex(offset: UInt(bitPattern: offset), reciprocal: page.pointee.reciprocal)
    let inside = offset &- Int(bitPattern: index) &* blockByteCount
    if Options.secure && Secure.isSealed(blockByteCount: blockByteCount) {
      // A parked block (freed; none of it readable) has none.
      if Secure.isParked(pointer - inside, page) { return -1 }
      // What the program asked for (the canary and trailer follow: SecureCanary.swift).
      return Swift.max(0, Secure.requestedSize(pointer - inside, blockByteCount: blockByteCount) - inside)
    }
    return blockByteCount - inside
  }
}
