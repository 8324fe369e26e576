// The command line: `swalloc-bench [run]` runs the suite, `swalloc-bench compare -- PROGRAM ARGS` runs any
// program under each allocator, `swalloc-bench ratios REPORT.json --ratio A/B` prints ratios between the
// configurations of --json reports, `swalloc-bench list` lists the workloads. Both measuring commands print
// the same table and can write --json and --svg.
import ArgumentParser
import Foundation

@main
struct SwallocBench: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "swalloc-bench",
    abstract: "Compare Swalloc with jemalloc, mimalloc, tcmalloc and glibc's malloc, side by side.",
    discussion: """
      Each workload runs as its own process under LD_PRELOAD (glibc: no preload), interleaved across \
      allocators, and reports median wall time, its ratio to jemalloc, and median peak RSS.
      """,
    subcommands: [Run.self, Compare.self, Ratios.self, List.self],
    defaultSubcommand: Run.self)
}

/// Options both measuring commands take.
struct CommonOptions: ParsableArguments {
  @Option(name: .customLong("lib"), help: ArgumentHelp(
    "The libswalloc.so to preload for swalloc.",
    discussion: "Default: libswalloc.so next to this executable, else .build/release/libswalloc.so.",
    valueName: "path"))
  var swallocLibrary: String?

  @Option(name: .customLong("allocator"), help: ArgumentHelp(
    "Allocators to run (repeatable or comma-separated): swalloc, jemalloc, mimalloc, tcmalloc, glibc, or "
      + "NAME=PATH for any preloadable library (e.g. mimalloc3=/opt/libmimalloc.so). Default: the five.",
    valueName: "name"))
  var allocators: [String] = []

  @Option(name: .customLong("allocator-env"), help: ArgumentHelp(
    "Set a variable for one allocator's runs only (repeatable), e.g. swprof:SWALLOC_PROFILE=1 with "
      + "--allocator swalloc,swprof=PATH to compare an option on and off side by side.",
    discussion: "NAME is an allocator of the run; VALUE is taken whole (commas included).",
    valueName: "NAME:VAR=VALUE"))
  var allocatorEnvironmentEntries: [String] = []

  @Option(help: "Runs per workload and allocator; the median is reported. Default: 5, or 1 with --quick.")
  var repeats: Int?

  @Option(name: .customLong("timeout"), help: ArgumentHelp(
    "Seconds before a run is killed and reported as FAIL. Default: 300, or 60 with --quick.", valueName: "seconds"))
  var timeoutSeconds: Double?

  @Option(help: ArgumentHelp("Also write the results as JSON to this file.", valueName: "file"))
  var json: String?

  @Option(help: ArgumentHelp("Also write an SVG chart of time and RSS ratios to this file.", valueName: "file"))
  var svg: String?

  @Option(name: .customLong("cache-dir"), help: ArgumentHelp(
    "Where compiled workloads and scratch files go. Default: swalloc-bench-cache next to this executable.",
    valueName: "dir"))
  var cacheDirectory: String?

  @Option(name: .customLong("workloads"), help: ArgumentHelp(
    "Directory holding the workload sources (default: Benchmarks/Workloads of this package).", valueName: "dir"))
  var workloadsDirectory: String?

  @OptionGroup var peers: PeerOptions

  func validate() throws {
    if let repeats, repeats < 1 { throw ValidationError("--repeats must be at least 1") }
    if let timeoutSeconds, timeoutSeconds <= 0 { throw ValidationError("--timeout must be positive") }
    // Before any peer is installed: a typo in a name or the syntax stops the run at once.
    do {
      try allocatorEnvironment.check(selected: try AllocatorCatalog.selectedNames(allocatorNames))
    } catch let error as BenchError {
      throw ValidationError(error.description)
    }
  }

  var allocatorEnvironment: AllocatorEnvironment {
    get throws { try AllocatorEnvironment(parsing: allocatorEnvironmentEntries) }
  }

  var allocatorNames: [String] { Self.splitCommas(allocators) }

  static func splitCommas(_ values: [String]) -> [String] {
    values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  }
}

extension SwallocBench {
  struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the benchmark suite (the default command).")

    @OptionGroup var options: CommonOptions

    @Flag(help: "Tiny versions of every workload, 1 repeat, every allocator: the whole run in under a minute.")
    var quick = false

    @Option(help: ArgumentHelp(
      "Run only these workloads (repeatable or comma-separated; 'xmalloc' selects xmalloc-2/4/8; 'callgrind' "
        + "selects the instruction counts).", valueName: "name"))
    var only: [String] = []

    @Option(help: "Multiply every workload's size by this factor (1 = the default full or quick size).")
    var scale: Double = 1

    @Flag(name: .customLong("no-callgrind"), help: "Skip the instructions-per-pair measurement under callgrind.")
    var noCallgrind = false

    func validate() throws {
      if scale <= 0 { throw ValidationError("--scale must be positive") }
    }

    func run() throws {
      let patterns = CommonOptions.splitCommas(only)
      let wantsCallgrind = !noCallgrind && (patterns.isEmpty || patterns.contains("callgrind"))
      let workloadPatterns = patterns.filter { $0 != "callgrind" }
      let workloads = patterns.isEmpty || !workloadPatterns.isEmpty ? try Suite.select(workloadPatterns) : []
      PeerInstaller.configure(options.peers)
      PeerInstaller.installMissing(PeerInstaller.peers(allocatorNames: options.allocatorNames, workloads: workloads,
                                                       callgrind: wantsCallgrind), options: options.peers)
      var session = try Session(options: options, quick: quick, command: "run",
                                workloadsDirectory: try BenchPaths.workloadsDirectory(option: options.workloadsDirectory))
      try session.measure(workloads, scale: scale)
      if wantsCallgrind { try session.countInstructions() }
      try session.finish(checkTargets: true)
      // Timing never fails the run; a workload that fails under swalloc (wrong result, crash, timeout) does,
      // so that CI's --quick run catches it.
      let failed = session.failedWorkloads(of: AllocatorCatalog.subject)
      if !failed.isEmpty {
        Session.progress("swalloc failed: \(failed.joined(separator: ", "))\n")
        throw ExitCode.failure
      }
      if session.isMissing(AllocatorCatalog.subject) {
        Session.progress("swalloc was not measured: its library is missing (see MISSING above)\n")
        throw ExitCode.failure
      }
    }
  }

  struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Run any program under each allocator and print the same table.",
      usage: "swalloc-bench compare [<options>] -- <program> [<arguments>...]")

    @OptionGroup var options: CommonOptions

    @Argument(parsing: .postTerminator, help: "The program and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
      if command.isEmpty { throw ValidationError("give the program to run after --") }
    }

    func run() throws {
      let name = (command[0] as NSString).lastPathComponent
      let workload = Workload(name: name, summary: command.joined(separator: " "), recipe: .command(command))
      PeerInstaller.configure(options.peers)
      PeerInstaller.installMissing(PeerInstaller.peers(allocatorNames: options.allocatorNames, workloads: [workload],
                                                       callgrind: false), options: options.peers)
      var session = try Session(options: options, quick: false, command: "compare " + command.joined(separator: " "),
                                workloadsDirectory: try BenchPaths.workloadsDirectory(option: options.workloadsDirectory))
      try session.measure([workload], scale: 1)
      try session.finish(checkTargets: false)
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the workloads.")

    func run() {
      for workload in Suite.all {
        print(Format.pad(workload.name, 16) + workload.summary)
      }
      print(Format.pad("callgrind", 16) + "instructions per malloc+free pair (pair.c under valgrind --tool=callgrind)")
    }
  }
}
