import Foundation
import MirrorBus
import MirrorService
import MirrorWire
import ReflectorCore
import ServiceLifecycle
import TestSupport
import Testing

/// The command service end to end: dispatches published to a real
/// nats-server, results read back from the COMMANDS stream.
@Suite(.serialized) final class CommandServiceTests {
  let nats: NATSTestServer
  let router = TestRouter()

  init() throws { nats = try NATSTestServer() }

  func results(_ bus: BusConnection, durable: String, until done: ([CommandResult]) -> Bool) async throws
    -> (results: [CommandResult], output: [CommandOutput])
  {
    let consumer = try await bus.pullConsumer(
      stream: "COMMANDS", ConsumerConfig(durable: durable, filterSubject: "commands.result.node1"))
    var results: [CommandResult] = []
    var output: [CommandOutput] = []
    let deadline = ContinuousClock.now + .seconds(20)
    while !done(results), ContinuousClock.now < deadline {
      for m in try await consumer.fetch(batch: 50, timeout: .milliseconds(300)) {
        if m.mirrorType == CommandResult.fullName { results.append(try m.decode(CommandResult.self)) }
        if m.mirrorType == CommandOutput.fullName { output.append(try m.decode(CommandOutput.self)) }
        try m.ack()
      }
    }
    return (results, output)
  }

  @Test func commandsRunAndRefusalsAreReported() async throws {
    let bus = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    try await bus.ensureStream(Streams.commands)
    try await bus.ensureStream(Streams.events)
    let config = ConfigValues(overrides: ["nats.urls": nats.url])
    let context = ServiceContext(
      settings: try ServiceSettings(service: "reflector", defaultHTTPPort: 0, config: config), config: config,
      logger: Harness.logger, health: Health())
    var policy = CommandPolicy()
    policy.commands = [["echo", "**"], ["sh", "-c", "*"]]
    let busService = BusService(options: context.settings.bus, streams: [], context: context)
    let service = CommandService(
      host: "node1", bus: busService,
      verifier: try DispatchVerifier(routerPublicKey: router.publicKey, host: "node1"),
      executor: CommandExecutor(policy: policy, collectNow: {}), logger: Harness.logger)
    let group = ServiceGroup(services: [busService, service], logger: Harness.logger)
    let running = Task { try await group.run() }
    defer { running.cancel() }
    // The consumer delivers new messages only: wait until it is bound.
    #expect(await Harness.waitUntil { (try? await bus.streamState("COMMANDS").consumers) == 1 })

    let now = Date().unixMilliseconds
    let subject = "commands.dispatch.node1"
    let dispatches: [(String, [UInt8])] = [
      ("ok", try router.dispatch("ok", argv: ["echo", "hello", "$(id)"])),
      ("fails", try router.dispatch("fails", argv: ["sh", "-c", "exit 7"])),
      ("slow", try router.dispatch("slow", argv: ["sh", "-c", "sleep 30"], timeoutMs: 300)),
      ("forged", try router.dispatch("forged", signedBy: .init())),
      ("expired", try router.dispatch("expired", deadline: now - 5000)),
      ("denied", try router.dispatch("denied", argv: ["rm", "-rf", "/tmp/x"])),
    ]
    for (id, payload) in dispatches {
      _ = try await bus.jetStreamPublish(
        subject, payload: payload, headers: BusHeader.describing(CommandDispatch.self), msgID: id)
    }
    // The same signed dispatch again, under another message id: a replay.
    _ = try await bus.jetStreamPublish(subject, payload: dispatches[0].1, msgID: "replay-of-ok")

    let (all, output) = try await results(bus, durable: "R1") { $0.filter { $0.state != .running }.count >= 7 }
    // Each run first says it started, then how it ended.
    #expect(Set(all.filter { $0.state == .running }.map(\.commandId)) == ["ok", "fails", "slow"])
    let results = all.filter { $0.state != .running }
    func result(_ id: String) -> [CommandResult] { results.filter { $0.commandId == id } }
    #expect(results.count == 7, "\(results.map { ($0.commandId, $0.state) })")
    let ok = result("ok")
    #expect(ok.count == 2, "one run and one replay refusal")
    #expect(ok.contains { $0.state == .succeeded && $0.exitCode == 0 })
    #expect(ok.contains { $0.state == .rejected && $0.reason.hasPrefix("replayed") })
    let text = output.filter { $0.commandId == "ok" }.sorted { $0.chunkSequence < $1.chunkSequence }.flatMap(\.data)
    #expect(String(decoding: text, as: UTF8.self) == "hello $(id)\n")
    #expect(result("fails").first?.state == .failed)
    #expect(result("fails").first?.exitCode == 7)
    #expect(result("slow").first?.state == .timedOut)
    #expect(result("forged").first?.state == .rejected)
    #expect(result("forged").first?.reason.hasPrefix("bad_signature") == true)
    #expect(result("expired").first?.reason.hasPrefix("expired") == true)
    #expect(result("denied").first?.reason.hasPrefix("not_allowed") == true)
    // The failed and the timed-out runs are events for the Notifier too.
    let events = try await bus.pullConsumer(
      stream: "EVENTS", ConsumerConfig(durable: "CMD_EVENTS", filterSubject: "events.node1"))
    let failed = try await events.fetch(batch: 10, timeout: .seconds(2)).map { try $0.decode(Event.self) }
    #expect(Set(failed.map(\.source)) == ["command.fails", "command.slow"], "\(failed)")
    #expect(failed.allSatisfy { $0.kind == .commandFailed && $0.host == "node1" })
    #expect(failed.first { $0.source == "command.fails" }?.message == "sh -c exit 7: exit status 7")
    #expect(failed.first { $0.source == "command.slow" }?.message.hasPrefix("sh -c sleep 30: ") == true)
    await group.triggerGracefulShutdown()
  }
}
