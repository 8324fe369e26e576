// The Swift API in real processes: the example executable under the preload (one libswalloc.so state for
// malloc, the Swift API's own for heaps), and a Swift executable linked against libswalloc.so instead of
// preloading it, alone and preloaded as well (one copy of the library).
import Foundation
import Testing

@Suite("Swift API and linking")
struct SwiftAPIProcessTests {
  @Test("swalloc-example under the preload sees libswalloc.so as the process allocator")
  func exampleUnderPreload() async throws {
    let example = try Preload.buildProduct("swalloc-example")
    let result = try await runPreloaded(example)
    expectLine("process allocator is Swalloc: true", in: result)
    expectLine("withArena: hello from an arena", in: result)
    #expect(result.outputLines.contains { $0.hasPrefix("libswalloc.so: ") }, "\(result.summary)")
    // Exactly one statistics table: the Swift API's own state prints none.
    #expect(statisticsBlocks(in: result.standardError).count == 1, "\(result.summary)")
  }

  @Test("swalloc-example without the preload runs on the system allocator")
  func exampleWithoutPreload() async throws {
    let example = try Preload.buildProduct("swalloc-example")
    let result = try await runChild(example, preload: nil)
    #expect(result.succeeded, "\(result.summary)")
    expectLine("process allocator is Swalloc: false", in: result)
    expectLine("withArena: hello from an arena", in: result)
  }

  @Test("SwallocOptions reports the SWALLOC_* options the process started with")
  func optionsFromEnvironment() async throws {
    let example = try Preload.buildProduct("swalloc-example")
    let result = try await runChild(
      example, preload: nil,
      environment: ["SWALLOC_PURGE_DELAY_MS": "50", "SWALLOC_HUGE_PAGES": "transparent", "SWALLOC_SECURE": "1"])
    #expect(result.succeeded, "\(result.summary)")
    // The Swift API's heaps run in secure mode too: the example's heap and arena tour still passes.
    expectLine("options: purge delay 50 ms, huge pages transparent, secure true", in: result)
  }

  /// Compiles the linked-program fixture with swiftc against the library under test.
  static func buildLinkedProgram() async throws -> String {
    let library = URL(fileURLWithPath: try Preload.library())
    let directory = try makeTemporaryDirectory("linked")
    let output = directory.appendingPathComponent("linked_program").path
    let libraryDirectory = library.deletingLastPathComponent().path
    let result = try await runChild(
      try Preload.tool("swiftc"),
      ["-O", Preload.fixture("linked_program.swift"), "-o", output, "-L", libraryDirectory, "-lswalloc",
       "-Xlinker", "-rpath", "-Xlinker", libraryDirectory],
      preload: nil, timeout: 300)
    guard result.succeeded else { throw HarnessError("cannot compile linked_program.swift\n\(result.summary)") }
    return output
  }

  @Test("a Swift executable linked against libswalloc.so runs on Swalloc without LD_PRELOAD")
  func linkedExecutable() async throws {
    let program = try await Self.buildLinkedProgram()
    let result = try await runChild(program, preload: nil, environment: ["SWALLOC_SHOW_STATS": "1"])
    #expect(result.succeeded, "\(result.summary)")
    expectLine("swalloc active", in: result)
    #expect(result.outputLines.contains { $0.hasPrefix("linked program ok: 199990000 ") }, "\(result.summary)")
    assertSwallocActive(result)
    #expect(statisticsBlocks(in: result.standardError).count == 1, "\(result.summary)")

    // Linked and preloaded: the loader matches the soname, so one copy (one statistics table).
    let both = try await runPreloaded(program)
    expectLine("swalloc active", in: both)
    #expect(statisticsBlocks(in: both.standardError).count == 1, "\(both.summary)")
  }
}
