// Secure mode's deterministic checks beyond guarded sampling (issue 15, part 2), one probe per class of heap
// misuse in C (Fixtures/misuse.c) and C++ (Fixtures/misuse_cxx.cpp): reads and writes through malloc(0)'s
// pointer fault, a sized free or delete that names the wrong size aborts. The same programs' `valid` mode
// runs clean in both modes (no false positive).
import Foundation
import Testing

@Suite("Secure mode: heap misuse classes")
struct MisuseTests {
  static let secure = ["SWALLOC_SECURE": "1"]

  @Test("each misuse is caught in secure mode with a clear message", arguments: [
    ("misuse.c", "zero-read", SIGSEGV, "swalloc: zero-size-access: read at 0x"),
    ("misuse.c", "zero-write", SIGSEGV, "swalloc: zero-size-access: write at 0x"),
    ("misuse.c", "free-sized", SIGABRT, "swalloc: operator delete(): size mismatch at 0x"),
    ("misuse_cxx.cpp", "zero-read", SIGSEGV, "swalloc: zero-size-access: read at 0x"),
    ("misuse_cxx.cpp", "zero-write", SIGSEGV, "swalloc: zero-size-access: write at 0x"),
    ("misuse_cxx.cpp", "delete-size", SIGABRT, "swalloc: operator delete(): size mismatch at 0x"),
    ("misuse_cxx.cpp", "array-deleted", SIGABRT, "swalloc: operator delete(): size mismatch at 0x"),
    ("misuse_cxx.cpp", "object-deleted-as-array", SIGABRT, "swalloc: operator delete(): size mismatch at 0x"),
  ])
  func caught(source: String, mode: String, signal: Int32, message: String) async throws {
    let program = try await FixtureBuilds.shared.build(source, as: source.hasSuffix(".cpp") ? .cxx : .c)
    let result = try await runChild(program, [mode], preload: try Preload.library(), environment: Self.secure,
                                    timeout: shortChildTimeout)
    expectLine("swalloc active", in: result)
    #expect(GuardedTests.died(result, of: signal), "expected death by signal \(signal)\n\(result.summary)")
    #expect(result.standardError.contains(message), "\(result.summary)")
    #expect(!result.outputLines.contains("not stopped"), "\(result.summary)")
  }

  @Test("the valid programs run clean in both modes", arguments: ["misuse.c", "misuse_cxx.cpp"], [false, true])
  func valid(source: String, secure: Bool) async throws {
    let program = try await FixtureBuilds.shared.build(source, as: source.hasSuffix(".cpp") ? .cxx : .c)
    let result = try await runPreloaded(program, ["valid"], environment: secure ? Self.secure : [:],
                                        timeout: shortChildTimeout)
    expectLine("valid ok", in: result)
  }
}
