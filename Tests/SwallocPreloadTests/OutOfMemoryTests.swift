// Out of memory: under RLIMIT_AS every allocation path fails with ENOMEM, nothing allocated before is
// damaged, and the allocator serves again once memory is freed.
import Foundation
import Testing

@Suite("Out of memory under the preload")
struct OutOfMemoryTests {
  @Test("RLIMIT_AS: malloc, calloc, realloc, posix_memalign, aligned_alloc fail with ENOMEM; frees make room again")
  func addressSpaceLimit() async throws {
    let program = try await FixtureBuilds.shared.build("out_of_memory.c", as: .c)
    let result = try await runPreloaded(program, timeout: shortChildTimeout)
    expectLine("swalloc active", in: result)
    let okLine = result.standardOutput.split(separator: "\n").first { $0.hasPrefix("out-of-memory ok: ") }
    #expect(okLine != nil, "no ok line\n\(result.summary)")
  }
}
