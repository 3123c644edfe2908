import CommandRouterCore
import Dispatch
import Foundation
import Logging
import MirrorBus
import MirrorService
import MirrorWire

/// A keystroke's echo through an interactive session, as a person typing
/// in `mirrorctl shell` sees it: one byte in a DATA frame to the host, into
/// its PTY, and the PTY's echo back in a DATA frame.
enum ShellEcho {
  static let warmUp = 20

  static func run(url: String, keyPath: String, user: String, host: String, count: Int) async throws {
    let key = try KeyFiles.loadPrivate(keyPath)
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let bus = try await BusConnection.connect(BusOptions(urls: [url]), logger: logger)
    let token = SessionClient.makeToken()
    var action = CommandAction(builtin: .shell, cols: 120, rows: 40)
    action.sessionTokenSha256 = SessionClient.digest(token)
    let now = Date().unixMilliseconds
    let request = try Identity.sign(
      CommandRequest(
        id: UUID().uuidString.lowercased(), target: CommandTarget(kind: .hosts, hosts: [host]), action: action,
        timeoutMs: 600_000, deadlineUnixMs: now + 60_000, reason: "bench", submittedAtUnixMs: now),
      user: user, key: key)
    let echo = EchoWatch()
    let opening = ContinuousClock.now
    let client = try await SessionClient.open(request, token: token, on: bus) { echo.handle($0) }
    let opened = ContinuousClock.now - opening
    // The samples block on a semaphore the session's handler signals: a
    // thread of their own, not the cooperative pool.
    let (samples, failures) = await withCheckedContinuation { continuation in
      Thread.detachNewThread { continuation.resume(returning: sample(client, echo, count: count)) }
    }
    try? client.input([0x15] + Array("exit\n".utf8))
    let ended = await withCheckedContinuation { continuation in
      Thread.detachNewThread { continuation.resume(returning: echo.waitForEnd(seconds: 5)) }
    }
    if !ended { try? client.end() }
    let lost = client.link.lost
    client.close()
    await bus.drain()

    let sorted = samples.sorted()
    print(
      String(
        format: "shell.open_ms %.1f  (submit to the host's READY: router, dispatch, PTY and shell)",
        milliseconds(opened)))
    guard !sorted.isEmpty else {
      print("shell.echo.samples 0  (failures \(failures))")
      return
    }
    func pct(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
    print(
      String(
        format: "shell.echo.samples %d  (failures %d, frames lost %d; %d warm-up keystrokes not counted)",
        sorted.count, failures, lost, warmUp))
    print(String(format: "shell.echo.p50_ms %.2f", pct(0.5)))
    print(String(format: "shell.echo.p99_ms %.2f  (goal < 20)", pct(0.99)))
    print(String(format: "shell.echo.max_ms %.2f", sorted.last ?? 0))
  }

  /// Echo times in milliseconds (warm-up dropped), and how many keystrokes
  /// got no echo within a second.
  private static func sample(_ client: SessionClient, _ echo: EchoWatch, count: Int) -> ([Double], Int) {
    // The prompt and whatever the shell prints at start-up first.
    echo.waitForQuiet(quietMs: 300, atMostSeconds: 5)
    let letters = Array("abcdefghijklmnopqrstuvwxyz".utf8)
    var samples: [Double] = []
    var failures = 0
    for i in 0..<(count + warmUp) {
      if i > 0, i % 40 == 0 {
        // Ctrl-U: the line is erased, so it never grows long. Its echo
        // (erasing, or ^U) has no lowercase letter, so it cannot be taken
        // for the next keystroke's.
        try? client.input([0x15])
        echo.waitForQuiet(quietMs: 50, atMostSeconds: 1)
      }
      let byte = letters[i % letters.count]
      let start = echo.expect(byte)
      do { try client.input([byte]) } catch {
        failures += 1
        echo.cancel()
        continue
      }
      guard let arrived = echo.wait(seconds: 1) else {
        failures += 1
        continue
      }
      if i >= warmUp { samples.append(milliseconds(arrived - start)) }
    }
    return (samples, failures)
  }
}

/// What the session's handler saw: the byte awaited and when its echo
/// came, the time of the last output, and the session's end.
final class EchoWatch: Sendable {
  private struct State {
    var awaited: UInt8?
    var arrived: ContinuousClock.Instant?
    var lastOutput = ContinuousClock.now
    var ended = false
  }

  private let state = Shared(State())
  private let echoed = DispatchSemaphore(value: 0)
  private let end = DispatchSemaphore(value: 0)

  func handle(_ event: SessionEvent) {
    let now = ContinuousClock.now
    switch event {
    case .frame(let f) where f.kind == .data:
      let hit = state.withLock { s -> Bool in
        s.lastOutput = now
        guard let b = s.awaited, f.data.contains(b) else { return false }
        s.awaited = nil
        s.arrived = now
        return true
      }
      if hit { echoed.signal() }
    case .frame(let f) where f.kind == .end:
      finish()
    case .final:
      finish()
    default:
      break
    }
  }

  private func finish() {
    let first = state.withLock { s -> Bool in
      defer { s.ended = true }
      return !s.ended
    }
    if first { end.signal() }
  }

  /// Arms the watch for `byte`; returns the instant the keystroke leaves.
  func expect(_ byte: UInt8) -> ContinuousClock.Instant {
    state.withLock { s in
      s.awaited = byte
      s.arrived = nil
    }
    return .now
  }

  /// The keystroke was not sent: nothing to wait for.
  func cancel() { state.withLock { $0.awaited = nil } }

  /// When the awaited byte came back, or nil after `seconds`.
  func wait(seconds: Double) -> ContinuousClock.Instant? {
    if echoed.wait(timeout: .now() + seconds) == .success { return state.value.arrived }
    // Timed out: disarm; an echo that slipped in meanwhile signalled, and
    // that signal is taken back so the next wait does not see it.
    let signalled = state.withLock { s -> Bool in
      defer { s.awaited = nil }
      return s.awaited == nil
    }
    if signalled { echoed.wait() }
    return nil
  }

  /// Returns once no output has come for `quietMs` (or after `atMostSeconds`).
  func waitForQuiet(quietMs: Int, atMostSeconds: Double) {
    let quiet = Duration.milliseconds(quietMs)
    let limit = ContinuousClock.now + .seconds(atMostSeconds)
    while ContinuousClock.now < limit {
      let since = ContinuousClock.now - state.value.lastOutput
      if since >= quiet { return }
      Thread.sleep(forTimeInterval: milliseconds(quiet - since) / 1000 + 0.001)
    }
  }

  /// Whether the session ended within `seconds`.
  func waitForEnd(seconds: Double) -> Bool {
    end.wait(timeout: .now() + seconds) == .success
  }
}
