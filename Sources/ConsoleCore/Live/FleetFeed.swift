import Foundation
public import Logging
import Metrics
import MirrorBus
public import MirrorService
import MirrorWire
public import ServiceLifecycle

/// Keeps the `Fleet` live from the bus: core subscriptions to
/// `metrics.normalized.>` and `alerts.>` (a console needs only the newest
/// state, so no durable consumer: what it missed while down it reads back
/// through the RPCs), `hosts.list` and `alerts.list` at start and every
/// `refresh`, a tick every second for hosts that stop reporting, and a
/// backfill of the sparklines from `metrics.query` once at start.
public final class FleetFeed: Service, Sendable {
  let fleet: Fleet
  let bus: BusService
  let rpc: ConsoleRPC
  let refresh: Duration
  let logger: Logger

  public init(fleet: Fleet, bus: BusService, rpc: ConsoleRPC, refresh: Duration = .seconds(30), logger: Logger) {
    self.fleet = fleet
    self.bus = bus
    self.rpc = rpc
    self.refresh = refresh
    self.logger = logger
  }

  public func run() async throws {
    guard let conn = try? await bus.connection() else { return }
    let (fleet, rpc, logger, refresh) = (self.fleet, self.rpc, self.logger, self.refresh)
    let unknownHost = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    // 200 batches a second at 1,000 hosts: applied on libnats' delivery
    // thread (a decode and a locked update), not handed to the executor.
    let batches = try conn.subscribe(Streams.metricsNormalized.subjects[0], pending: 8192) { m in
      if !Self.apply(m, to: fleet, logger: logger) { unknownHost.continuation.yield() }
    }
    // The ALERTS stream's subjects (alerts.list and the other RPCs share the
    // prefix).
    let alerts = try conn.subscribe("alerts.*.*", bufferSize: 1024)
    // Command output and results, and the twin's diffs: passed to the
    // browsers that watch them, JSON-encoded once.
    let results = try conn.subscribe("commands.result.*", pending: 65536) { m in
      Self.relayCommand(m, to: fleet, logger: logger)
    }
    let diffs = try conn.subscribe(Subjects.visualizationUpdates, pending: 1024) { m in
      Self.relayDiff(m, to: fleet, logger: logger)
    }
    await withTaskGroup(of: Void.self) { group in
      group.addTask {
        for await m in alerts {
          do {
            fleet.apply(alert: try m.decode(Alert.self))
          } catch {
            Counter(label: "console_bus_rejected_total", dimensions: [("reason", "undecodable_alert")]).increment()
            logger.warning("undecodable alert", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
          }
        }
      }
      group.addTask {
        // One refresh now, then one per wake-up: on schedule, or at once
        // (at most once a second) for a host seen before its registration.
        var backfilled = false
        var wakeUps = unknownHost.stream.makeAsyncIterator()
        repeat {
          await Self.refreshRegistrations(fleet: fleet, rpc: rpc, logger: logger)
          if !backfilled, !fleet.hostNames.isEmpty {
            backfilled = await Self.backfill(fleet: fleet, rpc: rpc, logger: logger)
          }
          try? await Task.sleep(for: .seconds(1))
        } while await wakeUps.next() != nil
      }
      group.addTask {
        while !Task.isCancelled {
          try? await Task.sleep(for: refresh)
          unknownHost.continuation.yield()
        }
      }
      group.addTask {
        let dropped = Gauge(label: "console_bus_dropped", dimensions: [("subscription", "metrics")])
        while !Task.isCancelled {
          fleet.tick()
          dropped.record(batches.dropped + alerts.dropped)
          try? await Task.sleep(for: .seconds(1))
        }
      }
      try? await gracefulShutdown()
      batches.unsubscribe()
      results.unsubscribe()
      diffs.unsubscribe()
      alerts.unsubscribe()
      unknownHost.continuation.finish()
      group.cancelAll()
    }
  }

  /// Applies one normalized batch; false for a host not registered yet.
  static func apply(_ m: BusMessage, to fleet: Fleet, logger: Logger) -> Bool {
    do {
      let n = try m.decode(NormalizedBatch.self)
      // A batch speaks for the host its subject names (the subject is what
      // NATS permissions confine), and only for a valid one.
      let host = n.batch?.host ?? ""
      guard Subjects.isValidHostToken(host), m.subject == Subjects.metricsNormalized(host) else {
        Counter(label: "console_bus_rejected_total", dimensions: [("reason", "host_mismatch")]).increment()
        logger.warning("normalized batch for another host than its subject", metadata: ["subject": "\(m.subject)"])
        return true
      }
      return fleet.apply(batch: n, arrivedMs: Date().unixMilliseconds)
    } catch {
      Counter(label: "console_bus_rejected_total", dimensions: [("reason", "undecodable_batch")]).increment()
      logger.warning("undecodable normalized batch", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
      return true
    }
  }

  /// `{"type": "output" | "result", ...}` for the browsers watching the
  /// command; only for the host the subject names.
  static func relayCommand(_ m: BusMessage, to fleet: Fleet, logger: Logger) {
    let subjectHost = m.subject.dropFirst("commands.result.".count)
    do {
      let encoder = JSONEncoder()
      if m.mirrorType == CommandOutput.fullName {
        let o = try m.decode(CommandOutput.self)
        guard o.host == subjectHost else { throw ForeignHost() }
        fleet.publish(.command(o.commandId), [UInt8](try encoder.encode(CommandOutputMessage(o))))
      } else {
        let r = try m.decode(CommandResult.self)
        guard r.host == subjectHost else { throw ForeignHost() }
        fleet.publish(.command(r.commandId), [UInt8](try encoder.encode(CommandResultMessage(r))))
      }
    } catch {
      Counter(label: "console_bus_rejected_total", dimensions: [("reason", "bad_command_result")]).increment()
      logger.warning("command output not relayed", metadata: ["subject": "\(m.subject)", "error": "\(error)"])
    }
  }

  struct ForeignHost: Error, CustomStringConvertible {
    var description: String { "the message names another host than its subject" }
  }

  /// `{"type": "twin", "diff": SceneDiff}` (the twin's JSON names) for the
  /// browsers watching the network.
  static func relayDiff(_ m: BusMessage, to fleet: Fleet, logger: Logger) {
    do {
      let diff = try m.decode(SceneDiff.self, limit: 64 << 20)
      var json = Array(#"{"type":"twin","diff":"#.utf8)
      json += try JSONEncoder().encode(diff)
      json.append(UInt8(ascii: "}"))
      fleet.publish(.network, json)
    } catch {
      Counter(label: "console_bus_rejected_total", dimensions: [("reason", "undecodable_diff")]).increment()
      logger.warning("undecodable scene diff", metadata: ["error": "\(error)"])
    }
  }

  static func refreshRegistrations(fleet: Fleet, rpc: ConsoleRPC, logger: Logger) async {
    do {
      let hosts = try await rpc.hosts().hosts
      fleet.apply(statuses: hosts)
      logger.debug("registrations read", metadata: ["hosts": "\(hosts.count)"])
    } catch {
      logger.warning("hosts.list failed", metadata: ["error": "\(error)"])
    }
    do {
      fleet.replace(alerts: try await rpc.alerts(host: "", includeResolved: false).alerts)
    } catch {
      Counter(label: "console_upstream_failures_total", dimensions: [("path", "alerts.list")]).increment()
      logger.warning("alerts.list failed", metadata: ["error": "\(error)"])
    }
  }

  /// The last 15 minutes of every row value, read once at start so the
  /// sparklines are not empty after a restart.
  static func backfill(fleet: Fleet, rpc: ConsoleRPC, logger: Logger) async -> Bool {
    let metrics: [(index: Int, metric: String, sum: Bool)] = [
      (0, "cpu_percent", false), (1, "memory_used_percent", false), (2, "load1", false),
      (3, "mount_used_percent", false), (4, "network_rx_bytes_per_second", true),
      (5, "network_tx_bytes_per_second", true), (6, "temperature_celsius", false),
      (7, "gpu_utilization_percent", false),
    ]
    let end = Date().unixMilliseconds
    let start = end - Int64(Fleet.sparkPoints) * Fleet.sparkStepMs
    // A few hosts a query: 180 points a series keeps each answer well
    // under metrics.query's point cap and the message size limit.
    let names = fleet.hostNames.sorted()
    for m in metrics {
      do {
        var series: [Series] = []
        for chunk in stride(from: 0, to: names.count, by: 50) {
          series += try await rpc.query(
            MetricsQueryRequest(
              hosts: Array(names[chunk..<min(chunk + 50, names.count)]), metric: m.metric, startUnixMs: start,
              endUnixMs: end, stepSeconds: UInt32(Fleet.sparkStepMs / 1000))
          ).series
        }
        var byHost: [String: [Int64: Double]] = [:]
        for s in series where !(m.sum && s.key == "lo") {
          for p in s.points {
            let old = byHost[s.host, default: [:]][p.bucketUnixMs]
            byHost[s.host, default: [:]][p.bucketUnixMs] =
              old.map { m.sum ? $0 + p.average : max($0, p.average) } ?? p.average
          }
        }
        for (host, points) in byHost {
          fleet.backfill(metric: m.index, host: host, points: points.map { ($0.key, $0.value) })
        }
      } catch {
        logger.warning("sparkline backfill failed", metadata: ["metric": "\(m.metric)", "error": "\(error)"])
        return false
      }
    }
    return true
  }
}
