// The SWALLOC_* options, seen from a preloaded child: malformed and unknown options (one warning, the default
// applies), valid values and their visible effects, JSON statistics, invalid frees under SWALLOC_VERBOSE,
// purging, and the page backings (explicit and transparent huge pages, locked memory) as the kernel reports them.
import Foundation
import Glibc
import Testing

/// What a run shows of an option's value (or of the default that replaced a malformed one).
enum OptionEffect: Sendable, CustomStringConvertible {
  /// No statistics at exit (SWALLOC_SHOW_STATS=0); the fixture's probe proves swalloc was active.
  case noStatistics
  /// A statistics table at exit (SWALLOC_SHOW_STATS=1).
  case statistics
  /// The fixture's three invalid frees are counted in the table and not reported (SWALLOC_VERBOSE=0).
  case silentInvalidFrees
  /// ... and reported, one line each (SWALLOC_VERBOSE=1).
  case reportedInvalidFrees
  /// The table has no row `label` (the option that adds it is off).
  case noRow(String)
  /// The table has the row `label`.
  case row(String)
  /// The table's row `label` reads `value`.
  case rowValue(String, Int)
  /// Nothing visible from outside within one short run (the purge delay: see PurgeTests).
  case invisible

  var description: String {
    switch self {
    case .noStatistics: "no statistics"
    case .statistics: "a statistics table"
    case .silentInvalidFrees: "invalid frees counted silently"
    case .reportedInvalidFrees: "invalid frees reported"
    case .noRow(let label): "no \"\(label)\" row"
    case .row(let label): "a \"\(label)\" row"
    case .rowValue(let label, let value): "\"\(label)\" \(value)"
    case .invisible: "a normal run"
    }
  }

  /// The options.c mode that makes the effect visible.
  var fixtureArguments: [String] {
    switch self {
    case .silentInvalidFrees, .reportedInvalidFrees: ["invalid-frees"]
    default: []
    }
  }

  var proof: ActivityProof { if case .noStatistics = self { .fixtureProbe } else { .statistics } }
}

/// One SWALLOC_* setting for a run of options.c, with the other options it needs and the effect expected.
struct OptionCase: Sendable, CustomTestStringConvertible {
  var name: String
  var value: String
  var otherOptions: [String: String] = [:]
  var effect: OptionEffect

  init(_ name: String, _ value: String, with otherOptions: [String: String] = [:], _ effect: OptionEffect) {
    self.name = name
    self.value = value
    self.otherOptions = otherOptions
    self.effect = effect
  }

  var environment: [String: String] { otherOptions.merging([name: value]) { _, new in new } }

  var testDescription: String {
    let others = otherOptions.sorted { $0.key < $1.key }.map { " \($0.key)=\($0.value)" }.joined()
    return "\(name)=\(value)\(others): \(effect)"
  }
}

