// swalloc-bench --allocator-env NAME:VAR=VALUE: one allocator of the run gets variables of its own, so that an
// option (the heap profiler here) is compared on and off side by side, in `run` and in `compare`. The proof
// is the profile files: the allocator with SWALLOC_PROFILE=1 writes them under its prefix, the other none.
import Foundation
import Testing

@Suite("swalloc-bench gives one allocator its own environment")
struct BenchEnvironmentTests {
  /// `swalloc-bench ARGUMENTS` without the test's SWALLOC_* variables.
  func runBench(_ arguments: [String]) async throws -> ChildResult {
    let bench = try Preload.buildProduct("swalloc-bench")
    let inherited = ProcessInfo.processInfo.environment.keys.filter { $0.hasPrefix("SWALLOC_") }.sorted()
    return try await runChild("/usr/bin/env", inherited.flatMap { ["-u", $0] } + [bench] + arguments, preload: nil,
                              timeout: defaultChildTimeout)
  }

  /// swalloc with the profiler's prefix only (profiling off), swprof (the same library) with profiling on,
  /// sampling every allocation (a process that takes no sample writes no profile).
  func profilerArguments(_ directory: URL) throws -> [String] {
    ["--allocator", "swalloc,swprof=\(try Preload.library())",
     "--allocator-env", "swprof:SWALLOC_PROFILE=1",
     "--allocator-env", "swprof:SWALLOC_PROFILE_PREFIX=\(directory.path)/on",
     "--allocator-env", "swprof:SWALLOC_PROFILE_SAMPLE=1",
     "--allocator-env", "swalloc:SWALLOC_PROFILE_PREFIX=\(directory.path)/off"]
  }

  func profiles(in directory: URL, prefix: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
      .filter { $0.hasPrefix(prefix + ".") && $0.hasSuffix(".pb.gz") }
  }

