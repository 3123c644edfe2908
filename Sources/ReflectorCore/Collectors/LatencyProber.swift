import Foundation
import MirrorBus
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// TCP connect time to configured targets ("host:port"), each bounded by a
/// timeout. A refused connection still measures a round trip: the host is
/// reachable.
public struct LatencyProber: Sendable {
  public let targets: [String]
  public let timeout: Duration

  public init(targets: [String], timeout: Duration = .seconds(1)) {
    self.targets = targets
    self.timeout = timeout
  }

  public func probe() -> [LatencyProbe] {
    targets.map(probe)
  }

  func probe(_ target: String) -> LatencyProbe {
    var result = LatencyProbe(target: target, method: "tcp")
    guard let colon = target.lastIndex(of: ":"), let port = UInt16(target[target.index(after: colon)...]) else {
      result.error = "target must be host:port"
      return result
    }
    let host = String(target[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var info: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
      result.error = "cannot resolve \(host)"
      return result
    }
    defer { freeaddrinfo(info) }
    let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else {
      result.error = "socket failed"
      return result
    }
    defer { close(fd) }
    let start = ContinuousClock.now
    var rc = connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen)
    if rc != 0 && errno == EINPROGRESS {
      var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
      let ms = Int32(clamping: timeout.wholeMilliseconds)
      if poll(&pfd, 1, ms) == 1 {
        var err: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
        rc = err == 0 ? 0 : -1
        errno = err
      } else {
        result.error = "timed out after \(timeout)"
        return result
      }
    }
    let elapsed = ContinuousClock.now - start
    let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    if rc == 0 || errno == ECONNREFUSED {
      result.reachable = true
      result.rttMs = ms
      if rc != 0 { result.error = "connection refused (host reachable)" }
    } else {
      result.error = String(cString: strerror(errno))
    }
    return result
  }
}
