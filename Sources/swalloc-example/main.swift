// swalloc-example: a tour of the Swift API. `swift run swalloc-example`; preload libswalloc.so (or link it,
// see the README) to make Swalloc the process allocator as well.
import Swalloc

/// A node of a linked list that lives in a heap.
struct Node {
  var value: Int
  var next: UnsafeMutablePointer<Node>?
}

print("process allocator is Swalloc: \(SwallocGlobal.isSwallocProcessAllocator)")

// Global allocation: the process's malloc (Swalloc's when libswalloc.so is loaded); free() is fine for these.
let numbers = SwallocGlobal.allocate(of: Double.self, count: 1000)
for index in numbers.indices { numbers[index] = Double(index) / 2 }
print("global: sum \(numbers.reduce(0, +)), usable \(SwallocGlobal.usableSize(of: UnsafeMutableRawPointer(numbers.baseAddress!))) bytes")
SwallocGlobal.deallocate(numbers)

// A heap: a list of 10 000 nodes, one block each, released all at once by destroy().
func heapTour() {
let heap = SwallocHeap()
var head: UnsafeMutablePointer<Node>? = nil
for value in 0..<10_000 {
  let node = heap.allocate(of: Node.self, count: 1).baseAddress!
  node.initialize(to: Node(value: value, next: head))
  head = node
}
var sum = 0
var cursor = head
while let node = cursor {
  sum += node.pointee.value
  cursor = node.pointee.next
}
print("heap: list sum \(sum); \(heap.statistics)")
heap.destroy()  // every node goes at once; `heap` cannot be used after this line (it does not compile)
}
heapTour()

// An arena per "request": bump allocation, reset between requests, the same memory every time.
var arena = SwallocArena(chunkByteCount: 256 * 1024)
for request in 0..<3 {
  let scratch = arena.allocate(of: UInt32.self, count: 50_000)
  for index in scratch.indices { scratch[index] = UInt32(truncatingIfNeeded: index &* request) }
  print("arena request \(request): checksum \(scratch.reduce(0, &+)), \(arena.statistics.mappedByteCount) bytes mapped")
  arena.reset()
}

// Scoped arena: memory released when the closure returns.
let words = withArena { arena in
  let text = arena.allocate(of: UInt8.self, count: 64)
  let message = Array("hello from an arena".utf8)
  for (index, byte) in message.enumerated() { text[index] = byte }
  return String(decoding: text[0..<message.count], as: UTF8.self)
}
print("withArena: \(words)")

let options = SwallocOptions.current
print("options: purge delay \(options.purgeDelayMilliseconds) ms, huge pages \(options.hugePages), secure \(options.secure)")
print("Swift API heaps: \(SwallocStatistics.heaps.allocationCount) allocations, \(SwallocStatistics.heaps.heapCount) heaps")
if let process = SwallocStatistics.process {
  print("libswalloc.so: \(process.allocationCount) allocations, \(process.liveByteCount) live bytes")
}

/// 32 MiB in 2048 arrays: enough for the heap profile to sample this function often.
@inline(never)
func buildProfiledTable() -> [[UInt64]] {
  (0..<2048).map { row in [UInt64](repeating: UInt64(row), count: 2048) }
}

/// 16 MiB in a heap of the Swift API (4096 blocks of 4 KiB): its samples are in the same profile.
@inline(never)
func buildProfiledHeap(_ heap: borrowing SwallocHeap) -> [UnsafeMutableRawPointer] {
  (0..<4096).map { _ in
    let block = heap.allocate(byteCount: 4096)
    block.initializeMemory(as: UInt8.self, repeating: 1, count: 4096)
    return block
  }
}

// The heap profile, when libswalloc.so runs with SWALLOC_PROFILE=1: written to the path given as the first
// argument (default swalloc-example.pb.gz), for `go tool pprof swalloc-example FILE`.
if SwallocProfile.isEnabled {
  let table = buildProfiledTable()
  let profiledHeap = SwallocHeap()
  let heapBlocks = buildProfiledHeap(profiledHeap)
  let path = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "swalloc-example.pb.gz"
  do {
    try SwallocProfile.dump(to: path)
    print("heap profile: \(table.count) rows live, written to \(path)")
  } catch {
    print("heap profile: cannot write \(path): \(error)")
  }
  var owned = 0
  for block in heapBlocks where profiledHeap.owns(block) { owned += 1 }
  print("heap profile: \(heapBlocks.count) heap blocks, \(owned) owned")
  profiledHeap.destroy()
}
