import MirrorService
import MirrorWire
import ReflectorCore
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
}
