public import ArgumentParser
import Foundation

/// The flags every service takes.
public struct CommonOptions: ParsableArguments, Sendable {
  @Option(name: .long, help: "YAML configuration file.")
  public var config: String?

  @Option(name: .long, help: ArgumentHelp("Set a configuration key (repeatable).", valueName: "key=value"))
  public var set: [String] = []

  @Option(name: .long, help: "NATS server URLs, comma-separated (nats.urls).")
  public var natsURL: String?

  @Option(name: .long, help: "PostgreSQL URL (database.url).")
  public var databaseURL: String?

  @Option(name: .long, help: "Address for /metrics and /healthz, HOST:PORT (http.listen).")
  public var http: String?

  @Option(name: .long, help: "trace, debug, info, notice, warning, error (log.level).")
  public var logLevel: String?

  public init() {}

  /// The layered configuration: these flags, then the environment, then
  /// the file. LOG_LEVEL is honoured as well as MIRROR_LOG_LEVEL.
  public func configValues(environment: [String: String]? = nil) throws -> ConfigValues {
    let environment = environment ?? ProcessInfo.processInfo.environment
    var overrides: [String: String] = [:]
    for pair in set {
      guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
        throw ConfigError(key: "--set", problem: "'\(pair)' is not key=value", source: "flags")
      }
      overrides[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }
    if let natsURL { overrides["nats.urls"] = natsURL }
    if let databaseURL { overrides["database.url"] = databaseURL }
    if let http { overrides["http.listen"] = http }
    if let logLevel { overrides["log.level"] = logLevel }
    var env = environment
    if env["MIRROR_LOG_LEVEL"] == nil, let level = env["LOG_LEVEL"] {
      env["MIRROR_LOG_LEVEL"] = level
    }
    return try ConfigValues.load(file: config, environment: env, overrides: overrides)
  }
}
