// swift workload: Array, Dictionary, String and class instances, as a typical Swift program uses them;
// each result is computed two ways and compared. Usage: swiftwork SCALE. Prints "swift-check ok".
#if canImport(Glibc)
import Glibc
#endif

/// A reference type, so that every instance is its own heap allocation.
final class Node {
  let key: String
  var values: [Int]
  var children: [Node] = []

  init(key: String, values: [Int]) {
    self.key = key
    self.values = values
  }
}

struct Generator {
  var state: UInt64
  mutating func next(_ bound: Int) -> Int {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Int((state >> 33) % UInt64(bound))
  }
}

func check(_ condition: Bool, _ what: String) {
  if !condition {
    print("swift-check FAILED: \(what)")
    exit(1)
  }
}

func oneRound(_ rng: inout Generator, count: Int) -> Int {
  // Strings built by interpolation; counted with a dictionary and by sorting.
  var words: [String] = []
  for i in 0..<count { words.append("w\(rng.next(4000))-\(i % 17)") }
  var counts: [String: Int] = [:]
  for word in words { counts[word, default: 0] += 1 }
  let sorted = words.sorted()
  var distinct = 0
  for i in sorted.indices where i == 0 || sorted[i] != sorted[i - 1] { distinct += 1 }
  check(distinct == counts.count, "distinct words")
  check(counts.values.reduce(0, +) == count, "word total")

  // String building, splitting and joining.
  var text = ""
  for word in words.prefix(count / 4) {
    text += word
    text += ","
  }
  let parts = text.split(separator: ",")
  check(parts.count == count / 4, "split count")
  check(parts.joined(separator: ",").count == text.count - 1, "joined length")

  // A tree of class instances with arrays inside, grouped in a dictionary of arrays.
  var groups: [String: [Node]] = [:]
  var roots: [Node] = []
  for i in 0..<(count / 8) {
    let node = Node(key: words[i], values: Array(0..<(i % 32)))
    if let parent = roots.last, i % 5 != 0 { parent.children.append(node) } else { roots.append(node) }
    groups[String(node.key.prefix(3)), default: []].append(node)
  }
  let nodesInTrees = roots.reduce(0) { $0 + 1 + $1.children.count }
  let nodesInGroups = groups.values.reduce(0) { $0 + $1.count }
  check(nodesInTrees == count / 8 && nodesInGroups == count / 8, "node counts")
  let valueSum = roots.reduce(0) { sum, root in
    sum + root.values.reduce(0, +) + root.children.reduce(0) { $0 + $1.values.reduce(0, +) }
  }

  // Arrays grown, filtered, mapped, and a Set.
  var numbers: [Int] = []
  for _ in 0..<count { numbers.append(rng.next(1_000_000)) }
  let evens = numbers.filter { $0 % 2 == 0 }
  let odds = numbers.filter { $0 % 2 != 0 }
  check(evens.count + odds.count == numbers.count, "filter")
  let unique = Set(numbers)
  check(unique.count == Set(evens).count + Set(odds).count, "set")
  let labels = numbers.prefix(count / 4).map { String($0, radix: 16) }
  check(labels.allSatisfy { Int($0, radix: 16) != nil }, "hex round trip")
  return text.utf8.count + valueSum % 1000 + labels.count
}

let scale = CommandLine.arguments.count > 1 ? Double(CommandLine.arguments[1]) ?? 1 : 1
let rounds = max(1, Int((20 * scale).rounded()))
let count = scale >= 0.1 ? 200_000 : max(5_000, Int(2_000_000 * scale))
var rng = Generator(state: 42)
var total = 0
for _ in 0..<rounds { total += oneRound(&rng, count: count) }
print("rounds \(rounds)")
print("checksum \(total)")
print("swift-check ok")
