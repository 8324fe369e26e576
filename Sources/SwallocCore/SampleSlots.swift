// SampleSlots: where the heap profiler puts the small blocks it samples. A sampled block must be recognized
// when it is freed (its figures leave the live ones) without any cost on free's fast path. Blocks of up to
// 4 KiB get a slot in one reserved region that is no segment: free's fast path fails its segment-map test
// there and sends every such free to the slow path, which asks `contains` (one subtraction and comparison)
// before anything else, as it does for guarded sampling's region. Larger samples keep a huge span of their own.
//
// The region is split into nine areas, one per slot size (16 B to 4 KiB, powers of two, so every slot is
// aligned to its size), of `slotsPerArea` (16 384) slots each: 128 MiB of address space, reserved without backing;
// only slots in use are ever touched, so a live sample costs about its own size in memory (a huge span cost
// 16 KiB of header and page). Each slot's record (stack, weights, requested size, state) lives in a separate
// mapping. Free slots of an area form a lock-free stack (index and tag in one word); never-used slots are
// taken in order first. Nothing locks: samples may be taken in signal handlers and forked children.
import CShim
import Synchronization

enum SampleSlots {
  static let smallestShift = 4
  static let largestShift = 12
  static let areaCount = largestShift - smallestShift + 1
  static let slotsPerArea = 16384
  /// Area `a` holds `slotsPerArea` slots of 16 << a bytes, from (2^a - 1) units on (a unit: the smallest area,
  /// 256 KiB): every slot is aligned to its size, and an offset's area is a logarithm away.
  static let unitByteCount = slotsPerArea << smallestShift
  static let regionByteCount = ((1 << areaCount) - 1) * unitByteCount
  /// Per slot: state (0 free, 1 live), stack number, weight in bytes, weight in objects, requested size.
  static let recordStride = 40

  static let regionStart = Atomic<UInt>(0)
  static let recordsStart = Atomic<UInt>(0)
  /// 0: not mapped; 1: being mapped; 2: ready; 3: refused (samples keep huge spans).
  static let regionState = Atomic<Int>(0)

  /// Per area, at the start of the records mapping: the next never-used slot, and the free stack's head (slot
  /// index + 1 in the low 32 bits, a tag against ABA in the high bits). The free stack's links follow the
  /// records (one UInt32 per slot).
  static let countersByteCount = 256
  static let linksStart = Atomic<UInt>(0)

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

  /// Whether `pointer` lies in the region (any slot, live or not). One load, a subtraction and a comparison.
  @inline(__always)
  static func contains(_ pointer: UnsafeMutableRawPointer) -> Bool {
    UInt(bitPattern: pointer) &- regionStart.load(ordering: .relaxed) < UInt(regionByteCount)
  }

  /// Maps the region and the records at the first sample (nil while another thread maps them, or refused).
  static func region() -> UInt? {
    let state = regionState.load(ordering: .acquiring)
    if state == 2 { return regionStart.load(ordering: .relaxed) }
    if state != 0 || !regionState.compareExchange(expected: 0, desired: 1, ordering: .acquiringAndReleasing).exchanged {
      return nil
    }
    let slotCount = areaCount * slotsPerArea
    guard let area = OSMemory.reserve(byteCount: regionByteCount),
      let counters = OSMemory.reserve(byteCount: countersByteCount + slotCount * recordStride + slotCount * 4)
    else {
      regionState.store(3, ordering: .releasing)
      return nil
    }
    let records = UInt(bitPattern: counters) &+ UInt(countersByteCount)
    recordsStart.store(records, ordering: .relaxed)
    linksStart.store(records &+ UInt(slotCount * recordStride), ordering: .relaxed)
    regionStart.store(UInt(bitPattern: area), ordering: .relaxed)
    regionState.store(2, ordering: .releasing)
    return UInt(bitPattern: area)
  }

  /// The area for a block of `byteCount` bytes aligned to `alignment`; nil when it is too large for a slot.
  static func areaIndex(byteCount: Int, alignment: Int) -> Int? {
    let size = Swift.max(byteCount, alignment, 1 << smallestShift)
    if size > 1 << largestShift { return nil }
    let shift = Int.bitWidth - (size &- 1).leadingZeroBitCount
    return shift - smallestShift
  }

