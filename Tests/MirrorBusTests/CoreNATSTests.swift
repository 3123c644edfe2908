import Foundation
import MirrorBus
import MirrorWire
import TestSupport
import Testing

@Suite final class CoreNATSTests {
  let server: NATSTestServer
  let bus: BusConnection

  init() async throws {
    server = try NATSTestServer()
    bus = try await BusConnection.connect(BusOptions(urls: [server.url]), logger: Harness.logger)
  }

  @Test func subscribeDeliversPublishedMessagesWithHeaders() async throws {
    let sub = try bus.subscribe("core.events.>")
    try await bus.flush()
    let label = Label(key: "k", value: "v")
    try bus.publish("core.events.a", label, headers: ["X-Extra": "1"])
    try bus.publish("core.events.b", payload: [], headers: [:])
    var iterator = sub.makeAsyncIterator()
    let first = try #require(await iterator.next())
    #expect(first.subject == "core.events.a")
    #expect(first.headers["Mirror-Type"] == "mirrorstage.v1.Label")
    #expect(first.headers["X-Extra"] == "1")
    #expect(try first.decode(Label.self) == label)
    let second = try #require(await iterator.next())
    #expect(second.payload.isEmpty)
    #expect(sub.dropped == 0)
  }

  @Test func requestReply() async throws {
    let sub = try bus.subscribe("svc.echo")
    try await bus.flush()
    let bus = self.bus
    let responder = Task {
      for await request in sub {
        let label = try request.decode(Label.self)
        try bus.respond(to: request, with: Label(key: label.key, value: label.value.uppercased()))
      }
    }
    defer { responder.cancel() }
    let reply = try await bus.request("svc.echo", Label(key: "a", value: "hi"), expecting: Label.self)
    #expect(reply == Label(key: "a", value: "HI"))
  }

  @Test func rpcErrorReplyBecomesRemoteError() async throws {
    let sub = try bus.subscribe("svc.fails")
    try await bus.flush()
    let bus = self.bus
    let responder = Task {
      for await request in sub {
        try bus.respond(to: request, with: RpcError(code: "not_found", message: "no such host"))
      }
    }
    defer { responder.cancel() }
    let error = await #expect(throws: RemoteError.self) {
      _ = try await self.bus.request("svc.fails", Label(), expecting: Label.self)
    }
    #expect(error?.error.code == "not_found")
  }

  @Test func requestWithoutResponderFailsFast() async throws {
    let start = ContinuousClock.now
    let error = await #expect(throws: NATSError.self) {
      _ = try await self.bus.request("nobody.home", payload: [1], timeout: .seconds(5))
    }
    #expect(error?.status == .noResponders)
    #expect(ContinuousClock.now - start < .seconds(2))
  }

  @Test func requestTimesOut() async throws {
    let sub = try bus.subscribe("svc.silent")
    try await bus.flush()
    let start = ContinuousClock.now
    let error = await #expect(throws: NATSError.self) {
      _ = try await self.bus.request("svc.silent", payload: [1], timeout: .milliseconds(300))
    }
    #expect(error?.status == .timeout)
    #expect(ContinuousClock.now - start < .seconds(2))
    sub.unsubscribe()
  }

  @Test func reconnectsAfterServerRestart() async throws {
    let sub = try bus.subscribe("after.restart")
    try await bus.flush()
    server.stop()
    #expect(await Harness.waitUntil { !self.bus.isConnected })
    try server.start()
    #expect(await Harness.waitUntil(timeout: .seconds(15)) { self.bus.isConnected })
    #expect(bus.disconnects >= 1)
    try bus.publish("after.restart", payload: [42])
    var iterator = sub.makeAsyncIterator()
    #expect(await iterator.next()?.payload == [42])
  }
}

@Suite struct ConnectFailureTests {
  @Test func unreachableServerIsAClearErrorNotAHang() async throws {
    let port = Harness.freePort()
    let start = ContinuousClock.now
    let error = await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(urls: ["nats://127.0.0.1:\(port)"], connectTimeout: .milliseconds(500)), logger: Harness.logger)
    }
    #expect(error?.status == .noServer)
    #expect(error?.description.contains("connect to nats://127.0.0.1:\(port)") == true, "\(String(describing: error))")
    #expect(ContinuousClock.now - start < .seconds(5))
  }

  @Test func wrongTokenIsRejected() async throws {
    let server = try NATSTestServer(arguments: ["--auth", "s3cret-token"])
    let error = await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(urls: [server.url], token: "wrong", maxReconnect: 0), logger: Harness.logger)
    }
    #expect(error != nil)
    #expect(error?.description.contains("s3cret") == false)
    let ok = try await BusConnection.connect(
      BusOptions(urls: [server.url], token: "s3cret-token"), logger: Harness.logger)
    #expect(ok.isConnected)
  }

  @Test func userAndPasswordAuthentication() async throws {
    let server = try NATSTestServer(arguments: ["--user", "alice", "--pass", "wonderland"])
    let ok = try await BusConnection.connect(
      BusOptions(urls: [server.url], user: "alice", password: "wonderland"), logger: Harness.logger)
    #expect(ok.isConnected)
    await #expect(throws: NATSError.self) {
      _ = try await BusConnection.connect(
        BusOptions(urls: [server.url], user: "alice", password: "nope", maxReconnect: 0), logger: Harness.logger)
    }
  }

  @Test func secondURLIsUsedWhenFirstIsDown() async throws {
    let server = try NATSTestServer()
    let dead = "nats://127.0.0.1:\(Harness.freePort())"
    let bus = try await BusConnection.connect(BusOptions(urls: [dead, server.url]), logger: Harness.logger)
    #expect(bus.isConnected)
  }
}
