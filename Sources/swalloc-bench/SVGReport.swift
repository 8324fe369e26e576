// The --svg chart: two panels, wall time and peak RSS relative to the baseline allocator, one group of bars
// per workload (plus the geometric mean), one bar per allocator, on a log2 scale with bars drawn from 1x.
// Plain SVG text with a legend, axis labels and a tooltip on every bar.
import Foundation

struct SVGReport {
  let report: Report

  private static let colors: [String: String] = [
    "swalloc": "#e6550d", "jemalloc": "#3182bd", "mimalloc": "#31a354", "tcmalloc": "#756bb1", "glibc": "#7f7f7f",
  ]
  private static let barWidth = 9.0, groupGap = 14.0, left = 70.0, right = 20.0
  private static let plotHeight = 230.0, labelSpace = 110.0, panelTitleSpace = 34.0

  /// One bar: its value (nil: not measured) and whether the run failed.
  private struct Bar {
    var allocator: String
    var value: Double?
    var failed: Bool
    var tooltip: String
  }

  private struct Group {
    var label: String
    var bars: [Bar]
  }

  func render() -> String {
    let names = report.allocators.map(\.name)
    let timeGroups = groups(names, ratio: { $0.timeRatio($1, baseline: report.baseline) },
                            absolute: { $0.medianWallSeconds.map(Format.seconds) }, mean: \.timeRatio)
    var rssGroups = groups(names, ratio: { $0.rssRatio($1, baseline: report.baseline) },
                           absolute: { $0.medianRSSKiB.map(Format.kib) }, mean: \.rssRatio)
    if let memreturn = afterFreeGroup(names) { rssGroups.insert(memreturn, at: rssGroups.count - 1) }

    let groupCount = Double(max(timeGroups.count, rssGroups.count))
    let groupWidth = Double(names.count) * Self.barWidth + Self.groupGap
    let width = max(760, Self.left + groupCount * groupWidth + Self.right)
    let panelHeight = Self.panelTitleSpace + Self.plotHeight + Self.labelSpace
    let top = 78.0
    let height = top + 2 * panelHeight + 10

    var svg = """
      <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
      viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="11">
      <rect width="100%" height="100%" fill="white"/>
      <text x="\(Self.left)" y="22" font-size="16" font-weight="bold">swalloc-bench: allocators relative to \
      \(escape(report.baseline)) (lower is better)</text>
      <text x="\(Self.left)" y="40" fill="#444">\(escape(report.date)), \(report.repeats) repeat\
      \(report.repeats == 1 ? "" : "s") per allocator, medians\(report.quick ? ", quick run" : ""); \
      log scale, bars start at 1x</text>

      """
    svg += legend(names, y: 58)
    svg += panel(title: "Wall time / \(report.baseline)", axis: "time ratio", groups: timeGroups, names: names,
                 top: top, width: width)
    svg += panel(title: "Peak RSS / \(report.baseline)", axis: "RSS ratio", groups: rssGroups, names: names,
                 top: top + panelHeight, width: width)
    svg += "</svg>\n"
    return svg
  }

  private func groups(_ names: [String], ratio: (WorkloadResult, String) -> Double?,
                      absolute: (Cell) -> String?, mean: KeyPath<GeometricMean, Double?>) -> [Group] {
    var result = report.workloads.map { workload in
      Group(label: workload.name, bars: names.map { name in
        let cell = workload.cell(name)
        let value = ratio(workload, name)
        let failed = cell?.failure != nil
        let text = failed ? "FAIL \(cell!.failure!.status)"
          : "\(cell.flatMap(absolute) ?? "-"), \(value.map(Format.ratio) ?? "-")x \(report.baseline)"
        return Bar(allocator: name, value: value, failed: failed, tooltip: "\(workload.name), \(name): \(text)")
      })
    }
    result.append(Group(label: "geometric mean", bars: names.map { name in
      let value = report.geometricMean(name)?[keyPath: mean]
      return Bar(allocator: name, value: value, failed: false,
                 tooltip: "geometric mean, \(name): \(value.map(Format.ratio) ?? "-")x \(report.baseline)")
    }))
    return result
  }

  /// memreturn's RSS after free and the purge delay, relative to the baseline's.
  private func afterFreeGroup(_ names: [String]) -> Group? {
    guard let workload = report.workloads.first(where: { $0.name == "memreturn" }) else { return nil }
    let base = workload.cell(report.baseline)?.medianMetric("rss_after_free_kib")
    return Group(label: "memreturn after free", bars: names.map { name in
      let cell = workload.cell(name)
      let value = cell?.medianMetric("rss_after_free_kib")
      let ratio = Statistics.ratio(value, base)
      return Bar(allocator: name, value: ratio, failed: cell?.failure != nil,
                 tooltip: "memreturn RSS after free, \(name): \(value.map(Format.kib) ?? "-")")
    })
  }

  private func legend(_ names: [String], y: Double) -> String {
    var x = Self.left
    var text = ""
    for name in names {
      text += "<rect x=\"\(x)\" y=\"\(y - 10)\" width=\"12\" height=\"12\" fill=\"\(color(name))\"/>"
      text += "<text x=\"\(x + 17)\" y=\"\(y)\">\(escape(name))</text>\n"
      x += 30 + Double(name.count) * 7
    }
    text += "<text x=\"\(x)\" y=\"\(y)\" fill=\"#b00\" font-weight=\"bold\">✕</text>"
    text += "<text x=\"\(x + 14)\" y=\"\(y)\">failed</text>\n"
    return text
  }

