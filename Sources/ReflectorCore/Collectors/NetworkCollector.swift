public import MirrorWire

/// Per-interface counters (/proc/net/dev, else /sys/class/net statistics)
/// and link state from /sys/class/net, and the primary interface (the one
/// holding the default route).
public final class NetworkCollector {
  let files: SystemFiles
  /// MAC and MTU change rarely: re-read every minute.
  private var staticAttributes: [String: (mac: String, mtu: UInt32)] = [:]
  private var staticAt: ContinuousClock.Instant?

  public init(files: SystemFiles) { self.files = files }

  public func collect() -> [NetworkInterface] {
    let primary = primaryInterface()
    let counters = procNetDev()
    if staticAt.map({ ContinuousClock.now - $0 > .seconds(60) }) ?? true {
      staticAttributes = [:]
      staticAt = .now
    }
    var out: [NetworkInterface] = []
    for name in files.list("/sys/class/net") where name != "lo" {
      let base = "/sys/class/net/\(name)"
      var nic = counters[name] ?? sysfsCounters(name)
      nic.name = name
      // speed reads -1 or fails with EINVAL when the link has no speed.
      if let speed = files.int("\(base)/speed"), speed > 0, speed < Int64(UInt32.max) { nic.speedMbps = UInt32(speed) }
      nic.duplex = Self.duplex(files.line("\(base)/duplex"))
      nic.operState = Self.operState(files.line("\(base)/operstate"))
      if staticAttributes[name] == nil {
        staticAttributes[name] = (files.line("\(base)/address") ?? "", UInt32(files.int("\(base)/mtu") ?? 0))
      }
      nic.mac = staticAttributes[name]!.mac
      nic.mtu = staticAttributes[name]!.mtu
      nic.primary = name == primary
      out.append(nic)
    }
    return out
  }

  /// Counters of every interface from one file: receive bytes, packets,
  /// errs, drop (fields 1-4) and transmit bytes, packets, errs, drop (9-12).
  func procNetDev() -> [String: NetworkInterface] {
    guard let text = files.string("/proc/net/dev") else { return [:] }
    var out: [String: NetworkInterface] = [:]
    for line in text.split(separator: "\n").dropFirst(2) {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let name = line[..<colon].trimmingCharacters(in: .whitespaces)
      let f = line[line.index(after: colon)...].split(separator: " ")
      guard f.count >= 12 else { continue }
      out[name] = NetworkInterface(
        rxBytes: f[0].u64, txBytes: f[8].u64, rxPackets: f[1].u64, txPackets: f[9].u64, rxErrors: f[2].u64,
        txErrors: f[10].u64, rxDropped: f[3].u64, txDropped: f[11].u64)
    }
    return out
  }

  func sysfsCounters(_ name: String) -> NetworkInterface {
    func stat(_ s: String) -> UInt64 { files.uint("/sys/class/net/\(name)/statistics/\(s)") ?? 0 }
    return NetworkInterface(
      rxBytes: stat("rx_bytes"), txBytes: stat("tx_bytes"), rxPackets: stat("rx_packets"),
      txPackets: stat("tx_packets"),
      rxErrors: stat("rx_errors"), txErrors: stat("tx_errors"), rxDropped: stat("rx_dropped"),
      txDropped: stat("tx_dropped"))
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
