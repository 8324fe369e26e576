// Double frees in default mode: a freed block carries a keyed marker (word 8, cleared when it is handed out
// again), so the second free is reported on stderr with the block's address, counted as an invalid free and
// ignored: the free lists stay sound (malloc never hands out a block twice). In secure mode (both levels) the
// same patterns abort at the second free, named as double frees.
import Foundation
import Testing

@Suite("Double frees under the preload")
struct DoubleFreeTests {
  /// The fixture's patterns. Until 2026-12-07 the default mode saw the first three only later, in the page's
  /// lists (the block set aside with its page's free blocks), and the last one in the thread-free list; the
  /// freed marker sees all six at the second free.
  static let patterns = [
    "immediate",                 // free(B); free(B) on the fast path
    "immediate-last",            // the last block of a current page: its count reaches 0
    "after-other-frees",         // free(B), free(C), free(B) empty a page early
    "medium",                    // a slow-path free
    "remote",                    // another thread frees B twice in a row
    "remote-after-other-frees",  // another thread frees B, C, B
  ]

  @Test("a double free is reported with its address, counted, and malloc never hands out a block twice",
        arguments: patterns)
  func pattern(name: String) async throws {
    let program = try await FixtureBuilds.shared.build("double_free.c", as: .c)
    let result = try await runPreloaded(program, [name], timeout: shortChildTimeout)
    expectLine("double-free ok", in: result)
    let block = try #require(
      result.outputLines.compactMap { $0.wholeMatch(of: #/(\S+) block=(0x[0-9a-f]+)/#) }
        .first { $0.1 == name }?.2,
      "no `\(name) block=` line\n\(result.summary)")
    let reports = result.errorLines.filter { $0.contains("double free") }
    #expect(reports == ["swalloc: free(\(block)): double free detected; ignored"],
            "expected one report naming \(block)\n\(result.summary)")
    #expect(statisticsValues("invalid frees", in: result) == [1], "\(result.summary)")
  }

  /// Secure mode aborts at the second free. Level 1 marks the blocks it carves with the freed marker too
  /// (a free of one never handed out must not pass): the block on the page's local list or thread-free list
  /// (`Secure.markedFailure` walks both) or a sealed block with its trailer is still named a double free.
  @Test("in secure mode each pattern aborts as a double free naming the block", arguments: patterns,
        [Mode.secure, .secureFull])
  func patternInSecureMode(name: String, level: Mode) async throws {
    let result = try await runAborting(name, level: level)
    let reported = result.errorLines.contains {
      $0.hasPrefix("swalloc: free(): double free of 0x") && $0.contains("(already free)")
    }
    #expect(reported, "\(result.summary)")
  }

