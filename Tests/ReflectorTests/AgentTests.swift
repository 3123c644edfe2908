import Foundation
import Logging
import MirrorBus
import MirrorService
import MirrorWire
import ReflectorCore
import ServiceLifecycle
import TestSupport
import Testing

/// The agent end to end with a real nats-server.
@Suite(.serialized) final class AgentTests {
  let nats: NATSTestServer

  init() throws { nats = try NATSTestServer() }

  func context(_ extra: [String: String]) throws -> ServiceContext {
    let config = ConfigValues(
      overrides: ["nats.urls": nats.url, "nats.reconnect-wait": "250ms"].merging(extra) { _, b in b })
    let settings = try ServiceSettings(service: "reflector", defaultHTTPPort: 0, config: config)
    return ServiceContext(settings: settings, config: config, logger: Harness.logger, health: Health())
  }

  /// Runs an agent in a ServiceGroup until `body` returns, then shuts it
  /// down gracefully.
  func withAgent(
    _ extra: [String: String], collector: (AgentSettings) -> Collector, _ body: (Agent) async throws -> Void
  ) async throws {
    let ctx = try context(extra)
    let settings = try AgentSettings(config: ctx.config)
    let bus = BusService(options: ctx.settings.bus, streams: [], context: ctx)
    let agent = try Agent(settings: settings, bus: bus, collector: collector(settings), logger: ctx.logger)
    let group = ServiceGroup(services: [bus, agent], logger: Harness.logger)
    let running = Task { try await group.run() }
    do {
      try await body(agent)
    } catch {
      await group.triggerGracefulShutdown()
      _ = await running.result
      throw error
    }
    await group.triggerGracefulShutdown()
    try await running.value
  }

  func readAll(_ bus: BusConnection, durable: String, expecting count: Int, timeout: Duration = .seconds(30))
    async throws -> [MetricsBatch]
  {
    let consumer = try await bus.pullConsumer(
      stream: "METRICS", ConsumerConfig(durable: durable, filterSubject: "metrics.raw.>"))
    var batches: [MetricsBatch] = []
    let deadline = ContinuousClock.now + timeout
    while batches.count < count, ContinuousClock.now < deadline {
      for m in try await consumer.fetch(batch: 100, timeout: .milliseconds(500)) {
        #expect(m.mirrorType == "mirrorstage.v1.MetricsBatch")
        #expect(m.deliveryCount == 1)
        batches.append(try m.decode(MetricsBatch.self))
        try m.ack()
      }
    }
    return batches
  }

  /// A collector that starts failing and a disk whose SMART check fails
  /// are each one event on events.<host> (for the Notifier), not one a
  /// cycle.
  @Test func aFailingCollectorAndAFailedSMARTCheckAreAnnouncedOnce() async throws {
    let bus = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    try await bus.ensureStream(Streams.metrics)
    try await bus.ensureStream(Streams.events)
    let fake = try Fixture.fakePrograms()
    try await withAgent(["reflector.host": "flaky", "reflector.interval": "200ms"]) { settings in
      Collector(
        settings: .init(
          host: settings.host, root: Fixture.path("edge"), programPath: fake,
          statfs: { path in
            // One mount never answers.
            path.hasSuffix("/mnt/nas")
              ? nil : FileSystemUsage(totalBytes: 10, availableBytes: 5, freeBytes: 6, inodesTotal: 4, inodesFree: 1)
          }))
    } _: { _ in
      let batches = try await readAll(bus, durable: "FLAKY", expecting: 5)
      try #require(batches.count >= 5)
      #expect(batches.allSatisfy { b in b.errors.contains { $0.collector == "disk" } })
      let consumer = try await bus.pullConsumer(
        stream: "EVENTS", ConsumerConfig(durable: "FLAKY_EVENTS", filterSubject: "events.flaky"))
      var events: [Event] = []
      for m in try await consumer.fetch(batch: 100, timeout: .seconds(1)) { events.append(try m.decode(Event.self)) }
      let collectorFailed = events.filter { $0.kind == .collectorFailed }
      #expect(collectorFailed.count == 1, "\(events.map(\.kind))")
      #expect(collectorFailed.first?.source == "collector.disk" && collectorFailed.first?.severity == .warning)
      let smart = events.filter { $0.kind == .smartFailed }
      #expect(smart.count == 1)
      #expect(smart.first?.source == "disk.nvme0n1" && smart.first?.severity == .critical)
      #expect(smart.first?.message.contains("WDC WDS500G2B0C") == true)
    }
  }

