import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The Wake-on-LAN magic packet: six 0xFF bytes, then the MAC sixteen times,
/// sent as a UDP broadcast (port 9) by an awake host on the sleeper's network.
public enum WakeOnLAN {
  public struct Failure: Error, CustomStringConvertible {
    public var description: String
  }

  public static func packet(mac: String) throws(Failure) -> [UInt8] {
    let parts = mac.split(whereSeparator: { $0 == ":" || $0 == "-" })
    guard parts.count == 6 else { throw Failure(description: "'\(mac)' is not a MAC address") }
    var bytes: [UInt8] = []
    for p in parts {
      guard p.count == 2, let b = UInt8(p, radix: 16) else {
        throw Failure(description: "'\(mac)' is not a MAC address")
      }
      bytes.append(b)
    }
    return [UInt8](repeating: 0xFF, count: 6) + Array([[UInt8]](repeating: bytes, count: 16).joined())
  }

  public static func send(mac: String, to address: String = "255.255.255.255", port: UInt16 = 9) throws(Failure) {
    let payload = try packet(mac: mac)
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var one: Int32 = 1
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, socklen_t(MemoryLayout<Int32>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else {
      throw Failure(description: "'\(address)' is not an IPv4 broadcast address")
    }
    let sent = payload.withUnsafeBytes { buf in
      withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          sendto(fd, buf.baseAddress, buf.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
    }
    guard sent == payload.count else { throw Failure(description: "sendto: \(String(cString: strerror(errno)))") }
  }
}
