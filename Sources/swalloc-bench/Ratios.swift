// `swalloc-bench ratios`: the side-by-side ratios of configurations measured in one run (or several runs'
// samples pooled), read back from --json reports. A ratio NUM/DEN divides NUM's median by DEN's, per workload,
// for wall time, CPU time (user + system) and peak RSS, and gives their geometric means over the workloads
// both sides measured. Either side may be `a+b`: the geometric mean of the medians of configurations a and b.
// That is how the README's cost tables are made: an option on over two identical configurations with it off
// (`swprof/swalloc+swalloc2`), beside the A/A control of those two (`swalloc2/swalloc`), which shows how far
// this machine's noise moves a ratio that should be 1. Below the geometric means, a percentile bootstrap gives
// their 90 % interval: every configuration's samples of every workload drawn again with replacement, the
// geometric mean recomputed, 1 000 times (a fixed seed: the same reports give the same interval). It says how
// far the medians of these few samples could move by chance alone; the A/A control says how far the machine
// drifts between configurations, which no resampling sees.
import ArgumentParser
import Foundation

extension SwallocBench {
  struct Ratios: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print ratios between configurations of --json reports (A/A controls, option on/off).",
      discussion: """
        Example: swalloc-bench ratios run.json --ratio swalloc2/swalloc --ratio swprof/swalloc+swalloc2 \
        prints, per workload, wall, CPU and peak RSS ratios of the medians, then their geometric means.
        """)

    @Argument(help: ArgumentHelp("Reports written by --json; samples of the same workload and configuration "
      + "in several reports are pooled.", valueName: "report.json"))
    var reports: [String]

    @Option(name: .customLong("ratio"), help: ArgumentHelp(
      "NUM/DEN (repeatable): configuration names as in the run's --allocator; a side may be a+b, the geometric "
        + "mean of a's and b's medians.", valueName: "NUM/DEN"))
    var ratios: [String] = []

    @Option(help: ArgumentHelp("Bootstrap resamples for the geometric means' 90 % interval (0: no interval).",
                               valueName: "N"))
    var bootstrap = 1000

    func validate() throws {
      if bootstrap < 0 || bootstrap > 1_000_000 { throw ValidationError("--bootstrap: 0 to 1000000") }
      if reports.isEmpty { throw ValidationError("give at least one --json report") }
      if ratios.isEmpty { throw ValidationError("give at least one --ratio NUM/DEN") }
      for ratio in ratios where RatioSpec(ratio) == nil {
        throw ValidationError("--ratio \(ratio): expected NUM/DEN, each a name or names joined by +")
      }
    }

    func run() throws {
      var pooled = RatioTable.Samples()
      for path in reports {
        let data: Data
        do {
          data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
          throw ValidationError("cannot read \(path): \(error.localizedDescription)")
        }
        let report = try JSONDecoder().decode(Report.self, from: data)
        pooled.add(report)
      }
      let table = RatioTable(samples: pooled, ratios: ratios.compactMap(RatioSpec.init), resamples: bootstrap)
      print(table.markdown(), terminator: "")
    }
  }
}

/// NUM/DEN, each side one or more configuration names.
struct RatioSpec: Equatable {
  var numerator: [String]
  var denominator: [String]

  init?(_ text: String) {
    let sides = text.split(separator: "/", omittingEmptySubsequences: false)
    guard sides.count == 2 else { return nil }
    let names = sides.map { $0.split(separator: "+", omittingEmptySubsequences: false).map(String.init) }
    guard names.allSatisfy({ !$0.isEmpty && $0.allSatisfy { !$0.isEmpty } }) else { return nil }
    numerator = names[0]
    denominator = names[1]
  }

  var label: String { numerator.joined(separator: "+") + "/" + denominator.joined(separator: "+") }
}

/// The ratio tables of pooled samples.
struct RatioTable {
  /// Samples by workload (in first-seen order) and configuration.
  struct Samples {
    var workloads: [String] = []
    var byWorkload: [String: [String: [Sample]]] = [:]

    mutating func add(_ report: Report) {
      for workload in report.workloads {
        if byWorkload[workload.name] == nil {
          workloads.append(workload.name)
          byWorkload[workload.name] = [:]
        }
        for cell in workload.cells where cell.succeeded {
          byWorkload[workload.name]![cell.allocator, default: []] += cell.samples
        }
      }
    }
  }

