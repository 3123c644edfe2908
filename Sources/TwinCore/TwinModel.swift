import Foundation
public import MirrorWire

/// The twin: the inventory, what every host last reported, and the scene
/// made of both. Not thread-safe; one owner calls it.
public final class TwinModel {
  /// What a host last reported, reduced to what the scene shows (a class:
  /// the scene reads it for every node and link, without copying).
  final class HostLive {
    var lastSeenMs: Int64 = 0
    var intervalMs: Int64 = 5000
    var cpu: Double?
    var memory: Double?
    var temperature: Double?
    var diskMax: Double?
    var smartFailed = false
    /// Per interface: the counters last seen and the rate they gave.
    var counters: [String: CounterRate] = [:]
    var rates: [String: (rx: Double, tx: Double)] = [:]
    var speeds: [String: UInt32] = [:]
  }

  public struct Settings: Sendable {
    /// A host is down after this many of its intervals without a batch.
    public var downAfterIntervals: Int64 = 3
    public var layoutSeed: UInt64 = 42
    public init() {}
  }

  public private(set) var inventory: Inventory
  public let settings: Settings
  private var hosts: [String: HostLive] = [:]
  private var positions: [String: (Double, Double)] = [:]
  private var topology: [String] = []
  public private(set) var scene = Scene()

  public init(inventory: Inventory, settings: Settings = Settings()) {
    self.inventory = inventory
    self.settings = settings
  }

  /// Starts from a stored scene (its sequence and 2D positions), so a
  /// restarted service neither renumbers nor rearranges the picture.
  public func resume(from stored: Scene) {
    scene = stored
    for n in stored.nodes { positions[n.id] = (n.x2d, n.y2d) }
    topology = []
    // The hosts it showed keep their last values until they report (or
    // go down on time), instead of vanishing for an interval.
    for n in stored.nodes where n.kind == .host && n.health != .unknown && hosts[n.id] == nil {
      let h = HostLive()
      h.lastSeenMs = n.health == .down ? 0 : stored.generatedAtUnixMs
      h.cpu = n.cpuPercent
      h.memory = n.memoryPercent
      h.temperature = n.temperatureCelsius
      hosts[n.id] = h
    }
  }

  public func replaceInventory(_ new: Inventory) {
    inventory = new
    planned = nil
  }

  // MARK: Input

  /// One batch from `metrics.normalized`; `arrivedMs` is when it arrived.
  public func observe(_ n: NormalizedBatch, arrivedMs: Int64) {
    guard let b = n.batch, !b.host.isEmpty else { return }
    let h: HostLive
    if let known = hosts[b.host] {
      h = known
    } else {
      h = HostLive()
      hosts[b.host] = h
      planned = nil  // a new host: a new node
    }
    h.lastSeenMs = max(h.lastSeenMs, arrivedMs)
    h.intervalMs = Int64(max(b.intervalMs, 1000))
    h.cpu = n.elapsedMs > 0 ? n.cpuPercent : h.cpu
    h.memory = (b.memory?.totalBytes ?? 0) > 0 ? n.memoryUsedPercent : nil
    h.temperature = (b.temperatures.map(\.celsius) + b.gpus.compactMap(\.temperatureCelsius)).max()
    h.diskMax = b.mounts.filter { $0.available && $0.usedBytes + $0.availableBytes > 0 }
      .map { Double($0.usedBytes) * 100 / Double($0.usedBytes + $0.availableBytes) }.max()
    h.smartFailed = b.disks.contains { $0.smartHealth == .failed }
    for i in b.interfaces {
      let now = CounterRate(atMs: b.collectedAtUnixMs, rxBytes: i.rxBytes, txBytes: i.txBytes, bootID: b.bootId)
      if let r = now.bitsPerSecond(since: h.counters[i.name]) {
        h.rates[i.name] = r
      } else {
        h.rates[i.name] = nil
      }
      h.counters[i.name] = now
      if let s = i.speedMbps, s > 0 { h.speeds[i.name] = s } else { h.speeds[i.name] = nil }
    }
  }

  // MARK: The scene

