import Crypto
import Foundation
import Logging
import Metrics
import MirrorBus
import MirrorService
import MirrorWire
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// An interactive session on this host, for a verified and allowed
/// dispatch: a shell on a PTY, or TCP forwards to a local service. Frames
/// travel on core NATS (`sessions.<host>.<id>.in|out`); only frames
/// carrying the token whose SHA-256 the router signed are obeyed. Input,
/// output and resizes are recorded as the command's output chunks (so the
/// router keeps them with the command), within `record_limit`.
struct SessionHost {
  let host: String
  let policy: CommandPolicy.SessionPolicy
  let connection: BusConnection
  let logger: Logger

  typealias Ending = (state: CommandState, outcome: RunOutcome, reason: String)

  /// Runs the session to its end. The recording is handed to `output` on
  /// the calling thread, in order.
  func run(_ body: CommandDispatchBody, argv: [String], output: (OutputChannel, [UInt8]) -> Void) -> Ending {
    let recorder = SessionRecorder(limit: policy.recordLimit)
    let box = Shared<Ending?>(nil)
    Thread.detachNewThread {
      let ending = self.work(body, argv: argv, recorder: recorder)
      box.withLock { $0 = ending }
      recorder.finish()
    }
    let (chunks, bytes, truncated) = recorder.drain(into: output)
    var ending = box.withLock { $0 } ?? (.failed, RunOutcome(startedAt: Date(), finishedAt: Date()), "no ending")
    ending.outcome.chunks = chunks
    ending.outcome.outputBytes = bytes
    ending.outcome.truncated = truncated
    return ending
  }

  private func work(_ body: CommandDispatchBody, argv: [String], recorder: SessionRecorder) -> Ending {
    let action = body.action ?? CommandAction()
    let requested = body.timeoutMs > 0 ? Duration.milliseconds(Int64(body.timeoutMs)) : policy.maxDuration
    let limits = SessionLimits(
      idle: policy.idleTimeout, deadline: ContinuousClock.now + min(requested, policy.maxDuration))
    let gate = TokenGate(sha256: action.sessionTokenSha256)
    let subjects = (out: Subjects.sessionOut(host, body.commandId), in: Subjects.sessionIn(host, body.commandId))
    if action.builtin == .forward {
      return ForwardHost(
        address: action.forwardAddress, port: action.forwardPort, limits: limits, recorder: recorder, logger: logger
      ).run(connection: connection, subjects: subjects, gate: gate)
    }
    return ShellHost(argv: argv, cols: action.cols, rows: action.rows, limits: limits, recorder: recorder)
      .run(connection: connection, subjects: subjects, gate: gate)
  }
}

/// The idle timeout and the end of the session's time.
final class SessionLimits: Sendable {
  let idle: Duration
  let deadline: ContinuousClock.Instant
  private let last = Mutex(ContinuousClock.now)

  init(idle: Duration, deadline: ContinuousClock.Instant) {
    self.idle = idle
    self.deadline = deadline
  }

  func touch() { last.withLock { $0 = .now } }

  /// Time left before the session must end, and why it would.
  func left() -> (Duration, String) {
    let now = ContinuousClock.now
    let idleLeft = last.withLock { $0 } + idle - now
    let durationLeft = deadline - now
    return idleLeft < durationLeft
      ? (idleLeft, "idle for \(idle)") : (durationLeft, "the session's time is over")
  }
}

/// Frames are obeyed only with the token the router signed the SHA-256
/// of; the first good token is kept and compared after that.
final class TokenGate: Sendable {
  private let sha256: [UInt8]
  private let known = Mutex<[UInt8]?>(nil)
  let refused = Counter(label: "reflector_session_frames_refused_total")

  init(sha256: [UInt8]) { self.sha256 = sha256 }

  func admits(_ frame: SessionFrame) -> Bool {
    if let k = known.withLock({ $0 }), k.count == frame.token.count {
      // Constant time over the token's bytes.
      var diff: UInt8 = 0
      for (a, b) in zip(k, frame.token) { diff |= a ^ b }
      if diff == 0 { return true }
    }
    guard !frame.token.isEmpty, Array(SHA256.hash(data: frame.token)) == sha256 else {
      refused.increment()
      return false
    }
    known.withLock { $0 = frame.token }
    return true
  }
}

