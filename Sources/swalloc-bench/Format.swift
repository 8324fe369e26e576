// Number formatting shared by the table, the SVG and the progress lines.
import Foundation

enum Format {
  /// "0.412s", "12.35s", "123.4s".
  static func seconds(_ value: Double) -> String {
    value < 10 ? String(format: "%.3fs", value) : value < 100 ? String(format: "%.2fs", value)
                                                               : String(format: "%.1fs", value)
  }

  /// A KiB count as "812K", "12.3M", "1.23G".
  static func kib(_ value: Double) -> String {
    if value < 1024 { return String(format: "%.0fK", value) }
    let mib = value / 1024
    if mib < 100 { return String(format: "%.1fM", mib) }
    if mib < 1024 { return String(format: "%.0fM", mib) }
    return String(format: "%.2fG", mib / 1024)
  }

  /// A count as "812", "18.2K", "1.46M".
  static func count(_ value: Double) -> String {
    if value < 1000 { return String(format: "%.0f", value) }
    if value < 100_000 { return String(format: "%.1fK", value / 1000) }
    if value < 1_000_000 { return String(format: "%.0fK", value / 1000) }
    return String(format: "%.2fM", value / 1_000_000)
  }

  /// "1.08".
  static func ratio(_ value: Double) -> String {
    value < 10 ? String(format: "%.2f", value) : value < 100 ? String(format: "%.1f", value)
                                                              : String(format: "%.0f", value)
  }

  /// "21.3".
  static func instructions(_ value: Double) -> String { String(format: "%.1f", value) }

  /// The last `lines` non-empty lines of `text`, at most 600 characters.
  static func tail(_ text: String, lines: Int) -> String {
    let kept = text.split(separator: "\n", omittingEmptySubsequences: true).suffix(lines).joined(separator: "\n")
    return kept.count > 600 ? "…" + String(kept.suffix(600)) : kept
  }

  static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    guard text.count < width else { return text }
    let padding = String(repeating: " ", count: width - text.count)
    return right ? padding + text : text + padding
  }
}
