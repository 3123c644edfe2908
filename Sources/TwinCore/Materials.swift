import Foundation
public import MirrorWire

/// How state becomes a picture, the same for every client (docs/twin.md).
public enum Materials {
  public static let healthColors: [Health: String] = [
    .ok: "#2ecc71", .warning: "#f1c40f", .critical: "#e74c3c", .down: "#555b61", .unknown: "#9e9e9e",
  ]
  /// Link utilisation, on a scale of its own (blue, orange, dark red), so a
  /// quiet link is not read as a healthy host.
  public static let linkColors: [(below: Double, color: String)] = [
    (50, "#4aa3df"), (80, "#e67e22"), (.infinity, "#c0392b"),
  ]
  public static let linkUnknownColor = "#7f8c8d"

  /// A node: its health's colour, glowing with its CPU; a down host dims.
  /// A node that never reported (a switch, an access point, a host not yet
  /// seen) is the neutral "unknown" grey whatever its kind: the kind is told
  /// by shape and name, never by a colour that could pass for a state.
  public static func node(kind: NodeKind, health: Health, cpuPercent: Double?) -> Material {
    if health == .unknown { return Material(colorHex: healthColors[.unknown]!, emissiveIntensity: 0, opacity: 1) }
    let glow = health == .down ? 0 : round2(0.2 + 0.8 * min(max(cpuPercent ?? 0, 0), 100) / 100)
    return Material(
      colorHex: healthColors[health] ?? healthColors[.unknown]!, emissiveIntensity: glow,
      opacity: health == .down ? 0.5 : 1)
  }

  /// A link: blue under 50 % utilisation, orange under 80 %, dark red
  /// above, grey-blue when unknown; thicker and brighter the busier it is.
  public static func link(utilizationPercent: Double?) -> (material: Material, thickness: Double) {
    guard let u = utilizationPercent else {
      return (Material(colorHex: linkUnknownColor, emissiveIntensity: 0, opacity: 1), 0.005)
    }
    let clamped = min(max(u, 0), 100)
    let color = linkColors.first { clamped < $0.below }?.color ?? linkColors.last!.color
    return (
      Material(colorHex: color, emissiveIntensity: round2(clamped / 100), opacity: 1),
      round4(0.005 + 0.045 * clamped / 100)
    )
  }

  /// What the colours mean, for a legend (the glTF carries it in its
  /// scene's extras; the console draws the same).
  public static var legend: [String: [String: String]] {
    [
      "health": Dictionary(
        uniqueKeysWithValues: healthColors.map {
          ("\($0.key)".replacingOccurrences(of: "HEALTH_", with: "").lowercased(), $0.value)
        }),
      "linkUtilization": [
        "below50": linkColors[0].color, "below80": linkColors[1].color,
        "atLeast80": linkColors[2].color, "unknown": linkUnknownColor,
      ],
    ]
  }

  static func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
  static func round4(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }
}
