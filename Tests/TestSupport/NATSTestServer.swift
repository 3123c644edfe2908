public import Foundation

/// A real `nats-server -js` of one test suite, on a loopback port of its
/// own, with its own store directory. Stop and start it again to test what
/// happens when NATS goes away.
public final class NATSTestServer: @unchecked Sendable {
  public let port: Int
  public let storeDirectory: URL
  private let lock = NSLock()
  private var process: Process?
  private let extraArguments: [String]

  public var url: String { "nats://127.0.0.1:\(port)" }
  /// The server's log (`-l`): what a failed test can be read against, and
  /// how `reload()` knows the server is done.
  public var logFile: URL { storeDirectory.appendingPathExtension("log") }

  /// Starts a server; `arguments` are added (e.g. `-c` with a config file).
  public init(arguments: [String] = []) throws {
    port = Harness.freePort()
    storeDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("mirror-nats-\(UUID().uuidString)")
    extraArguments = arguments
    try start()
  }

  deinit {
    stop()
    try? FileManager.default.removeItem(at: storeDirectory)
    try? FileManager.default.removeItem(at: logFile)
  }

  /// Starts the server (again) on the same port and store.
  public func start() throws {
    lock.lock()
    defer { lock.unlock() }
    guard process == nil else { return }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try Harness.which("nats-server"))
    p.arguments =
      ["-js", "-a", "127.0.0.1", "-p", "\(port)", "-sd", storeDirectory.path, "-l", logFile.path] + extraArguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    process = p
    ChildProcesses.shared.add(p.processIdentifier)
    let deadline = Date().addingTimeInterval(10)
    while !Harness.isListening(port) {
      guard Date() < deadline, p.isRunning else {
        throw HarnessError("nats-server did not start on port \(port)")
      }
      usleep(20_000)
    }
  }

  /// Makes the running server read its configuration file again (SIGHUP,
  /// what `nats-server --signal reload` sends) and waits until it says it
  /// has; throws with the server's own message if it refused the new one.
  public func reload(timeout: Duration = .seconds(10)) throws {
    let pid: Int32? = lock.withLock { process?.processIdentifier }
    guard let pid else { throw HarnessError("nats-server is not running") }
    func log() -> [Substring] {
      ((try? String(contentsOf: logFile, encoding: .utf8)) ?? "").split(separator: "\n")
    }
    let before = log().count
    kill(pid, SIGHUP)
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      for line in log().dropFirst(before) {
        if line.contains("Reloaded server configuration") { return }
        if line.contains("Failed to reload") { throw HarnessError("nats-server: \(line)") }
      }
      usleep(20_000)
    }
    throw HarnessError("nats-server did not reload within \(timeout)")
  }

  /// Stops the server and waits for it to exit.
  public func stop() {
    lock.lock()
    defer { lock.unlock() }
    guard let p = process else { return }
    p.terminate()
    p.waitUntilExit()
    ChildProcesses.shared.remove(p.processIdentifier)
    process = nil
  }
}

public struct HarnessError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// Servers the harness started and has not stopped: killed when the test
/// process exits, since objects alive at exit are never deinitialised.
final class ChildProcesses: @unchecked Sendable {
  static let shared: ChildProcesses = {
    let c = ChildProcesses()
    atexit { ChildProcesses.shared.killAll() }
    return c
  }()

  // Guarded by `lock`.
  private var pids: Set<Int32> = []
  private let lock = NSLock()

  func add(_ pid: Int32) { lock.withLock { _ = pids.insert(pid) } }
  func remove(_ pid: Int32) { lock.withLock { _ = pids.remove(pid) } }

  func killAll() {
    for pid in lock.withLock({ pids }) { kill(pid, SIGKILL) }
  }
}
