import Foundation
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// What the host is: sent at start and again only when it changes.
public struct HostInfoCollector {
  let files: SystemFiles
  let host: String
  let labels: [Label]
  let agentVersion: String

  public init(files: SystemFiles, host: String, labels: [Label], agentVersion: String) {
    self.files = files
    self.host = host
    self.labels = labels
    self.agentVersion = agentVersion
  }

  public func collect() -> HostInfo {
    var info = HostInfo(hostname: host, agentVersion: agentVersion, labels: labels)
    let os = Self.osRelease(files.string("/etc/os-release") ?? files.string("/usr/lib/os-release") ?? "")
    info.osName = os["PRETTY_NAME"] ?? os["NAME"] ?? "Linux"
    info.osVersion = os["VERSION_ID"] ?? ""
    var u = utsname()
    if uname(&u) == 0 {
      info.kernel = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
      info.architecture = withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    if let cpuinfo = files.string("/proc/cpuinfo") {
      var threads = 0
      var cores = Set<String>()
      var physical = ""
      for line in cpuinfo.split(separator: "\n") {
        let kv = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard kv.count == 2 else { continue }
        switch kv[0] {
        case "processor": threads += 1
        case "model name" where info.cpuModel.isEmpty: info.cpuModel = kv[1]
        case "physical id": physical = kv[1]
        case "core id": cores.insert("\(physical)/\(kv[1])")
        default: break
        }
      }
      info.cpuThreads = UInt32(threads)
      info.cpuCores = UInt32(cores.isEmpty ? threads : cores.count)
    }
    info.memoryTotalBytes = MemoryCollector(files: files).collect()?.totalBytes ?? 0
    info.bootId = files.line("/proc/sys/kernel/random/boot_id") ?? ""
    info.machineId = files.line("/etc/machine-id") ?? ""
    let network = NetworkCollector(files: files)
    for nic in network.collect() where !nic.mac.isEmpty && nic.mac != "00:00:00:00:00:00" {
      info.hardwareAddresses.append(HardwareAddress(interfaceName: nic.name, mac: nic.mac))
      if nic.primary {
        info.primaryInterface = nic.name
        info.primaryInterfaceSpeedMbps = nic.speedMbps
        info.primaryInterfaceDuplex = nic.duplex
      }
    }
    if info.primaryInterface.isEmpty { info.primaryInterface = network.primaryInterface() ?? "" }
    info.addresses = Self.addresses()
    return info
  }

  static func osRelease(_ text: String) -> [String: String] {
    var out: [String: String] = [:]
    for line in text.split(separator: "\n") {
      guard let eq = line.firstIndex(of: "=") else { continue }
      out[String(line[..<eq])] = line[line.index(after: eq)...].trimmingCharacters(
        in: CharacterSet(charactersIn: "\"'"))
    }
    return out
  }

  /// IPv4 and IPv6 addresses of every interface but loopback (getifaddrs).
  static func addresses() -> [NetworkAddress] {
    var head: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&head) == 0 else { return [] }
    defer { freeifaddrs(head) }
    var out: [NetworkAddress] = []
    var p = head
    while let ifa = p {
      defer { p = ifa.pointee.ifa_next }
      guard let addr = ifa.pointee.ifa_addr else { continue }
      let family = Int32(addr.pointee.sa_family)
      guard family == AF_INET || family == AF_INET6 else { continue }
      let name = String(cString: ifa.pointee.ifa_name)
      if name == "lo" { continue }
      var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
      let len = socklen_t(family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
      guard getnameinfo(addr, len, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
      var prefix: UInt32 = 0
      if let mask = ifa.pointee.ifa_netmask {
        let bytes = family == AF_INET ? 4 : 16
        let offset = family == AF_INET ? 4 : 8
        let raw = UnsafeRawPointer(mask) + offset
        for i in 0..<bytes { prefix += UInt32(raw.load(fromByteOffset: i, as: UInt8.self).nonzeroBitCount) }
      }
      let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      out.append(
        NetworkAddress(
          interfaceName: name, address: text.split(separator: "%").first.map(String.init) ?? text, prefixLength: prefix)
      )
    }
    return out
  }
}
