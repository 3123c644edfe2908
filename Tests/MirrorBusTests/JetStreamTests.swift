import MirrorBus
import MirrorWire
import TestSupport
import Testing

/// JetStream behaviour against a real nats-server of this suite.
@Suite(.serialized) final class JetStreamTests {
  let server: NATSTestServer
  let bus: BusConnection
  let stream: String

  init() async throws {
    server = try NATSTestServer()
    bus = try await BusConnection.connect(
      BusOptions(urls: [server.url], name: "jetstream-tests"), logger: Harness.logger)
    stream = Harness.uniqueName("JS")
    try await bus.ensureStream(StreamConfig(name: stream, subjects: ["\(stream).>"], duplicateWindow: .seconds(60)))
  }

  func consumer(_ name: String, ackWait: Duration = .seconds(1)) async throws -> PullConsumer {
    try await bus.pullConsumer(
      stream: stream, ConsumerConfig(durable: name, filterSubject: "\(stream).>", ackWait: ackWait))
  }

  @Test func publishPullAckIsNotRedelivered() async throws {
    let ack = try await bus.jetStreamPublish("\(stream).a", payload: [1, 2, 3], msgID: "m1")
    #expect(ack.stream == stream)
    #expect(ack.sequence == 1)
    #expect(!ack.duplicate)
    let c = try await consumer("ACKED")
    let first = try await c.fetch(batch: 10, timeout: .seconds(2))
    #expect(first.count == 1)
    #expect(first.first?.payload == [1, 2, 3])
    #expect(first.first?.deliveryCount == 1)
    #expect(first.first?.streamSequence == 1)
    try first.first?.ack()
    // Wait past the ack wait: an unacked message would be back by then.
    let again = try await c.fetch(batch: 10, timeout: .milliseconds(2500))
    #expect(again.isEmpty)
  }

  /// A graceful shutdown drains the connection; the durable, and where it
  /// had got to, must survive that (libnats deletes consumers its own
  /// subscribe created when they are drained).
  @Test func aDurableSurvivesADrainAndResumesWhereItWas() async throws {
    let other = try await BusConnection.connect(BusOptions(urls: [server.url]), logger: Harness.logger)
    let config = ConsumerConfig(durable: "KEEP", filterSubject: "\(stream).>", ackWait: .seconds(30))
    var c: PullConsumer? = try await other.pullConsumer(stream: stream, config)
    for i in 0..<2 { _ = try await bus.jetStreamPublish("\(stream).k", payload: [UInt8(i)]) }
    let first = try await c?.fetch(batch: 10, timeout: .seconds(2)) ?? []
    #expect(first.count == 2)
    for m in first { try await m.ackSync() }
    // A fetch is waiting when the drain comes, as in a running service.
    let waiting = Task { [c] in try? await c?.fetch(batch: 10, timeout: .seconds(3)) }
    try await Task.sleep(for: .milliseconds(200))
    await other.drain()
    _ = await waiting.value
    c = nil
    _ = try await bus.jetStreamPublish("\(stream).k", payload: [9])
    let again = try await bus.pullConsumer(stream: stream, config)
    let next = try await again.fetch(batch: 10, timeout: .seconds(2))
    #expect(next.map(\.payload) == [[9]], "only what came after, not the stream from the start")
  }

  @Test func nakIsRedeliveredWithDeliveryCountTwo() async throws {
    _ = try await bus.jetStreamPublish("\(stream).b", payload: Array("retry me".utf8))
    let c = try await consumer("NAKKED", ackWait: .seconds(30))
    let first = try await c.fetch(batch: 1, timeout: .seconds(2))
    #expect(first.first?.deliveryCount == 1)
    try first.first?.nak()
    let second = try await c.fetch(batch: 1, timeout: .seconds(2))
    #expect(second.count == 1)
    #expect(second.first?.deliveryCount == 2)
    #expect(second.first?.payload == Array("retry me".utf8))
    try second.first?.ack()
  }

