// One invocation of the driver: finds the allocators, builds and runs the workloads, counts instructions
// under callgrind, then prints the table and writes --json and --svg.
import Foundation

struct Session {
  private let options: CommonOptions
  private let quick: Bool
  private let repeats: Int
  private let timeoutSeconds: Double
  private let builder: WorkloadBuilder
  private let scratchDirectory: String
  private var report: Report

  init(options: CommonOptions, quick: Bool, command: String, workloadsDirectory: String) throws {
    self.options = options
    self.quick = quick
    repeats = options.repeats ?? (quick ? 1 : 5)
    timeoutSeconds = options.timeoutSeconds ?? (quick ? 60 : 300)
    let cacheDirectory = try BenchPaths.cacheDirectory(option: options.cacheDirectory)
    // Per process, so that two runs sharing a cache do not write over each other's output files.
    scratchDirectory = cacheDirectory + "/scratch-\(getpid())"
    try FileManager.default.createDirectory(atPath: scratchDirectory, withIntermediateDirectories: true)
    builder = WorkloadBuilder(workloadsDirectory: workloadsDirectory, cacheDirectory: cacheDirectory,
                              scratchDirectory: scratchDirectory, note: { Session.progress("  (\($0))\n") })

    let (available, missing) = try AllocatorCatalog.resolve(selection: options.allocatorNames,
                                                             swallocLibrary: options.swallocLibrary,
                                                             environment: try options.allocatorEnvironment)
    guard !available.isEmpty else { throw BenchError("no allocator to run") }
    for allocator in missing {
      Session.progress("MISSING \(allocator.name): \(allocator.reason)\n")
    }
    // Ratios are to jemalloc; without it, to glibc, else to whatever runs.
    let baseline = [AllocatorCatalog.baseline, "glibc"].first { name in available.contains { $0.name == name } }
      ?? available[0].name
    report = Report(
      command: command, date: ISO8601DateFormatter().string(from: Date()),
      host: "\(ProcessInfo.processInfo.hostName), \(ProcessInfo.processInfo.activeProcessorCount) CPUs",
      repeats: repeats, quick: quick, scale: 1, timeoutSeconds: timeoutSeconds, baseline: baseline,
      allocators: available, missingAllocators: missing, skippedWorkloads: [:], workloads: [])
    ChildProcess.installInterruptHandler()
  }

  static func progress(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
  }

  /// Builds and runs `workloads` on every allocator; a workload that cannot be built here is skipped.
  mutating func measure(_ workloads: [Workload], scale: Double) throws {
    report.scale = scale
    Session.progress("allocators: \(report.allocators.map(\.name).joined(separator: ", ")); \(repeats) repeat"
      + "\(repeats == 1 ? "" : "s"), interleaved; timeout \(Int(timeoutSeconds))s\n")
    let runner = Runner(allocators: report.allocators, launcher: try buildLauncher(), repeats: repeats,
                        timeoutSeconds: timeoutSeconds, scratchDirectory: scratchDirectory,
                        progress: Session.progress)
    for workload in workloads {
      let invocation: Invocation
      do {
        invocation = try builder.prepare(workload, scale: (quick ? workload.quickScale : 1) * scale, quick: quick)
      } catch let skipped as WorkloadSkipped {
        report.skippedWorkloads[workload.name] = skipped.reason
        Session.progress("SKIPPED \(workload.name): \(skipped.reason)\n")
        continue
      } catch let error as BenchError where !workload.isCommand {
        report.skippedWorkloads[workload.name] = "cannot build: \(error)"
        Session.progress("SKIPPED \(workload.name): cannot build: \(error)\n")
        continue
      }
      report.workloads.append(runner.run(workload, invocation))
    }
  }

  /// measure.c, linked statically when the C library allows it, for the lowest RSS floor.
  private func buildLauncher() throws -> String {
    if let launcher = try? builder.compileC("measure.c", extraFlags: ["-static"]) { return launcher }
    return try builder.compileC("measure.c")
  }

  /// Instructions per malloc+free pair for every allocator, under callgrind.
  mutating func countInstructions() throws {
    guard let valgrind = BenchPaths.which("valgrind") else {
      report.skippedWorkloads["callgrind"] = "valgrind not found (apt-get install -y valgrind)"
      Session.progress("SKIPPED callgrind: valgrind not found\n")
      return
    }
    let pair = try builder.compileC("pair.c", extraFlags: ["-fno-plt"])
    let callgrind = Callgrind(valgrind: valgrind, pairBinary: pair, scratchDirectory: scratchDirectory,
                              counts: quick ? (64_000, 256_000) : (192_000, 960_000), timeoutSeconds: timeoutSeconds)
    let allocators = report.allocators.map(withoutDebugInfo)
    for mode in Callgrind.modes {
      Session.progress(Format.pad("callgrind " + mode, 15))
      for allocator in allocators {
        let figure = callgrind.measure(allocator, mode: mode)
        report.pairInstructions.append(figure)
        let total = figure.totalInstructions.map { Format.instructions($0) } ?? "FAIL"
        Session.progress(" \(allocator.name) \(total)")
      }
      Session.progress(" instructions/pair\n")
    }
  }

  /// The allocator with its library replaced by a copy without debug information (objcopy --strip-debug;
  /// the symbol table stays, so callgrind still names functions). Valgrind 3.19 gives up on the DWARF that
  /// Swift emits ("debuginfo reader: Possibly corrupted debuginfo file"). Unchanged when objcopy fails.
  private func withoutDebugInfo(_ allocator: Allocator) -> Allocator {
    guard let library = allocator.library, let objcopy = BenchPaths.which("objcopy") else { return allocator }
    let directory = scratchDirectory + "/callgrind"
    let copy = directory + "/" + allocator.name + "-" + (library as NSString).lastPathComponent
    try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try? FileManager.default.removeItem(atPath: copy)
    guard let result = try? ChildProcess.run([objcopy, "--strip-debug", library, copy], timeoutSeconds: 120,
                                             scratchDirectory: scratchDirectory),
          result.succeeded, BenchPaths.exists(copy)
    else { return allocator }
    return allocator.withLibrary(copy)
  }

  /// Prints the table; writes --json and --svg.
  mutating func finish(checkTargets: Bool) throws {
    try? FileManager.default.removeItem(atPath: scratchDirectory)
    report.computeGeometricMeans()
    if checkTargets { report.targets = Targets(report: report).evaluate() }
    print(TableReport(report: report).render(), terminator: "")
    if let path = options.json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      try encoder.encode(report).write(to: URL(fileURLWithPath: BenchPaths.absolute(path)))
      Session.progress("wrote \(path)\n")
    }
    if let path = options.svg {
      try SVGReport(report: report).render().write(toFile: BenchPaths.absolute(path), atomically: true, encoding: .utf8)
      Session.progress("wrote \(path)\n")
    }
  }
}

extension Session {
  /// Whether `allocator` was asked for (or implied) and could not be found.
  func isMissing(_ allocator: String) -> Bool {
    report.missingAllocators.contains { $0.name == allocator }
  }

  /// The workloads that failed under `allocator`.
  func failedWorkloads(of allocator: String) -> [String] {
    report.workloads.filter { $0.cell(allocator)?.failure != nil }.map(\.name)
  }
}

extension Workload {
  var isCommand: Bool {
    if case .command = recipe { return true }
    return false
  }
}
