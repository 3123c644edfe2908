import Foundation
import MirrorService
import MirrorWire
import TestSupport
import Testing
import TwinCore

let labInventory = """
  site: home
  rooms:
    - name: lab
      origin: [0, 0, 0]
      size: [6, 3, 4]
      racks:
        - name: r1
          position: [1, 0, 1]
          units: 42
          devices:
            - {name: sw1, kind: switch, unit: 42, pin: [0, 0]}
            - {name: node1, kind: host, unit: 10, height: 2}
        - name: r2
          position: [3, 0, 1]
          rotation: 90
          units: 24
          devices:
            - {name: node2, kind: host, unit: 1}
      devices:
        - {name: ap1, kind: access_point, position: [5, 2.8, 3]}
  links:
    - {from: "node1:eth0", to: "sw1:1", speed: 1000}
    - {from: "node2:eth0", to: "sw1:2", waypoints: [[3, 2, 1], [1, 2, 1]]}
    - {from: "ap1:lan", to: "sw1:3", speed: 100}
  """

/// A batch from `host` at `t`: counters as given, one NIC "eth0".
func twinBatch(
  _ host: String, at t: Int64, rx: UInt64 = 0, tx: UInt64 = 0, speed: UInt32? = nil, cpu: Double = 20,
  boot: String = "b1", interval: UInt32 = 5000
) -> NormalizedBatch {
  var b = MetricsBatch(host: host, bootId: boot, sequence: UInt64(t), collectedAtUnixMs: t, intervalMs: interval)
  b.memory = MemoryStats(totalBytes: 100, availableBytes: 60, usedBytes: 40)
  b.interfaces = [NetworkInterface(name: "eth0", rxBytes: rx, txBytes: tx, speedMbps: speed)]
  b.temperatures = [TemperatureSensor(chip: "coretemp", label: "Package", celsius: 50)]
  return NormalizedBatch(batch: b, elapsedMs: 5000, cpuPercent: cpu, memoryUsedPercent: 40)
}

@Suite struct TwinModelTests {
  func inventory(_ text: String = labInventory) throws -> Inventory {
    try Inventory.parse(YAMLValue.parse(text, file: "inventory.yaml"))
  }

  /// The inventories that ship: the local stack's example (as run.sh
  /// fills it in) and the k8s ConfigMap's.
  @Test func theShippedInventoriesAreValid() throws {
    let example = try String(
      contentsOfFile: Harness.root.appendingPathComponent("config/inventory.example.yaml").path, encoding: .utf8)
    let filled = example.replacingOccurrences(of: "@HOST@", with: "myhost").replacingOccurrences(
      of: "@IFACE@", with: "eth0")
    let inv = try Inventory.parse(YAMLValue.parse(filled, file: "inventory.example.yaml"))
    #expect(inv.rooms.count == 1 && inv.racks.count == 2)
    #expect(Set(inv.devices.map(\.name)).isSuperset(of: ["core-switch", "myhost", "sim-01", "sim-02", "sim-03"]))
    #expect(inv.links.contains { $0.from == "myhost" && $0.fromPort == "eth0" })
    let manifest = try String(
      contentsOfFile: Harness.root.appendingPathComponent("k8s/twin-inventory.yaml").path, encoding: .utf8)
    let marker = "  inventory.yaml: |\n"
    let body = try #require(manifest.components(separatedBy: marker).last)
    let text = body.split(separator: "\n", omittingEmptySubsequences: false).map { $0.dropFirst(4) }.joined(
      separator: "\n")
    let k8s = try Inventory.parse(YAMLValue.parse(text, file: "k8s/twin-inventory.yaml"))
    #expect(k8s.devices.map(\.name) == ["core-switch"])
  }

