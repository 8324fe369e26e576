// Page: a run of same-size blocks inside a segment, with three free lists (mimalloc's free-list sharding):
// `free` (malloc pops), `localFree` (same-thread frees push) and `threadFree` (other threads push atomically).
import Synchronization

/// The descriptor of one page. Lives in the segment header at `Segment.pageDescriptorOffset + index * stride`,
/// 64-byte aligned: the first cache line holds what the fast paths touch.
///
/// Invariant while the page is in use, with `|tf|` the blocks on `threadFree` not yet collected:
/// `used - |tf| + |free| + |localFree| == capacity`, and `capacity <= reserved`.
struct Page: ~Copyable {
  /// Free blocks ready for malloc. Fast path (malloc).
  var free: UnsafeMutableRawPointer?
  /// Blocks freed by the owning thread. Fast path (free).
  var localFree: UnsafeMutableRawPointer?
  /// The owning heap's address, with `fullTag` set while the page sits on the heap's full list; 0 while the
  /// page is not in use and for huge spans. Fast path (free compares it with the caller's heap, so a free
  /// into a full page, which must move the page back to its queue, takes the slow path). Atomic because
  /// remote frees read it while the owner sets the full tag (relaxed: a plain load and store on x86-64).
  let ownerWord: Atomic<UInt>
  /// Blocks handed out and not yet returned to this page's lists (plus one for a queue's current page).
  /// Fast path (both).
  var used: Int32
  var state: PageState
  var sizeClass: UInt8
  /// Secure mode: the carved blocks' bytes / 16 (`Secure.LinkReader.bound`) where that is below 2^16, else
  /// 0xFFFF; 0 while nothing is carved. A hint for level 1's malloc fast path, which checks a link against it
  /// with one load (a multiplication of two fields before); a link it refuses goes to the slow path, whose
  /// check is exact. In the first cache line (two bytes that were padding). Never above the exact bound:
  /// `clearCarving` resets both.
  var linkBoundHint: UInt16
  /// Blocks carved out of the page so far (lazily, a few KiB at a time) and blocks that fit in it.
  var capacity: Int32
  var reserved: Int32
  var blockByteCount: Int
  /// First byte of the page's block area.
  var start: UnsafeMutableRawPointer?
  /// `ceil(2^64 / blockByteCount)`: the index of the block at offset `o` is the high word of
  /// `o * reciprocal`, and `o` is a block start when the low word is below `reciprocal` (`Page.blockIndex`;
  /// secure mode's free checks block boundaries with it instead of a division). Unused on huge pages.
  var reciprocal: UInt
  /// Blocks freed by other threads: a Treiber stack of block addresses; the low two bits hold `NotifyState`.
  /// Pushed by any thread with one compare-and-swap; taken whole by the owner. In the descriptor's second
  /// cache line (offset 64), away from the fields the owner's fast paths write.
  let threadFree: Atomic<UInt>
  /// Links in the heap's page queue for `sizeClass`, or in its full list.
  var next: UnsafeMutablePointer<Page>?
  var previous: UnsafeMutablePointer<Page>?
  /// Link in the heap's delayed list (pages that remote frees reported while full).
  var nextDelayed: UnsafeMutablePointer<Page>?
  /// When the page became free (monotonic ms); it is purged `purgeDelay` later.
  var retiredAt: UInt64
  /// When an idle check first found this page, the current one of its class, holding no block (0: it was
  /// not, or it held blocks). A current page still empty a purge delay later is retired.
  var emptySince: UInt64
  /// The rest of the free list while a sample point waits at the end of `free` (SamplePoints.swift): the
  /// blocks after the cut, how many, and which samplers the next allocation from this page serves. Only a
  /// queue's first page holds them; nil, 0 and 0 everywhere else, and always with sampling off.
  var held: UnsafeMutableRawPointer?
  var heldCount: Int32
  var samplePoint: UInt8

  /// Bytes between two descriptors. Page descriptors are found by shifting, so it is a power of two.
  static let strideShift = 7
  static let stride = 1 << strideShift
}

