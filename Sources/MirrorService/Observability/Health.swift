import Synchronization

/// The health of a service: named checks, each evaluated when /healthz is
/// asked. The service is healthy when every check is.
public final class Health: Sendable {
  public struct Status: Sendable {
    public var healthy: Bool
    public var detail: String
    public init(healthy: Bool, detail: String) {
      self.healthy = healthy
      self.detail = detail
    }
  }

  private let checks = Mutex<[(String, @Sendable () -> Status)]>([])

  public init() {}

  public func register(_ name: String, _ check: @escaping @Sendable () -> Status) {
    checks.withLock { $0.append((name, check)) }
  }

  /// Every check's current status, in registration order.
  public func evaluate() -> [(name: String, status: Status)] {
    checks.withLock { $0 }.map { ($0.0, $0.1()) }
  }

  /// The /healthz response: 200 when all checks pass, else 503; JSON body.
  public func response() -> HTTPResponse {
    let results = evaluate()
    let healthy = results.allSatisfy(\.status.healthy)
    let checks = results.map {
      "\(JSONLogHandler.quote($0.name)):{\"healthy\":\($0.status.healthy),\"detail\":\(JSONLogHandler.quote($0.status.detail))}"
    }
    let body = "{\"status\":\"\(healthy ? "ok" : "unhealthy")\",\"checks\":{\(checks.joined(separator: ","))}}\n"
    return HTTPResponse(status: healthy ? 200 : 503, contentType: "application/json", body: Array(body.utf8))
  }
}