  @inline(__always)
  static func record(_ slot: Int) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: recordsStart.load(ordering: .relaxed) &+ UInt(slot &* recordStride))
      .unsafelyUnwrapped
  }

  @inline(__always)
  static func state(_ record: UnsafeMutableRawPointer) -> UnsafeMutablePointer<Atomic<Int>> {
    record.assumingMemoryBound(to: Atomic<Int>.self)
  }

  @inline(__always)
  static func link(_ slot: Int) -> UnsafeMutablePointer<UInt32> {
    UnsafeMutablePointer<UInt32>(bitPattern: linksStart.load(ordering: .relaxed) &+ UInt(slot &* 4)).unsafelyUnwrapped
  }

  /// A slot for a block of `byteCount` bytes aligned to `alignment`, or nil (too large, no region, area full).
  static func allocate(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer? {
    guard let area = areaIndex(byteCount: byteCount, alignment: alignment), let start = region() else { return nil }
    var index = -1
    let head = freeHead(area)
    var word = head.pointee.load(ordering: .acquiring)
    while word & 0xFFFF_FFFF != 0 {
      let top = Int(word & 0xFFFF_FFFF) &- 1
      let next = UInt(link(area &* slotsPerArea &+ top).pointee)
      let (popped, original) = head.pointee.compareExchange(
        expected: word, desired: ((word &>> 32) &+ 1) &<< 32 | next, ordering: .acquiringAndReleasing)
      if popped {
        index = top
        break
      }
      word = original
    }
    if index < 0 {
      if unused(area).pointee.load(ordering: .relaxed) >= slotsPerArea { return nil }
      index = unused(area).pointee.wrappingAdd(1, ordering: .relaxed).oldValue
      if index >= slotsPerArea { return nil }
    }
    state(record(area &* slotsPerArea &+ index)).pointee.store(1, ordering: .relaxed)
    let areaStart = UInt(((1 &<< area) &- 1) &* unitByteCount)
    let address = start &+ areaStart &+ UInt(index &<< (area &+ smallestShift))
    return UnsafeMutableRawPointer(bitPattern: address)
  }

  /// The slot of `pointer` (in the region): its global number, and whether `pointer` is the slot's start.
  static func slot(of pointer: UnsafeMutableRawPointer) -> (number: Int, isStart: Bool, byteCount: Int) {
    let offset = Int(bitPattern: UInt(bitPattern: pointer) &- regionStart.load(ordering: .relaxed))
    let units = offset / unitByteCount &+ 1
    let area = Int.bitWidth &- units.leadingZeroBitCount &- 1
    let inArea = offset &- ((1 &<< area) &- 1) &* unitByteCount
    let shift = area &+ smallestShift
    let index = inArea &>> shift
    return (area &* slotsPerArea &+ index, inArea & ((1 &<< shift) &- 1) == 0, 1 &<< shift)
  }

  /// Stores a sample's record: its stack's entry number, its weights and its requested size.
  static func setRecord(_ pointer: UnsafeMutableRawPointer, stack: Int, bytes: Int, objects: Int, byteCount: Int) {
    let entry = record(slot(of: pointer).number)
    entry.storeBytes(of: stack, toByteOffset: 8, as: Int.self)
    entry.storeBytes(of: bytes, toByteOffset: 16, as: Int.self)
    entry.storeBytes(of: objects, toByteOffset: 24, as: Int.self)
    entry.storeBytes(of: byteCount, toByteOffset: 32, as: Int.self)
  }

  /// The usable size of a live slot's block (its slot's size), or -1 for an address that is none.
  static func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
    let (number, isStart, byteCount) = slot(of: pointer)
    if !isStart || state(record(number)).pointee.load(ordering: .acquiring) != 1 { return -1 }
    return byteCount
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
    let area = number / slotsPerArea
    let index = number % slotsPerArea
    let head = freeHead(area)
    var word = head.pointee.load(ordering: .relaxed)
    while true {
      link(number).pointee = UInt32(truncatingIfNeeded: word & 0xFFFF_FFFF)
      let (pushed, original) = head.pointee.compareExchange(
        expected: word, desired: ((word &>> 32) &+ 1) &<< 32 | UInt(index &+ 1), ordering: .acquiringAndReleasing)
      if pushed { return }
      word = original
    }
  }
}
