import CShim
import Glibc
import Synchronization
import Testing
@testable import Swalloc
import SwallocTestSupport


/// Addresses passed between threads. Guarded by a pthread mutex, which ThreadSanitizer understands
/// (it reports races through Synchronization.Mutex, whose futex it does not see).
final class Mailbox: @unchecked Sendable {
  private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
  private var addresses: [UInt] = []
  init() { pthread_mutex_init(mutex, nil) }
  deinit {
    pthread_mutex_destroy(mutex)
    mutex.deallocate()
  }
  func put(_ address: UnsafeMutableRawPointer) {
    pthread_mutex_lock(mutex)
    addresses.append(UInt(bitPattern: address))
    pthread_mutex_unlock(mutex)
  }
  func takeAll() -> [UnsafeMutableRawPointer] {
    pthread_mutex_lock(mutex)
    defer { pthread_mutex_unlock(mutex) }
    let all = addresses.map { UnsafeMutableRawPointer(bitPattern: $0)! }
    addresses.removeAll()
    return all
  }
}

/// Fills a block with a pattern derived from its address and size, and checks it.
func fill(_ block: UnsafeMutableRawPointer, _ byteCount: Int) {
  let seed = UInt8(truncatingIfNeeded: UInt(bitPattern: block) >> 4 ^ UInt(byteCount))
  for index in stride(from: 0, to: byteCount, by: 61) {
    block.storeBytes(of: seed &+ UInt8(truncatingIfNeeded: index), toByteOffset: index, as: UInt8.self)
  }
}

func check(_ block: UnsafeMutableRawPointer, _ byteCount: Int) -> Bool {
  let seed = UInt8(truncatingIfNeeded: UInt(bitPattern: block) >> 4 ^ UInt(byteCount))
  for index in stride(from: 0, to: byteCount, by: 61)
  where block.load(fromByteOffset: index, as: UInt8.self) != seed &+ UInt8(truncatingIfNeeded: index) {
    return false
  }
  return true
}

@Suite("Heaps and threads")
struct HeapTests {
  @Test("blocks allocated on one thread and freed on others keep their contents and are reused")
  func crossThreadFrees() {
    let mailboxes = (0..<4).map { _ in Mailbox() }
    let corrupted = Atomic<Int>(0)
    let sizes = [16, 24, 100, 1000, 3000, 20_000, 200_000]
    onThreads(4) { me in
      for round in 0..<200 {
        for index in 0..<50 {
          let byteCount = sizes[(index + round + me) % sizes.count]
          let block = LibC.malloc(byteCount)!
          block.storeBytes(of: byteCount, as: Int.self)  // size in the first word, pattern after it
          fill(block + 8, byteCount - 8)
          mailboxes[(me + 1) % 4].put(block)
        }
        for block in mailboxes[me].takeAll() {
          let byteCount = block.load(as: Int.self)
          if !check(block + 8, byteCount - 8) || LibC.mallocUsableSize(block) < byteCount { corrupted.add(1, ordering: .relaxed) }
          LibC.free(block)
        }
      }
    }
    for mailbox in mailboxes { for block in mailbox.takeAll() { LibC.free(block) } }
    #expect(corrupted.load(ordering: .relaxed) == 0)
  }

  @Test("remote frees into a full page make it usable again (delayed list)")
  func fullPageReturns() throws {
    // A producer fills many pages of one class (they go to its full list), a consumer thread frees every
    // block, then the same producer allocates again: it must reuse those pages rather than map new ones.
    // The producer stays alive throughout, so the test does not depend on which pooled heap a thread gets.
    let handedOver = Mailbox()
    let consumed = Atomic<Bool>(false)
    let reused = Atomic<Int>(0)
    onThreads(2) { role in
      if role == 0 {
        var blocks: [UnsafeMutableRawPointer] = []
        for _ in 0..<20_000 { blocks.append(LibC.malloc(48)!) }
        let original = Set(blocks.map { UInt(bitPattern: $0) })
        for block in blocks { handedOver.put(block) }
        while !consumed.load(ordering: .acquiring) { usleep(1000) }
        var again: [UnsafeMutableRawPointer] = []
        for _ in 0..<20_000 {
          let block = LibC.malloc(48)!
          if original.contains(UInt(bitPattern: block)) { reused.add(1, ordering: .relaxed) }
          again.append(block)
        }
        for block in again { LibC.free(block) }
      } else {
        var freed = 0
        while freed < 20_000 {
          let blocks = handedOver.takeAll()
          for block in blocks { LibC.free(block) }
          freed += blocks.count
          if blocks.isEmpty { usleep(1000) }
        }
        consumed.store(true, ordering: .releasing)
      }
    }
    #expect(reused.load(ordering: .relaxed) > 10_000)
  }

