import Foundation
import MirrorBus
import MirrorService
import MirrorWire
import ServiceLifecycle
import TestSupport
import Testing
import TwinCore

/// The TwinService against a real nats-server: diffs on
/// visualization.updates, twin.scene.get in every format, the key-value
/// bucket across a restart, inventory reloads, mirrorctl twin export.
@Suite(.serialized) final class TwinServiceTests {
  let nats: NATSTestServer
  let dir: String
  let inventoryPath: String

  init() throws {
    nats = try NATSTestServer()
    dir = NSTemporaryDirectory() + "twin-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    inventoryPath = dir + "/inventory.yaml"
    try labInventory.write(toFile: inventoryPath, atomically: true, encoding: .utf8)
  }

  deinit { try? FileManager.default.removeItem(atPath: dir) }

  func withTwin(_ body: (BusConnection, _ restart: () async throws -> Void) async throws -> Void) async throws {
    let config = ConfigValues(overrides: ["nats.urls": nats.url])
    let settings = try ServiceSettings(service: "twin-service", defaultHTTPPort: 0, config: config)
    let context = ServiceContext(settings: settings, config: config, logger: Harness.logger, health: Health())
    var twinSettings = TwinService.Settings()
    twinSettings.inventoryPath = inventoryPath
    twinSettings.interval = .milliseconds(300)
    twinSettings.reloadCheck = .milliseconds(200)
    let inventory = try Inventory.load(inventoryPath)
    func start() -> (ServiceGroup, Task<Void, any Error>) {
      let bus = BusService(options: settings.bus, streams: [Streams.metricsNormalized], context: context)
      let twin = TwinService(settings: twinSettings, inventory: inventory, bus: bus, logger: Harness.logger)
      let group = ServiceGroup(services: [bus, twin], logger: Harness.logger)
      return (group, Task { try await group.run() })
    }
    var (group, running) = start()
    let client = try await BusConnection.connect(BusOptions(urls: [nats.url]), logger: Harness.logger)
    let ready = await Harness.waitUntil(timeout: .seconds(20)) {
      ((try? await client.streamState(Streams.metricsNormalized.name).consumers) ?? 0) >= 1
    }
    #expect(ready)
    let restart = {
      await group.triggerGracefulShutdown()
      _ = await running.result
      (group, running) = start()
    }
    defer { running.cancel() }
    try await body(client, restart)
    await group.triggerGracefulShutdown()
    _ = await running.result
  }

  func scene(_ client: BusConnection) async throws -> Scene {
    try await client.request(Subjects.twinSceneGet, GetSceneRequest(format: .protobuf), expecting: Scene.self)
  }