/// The recording: chunks queued by the session's threads, handed on in
/// order by the thread that drains it (what was queued while the previous
/// chunk was being published goes as one chunk per channel run).
final class SessionRecorder: @unchecked Sendable {
  private let condition = NSCondition()
  private var queue: [(OutputChannel, [UInt8])] = []
  private var bytes = 0
  private var truncated = false
  private var finished = false
  private let limit: Int

  init(limit: Int) { self.limit = limit }

  func add(_ channel: OutputChannel, _ data: [UInt8]) {
    guard !data.isEmpty else { return }
    condition.lock()
    if bytes + data.count > limit {
      truncated = true
    } else {
      bytes += data.count
      if let last = queue.last, last.0 == channel {
        queue[queue.count - 1].1 += data
      } else {
        queue.append((channel, data))
      }
    }
    condition.signal()
    condition.unlock()
  }

  func finish() {
    condition.lock()
    finished = true
    condition.signal()
    condition.unlock()
  }

  /// Hands every chunk to `output` until `finish`; returns the chunks,
  /// bytes and whether the limit cut the recording.
  func drain(into output: (OutputChannel, [UInt8]) -> Void) -> (UInt64, UInt64, Bool) {
    var chunks: UInt64 = 0
    var total: UInt64 = 0
    while true {
      condition.lock()
      while queue.isEmpty && !finished { condition.wait() }
      let batch = queue
      queue = []
      let done = finished && batch.isEmpty
      let cut = truncated
      condition.unlock()
      if done { return (chunks, total, cut) }
      for (channel, data) in batch {
        chunks += 1
        total += UInt64(data.count)
        output(channel, data)
      }
    }
  }
}

/// A shell on a PTY: output to the client and the recording, input and
/// resizes from the client; the session ends when the shell exits, when
/// the client hangs up, when idle too long or out of time (SIGHUP to its
/// process group, SIGKILL 2 s later).
struct ShellHost {
  let argv: [String]
  let cols: UInt32
  let rows: UInt32
  let limits: SessionLimits
  let recorder: SessionRecorder

