// A Swift program linked against libswalloc.so (no LD_PRELOAD): malloc must be Swalloc's, for the program,
// the Swift runtime and libc alike, from the first allocation on.
import Glibc

let swallocMalloc = dlsym(nil, "swalloc_malloc")
let processMalloc = dlsym(nil, "malloc")
if swallocMalloc != nil && swallocMalloc == processMalloc { print("swalloc active") }

// Swift's own allocations (arrays, strings, class instances) go through malloc.
final class Box { let value: Int; init(_ value: Int) { self.value = value } }
var boxes: [Box] = []
var text = ""
for index in 0..<20_000 {
  boxes.append(Box(index))
  if index % 100 == 0 { text += "\(index)," }
}
let sum = boxes.reduce(0) { $0 + $1.value }
// A block from malloc goes to free(): the same allocator on both sides.
let raw = malloc(1000)!
memset(raw, 7, 1000)
free(raw)
print("linked program ok: \(sum) \(text.count)")
