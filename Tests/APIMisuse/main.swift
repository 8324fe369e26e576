// swalloc-api-misuse: misuse of the Swift API's heaps, for the tests to run in a child process (secure mode
// aborts, which would end the test process). Usage: swalloc-api-misuse MODE; prints "not stopped" when the
// process went on past the misuse, "valid ok" for the valid mode. `deallocate-interior`: deallocate of a
// pointer into a live block. `random SEED [STEPS [wide]]`: a random
// program with one double free (RandomHeaps.swift).
import Swalloc

let mode = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "valid"
let heap = SwallocHeap()
let keep = heap.allocate(byteCount: 48)
switch mode {
case "reallocate-freed":
  // A size reallocate keeps in place (40 of the 48-byte block's room): the freed block came back resized.
  let block = heap.allocate(byteCount: 48)
  heap.deallocate(block)
  print("reallocate \(heap.reallocate(block, byteCount: 40))")
  print("not stopped")
case "random":
  runRandomHeaps(CommandLine.arguments)
case "deallocate-interior":
  // A pointer 16 bytes into a live block: never to be handed out over it.
  let block = heap.allocate(byteCount: 48)
  heap.deallocate(block + 16)
  for _ in 0..<1000 {
    precondition(heap.allocate(byteCount: 48) != block + 16, "allocate handed out a pointer into a live block")
  }
  print("not stopped")
case "reallocate-freed-sealed":
  let block = heap.allocate(byteCount: 3000)
  heap.deallocate(block)
  print("reallocate \(heap.reallocate(block, byteCount: 2500))")
  print("not stopped")
default:
  var block = heap.allocate(byteCount: 48)
  block.storeBytes(of: 7, as: Int.self)
  block = heap.reallocate(block, byteCount: 40)
  block = heap.reallocate(block, byteCount: 3000)
  precondition(block.load(as: Int.self) == 7, "reallocate lost the contents")
  heap.deallocate(block)
  print("valid ok")
}
heap.deallocate(keep)
