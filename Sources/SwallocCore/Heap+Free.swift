// Heap+Free: the free fast path (segment map, mask, shift, push on the page's local list), the remote free
// (one compare-and-swap on the page's thread-free list) and page retirement.
import CShim
import Synchronization

extension Heap {
  /// free's fast path: segment map, mask, shift, and a push on the page's local list. `block` may be nil.
  @inline(__always)
  static func free(_ block: UnsafeMutableRawPointer?) {
    let address = UInt(bitPattern: block)
    // Null, foreign and 4 MiB-aligned huge pointers all have a map entry other than 1.
    var slot: UInt = 0
    let unit = SegmentMap.unit(address)
    if SegmentMap.entry(unit: unit) == 1 {
      // The segment's address from its unit number: address & ~Segment.mask for every user-space address,
      // in one shift of the register that holds the unit (a copy and a mask from the address took two).
      let segmentAddress = unit &<< UInt(Segment.shift)
      slot = segmentAddress &+ descriptorOffset(address)
      let page = pageAt(slot)
      if page.pointee.owner == UInt(bitPattern: swalloc_heap_get()) {
        // A block that carries its freed marker is free already: reported and ignored (freedMarker).
        let block = block.unsafelyUnwrapped
        // Only a block's start is pushed: a pointer into a block would be handed out over the live block.
        if !Page.isAtBlockBoundary(address, page) {
          return freedInside(block)
        }
        if block.load(fromByteOffset: 8, as: UInt.self) == segmentAddress { return freedTwice(block) }
        block.storeBytes(of: segmentAddress, toByteOffset: 8, as: UInt.self)
        setNextBlock(block, page.pointee.localFree)
        page.pointee.localFree = block
        page.pointee.used &-= 1
        // A queue's current page holds one extra count: `used` reaches 0 only on pages that can be retired.
        if page.pointee.used != 0 { return }
      }
    }
    // One call site, not in tail position: the fast path then needs no stack frame. The page goes along as
    // its descriptor slot (0: no page), which keeps its address computation to one instruction.
    freeSlow(block, slot)
    swalloc_after_slow_call()
  }

  /// A free of a pointer into a block, not at its start (default mode): reported and ignored (pushed, it
  /// would be handed out over the live block). Out of line, entered by a jump: the fast path saves nothing.
  @inline(never)
  static func freedInside(_ block: UnsafeMutableRawPointer) {
    Diagnostics.invalidFree(block, reason: .interior)
  }

  /// A free of a block that carries its freed marker (default mode): a double free, reported and ignored.
  /// Out of line, entered by a jump: the fast path saves nothing for it.
  @inline(never)
  static func freedTwice(_ block: UnsafeMutableRawPointer) {
    Diagnostics.doubleFree(block, witness: .atFree)
  }

  /// The default mode's freed marker of a page block at `address` (word 8 of a freed block): the address of
  /// its segment, which free's fast path has in a register: one compare and one store there, no key to load.
  /// It is the segment's header, which no program is given a pointer to: a live block holds it only if the
  /// program copied it out of a freed block. Every hand-out clears word 8 (malloc's fast path,
  /// `handOutBlock`, the Swift API's heaps), so a block that carries its marker is free. (Secure mode has its
  /// own keyed marker: Secure.freedMarker.)
  @inline(__always)
  static func freedMarker(_ address: UInt) -> UInt { address & ~Segment.mask }

  /// Whether `block` (in a page in use) carries its freed marker, and if not, marks it: the check and the
  /// store of the frees the fast path does not push.
  @inline(__always)
  static func markFreed(_ block: UnsafeMutableRawPointer) -> Bool {
    let marker = freedMarker(UInt(bitPattern: block))
    if block.load(fromByteOffset: 8, as: UInt.self) == marker { return false }
    block.storeBytes(of: marker, toByteOffset: 8, as: UInt.self)
    return true
  }

