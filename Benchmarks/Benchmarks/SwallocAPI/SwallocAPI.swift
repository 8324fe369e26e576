// The Swift API against the process's malloc: SwallocHeap's fast path, SwallocArena's bump allocation, and
// UnsafeMutableRawPointer.allocate (malloc: glibc's, jemalloc's or Swalloc's, whichever is preloaded).
// Every benchmark allocates 1000 objects per iteration, so "per object" is the time per iteration / 1000.
import Benchmark
import Swalloc

/// Object sizes cycling through 16 ... 256 bytes.
@inline(__always)
func objectSize(_ index: Int) -> Int { 16 &+ ((index &* 40) & 240) }

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(2))

  // Pairs: one object allocated and freed at once, 1000 times (the fast paths of both calls).
  Benchmark("pair: UnsafeMutableRawPointer.allocate + deallocate, 64 B x1000") { benchmark in
    for _ in benchmark.scaledIterations {
      for _ in 0..<1000 {
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
        blackHole(pointer)
        pointer.deallocate()
      }
    }
  }

  Benchmark("pair: SwallocGlobal.allocate + deallocate, 64 B x1000") { benchmark in
    for _ in benchmark.scaledIterations {
      for _ in 0..<1000 {
        let pointer = SwallocGlobal.allocate(byteCount: 64)
        blackHole(pointer)
        SwallocGlobal.deallocate(pointer)
      }
    }
  }

  Benchmark("pair: SwallocHeap.allocate + deallocate, 64 B x1000") { benchmark in
    let heap = SwallocHeap()
    for _ in benchmark.scaledIterations {
      for _ in 0..<1000 {
        let pointer = heap.allocate(byteCount: 64)
        blackHole(pointer)
        heap.deallocate(pointer)
      }
    }
    heap.destroy()
  }

  // Batches: 1000 objects of 16 ... 256 bytes live at once, then all freed (or the arena reset).
  Benchmark("batch: UnsafeMutableRawPointer.allocate 1000 objects, then deallocate") { benchmark in
    var live = [UnsafeMutableRawPointer?](repeating: nil, count: 1000)
    for _ in benchmark.scaledIterations {
      for index in 0..<1000 { live[index] = UnsafeMutableRawPointer.allocate(byteCount: objectSize(index), alignment: 16) }
      for index in 0..<1000 { live[index].unsafelyUnwrapped.deallocate() }
    }
  }

  Benchmark("batch: SwallocHeap 1000 objects, then deallocate") { benchmark in
    let heap = SwallocHeap()
    var live = [UnsafeMutableRawPointer?](repeating: nil, count: 1000)
    for _ in benchmark.scaledIterations {
      for index in 0..<1000 { live[index] = heap.allocate(byteCount: objectSize(index)) }
      for index in 0..<1000 { heap.deallocate(live[index].unsafelyUnwrapped) }
    }
    heap.destroy()
  }

  Benchmark("batch: SwallocHeap 1000 objects, then destroy the heap") { benchmark in
    for _ in benchmark.scaledIterations {
      let heap = SwallocHeap()
      for index in 0..<1000 { blackHole(heap.allocate(byteCount: objectSize(index))) }
      heap.destroy()
    }
  }

  Benchmark("batch: SwallocArena 1000 objects, then reset") { benchmark in
    var arena = SwallocArena()
    for _ in benchmark.scaledIterations {
      for index in 0..<1000 { blackHole(arena.allocate(byteCount: objectSize(index))) }
      arena.reset()
    }
  }
}
