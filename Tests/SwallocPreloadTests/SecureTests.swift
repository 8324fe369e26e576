// Secure mode (SWALLOC_SECURE=1): a threaded workload runs correctly with randomized block order and guard
// pages, and each heap error (double free, interior and foreign pointers, a double free of a huge block, a
// freed block's link overwritten, an overflow past a huge block) stops the process with a message naming the
// address, or a fault on the guard page.
import Foundation
import Testing

@Suite("Secure mode")
struct SecureTests {
  static let secure = ["SWALLOC_SECURE": "1"]

  @Test("a threaded workload runs correctly; blocks come in random order; guard pages split the spans")
  func workload() async throws {
    let program = try await FixtureBuilds.shared.build("secure.c", as: .c)
    let result = try await runPreloaded(program, ["ok"], environment: Self.secure)
    expectLine("secure workload ok", in: result)
    let ascending = result.outputLines.first { $0.hasPrefix("ascending neighbours: ") }
    // In order (the default mode) all 63 neighbours are 48 bytes apart; shuffled, few are.
    let count = ascending.flatMap { Int($0.split(separator: " ")[2]) } ?? 63
    #expect(count < 16, "\(result.summary)")
    let guards = result.outputLines.first { $0.hasPrefix("guard mappings: ") }?.split(separator: " ")
    let after = guards.flatMap { Int($0[4]) } ?? 0
    #expect(after >= 20, "\(result.summary)")

    // The same program without secure mode: blocks in address order.
    let plain = try await runPreloaded(program, ["ok"])
    expectLine("ascending neighbours: 63 of 63", in: plain)
  }

  @Test("heap errors abort with a message naming the address and the error", arguments: [
    ("double", "free(): double free of 0x"),
    ("interior", "free(): pointer into the middle of a block 0x"),
    ("remote-double", "free(): double free of 0x"),
    ("remote-interior", "free(): pointer into the middle of a block 0x"),
    ("foreign", "free(): invalid pointer 0x"),
    ("huge-double", "free(): double free of 0x"),
    ("use-after-free", "malloc(): corrupted free list at 0x"),
  ])
  func errorsAbort(mode: String, message: String) async throws {
    let program = try await FixtureBuilds.shared.build("secure.c", as: .c)
    let result = try await runChild(program, [mode], preload: try Preload.library(), environment: Self.secure)
    let aborted = (result.signaled && result.status == SIGABRT) || result.status == 128 + SIGABRT
    #expect(aborted, "\(result.summary)")
    #expect(result.standardError.contains("swalloc: " + message), "\(result.summary)")
    #expect(result.standardError.contains("aborting (SWALLOC_SECURE=1)"), "\(result.summary)")
    #expect(!result.outputLines.contains("not stopped"), "\(result.summary)")
  }

  /// The default mode: a free of a pointer 16 bytes into a live 40-byte block, by its owner (free's fast
  /// path) or by another thread, is reported and ignored. Until 2026-12-07 the fast path pushed the pointer
  /// on the page's list, and malloc handed it out over the live block (silent corruption).
  @Test("by default a free of a pointer into a block is reported and ignored; malloc never hands it out",
        arguments: ["interior", "remote-interior"])
  func interiorFreeByDefault(mode: String) async throws {
    let program = try await FixtureBuilds.shared.build("secure.c", as: .c)
    let result = try await runPreloaded(program, [mode], timeout: shortChildTimeout)
    expectLine("not stopped", in: result)
    let pointer = try #require(
      result.outputLines.compactMap { $0.wholeMatch(of: #/interior (0x[0-9a-f]+) ignored/#) }.first?.1,
      "no `interior ... ignored` line\n\(result.summary)")
    #expect(result.errorLines.contains("swalloc: free(\(pointer)): pointer into the middle of a block; ignored"),
            "\(result.summary)")
    #expect(statisticsValues("invalid frees", in: result) == [1], "\(result.summary)")
  }

  /// As double frees are: the first 10 reported without SWALLOC_VERBOSE, then one line says the rest are
  /// counted; all of them are counted.
  @Test("by default the first 10 frees of pointers into blocks are reported, then one line says the rest are counted")
  func interiorFreeReportLimit() async throws {
    let program = try await FixtureBuilds.shared.build("secure.c", as: .c)
    let result = try await runPreloaded(program, ["interior-many"], timeout: shortChildTimeout)
    expectLine("interior-many done", in: result)
    let reports = result.errorLines.filter { $0.hasSuffix("): pointer into the middle of a block; ignored") }
    #expect(reports.count == 10, "\(result.summary)")
    #expect(result.errorLines.contains(
      "swalloc: further frees of pointers into blocks are counted, not reported (SWALLOC_VERBOSE=1 reports them)"),
            "\(result.summary)")
    #expect(statisticsValues("invalid frees", in: result) == [15], "\(result.summary)")
  }

  /// The grown-span modes: secure mode once never grew a cached span with mremap (guard pages split it into
  /// several mappings); it now lifts the guards for the move and puts them back (`large` ran 1.7 to 2x the
  /// default mode's time and 1.3x its RSS without it). The guards must be there after the move.
  @Test("a write past the end of a huge block, or before it, faults on a guard page (also in a grown span)",
        arguments: ["overflow", "grown-overflow", "grown-underflow"])
  func overflowFaults(mode: String) async throws {
    let program = try await FixtureBuilds.shared.build("secure.c", as: .c)
    let result = try await runChild(program, [mode], preload: try Preload.library(), environment: Self.secure)
    let faulted = (result.signaled && result.status == SIGSEGV) || result.status == 128 + SIGSEGV
    #expect(faulted, "\(result.summary)")
    #expect(!result.outputLines.contains("not stopped"), "\(result.summary)")
  }
}
