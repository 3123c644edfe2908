import ArgumentParser
import CommandRouterCore
import Dispatch
import Foundation
import MirrorBus
import MirrorService
import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// Who signs a session request: --user/--key or the environment.
struct OperatorOptions: ParsableArguments {
  @Option(help: "Operator (user) name (env MIRROR_OPERATOR).") var user: String?
  @Option(help: "Operator private key file (env MIRROR_OPERATOR_KEY).") var key: String?
  @Option(help: "Why (kept in the audit trail).") var reason: String = ""
  @Option(name: .customLong("max"), help: "Seconds the session may last (the host's policy may cut it).")
  var maxSeconds: UInt32 = 8 * 3600

  /// A signed session request for `host` with `action` (its token's digest added).
  func request(host: String, action: CommandAction, token: [UInt8]) throws -> CommandRequest {
    let env = ProcessInfo.processInfo.environment
    guard let user = user ?? env["MIRROR_OPERATOR"], let keyPath = key ?? env["MIRROR_OPERATOR_KEY"] else {
      throw ValidationError("who is asking: --user and --key (or MIRROR_OPERATOR and MIRROR_OPERATOR_KEY)")
    }
    var a = action
    a.sessionTokenSha256 = SessionClient.digest(token)
    let now = Date().unixMilliseconds
    return try Identity.sign(
      CommandRequest(
        id: UUID().uuidString.lowercased(), target: CommandTarget(kind: .hosts, hosts: [host]), action: a,
        timeoutMs: min(maxSeconds, 86_400) * 1000, deadlineUnixMs: now + 60_000, reason: reason,
        submittedAtUnixMs: now),
      user: user, key: try KeyFiles.loadPrivate(keyPath))
  }
}

/// How a session ended, from the host's END frame or the router's record.
final class SessionEnd: Sendable {
  private let done = DispatchSemaphore(value: 0)
  private let code = Shared<Int32?>(nil)
  func finish(_ c: Int32) {
    let first = code.withLock { v -> Bool in
      guard v == nil else { return false }
      v = c
      return true
    }
    if first { done.signal() }
  }
  func wait() -> Int32 {
    done.wait()
    return code.value ?? 1
  }

  /// Waits (on a thread of its own) for the end's status.
  func status() async -> Int32 {
    await withCheckedContinuation { c in
      Thread.detachNewThread { c.resume(returning: self.wait()) }
    }
  }
}

struct ShellCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "shell",
    abstract: "An interactive shell on a host (a PTY there, over NATS), where its policy and your role allow it.",
    discussion: """
      The host's policy must say sessions: {shell: true}, and your role must be allowed 'session:shell' there.
      The session (input, output, resizes) is recorded with the command: replay it with
      `mirrorctl commands --cast ID`. With standard input not a terminal, input is sent as it is and its end
      is an end of file (Ctrl-D) to the shell. Exit status: the shell's.
      """)

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var signer: OperatorOptions
  @Argument(help: "The host.") var host: String

  func run() async throws {
    let tty = isatty(0) == 1
    var size = winsize()
    let hasSize = tty && ioctl(1, UInt(TIOCGWINSZ), &size) == 0
    let token = SessionClient.makeToken()
    let request = try signer.request(
      host: host,
      action: CommandAction(
        builtin: .shell, cols: hasSize ? UInt32(size.ws_col) : 80, rows: hasSize ? UInt32(size.ws_row) : 24),
      token: token)
    let bus = try await connection.connect()
    let end = SessionEnd()
    let client: SessionClient
    do {
      client = try await SessionClient.open(request, token: token, on: bus, replyTimeout: connection.replyTimeout) {
        event in
        switch event {
        case .frame(let f) where f.kind == .data:
          _ = f.data.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        case .frame(let f) where f.kind == .end:
          if !f.reason.isEmpty { FileHandle.standardError.write(Data("\r\n[session ended: \(f.reason)]\r\n".utf8)) }
          end.finish(f.exitCode ?? 1)
        case .final(let record):
          end.finish(record.state == .succeeded ? 0 : 1)
        default: break
        }
      }
    } catch { throw Failure("\(error)") }
    FileHandle.standardError.write(Data("[session \(request.id) on \(host)]\r\n".utf8))
    let saved = tty ? Terminal.raw() : nil
    defer { if let saved { Terminal.restore(saved) } }
    // A window resized here is resized there (a source is made only when
    // resumed: a suspended one must not be released).
    var winch: (any DispatchSourceSignal)?
    if tty {
      signal(SIGWINCH, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: SIGWINCH)
      source.setEventHandler {
        var s = winsize()
        if ioctl(1, UInt(TIOCGWINSZ), &s) == 0 { try? client.resize(cols: UInt32(s.ws_col), rows: UInt32(s.ws_row)) }
      }
      source.resume()
      winch = source
    }
    Thread.detachNewThread {
      var buffer = [UInt8](repeating: 0, count: 4096)
      while true {
        let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
          // End of input: an end of file to the shell (Ctrl-D).
          try? client.input([4])
          return
        }
        try? client.input(Array(buffer[0..<n]))
      }
    }
    let code = await end.status()
    winch?.cancel()
    client.close()
    await bus.drain()
    if code != 0 { throw ExitCode(code) }
  }
}

