// The C ABI semantics of DESIGN.md section 4, checked through the symbols a preloaded program really calls.
import Foundation
import Testing

@Suite("C semantics under the preload")
struct SemanticsTests {
  @Test("alignment, malloc(0), errno, overflow, calloc, realloc, posix_memalign, valloc, usable size, exports",
        arguments: Mode.withFull)
  func cSemantics(mode: Mode) async throws {
    let program = try await FixtureBuilds.shared.build("semantics.c", as: .c)
    let result = try await runPreloaded(program, mode: mode)
    expectLine("swalloc active", in: result)
    // Under swalloc nothing may be skipped: these lines say `checked`, never `skipped`.
    expectLine("natural alignment: checked", in: result)
    expectLine("free_sized: checked", in: result)
    expectLine("exports: checked", in: result)
    expectLine("semantics ok", in: result)
  }

  /// Issue 12: secure mode aborted every block aligned to 4 MiB or more as a double free.
  @Test("""
    every alignment from 16 B to 64 MiB, sizes around each boundary, freed by free, free_sized, \
    free_aligned_sized, realloc and another thread
    """, arguments: Mode.withFull)
  func alignmentSweep(mode: Mode) async throws {
    let program = try await FixtureBuilds.shared.build("alignment_sweep.c", as: .c)
    let result = try await runPreloaded(program, mode: mode, timeout: shortChildTimeout)
    expectLine("swalloc active", in: result)
    #expect(result.outputLines.contains { $0.hasPrefix("alignment sweep ok: ") }, "\(result.summary)")
  }
}
