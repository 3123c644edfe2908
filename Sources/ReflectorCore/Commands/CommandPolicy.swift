import Foundation
import MirrorService
import Yams

#if canImport(Glibc)
  import Glibc
#endif

/// What this host allows remote commands to do, from a local file the
/// router cannot change. Without a file: built-in actions only.
///
/// ```yaml
/// allow_shell: false            # may a dispatch ask for /bin/sh -c?
/// builtins: [restart_service, wake_on_lan, collect_now]
/// services: ["nginx", "postgresql@*"]   # units restart_service may touch
/// commands:                     # argv patterns; * one argument, ** the rest
///   - ["uptime"]
///   - ["/usr/bin/df", "-h", "**"]
///   - ["systemctl", "status", "*"]
/// run_as: nobody                # user to run as (when the agent is root)
/// sandbox: bubblewrap           # or none
/// output_limit: 1048576         # bytes, then `truncated`
/// timeout_max: 10m              # longest timeout a dispatch may ask for
/// ```
public struct CommandPolicy: Sendable, Hashable {
  public var allowShell = false
  public var builtins: Set<String> = ["restart_service", "wake_on_lan", "collect_now"]
  public var services: [String] = ["*"]
  public var commands: [[String]] = []
  public var runAs: String?
  public var sandbox = false
  public var outputLimit = 1 << 20
  public var timeoutMax: Duration = .seconds(600)

  public init() {}

  /// Reads the policy file; errors name the file and what is wrong.
  public static func load(_ path: String) throws -> CommandPolicy {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
      throw ConfigError(key: "commands.policy", problem: "cannot read \(path)", source: path)
    }
    let yaml: Any?
    do { yaml = try Yams.load(yaml: text) } catch {
      throw ConfigError(key: "commands.policy", problem: "not valid YAML: \(error)", source: path)
    }
    var p = CommandPolicy()
    guard let map = yaml as? [String: Any] else {
      if yaml == nil { return p }
      throw ConfigError(key: "commands.policy", problem: "must be a map", source: path)
    }
    func fail(_ key: String, _ problem: String) -> ConfigError {
      ConfigError(key: "policy.\(key)", problem: problem, source: path)
    }
    for (key, value) in map {
      switch key {
      case "allow_shell":
        guard let b = value as? Bool else { throw fail(key, "must be true or false") }
        p.allowShell = b
      case "builtins":
        guard let list = value as? [String] else { throw fail(key, "must be a list") }
        let known: Set<String> = ["restart_service", "wake_on_lan", "collect_now"]
        for b in list where !known.contains(b) { throw fail(key, "unknown built-in '\(b)'") }
        p.builtins = Set(list)
      case "services":
        guard let list = value as? [String] else { throw fail(key, "must be a list of unit patterns") }
        p.services = list
      case "commands":
        guard let list = value as? [Any] else { throw fail(key, "must be a list of argv patterns") }
        p.commands = try list.map { entry in
          guard let argv = entry as? [Any], !argv.isEmpty else { throw fail(key, "each entry is a non-empty list") }
          return argv.map { "\($0)" }
        }
      case "run_as":
        guard let u = value as? String, !u.isEmpty else { throw fail(key, "must be a user name") }
        p.runAs = u
      case "sandbox":
        guard let s = value as? String, s == "bubblewrap" || s == "none" else {
          throw fail(key, "must be bubblewrap or none")
        }
        p.sandbox = s == "bubblewrap"
      case "output_limit":
        guard let n = value as? Int, n > 0 else { throw fail(key, "must be a positive number of bytes") }
        p.outputLimit = n
      case "timeout_max":
        guard let d = ConfigValues(overrides: ["t": "\(value)"]).string("t"),
          let parsed = try? ConfigValues(overrides: ["t": d]).duration("t", default: .zero), parsed > .zero
        else {
          throw fail(key, "must be a duration such as 10m")
        }
        p.timeoutMax = parsed
      default:
        throw fail(key, "unknown setting")
      }
    }
    return p
  }

  /// Whether argv matches one of the allowed patterns.
  public func allows(argv: [String]) -> Bool {
    commands.contains { Self.matches(pattern: $0, argv: argv) }
  }

  public func allows(service: String) -> Bool {
    services.contains { fnmatch($0, service, 0) == 0 }
  }

  static func matches(pattern: [String], argv: [String]) -> Bool {
    var i = 0
    for (n, p) in pattern.enumerated() {
      if p == "**" { return n == pattern.count - 1 }
      guard i < argv.count else { return false }
      // The program may be named by full path or by name.
      if n == 0, !p.contains("/"), argv[0].contains("/") {
        guard fnmatch(p, (argv[0] as NSString).lastPathComponent, 0) == 0 else { return false }
      } else {
        guard fnmatch(p, argv[i], 0) == 0 else { return false }
      }
      i += 1
    }
    return i == argv.count
  }
}