/// The local terminal in raw mode, and back.
enum Terminal {
  static func raw() -> termios? {
    var saved = termios()
    guard tcgetattr(0, &saved) == 0 else { return nil }
    var raw = saved
    cfmakeraw(&raw)
    tcsetattr(0, TCSANOW, &raw)
    return saved
  }

  static func restore(_ saved: termios) {
    var s = saved
    tcsetattr(0, TCSANOW, &s)
  }
}

struct ForwardCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "forward",
    abstract: "Forward 127.0.0.1:LOCALPORT here to PORT on a host (TCP over NATS), where its policy allows it.",
    discussion: """
      The host connects to --to (default 127.0.0.1) at PORT: its policy must list that address:port under
      sessions.forward, and your role must be allowed 'session:forward:ADDRESS:PORT'. Ctrl-C ends it; the
      connections (not their bytes) are recorded with the command.
      """)

  @OptionGroup var connection: ConnectionOptions
  @OptionGroup var signer: OperatorOptions
  @Argument(help: "HOST:PORT — the host and the port there.") var target: String
  @Argument(help: "The local port (0: any free one).") var localPort: UInt16
  @Option(help: "The address the host connects to, as it sees it.") var to: String = "127.0.0.1"

  func run() async throws {
    let parts = target.split(separator: ":")
    guard parts.count == 2, let port = UInt32(parts[1]), (1...65535).contains(port) else {
      throw ValidationError("HOST:PORT, e.g. db-01:5432")
    }
    let host = String(parts[0])
    let (fd, bound) = try ForwardClient.listen(port: localPort)
    let forward = ForwardClient(listener: fd) { note in
      FileHandle.standardError.write(Data("\(note)\n".utf8))
    }
    let token = SessionClient.makeToken()
    let request = try signer.request(
      host: host, action: CommandAction(builtin: .forward, forwardAddress: to, forwardPort: port), token: token)
    let bus = try await connection.connect()
    let end = SessionEnd()
    let client: SessionClient
    do {
      client = try await SessionClient.open(request, token: token, on: bus, replyTimeout: connection.replyTimeout) {
        event in
        switch event {
        case .frame(let f) where f.kind == .end:
          FileHandle.standardError.write(Data("forward ended: \(f.reason)\n".utf8))
          forward.stop()
          end.finish(0)
        case .frame(let f):
          forward.receive(f)
        case .final(let record):
          forward.stop()
          end.finish(record.state == .succeeded ? 0 : 1)
        }
      }
    } catch {
      close(fd)
      throw Failure("\(error)")
    }
    FileHandle.standardError.write(
      Data("forwarding 127.0.0.1:\(bound) to \(to):\(port) on \(host) (session \(request.id); Ctrl-C ends it)\n".utf8))
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let stop = [SIGINT, SIGTERM].map { DispatchSource.makeSignalSource(signal: $0) }
    for source in stop {
      source.setEventHandler {
        try? client.end()
        forward.stop()
      }
      source.resume()
    }
    Thread.detachNewThread { forward.serve(client) }
    let code = await end.status()
    client.close()
    await bus.drain()
    if code != 0 { throw ExitCode(code) }
  }
}
