// Heap+User: the core side of first-class heaps (`SwallocHeap`). A user heap is an ordinary heap that no
// thread's TLS slot points at: its owner allocates from it explicitly, any thread may free into it (a remote
// free, as for thread heaps), and `destroyUser` gives every segment and huge span it holds back at once.
// Normal Swift only (not part of libswalloc.so).
import CShim
import Glibc
import Synchronization

/// Destroyed user heaps, ready for the next `SwallocHeap()` (a Treiber stack like `heapPool`). They stay in
/// the registry; a heap is 4 KiB, so a program that creates and destroys heaps in a loop reuses one.
let userHeapPool = Atomic<UInt>(0)

/// Figures for one user heap (see `SwallocHeap.Statistics`).
struct UserHeapFigures {
  var allocationCount = 0
  var liveBlockCount = 0
  var liveByteCount = 0
  var pageByteCount = 0
  var segmentCount = 0
  var hugeBlockCount = 0
  var hugeByteCount = 0
  var pendingRemoteFreeCount = 0
}

extension Heap {
  /// A new user heap owned by the calling thread, or nil when the kernel refuses memory.
  static func makeUserHeap() -> Heap? {
    Options.initializeIfNeeded()
    guard let heap = popPool(userHeapPool) ?? makeHeap() else { return nil }
    heap.state.pointee.isOwned = true
    heap.state.pointee.isUserHeap = true
    heap.state.pointee.ownerThread = UInt(pthread_self())
    return heap
  }

  /// Whether the calling thread owns this user heap.
  var isOwnedByCallingThread: Bool { state.pointee.ownerThread == UInt(pthread_self()) }

  /// Hands the heap to the calling thread (after the handle moved to it).
  func adoptByCallingThread() { state.pointee.ownerThread = UInt(pthread_self()) }

  /// Allocates `byteCount` bytes from this user heap (owning thread only). The fast path is malloc's, with
  /// the heap given instead of read from the TLS slot. Nil when memory is exhausted or the size impossible.
  @inline(__always)
  func allocateUser(byteCount: Int) -> UnsafeMutableRawPointer? {
    if UInt(bitPattern: byteCount) <= UInt(SizeClass.directMaxByteCount) && !Options.userHeapsChecked {
      let page = directPage((byteCount &+ 15) &>> 4)
      if let block = page.pointee.free {
        page.pointee.free = nextBlock(block)
        block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
        page.pointee.used &+= 1
        state.pointee.mallocCount &+= 1
        return block
      }
    }
    return allocateUserSlow(byteCount: byteCount, alignment: LibC.minimumAlignment)
  }

  /// Sizes above 1 KiB, over-aligned requests, an empty current page. `alignment` is a power of two.
  @inline(never)
  func allocateUserSlow(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    checkOwner()
    if byteCount < 0 { return nil }
    // Secure mode: room for the trailer where the class is sealed; `allocate(sizeClass:byteCount:alignment:)`
    // seals the block it pops (SecureCanary.swift).
    let wanted = Options.secure ? Secure.sealedRequest(byteCount) : byteCount
    let sizeClass = alignment <= LibC.minimumAlignment
      ? (wanted > SizeClass.largeMaxByteCount ? 0 : SizeClass.of(byteCount: wanted))
      : SizeClass.of(byteCount: wanted, alignment: alignment)
    if sizeClass != 0 { return allocate(sizeClass: sizeClass, byteCount: byteCount, alignment: alignment) }
    let block = HugeSpan.allocate(byteCount: byteCount, alignment: Swift.max(alignment, LibC.minimumAlignment),
                                  zeroed: nil, owner: self)
    if SamplePoints.isEnabled, let block { SamplePoints.countHuge(block, byteCount: byteCount, heap: self) }
    return block
  }

