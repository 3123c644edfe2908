import ArgumentParser
import Foundation
import MirrorBus
import MirrorService
import MirrorWire

struct HostsCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hosts", abstract: "List the hosts the registry knows (hosts.list).")

  @OptionGroup var connection: ConnectionOptions
  @Option(help: "Only hosts with this label (KEY=VALUE); repeatable.") var label: [String] = []
  @Option(help: "Only members of this host group.") var group: String = ""
  @Flag(help: "Only hosts seen within three intervals.") var online = false
  @Flag(help: "Print JSON instead of a table.") var json = false

  func run() async throws {
    let labels = try label.map { l -> Label in
      let parts = l.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else { throw ValidationError("--label wants KEY=VALUE, not '\(l)'") }
      return Label(key: parts[0], value: parts[1])
    }
    let bus = try await connection.connect()
    let reply: ListHostsResponse
    do {
      reply = try await bus.request(
        Subjects.hostsList, ListHostsRequest(labels: labels, group: group, onlineOnly: online),
        expecting: ListHostsResponse.self, timeout: connection.replyTimeout)
    } catch { throw Failure("hosts.list: \(describe(error))") }
    if json { return try printJSON(reply.hosts) }
    let now = Date().unixMilliseconds
    print(
      Format.table(
        ["HOST", "STATE", "LAST SEEN", "OS", "KERNEL", "CPUS", "MEMORY", "GROUPS", "LABELS"],
        reply.hosts.map { h in
          [
            h.name, h.online ? "up" : "down", Format.age(h.lastSeenAtUnixMs, now: now),
            [h.info?.osName, h.info?.osVersion].compactMap { $0 }.joined(separator: " "), h.info?.kernel ?? "",
            h.info.map { "\($0.cpuCores)" } ?? "", h.info.map { Format.bytes(Double($0.memoryTotalBytes)) } ?? "",
            h.groups.joined(separator: ","), h.labels.map { "\($0.key)=\($0.value)" }.joined(separator: ","),
          ]
        }))
  }
}

struct TopCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "top",
    abstract:
      "A live table of hosts: CPU, memory, network, disks, temperature (hosts.snapshot, then metrics.normalized).")

  @OptionGroup var connection: ConnectionOptions
  @Option(help: "Seconds between refreshes.") var interval: Double = 5
  @Flag(help: "Print the current table once and exit.") var once = false

  func run() async throws {
    let bus = try await connection.connect()
    let updates = try bus.subscribe("metrics.normalized.>")
    let snapshot: HostsSnapshotResponse
    do {
      snapshot = try await bus.request(
        Subjects.hostsSnapshot, HostsSnapshotRequest(), expecting: HostsSnapshotResponse.self,
        timeout: connection.replyTimeout)
    } catch { throw Failure("hosts.snapshot: \(describe(error))") }
    let board = Board(snapshot)
    if once { return print(board.render(now: Date().unixMilliseconds)) }
    let interactive = isatty(1) == 1
    let listener = Task {
      for await message in updates {
        if let n = try? NormalizedBatch(decoding: message.payload) { board.update(n) }
      }
    }
    defer { listener.cancel() }
    while !Task.isCancelled {
      emit(
        (interactive ? "\u{1B}[H\u{1B}[2J" : "") + board.render(now: Date().unixMilliseconds)
          + (interactive ? "\n" : "\n\n"))
      try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
    }
  }
}

/// The rows of `top`, updated from metrics.normalized as batches arrive.
final class Board: @unchecked Sendable {
  private let lock = NSLock()
  private var latest: [String: NormalizedBatch] = [:]
  private var online: [String: Bool] = [:]

  init(_ snapshot: HostsSnapshotResponse) {
    for h in snapshot.hosts {
      guard let name = h.status?.name else { continue }
      online[name] = h.status?.online ?? false
      if let l = h.latest { latest[name] = l }
    }
  }

  func update(_ n: NormalizedBatch) {
    guard let host = n.batch?.host else { return }
    lock.withLock {
      latest[host] = n
      online[host] = true
    }
  }

  func render(now: Int64) -> String {
    let (latest, online) = lock.withLock { (self.latest, self.online) }
    let rows = online.keys.sorted().map { host -> [String] in
      guard let n = latest[host], let b = n.batch else {
        return [host, "down", "-", "-", "-", "-", "-", "-", "-", "never"]
      }
      let stale = now - b.collectedAtUnixMs > 3 * Int64(max(b.intervalMs, 1000))
      let rx = n.interfaces.map(\.rxBytesPerSecond).reduce(0, +)
      let tx = n.interfaces.map(\.txBytesPerSecond).reduce(0, +)
      return [
        host, stale ? "down" : "up", Format.percent(n.cpuPercent), Format.percent(n.memoryUsedPercent),
        b.cpu.map { String(format: "%.2f", $0.load1) } ?? "-", Format.bytes(rx) + "/s", Format.bytes(tx) + "/s",
        Format.percent(n.disks.map(\.busyPercent).max()), Format.percent(b.temperatures.map(\.celsius).max()),
        Format.age(b.collectedAtUnixMs, now: now),
      ]
    }
    return Format.table(["HOST", "STATE", "CPU%", "MEM%", "LOAD1", "RX", "TX", "DISK%", "TEMP°C", "AGE"], rows)
  }
}

struct QueryCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "query", abstract: "A bucketed time series of one metric (metrics.query), as JSON.")

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "The metric, e.g. cpu_percent (see docs/ingest.md).") var metric: String
  @Option(help: "Only this host; repeatable.") var host: [String] = []
  @Option(help: "Only this interface, device, mount or sensor.") var key: String = ""
  @Option(help: "How far back, in seconds.") var since: Int64 = 3600
  @Option(help: "Bucket width in seconds (0: about 300 points).") var step: UInt32 = 0

  func run() async throws {
    let bus = try await connection.connect()
    let now = Date().unixMilliseconds
    do {
      let reply = try await bus.request(
        Subjects.metricsQuery,
        MetricsQueryRequest(
          hosts: host, metric: metric, startUnixMs: now - since * 1000, endUnixMs: now, stepSeconds: step, key: key),
        expecting: MetricsQueryResponse.self, timeout: connection.replyTimeout)
      try printJSON(reply)
    } catch let e as RemoteError {
      throw Failure("metrics.query: \(describe(e))")
    }
  }
}
