// The `random` mode of swalloc-api-misuse: a random program over three SwallocHeaps with one double free in
// it, the Swift API's counterpart of Fixtures/double_free_random.c. From a seed: blocks allocated from a
// random heap (some over-aligned), freed by their own heap, by another heap (a cross-heap free, which the API
// takes as a remote free), on another thread (deallocateOnAnyThread) or resized with reallocate; one block
// freed, maybe written after free (its freed marker, a random word, a zero, or its first two words), then freed again the same ways
// or given to reallocate; then more random work and enough allocations of the victim's size from its heap to
// run through its free lists. Secure mode must either abort, naming the misuse, or keep the heaps sound:
// no heap hands out a live block (each new block is compared with every live one before it is written), and
// live blocks keep their contents. Prints "random ok" when the heaps stayed sound; exits 1, saying what
// broke, when they did not. Usage: swalloc-api-misuse random SEED [STEPS [wide] [nowrite]]; `nowrite` writes
// nothing to the freed block (a plain double free, which the default mode must survive too).
import Glibc
import Swalloc

/// xorshift64* (Fixtures/fixture.h's fixtureRandom).
struct RandomSource {
  var state: UInt64

  mutating func next() -> UInt64 {
    state ^= state >> 12
    state ^= state << 25
    state ^= state >> 27
    return state &* 0x2545_F491_4F6C_DD1D
  }

