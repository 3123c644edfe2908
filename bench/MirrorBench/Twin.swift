import Foundation
import MirrorWire
import TwinCore

/// The TwinService's figures at 10,000 nodes and 20,000 links: a 2D
/// layout from scratch, a full recompute plus diff per interval, and the
/// size of a diff when one host changes.
enum TwinBench {
  static func run(nodes: Int, links: Int) {
    let (inv, hosts) = inventory(nodes: nodes, links: links)
    print("twin.nodes \(inv.devices.count)")
    print("twin.links \(inv.links.count)")
    measure(inv, hosts)
  }

  /// The bench's site: racks of 38 one-unit hosts and two switches, 25
  /// racks a room; every host linked to its rack's two switches, the rest
  /// between switches.
  static func inventory(nodes: Int, links: Int) -> (Inventory, hosts: [String]) {
    var inv = Inventory()
    let perRack = 40
    let racks = (nodes + perRack - 1) / perRack
    var hosts: [String] = []
    var switches: [String] = []
    for r in 0..<racks {
      let room = "room-\(r / 25)"
      if r % 25 == 0 {
        inv.rooms.append(
          Inventory.Room(name: room, origin: Vec3(x: Double(r / 25) * 30, y: 0, z: 0), size: Vec3(x: 25, y: 3, z: 12)))
      }
      let rack = "rack-\(r)"
      inv.racks.append(
        Inventory.Rack(
          name: rack, room: room, position: Vec3(x: Double(r % 25), y: 0, z: 1), rotationDegrees: 0, units: 42))
      for u in 1...perRack where inv.devices.count < nodes {
        let isSwitch = u > 38
        let name = isSwitch ? "sw-\(r)-\(u)" : "h-\(r)-\(u)"
        inv.devices.append(
          Inventory.Device(name: name, kind: isSwitch ? .switch : .host, room: room, rack: rack, unit: u))
        if isSwitch { switches.append(name) } else { hosts.append(name) }
      }
    }
    // Every host to its rack's two switches; the rest between switches.
    for h in hosts where inv.links.count < links {
      let parts = h.split(separator: "-")
      for (k, u) in [39, 40].enumerated() where inv.links.count < links {
        inv.links.append(
          Inventory.Link(from: h, fromPort: "eth\(k)", to: "sw-\(parts[1])-\(u)", toPort: h, speedMbps: 1000))
      }
    }
    var s = 0
    while inv.links.count < links, switches.count > 1 {
      let a = switches[s % switches.count]
      let b = switches[(s * 7 + 3) % switches.count]
      if a != b {
        inv.links.append(Inventory.Link(from: a, fromPort: "up\(s)", to: b, toPort: "down\(s)", speedMbps: 10_000))
      }
      s += 1
    }
    return (inv, hosts)
  }

  /// A batch from every host for interval `i`: CPU and counters moving.
  static func batches(_ hosts: [String], _ i: Int, t0: Int64) -> [NormalizedBatch] {
    hosts.enumerated().map { k, h in
      var b = MetricsBatch(host: h, bootId: "b", sequence: UInt64(i), collectedAtUnixMs: t0 + Int64(i) * 5000)
      b.memory = MemoryStats(totalBytes: 100, availableBytes: 50, usedBytes: 50)
      b.interfaces = [
        NetworkInterface(
          name: "eth0", rxBytes: UInt64(i) * 5_000_000 * UInt64(k % 7 + 1), txBytes: UInt64(i) * 1_000_000,
          speedMbps: 1000),
        NetworkInterface(name: "eth1", rxBytes: UInt64(i) * 100_000, txBytes: UInt64(i) * 100_000, speedMbps: 1000),
      ]
      return NormalizedBatch(batch: b, elapsedMs: 5000, cpuPercent: Double((k + i) % 100), memoryUsedPercent: 50)
    }
  }

