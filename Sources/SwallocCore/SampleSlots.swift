// SampleSlots: where the heap profiler puts the small blocks it samples. A sampled block must be recognized
// when it is freed (its figures leave the live ones) without any cost on free's fast path. Blocks of up to
// 512 KiB (every size class) get a slot in one reserved region that is no segment: free's fast path fails its segment-map test
// there and sends every such free to the slow path, which asks `contains` (one subtraction and comparison)
// before anything else, as it does for guarded sampling's region. Larger samples keep a huge span of their own.
//
// The region is split into sixteen areas, one per slot size (16 B to 512 KiB, powers of two, so every slot is
// aligned to its size): 16 384 slots each up to 4 KiB, then 64 MiB each (8192 slots of 8 KiB down to 128 of
// 512 KiB; the large areas start at a multiple of 512 KiB): about 576 MiB of address space, reserved without
// backing; only slots in use are ever touched, so a live sample costs about its own size in memory (a huge span cost
// 16 KiB of header and page). Each slot's record (stack, weights, requested size, state) lives in a separate
// mapping. The first `sharedCount` slots of each area up to 4 KiB, and the first records of every area, share
// pages with the other areas' (8 KiB rows after the areas; the records mapping's first page): a program that
// samples a few blocks of many sizes touches two or three pages where it touched two per size (one slot page,
// one record page). Free slots of an area form a lock-free stack (index and tag in one word); never-used slots
// are taken in order first. Nothing locks: samples may be taken in signal handlers and forked children.
import CShim
import Synchronization

enum SampleSlots {
  static let smallestShift = 4
  /// Slots up to 4 KiB: nine small areas of `slotsPerArea` slots each; then seven large areas of 64 MiB each,
  /// 8 KiB to 512 KiB slots (8192 down to 128 of them): every size class has slots (huge blocks, above 512 KiB,
  /// are recorded in their own spans).
  static let largestSmallShift = 12
  static let largestShift = 19
  static let smallAreaCount = largestSmallShift - smallestShift + 1
  static let areaCount = largestShift - smallestShift + 1
  static let slotsPerArea = 16384
  /// Small area `a` holds `slotsPerArea` slots of 16 << a bytes, from (2^a - 1) units on (a unit: the smallest
  /// area, 256 KiB): every slot is aligned to its size, and an offset's area is a logarithm away.
  static let unitByteCount = slotsPerArea << smallestShift
  static let smallByteCount = ((1 << smallAreaCount) - 1) * unitByteCount
  static let largeAreaShift = 26
  /// Where the large areas start: the small areas' end rounded up to the largest slot, so that every large
  /// slot is aligned to its size (511 units left the 512 KiB slots 256 KiB off; found by SampleSlotsTests).
  static let largeAreasOffset = (smallByteCount + (1 << largestShift) - 1) & ~((1 << largestShift) - 1)
  static let areasByteCount = largeAreasOffset + (areaCount - smallAreaCount) << largeAreaShift
  /// Slots 0 ..< sharedCount of each area share pages with the other areas' (rows of 1 << sharedRowShift bytes
  /// after the areas for the slots of the small areas; the records' first page for every area's records).
  static let sharedCount = 4
  /// A shared row: slot `i` of every small area, the largest first (each slot aligned to its size): 4 KiB,
  /// 2 KiB, ..., 16 B, and 16 bytes that are no slot. Area `a`'s slot starts `2 * (16 << a)` bytes before the
  /// row's end.
  static let sharedRowShift = largestSmallShift + 1
  static let regionByteCount = areasByteCount + sharedCount << sharedRowShift
  static let totalSlotCount = firstSlot(areaCount)
  /// Freed slots of at least 2^purgedShift bytes (a page: slots of their own pages) are purged once they have
  /// stayed free for the purge delay. (From 16 KiB before: freed 4 and 8 KiB slots stayed resident for good, a
  /// past peak's samples of those sizes held after they were freed.)
  static let purgedShift = 12
  /// The first area whose freed slots are purged.
  static let firstPurgedArea = purgedShift - smallestShift