  @Test func utilisationIsTheBusierDirectionOverTheSpeedAndResetsGiveNoRate() {
    let a = CounterRate(atMs: 0, rxBytes: 1_000, txBytes: 0, bootID: "b")
    let b = CounterRate(atMs: 2_000, rxBytes: 125_001_000, txBytes: 25_000_000, bootID: "b")
    let r = try! #require(b.bitsPerSecond(since: a))
    #expect(r.rx == 500_000_000)  // 125 MB in 2 s = 500 Mbit/s
    #expect(r.tx == 100_000_000)
    #expect(utilization(rxBitsPerSecond: r.rx, txBitsPerSecond: r.tx, speedMbps: 1000) == 50)
    #expect(utilization(rxBitsPerSecond: r.rx, txBitsPerSecond: r.tx, speedMbps: nil) == nil)
    #expect(utilization(rxBitsPerSecond: r.rx, txBitsPerSecond: r.tx, speedMbps: 0) == nil)
    // A counter that went backwards (reboot, driver reload, wrap): no rate.
    let reset = CounterRate(atMs: 4_000, rxBytes: 10, txBytes: 30_000_000, bootID: "b")
    #expect(reset.bitsPerSecond(since: b) == nil)
    // ...and the next step is measured from the new value.
    let after = CounterRate(atMs: 5_000, rxBytes: 1_000_010, txBytes: 30_000_000, bootID: "b")
    #expect(after.bitsPerSecond(since: reset)?.rx == 8_000_000)
    // A new boot, or time not moving: no rate either.
    #expect(CounterRate(atMs: 6_000, rxBytes: 2_000_000, txBytes: 0, bootID: "b2").bitsPerSecond(since: after) == nil)
    #expect(CounterRate(atMs: 5_000, rxBytes: 2_000_000, txBytes: 0, bootID: "b").bitsPerSecond(since: after) == nil)
    #expect(a.bitsPerSecond(since: nil) == nil)
  }

  @Test func linksCarryLiveRatesWithTheReportedSpeedElseTheInventorys() throws {
    let twin = TwinModel(inventory: try inventory())
    let t0: Int64 = 1_000_000
    twin.observe(twinBatch("node1", at: t0, rx: 0, tx: 0), arrivedMs: t0)
    twin.observe(twinBatch("node1", at: t0 + 5000, rx: 312_500_000, tx: 62_500_000), arrivedMs: t0 + 5000)
    // node2 reports its NIC at 100 Mbit/s; the inventory says nothing.
    twin.observe(twinBatch("node2", at: t0, speed: 100), arrivedMs: t0)
    twin.observe(twinBatch("node2", at: t0 + 5000, rx: 6_250_000, tx: 0, speed: 100), arrivedMs: t0 + 5000)
    twin.recompute(nowMs: t0 + 5000)
    let links = Dictionary(uniqueKeysWithValues: twin.scene.links.map { ($0.id, $0) })
    let l1 = try #require(links["node1:eth0-sw1:1"])
    #expect(l1.rxBitsPerSecond == 500_000_000 && l1.txBitsPerSecond == 100_000_000)
    #expect(l1.utilizationPercent == 50)
    #expect(l1.speedMbps == 1000)
    #expect(l1.material?.colorHex == "#e67e22")  // 50 %: orange (links have their own scale)
    let l2 = try #require(links["node2:eth0-sw1:2"])
    #expect(l2.utilizationPercent == 10)
    #expect(l2.speedMbps == 100)
    // The routed path: out of node2's front, up to the tray, through the
    // inventory's waypoints, down to sw1's front.
    #expect(l2.waypoints.count == 6)
    #expect(l2.waypoints[2] == Vec3(x: 3, y: 2, z: 1) && l2.waypoints[3] == Vec3(x: 1, y: 2, z: 1))
    // The access point reports nothing: unknown, grey and thin.
    let l3 = try #require(links["ap1:lan-sw1:3"])
    #expect(l3.utilizationPercent == nil && l3.thickness == 0.005 && l3.material?.colorHex == "#7f8c8d")
    // node1 reboots: its counters restart; no rate, not a negative one.
    twin.observe(twinBatch("node1", at: t0 + 10_000, rx: 1000, tx: 10, boot: "b2"), arrivedMs: t0 + 10_000)
    twin.recompute(nowMs: t0 + 10_000)
    #expect(twin.scene.links.first { $0.id == "node1:eth0-sw1:1" }?.utilizationPercent == nil)
  }

