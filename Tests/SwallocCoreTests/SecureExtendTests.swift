// Secure mode's carving (Secure.extend): the blocks of each extension are linked in a random order, block i
// of the list being (offset + i * stride) mod count with a stride prime to the count. A stride that shares a
// divisor with the count would link a cycle and lose the other blocks, which no check downstream notices.
import Testing

@testable import Swalloc

@Suite("Secure mode's carving")
struct SecureExtendTests {
  @Test("the binary coprimality test agrees with Euclid's gcd")
  func coprime() {
    func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
    var disagreements: [(Int, Int)] = []
    for a in 1...600 {
      for b in 1...600 where Secure.areCoprime(a, b) != (gcd(a, b) == 1) { disagreements.append((a, b)) }
    }
    #expect(disagreements.isEmpty, "\(disagreements.prefix(10))")
  }

  /// Carves a 64 KiB page of `blockByteCount` blocks to the end; returns the free list's blocks as offsets.
  func carve(blockByteCount: Int) -> [Int] {
    withTestPage(byteCount: 64 * 1024, blockByteCount: blockByteCount) { page, region in
      Secure.initialize()
      while page.pointee.capacity < page.pointee.reserved { Secure.extend(page, full: false, bits: Secure.random()) }
      var offsets: [Int] = []
      var block = page.pointee.free
      while let current = block, offsets.count <= Int(page.pointee.reserved) {
        offsets.append(current - region)
        block = Secure.next(current)
      }
      return offsets
    }
  }

  @Test("level 1 carves every block exactly once, for block sizes with many divisors and none",
        arguments: [16, 32, 48, 80, 112, 176, 240, 448, 1024, 1792, 4096, 6144, 10240, 16384, 65536])
  func everyBlockOnce(blockByteCount: Int) {
    let offsets = carve(blockByteCount: blockByteCount)
    let count = 64 * 1024 / blockByteCount
    #expect(offsets.count == count)
    #expect(Set(offsets) == Set((0..<count).map { $0 * blockByteCount }))
  }

  @Test("the order differs from page to page and is not address order")
  func randomOrder() {
    let orders = (0..<8).map { _ in carve(blockByteCount: 48) }
    #expect(Set(orders.map { $0.prefix(8) }).count > 1)
    #expect(orders.allSatisfy { $0 != $0.sorted() })
  }
}