  @Test("thread churn reuses pooled heaps instead of making one per thread")
  func threadChurn() {
    let survivors = Mailbox()
    for _ in 0..<20 {
      onThreads(4) { _ in
        for index in 0..<100 {
          let block = LibC.malloc(32 + index)!
          if index % 10 == 0 { survivors.put(block) } else { LibC.free(block) }
        }
      }
    }
    for block in survivors.takeAll() { LibC.free(block) }
    // 80 threads ran, at most 4 (plus the test runner's own threads) at a time.
    #expect(Statistics.snapshot().heapCount < 40)
  }

  @Test("statistics count allocations and frees")
  func statistics() throws {
    let before = Statistics.snapshot()
    onThreads(1) { _ in
      var blocks: [UnsafeMutableRawPointer] = []
      for index in 0..<1000 { blocks.append(LibC.malloc(index % 300 + 1)!) }
      for block in blocks { LibC.free(block) }
    }
    let after = Statistics.snapshot()
    #expect(after.allocationCount - before.allocationCount >= 1000)
    #expect(after.freeCount - before.freeCount >= 1000)
    #expect(after.mappedByteCount > 0)
    #expect(after.peakByteCount > 0)
    #expect(after.residentByteCount > 0)
  }

  @Test("a heap purges its free pages after the delay: they leave RSS")
  func purge() throws {
    let outcome = Mutex<(sampled: Int, residentBefore: Int, stillOwned: Int, residentAfter: Int, dirty: Int)>(
      (0, 0, 0, 0, 0))
    onThreads(1) { _ in
      var blocks: [UnsafeMutableRawPointer] = []
      for _ in 0..<(64 * 1024) { blocks.append(LibC.malloc(1000)!) }  // 64 MiB
      for block in blocks { memset(block, 1, 1000) }
      let pages = stride(from: 0, to: blocks.count, by: 97).map { UInt(bitPattern: blocks[$0]) & ~4095 }
      let residentBefore = residentCount(pages)
      for block in blocks { LibC.free(block) }
      // The delay adapts (PurgeDelay) and other tests running meanwhile may raise it: wait it out, a few times.
      let heap = Heap.current
      for _ in 0..<5 where heap.dirtyPageCount() != 0 {
        usleep(UInt32(PurgeDelay.milliseconds * 1000 + 20_000))
        heap.purgeIfDue(now: nil)
      }
      // Segments that became entirely free went to the span cache, where other tests may reuse them: look
      // only at the pages of segments this heap still owns, which nobody else touches.
      var owned: [UInt] = []
      var dirty = 0
      var candidate = heap.state.pointee.segments
      while let segment = candidate {
        candidate = segment.pointee.nextInHeap
        dirty += segment.pointee.dirtyMask.nonzeroBitCount
        let start = UInt(bitPattern: segment)
        for page in pages where page >= start && page < start + UInt(Segment.byteCount) {
          let index = Int((page - start) >> UInt(segment.pointee.pageShift))
          if segment.page(at: index).pointee.state == .free { owned.append(page) }
        }
      }
      outcome.withLock { $0 = (pages.count, residentBefore, owned.count, residentCount(owned), dirty) }
    }
    let result = outcome.withLock { $0 }
    #expect(result.residentBefore == result.sampled)
    #expect(result.stillOwned > 0)
    #expect(result.dirty == 0)
    #expect(result.residentAfter == 0, "\(result.residentAfter) of \(result.stillOwned) free pages still resident")
  }