enum PageState: UInt8 {
  /// Not in use (a free page of its segment). Zero: the state of fresh descriptors and the static empty page.
  case free = 0
  /// Owned by a heap, holding blocks of one size class.
  case inUse = 1
  /// The single page of a huge span: one block, no heap.
  case huge = 2
  /// Not a page: the descriptor of a slice after the first of a page (see `Segment.sliceShift`).
  case stub = 3
}

/// The low two bits of `Page.threadFree`.
enum NotifyState {
  /// Nothing to do: a remote free just pushes.
  static let none: UInt = 0
  /// The page is on its heap's full list: the first remote free must queue it on the heap's delayed list.
  static let notify: UInt = 1
  static let mask: UInt = 3
}

/// The intrusive free-list link stored in the first word of a free block.
@inline(__always)
func nextBlock(_ block: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
  block.load(as: UnsafeMutableRawPointer?.self)
}

@inline(__always)
func setNextBlock(_ block: UnsafeMutableRawPointer, _ next: UnsafeMutableRawPointer?) {
  block.storeBytes(of: next, as: UnsafeMutableRawPointer?.self)
}

extension UnsafeMutablePointer where Pointee == Page {
  /// The segment that holds this descriptor.
  @inline(__always)
  var segment: UnsafeMutablePointer<Segment> {
    UnsafeMutablePointer<Segment>(bitPattern: UInt(bitPattern: self) & ~Segment.mask)!
  }

  /// Nothing carved: `capacity` 0 and with it `linkBoundHint`, which must never exceed the carved bytes
  /// (secure malloc's fast path trusts it). Every reset of a page's carving goes through here.
  func clearCarving() {
    pointee.capacity = 0
    pointee.linkBoundHint = 0
  }

  /// Carves up to `extendByteCount` more blocks out of the page onto `free` (which must be empty).
  /// Touches only the memory of the new blocks: fresh pages stay untouched until needed.
  func extend(heap: Heap) {
    if Options.secure { return Secure.extend(self, heap: heap) }
    let blockByteCount = pointee.blockByteCount
    let count = extensionCount
    let first = pointee.start! + Int(pointee.capacity) &* blockByteCount
    var block = first
    for _ in 1..<count {
      let following = block + blockByteCount
      setNextBlock(block, following)
      block = following
    }
    setNextBlock(block, pointee.free)
    pointee.free = first
    pointee.capacity &+= Int32(truncatingIfNeeded: count)
  }

  /// How many blocks the next extension carves: `Page.extendByteCount`'s worth (at least one), at most the
  /// blocks not carved yet. No division: `extendByteCount / blockByteCount` is the index of the block at that
  /// offset, which the page's reciprocal gives exactly (a 64-bit division took about 26 cycles of every
  /// extension; sizesweep extends about a million times a second).
  @inline(__always)
  var extensionCount: Int {
    let perExtension = Int(bitPattern: Page.blockIndex(offset: UInt(Page.extendByteCount), reciprocal: pointee.reciprocal))
    return Swift.min(Int(pointee.reserved &- pointee.capacity), Swift.max(1, perExtension))
  }

  /// Moves the blocks other threads freed onto `localFree`, then `localFree` onto `free` if `free` is empty.
  /// Returns the number of blocks collected from `threadFree`, with their byte count.
  @discardableResult
  func collect() -> Int {
    var collected = 0
    var word = pointee.threadFree.load(ordering: .relaxed)
    if word & ~NotifyState.mask != 0 {
      // Take the whole list, keeping the notify bits.
      while true {
        let (exchanged, original) = pointee.threadFree.compareExchange(
          expected: word, desired: word & NotifyState.mask, ordering: .acquiring)
        if exchanged { break }
        word = original
      }
      let head = UnsafeMutableRawPointer(bitPattern: word & ~NotifyState.mask)!
      if Options.secure {
        collected = Secure.collect(self, head: head)
      } else {
        // `used` counts every block on the list: a longer list loops (a block freed twice by other threads,
        // with other frees in between). It is dropped, its blocks left counted as in use, so that none is
        // handed out twice and the walk ends.
        let limit = Int(pointee.used)
        var tail = head
        collected = 1
        while let following = nextBlock(tail) {
          tail = following
          collected &+= 1
          if collected > limit { break }
        }
        if collected > limit {
          Diagnostics.doubleFree(head, witness: .inPageLists, identified: false)
          collected = 0
        } else {
          setNextBlock(tail, pointee.localFree)
          pointee.localFree = head
        }
      }
      pointee.used &-= Int32(truncatingIfNeeded: collected)
      // Statistics: frees other threads made count as done from here on (see `Statistics.snapshot`).
      if let heap = pointee.heap {
        Heap(heap).state.pointee.collectedRemoteFreeCount &+= collected
      }
    }
    if pointee.free == nil {
      pointee.free = pointee.localFree
      pointee.localFree = nil
    }
    return collected
  }
}

