import Foundation
import Metrics
import MirrorWire
import Synchronization

/// What one browser's screen shows, and so what it is sent.
enum Watch: Sendable, Equatable {
  case none
  case overview
  case hosts
  case host(String)
  case topic(Fleet.Topic)
}

/// One connected browser: what it watches and what changed since its last
/// message. Changes are a set of host names and a few flags, not a queue, so
/// a browser that reads slowly costs memory bounded by the fleet's size and
/// gets the newest state when it catches up; a writer that cannot deliver
/// for `writeTimeout` closes the connection.
final class LiveClient: Sendable {
  struct Pending {
    var watch: Watch = .none
    var hosts: Set<String> = []
    var detail = false
    var overview = false
    var alerts: [Alert] = []
    /// Messages of the watched topic, in order, and their size.
    var messages: [[UInt8]] = []
    var messageBytes = 0
  }
  /// And at most this many bytes of them (a twin diff at 10,000 nodes is
  /// megabytes).
  static let maxPendingBytes = 32 << 20
  /// At most this many topic messages wait for a browser; older ones are
  /// dropped and counted (a twin diff missed shows as a sequence gap, and
  /// the browser fetches the scene; a command's stored output is re-read).
  static let maxPendingMessages = 2000
  /// At most this many alert changes wait for a browser; older ones are
  /// dropped (and counted): the alert list is re-read on the next overview.
  static let maxPendingAlerts = 64

  let pending = Mutex(Pending())
  let wake: AsyncStream<Void>
  private let wakeUp: AsyncStream<Void>.Continuation

  init() {
    (wake, wakeUp) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
  }

  func watch(_ w: Watch) {
    pending.withLock {
      $0.watch = w
      $0.hosts = []
      $0.detail = true
      $0.overview = true
      $0.messages = []
      $0.messageBytes = 0
    }
    wakeUp.yield()
  }

  func note(_ change: Fleet.Change) {
    let wake = pending.withLock { p -> Bool in
      switch (change, p.watch) {
      case (.host(let name), .hosts):
        p.hosts.insert(name)
        return true
      case (.host, .overview):
        p.overview = true
        return true
      case (.host(let name), .host(let watched)) where name == watched:
        p.detail = true
        return true
      case (.message(let topic, let json), .topic(let watched)) where topic == watched:
        while !p.messages.isEmpty,
          p.messages.count >= Self.maxPendingMessages || p.messageBytes + json.count > Self.maxPendingBytes
        {
          p.messageBytes -= p.messages.removeFirst().count
          Counter(label: "console_live_dropped_total", dimensions: [("what", "message")]).increment()
        }
        p.messages.append(json)
        p.messageBytes += json.count
        return true
      case (.alert(let a), _):
        if p.alerts.count >= Self.maxPendingAlerts {
          p.alerts.removeFirst()
          Counter(label: "console_live_dropped_total", dimensions: [("what", "alert")]).increment()
        }
        p.alerts.append(a)
        if case .overview = p.watch { p.overview = true }
        return true
      default:
        return false
      }
    }
    if wake { wakeUp.yield() }
  }

  /// Takes everything pending.
  func take() -> Pending {
    pending.withLock { p in
      let out = p
      p.hosts = []
      p.detail = false
      p.overview = false
      p.alerts = []
      p.messages = []
      p.messageBytes = 0
      return out
    }
  }

  func finish() { wakeUp.finish() }
}