/// Runs options.c with `option` and checks the effect, the workload's end and swalloc's activity; returns the
/// result and the lines of stderr that carry a swalloc warning.
private func runOptionsFixture(
  _ option: OptionCase, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> (ChildResult, [String]) {
  let program = try await FixtureBuilds.shared.build("options.c", as: .c)
  let result = try await runPreloaded(
    program, option.effect.fixtureArguments, environment: option.environment, timeout: shortChildTimeout,
    proof: option.effect.proof, sourceLocation: sourceLocation)
  expectLine("options ok", in: result, sourceLocation: sourceLocation)
  expectEffect(option.effect, in: result, sourceLocation: sourceLocation)
  return (result, result.errorLines.filter { $0.contains("swalloc: warning") })
}

private func expectEffect(_ effect: OptionEffect, in result: ChildResult, sourceLocation: SourceLocation) {
  let blocks = statisticsBlocks(in: result.standardError)
  func expectRows(_ label: String, _ expected: [Int]?) {
    let values = statisticsValues(label, in: result)
    if let expected {
      #expect(values == expected, "statistics row \"\(label)\": \(values), expected \(expected)\n\(result.summary)",
              sourceLocation: sourceLocation)
    } else {
      #expect(values.count == 1, "statistics row \"\(label)\": \(values), expected one\n\(result.summary)",
              sourceLocation: sourceLocation)
    }
  }
  func lineCount(_ text: String) -> Int { result.errorLines.filter { $0.contains(text) }.count }
  switch effect {
  case .noStatistics:
    #expect(blocks.isEmpty && statisticsJSON(in: result).isEmpty,
            "statistics were printed with SWALLOC_SHOW_STATS off\n\(result.summary)", sourceLocation: sourceLocation)
  case .statistics:
    #expect(blocks.count == 1, "\(blocks.count) statistics blocks, expected 1\n\(result.summary)",
            sourceLocation: sourceLocation)
  case .silentInvalidFrees:
    expectLine("invalid frees done: 3", in: result, sourceLocation: sourceLocation)
    #expect(lineCount("ignored") == 0, "invalid frees were reported without SWALLOC_VERBOSE=1\n\(result.summary)",
            sourceLocation: sourceLocation)
    expectRows("invalid frees", [3])
  case .reportedInvalidFrees:
    expectLine("invalid frees done: 3", in: result, sourceLocation: sourceLocation)
    let foreign = lineCount("not allocated by swalloc; ignored")
    let double = lineCount("double free or stale pointer; ignored")
    #expect(foreign == 2 && double == 1,
            """
            \(foreign) "not allocated by swalloc; ignored" lines (expected 2: a static array, a stack variable), \
            \(double) "double free or stale pointer; ignored" lines (expected 1: the 3 MB block)
            \(result.summary)
            """, sourceLocation: sourceLocation)
    expectRows("invalid frees", [3])
  case .noRow(let label):
    expectRows(label, [])
  case .row(let label):
    expectRows(label, nil)
  case .rowValue(let label, let value):
    expectRows(label, [value])
  case .invisible:
    break
  }
}

@Suite("SWALLOC_* options under the preload", .serialized)
struct OptionsTests {
  // Serialized as a whole: the huge-page tests change the kernel's huge page pool, which the explicit-mode runs
  // of the other suites here draw from, and the purge tests measure the resident set.

