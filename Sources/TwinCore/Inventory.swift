import Foundation
public import MirrorService
public import MirrorWire

/// The asset file: rooms (with their racks and devices) and the links
/// between devices. Validated at load; every error names file and line.
///
/// ```yaml
/// site: home-lab
/// rooms:
///   - name: lab
///     origin: [0, 0, 0]          # metres: x east, y up, z south
///     size: [6, 3, 4]
///     racks:
///       - name: r1
///         position: [1, 0, 1]
///         rotation: 90           # degrees about the vertical
///         units: 42
///         devices:
///           - {name: sw1, kind: switch, unit: 42, height: 1}
///           - {name: node1, kind: host, unit: 10, height: 2}
///     devices:                   # not in a rack
///       - {name: ap1, kind: access_point, position: [3, 2.8, 2]}
/// links:
///   - {from: "node1:eth0", to: "sw1:1", speed: 1000, waypoints: [[1, 2, 1], [1, 2.2, 1]]}
/// ```
public struct Inventory: Sendable, Equatable {
  public struct Room: Sendable, Equatable {
    public var name: String
    public var origin: Vec3
    public var size: Vec3
    public init(name: String, origin: Vec3, size: Vec3) {
      self.name = name
      self.origin = origin
      self.size = size
    }
  }

  public struct Rack: Sendable, Equatable {
    public var name: String
    public var room: String
    /// In the room's frame.
    public var position: Vec3
    public var rotationDegrees: Double
    public var units: Int
    public init(name: String, room: String, position: Vec3, rotationDegrees: Double = 0, units: Int = 42) {
      self.name = name
      self.room = room
      self.position = position
      self.rotationDegrees = rotationDegrees
      self.units = units
    }
  }

  public struct Device: Sendable, Equatable {
    public var name: String
    public var kind: NodeKind
    public var room: String
    public var rack: String?
    public var unit: Int?
    public var height: Int
    /// In the room's frame, for a device outside a rack.
    public var position: Vec3?
    /// A fixed place in the 2D layout.
    public var pin: (x: Double, y: Double)?
    public var label: String

    public init(
      name: String, kind: NodeKind, room: String, rack: String? = nil, unit: Int? = nil, height: Int = 1,
      position: Vec3? = nil, pin: (x: Double, y: Double)? = nil, label: String? = nil
    ) {
      self.name = name
      self.kind = kind
      self.room = room
      self.rack = rack
      self.unit = unit
      self.height = height
      self.position = position
      self.pin = pin
      self.label = label ?? name
    }

    public static func == (a: Device, b: Device) -> Bool {
      a.name == b.name && a.kind == b.kind && a.room == b.room && a.rack == b.rack && a.unit == b.unit
        && a.height == b.height && a.position == b.position && a.pin?.x == b.pin?.x && a.pin?.y == b.pin?.y
        && a.label == b.label
    }
  }

  public struct Link: Sendable, Equatable {
    public var from: String
    public var fromPort: String
    public var to: String
    public var toPort: String
    public var speedMbps: UInt32?
    public var waypoints: [Vec3]
    public var id: String { "\(from):\(fromPort)-\(to):\(toPort)" }

    public init(
      from: String, fromPort: String, to: String, toPort: String, speedMbps: UInt32? = nil, waypoints: [Vec3] = []
    ) {
      self.from = from
      self.fromPort = fromPort
      self.to = to
      self.toPort = toPort
      self.speedMbps = speedMbps
      self.waypoints = waypoints
    }
  }

  public var site = ""
  public var rooms: [Room] = []
  public var racks: [Rack] = []
  public var devices: [Device] = []
  public var links: [Link] = []

  public init() {}

  public static func load(_ path: String) throws(YAMLFileError) -> Inventory {
    try parse(YAMLValue.load(path))
  }

  static let kinds: [String: NodeKind] = [
    "host": .host, "switch": .switch, "router": .router, "access_point": .accessPoint, "other": .other,
  ]

