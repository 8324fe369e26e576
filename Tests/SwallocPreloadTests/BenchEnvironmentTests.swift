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

  /// swalloc with the profiler's prefix only (profiling off), swprof (the same library) with profiling on.
  func profilerArguments(_ directory: URL) throws -> [String] {
    ["--allocator", "swalloc,swprof=\(try Preload.library())",
     "--allocator-env", "swprof:SWALLOC_PROFILE=1",
     "--allocator-env", "swprof:SWALLOC_PROFILE_PREFIX=\(directory.path)/on",
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
      "swprof runs with SWALLOC_PROFILE=1 SWALLOC_PROFILE_PREFIX=\(directory.path)/on\n"), "\(result.summary)")
    #expect(result.standardOutput.contains("swalloc runs with SWALLOC_PROFILE_PREFIX=\(directory.path)/off\n"),
            "\(result.summary)")
    // startup --quick: 40 runs of /bin/true from one program, each a process of its own that writes a profile.
    #expect(profiles(in: directory, prefix: "on").count >= 41, "\(profiles(in: directory, prefix: "on").count) profiles")
    #expect(profiles(in: directory, prefix: "off").isEmpty)
    let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
    let allocators = report?["allocators"] as? [[String: Any]] ?? []
    let variables = allocators.first { $0["name"] as? String == "swprof" }?["variables"] as? [String: String]
    #expect(variables == ["SWALLOC_PROFILE": "1", "SWALLOC_PROFILE_PREFIX": directory.path + "/on"],
            "\(allocators)")
  }

  @Test("compare: the same option, for any program")
  func compare() async throws {
    let directory = try makeTemporaryDirectory("bench-env-compare")
    defer { try? FileManager.default.removeItem(at: directory) }
    let result = try await runBench(["compare", "--repeats", "2", "--no-install"] + profilerArguments(directory)
                                    + ["--", "/bin/true"])
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
}