  @Test func batchWithEverySectionArrivesAndDecodes() async throws {
    let bus = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    try await bus.ensureStream(Streams.metrics)
    try await bus.ensureStream(Streams.events)
    let fake = try Fixture.fakePrograms()
    let probePort = nats.port
    try await withAgent(["reflector.host": "edge-host", "reflector.interval": "300ms", "reflector.label.rack": "r1"]) {
      settings in
      Collector(
        settings: .init(
          host: settings.host, root: Fixture.path("edge"), latencyTargets: ["127.0.0.1:\(probePort)"],
          programPath: fake,
          statfs: { _ in FileSystemUsage(totalBytes: 10, availableBytes: 5, freeBytes: 6, inodesTotal: 4, inodesFree: 1)
          }))
    } _: { _ in
      let batches = try await readAll(bus, durable: "E2E", expecting: 3)
      try #require(batches.count >= 3)
      let b = batches[2]
      #expect(b.host == "edge-host")
      #expect(b.bootId == "0b9e3c4c-1234-4a5b-9c8d-0123456789ab")
      #expect(b.intervalMs == 300)
      #expect(b.cpu?.cores.count == 4)
      #expect(b.memory?.totalBytes == 16_303_016 * 1024)
      #expect(b.mounts.count == 3)
      #expect(b.disks.map(\.device) == ["sda", "nvme0n1"])
      #expect(b.interfaces.count == 2)
      #expect(b.primaryInterfaceSpeedMbps == 1000)
      #expect(b.latency.first?.reachable == true)
      #expect(b.gpus.count == 2)
      #expect(b.temperatures.count == 3)
      #expect(!b.topCpu.isEmpty && !b.topMemory.isEmpty)
      #expect(b.agentVersion == AgentVersion.current)
      #expect(zip(batches, batches.dropFirst()).allSatisfy { $0.sequence < $1.sequence })
    }
    let events = try await bus.streamState("EVENTS")
    #expect(events.messages >= 2, "agent started and stopping")
  }

  @Test func natsDownForThirtySecondsLosesNothingAndDuplicatesNothing() async throws {
    let bus = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    try await bus.ensureStream(Streams.metrics)
    try await bus.ensureStream(Streams.events)
    let interval = Duration.milliseconds(500)
    try await withAgent(["reflector.host": "outage-host", "reflector.interval": "500ms"]) { settings in
      Collector(settings: .init(host: settings.host, topK: 3))
    } _: { agent in
      try await Task.sleep(for: .seconds(2))
      nats.stop()
      try await Task.sleep(for: .seconds(30))
      #expect(agent.buffer.count >= 50, "batches are kept while NATS is away: \(agent.buffer.count)")
      try nats.start()
      let drained = await Harness.waitUntil(timeout: .seconds(30)) { agent.buffer.count == 0 }
      #expect(drained)
      #expect(agent.buffer.dropped == 0)
      try await Task.sleep(for: interval)
    }
    let reconnected = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    let stored = try await reconnected.streamState("METRICS").messages
    let batches = try await readAll(reconnected, durable: "OUTAGE", expecting: Int(stored))
    #expect(batches.count == Int(stored))
    #expect(batches.count >= 64, "about 34 s at 2 batches/s: \(batches.count)")
    let sequences = batches.map(\.sequence)
    #expect(Set(sequences).count == sequences.count, "none twice")
    #expect(sequences == sequences.sorted(), "in order")
    // Every slot is there: consecutive batches are one interval apart.
    let gaps = zip(sequences, sequences.dropFirst()).map { $1 - $0 }
    #expect(gaps.allSatisfy { $0 < 800 }, "no batch missing: largest gap \(gaps.max() ?? 0) ms")
  }

  @Test func fullBufferDropsTheOldestAndCountsThem() throws {
    let buffer = try BatchBuffer(capacity: 3)
    for i in 0..<5 { buffer.append(.init(msgID: "h:b:\(i)", subject: "metrics.raw.h", payload: [UInt8(i)])) }
    #expect(buffer.count == 3)
    #expect(buffer.dropped == 2)
    #expect(buffer.first()?.msgID == "h:b:2")
  }

  @Test func spoolSurvivesARestartInOrder() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("spool-\(UUID().uuidString)").path
    do {
      let buffer = try BatchBuffer(capacity: 10, spoolDirectory: dir)
      for i in 0..<4 {
        buffer.append(.init(msgID: "h:b:\(i)", subject: "metrics.raw.h", payload: [UInt8(i), 0x0A, 7]))
      }
      buffer.removeFirst(buffer.first()!)
    }
    let restored = try BatchBuffer(capacity: 10, spoolDirectory: dir)
    #expect(restored.count == 3)
    var ids: [String] = []
    while let f = restored.first() {
      ids.append(f.msgID)
      #expect(f.payload.count == 3, "payload bytes (with a newline) intact")
      restored.removeFirst(f)
    }
    #expect(ids == ["h:b:1", "h:b:2", "h:b:3"])
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
  }
}
