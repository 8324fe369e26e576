// GuardedSlots: guarded sampling (SWALLOC_GUARDED_SAMPLE). A random one in N eligible allocations gets a
// slot of its own in one reserved region: page(s) between PROT_NONE guard pages, the block against the end
// guard (overflows fault) or, for a quarter of the samples, against the start guard (underflows fault). A
// freed slot becomes PROT_NONE until it is reused, least recently freed first (uses after free fault).
// GuardedReport.swift explains the faults; StackCapture.swift records the stacks.
import CShim
import Synchronization

/// The record of one slot, in the records mapping (apart from the slots: an overflow cannot reach it).
/// The allocation's frames and then the free's follow it (`StackCapture.frameCapacity` each).
struct GuardedSlot: ~Copyable {
  /// 0: never used; 1: live; 2: changing hands; `sequence << 2 | 3`: freed, the sequence-th free.
  let state: Atomic<UInt>
  /// The block's address and its requested size (its usable size: the bytes after it fault, if it sits
  /// against the end guard).
  var block: UInt
  var byteCount: Int
  var allocatingThread: Int32
  var freeingThread: Int32
  var allocationFrameCount: Int32
  var freeFrameCount: Int32
  /// The Swift API heap the block came from (its base address), or 0 for malloc's.
  var heap: UInt
}

enum Guarded {
  /// The largest block a slot holds: 4 pages. A slot is these pages plus one guard page.
  static let maximumByteCount = 16 * 1024
  static let slotStride = maximumByteCount + OSMemory.pageByteCount
  /// Records: 64 bytes of fields, then two stacks.
  static let recordStride = 64 + 2 * StackCapture.frameCapacity * 8
  static let defaultSlotCount = 128
  static let maximumSlotCount = 16384
  /// Secure mode answers malloc(0) with a unique address in this much inaccessible address space after the
  /// slots (reserved, never backed, in secure mode only): 2^24 pointers before they are handed out again.
  static let zeroSizeByteCount = 256 << 20
  static let zeroSizeNext = Atomic<UInt>(0)

  /// The rate secure mode uses unless SWALLOC_GUARDED_SAMPLE says otherwise: the highest measured to cost
  /// secure mode at most 1 % on swalloc-bench (README, guarded sampling cost: 1 in 50 000 cost 2 to 4 %,
  /// 1 in 200 000 about 3 %, 1 in 500 000 and 1 in 1 000 000 within 1 %, each against an A/A control).
  static let secureDefaultRate = 500_000

  /// Whether sampling is on (SWALLOC_GUARDED_SAMPLE > 0, or secure mode's default). Set once, before the
  /// first sample; only slow paths test it (samples are chosen as free lists are handed out: SamplePoints).
  @exclusivity(unchecked) nonisolated(unsafe) static var isEnabled = false
  /// One in `sampleRate` eligible allocations is guarded, on average (0: off).
  @exclusivity(unchecked) nonisolated(unsafe) static var sampleRate = 0
  /// SWALLOC_GUARDED_SLOTS: at most this many guarded blocks live (or freed and kept inaccessible) at once.
  @exclusivity(unchecked) nonisolated(unsafe) static var slotCount = defaultSlotCount
  @exclusivity(unchecked) nonisolated(unsafe) static var records: UnsafeMutableRawPointer? = nil

  /// 0: no region yet; 1: a thread is mapping it; 2: ready; 3: the kernel refused it (sampling stops).
  static let regionState = Atomic<Int>(0)
  /// Slots never used yet are taken in order, before any freed slot is reused.
  static let nextUnusedSlot = Atomic<Int>(0)
  static let freeSequence = Atomic<UInt>(0)
  static let randomState = Atomic<UInt>(0)
  /// Guarded blocks handed out so far (statistics and tests).
  static let sampleCount = Atomic<Int>(0)

  /// Turns sampling on at `rate` (called once by Options, after secure mode chose its entry points).
  static func enable(rate: Int) {
    if rate <= 0 || isEnabled { return }
    sampleRate = rate
    var seed = UInt(swalloc_random_word())
    if seed == 0 { seed = UInt(swalloc_now_ms()) &* 0x9E37_79B9_7F4A_7C15 }
    randomState.store(seed, ordering: .relaxed)
    isEnabled = true
    SamplePoints.isEnabled = true
  }

  /// A new seed (a forked child: ThreadExit.swift's swallocCoreForkChild).
  static func reseed() {
    if !isEnabled { return }
    randomState.store(Secure.childSeed(randomState.load(ordering: .relaxed)), ordering: .relaxed)
  }