  @Suite("Option parsing")
  struct Parsing {
    static let malformed: [OptionCase] = [
      OptionCase("SWALLOC_SHOW_STATS", "yes", .noStatistics),
      OptionCase("SWALLOC_SHOW_STATS", "2", .noStatistics),
      OptionCase("SWALLOC_VERBOSE", "2", .silentInvalidFrees),
      OptionCase("SWALLOC_VERBOSE", "true", .silentInvalidFrees),
      OptionCase("SWALLOC_PURGE_DELAY_MS", "fast", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MS", "-1", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MS", "3600001", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MS", "10ms", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MAX_MS", "soon", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MAX_MS", "3600001", .invisible),
      OptionCase("SWALLOC_HUGE_PAGES", "always", .noRow("huge page spans")),
      OptionCase("SWALLOC_HUGE_PAGES", "huge", .noRow("huge page spans")),
      OptionCase("SWALLOC_HUGE_RESERVE", "5G", with: ["SWALLOC_HUGE_PAGES": "explicit"],
                 .rowValue("huge reserve bytes", 0)),
      OptionCase("SWALLOC_HUGE_RESERVE", "16Q", with: ["SWALLOC_HUGE_PAGES": "explicit"],
                 .rowValue("huge reserve bytes", 0)),
      OptionCase("SWALLOC_HUGE_RESERVE", "M", with: ["SWALLOC_HUGE_PAGES": "explicit"],
                 .rowValue("huge reserve bytes", 0)),
      OptionCase("SWALLOC_LOCKED", "yes", .noRow("locked bytes")),
      OptionCase("SWALLOC_GUARDED_SAMPLE", "often", .invisible),
      OptionCase("SWALLOC_GUARDED_SAMPLE", "-1", .invisible),
      OptionCase("SWALLOC_GUARDED_SAMPLE", "4294967296", .invisible),
      OptionCase("SWALLOC_GUARDED_SLOTS", "0", .invisible),
      OptionCase("SWALLOC_GUARDED_SLOTS", "16385", .invisible),
      OptionCase("SWALLOC_SECURE", "3", .noRow("secure mode")),
      OptionCase("SWALLOC_SECURE", "fully", .noRow("secure mode")),
    ]

    static let valid: [OptionCase] = [
      OptionCase("SWALLOC_SHOW_STATS", "0", .noStatistics),
      OptionCase("SWALLOC_SHOW_STATS", "1", .statistics),
      OptionCase("SWALLOC_VERBOSE", "0", .silentInvalidFrees),
      OptionCase("SWALLOC_VERBOSE", "1", .reportedInvalidFrees),
      OptionCase("SWALLOC_PURGE_DELAY_MS", "0", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MS", "3600000", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MAX_MS", "10", .invisible),
      OptionCase("SWALLOC_PURGE_DELAY_MAX_MS", "60000", .invisible),
      OptionCase("SWALLOC_HUGE_PAGES", "large", .noRow("huge page spans")),
      OptionCase("SWALLOC_HUGE_PAGES", "off", .noRow("huge page spans")),
      OptionCase("SWALLOC_HUGE_PAGES", "transparent", .noRow("huge page spans")),
      OptionCase("SWALLOC_HUGE_PAGES", "explicit", .row("huge page spans")),
      OptionCase("SWALLOC_HUGE_RESERVE", "1048576", .invisible),
      OptionCase("SWALLOC_HUGE_RESERVE", "64k", .invisible),
      OptionCase("SWALLOC_HUGE_RESERVE", "16M", .invisible),
      OptionCase("SWALLOC_HUGE_RESERVE", "4G", .invisible),
      OptionCase("SWALLOC_LOCKED", "0", .noRow("locked bytes")),
      OptionCase("SWALLOC_LOCKED", "1", .row("locked bytes")),
      OptionCase("SWALLOC_GUARDED_SAMPLE", "0", .invisible),
      OptionCase("SWALLOC_GUARDED_SAMPLE", "1000", .invisible),
      OptionCase("SWALLOC_GUARDED_SLOTS", "1", with: ["SWALLOC_GUARDED_SAMPLE": "1"], .invisible),
      OptionCase("SWALLOC_GUARDED_SLOTS", "16384", with: ["SWALLOC_GUARDED_SAMPLE": "10"], .invisible),
      OptionCase("SWALLOC_SECURE", "0", .noRow("secure mode")),
      OptionCase("SWALLOC_SECURE", "1", .rowValue("secure mode", 1)),
      OptionCase("SWALLOC_SECURE", "full", .rowValue("secure mode", 2)),
      OptionCase("SWALLOC_SECURE", "2", .rowValue("secure mode", 2)),
    ]

    @Test("a malformed value: exactly one warning naming the accepted values; the default applies",
          arguments: malformed)
    func malformedValue(_ option: OptionCase) async throws {
      let (result, warnings) = try await runOptionsFixture(option)
      let expected = "swalloc: warning: ignoring malformed \(option.name)=\(option.value) (accepted values: "
      #expect(warnings.count == 1, "\(warnings.count) warning lines, expected 1\n\(result.summary)")
      let warning = warnings.first ?? ""
      #expect(warning.contains(expected) && warning.contains(#/\(accepted values: [^)]+\)/#),
              "expected a line containing \"\(expected)...)\"\n\(result.summary)")
    }

    @Test("a valid value: no warning, and its effect", arguments: valid)
    func validValue(_ option: OptionCase) async throws {
      let (result, warnings) = try await runOptionsFixture(option)
      #expect(warnings.isEmpty, "a valid option drew a warning\n\(result.summary)")
    }