  /// Health from the latest values (docs/twin.md): critical at CPU or
  /// memory ≥ 95 %, a sensor ≥ 90 °C, a disk ≥ 97 % full or a failed SMART
  /// check; warning at 85 %, 80 °C, 90 %; down when quiet.
  static func health(_ h: HostLive?, nowMs: Int64, downAfter: Int64) -> Health {
    guard let h else { return .unknown }
    if nowMs - h.lastSeenMs > downAfter * h.intervalMs { return .down }
    let cpu = h.cpu ?? 0
    let memory = h.memory ?? 0
    let temperature = h.temperature ?? 0
    let disk = h.diskMax ?? 0
    if cpu >= 95 || memory >= 95 || temperature >= 90 || disk >= 97 || h.smartFailed { return .critical }
    if cpu >= 85 || memory >= 85 || temperature >= 80 || disk >= 90 { return .warning }
    return .ok
  }

  static func tenth(_ v: Double?) -> Double? { v.map { ($0 * 10).rounded() / 10 } }

  /// What does not change between intervals: every node and link with its
  /// place, size and ends, in id order. Made again only when the inventory
  /// changes or a host the inventory does not know appears.
  struct Plan {
    var nodes: [SceneNode]
    var links: [SceneLink]
    var linkEnds: [(from: String, fromPort: String, to: String, toPort: String, speed: UInt32?)]
    var rooms: [SceneRoom]
    var racks: [SceneRack]
    var ids: [String]
  }
  private var planned: Plan?

