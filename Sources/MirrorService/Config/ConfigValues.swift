import Foundation

/// A configuration key that is missing or wrong; names the key and where
/// its value came from.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
  public var key: String
  public var problem: String
  public var source: String

  public init(key: String, problem: String, source: String) {
    self.key = key
    self.problem = problem
    self.source = source
  }

  public var description: String { "configuration key '\(key)' (from \(source)): \(problem)" }
}

/// Layered configuration: flags override the environment, which overrides
/// the file, which overrides defaults. Keys are dotted (`nats.urls`); the
/// environment variable of a key is `MIRROR_` + the key upper-cased with
/// `.` and `-` as `_` (`MIRROR_NATS_URLS`).
public struct ConfigValues: Sendable {
  private var file: [String: String]
  private var fileName: String
  private var environment: [String: String]
  private var overrides: [String: String]

  public init(
    fileValues: [String: String] = [:], fileName: String = "file", environment: [String: String] = [:],
    overrides: [String: String] = [:]
  ) {
    self.file = fileValues
    self.fileName = fileName
    self.environment = environment
    self.overrides = overrides
  }

  /// Reads a YAML file (nested maps become dotted keys, lists become
  /// comma-separated values).
  public static func load(file path: String?, environment: [String: String], overrides: [String: String]) throws
    -> ConfigValues
  {
    guard let path else {
      return ConfigValues(fileValues: [:], fileName: "file", environment: environment, overrides: overrides)
    }
    let text: String
    do {
      text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
      throw ConfigError(
        key: "--config", problem: "cannot read \(path): \(error.localizedDescription)", source: "flags")
    }
    return try parse(yaml: text, file: path, environment: environment, overrides: overrides)
  }

  /// Reads the text of a YAML configuration file; `file` names it in
  /// errors. What `load` does once it has read the file.
  public static func parse(
    yaml text: String, file path: String, environment: [String: String] = [:], overrides: [String: String] = [:]
  ) throws(ConfigError) -> ConfigValues {
    var values: [String: String] = [:]
    let parsed: Any?
    do {
      parsed = try YAMLValue.untyped(text, file: path)
    } catch {
      throw ConfigError(key: "--config", problem: "\(path) is not valid YAML: \(error)", source: path)
    }
    if let parsed {
      guard let map = parsed as? [String: Any] else {
        throw ConfigError(key: "--config", problem: "\(path) must hold a map of settings", source: path)
      }
      flatten(map, prefix: "", into: &values)
    }
    return ConfigValues(fileValues: values, fileName: path, environment: environment, overrides: overrides)
  }

  private static func flatten(_ map: [String: Any], prefix: String, into out: inout [String: String]) {
    for (key, value) in map {
      let full = prefix.isEmpty ? key : "\(prefix).\(key)"
      switch value {
      case let nested as [String: Any]: flatten(nested, prefix: full, into: &out)
      case let list as [Any]: out[full] = list.map { "\($0)" }.joined(separator: ",")
      case is NSNull: continue
      default: out[full] = "\(value)"
      }
    }
  }

  public static func environmentName(of key: String) -> String {
    "MIRROR_" + key.uppercased().replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
  }

  /// The raw value and where it came from, by precedence.
  public func lookup(_ key: String) -> (value: String, source: String)? {
    if let v = overrides[key] { return (v, "flags") }
    let env = Self.environmentName(of: key)
    if let v = environment[env] { return (v, "environment \(env)") }
    if let v = file[key] { return (v, fileName) }
    return nil
  }

  public func string(_ key: String) -> String? { lookup(key)?.value }

  /// The file's keys directly under `prefix` (`reflector.label.rack` →
  /// `rack`), with their values; for maps such as labels.
  public func children(of prefix: String) -> [(key: String, value: String)] {
    let p = prefix + "."
    return file.keys.filter { $0.hasPrefix(p) }.sorted().map { (String($0.dropFirst(p.count)), file[$0]!) }
  }

  public func string(_ key: String, default value: String) -> String { lookup(key)?.value ?? value }

  public func list(_ key: String, default value: [String]) -> [String] {
    guard let raw = lookup(key)?.value else { return value }
    return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
  }

  public func int(_ key: String, default value: Int, range: ClosedRange<Int>? = nil) throws(ConfigError) -> Int {
    guard let (raw, source) = lookup(key) else { return value }
    guard let n = Int(raw.trimmingCharacters(in: .whitespaces)) else {
      throw ConfigError(key: key, problem: "'\(raw)' is not an integer", source: source)
    }
    if let range, !range.contains(n) {
      throw ConfigError(key: key, problem: "\(n) is outside \(range.lowerBound)...\(range.upperBound)", source: source)
    }
    return n
  }

  public func bool(_ key: String, default value: Bool) throws(ConfigError) -> Bool {
    guard let (raw, source) = lookup(key) else { return value }
    switch raw.lowercased() {
    case "true", "yes", "on", "1": return true
    case "false", "no", "off", "0": return false
    default: throw ConfigError(key: key, problem: "'\(raw)' is not a boolean (true/false)", source: source)
    }
  }

  /// A duration such as `500ms`, `5s`, `2m`, `1h`, `30d`.
  public func duration(_ key: String, default value: Duration) throws(ConfigError) -> Duration {
    guard let (raw, source) = lookup(key) else { return value }
    guard let d = Self.parseDuration(raw) else {
      throw ConfigError(key: key, problem: "'\(raw)' is not a duration (e.g. 500ms, 5s, 2m, 1h, 30d)", source: source)
    }
    return d
  }

  public func oneOf<E: RawRepresentable & CaseIterable>(_ key: String, default value: E) throws(ConfigError) -> E
  where E.RawValue == String {
    guard let (raw, source) = lookup(key) else { return value }
    guard let v = E(rawValue: raw.lowercased()) else {
      let allowed = E.allCases.map(\.rawValue).joined(separator: ", ")
      throw ConfigError(key: key, problem: "'\(raw)' is not one of: \(allowed)", source: source)
    }
    return v
  }

  public static func parseDuration(_ raw: String) -> Duration? {
    let s = raw.trimmingCharacters(in: .whitespaces).lowercased()
    let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
    for (suffix, seconds) in units where s.hasSuffix(suffix) {
      // Int64(exactly:): nil, not a crash, beyond Int64 milliseconds.
      guard let n = Double(s.dropLast(suffix.count)), n >= 0, n.isFinite,
        let ms = Int64(exactly: (n * seconds * 1000).rounded())
      else { return nil }
      return .milliseconds(ms)
    }
    return nil
  }
}
