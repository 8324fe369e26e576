// Profile: the heap profiler's state (SWALLOC_PROFILE). Sampled call stacks with their cumulative and live
// figures, and the record that lets a sampled block's free (on any thread) take its bytes out of the live
// figures. Lock-free: samples may be taken in signal handlers and forked children.
//
// A sampled block is given its own huge span (HugeSpan.allocate), whatever its size: free's fast path never
// sees it (a huge span's page has no owner heap), and every valid free of it, in either mode, reaches
// `HugeSpan.free`, which calls `noteFree` while profiling is on. The sample's record sits in the span's header,
// in the unused bytes between the slice descriptors (8320 bytes) and the header guard (12 KiB): on a page the
// descriptors already touch, so live samples cost no memory beyond their spans.
import CShim
import Synchronization

/// SWALLOC_PROFILE: what the heap profiler does.
enum ProfileMode: UInt8 {
  case off = 0
  /// Write a profile (pprof's profile.proto, gzip) at exit, on swalloc_profile_dump and on the signal.
  case file = 1
  /// The same, plus the table of the sites holding the most live bytes on stderr at exit.
  case leaks = 2
}

enum Profile {
  /// Set once the tables exist; read by the free hook and the dump paths.
  static let activeWord = Atomic<Bool>(false)
  /// Taken by the one call of `enable` that sets profiling up.
  static let enableClaimed = Atomic<Bool>(false)

  @inline(__always)
  static var isActive: Bool { activeWord.load(ordering: .relaxed) }

  // MARK: stacks

  /// Distinct sampled stacks kept (later new stacks count in entry 0, which has no frames).
  static let stackCapacity = 16384
  /// Slots of the open-addressing index over the stacks (a power of two, load factor at most one half).
  static let indexCapacity = 32768
  /// Until `smallIndexCapacity / 2` stacks are kept, the index is its first `smallIndexCapacity` slots (one
  /// page): hashed over all of it, a process's first stacks touched a page each (up to 32). Then it is used
  /// whole; a stack inserted before is still found (a lookup that misses looks in the small index too). Two
  /// threads inserting one stack across the switch may give it two entries: the profile then has two samples
  /// with the same frames, which pprof adds up.
  static let smallIndexCapacity = 1024
  static let indexMask = Atomic<Int>(smallIndexCapacity - 1)
  /// An entry: its counters, then its frames (8 bytes each, as many as the stack has: a stack of 19 frames,
  /// gcc's average, takes 200 bytes, not the 560 of room for 64).
  static let hashOffset = 0
  static let depthOffset = 8
  static let allocObjectsOffset = 16
  static let allocBytesOffset = 24
  static let inuseObjectsOffset = 32
  static let inuseBytesOffset = 40
  static let framesOffset = 48
  static let largestEntryByteCount = framesOffset + 64 * 8

  /// One mapping, touched only where used: the index (UInt32 slots: 0 empty, else an entry number); where each
  /// entry starts (UInt32 per entry number: 0 not written yet, else its offset in the entries area in 8-byte
  /// units, plus one); a blank entry (what `stack` gives for a number not written yet: no frames, no counts);
  /// then the entries, one after another.
  static let indexByteCount = indexCapacity * 4
  static let startsOffset = indexByteCount
  static let blankOffset = startsOffset + stackCapacity * 4
  static let entriesOffset = blankOffset + framesOffset
  static let entriesByteCount = stackCapacity * largestEntryByteCount
  static let tablesByteCount = entriesOffset + entriesByteCount
  static let tablesAddress = Atomic<UInt>(0)
  /// Entries handed out so far; entry 0 is the overflow bucket. Entries are filled before they are published
  /// in the index, and counted only after.
  static let stackCount = Atomic<Int>(1)
  /// Bytes of the entries area taken (entry 0, the overflow bucket, takes the first `framesOffset`).
  static let entriesUsed = Atomic<Int>(framesOffset)

