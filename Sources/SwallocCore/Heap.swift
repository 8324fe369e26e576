// Heap: one per thread, reached through the initial-exec TLS slot. Owns segments and pages; its direct slots
// let malloc of up to 1 KiB reach the current page of its size class with one indexed load.
import CShim
import Synchronization

/// A heap's mutable state, at `Heap.stateOffset` inside its mapping. Touched only by the owning thread,
/// except `delayed` (pushed by other threads).
struct HeapState: ~Copyable {
  /// Allocations served from pages (huge spans are counted globally). Fast path (malloc).
  var mallocCount: Int
  /// Pages that remote frees found on the full list: a Treiber stack linked through `Page.nextDelayed`.
  /// Other threads push; the owner takes the whole list.
  let delayed: Atomic<UInt>
  /// The full list: pages with no free block left (and `NotifyState.notify` set).
  var fullFirst: UnsafeMutablePointer<Page>?
  /// Every segment this heap owns (linked through `nextInHeap`).
  var segments: UnsafeMutablePointer<Segment>?
  /// Segments with free pages, per kind (linked through `nextAvailable`).
  var availableSmall: UnsafeMutablePointer<Segment>?
  var availableMedium: UnsafeMutablePointer<Segment>?
  /// Link in the pool of heaps of exited threads (see ThreadExit.swift).
  var nextInPool: UInt
  /// Link in the registry of every heap ever created (statistics).
  var nextInRegistry: UnsafeMutableRawPointer?
  /// Frees this thread made into other heaps' pages, and frees other threads made into this heap's pages
  /// that it has collected.
  var remoteFreeCount: Int
  var collectedRemoteFreeCount: Int
  /// Earliest time (monotonic ms) at which a free page becomes due for purging; 0 when none is pending.
  var purgeDueAt: UInt64
  /// When the current pages are next checked for idleness (see `retireIdleCurrentPages`).
  var idleCheckDueAt: UInt64
  /// Whether a thread currently owns this heap (false while pooled).
  var isOwned: Bool
  /// A first-class heap of the Swift API (`SwallocHeap`), not a thread's: it is never bound to the TLS slot,
  /// and `destroy` releases everything it holds.
  var isUserHeap: Bool
  /// The thread that may allocate from a user heap (`pthread_self`); checked on its slow paths.
  var ownerThread: UInt
  /// A user heap's huge spans (linked through `Segment.nextInHeap`), so that `destroy` releases them too.
  /// Guarded by `hugeLock`: a huge block may be freed from any thread.
  var hugeSpans: UnsafeMutablePointer<Segment>?
  let hugeLock: Atomic<Bool>
  /// Huge blocks a user heap has allocated (page allocations are `mallocCount`).
  var hugeAllocationCount: Int
  /// Bytes until the heap profiler's next sample, and allocations until guarded sampling's next one (0: to
  /// be drawn). Counted by the slow path as it hands out free lists (SamplePoints.swift).
  var profileCountdown: Int
  var guardedCountdown: Int
  /// Secure mode's generator of block orders (Secure.orderBits): a splitmix64 counter, 0 until seeded.
  var orderState: UInt
}

/// The head and tail of the list of pages of one size class that may have free blocks. The first page is
/// the current one: the heap's direct slots point at it, and it holds one extra `used` count, so that a free
/// that empties it does not take the slow path (a loop of malloc and free of one object stays on the fast
/// paths). `current` is the page holding that count: `current == first` after every queue operation.
struct PageQueue {
  var first: UnsafeMutablePointer<Page>?
  var last: UnsafeMutablePointer<Page>?
  var current: UnsafeMutablePointer<Page>?
}

/// A non-owning handle to a heap's memory: direct slots at offset 0, `HeapState`, then the page queues.
struct Heap: Equatable {
  let base: UnsafeMutableRawPointer

  static let stateOffset = 576
  static let queuesOffset = 1024
  static let byteCount = 4096

  @inline(__always)
  init(_ base: UnsafeMutableRawPointer) { self.base = base }

  /// The calling thread's heap: the static empty heap until its first allocation slow path.
  @inline(__always)
  static var current: Heap { Heap(swalloc_heap_get()) }

  @inline(__always)
  static var empty: Heap { Heap(swalloc_empty_heap_address()) }

  @inline(__always)
  static var emptyPage: UnsafeMutablePointer<Page> {
    swalloc_empty_heap_address().load(as: UnsafeMutablePointer<Page>.self)
  }

  @inline(__always)
  var isEmpty: Bool { base == swalloc_empty_heap_address() }

