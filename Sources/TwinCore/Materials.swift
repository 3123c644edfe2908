public import MirrorWire

/// How state becomes a picture, the same for every client (docs/twin.md).
public enum Materials {
  public static let healthColors: [Health: String] = [
    .ok: "#2ecc71", .warning: "#f1c40f", .critical: "#e74c3c", .down: "#555b61", .unknown: "#95a5a6",
  ]
  public static let kindColors: [NodeKind: String] = [
    .switch: "#3498db", .router: "#9b59b6", .accessPoint: "#1abc9c", .other: "#95a5a6",
  ]

  /// A host: its health's colour, glowing with its CPU; a down host dims.
  /// A network device (no metrics of its own): its kind's colour.
  public static func node(kind: NodeKind, health: Health, cpuPercent: Double?) -> Material {
    if kind != .host, health == .unknown {
      return Material(colorHex: kindColors[kind] ?? "#95a5a6", emissiveIntensity: 0.1, opacity: 1)
    }
    let glow = health == .down ? 0 : round2(0.2 + 0.8 * min(max(cpuPercent ?? 0, 0), 100) / 100)
    return Material(
      colorHex: healthColors[health] ?? "#95a5a6", emissiveIntensity: glow, opacity: health == .down ? 0.5 : 1)
  }

  /// A link: green under 50 % utilisation, yellow under 80 %, red above,
  /// grey when unknown; thicker and brighter the busier it is.
  public static func link(utilizationPercent: Double?) -> (material: Material, thickness: Double) {
    guard let u = utilizationPercent else {
      return (Material(colorHex: "#95a5a6", emissiveIntensity: 0, opacity: 1), 0.005)
    }
    let clamped = min(max(u, 0), 100)
    let color = clamped < 50 ? "#2ecc71" : clamped < 80 ? "#f1c40f" : "#e74c3c"
    return (
      Material(colorHex: color, emissiveIntensity: round2(clamped / 100), opacity: 1),
      round4(0.005 + 0.045 * clamped / 100)
    )
  }

  static func round2(_ v: Double) -> Double { (v * 100).rounded() / 100 }
  static func round4(_ v: Double) -> Double { (v * 10_000).rounded() / 10_000 }
}