  func run(connection: BusConnection, subjects: (out: String, in: String), gate: TokenGate) -> SessionHost.Ending {
    var outcome = RunOutcome(startedAt: Date(), finishedAt: Date())
    // /dev/ptmx, unlocked, its peer's number (posix_openpt, unlockpt and
    // ptsname are not visible to Swift here; these are their ioctls).
    let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
    var unlock: Int32 = 0
    var number: UInt32 = 0
    guard master >= 0, ioctl(master, Self.setLock, &unlock) == 0, ioctl(master, Self.getNumber, &number) == 0 else {
      outcome.spawnError = "no PTY: \(String(cString: strerror(errno)))"
      if master >= 0 { close(master) }
      return (.failed, outcome, outcome.spawnError ?? "")
    }
    defer { close(master) }
    let name = "/dev/pts/\(number)"
    Self.resize(master, cols: cols > 0 ? cols : 80, rows: rows > 0 ? rows : 24)
    let slave = open(name, O_RDWR | O_NOCTTY)
    guard slave >= 0 else {
      outcome.spawnError = "cannot open the PTY: \(String(cString: strerror(errno)))"
      return (.failed, outcome, outcome.spawnError ?? "")
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    for fd: Int32 in 0...2 { posix_spawn_file_actions_adddup2(&actions, slave, fd) }
    posix_spawn_file_actions_addclose(&actions, slave)
    let account = getpwuid(getuid())
    let home = account.map { String(cString: $0.pointee.pw_dir) } ?? "/"
    let user = account.map { String(cString: $0.pointee.pw_name) } ?? "root"
    let environment = [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TERM=xterm-256color",
      "HOME=\(home)", "USER=\(user)", "LOGNAME=\(user)", "SHELL=\(argv.last ?? "/bin/sh")",
    ]
    var pid: pid_t = 0
    let rc = ProcessRunner.spawn(&pid, argv: argv, environment: environment, actions: &actions, newGroup: false)
    close(slave)
    guard rc == 0 else {
      outcome.spawnError = "cannot start \(argv[0]): \(String(cString: strerror(rc)))"
      return (.failed, outcome, outcome.spawnError ?? "")
    }
    outcome.startedAt = Date()
    let group = pid
    let hangUp = Shared(false)
    let recorder = self.recorder
    let limits = self.limits
    let link: SessionLink
    do {
      link = try SessionLink(connection: connection, send: subjects.out, receive: subjects.in) { frame in
        guard gate.admits(frame) else { return }
        limits.touch()
        switch frame.kind {
        case .data:
          recorder.add(.input, frame.data)
          _ = writeFully(master, frame.data)
        case .resize:
          Self.resize(master, cols: frame.cols, rows: frame.rows)
          recorder.add(.resize, Array("\(frame.cols)x\(frame.rows)".utf8))
        case .end:
          hangUp.withLock { $0 = true }
          kill(-group, SIGHUP)
        default: break
        }
      }
    } catch {
      kill(-pid, SIGKILL)
      var status: Int32 = 0
      waitpid(pid, &status, 0)
      return (.failed, outcome, "cannot subscribe to the session's input: \(error)")
    }
    defer { link.close() }
    try? link.send(SessionFrame(kind: .ready, cols: cols, rows: rows))

    var reason = ""
    var buffer = [UInt8](repeating: 0, count: 32768)
    var status: Int32 = 0
    var reaped = false
    var killAt: ContinuousClock.Instant?
    while true {
      if !reaped, waitpid(pid, &status, WNOHANG) == pid { reaped = true }
      let (left, why) = limits.left()
      if left <= .zero, killAt == nil {
        reason = why
        kill(-pid, SIGHUP)
        killAt = .now + .seconds(2)
      }
      if let k = killAt, ContinuousClock.now >= k, !reaped { kill(-pid, SIGKILL) }
      var fds = [pollfd(fd: master, events: Int16(POLLIN), revents: 0)]
      let wait = reaped ? 200 : max(1, min(1000, Int32(clamping: left.wholeMilliseconds)))
      let ready = poll(&fds, 1, wait)
      if ready == 0 {
        if reaped { break }  // gone; a leftover holds the PTY open
        continue
      }
      let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { break }  // EIO: every holder of the PTY is gone
      limits.touch()
      let data = Array(buffer[0..<n])
      try? link.send(.data(data))
      recorder.add(.stdout, data)
    }
    if !reaped {
      // The PTY closed but the shell lingers: hang up, then kill.
      kill(-pid, SIGHUP)
      for _ in 0..<20 where waitpid(pid, &status, WNOHANG) != pid { usleep(100_000) }
      if waitpid(pid, &status, WNOHANG) == 0 {
        kill(-pid, SIGKILL)
        waitpid(pid, &status, 0)
      }
    }
    outcome.finishedAt = Date()
    if status & 0x7f == 0 {
      outcome.exitCode = (status >> 8) & 0xff
    } else {
      outcome.signal = status & 0x7f
    }
    if reason.isEmpty, hangUp.value { reason = "the client hung up" }
    try? link.send(SessionFrame(kind: .end, exitCode: outcome.exitCode, reason: reason))
    if !reason.isEmpty, killAt != nil { return (.timedOut, outcome, reason) }
    if outcome.exitCode == 0 { return (.succeeded, outcome, reason) }
    return (
      .failed, outcome,
      reason.isEmpty
        ? outcome.exitCode.map { "exit status \($0)" } ?? "killed by signal \(outcome.signal ?? 0)" : reason
    )
  }

  /// TIOCSPTLCK and TIOCGPTN (Linux, _IOW/_IOR('T', 0x31/0x30, int)).
  static let setLock: UInt = 0x4004_5431
  static let getNumber: UInt = 0x8004_5430

  static func resize(_ fd: Int32, cols: UInt32, rows: UInt32) {
    guard cols > 0, rows > 0, cols < 10000, rows < 10000 else { return }
    var size = winsize(ws_row: UInt16(rows), ws_col: UInt16(cols), ws_xpixel: 0, ws_ypixel: 0)
    _ = ioctl(fd, UInt(TIOCSWINSZ), &size)
  }
}

/// Writes all of `data` to a descriptor (the PTY).
func writeFully(_ fd: Int32, _ data: [UInt8]) -> Bool {
  var offset = 0
  while offset < data.count {
    let n = data.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
    if n < 0 && errno == EINTR { continue }
    guard n > 0 else { return false }
    offset += n
  }
  return true
}

/// TCP forwards: each OPEN from the client connects to address:port on
/// this host and becomes a `ForwardStream`; the session ends when the
/// client ends it, when idle with no connection open, or out of time.
struct ForwardHost {
  let address: String
  let port: UInt32
  let limits: SessionLimits
  let recorder: SessionRecorder
  let logger: Logger
  static let maxStreams = 64