  mutating func draw(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// One live block: where, how large, its fill's tag, and the heap it came from.
struct LiveBlock {
  var pointer: UnsafeMutableRawPointer
  var byteCount: Int
  var tag: UInt64
  var heap: Int
}

/// How a block is freed (or, for the victim's second free, handed to reallocate).
enum Release: Int, CaseIterable {
  case ownHeap, otherHeap, otherThread, anyThreadHere, reallocate
}

func randomFailure(_ message: String) -> Never {
  print("random: \(message)")
  exit(1)
}

/// The byte at `offset` of a block filled for `tag`.
func patternByte(_ tag: UInt64, _ offset: Int) -> UInt8 {
  UInt8(truncatingIfNeeded: (tag &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(offset) &* 0x1000_0000_01B3) >> 29)
}

func fillBlock(_ block: LiveBlock) {
  let bytes = block.pointer.assumingMemoryBound(to: UInt8.self)
  for offset in 0..<block.byteCount { bytes[offset] = patternByte(block.tag, offset) }
}

func verifyBlock(_ block: LiveBlock, _ what: String) {
  let bytes = block.pointer.assumingMemoryBound(to: UInt8.self)
  for offset in 0..<block.byteCount where bytes[offset] != patternByte(block.tag, offset) {
    randomFailure("\(what): block \(block.pointer) of \(block.byteCount) bytes changed at offset \(offset)")
  }
}

func freeOnAnotherThread(_ pointer: UnsafeMutableRawPointer) {
  var thread = pthread_t()
  let created = pthread_create(&thread, nil, { argument in
    SwallocHeap.deallocateOnAnyThread(argument.unsafelyUnwrapped)
    return nil
  }, pointer)
  if created != 0 || pthread_join(thread, nil) != 0 { randomFailure("pthread_create or pthread_join failed") }
}

/// The program; `heaps` are three heaps of the calling thread, reached by index through `with`.
struct RandomHeaps {
  var random: RandomSource
  var slots: [LiveBlock?] = Array(repeating: nil, count: 192)
  var nextTag: UInt64 = 1
  let wide: Bool
  let noWrite: Bool
  let victimSize: Int

  init(seed: UInt64, wide: Bool, noWrite: Bool) {
    random = RandomSource(state: seed &* 0x9E37_79B9_7F4A_7C15 &+ 1)
    self.wide = wide
    self.noWrite = noWrite
    let victimSizes = [16, 32, 48, 96, 256, 1024, 1500, 20_000, 100_000, 300_000]
    victimSize = victimSizes[random.draw(wide ? 10 : 7)]
  }

  mutating func drawSize() -> Int {
    let others = [16, 24, 48, 64, 100, 200, 700, 1500, 20_000, 100_000]
    return random.draw(3) != 0 ? victimSize : others[random.draw(wide ? 10 : 8)]
  }

  /// Fails unless `pointer`'s `byteCount` bytes overlap no live block.
  func checkDisjoint(_ pointer: UnsafeMutableRawPointer, _ byteCount: Int, _ what: String) {
    for case let live? in slots
    where pointer < live.pointer + live.byteCount && live.pointer < pointer + byteCount {
      randomFailure("\(what) returned \(pointer), inside the live block \(live.pointer) of \(live.byteCount) bytes")
    }
  }

  mutating func allocate(slot: Int, byteCount: Int, heap: Int) {
    let alignment = random.draw(6) == 0 ? 64 : 16
    let pointer = with(heap) { $0.allocate(byteCount: byteCount, alignment: alignment) }
    if Int(bitPattern: pointer) & (alignment - 1) != 0 { randomFailure("\(pointer) is not \(alignment)-aligned") }
    checkDisjoint(pointer, byteCount, "allocate(\(byteCount))")
    place(LiveBlock(pointer: pointer, byteCount: byteCount, tag: 0, heap: heap), in: slot)
  }

  /// Puts a new block (already checked) in `slot` with a fresh tag and fills it.
  mutating func place(_ block: LiveBlock, in slot: Int) {
    var block = block
    block.tag = nextTag
    nextTag += 1
    fillBlock(block)
    slots[slot] = block
  }

  /// Frees `pointer`, a block of heap `heap`, as `how` says (reallocate: to `byteCount`, returning the block).
  mutating func release(_ pointer: UnsafeMutableRawPointer, heap: Int, _ how: Release, byteCount: Int = 16)
    -> UnsafeMutableRawPointer?
  {
    switch how {
    case .ownHeap: with(heap) { $0.deallocate(pointer) }
    case .otherHeap: with((heap + 1 + random.draw(2)) % 3) { $0.deallocate(pointer) }
    case .otherThread: freeOnAnotherThread(pointer)
    case .anyThreadHere: SwallocHeap.deallocateOnAnyThread(pointer)
    case .reallocate: return with(heap) { $0.reallocate(pointer, byteCount: byteCount) }
    }
    return nil
  }

  /// Frees or resizes the block of a full slot: its own heap mostly, another heap, another thread, or
  /// reallocate (the block stays in the slot with its new size).
  mutating func releaseRandomly(slot: Int) {
    let block = slots[slot].unsafelyUnwrapped
    verifyBlock(block, "a live block")
    let how = Release(rawValue: [0, 0, 0, 0, 1, 1, 2, 3, 4, 4][random.draw(10)]).unsafelyUnwrapped
    slots[slot] = nil
    if how == .reallocate {
      let byteCount = drawSize()
      let moved = release(block.pointer, heap: block.heap, .reallocate, byteCount: byteCount).unsafelyUnwrapped
      checkDisjoint(moved, byteCount, "reallocate(\(byteCount))")
      let kept = moved.assumingMemoryBound(to: UInt8.self)
      for offset in 0..<min(byteCount, block.byteCount) where kept[offset] != patternByte(block.tag, offset) {
        randomFailure("reallocate lost byte \(offset) of \(block.pointer) (now \(moved))")
      }
      place(LiveBlock(pointer: moved, byteCount: byteCount, tag: 0, heap: block.heap), in: slot)
    } else {
      _ = release(block.pointer, heap: block.heap, how)
    }
  }

  mutating func work(_ count: Int) {
    for _ in 0..<count {
      let slot = random.draw(slots.count)
      if slots[slot] == nil {
        allocate(slot: slot, byteCount: drawSize(), heap: random.draw(3))
      } else {
        releaseRandomly(slot: slot)
      }
    }
  }

  mutating func run(steps: Int, seed: UInt64) {
    work(random.draw(steps))
    let victimHeap = random.draw(3)
    let victim = with(victimHeap) { $0.allocate(byteCount: victimSize) }
    checkDisjoint(victim, victimSize, "allocate(\(victimSize))")
    let first = Release(rawValue: random.draw(4)).unsafelyUnwrapped
    let second = Release(rawValue: random.draw(5)).unsafelyUnwrapped
    let between = random.draw(8)
    // 0: nothing; 1: the second word (the freed marker); 2: a random word; 3: zero at a random word; 4: the
    // first two words (the link and the marker); 5: zero over both
    let drawnKind = random.draw(6)
    let writeKind = noWrite ? 0 : drawnKind
    let offset = writeKind == 1 || writeKind >= 4 ? 8 : 8 * random.draw(victimSize / 8)
    let value = writeKind == 3 || writeKind == 5 ? 0 : random.next()
    let linkValue = writeKind == 5 ? 0 : random.next()
    let reallocateSize = 1 + random.draw(2 * victimSize)
    print("seed \(seed): \(victimSize)-byte block \(victim) of heap \(victimHeap), first \(first), "
      + "\(between) steps, write \(writeKind) at \(offset), then \(second)")
    _ = release(victim, heap: victimHeap, first)
    work(between)
    // A block handed out again in between is live: its second free would be a stale free of a live block.
    if slots.contains(where: { $0.map { $0.pointer < victim + victimSize && victim < $0.pointer + $0.byteCount } ?? false }) {
      print("the block was handed out again: no double free")
    } else {
      if writeKind != 0 { victim.storeBytes(of: value, toByteOffset: offset, as: UInt64.self) }
      if writeKind >= 4 { victim.storeBytes(of: linkValue, as: UInt64.self) }
      if let moved = release(victim, heap: victimHeap, second, byteCount: reallocateSize) {
        let slot = slots.firstIndex { $0 == nil } ?? 0
        if let occupant = slots[slot] {
          slots[slot] = nil
          _ = release(occupant.pointer, heap: occupant.heap, .ownHeap)
        }
        checkDisjoint(moved, reallocateSize, "reallocate(\(reallocateSize)) of the freed block")
        place(LiveBlock(pointer: moved, byteCount: reallocateSize, tag: 0, heap: victimHeap), in: slot)
      }
    }
    work(steps)
    for slot in slots.indices {
      if let block = slots[slot] {
        verifyBlock(block, "a live block")
        slots[slot] = nil
        with(block.heap) { $0.deallocate(block.pointer) }
      }
    }
    // Past the end of every free list of the class: more blocks from the victim's heap, each compared with
    // the others before it is written; every other one is never written (a block a list holds twice is then
    // handed out again with its first word, the encoded link, intact).
    let tailCount = min(3000, (64 << 20) / victimSize)
    var tail: [LiveBlock] = []
    tail.reserveCapacity(tailCount)
    for index in 0..<tailCount {
      let pointer = with(victimHeap) { $0.allocate(byteCount: victimSize) }
      for other in tail where pointer < other.pointer + victimSize && other.pointer < pointer + victimSize {
        randomFailure("allocate(\(victimSize)) returned \(pointer), inside the live block \(other.pointer)")
      }
      let block = LiveBlock(pointer: pointer, byteCount: victimSize, tag: UInt64(index) + 1, heap: victimHeap)
      if index % 2 == 0 { fillBlock(block) }
      tail.append(block)
    }
    for (index, block) in tail.enumerated() where index % 2 == 0 { verifyBlock(block, "a live block") }
    for block in tail { with(victimHeap) { $0.deallocate(block.pointer) } }
    print("random ok")
  }
}

// Created on the main thread, the only one that allocates from them.
nonisolated(unsafe) let randomHeap0 = SwallocHeap()
nonisolated(unsafe) let randomHeap1 = SwallocHeap()
nonisolated(unsafe) let randomHeap2 = SwallocHeap()

/// Calls `body` with heap `index` (0, 1 or 2).
func with<Result>(_ index: Int, _ body: (borrowing SwallocHeap) -> Result) -> Result {
  switch index {
  case 0: body(randomHeap0)
  case 1: body(randomHeap1)
  default: body(randomHeap2)
  }
}

func runRandomHeaps(_ arguments: [String]) {
  guard arguments.count > 2, let seed = UInt64(arguments[2]) else {
    randomFailure("usage: swalloc-api-misuse random SEED [STEPS [wide] [nowrite]]")
  }
  let steps = arguments.count > 3 ? Int(arguments[3]) ?? 400 : 400
  let flags = arguments.dropFirst(4)
  var program = RandomHeaps(seed: seed, wide: flags.contains("wide"), noWrite: flags.contains("nowrite"))
  program.run(steps: steps, seed: seed)
}
