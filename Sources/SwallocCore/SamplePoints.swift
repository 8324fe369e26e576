// SamplePoints: how the heap profiler and guarded sampling choose their allocations without a single
// instruction on malloc's fast path. Every block the fast path hands out comes off a page's `free` list, and
// every `free` list is handed to the fast path by the slow path (`findPage`: a collected or extended list).
// So the slow path counts the list's blocks against the heap's two countdowns (the profiler's, in bytes; guarded
// sampling's, in allocations) when it hands the list out. When a countdown runs out inside the list, the list
// is cut just before that block: the program pops the blocks before the cut on the fast path, and the next
// allocation from the page finds `free` empty, takes the slow path, and is the sample (`Heap.takeSample`). The
// blocks after the cut wait in `Page.held` and are handed out again, counted afresh, after the sample.
//
// Each block is counted exactly once, when it is handed out in a list (blocks left on a list that is never
// emptied were counted without being allocated: a countdown that runs out on one of them samples nothing).
// Sampling stays a Poisson process over the allocated bytes: lists of different classes are counted in the
// order they are handed out rather than the order their blocks are popped, and an exponential countdown has no
// memory, so each block of `b` bytes is still sampled with probability 1 - exp(-b/rate), independently.
// Allocations that take no block off a list (huge blocks, realloc in place) are counted where they happen.
import CShim

enum SamplePoints {
  /// The profiler's bit in `Page.samplePoint`.
  static let profile: UInt8 = 1
  /// Guarded sampling's bit.
  static let guarded: UInt8 = 2

  /// Whether either sampler is on. Set once, when the options are read, before any list is handed out with
  /// it; only slow paths read it.
  @exclusivity(unchecked) nonisolated(unsafe) static var isEnabled = false

  /// Called by `findPage` when it makes `page` (its queue's first page, holding the extra count) the page
  /// allocations pop from, its `free` list fresh and `localFree` and `held` empty: counts the list.
  @inline(never)
  static func handOutFresh(_ page: UnsafeMutablePointer<Page>, heap: Heap) {
    // used counts live blocks, blocks other threads freed not yet collected, and the current page's extra
    // count; every other block of the carved capacity is on `free` or `localFree` (`held` is empty here).
    var count = Int(page.pointee.capacity) - Int(page.pointee.used) + 1
    if page.pointee.localFree != nil || count <= 0 { count = freeListLength(page, blocksOnBoth: count) }
    // Most lists hold no sample point: a multiplication and a comparison per sampler (no division) decide it.
    let blockByteCount = page.pointee.blockByteCount
    let state = heap.state
    let profileLeft = state.pointee.profileCountdown
    let guardedLeft = state.pointee.guardedCountdown
    let profileClear = !Profile.isActive || profileLeft > count &* blockByteCount
    let guardedEligible = Guarded.isEnabled && blockByteCount <= Guarded.maximumByteCount
    let guardedClear = !guardedEligible || guardedLeft > count
    if profileClear && guardedClear {
      if Profile.isActive { state.pointee.profileCountdown = profileLeft &- count &* blockByteCount }
      if guardedEligible { state.pointee.guardedCountdown = guardedLeft &- count }
      return
    }
    handOut(page, count: count, heap: heap)
  }

  /// Counts the `count` blocks of `page.free` against `heap`'s countdowns; when one runs out inside the list,
  /// cuts the list before the block where it does and marks the page with the samplers due.
  static func handOut(_ page: UnsafeMutablePointer<Page>, count: Int, heap: Heap) {
    if count <= 0 || page.pointee.free == nil { return }
    let blockByteCount = page.pointee.blockByteCount
    let state = heap.state
    var blocksBefore = Int.max
    var profileBlocks = Int.max
    var guardedBlocks = Int.max
    if Profile.isActive {
      if state.pointee.profileCountdown <= 0 { state.pointee.profileCountdown = Sampler.nextByteCountdown() }
      profileBlocks = (state.pointee.profileCountdown &+ blockByteCount &- 1) / blockByteCount
      blocksBefore = profileBlocks
    }
    let guardedEligible = Guarded.isEnabled && blockByteCount <= Guarded.maximumByteCount
    if guardedEligible {
      if state.pointee.guardedCountdown <= 0 { state.pointee.guardedCountdown = Guarded.nextCountdown() }
      guardedBlocks = state.pointee.guardedCountdown
      blocksBefore = Swift.min(blocksBefore, guardedBlocks)
    }
    if blocksBefore > count {
      state.pointee.profileCountdown &-= count &* blockByteCount
      if guardedEligible { state.pointee.guardedCountdown &-= count }
      return
    }
    // The sample is the `blocksBefore`-th allocation from the list. The countdowns that ran out start again
    // after it; the other one counts the blocks before it and the sampled allocation itself.
    var due: UInt8 = 0
    if profileBlocks == blocksBefore {
      due |= profile
      state.pointee.profileCountdown = 0
    } else {
      state.pointee.profileCountdown &-= blocksBefore &* blockByteCount
    }
    if guardedBlocks == blocksBefore {
      due |= guarded
      state.pointee.guardedCountdown = 0
    } else if guardedEligible {
      state.pointee.guardedCountdown &-= blocksBefore
    }
    let kept = blocksBefore &- 1
    if kept == 0 {
      page.pointee.held = page.pointee.free
      page.pointee.free = nil
    } else {
      var last = page.pointee.free.unsafelyUnwrapped
      for _ in 1..<kept { last = next(last).unsafelyUnwrapped }
      page.pointee.held = next(last)
      setNext(last, nil)
    }
    page.pointee.heldCount = Int32(truncatingIfNeeded: count &- kept)
    page.pointee.samplePoint = due
  }