  @Test func aHostThatStopsReportingTurnsDownAndUnknownHostsAreUnracked() throws {
    let twin = TwinModel(inventory: try inventory())
    let t0: Int64 = 2_000_000
    twin.observe(twinBatch("node1", at: t0, cpu: 30), arrivedMs: t0)
    twin.observe(twinBatch("laptop", at: t0, cpu: 97), arrivedMs: t0)
    twin.recompute(nowMs: t0 + 1000)
    func node(_ id: String) -> SceneNode? { twin.scene.nodes.first { $0.id == id } }
    #expect(node("node1")?.health == .ok)
    #expect(node("node1")?.cpuPercent == 30)
    #expect(node("node1")?.rack == "r1" && node("node1")?.rackUnit == 10)
    #expect(node("laptop")?.room == "unracked")
    #expect(node("laptop")?.health == .critical)  // CPU 97 %
    #expect(node("node2")?.health == .unknown)  // never reported
    // Never reported: the neutral "unknown" grey, whatever the kind.
    #expect(node("sw1")?.material?.colorHex == "#9e9e9e")
    #expect(node("node2")?.material?.colorHex == "#9e9e9e")
    // 3 intervals (15 s) of silence: down, values gone, dimmed.
    let diff = try #require(twin.recompute(nowMs: t0 + 15_001))
    #expect(node("node1")?.health == .down)
    #expect(node("node1")?.cpuPercent == nil)
    #expect(node("node1")?.material?.opacity == 0.5)
    #expect(Set(diff.upsertedNodes.map(\.id)) == ["node1", "laptop"])
    #expect(diff.baseSequence + 1 == diff.sequence)
    // Nothing new: no diff, the sequence stays.
    let sequence = twin.scene.sequence
    #expect(twin.recompute(nowMs: t0 + 16_000) == nil)
    #expect(twin.scene.sequence == sequence)
  }

  @Test func threeDPositionsComeFromRoomsAndRacks() throws {
    let twin = TwinModel(inventory: try inventory())
    twin.recompute(nowMs: 1)
    func node(_ id: String) -> SceneNode? { twin.scene.nodes.first { $0.id == id } }
    let n1 = try #require(node("node1"))
    // U10, 2 U high: its centre 9 U + 1 U above the rack's floor.
    #expect(abs((n1.position?.y ?? 0) - 10 * 0.04445) < 1e-9)
    #expect(n1.position?.x == 1 && n1.position?.z == 1)
    #expect(abs((n1.size?.y ?? 0) - (2 * 0.04445 - 0.002)) < 1e-9)
    #expect(node("ap1")?.position == Vec3(x: 5, y: 2.8, z: 3))
    #expect(twin.scene.racks.map(\.id) == ["r1", "r2"] && twin.scene.racks[1].rotationDegrees == 90)
    #expect(twin.scene.rooms.first?.size == Vec3(x: 6, y: 3, z: 4))
    // 2D: the pinned switch stays at its pin.
    #expect(node("sw1")?.x2d == 0 && node("sw1")?.y2d == 0 && node("sw1")?.pinned == true)
  }

