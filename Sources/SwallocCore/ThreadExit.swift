// ThreadExit: a thread's heap is created (or taken from the pool) on its first slow path, and at thread exit
// it is tidied and pooled for the next thread, live pages and all: nothing is lost per exited thread, and
// remote frees into its pages keep working. The pool and the registry are lock-free (fork-safe).
import CShim
import Synchronization

/// The pool of heaps whose threads exited: a Treiber stack of heap addresses (page-aligned) with a
/// 16-bit version tag in the top bits against ABA.
let heapPool = Atomic<UInt>(0)
/// Every heap ever created, newest first (push-only): statistics walk it.
let heapRegistry = Atomic<UInt>(0)

extension Heap {
  static let addressMask: UInt = (1 << 48) - 1

  /// Gives the calling thread a heap: a pooled one, or a new one. Registers the thread-exit hook.
  @inline(never)
  static func initializeForThread() -> Heap? {
    Options.initializeIfNeeded()
    guard let heap = popPool(heapPool) ?? makeHeap() else { return nil }
    heap.state.pointee.isOwned = true
    // Secure mode: the TLS slot stays at the empty heap (every malloc and free takes its checking slow path).
    if Options.secure { swalloc_secure_heap_set(heap.base) } else { swalloc_heap_set(heap.base) }
    // pthread_setspecific may allocate for high keys; the TLS slot is already set, so that nests safely.
    swalloc_thread_register(heap.base)
    return heap
  }

  /// Maps and registers a new heap: every direct slot at the empty page, empty queues and lists.
  static func makeHeap() -> Heap? {
    guard let memory = OSMemory.reserve(byteCount: Heap.byteCount) else { return nil }
    Statistics.mapped(adding: Heap.byteCount)
    let heap = Heap(memory)
    heap.resetDirectSlots()
    // The rest of the mapping is zero: empty queues, empty lists, zero counters.
    var head = heapRegistry.load(ordering: .relaxed)
    while true {
      heap.state.pointee.nextInRegistry = UnsafeMutableRawPointer(bitPattern: head)
      let (pushed, original) = heapRegistry.compareExchange(
        expected: head, desired: UInt(bitPattern: memory), ordering: .releasing)
      if pushed { return heap }
      head = original
    }
  }

  /// Points every direct slot at the static empty page.
  func resetDirectSlots() {
    let emptyPage = Heap.emptyPage
    for index in 0..<Int(SWALLOC_DIRECT_COUNT) {
      base.storeBytes(of: emptyPage, toByteOffset: index &<< 3, as: UnsafeMutablePointer<Page>.self)
    }
  }

  /// Pops a heap from `pool` (`heapPool`, or the Swift API's pool of destroyed heaps).
  static func popPool(_ pool: borrowing Atomic<UInt>) -> Heap? {
    var word = pool.load(ordering: .acquiring)
    while true {
      guard let top = UnsafeMutableRawPointer(bitPattern: word & addressMask) else { return nil }
      let next = Heap(top).state.pointee.nextInPool
      let tag = (word &>> 48) &+ 1
      let (popped, original) = pool.compareExchange(
        expected: word, desired: (next & addressMask) | (tag &<< 48), ordering: .acquiring)
      if popped { return Heap(top) }
      word = original
    }
  }

  /// Pushes this heap on `pool`.
  func pushPool(_ pool: borrowing Atomic<UInt>) {
    state.pointee.isOwned = false
    var word = pool.load(ordering: .relaxed)
    while true {
      state.pointee.nextInPool = word & Heap.addressMask
      let tag = (word &>> 48) &+ 1
      let (pushed, original) = pool.compareExchange(
        expected: word, desired: UInt(bitPattern: base) | (tag &<< 48), ordering: .releasing)
      if pushed { return }
      word = original
    }
  }

  /// Collects remote frees, retires every empty page (the current ones too) and purges all free pages now.
  func trim() {
    collectAndRetireEmptyPages()
    purgePages(now: swalloc_now_ms(), force: true)
  }