  /// The length of `page.free` when `localFree` is not empty either (a page handed out again with a list it
  /// had not used up, after an adopted heap's thread exited, say), `blocksOnBoth` being the two lists' blocks
  /// together. It walks `localFree`, this thread's own recent frees (short, and in this core's cache), not
  /// `free`: that one may be hundreds of blocks other threads freed, each a cache line another core holds,
  /// walked one dependent load after another (mstress walked 1.2 million of them, 390 a walk, against 5.6 on
  /// `localFree`: +15 % of its time with profiling on). Walks `free` itself where the sum cannot be trusted.
  static func freeListLength(_ page: UnsafeMutablePointer<Page>, blocksOnBoth: Int) -> Int {
    if blocksOnBoth > 0 && page.pointee.held == nil {
      let remaining = blocksOnBoth &- listLength(page.pointee.localFree)
      if remaining > 0 { return remaining }
    }
    return listLength(page.pointee.free)
  }

  /// The blocks of a list (error paths and unusual states only: it walks the list).
  static func listLength(_ list: UnsafeMutableRawPointer?) -> Int {
    var count = 0
    var block = list
    while let current = block {
      count &+= 1
      block = next(current)
    }
    return count
  }

  /// Puts `page`'s held blocks back on its `free` list and drops its sample point (the page is being retired
  /// or set aside, whose checks walk the lists).
  static func mergeHeld(_ page: UnsafeMutablePointer<Page>) {
    page.pointee.samplePoint = 0
    page.pointee.heldCount = 0
    guard let held = page.pointee.held else { return }
    page.pointee.held = nil
    guard var last = page.pointee.free else {
      page.pointee.free = held
      return
    }
    while let following = next(last) { last = following }
    setNext(last, held)
  }

  /// Links of `free` lists in either mode (secure mode encodes them).
  @inline(__always)
  static func next(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    Options.secure ? Secure.next(block) : nextBlock(block)
  }

  @inline(__always)
  static func setNext(_ block: UnsafeMutableRawPointer, _ following: UnsafeMutableRawPointer?) {
    if Options.secure { Secure.setNext(block, following) } else { setNextBlock(block, following) }
  }

  // MARK: allocations that take no block off a list

  /// A huge block `block` (`byteCount` bytes, its own span) was just allocated for the program on `heap`'s
  /// thread: counted down; when the profiler's countdown runs out it is recorded where it is.
  static func countHuge(_ block: UnsafeMutableRawPointer, byteCount: Int, heap: Heap) {
    if !Profile.isActive || heap.isEmpty { return }
    let state = heap.state
    if state.pointee.profileCountdown <= 0 { state.pointee.profileCountdown = Sampler.nextByteCountdown() }
    state.pointee.profileCountdown &-= Swift.max(byteCount, 1)
    if state.pointee.profileCountdown > 0 { return }
    state.pointee.profileCountdown = 0
    Profile.recordHere(block, byteCount: byteCount, chargedByteCount: byteCount)
  }

  /// realloc kept `block` where it was with `byteCount` bytes. In-place resizing is no allocation (unsampled
  /// blocks resized in place are not counted either): a sampled block keeps its sample, and its live bytes
  /// become its new size times the objects it stands for. (Dropping the sample and counting the resized block
  /// afresh made a sampled growth chain of 1 MiB count 1 MiB at every 64-byte step: the realloc workload's
  /// profile claimed 83 GB allocated, and sampling again at every step cost it 10 % of its time.)
  static func resizedInPlace(_ block: UnsafeMutableRawPointer, byteCount: Int) {
    if Profile.isActive { Profile.resized(block, byteCount: byteCount) }
  }
}

extension Heap {
  /// The allocation at a sample point: `page` (the first of its queue) has an empty `free` list and a sample
  /// point. Hands the held blocks out again (counted afresh), then serves the allocation from the samplers
  /// due. Nil when they decline (no guarded slot free, no span for the profiler): `page.free` then has a block.
  @inline(never)
  func takeSample(_ page: UnsafeMutablePointer<Page>, byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    let due = page.pointee.samplePoint
    let count = Int(page.pointee.heldCount)
    page.pointee.free = page.pointee.held
    page.pointee.held = nil
    page.pointee.heldCount = 0
    page.pointee.samplePoint = 0
    var block: UnsafeMutableRawPointer? = nil
    // A sample in place takes the first held block, the one the countdown ran out on: the rest are counted.
    if due & SamplePoints.profile != 0 && Profile.samplesInPage(page, heap: self) {
      block = Profile.sampleInPage(page, heap: self, byteCount: byteCount)
    }
    SamplePoints.handOut(page, count: block == nil ? count : count &- 1, heap: self)
    if block == nil && due & SamplePoints.profile != 0 {
      block = Profile.sampleAllocation(byteCount: byteCount, alignment: alignment,
                                       chargedByteCount: page.pointee.blockByteCount,
                                       owner: state.pointee.isUserHeap ? self : nil)
    }
    if block == nil && due & SamplePoints.guarded != 0 {
      block = Guarded.allocate(byteCount: byteCount, alignment: alignment > LibC.minimumAlignment ? alignment : 0,
                               caller: 0, heap: state.pointee.isUserHeap ? UInt(bitPattern: base) : 0)
    }
    if block == nil && page.pointee.free == nil {
      // Declined, and the list was cut again at its first block: the program's allocation takes that block.
      SamplePoints.mergeHeld(page)
    }
    return block
  }
}
