import Foundation
public import Logging

#if canImport(Glibc)
  import Glibc
#endif

/// Writes one JSON object per line to standard error: time, level, service,
/// message, and the metadata as fields.
public struct JSONLogHandler: LogHandler {
  public var metadata: Logger.Metadata = [:]
  public var logLevel: Logger.Level
  let label: String
  let service: String

  public init(label: String, service: String, level: Logger.Level) {
    self.label = label
    self.service = service
    self.logLevel = level
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var fields: [String: String] = [:]
    for (k, v) in metadata { fields[k] = "\(v)" }
    if let extra = event.metadata { for (k, v) in extra { fields[k] = "\(v)" } }
    var line = "{\"ts\":\(Self.quote(Self.timestamp())),\"level\":\(Self.quote(event.level.rawValue))"
    line +=
      ",\"service\":\(Self.quote(service)),\"logger\":\(Self.quote(label)),\"msg\":\(Self.quote("\(event.message)"))"
    for key in fields.keys.sorted() { line += ",\(Self.quote(key)):\(Self.quote(fields[key]!))" }
    line += "}\n"
    // One write(2) per line, so lines from several threads never interleave.
    var bytes = Array(line.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
  }

  static func timestamp() -> String {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    var t = time_t(ts.tv_sec)
    var tm = tm()
    gmtime_r(&t, &tm)
    return String(
      format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
      tm.tm_min, tm.tm_sec, Int(ts.tv_nsec / 1_000_000))
  }

  /// A JSON string literal.
  public static func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}
