// SamplePoints.handOutFresh counts the free list a page hands out. When the page's localFree list is not empty
// too, the free list's length comes from the two lists' sum minus localFree's length (freeListLength): free
// may be hundreds of blocks other threads freed, which a walk would pull from other cores' caches one
// dependent load at a time. These tests build the lists by hand and check the length against a walk.
import Testing

@testable import Swalloc

@Suite("Sample points: the length of a list handed out")
struct SamplePointsTests {
  /// A page of 64-byte blocks with `freeCount` blocks on `free`, `localCount` on `localFree`, and `heldCount`
  /// on `held`, its `used` as the page would have it (live blocks plus the current page's extra count).
  func withPage(free freeCount: Int, local localCount: Int, held heldCount: Int = 0,
                _ body: (UnsafeMutablePointer<Page>) -> Void) {
    let capacity = 512
    withTestPage(byteCount: capacity * 64, blockByteCount: 64) { page, region in
      page.pointee.capacity = Int32(capacity)
      func list(_ first: Int, _ count: Int) -> UnsafeMutableRawPointer? {
        guard count > 0 else { return nil }
        for index in first..<(first + count) {
          setNextBlock(region + index * 64, index + 1 < first + count ? region + (index + 1) * 64 : nil)
        }
        return region + first * 64
      }
      page.pointee.free = list(0, freeCount)
      page.pointee.localFree = list(freeCount, localCount)
      page.pointee.held = list(freeCount + localCount, heldCount)
      page.pointee.used = Int32(capacity - freeCount - localCount - heldCount + 1)
      body(page)
    }
  }

  @Test("free's length from the sum, for short and long lists on either side",
        arguments: [(1, 1), (390, 5), (5, 390), (100, 100), (200, 1)])
  func fromSum(free: Int, local: Int) {
    withPage(free: free, local: local) { page in
      let sum = Int(page.pointee.capacity) - Int(page.pointee.used) + 1
      #expect(sum == free + local)
      #expect(SamplePoints.freeListLength(page, blocksOnBoth: sum) == free)
      #expect(SamplePoints.listLength(page.pointee.free) == free)
    }
  }

  @Test("with held blocks, or a sum that cannot be right, free is walked")
  func walkedWhenUnsure() {
    withPage(free: 7, local: 3, held: 4) { page in
      let sum = Int(page.pointee.capacity) - Int(page.pointee.used) + 1
      #expect(SamplePoints.freeListLength(page, blocksOnBoth: sum) == 7)
    }
    withPage(free: 7, local: 3) { page in
      #expect(SamplePoints.freeListLength(page, blocksOnBoth: 0) == 7)
      #expect(SamplePoints.freeListLength(page, blocksOnBoth: 3) == 7)
    }
  }
}
