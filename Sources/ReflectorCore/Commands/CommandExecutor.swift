import Foundation
public import MirrorWire

/// Turns a verified dispatch into what to run, under the local policy, and
/// runs it. Blocking: call from a thread of its own.
public struct CommandExecutor: Sendable {
  public let policy: CommandPolicy
  /// The built-in "collect now", given by the agent.
  public let collectNow: @Sendable () -> Void
  /// Where systemctl is (tests put a fake first).
  public let systemctl: String
  /// True when the agent runs as root (run_as needs it).
  let isRoot: Bool

  public init(policy: CommandPolicy, collectNow: @escaping @Sendable () -> Void, systemctl: String = "systemctl") {
    self.policy = policy
    self.collectNow = collectNow
    self.systemctl = systemctl
    isRoot = getuid() == 0
  }

  /// What will be run for `body`, or why it may not run.
  public func plan(_ body: CommandDispatchBody) -> Result<[String], Rejection> {
    let action = body.action ?? CommandAction()
    switch action.builtin {
    case .none:
      guard !action.argv.isEmpty else {
        return .failure(Rejection(code: .notAllowed, message: "no argv and no built-in action"))
      }
      if action.shell {
        guard policy.allowShell else {
          return .failure(
            Rejection(code: .notAllowed, message: "a shell was asked for and the local policy does not allow one"))
        }
        return .success(wrap(["/bin/sh", "-c", action.argv.joined(separator: " ")]))
      }
      guard policy.allows(argv: action.argv) else {
        return .failure(
          Rejection(code: .notAllowed, message: "argv \(action.argv) matches no pattern of the local policy"))
      }
      return .success(wrap(action.argv))
    case .restartService:
      guard policy.builtins.contains("restart_service") else { return .failure(notAllowed("restart_service")) }
      let unit = action.service
      guard !unit.isEmpty, unit.allSatisfy({ $0.isLetter || $0.isNumber || "@._-:".contains($0) }), !unit.hasPrefix("-")
      else {
        return .failure(Rejection(code: .notAllowed, message: "'\(unit)' is not a unit name"))
      }
      guard policy.allows(service: unit) else {
        return .failure(Rejection(code: .notAllowed, message: "the local policy does not allow restarting \(unit)"))
      }
      return .success([systemctl, "restart", "--", unit])
    case .wakeOnLan:
      guard policy.builtins.contains("wake_on_lan") else { return .failure(notAllowed("wake_on_lan")) }
      return .success([])
    case .collectNow:
      guard policy.builtins.contains("collect_now") else { return .failure(notAllowed("collect_now")) }
      return .success([])
    case .shell:
      guard policy.sessions.shell else {
        return .failure(Rejection(code: .notAllowed, message: "the local policy does not allow interactive shells"))
      }
      guard action.sessionTokenSha256.count == 32 else {
        return .failure(Rejection(code: .malformed, message: "a session without its token's SHA-256"))
      }
      // A session of its own with the PTY as its controlling terminal
      // (util-linux setsid -c), so Ctrl-C and job control work. No
      // bubblewrap: a sandboxed login shell is not what a shell is for.
      guard let setsid = Programs.find("setsid") else {
        return .failure(Rejection(code: .notAllowed, message: "setsid (util-linux) is not installed"))
      }
      let shell =
        policy.sessions.shellProgram
        ?? (FileManager.default.isExecutableFile(atPath: "/bin/bash") ? "/bin/bash" : "/bin/sh")
      // A login shell in the home directory (runuser -l goes there itself).
      var argv = ["/bin/sh", "-c", "cd \"$HOME\" 2>/dev/null; exec \"$0\" -l", shell]
      if let user = policy.runAs, isRoot, let runuser = Programs.find("runuser") {
        argv = [runuser, "-l", user, "-s", shell]
      }
      return .success([setsid, "-c"] + argv)
    case .forward:
      guard (1...65535).contains(action.forwardPort), !action.forwardAddress.isEmpty else {
        return .failure(Rejection(code: .malformed, message: "a forward needs an address and a port"))
      }
      guard action.sessionTokenSha256.count == 32 else {
        return .failure(Rejection(code: .malformed, message: "a session without its token's SHA-256"))
      }
      guard policy.sessions.allowsForward(address: action.forwardAddress, port: action.forwardPort) else {
        return .failure(
          Rejection(
            code: .notAllowed,
            message: "the local policy does not allow forwarding to \(action.forwardAddress):\(action.forwardPort)"))
      }
      return .success([])
    default:
      return .failure(Rejection(code: .notAllowed, message: "unknown built-in action \(action.builtin.rawValue)"))
    }
  }

  private func notAllowed(_ b: String) -> Rejection {
    Rejection(code: .notAllowed, message: "the local policy does not allow the built-in \(b)")
  }

  /// The sandbox and user switch around argv, as the policy says.
  func wrap(_ argv: [String]) -> [String] {
    var out = argv
    if policy.sandbox, let bwrap = Programs.find("bwrap") {
      out =
        [
          bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--unshare-pid",
          "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--",
        ] + out
    }
    if let user = policy.runAs, isRoot, let runuser = Programs.find("runuser") {
      out = [runuser, "-u", user, "--"] + out
    }
    return out
  }

  /// Runs the planned command; `output` gets each chunk.
  public func execute(
    _ body: CommandDispatchBody, argv: [String], output: (OutputChannel, [UInt8]) -> Void
  ) -> (state: CommandState, outcome: RunOutcome, reason: String) {
    let action = body.action ?? CommandAction()
    let now = Date()
    switch action.builtin {
    case .wakeOnLan:
      var outcome = RunOutcome(startedAt: now, finishedAt: now)
      do {
        try WakeOnLAN.send(
          mac: action.mac, to: action.broadcastAddress.isEmpty ? "255.255.255.255" : action.broadcastAddress)
        outcome.exitCode = 0
        outcome.finishedAt = Date()
        return (.succeeded, outcome, "magic packet sent for \(action.mac)")
      } catch {
        outcome.finishedAt = Date()
        return (.failed, outcome, error.description)
      }
    case .collectNow:
      collectNow()
      var outcome = RunOutcome(startedAt: now, finishedAt: Date())
      outcome.exitCode = 0
      return (.succeeded, outcome, "collection started")
    default:
      let requested = body.timeoutMs > 0 ? Duration.milliseconds(Int64(body.timeoutMs)) : .seconds(60)
      let timeout = min(requested, policy.timeoutMax)
      let limit = body.outputLimitBytes > 0 ? min(Int(body.outputLimitBytes), policy.outputLimit) : policy.outputLimit
      let outcome = ProcessRunner.run(argv: argv, timeout: timeout, outputLimit: limit, onOutput: output)
      if let error = outcome.spawnError { return (.failed, outcome, error) }
      if outcome.timedOut { return (.timedOut, outcome, "timed out after \(timeout); process group killed") }
      if outcome.exitCode == 0 { return (.succeeded, outcome, "") }
      if let code = outcome.exitCode { return (.failed, outcome, "exit status \(code)") }
      return (.failed, outcome, "killed by signal \(outcome.signal ?? 0)")
    }
  }
}
