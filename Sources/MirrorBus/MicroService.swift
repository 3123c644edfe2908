import Foundation
import Synchronization

/// The NATS micro protocol (`nats micro ls | info | stats`) for a service's
/// request/reply endpoints: it answers `$SRV.PING`, `$SRV.INFO` and
/// `$SRV.STATS` — for every service, for its name, and for its name and id
/// — with the `io.nats.micro.v1.*` JSON documents, and counts each
/// endpoint's requests, errors (an `RpcError` reply) and processing time
/// (from the request's arrival to its reply).
///
/// Made by `BusConnection.serve(_:service:version:)`, one per service name
/// and connection; every endpoint served under that name adds to it.
public final class MicroService: Sendable {
  public struct Endpoint: Sendable {
    public var name: String
    public var subject: String
    public var queueGroup: String
  }

  struct Stats {
    var requests = 0
    var errors = 0
    var processingNanos: Int64 = 0
    var lastError = ""
  }

  public let name: String
  public let id: String
  public let version: String
  let started = Date()
  private let state = Mutex<(endpoints: [Endpoint], stats: [String: Stats])>(([], [:]))
  private let subscriptions = Mutex<[BusHandlerSubscription]>([])

  init(name: String, version: String) {
    self.name = name
    self.version = version
    // 22 characters of [A-Za-z0-9], as the Go and Python libraries make them.
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
    id = String((0..<22).map { _ in alphabet[Int.random(in: 0..<alphabet.count)] })
  }

  public var endpoints: [Endpoint] { state.withLock { $0.endpoints } }

  func add(subject: String, queueGroup: String) {
    state.withLock { s in
      guard !s.endpoints.contains(where: { $0.subject == subject }) else { return }
      // Endpoint names: the subject with '.' as '_' ("hosts_list").
      s.endpoints.append(
        Endpoint(name: subject.replacingOccurrences(of: ".", with: "_"), subject: subject, queueGroup: queueGroup))
      s.stats[subject] = Stats()
    }
  }

  /// One answered request of `subject`.
  func record(subject: String, nanos: Int64, error: String?) {
    state.withLock { s in
      guard var st = s.stats[subject] else { return }
      st.requests += 1
      st.processingNanos += max(nanos, 0)
      if let error {
        st.errors += 1
        st.lastError = error
      }
      s.stats[subject] = st
    }
  }

  /// Answers the `$SRV` subjects on `connection`.
  func start(on connection: BusConnection) throws(NATSError) {
    var subs: [BusHandlerSubscription] = []
    for verb in ["PING", "INFO", "STATS"] {
      for subject in ["$SRV.\(verb)", "$SRV.\(verb).\(name)", "$SRV.\(verb).\(name).\(id)"] {
        subs.append(
          try connection.subscribe(subject, pending: 1024) { [weak self, weak connection] m in
            guard let self, let connection, let reply = m.reply else { return }
            let body = self.document(verb)
            try? connection.publish(reply, payload: body, headers: ["Content-Type": "application/json"])
          })
      }
    }
    subscriptions.withLock { $0 = subs }
  }

  /// The JSON answer to PING, INFO or STATS.
  func document(_ verb: String) -> [UInt8] {
    var doc: [String: Any] = ["name": name, "id": id, "version": version, "metadata": [String: String]()]
    let (endpoints, stats) = state.withLock { ($0.endpoints, $0.stats) }
    switch verb {
    case "PING":
      doc["type"] = "io.nats.micro.v1.ping_response"
    case "INFO":
      doc["type"] = "io.nats.micro.v1.info_response"
      doc["description"] = "MIRROR STAGE \(name)"
      doc["endpoints"] = endpoints.map {
        ["name": $0.name, "subject": $0.subject, "queue_group": $0.queueGroup, "metadata": NSNull()] as [String: Any]
      }
    default:
      doc["type"] = "io.nats.micro.v1.stats_response"
      doc["started"] = ISO8601DateFormatter.micro.string(from: started)
      doc["endpoints"] = endpoints.map { e -> [String: Any] in
        let s = stats[e.subject] ?? Stats()
        return [
          "name": e.name, "subject": e.subject, "queue_group": e.queueGroup, "num_requests": s.requests,
          "num_errors": s.errors, "last_error": s.lastError, "processing_time": s.processingNanos,
          "average_processing_time": s.requests == 0 ? 0 : s.processingNanos / Int64(s.requests), "data": NSNull(),
        ]
      }
    }
    return [UInt8]((try? JSONSerialization.data(withJSONObject: doc, options: [.sortedKeys])) ?? Data("{}".utf8))
  }
}

extension ISO8601DateFormatter {
  /// RFC 3339 with fractional seconds, as micro's `started`.
  static var micro: ISO8601DateFormatter {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f
  }
}
