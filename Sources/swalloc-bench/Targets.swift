// Checks swalloc's results against the targets in DESIGN.md section 1, from the same run's numbers.
// A target whose workloads were not run (or failed for the allocators it compares with) is "unmeasured".

struct TargetCheck: Codable, Sendable {
  enum Verdict: String, Codable, Sendable {
    case pass, fail, unmeasured
  }

  var target: String
  var measured: String
  var verdict: Verdict
}

struct Targets {
  let report: Report
  let subject = AllocatorCatalog.subject

  /// Every target, in DESIGN.md order; empty when swalloc was not measured.
  func evaluate() -> [TargetCheck] {
    guard report.allocators.contains(where: { $0.name == subject }) else { return [] }
    return [
      fastPath("malloc", limit: 20, \.mallocInstructions),
      fastPath("free", limit: 24, \.freeInstructions),
      geometricMeanTime(), geometricMeanAgainstFastest(), geometricMeanAgainstEveryPeer(), worstTimeRatio(),
      worstFaultRatio(), geometricMeanRSS(), worstRSSRatio(), crossThread(), memoryReturn(), startUp(),
      correctness(),
    ]
  }

  private func check(_ target: String, _ measured: String, _ passed: Bool?) -> TargetCheck {
    TargetCheck(target: target, measured: measured, verdict: passed.map { $0 ? .pass : .fail } ?? .unmeasured)
  }

  private func fastPath(_ name: String, limit: Double, _ key: KeyPath<PairInstructions, Double?>) -> TargetCheck {
    let target = "\(name) fast path <= \(Int(limit)) instructions (callgrind, malloc(32)/free pairs)"
    let figures = report.pairInstructions.filter { $0.mode == "fixed" }
    guard let mine = figures.first(where: { $0.allocator == subject })?[keyPath: key] else {
      return check(target, "not measured", nil)
    }
    let others = figures.filter { $0.allocator != subject }
      .compactMap { figure in figure[keyPath: key].map { "\(figure.allocator) \(Format.instructions($0))" } }
    let measured = Format.instructions(mine) + (others.isEmpty ? "" : " (\(others.joined(separator: ", ")))")
    return check(target, measured, mine <= limit)
  }

  /// Workloads where every allocator in `names` succeeded.
  private func common(_ names: [String]) -> [WorkloadResult] {
    report.workloads.filter { workload in names.allSatisfy { workload.cell($0)?.succeeded == true } }
  }

  private func meanTimeRatio(_ allocator: String, over workloads: [WorkloadResult]) -> Double? {
    Statistics.geometricMean(workloads.compactMap { $0.timeRatio(allocator, baseline: report.baseline) })
  }

  private func geometricMeanTime() -> TargetCheck {
    let target = "time geometric mean <= 0.85x jemalloc"
    guard report.baseline == "jemalloc" else { return check(target, "jemalloc not measured", nil) }
    let workloads = common([subject, report.baseline])
    guard let mean = meanTimeRatio(subject, over: workloads) else { return check(target, "no common workloads", nil) }
    return check(target, "\(Format.ratio(mean))x over \(workloads.count) workloads", mean <= 0.85)
  }

  private func geometricMeanAgainstFastest() -> TargetCheck {
    let rivals = ["mimalloc", "tcmalloc"].filter { name in report.allocators.contains { $0.name == name } }
    let target = "time geometric mean <= the faster of mimalloc and tcmalloc"
    let workloads = common([subject, report.baseline] + rivals)
    guard !rivals.isEmpty, let mean = meanTimeRatio(subject, over: workloads) else {
      return check(target, "mimalloc and tcmalloc not measured", nil)
    }
    let rivalMeans = rivals.compactMap { name in meanTimeRatio(name, over: workloads).map { (name, $0) } }
    guard let fastest = rivalMeans.min(by: { $0.1 < $1.1 }) else { return check(target, "no common workloads", nil) }
    return check(target, "\(Format.ratio(mean)) vs \(fastest.0) \(Format.ratio(fastest.1)) (x \(report.baseline), "
                 + "\(workloads.count) workloads)", mean <= fastest.1)
  }

  /// Issue 13: the time geometric mean at or below every other allocator's in the run (the distribution's
  /// peers and any NAME=PATH library), over the workloads all of them finished.
  private func geometricMeanAgainstEveryPeer() -> TargetCheck {
    let target = "time geometric mean <= every other allocator's"
    let peers = report.allocators.map(\.name).filter { $0 != subject && $0 != report.baseline }
    let workloads = common([subject, report.baseline] + peers)
    guard !peers.isEmpty, let mean = meanTimeRatio(subject, over: workloads) else {
      return check(target, "no other allocator measured", nil)
    }
    let peerMeans = peers.compactMap { name in meanTimeRatio(name, over: workloads).map { (name, $0) } }
      + [(report.baseline, 1.0)]
    guard let best = peerMeans.min(by: { $0.1 < $1.1 }) else { return check(target, "no common workloads", nil) }
    return check(target, "\(Format.ratio(mean)) vs best \(best.0) \(Format.ratio(best.1)) (x \(report.baseline), "
                 + "\(workloads.count) workloads)", mean <= best.1)
  }

