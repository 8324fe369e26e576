// Runs one workload on every allocator, interleaved (A B C D E, A B C D E, ...) so that drift in the
// machine's speed hits all allocators alike; checks each run (exit status, expected output, that the
// preload took effect) and keeps the samples. A failed or timed-out allocator is dropped for the rest
// of that workload; the run goes on.
import Foundation

struct Runner {
  let allocators: [Allocator]
  /// The compiled measure.c launcher that forks each run (see ChildProcess.runMeasured).
  let launcher: String
  let repeats: Int
  let timeoutSeconds: Double
  let scratchDirectory: String
  /// Progress on standard error.
  let progress: (String) -> Void

  func run(_ workload: Workload, _ invocation: Invocation) -> WorkloadResult {
    var cells = allocators.map { Cell(allocator: $0.name) }
    progress(workload.name.padding(toLength: 15, withPad: " ", startingAt: 0))
    for repeatIndex in 1...repeats {
      for (index, allocator) in allocators.enumerated() where cells[index].failure == nil {
        switch measure(invocation, on: allocator) {
        case .sample(let sample):
          cells[index].samples.append(sample)
          progress(".")
        case .failure(let status, let detail):
          cells[index].failure = Failure(status: status, repeatIndex: repeatIndex, detail: detail)
          progress("x")
        }
      }
    }
    progress(" " + cells.map { cell in
      "\(cell.allocator) " + (cell.medianWallSeconds.map { Format.seconds($0) } ?? "FAIL")
    }.joined(separator: "  ") + "\n")
    return WorkloadResult(name: workload.name, summary: workload.summary, cells: cells)
  }

  private enum Outcome {
    case sample(Sample)
    case failure(status: String, detail: String)
  }

  private func measure(_ invocation: Invocation, on allocator: Allocator) -> Outcome {
    if let file = invocation.producedFile { try? FileManager.default.removeItem(atPath: file) }
    let result: ChildResult
    do {
      result = try ChildProcess.runMeasured(
        invocation.arguments, launcher: launcher, preload: allocator.library,
        environment: invocation.environment.merging(allocator.variables) { $1 },
        timeoutSeconds: timeoutSeconds, scratchDirectory: scratchDirectory)
    } catch {
      return .failure(status: "not started", detail: "\(error)")
    }
    if let problem = problem(with: result, of: invocation, on: allocator) {
      return .failure(status: problem, detail: Format.tail(result.standardError, lines: 6))
    }
    return .sample(Sample(
      wallSeconds: result.wallSeconds, userSeconds: result.userSeconds, systemSeconds: result.systemSeconds,
      maxRSSKiB: result.maxRSSKiB, minorFaults: result.minorFaults, metrics: Self.metrics(in: result.standardOutput)))
  }

  /// Why a finished run does not count, or nil when it does.
  private func problem(with result: ChildResult, of invocation: Invocation, on allocator: Allocator) -> String? {
    guard result.succeeded else { return result.terminationDescription }
    // The loader skips a preload it cannot load, with only this message, and the program runs on glibc.
    if result.standardError.contains("cannot be preloaded") { return "preload ignored" }
    if invocation.reportsProvider {
      guard let provider = result.standardOutput.split(separator: "\n")
        .first(where: { $0.hasPrefix("malloc_provider ") })?.dropFirst("malloc_provider ".count)
      else { return "no malloc_provider line" }
      if !Self.provider(String(provider), matches: allocator) { return "wrong malloc: \(provider)" }
    }
    if let required = invocation.requiredOutput, !result.standardOutput.contains(required) { return "bad output" }
    if let forbidden = invocation.forbiddenOutput, result.standardOutput.contains(forbidden) { return "check failed" }
    if let file = invocation.producedFile, !BenchPaths.exists(file) { return "no output file" }
    return nil
  }

  /// Whether the object `malloc` resolved to in the child is the allocator under test.
  static func provider(_ provider: String, matches allocator: Allocator) -> Bool {
    guard let library = allocator.library else {
      return (provider as NSString).lastPathComponent.hasPrefix("libc.so")
    }
    return BenchPaths.canonical(provider) == BenchPaths.canonical(library)
  }

  /// The `name value` lines of a workload's output (e.g. `rss_after_free_kib 1688`).
  static func metrics(in output: String) -> [String: Double] {
    var metrics: [String: Double] = [:]
    for line in output.split(separator: "\n") {
      let fields = line.split(separator: " ")
      if fields.count == 2, let value = Double(fields[1]),
         fields[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
        metrics[String(fields[0])] = value
      }
    }
    return metrics
  }
}
