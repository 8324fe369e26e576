// Guarded sampling (SWALLOC_GUARDED_SAMPLE): at rate 1 every eligible allocation is guarded, so each misuse
// probe (Fixtures/guarded.h, in C with malloc/free and in C++ with new[]/delete[]) is caught every time: the
// report names the kind and the top frames of the stacks that allocated and freed the block, and the
// process dies of the signal (SIGSEGV for a fault, SIGABRT for a bad free). In both modes.
import Foundation
import Testing

/// A misuse probe and what its report must say.
struct GuardedProbe: Sendable, CustomStringConvertible {
  var mode: String
  var kind: String
  var signal: Int32
  /// (label that starts the report line, top frame's function) pairs.
  var frames: [(String, String)]

  var description: String { mode }
}

@Suite("Guarded sampling")
struct GuardedTests {
  static let probes: [GuardedProbe] = [
    GuardedProbe(mode: "uaf-read", kind: "heap-use-after-free: read of 1 byte at 0x", signal: SIGSEGV,
                 frames: [("at:", "read_node"), ("allocated by thread", "make_node"), ("freed by thread", "release_node")]),
    GuardedProbe(mode: "uaf-write", kind: "heap-use-after-free: write of 1 byte at 0x", signal: SIGSEGV,
                 frames: [("at:", "write_node"), ("allocated by thread", "make_node"), ("freed by thread", "release_node")]),
    GuardedProbe(mode: "uaf-write-word", kind: "heap-use-after-free: write of 8 bytes at 0x", signal: SIGSEGV,
                 frames: [("at:", "write_word"), ("allocated by thread", "make_node"), ("freed by thread", "release_node")]),
    GuardedProbe(mode: "uaf-read-vector", kind: "heap-use-after-free: read of 16 bytes at 0x", signal: SIGSEGV,
                 frames: [("at:", "read_vector"), ("allocated by thread", "make_node"), ("freed by thread", "release_node")]),
    GuardedProbe(mode: "overflow", kind: "heap-buffer-overflow: write of 1 byte at 0x", signal: SIGSEGV,
                 frames: [("at:", "write_node"), ("allocated by thread", "make_node")]),
    GuardedProbe(mode: "overflow-slack", kind: "heap-buffer-overflow: write at 0x", signal: SIGABRT,
                 frames: [("allocated by thread", "make_node"), ("freed by thread", "release_node")]),
    GuardedProbe(mode: "underflow", kind: "heap-buffer-underflow: read of 1 byte at 0x", signal: SIGSEGV,
                 frames: [("at:", "read_node"), ("allocated by thread", "make_node")]),
    GuardedProbe(mode: "double-free", kind: "double-free: free(0x", signal: SIGABRT,
                 frames: [("allocated by thread", "make_node"), ("freed by thread", "release_node"),
                          ("freed again by thread", "release_again")]),
    GuardedProbe(mode: "interior-free", kind: "invalid-free: free(0x", signal: SIGABRT,
                 frames: [("allocated by thread", "make_node"), ("invalid free by thread", "release_node")]),
  ]

  static let languages: [FixtureKind] = [.c, .cxx]
  static let modes: [[String: String]] = [[:], ["SWALLOC_SECURE": "1"]]

  static func program(_ kind: FixtureKind) async throws -> String {
    try await FixtureBuilds.shared.build(kind == .cxx ? "guarded_cxx.cpp" : "guarded.c", as: kind)
  }

  /// Whether the child died of `signal` (directly, or as `timeout` passes it on).
  static func died(_ result: ChildResult, of signal: Int32) -> Bool {
    (result.signaled && result.status == signal) || (!result.signaled && result.status == 128 + signal)
  }

  /// Records a failure unless stderr has a line starting (after spaces) with `label` whose first frame is
  /// `function` (plain C name, or inside a C++ mangled name).
  static func expectTopFrame(_ label: String, _ function: String, in result: ChildResult,
                             sourceLocation: SourceLocation = #_sourceLocation) {
    let line = result.errorLines.first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(label) }
    let frame = line.flatMap { $0.firstMatch(of: #/#0 (\S+) \(/#) }.map { String($0.1) }
    #expect(frame.map { $0 == function || ($0.hasPrefix("_Z") && $0.contains(function)) } == true,
            "\"\(label)\" should name \(function) as frame #0 (got \(frame ?? "none"))\n\(result.summary)",
            sourceLocation: sourceLocation)
  }

