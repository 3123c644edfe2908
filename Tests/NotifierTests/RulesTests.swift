import Foundation
import MirrorService
import MirrorWire
import NotifierCore
import TestSupport
import Testing
import Yams

/// The rules file: defaults, every kind, and errors that name file and line.
@Suite struct RulesTests {
  func parse(_ text: String, env: [String: String] = [:]) throws -> NotifierRules {
    try NotifierRules.parse(YAMLValue.parse(text, file: "rules.yaml"), environment: env)
  }

  func problem(_ text: String, env: [String: String] = [:]) -> YAMLFileError? {
    do {
      _ = try parse(text, env: env)
      return nil
    } catch let e as YAMLFileError {
      return e
    } catch {
      return nil
    }
  }

  @Test func theDefaultsParseAndCoverWhatUsersExpect() throws {
    let d = try NotifierRules.defaults()
    let names = Set(d.rules.map(\.name))
    for expected in [
      "host-down", "cpu-high", "memory-high", "disk-full", "disk-full-soon", "temperature-high",
      "gpu-temperature-high", "smart-failed",
    ] {
      #expect(names.contains(expected), "missing default rule \(expected)")
    }
    #expect(d.channels.isEmpty)
  }

  @Test func aFileAddsToTheDefaultsAndReplacesByName() throws {
    let r = try parse(
      """
      rules:
        - name: cpu-high
          kind: threshold
          metric: cpu.percent
          op: ">="
          value: 75
          for: 30s
          severity: critical
        - name: lab-load
          kind: threshold
          metric: load.per_core
          op: ">"
          value: 2
          group: lab
      """)
    let cpu = try #require(r.rules.first { $0.name == "cpu-high" })
    #expect(cpu.severity == .critical)
    #expect(cpu.holdFor == .seconds(30))
    #expect(cpu.threshold == 75)
    #expect(r.rules.filter { $0.name == "cpu-high" }.count == 1)
    #expect(r.rules.contains { $0.name == "host-down" })
    #expect(r.rules.first { $0.name == "lab-load" }?.hosts.groups == ["lab"])
    let only = try parse(
      """
      include-defaults: false
      rules:
        - {name: down, kind: absence, intervals: 2}
      """)
    #expect(only.rules.map(\.name) == ["down"])
  }

  @Test func channelsRoutesAndSecrets() throws {
    let r = try parse(
      """
      channels:
        - {name: phone, type: ntfy, url: "https://ntfy.example/lab", token-env: NTFY_TOKEN}
        - {name: ops, type: telegram, token-env: TG, chat-id: "-100200"}
        - {name: hook, type: webhook, url: "http://127.0.0.1:9/x", format: slack, per-minute: 5}
      routes:
        - {severity: critical, channels: [phone, ops]}
        - {channels: hook}
      """, env: ["NTFY_TOKEN": "tk_secret", "TG": "123:abc"])
    #expect(r.channels.map(\.name) == ["phone", "ops", "hook"])
    #expect(r.channels[0].token == "tk_secret")
    #expect(r.channels[1].url == "https://api.telegram.org")
    #expect(r.channels[1].redactedURL.contains("123:abc") == false)
    #expect(r.channels[2].perMinute == 5)
    var critical = Alert(rule: "x", host: "h", severity: .critical)
    #expect(r.channels(for: critical, meta: HostMeta()) == ["phone", "ops"])
    critical.severity = .warning
    #expect(r.channels(for: critical, meta: HostMeta()) == ["hook"])
  }

  @Test func aTokenFileIsReadAndTrimmed() throws {
    let path = NSTemporaryDirectory() + "token-\(UUID().uuidString)"
    try "tk_from_file\n".write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let r = try parse("channels:\n  - {name: p, type: ntfy, url: 'http://x/t', token-file: '\(path)'}\n")
    #expect(r.channels.first?.token == "tk_from_file")
    let missing = problem("channels:\n  - {name: p, type: ntfy, url: 'http://x/t', token-file: /nonexistent}\n")
    #expect(missing?.line == 2 && missing?.description.contains("cannot read /nonexistent") == true)
  }