  public static func parse(_ doc: YAMLValue) throws(YAMLFileError) -> Inventory {
    try doc.onlyKeys(["site", "rooms", "links"])
    var inv = Inventory()
    inv.site = try doc["site"]?.string() ?? ""
    var names: Set<String> = []
    func unique(_ v: YAMLValue, _ name: String) throws(YAMLFileError) {
      guard Subjects.isValidHostToken(name) else {
        throw v.error("'\(name)' must be letters, digits, - and _ (it may be a host name)")
      }
      guard names.insert(name).inserted else { throw v.error("the name '\(name)' is used twice") }
    }
    for r in try doc["rooms"]?.list() ?? [] {
      try r.onlyKeys(["name", "origin", "size", "racks", "devices"])
      let nameValue = try r.required("name")
      let room = Room(
        name: try nameValue.string(), origin: try r["origin"].map(vec) ?? Vec3(),
        size: try vec(try r.required("size")))
      try unique(nameValue, room.name)
      guard room.size.x > 0, room.size.y > 0, room.size.z > 0 else {
        throw try r.required("size").error("every dimension must be above zero")
      }
      inv.rooms.append(room)
      for k in try r["racks"]?.list() ?? [] {
        try k.onlyKeys(["name", "position", "rotation", "units", "devices"])
        let rackName = try k.required("name")
        let rack = Rack(
          name: try rackName.string(), room: room.name, position: try vec(try k.required("position")),
          rotationDegrees: try k["rotation"]?.double() ?? 0, units: try k["units"]?.int(in: 1...60) ?? 42)
        try unique(rackName, rack.name)
        inv.racks.append(rack)
        var used: [Int: String] = [:]
        for d in try k["devices"]?.list() ?? [] {
          var device = try parseDevice(d, room: room.name)
          try unique(try d.required("name"), device.name)
          device.rack = rack.name
          let unitValue = try d.required("unit")
          let unit = try unitValue.int(in: 1...rack.units)
          guard unit + device.height - 1 <= rack.units else {
            throw unitValue.error(
              "\(device.name) (\(device.height) U from U\(unit)) does not fit a \(rack.units) U rack")
          }
          for u in unit..<(unit + device.height) {
            if let other = used[u] { throw unitValue.error("U\(u) of \(rack.name) is taken by \(other)") }
            used[u] = device.name
          }
          device.unit = unit
          inv.devices.append(device)
        }
      }
      for d in try r["devices"]?.list() ?? [] {
        var device = try parseDevice(d, room: room.name)
        try unique(try d.required("name"), device.name)
        device.position = try vec(try d.required("position"))
        inv.devices.append(device)
      }
    }
    let deviceNames = Set(inv.devices.map(\.name))
    var linkIDs: Set<String> = []
    for l in try doc["links"]?.list() ?? [] {
      try l.onlyKeys(["from", "to", "speed", "waypoints"])
      func end(_ key: String) throws(YAMLFileError) -> (String, String) {
        let v = try l.required(key)
        let s = try v.string()
        let parts = s.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else { throw v.error("'\(s)' must be device:port") }
        guard deviceNames.contains(parts[0]) else { throw v.error("no device named '\(parts[0])' in the inventory") }
        return (parts[0], parts[1])
      }
      let (from, fromPort) = try end("from")
      let (to, toPort) = try end("to")
      var speed: UInt32?
      if let v = l["speed"] { speed = UInt32(try v.int(in: 1...1_000_000)) }
      var waypoints: [Vec3] = []
      for w in try l["waypoints"]?.list() ?? [] { waypoints.append(try vec(w)) }
      let link = Link(from: from, fromPort: fromPort, to: to, toPort: toPort, speedMbps: speed, waypoints: waypoints)
      guard linkIDs.insert(link.id).inserted else { throw l.error("the link \(link.id) is listed twice") }
      inv.links.append(link)
    }
    return inv
  }

  static func parseDevice(_ d: YAMLValue, room: String) throws(YAMLFileError) -> Device {
    try d.onlyKeys(["name", "kind", "unit", "height", "position", "pin", "label"])
    let kindValue = d["kind"]
    let kindName = try kindValue?.string() ?? "host"
    guard let kind = kinds[kindName] else {
      throw (kindValue ?? d).error("'\(kindName)' is not one of: \(kinds.keys.sorted().joined(separator: ", "))")
    }
    var pin: (x: Double, y: Double)?
    if let p = d["pin"] {
      let xs = try p.list()
      guard xs.count == 2 else { throw p.error("must be [x, y]") }
      pin = (try xs[0].double(), try xs[1].double())
    }
    let name = try d.required("name").string()
    return Device(
      name: name, kind: kind, room: room, rack: nil, unit: nil, height: try d["height"]?.int(in: 1...20) ?? 1,
      position: nil, pin: pin, label: try d["label"]?.string() ?? name)
  }

  static func vec(_ v: YAMLValue) throws(YAMLFileError) -> Vec3 {
    let xs = try v.list()
    guard xs.count == 3 else { throw v.error("must be [x, y, z] in metres") }
    return Vec3(x: try xs[0].double(), y: try xs[1].double(), z: try xs[2].double())
  }
}
