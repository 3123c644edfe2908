public import Foundation
public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

/// How a run ended.
public struct RunOutcome: Sendable, Hashable {
  public var exitCode: Int32?
  public var signal: Int32?
  public var timedOut = false
  public var truncated = false
  public var outputBytes: UInt64 = 0
  public var chunks: UInt64 = 0
  public var startedAt: Date
  public var finishedAt: Date
  /// Set when the program could not be started.
  public var spawnError: String?
}

/// Runs argv directly (posix_spawnp, no shell) in a process group of its
/// own, streams its output in chunks, caps it, and on timeout sends SIGTERM
/// and then SIGKILL to the whole group. Blocking: call it from a thread of
/// its own.
public enum ProcessRunner {
  public static func run(
    argv: [String],
    environment: [String] = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
    timeout: Duration, killGrace: Duration = .seconds(2), outputLimit: Int,
    onOutput: (OutputChannel, [UInt8]) -> Void
  ) -> RunOutcome {
    var outcome = RunOutcome(startedAt: Date(), finishedAt: Date())
    guard !argv.isEmpty else {
      outcome.spawnError = "empty argv"
      return outcome
    }
    var outPipe: [Int32] = [-1, -1]
    var errPipe: [Int32] = [-1, -1]
    guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
      outcome.spawnError = "pipe: \(String(cString: strerror(errno)))"
      return outcome
    }
    // Close-on-exec, so commands running at the same time do not inherit
    // each other's pipes (pipe2 is not visible to Swift here).
    for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    var pid: pid_t = 0
    let rc = spawn(&pid, argv: argv, environment: environment, actions: &actions, newGroup: true)
    close(outPipe[1])
    close(errPipe[1])
    guard rc == 0 else {
      close(outPipe[0])
      close(errPipe[0])
      outcome.spawnError = "cannot start \(argv[0]): \(String(cString: strerror(rc)))"
      outcome.finishedAt = Date()
      return outcome
    }
    outcome.startedAt = Date()

    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    var killAt: ContinuousClock.Instant?
    var reaped = false
    var reapedAt: ContinuousClock.Instant?
    var status: Int32 = 0
    var open: [(fd: Int32, stream: OutputChannel)] = [(outPipe[0], .stdout), (errPipe[0], .stderr)]
    var pending: [OutputChannel: [UInt8]] = [:]
    var lastFlush = clock.now
    var forwarded = 0
    var buffer = [UInt8](repeating: 0, count: 65536)

    func flush(force: Bool) {
      guard
        force || clock.now - lastFlush >= .milliseconds(100) || pending.values.contains(where: { $0.count >= 32768 })
      else { return }
      for stream in [OutputChannel.stdout, .stderr] {
        if let data = pending[stream], !data.isEmpty {
          outcome.chunks += 1
          onOutput(stream, data)
        }
      }
      pending = [:]
      lastFlush = clock.now
    }

    var idleWaits = 0
    while !open.isEmpty || !reaped {
      if !reaped, waitpid(pid, &status, WNOHANG) == pid {
        reaped = true
        reapedAt = clock.now
        // The leader is gone; anything it left in its group goes too, so
        // no orphan keeps running (or keeps our pipes open).
        kill(-pid, SIGKILL)
      }
      let now = clock.now
      if !reaped {
        if now >= deadline && killAt == nil {
          outcome.timedOut = true
          kill(-pid, SIGTERM)
          killAt = now + killGrace
        } else if let k = killAt, now >= k {
          kill(-pid, SIGKILL)
        }
      } else if let r = reapedAt, now - r > .milliseconds(500) {
        break  // a descendant outside the group still holds a pipe
      }
      if open.isEmpty {
        // Its pipes are closed: the process is exiting. Look again soon (a
        // 10 ms nap here was 20 ms of every short command's round trip),
        // then back off for one that lingers.
        idleWaits += 1
        usleep(idleWaits <= 50 ? 200 : 10_000)
        continue
      }
      var fds = open.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
      _ = poll(&fds, nfds_t(fds.count), 50)
      var closed: [Int32] = []
      for (i, p) in fds.enumerated() where p.revents != 0 {
        let n = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
        if n <= 0 {
          if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
          closed.append(p.fd)
          continue
        }
        outcome.outputBytes += UInt64(n)
        let room = max(0, outputLimit - forwarded)
        if room < n { outcome.truncated = true }
        let take = min(room, n)
        if take > 0 {
          pending[open[i].stream, default: []].append(contentsOf: buffer[0..<take])
          forwarded += take
        }
      }
      for fd in closed {
        close(fd)
        open.removeAll { $0.fd == fd }
      }
      flush(force: false)
    }
    for o in open { close(o.fd) }
    flush(force: true)
    if !reaped { waitpid(pid, &status, 0) }
    outcome.finishedAt = Date()
    if status & 0x7f == 0 {
      outcome.exitCode = (status >> 8) & 0xff
    } else {
      outcome.signal = status & 0x7f
    }
    return outcome
  }
  /// posix_spawnp with default signal handling and an empty mask in the
  /// child; `newGroup`: a process group of its own (so a timeout can kill
  /// the whole tree). Returns 0 or the error number.
  static func spawn(
    _ pid: inout pid_t, argv: [String], environment: [String], actions: inout posix_spawn_file_actions_t,
    newGroup: Bool
  ) -> Int32 {
    var attr = posix_spawnattr_t()
    posix_spawnattr_init(&attr)
    defer { posix_spawnattr_destroy(&attr) }
    let flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (newGroup ? POSIX_SPAWN_SETPGROUP : 0)
    posix_spawnattr_setflags(&attr, Int16(flags))
    posix_spawnattr_setpgroup(&attr, 0)
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attr, &empty)
    var all = sigset_t()
    sigfillset(&all)
    sigdelset(&all, SIGKILL)
    sigdelset(&all, SIGSTOP)
    posix_spawnattr_setsigdefault(&attr, &all)
    var cArgs = argv.map { strdup($0) } + [nil]
    var cEnv = environment.map { strdup($0) } + [nil]
    defer {
      cArgs.forEach { free($0) }
      cEnv.forEach { free($0) }
    }
    return posix_spawnp(&pid, argv[0], &actions, &attr, &cArgs, &cEnv)
  }
}
