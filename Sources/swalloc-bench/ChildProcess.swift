// Runs one child process and measures it: posix_spawn in its own process group, wall time on the monotonic
// clock, user/system time and peak RSS from wait4's rusage, a watchdog that kills the group on timeout.
import Foundation
import Glibc

/// What one child run produced.
struct ChildResult: Sendable {
  enum Termination: Equatable, Sendable {
    case exited(Int32)
    case signaled(Int32)
    case timedOut(seconds: Double)
  }

  var termination: Termination
  var wallSeconds: Double
  var userSeconds: Double
  var systemSeconds: Double
  /// ru_maxrss from wait4: the largest resident set of the child or any descendant it waited for.
  var maxRSSKiB: Int
  /// ru_minflt from wait4: minor page faults (each about 1.6 us on the project's VMs).
  var minorFaults: Int
  var standardOutput: String
  var standardError: String

  var succeeded: Bool { termination == .exited(0) }

  /// "exit 3", "signal 11", "timeout 300s".
  var terminationDescription: String {
    switch termination {
    case .exited(let code): return "exit \(code)"
    case .signaled(let signal): return "signal \(signal)"
    case .timedOut(let seconds): return "timeout \(Int(seconds))s"
    }
  }
}

/// The process group of the child being measured, so that an interrupt of the driver takes it along.
/// Written only by the driver's main thread; read by the signal handler.
nonisolated(unsafe) private var activeChildGroup: pid_t = 0

enum ChildProcess {
  /// Kills the running child's process group and exits when the driver gets SIGINT or SIGTERM: children run
  /// in their own group, so the terminal's interrupt does not reach them.
  static func installInterruptHandler() {
    let handler: @convention(c) (Int32) -> Void = { signal in
      if activeChildGroup > 0 { kill(-activeChildGroup, SIGKILL) }
      _exit(128 + signal)
    }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
  }

  /// Runs `arguments` (argv[0] an absolute path or a name on PATH) with the driver's environment less any
  /// LD_PRELOAD, plus `environment`. Standard input is /dev/null; standard output and error go to files in
  /// `scratchDirectory` and are returned. Throws only when the process cannot be started.
  static func run(_ arguments: [String], environment: [String: String] = [:], timeoutSeconds: Double,
                  scratchDirectory: String, standardInput: String = "/dev/null") throws -> ChildResult {
    precondition(!arguments.isEmpty)
    let outputPath = scratchDirectory + "/child.stdout"
    let errorPath = scratchDirectory + "/child.stderr"

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, standardInput, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

    // Its own process group (pgid = pid), so that a timeout kills gcc's cc1 and as along with gcc.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    posix_spawnattr_setpgroup(&attributes, 0)

    var childEnvironment = ProcessInfo.processInfo.environment
    childEnvironment["LD_PRELOAD"] = nil
    childEnvironment.merge(environment) { _, new in new }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = childEnvironment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }

    var pid: pid_t = 0
    let start = monotonicSeconds()
    let error = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard error == 0 else {
      throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(error)))")
    }
    activeChildGroup = pid
    let watchdog = Watchdog(processGroup: pid, seconds: timeoutSeconds)

    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 {
      guard errno == EINTR else { throw BenchError("wait4 failed: \(String(cString: strerror(errno)))") }
    }
    let wallSeconds = monotonicSeconds() - start
    let killed = watchdog.finish()
    activeChildGroup = 0

    // The wait status macros (WIFEXITED...) are not imported into Swift: low 7 bits = signal, bits 8-15 = exit code.
    let signal = status & 0x7f
    var termination: ChildResult.Termination = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    if killed && termination == .signaled(SIGKILL) { termination = .timedOut(seconds: timeoutSeconds) }
    return ChildResult(
      termination: termination, wallSeconds: wallSeconds,
      userSeconds: seconds(usage.ru_utime), systemSeconds: seconds(usage.ru_stime),
      maxRSSKiB: usage.ru_maxrss, minorFaults: usage.ru_minflt,
      standardOutput: (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "",
      standardError: (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? "")
  }

  /// Runs `arguments` through the `measure` launcher (Benchmarks/Workloads/measure.c), which forks the
  /// command from a small process so that ru_maxrss is the command's own and not the driver's, and preloads
  /// `preload` in the command only. Wall time and rusage come from the launcher.
  static func runMeasured(_ arguments: [String], launcher: String, preload: String?,
                          environment: [String: String] = [:], timeoutSeconds: Double,
                          scratchDirectory: String) throws -> ChildResult {
    let resultPath = scratchDirectory + "/measure.result"
    try? FileManager.default.removeItem(atPath: resultPath)
    var result = try run([launcher, resultPath, preload ?? "-"] + arguments, environment: environment,
                         timeoutSeconds: timeoutSeconds, scratchDirectory: scratchDirectory)
    if case .timedOut = result.termination { return result }
    guard let line = try? String(contentsOfFile: resultPath, encoding: .utf8) else {
      // The launcher itself failed; its status and standard error say why.
      return result
    }
    let fields = line.split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
    guard fields.count == 7, let code = Int32(fields[1]), let wallNs = Double(fields[2]),
          let userUs = Double(fields[3]), let systemUs = Double(fields[4]), let rss = Int(fields[5]),
          let faults = Int(fields[6])
    else { throw BenchError("measure wrote an unreadable result: \(line)") }
    result.termination = fields[0] == "signaled" ? .signaled(code) : .exited(code)
    result.wallSeconds = wallNs * 1e-9
    result.userSeconds = userUs * 1e-6
    result.systemSeconds = systemUs * 1e-6
    result.maxRSSKiB = rss
    result.minorFaults = faults
    return result
  }

  static func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
  }

  private static func seconds(_ value: timeval) -> Double {
    Double(value.tv_sec) + Double(value.tv_usec) * 1e-6
  }
}

/// Kills a process group with SIGKILL if `finish()` is not called within the time limit.
/// A thread waiting on a condition with a deadline, so the parent can block in wait4 and measure exactly.
private final class Watchdog: @unchecked Sendable {
  private let condition = NSCondition()
  private var finished = false  // guarded by condition
  private var fired = false  // guarded by condition

  init(processGroup: pid_t, seconds: Double) {
    let deadline = Date(timeIntervalSinceNow: seconds)
    let thread = Thread { [self] in
      condition.lock()
      while !finished {
        if !condition.wait(until: deadline) {
          if !finished {
            kill(-processGroup, SIGKILL)
            fired = true
          }
          break
        }
      }
      condition.unlock()
    }
    thread.start()
  }

  /// Stops the watchdog; returns whether it had already killed the group.
  func finish() -> Bool {
    condition.lock()
    defer { condition.unlock() }
    finished = true
    condition.signal()
    return fired
  }
}
