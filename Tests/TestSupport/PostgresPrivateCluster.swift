import Foundation

/// A PostgreSQL cluster of one test's own (initdb in a temporary folder, a
/// free port), which the test may stop and start again.
public final class PostgresPrivateCluster: Sendable {
  public let port: Int
  let directory: String

  public var url: String { "postgresql://mirror:mirror@127.0.0.1:\(port)/mirror" }

  public init() throws {
    port = Harness.freePort()
    directory = FileManager.default.temporaryDirectory.appendingPathComponent("mirror-pg-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    chmod(directory, 0o755)
    try start()
  }

  deinit {
    try? stack("stop")
    try? FileManager.default.removeItem(atPath: directory)
  }

  public func start() throws { try stack("start-pg") }
  public func stop() throws { try stack("stop") }

  private func stack(_ command: String) throws {
    let script = Harness.root.appendingPathComponent("scripts/stack.sh").path
    let (status, output) = try Harness.run(
      "/bin/bash", [script, command, "custom"],
      environment: ["MIRROR_STACK_DIR": directory, "MIRROR_PG_PORT": "\(port)"])
    guard status == 0 else { throw HarnessError("stack.sh \(command) custom failed: \(output)") }
  }
}
