// The Swift API against the process's malloc: SwallocHeap's fast path, SwallocArena's bump allocation, and
// UnsafeMutableRawPointer.allocate (malloc: glibc's, jemalloc's or Swalloc's, whichever is preloaded).
// Every benchmark allocates 1000 objects per iteration, so "per object" is the time per iteration / 1000.
import Benchmark
import Swalloc

/// Object sizes cycling through 16 ... 256 bytes.
@inline(__always)
func objectSize(_ index: Int) -> Int { 16 &+ ((index &* 40) & 240) }

/// One "request": 1000 objects from the arena.
@inline(never)
func serveRequest(_ arena: inout SwallocArena) {
  var checksum: UInt = 0
  for index in 0..<1000 { checksum &+= UInt(bitPattern: arena.allocate(byteCount: objectSize(index))) }
  blackHole(checksum)
}

let benchmarks: @Sendable () -> Void = {
  // The closure runs once per sample: the set-up before `startMeasurement` (a heap, an arena's first chunk)
  // is not timed. Each sample is one iteration: 1000 objects.
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
    heap.deallocate(heap.allocate(byteCount: 64))  // warm: the heap's first page is mapped untimed
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
      for _ in 0..<1000 {
        let pointer = heap.allocate(byteCount: 64)
        blackHole(pointer)
        heap.deallocate(pointer)
      }
    }
    benchmark.stopMeasurement()
    heap.destroy()
  }

  // Batches: 1000 objects of 16 ... 256 bytes live at once, then all freed (or the arena reset).
  Benchmark("batch: UnsafeMutableRawPointer.allocate 1000 objects, then deallocate") { benchmark in
    var live = [UnsafeMutableRawPointer?](repeating: nil, count: 1000)
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
      for index in 0..<1000 { live[index] = UnsafeMutableRawPointer.allocate(byteCount: objectSize(index), alignment: 16) }
      for index in 0..<1000 { live[index].unsafelyUnwrapped.deallocate() }
    }
  }

  Benchmark("batch: SwallocHeap 1000 objects, then deallocate") { benchmark in
    let heap = SwallocHeap()
    var live = [UnsafeMutableRawPointer?](repeating: nil, count: 1000)
    // Warm: the heap's pages are mapped untimed (the process heap behind malloc is warm across samples too).
    for index in 0..<1000 { live[index] = heap.allocate(byteCount: objectSize(index)) }
    for index in 0..<1000 { heap.deallocate(live[index].unsafelyUnwrapped) }
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
      for index in 0..<1000 { live[index] = heap.allocate(byteCount: objectSize(index)) }
      for index in 0..<1000 { heap.deallocate(live[index].unsafelyUnwrapped) }
    }
    benchmark.stopMeasurement()
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
    // The first request maps the arena's chunk: outside the measurement, like the heaps' set-up.
    serveRequest(&arena)
    arena.reset()
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
      serveRequest(&arena)
      arena.reset()
    }
    benchmark.stopMeasurement()
  }
}