    @Test("an unknown SWALLOC_FOO=1: exactly one warning that lists the known options")
    func unknownOption() async throws {
      let (result, warnings) = try await runOptionsFixture(OptionCase("SWALLOC_FOO", "1", .statistics))
      #expect(warnings.count == 1, "\(warnings.count) warning lines, expected 1\n\(result.summary)")
      let pattern = #/swalloc: warning: ignoring unknown option SWALLOC_FOO=1 \(known: ([^)]*)\)/#
      let match = warnings.first?.firstMatch(of: pattern)
      let known = match.map { String($0.1) } ?? ""
      #expect(match != nil, "no \"ignoring unknown option SWALLOC_FOO=1 (known: ...)\" line\n\(result.summary)")
      for name in ["SWALLOC_SHOW_STATS", "SWALLOC_VERBOSE", "SWALLOC_PURGE_DELAY_MS", "SWALLOC_PURGE_DELAY_MAX_MS",
                   "SWALLOC_HUGE_PAGES", "SWALLOC_HUGE_RESERVE", "SWALLOC_LOCKED", "SWALLOC_GUARDED_SAMPLE",
                   "SWALLOC_GUARDED_SLOTS"] {
        #expect(known.contains(name), "the known options \"\(known)\" leave out \(name)\n\(result.summary)")
      }
    }