  /// Wall, CPU and peak RSS, in that order.
  static let measures: [@Sendable (Sample) -> Double] = [
    { $0.wallSeconds }, { $0.userSeconds + $0.systemSeconds }, { Double($0.maxRSSKiB) },
  ]

  var samples: Samples
  var ratios: [RatioSpec]
  /// Bootstrap resamples for the geometric means' interval; 0 for none.
  var resamples = 0

  /// The geometric mean of the medians of `names` for each measure, or nil when one was not measured.
  /// `draw`, when given, replaces each configuration's samples by as many drawn from them (the bootstrap).
  func medians(_ names: [String], workload: String, draw: ((Int) -> Int)? = nil) -> [Double]? {
    guard let cells = samples.byWorkload[workload] else { return nil }
    var values = [Double](repeating: 1, count: Self.measures.count)
    for name in names {
      guard var cell = cells[name], !cell.isEmpty else { return nil }
      if let draw {
        let original = cell
        cell = original.indices.map { _ in original[draw(original.count)] }
      }
      for (index, measure) in Self.measures.enumerated() {
        guard let median = Statistics.median(cell.map(measure)), median > 0 else { return nil }
        values[index] *= median
      }
    }
    return values.map { pow($0, 1 / Double(names.count)) }
  }

  /// Wall, CPU and RSS ratios of `ratio` for `workload`, or nil when a side was not measured.
  func ratio(_ ratio: RatioSpec, workload: String, draw: ((Int) -> Int)? = nil) -> [Double]? {
    guard let numerator = medians(ratio.numerator, workload: workload, draw: draw),
      let denominator = medians(ratio.denominator, workload: workload, draw: draw)
    else { return nil }
    return zip(numerator, denominator).map { $0 / $1 }
  }

  /// The 5th and 95th percentiles of the geometric means of `ratio` over `resamples` bootstrap resamples
  /// (nearest rank), per measure; nil when no workload has the ratio.
  func interval(_ ratio: RatioSpec) -> [(low: Double, high: Double)]? {
    if resamples == 0 || geometricMeans(ratio) == nil { return nil }
    // SplitMix64, fixed seed.
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    let draw = { (count: Int) -> Int in
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return Int((z ^ (z >> 31)) % UInt64(count))
    }
    var means = [[Double]](repeating: [], count: Self.measures.count)
    for _ in 0..<resamples {
      let rows = samples.workloads.compactMap { self.ratio(ratio, workload: $0, draw: draw) }
      for index in means.indices { means[index].append(Statistics.geometricMean(rows.map { $0[index] }) ?? .nan) }
    }
    return means.map { values in
      let sorted = values.sorted()
      let last = Double(sorted.count - 1)
      return (sorted[Int((0.05 * last).rounded(.down))], sorted[Int((0.95 * last).rounded(.up))])
    }
  }

  /// The geometric means of `ratio` over the workloads that have it, and how many those are.
  func geometricMeans(_ ratio: RatioSpec) -> (values: [Double], count: Int)? {
    let rows = samples.workloads.compactMap { self.ratio(ratio, workload: $0) }
    if rows.isEmpty { return nil }
    let means = (0..<Self.measures.count).map { index in Statistics.geometricMean(rows.map { $0[index] }) ?? .nan }
    return (means, rows.count)
  }

  func markdown() -> String {
    var text = "| workload | " + ratios.map { $0.label + ": wall, CPU, RSS" }.joined(separator: " | ") + " |\n"
    text += "|---|" + String(repeating: "---|", count: ratios.count) + "\n"
    for workload in samples.workloads {
      let cells = ratios.map { ratio -> String in
        guard let values = self.ratio(ratio, workload: workload) else { return "-" }
        return String(format: "%.2f, %.2f, %.3f", values[0], values[1], values[2])
      }
      text += "| \(workload) | " + cells.joined(separator: " | ") + " |\n"
    }
    let means = ratios.map { ratio -> String in
      guard let (values, count) = geometricMeans(ratio) else { return "-" }
      return String(format: "**%.3f**, **%.3f**, **%.3f** (%d)", values[0], values[1], values[2], count)
    }
    text += "| geometric mean (workloads) | " + means.joined(separator: " | ") + " |\n"
    if resamples > 0 {
      let intervals = ratios.map { ratio -> String in
        guard let bounds = interval(ratio) else { return "-" }
        return bounds.map { String(format: "[%.3f, %.3f]", $0.low, $0.high) }.joined(separator: ", ")
      }
      text += "| 90 % bootstrap interval | " + intervals.joined(separator: " | ") + " |\n"
    }
    return text
  }
}