  /// Frees `block` on the thread that owns this heap. A block of this heap goes on its page's local list;
  /// a block of another heap (or a huge block) takes the path any thread's free takes.
  @inline(__always)
  func deallocateUser(_ block: UnsafeMutableRawPointer) {
    if Options.userHeapsChecked {
      if Guarded.isEnabled && Guarded.contains(block) { return Guarded.free(block, caller: 0) }
      // A profiler sample slot is no segment either (Secure.free would call it foreign).
      if SamplePoints.isEnabled && SampleSlots.contains(block) { return SampleSlots.free(block) }
      if Options.secure { return Secure.free(block, heap: self) }
    }
    let address = UInt(bitPattern: block)
    if SegmentMap.entry(address) == 1 {
      let slot = Heap.descriptorSlot(address)
      let page = Heap.pageAt(slot)
      if page.pointee.owner == UInt(bitPattern: base) {
        // As Heap.free: a pointer into a block is no block, and a block with its freed marker is free already.
        if !Page.isAtBlockBoundary(address, page) {
          return Diagnostics.invalidFree(block, reason: .interior)
        }
        if !Heap.markFreed(block) { return Diagnostics.doubleFree(block, witness: .atFree) }
        setNextBlock(block, page.pointee.localFree)
        page.pointee.localFree = block
        page.pointee.used &-= 1
        if page.pointee.used != 0 { return }
        return retireEmptied(page, lastFreed: block)
      }
      return deallocateUserSlow(block, slot)
    }
    Heap.free(block)
  }

  @inline(never)
  func deallocateUserSlow(_ block: UnsafeMutableRawPointer, _ slot: UInt) {
    var page = Heap.pageAt(slot)
    if page.pointee.state == .stub {
      let segment = page.segment
      page = segment.page(ofSlice: segment.index(ofSlice: page))
    }
    guard page.pointee.owner & ~Page.tagMask == UInt(bitPattern: base), page.pointee.state == .inUse else {
      // Another heap's block, a huge block, or no block at all: free() sorts these out.
      return Heap.free(block)
    }
    if !Secure.isBlockStart(UInt(bitPattern: block), page) { return Diagnostics.invalidFree(block, reason: .interior) }
    freeOwned(page, block)
  }

  /// Whether `block` is the start of a live block of this heap (page blocks: inside a page of this heap at
  /// a block boundary; huge blocks: a span on this heap's list).
  func ownsBlock(_ block: UnsafeMutableRawPointer) -> Bool {
    if Guarded.isEnabled && Guarded.contains(block) { return Guarded.owner(of: block) == UInt(bitPattern: base) }
    if SamplePoints.isEnabled && SampleSlots.contains(block) { return SampleSlots.owner(of: block) == UInt(bitPattern: base) }
    let address = UInt(bitPattern: block)
    guard let segment = SegmentMap.segment(of: address) else { return false }
    if segment.pointee.kind == .huge {
      let page = segment.page(at: 0)
      return segment.pointee.heap == base && page.pointee.state == .huge && page.pointee.start == block
    }
    if segment.pointee.heap != base { return false }
    let page = segment.page(containing: address)
    guard page.pointee.state == .inUse, let start = page.pointee.start else { return false }
    return block >= start && Page.isAtBlockBoundary(address, page)
  }

  /// Traps unless the calling thread owns this heap (checked on slow paths only: it costs a call).
  func checkOwner() {
    if !isOwnedByCallingThread {
      fatalError("SwallocHeap used on a thread that does not own it (allocate and destroy on the owning "
        + "thread; free from any thread with SwallocHeap.deallocate(_:))")
    }
  }

  /// Moves remote frees onto the pages' lists and gives back every empty page (`SwallocHeap.collect`).
  /// With `purge`, the free pages' memory also goes back to the kernel now.
  func collectUser(purge: Bool) {
    collectAndRetireEmptyPages()
    if purge { purgePages(now: swalloc_now_ms(), force: true) }
  }

