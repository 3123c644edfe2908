import Foundation
public import MirrorService
public import MirrorWire

/// Message templates: `{{name}}` is replaced by a field of the alert;
/// `{{labels.KEY}}` by one of its labels. Fields: host, rule, severity,
/// state, status (FIRING / RESOLVED / REPEAT), summary, value, threshold,
/// series, started (UTC time).
public enum Template {
  static let fields: Set<String> = [
    "host", "rule", "severity", "state", "status", "summary", "value", "threshold", "series", "started",
  ]

  /// The template text, if every placeholder in it is known.
  public static func checked(_ v: YAMLValue) throws(YAMLFileError) -> String {
    let text = try v.string()
    for name in placeholders(text) where !fields.contains(name) && !name.hasPrefix("labels.") {
      throw v.error("unknown placeholder {{\(name)}} (known: \(fields.sorted().joined(separator: ", ")), labels.KEY)")
    }
    return text
  }

  static func placeholders(_ text: String) -> [String] {
    var out: [String] = []
    var rest = Substring(text)
    while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
      out.append(rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces))
      rest = rest[close.upperBound...]
    }
    return out
  }

  /// Fills `text` for `alert`; `status` is how this message sees it.
  public static func render(_ text: String, _ alert: Alert, status: String) -> String {
    var out = ""
    var rest = Substring(text)
    while let open = rest.range(of: "{{"), let close = rest[open.upperBound...].range(of: "}}") {
      out += rest[..<open.lowerBound]
      let name = rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)
      out += value(name, alert, status: status)
      rest = rest[close.upperBound...]
    }
    return out + rest
  }

  static func value(_ name: String, _ a: Alert, status: String) -> String {
    switch name {
    case "host": return a.host
    case "rule": return a.rule
    case "severity": return severityName(a.severity)
    case "state": return stateName(a.state)
    case "status": return status
    case "summary": return a.summary
    case "value": return format(a.value)
    case "threshold": return format(a.threshold)
    case "series": return series(of: a)
    case "started":
      let f = ISO8601DateFormatter()
      return f.string(from: Date(timeIntervalSince1970: Double(a.startedAtUnixMs) / 1000))
    default:
      if name.hasPrefix("labels.") {
        let key = name.dropFirst("labels.".count)
        return a.labels.first { $0.key == key }?.value ?? ""
      }
      return ""
    }
  }

  /// The label keys that name a series (see Metric.seriesLabel).
  static let seriesKeys: Set<String> = [
    "mount", "device", "sensor", "gpu", "interface", "collector", "target", "source", "series",
  ]

  /// Which mount, device, sensor... the alert is about ("" for the host).
  public static func series(of a: Alert) -> String {
    a.labels.first { seriesKeys.contains($0.key) }?.value ?? ""
  }

  /// A number as people read it: no more than one decimal, none when whole.
  public static func format(_ v: Double) -> String {
    guard v.isFinite else { return "\(v)" }
    let r = (v * 10).rounded() / 10
    return r == r.rounded() && abs(r) < 1e15 ? String(Int64(r)) : String(format: "%.1f", r)
  }
}

public func severityName(_ s: Severity) -> String {
  switch s {
  case .info: "info"
  case .warning: "warning"
  case .critical: "critical"
  default: "unspecified"
  }
}

public func stateName(_ s: AlertState) -> String {
  switch s {
  case .pending: "pending"
  case .firing: "firing"
  case .resolved: "resolved"
  default: "unspecified"
  }
}