  /// Default mode: whether `pointer` is a 16-byte aligned address of a page in use that carries its freed
  /// marker, a freed block (slow paths: realloc). Huge blocks carry none (their span's memory may hold a
  /// marker of the pages it held before).
  static func isFreedPageBlock(_ pointer: UnsafeMutableRawPointer) -> Bool {
    let address = UInt(bitPattern: pointer)
    guard address & 15 == 0, let segment = SegmentMap.segment(of: address), segment.pointee.kind != .huge else {
      return false
    }
    let page = segment.page(containing: address)
    guard page.pointee.state == .inUse, let start = page.pointee.start, pointer >= start else { return false }
    return pointer.load(fromByteOffset: 8, as: UInt.self) == freedMarker(address)
  }

  /// The address of the descriptor of the 64 KiB slice that holds `address`, less
  /// `Segment.pageDescriptorOffset`; the address's segment-map entry must be 1.
  @inline(__always)
  static func descriptorSlot(_ address: UInt) -> UInt {
    // Wrapping arithmetic: the segment map said a segment starts in this unit.
    (address & ~Segment.mask) &+ descriptorOffset(address)
  }

  /// `descriptorSlot(address)`'s offset from its segment's address.
  @inline(__always)
  static func descriptorOffset(_ address: UInt) -> UInt {
    ((address & Segment.mask) &>> UInt(Segment.sliceShift)) &<< UInt(Page.strideShift)
  }

  @inline(__always)
  static func pageAt(_ slot: UInt) -> UnsafeMutablePointer<Page> {
    UnsafeMutablePointer<Page>(bitPattern: slot &+ UInt(Segment.pageDescriptorOffset)).unsafelyUnwrapped
  }

  /// Everything the free fast path does not finish: null, foreign and huge pointers (`slot` is 0), a local
  /// free that emptied its page (the block is already pushed), a free into a full page, and remote frees.
  @inline(never)
  static func freeSlow(_ block: UnsafeMutableRawPointer?, _ slot: UInt) {
    guard let block else { return }
    if Options.secure { return Secure.free(block, heap: Heap(swalloc_secure_heap_get()), slot: slot) }
    if slot == 0 { return freeUnusual(block) }
    var page = pageAt(slot)
    let heap = Heap.current
    let owned = UInt(bitPattern: heap.base)
    if page.pointee.state == .stub {
      // A slice after the first of a medium, large or huge page: the fast path found a stub.
      let segment = page.segment
      page = segment.page(ofSlice: segment.index(ofSlice: page))
    } else if page.pointee.owner == owned {
      // Pushed by the fast path, and the page is now empty.
      return heap.retireEmptied(page, lastFreed: block)
    }
    // Only a block's start goes on a list (the fast path checked the pointers it pushes).
    if page.pointee.state == .inUse && !Secure.isBlockStart(UInt(bitPattern: block), page) {
      return Diagnostics.invalidFree(block, reason: .interior)
    }
    // The heap profiler samples blocks of this page where they are (Profile.sampleInPage).
    if page.pointee.owner & Page.sampledTag != 0 { Profile.freeInSampledPage(page, block, heap: owned) }
    if page.pointee.owner & ~Page.tagMask == owned { return heap.freeOwned(page, block) }
    freeRemote(page, block, heap)
  }

  /// A free into a page of this heap that the fast path did not push: into a full page (back to its queue),
  /// or into a page found through a stub. `encoded`: secure mode's links (Secure.setNext), whose freed
  /// markers have already ruled out a double free.
  func freeOwned(_ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer, encoded: Bool = false) {
    // A block that carries its freed marker, or at the head of a list, is already free.
    if !encoded && (block == page.pointee.localFree || block == page.pointee.free || !Heap.markFreed(block)) {
      return Diagnostics.doubleFree(block, witness: .atFree)
    }
    if page.pointee.isFull {
      processDelayed()
      if page.pointee.isFull { moveFromFullToQueue(page) }
    }
    if encoded { Secure.setNext(block, page.pointee.localFree) } else { setNextBlock(block, page.pointee.localFree) }
    page.pointee.localFree = block
    page.pointee.used &-= 1
    // A queue's current page holds one extra count: `used` reaches 0 only on pages that can be retired
    // (retireEmptied reports the exception, a block freed twice).
    if page.pointee.used == 0 { encoded ? retire(page) : retireEmptied(page, lastFreed: block) }
  }

