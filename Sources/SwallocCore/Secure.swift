// Secure: SWALLOC_SECURE=1. Free-list links are encoded with a per-process random key and the block's own
// address, checked when followed; a freed block carries a keyed marker, so a second free of it aborts; frees
// of foreign, stale or interior pointers abort; blocks are carved in a random order; guard pages sit between
// each span's header and its blocks, at the end of each segment, and after each huge block.
//
// It costs nothing when off. libswalloc.so's malloc and free jump through entry pointers that secure mode
// points at `Secure.malloc` and `Secure.free` (Exports.c); calloc, realloc and the sized frees test the mode
// once (LibC). The TLS heap slot stays at the static empty heap, whose empty page sends every other malloc
// to its slow path, and whose address no page has as owner, which sends every other free to its slow path;
// those test `Options.secure` and come here. The thread's real heap is in a second TLS slot.
import CShim
import Synchronization

enum Secure {
  /// The encoding key: random, odd, set once (0 while secure mode is off).
  static let keyWord = Atomic<UInt>(0)
  /// The key of freed markers, independent of `keyWord` (a freed block read after its free shows its
  /// marker, which must not give away the link key).
  static let markerKeyWord = Atomic<UInt>(0)
  /// `keyWord`'s value once set, in a plain word: the fast paths xor it straight from memory (an atomic load
  /// takes an instruction of its own). Written only by `initialize`, after the exchange that decides the key,
  /// with that key (threads racing there write the same value).
  @exclusivity(unchecked) nonisolated(unsafe) static var plainKey: UInt = 0
  /// The state of the block-order generator (splitmix64 over a shared counter).
  static let randomState = Atomic<UInt>(0)

  /// Offset of the first guard page in every span: after the header and the 64 slice descriptors (which end
  /// at 8320 bytes), before the first block (16 KiB in at the earliest).
  static let headerGuardOffset = 12 * 1024
  static let guardByteCount = OSMemory.pageByteCount

  static func initialize() {
    var seed = UInt(swalloc_random_word())
    if seed == 0 { seed = UInt(swalloc_now_ms()) &* 0x9E37_79B9_7F4A_7C15 }
    _ = keyWord.compareExchange(expected: 0, desired: mix(seed) | 1, ordering: .relaxed)
    plainKey = keyWord.load(ordering: .relaxed)
    _ = markerKeyWord.compareExchange(expected: 0, desired: mix(seed ^ 0x2545_F491_4F6C_DD1D) | 1, ordering: .relaxed)
    _ = randomState.compareExchange(expected: 0, desired: mix(seed ^ 0x5851_F42D_4C95_7F2D), ordering: .relaxed)
    initializeCanaries(seed: seed)
  }

  /// A new seed for the block-order generator (a forked child); the keys stay. Nothing while secure mode is
  /// off (the state is 0 then).
  static func reseed() {
    let state = randomState.load(ordering: .relaxed)
    if state == 0 { return }
    randomState.store(childSeed(state), ordering: .relaxed)
  }

  /// A forked child's seed for a generator whose state it inherited: new entropy, the time and the process id
  /// (siblings forked in the same millisecond differ even where getentropy fails).
  static func childSeed(_ state: UInt) -> UInt {
    let processID = UInt(truncatingIfNeeded: Int(swalloc_process_id()))
    return mix(state ^ UInt(swalloc_random_word()) ^ UInt(swalloc_now_ms()) ^ processID &<< 32)
  }

  @inline(__always)
  static var key: UInt { plainKey }

  @inline(__always)
  static var markerKey: UInt { markerKeyWord.load(ordering: .relaxed) }