  /// Tidies the heap of an exiting thread: collects remote frees, retires every empty page (the current
  /// ones too), purges the free pages that are due, and pools the heap.
  func abandon() {
    collectAndRetireEmptyPages()
    // Purge what is due, not everything: under thread churn the next thread adopts this heap within
    // milliseconds, and purging its free pages now would only make it fault them in again (mstress at scale
    // 0.3: 2153 madvise calls and 33 000 page faults with a forced purge, 314 and 14 000 without). Until
    // then they stay resident, at most one heap's worth (malloc_trim purges them).
    purgeIfDue(now: nil)
    pushPool(heapPool)
  }

  func collectAndRetireEmptyPages() {
    processDelayed()
    // Pages on the full list that received remote frees go back to their queues first.
    var candidate = state.pointee.fullFirst
    while let page = candidate {
      candidate = page.pointee.next
      if page.collect() > 0 { moveFromFullToQueue(page) }
    }
    for sizeClass in 1..<SizeClass.count {
      var next = queue(sizeClass).pointee.first
      while let page = next {
        next = page.pointee.next
        page.collect()
        if usedBlockCount(page) == 0 { retire(page) }
      }
    }
  }
}

/// Called by the pthread key destructor when a thread that allocated exits.
@_cdecl("swalloc_core_thread_exit")
func swallocCoreThreadExit(_ heapAddress: UnsafeMutableRawPointer) {
  let heap = Heap(heapAddress)
  if heap.isEmpty || !heap.state.pointee.isOwned { return }
  // Later thread-exit destructors may still allocate: they start from the empty heap again, and get
  // a (pooled) heap and another destructor round.
  if swalloc_heap_get() == heapAddress { swalloc_heap_set(swalloc_empty_heap_address()) }
  if swalloc_secure_heap_get() == heapAddress { swalloc_secure_heap_set(swalloc_empty_heap_address()) }
  heap.abandon()
}

/// Called from the library constructor (after the first allocations, which may come earlier).
@_cdecl("swalloc_core_process_init")
func swallocCoreProcessInit() {
  Options.initializeIfNeeded()
}

/// Called in a forked child, in the thread that forked, before fork returns there (a pthread_atfork handler
/// that the library constructor installs; CShim.c has already cleared that thread's profiler generator).
/// The child inherits every generator's state: without new seeds it would carve blocks in the same orders
/// as its parent and its siblings (secure mode), and guard and profile the same allocations, so a fleet of
/// forked workers (a pre-forking server, a process pool) would sample one process's allocations many times
/// over instead of independent ones. The keys of secure mode's free lists, freed markers and canaries stay:
/// the lists and blocks the child inherited are encoded with them.
@_cdecl("swalloc_core_fork_child")
func swallocCoreForkChild() {
  Secure.reseed()
  Guarded.reseed()
  // Every heap's countdowns and block-order state: drawn again from the new seeds when next needed (the
  // heaps of the parent's other threads stay unused in the child, but a countdown of 0 is never wrong).
  var word = heapRegistry.load(ordering: .acquiring)
  while let address = UnsafeMutableRawPointer(bitPattern: word) {
    let state = Heap(address).state
    state.pointee.profileCountdown = 0
    state.pointee.guardedCountdown = 0
    state.pointee.orderState = 0
    word = UInt(bitPattern: state.pointee.nextInRegistry)
  }
}

/// Called from the library destructor at exit: prints statistics when asked to.
@_cdecl("swalloc_core_process_exit")
func swallocCoreProcessExit() {
  // Only libswalloc.so prints: the Swift API's state (its heaps) is read through `SwallocStatistics.heaps`,
  // and a program using both would otherwise print two tables.
  #if hasFeature(Embedded)
  if Options.showStatistics != .off { Statistics.print() }
  Profile.atExit()
  #endif
}

/// Whether secure mode is on: `swalloc run`'s handshake (Handshake.c) reports it.
@_cdecl("swalloc_core_is_secure")
func swallocCoreIsSecure() -> Int32 {
  Options.secure ? 1 : 0
}
