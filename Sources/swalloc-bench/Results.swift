// The measurements (one Sample per run), their per-allocator summaries, and the statistics the reports
// share: medians, ratios to the baseline allocator, geometric means. Codable, for --json.
import Foundation

/// One successful run of one workload on one allocator.
struct Sample: Codable, Sendable {
  var wallSeconds: Double
  var userSeconds: Double
  var systemSeconds: Double
  var maxRSSKiB: Int
  /// Minor page faults (ru_minflt): memory the allocator gave back and faulted in again shows here.
  var minorFaults: Int
  /// `name value` lines the program printed (operations, spawn_us, rss_after_free_kib...).
  var metrics: [String: Double]
}

/// Why a workload failed on an allocator: "exit 3", "signal 11", "timeout 300s", "wrong malloc"...
struct Failure: Codable, Sendable {
  var status: String
  /// Which repeat failed (1-based).
  var repeatIndex: Int
  /// The last lines of the child's standard error (or a note from the driver).
  var detail: String
}

/// All runs of one workload on one allocator.
struct Cell: Codable, Sendable {
  var allocator: String
  var samples: [Sample] = []
  var failure: Failure?

  var succeeded: Bool { failure == nil && !samples.isEmpty }
  var medianWallSeconds: Double? { succeeded ? Statistics.median(samples.map(\.wallSeconds)) : nil }
  var medianRSSKiB: Double? { succeeded ? Statistics.median(samples.map { Double($0.maxRSSKiB) }) : nil }
  var medianMinorFaults: Double? { succeeded ? Statistics.median(samples.map { Double($0.minorFaults) }) : nil }
  func medianMetric(_ name: String) -> Double? {
    let values = samples.compactMap { $0.metrics[name] }
    return succeeded && !values.isEmpty ? Statistics.median(values) : nil
  }
}

/// One workload across all allocators.
struct WorkloadResult: Codable, Sendable {
  var name: String
  var summary: String
  var cells: [Cell]

  func cell(_ allocator: String) -> Cell? { cells.first { $0.allocator == allocator } }

  /// Median wall time of `allocator` over the baseline's; nil when either failed or is absent.
  func timeRatio(_ allocator: String, baseline: String) -> Double? {
    Statistics.ratio(cell(allocator)?.medianWallSeconds, cell(baseline)?.medianWallSeconds)
  }

  func rssRatio(_ allocator: String, baseline: String) -> Double? {
    Statistics.ratio(cell(allocator)?.medianRSSKiB, cell(baseline)?.medianRSSKiB)
  }

  /// The fastest median wall time of any allocator that succeeded.
  var bestWallSeconds: Double? { cells.compactMap(\.medianWallSeconds).min() }
  var bestRSSKiB: Double? { cells.compactMap(\.medianRSSKiB).min() }
  var bestMinorFaults: Double? { cells.compactMap(\.medianMinorFaults).min() }
}

/// The geometric mean of one allocator's ratios to the baseline, over the workloads where both succeeded.
struct GeometricMean: Codable, Sendable {
  var allocator: String
  var timeRatio: Double?
  var rssRatio: Double?
  /// How many workloads went into the means, of how many were run.
  var workloadCount: Int
  var ofWorkloads: Int
}

/// Instructions per malloc+free pair under callgrind, for one allocator and one pattern.
struct PairInstructions: Codable, Sendable {
  var allocator: String
  /// "fixed" (malloc(32)/free) or "mixed" (16..512 B in batches of 64).
  var mode: String
  var mallocInstructions: Double?
  var freeInstructions: Double?
  /// The benchmark loop's own instructions per pair (not the allocator's).
  var loopInstructions: Double?
  /// Everything per pair: malloc + free + loop.
  var totalInstructions: Double?
  /// Set when the measurement failed.
  var failure: String?
}

/// A whole run, as written by --json.
struct Report: Codable, Sendable {
  var command: String
  var date: String
  var host: String
  var repeats: Int
  var quick: Bool
  var scale: Double
  var timeoutSeconds: Double
  var baseline: String
  var allocators: [Allocator]
  var missingAllocators: [MissingAllocator]
  var skippedWorkloads: [String: String]
  var workloads: [WorkloadResult]
  var geometricMeans: [GeometricMean] = []
  var pairInstructions: [PairInstructions] = []
  var targets: [TargetCheck] = []

  /// Fills `geometricMeans` from `workloads`.
  mutating func computeGeometricMeans() {
    geometricMeans = allocators.map { allocator in
      let times = workloads.compactMap { $0.timeRatio(allocator.name, baseline: baseline) }
      let rss = workloads.compactMap { $0.rssRatio(allocator.name, baseline: baseline) }
      return GeometricMean(
        allocator: allocator.name, timeRatio: Statistics.geometricMean(times),
        rssRatio: Statistics.geometricMean(rss), workloadCount: times.count, ofWorkloads: workloads.count)
    }
  }

  func geometricMean(_ allocator: String) -> GeometricMean? {
    geometricMeans.first { $0.allocator == allocator }
  }
}

enum Statistics {
  static func median(_ values: [Double]) -> Double? {
    guard !values.isEmpty else { return nil }
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
  }

  static func geometricMean(_ values: [Double]) -> Double? {
    let positive = values.filter { $0 > 0 }
    guard !positive.isEmpty, positive.count == values.count else { return nil }
    return exp(positive.map(log).reduce(0, +) / Double(positive.count))
  }

  static func ratio(_ value: Double?, _ base: Double?) -> Double? {
    guard let value, let base, base > 0 else { return nil }
    return value / base
  }
}
