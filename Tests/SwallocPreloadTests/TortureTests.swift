// Torture runs under the preload, each bounded in time: a fork storm while threads allocate, a storm of
// short-lived threads, dlopen/dlclose loops, fork from a signal handler that interrupts allocation, and an
// 8-thread stress. The fixture (Fixtures/torture.c) checks every block's contents and each child's exit status.
import Foundation
import Testing

/// Each torture child's kill timeout: well above its run time (seconds), so only a hang reaches it.
private let tortureChildTimeout = 240

/// The torture fixture's subcommand under the preload, with the parent's own statistics block as the proof.
private func runTorture(
  _ arguments: [String], mode: Mode, sourceLocation: SourceLocation = #_sourceLocation
) async throws -> ChildResult {
  let program = try await FixtureBuilds.shared.build("torture.c", as: .c)
  let result = try await runPreloaded(
    program, arguments, mode: mode, timeout: tortureChildTimeout, sourceLocation: sourceLocation)
  expectLine("swalloc active", in: result, sourceLocation: sourceLocation)
  // Children end with _exit and print no statistics: the block must be the parent's, printed at its normal exit.
  // (A failed run has already been reported, with its output, by runPreloaded.)
  guard result.succeeded else { return result }
  let pidLine = result.outputLines.first { $0.hasPrefix("torture pid ") }
  let parentPid = try #require(
    pidLine.flatMap { Int($0.dropFirst("torture pid ".count)) }, "\(result.summary)", sourceLocation: sourceLocation)
  assertSwallocActive(result, pid: parentPid, sourceLocation: sourceLocation)
  return result
}

// Serialized: every test saturates the CPUs, and run side by side they would only slow each other down.
@Suite("Torture under the preload", .serialized)
struct TortureTests {
  @Test("""
    1000 forks, 4 at a time, while 4 threads malloc/realloc/free 16 B to 256 KiB and trade blocks; each child \
    frees inherited blocks, allocates 300 blocks (some > 1 MiB) and a thread's, checks them and exits 0
    """, arguments: Mode.allCases)
  func forkStorm(mode: Mode) async throws {
    let result = try await runTorture(["fork-storm"], mode: mode)
    expectLine("fork-storm ok: 1000 children exited 0", in: result)
  }

  @Test("""
    2000 short-lived threads in waves of 16 (a quarter detached) leave blocks that later threads check and free; \
    the heaps are pooled: at most 64
    """, arguments: Mode.withFull)
  func threadStorm(mode: Mode) async throws {
    let result = try await runTorture(["thread-storm"], mode: mode)
    expectLine("thread-storm ok: 2000 threads, 128000 blocks verified, 15488 handed over between threads",
               in: result)
    let heaps = statisticsValues("heaps", in: result)
    #expect(heaps.count == 1, "expected one statistics block with a heaps row\n\(result.summary)")
    for heapCount in heaps {
      #expect(heapCount >= 1 && heapCount <= 64,
              "heaps \(heapCount): exited threads' heaps are not reused\n\(result.summary)")
    }
  }

  @Test("""
    200 dlopen/dlclose rounds of a plugin that allocates in its constructor, functions and destructor; \
    800 of its blocks are freed after the copy that allocated them was unloaded
    """, arguments: Mode.allCases)
  func dlopenLoop(mode: Mode) async throws {
    let plugin = try await FixtureBuilds.shared.build("torture_plugin.c", as: .sharedLibrary)
    let result = try await runTorture(["dlopen", plugin], mode: mode)
    expectLine("dlopen ok: 200 rounds, 800 blocks outlived the plugin copy that allocated them", in: result)
  }

  /// `timer`: the only thread allocates and reaps while setitimer's SIGALRM interrupts it (glibc's
  /// tst-mallocfork2 shape, plus malloc in the child). `thread`: a second thread interrupts an allocating
  /// thread with pthread_kill(SIGUSR1) while the main thread reaps.
  @Test("""
    200 forks from a signal handler that interrupts malloc/realloc/free; each child allocates, checks and \
    frees inside the handler and exits 0 (a hang ends by alarm and fails)
    """, arguments: Mode.allCases, ["timer", "thread"])
  func forkInSignalHandler(mode: Mode, interrupter: String) async throws {
    let result = try await runTorture(["signal-fork", interrupter], mode: mode)
    expectLine("signal-fork \(interrupter) ok: 200 children forked in the handler exited 0", in: result)
  }

  @Test("swalloc-stress --threads 8 --seconds 20", arguments: Mode.allCases)
  func stressEightThreads(mode: Mode) async throws {
    let stress = try Preload.buildProduct("swalloc-stress")
    let result = try await runPreloaded(
      stress, ["--threads", "8", "--seconds", "20"], mode: mode, timeout: tortureChildTimeout)
    let line = result.outputLines.first { $0.hasPrefix("swalloc-stress: ") } ?? ""
    #expect(line.wholeMatch(of: #/swalloc-stress: [0-9]+ ops, 8 threads, [0-9.]+ s, ok/#) != nil,
            "\(result.summary)")
  }
}