  /// Slots in `area`.
  @inline(__always)
  static func slotCount(_ area: Int) -> Int {
    area < smallAreaCount ? slotsPerArea : slotsPerArea &>> (area &- smallAreaCount &+ 1)
  }

  static let slotsPerAreaShift = 14

  /// The global number of `area`'s first slot (records and links are indexed by it): slot `i` of `area` is
  /// number `area << 14 | i` (the large areas, with fewer slots, leave numbers unused).
  @inline(__always)
  static func firstSlot(_ area: Int) -> Int { area &<< slotsPerAreaShift }

  /// Where `area` starts in the region.
  @inline(__always)
  static func areaStart(_ area: Int) -> Int {
    area < smallAreaCount
      ? ((1 &<< area) &- 1) &* unitByteCount
      : largeAreasOffset &+ (area &- smallAreaCount) &<< largeAreaShift
  }

  /// Per slot: state (0 free, 1 live), stack number, weight in bytes, weight in objects, requested size, the
  /// Swift API heap it belongs to (its base address; 0: malloc's), and the link of the free or dirty stack it
  /// is on (at `linkOffset`). The link shares the record's page: in an array of its own it took a page of its
  /// own for each area sampled (up to 16 pages).
  static let recordStride = 56
  static let linkOffset = 48

  static let regionStart = Atomic<UInt>(0)
  /// The region's length once it is mapped, 0 before: `contains` is false for every address until then.
  static let regionLength = Atomic<UInt>(0)
  static let recordsStart = Atomic<UInt>(0)
  /// 0: not mapped; 1: being mapped; 2: ready; 3: refused (samples keep huge spans).
  static let regionState = Atomic<Int>(0)

  /// Per area, at the start of the records mapping: the next never-used slot, and the free stack's head (slot
  /// index + 1 in the low 32 bits, a tag against ABA in the high bits), the page records' pair last; then,
  /// per area, the head of its stack of dirty slots (freed, not purged yet). The stacks' links are in the
  /// records.
  static let countersByteCount = 512
  static let dirtyHeadsOffset = (areaCount + 1) * 16
  /// After the counters, on the same page, the records of each area's first `sharedCount` slots; then the
  /// records of all slots by number, on pages of their own (the shared slots' places there unused).
  static let sharedRecordsByteCount = areaCount * sharedCount * recordStride
  /// Records of samples that stay in their heap pages (Profile.sampleInPage: no slot, so no memory beside the
  /// heap's), numbered from `totalSlotCount` after the slots' records, with their own unused count and free
  /// stack as an area of records alone (`pageRecordArea`). A page record's liveness is its entry in PageSamples
  /// (which also holds the block's offset): its state and offset 40 are unused.
  static let pageRecordArea = areaCount
  static let pageRecordCount = slotsPerArea
  static let recordsByteCount = countersByteCount + sharedRecordsByteCount
    + (totalSlotCount + pageRecordCount) * recordStride

  @inline(__always)
  static func unused(_ area: Int) -> UnsafeMutablePointer<Atomic<Int>> {
    UnsafeMutablePointer<Atomic<Int>>(bitPattern: recordsStart.load(ordering: .relaxed) &- UInt(countersByteCount)
      &+ UInt(area &* 16)).unsafelyUnwrapped
  }

  @inline(__always)
  static func freeHead(_ area: Int) -> UnsafeMutablePointer<Atomic<UInt>> {
    UnsafeMutablePointer<Atomic<UInt>>(bitPattern: recordsStart.load(ordering: .relaxed) &- UInt(countersByteCount)
      &+ UInt(area &* 16 &+ 8)).unsafelyUnwrapped
  }

  /// The head of `area`'s stack of freed slots that still hold their pages (areas from `firstPurgedArea`;
  /// smaller slots share pages and go straight to the free stack).
  @inline(__always)
  static func dirtyHead(_ area: Int) -> UnsafeMutablePointer<Atomic<UInt>> {
    UnsafeMutablePointer<Atomic<UInt>>(bitPattern: recordsStart.load(ordering: .relaxed) &- UInt(countersByteCount)
      &+ UInt(dirtyHeadsOffset &+ area &* 8)).unsafelyUnwrapped
  }