  @Test func inventoryErrorsNameFileLineAndProblem() {
    let cases: [(String, Int, String)] = [
      ("rooms:\n  - name: a\n    size: [1, 1]\n", 3, "must be [x, y, z]"),
      ("rooms:\n  - name: a\n    size: [1, 1, 0]\n", 3, "above zero"),
      (
        "rooms:\n  - name: a\n    size: [1, 1, 1]\n    racks:\n      - name: r\n        position: [0, 0, 0]\n        units: 10\n        devices:\n          - {name: x, unit: 10, height: 2}\n",
        9, "does not fit a 10 U rack"
      ),
      (
        "rooms:\n  - name: a\n    size: [1, 1, 1]\n    racks:\n      - name: r\n        position: [0, 0, 0]\n        devices:\n          - {name: x, unit: 5, height: 2}\n          - {name: y, unit: 6}\n",
        9, "U6 of r is taken by x"
      ),
      (
        "rooms:\n  - name: a\n    size: [1, 1, 1]\n    devices:\n      - {name: a, position: [0, 0, 0]}\n",
        5, "used twice"
      ),
      (
        "rooms:\n  - name: a\n    size: [1, 1, 1]\n    devices:\n      - {name: d, kind: toaster, position: [0, 0, 0]}\n",
        5, "'toaster' is not one of"
      ),
      (
        "rooms:\n  - name: a\n    size: [1, 1, 1]\n    devices:\n      - {name: d, position: [0, 0, 0]}\nlinks:\n  - {from: 'd:1', to: 'ghost:2'}\n",
        7, "no device named 'ghost'"
      ),
      ("links:\n  - {from: 'd', to: 'e:1'}\n", 2, "must be device:port"),
      ("rooms:\n  - name: a\n    size: [1, 1, 1]\n    colour: red\n", 4, "unknown key 'colour'"),
      ("rooms:\n  - name: 'bad name'\n    size: [1, 1, 1]\n", 2, "must be letters"),
    ]
    for (text, line, expected) in cases {
      do {
        _ = try Inventory.parse(YAMLValue.parse(text, file: "inventory.yaml"))
        Issue.record("accepted: \(text)")
      } catch {
        #expect(error.file == "inventory.yaml")
        #expect(error.line == line, "\(error) for \(text)")
        #expect(error.description.contains(expected), "\(error) should say \(expected)")
      }
    }
  }

  /// Found writing bench/fuzz.sh (FuzzInventory crashes on it): pins far
  /// apart overflowed the layout's grid converting a Double to Int. The
  /// scene is built.
  @Test func pinsFarApartDoNotOverflowTheLayout() throws {
    let model = TwinModel(
      inventory: try inventory(
        """
        rooms:
          - name: r
            size: [10, 10, 3]
            devices:
              - {name: a, position: [1, 1, 0], pin: [1e308, 0]}
              - {name: b, position: [2, 2, 0], pin: [-1e308, 0]}
              - {name: c, position: [3, 3, 0]}
        links:
          - {from: "a:1", to: "c:1"}
          - {from: "b:1", to: "c:2"}
        """))
    model.recompute(nowMs: 1_800_000_000_000)
    #expect(model.scene.nodes.map(\.id).sorted() == ["a", "b", "c"])
    #expect(!GLTFExport.document(model.scene).isEmpty)
  }

