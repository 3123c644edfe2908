import Foundation
import Logging
import MirrorService
import MirrorServiceStore
import TestSupport
import Testing

@Suite struct ConfigTests {
  func write(_ yaml: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString).yaml").path
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test func flagsOverrideEnvironmentOverrideFile() throws {
    let path = try write(
      """
      nats:
        urls: [nats://file-a:4222, nats://file-b:4222]
        user: from-file
      http:
        listen: 0.0.0.0:9000
      log:
        level: debug
      """)
    let values = try ConfigValues.load(
      file: path, environment: ["MIRROR_NATS_USER": "from-env", "MIRROR_HTTP_LISTEN": "127.0.0.1:9001"],
      overrides: ["http.listen": "127.0.0.1:9002"])
    let s = try ServiceSettings(service: "t", defaultHTTPPort: 1, config: values)
    #expect(s.bus.urls == ["nats://file-a:4222", "nats://file-b:4222"])
    #expect(s.bus.user == "from-env")
    #expect(s.httpPort == 9002)
    #expect(s.logLevel == .debug)
    #expect(values.lookup("nats.user")?.source == "environment MIRROR_NATS_USER")
  }

  @Test func defaultsApplyWithoutAFile() throws {
    let s = try ServiceSettings(service: "t", defaultHTTPPort: 9101, config: ConfigValues())
    #expect(s.httpHost == "127.0.0.1")
    #expect(s.httpPort == 9101)
    #expect(s.bus.urls == ["nats://127.0.0.1:4222"])
  }

  @Test func aWrongTimescaleModeNamesItsKey() throws {
    let values = ConfigValues(environment: ["MIRROR_DATABASE_TIMESCALE": "maybe"])
    let settings = try ServiceSettings(service: "t", defaultHTTPPort: 1, config: values)
    let context = ServiceContext(settings: settings, config: values, logger: Logger(label: "t"), health: Health())
    let error = #expect(throws: ConfigError.self) { try DatabaseService(settings: settings, context: context) }
    #expect(error?.key == "database.timescale")
    #expect(error?.description.contains("maybe") == true)
  }

  @Test(
    "a wrong value names its key and source",
    arguments: [
      ("log.level", "loud", "log.level"),
      ("http.listen", "nowhere", "http.listen"),
      ("nats.urls", "http://x:4222", "nats.urls"),
      ("nats.connect-timeout", "soon", "nats.connect-timeout"),
      ("nats.tls", "perhaps", "nats.tls"),
    ])
  func badValues(key: String, value: String, expectedKey: String) throws {
    let values = ConfigValues(environment: [ConfigValues.environmentName(of: key): value])
    let error = #expect(throws: ConfigError.self) {
      try ServiceSettings(service: "t", defaultHTTPPort: 1, config: values)
    }
    #expect(error?.key == expectedKey)
    #expect(error?.source == "environment \(ConfigValues.environmentName(of: key))")
    #expect(error?.description.contains(value) == true)
  }

  @Test func invalidYAMLNamesTheFile() throws {
    let path = try write("nats: [unclosed\n  user: x")
    let error = #expect(throws: ConfigError.self) {
      try ConfigValues.load(file: path, environment: [:], overrides: [:])
    }
    #expect(error?.description.contains(path) == true)
  }

  @Test func missingFileIsAClearError() {
    let error = #expect(throws: ConfigError.self) {
      try ConfigValues.load(file: "/nonexistent/mirror.yaml", environment: [:], overrides: [:])
    }
    #expect(error?.description.contains("/nonexistent/mirror.yaml") == true)
  }

  @Test func durations() throws {
    let values = ConfigValues(overrides: ["a": "500ms", "b": "2m", "c": "1.5h", "d": "30d", "e": "-1s"])
    #expect(try values.duration("a", default: .zero) == .milliseconds(500))
    #expect(try values.duration("b", default: .zero) == .seconds(120))
    #expect(try values.duration("c", default: .zero) == .seconds(5400))
    #expect(try values.duration("d", default: .zero) == .seconds(30 * 86400))
    #expect(throws: ConfigError.self) { try values.duration("e", default: .zero) }
  }

  /// Found writing bench/fuzz.sh (FuzzConfig, FuzzRules and FuzzPolicy
  /// crash on it): a duration beyond Int64 milliseconds trapped converting
  /// to Int64.
  @Test(
    "a duration too long for Int64 milliseconds is an error that names its key",
    arguments: ["1e20s", "9223372036854775808ms", "99999999999999999999d", "1e308h"])
  func hugeDurations(_ raw: String) throws {
    #expect(ConfigValues.parseDuration(raw) == nil)
    let values = try ConfigValues.parse(yaml: "shutdown:\n  grace: \(raw)\n", file: "fuzz.yaml")
    let error = #expect(throws: ConfigError.self) {
      try ServiceSettings(service: "t", defaultHTTPPort: 1, config: values)
    }
    #expect(error?.key == "shutdown.grace")
    #expect(error?.source == "fuzz.yaml")
    #expect(ConfigValues.parseDuration("100000000000000s") == .seconds(100_000_000_000_000))
  }

  /// Found by bench/fuzz.sh (FuzzPolicy, minimised to `? a:`): Yams stops
  /// the process on a map key that is not a single value.
  @Test("a map key that is a map or a list is an error", arguments: ["? a:", "nats:\n  ? [a, b]\n  : 1\n"])
  func complexKeys(_ yaml: String) throws {
    let error = #expect(throws: ConfigError.self) { try ConfigValues.parse(yaml: yaml, file: "fuzz.yaml") }
    #expect(error?.key == "--config")
    #expect(error?.description.contains("a map key must be a single value") == true)
    #expect(try ConfigValues.parse(yaml: "nats:\n  ? user\n  : bob\n", file: "ok.yaml").string("nats.user") == "bob")
  }

  @Test func setFlagMustBeKeyEqualsValue() throws {
    let bad = try CommonOptions.parse(["--set", "novalue"])
    #expect(throws: ConfigError.self) { try bad.configValues(environment: [:]) }
    let flags = try CommonOptions.parse(["--set", "nats.user=bob", "--log-level", "warning"])
    let values = try flags.configValues(environment: ["LOG_LEVEL": "debug"])
    #expect(values.string("nats.user") == "bob")
    #expect(values.string("log.level") == "warning")
    let plain = try CommonOptions.parse([])
    #expect(try plain.configValues(environment: ["LOG_LEVEL": "debug"]).string("log.level") == "debug")
  }
}