  /// When the earliest dirty slot becomes due for purging (monotonic ms; max: none). A hint: a race only
  /// delays a purge.
  static let nextPurgeCheck = Atomic<UInt64>(UInt64.max)

  /// Whether `pointer` lies in the region (any slot, live or not): two loads, a subtraction and a comparison.
  /// False everywhere before the region is mapped (guarded sampling alone never maps it).
  @inline(__always)
  static func contains(_ pointer: UnsafeMutableRawPointer) -> Bool {
    UInt(bitPattern: pointer) &- regionStart.load(ordering: .relaxed) < regionLength.load(ordering: .acquiring)
  }

  /// Maps the region and the records at the first sample (nil while another thread maps them, or refused).
  static func region() -> UInt? {
    let state = regionState.load(ordering: .acquiring)
    if state == 2 { return regionStart.load(ordering: .relaxed) }
    if state != 0 || !regionState.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged {
      return nil
    }
    // The region starts at a multiple of the largest slot: slots are aligned to their size from its start, and
    // an aligned request (aligned_alloc(32768, 64)) takes a slot of its alignment. (mmap aligns only to a page:
    // the fuzzer found a 32 KiB-aligned request in a slot 24 KiB off.)
    let largestSlot = 1 << largestShift
    guard let reserved = OSMemory.reserve(byteCount: regionByteCount + largestSlot),
      let counters = OSMemory.reserve(byteCount: recordsByteCount)
    else {
      regionState.store(3, ordering: .releasing)
      return nil
    }
    let area = (UInt(bitPattern: reserved) &+ UInt(largestSlot &- 1)) & ~UInt(largestSlot &- 1)
    let records = UInt(bitPattern: counters) &+ UInt(countersByteCount)
    recordsStart.store(records, ordering: .relaxed)
    regionStart.store(area, ordering: .relaxed)
    regionLength.store(UInt(regionByteCount), ordering: .releasing)
    regionState.store(2, ordering: .releasing)
    return area
  }

  /// The area for a block of `byteCount` bytes aligned to `alignment`; nil when it is too large for a slot.
  static func areaIndex(byteCount: Int, alignment: Int) -> Int? {
    let size = Swift.max(byteCount, alignment, 1 << smallestShift)
    if size > 1 << largestShift { return nil }
    let shift = Int.bitWidth - (size &- 1).leadingZeroBitCount
    return shift - smallestShift
  }