  /// The workload where `value(subject) / best` is largest.
  private func worst(_ value: (Cell) -> Double?, best: (WorkloadResult) -> Double?) -> (String, Double)? {
    report.workloads.compactMap { workload -> (String, Double)? in
      guard let cell = workload.cell(subject), let mine = value(cell), let best = best(workload), best > 0 else {
        return nil
      }
      return (workload.name, mine / best)
    }.max { $0.1 < $1.1 }
  }

  private func worstTimeRatio() -> TargetCheck {
    let target = "no workload slower than 1.10x the best allocator"
    guard let (name, ratio) = worst({ $0.medianWallSeconds }, best: { $0.bestWallSeconds }) else {
      return check(target, "not measured", nil)
    }
    return check(target, "worst \(Format.ratio(ratio))x (\(name))", ratio <= 1.10)
  }

  /// Issue 13: page faults (1.6 µs each here) at most twice the fewest of any allocator, per workload.
  private func worstFaultRatio() -> TargetCheck {
    let target = "no workload's minor page faults above 2x the best allocator's"
    guard let (name, ratio) = worst({ $0.medianMinorFaults }, best: { $0.bestMinorFaults }) else {
      return check(target, "not measured", nil)
    }
    return check(target, "worst \(Format.ratio(ratio))x (\(name))", ratio <= 2)
  }

  private func geometricMeanRSS() -> TargetCheck {
    let target = "peak RSS geometric mean <= 1.00x jemalloc"
    guard report.baseline == "jemalloc" else { return check(target, "jemalloc not measured", nil) }
    let ratios = common([subject, report.baseline]).compactMap { $0.rssRatio(subject, baseline: report.baseline) }
    guard let mean = Statistics.geometricMean(ratios) else { return check(target, "no common workloads", nil) }
    return check(target, "\(Format.ratio(mean))x over \(ratios.count) workloads", mean <= 1.0)
  }

  private func worstRSSRatio() -> TargetCheck {
    let target = "no workload's peak RSS above 1.5x the best allocator"
    guard let (name, ratio) = worst({ $0.medianRSSKiB }, best: { $0.bestRSSKiB }) else {
      return check(target, "not measured", nil)
    }
    return check(target, "worst \(Format.ratio(ratio))x (\(name))", ratio <= 1.5)
  }

  private func crossThread() -> TargetCheck {
    let target = "cross-thread (xmalloc-*, larson) within 1.5x the best allocator"
    let ratios = report.workloads.filter { $0.name.hasPrefix("xmalloc") || $0.name == "larson" }
      .compactMap { workload -> (String, Double)? in
        guard let mine = workload.cell(subject)?.medianWallSeconds, let best = workload.bestWallSeconds else {
          return nil
        }
        return (workload.name, mine / best)
      }
    guard let worst = ratios.max(by: { $0.1 < $1.1 }) else { return check(target, "not measured", nil) }
    return check(target, "worst \(Format.ratio(worst.1))x (\(worst.0))", worst.1 <= 1.5)
  }

  /// After freeing everything, no heap bytes are live: the resident set should be back to what the process
  /// had before it allocated, within 1.1x, plus a fixed reserve of 4 MiB.
  private func memoryReturn() -> TargetCheck {
    let target = "memreturn: RSS after free <= 1.1 x RSS before allocating + 4 MiB"
    guard let cell = report.workloads.first(where: { $0.name == "memreturn" })?.cell(subject),
          let after = cell.medianMetric("rss_after_free_kib"), let before = cell.medianMetric("rss_before_kib")
    else { return check(target, "not measured", nil) }
    let limit = 1.1 * before + 4096
    return check(target, "\(Format.kib(after)) after free (limit \(Format.kib(limit)))", after <= limit)
  }

  private func startUp() -> TargetCheck {
    let target = "start-up: preloading adds <= 1 ms per /bin/true vs glibc"
    guard let workload = report.workloads.first(where: { $0.name == "startup" }),
          let mine = workload.cell(subject)?.medianMetric("spawn_us"),
          let glibc = workload.cell("glibc")?.medianMetric("spawn_us")
    else { return check(target, "not measured", nil) }
    let others = ["jemalloc", "mimalloc", "tcmalloc"].compactMap { name in
      workload.cell(name)?.medianMetric("spawn_us").map { "\(name) " + String(format: "%+.0f", $0 - glibc) }
    }
    let added = mine - glibc
    return check(target, String(format: "%+.0f µs", added) + (others.isEmpty ? "" : " (\(others.joined(separator: ", ")) µs)"),
                 added <= 1000)
  }

  private func correctness() -> TargetCheck {
    let target = "correctness: no workload fails under swalloc"
    let cells = report.workloads.compactMap { $0.cell(subject) }
    guard !cells.isEmpty else { return check(target, "not measured", nil) }
    let failed = report.workloads.filter { $0.cell(subject)?.failure != nil }.map(\.name)
    return check(target, failed.isEmpty ? "\(cells.count) workloads passed" : "FAILED: \(failed.joined(separator: ", "))",
                 failed.isEmpty)
  }
}