extension Page {
  static let fullTag: UInt = 1
  /// Set in `ownerWord` by the owner while the page may hold blocks the heap profiler sampled where they are
  /// (PageSamples): free's fast path then fails its owner test for the page's blocks and its slow paths look
  /// them up. The owner clears it in its slow path once the page holds none (only the owner writes the word).
  static let sampledTag: UInt = 2
  /// Set in `ownerWord` from the start at SWALLOC_SECURE=1 for a page of sealed blocks (above 1 KiB:
  /// SecureCanary.swift): level 1's free fast path then fails its owner test for them, with no instruction of
  /// its own, and the slow path checks their seal. (Heaps are page-aligned mappings: their low bits are free
  /// for the tags.)
  static let sealedTag: UInt = 4
  static let tagMask: UInt = fullTag | sampledTag | sealedTag

  /// `ownerWord`, read relaxed.
  var owner: UInt {
    @inline(__always) get { ownerWord.load(ordering: .relaxed) }
  }

  /// The owning heap, nil while the page is not in use.
  var heap: UnsafeMutableRawPointer? {
    get { UnsafeMutableRawPointer(bitPattern: owner & ~Page.tagMask) }
    set { ownerWord.store(UInt(bitPattern: newValue), ordering: .relaxed) }
  }

  /// Whether the page is on its heap's full list. Set and cleared by the owner only.
  var isFull: Bool {
    get { owner & Page.fullTag != 0 }
    set { ownerWord.store(newValue ? owner | Page.fullTag : owner & ~Page.fullTag, ordering: .relaxed) }
  }

  /// `ceil(2^64 / blockByteCount)` (`UInt.max / d + 1`, the two being equal for every d above 1): for an
  /// offset `o` below 2^32, the high word of `o * reciprocal` is `o / d` and the low word is below
  /// `reciprocal` exactly when d divides `o` (Lemire, Kaser and Kurz, "Faster remainder by direct
  /// computation", 2019: one multiplication for both). Page offsets are below 4 MiB.
  static func reciprocal(of blockByteCount: Int) -> UInt {
    UInt.max / UInt(blockByteCount) &+ 1
  }

  /// `offset / blockByteCount` for an offset below 2^32, from the block size's `reciprocal`.
  @inline(__always)
  static func blockIndex(offset: UInt, reciprocal: UInt) -> UInt {
    reciprocal.multipliedFullWidth(by: offset).high
  }

  /// Whether `offset` (below 2^32) is a multiple of the block size whose `reciprocal` is given.
  @inline(__always)
  static func isMultiple(offset: UInt, reciprocal: UInt) -> Bool {
    reciprocal.multipliedFullWidth(by: offset).low < reciprocal
  }

  /// Whether `address`, in the slices of `page` (a page in use, not huge), is a multiple of its block size
  /// from its start: the default mode's check that a freed pointer is a block's start (free's and the Swift
  /// API heaps' fast paths). Unlike `Secure.isBlockStart` it does not bound the index by the carved capacity.
  @inline(__always)
  static func isAtBlockBoundary(_ address: UInt, _ page: UnsafeMutablePointer<Page>) -> Bool {
    isMultiple(offset: address &- UInt(bitPattern: page.pointee.start), reciprocal: page.pointee.reciprocal)
  }

  /// How much memory one extension touches: a few OS pages, so fresh memory is touched lazily.
  static let extendByteCount = 8 * 1024
}