  /// A free of a block this thread's heap does not own: push it on the page's thread-free list. `encoded`:
  /// secure mode's links (Secure.setNext). `linkWord`: where the block's link goes instead of its first word
  /// (SWALLOC_SECURE=full's wholly inaccessible large blocks: SecureLargeBlocks.swift), encoded.
  @inline(__always)
  static func freeRemote(
    _ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer, _ current: Heap, encoded: Bool = false,
    linkWord: UnsafeMutableRawPointer? = nil
  ) {
    let pageState = page.pointee.state
    if pageState != .inUse {
      // The regions may share a 4 MiB unit of the segment map with a short huge span: their blocks land here.
      if freeInSamplingRegions(block) { return }
      if pageState == .huge { return HugeSpan.free(page, block) }
      return Diagnostics.invalidFree(block, reason: .pageNotInUse)
    }
    var word = page.pointee.threadFree.load(ordering: .relaxed)
    // The block at the head of the list is already free (a second remote free in a row). Secure mode aborts
    // (its freed marker missed it: a write over the marker between the frees).
    if word & ~NotifyState.mask == UInt(bitPattern: block) {
      if encoded { Secure.fail(block, .doubleFree) }
      return Diagnostics.doubleFree(block, witness: .atFree)
    }
    // Default mode: a block that carries its freed marker is already free (on a list of its page).
    if !encoded && !markFreed(block) { return Diagnostics.doubleFree(block, witness: .atFree) }
    while true {
      if word & NotifyState.mask == NotifyState.notify {
        // The page is on its owner's full list. Claim the notification, then queue the page on the owner's
        // delayed list *before* pushing the block: until the block is pushed the page cannot be retired.
        let (claimed, original) = page.pointee.threadFree.compareExchange(
          expected: word, desired: word & ~NotifyState.mask, ordering: .relaxed)
        if !claimed {
          word = original
          continue
        }
        word &= ~NotifyState.mask
        Heap(page.pointee.heap.unsafelyUnwrapped).pushDelayed(page)
      }
      let next = UnsafeMutableRawPointer(bitPattern: word & ~NotifyState.mask)
      if let linkWord {
        Secure.storeLink(of: block, to: next, at: linkWord)
      } else if encoded {
        Secure.setNext(block, next, key: Secure.threadFreeKey)
      } else {
        setNextBlock(block, next)
      }
      let (pushed, original) = page.pointee.threadFree.compareExchange(
        expected: word, desired: UInt(bitPattern: block) | (word & NotifyState.mask), ordering: .releasing)
      if pushed { break }
      word = original
    }
    if current.isEmpty {
      Statistics.unownedRemoteFrees.wrappingAdd(1, ordering: .relaxed)
    } else {
      current.state.pointee.remoteFreeCount &+= 1
    }
  }

  /// Queues `page` on this heap's delayed list (any thread).
  func pushDelayed(_ page: UnsafeMutablePointer<Page>) {
    var head = state.pointee.delayed.load(ordering: .relaxed)
    while true {
      page.pointee.nextDelayed = UnsafeMutablePointer<Page>(bitPattern: head)
      let (pushed, original) = state.pointee.delayed.compareExchange(
        expected: head, desired: UInt(bitPattern: page), ordering: .releasing)
      if pushed { return }
      head = original
    }
  }

  /// A local free took `page`'s `used` to 0. A queue's current page holds an extra count, so there that
  /// means a block was freed twice; any other page is retired (which checks its lists first).
  func retireEmptied(_ page: UnsafeMutablePointer<Page>, lastFreed block: UnsafeMutableRawPointer) {
    if queue(Int(page.pointee.sizeClass)).pointee.current == page { return setAside(page, lastFreed: block) }
    retire(page)
  }

  /// After a double free corrupted `page`'s lists: reports it, then drops `free` and `localFree`. Their
  /// blocks are leaked, so none can be handed out twice, and every block not on a list counts as in use, so
  /// the page is never retired while the program still holds one of its blocks. Costs at most the page.
  /// Out of line: an error path, kept out of `findPage` and `retire`.
  @inline(never)
  func setAside(_ page: UnsafeMutablePointer<Page>, lastFreed: UnsafeMutableRawPointer?) {
    if page.pointee.held != nil { SamplePoints.mergeHeld(page) }
    let repeated = page.repeatedFreeBlock()
    Diagnostics.doubleFree(repeated ?? lastFreed ?? page.pointee.start.unsafelyUnwrapped, witness: .inPageLists,
                           identified: repeated != nil)
    page.pointee.free = nil
    page.pointee.localFree = nil
    let isCurrent = queue(Int(page.pointee.sizeClass)).pointee.current == page
    page.pointee.used = page.pointee.capacity &+ (isCurrent ? 1 : 0)
  }

