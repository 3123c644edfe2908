import Foundation
import Yams

/// A problem in a YAML file, with the file and line it is on.
public struct YAMLFileError: Error, CustomStringConvertible, Equatable {
  public var file: String
  public var line: Int
  public var problem: String

  public init(file: String, line: Int, problem: String) {
    self.file = file
    self.line = line
    self.problem = problem
  }

  public var description: String { "\(file):\(line): \(problem)" }
}

/// One node of a YAML document, read with typed accessors whose errors name
/// the file and line (for hand-written files: rules, inventories).
public struct YAMLValue {
  let node: Node
  public let file: String
  /// Where this value sits, e.g. `rules[2].for`, for messages.
  public let path: String

  /// Parses `text`; an empty document is an empty map.
  public static func parse(_ text: String, file: String) throws(YAMLFileError) -> YAMLValue {
    do {
      let node = try Yams.compose(yaml: text) ?? Node.mapping(Node.Mapping([]))
      return YAMLValue(node: node, file: file, path: "")
    } catch let e as YamlError {
      throw YAMLFileError(file: file, line: Self.line(of: e), problem: "not valid YAML: \(Self.summary(of: e))")
    } catch {
      throw YAMLFileError(file: file, line: 1, problem: "not valid YAML: \(error)")
    }
  }

  /// Reads and parses a file.
  public static func load(_ path: String) throws(YAMLFileError) -> YAMLValue {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw YAMLFileError(file: path, line: 0, problem: "cannot read the file")
    }
    return try parse(String(decoding: data, as: UTF8.self), file: path)
  }

  public var line: Int { node.mark?.line ?? 1 }

  public func error(_ problem: String) -> YAMLFileError {
    YAMLFileError(file: file, line: line, problem: path.isEmpty ? problem : "\(path): \(problem)")
  }

  private func child(_ n: Node, _ suffix: String) -> YAMLValue {
    YAMLValue(
      node: n, file: file, path: path.isEmpty ? suffix : (suffix.hasPrefix("[") ? path + suffix : "\(path).\(suffix)"))
  }

  // MARK: Maps

  /// The keys and values of a map, in file order.
  public func entries() throws(YAMLFileError) -> [(key: String, value: YAMLValue)] {
    guard let mapping = node.mapping else { throw error("must be a map") }
    return mapping.map { (key: $0.key.string ?? "", value: child($0.value, $0.key.string ?? "?")) }
  }

  /// Fails on a key outside `allowed` (a typo should not be silently ignored).
  public func onlyKeys(_ allowed: Set<String>) throws(YAMLFileError) {
    guard let mapping = node.mapping else { throw error("must be a map") }
    for (k, _) in mapping {
      let key = k.string ?? ""
      if !allowed.contains(key) {
        let known = allowed.sorted().joined(separator: ", ")
        throw YAMLFileError(
          file: file, line: k.mark?.line ?? line,
          problem: "\(path.isEmpty ? "" : path + ": ")unknown key '\(key)' (known: \(known))")
      }
    }
  }

  public subscript(key: String) -> YAMLValue? {
    guard let v = node.mapping?[key] else { return nil }
    if case .scalar(let s) = v,
      s.tag == Tag(.null) || (s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string))
    {
      return nil
    }
    return child(v, key)
  }

  public func required(_ key: String) throws(YAMLFileError) -> YAMLValue {
    guard node.mapping != nil else { throw error("must be a map") }
    guard let v = self[key] else { throw error("'\(key)' is required") }
    return v
  }

  // MARK: Scalars and lists

  public func string() throws(YAMLFileError) -> String {
    guard case .scalar(let s) = node else { throw error("must be a single value") }
    return s.string
  }

  public func double() throws(YAMLFileError) -> Double {
    guard let d = node.float ?? node.int.map(Double.init), d.isFinite else { throw error("must be a number") }
    return d
  }

  public func int(in range: ClosedRange<Int>? = nil) throws(YAMLFileError) -> Int {
    guard let i = node.int else { throw error("must be a whole number") }
    if let range, !range.contains(i) { throw error("must be between \(range.lowerBound) and \(range.upperBound)") }
    return i
  }

  public func bool() throws(YAMLFileError) -> Bool {
    guard let b = node.bool else { throw error("must be true or false") }
    return b
  }

  /// A duration such as `500ms`, `5s`, `2m`, `1h`, `30d`.
  public func duration() throws(YAMLFileError) -> Duration {
    guard let raw = node.string, let d = ConfigValues.parseDuration(raw) else {
      throw error("must be a duration such as 500ms, 5s, 2m, 1h")
    }
    return d
  }

  public func oneOf(_ allowed: [String]) throws(YAMLFileError) -> String {
    let s = try string()
    guard allowed.contains(s) else { throw error("'\(s)' is not one of: \(allowed.joined(separator: ", "))") }
    return s
  }

  public func list() throws(YAMLFileError) -> [YAMLValue] {
    guard let sequence = node.sequence else { throw error("must be a list") }
    return sequence.enumerated().map { child($0.element, "[\($0.offset)]") }
  }

  /// A list of strings; a single string counts as a list of one.
  public func strings() throws(YAMLFileError) -> [String] {
    if case .scalar = node { return [try string()] }
    var out: [String] = []
    for v in try list() { out.append(try v.string()) }
    return out
  }

  /// A map of string to string (labels, headers).
  public func stringMap() throws(YAMLFileError) -> [String: String] {
    var out: [String: String] = [:]
    for (k, v) in try entries() { out[k] = try v.string() }
    return out
  }

  private static func line(of e: YamlError) -> Int {
    switch e {
    case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
    default: 1
    }
  }

  private static func summary(of e: YamlError) -> String {
    switch e {
    case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): problem
    default: "\(e)"
    }
  }
}
