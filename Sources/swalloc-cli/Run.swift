// `swalloc run [options] -- program args...`: the options become SWALLOC_* variables, the library goes
// in LD_PRELOAD, and the Launcher runs the program and checks that the preload took.
import ArgumentParser
import Foundation

enum StatisticsFormat: String, ExpressibleByArgument, CaseIterable {
  case table, json
}

enum HugePagesMode: String, ExpressibleByArgument, CaseIterable {
  case off, large, transparent, explicit
}

/// `--secure-level`: SWALLOC_SECURE's levels (2 is accepted for full).
enum SecureLevel: String, ExpressibleByArgument, CaseIterable {
  case one = "1"
  case full

  init?(argument: String) {
    if argument == "2" { self = .full } else { self.init(rawValue: argument) }
  }
}

/// `--profile`: SWALLOC_PROFILE's values.
enum ProfileMode: String, ExpressibleByArgument, CaseIterable {
  case on, leaks
}

extension SwallocCommand {
  struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run a program with Swalloc as its malloc.",
      usage: "swalloc run [<options>] -- <program> [<arguments>...]",
      discussion: """
        The program runs as a child with libswalloc.so in LD_PRELOAD (found beside this command, in its \
        install prefix's lib, or in the package's .build/release) and the options below as SWALLOC_* \
        variables; SWALLOC_* variables already set are passed on unless an option overrides them. \
        stdin, stdout and stderr are the program's; its exit status, or the signal that killed it, is \
        passed on unchanged. The library answers a handshake when it loads: when it does not (a static \
        or setuid program, an unloadable file), the command says so on stderr. Its own failures exit \
        with 125, a program that cannot be run with 126 or 127.
        """,
)

    @Flag(help: "Secure mode (SWALLOC_SECURE=1): encoded free lists, double frees abort, guard pages, canaries after blocks above 1 KiB.")
    var secure = false

    @Option(name: .customLong("secure-level"), help: ArgumentHelp(
      "Secure mode at a level (SWALLOC_SECURE): 1 (as --secure), or full (also 2: 1 plus canaries and trailers "
        + "after every block, the fill of freed blocks and freed large blocks made inaccessible).",
      valueName: "1|full"))
    var secureLevel: SecureLevel?

    @Option(help: ArgumentHelp(
      "Print statistics on stderr at exit: --stats (a table) or --stats=json (SWALLOC_SHOW_STATS).",
      valueName: "table|json"))
    var stats: StatisticsFormat?

    @Option(name: .customLong("huge-pages"), help: ArgumentHelp(
      "Back memory with huge pages (SWALLOC_HUGE_PAGES): off, large (madvise on huge blocks of 2 MiB and "
        + "more), transparent (madvise on everything), explicit (vm.nr_hugepages; see `swalloc doctor`).",
      valueName: "mode"))
    var hugePages: HugePagesMode?

    @Option(name: .customLong("huge-reserve"), help: ArgumentHelp(
      "Map this much in explicit huge pages at start (SWALLOC_HUGE_RESERVE; 64M, 1G; up to 4G). Implies "
        + "--huge-pages explicit.", valueName: "size"))
    var hugeReserve: String?

    @Flag(help: "Lock memory in RAM, within RLIMIT_MEMLOCK (SWALLOC_LOCKED=1).")
    var locked = false

    @Option(name: .customLong("purge-delay"), help: ArgumentHelp(
      "Milliseconds a free page keeps its memory before it is purged (SWALLOC_PURGE_DELAY_MS; 0-3600000, "
        + "default 10; alone, the delay is fixed).", valueName: "ms"))
    var purgeDelay: Int?

    @Option(name: .customLong("purge-delay-max"), help: ArgumentHelp(
      "The longest the purge delay grows to while purged memory is soon wanted back "
        + "(SWALLOC_PURGE_DELAY_MAX_MS; default 1000).", valueName: "ms"))
    var purgeDelayMax: Int?

    @Option(help: ArgumentHelp(
      "Heap profiling (SWALLOC_PROFILE): on (a pprof profile at exit, swalloc.PID.pb.gz, from each process "
        + "that took a sample) or leaks (also the "
        + "sites holding the most live bytes, on stderr).", valueName: "on|leaks"))
    var profile: ProfileMode?

    @Option(name: .customLong("profile-sample"), help: ArgumentHelp(
      "Mean bytes allocated between profile samples (SWALLOC_PROFILE_SAMPLE; default 512K).",
      valueName: "size"))
    var profileSample: String?

    @Option(name: .customLong("guarded-sample"), help: ArgumentHelp(
      "Guard one allocation in N on average between inaccessible pages, to catch use after free and "
        + "overflows (SWALLOC_GUARDED_SAMPLE; 0: off).", valueName: "N"))
    var guardedSample: Int?

    @Flag(help: "Report invalid frees and fallbacks (SWALLOC_VERBOSE=1), and which library was loaded.")
    var verbose = false

    @Option(name: .customLong("option"), help: ArgumentHelp(
      "Any other SWALLOC_* option, as NAME=VALUE (the SWALLOC_ prefix may be left out); repeatable.",
      valueName: "name=value"))
    var options: [String] = []

    @Option(help: ArgumentHelp("The libswalloc.so to preload (default: beside this command, in <its prefix>/lib, or in the package's .build/release).",
                               valueName: "path"))
    var library: String?

    @Argument(parsing: .postTerminator, help: "The program and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
      if command.isEmpty { throw ValidationError("give the program to run after --") }
      if let purgeDelay, !(0...3_600_000).contains(purgeDelay) {
        throw ValidationError("--purge-delay must be from 0 to 3600000 milliseconds")
      }
      if let hugeReserve, Self.byteCount(hugeReserve) == nil {
        throw ValidationError("--huge-reserve takes a size up to 4G, in bytes or with K, M or G (64M)")
      }
      if hugeReserve != nil, let hugePages, hugePages != .explicit {
        throw ValidationError("--huge-reserve needs --huge-pages explicit")
      }
      for option in options { _ = try Self.parseOption(option) }
      if secure, secureLevel == .full { throw ValidationError("--secure and --secure-level full disagree") }
    }

    /// NAME=VALUE, with SWALLOC_ added to NAME when missing.
    static func parseOption(_ text: String) throws -> (String, String) {
      guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
        throw ValidationError("--option takes NAME=VALUE, e.g. --option SWALLOC_VERBOSE=1 (got \(text))")
      }
      var name = String(text[..<equals])
      if !name.hasPrefix("SWALLOC_") { name = "SWALLOC_" + name }
      guard name.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber || $0 == "_") }) else {
        throw ValidationError("--option: \(name) is not an option name (capitals, digits and _)")
      }
      guard name != HandshakeChannel.variable else { throw ValidationError("--option: \(name) is reserved") }
      return (name, String(text[text.index(after: equals)...]))
    }

    /// The library's SWALLOC_HUGE_RESERVE syntax: digits with an optional K, M or G; at most 4G.
    static func byteCount(_ text: String) -> Int? {
      let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
      var digits = Substring(text)
      var unit = 1
      if let last = text.last, let multiplier = units[Character(last.uppercased())] {
        unit = multiplier
        digits = digits.dropLast()
      }
      guard !digits.isEmpty, digits.allSatisfy(\.isASCII), let value = Int(digits),
            value <= (4 << 30) / unit else { return nil }
      return value * unit
    }

    /// The child's environment: this one, the --option values, then the flags; the library first in LD_PRELOAD.
    func childEnvironment(library: String) throws -> [String: String] {
      var environment = ProcessInfo.processInfo.environment
      environment[HandshakeChannel.variable] = nil
      for option in options {
        let (name, value) = try Self.parseOption(option)
        environment[name] = value
      }
      if secure { environment["SWALLOC_SECURE"] = "1" }
      if let secureLevel { environment["SWALLOC_SECURE"] = secureLevel.rawValue }
      if let stats { environment["SWALLOC_SHOW_STATS"] = stats == .table ? "1" : "json" }
      if let hugePages { environment["SWALLOC_HUGE_PAGES"] = hugePages.rawValue }
      if let hugeReserve {
        environment["SWALLOC_HUGE_RESERVE"] = hugeReserve.uppercased()
        if hugePages == nil { environment["SWALLOC_HUGE_PAGES"] = HugePagesMode.explicit.rawValue }
      }
      if locked { environment["SWALLOC_LOCKED"] = "1" }
      if let purgeDelay { environment["SWALLOC_PURGE_DELAY_MS"] = String(purgeDelay) }
      if let purgeDelayMax { environment["SWALLOC_PURGE_DELAY_MAX_MS"] = String(purgeDelayMax) }
      if let profile { environment["SWALLOC_PROFILE"] = profile == .on ? "1" : "leaks" }
      if let profileSample { environment["SWALLOC_PROFILE_SAMPLE"] = profileSample }
      if let guardedSample { environment["SWALLOC_GUARDED_SAMPLE"] = String(guardedSample) }
      if verbose { environment["SWALLOC_VERBOSE"] = "1" }
      let others = (environment["LD_PRELOAD"] ?? "").split(whereSeparator: { $0 == ":" || $0 == " " })
        .map(String.init).filter { !$0.isEmpty && $0 != library }
      environment["LD_PRELOAD"] = ([library] + others).joined(separator: ":")
      return environment
    }

    func run() throws {
      do {
        let found = try LibraryLocator.find(explicit: library)
        if let problem = PreloadPrecheck.problem(library: found) { throw CommandFailure("cannot preload: \(problem)") }
        guard let program = LibraryLocator.program(command[0]) else {
          throw CommandFailure("\(command[0]): command not found", status: 127)
        }
        let expectedProblem = PreloadPrecheck.problem(program: program, library: found)
        if let expectedProblem { note("warning: the preload cannot take: \(expectedProblem)") }
        let launcher = Launcher(program: program, arguments: command, environment: try childEnvironment(library: found),
                                library: found, verbose: verbose, expectedProblem: expectedProblem)
        try launcher.runAndPassOn()
      } catch let failure as CommandFailure {
        fail(failure)
      }
    }
  }
}