  /// The record of slot number `slot`.
  @inline(__always)
  static func record(_ slot: Int) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: recordsStart.load(ordering: .relaxed) &+ UInt(recordOffset(slot)))
      .unsafelyUnwrapped
  }

  /// Where the record of slot number `slot` is, from the first record (the counters come before it).
  @inline(__always)
  static func recordOffset(_ slot: Int) -> Int {
    let index = slot & (slotsPerArea &- 1)
    return index < sharedCount && slot < totalSlotCount
      ? ((slot &>> slotsPerAreaShift) &* sharedCount &+ index) &* recordStride
      : sharedRecordsByteCount &+ slot &* recordStride
  }

  @inline(__always)
  static func state(_ record: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<Int>> {
    record.assumingMemoryBound(to: Atomic<Int>.self)
  }

  @inline(__always)
  static func link(_ slot: Int) -> UnsafeMutablePointer<UInt32> {
    (record(slot) + linkOffset).assumingMemoryBound(to: UInt32.self)
  }

  /// A slot for a block of `byteCount` bytes aligned to `alignment`, or nil (too large, no region, area full).
  static func allocate(byteCount: Int, alignment: Int, owner: Heap? = nil) -> UnsafeMutableRawPointer? {
    guard var area = areaIndex(byteCount: byteCount, alignment: alignment), let start = region() else { return nil }
    // A dirty slot first (its pages are still there), of this size or of the next larger one, then a purged
    // one, then one never used.
    var index = -1
    if area >= firstPurgedArea &- 1 {
      for candidate in Swift.max(area, firstPurgedArea)...Swift.min(area &+ 1, areaCount &- 1) {
        index = pop(dirtyHead(candidate), candidate)
        if index >= 0 {
          area = candidate
          break
        }
      }
    }
    if index < 0 { index = pop(freeHead(area), area) }
    if index < 0 {
      let count = slotCount(area)
      if unused(area).pointee.load(ordering: .relaxed) >= count { return nil }
      index = unused(area).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
      if index >= count { return nil }
    }
    let entry = record(firstSlot(area) &+ index)
    entry.storeBytes(of: owner.map { UInt(bitPattern: $0.base) } ?? 0, toByteOffset: 40, as: UInt.self)
    state(entry).pointee.store(1, ordering: .releasing)
    return slotAddress(start, area, index)
  }

  /// Where slot `index` of `area` starts, in the region at `start`.
  @inline(__always)
  static func slotAddress(_ start: UInt, _ area: Int, _ index: Int) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: start &+ UInt(slotOffset(area, index))).unsafelyUnwrapped
  }

  /// Where slot `index` of `area` starts, from the region's start.
  @inline(__always)
  static func slotOffset(_ area: Int, _ index: Int) -> Int {
    area < smallAreaCount && index < sharedCount
      ? areasByteCount &+ (index &+ 1) &<< sharedRowShift &- (2 &<< (area &+ smallestShift))
      : areaStart(area) &+ index &<< (area &+ smallestShift)
  }

  /// The slot of `pointer` (in the region): its global number, and whether `pointer` is the slot's start.
  static func slot(of pointer: UnsafeMutableRawPointer) -> (number: Int, isStart: Bool, byteCount: Int) {
    slot(offset: Int(bitPattern: UInt(bitPattern: pointer) &- regionStart.load(ordering: .relaxed)))
  }

  /// The slot holding `offset` (from the region's start, inside it): its global number, whether `offset` is
  /// its start, and its size. The 16 bytes at a shared row's end: number 0, no start.
  static func slot(offset: Int) -> (number: Int, isStart: Bool, byteCount: Int) {
    if offset >= areasByteCount {
      // A shared row: slot `row` of the small area whose slot holds the offset (`toEnd` bytes before the row's
      // end: in (s, 2s] for slots of s bytes), or the 16 bytes at its end that are no slot.
      let row = (offset &- areasByteCount) &>> sharedRowShift
      let toEnd = (row &+ 1) &<< sharedRowShift &- (offset &- areasByteCount)
      if toEnd <= 1 &<< smallestShift { return (0, false, 1 &<< smallestShift) }
      let shift = Int.bitWidth &- (toEnd &- 1).leadingZeroBitCount &- 1
      return (firstSlot(shift &- smallestShift) &+ row, toEnd == 2 &<< shift, 1 &<< shift)
    }
    let area: Int
    if offset >= smallByteCount && offset < largeAreasOffset { return (0, false, 1 &<< smallestShift) }
    if offset < smallByteCount {
      let units = offset / unitByteCount &+ 1
      area = Int.bitWidth &- units.leadingZeroBitCount &- 1
    } else {
      area = smallAreaCount &+ (offset &- largeAreasOffset) &>> largeAreaShift
    }
    let inArea = offset &- areaStart(area)
    let shift = area &+ smallestShift
    let index = inArea &>> shift
    return (firstSlot(area) &+ index, inArea & ((1 &<< shift) &- 1) == 0, 1 &<< shift)
  }

  /// Stores a sample's record: its stack's entry number, its weights and its requested size.
  static func setRecord(_ pointer: UnsafeMutableRawPointer, stack: Int, bytes: Int, objects: Int, byteCount: Int) {
    storeSample(record(slot(of: pointer).number), stack: stack, bytes: bytes, objects: objects, byteCount: byteCount)
  }

  /// Stores a sample's stack entry number, weights and requested size in `record` (a slot's, a page record or
  /// a huge span's: the same layout from offset 8).
  @inline(__always)
  static func storeSample(_ record: UnsafeMutableRawPointer, stack: Int, bytes: Int, objects: Int, byteCount: Int) {
    record.storeBytes(of: stack, toByteOffset: 8, as: Int.self)
    record.storeBytes(of: bytes, toByteOffset: 16, as: Int.self)
    record.storeBytes(of: objects, toByteOffset: 24, as: Int.self)
    record.storeBytes(of: byteCount, toByteOffset: 32, as: Int.self)
  }

  /// The record of the live slot block `pointer`, or nil when `pointer` is no live slot's start.
  static func liveRecord(_ pointer: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    let (number, isStart, _) = slot(of: pointer)
    let entry = record(number)
    if !isStart || state(entry).pointee.load(ordering: .acquiring) != 1 { return nil }
    return entry
  }

  /// The usable size of a live slot's block, or -1 for an address that is none: what the block would have had
  /// unsampled (its size class's block size), not the slot's power of two. Programs that size their buffers by
  /// malloc_usable_size (the Swift runtime's arrays do) then behave the same whether a block was sampled or
  /// not: with the slot's size, swiftwork's arrays grew into other large classes, whose pages added 13 MB.
  static func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
    let (number, isStart, slotByteCount) = slot(of: pointer)
    let entry = record(number)
    if !isStart || state(entry).pointee.load(ordering: .acquiring) != 1 { return -1 }
    let requested = entry.load(fromByteOffset: 32, as: Int.self)
    if requested <= 0 || requested > SizeClass.largeMaxByteCount { return slotByteCount }
    return Swift.min(slotByteCount, SizeClass.blockByteCount(SizeClass.of(byteCount: requested)))
  }

  /// free() of a pointer in the region, from any thread: the sample leaves the live figures and the slot goes
  /// back to its area's free stack. A pointer that is no live slot's start is reported as free() would
  /// report it (secure mode: aborts).
  static func free(_ pointer: UnsafeMutableRawPointer) {
    let (number, isStart, _) = slot(of: pointer)
    if !isStart {
      if Options.secure { Secure.fail(pointer, .interior) }
      return Diagnostics.invalidFree(pointer, reason: .interior)
    }
    let entry = record(number)
    let stack = entry.load(fromByteOffset: 8, as: Int.self)
    let bytes = entry.load(fromByteOffset: 16, as: Int.self)
    let objects = entry.load(fromByteOffset: 24, as: Int.self)
    let byteCount = entry.load(fromByteOffset: 32, as: Int.self)
    guard state(entry).pointee.compareExchange(expected: 1, desired: 0, ordering: .acquiringAndReleasing).exchanged
    else {
      if Options.secure { Secure.fail(pointer, .doubleFree) }
      return Diagnostics.doubleFree(pointer, witness: .atFree)
    }
    Profile.noteSlotFree(pointer, stack: stack, bytes: bytes, objects: objects, byteCount: byteCount)
    let area = number &>> slotsPerAreaShift
    let index = number & (slotsPerArea &- 1)
    // A slot of a page or more gives its pages back once it has stayed free for the purge delay (the heap's
    // pages follow the same rule): a freed slot reused soon costs no page faults (purging at once cost the
    // realloc workload 120 000 faults and 20 % of its time with profiling on), and one left free does not stay
    // resident (sizesweep's peak RSS was 12 % higher with freed slots never purged). Slots below a page share
    // pages and are never purged.
    if area < firstPurgedArea { return push(freeHead(area), area, index) }
    let now = swalloc_now_ms()
    entry.storeBytes(of: now, toByteOffset: 16, as: UInt64.self)
    push(dirtyHead(area), area, index)
    lowerPurgeCheck(now &+ purgeDelay)
  }

  /// How long a freed slot keeps its pages: the purge delay's floor (SWALLOC_PURGE_DELAY_MS), not the heaps'
  /// adaptive delay. That one grows on the heaps' refaults (fresh spans, purged pages), which say nothing of
  /// the slots: under thread churn it sits at its 1 s ceiling, and every freed 16-512 KiB slot stayed resident
  /// for the whole run beside the heaps' own free pages (threadchurn-2: +5.8 MB peak RSS with profiling, where
  /// the floor leaves +0.8 MB). A slot reused within the floor still costs no page fault.
  @inline(__always)
  static var purgeDelay: UInt64 { UInt64(Options.purgeDelayMs) }

  /// Pushes slot `index` of `area` on the stack at `head`.
  static func push(_ head: UnsafeMutablePointer<Atomic<UInt>>, _ area: Int, _ index: Int) {
    var word = head.pointee.load(ordering: .relaxed)
    while true {
      link(firstSlot(area) &+ index).pointee = UInt32(truncatingIfNeeded: word & 0xFFFF_FFFF)
      let (pushed, original) = head.pointee.compareExchange(
        expected: word, desired: ((word &>> 32) &+ 1) &<< 32 | UInt(index &+ 1), ordering: .acquiringAndReleasing)
      if pushed { return }
      word = original
    }
  }

  /// Pops a slot of `area` from the stack at `head`: its index in the area, or -1 when the stack is empty.
  static func pop(_ head: UnsafeMutablePointer<Atomic<UInt>>, _ area: Int) -> Int {
    var word = head.pointee.load(ordering: .acquiring)
    while word & 0xFFFF_FFFF != 0 {
      let top = Int(word & 0xFFFF_FFFF) &- 1
      let next = UInt(link(firstSlot(area) &+ top).pointee)
      let (popped, original) = head.pointee.compareExchange(
        expected: word, desired: ((word &>> 32) &+ 1) &<< 32 | next, ordering: .acquiringAndReleasing)
      if popped { return top }
      word = original
    }
    return -1
  }

  // MARK: page records

  /// A free page record (its index), or -1: none left, or no region.
  static func takePageRecord() -> Int {
    guard region() != nil else { return -1 }
    let area = pageRecordArea
    let index = pop(freeHead(area), area)
    if index >= 0 { return index }
    if unused(area).pointee.load(ordering: .relaxed) >= pageRecordCount { return -1 }
    let fresh = unused(area).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
    return fresh < pageRecordCount ? fresh : -1
  }

  /// Page record `index`.
  @inline(__always)
  static func pageRecord(_ index: Int) -> UnsafeMutableRawPointer { record(firstSlot(pageRecordArea) &+ index) }

  /// Gives page record `index` back (its sample is gone).
  static func releasePageRecord(_ index: Int) {
    push(freeHead(pageRecordArea), pageRecordArea, index)
  }

  /// Moves `nextPurgeCheck` down to `due` (never up).
  static func lowerPurgeCheck(_ due: UInt64) {
    var current = nextPurgeCheck.load(ordering: .relaxed)
    while due < current {
      let (stored, original) = nextPurgeCheck.compareExchange(expected: current, desired: due, ordering: .relaxed)
      if stored { return }
      current = original
    }
  }

  /// Purges the dirty slots freed at least the purge delay ago (all of them when `force`) and moves them to
  /// their areas' free stacks. Called from the heaps' purge checks; any thread, concurrently with frees and
  /// allocations: each area's dirty stack is taken whole, and the slots not due yet are pushed back.
  static func purgeIfDue(now: UInt64, force: Bool = false) {
    if regionState.load(ordering: .acquiring) != 2 { return }
    if !force && now < nextPurgeCheck.load(ordering: .relaxed) { return }
    nextPurgeCheck.store(UInt64.max, ordering: .relaxed)
    let delay = purgeDelay
    let start = regionStart.load(ordering: .relaxed)
    for area in firstPurgedArea..<areaCount {
      let head = dirtyHead(area)
      var word = head.pointee.load(ordering: .acquiring)
      while word & 0xFFFF_FFFF != 0 {
        let (taken, original) = head.pointee.compareExchange(
          expected: word, desired: ((word &>> 32) &+ 1) &<< 32, ordering: .acquiringAndReleasing)
        if taken { break }
        word = original
      }
      // The taken slots are this call's alone: no other thread can pop them or follow their links.
      var next = Int(word & 0xFFFF_FFFF)
      while next != 0 {
        let index = next &- 1
        next = Int(link(firstSlot(area) &+ index).pointee)
        let freedAt = record(firstSlot(area) &+ index).load(fromByteOffset: 16, as: UInt64.self)
        if force || freedAt &+ delay <= now {
          OSMemory.purge(slotAddress(start, area, index), byteCount: 1 &<< (area &+ smallestShift))
          push(freeHead(area), area, index)
        } else {
          push(dirtyHead(area), area, index)
          lowerPurgeCheck(freedAt &+ delay)
        }
      }
    }
    // No PurgeDelay.notePurge: a slot purge would make the heaps' next refault raise their delay, though
    // nothing the heaps purged was wanted back (and reusing a purged slot notes no refault either).
  }

  /// The Swift API heap a live slot's block belongs to (its base address), or 0.
  static func owner(of pointer: UnsafeMutableRawPointer) -> UInt {
    let (number, isStart, _) = slot(of: pointer)
    let entry = record(number)
    if !isStart || state(entry).pointee.load(ordering: .acquiring) != 1 { return 0 }
    return entry.load(fromByteOffset: 40, as: UInt.self)
  }

  /// Frees every live slot block of the Swift API heap `heap` (the heap is being destroyed).
  static func freeAll(ownedBy heap: UInt) {
    guard regionState.load(ordering: .acquiring) == 2 else { return }
    let start = regionStart.load(ordering: .relaxed)
    for area in 0..<areaCount {
      let used = Swift.min(unused(area).pointee.load(ordering: .relaxed), slotCount(area))
      for index in 0..<used {
        let entry = record(firstSlot(area) &+ index)
        if state(entry).pointee.load(ordering: .acquiring) == 1 && entry.load(fromByteOffset: 40, as: UInt.self) == heap {
          free(slotAddress(start, area, index))
        }
      }
    }
  }
}