  /// A double free after a write over the freed block's second word (a use after free), which took away the
  /// freed marker the second free checks: the block went on a list a second time (the owner's local list, or
  /// another thread's thread-free list), and level 1's malloc handed it out again and again to a program that
  /// had not written its first word yet (glibc's tcache-key bypass, against secure mode's marker; found
  /// 2026-12-07: both patterns failed at 1 with "malloc returned ... twice", and full reported an overflow
  /// or a double free). Level 1's malloc now checks the freed marker of every block it hands out (the second
  /// hand-out finds it gone); full tells a freed block (its fill intact) from an overflowed one.
  @Test("in secure mode a double free after a write over the freed block's marker aborts",
        arguments: ["written-then-freed-again", "remote-written-then-freed-again"], [Mode.secure, .secureFull])
  func writtenThenFreedAgain(name: String, level: Mode) async throws {
    let result = try await runAborting(name, level: level)
    #expect(!result.outputLines.contains("double-free ok"), "\(result.summary)")
    let block = try #require(
      result.outputLines.compactMap { $0.wholeMatch(of: #/(\S+) block=(0x[0-9a-f]+)/#) }.first { $0.1 == name }?.2,
      "no `\(name) block=` line\n\(result.summary)")
    let reported = result.errorLines.contains {
      $0 == "swalloc: free(): double free of \(block) (already free)\(level.abortSuffix)"
        || $0 == "swalloc: malloc(): freed block \(block) lost its freed marker (bytes 8 to 15): it was written "
          + "after free, or freed twice with a write in between\(level.abortSuffix)"
    }
    #expect(reported, "\(result.summary)")
  }

  /// Random programs, each with one double free (Fixtures/double_free_random.c): freed on this thread or
  /// another, then a word of the freed block written (its marker, a random word, a zero, or nothing), freed
  /// again on either thread (or given to realloc), then enough allocations of the class to run through its
  /// free lists (half of the blocks never written). Secure mode must abort with its message or keep the heap sound:
  /// every block malloc hands out is compared with the live ones before it is written. Before level 1's malloc checked
  /// the freed marker, seed 29 of the first 60 failed at 1 ("malloc(32) returned 0x..., inside the live block 0x...": a
  /// local free, the marker overwritten, a local free again).
  @Test("random programs with one double free: secure mode aborts or never hands out a live block",
        arguments: [Mode.secure, .secureFull])
  func randomDoubleFrees(level: Mode) async throws {
    let program = try await FixtureBuilds.shared.build("double_free_random.c", as: .c)
    var aborted = 0
    // Seeds 1 to 150 with 400 random steps before and after; and two seeds found with 1000 (another thread's
    // free, a write over the marker, the owner's free or realloc: the collection walked from the thread-free
    // list into the local list and the page was retired with live blocks, until thread-free links got their
    // own key).
    // Then 40 `wide` seeds: medium and large blocks too, and free_sized as the second free (at full a write
    // after free of a large block faults: its report, then SIGSEGV).
    let runs = (1...150).map { [String($0), "400"] } + [["2661", "1000"], ["3919", "1000"]]
      + (1...40).map { [String($0), "400", "wide"] }
    for arguments in runs {
      let seed = arguments.joined(separator: " ")
      let result = try await runChild(program, arguments, preload: try Preload.library(),
                                      environment: level.environment, timeout: shortChildTimeout)
      expectLine("swalloc active", in: result)
      if Self.expectStoppedOrSound(result, level: level, okLine: "double-free-random ok", seed: seed) { aborted += 1 }
    }
    // Most seeds free a block twice (the others hand it out again first): secure mode stops most of them.
    #expect(aborted >= 90, "only \(aborted) of \(runs.count) seeds aborted")
  }

  /// Judges one run of a random program with one misuse at a secure `level`: it ran to `okLine` (the heap
  /// stayed sound), or aborted with secure mode's message, or (full) died of SIGSEGV after the report of a
  /// write after free (a parked large block); never the default mode's "double free detected; ignored" (a
  /// second remote free in a row after a write over the marker was reported and ignored until 2026-12-07).
  /// Returns whether the run was stopped.
  static func expectStoppedOrSound(_ result: ChildResult, level: Mode, okLine: String, seed: String,
                                   sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
    #expect(!result.errorLines.contains { $0.hasSuffix("; ignored") }, "seed \(seed)\n\(result.summary)",
            sourceLocation: sourceLocation)
    if result.succeeded {
      #expect(result.outputLines.contains(okLine), "seed \(seed)\n\(result.summary)", sourceLocation: sourceLocation)
      return false
    }
    if level == .secureFull && GuardedTests.died(result, of: SIGSEGV) {
      #expect(result.errorLines.contains { $0.hasPrefix("swalloc: heap-use-after-free: write of 8 bytes at 0x") },
              "seed \(seed)\n\(result.summary)", sourceLocation: sourceLocation)
      return true
    }
    let reported = result.errorLines.contains { $0.hasPrefix("swalloc: ") && $0.hasSuffix(level.abortSuffix) }
    #expect(GuardedTests.died(result, of: SIGABRT) && reported, "seed \(seed)\n\(result.summary)",
            sourceLocation: sourceLocation)
    return true
  }

  /// The same random programs with nothing written to the freed block, in the default mode: the second free
  /// (or realloc) is reported and ignored, and the heap stays sound. Until the default mode's freed marker
  /// (2026-12-07), 25 of the 38 such programs among seeds 1 to 150 had malloc hand out a live block (the
  /// double free was seen only when a page emptied, if at all; glibc aborts on 14, survives 19, and hands out a
  /// live block on 2 and crashes on 3).
  @Test("random programs with one plain double free: the default mode reports it and never hands out a live block")
  func randomDoubleFreesByDefault() async throws {
    let program = try await FixtureBuilds.shared.build("double_free_random.c", as: .c)
    var reported = 0
    let runs = (1...150).map { [String($0), "400", "nowrite"] } + (1...40).map { [String($0), "400", "wide", "nowrite"] }
    for arguments in runs {
      let seed = arguments.joined(separator: " ")
      let result = try await runChild(program, arguments, preload: try Preload.library(), timeout: shortChildTimeout)
      expectLine("swalloc active", in: result)
      expectLine("double-free-random ok", in: result)
      let reports = result.errorLines.filter { $0.contains("double free") || $0.contains("freed block") }
      let handedOutAgain = result.outputLines.contains("the block was handed out again: no double free")
      #expect(reports.count == (handedOutAgain ? 0 : 1), "seed \(seed)\n\(result.summary)")
      #expect(reports.allSatisfy {
        $0.hasSuffix("): double free detected; ignored") || $0.hasSuffix("): freed block; it stays free, a new block gets its contents")
      }, "seed \(seed)\n\(result.summary)")
      reported += reports.count
    }
    #expect(reported >= 150, "only \(reported) of \(runs.count) seeds reported a double free")
  }

  /// realloc of a freed block by default: reported, the block stays free, and realloc returns a new block
  /// (until 2026-12-07 it came back resized in place, still on its page's list, and was handed out again).
  @Test("realloc of a freed block by default: reported, and a new block comes back",
        arguments: ["realloc-freed-in-place", "realloc-freed-sealed"])
  func reallocOfFreedByDefault(mode: String) async throws {
    let program = try await FixtureBuilds.shared.build("misuse.c", as: .c)
    let result = try await runPreloaded(program, [mode], mode: .standard, timeout: shortChildTimeout)
    expectLine("not stopped", in: result)
    let freedLine = result.outputLines.compactMap { $0.wholeMatch(of: #/freed (0x[0-9a-f]+)/#) }.first
    let movedLine = result.outputLines.compactMap { $0.wholeMatch(of: #/realloc (0x[0-9a-f]+)/#) }.first
    let freed = String(try #require(freedLine, "\(result.summary)").1)
    let moved = String(try #require(movedLine, "\(result.summary)").1)
    #expect(moved != freed, "\(result.summary)")
    #expect(result.errorLines.filter { $0.contains("freed block") || $0.contains("double free") }
              == ["swalloc: realloc(\(freed)): freed block; it stays free, a new block gets its contents"],
            "\(result.summary)")
    #expect(statisticsValues("invalid frees", in: result) == [1], "\(result.summary)")
  }

  /// Runs double_free.c's `pattern` at a secure `level`: Swalloc active, and the process aborted.
  func runAborting(_ pattern: String, level: Mode) async throws -> ChildResult {
    let program = try await FixtureBuilds.shared.build("double_free.c", as: .c)
    let result = try await runChild(program, [pattern], preload: try Preload.library(),
                                    environment: level.environment, timeout: shortChildTimeout)
    expectLine("swalloc active", in: result)
    #expect(GuardedTests.died(result, of: SIGABRT), "\(result.summary)")
    return result
  }

  @Test("without SWALLOC_VERBOSE the first 10 double frees are reported, then one line says the rest are counted")
  func reportLimit() async throws {
    let program = try await FixtureBuilds.shared.build("double_free.c", as: .c)
    let quiet = try await runPreloaded(program, ["many"], timeout: shortChildTimeout)
    let quietReports = quiet.errorLines.filter { $0.hasSuffix("double free detected; ignored") }
    #expect(quietReports.count == 10, "\(quiet.summary)")
    #expect(quiet.errorLines.filter { $0.hasPrefix("swalloc: further double frees are counted") }.count == 1,
            "\(quiet.summary)")
    #expect(statisticsValues("invalid frees", in: quiet) == [12], "\(quiet.summary)")

    let verbose = try await runPreloaded(
      program, ["many"], environment: ["SWALLOC_VERBOSE": "1"], timeout: shortChildTimeout)
    #expect(verbose.errorLines.filter { $0.hasSuffix("double free detected; ignored") }.count == 12,
            "\(verbose.summary)")
    #expect(!verbose.standardError.contains("further double frees"), "\(verbose.summary)")
  }
}
