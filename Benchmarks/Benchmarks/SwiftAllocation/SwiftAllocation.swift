// The allocation paths of ordinary Swift code, each of which ends in malloc/free: raw allocation, class
// instances (swift_allocObject), Array growth (realloc-like copies), String building, Dictionary inserts.
// Each benchmark reports wall time per iteration; run it once per allocator (LD_PRELOAD) and compare.
import Benchmark

final class Node {
  var value: Int
  var next: Node?
  init(_ value: Int, next: Node?) {
    self.value = value
    self.next = next
  }
}

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(2))

  Benchmark("UnsafeMutableRawPointer.allocate 64 B + deallocate", configuration: .init(scalingFactor: .kilo)) {
    benchmark in
    for _ in benchmark.scaledIterations {
      let pointer = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 16)
      blackHole(pointer)
      pointer.deallocate()
    }
  }

  Benchmark("UnsafeMutableRawPointer.allocate, 256 live, 16..1024 B", configuration: .init(scalingFactor: .kilo)) {
    benchmark in
    var live = [UnsafeMutableRawPointer?](repeating: nil, count: 256)
    var size = 16
    for iteration in benchmark.scaledIterations {
      let slot = iteration & 255
      live[slot]?.deallocate()
      size = ((size &* 33 &+ 7) & 1023) | 16
      live[slot] = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
    }
    for pointer in live { pointer?.deallocate() }
  }

  Benchmark("class instances: build and drop a 1000-node list") { benchmark in
    for _ in benchmark.scaledIterations {
      var head: Node? = nil
      for value in 0..<1000 { head = Node(value, next: head) }
      blackHole(head?.value)
      // Drop iteratively: a long chain released recursively would use deep stack.
      while let node = head { head = node.next }
    }
  }

  Benchmark("Array<Int> append 10 000 (growth)") { benchmark in
    for _ in benchmark.scaledIterations {
      var array: [Int] = []
      for value in 0..<10_000 { array.append(value) }
      blackHole(array)
    }
  }

  Benchmark("String building: 1000 appends of 10 characters") { benchmark in
    for _ in benchmark.scaledIterations {
      var text = ""
      for value in 0..<1000 { text += "item-\(value % 10_000)|" }
      blackHole(text)
    }
  }

  Benchmark("Dictionary<String, [Int]>: 1000 inserts") { benchmark in
    for _ in benchmark.scaledIterations {
      var dictionary: [String: [Int]] = [:]
      for value in 0..<1000 { dictionary["key\(value)", default: []].append(value) }
      blackHole(dictionary)
    }
  }
}
