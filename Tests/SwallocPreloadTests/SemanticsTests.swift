// The C ABI semantics of DESIGN.md section 4, checked through the symbols a preloaded program really calls.
import Foundation
import Testing

@Suite("C semantics under the preload")
struct SemanticsTests {
  @Test("alignment, malloc(0), errno, overflow, calloc, realloc, posix_memalign, valloc, usable size, exports")
  func cSemantics() async throws {
    let program = try await FixtureBuilds.shared.build("semantics.c", as: .c)
    let result = try await runPreloaded(program)
    expectLine("swalloc active", in: result)
    // Under swalloc nothing may be skipped: these lines say `checked`, never `skipped`.
    expectLine("natural alignment: checked", in: result)
    expectLine("free_sized: checked", in: result)
    expectLine("exports: checked", in: result)
    expectLine("semantics ok", in: result)
  }
}