  /// The scene a browser loads (`scene.json`, the twin's JSON document as
  /// the console passes it on) and `rounds` diffs as the console's live
  /// stream sends them (`diffs.jsonl`), every host reporting each round.
  static func scene(to directory: String, nodes: Int, links: Int, rounds: Int) throws {
    let (inv, hosts) = inventory(nodes: nodes, links: links)
    let model = TwinModel(inventory: inv)
    let t0 = Date().unixMilliseconds
    for n in batches(hosts, 0, t0: t0) { model.observe(n, arrivedMs: t0) }
    model.recompute(nowMs: t0)
    try Data(SceneJSON.document(model.scene)).write(to: URL(fileURLWithPath: directory + "/scene.json"))
    var lines = Data()
    for i in 1...rounds {
      let now = t0 + Int64(i) * 5000
      for n in batches(hosts, i, t0: t0) { model.observe(n, arrivedMs: now) }
      guard let diff = model.recompute(nowMs: now) else { continue }
      lines += Data(#"{"type":"twin","diff":"#.utf8) + (try JSONEncoder().encode(diff)) + Data("}\n".utf8)
    }
    try lines.write(to: URL(fileURLWithPath: directory + "/diffs.jsonl"))
    print("scene.nodes \(model.scene.nodes.count)")
    print("scene.links \(model.scene.links.count)")
  }

  static func measure(_ inv: Inventory, _ hosts: [String]) {
    // (1) The 2D layout alone, from scratch.
    let index = Dictionary(uniqueKeysWithValues: inv.devices.enumerated().map { ($1.name, $0) })
    let edges = inv.links.map { (index[$0.from]!, index[$0.to]!) }
    let none = [(Double, Double)?](repeating: nil, count: inv.devices.count)
    var start = cpuNanos()
    _ = ForceLayout(seed: 42).layout(count: inv.devices.count, edges: edges, previous: none, pinned: none)
    let layoutMs = Double(cpuNanos() - start) / 1e6
    print(String(format: "twin.layout_from_scratch_ms %.0f  (goal < 1000)", layoutMs))

    // (2) Every host reports (not timed: input), then recompute + diff.
    let model = TwinModel(inventory: inv)
    let t0 = Date().unixMilliseconds
    func batches(_ i: Int) -> [NormalizedBatch] { Self.batches(hosts, i, t0: t0) }
    for i in 0..<2 {
      for n in batches(i) { model.observe(n, arrivedMs: t0 + Int64(i) * 5000) }
      model.recompute(nowMs: t0 + Int64(i) * 5000)  // the first includes the layout
    }
    var samples: [Double] = []
    var observeSamples: [Double] = []
    var changed = 0
    for i in 2..<8 {
      let fleet = batches(i)
      start = cpuNanos()
      for n in fleet { model.observe(n, arrivedMs: t0 + Int64(i) * 5000) }
      observeSamples.append(Double(cpuNanos() - start) / 1e6)
      start = cpuNanos()
      let diff = model.recompute(nowMs: t0 + Int64(i) * 5000)
      samples.append(Double(cpuNanos() - start) / 1e6)
      changed = (diff?.upsertedNodes.count ?? 0) + (diff?.upsertedLinks.count ?? 0)
    }
    samples.sort()
    observeSamples.sort()
    print(
      String(
        format: "twin.observe_all_hosts_ms_median %.1f  (%d batches; input, not part of the goal)",
        observeSamples[observeSamples.count / 2], hosts.count))
    print(
      String(
        format: "twin.recompute_and_diff_ms_median %.1f  (goal < 20; every host changed: %d nodes+links in the diff)",
        samples[samples.count / 2], changed))
    print(String(format: "twin.recompute_and_diff_ms_max %.1f", samples.last ?? 0))

    // (3) One host changes.
    var one = batches(8)[0]
    one.cpuPercent = 99.5
    model.observe(one, arrivedMs: t0 + 7 * 5000 + 100)
    let full = model.scene.encode().count
    start = cpuNanos()
    let diff = model.recompute(nowMs: t0 + 7 * 5000 + 100)
    let oneMs = Double(cpuNanos() - start) / 1e6
    let diffBytes = diff?.encode().count ?? 0
    print("twin.full_scene_bytes \(full)")
    print(
      "twin.one_host_diff_bytes \(diffBytes)  (\(diff?.upsertedNodes.count ?? 0) nodes, \(diff?.upsertedLinks.count ?? 0) links)"
    )
    print(String(format: "twin.one_host_diff_ratio %.5f  (goal < 0.01)", Double(diffBytes) / Double(full)))
    print(String(format: "twin.one_host_recompute_and_diff_ms %.1f", oneMs))
    print("twin.gltf_bytes \(GLTFExport.document(model.scene).count)")
  }
}