  func run(connection: BusConnection, subjects: (out: String, in: String), gate: TokenGate) -> SessionHost.Ending {
    var outcome = RunOutcome(startedAt: Date(), finishedAt: Date())
    let condition = NSCondition()
    let streams = Shared<[UInt32: ForwardStream]>([:])
    let totals = Shared<(opened: Int, toService: UInt64, back: UInt64, ended: Bool)>((0, 0, 0, false))
    let linkBox = Shared<SessionLink?>(nil)
    let recorder = self.recorder
    let limits = self.limits
    let (address, port) = (self.address, self.port)
    @Sendable func note(_ line: String) {
      let time = Date().formatted(.iso8601.time(includingFractionalSeconds: false))
      recorder.add(.stdout, Array("[\(time)] \(line)\n".utf8))
    }
    @Sendable func wake() {
      condition.lock()
      condition.broadcast()
      condition.unlock()
    }
    let link: SessionLink
    do {
      link = try SessionLink(connection: connection, send: subjects.out, receive: subjects.in) { frame in
        guard gate.admits(frame), let link = linkBox.withLock({ $0 }) else { return }
        limits.touch()
        switch frame.kind {
        case .open:
          let id = frame.stream
          guard streams.withLock({ $0.count < Self.maxStreams && $0[id] == nil }) else {
            try? link.send(SessionFrame(kind: .close, stream: id, reason: "too many connections"))
            return
          }
          Thread.detachNewThread {
            guard let fd = Self.connect(address, port) else {
              note("connection \(id) to \(address):\(port) failed: \(String(cString: strerror(errno)))")
              try? link.send(SessionFrame(kind: .close, stream: id, reason: "cannot connect to \(address):\(port)"))
              return
            }
            let stream = ForwardStream(id: id, fd: fd, link: link) { stream, fromService, toService in
              streams.withLock { _ = $0.removeValue(forKey: stream.id) }
              totals.withLock {
                $0.toService += toService
                $0.back += fromService
              }
              note("connection \(stream.id) closed: \(toService) bytes to the service, \(fromService) back")
              limits.touch()
              wake()
            }
            streams.withLock { $0[id] = stream }
            totals.withLock { $0.opened += 1 }
            note("connection \(id) opened to \(address):\(port)")
            try? link.send(SessionFrame(kind: .open, stream: id))
            stream.start()
          }
        case .end:
          totals.withLock { $0.ended = true }
          wake()
        default:
          streams.withLock { $0[frame.stream] }?.receive(frame)
        }
      }
    } catch {
      return (.failed, outcome, "cannot subscribe to the session's input: \(error)")
    }
    linkBox.withLock { $0 = link }
    defer { link.close() }
    try? link.send(SessionFrame(kind: .ready))
    note("forwarding to \(address):\(port)")

    var reason = ""
    condition.lock()
    while !totals.withLock({ $0.ended }) {
      let (left, why) = limits.left()
      if left <= .zero {
        // Idle counts only while no connection is open.
        if why.hasPrefix("idle"), !streams.withLock({ $0.isEmpty }) {
          limits.touch()
          continue
        }
        reason = why
        break
      }
      _ = condition.wait(until: Date() + Double(left.wholeMilliseconds) / 1000)
    }
    condition.unlock()
    for stream in streams.withLock({ Array($0.values) }) { stream.abort() }
    let t = totals.withLock { $0 }
    outcome.finishedAt = Date()
    outcome.exitCode = 0
    let summary = "\(t.opened) connections, \(t.toService) bytes to \(address):\(port), \(t.back) back"
    try? link.send(SessionFrame(kind: .end, exitCode: 0, reason: reason.isEmpty ? summary : reason))
    note(reason.isEmpty ? "ended: \(summary)" : "ended (\(reason)): \(summary)")
    return reason.isEmpty || reason.hasPrefix("idle")
      ? (.succeeded, outcome, reason.isEmpty ? summary : "\(reason); \(summary)") : (.timedOut, outcome, reason)
  }

  /// A blocking TCP connection to address:port (IPv4 or IPv6).
  static func connect(_ address: String, _ port: UInt32) -> Int32? {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(address, "\(port)", &hints, &list) == 0, let first = list else { return nil }
    defer { freeaddrinfo(first) }
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let ai = cursor {
      let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
      if fd >= 0 {
        if Glibc.connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0 { return fd }
        close(fd)
      }
      cursor = ai.pointee.ai_next
    }
    return nil
  }
}
