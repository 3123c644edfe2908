public import MirrorWire

/// Per-interface counters and link state from /sys/class/net, and the
/// primary interface (the one holding the default route).
public struct NetworkCollector {
  let files: SystemFiles

  public init(files: SystemFiles) { self.files = files }

  public func collect() -> [NetworkInterface] {
    let primary = primaryInterface()
    var out: [NetworkInterface] = []
    for name in files.list("/sys/class/net") where name != "lo" {
      let base = "/sys/class/net/\(name)"
      func stat(_ s: String) -> UInt64 { files.uint("\(base)/statistics/\(s)") ?? 0 }
      var nic = NetworkInterface(
        name: name, rxBytes: stat("rx_bytes"), txBytes: stat("tx_bytes"), rxPackets: stat("rx_packets"),
        txPackets: stat("tx_packets"), rxErrors: stat("rx_errors"), txErrors: stat("tx_errors"),
        rxDropped: stat("rx_dropped"), txDropped: stat("tx_dropped"))
      // speed reads -1 or fails with EINVAL when the link has no speed.
      if let speed = files.int("\(base)/speed"), speed > 0, speed < Int64(UInt32.max) { nic.speedMbps = UInt32(speed) }
      nic.duplex = Self.duplex(files.line("\(base)/duplex"))
      nic.operState = Self.operState(files.line("\(base)/operstate"))
      nic.mac = files.line("\(base)/address") ?? ""
      nic.mtu = UInt32(files.int("\(base)/mtu") ?? 0)
      nic.primary = name == primary
      out.append(nic)
    }
    return out
  }

  static func duplex(_ s: String?) -> Duplex {
    switch s {
    case "full": .full
    case "half": .half
    default: .unknown
    }
  }

  static func operState(_ s: String?) -> OperState {
    switch s {
    case "up": .up
    case "down": .down
    case "dormant": .dormant
    case "lowerlayerdown": .lowerLayerDown
    case "notpresent": .notPresent
    case "testing": .testing
    default: .unknown
    }
  }

  /// The interface of the IPv4 default route with the lowest metric, else
  /// of the IPv6 default route.
  public func primaryInterface() -> String? {
    var best: (metric: Int, name: String)?
    for line in (files.string("/proc/net/route") ?? "").split(separator: "\n").dropFirst() {
      let f = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
      guard f.count >= 8, f[1] == "00000000", f[7] == "00000000" else { continue }
      let metric = Int(f[6]) ?? 0
      if best == nil || metric < best!.metric { best = (metric, String(f[0])) }
    }
    if let best { return best.name }
    for line in (files.string("/proc/net/ipv6_route") ?? "").split(separator: "\n") {
      let f = line.split(separator: " ")
      guard f.count >= 10, f[0] == "00000000000000000000000000000000", f[1] == "00", f[9] != "lo" else { continue }
      return String(f[9])
    }
    return nil
  }
}