  /// The property: for any sequence of changes, applying each published
  /// diff to the scene before it gives exactly the scene after it.
  @Test(arguments: [1, 2, 3, 4, 5] as [UInt64])
  func applyingTheDiffsToAnOldSceneGivesExactlyTheNewScene(seed: UInt64) throws {
    var rng = SplitMix64(seed: seed)
    var inv = try inventory()
    let twin = TwinModel(inventory: inv)
    var client = Scene()
    var t: Int64 = 10_000_000
    var counters: [String: UInt64] = [:]
    var diffs = 0
    for _ in 0..<150 {
      t += Int64(rng.next(upTo: 3000))
      switch rng.next(upTo: 10) {
      case 0:
        // A new host appears or an inventory device comes and goes.
        let name = "h\(rng.next(upTo: 30))"
        if let i = inv.devices.firstIndex(where: { $0.name == name }) {
          inv.links.removeAll { $0.from == name || $0.to == name }
          inv.devices.remove(at: i)
        } else {
          inv.devices.append(
            Inventory.Device(
              name: name, kind: .host, room: "lab", rack: nil, unit: nil, height: 1,
              position: Vec3(x: Double(rng.next(upTo: 6)), y: 0, z: 1), pin: nil, label: name))
          inv.links.append(
            Inventory.Link(from: name, fromPort: "eth0", to: "sw1", toPort: name, speedMbps: 1000, waypoints: []))
        }
        twin.replaceInventory(inv)
      case 1:
        t += 20_000  // a quiet spell: hosts go down
      default:
        let host = ["node1", "node2", "laptop", "h\(rng.next(upTo: 30))"][Int(rng.next(upTo: 4))]
        let reset = rng.next(upTo: 8) == 0
        counters[host] =
          reset ? UInt64(rng.next(upTo: 1000)) : (counters[host] ?? 0) + UInt64(rng.next(upTo: 50_000_000))
        twin.observe(
          twinBatch(host, at: t, rx: counters[host]!, tx: counters[host]! / 3, cpu: Double(rng.next(upTo: 100))),
          arrivedMs: t)
      }
      let before = twin.scene
      guard let diff = twin.recompute(nowMs: t) else {
        #expect(twin.scene == before)
        continue
      }
      diffs += 1
      // Sent over the wire and back.
      let received = try SceneDiff(decoding: diff.encode())
      if received.fullRefresh {
        client = twin.scene
        continue
      }
      client = try SceneDiffer.apply(received, to: client)
      #expect(client == twin.scene, "after diff \(received.sequence)")
    }
    #expect(diffs > 50)
    // A client that missed one is told so.
    var stale = client
    stale.sequence -= 1
    twin.observe(twinBatch("node1", at: t + 1, cpu: 1), arrivedMs: t + 1)
    if let d = twin.recompute(nowMs: t + 1) {
      #expect(throws: SceneDiffer.ApplyError.self) { try SceneDiffer.apply(d, to: stale) }
    }
  }

  @Test func theLayoutIsDeterministicKeepsPinsAndBarelyMovesWhenOneHostJoins() {
    let layout = ForceLayout(seed: 7)
    let n = 300
    var edges: [(Int, Int)] = []
    for i in 1..<n { edges.append((i, (i - 1) / 4)) }  // a tree
    var pins = [(Double, Double)?](repeating: nil, count: n)
    pins[0] = (100, 100)
    let a = layout.layout(count: n, edges: edges, previous: Array(repeating: nil, count: n), pinned: pins)
    let b = layout.layout(count: n, edges: edges, previous: Array(repeating: nil, count: n), pinned: pins)
    #expect(a.map(\.x) == b.map(\.x) && a.map(\.y) == b.map(\.y))
    #expect(a[0].x == 100 && a[0].y == 100)
    // Linked nodes end up nearer each other than random ones.
    func d(_ i: Int, _ j: Int) -> Double {
      ((a[i].x - a[j].x) * (a[i].x - a[j].x) + (a[i].y - a[j].y) * (a[i].y - a[j].y)).squareRoot()
    }
    let linked = edges.map { d($0.0, $0.1) }.reduce(0, +) / Double(edges.count)
    let apart = (0..<200).map { d($0, n - 1 - $0) }.reduce(0, +) / 200
    #expect(linked * 2 < apart)
    // One more host: warm-started, the others hardly move.
    let previous = a.map { Optional(($0.x, $0.y)) } + [nil]
    let c = layout.layout(
      count: n + 1, edges: edges + [(n, 5)], previous: previous, pinned: pins + [nil])
    let moved = (0..<n).map { i in
      ((c[i].x - a[i].x) * (c[i].x - a[i].x) + (c[i].y - a[i].y) * (c[i].y - a[i].y)).squareRoot()
    }
    #expect(moved.reduce(0, +) / Double(n) < 0.5, "mean move \(moved.reduce(0, +) / Double(n))")
  }

