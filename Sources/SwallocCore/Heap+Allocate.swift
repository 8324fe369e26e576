// Heap+Allocate: the malloc fast path (direct slot, pop) and the slow path that finds or makes a page.
import CShim
import Synchronization

extension Heap {
  /// malloc's fast path: one TLS load, one direct-slot load, a free-list pop. Everything else is out of line.
  @inline(__always)
  static func allocate(byteCount: Int) -> UnsafeMutableRawPointer? {
    let heap = swalloc_heap_get()
    if UInt(bitPattern: byteCount) <= UInt(SizeClass.directMaxByteCount) {
      let page = Heap(heap).directPage((byteCount &+ 15) &>> 4)
      if let block = page.pointee.free {
        page.pointee.free = nextBlock(block)
        // The freed marker goes (Heap.free): a later free of the block is no double free.
        block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
        page.pointee.used &+= 1
        Heap(heap).state.pointee.mallocCount &+= 1
        return block
      }
    }
    return allocateSlow(heap: Heap(heap), byteCount: byteCount)
  }

  /// Everything malloc's fast path does not handle: the first allocation of a thread, sizes above 1 KiB,
  /// an empty current page. Sets `ENOMEM` on failure.
  @inline(never)
  static func allocateSlow(heap: Heap, byteCount: Int) -> UnsafeMutableRawPointer? {
    var heap = heap
    // Secure mode: the TLS slot is always the empty heap; the thread's heap is in the secure slot. (Secure
    // malloc has tried the direct slot already; C++ new and calloc come here and pop from the queue.)
    if Options.secure { heap = Heap(swalloc_secure_heap_get()) }
    if heap.isEmpty {
      guard let initialized = Heap.initializeForThread() else {
        swalloc_errno_set(ENOMEM)
        return nil
      }
      heap = initialized
    }
    // Secure mode: a class with room for the trailer where its blocks are sealed (every class at full,
    // above 1 KiB at 1); `allocate(sizeClass:byteCount:)` seals the block it pops (SecureCanary.swift).
    let wanted = Options.secure ? Secure.sealedRequest(byteCount) : byteCount
    if UInt(bitPattern: wanted) > UInt(SizeClass.largeMaxByteCount) {
      let block = HugeSpan.allocate(byteCount: byteCount, alignment: 16, zeroed: nil)
      if SamplePoints.isEnabled, let block { SamplePoints.countHuge(block, byteCount: byteCount, heap: heap) }
      return block
    }
    return heap.allocate(sizeClass: SizeClass.of(byteCount: wanted), byteCount: byteCount)
  }

  /// Allocates a block of `sizeClass` from this heap (the calling thread's) for a request of `byteCount`
  /// bytes aligned to `alignment` (what a sample taken here must honour). Sets `ENOMEM` on failure.
  func allocate(sizeClass: Int, byteCount: Int, alignment: Int = 16) -> UnsafeMutableRawPointer? {
    var page = queue(sizeClass).pointee.first
    if page == nil || page!.pointee.free == nil {
      // A sample point waits on the first page (SamplePoints.swift), or its list is empty: find another.
      if page == nil || page!.pointee.samplePoint == 0 {
        page = findPage(sizeClass: sizeClass)
        if page == nil {
          swalloc_errno_set(ENOMEM)
          return nil
        }
      }
      // No free block: the list handed out has a sample point at its start, or one was waiting.
      if page!.pointee.free == nil,
        let sampled = takeSample(page!, byteCount: byteCount, alignment: alignment)
      {
        return sampled
      }
    }
    return handOutBlock(page!, byteCount: byteCount)
  }

  /// Pops the first block of `page.free` (which must not be empty) for a request of `byteCount` bytes, and
  /// counts it (secure mode: checked, and sealed where its class is: SecureCanary.swift).
  @inline(__always)
  func handOutBlock(_ page: UnsafeMutablePointer<Page>, byteCount: Int) -> UnsafeMutableRawPointer {
    if Options.secure {
      // Only a block popped from a page list is sealed: a sampled block (guarded slot, sample slot, span)
      // is not a page block and goes its own way on free.
      let block = Secure.pop(page)
      let blockByteCount = page.pointee.blockByteCount
      if Secure.isSealed(blockByteCount: blockByteCount) {
        Secure.seal(block, byteCount: byteCount, blockByteCount: blockByteCount)
      }
      page.pointee.used &+= 1
      state.pointee.mallocCount &+= 1
      return block
    }
    let block = page.pointee.free.unsafelyUnwrapped
    page.pointee.free = nextBlock(block)
    block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
    page.pointee.used &+= 1
    state.pointee.mallocCount &+= 1
    return block
  }