  /// splitmix64's finalizer.
  @inline(__always)
  static func mix(_ value: UInt) -> UInt {
    var z = value
    z = (z ^ (z &>> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z &>> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z &>> 31)
  }

  static func random() -> UInt {
    mix(randomState.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue)
  }

  // MARK: encoded links

  /// Stores the link to `next` in `block`'s first word: `next ^ key ^ rotate(block)`. A link copied from one
  /// block to another, or forged without the key, decodes to an address outside the page.
  @inline(__always)
  static func setNext(_ block: UnsafeMutableRawPointer, _ next: UnsafeMutableRawPointer?, key: UInt = key) {
    link(UInt(bitPattern: block), to: UInt(bitPattern: next), key: key)
  }

  /// `setNext` on addresses (`extend` links blocks it has as integers).
  @inline(__always)
  static func link(_ block: UInt, to next: UInt, key: UInt) {
    UnsafeMutableRawPointer(bitPattern: block).unsafelyUnwrapped
      .storeBytes(of: next ^ mask(block, key: key), as: UInt.self)
  }

  /// A link of `block` kept in `word`, outside the block (SecureLargeBlocks.swift), encoded as if it were in
  /// the block.
  @inline(__always)
  static func storeLink(of block: UnsafeMutableRawPointer, to next: UnsafeMutableRawPointer?,
                        at word: UnsafeMutableRawPointer) {
    word.storeBytes(of: UInt(bitPattern: next) ^ mask(UInt(bitPattern: block), key: key), as: UInt.self)
  }

  /// The link of `block` kept in `word` (`storeLink`), decoded, unchecked.
  @inline(__always)
  static func loadLink(of block: UnsafeMutableRawPointer, at word: UnsafeMutableRawPointer)
    -> UnsafeMutableRawPointer?
  {
    UnsafeMutableRawPointer(bitPattern: word.load(as: UInt.self) ^ mask(UInt(bitPattern: block), key: key))
  }

  /// Links on a page's thread-free list are encoded with the key's top bit flipped (`threadFreeKey`), and
  /// re-encoded with the key when the owner collects them. A block on both a thread-free list and a list of
  /// its own thread (a double free whose freed marker a write between the two frees took away) has one link
  /// for both: whichever list reads it with the other key decodes an address above 2^63, never a valid link,
  /// and aborts. (Found 2026-12-07: another thread's free, a write over the marker, the owner's free: the
  /// collection walked from the thread-free list into the local list, counted its blocks a second time, and
  /// the page was retired with live blocks.)
  static let threadFreeTweak: UInt = 1 &<< 63

  @inline(__always)
  static var threadFreeKey: UInt { key ^ threadFreeTweak }

  /// What a link stored in `block` is xored with.
  @inline(__always)
  static func mask(_ block: UInt, key: UInt) -> UInt { key ^ rotated(block) }

  @inline(__always)
  static func rotated(_ value: UInt) -> UInt { (value &<< 17) | (value &>> 47) }

  @inline(__always)
  static func next(_ block: UnsafeMutableRawPointer, key: UInt = key) -> UnsafeMutableRawPointer? {
    UnsafeMutableRawPointer(bitPattern: block.load(as: UInt.self) ^ mask(UInt(bitPattern: block), key: key))
  }

  /// The link of `block`, a block of `page`, checked to be nil or a 16-byte-aligned address inside the page's
  /// carved blocks. Aborts otherwise (the free list was overwritten: a use after free or an overflow).
  @inline(__always)
  static func checkedNext(_ block: UnsafeMutableRawPointer, page: UnsafeMutablePointer<Page>) -> UnsafeMutableRawPointer? {
    let next = next(block)
    if !isValidLink(next, page) { fail(block, .corruptedFreeList) }
    return next
  }

  /// Whether `next`, a decoded link of `page`'s lists, is nil or a 16-byte-aligned address inside the page's
  /// carved blocks.
  @inline(__always)
  static func isValidLink(_ next: UnsafeMutableRawPointer?, _ page: UnsafeMutablePointer<Page>) -> Bool {
    isValidLink(next, start: UInt(bitPattern: page.pointee.start), bound: LinkReader.bound(page))
  }

  @inline(__always)
  static func isValidLink(_ next: UnsafeMutableRawPointer?, start: UInt, bound: UInt) -> Bool {
    let offset = UInt(bitPattern: next) &- start
    // One comparison for both: rotated right by 4, an offset that is not a multiple of 16 is above any size.
    return next == nil || (offset &>> 4 | offset &<< 60) < bound
  }

  /// `checkedNext` for loops that follow many links of one page: the key and the page's bounds read once
  /// (the compiler reloads them at every link otherwise, the key being an atomic: a collect's walk took 20
  /// instructions a block, 12 with them in registers).
  struct LinkReader {
    let key: UInt
    let start: UInt
    let bound: UInt

    @inline(__always)
    init(_ page: UnsafeMutablePointer<Page>, key: UInt = Secure.key) {
      self.key = key
      start = UInt(bitPattern: page.pointee.start)
      bound = LinkReader.bound(page)
    }

    /// The carved blocks' bytes / 16, which a valid link's offset (rotated right by 4) stays below.
    @inline(__always)
    static func bound(_ page: UnsafeMutablePointer<Page>) -> UInt {
      (UInt(truncatingIfNeeded: page.pointee.capacity) &* UInt(bitPattern: page.pointee.blockByteCount)) &>> 4
    }

    /// The decoded link of `block`, unchecked (`isValid` checks it).
    @inline(__always)
    func next(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? { Secure.next(block, key: key) }

    @inline(__always)
    func isValid(_ next: UnsafeMutableRawPointer?) -> Bool { Secure.isValidLink(next, start: start, bound: bound) }
  }

  /// The marker a freed block carries in its second word (every block has at least 16 bytes): keyed, so a
  /// program cannot write it by chance or on purpose.
  @inline(__always)
  static func freedMarker(_ block: UnsafeMutableRawPointer) -> UInt {
    UInt(bitPattern: block) ^ markerKey
  }

  // MARK: page lists

  /// Pops the first block of `page.free` (which must not be empty), checking its link (SWALLOC_SECURE=full:
  /// and its fill, a freed block's) and clearing its freed marker. At full the caller seals it
  /// (SecureCanary.swift).
  static func pop(_ page: UnsafeMutablePointer<Page>) -> UnsafeMutableRawPointer {
    let block = page.pointee.free.unsafelyUnwrapped
    page.pointee.free = checkedNext(block, page: page)
    if Options.secureFull {
      takeFromListOutOfLine(block, blockByteCount: page.pointee.blockByteCount)
    } else {
      if block.load(fromByteOffset: 8, as: UInt.self) != freedMarker(block) { fail(block, .markerLost) }
      block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self)
    }
    return block
  }

  /// `takeFromList` for `pop`, out of line: its fill check would otherwise enlarge level 1's refills.
  @inline(never)
  static func takeFromListOutOfLine(_ block: UnsafeMutableRawPointer, blockByteCount: Int) {
    takeFromList(block, blockByteCount: blockByteCount)
  }

  /// Carves up to `Page.extendByteCount` more blocks onto `page.free` (which must be empty), linked in a
  /// random order: the i-th block of the list is block (offset + i * stride) mod count, with a random offset
  /// and a random stride prime to the count. So block j links to block (j + stride) mod count, and the links
  /// are written in address order, one store per block and no division.
  static func extend(_ page: UnsafeMutablePointer<Page>, heap: Heap) {
    let bits = orderBits(heap)
    if Options.secureFull { extendFull(page, bits: bits) } else { extendLevel1(page, bits: bits) }
  }

  /// The carving of each level in a function of its own, so that level 1's loop tests nothing of full's.
  @inline(never)
  static func extendLevel1(_ page: UnsafeMutablePointer<Page>, bits: UInt) { extend(page, full: false, bits: bits) }

  @inline(never)
  static func extendFull(_ page: UnsafeMutablePointer<Page>, bits: UInt) { extend(page, full: true, bits: bits) }

  /// 64 random bits for one extension's order, from the heap's own generator (splitmix64 over a counter kept
  /// in the heap, seeded from the process's generator at its first use): no atomic operation on a word that
  /// every thread's extensions share (a locked add on one cache line, moved between cores at each extension).
  @inline(__always)
  static func orderBits(_ heap: Heap) -> UInt {
    var state = heap.state.pointee.orderState
    if state == 0 { state = random() }
    state &+= 0x9E37_79B9_7F4A_7C15
    heap.state.pointee.orderState = state
    return mix(state)
  }

  /// Carves as described above, with `bits` random.
  @inline(__always)
  static func extend(_ page: UnsafeMutablePointer<Page>, full: Bool, bits: UInt) {
    let blockByteCount = page.pointee.blockByteCount
    let count = page.extensionCount
    let size = UInt(bitPattern: blockByteCount)
    let first = UInt(bitPattern: page.pointee.start) &+ UInt(bitPattern: Int(page.pointee.capacity)) &* size
    // No division: the offset and the stride are 32 random bits scaled to their range (count is at most
    // 8 KiB / 16, so the bias is below 2^-23), the coprimality test is a binary gcd. (Five divisions an
    // extension before, about 26 cycles each, for a few dozen blocks carved: sizesweep at level 1 extends
    // 1.3 million times.)
    let offset = Int(bitPattern: ((bits & 0xFFFF_FFFF) &* UInt(bitPattern: count)) &>> 32)
    // A stride of 1 would hand the blocks out in address order from the offset on (neighbours in a row), and
    // count - 1 in reverse order: the stride is drawn from 2 ... count - 2, and the search for one prime to
    // the count wraps around in that range (every count from 5 on but 6 has one, as SecureExtendTests checks
    // up to 8192; 4 and 6 blocks take count - 1).
    var stride = 1
    if count == 4 || count == 6 {
      stride = count &- 1
    } else if count >= 5 {
      stride = 2 &+ Int(bitPattern: ((bits &>> 32) &* UInt(bitPattern: count &- 3)) &>> 32)
      while !areCoprime(stride, count) { stride = stride >= count &- 2 ? 2 : stride &+ 1 }
    }
    // The list's last block, (offset + (count - 1) * stride) mod count, links to the old free list instead
    // (offset + count - stride lies in [0, 2 count)).
    let wrapped = offset &+ count &- stride
    let last = first &+ UInt(bitPattern: wrapped >= count ? wrapped &- count : wrapped) &* size
    let end = first &+ UInt(bitPattern: count) &* size
    let step = UInt(bitPattern: stride) &* size
    let key = key
    // Two runs without a wrap test: blocks whose successor lies `step` above, then those whose successor
    // wrapped around to the start. The last block's link is rewritten after.
    // SWALLOC_SECURE=full: word 8 gets the fresh marker: not the freed one (the memory may hold an earlier
    // page's freed blocks), which tells malloc there is no fill to check; the last word gets zero, which the
    // next block's free checks (an underflow of it); in 16-byte blocks the last word is word 8
    // (SecureCanary.swift). Level 1: word 8 gets the freed marker, so that a free of a block boundary carved
    // and never handed out fails free's fast path as a double free does (without it, such a free pushed the
    // block a second time, and malloc would hand it out twice); every hand-out clears word 8, and the slow
    // path tells the two apart as far as it can (`markedFailure`).
    let marker = full ? markerKey ^ 2 : markerKey
    var block = first
    while block < end &- step {
      link(block, to: block &+ step, key: key)
      mark(block, size: size, marker: marker, full: full)
      block &+= size
    }
    let wrap = step &- (end &- first)
    while block < end {
      link(block, to: block &+ wrap, key: key)
      mark(block, size: size, marker: marker, full: full)
      block &+= size
    }
    // Level 1's sealed classes (above 1 KiB, at most 7 blocks an extension): a zero last word, as at full,
    // for the underflow check of the block after (a recycled page's memory holds anything).
    if !full && isSealed(blockByteCount: blockByteCount) {
      var carved = first &+ size &- 8
      while carved < end {
        UnsafeMutableRawPointer(bitPattern: carved).unsafelyUnwrapped.storeBytes(of: 0, as: UInt.self)
        carved &+= size
      }
    }
    setNext(UnsafeMutableRawPointer(bitPattern: last).unsafelyUnwrapped, page.pointee.free, key: key)
    page.pointee.free = UnsafeMutableRawPointer(bitPattern: first &+ UInt(bitPattern: offset) &* size)
    page.pointee.capacity &+= Int32(truncatingIfNeeded: count)
    page.pointee.linkBoundHint = UInt16(truncatingIfNeeded: Swift.min(LinkReader.bound(page), 0xFFFF))
  }

  /// Marks a block `extend` carves: word 8 gets `block ^ marker` (full: the fresh marker, after a zero last
  /// word; level 1: the freed marker).
  @inline(__always)
  static func mark(_ block: UInt, size: UInt, marker: UInt, full: Bool) {
    let pointer = UnsafeMutableRawPointer(bitPattern: block).unsafelyUnwrapped
    if full { pointer.storeBytes(of: 0, toByteOffset: Int(bitPattern: size &- 8), as: UInt.self) }
    pointer.storeBytes(of: block ^ marker, toByteOffset: 8, as: UInt.self)
  }

  /// Whether `a` and `b` (both at least 1) have no common divisor but 1: Stein's binary gcd (shifts and
  /// subtractions, no division).
  static func areCoprime(_ a: Int, _ b: Int) -> Bool {
    var x = UInt(bitPattern: a)
    var y = UInt(bitPattern: b)
    if (x | y) & 1 == 0 { return false }
    x &>>= UInt(bitPattern: x.trailingZeroBitCount)
    while y != 0 {
      y &>>= UInt(bitPattern: y.trailingZeroBitCount)
      if x > y { swap(&x, &y) }
      y &-= x
    }
    return x == 1
  }

  /// `Page.collect` in secure mode: the thread-free list (encoded links) goes in front of `localFree`.
  static func collect(_ page: UnsafeMutablePointer<Page>, head: UnsafeMutableRawPointer) -> Int {
    // SWALLOC_SECURE=full: a large page's blocks freed by other threads are parked (SecureLargeBlocks.swift).
    if Options.secureFull && page.pointee.blockByteCount > wholeFillMaxByteCount {
      return collectLarge(page, head: head)
    }
    var tail = head
    var collected = 1
    // `used` counts every block on the list: a longer one loops (two threads freed a block at once).
    let limit = Int(page.pointee.used)
    // The thread-free list's links (threadFreeKey), each re-encoded with the key as the walk passes.
    let reader = LinkReader(page, key: threadFreeKey)
    let key = key
    while let following = reader.next(tail) {
      if !reader.isValid(following) { fail(tail, .corruptedFreeList) }
      if collected >= limit { fail(head, .doubleFree) }
      link(UInt(bitPattern: tail), to: UInt(bitPattern: following), key: key)
      tail = following
      collected &+= 1
    }
    setNext(tail, page.pointee.localFree)
    page.pointee.localFree = head
    return collected
  }

  // MARK: entry points

  /// libswalloc.so's malloc in secure mode (Exports.c jumps here): a checked pop from the current page of
  /// the class, as the default fast path's pop but with the link decoded and checked and the freed marker
  /// cleared (about 30 instructions, against 17); everything else in the generic slow path (which takes the
  /// same secure branches). `full` (a literal at each exported entry point: SWALLOC_SECURE=full's own
  /// malloc) adds the trailer's room to the class, the check of the fill and the seal (SecureCanary.swift);
  /// without it the body is level 1's and tests nothing of the level.
  @inline(__always)
  static func malloc(_ byteCount: Int, full: Bool) -> UnsafeMutableRawPointer? {
    let heap = Heap(swalloc_secure_heap_get())
    var corrupted: UnsafeMutableRawPointer? = nil
    // malloc(0) finds the empty page in direct slot 0 (Heap.firstChanged) and takes the slow path, which
    // answers it with an inaccessible unique pointer when guarded sampling has its region (GuardedSlots).
    // Full: room for the trailer, the class of byteCount + 8 (SecureCanary.swift).
    let trailer = full ? trailerByteCount : 0
    if UInt(bitPattern: byteCount) <= UInt(SizeClass.directMaxByteCount &- trailer) {
      let page = heap.directPage((byteCount &+ (15 &+ trailer)) &>> 4)
      if let block = page.pointee.free {
        let next = next(block)
        if full {
          let blockByteCount = page.pointee.blockByteCount
          // Blocks above 256 bytes: their own path (memcmp), entered by a jump, so that this one saves no
          // registers for a call.
          if blockByteCount > inlineFillMaxByteCount {
            return mallocFilled(heap, page, block, next: next, byteCount: byteCount)
          }
          // A marker or fill that differs: the slow path pops the block again and reports the write.
          if isValidLink(next, page) && fillIntact(block, blockByteCount: blockByteCount) {
            return handOut(heap, page, block, next: next, byteCount: byteCount, blockByteCount: blockByteCount,
                           full: true)
          }
          if !isValidLink(next, page) { corrupted = block }
        } else {
          // Level 1: the link against the page's hint (one load: Page.linkBoundHint), and the freed marker (a
          // block on a list twice, or written after free, has lost it). Either failing, the slow path pops the
          // block again (Secure.pop), checks its link against the exact bound and its marker, and reports.
          if isValidLink(next, start: UInt(bitPattern: page.pointee.start), bound: UInt(page.pointee.linkBoundHint))
            && block.load(fromByteOffset: 8, as: UInt.self) == freedMarker(block)
          {
            return handOut(heap, page, block, next: next, byteCount: byteCount, blockByteCount: 0, full: false)
          }
        }
      }
    }
    // One call site: the fast path then needs no stack frame.
    return mallocSlow(heap, byteCount, corrupted: corrupted)
  }

  /// SWALLOC_SECURE=full's malloc fast path for blocks above `inlineFillMaxByteCount` (up to 1 KiB
  /// requests): as the inline one, with the fill checked by memcmp.
  @inline(never)
  static func mallocFilled(_ heap: Heap, _ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer,
                           next: UnsafeMutableRawPointer?, byteCount: Int) -> UnsafeMutableRawPointer? {
    let blockByteCount = page.pointee.blockByteCount
    let valid = isValidLink(next, page)
    if valid && fillIntact(block, blockByteCount: blockByteCount) {
      return handOut(heap, page, block, next: next, byteCount: byteCount, blockByteCount: blockByteCount,
                     full: true)
    }
    return mallocSlow(heap, byteCount, corrupted: valid ? nil : block)
  }

  /// Hands out `block`, the head of `page.free` whose checks passed: `next` becomes the head, the freed
  /// marker is cleared (full: the block sealed for `byteCount`; in 16-byte blocks the seal's trailer replaces
  /// the marker), and the counts follow. The three fast paths' one copy (a literal `full` at each).
  @inline(__always)
  static func handOut(_ heap: Heap, _ page: UnsafeMutablePointer<Page>, _ block: UnsafeMutableRawPointer,
                      next: UnsafeMutableRawPointer?, byteCount: Int, blockByteCount: Int, full: Bool)
    -> UnsafeMutableRawPointer
  {
    page.pointee.free = next
    if !full || blockByteCount > 16 { block.storeBytes(of: 0, toByteOffset: 8, as: UInt.self) }
    if full { seal(block, byteCount: byteCount, blockByteCount: blockByteCount) }
    page.pointee.used &+= 1
    heap.state.pointee.mallocCount &+= 1
    return block
  }

  /// Everything secure malloc's fast path does not finish; `corrupted` is a block whose link failed its check.
  @inline(never)
  static func mallocSlow(_ heap: Heap, _ byteCount: Int, corrupted: UnsafeMutableRawPointer?)
    -> UnsafeMutableRawPointer?
  {
    if let corrupted { fail(corrupted, .corruptedFreeList) }
    if byteCount == 0 && Guarded.isEnabled, let block = Guarded.zeroSizeBlock() { return block }
    return Heap.allocateSlow(heap: heap, byteCount: byteCount)
  }

  /// libswalloc.so's free in secure mode: when the block is a block boundary of a page of the calling
  /// thread's heap that is not full, and its freed marker is not set, the marker is set and the block pushed
  /// on the page's local list with an encoded link (about 45 instructions, against 22 for the default).
  /// Everything else, and every error, goes to `freeSlow`. `full` (a literal, as malloc's) adds the check of
  /// the previous block's end and of the block's seal, and the fill (SecureCanary.swift).
  @inline(__always)
  static func free(_ block: UnsafeMutableRawPointer?, full: Bool) {
    let address = UInt(bitPattern: block)
    var slot: UInt = 0
    let unit = SegmentMap.unit(address)
    if SegmentMap.entry(unit: unit) == 1 {
      // The segment's address from its unit number, in one shift (Heap.free).
      slot = (unit &<< UInt(Segment.shift)) &+ Heap.descriptorOffset(address)
      let page = Heap.pageAt(slot)
      // The owner word is the heap's address only while the page is in use and not full.
      // Level 1: a sealed block's page (above 1 KiB: SecureCanary.swift) carries Page.sealedTag in its owner
      // word: its blocks take the slow path, which checks their seal.
      if page.pointee.owner == UInt(bitPattern: swalloc_secure_heap_get()), isBlockStart(address, page) {
        let block = block.unsafelyUnwrapped
        let marker = freedMarker(block)
        let blockByteCount = full ? page.pointee.blockByteCount : 0
        // Full: blocks above 256 bytes take their own path (memset), entered by a jump, so that this one
        // saves no registers for a call. (It reads the marker itself: a parked large block must not be read.)
        if full && blockByteCount > inlineFillMaxByteCount { return freeFilled(block, slot: slot) }
        // Full: the previous block's end; when it looks wrong, the slow path checks again and reports.
        if block.load(fromByteOffset: 8, as: UInt.self) != marker
          && (!full || address == UInt(bitPattern: page.pointee.start)
            || previousLooksIntact(block, blockByteCount: blockByteCount))
        {
          if full {
            checkSeal(block, blockByteCount: blockByteCount)
            fill(block, blockByteCount: blockByteCount)
          }
          if !pushFreed(block, marker: marker, page) { return }
          // Pushed, and the page is now empty: the low bit tells `freeSlow` to retire it.
          slot |= 1
        }
      }
    }
    freeSlow(block, slot)
    swalloc_after_slow_call()
  }

  /// SWALLOC_SECURE=full's free fast path for blocks above `inlineFillMaxByteCount` (`free`'s checks of the
  /// owner, the boundary and the marker passed): as the inline one, with the fill written by memset (or,
  /// large blocks, `fillLarge`).
  @inline(never)
  static func freeFilled(_ block: UnsafeMutableRawPointer, slot: UInt) {
    let page = Heap.pageAt(slot)
    let blockByteCount = page.pointee.blockByteCount
    var slot = slot
    // A large block: its own path (the block before it, or this one, may be parked).
    if blockByteCount > wholeFillMaxByteCount { return freeLarge(block, page, slot: slot) }
    if block.load(fromByteOffset: 8, as: UInt.self) != freedMarker(block)
      && (block == page.pointee.start || previousLooksIntact(block, blockByteCount: blockByteCount))
    {
      checkSeal(block, blockByteCount: blockByteCount)
      fill(block, blockByteCount: blockByteCount)
      if !pushFreed(block, marker: freedMarker(block), page) { return }
      slot |= 1
    }
    freeSlow(block, slot)
  }

  /// SWALLOC_SECURE=full's free of a large block of a page of the calling thread's heap (the fast path's
  /// checks of the owner and the boundary passed): the block is checked and parked (SecureLargeBlocks.swift),
  /// or when it cannot be, filled and pushed. A parked block (a second free), a marker already set or a block
  /// before it that looks overwritten: the slow path, which reports.
  @inline(never)
  static func freeLarge(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>, slot: UInt) {
    let blockByteCount = page.pointee.blockByteCount
    if !isParked(block, page) && block.load(fromByteOffset: 8, as: UInt.self) != freedMarker(block)
      && (block == page.pointee.start || isParked(block - blockByteCount, page)
        || previousLooksIntact(block, blockByteCount: blockByteCount))
    {
      checkSeal(block, blockByteCount: blockByteCount)
      if park(block, page, heap: Heap(swalloc_secure_heap_get())) { return }
      fill(block, blockByteCount: blockByteCount)
      if !pushFreed(block, marker: freedMarker(block), page) { return }
      return freeSlow(block, slot | 1)
    }
    freeSlow(block, slot)
  }

  /// Pushes `block`, checked (and at full filled), on `page.localFree` with its freed `marker`; true when
  /// the page is now empty. Both free fast paths' one copy.
  @inline(__always)
  static func pushFreed(_ block: UnsafeMutableRawPointer, marker: UInt, _ page: UnsafeMutablePointer<Page>) -> Bool {
    block.storeBytes(of: marker, toByteOffset: 8, as: UInt.self)
    setNext(block, page.pointee.localFree, key: key)
    page.pointee.localFree = block
    page.pointee.used &-= 1
    return page.pointee.used == 0
  }

  /// Whether `address`, an address in the slices of `page` (a page in use, not huge), is the start of one of
  /// its carved blocks: a multiple of the block size from the page's start, below the carved capacity, both
  /// from one multiplication by the page's reciprocal (`Page.reciprocal`). An address in the same page is
  /// less than 4 MiB past its start, where both answers are exact; one before the start (in the segment
  /// header) wraps around to an offset above 2^63, whose high word is above 2^44, more than any capacity.
  @inline(__always)
  static func isBlockStart(_ address: UInt, _ page: UnsafeMutablePointer<Page>) -> Bool {
    let offset = address &- UInt(bitPattern: page.pointee.start)
    let reciprocal = page.pointee.reciprocal
    return Page.isMultiple(offset: offset, reciprocal: reciprocal)
      && Page.blockIndex(offset: offset, reciprocal: reciprocal) < UInt(truncatingIfNeeded: page.pointee.capacity)
  }

  /// Everything `free`'s fast path does not finish. `slot` is the descriptor slot it found (0: the segment
  /// map entry was not 1), with the low bit set when it pushed the block and emptied the page.
  @inline(never)
  static func freeSlow(_ block: UnsafeMutableRawPointer?, _ slot: UInt) {
    guard let block else { return }
    let heap = Heap(swalloc_secure_heap_get())
    if slot & 1 != 0 { return heap.retire(Heap.pageAt(slot & ~1)) }
    if slot != 0 && !Options.secureFull {
      let page = Heap.pageAt(slot)
      if page.pointee.owner == UInt(bitPattern: heap.base) | Page.sealedTag {
        if freeSealedOwned(block, page, heap: heap) { return }
      } else if freeRemote(block, page: page, heap: heap) {
        return
      }
    }
    free(block, heap: heap, slot: slot)
  }

  /// Level 1's free of a sealed block (above 1 KiB) of a page of the calling thread's heap that is in use
  /// and not full (its owner word is the heap's address with `Page.sealedTag` and no other tag): the checks
  /// of `free(_:heap:slot:)` for it (a block start, no freed marker, its seal, the end of the block before),
  /// then the marker and the push as on the fast path, without the general path's calls and saved registers
  /// (about 160 instructions a free before). False, having changed nothing, when the pointer is not a block
  /// start or the marker is set: the general path reports.
  @inline(__always)
  static func freeSealedOwned(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>, heap: Heap)
    -> Bool
  {
    let marker = freedMarker(block)
    if !isBlockStart(UInt(bitPattern: block), page) || block.load(fromByteOffset: 8, as: UInt.self) == marker {
      return false
    }
    let blockByteCount = page.pointee.blockByteCount
    checkSeal(block, blockByteCount: blockByteCount)
    if block != page.pointee.start { checkPrevious(block, blockByteCount: blockByteCount) }
    if pushFreed(block, marker: marker, page) { heap.retire(page) }
    return true
  }

  /// Level 1's free of a block of another heap's page (the slow path's usual case under producer/consumer
  /// threads): the checks of `free(_:heap:slot:)` for it (a page in use, a block start, no freed marker, the
  /// seal of a sealed block), the marker set and the block pushed on the page's thread-free list, without
  /// that function's calls and saved registers. False, having changed nothing, for anything else (its own heap's page, a stub, a page
  /// tagged by the heap profiler, a marker already set: the general path decides and reports).
  @inline(__always)
  static func freeRemote(_ block: UnsafeMutableRawPointer, page: UnsafeMutablePointer<Page>, heap: Heap) -> Bool {
    let owner = page.pointee.owner
    let address = UInt(bitPattern: block)
    if page.pointee.state != .inUse || owner & Page.sampledTag != 0 || owner & ~Page.tagMask == UInt(bitPattern: heap.base)
      || !isBlockStart(address, page)
    {
      return false
    }
    let marker = freedMarker(block)
    if block.load(fromByteOffset: 8, as: UInt.self) == marker { return false }
    let blockByteCount = page.pointee.blockByteCount
    if isSealed(blockByteCount: blockByteCount) { checkSeal(block, blockByteCount: blockByteCount) }
    block.storeBytes(of: marker, toByteOffset: 8, as: UInt.self)
    Heap.freeRemote(page, block, heap, encoded: true)
    return true
  }

  // MARK: free

  /// free() in secure mode, with `heap` the calling thread's real heap (or the user heap freeing). `slot` is
  /// the descriptor slot free's fast path computed (0: the segment map entry was not 1).
  static func free(_ block: UnsafeMutableRawPointer, heap: Heap, slot: UInt = 0) {
    let address = UInt(bitPattern: block)
    var page: UnsafeMutablePointer<Page>
    if slot != 0 {
      page = Heap.pageAt(slot)
    } else {
      guard let segment = SegmentMap.segment(of: address) else {
        if Heap.freeInSamplingRegions(block) { return }
        fail(block, .foreign)
      }
      page = segment.page(containing: address)
    }
    if page.pointee.state != .inUse {
      if Heap.freeInSamplingRegions(block) { return }
      // A stub: the slice is not the first of its page (medium and large pages, huge spans).
      if page.pointee.state == .stub {
        let segment = page.segment
        page = segment.page(ofSlice: segment.index(ofSlice: page))
      }
      if page.segment.pointee.kind == .huge {
        if page.pointee.state != .huge || page.pointee.used != 1 { fail(block, .doubleFree) }
        if block != page.pointee.start { fail(block, .interior) }
        return HugeSpan.free(page, block)
      }
      if page.pointee.state != .inUse { fail(block, .doubleFree) }
    }
    if !isBlockStart(address, page) { fail(block, .interior) }
    // Full: a parked block is a freed one (and must not be read).
    if isParked(block, page) { fail(block, .doubleFree) }
    let marker = freedMarker(block)
    let word = block.load(fromByteOffset: 8, as: UInt.self)
    if word == marker { fail(block, markedFailure(block, page)) }
    // The heap profiler samples blocks of this page where they are (Profile.sampleInPage).
    if page.pointee.owner & Page.sampledTag != 0 {
      Profile.freeInSampledPage(page, block, heap: UInt(bitPattern: heap.base))
    }
    let owned = page.pointee.owner & ~Page.tagMask == UInt(bitPattern: heap.base)
    let blockByteCount = page.pointee.blockByteCount
    // Sealed blocks (every class at full, above 1 KiB at 1): the canary and the trailer, and on the owner's
    // thread the end of the block before (an underflow of this one): a live or freed block's trailer (level 1
    // leaves it at free), or the zero its carving wrote. Only the owner's thread reads it (no malloc of that
    // block can race the read), and not when that block is parked (full).
    if isSealed(blockByteCount: blockByteCount) {
      if Options.secureFull && isFresh(block, word: word, blockByteCount: blockByteCount) {
        fail(block, .neverAllocated)
      }
      checkSeal(block, blockByteCount: blockByteCount)
      if owned && block != page.pointee.start && !isParked(block - blockByteCount, page) {
        checkPrevious(block, blockByteCount: blockByteCount)
      }
      // Full: a large block is parked (its owner's free) or hidden (another thread's), any other filled.
      if Options.secureFull {
        if blockByteCount > wholeFillMaxByteCount {
          if owned ? park(block, page, heap: heap) : hideRemote(block, page, heap: heap) { return }
        }
        fill(block, blockByteCount: blockByteCount)
      }
    }
    block.storeBytes(of: marker, toByteOffset: 8, as: UInt.self)
    if owned {
      return heap.freeOwned(page, block, encoded: true)
    }
    Heap.freeRemote(page, block, heap, encoded: true)
  }

  /// What a block of `page` that carries the freed marker is, for the report. At full, a freed block (its
  /// carving writes the fresh marker instead). At level 1, whose carving writes the freed marker too: a freed
  /// block when it is on the page's local or thread-free list; a block boundary never handed out when it is
  /// a sealed block whose trailer is still the zero its carving wrote; otherwise either (a block on `free`,
  /// which holds an extension's blocks or, once moved there, freed ones), reported as no live block. Error
  /// path only: the walks follow at most `capacity` links, each checked to lie in the page (another thread
  /// may be changing the lists: the walk may miss the block, never leave the page).
  static func markedFailure(_ block: UnsafeMutableRawPointer, _ page: UnsafeMutablePointer<Page>) -> Failure {
    if Options.secureFull { return .doubleFree }
    let blockByteCount = page.pointee.blockByteCount
    if isSealed(blockByteCount: blockByteCount) {
      return block.load(fromByteOffset: blockByteCount &- 8, as: UInt.self) == 0 ? .neverAllocated : .doubleFree
    }
    let limit = Int(page.pointee.capacity)
    let threadFree = page.pointee.threadFree.load(ordering: .relaxed) & ~NotifyState.mask
    for list in 0..<2 {
      var current = list == 0 ? UnsafeMutableRawPointer(bitPattern: threadFree) : page.pointee.localFree
      let reader = LinkReader(page, key: list == 0 ? threadFreeKey : key)
      var steps = 0
      while let listed = current, steps < limit, reader.isValid(listed) {
        if listed == block { return .doubleFree }
        current = reader.next(listed)
        steps &+= 1
      }
    }
    return .notLive
  }

  // MARK: guard pages

  /// Puts `span`'s trailing guard page at `offset`, moving it from where an earlier use of the span left it
  /// (guards stay set while a span is cached: reusing it the same way costs no system call).
  static func placeTrailingGuard(_ span: UnsafeMutablePointer<Segment>, at offset: Int) {
    let current = span.pointee.trailingGuardOffset
    if current == offset { return }
    if current != 0 { guardRange(span.address + current, byteCount: guardByteCount, on: false) }
    guardRange(span.address + offset, byteCount: guardByteCount, on: true)
    span.pointee.trailingGuardOffset = offset
  }

  /// Makes `[address, address + byteCount)` a guard (inaccessible), or accessible again.
  static func guardRange(_ address: UnsafeMutableRawPointer, byteCount: Int, on: Bool) {
    _ = OSMemory.protect(address, byteCount: byteCount, accessible: !on)
  }

  // MARK: failure

  enum Failure {
    case foreign, doubleFree, interior, corruptedFreeList, neverAllocated, notLive, freed
    /// Level 1's malloc found a block on a free list without its freed marker: it was handed out already (a
    /// second free, whose marker check a write after the first one defeated, put it on a list twice), or
    /// the marker's bytes were written after free.
    case markerLost
  }

  /// The end of every secure-mode abort message: the level that stopped the process.
  static var abortingAtLevel: StaticString {
    Options.secureFull ? "; aborting (SWALLOC_SECURE=full)\n" : "; aborting (SWALLOC_SECURE=1)\n"
  }

  /// Reports a misuse of the heap and aborts (secure mode's answer; glibc aborts on what it detects too).
  /// `function`: the call that was given the bad pointer. Out of line: its message buffer would otherwise
  /// enlarge the frames of the paths that check.
  @inline(never)
  static func fail(_ block: UnsafeMutableRawPointer, _ failure: Failure, function: StaticString = "free()") -> Never {
    ErrorWriter.withWriter { writer in
      writer.text("swalloc: ")
      if failure == .corruptedFreeList {
        writer.text("malloc(): corrupted free list at ")
      } else if failure == .markerLost {
        writer.text("malloc(): freed block ")
      } else {
        writer.text(function)
        switch failure {
        case .foreign, .neverAllocated: writer.text(": invalid pointer ")
        case .doubleFree: writer.text(": double free of ")
        case .freed: writer.text(": freed block ")
        case .interior: writer.text(": pointer into the middle of a block ")
        case .notLive: writer.text(": no live block at ")
        case .corruptedFreeList, .markerLost: break
        }
      }
      writer.hexadecimal(UInt(bitPattern: block))
      switch failure {
      case .foreign: writer.text(" (not allocated by swalloc)")
      case .doubleFree, .freed: writer.text(" (already free)")
      case .interior: writer.text(" (not the start of a block)")
      case .corruptedFreeList: writer.text(" (a freed block was overwritten: use after free or overflow)")
      case .neverAllocated: writer.text(" (a block boundary never handed out)")
      case .notLive: writer.text(" (freed, or never handed out)")
      case .markerLost:
        writer.text(" lost its freed marker (bytes 8 to 15): it was written after free, or freed twice with a write")
        writer.text(" in between")
      }
      writer.text(Secure.abortingAtLevel)
    }
    swalloc_abort()
  }
}

extension Heap {
  /// The calling thread's heap on slow paths: the TLS slot's, or in secure mode the secure slot's.
  @inline(__always)
  static var owned: Heap { Options.secure ? Heap(swalloc_secure_heap_get()) : Heap(swalloc_heap_get()) }
}
