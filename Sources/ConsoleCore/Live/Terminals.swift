import Crypto
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Metrics
import MirrorBus
import MirrorService
import MirrorWire
import NIOCore

/// The console's end of interactive shells. The token is made at prepare
/// and kept here (the browser never sees it, the request carries its
/// SHA-256); at submit the session is subscribed before the router
/// dispatches it; the browser's WebSocket (`/api/v1/terminals/<id>`)
/// attaches to it. Closing the WebSocket hangs up the shell.
final class Terminals: Sendable {
  struct Pending: Sendable {
    var user: String
    var token: [UInt8]
    var expiresMs: Int64
  }
  private let pending = Shared<[String: Pending]>([:])
  private let open = Shared<[String: Terminal]>([:])

  /// A token for a prepared request; its SHA-256 goes into the request.
  func prepare(id: String, user: String, nowMs: Int64) -> [UInt8] {
    let token = SessionClient.makeToken()
    pending.withLock { p in
      p = p.filter { $0.value.expiresMs > nowMs }
      p[id] = Pending(user: user, token: token, expiresMs: nowMs + 120_000)
    }
    return Array(SHA256.hash(data: token))
  }

  /// The session of a prepared request, subscribed; nil when it was not
  /// prepared here by this user (or too long ago).
  func start(id: String, user: String, host: String, connection: BusConnection, nowMs: Int64) throws -> Terminal? {
    guard let p = pending.withLock({ $0.removeValue(forKey: id) }), p.user == user, p.expiresMs > nowMs else {
      return nil
    }
    let terminal = Terminal(id: id, user: user, host: host)
    try terminal.connect(connection, token: p.token) { [open] in _ = open.withLock { $0.removeValue(forKey: id) } }
    open.withLock { $0[id] = terminal }
    return terminal
  }

  func find(_ id: String, user: String) -> Terminal? {
    open.withLock { $0[id] }.flatMap { $0.user == user ? $0 : nil }
  }

  func discard(_ id: String) {
    open.withLock { $0.removeValue(forKey: id) }?.close()
  }
}

/// One shell: the host's frames turned into JSON for the browser
/// (`{"type":"ready"}`, `{"type":"output","text"}`, `{"type":"end",
/// "exitCode","reason"}`), held (up to 1 MiB) until a browser attaches.
final class Terminal: Sendable {
  let id: String
  let user: String
  let host: String
  private struct State {
    var held: [String] = []
    var heldBytes = 0
    var sink: AsyncStream<String>.Continuation?
    var carry = UTF8Carry()
    var ended = false
  }
  private let state = Shared(State())
  private let client = Shared<SessionClient?>(nil)
  static let holdLimit = 1 << 20

  init(id: String, user: String, host: String) {
    self.id = id
    self.user = user
    self.host = host
  }

  func connect(_ connection: BusConnection, token: [UInt8], onEnd: @escaping @Sendable () -> Void) throws {
    let c = try SessionClient(connection: connection, host: host, commandID: id, token: token) { [self] event in
      switch event {
      case .frame(let f):
        switch f.kind {
        case .ready: emit(#"{"type":"ready"}"#)
        case .data:
          let text = state.withLock { $0.carry.decode(f.data) }
          emit(Self.json(["type": "output", "text": text]))
        case .end:
          emit(
            Self.json(["type": "end", "exitCode": f.exitCode.map { Int($0) as Any } ?? NSNull(), "reason": f.reason]))
          finish(onEnd)
        default: break
        }
      case .final(let record):
        let state = apiName(record.state.description, prefix: "COMMAND_STATE_")
        let why = record.hosts.first?.reason ?? record.reason
        emit(Self.json(["type": "end", "state": state, "reason": why.isEmpty ? record.reason : why]))
        finish(onEnd)
      }
    }
    client.withLock { $0 = c }
  }

  static func json(_ object: [String: Any]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
    return String(decoding: data, as: UTF8.self)
  }

  private func emit(_ message: String) {
    state.withLock { s in
      if let sink = s.sink {
        sink.yield(message)
        return
      }
      // No browser yet: hold it, dropping the oldest past the limit.
      s.held.append(message)
      s.heldBytes += message.utf8.count
      while s.heldBytes > Self.holdLimit, !s.held.isEmpty {
        s.heldBytes -= s.held.removeFirst().utf8.count
        Counter(label: "console_terminal_dropped_total").increment()
      }
    }
  }

  private func finish(_ onEnd: @Sendable () -> Void) {
    let sink = state.withLock { s -> AsyncStream<String>.Continuation? in
      s.ended = true
      return s.sink
    }
    sink?.finish()
    client.withLock { $0 }?.close()
    onEnd()
  }

  /// What the browser gets: what was held, then live, until the end.
  func attach() -> AsyncStream<String> {
    let (stream, sink) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(4096))
    state.withLock { s in
      s.sink?.finish()
      for m in s.held { sink.yield(m) }
      s.held = []
      s.heldBytes = 0
      if s.ended { sink.finish() } else { s.sink = sink }
    }
    return stream
  }

  func input(_ text: String) { try? client.withLock({ $0 })?.input(Array(text.utf8)) }
  func resize(cols: UInt32, rows: UInt32) { try? client.withLock({ $0 })?.resize(cols: cols, rows: rows) }
  func hangUp() { try? client.withLock({ $0 })?.end() }
  func close() { client.withLock { $0 }?.close() }
}

/// The browser's side of a terminal: `{"i": text}` typed, `{"r": [cols,
/// rows]}` resized, `{"end": true}` hang up; the terminal's messages back.
struct TerminalSocket: Sendable {
  let terminals: Terminals
  let live: LiveStream
  let logger: Logger

  struct Input: Decodable {
    var i: String?
    var r: [UInt32]?
    var end: Bool?
  }

  func shouldUpgrade(_ request: Request, _ context: ConsoleContext) throws -> RouterShouldUpgrade {
    _ = try live.shouldUpgrade(request, context)
    let id = try context.parameters.require("id")
    guard let user = context.session?.user, terminals.find(id, user: user) != nil else {
      throw APIError.notFound("no open terminal \(id) of yours")
    }
    return .upgrade([:])
  }

  func run(
    inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, context: WebSocketRouterContext<ConsoleContext>
  ) async throws {
    let id = context.requestContext.parameters.get("id") ?? ""
    guard let user = context.requestContext.session?.user, let terminal = terminals.find(id, user: user) else { return }
    let messages = terminal.attach()
    defer { terminal.hangUp() }
    try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask {
        for try await message in inbound.messages(maxSize: 65536) {
          guard case .text(let text) = message, let m = try? JSONDecoder().decode(Input.self, from: Data(text.utf8))
          else {
            Counter(label: "console_terminal_rejected_total", dimensions: [("reason", "bad_message")]).increment()
            continue
          }
          if let i = m.i { terminal.input(i) }
          if let r = m.r, r.count == 2 { terminal.resize(cols: r[0], rows: r[1]) }
          if m.end == true { terminal.hangUp() }
        }
      }
      group.addTask {
        for await m in messages { try await outbound.write(.text(m)) }
      }
      _ = try await group.next()
      group.cancelAll()
    }
  }
}