  @Test func errorsNameTheFileTheLineAndTheProblem() {
    let cases: [(String, Int, String)] = [
      (
        "rules:\n  - name: a\n    kind: threshold\n    metric: cpu.percnt\n    op: '>'\n    value: 1\n", 4,
        "unknown metric"
      ),
      ("rules:\n  - name: a\n    kind: thresold\n", 3, "is not one of"),
      ("rules:\n  - name: a\n    kind: threshold\n    metric: cpu.percent\n    op: '>'\n", 2, "'value' is required"),
      ("rules:\n  - name: a\n    kind: absence\n    for: soon\n", 4, "must be a duration"),
      // Found writing bench/fuzz.sh (FuzzRules): beyond Int64 milliseconds, it trapped.
      ("settings:\n  group-wait: 1e20s\n", 2, "must be a duration"),
      ("rules:\n  - name: a\n    kind: absence\n    severity: panic\n", 4, "info, warning or critical"),
      ("rules:\n  - name: a\n    kind: absence\n    colour: red\n", 4, "unknown key 'colour'"),
      ("rules:\n  - name: a\n    kind: event\n    events: [disk_on_fire]\n", 4, "unknown event"),
      ("rules:\n  - name: a\n    kind: absence\n  - name: a\n    kind: absence\n", 4, "defined twice"),
      ("channels:\n  - {name: p, type: ntfy, url: 'ftp://x'}\n", 2, "not an http(s) URL"),
      ("channels:\n  - {name: p, type: ntfy, url: 'http://x', token-env: MISSING}\n", 2, "MISSING is not set"),
      ("channels:\n  - {name: t, type: telegram, token: x}\n", 2, "'chat-id' is required"),
      ("routes:\n  - channels: [nowhere]\n", 2, "no channel named 'nowhere'"),
      ("rules:\n  - name: a\n    kind: absence\n    summary: '{{hots}} down'\n", 4, "unknown placeholder {{hots}}"),
      ("rules: [\n", 2, "not valid YAML"),
    ]
    for (text, line, expected) in cases {
      let e = problem(text)
      #expect(e != nil, "accepted: \(text)")
      guard let e else { continue }
      #expect(e.file == "rules.yaml")
      #expect(e.line == line, "\(e) for \(text)")
      #expect(e.description.contains(expected), "\(e) should say \(expected)")
    }
  }

  @Test func templatesFillFieldsAndLabels() {
    let a = Alert(
      rule: "disk-full", host: "nas", severity: .warning, state: .firing, labels: [Label(key: "mount", value: "/srv")],
      summary: "s", value: 93.456, threshold: 90)
    #expect(
      Template.render("{{status}} {{host}} {{series}} {{value}}>{{threshold}} {{labels.mount}}", a, status: "FIRING")
        == "FIRING nas /srv 93.5>90 /srv")
    #expect(Template.format(2) == "2")
    #expect(Template.format(0.04) == "0")
  }

  /// The rules that ship: the local stack's file and the k8s ConfigMap's.
  @Test func theShippedRuleFilesAreValid() throws {
    let local = Harness.root.appendingPathComponent("config/alert-rules.yaml").path
    let rules = try NotifierRules.load(local, environment: [:])
    #expect(rules.rules.first { $0.name == "cpu-high" }?.holdFor == .seconds(300))
    let manifest = try String(
      contentsOfFile: Harness.root.appendingPathComponent("k8s/alert-rules.yaml").path, encoding: .utf8)
    let map = try #require(try Yams.load(yaml: manifest) as? [String: Any])
    let text = try #require((map["data"] as? [String: Any])?["alert-rules.yaml"] as? String)
    let k8s = try NotifierRules.parse(YAMLValue.parse(text, file: "k8s/alert-rules.yaml"), environment: [:])
    #expect(k8s.rules.count == (try NotifierRules.defaults().rules.count))
  }
}