  private func plan() -> Plan {
    if let planned { return planned }
    let U = 0.04445
    let roomByName = Dictionary(inventory.rooms.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let rackByName = Dictionary(inventory.racks.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let rooms = inventory.rooms.map { SceneRoom(id: $0.name, name: $0.name, origin: $0.origin, size: $0.size) }
    let racks = inventory.racks.map { r in
      let o = roomByName[r.room]?.origin ?? Vec3()
      return SceneRack(
        id: r.name, room: r.room,
        position: Vec3(x: o.x + r.position.x, y: o.y + r.position.y, z: o.z + r.position.z),
        rotationDegrees: r.rotationDegrees, heightUnits: UInt32(r.units))
    }
    // Every node: the inventory's devices, and live hosts it does not know
    // ("unracked", on a grid beside the rooms).
    var nodes: [SceneNode] = []
    nodes.reserveCapacity(inventory.devices.count + hosts.count)
    let known = Set(inventory.devices.map(\.name))
    let farX = (inventory.rooms.map { $0.origin.x + $0.size.x }.max() ?? 0) + 2
    for d in inventory.devices {
      var position = Vec3()
      // 1 mm short of its units at the top and the bottom, so adjacent
      // devices are drawn as separate boxes.
      var size = Vec3(x: 0.48, y: Double(d.height) * U - 0.002, z: 0.7)
      let origin = roomByName[d.room]?.origin ?? Vec3()
      if let rackName = d.rack, let rack = rackByName[rackName], let unit = d.unit {
        let y = Double(unit - 1) * U + Double(d.height) * U / 2
        position = Vec3(
          x: origin.x + rack.position.x, y: origin.y + rack.position.y + y, z: origin.z + rack.position.z)
      } else if let p = d.position {
        position = Vec3(x: origin.x + p.x, y: origin.y + p.y, z: origin.z + p.z)
        size = Vec3(x: 0.3, y: 0.1, z: 0.3)
      }
      nodes.append(
        SceneNode(
          id: d.name, kind: d.kind, label: d.label, position: position, size: size, room: d.room,
          rack: d.rack ?? "", rackUnit: d.unit.map { UInt32($0) }, pinned: d.pin != nil,
          rackUnits: d.rack == nil ? 0 : UInt32(d.height)))
    }
    for (i, name) in hosts.keys.filter({ !known.contains($0) }).sorted().enumerated() {
      nodes.append(
        SceneNode(
          id: name, kind: .host, label: name, position: Vec3(x: farX + Double(i % 10), y: 0.25, z: Double(i / 10)),
          size: Vec3(x: 0.4, y: 0.4, z: 0.4), room: "unracked"))
    }
    nodes.sort { $0.id < $1.id }
    var ends: [(from: String, fromPort: String, to: String, toPort: String, speed: UInt32?)] = []
    var links: [SceneLink] = []
    let sortedLinks = inventory.links.sorted(by: { $0.id < $1.id })
    let routes = CableRoutes(nodes: nodes, racks: racks, links: sortedLinks.map { ($0.from, $0.to) })
    for (k, l) in sortedLinks.enumerated() {
      var waypoints = l.waypoints
      if !waypoints.isEmpty {
        // Waypoints are in the source device's room frame.
        let room = inventory.devices.first { $0.name == l.from }?.room ?? ""
        let o = roomByName[room]?.origin ?? Vec3()
        waypoints = waypoints.map { Vec3(x: o.x + $0.x, y: o.y + $0.y, z: o.z + $0.z) }
      }
      links.append(
        SceneLink(
          id: l.id, sourceNode: l.from, sourcePort: l.fromPort, targetNode: l.to, targetPort: l.toPort,
          waypoints: routes.path(link: k, via: waypoints)))
      ends.append((l.from, l.fromPort, l.to, l.toPort, l.speedMbps))
    }
    // The 2D layout: again only when the graph changed, warm-started.
    let index = Dictionary(nodes.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
    let ids = nodes.map(\.id) + links.map(\.id)
    if ids != topology {
      let edges = links.compactMap { l -> (Int, Int)? in
        guard let a = index[l.sourceNode], let b = index[l.targetNode] else { return nil }
        return (a, b)
      }
      let pinByName = Dictionary(
        inventory.devices.compactMap { d in d.pin.map { (d.name, ($0.x, $0.y)) } }, uniquingKeysWith: { a, _ in a })
      let laid = ForceLayout(seed: settings.layoutSeed).layout(
        count: nodes.count, edges: edges, previous: nodes.map { positions[$0.id] },
        pinned: nodes.map { pinByName[$0.id] })
      positions = [:]
      for (i, p) in laid.enumerated() {
        positions[nodes[i].id] = ((p.x * 1000).rounded() / 1000, (p.y * 1000).rounded() / 1000)
      }
      topology = ids
    }
    for i in nodes.indices {
      let p = positions[nodes[i].id] ?? (0, 0)
      nodes[i].x2d = p.0
      nodes[i].y2d = p.1
    }
    let made = Plan(nodes: nodes, links: links, linkEnds: ends, rooms: rooms, racks: racks, ids: ids)
    planned = made
    return made
  }

  /// Builds the scene as of `nowMs` and returns what changed since the
  /// last one (nil: nothing did; the sequence stays).
  @discardableResult
  public func recompute(nowMs: Int64) -> SceneDiff? {
    let plan = plan()
    var nodes = plan.nodes
    let downAfter = settings.downAfterIntervals
    for i in nodes.indices {
      let live = hosts[nodes[i].id]
      let health = Self.health(live, nowMs: nowMs, downAfter: downAfter)
      let up = health != .down && health != .unknown
      let cpu = up ? Self.tenth(live?.cpu) : nil
      nodes[i].health = health
      nodes[i].cpuPercent = cpu
      nodes[i].memoryPercent = up ? Self.tenth(live?.memory) : nil
      nodes[i].temperatureCelsius = up ? Self.tenth(live?.temperature) : nil
      nodes[i].material = Materials.node(kind: nodes[i].kind, health: health, cpuPercent: cpu)
    }
    var links = plan.links
    for i in links.indices {
      let end = plan.linkEnds[i]
      var rx = 0.0
      var tx = 0.0
      var measured = false
      var speed = end.speed
      if let h = hosts[end.from], let r = h.rates[end.fromPort] {
        (rx, tx, measured) = (r.rx, r.tx, true)
        speed = h.speeds[end.fromPort] ?? speed
      } else if let h = hosts[end.to], let r = h.rates[end.toPort] {
        // Seen from the other end: what it receives, the source sends.
        (rx, tx, measured) = (r.tx, r.rx, true)
        speed = h.speeds[end.toPort] ?? speed
      }
      let util = measured ? Self.tenth(utilization(rxBitsPerSecond: rx, txBitsPerSecond: tx, speedMbps: speed)) : nil
      let (material, thickness) = Materials.link(utilizationPercent: util)
      links[i].speedMbps = speed
      links[i].rxBitsPerSecond = measured ? rx.rounded() : 0
      links[i].txBitsPerSecond = measured ? tx.rounded() : 0
      links[i].utilizationPercent = util
      links[i].thickness = thickness
      links[i].material = material
    }
    var next = Scene(
      sequence: scene.sequence, generatedAtUnixMs: nowMs, nodes: nodes, links: links, rooms: plan.rooms,
      racks: plan.racks)
    guard let diff = SceneDiffer.diff(from: scene, to: next) else { return nil }
    next.sequence = diff.sequence
    scene = next
    return diff
  }
}