  @Test func nakWithDelayWaitsBeforeRedelivery() async throws {
    _ = try await bus.jetStreamPublish("\(stream).c", payload: [7])
    let c = try await consumer("DELAYED", ackWait: .seconds(30))
    try await c.fetch(batch: 1, timeout: .seconds(2)).first?.nak(delay: .seconds(2))
    #expect(try await c.fetch(batch: 1, timeout: .milliseconds(700)).isEmpty)
    let later = try await c.fetch(batch: 1, timeout: .seconds(3))
    #expect(later.first?.deliveryCount == 2)
  }

  @Test func termIsNeverRedelivered() async throws {
    _ = try await bus.jetStreamPublish("\(stream).d", payload: [9])
    let c = try await consumer("TERMED")
    try await c.fetch(batch: 1, timeout: .seconds(2)).first?.term()
    #expect(try await c.fetch(batch: 1, timeout: .milliseconds(2500)).isEmpty)
  }

  @Test func sameMessageIDTwiceIsStoredOnce() async throws {
    let subject = "\(stream).dup"
    let before = try await bus.streamState(stream).messages
    let a = try await bus.jetStreamPublish(subject, payload: [1], msgID: "host-a:boot:42")
    let b = try await bus.jetStreamPublish(subject, payload: [1], msgID: "host-a:boot:42")
    #expect(!a.duplicate)
    #expect(b.duplicate)
    #expect(b.sequence == a.sequence)
    #expect(try await bus.streamState(stream).messages == before + 1)
  }

  @Test func ensureStreamIsIdempotentAndUpdates() async throws {
    let name = Harness.uniqueName("IDEM")
    let config = StreamConfig(name: name, subjects: ["\(name).x"], maxAge: .seconds(3600))
    let first = try await bus.ensureStream(config)
    _ = try await bus.jetStreamPublish("\(name).x", payload: [1])
    let second = try await bus.ensureStream(config)
    #expect(first.name == name)
    #expect(second.messages == 1, "re-declaring must not reset the stream")
    var changed = config
    changed.subjects.append("\(name).y")
    try await bus.ensureStream(changed)
    let ack = try await bus.jetStreamPublish("\(name).y", payload: [2])
    #expect(ack.stream == name)
    try await bus.deleteStream(name)
  }

  @Test func typedPublishCarriesHeadersAndDecodes() async throws {
    let event = Event(id: "e1", host: "alpha", kind: .agentStarted, severity: .info, message: "hello")
    _ = try await bus.jetStreamPublish("\(stream).events", event, msgID: "e1")
    let c = try await bus.pullConsumer(
      stream: stream, ConsumerConfig(durable: "TYPED", filterSubject: "\(stream).events"))
    let msg = try #require(try await c.fetch(batch: 1, timeout: .seconds(2)).first)
    #expect(msg.headers["Content-Type"] == "application/x-protobuf")
    #expect(msg.headers["Mirror-Type"] == "mirrorstage.v1.Event")
    #expect(msg.headers["Mirror-Schema"] == "1")
    #expect(msg.headers["Nats-Msg-Id"] == "e1")
    #expect(try msg.decode(Event.self) == event)
    try msg.ack()
  }

  @Test func publishToSubjectWithoutStreamFails() async throws {
    let error = await #expect(throws: NATSError.self) {
      try await self.bus.jetStreamPublish("nostream.\(self.stream)", payload: [1], timeout: .milliseconds(500))
    }
    #expect(error?.status == .noResponders || error?.status == .timeout)
  }

  @Test func sharedDurableSplitsWorkBetweenConsumers() async throws {
    let subject = "\(stream).shared"
    for i in 0..<20 { _ = try await bus.jetStreamPublish(subject, payload: [UInt8(i)]) }
    let config = ConsumerConfig(durable: "SHARED", filterSubject: subject)
    let a = try await bus.pullConsumer(stream: stream, config)
    let b = try await bus.pullConsumer(stream: stream, config)
    let fromA = try await a.fetch(batch: 10, timeout: .seconds(2))
    let fromB = try await b.fetch(batch: 10, timeout: .seconds(2))
    for m in fromA + fromB { try m.ack() }
    let seen = Set((fromA + fromB).map { $0.payload[0] })
    #expect(seen.count == 20, "each message delivered to exactly one member")
  }
}