  @Test func theGLTFExportLoadsInAnIndependentReader() throws {
    let twin = TwinModel(inventory: try inventory())
    let t0: Int64 = 3_000_000
    twin.observe(twinBatch("node1", at: t0, cpu: 42), arrivedMs: t0)
    twin.observe(twinBatch("laptop", at: t0), arrivedMs: t0)
    twin.recompute(nowMs: t0)
    let path = NSTemporaryDirectory() + "twin-\(UUID().uuidString).gltf"
    try Data(GLTFExport.document(twin.scene)).write(to: URL(fileURLWithPath: path))
    defer { try? FileManager.default.removeItem(atPath: path) }
    let script = Harness.root.appendingPathComponent("Tests/twin/check_gltf.py").path
    let (status, output) = try Harness.run(
      try Harness.which("python3"),
      [
        script, path, "node1", "node2", "sw1", "ap1", "laptop", "room:lab", "rack:r1", "rack:r2",
        "link:node1:eth0-sw1:1",
      ])
    #expect(status == 0, "\(output)")
    let line = try #require(output.split(separator: "\n").last)
    let summary = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    // 5 devices and hosts, 1 room, 2 racks, 3 links.
    #expect(summary["nodes"] as? Int == 11)
    let extras = summary["extras"] as? [String: [String: Any]]
    #expect(extras?["node1"]?["cpuPercent"] as? Double == 42)
    #expect(extras?["node1"]?["label"] as? String == "node1")
    #expect(extras?["node1"]?["rackUnits"] as? Int == 2)
    // A link names its ends; the scene carries the legend.
    #expect(extras?["link:node1:eth0-sw1:1"]?["sourceNode"] as? String == "node1")
    #expect(extras?["link:node1:eth0-sw1:1"]?["targetPort"] as? String == "1")
    #expect(extras?["node1"]?["health"] as? String == "HEALTH_OK")
  }

  @Test func racksDrawSeparateBoxesAndCablesRunInLanesOverTheRack() throws {
    let twin = TwinModel(
      inventory: try inventory(
        """
        site: home
        rooms:
          - name: lab
            origin: [0, 0, 0]
            size: [6, 3, 4]
            racks:
              - name: r1
                position: [1, 0, 1]
                units: 12
                devices:
                  - {name: sw1, kind: switch, unit: 12}
                  - {name: a1, kind: host, unit: 1}
                  - {name: a2, kind: host, unit: 2, height: 2}
        links:
          - {from: "a1:eth0", to: "sw1:1"}
          - {from: "a2:eth0", to: "sw1:2"}
        """))
    twin.recompute(nowMs: 1000)
    let nodes = Dictionary(uniqueKeysWithValues: twin.scene.nodes.map { ($0.id, $0) })
    let a1 = try #require(nodes["a1"])
    let a2 = try #require(nodes["a2"])
    // Adjacent units: a gap between the boxes, heights in units kept.
    let a1Top = (a1.position?.y ?? 0) + (a1.size?.y ?? 0) / 2
    let a2Bottom = (a2.position?.y ?? 0) - (a2.size?.y ?? 0) / 2
    #expect(a2Bottom - a1Top > 0.001)
    #expect(a1.rackUnits == 1 && a2.rackUnits == 2)
    let links = twin.scene.links
    #expect(links.count == 2)
    for l in links {
      // End to end, over the rack (12 U = 0.53 m) and in front of the boxes.
      #expect(l.waypoints.count == 4)
      #expect(l.waypoints.map(\.y).max()! > 12 * 0.04445)
      #expect(l.waypoints.allSatisfy { $0.z > 1 + 0.35 })
    }
    // sw1's two cables leave it in different lanes.
    #expect(links[0].waypoints.last != links[1].waypoints.last)
  }
}
