// Threaded C and C++ fixtures under the preload: cross-thread frees, every operator new/delete flavour, and
// fork from a multithreaded process. The fixtures check contents themselves and exit 1 on the first mismatch.
import Foundation
import Testing

@Suite("Threads and fork under the preload")
struct ThreadTests {
  @Test("C: a ring of 12 threads hands blocks over; blocks outlive the threads that allocated them")
  func crossThreadFrees() async throws {
    let program = try await FixtureBuilds.shared.build("threads.c", as: .c)
    let result = try await runPreloaded(program)
    expectLine("swalloc active", in: result)
    expectLine("threads ok: 12 ring threads handed over 120000 blocks, 16000 blocks outlived their threads",
               in: result)
  }

  @Test("C++: new/delete in every flavour across 8 threads; bad_alloc and nothrow failures")
  func cxxOperators() async throws {
    let program = try await FixtureBuilds.shared.build("cxx_threads.cpp", as: .cxx)
    let result = try await runPreloaded(program)
    expectLine("swalloc active", in: result)
    expectLine("cxx ok: 8 threads, 20000 objects each, failure paths checked", in: result)
  }

  @Test("fork 50 times while 4 threads allocate; every child allocates in a new thread and exits 0")
  func forkWhileThreadsAllocate() async throws {
    let program = try await FixtureBuilds.shared.build("fork_threads.c", as: .c)
    let result = try await runPreloaded(program)
    expectLine("swalloc active", in: result)
    expectLine("fork ok: 50 children exited 0", in: result)
    // The parent's own statistics block, not only the children's.
    let pidLine = result.outputLines.first { $0.hasPrefix("parent pid ") }
    let parentPid = try #require(pidLine.flatMap { Int($0.dropFirst("parent pid ".count)) }, "\(result.summary)")
    assertSwallocActive(result, pid: parentPid)
  }

  /// (name, mode, environment, whether sibling children must get different addresses).
  static let forkRandomCases: [(String, Mode, [String: String], Bool)] = [
    ("default mode, nothing random: every child the same", .standard, [:], false),
    ("default mode, guarded sampling at 1 in 64", .standard, ["SWALLOC_GUARDED_SAMPLE": "64"], true),
    ("secure mode's block order alone", .secure, ["SWALLOC_GUARDED_SAMPLE": "0"], true),
    ("secure mode, guarded sampling at 1 in 64", .secure, ["SWALLOC_GUARDED_SAMPLE": "64"], true),
  ]

  @Test("a forked child draws its own random numbers: siblings' block orders and guarded samples differ",
        arguments: 0..<forkRandomCases.count)
  func forkedChildrenReseed(caseIndex: Int) async throws {
    let (name, mode, environment, random) = Self.forkRandomCases[caseIndex]
    let program = try await FixtureBuilds.shared.build("fork_random.c", as: .c)
    let result = try await runPreloaded(program, ["4"], environment: environment, mode: mode)
    // Four children make the same 4096 allocations: with generators inherited and not reseeded their
    // addresses are the same (as without randomness, the control); reseeded, four different orders.
    expectLine("distinct hashes: \(random ? 4 : 1)", in: result)
    #expect(result.succeeded, "\(name)")
  }

  @Test("a forked child's heap profiler samples its own allocations", arguments: Mode.allCases)
  func forkedChildrenProfileIndependently(mode: Mode) async throws {
    let program = try await FixtureBuilds.shared.build("fork_random.c", as: .c)
    let directory = try makeTemporaryDirectory("fork-profile")
    defer { try? FileManager.default.removeItem(at: directory) }
    // Four children leak the same 4096 blocks of 64 sizes; each one's leaks table estimates them from the
    // blocks its profiler sampled (about 170 at a sample per 16 KiB). Children sampling the same blocks
    // (a generator and countdowns inherited, not reseeded) print the same estimate.
    let result = try await runPreloaded(
      program, ["4", "leak"],
      environment: ["SWALLOC_PROFILE": "leaks", "SWALLOC_PROFILE_SAMPLE": "16K",
                    "SWALLOC_PROFILE_PREFIX": directory.path + "/p"],
      mode: mode)
    let parent = result.outputLines.first { $0.hasPrefix("parent pid ") }.map { String($0.dropFirst(11)) }
    let estimates = result.errorLines.compactMap { line -> String? in
      guard let match = line.firstMatch(of: #/heap profile leaks \(pid (\d+)\): (.*) \(estimated from (\d+) samples/#),
            String(match.1) != parent
      else { return nil }
      return "\(match.2), \(match.3) samples"
    }
    #expect(estimates.count == 4, "\(result.summary)")
    #expect(Set(estimates).count == 4, "the children's estimates: \(estimates)")
  }
}
