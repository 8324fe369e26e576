import Glibc
import Synchronization
import SwallocTestSupport
import Testing
@testable import Swalloc

/// Allocates `count` blocks of `byteCount` on the calling thread and returns how many addresses repeat among
/// them and `others` (blocks still live), then frees them.
private func repeatsAmongNewBlocks(count: Int, byteCount: Int, others: [UnsafeMutableRawPointer]) -> Int {
  var seen = Set(others.map { UInt(bitPattern: $0) })
  var repeats = 0
  var blocks: [UnsafeMutableRawPointer] = []
  for _ in 0..<count {
    let block = LibC.malloc(byteCount)!
    if !seen.insert(UInt(bitPattern: block)).inserted { repeats += 1 }
    blocks.append(block)
  }
  for block in blocks { LibC.free(block) }
  return repeats
}

// Serialized: the checks count double frees in one process-wide counter.
@Suite("Double frees", .serialized)
struct DoubleFreeTests {
  @Test("free(B); free(B) on the fast path is seen when the free list is refilled; no block is handed out twice")
  func immediateDoubleFreeSeenAtRefill() {
    let before = Diagnostics.doubleFreeCount.load(ordering: .relaxed)
    let repeats = Atomic<Int>(0)
    onThreads(1) { _ in
      let keep = LibC.malloc(176)!  // the page stays in use: both frees take the fast path
      let block = LibC.malloc(176)!
      LibC.free(block)
      LibC.free(block)
      repeats.add(repeatsAmongNewBlocks(count: 3000, byteCount: 176, others: [keep]), ordering: .relaxed)
      LibC.free(keep)
    }
    #expect(Diagnostics.doubleFreeCount.load(ordering: .relaxed) - before == 1)
    #expect(repeats.load(ordering: .relaxed) == 0)
  }

  @Test("free(B), free(C), free(B) as a page's last frees while D is live: the page is set aside, not retired")
  func doubleFreeSeenWhenThePageEmpties() {
    let before = Diagnostics.doubleFreeCount.load(ordering: .relaxed)
    let repeats = Atomic<Int>(0)
    let damaged = Atomic<Int>(0)
    onThreads(1) { _ in
      let blocks = (0..<200).map { _ in LibC.malloc(720)! }
      var first = 100  // three consecutive blocks in one 64 KiB page
      while UInt(bitPattern: blocks[first]) >> 16 != UInt(bitPattern: blocks[first + 2]) >> 16 { first += 1 }
      for (index, block) in blocks.enumerated() where !(first...first + 2).contains(index) { LibC.free(block) }
      let live = blocks[first + 2]
      fill(live, 720)
      LibC.free(blocks[first])
      LibC.free(blocks[first + 1])
      LibC.free(blocks[first])
      repeats.add(repeatsAmongNewBlocks(count: 1000, byteCount: 720, others: [live]), ordering: .relaxed)
      if !check(live, 720) { damaged.add(1, ordering: .relaxed) }
      LibC.free(live)
    }
    #expect(Diagnostics.doubleFreeCount.load(ordering: .relaxed) - before == 1)
    #expect(repeats.load(ordering: .relaxed) == 0)
    #expect(damaged.load(ordering: .relaxed) == 0)
  }

  @Test("a slow-path free of the block at the head of its page's local frees is ignored")
  func doubleFreeSeenAtTheSecondFree() {
    let before = Diagnostics.doubleFreeCount.load(ordering: .relaxed)
    let repeats = Atomic<Int>(0)
    onThreads(1) { _ in
      // Medium blocks past a page's first 64 KiB slice are freed on the slow path.
      let blocks = (0..<12).map { _ in LibC.malloc(20_000)! }
      let block = LibC.malloc(20_000)!
      LibC.free(block)
      LibC.free(block)
      repeats.add(repeatsAmongNewBlocks(count: 100, byteCount: 20_000, others: blocks), ordering: .relaxed)
      for block in blocks { LibC.free(block) }
    }
    #expect(Diagnostics.doubleFreeCount.load(ordering: .relaxed) - before == 1)
    #expect(repeats.load(ordering: .relaxed) == 0)
  }
}
