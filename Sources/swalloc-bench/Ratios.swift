// `swalloc-bench ratios`: the side-by-side ratios of configurations measured in one run (or several runs'
// samples pooled), read back from --json reports. A ratio NUM/DEN divides NUM's median by DEN's, per workload,
// for wall time, CPU time (user + system) and peak RSS, and gives their geometric means over the workloads
// both sides measured. Either side may be `a+b`: the geometric mean of the medians of configurations a and b.
// That is how the README's cost tables are made: an option on over two identical configurations with it off
// (`swprof/swalloc+swalloc2`), beside the A/A control of those two (`swalloc2/swalloc`), which shows how far
// this machine's noise moves a ratio that should be 1.
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

    func validate() throws {
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
      let table = RatioTable(samples: pooled, ratios: ratios.compactMap(RatioSpec.init))
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

  /// The geometric mean of the medians of `names` for each measure, or nil when one was not measured.
  func medians(_ names: [String], workload: String) -> [Double]? {
    guard let cells = samples.byWorkload[workload] else { return nil }
    var values = [Double](repeating: 1, count: Self.measures.count)
    for name in names {
      guard let cell = cells[name], !cell.isEmpty else { return nil }
      for (index, measure) in Self.measures.enumerated() {
        guard let median = Statistics.median(cell.map(measure)), median > 0 else { return nil }
        values[index] *= median
      }
    }
    return values.map { pow($0, 1 / Double(names.count)) }
  }

  /// Wall, CPU and RSS ratios of `ratio` for `workload`, or nil when a side was not measured.
  func ratio(_ ratio: RatioSpec, workload: String) -> [Double]? {
    guard let numerator = medians(ratio.numerator, workload: workload),
      let denominator = medians(ratio.denominator, workload: workload)
    else { return nil }
    return zip(numerator, denominator).map { $0 / $1 }
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
    return text
  }
}
