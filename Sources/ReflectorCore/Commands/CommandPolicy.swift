import Foundation
import MirrorService

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
/// sessions:                     # interactive sessions (off by default)
///   shell: false                # mirrorctl shell / the console's terminal
///   shell_program: /bin/bash    # default: bash if present, else sh
///   forward: ["127.0.0.1:8080", "localhost:*"]   # address:port patterns
///   idle_timeout: 15m           # no input or output for this long: hang up
///   max_duration: 8h            # the longest a session may ask for
///   record_limit: 16777216      # bytes of recording, then `truncated`
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
  public var sessions = SessionPolicy()

  /// Interactive sessions: a shell on a PTY, TCP forwards.
  public struct SessionPolicy: Sendable, Hashable {
    public var shell = false
    public var shellProgram: String?
    public var forward: [String] = []
    public var idleTimeout: Duration = .seconds(900)
    public var maxDuration: Duration = .seconds(8 * 3600)
    public var recordLimit = 16 << 20

    public init() {}

    /// Whether a forward may reach address:port.
    public func allowsForward(address: String, port: UInt32) -> Bool {
      forward.contains { fnmatch($0, "\(address):\(port)", 0) == 0 }
    }
  }

  public init() {}

  /// Reads the policy file; errors name the file and what is wrong.
  public static func load(_ path: String) throws -> CommandPolicy {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
      throw ConfigError(key: "commands.policy", problem: "cannot read \(path)", source: path)
    }
    return try parse(text: text, source: path)
  }

  /// Reads the text of a policy file; `source` names it in errors. What
  /// `load` does once it has read the file.
  public static func parse(text: String, source path: String) throws -> CommandPolicy {
    let yaml: Any?
    do { yaml = try YAMLValue.untyped(text, file: path) } catch {
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
        p.timeoutMax = try duration(value, key, source: path)
      case "sessions":
        p.sessions = try sessionPolicy(value, fail)
      default:
        throw fail(key, "unknown setting")
      }
    }
    return p
  }

  private static func duration(_ value: Any, _ key: String, source: String = "") throws -> Duration {
    guard let d = ConfigValues(overrides: ["t": "\(value)"]).string("t"),
      let parsed = try? ConfigValues(overrides: ["t": d]).duration("t", default: .zero), parsed > .zero
    else {
      throw ConfigError(key: "policy.\(key)", problem: "must be a duration such as 10m", source: source)
    }
    return parsed
  }

  private static func sessionPolicy(_ value: Any, _ fail: (String, String) -> ConfigError) throws -> SessionPolicy {
    guard let map = value as? [String: Any] else { throw fail("sessions", "must be a map") }
    var s = SessionPolicy()
    for (key, value) in map {
      let name = "sessions.\(key)"
      switch key {
      case "shell":
        guard let b = value as? Bool else { throw fail(name, "must be true or false") }
        s.shell = b
      case "shell_program":
        guard let path = value as? String, path.hasPrefix("/") else { throw fail(name, "must be an absolute path") }
        s.shellProgram = path
      case "forward":
        guard let list = value as? [String], list.allSatisfy({ $0.contains(":") }) else {
          throw fail(name, "must be a list of address:port patterns")
        }
        s.forward = list
      case "idle_timeout":
        do { s.idleTimeout = try duration(value, name) } catch { throw fail(name, "must be a duration such as 15m") }
      case "max_duration":
        do { s.maxDuration = try duration(value, name) } catch { throw fail(name, "must be a duration such as 8h") }
      case "record_limit":
        guard let n = value as? Int, n >= 0 else { throw fail(name, "must be a number of bytes") }
        s.recordLimit = n
      default:
        throw fail(name, "unknown setting")
      }
    }
    return s
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
