public import Foundation
public import Logging
public import MirrorBus

#if canImport(Glibc)
  import Glibc
#endif

/// Paths and helpers shared by every test suite.
public enum Harness {
  /// The checkout's root directory.
  public static let root: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url
  }()

  public static let logger: Logger = {
    var logger = Logger(label: "test")
    logger.logLevel = .warning
    return logger
  }()

  /// A short unique name for streams, durables and databases of one suite.
  public static func uniqueName(_ prefix: String) -> String {
    let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 36)
    return "\(prefix)_\(getpid())_\(suffix)".uppercased().replacingOccurrences(of: "-", with: "_")
  }

  /// A TCP port on 127.0.0.1 that was free a moment ago.
  public static func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        _ = bind(fd, $0, len)
        _ = getsockname(fd, $0, &len)
      }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
  }

  /// A connected TCP socket to 127.0.0.1:`port`, or nil; the caller closes it.
  public static func connectTCP(_ port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = UInt16(port).bigEndian
    let ok = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
      }
    }
    if ok { return fd }
    close(fd)
    return nil
  }

  /// True when something accepts TCP connections on 127.0.0.1:`port`.
  public static func isListening(_ port: Int) -> Bool {
    guard let fd = connectTCP(port) else { return false }
    close(fd)
    return true
  }

  /// Waits until `condition` holds, polling; false after `timeout`.
  public static func waitUntil(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows
    -> Bool
  {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
      if try await condition() { return true }
      try? await Task.sleep(for: .milliseconds(50))
    }
    return try await condition()
  }

  /// The full path of a program, searched on PATH and in the sbin folders
  /// (Debian installs nats-server in /usr/sbin).
  public static func which(_ name: String) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    let dirs = path.split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin"]
    for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
      return "\(dir)/\(name)"
    }
    throw HarnessError("\(name) is not installed (run scripts/deps.sh test)")
  }

  /// Runs a program to completion and returns its exit status and output.
  /// posix_spawn and a blocking waitpid, with output through a file: a
  /// daemon the program starts (pg_ctl's postmaster) may inherit a pipe and
  /// keep it open, and Foundation's Process did not always reap the child
  /// when called from an async test.
  /// The path of one of this package's executables (built next to the
  /// test binary).
  public static func executable(_ name: String) -> String {
    URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
  }

  /// Starts one of this package's executables in the background, its output
  /// discarded; the caller terminates it.
  public static func launch(_ name: String, _ arguments: [String]) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable(name))
    p.arguments = arguments
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
  }

  /// `run` on a thread of its own: waiting for the child does not hold a
  /// thread of the cooperative pool that in-process services need.
  @discardableResult
  public static func runDetached(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil
  ) async throws -> (status: Int32, output: String) {
    try await withCheckedThrowingContinuation { continuation in
      Thread.detachNewThread {
        continuation.resume(with: Result { try run(executable, arguments, environment: environment) })
      }
    }
  }

  @discardableResult
  public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws
    -> (status: Int32, output: String)
  {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("harness-\(UUID().uuidString).log").path
    defer { unlink(log) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { _, new in new }
    var cArgs = ([executable] + arguments).map { strdup($0) } + [nil]
    var cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
      cArgs.forEach { free($0) }
      cEnv.forEach { free($0) }
    }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, executable, &actions, nil, &cArgs, &cEnv)
    guard rc == 0 else { throw HarnessError("cannot run \(executable): \(String(cString: strerror(rc)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    let exit = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exit, output)
  }
}

extension Harness {
  /// Up to `count` messages from `subscription`, waiting at most `timeout`
  /// in all (a test never hangs on a message that does not come).
  public static func collect(_ subscription: BusSubscription, count: Int, timeout: Duration = .seconds(10)) async
    -> [BusMessage]
  {
    await withTaskGroup(of: [BusMessage]?.self) { group in
      group.addTask {
        var out: [BusMessage] = []
        for await m in subscription {
          out.append(m)
          if out.count == count { break }
        }
        return out
      }
      group.addTask {
        try? await Task.sleep(for: timeout)
        return nil
      }
      let first = await group.next() ?? nil
      group.cancelAll()
      return first ?? []
    }
  }
}

extension Harness {
  /// One plain GET to a local port: status and body (nil: no answer).
  /// A listening TCP socket on 127.0.0.1 and a free port.
  public static func listenLoopback(backlog: Int32 = 16) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        Glibc.bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
      }
    }
    guard fd >= 0, ok, listen(fd, backlog) == 0 else {
      if fd >= 0 { close(fd) }
      throw HarnessError("cannot listen on 127.0.0.1")
    }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
  }

  public static func httpGet(_ port: Int, _ path: String) -> (status: Int, body: String)? {
    guard let fd = Harness.connectTCP(port) else { return nil }
    defer { close(fd) }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
    _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = recv(fd, &buffer, buffer.count, 0)
      if n <= 0 { break }
      response += buffer[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let statusText = text.split(separator: " ").dropFirst().first, let status = Int(statusText) else {
      return nil
    }
    let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
    return (status, body)
  }
}
