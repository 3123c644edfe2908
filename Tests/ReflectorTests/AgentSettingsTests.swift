import Foundation
import MirrorService
import MirrorWire
import TestSupport
import Testing

@testable import ReflectorCore

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

  @Test func onlyReadOnlyFileMappingsAreAdvisedAndRelocatedOnesOnlyPagedOut() throws {
    let smaps = """
      7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [heap]
      Rss:                   4 kB
      Anonymous:             4 kB
      7f0000001000-7f0000002000 rw-p 00000000 08:01 42                         /usr/lib/writable.so
      Anonymous:             0 kB
      7f0000002000-7f0000003000 ---p 00000000 08:01 42                         /usr/lib/guard.so
      Anonymous:             0 kB
      7f0000003000-7f0000004000 r--p 00000000 00:00 0
      Anonymous:             0 kB
      55a000000000-55a000200000 r-xp 00000000 08:01 7                          /usr/bin/reflector
      Rss:                1024 kB
      Anonymous:             0 kB
      VmFlags: rd ex mr mw me sd
      55a000200000-55a000210000 r--p 00200000 08:01 7                          /usr/bin/reflector
      Anonymous:           812 kB
      55a000210000-55a000220000 r--p 00210000 08:01 7                          /usr/bin/no anonymous line
      not a line
      """
    let plan = ResidentMemory.plan(smaps: smaps)
    #expect(
      plan == [
        .init(start: 0x55a0_0000_0000, length: 0x20_0000, advice: .drop),
        .init(start: 0x55a0_0020_0000, length: 0x1_0000, advice: .pageOut),
      ])
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("smaps-\(UUID().uuidString)").path
    try """
    7f0000000000-7f0000001000 rw-p 00000000 00:00 0                          [heap]
    Anonymous:             4 kB
    """.write(toFile: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: file) }
    #expect(ResidentMemory.trimStartupPages(smaps: file) == 0)
    #expect(try !AgentSettings(config: ConfigValues()).trimStartupMemory, "off unless the executable turns it on")
  }
}