  @Test("each misuse is reported with its kind and both stacks, and the process dies of the signal",
        arguments: GuardedTests.probes, [0, 1])
  func misuse(probe: GuardedProbe, modeIndex: Int) async throws {
    for language in Self.languages {
      let program = try await Self.program(language)
      var environment = Self.modes[modeIndex]
      environment["SWALLOC_GUARDED_SAMPLE"] = "1"
      let result = try await runChild(program, [probe.mode], preload: try Preload.library(),
                                      environment: environment, timeout: shortChildTimeout)
      expectLine("swalloc active", in: result)
      #expect(Self.died(result, of: probe.signal), "expected death by signal \(probe.signal)\n\(result.summary)")
      #expect(result.standardError.contains("swalloc: " + probe.kind), "\(result.summary)")
      #expect(!result.outputLines.contains("not stopped"), "\(result.summary)")
      for (label, function) in probe.frames { Self.expectTopFrame(label, function, in: result) }
    }
  }

  /// calloc, realloc and the aligned family reach the sample through the same slow path as malloc: their
  /// guarded blocks name the allocating and freeing functions too (before, they had no allocation stack).
  @Test("calloc, realloc and aligned_alloc blocks: the report names both stacks",
        arguments: ["guarded_calloc.c", "guarded_realloc.c", "guarded_aligned.c"], [0, 1])
  func otherEntries(fixture: String, modeIndex: Int) async throws {
    let program = try await FixtureBuilds.shared.build(fixture, as: .c)
    var environment = Self.modes[modeIndex]
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    for probe in Self.probes where probe.mode == "uaf-write" || probe.mode == "double-free" {
      let result = try await runChild(program, [probe.mode], preload: try Preload.library(),
                                      environment: environment, timeout: shortChildTimeout)
      expectLine("swalloc active", in: result)
      #expect(Self.died(result, of: probe.signal), "expected death by signal \(probe.signal)\n\(result.summary)")
      #expect(result.standardError.contains("swalloc: " + probe.kind), "\(result.summary)")
      for (label, function) in probe.frames { Self.expectTopFrame(label, function, in: result) }
    }
  }

  /// A use after free in a loop of allocations (each freed, then read), 20 times as many as the rate: it is
  /// sampled about 20 times per run, and a run misses it with probability e^-20 (2e-9). The default mode
  /// with 1 in 50 000 given (1 000 000 allocations); secure mode at its default, 1 in
  /// `Guarded.secureDefaultRate` = 500 000, with no variable (10 000 000 allocations, 0.1 s). The test
  /// allows 3 runs per mode.
  @Test("at the default rate a use after free in a hot loop is caught within 3 runs", arguments: [0, 1])
  func statistical(modeIndex: Int) async throws {
    let program = try await Self.program(.c)
    // Default mode: the rate given explicitly; secure mode: its default, with no variable.
    let environment = modeIndex == 0 ? ["SWALLOC_GUARDED_SAMPLE": "50000"] : Self.modes[1]
    let iterations = modeIndex == 0 ? "1000000" : "10000000"
    var caught = 0
    var runs = 0
    while runs < 3 && caught == 0 {
      runs += 1
      let result = try await runChild(program, ["hot-loop", iterations], preload: try Preload.library(),
                                      environment: environment, timeout: shortChildTimeout)
      expectLine("swalloc active", in: result)
      if Self.died(result, of: SIGSEGV) && result.standardError.contains("heap-use-after-free") {
        caught += 1
        Self.expectTopFrame("freed by thread", "release_node", in: result)
      } else {
        #expect(result.outputLines.contains("hot loop finished"), "\(result.summary)")
      }
    }
    #expect(caught == 1, "not caught in \(runs) runs")
  }

  @Test("a program's own SIGSEGV handler keeps working, and chains guarded faults back", arguments: [0, 1])
  func programHandler(modeIndex: Int) async throws {
    let program = try await Self.program(.c)
    var environment = Self.modes[modeIndex]
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    let handled = try await runPreloaded(program, ["jit"], environment: environment, timeout: shortChildTimeout,
                                         proof: .fixtureProbe)
    expectLine("jit faults handled: 100", in: handled)
    expectLine("jit ok", in: handled)
    let chained = try await runChild(program, ["jit", "then-uaf"], preload: try Preload.library(),
                                     environment: environment, timeout: shortChildTimeout)
    expectLine("jit faults handled: 100", in: chained)
    #expect(Self.died(chained, of: SIGSEGV), "\(chained.summary)")
    #expect(chained.standardError.contains("swalloc: heap-use-after-free: write of 1 byte at 0x"), "\(chained.summary)")
  }

