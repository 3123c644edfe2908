import Foundation
import MirrorService
import MirrorWire
import ReflectorCore
import TestSupport
import Testing

@Suite struct AgentSettingsTests {
  @Test(
    "a wrong agent setting names its key",
    arguments: [
      ("reflector.host", "...", "reflector.host"),
      ("reflector.interval", "10ms", "reflector.interval"),
      ("reflector.interval", "often", "reflector.interval"),
      ("reflector.labels", "rack", "reflector.labels"),
      ("reflector.top-k", "1000", "reflector.top-k"),
      ("reflector.buffer", "0", "reflector.buffer"),
    ])
  func badSetting(key: String, value: String, expected: String) {
    let error = #expect(throws: ConfigError.self) { try AgentSettings(config: ConfigValues(overrides: [key: value])) }
    #expect(error?.key == expected)
  }

  @Test func hostNameBecomesASubjectToken() throws {
    let s = try AgentSettings(config: ConfigValues(overrides: ["reflector.host": "web 01.lab.example"]))
    #expect(s.host == "web-01")
  }

  @Test func labelsFromListAndMap() throws {
    let s = try AgentSettings(
      config: ConfigValues(
        fileValues: ["reflector.label.rack": "r1"], overrides: ["reflector.labels": "role=db,zone=a"]))
    #expect(
      s.labels == [Label(key: "rack", value: "r1"), Label(key: "role", value: "db"), Label(key: "zone", value: "a")])
  }

  /// The real agent, twice: with the trim (the executable's default) its
  /// resident set ends up smaller than without. Run as child processes: the
  /// trim acts on the whole process.
  @Test func theAgentGivesBackStartUpPages() async throws {
    let nats = try NATSTestServer()
    func rssKiB(trim: Bool) async throws -> Int {
      let p = try Harness.launch(
        "reflector",
        [
          "run", "--nats-url", nats.url, "--http", "127.0.0.1:\(Harness.freePort())", "--log-level", "critical",
          "--set", "reflector.interval=200ms", "--set", "reflector.host=trim\(trim)",
          "--set", "reflector.trim-startup-memory=\(trim)",
        ])
      defer {
        p.terminate()
        p.waitUntilExit()
      }
      try await Task.sleep(for: .seconds(3))
      let status = try String(contentsOfFile: "/proc/\(p.processIdentifier)/status", encoding: .utf8)
      let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
      return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
    let trimmed = try await rssKiB(trim: true)
    let untrimmed = try await rssKiB(trim: false)
    #expect(trimmed > 0 && trimmed < untrimmed, "with the trim \(trimmed) KiB, without \(untrimmed) KiB")
  }

  @Test func onlyReadOnlyFileMappingsAreAdvised() throws {
    let maps = FileManager.default.temporaryDirectory.appendingPathComponent("maps-\(UUID().uuidString)").path
    try """
    7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [heap]
    7f0000001000-7f0000002000 rw-p 00000000 08:01 42                         /usr/lib/writable.so
    7f0000002000-7f0000003000 ---p 00000000 08:01 42                         /usr/lib/guard.so
    7f0000003000-7f0000004000 r--p 00000000 00:00 0
    not a line
    """.write(toFile: maps, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: maps) }
    #expect(ResidentMemory.trimStartupPages(maps: maps) == 0)
    #expect(try !AgentSettings(config: ConfigValues()).trimStartupMemory, "off unless the executable turns it on")
  }
}