  private func panel(title: String, axis: String, groups: [Group], names: [String], top: Double, width: Double) -> String {
    let values = groups.flatMap { $0.bars.compactMap(\.value) }.filter { $0 > 0 }
    // The scale covers the data and at least 0.5x..2x, in whole powers of two, clipped to 1/64..128.
    let low = max(-6, min(-1, floor(log2(values.min() ?? 1))))
    let high = min(7, max(1, ceil(log2(values.max() ?? 1))))
    let plotTop = top + Self.panelTitleSpace
    func y(_ value: Double) -> Double {
      let exponent = min(high, max(low, log2(value)))
      return plotTop + (high - exponent) / (high - low) * Self.plotHeight
    }

    var svg = "<text x=\"\(Self.left)\" y=\"\(top + 20)\" font-size=\"14\" font-weight=\"bold\">\(escape(title))</text>\n"
    // Axis label, rotated along the y axis.
    let middle = plotTop + Self.plotHeight / 2
    svg += "<text x=\"16\" y=\"\(middle)\" transform=\"rotate(-90 16 \(middle))\" text-anchor=\"middle\">"
      + "\(escape(axis)) (log scale)</text>\n"
    for exponent in stride(from: low, through: high, by: 1) {
      let value = pow(2, exponent)
      let lineY = y(value)
      let isOne = exponent == 0
      svg += "<line x1=\"\(Self.left)\" x2=\"\(width - Self.right)\" y1=\"\(lineY)\" y2=\"\(lineY)\" "
        + "stroke=\"\(isOne ? "#000" : "#ddd")\" stroke-width=\"\(isOne ? 1.2 : 1)\"/>"
      let label = value >= 1 ? String(format: "%.0fx", value) : String(format: "%.3gx", value)
      svg += "<text x=\"\(Self.left - 6)\" y=\"\(lineY + 4)\" text-anchor=\"end\">\(label)</text>\n"
    }
    svg += "<line x1=\"\(Self.left)\" x2=\"\(Self.left)\" y1=\"\(plotTop)\" y2=\"\(plotTop + Self.plotHeight)\" stroke=\"#000\"/>\n"

    let groupWidth = Double(names.count) * Self.barWidth + Self.groupGap
    for (index, group) in groups.enumerated() {
      let groupX = Self.left + Self.groupGap / 2 + Double(index) * groupWidth
      for (slot, bar) in group.bars.enumerated() {
        let x = groupX + Double(slot) * Self.barWidth
        let tooltip = "<title>\(escape(bar.tooltip))</title>"
        if bar.failed {
          svg += "<text x=\"\(x + Self.barWidth / 2)\" y=\"\(y(1) - 3)\" text-anchor=\"middle\" fill=\"#b00\" "
            + "font-weight=\"bold\">✕\(tooltip)</text>\n"
        } else if let value = bar.value, value > 0 {
          // A bar from 1x to the value; at least 3 px tall, so the baseline (always 1x) shows as a mark.
          let (y1, y2) = (y(1), y(value))
          let height = max(3, abs(y2 - y1))
          let top = abs(y2 - y1) < 3 ? y1 - 1.5 : min(y1, y2)
          svg += "<rect x=\"\(x)\" y=\"\(top)\" width=\"\(Self.barWidth - 1)\" height=\"\(height)\" "
            + "fill=\"\(color(bar.allocator))\">\(tooltip)</rect>\n"
          let exponent = log2(value)
          if exponent < low || exponent > high {
            // Off the scale: the bar stops at the edge and its value is written past the end.
            let labelY = exponent < low ? y2 + 9 : y2 - 3
            svg += "<text x=\"\(x + Self.barWidth / 2)\" y=\"\(labelY)\" text-anchor=\"middle\" font-size=\"8\">"
              + "\(Format.ratio(value))</text>\n"
          }
        }
      }
      if index == groups.count - 1 {
        // A dashed rule sets the geometric mean apart from the workloads.
        let ruleX = groupX - Self.groupGap / 2
        svg += "<line x1=\"\(ruleX)\" x2=\"\(ruleX)\" y1=\"\(plotTop)\" y2=\"\(plotTop + Self.plotHeight)\" "
          + "stroke=\"#888\" stroke-dasharray=\"4 3\"/>\n"
      }
      // The workload name, slanted under its group.
      let labelX = groupX + Double(names.count) * Self.barWidth / 2
      let labelY = plotTop + Self.plotHeight + 12
      svg += "<text x=\"\(labelX)\" y=\"\(labelY)\" text-anchor=\"end\" "
        + "transform=\"rotate(-40 \(labelX) \(labelY))\"\(group.label == "geometric mean" ? " font-weight=\"bold\"" : "")>"
        + "\(escape(group.label))</text>\n"
    }
    return svg
  }

  private func color(_ name: String) -> String { Self.colors[name] ?? "#17becf" }

  private func escape(_ text: String) -> String {
    text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
  }
}
