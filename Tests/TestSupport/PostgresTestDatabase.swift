import Foundation
public import MirrorStore

/// A database of one test suite on the harness's PostgreSQL cluster
/// (`scripts/stack.sh start-pg test`, or `MIRROR_TEST_PG_ADMIN_URL`).
public final class PostgresTestDatabase: Sendable {
  public let name: String
  public let url: String
  let adminURL: String

  /// The cluster's admin URL; starts the cluster once per test process.
  static let cluster: Result<String, any Error> = Result {
    if let url = ProcessInfo.processInfo.environment["MIRROR_TEST_PG_ADMIN_URL"] { return url }
    let script = Harness.root.appendingPathComponent("scripts/stack.sh").path
    let (status, output) = try Harness.run("/bin/bash", [script, "start-pg", "test"])
    guard status == 0 else { throw HarnessError("could not start the test PostgreSQL: \(output)") }
    return "postgresql://mirror:mirror@127.0.0.1:25432/postgres"
  }

  public static var adminURL: String {
    get throws { try cluster.get() }
  }

  /// Creates an empty database for the suite.
  public init(_ prefix: String = "t") throws {
    adminURL = try Self.cluster.get()
    name = Harness.uniqueName(prefix).lowercased()
    let admin = try PGConnection(url: adminURL)
    try admin.execute("CREATE DATABASE \(name)")
    url = adminURL.replacingOccurrences(of: "/postgres", with: "/\(name)")
  }

  deinit {
    if let admin = try? PGConnection(url: adminURL) {
      _ = try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
  }

  public func connect() throws -> PGConnection { try PGConnection(url: url) }
}
