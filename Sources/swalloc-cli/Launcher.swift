// Runs a program under LD_PRELOAD as a child (posix_spawn), with the terminal's stdin, stdout and stderr,
// reads the library's handshake while it runs, and passes its ending on unchanged: the same exit status, or
// death by the same signal (raised on this process, as env(1) and timeout(1) do).
import Foundation
import Glibc

/// The child, for the signal handler that forwards signals to it.
nonisolated(unsafe) private var forwardingTarget: pid_t = 0

/// Forwards a signal another process sent (kill(1), a supervisor) to the child. Signals from the terminal
/// (Ctrl-C, Ctrl-\) reach the child directly, as it is in the same process group: those are not sent twice.
private func forwardSignal(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
  let fromKernel = (info?.pointee.si_code ?? 0) > 0
  if forwardingTarget > 0 && !fromKernel { kill(forwardingTarget, signal) }
}

/// Does nothing: SIGCHLD only has to interrupt poll(2) when the child ends.
private func ignoreSignal(_ signal: Int32) {}

struct Launcher {
  var program: String
  /// argv, argv[0] included (the name as the user typed it).
  var arguments: [String]
  var environment: [String: String]
  var library: String
  var verbose: Bool
  /// Why the preload will not take, known before the start (a static or setuid program), or nil.
  var expectedProblem: String?

  static let forwardedSignals = [SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM]

  /// Runs the program and ends this process the way the program ended.
  func runAndPassOn() throws -> Never {
    let channel = try HandshakeChannel()
    var childEnvironment = environment
    childEnvironment[HandshakeChannel.variable] = channel.path
    installSignalHandlers()

    // Signals to forward are blocked until the child's pid is known (the child starts with an empty mask):
    // one sent while posix_spawn runs is forwarded once they are unblocked, instead of being lost.
    var forwarded = sigset_t()
    sigemptyset(&forwarded)
    for signal in Self.forwardedSignals { sigaddset(&forwarded, signal) }
    sigprocmask(SIG_BLOCK, &forwarded, nil)
    let pid: pid_t
    do {
      pid = try spawn(environment: childEnvironment)
    } catch {
      sigprocmask(SIG_UNBLOCK, &forwarded, nil)
      throw error
    }
    forwardingTarget = pid
    sigprocmask(SIG_UNBLOCK, &forwarded, nil)
    var status: Int32 = 0
    // Until the library answers (within milliseconds of the start, before main), poll for its line; then
    // just wait. A program the library never loads into is polled to its end, 4 times a second.
    var answered = false
    func announce(_ answer: HandshakeAnswer) {
      answered = true
      if verbose {
        note("\(library) \(answer.version) loaded into \(arguments[0]) (pid \(pid), \(answer.mode) mode)")
      }
    }
    while true {
      let result = waitpid(pid, &status, WNOHANG)
      if result == pid { break }
      if result < 0 && errno != EINTR { throw CommandFailure("waitpid: \(String(cString: strerror(errno)))") }
      if answered {
        if waitpid(pid, &status, 0) == pid { break }
        continue
      }
      channel.wait(milliseconds: 250)
      channel.drain()
      if let answer = channel.answer(from: pid) { announce(answer) }
    }
    forwardingTarget = 0
    channel.drain()
    if !answered, let answer = channel.answer(from: pid) { announce(answer) }
    if !answered {
      let reason = expectedProblem ?? "the loader did not load it (no handshake from pid \(pid))"
      note("the preload did not take: \(arguments[0]) ran without Swalloc: \(reason)")
    } else if verbose {
      let others = Set(channel.answers.map(\.pid)).subtracting([pid]).count
      if others > 0 { note("\(others) more process\(others == 1 ? "" : "es") it started loaded Swalloc too") }
    }
    channel.close()
    passOn(status)
  }

  /// Handlers for the signals to forward, except those this process ignores (nohup): the child inherits
  /// those ignored, as it would from env(1).
  private func installSignalHandlers() {
    for signal in Self.forwardedSignals {
      var current = sigaction()
      sigaction(signal, nil, &current)
      if let handler = current.__sigaction_handler.sa_handler, unsafeBitCast(handler, to: Int.self) == 1 {
        continue  // SIG_IGN
      }
      var action = sigaction()
      action.__sigaction_handler.sa_sigaction = forwardSignal
      action.sa_flags = SA_SIGINFO | SA_RESTART
      sigemptyset(&action.sa_mask)
      sigaction(signal, &action, nil)
    }
    var childAction = sigaction()
    childAction.__sigaction_handler.sa_handler = ignoreSignal
    childAction.sa_flags = SA_NOCLDSTOP  // no SA_RESTART: poll returns at once
    sigemptyset(&childAction.sa_mask)
    sigaction(SIGCHLD, &childAction, nil)
  }

  /// posix_spawn with this process's file descriptors and signal dispositions (caught ones revert to the
  /// default across exec). 127 when the program does not exist, 126 when it cannot be executed (sh(1)).
  private func spawn(environment: [String: String]) throws -> pid_t {
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      argv.forEach { free($0) }
      envp.forEach { free($0) }
    }
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    posix_spawnattr_setsigmask(&attributes, &emptyMask)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    let error = posix_spawn(&pid, program, nil, &attributes, argv, envp)
    guard error == 0 else {
      throw CommandFailure("cannot run \(program): \(String(cString: strerror(error)))",
                           status: error == ENOENT ? 127 : 126)
    }
    return pid
  }

  /// Exits with the child's status, or dies of its signal (without a core dump of this process).
  private func passOn(_ status: Int32) -> Never {
    let signalNumber = status & 0x7f
    if signalNumber == 0 { exit((status >> 8) & 0xff) }
    signal(signalNumber, SIG_DFL)
    var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
    getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
    noCore.rlim_cur = 0
    setrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &noCore)
    var unblock = sigset_t()
    sigemptyset(&unblock)
    sigaddset(&unblock, signalNumber)
    sigprocmask(SIG_UNBLOCK, &unblock, nil)
    kill(getpid(), signalNumber)
    exit(128 + signalNumber)
  }
}