  @Test("a forked child inherits the slots and the handler", arguments: [0, 1])
  func fork(modeIndex: Int) async throws {
    let program = try await Self.program(.c)
    var environment = Self.modes[modeIndex]
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    let result = try await runPreloaded(program, ["fork"], environment: environment, timeout: shortChildTimeout,
                                        proof: .fixtureProbe)
    expectLine("child signal \(SIGSEGV)", in: result)
    #expect(result.standardError.contains("swalloc: heap-use-after-free: write of 1 byte at 0x"), "\(result.summary)")
    Self.expectTopFrame("freed by thread", "release_node", in: result)
  }

  @Test("huge-page and locked modes", arguments: [
    ["SWALLOC_HUGE_PAGES": "transparent"], ["SWALLOC_HUGE_PAGES": "explicit"], ["SWALLOC_LOCKED": "1"],
    ["SWALLOC_HUGE_PAGES": "transparent", "SWALLOC_SECURE": "1"], ["SWALLOC_LOCKED": "1", "SWALLOC_SECURE": "1"],
  ])
  func backings(options: [String: String]) async throws {
    let program = try await Self.program(.cxx)
    var environment = options
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    let result = try await runChild(program, ["uaf-write"], preload: try Preload.library(),
                                    environment: environment, timeout: shortChildTimeout)
    expectLine("swalloc active", in: result)
    #expect(Self.died(result, of: SIGSEGV), "\(result.summary)")
    Self.expectTopFrame("allocated by thread", "make_node", in: result)
    Self.expectTopFrame("freed by thread", "release_node", in: result)
  }

  @Test("a guarded block's usable size is its size; realloc moves it and the stale pointer faults",
        arguments: [0, 1])
  func reallocAndUsableSize(modeIndex: Int) async throws {
    let program = try await Self.program(.c)
    var environment = Self.modes[modeIndex]
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    let sized = try await runPreloaded(program, ["usable-size"], environment: environment,
                                       timeout: shortChildTimeout, proof: .fixtureProbe)
    expectLine("usable size 48", in: sized)
    let stale = try await runChild(program, ["realloc-stale"], preload: try Preload.library(),
                                   environment: environment, timeout: shortChildTimeout)
    #expect(Self.died(stale, of: SIGSEGV), "\(stale.summary)")
    #expect(stale.standardError.contains("swalloc: heap-use-after-free: write of 1 byte at 0x"), "\(stale.summary)")
  }

  @Test("stock programs run clean with every eligible allocation guarded", arguments: [0, 1])
  func stockPrograms(modeIndex: Int) async throws {
    var environment = Self.modes[modeIndex]
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    environment["SWALLOC_GUARDED_SLOTS"] = "1024"
    let python = try Preload.tool("python3")
    let result = try await runPreloaded(
      python, ["-c", "d = {str(i): [i] * (i % 7) for i in range(20000)}; print(sum(len(v) for v in d.values()))"],
      environment: environment, timeout: shortChildTimeout)
    #expect(result.outputLines.first == "59997", "\(result.summary)")
    let stress = try Preload.buildProduct("swalloc-stress")
    let stressed = try await runPreloaded(stress, ["--threads", "4", "--seconds", "2"], environment: environment)
    #expect(stressed.outputLines.contains { $0.hasPrefix("swalloc-stress: ") && $0.hasSuffix(" ok") },
            "\(stressed.summary)")
  }
}

@Suite("Guarded sampling: the Swift API's heaps")
struct GuardedHeapTests {
  /// swalloc-example's heap tour makes 10 000 heap allocations; at rate 1 the first ones fill the 128 slots,
  /// and the heap's own count (which guarded blocks are not part of) drops by as many. The tour checks its
  /// blocks' contents, frees them and destroys the heap: it must run as it does without sampling.
  @Test("SwallocHeap allocations are sampled and the heap tour runs unchanged", arguments: [0, 1])
  func heapTour(modeIndex: Int) async throws {
    let example = try Preload.buildProduct("swalloc-example")
    var environment = GuardedTests.modes[modeIndex]
    environment["SWALLOC_GUARDED_SAMPLE"] = "1"
    let result = try await runPreloaded(example, environment: environment)
    expectLine("withArena: hello from an arena", in: result)
    let line = result.outputLines.first { $0.hasPrefix("Swift API heaps: ") }
    let count = line.flatMap { Int($0.split(separator: " ")[3]) } ?? 10_000
    #expect(count < 10_000, "no heap allocation was guarded\n\(result.summary)")
  }
}