  /// How many links of an empty page's lists `retire` follows: all of them on pages of up to 16 blocks
  /// (blocks of 4 KiB and more), the most recent frees on the others. sizesweep, which empties every page it
  /// fills, runs 2.6 % more instructions with 16 links, 5.7 % with 64, 10.5 % (15 % more time) with no limit.
  static let retireCheckLinkCount = 16

  /// Returns an empty page to its segment (used == 0, or 1 for the current page of its class, which holds
  /// the queue's extra count). Its memory is purged after the purge delay. A page whose lists show a double
  /// free is set aside instead: it emptied early, while the program still holds one of its blocks.
  func retire(_ page: UnsafeMutablePointer<Page>) {
    if page.pointee.held != nil { SamplePoints.mergeHeld(page) }
    if !page.listsLookSound(within: Heap.retireCheckLinkCount) { return setAside(page, lastFreed: nil) }
    // A remote free may have queued this page on the delayed list before pushing its (now collected) block:
    // take the list first, so that no freed page stays reachable from it.
    processDelayed()
    if page.pointee.isFull { unlinkFull(page) } else { unlink(page, sizeClass: Int(page.pointee.sizeClass)) }
    let segment = page.segment
    let index = segment.index(of: page)
    Statistics.pageBytesInUse(adding: -segment.pageArea(at: index).byteCount)
    // A hint of the heap profiler's left set (its last sample freed by another thread): the words go back
    // to 0 with the page (PageSamples).
    if SamplePoints.isEnabled { PageSamples.clearHint(page) }
    page.pointee.state = .free
    page.pointee.heap = nil
    page.pointee.free = nil
    page.pointee.localFree = nil
    page.pointee.samplePoint = 0
    page.clearCarving()
    page.pointee.reserved = 0
    let now = swalloc_now_ms()
    page.pointee.retiredAt = now
    segment.returnPage(at: index)
    if segment.pointee.kind == .large {
      releaseSegment(segment)
      return
    }
    if !segment.pointee.isAvailable { addAvailable(segment) }
    if segment.isEntirelyFree
      && (segment.pointee.nextAvailable != nil || segment.pointee.previousAvailable != nil) {
      // Another segment of this kind has room: give this one back (to the span cache, then the kernel).
      releaseSegment(segment)
    } else {
      let due = now &+ PurgeDelay.milliseconds
      if state.pointee.purgeDueAt == 0 || due < state.pointee.purgeDueAt { state.pointee.purgeDueAt = due }
    }
    purgeIfDue(now: now)
  }

  /// Frees `block` when it lies in guarded sampling's region or in the heap profiler's sample slots: neither
  /// is a segment, so their frees reach only the slow paths for pointers that no page in use holds (no map
  /// entry, or a huge span's unit they share), never the paths of ordinary local and remote frees.
  @inline(never)
  static func freeInSamplingRegions(_ block: UnsafeMutableRawPointer) -> Bool {
    if Guarded.isEnabled && Guarded.contains(block) {
      Guarded.free(block, caller: 0)
      return true
    }
    if SamplePoints.isEnabled && SampleSlots.contains(block) {
      SampleSlots.free(block)
      return true
    }
    return false
  }

  /// A free of something whose segment-map entry is not 1: a foreign pointer, or a huge block with an
  /// alignment of 4 MiB or more (its map entry says how far back its header is).
  @inline(never)
  static func freeUnusual(_ block: UnsafeMutableRawPointer) {
    if freeInSamplingRegions(block) { return }
    guard let segment = SegmentMap.segment(of: UInt(bitPattern: block)),
      segment.pointee.kind == .huge
    else {
      return Diagnostics.invalidFree(block, reason: .foreign)
    }
    HugeSpan.free(segment.page(at: 0), block)
  }
}