  static func random() -> UInt {
    Secure.mix(randomState.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
  }

  /// Allocations until the next sample: uniform in 1 ... 2 * rate - 1 (mean `rate`; random, not periodic).
  static func nextCountdown() -> Int {
    let rate = sampleRate
    if rate <= 1 { return 1 }
    return 1 &+ Int(bitPattern: random() % UInt(2 &* rate &- 1))
  }

  // MARK: sampling

  /// The byte that fills the alignment slack after a guarded block (between its end and the next multiple
  /// of 16, where the guard page cannot reach): checked when the block is freed.
  @inline(__always)
  static func slackByte(_ address: UInt) -> UInt8 {
    UInt8(truncatingIfNeeded: (address &* 0x9E37_79B9_7F4A_7C15) &>> 56) | 0x81
  }

  /// A guarded block of `byteCount` bytes aligned to `alignment` (0: malloc's), or nil when it is not
  /// eligible (empty, above `maximumByteCount`, aligned above a page) or no slot is free. A sample that
  /// finds no slot is lost, not retried: the countdown goes on.
  static func allocate(byteCount: Int, alignment: Int, caller: UInt, heap: UInt = 0) -> UnsafeMutableRawPointer? {
    if byteCount <= 0 || byteCount > maximumByteCount || alignment > OSMemory.pageByteCount { return nil }
    guard let records = region(), let index = claimSlot() else { return nil }
    let slot = record(records, index)
    let dataStart = swalloc_guarded_start() &+ UInt(OSMemory.pageByteCount) &+ UInt(index &* slotStride)
    let size = UInt(byteCount)
    let block: UInt
    if random() & 3 == 0 {
      block = dataStart
    } else {
      // Every block is 16-byte aligned (DESIGN.md section 4): a size that is not a multiple of 16 leaves up
      // to 15 bytes between the block and the guard, filled with `slackByte` and checked on free.
      let align = UInt(Swift.max(alignment, LibC.minimumAlignment))
      block = (dataStart &+ UInt(maximumByteCount) &- size) & ~(align &- 1)
    }
    let page = UInt(OSMemory.pageByteCount)
    let firstPage = block & ~(page &- 1)
    let endPage = (block &+ size &+ page &- 1) & ~(page &- 1)
    if !OSMemory.protect(UnsafeMutableRawPointer(bitPattern: firstPage)!, byteCount: Int(endPage &- firstPage),
                         accessible: true)
    {
      // Refused (the mapping limit): the sample is lost and the slot waits as a freed one.
      markFreed(slot)
      return nil
    }
    var slack = block &+ size
    while slack & 15 != 0 {
      UnsafeMutablePointer<UInt8>(bitPattern: slack).unsafelyUnwrapped.pointee = slackByte(slack)
      slack &+= 1
    }
    slot.pointee.block = block
    slot.pointee.byteCount = byteCount
    slot.pointee.heap = heap
    slot.pointee.allocatingThread = swalloc_thread_id()
    slot.pointee.freeingThread = 0
    slot.pointee.freeFrameCount = 0
    slot.pointee.allocationFrameCount = Int32(truncatingIfNeeded: StackCapture.store(
      into: frames(records, index, freed: false), capacity: StackCapture.frameCapacity, captured: .none,
      caller: caller))
    sampleCount.wrappingAdd(1, ordering: .relaxed)
    slot.pointee.state.store(1, ordering: .releasing)
    return UnsafeMutableRawPointer(bitPattern: block)
  }

  /// The records, mapping the region first if this is the first sample (nil while another thread maps it,
  /// or when the kernel refused).
  static func region() -> UnsafeMutableRawPointer? {
    if regionState.load(ordering: .acquiring) == 2 { return records }
    guard regionState.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged
    else { return nil }
    let count = slotCount
    // The zero-size area only in secure mode, the one mode that hands it out.
    let regionByteCount = OSMemory.pageByteCount + count * slotStride + (Options.secure ? zeroSizeByteCount : 0)
    let recordByteCount = (count * recordStride + OSMemory.pageByteCount - 1) & ~(OSMemory.pageByteCount - 1)
    guard let area = OSMemory.reserveInaccessible(byteCount: regionByteCount),
      let table = OSMemory.reserve(byteCount: recordByteCount)
    else {
      regionState.store(3, ordering: .releasing)
      return nil
    }
    if swalloc_guarded_install_handler() != 0 {
      regionState.store(3, ordering: .releasing)
      return nil
    }
    records = table
    swalloc_guarded_set_region(UInt(bitPattern: area), UInt(regionByteCount))
    regionState.store(2, ordering: .releasing)
    return table
  }

  @inline(__always)
  static func record(_ records: UnsafeMutableRawPointer, _ index: Int) -> UnsafeMutablePointer<GuardedSlot> {
    (records + index &* recordStride).assumingMemoryBound(to: GuardedSlot.self)
  }

  /// Marks `slot` freed (state 3 with the next free sequence number: the least recently freed is reused first).
  static func markFreed(_ slot: UnsafeMutablePointer<GuardedSlot>) {
    let sequence = freeSequence.wrappingAdd(1, ordering: .relaxed).newValue
    slot.pointee.state.store(sequence &<< 2 | 3, ordering: .releasing)
  }

  @inline(__always)
  static func frames(_ records: UnsafeMutableRawPointer, _ index: Int, freed: Bool) -> UnsafeMutablePointer<UInt> {
    (records + index &* recordStride + 64 + (freed ? StackCapture.frameCapacity * 8 : 0))
      .assumingMemoryBound(to: UInt.self)
  }

  /// A slot to fill, in state 2: a slot never used, else the one freed longest ago; nil when every slot
  /// holds a live block (the bound on live slots) or other threads won the races for the free ones.
  static func claimSlot() -> Int? {
    let count = slotCount
    guard let records else { return nil }
    if nextUnusedSlot.load(ordering: .relaxed) < count {
      let index = nextUnusedSlot.wrappingAdd(1, ordering: .relaxed).oldValue
      if index < count {
        record(records, index).pointee.state.store(2, ordering: .relaxed)
        return index
      }
    }
    for _ in 0..<3 {
      var oldest = -1
      var oldestState = UInt.max
      for index in 0..<count {
        let state = record(records, index).pointee.state.load(ordering: .relaxed)
        if state & 3 == 3 && state < oldestState {
          oldest = index
          oldestState = state
        }
      }
      if oldest < 0 { return nil }
      if record(records, oldest).pointee.state.compareExchange(
        expected: oldestState, desired: 2, ordering: .acquiringAndReleasing).exchanged
      {
        return oldest
      }
    }
    return nil
  }

  /// Secure mode's malloc(0): a unique pointer to memory that faults on any access (the zero-size area after
  /// the slots); nil when there is no region. Freeing it does nothing.
  static func zeroSizeBlock() -> UnsafeMutableRawPointer? {
    guard region() != nil else { return nil }
    let offset = zeroSizeNext.wrappingAdd(16, ordering: .relaxed).oldValue % UInt(zeroSizeByteCount)
    return UnsafeMutableRawPointer(bitPattern: zeroSizeStart &+ offset)
  }

  /// Where the zero-size area starts (valid once the region exists).
  static var zeroSizeStart: UInt {
    swalloc_guarded_start() &+ UInt(OSMemory.pageByteCount) &+ UInt(slotCount &* slotStride)
  }

  /// Whether `address`, an address in the region, is in the zero-size area.
  @inline(__always)
  static func isZeroSize(_ address: UInt) -> Bool { address >= zeroSizeStart }

  // MARK: free and friends

  /// Whether `pointer` is in the guarded region (slots and guard pages).
  @inline(__always)
  static func contains(_ pointer: UnsafeMutableRawPointer) -> Bool {
    UInt(bitPattern: pointer) &- swalloc_guarded_start() < swalloc_guarded_length()
  }

  /// The slot whose pages (or trailing guard page) hold `address`, an address in the region, and the offset
  /// of `address` in it (at or above `maximumByteCount`: in its trailing guard page); nil in the leading
  /// guard page.
  static func slot(of address: UInt) -> (index: Int, offset: Int)? {
    let first = swalloc_guarded_start() &+ UInt(OSMemory.pageByteCount)
    if address < first { return nil }
    let offset = Int(address &- first)
    return (offset / slotStride, offset % slotStride)
  }

  /// free() of a pointer in the guarded region. The block's pages become inaccessible; a second free, or a
  /// pointer that is not a guarded block's start, is reported with the stacks, and the process aborts.
  static func free(_ pointer: UnsafeMutableRawPointer, caller: UInt, stack: StackCapture.Captured = .none) {
    let address = UInt(bitPattern: pointer)
    if isZeroSize(address) { return }
    if stack.frames == nil {
      // The freeing stack, for the record and for any report below.
      return withUnsafeTemporaryAllocation(of: UInt.self, capacity: StackCapture.frameCapacity) { buffer in
        let frames = buffer.baseAddress.unsafelyUnwrapped
        let count = StackCapture.capture(into: frames, capacity: buffer.count)
        free(pointer, caller: caller, stack: StackCapture.Captured(frames: UnsafePointer(frames), count: count))
      }
    }
    guard let records, let (index, _) = slot(of: address), index < slotCount else {
      GuardedReport.badFree(address, index: -1, caller: caller, stack: stack, double: false)
    }
    let slot = record(records, index)
    let state = slot.pointee.state.load(ordering: .acquiring)
    if state & 3 == 3 { GuardedReport.badFree(address, index: index, caller: caller, stack: stack, double: true) }
    if state != 1 || slot.pointee.block != address {
      GuardedReport.badFree(address, index: index, caller: caller, stack: stack, double: false)
    }
    var slack = address &+ UInt(slot.pointee.byteCount)
    while slack & 15 != 0 {
      if UnsafeMutablePointer<UInt8>(bitPattern: slack).unsafelyUnwrapped.pointee != slackByte(slack) {
        GuardedReport.overwrittenSlack(slack, index: index, caller: caller, stack: stack)
      }
      slack &+= 1
    }
    guard slot.pointee.state.compareExchange(expected: 1, desired: 2, ordering: .acquiringAndReleasing).exchanged
    else {
      // Another thread freed it at the same moment.
      GuardedReport.badFree(address, index: index, caller: caller, stack: stack, double: true)
    }
    slot.pointee.freeingThread = swalloc_thread_id()
    slot.pointee.freeFrameCount = Int32(truncatingIfNeeded: StackCapture.store(
      into: frames(records, index, freed: true), capacity: StackCapture.frameCapacity, captured: stack,
      caller: caller))
    let page = UInt(OSMemory.pageByteCount)
    let firstPage = address & ~(page &- 1)
    let endPage = (address &+ UInt(slot.pointee.byteCount) &+ page &- 1) & ~(page &- 1)
    // The freed pages' memory goes back as well: inaccessible, they fault on any access whatever they hold, and a
    // slot reused gets fresh zero pages. (Kept, the 128 slots' last blocks stayed resident: 0.5 to 1.2 MB, 13 to
    // 26 % of the small churn and xmalloc workloads' peak RSS.) One system call and one TLB flush for both.
    OSMemory.discardInaccessible(UnsafeMutableRawPointer(bitPattern: firstPage)!, byteCount: Int(endPage &- firstPage))
    markFreed(slot)
  }

  /// The Swift API heap a live guarded block came from (0: malloc's, or not a live block).
  static func owner(of pointer: UnsafeMutableRawPointer) -> UInt {
    let address = UInt(bitPattern: pointer)
    guard let records, let (index, _) = slot(of: address), index < slotCount else { return 0 }
    let slot = record(records, index)
    if slot.pointee.state.load(ordering: .acquiring) != 1 || slot.pointee.block != address { return 0 }
    return slot.pointee.heap
  }

  /// Frees every live guarded block of the Swift API heap `heap` (the heap is being destroyed).
  static func freeAll(ownedBy heap: UInt) {
    guard let records else { return }
    for index in 0..<slotCount {
      let slot = record(records, index)
      if slot.pointee.state.load(ordering: .acquiring) == 1 && slot.pointee.heap == heap {
        free(UnsafeMutableRawPointer(bitPattern: slot.pointee.block).unsafelyUnwrapped, caller: 0)
      }
    }
  }

  /// The usable size of a guarded block: its requested size (the byte after it faults). -1 for a pointer
  /// in the region that is no live block's start.
  static func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
    let address = UInt(bitPattern: pointer)
    if isZeroSize(address) { return 0 }
    guard let records, let (index, _) = slot(of: address), index < slotCount else { return -1 }
    let slot = record(records, index)
    if slot.pointee.state.load(ordering: .acquiring) != 1 || slot.pointee.block != address { return -1 }
    return slot.pointee.byteCount
  }

  /// realloc of a guarded block: always moves it (to an ordinary block), so a stale pointer to the old
  /// block faults; a bad pointer is reported as free() would. `byteCount` > 0.
  static func reallocate(_ pointer: UnsafeMutableRawPointer, byteCount: Int, caller: UInt)
    -> UnsafeMutableRawPointer?
  {
    let old = usableSize(pointer)
    if old < 0 {
      free(pointer, caller: caller)
      return nil
    }
    guard let block = LibC.allocate(byteCount) else { return nil }
    memcpy(block, pointer, Swift.min(old, byteCount))
    free(pointer, caller: caller)
    return block
  }
}