  @inline(__always)
  var state: UnsafeMutablePointer<HeapState> {
    (base + Heap.stateOffset).assumingMemoryBound(to: HeapState.self)
  }

  /// The page that serves requests of `index * 16` bytes (index 0 ... 64). Fast path (malloc).
  @inline(__always)
  func directPage(_ index: Int) -> UnsafeMutablePointer<Page> {
    base.load(fromByteOffset: index &<< 3, as: UnsafeMutablePointer<Page>.self)
  }

  @inline(__always)
  func queue(_ sizeClass: Int) -> UnsafeMutablePointer<PageQueue> {
    (base + Heap.queuesOffset + sizeClass &* MemoryLayout<PageQueue>.stride)
      .assumingMemoryBound(to: PageQueue.self)
  }

  /// After the first page of `sizeClass` changed: moves the current page's extra count to the new first page
  /// and points the direct slots at it (or at the empty page).
  func firstChanged(_ sizeClass: Int) {
    let queue = queue(sizeClass)
    let first = queue.pointee.first
    if let previous = queue.pointee.current, previous != first { previous.pointee.used &-= 1 }
    if let first, first != queue.pointee.current { first.pointee.used &+= 1 }
    queue.pointee.current = first
    // (In secure mode the TLS slot stays at the empty heap: these slots serve `Secure.allocate` only.)
    if sizeClass > SizeClass.of(byteCount: SizeClass.directMaxByteCount) { return }
    let page = first ?? Heap.emptyPage
    // Slots whose 16-byte granule count rounds up into this class: (previous block size, block size]. In
    // secure mode slot 0 (malloc(0)) keeps the empty page: its slow path answers with inaccessible memory.
    let low = sizeClass == 1 ? (Options.secure ? 1 : 0) : SizeClass.blockByteCount(sizeClass - 1) / 16 + 1
    let high = SizeClass.blockByteCount(sizeClass) / 16
    for index in low...high {
      base.storeBytes(of: page, toByteOffset: index &<< 3, as: UnsafeMutablePointer<Page>.self)
    }
  }

  /// Blocks of `page` in use by the program (without the current page's extra count).
  func usedBlockCount(_ page: UnsafeMutablePointer<Page>) -> Int {
    Int(page.pointee.used) - (queue(Int(page.pointee.sizeClass)).pointee.current == page ? 1 : 0)
  }

  // MARK: queue and full-list links

  func pushFront(_ page: UnsafeMutablePointer<Page>, sizeClass: Int) {
    let queue = queue(sizeClass)
    page.pointee.previous = nil
    page.pointee.next = queue.pointee.first
    if let first = queue.pointee.first { first.pointee.previous = page } else { queue.pointee.last = page }
    queue.pointee.first = page
    firstChanged(sizeClass)
  }

  func pushBack(_ page: UnsafeMutablePointer<Page>, sizeClass: Int) {
    let queue = queue(sizeClass)
    page.pointee.next = nil
    page.pointee.previous = queue.pointee.last
    if let last = queue.pointee.last { last.pointee.next = page } else {
      queue.pointee.first = page
      firstChanged(sizeClass)
    }
    queue.pointee.last = page
  }

  func unlink(_ page: UnsafeMutablePointer<Page>, sizeClass: Int) {
    let queue = queue(sizeClass)
    let next = page.pointee.next
    let previous = page.pointee.previous
    if let next { next.pointee.previous = previous } else { queue.pointee.last = previous }
    if let previous { previous.pointee.next = next } else {
      queue.pointee.first = next
      firstChanged(sizeClass)
    }
    page.pointee.next = nil
    page.pointee.previous = nil
  }

  func moveToFront(_ page: UnsafeMutablePointer<Page>, sizeClass: Int) {
    if queue(sizeClass).pointee.first == page { return }
    unlink(page, sizeClass: sizeClass)
    pushFront(page, sizeClass: sizeClass)
  }

  func pushFull(_ page: UnsafeMutablePointer<Page>) {
    page.pointee.isFull = true
    page.pointee.previous = nil
    page.pointee.next = state.pointee.fullFirst
    if let first = state.pointee.fullFirst { first.pointee.previous = page }
    state.pointee.fullFirst = page
  }

  func unlinkFull(_ page: UnsafeMutablePointer<Page>) {
    let next = page.pointee.next
    let previous = page.pointee.previous
    if let next { next.pointee.previous = previous }
    if let previous { previous.pointee.next = next } else { state.pointee.fullFirst = next }
    page.pointee.next = nil
    page.pointee.previous = nil
    page.pointee.isFull = false
  }
}
