import Foundation
import Hummingbird
public import Logging
public import MirrorService
import NIOCore
import ServiceLifecycle
import Synchronization

/// The EGO services' operations endpoint (`/metrics`, `/healthz`) on
/// Hummingbird: NIO's event loop serves any number of connections at once,
/// an idle or dripping client holds only its own channel and is closed
/// after `idleTimeout` without traffic, IPv4 and IPv6 (`[::]` listens on
/// both). The reflector keeps `HTTPServer` (ADR 0007).
public final class HummingbirdOps: OpsServer, Sendable {
  private let app: Application<RouterResponder<BasicRequestContext>>
  private let host: String
  private let port: Int
  private let logger: Logger

  public init(
    host: String, port: Int, routes: [String: HTTPServer.Handler], logger: Logger, idleTimeout: Duration = .seconds(5)
  ) {
    self.host = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
    self.port = port
    self.logger = logger
    let router = Router()
    for (path, handler) in routes {
      router.get(RouterPath(path)) { _, _ -> Response in
        let r = handler()
        var headers = HTTPFields()
        headers[.contentType] = r.contentType
        return Response(
          status: .init(code: r.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: r.body)))
      }
    }
    let idle = TimeAmount.milliseconds(idleTimeout.wholeMilliseconds)
    app = Application(
      router: router, server: .http1(configuration: .init(idleTimeout: idle)),
      configuration: .init(address: .hostname(self.host, port: port), serverName: nil, reuseAddress: true),
      logger: logger)
  }

  public static let factory: OpsServerFactory = { host, port, routes, logger in
    HummingbirdOps(host: host, port: port, routes: routes, logger: logger)
  }

  /// Hummingbird binds when it runs; a port in use then fails the service
  /// group at start, which is as early.
  public func bind() async throws {}

  public func run() async throws {
    logger.info("serving /metrics and /healthz", metadata: ["listen": "\(host):\(port)", "server": "hummingbird"])
    try await app.run()
  }
}