/// Where the heap profiler finds the blocks it sampled in place (Profile.sampleInPage): entries in each
/// segment's header after the slice descriptors (which end at 8320 bytes; a huge span's record is at 10 KiB,
/// secure mode's header guard at 12 KiB), three words per 64 KiB slice. A small page has 3 entries; a medium
/// page (8 slices) a hint word and 23 entries, a large page a hint word and 31 (its other words unused), each
/// no more than the page has blocks (a page's later samples take slots), all within the page's own words.
/// An entry is the block's offset in the segment and its page record's index + 1; 0 is none. The hint has bit `i mod 64` set for every block `i`
/// sampled since the page last held none (a medium or large page has at most 64 blocks: exact but for blocks
/// whose sample is gone), so that most frees of a tagged page scan nothing. Only the page's owner fills an
/// entry (a zero one: nobody else writes a zero entry) and writes the hint; any thread empties an entry with a
/// compare-and-swap (which claims the sample's release). A page retires only when all its blocks are free, and
/// its owner clears the hint with the tag: its words are all 0 when it is used again.
enum PageSamples {
  static let tableOffset = 8448
  static let wordsPerSlice = 3
  static let maximumEntriesPerPage = 31
  static let recordBits: UInt64 = 24

  /// `page`'s hint word (nil for a small page), entries and their number.
  @inline(__always)
  static func entries(_ page: UnsafeMutablePointer<Page>)
    -> (hint: UnsafeMutablePointer<Atomic<UInt64>>?, table: UnsafeMutablePointer<Atomic<UInt64>>, count: Int)
  {
    let segment = page.segment
    let offset = tableOffset &+ segment.index(ofSlice: page) &* wordsPerSlice &* 8
    let words = UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: UInt(bitPattern: segment) &+ UInt(offset))
      .unsafelyUnwrapped
    let (hinted, count) = layout(slicesPerPageShift: segment.slicesPerPageShift, reserved: Int(page.pointee.reserved))
    return hinted ? (words, words + 1, count) : (nil, words, count)
  }

  /// Whether a page of 2^`slicesPerPageShift` slices and `reserved` blocks has a hint word, and its entries.
  /// The hint, then the entries, within the page's own words: a medium page's 24 (its 32 blocks of 16 KiB
  /// once took 31 entries, 8 of them the next page's hint and entries: a free then read a hint as an entry).
  @inline(__always)
  static func layout(slicesPerPageShift: Int, reserved: Int) -> (hinted: Bool, count: Int) {
    if slicesPerPageShift == 0 { return (false, Swift.min(wordsPerSlice, reserved)) }
    return (true, Swift.min((wordsPerSlice &<< slicesPerPageShift) &- 1, maximumEntriesPerPage, reserved))
  }

  /// The words such a page uses, its hint included.
  static func wordCount(slicesPerPageShift: Int, reserved: Int) -> Int {
    let (hinted, count) = layout(slicesPerPageShift: slicesPerPageShift, reserved: reserved)
    return count + (hinted ? 1 : 0)
  }

  /// `block`'s bit in its page's hint.
  @inline(__always)
  static func hintBit(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> UInt64 {
    let offset = UInt(bitPattern: block) &- UInt(bitPattern: page.pointee.start)
    return 1 &<< UInt64(Page.blockIndex(offset: offset, reciprocal: page.pointee.reciprocal) & 63)
  }

  @inline(__always)
  static func key(_ block: UnsafeMutableRawPointer) -> UInt64 { UInt64(UInt(bitPattern: block) & Segment.mask) }

  /// Records `block`, a block of `page`, as the sample of page record `record` (called by the page's owner):
  /// false when all the page's entries are taken.
  static func add(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>, record: Int) -> Bool {
    let (hint, table, count) = entries(page)
    for i in 0..<count where table[i].load(ordering: .relaxed) == 0 {
      if let hint { hint.pointee.store(hint.pointee.load(ordering: .relaxed) | hintBit(block, page), ordering: .relaxed) }
      table[i].store(key(block) &<< recordBits | UInt64(record &+ 1), ordering: .releasing)
      return true
    }
    return false
  }

  /// The page record of `block` when it is a sample of `page`, or -1.
  static func record(of block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> Int {
    let (hint, table, count) = entries(page)
    if let hint, hint.pointee.load(ordering: .relaxed) & hintBit(block, page) == 0 { return -1 }
    for i in 0..<count {
      let word = table[i].load(ordering: .acquiring)
      if word != 0 && word &>> recordBits == key(block) { return Int(word & ((1 &<< recordBits) &- 1)) &- 1 }
    }
    return -1
  }

  /// Empties the entry of `block` when it is a sample of `page`: its page record's index, or -1 (no entry:
  /// not sampled, or another free took it); and whether the page may hold other samples (true when the hint
  /// spared the scan).
  static func take(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> (record: Int, others: Bool) {
    let (hint, table, count) = entries(page)
    if let hint, hint.pointee.load(ordering: .relaxed) & hintBit(block, page) == 0 { return (-1, true) }
    let key = key(block)
    var record = -1
    var others = false
    for i in 0..<count {
      let word = table[i].load(ordering: .acquiring)
      if word == 0 { continue }
      if record < 0 && word &>> recordBits == key
        && table[i].compareExchange(expected: word, desired: 0, ordering: .acquiringAndReleasing).exchanged
      {
        record = Int(word & ((1 &<< recordBits) &- 1)) &- 1
      } else {
        others = true
      }
    }
    return (record, others)
  }

  /// Clears `page`'s hint (its owner, once the page holds no sample).
  static func clearHint(_ page: UnsafeMutablePointer<Page>) {
    entries(page).hint?.pointee.store(0, ordering: .relaxed)
  }
}