  /// Releases every page, segment and huge span of this user heap, whatever blocks are still live, and puts
  /// the heap in the pool of destroyed heaps.
  func destroyUser() {
    checkOwner()
    processDelayed()
    // Its guarded blocks are freed too (a use after destroy then faults).
    if Guarded.isEnabled { Guarded.freeAll(ownedBy: UInt(bitPattern: base)) }
    if SamplePoints.isEnabled { SampleSlots.freeAll(ownedBy: UInt(bitPattern: base)) }
    // Huge spans: take the list, then free each span (no longer linked, so `HugeSpan.free` skips the unlink).
    lockHugeSpans()
    var span = state.pointee.hugeSpans
    state.pointee.hugeSpans = nil
    unlockHugeSpans()
    while let segment = span {
      span = segment.pointee.nextInHeap
      segment.pointee.heap = nil
      let page = segment.page(at: 0)
      HugeSpan.free(page, page.pointee.start!)
    }
    // Segments: every page in use becomes free (a stale free into it is then reported, not honoured), and the
    // segment goes back like any empty one (span cache, purged beyond its budget, or the kernel).
    let now = swalloc_now_ms()
    while let segment = state.pointee.segments {
      for index in 0..<Int(segment.pointee.pageCount) {
        let page = segment.page(at: index)
        if page.pointee.state != .inUse { continue }
        page.collect()
        Statistics.pageBytesInUse(adding: -segment.pageArea(at: index).byteCount)
        page.pointee.state = .free
        page.pointee.heap = nil
        page.pointee.free = nil
        page.pointee.localFree = nil
        page.pointee.held = nil
        page.pointee.heldCount = 0
        page.pointee.samplePoint = 0
        page.pointee.threadFree.store(0, ordering: .relaxed)
        page.clearCarving()
        page.pointee.reserved = 0
        page.pointee.next = nil
        page.pointee.previous = nil
        page.pointee.nextDelayed = nil
        page.pointee.retiredAt = now
        segment.returnPage(at: index)
      }
      releaseSegment(segment)
    }
    // Huge allocations are counted globally already.
    Statistics.destroyedHeapAllocationCount.wrappingAdd(state.pointee.mallocCount, ordering: .relaxed)
    Statistics.destroyedHeapCollectedRemoteFrees.wrappingAdd(
      state.pointee.collectedRemoteFreeCount, ordering: .relaxed)
    // Back to the state of a new heap (the registry link stays: the registry is push-only).
    let registryLink = state.pointee.nextInRegistry
    memset(base + Heap.stateOffset, 0, Heap.byteCount - Heap.stateOffset)
    state.pointee.nextInRegistry = registryLink
    resetDirectSlots()
    pushPool(userHeapPool)
  }

  /// This user heap's figures. Owning thread; remote frees not yet collected are counted as pending.
  func userFigures() -> UserHeapFigures {
    var figures = UserHeapFigures()
    figures.allocationCount = state.pointee.mallocCount &+ state.pointee.hugeAllocationCount
    var candidate = state.pointee.segments
    while let segment = candidate {
      candidate = segment.pointee.nextInHeap
      figures.segmentCount += 1
      for index in 0..<Int(segment.pointee.pageCount) {
        let page = segment.page(at: index)
        if page.pointee.state != .inUse { continue }
        figures.pageByteCount += segment.pageArea(at: index).byteCount
        // Blocks other threads freed wait on `threadFree` until collected; this thread alone takes that list,
        // so walking it from a loaded head is safe while others push.
        var pending = 0
        var word = page.pointee.threadFree.load(ordering: .acquiring) & ~NotifyState.mask
        while let block = UnsafeMutableRawPointer(bitPattern: word) {
          pending += 1
          word = UInt(bitPattern: Options.secure ? Secure.threadFreeNext(block, page) : nextBlock(block))
        }
        let used = usedBlockCount(page) - pending
        figures.pendingRemoteFreeCount += pending
        figures.liveBlockCount += used
        figures.liveByteCount += used * page.pointee.blockByteCount
      }
    }
    lockHugeSpans()
    var span = state.pointee.hugeSpans
    while let segment = span {
      span = segment.pointee.nextInHeap
      figures.hugeBlockCount += 1
      figures.hugeByteCount += segment.page(at: 0).pointee.blockByteCount
    }
    unlockHugeSpans()
    figures.liveBlockCount += figures.hugeBlockCount
    figures.liveByteCount += figures.hugeByteCount
    return figures
  }
}