  /// Samples taken, and the bytes they represent (the figures SWALLOC_SHOW_STATS reports).
  static let sampleCount = Atomic<Int>(0)
  static let representedByteCount = Atomic<Int>(0)
  /// Profiles written on request (swalloc_profile_dump without a path, the signal): their sequence number.
  static let dumpSequence = Atomic<Int>(0)

  // MARK: live records

  /// Where a sampled block's record sits in its span's header.
  static let recordOffset = 10 * 1024
  /// A record's first word is the block's address xor this random key: nothing else in a header (a stale
  /// record is cleared at its free; user data of an earlier, larger span) can match it by chance.
  static let recordKey = Atomic<UInt>(0)

  /// Maps the tables, draws the record key and installs the signal handler: called once, when the options
  /// ask for profiling. From then on the slow path counts the lists it hands out (SamplePoints.swift).
  static func enable() {
    // Only libswalloc.so profiles: the Swift API's copy of the core reads the same options but must not map
    // tables or take the signal over.
    #if hasFeature(Embedded)
    // Racing first calls (Options reads the environment in whichever thread comes first): one maps.
    if !enableClaimed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged { return }
    guard let tables = OSMemory.reserve(byteCount: tablesByteCount) else {
      Diagnostics.note("SWALLOC_PROFILE: cannot map the profile tables; profiling is off")
      return
    }
    tablesAddress.store(UInt(bitPattern: tables), ordering: .relaxed)
    start(0).pointee.store(1, ordering: .relaxed)  // entry 0 at offset 0: no frames
    var key = UInt(swalloc_random_word())
    if key == 0 { key = UInt(swalloc_now_ms()) &* 0x9E37_79B9_7F4A_7C15 }
    recordKey.store(key | 1, ordering: .relaxed)
    activeWord.store(true, ordering: .releasing)
    if Options.profileSignal > 0 { swalloc_profile_install_signal(Options.profileSignal) }
    SamplePoints.isEnabled = true
    #else
    // The Swift API's copy samples its heaps into libswalloc.so's profile when that is the process allocator
    // and profiles (one profile per process); it maps no tables and writes no file of its own.
    if ProcessAllocator.profileNoteSample == nil || ProcessAllocator.profileNoteRelease == nil { return }
    if !enableClaimed.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged { return }
    var key = UInt(swalloc_random_word())
    if key == 0 { key = UInt(swalloc_now_ms()) &* 0x9E37_79B9_7F4A_7C15 }
    recordKey.store(key | 1, ordering: .relaxed)
    activeWord.store(true, ordering: .releasing)
    SamplePoints.isEnabled = true
    #endif
  }

