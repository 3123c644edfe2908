import Foundation

/// Plain-text tables and human units for the terminal.
enum Format {
  static func table(_ header: [String], _ rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
      for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
    }
    func line(_ cells: [String]) -> String {
      cells.enumerated().map { i, c in
        i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n")
  }

  static func bytes(_ v: Double) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var v = v
    var i = 0
    while v >= 1024, i < units.count - 1 {
      v /= 1024
      i += 1
    }
    return i == 0 ? "\(Int(v)) B" : String(format: "%.1f %@", v, units[i])
  }

  static func percent(_ v: Double?) -> String { v.map { String(format: "%.1f", $0) } ?? "-" }

  static func age(_ ms: Int64, now: Int64) -> String {
    guard ms > 0 else { return "never" }
    let s = max(0, (now - ms) / 1000)
    if s < 120 { return "\(s)s" }
    if s < 7200 { return "\(s / 60)m" }
    if s < 172_800 { return "\(s / 3600)h" }
    return "\(s / 86_400)d"
  }

}