  @Test func liveBatchesBecomeDiffsTheSceneAndTheStoredSceneAcrossARestart() async throws {
    try await withTwin { client, restart in
      let updates = try client.subscribe(Subjects.visualizationUpdates)
      // Garbage first: dropped, counted, and nothing else suffers.
      _ = try await client.jetStreamPublish(Subjects.metricsNormalized("junk"), payload: [0x0A, 0xFF])
      let t = Date().unixMilliseconds
      try await client.publishNormalized(twinBatch("node1", at: t, rx: 0, cpu: 33))
      try await client.publishNormalized(twinBatch("node1", at: t + 5000, rx: 62_500_000, cpu: 44))
      try await client.publishNormalized(twinBatch("stray", at: t, cpu: 5))
      var seen: [SceneDiff] = []
      _ = await Harness.waitUntil {
        for m in await Harness.collect(updates, count: 1, timeout: .milliseconds(500)) {
          if let d = try? SceneDiff(decoding: m.payload) { seen.append(d) }
        }
        return seen.contains { d in d.upsertedNodes.contains { $0.id == "node1" && $0.cpuPercent == 44 } }
      }
      let d = try #require(seen.last)
      #expect(d.sequence == d.baseSequence + 1)
      let s = try await scene(client)
      let node1 = try #require(s.nodes.first { $0.id == "node1" })
      #expect(node1.cpuPercent == 44 && node1.health == .ok)
      #expect(s.nodes.first { $0.id == "stray" }?.room == "unracked")
      #expect(s.links.first { $0.id == "node1:eth0-sw1:1" }?.utilizationPercent == 10)
      // The bucket holds the latest scene.
      let kv = try await client.keyValue(bucket: "TWIN")
      let stored = try Scene(decoding: try #require(try await kv.get("scene")), limit: 64 << 20)
      #expect(stored.sequence >= d.sequence)
      #expect(stored.nodes.map(\.id) == s.nodes.map(\.id))
      // Restarted, it starts from the bucket: same numbering, same picture.
      try await restart()
      var resumed: Scene?
      _ = await Harness.waitUntil {
        resumed = try? await self.scene(client); return resumed != nil
      }
      let again = try #require(resumed)
      #expect(again.sequence >= stored.sequence)
      #expect(again.nodes.first { $0.id == "node1" }?.cpuPercent == 44)
      #expect(again.nodes.first { $0.id == "node1" }?.x2d == node1.x2d)
    }
  }

  @Test func editingTheInventoryReloadsItAndAMistakeKeepsThePreviousOne() async throws {
    try await withTwin { client, _ in
      #expect(try await scene(client).nodes.contains { $0.id == "sw1" })
      let added = labInventory.replacingOccurrences(
        of: "{name: node2, kind: host, unit: 1}",
        with: "{name: node2, kind: host, unit: 1}\n          - {name: nas1, kind: host, unit: 3, height: 2}")
      #expect(added != labInventory)
      try added.write(toFile: inventoryPath, atomically: true, encoding: .utf8)
      #expect(await Harness.waitUntil { (try? await self.scene(client).nodes.contains { $0.id == "nas1" }) == true })
      try "rooms:\n  - name: lab\n    size: [1, 1]\n".write(toFile: inventoryPath, atomically: true, encoding: .utf8)
      try await Task.sleep(for: .seconds(1))
      let s = try await scene(client)
      #expect(s.nodes.contains { $0.id == "nas1" }, "the previous inventory is kept")
      let bad = try await client.request(Subjects.twinSceneGet, payload: [0xFF, 0xFF], timeout: .seconds(2))
      #expect(try RpcError(decoding: bad.payload).code == "invalid_argument")
    }
  }

  @Test func mirrorctlRefusesAnUnknownFormat() async throws {
    let r = try await Harness.runDetached(
      Harness.executable("mirrorctl"), ["twin", "export", "--format", "bmp", dir + "/x"],
      environment: ["MIRROR_NATS_URL": nats.url])
    #expect(r.status != 0)
    #expect(r.output.contains("--format must be gltf, json or protobuf"), "\(r.output)")
    #expect(!FileManager.default.fileExists(atPath: dir + "/x"))
  }

  @Test func mirrorctlExportsGLTFAndJSON() async throws {
    try await withTwin { client, _ in
      try await client.publishNormalized(twinBatch("node2", at: Date().unixMilliseconds, cpu: 12))
      #expect(
        await Harness.waitUntil { (try? await self.scene(client).nodes.first { $0.id == "node2" }?.health) == .ok })
      let gltf = dir + "/twin.gltf"
      let exported = try await Harness.runDetached(
        Harness.executable("mirrorctl"), ["twin", "export", "--format", "gltf", gltf],
        environment: ["MIRROR_NATS_URL": nats.url])
      #expect(exported.status == 0, "\(exported.output)")
      let check = try await Harness.runDetached(
        try Harness.which("python3"),
        [Harness.root.appendingPathComponent("Tests/twin/check_gltf.py").path, gltf, "node2", "sw1", "room:lab"])
      #expect(check.status == 0, "\(check.output)")
      let json = dir + "/twin.json"
      let j = try await Harness.runDetached(
        Harness.executable("mirrorctl"), ["twin", "export", "--format", "json", json],
        environment: ["MIRROR_NATS_URL": nats.url])
      #expect(j.status == 0, "\(j.output)")
      let parsed =
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
      let nodes = parsed?["nodes"] as? [[String: Any]]
      #expect(nodes?.first { $0["id"] as? String == "node2" }?["health"] as? String == "HEALTH_OK")
      #expect((parsed?["rooms"] as? [[String: Any]])?.first?["name"] as? String == "lab")
    }
  }
}
