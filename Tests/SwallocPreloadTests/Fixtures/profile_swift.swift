// profile_swift.swift: a Swift program whose allocation site the heap profile must name.
public final class Node {
  var next: Node?
  var payload: [UInt8]
  init(next: Node?, size: Int) {
    self.next = next
    payload = [UInt8](repeating: 1, count: size)
  }
}

@inline(never)
public func buildSwiftList(count: Int) -> Node? {
  var head: Node? = nil
  for index in 0..<count { head = Node(next: head, size: 200 + index % 50) }
  return head
}

let list = buildSwiftList(count: 100_000)
var length = 0
var cursor = list
while let node = cursor {
  length += 1
  cursor = node.next
}
print("swift list \(length)")