  @Test("run: the variables reach that allocator's runs only, and the table and JSON name them")
  func run() async throws {
    let directory = try makeTemporaryDirectory("bench-env-run")
    defer { try? FileManager.default.removeItem(at: directory) }
    let json = directory.appendingPathComponent("report.json").path
    let result = try await runBench(["run", "--quick", "--only", "startup", "--no-callgrind", "--no-install",
                                     "--json", json] + profilerArguments(directory))
    #expect(result.succeeded, "\(result.summary)")
    #expect(result.standardOutput.contains(
      "swprof runs with SWALLOC_PROFILE=1 SWALLOC_PROFILE_PREFIX=\(directory.path)/on SWALLOC_PROFILE_SAMPLE=1\n"),
      "\(result.summary)")
    #expect(result.standardOutput.contains("swalloc runs with SWALLOC_PROFILE_PREFIX=\(directory.path)/off\n"),
            "\(result.summary)")
    // startup --quick: 40 runs of /bin/true from one program. /bin/true allocates nothing (it takes no sample
    // and writes no profile); the program itself does, in each of the run's repeats.
    #expect(profiles(in: directory, prefix: "on").count >= 1, "\(profiles(in: directory, prefix: "on").count) profiles")
    #expect(profiles(in: directory, prefix: "off").isEmpty)
    let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
    let allocators = report?["allocators"] as? [[String: Any]] ?? []
    let variables = allocators.first { $0["name"] as? String == "swprof" }?["variables"] as? [String: String]
    #expect(variables == ["SWALLOC_PROFILE": "1", "SWALLOC_PROFILE_PREFIX": directory.path + "/on",
                          "SWALLOC_PROFILE_SAMPLE": "1"],
            "\(allocators)")
  }

  @Test("compare: the same option, for any program")
  func compare() async throws {
    let directory = try makeTemporaryDirectory("bench-env-compare")
    defer { try? FileManager.default.removeItem(at: directory) }
    let result = try await runBench(["compare", "--repeats", "2", "--no-install"] + profilerArguments(directory)
                                    + ["--", "/bin/ls", "/"])
    #expect(result.succeeded, "\(result.summary)")
    #expect(profiles(in: directory, prefix: "on").count == 2, "\(profiles(in: directory, prefix: "on"))")
    #expect(profiles(in: directory, prefix: "off").isEmpty)
  }

  @Test("bad entries stop the run before anything runs, with a message that says what is wrong",
        arguments: [
          ("swprof", "--allocator-env swprof: expected NAME:VAR=VALUE"),
          ("swprof:SWALLOC_PROFILE", "--allocator-env swprof:SWALLOC_PROFILE: expected NAME:VAR=VALUE"),
          (":X=1", "NAME is an allocator name"),
          ("swprof:2X=1", "VAR is a variable name"),
          ("swprof:LD_PRELOAD=/x.so", "LD_PRELOAD is the allocator's library"),
          ("jemalloc:MALLOC_CONF=prof:true", "no allocator named jemalloc in this run (allocators: swalloc, swprof)"),
        ])
  func badEntries(entry: String, message: String) async throws {
    let result = try await runBench(["run", "--only", "startup", "--no-callgrind", "--no-install",
                                     "--allocator", "swalloc,swprof=/nonexistent/libswalloc.so",
                                     "--allocator-env", entry])
    #expect(!result.succeeded, "\(result.summary)")
    #expect(result.standardError.contains(message), "\(result.summary)")
    #expect(!result.standardError.contains("interleaved"), "it ran\n\(result.summary)")
  }

  /// `swalloc-bench ratios`: the README's cost tables (an option on over two identical configurations with it
  /// off, beside their A/A control) from --json reports. The report of a real quick run, its samples replaced
  /// by known values, so that every ratio is exact.
  @Test("ratios: medians' ratios per workload and their geometric means, a side may be the mean of two")
  func ratios() async throws {
    let directory = try makeTemporaryDirectory("bench-ratios")
    defer { try? FileManager.default.removeItem(at: directory) }
    let json = directory.appendingPathComponent("report.json")
    let library = try Preload.library()
    let run = try await runBench(["run", "--quick", "--only", "startup", "--no-callgrind", "--no-install",
                                  "--allocator", "swalloc,swalloc2=\(library),swprof=\(library)", "--json", json.path])
    #expect(run.succeeded, "\(run.summary)")
    // Medians: swalloc wall 2 s, CPU 1 s, RSS 1000 KiB; swalloc2 8 s, 4 s, 4000 KiB; swprof 6 s, 3 s, 3000 KiB.
    let known: [String: [(Double, Int)]] = [
      "swalloc": [(1, 500), (2, 1000), (9, 9000)], "swalloc2": [(8, 4000)], "swprof": [(6, 3000), (6, 3000)],
    ]
    var report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
    var workloads = try #require(report["workloads"] as? [[String: Any]])
    #expect(workloads.count == 1)
    var cells = try #require(workloads[0]["cells"] as? [[String: Any]])
    for index in cells.indices {
      let name = try #require(cells[index]["allocator"] as? String)
      let template = try #require((cells[index]["samples"] as? [[String: Any]])?.first, "\(name) has no sample")
      cells[index]["samples"] = try #require(known[name]).map { wall, rss -> [String: Any] in
        var sample = template
        sample["wallSeconds"] = wall
        sample["userSeconds"] = wall / 2
        sample["systemSeconds"] = 0.0
        sample["maxRSSKiB"] = rss
        return sample
      }
    }
    workloads[0]["cells"] = cells
    report["workloads"] = workloads
    try JSONSerialization.data(withJSONObject: report).write(to: json)
    let result = try await runBench(["ratios", json.path, "--ratio", "swalloc2/swalloc",
                                     "--ratio", "swprof/swalloc+swalloc2"])
    #expect(result.succeeded, "\(result.summary)")
    // swalloc2/swalloc: 4 each; swprof over the geometric mean of 2 and 8 (4): 1.5 each.
    #expect(result.outputLines.contains("| startup | 4.00, 4.00, 4.000 | 1.50, 1.50, 1.500 |"), "\(result.summary)")
    #expect(result.outputLines.contains(
      "| geometric mean (workloads) | **4.000**, **4.000**, **4.000** (1) | **1.500**, **1.500**, **1.500** (1) |"),
      "\(result.summary)")
    // The bootstrap redraws swalloc's three samples: their median is 1, 2 or 9 s (RSS 500, 1000 or 9000 KiB),
    // the outer two each with probability 7/27, so the 5th and 95th percentiles of 1000 redraws are the
    // ratios at 9 and at 1: 8/9 and 8 (RSS 4000/9000 and 8); swprof over sqrt(9 x 8) and sqrt(1 x 8).
    #expect(result.outputLines.contains(
      "| 90 % bootstrap interval | [0.889, 8.000], [0.889, 8.000], [0.444, 8.000] | "
        + "[0.707, 2.121], [0.707, 2.121], [0.500, 2.121] |"), "\(result.summary)")
    let plain = try await runBench(["ratios", json.path, "--ratio", "swalloc2/swalloc", "--bootstrap", "0"])
    #expect(plain.succeeded && !plain.standardOutput.contains("bootstrap"), "\(plain.summary)")
    let bad = try await runBench(["ratios", json.path, "--ratio", "swprof"])
    #expect(!bad.succeeded && bad.standardError.contains("expected NUM/DEN"), "\(bad.summary)")
  }
}