  @Test("statistics walk other threads' segments safely while those threads release and unmap segments")
  func statisticsWalkDuringRelease() {
    let stop = Atomic<Bool>(false)
    let walks = Atomic<Int>(0)
    onThreads(3) { role in
      if role == 0 {
        let deadline = swalloc_now_ms() + 1000
        while swalloc_now_ms() < deadline {
          _ = Statistics.snapshot()
          walks.add(1, ordering: .relaxed)
        }
        stop.store(true, ordering: .releasing)
      } else {
        // Fill and empty several medium segments, then purge: segments leave the heap and get unmapped.
        while !stop.load(ordering: .acquiring) {
          let blocks = (0..<200).map { _ in LibC.malloc(40_000)! }
          for block in blocks { LibC.free(block) }
          _ = LibC.purgeNow()
        }
      }
    }
    #expect(walks.load(ordering: .relaxed) > 10)
  }

  @Test("a class's current page, idle for two checks a purge delay apart, is retired")
  func idleCurrentPage() {
    let outcome = Mutex<(before: Bool, after: Bool)>((false, false))
    onThreads(1) { _ in
      let sizeClass = SizeClass.of(byteCount: 300_000)
      let blocks = (0..<3).map { _ in LibC.malloc(300_000)! }
      for block in blocks { LibC.free(block) }
      let heap = Heap.current
      let hadPage = heap.queue(sizeClass).pointee.current != nil
      let delay = PurgeDelay.milliseconds
      let start = swalloc_now_ms()
      heap.retireIdleCurrentPages(now: start)
      heap.retireIdleCurrentPages(now: start + delay)
      outcome.withLock { $0 = (hadPage, heap.queue(sizeClass).pointee.current != nil) }
    }
    let result = outcome.withLock { $0 }
    #expect(result.before)
    #expect(!result.after)
  }

  @Test("the span cache hands back a cached span, and releases it to the kernel")
  func spanCache() throws {
    let byteCount = 24 << 20  // a size no other test asks for
    var handedBack = false
    for _ in 0..<100 where !handedBack {
      usleep(5000)
      // Make room: with the adaptive delay, spans that concurrent tests cached can stay for up to a second and
      // fill the byte budget (the span would then be released at once).
      SpanCache.purgeIfDue(now: swalloc_now_ms(), force: true)
      let raw = try #require(OSMemory.reserveAligned(byteCount: byteCount, alignment: Segment.byteCount))
      let segment = raw.assumingMemoryBound(to: Segment.self)
      segment.pointee.mappingByteCount = byteCount
      Statistics.mapped(adding: byteCount)
      SegmentMap.set(UInt(bitPattern: raw), 1)
      SpanCache.putOrRelease(segment)
      // Concurrent tests may fill the cache (the span is then released) or purge it: try again.
      guard let taken = SpanCache.take(byteCount: byteCount, alignment: Segment.byteCount, reuseFactor: 1)
      else { continue }
      #expect(taken == segment)
      #expect(taken.pointee.mappingByteCount == byteCount)
      SpanCache.release(taken)
      #expect(SegmentMap.entry(UInt(bitPattern: raw)) == 0)
      handedBack = true
    }
    #expect(handedBack)
  }
}

/// How many of these page addresses are resident (mincore); unmapped pages count as not resident.
func residentCount(_ pages: [UInt]) -> Int {
  var resident = 0
  var vector: UInt8 = 0
  for page in pages where mincore(UnsafeMutableRawPointer(bitPattern: page), 4096, &vector) == 0 && vector & 1 != 0 {
    resident += 1
  }
  return resident
}

extension Heap {
  /// Free pages of this heap's segments not purged yet.
  func dirtyPageCount() -> Int {
    var count = 0
    var candidate = state.pointee.segments
    while let segment = candidate {
      candidate = segment.pointee.nextInHeap
      count += segment.pointee.dirtyMask.nonzeroBitCount
    }
    return count
  }
}