  /// Finds a page of `sizeClass` with a free block and makes it the current one: collects frees into the
  /// pages of the queue, extends them, moves exhausted ones to the full list, and maps a new page last.
  @inline(never)
  func findPage(sizeClass: Int) -> UnsafeMutablePointer<Page>? {
    processDelayed()
    var candidate = queue(sizeClass).pointee.first
    while let page = candidate {
      let following = page.pointee.next
      if page.pointee.free == nil {
        // The local frees are about to become the free list. A head that links to itself is a block freed
        // twice in a row. One load: a refill hands out as few as 20 blocks (pair.c's mixed sizes), so a
        // 16-link walk here cost 11 instructions per malloc there.
        if !Options.secure, let head = page.pointee.localFree, nextBlock(head) == head { setAside(page, lastFreed: head) }
        // SWALLOC_SECURE=full: a large page carves all of its blocks before it hands a freed one out again
        // (SecureLargeBlocks.swift); it collects after. (Tested after `secure`: the default mode's refill
        // runs the instructions it ran before.)
        if !Options.secure || !Secure.defersReuse(page) { page.collect() }
      }
      if page.pointee.free == nil && page.pointee.capacity < page.pointee.reserved { page.extend(heap: self) }
      // SWALLOC_SECURE=full: a large page with nothing else left takes back a block it parked.
      if page.pointee.free == nil && Options.secureFull { Secure.unpark(page) }
      if page.pointee.free != nil {
        moveToFront(page, sizeClass: sizeClass)
        if SamplePoints.isEnabled { SamplePoints.handOutFresh(page, heap: self) }
        return page
      }
      // Exhausted. Park it on the full list, asking the next remote free to report it; if a remote free
      // slipped in since `collect`, the compare-and-swap fails and the page is collected again instead.
      if page.pointee.threadFree.compareExchange(
        expected: NotifyState.none, desired: NotifyState.notify, ordering: .relaxed
      ).exchanged {
        unlink(page, sizeClass: sizeClass)
        pushFull(page)
        candidate = following
      } else {
        candidate = page
      }
    }
    let page = newPage(sizeClass: sizeClass)
    if SamplePoints.isEnabled, let page { SamplePoints.handOutFresh(page, heap: self) }
    return page
  }

  /// Takes a free page from one of this heap's segments (or a new segment) and formats it for `sizeClass`.
  func newPage(sizeClass: Int) -> UnsafeMutablePointer<Page>? {
    purgeIfDue(now: nil)
    let kind = SizeClass.pageKind(sizeClass)
    var segment: UnsafeMutablePointer<Segment>
    switch kind {
    case .small, .medium:
      if let available = kind == .small ? state.pointee.availableSmall : state.pointee.availableMedium {
        segment = available
      } else {
        guard let fresh = acquireSegment(kind: kind) else { return nil }
        segment = fresh
        addAvailable(segment)
      }
    case .large, .huge:
      guard let fresh = acquireSegment(kind: .large) else { return nil }
      segment = fresh
    }
    let index = segment.takeFreePage()
    if segment.pointee.freeMask == 0 && segment.pointee.isAvailable { removeAvailable(segment) }

    let page = segment.page(at: index)
    let area = segment.pageArea(at: index)
    let blockByteCount = SizeClass.blockByteCount(sizeClass)
    page.pointee.threadFree.store(NotifyState.none, ordering: .relaxed)
    page.pointee.free = nil
    page.pointee.localFree = nil
    // SWALLOC_SECURE=1: a page of sealed blocks carries the sealed tag (Page.sealedTag).
    let sealed = Options.secure && !Options.secureFull && Secure.isSealed(blockByteCount: blockByteCount)
    page.pointee.ownerWord.store(UInt(bitPattern: base) | (sealed ? Page.sealedTag : 0), ordering: .relaxed)
    page.pointee.used = 0
    page.pointee.state = .inUse
    page.pointee.sizeClass = UInt8(sizeClass)
    page.clearCarving()
    page.pointee.reserved = Int32(area.byteCount / blockByteCount)
    page.pointee.blockByteCount = blockByteCount
    page.pointee.reciprocal = Page.reciprocal(of: blockByteCount)
    page.pointee.start = area.start
    page.pointee.nextDelayed = nil
    page.pointee.emptySince = 0
    page.pointee.held = nil
    page.pointee.heldCount = 0
    page.pointee.samplePoint = 0
    page.extend(heap: self)
    pushFront(page, sizeClass: sizeClass)
    Statistics.pageBytesInUse(adding: area.byteCount)
    return page
  }

  /// Takes the pages that remote frees reported while they were full, and puts them back in their queues.
  @inline(__always)
  func processDelayed() {
    if state.pointee.delayed.load(ordering: .relaxed) == 0 { return }
    processDelayedSlow()
  }

  @inline(never)
  func processDelayedSlow() {
    var word = state.pointee.delayed.exchange(0, ordering: .acquiring)
    while let page = UnsafeMutablePointer<Page>(bitPattern: word) {
      word = UInt(bitPattern: page.pointee.nextDelayed)
      page.pointee.nextDelayed = nil
      if page.pointee.isFull { moveFromFullToQueue(page) }
    }
  }

  /// A full page got a free block: back to the end of its queue, with the notify request cleared.
  func moveFromFullToQueue(_ page: UnsafeMutablePointer<Page>) {
    unlinkFull(page)
    var word = page.pointee.threadFree.load(ordering: .relaxed)
    while word & NotifyState.mask != NotifyState.none {
      let (exchanged, original) = page.pointee.threadFree.compareExchange(
        expected: word, desired: word & ~NotifyState.mask, ordering: .relaxed)
      if exchanged { break }
      word = original
    }
    pushBack(page, sizeClass: Int(page.pointee.sizeClass))
  }
}