    @Test("SWALLOC_SHOW_STATS=json: one JSON line with the child's pid, allocations >= frees >= 2048, no table")
    func statisticsAsJSON() async throws {
      let program = try await FixtureBuilds.shared.build("options.c", as: .c)
      let result = try await runPreloaded(
        program, environment: ["SWALLOC_SHOW_STATS": "json"], timeout: shortChildTimeout, proof: .fixtureProbe)
      expectLine("options ok", in: result)
      let pid = try #require(reportedValues(in: result)["process.pid"], "\(result.summary)")
      #expect(result.errorLines.allSatisfy { !$0.hasPrefix("swalloc: ") },
              "table lines printed with SWALLOC_SHOW_STATS=json\n\(result.summary)")
      let objects = statisticsJSON(in: result)
      #expect(objects.count == 1, "\(objects.count) JSON statistics lines, expected 1\n\(result.summary)")
      guard let object = objects.first else { return }
      expectStatisticsJSON(object, pid: pid, in: result)
      // The workload frees 4 x 512 blocks before exit.
      let frees = object["frees"] as? Int ?? 0
      #expect(frees >= 2048, "JSON frees \(frees), but the workload freed 2048 blocks\n\(result.summary)")
    }
  }

  @Suite("Invalid frees")
  struct InvalidFrees {
    @Test("""
      free() into a static array, of a stack variable, and twice of a 3 MB block: ignored and counted, \
      reported only under SWALLOC_VERBOSE=1
      """, arguments: [false, true])
    func invalidFrees(verbose: Bool) async throws {
      // Without SWALLOC_VERBOSE at all: the default is silent.
      let option = verbose
        ? OptionCase("SWALLOC_VERBOSE", "1", .reportedInvalidFrees)
        : OptionCase("SWALLOC_SHOW_STATS", "1", .silentInvalidFrees)
      let (result, warnings) = try await runOptionsFixture(option)
      #expect(warnings.isEmpty, "\(result.summary)")
    }
  }

  @Suite("Purging (SWALLOC_PURGE_DELAY_MS, malloc_trim)")
  struct Purging {
    /// The fixture's `rss start=... peak=... end=...` figures, after checking the allocations were resident.
    private func residentSet(_ result: ChildResult) throws -> (start: Int, peak: Int, end: Int) {
      let values = reportedValues(in: result)
      let start = try #require(values["rss.start"], "\(result.summary)")
      let peak = try #require(values["rss.peak"], "\(result.summary)")
      let end = try #require(values["rss.end"], "\(result.summary)")
      // Otherwise nothing was there to give back, and the test would prove nothing.
      #expect(peak - start >= 150 << 20,
              "200 MB of blocks added only \(peak - start) resident bytes\n\(result.summary)")
      return (start, peak, end)
    }

    @Test("200 MB of 64-byte blocks freed, then malloc_trim(0): resident set within 16 MB of the start",
          arguments: ["0", "3600000"])
    func mallocTrim(purgeDelay: String) async throws {
      let program = try await FixtureBuilds.shared.build("purge.c", as: .c)
      let result = try await runPreloaded(
        program, ["trim"], environment: ["SWALLOC_PURGE_DELAY_MS": purgeDelay], timeout: shortChildTimeout)
      #expect(result.outputLines.contains { $0 == "malloc_trim(0) = 0" || $0 == "malloc_trim(0) = 1" },
              "malloc_trim(0) returned neither 0 nor 1\n\(result.summary)")
      let rss = try residentSet(result)
      #expect(rss.end <= rss.start + (16 << 20),
              """
              resident: \(rss.start) at the start, \(rss.peak) at the peak, \(rss.end) after malloc_trim
              \(result.summary)
              """)
    }

    @Test("""
      SWALLOC_PURGE_DELAY_MS=50: 200 MB freed, 200 ms asleep, a few allocations: resident set within 24 MB of \
      the start
      """)
    func purgeAfterDelay() async throws {
      let program = try await FixtureBuilds.shared.build("purge.c", as: .c)
      let result = try await runPreloaded(
        program, ["delay", "200"], environment: ["SWALLOC_PURGE_DELAY_MS": "50"], timeout: shortChildTimeout)
      let rss = try residentSet(result)
      #expect(rss.end <= rss.start + (24 << 20),
              """
              resident: \(rss.start) at the start, \(rss.peak) at the peak, \(rss.end) after the delay
              \(result.summary)
              """)
    }
  }

  @Suite("Adaptive purge delay (SWALLOC_PURGE_DELAY_MS, SWALLOC_PURGE_DELAY_MAX_MS)")
  struct AdaptivePurgeDelay {
    @Test("""
      default options: 200 MB freed, 1200 ms asleep (past the 1 s ceiling), a few allocations: resident set \
      within 24 MB of the start
      """, arguments: Mode.allCases)
    func idleReturnWithinTheCeiling(mode: Mode) async throws {
      let program = try await FixtureBuilds.shared.build("purge.c", as: .c)
      let result = try await runPreloaded(program, ["delay", "1200"], mode: mode, timeout: shortChildTimeout)
      let values = reportedValues(in: result)
      let start = try #require(values["rss.start"], "\(result.summary)")
      let peak = try #require(values["rss.peak"], "\(result.summary)")
      let end = try #require(values["rss.end"], "\(result.summary)")
      #expect(peak - start >= 150 << 20, "\(result.summary)")
      #expect(end <= start + (24 << 20), "resident: \(start), \(peak), \(end) after 1.2 s\n\(result.summary)")
    }

    /// 16 MB allocated and freed each round, 40 ms apart: a fixed 10 ms delay purges it every round and the
    /// next round faults it in again (about 4000 faults a round); the adaptive delay grows past the pause
    /// after a few rounds, and the late rounds reuse resident pages.
    @Test("memory cycled 40 ms apart stays resident by default; a fixed 10 ms delay refaults it every round",
          arguments: Mode.allCases)
    func cycledMemoryStaysResident(mode: Mode) async throws {
      let program = try await FixtureBuilds.shared.build("purge.c", as: .c)
      func lateFaults(_ environment: [String: String]) async throws -> Int {
        let result = try await runPreloaded(
          program, ["cycle", "16", "40"], environment: environment, mode: mode, timeout: shortChildTimeout)
        return try #require(reportedValues(in: result)["cycle.late"], "\(result.summary)")
      }
      let adaptive = try await lateFaults([:])
      let fixed = try await lateFaults(["SWALLOC_PURGE_DELAY_MS": "10"])
      #expect(fixed >= 8 * 2000, "a fixed 10 ms delay refaulted only \(fixed) pages in 8 rounds")
      #expect(adaptive * 4 < fixed, "adaptive: \(adaptive) faults in the late rounds, fixed 10 ms: \(fixed)")
    }
  }

  @Suite("Large spans reused")
  struct SpanReuse {
    /// Default mode: a freed 8 MiB block's span is moved, grown, for a 12 MiB block (its pages resident before
    /// the program touches them). Secure mode maps afresh (guard pages split spans). Both: calloc reads zeros.
    @Test("a freed large block's span serves a larger one without faults; calloc after it reads zeros",
          arguments: Mode.allCases)
    func grownSpan(mode: Mode) async throws {
      let program = try await FixtureBuilds.shared.build("span_reuse.c", as: .c)
      let result = try await runPreloaded(program, mode: mode, timeout: shortChildTimeout)
      expectLine("span reuse ok", in: result)
      let values = reportedValues(in: result)
      let resident = try #require(values["grown.resident"], "\(result.summary)")
      let pages = try #require(values["grown.of"], "\(result.summary)")
      if mode == .standard {
        #expect(resident * 10 >= pages * 9, "\(resident) of \(pages) pages resident\n\(result.summary)")
      }
    }
  }

  @Suite("Explicit huge pages (SWALLOC_HUGE_PAGES=explicit)",
         .enabled(if: access(HugePagePool.sizePath, F_OK) == 0, "the kernel has no hugetlb pool"))
  struct ExplicitHugePages {
    @Test("with 64 free 2 MiB pages: the blocks sit in 2 MiB-page mappings; huge page spans > 0, no fallbacks")
    func hugePagesFromThePool() async throws {
      let original = try HugePagePool.size()
      defer { HugePagePool.restore(original) }
      let freePages = try HugePagePool.grow(to: original + 64)

      let program = try await FixtureBuilds.shared.build("page_backing.c", as: .c)
      let result = try await runPreloaded(
        program, ["huge-pages"], environment: ["SWALLOC_HUGE_PAGES": "explicit"], timeout: shortChildTimeout)
      let values = reportedValues(in: result)
      let hugePageBytes = try #require(values["huge-pages.bytes"], "\(result.summary)")
      #expect(hugePageBytes > 0, "no block in a mapping with KernelPageSize 2048 kB\n\(result.summary)")
      let spans = statisticsValues("huge page spans", in: result)
      #expect(spans.count == 1 && spans[0] > 0, "huge page spans \(spans)\n\(result.summary)")
      if freePages >= 64 {
        // The fixture needs about 20 pages: with 64 free, none may be missing.
        #expect(values["huge-pages.large"] == 1, "the 10 MB block is not on 2 MiB pages\n\(result.summary)")
        #expect((values["huge-pages.small"] ?? 0) > 0, "no small block is on 2 MiB pages\n\(result.summary)")
        #expect(statisticsValues("huge page fallbacks", in: result) == [0],
                "fallbacks with \(freePages) free huge pages\n\(result.summary)")
      }
    }

    @Test("""
      with an empty pool: normal pages, huge page fallbacks > 0, one `no free huge pages` line under \
      SWALLOC_VERBOSE=1
      """)
    func fallbackWhenThePoolIsEmpty() async throws {
      let original = try HugePagePool.size()
      defer { HugePagePool.restore(original) }
      if let failure = HugePagePool.setSize(0), HugePagePool.freePageCount() != 0 {
        try skipTest("cannot empty the huge page pool: \(failure)")
      }
      let free = HugePagePool.freePageCount()
      if free != 0 {
        try skipTest("HugePages_Free is \(free.map(String.init) ?? "unreadable") with nr_hugepages 0")
      }

      let program = try await FixtureBuilds.shared.build("page_backing.c", as: .c)
      let result = try await runPreloaded(
        program, ["huge-pages"], environment: ["SWALLOC_HUGE_PAGES": "explicit", "SWALLOC_VERBOSE": "1"],
        timeout: shortChildTimeout)
      expectLine("huge-pages bytes=0 small=0 large=0", in: result)
      expectLine("page backing ok: huge-pages", in: result)
      let fallbacks = statisticsValues("huge page fallbacks", in: result)
      #expect(fallbacks.count == 1 && fallbacks[0] > 0, "huge page fallbacks \(fallbacks)\n\(result.summary)")
      #expect(statisticsValues("huge page spans", in: result) == [0], "\(result.summary)")
      let notes = result.errorLines.filter { $0.contains("no free huge pages") }
      #expect(notes.count == 1, "\(notes.count) lines mention \"no free huge pages\", expected 1\n\(result.summary)")
    }

    @Test("SWALLOC_HUGE_RESERVE=16M: huge reserve bytes 16777216")
    func hugeReserve() async throws {
      let original = try HugePagePool.size()
      defer { HugePagePool.restore(original) }
      _ = try HugePagePool.grow(to: original + 64)

      let program = try await FixtureBuilds.shared.build("page_backing.c", as: .c)
      let result = try await runPreloaded(
        program, ["huge-pages"], environment: ["SWALLOC_HUGE_PAGES": "explicit", "SWALLOC_HUGE_RESERVE": "16M"],
        timeout: shortChildTimeout)
      expectLine("page backing ok: huge-pages", in: result)
      #expect(statisticsValues("huge reserve bytes", in: result) == [16 << 20], "\(result.summary)")
      #expect((reportedValues(in: result)["huge-pages.bytes"] ?? 0) > 0,
              "no block in a mapping with KernelPageSize 2048 kB\n\(result.summary)")
    }
  }

  @Suite("Transparent huge pages and locked memory")
  struct TransparentAndLocked {
    @Test("""
      SWALLOC_HUGE_PAGES=transparent and =large: the mapping of a 10 MB block is THPeligible (and not without \
      them under [madvise])
      """)
    func transparentHugePages() async throws {
      let policyPath = "/sys/kernel/mm/transparent_hugepage/enabled"
      guard let policy = readSystemFile(policyPath) else { try skipTest("cannot read \(policyPath)") }
      if policy.contains("[never]") {
        let setting = policy.trimmingCharacters(in: .whitespacesAndNewlines)
        try skipTest("transparent huge pages are off (\(policyPath): \(setting))")
      }
      let program = try await FixtureBuilds.shared.build("page_backing.c", as: .c)
      let result = try await runPreloaded(
        program, ["transparent"], environment: ["SWALLOC_HUGE_PAGES": "transparent"], timeout: shortChildTimeout)
      #expect(reportedValues(in: result)["large-block.thp-eligible"] == 1, "\(result.summary)")
      // `large` advises the spans of huge blocks only: a 10 MB block's is one.
      let large = try await runPreloaded(
        program, ["transparent"], environment: ["SWALLOC_HUGE_PAGES": "large"], timeout: shortChildTimeout)
      #expect(reportedValues(in: large)["large-block.thp-eligible"] == 1, "\(large.summary)")

      // Under [madvise] only swalloc's MADV_HUGEPAGE makes the mapping eligible: without the option it is not.
      guard policy.contains("[madvise]") else { return }
      let control = try await runPreloaded(
        program, ["transparent"], environment: ["SWALLOC_HUGE_PAGES": "off"], timeout: shortChildTimeout)
      #expect(reportedValues(in: control)["large-block.thp-eligible"] == 0, "\(control.summary)")
    }

    @Test("SWALLOC_LOCKED=1: a fresh 8 MB block's mapping is all resident and Locked == Rss; locked bytes > 0")
    func lockedMemory() async throws {
      let program = try await FixtureBuilds.shared.build("page_backing.c", as: .c)
      let result = try await runPreloaded(
        program, ["locked"], environment: ["SWALLOC_LOCKED": "1"], timeout: shortChildTimeout)
      let values = reportedValues(in: result)
      let limit = try #require(values["memlock.limit"], "\(result.summary)")
      let blockBytes = try #require(values["large-block.bytes"], "\(result.summary)")
      if blockBytes != 8 << 20 {
        print("lockedMemory: RLIMIT_MEMLOCK is \(limit) bytes and cannot be raised: checked a \(blockBytes)-byte block")
      }
      let rss = try #require(values["large-block.rss"], "\(result.summary)")
      let locked = try #require(values["large-block.locked"], "\(result.summary)")
      // Locked memory is faulted in when it is mapped: the whole block is resident though one byte was touched.
      #expect(rss >= blockBytes && locked == rss,
              "a \(blockBytes)-byte block: Rss \(rss), Locked \(locked)\n\(result.summary)")
      let lockedBytes = statisticsValues("locked bytes", in: result)
      #expect(lockedBytes.count == 1 && lockedBytes[0] > 0, "locked bytes \(lockedBytes)\n\(result.summary)")

      let control = try await runPreloaded(program, ["locked"], timeout: shortChildTimeout)
      #expect(reportedValues(in: control)["large-block.locked"] == 0,
              "memory is locked without SWALLOC_LOCKED\n\(control.summary)")
    }
  }
}

