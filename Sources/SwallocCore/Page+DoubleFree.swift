// Page+DoubleFree: the list walks behind the double-free checks. A second free links the block into a list
// it is already on (a cycle, or two lists sharing a tail), and malloc would then hand the block out twice.
// The freed marker (Heap.freedMarker) stops a second free before that; these walks (Heap+Free.swift,
// Heap.findPage, on slow paths only) are what is left when a write over the marker between the two frees
// (a use after free) took it away. Walks follow only links that point into the page's carved blocks, so a
// corrupted link is never dereferenced outside the page.

extension UnsafeMutablePointer where Pointee == Page {
  /// Whether `block` lies among the page's carved blocks (`start ..< start + capacity * blockByteCount`).
  @inline(__always)
  func holdsCarved(_ block: UnsafeMutableRawPointer) -> Bool {
    // Wrapping: capacity * blockByteCount is at most the page size.
    UInt(bitPattern: block - pointee.start.unsafelyUnwrapped) < UInt(Int(pointee.capacity) &* pointee.blockByteCount)
  }

  /// Whether `free` and `localFree` look like what they must be when the page holds no block (used ==
  /// |threadFree| == 0; a queue's current page aside, which keeps its extra count): exactly `capacity` carved
  /// blocks, no cycle. A double free breaks that (a cycle, a shared tail, lost blocks). Follows at most
  /// `limit` links (Brent's cycle detection on each list): lists longer than that are judged on their first
  /// links only, and pass when those show no cycle (see `Heap.retireCheckLinkCount`).
  func listsLookSound(within limit: Int) -> Bool {
    // Secure mode encodes the links (these walks would misread them) and stops double frees at free().
    if Options.secure { return true }
    let start = pointee.start.unsafelyUnwrapped
    // Wrapping: capacity * blockByteCount is at most the page size.
    let carvedByteCount = UInt(Int(pointee.capacity) &* pointee.blockByteCount)
    var remaining = limit
    var count = 0
    var list = pointee.free
    for _ in 0..<2 {
      if let head = list {
        var tortoise = head
        var power = 1
        var length = 0
        var current = head
        while true {
          if UInt(bitPattern: current - start) >= carvedByteCount { return false }
          count &+= 1
          guard let following = nextBlock(current) else { break }
          if following == tortoise { return false }
          remaining &-= 1
          if remaining == 0 { return true }  // not walked to the end: no verdict on the count
          length &+= 1
          if length == power {
            tortoise = following
            power &<<= 1
            length = 0
          }
          current = following
        }
      }
      list = pointee.localFree
    }
    return count == Int(pointee.capacity)
  }

  /// The block that `free` and `localFree` reach twice (the one freed twice), found with a bitmap of block
  /// indices; nil when no block repeats within the first capacity + 1 links. Error path only (it divides).
  func repeatedFreeBlock() -> UnsafeMutableRawPointer? {
    let capacity = Int(pointee.capacity)
    let blockByteCount = pointee.blockByteCount
    let start = pointee.start.unsafelyUnwrapped
    // A page has at most 4096 blocks (64 KiB of 16-byte blocks): 64 words of bits.
    let wordCount = 64
    if capacity > wordCount * 64 { return nil }
    return withUnsafeTemporaryAllocation(of: UInt64.self, capacity: wordCount) { seen in
      for index in 0..<wordCount { seen[index] = 0 }
      var steps = 0
      var list = pointee.free
      for _ in 0..<2 {
        while let block = list, steps <= capacity, holdsCarved(block) {
          let index = (block - start) / blockByteCount
          let bit = UInt64(1) &<< UInt64(index % 64)
          if seen[index / 64] & bit != 0 { return block }
          seen[index / 64] |= bit
          steps &+= 1
          list = nextBlock(block)
        }
        list = pointee.localFree
      }
      return nil
    }
  }
}
