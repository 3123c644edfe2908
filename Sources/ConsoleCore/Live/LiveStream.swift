import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import MirrorService
import MirrorWire
import NIOCore
import Synchronization

/// One WebSocket per browser (`/api/v1/live`): it reads what the browser
/// watches and writes only that, throttled, from the fleet's current state.
struct LiveStream: Sendable {
  let fleet: Fleet
  let api: ConsoleAPI
  let sessions: Sessions
  /// How often a stream checks that its session still lives (logout,
  /// expiry, a disabled user end it).
  let recheck: Duration
  let throttle: Duration
  let writeTimeout: Duration
  let logger: Logger

  struct WatchMessage: Decodable {
    var watch: String
    var host: String?
    var id: String?
  }
  struct HostMessage: Encodable {
    struct Detail: Encodable {
      var host: HostRow
      var latest: LatestView?
      var alerts: [AlertView]
    }
    var type = "host"
    var host: String
    var detail: Detail
  }
  struct AlertMessage: Encodable {
    var type = "alert"
    var alert: AlertView
  }
  struct Hello: Encodable {
    var type = "hello"
    var user: String
  }

  /// The upgrade is allowed for a logged-in session from the console's own
  /// pages (a cross-site page cannot open it with the user's cookie).
  func shouldUpgrade(_ request: Request, _ context: ConsoleContext) throws -> RouterShouldUpgrade {
    guard context.session?.stage == .ready else { throw APIError.unauthenticated }
    if let origin = request.headers[.origin] {
      let host = request.head.authority ?? ""
      guard origin == "http://\(host)" || origin == "https://\(host)" else {
        throw APIError.forbidden("cross-origin WebSocket refused")
      }
    }
    return .upgrade([:])
  }

  func run(
    inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, context: WebSocketRouterContext<ConsoleContext>
  ) async throws {
    let user = context.requestContext.session?.user ?? ""
    let token = context.request.cookies[SessionMiddleware.cookie]?.value ?? ""
    let channel = context.requestContext.channel
    let client = LiveClient()
    let observer = fleet.observe { client.note($0) }
    let clients = Gauge(label: "console_live_clients")
    LiveStream.connected.add(1)
    clients.record(LiveStream.connected.load())
    defer {
      fleet.stopObserving(observer)
      client.finish()
      LiveStream.connected.add(-1)
      clients.record(LiveStream.connected.load())
    }
    let encoder = JSONEncoder()
    try await outbound.write(.text(String(decoding: try encoder.encode(Hello(user: user)), as: UTF8.self)))
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        // What the browser says: one small JSON object at a time.
        for try await message in inbound.messages(maxSize: 4096) {
          guard case .text(let text) = message,
            let w = try? JSONDecoder().decode(WatchMessage.self, from: Data(text.utf8))
          else {
            Counter(label: "console_live_rejected_total", dimensions: [("reason", "bad_message")]).increment()
            continue
          }
          switch w.watch {
          case "overview": client.watch(.overview)
          case "hosts": client.watch(.hosts)
          case "host": client.watch(.host(w.host ?? ""))
          case "network": client.watch(.topic(.network))
          case "command": client.watch(.topic(.command(w.id ?? "")))
          default: client.watch(.none)
          }
        }
        throw CancellationError()
      }
      group.addTask {
        while true {
          try await Task.sleep(for: recheck)
          guard try await sessions.find(token: token)?.stage == .ready else {
            Counter(label: "console_live_closed_total", dimensions: [("reason", "session_ended")]).increment()
            channel.close(promise: nil)
            throw CancellationError()
          }
        }
      }
      group.addTask {
        var last = ContinuousClock.now - throttle
        for await _ in client.wake {
          let wait = last + throttle - ContinuousClock.now
          if wait > .zero { try await Task.sleep(for: wait) }
          last = ContinuousClock.now
          for text in try await messages(client.take(), encoder: encoder) {
            try await write(text, to: outbound, channel: channel)
          }
        }
      }
      _ = try await group.next()
      group.cancelAll()
    }
  }

  static let connected = LockedCounter()

  func messages(_ p: LiveClient.Pending, encoder: JSONEncoder) async throws -> [String] {
    var out: [Data] = []
    for a in p.alerts { out.append(try encoder.encode(AlertMessage(alert: AlertView(a)))) }
    for m in p.messages { out.append(Data(m)) }
    if case .hosts = p.watch, !p.hosts.isEmpty {
      // {"type": "hosts", "at", "rows": [HostRow]}, from rows the fleet
      // encoded once for every browser: encoding them per browser was most of the console's CPU
      // with 1,000 hosts and 20 browsers.
      var message = Array(#"{"type":"hosts","at":\#(Date().unixMilliseconds),"rows":["#.utf8)
      for (i, row) in fleet.encodedRows(p.hosts).enumerated() {
        if i > 0 { message.append(UInt8(ascii: ",")) }
        message += row
      }
      message += Array("]}".utf8)
      out.append(Data(message))
    }
    if case .overview = p.watch, p.overview { out.append(try encoder.encode(await api.overview())) }
    if case .host(let name) = p.watch, p.detail, let d = fleet.detail(name) {
      out.append(
        try encoder.encode(
          HostMessage(
            host: name,
            detail: .init(host: d.row, latest: d.latest.map(LatestView.init), alerts: d.alerts.map(AlertView.init)))))
    }
    return out.map { String(decoding: $0, as: UTF8.self) }
  }

  /// Writes one message, or gives up on a browser that has not taken it
  /// within `writeTimeout` (its connection is then closed).
  func write(_ text: String, to outbound: WebSocketOutboundWriter, channel: any Channel) async throws {
    let timeout = writeTimeout
    try await withThrowingTaskGroup(of: Bool.self) { group in
      group.addTask {
        try await outbound.write(.text(text))
        return true
      }
      group.addTask {
        try await Task.sleep(for: timeout)
        return false
      }
      let delivered = try await group.next() ?? false
      group.cancelAll()
      if !delivered {
        Counter(label: "console_live_closed_total", dimensions: [("reason", "slow_client")]).increment()
        logger.notice("closing a live stream that does not read")
        // Closed here: a close frame would wait behind the unread writes.
        channel.close(promise: nil)
        throw CancellationError()
      }
    }
  }
}

/// A counter shared by tasks.
final class LockedCounter: Sendable {
  private let value = Mutex<Int>(0)
  func add(_ n: Int) { value.withLock { $0 += n } }
  func load() -> Int { value.withLock { $0 } }
}