/// A file under /proc or /sys, read to its end (their sizes read as 0 or 4096), or nil.
func readSystemFile(_ path: String) -> String? {
  guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
  defer { try? handle.close() }
  do {
    return String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
  } catch {
    return nil
  }
}

/// The kernel's pool of explicit 2 MiB pages: /proc/sys/vm/nr_hugepages (a global setting: the tests that change
/// it run serialized and restore it), and HugePages_Free in /proc/meminfo.
enum HugePagePool {
  static let sizePath = "/proc/sys/vm/nr_hugepages"

  static func size() throws -> Int {
    guard let text = readSystemFile(sizePath), let pages = Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    else { throw HarnessError("cannot read \(sizePath)") }
    return pages
  }

  /// Writes `pageCount` to nr_hugepages; returns why that failed, or nil.
  static func setSize(_ pageCount: Int) -> String? {
    let descriptor = open(sizePath, O_WRONLY | O_CLOEXEC)
    if descriptor < 0 { return "cannot open \(sizePath) for writing: \(String(cString: strerror(errno)))" }
    defer { close(descriptor) }
    let text = Array("\(pageCount)\n".utf8)
    let written = text.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    if written != text.count { return "cannot write \(pageCount) to \(sizePath): \(String(cString: strerror(errno)))" }
    return nil
  }

  /// Puts nr_hugepages back; a failure is recorded, since it leaves the machine changed.
  static func restore(_ pageCount: Int) {
    if let failure = setSize(pageCount) { Issue.record("could not restore nr_hugepages to \(pageCount): \(failure)") }
  }

  /// HugePages_Free from /proc/meminfo.
  static func freePageCount() -> Int? {
    guard let text = readSystemFile("/proc/meminfo"),
      let match = text.firstMatch(of: #/HugePages_Free:\s+([0-9]+)/#)
    else { return nil }
    return Int(match.1)
  }

  /// Grows the pool to `pageCount` pages and returns the free pages then; skips the test when the write fails
  /// or the kernel finds no free 2 MiB page.
  static func grow(to pageCount: Int, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    if let failure = setSize(pageCount) { try skipTest(failure, sourceLocation: sourceLocation) }
    let free = freePageCount() ?? 0
    if free == 0 {
      try skipTest("HugePages_Free stays 0 after writing \(pageCount) to \(sizePath)", sourceLocation: sourceLocation)
    }
    return free
  }
}
