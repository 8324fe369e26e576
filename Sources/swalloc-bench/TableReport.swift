// The text report on standard output: workload x allocator (median time, ratio to the baseline, peak RSS),
// geometric means, memreturn's RSS after free, instructions per malloc+free pair, the DESIGN.md targets,
// and notes on failures and on what was missing.

struct TableReport {
  let report: Report

  private static let timeWidth = 8, ratioWidth = 6, rssWidth = 7, faultsWidth = 7
  private static var cellWidth: Int { timeWidth + ratioWidth + rssWidth + faultsWidth + 3 }

  func render() -> String {
    var lines: [String] = []
    let names = report.allocators.map(\.name)
    lines.append("swalloc-bench \(report.command): \(report.workloads.count) workloads x \(names.count) allocators, "
      + "\(report.repeats) repeat\(report.repeats == 1 ? "" : "s")\(report.quick ? " (quick)" : ""), \(report.date)")
    lines.append("time = median wall time, ratio = time / \(report.baseline)'s, "
      + "RSS = median peak RSS (ru_maxrss), faults = median minor page faults (ru_minflt); lower is better")
    for allocator in report.allocators where !allocator.variables.isEmpty {
      lines.append("\(allocator.name) runs with " + allocator.variables.sorted { $0.key < $1.key }
        .map { "\($0.key)=\($0.value)" }.joined(separator: " "))
    }
    lines.append("")
    lines += mainTable(names)
    if !report.pairInstructions.isEmpty {
      lines.append("")
      lines += pairTable(names)
    }
    if !report.targets.isEmpty {
      lines.append("")
      lines.append("DESIGN.md targets for swalloc:")
      for check in report.targets {
        lines.append("  \(Format.pad(check.verdict.rawValue.uppercased(), 10)) \(check.target): \(check.measured)")
      }
    }
    lines += notes()
    return lines.joined(separator: "\n") + "\n"
  }

  private func mainTable(_ names: [String]) -> [String] {
    let nameWidth = max(22, (report.workloads.map(\.name.count).max() ?? 0) + 2)
    var header = Format.pad("workload", nameWidth)
    var subheader = Format.pad("", nameWidth)
    for name in names {
      header += " | " + Format.pad(name, Self.cellWidth)
      subheader += " | " + Format.pad("time", Self.timeWidth, right: true)
        + Format.pad("ratio", Self.ratioWidth + 1, right: true)
        + Format.pad("RSS", Self.rssWidth + 1, right: true)
        + Format.pad("faults", Self.faultsWidth + 1, right: true)
    }
    var lines = [header, subheader, String(repeating: "-", count: subheader.count)]
    for workload in report.workloads {
      var line = Format.pad(workload.name, nameWidth)
      for name in names {
        line += " | " + cellText(workload, name)
      }
      lines.append(line)
    }
    lines.append(String(repeating: "-", count: subheader.count))

    var timeLine = Format.pad("geomean time ratio", nameWidth)
    var rssLine = Format.pad("geomean RSS ratio", nameWidth)
    for name in names {
      let mean = report.geometricMean(name)
      let coverage = mean.map { $0.workloadCount < $0.ofWorkloads ? "(\($0.workloadCount)/\($0.ofWorkloads))" : "" } ?? ""
      timeLine += " | " + Format.pad(Format.pad(coverage, Self.timeWidth, right: true)
        + Format.pad(mean?.timeRatio.map(Format.ratio) ?? "-", Self.ratioWidth + 1, right: true), Self.cellWidth)
      rssLine += " | " + Format.pad(Format.pad("", Self.timeWidth + Self.ratioWidth + 1)
        + Format.pad(mean?.rssRatio.map { Format.ratio($0) + "x" } ?? "-", Self.rssWidth + 1, right: true),
        Self.cellWidth)
    }
    lines.append(timeLine)
    lines.append(rssLine)

    if let memreturn = report.workloads.first(where: { $0.name == "memreturn" }) {
      var line = Format.pad("memreturn after free", nameWidth)
      for name in names {
        let value = memreturn.cell(name)?.medianMetric("rss_after_free_kib")
        line += " | " + Format.pad(Format.pad("", Self.timeWidth + Self.ratioWidth + 1)
          + Format.pad(value.map(Format.kib) ?? "-", Self.rssWidth + 1, right: true), Self.cellWidth)
      }
      lines.append(line + "   (RSS after free + purge delay)")
    }
    return lines
  }

  private func cellText(_ workload: WorkloadResult, _ name: String) -> String {
    guard let cell = workload.cell(name) else { return Format.pad("-", Self.cellWidth) }
    if let failure = cell.failure { return Format.pad("FAIL " + failure.status, Self.cellWidth) }
    guard let time = cell.medianWallSeconds, let rss = cell.medianRSSKiB else { return Format.pad("-", Self.cellWidth) }
    let ratio = workload.timeRatio(name, baseline: report.baseline).map(Format.ratio) ?? "-"
    return Format.pad(Format.seconds(time), Self.timeWidth, right: true) + Format.pad(ratio, Self.ratioWidth + 1, right: true)
      + Format.pad(Format.kib(rss), Self.rssWidth + 1, right: true)
      + Format.pad(cell.medianMinorFaults.map(Format.count) ?? "-", Self.faultsWidth + 1, right: true)
  }

  private func pairTable(_ names: [String]) -> [String] {
    var lines = ["Instructions per malloc+free pair (callgrind; difference of two runs; the loop's own "
      + "instructions listed apart):"]
    let labelWidth = 28, columnWidth = 11
    lines.append(Format.pad("", labelWidth) + names.map { Format.pad($0, columnWidth, right: true) }.joined())
    let rows: [(String, KeyPath<PairInstructions, Double?>)] = [
      ("malloc", \.mallocInstructions), ("free", \.freeInstructions),
      ("loop (benchmark's own)", \.loopInstructions), ("total per pair", \.totalInstructions),
    ]
    for mode in Callgrind.modes {
      let title = mode == "fixed" ? "malloc(32)/free" : "16..512 B, batches of 64"
      lines.append("  \(title)")
      for (label, key) in rows {
        var line = Format.pad("    " + label, labelWidth)
        for name in names {
          let figure = report.pairInstructions.first { $0.allocator == name && $0.mode == mode }
          let text = figure?.failure != nil ? "FAIL" : figure?[keyPath: key].map(Format.instructions) ?? "-"
          line += Format.pad(text, columnWidth, right: true)
        }
        lines.append(line)
      }
    }
    return lines
  }

  private func notes() -> [String] {
    var lines: [String] = []
    for missing in report.missingAllocators {
      lines.append("MISSING \(missing.name): \(missing.reason)")
    }
    for (name, reason) in report.skippedWorkloads.sorted(by: { $0.key < $1.key }) {
      lines.append("SKIPPED \(name): \(reason)")
    }
    for workload in report.workloads {
      for cell in workload.cells {
        guard let failure = cell.failure else { continue }
        lines.append("FAIL \(workload.name) on \(cell.allocator) (repeat \(failure.repeatIndex)): \(failure.status)")
        if !failure.detail.isEmpty {
          lines += failure.detail.split(separator: "\n").map { "    " + $0 }
        }
      }
    }
    for figure in report.pairInstructions {
      if let failure = figure.failure { lines.append("FAIL callgrind \(figure.mode) on \(figure.allocator): \(failure)") }
    }
    return lines.isEmpty ? [] : [""] + lines
  }
}
