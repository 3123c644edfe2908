import Foundation
import MirrorBus
import MirrorWire
import TestSupport
import Testing

/// The NATS micro protocol, checked by an independent implementation
/// (nats-py's client and its micro module's response types, via
/// Tests/micro/check_micro.py): PING, INFO and STATS for all services, by
/// name and by name and id; STATS counts a request, an error and the time.
@Suite final class MicroServiceTests {
  let server: NATSTestServer
  let bus: BusConnection

  init() async throws {
    server = try NATSTestServer()
    bus = try await BusConnection.connect(BusOptions(urls: [server.url]), logger: Harness.logger)
  }

  @Test func pingInfoAndStatsAnswerAsNatsMicroExpects() async throws {
    // A service with two endpoints: echo answers a Label, fails on an
    // empty one with an RpcError.
    let echo = try bus.serve("test.echo", service: "echo-svc", version: "1.2.3")
    let other = try bus.serve("test.other", service: "echo-svc", version: "1.2.3")
    let bus = self.bus
    let answering = Task {
      for await m in echo {
        let label = try? m.decode(Label.self)
        if let label, !label.key.isEmpty {
          try? bus.respond(to: m, with: label)
        } else {
          try? bus.respond(to: m, with: RpcError(code: "invalid_argument", message: "no key"))
        }
      }
    }
    defer {
      echo.unsubscribe()
      other.unsubscribe()
      answering.cancel()
    }
    try await bus.flush()
    let good = try await bus.request("test.echo", Label(key: "k", value: "v"), expecting: Label.self)
    #expect(good.key == "k")
    let bad = try await bus.request("test.echo", Label(), expecting: RpcError.self)
    #expect(bad.code == "invalid_argument")
    let micro = try #require(bus.microService("echo-svc"))
    #expect(micro.endpoints.map(\.subject) == ["test.echo", "test.other"])

    let script = Harness.root.appendingPathComponent("Tests/micro/check_micro.py").path
    let (status, output) = try Harness.run(
      "/usr/bin/env", ["python3", script, server.url, "echo-svc", "echo-svc:test.echo:2:1", "echo-svc:test.other:0:0"])
    #expect(status == 0, "\(output)")
    let line = try #require(output.split(separator: "\n").last)
    let report = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    let service = try #require(report["echo-svc"] as? [String: Any])
    #expect(service["id"] as? String == micro.id && service["version"] as? String == "1.2.3")
    let endpoints = try #require(service["endpoints"] as? [String: [Int]])
    #expect(endpoints["test.echo"]?[0] == 2 && endpoints["test.echo"]?[1] == 1)
  }
}
