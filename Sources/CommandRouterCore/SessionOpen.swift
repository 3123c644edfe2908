import Crypto
import Foundation
public import MirrorBus
public import MirrorService
public import MirrorWire

/// Why a session did not start: refused by the router (role, target) or
/// by the host (its policy), or no answer.
public struct SessionRefused: Error, CustomStringConvertible, Sendable {
  public var state: CommandState
  public var description: String
}

extension SessionClient {
  /// The SHA-256 a request carries for `token`.
  public static func digest(_ token: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: token)) }

  /// Submits a signed session request (`action` shell or forward, one
  /// host, carrying `digest(token)`) and returns once the host says the
  /// session is ready; `handler` gets every event after that, in order.
  public static func open(
    _ request: CommandRequest, token: [UInt8], on bus: BusConnection, replyTimeout: Duration = .seconds(5),
    readyTimeout: Duration = .seconds(30), handler: @escaping @Sendable (SessionEvent) -> Void
  ) async throws -> SessionClient {
    guard let host = request.target?.hosts.first, request.target?.hosts.count == 1 else {
      throw SessionRefused(state: .rejected, description: "a session is with one host")
    }
    let (first, feed) = AsyncStream<SessionEvent>.makeStream()
    let ready = Shared(false)
    let client = try SessionClient(connection: bus, host: host, commandID: request.id, token: token) { event in
      let passOn = ready.withLock { isReady -> Bool in
        if isReady { return true }
        if case .frame(let f) = event, f.kind != .ready { return false }
        isReady = true
        return false
      }
      if passOn { handler(event) } else { feed.yield(event) }
    }
    do {
      try await bus.flush()
      let reply = try await bus.request(
        Subjects.commandsSubmit, request, expecting: SubmitCommandResponse.self, timeout: replyTimeout)
      guard reply.state == .dispatched || reply.state == .running else {
        throw SessionRefused(state: reply.state, description: "\(reply.state.stored): \(reply.reason)")
      }
      let timer = Task {
        try? await Task.sleep(for: readyTimeout)
        feed.finish()
      }
      defer { timer.cancel() }
      for await event in first {
        switch event {
        case .frame(let f) where f.kind == .ready:
          return client
        case .final(let record):
          let why = record.hosts.first.map { "\($0.state.stored): \($0.reason)" } ?? record.reason
          throw SessionRefused(state: record.state, description: why)
        default:
          continue
        }
      }
      throw SessionRefused(state: .expired, description: "the host did not start the session in \(readyTimeout)")
    } catch {
      client.close()
      throw error
    }
  }
}
