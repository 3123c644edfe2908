import Foundation
import MirrorWire

/// Where a link's cable runs in 3D, end to end: out of the front of a racked
/// device — each of the device's links in its own lane across the front —
/// up to a tray above its rack, across, and down the same way at the other
/// end; from the top of a device standing in a room. Two hosts' links in one
/// rack do not overlap, and no cable passes through the boxes of its rack.
/// The inventory's waypoints, when it gives some, replace the tray.
struct CableRoutes {
  static let unit = 0.04445
  /// Above the rack's top, where cables cross.
  static let trayClearance = 0.15

  struct End {
    var point: Vec3
    /// The tray's height above a racked device; nil for one in a room.
    var trayY: Double?
  }

  private var ends: [(End, End)] = []

  init(nodes: [SceneNode], racks: [SceneRack], links: [(from: String, to: String)]) {
    let nodeByID = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    let rackByID = Dictionary(racks.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    // Lanes: the k-th of a device's n links, in link order.
    var count: [String: Int] = [:]
    for l in links {
      count[l.from, default: 0] += 1
      count[l.to, default: 0] += 1
    }
    var used: [String: Int] = [:]
    func end(_ id: String) -> End {
      let lane = used[id, default: 0]
      used[id] = lane + 1
      guard let n = nodeByID[id] else { return End(point: Vec3(), trayY: nil) }
      let p = n.position ?? Vec3()
      let s = n.size ?? Vec3()
      guard let rack = rackByID[n.rack] else {
        return End(point: Vec3(x: p.x, y: p.y + s.y / 2, z: p.z), trayY: nil)
      }
      // Turned with the rack: its front is local +z.
      let theta = rack.rotationDegrees * .pi / 180
      let front = (x: sin(theta), z: cos(theta))
      let side = (x: cos(theta), z: -sin(theta))
      let lanes = Double(max(count[id] ?? 1, 1))
      let offset = -0.2 + 0.4 * (Double(lane) + 0.5) / lanes
      let out = s.z / 2 + 0.03
      let top = (rack.position?.y ?? 0) + Double(rack.heightUnits) * Self.unit
      return End(
        point: Vec3(x: p.x + front.x * out + side.x * offset, y: p.y, z: p.z + front.z * out + side.z * offset),
        trayY: top + Self.trayClearance + 0.02 * Double(lane % 4))
    }
    for l in links { ends.append((end(l.from), end(l.to))) }
  }

  /// The full path of link `k`, ends included.
  func path(link k: Int, via waypoints: [Vec3]) -> [Vec3] {
    let (a, b) = ends[k]
    func up(_ e: End, _ y: Double?) -> [Vec3] {
      guard let y else { return [] }
      return [Vec3(x: e.point.x, y: y, z: e.point.z)]
    }
    if !waypoints.isEmpty {
      return [a.point] + up(a, a.trayY) + waypoints + up(b, b.trayY) + [b.point]
    }
    // One tray height for the crossing: the higher of the two.
    let tray = [a.trayY, b.trayY].compactMap { $0 }.max()
    return [a.point] + up(a, a.trayY.map { _ in tray! }) + up(b, b.trayY.map { _ in tray! }) + [b.point]
  }
}
