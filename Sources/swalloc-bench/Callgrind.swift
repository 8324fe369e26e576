// Instructions per malloc+free pair, counted by callgrind on Benchmarks/Workloads/pair.c for each allocator.
// Callgrind does not replace malloc (memcheck, massif and the other heap tools do), so the LD_PRELOAD'ed
// allocator is what runs: the calls from pair_loop must land in the allocator's library (callgrind's `cob=`),
// and pair.c's malloc_provider line must name it. Only `pair_loop` and what it calls is
// counted (--toggle-collect), and two runs with different N are subtracted so that start-up and first-call
// set-up cancel out.
import Foundation

struct Callgrind {
  let valgrind: String
  /// pair.c built with -fno-plt, so calls go straight into the allocator with no PLT stub.
  let pairBinary: String
  let scratchDirectory: String
  /// The two pair counts; the per-pair figures are (cost(N2) - cost(N1)) / (N2 - N1).
  let counts: (Int, Int)
  let timeoutSeconds: Double

  static let modes = ["fixed", "mixed"]

  func measure(_ allocator: Allocator, mode: String) -> PairInstructions {
    var result = PairInstructions(allocator: allocator.name, mode: mode)
    do {
      let small = try count(allocator, mode: mode, pairs: counts.0)
      let large = try count(allocator, mode: mode, pairs: counts.1)
      let pairs = Double(counts.1 - counts.0)
      func perPair(_ key: KeyPath<Costs, Int>) -> Double { Double(large[keyPath: key] - small[keyPath: key]) / pairs }
      result.mallocInstructions = perPair(\.malloc)
      result.freeInstructions = perPair(\.free)
      result.loopInstructions = perPair(\.loop)
      result.totalInstructions = perPair(\.total)
    } catch {
      result.failure = "\(error)"
    }
    return result
  }

  /// Instruction counts of one callgrind run, split by where they were spent.
  struct Costs {
    /// Inside calls from pair_loop to functions whose name does not contain "free" (malloc, mi_malloc...).
    var malloc = 0
    /// Inside calls from pair_loop to functions whose name contains "free".
    var free = 0
    /// pair_loop's own instructions (the benchmark loop).
    var loop = 0
    /// Everything collected.
    var total = 0
    /// The objects (shared libraries) whose code pair_loop called: must be the allocator's alone.
    var calleeObjects: Set<String> = []
  }

  private func count(_ allocator: Allocator, mode: String, pairs: Int) throws -> Costs {
    let outputFile = scratchDirectory + "/callgrind.out"
    try? FileManager.default.removeItem(atPath: outputFile)
    let result = try ChildProcess.run(
      [valgrind, "--tool=callgrind", "--toggle-collect=pair_loop", "--compress-strings=no", "--compress-pos=no",
       "--callgrind-out-file=" + outputFile, pairBinary, mode, String(pairs)],
      environment: allocator.environment, timeoutSeconds: timeoutSeconds, scratchDirectory: scratchDirectory)
    guard result.succeeded else {
      throw BenchError("callgrind \(result.terminationDescription): \(Format.tail(result.standardError, lines: 3))")
    }
    guard let provider = result.standardOutput.split(separator: "\n").first(where: { $0.hasPrefix("malloc_provider ") }),
          Runner.provider(String(provider.dropFirst("malloc_provider ".count)), matches: allocator)
    else { throw BenchError("under callgrind, malloc was not \(allocator.name)'s") }
    let costs = Self.parse(try String(contentsOfFile: outputFile, encoding: .utf8))
    // The proof that counts: the calls ran inside the allocator's library. Callgrind names some objects "???"
    // (it does so for tcmalloc's malloc and free); those prove nothing either way.
    let strangers = costs.calleeObjects.filter { $0 != "???" && !Runner.provider($0, matches: allocator) }
    guard strangers.isEmpty, !costs.calleeObjects.isEmpty else {
      throw BenchError("pair_loop called into \(costs.calleeObjects.sorted().joined(separator: ", ")), "
        + "not only \(allocator.library ?? "libc")")
    }
    return costs
  }

  /// Reads a callgrind.out file written with --compress-strings=no: `ob=` names the current object and
  /// `fn=` starts a function's block; `cob=` (callee's object, when not the current one), `cfn=` and
  /// `calls=` make the next cost line the inclusive cost of that call; other cost lines are the function's
  /// own cost; `totals:` is everything.
  static func parse(_ text: String) -> Costs {
    var costs = Costs()
    var object = "", function = "", callee = ""
    var calleeObject: String?
    var nextIsCallCost = false
    for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
      if line.hasPrefix("ob=") {
        object = String(line.dropFirst(3))
      } else if line.hasPrefix("fn=") {
        function = String(line.dropFirst(3))
        nextIsCallCost = false
      } else if line.hasPrefix("cob=") {
        calleeObject = String(line.dropFirst(4))
      } else if line.hasPrefix("cfn=") {
        callee = String(line.dropFirst(4))
      } else if line.hasPrefix("calls=") {
        nextIsCallCost = true
      } else if line.hasPrefix("totals:") || line.hasPrefix("summary:") {
        costs.total = Int(line.split(separator: " ").last ?? "") ?? costs.total
      } else if let first = line.first, first.isNumber || first == "+" || first == "-" || first == "*" {
        let cost = Int(line.split(separator: " ").last ?? "") ?? 0
        if nextIsCallCost {
          nextIsCallCost = false
          if function == "pair_loop" {
            if callee.contains("free") { costs.free += cost } else { costs.malloc += cost }
            costs.calleeObjects.insert(calleeObject ?? object)
          }
          calleeObject = nil
        } else if function == "pair_loop" {
          costs.loop += cost
        }
      }
    }
    return costs
  }
}
