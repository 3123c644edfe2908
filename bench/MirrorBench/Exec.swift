import CommandRouterCore
import Foundation
import Logging
import MirrorBus
import MirrorWire

/// `echo` through the whole command path — signed request, router,
/// dispatch, reflector, output and result, the router's announcement — from
/// one long-lived client, as `mirrorctl exec` waits (`CommandRun`).
enum ExecBench {
  static func run(url: String, keyPath: String, user: String, host: String, count: Int) async throws {
    let key = try KeyFiles.loadPrivate(keyPath)
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    let bus = try await BusConnection.connect(BusOptions(urls: [url]), logger: logger)
    var samples: [Double] = []
    var failures = 0
    for i in 0..<(count + 10) {
      let request = try Identity.sign(
        CommandRequest(
          id: UUID().uuidString.lowercased(), target: CommandTarget(kind: .hosts, hosts: [host]),
          action: CommandAction(argv: ["echo", "hi"]), timeoutMs: 10_000, reason: "bench",
          submittedAtUnixMs: Date().unixMilliseconds), user: user, key: key)
      let start = ContinuousClock.now
      // The first may go out before the reflector's dispatch consumer is
      // bound (it takes new messages only): the warm-up runs absorb that.
      guard let outcome = try? await CommandRun.run(request, on: bus, wait: .seconds(i < 10 ? 3 : 30)) else {
        failures += 1
        continue
      }
      let elapsed = ContinuousClock.now - start
      guard outcome.record?.state == .succeeded else {
        if failures == 0 { print("exec.first_failure \(outcome.reply) \(String(describing: outcome.record))") }
        failures += 1
        continue
      }
      if ProcessInfo.processInfo.environment["BENCH_EXEC_TRACE"] != nil { print("exec.sample \(i) \(elapsed)") }
      if i >= 10 {
        samples.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1e3)
      }
    }
    samples.sort()
    guard !samples.isEmpty else {
      print("exec.long_lived.samples 0  (failures \(failures))")
      return
    }
    func pct(_ p: Double) -> Double { samples[min(samples.count - 1, Int(Double(samples.count) * p))] }
    print(
      String(format: "exec.long_lived.samples %d  (failures %d; 10 warm-up runs not counted)", samples.count, failures))
    print(String(format: "exec.long_lived.p50_ms %.2f", pct(0.5)))
    print(String(format: "exec.long_lived.p99_ms %.2f  (goal < 10)", pct(0.99)))
    print(String(format: "exec.long_lived.max_ms %.2f", samples.last ?? 0))
    await bus.drain()
  }
}