  @inline(__always)
  static var tables: UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(bitPattern: tablesAddress.load(ordering: .relaxed)).unsafelyUnwrapped
  }

  @inline(__always)
  static func indexSlot(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt32>> {
    (tables + slot &* 4).assumingMemoryBound(to: Atomic<UInt32>.self)
  }

  @inline(__always)
  static func start(_ number: Int) -> UnsafeMutablePointer<Atomic<UInt32>> {
    (tables + startsOffset + number &* 4).assumingMemoryBound(to: Atomic<UInt32>.self)
  }

  /// The entry of stack `number` (0 ..< stackCapacity); the blank entry while it is not written.
  @inline(__always)
  static func stack(_ number: Int) -> UnsafeMutableRawPointer {
    let units = Int(start(number).pointee.load(ordering: .acquiring))
    if units == 0 { return tables + blankOffset }
    return tables + entriesOffset + (units &- 1) &* 8
  }

  @inline(__always)
  static func counter(_ stack: UnsafeMutableRawPointer, _ offset: Int) -> UnsafeMutablePointer<Atomic<Int>> {
    (stack + offset).assumingMemoryBound(to: Atomic<Int>.self)
  }

  static func depth(_ stack: UnsafeMutableRawPointer) -> Int { stack.load(fromByteOffset: depthOffset, as: Int.self) }

  static func frameAddresses(_ stack: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt> {
    (stack + framesOffset).assumingMemoryBound(to: UInt.self)
  }

  static func hash(_ frames: UnsafePointer<UInt>, _ count: Int) -> UInt {
    var hash: UInt = 0x243F_6A88_85A3_08D3 ^ UInt(bitPattern: count)
    for index in 0..<count { hash = Secure.mix(hash ^ frames[index]) }
    return hash
  }

  /// The entry number of the stack `frames[0 ..< count]`: found in the index, or filled and published.
  /// Lock-free: two threads inserting the same stack agree on the entry whose compare-and-swap won the slot.
  static func findOrInsertStack(_ frames: UnsafePointer<UInt>, _ count: Int) -> Int {
    let hash = hash(frames, count)
    let mask = indexMask.load(ordering: .relaxed)
    var slot = Int(bitPattern: hash) & mask
    var fresh = 0
    var lookedInSmallIndex = mask == smallIndexCapacity - 1
    for _ in 0...mask {
      var word = indexSlot(slot).pointee.load(ordering: .acquiring)
      if word == 0 {
        if !lookedInSmallIndex {
          lookedInSmallIndex = true
          let found = findStack(frames, count, hash: hash, mask: smallIndexCapacity - 1)
          if found != 0 { return found }
        }
        if fresh == 0 {
          fresh = stackCount.wrappingAdd(1, ordering: .relaxed).oldValue
          if fresh >= stackCapacity { return 0 }
          if fresh >= smallIndexCapacity / 2 { indexMask.store(indexCapacity - 1, ordering: .relaxed) }
          let offset = entriesUsed.wrappingAdd(framesOffset &+ count &* 8, ordering: .relaxed).oldValue
          if offset &+ framesOffset &+ count &* 8 > entriesByteCount { return 0 }
          let entry = tables + entriesOffset + offset
          entry.storeBytes(of: hash, toByteOffset: hashOffset, as: UInt.self)
          entry.storeBytes(of: count, toByteOffset: depthOffset, as: Int.self)
          for index in 0..<count { frameAddresses(entry)[index] = frames[index] }
          start(fresh).pointee.store(UInt32(truncatingIfNeeded: offset / 8 &+ 1), ordering: .releasing)
        }
        let (published, original) = indexSlot(slot).pointee.compareExchange(
          expected: 0, desired: UInt32(truncatingIfNeeded: fresh), ordering: .acquiringAndReleasing)
        if published { return fresh }
        word = original
      }
      if isStack(Int(word), frames, count, hash: hash) {
        // `fresh`, if filled, stays unused: a thread that lost the race for this stack.
        return Int(word)
      }
      slot = (slot &+ 1) & mask
    }
    return 0
  }

  /// The entry number of the stack `frames[0 ..< count]` in the index's slots `0 ... mask`, or 0.
  static func findStack(_ frames: UnsafePointer<UInt>, _ count: Int, hash: UInt, mask: Int) -> Int {
    var slot = Int(bitPattern: hash) & mask
    for _ in 0...mask {
      let word = indexSlot(slot).pointee.load(ordering: .acquiring)
      if word == 0 { return 0 }
      if isStack(Int(word), frames, count, hash: hash) { return Int(word) }
      slot = (slot &+ 1) & mask
    }
    return 0
  }

  /// Whether entry `number` holds the stack `frames[0 ..< count]` (whose hash is `hash`).
  static func isStack(_ number: Int, _ frames: UnsafePointer<UInt>, _ count: Int, hash: UInt) -> Bool {
    let entry = stack(number)
    if entry.load(fromByteOffset: hashOffset, as: UInt.self) != hash || depth(entry) != count { return false }
    for index in 0..<count where frameAddresses(entry)[index] != frames[index] { return false }
    return true
  }

  // MARK: samples

  /// Counts a sample in its stack's entry and in the statistics: the stack's entry number and the weights.
  static func countSample(byteCount: Int, chargedByteCount: Int, frames: UnsafePointer<UInt>, frameCount: Int)
    -> (number: Int, weight: (byteCount: Int, objects: Int))
  {
    let weight = Sampler.weight(byteCount: byteCount, chargedByteCount: chargedByteCount)
    let number = findOrInsertStack(frames, Swift.min(frameCount, Backtrace.maximumFrameCount))
    let entry = stack(number)
    counter(entry, allocObjectsOffset).pointee.wrappingAdd(weight.objects, ordering: .relaxed)
    counter(entry, allocBytesOffset).pointee.wrappingAdd(weight.byteCount, ordering: .relaxed)
    counter(entry, inuseObjectsOffset).pointee.wrappingAdd(weight.objects, ordering: .relaxed)
    counter(entry, inuseBytesOffset).pointee.wrappingAdd(weight.byteCount, ordering: .relaxed)
    sampleCount.wrappingAdd(1, ordering: .relaxed)
    representedByteCount.wrappingAdd(weight.byteCount, ordering: .relaxed)
    return (number, weight)
  }

  /// A sample's block was freed: its weights leave its stack's live figures.
  static func releaseSample(stack number: Int, bytes: Int, objects: Int) {
    if number < 0 || number >= stackCapacity || !isActive { return }
    let entry = stack(number)
    counter(entry, inuseObjectsOffset).pointee.wrappingSubtract(objects, ordering: .relaxed)
    counter(entry, inuseBytesOffset).pointee.wrappingSubtract(bytes, ordering: .relaxed)
  }

  /// Records a sampled block of `byteCount` requested bytes (`chargedByteCount` counted by the countdown), in
  /// `pageRecord` (a block sampled in its page: the record sampleInPage took), a sample slot or at the start
  /// of its own huge span, allocated at the call stack `frames[0 ..< frameCount]`. Returns the bytes the
  /// sample stands for.
  static func record(_ block: UnsafeMutableRawPointer, byteCount: Int, chargedByteCount: Int,
                     frames: UnsafePointer<UInt>, frameCount: Int, pageRecord: UnsafeMutableRawPointer? = nil) -> Int
  {
    var number = 0
    var weight = (byteCount: 0, objects: 0)
    #if hasFeature(Embedded)
    (number, weight) = countSample(byteCount: byteCount, chargedByteCount: chargedByteCount, frames: frames,
                                   frameCount: frameCount)
    swalloc_probe_sample(block, byteCount, weight.byteCount)
    #else
    // The Swift API's copy: the sample goes into libswalloc.so's profile.
    guard let note = ProcessAllocator.profileNoteSample else { return 0 }
    withUnsafeTemporaryAllocation(of: Int64.self, capacity: 2) { weights in
      number = Int(note(frames, Int32(truncatingIfNeeded: frameCount), byteCount, chargedByteCount, block,
                        weights.baseAddress.unsafelyUnwrapped))
      weight = (Int(weights[0]), Int(weights[1]))
    }
    if number < 0 { return 0 }
    #endif
    if let pageRecord {
      SampleSlots.storeSample(pageRecord, stack: number, bytes: weight.byteCount, objects: weight.objects,
                              byteCount: byteCount)
    } else if SampleSlots.contains(block) {
      SampleSlots.setRecord(block, stack: number, bytes: weight.byteCount, objects: weight.objects, byteCount: byteCount)
    } else if let segment = SegmentMap.segment(of: UInt(bitPattern: block)), segment.pointee.kind == .huge {
      let record = UnsafeMutableRawPointer(segment) + recordOffset
      SampleSlots.storeSample(record, stack: number, bytes: weight.byteCount, objects: weight.objects, byteCount: byteCount)
      record.storeBytes(of: UInt(bitPattern: block) ^ recordKey.load(ordering: .relaxed), as: UInt.self)
    }
    return weight.byteCount
  }

  /// A sampled block's figures leave the live ones (and the probe fires).
  static func release(_ block: UnsafeMutableRawPointer, stack: Int, bytes: Int, objects: Int, byteCount: Int) {
    #if hasFeature(Embedded)
    releaseSample(stack: stack, bytes: bytes, objects: objects)
    swalloc_probe_free(block, byteCount)
    #else
    ProcessAllocator.profileNoteRelease?(block, Int32(truncatingIfNeeded: stack), Int64(bytes), Int64(objects), byteCount)
    #endif
  }

  /// The free of `block`, the block of huge span `segment`: when it was sampled, its figures leave the live
  /// ones. Any thread; not on any fast path (HugeSpan.free calls it while profiling is on).
  @discardableResult
  static func noteFree(_ segment: UnsafeMutablePointer<Segment>, _ block: UnsafeMutableRawPointer) -> Bool {
    guard let record = spanRecord(segment, block) else { return false }
    record.storeBytes(of: 0, as: UInt.self)
    release(block, record: record)
    return true
  }

  /// `release` with the figures `record` holds (a huge span's or a page record: SampleSlots.storeSample's
  /// layout), read before the record can be reused.
  static func release(_ block: UnsafeMutableRawPointer, record: UnsafeMutableRawPointer) {
    release(block, stack: record.load(fromByteOffset: 8, as: Int.self), bytes: record.load(fromByteOffset: 16, as: Int.self),
            objects: record.load(fromByteOffset: 24, as: Int.self), byteCount: record.load(fromByteOffset: 32, as: Int.self))
  }

  /// The record of `block`, the block of huge span `segment`, when it was sampled (its key matches); nil
  /// otherwise.
  static func spanRecord(_ segment: UnsafeMutablePointer<Segment>, _ block: UnsafeMutableRawPointer)
    -> UnsafeMutableRawPointer?
  {
    let record = UnsafeMutableRawPointer(segment) + recordOffset
    if record.load(as: UInt.self) != UInt(bitPattern: block) ^ recordKey.load(ordering: .relaxed) { return nil }
    return record
  }

  /// The free of a sampled block in a sample slot (SampleSlots.free read its record): its figures leave the
  /// live ones.
  static func noteSlotFree(_ block: UnsafeMutableRawPointer, stack: Int, bytes: Int, objects: Int, byteCount: Int) {
    release(block, stack: stack, bytes: bytes, objects: objects, byteCount: byteCount)
  }

  /// realloc resized `block` in place to `byteCount` bytes: when it is a sampled block, its live bytes (and
  /// its stack's) become `byteCount` times the objects it stands for; its requested size stays (a slot's
  /// usable size follows it).
  static func resized(_ block: UnsafeMutableRawPointer, byteCount: Int) {
    let record: UnsafeMutableRawPointer
    if SampleSlots.contains(block) {
      guard let slotRecord = SampleSlots.liveRecord(block) else { return }
      record = slotRecord
    } else if let inPage = pageRecord(of: block) {
      record = inPage
    } else {
      guard let segment = SegmentMap.segment(of: UInt(bitPattern: block)), segment.pointee.kind == .huge,
        let spanRecord = spanRecord(segment, block)
      else { return }
      record = spanRecord
    }
    let number = record.load(fromByteOffset: 8, as: Int.self)
    let bytes = record.load(fromByteOffset: 16, as: Int.self)
    let objects = record.load(fromByteOffset: 24, as: Int.self)
    let scaled = Double(objects) / Double(1 << Sampler.objectShift) * Double(Swift.max(byteCount, 1))
    let resized = scaled < 9.0e18 ? Int(scaled) : Int.max / 2
    record.storeBytes(of: resized, toByteOffset: 16, as: Int.self)
    #if hasFeature(Embedded)
    if number >= 0 && number < stackCapacity {
      counter(stack(number), inuseBytesOffset).pointee.wrappingAdd(resized &- bytes, ordering: .relaxed)
    }
    #else
    // The Swift API's copy: its samples are counted in libswalloc.so's profile, which it reaches only to
    // record and release them; there the stack keeps the bytes the block had when it was sampled.
    _ = (number, bytes)
    #endif
  }

  /// Takes `block` out of the live figures when it is a sampled block; returns whether it was.
  static func forget(_ block: UnsafeMutableRawPointer) -> Bool {
    guard let segment = SegmentMap.segment(of: UInt(bitPattern: block)), segment.pointee.kind == .huge else {
      return false
    }
    return noteFree(segment, block)
  }

  /// Whether `block` may be a block the heap profiler sampled (its own huge span, whatever its size) that holds
  /// `byteCount` bytes: secure mode's sized delete then accepts any size up to the span's room. Only while
  /// profiling is on.
  static func isSampledSpanBlock(_ block: UnsafeMutableRawPointer, holding byteCount: Int) -> Bool {
    guard isActive else { return false }
    if SampleSlots.contains(block) { return byteCount <= LibC.usableSize(block) }
    guard let segment = SegmentMap.segment(of: UInt(bitPattern: block)), segment.pointee.kind == .huge
    else { return false }
    return byteCount <= LibC.usableSize(block)
  }

  /// A block for a sample: its own huge span (zeroed when `zeroed`), aligned to `alignment` (a power of two).
  static func allocateBlock(byteCount: Int, alignment: Int, zeroed: Bool, owner: Heap? = nil)
    -> UnsafeMutableRawPointer?
  {
    var fresh = false
    guard let block = HugeSpan.allocate(byteCount: byteCount, alignment: Swift.max(alignment, LibC.minimumAlignment),
                                        zeroed: &fresh, owner: owner)
    else { return nil }
    if zeroed && !fresh { memset(block, 0, Swift.max(byteCount, 1)) }
    return block
  }
}

enum Backtrace {
  /// The most frames a sample keeps (SWALLOC_BACKTRACE_MAX, CShim/Backtrace.c).
  static let maximumFrameCount = Int(SWALLOC_BACKTRACE_MAX)
}

extension Profile {
  /// The allocation at a sample point (SamplePoints.swift): a block of `byteCount` bytes aligned to `alignment`
  /// in a span of its own, recorded with the calling thread's stack. `chargedByteCount` is what the countdown
  /// counted for it (its size class's block size). Nil when it cannot be had, or inside another sample (a
  /// signal handler's allocation): the caller then allocates as usual.
  static func sampleAllocation(byteCount: Int, alignment: Int, chargedByteCount: Int, owner: Heap? = nil)
    -> UnsafeMutableRawPointer?
  {
    asSample {
      // Up to 512 KiB a sample slot; larger, or when the slots run out, a huge span of its own.
      guard let block = SampleSlots.allocate(byteCount: byteCount, alignment: alignment, owner: owner)
        ?? allocateBlock(byteCount: byteCount, alignment: alignment, zeroed: false, owner: owner)
      else { return nil }
      recordWithStack(block, byteCount: byteCount, chargedByteCount: chargedByteCount)
      return block
    }
  }

  /// Runs `body` as the calling thread's sample: its sampler marked busy (nothing allocated meanwhile is
  /// sampled, and nothing the unwinder or the slots do recurses into a sample), errno left as the program had
  /// it. Nil without running it inside another sample (a signal handler's allocation).
  @inline(__always)
  static func asSample<Result>(_ body: () -> Result?) -> Result? {
    let sampler = swalloc_sampler_state()
    if sampler.pointee.busy != 0 { return nil }
    sampler.pointee.busy = 1
    defer { sampler.pointee.busy = 0 }
    let saved = swalloc_errno_get()
    defer { swalloc_errno_set(saved) }
    return body()
  }

  /// Samples of blocks this large stay where the heap put them (`sampleInPage`); smaller ones take a sample
  /// slot. A page holding a sample sends all its frees to the slow path (Page.sampledTag): its pages hold at
  /// most 16 blocks from this size on. In a slot, a sample's memory came beside the heap's, each with its own
  /// free pages kept for reuse: sizesweep's peak RSS was 7.5 % higher with profiling, from the 4-64 KiB
  /// areas' slots.
  static let inPageMinimumByteCount = 4096

  /// Whether the sample at a sample point of `page`, a page of `heap`'s, may stay in the page: malloc's
  /// heaps (a Swift API heap's samples keep their slots, which its destroy frees), blocks of
  /// `inPageMinimumByteCount` and more, not at SWALLOC_SECURE=full (whose large blocks are parked on free).
  @inline(__always)
  static func samplesInPage(_ page: UnsafeMutablePointer<Page>, heap: Heap) -> Bool {
    page.pointee.blockByteCount >= inPageMinimumByteCount && !heap.state.pointee.isUserHeap && !Options.secureFull
  }

  /// The allocation at a sample point of `page` (the first page of its queue in the calling thread's `heap`),
  /// sampled in place: the block the program gets is the one it would have had unsampled, recorded in a page
  /// record that its page's entry in PageSamples names, and the page tagged so that its frees reach
  /// `freeInSampledPage`. Nil when the page has no free block or no entry left, no page record is left, or
  /// inside another sample: the caller then takes a slot.
  static func sampleInPage(_ page: UnsafeMutablePointer<Page>, heap: Heap, byteCount: Int) -> UnsafeMutableRawPointer? {
    guard let free = page.pointee.free else { return nil }
    return asSample {
      let index = SampleSlots.takePageRecord()
      if index < 0 { return nil }
      let record = SampleSlots.pageRecord(index)
      SampleSlots.storeSample(record, stack: -1, bytes: 0, objects: 0, byteCount: byteCount)
      if !PageSamples.add(free, page, record: index) {
        SampleSlots.releasePageRecord(index)
        return nil
      }
      page.pointee.ownerWord.store(page.pointee.owner | Page.sampledTag, ordering: .relaxed)
      let block = heap.handOutBlock(page, byteCount: byteCount)
      recordWithStack(block, byteCount: byteCount, chargedByteCount: page.pointee.blockByteCount, pageRecord: record)
      return block
    }
  }

  /// The live page record of `block` (a block of a page that holds samples in place), or nil.
  static func pageRecord(of block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
    let address = UInt(bitPattern: block)
    guard let segment = SegmentMap.segment(of: address), segment.pointee.kind != .huge else { return nil }
    let page = segment.page(containing: address)
    if page.pointee.owner & Page.sampledTag == 0 { return nil }
    let index = PageSamples.record(of: block, page)
    return index < 0 ? nil : SampleSlots.pageRecord(index)
  }

  /// A free of `block`, a block of `page`, whose owner word has `Page.sampledTag` (free's slow paths, any
  /// thread, before the block goes back to its page): when it is one of the page's samples, its figures leave
  /// the live ones and its record is released; the owner (`heap`, the calling thread's) drops the tag once
  /// the page holds no sample (only the owner writes the owner word).
  @inline(never)
  static func freeInSampledPage(_ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer, heap: UInt) {
    // A second free of the block finds no entry and goes on as free would.
    let (index, others) = PageSamples.take(block, page)
    if index >= 0 {
      release(block, record: SampleSlots.pageRecord(index))
      SampleSlots.releasePageRecord(index)
    }
    let owner = page.pointee.owner
    if !others && owner & ~Page.tagMask == heap {
      PageSamples.clearHint(page)
      page.pointee.ownerWord.store(owner & ~Page.sampledTag, ordering: .relaxed)
    }
  }

  /// Records `block`, a huge block already in a span of its own, as a sample taken here.
  static func recordHere(_ block: UnsafeMutableRawPointer, byteCount: Int, chargedByteCount: Int) {
    _ = asSample { recordWithStack(block, byteCount: byteCount, chargedByteCount: chargedByteCount) }
  }

  static func recordWithStack(_ block: UnsafeMutableRawPointer, byteCount: Int, chargedByteCount: Int,
                              pageRecord: UnsafeMutableRawPointer? = nil) {
    withUnsafeTemporaryAllocation(of: UInt.self, capacity: Backtrace.maximumFrameCount) { frames in
      let count = StackCapture.capture(into: frames.baseAddress.unsafelyUnwrapped, capacity: frames.count)
      _ = record(block, byteCount: byteCount, chargedByteCount: chargedByteCount,
                 frames: frames.baseAddress.unsafelyUnwrapped, frameCount: count, pageRecord: pageRecord)
    }
  }
}
