import Foundation
import MirrorWire

// The JSON the console's API and live stream send (docs/console.md): value
// types built from the wire messages, encoded by Hummingbird's JSONEncoder.
// Absent values are left out (`null` to the browser).

/// An enum's wire name as the API spells it: "SEVERITY_WARNING" → "warning".
func apiName(_ description: String, prefix: String) -> String {
  (description.hasPrefix(prefix) ? String(description.dropFirst(prefix.count)) : description).lowercased()
}

func labelMap(_ labels: [Label]) -> [String: String] {
  Dictionary(labels.map { ($0.key, $0.value) }, uniquingKeysWith: { _, b in b })
}

/// One row of the hosts table.
public struct HostRow: Codable, Sendable, Equatable {
  public var name: String
  public var state: String
  public var online: Bool
  public var lastSeen: Int64?
  public var intervalMs: Int
  public var labels: [String: String]
  public var groups: [String]
  public var os: String
  public var cpu: Double?
  public var memory: Double?
  public var load1: Double?
  public var disk: Double?
  public var netRx: Double?
  public var netTx: Double?
  public var temperature: Double?
  public var gpu: Double?
}

/// The numbers of a host's row, from its latest batch.
struct RowValues: Sendable, Equatable {
  var cpu: Double?
  var memory: Double?
  var load1: Double?
  var disk: Double?
  var netRx: Double?
  var netTx: Double?
  var temperature: Double?
  var gpu: Double?

  static let names = ["cpu", "memory", "load1", "disk", "netRx", "netTx", "temperature", "gpu"]

  var all: [Double?] { [cpu, memory, load1, disk, netRx, netTx, temperature, gpu] }

  init() {}

  init(_ n: NormalizedBatch) {
    let b = n.batch
    cpu = n.cpuPercent
    memory = n.memoryUsedPercent
    load1 = b?.cpu?.load1
    disk = b?.mounts.filter { $0.available && $0.totalBytes > 0 }
      .map { Double($0.usedBytes) * 100 / Double($0.totalBytes) }.max()
    let links = n.interfaces.filter { $0.name != "lo" }
    netRx = links.isEmpty ? nil : links.reduce(0) { $0 + $1.rxBytesPerSecond }
    netTx = links.isEmpty ? nil : links.reduce(0) { $0 + $1.txBytesPerSecond }
    temperature = b?.temperatures.map(\.celsius).max()
    gpu = b?.gpus.compactMap(\.utilizationPercent).max()
  }
}

public struct AlertView: Codable, Sendable, Equatable {
  public var id, rule, host, severity, state, summary, description: String
  public var value, threshold: Double
  public var startedAt, updatedAt: Int64
  public var resolvedAt: Int64?
  public var acknowledged: Bool
  public var acknowledgedBy: String
  public var silencedUntil: Int64?
  public var labels: [String: String]

  init(_ a: Alert) {
    id = a.id
    rule = a.rule
    host = a.host
    severity = apiName(a.severity.description, prefix: "SEVERITY_")
    state = apiName(a.state.description, prefix: "ALERT_STATE_")
    summary = a.summary
    description = a.description
    value = a.value
    threshold = a.threshold
    startedAt = a.startedAtUnixMs
    updatedAt = a.updatedAtUnixMs
    resolvedAt = a.resolvedAtUnixMs == 0 ? nil : a.resolvedAtUnixMs
    acknowledged = a.acknowledged
    acknowledgedBy = a.acknowledgedBy
    silencedUntil = a.silencedUntilUnixMs == 0 ? nil : a.silencedUntilUnixMs
    labels = labelMap(a.labels)
  }
}

public struct SilenceView: Codable, Sendable {
  public var id, alertId, rule, host, by, comment: String
  public var endsAt, createdAt: Int64

  init(_ s: Silence) {
    id = s.id
    alertId = s.alertId
    rule = s.rule
    host = s.host
    by = s.by
    comment = s.comment
    endsAt = s.endsAtUnixMs
    createdAt = s.createdAtUnixMs
  }
}

public struct CommandSummary: Codable, Sendable {
  public struct HostState: Codable, Sendable {
    public var host, state, reason: String
    public var exitCode: Int32?
    public var startedAt, finishedAt: Int64?
  }
  public var id, requester, reason, action, state: String
  public var submittedAt, updatedAt: Int64
  public var hosts: [HostState]

  init(_ r: CommandRecord) {
    let q = r.request ?? CommandRequest()
    id = q.id
    requester = q.requester.isEmpty ? q.operatorKeyId : q.requester
    reason = q.reason
    action = Self.describe(q.action ?? CommandAction())
    state = apiName(r.state.description, prefix: "COMMAND_STATE_")
    submittedAt = q.submittedAtUnixMs
    updatedAt = r.updatedAtUnixMs
    hosts = r.hosts.map {
      HostState(
        host: $0.host, state: apiName($0.state.description, prefix: "COMMAND_STATE_"), reason: $0.reason,
        exitCode: $0.exitCode, startedAt: $0.startedAtUnixMs == 0 ? nil : $0.startedAtUnixMs,
        finishedAt: $0.finishedAtUnixMs == 0 ? nil : $0.finishedAtUnixMs)
    }
  }

  static func describe(_ a: CommandAction) -> String {
    switch a.builtin {
    case .restartService: "restart \(a.service)"
    case .wakeOnLan: "wake-on-lan \(a.mac)"
    case .shell: "shell (interactive)"
    case .forward: "forward to \(a.forwardAddress):\(a.forwardPort)"
    case .collectNow: "collect now"
    default: (a.shell ? "shell: " : "argv: ") + a.argv.joined(separator: " ")
    }
  }
}

/// What a host told about itself at registration.
public struct HostInfoView: Codable, Sendable {
  public struct Address: Codable, Sendable {
    public var interface, address: String
    public var prefix: UInt32
  }
  public struct MAC: Codable, Sendable {
    public var interface, mac: String
  }
  public var hostname, osName, osVersion, kernel, architecture, cpuModel, agentVersion, bootId, machineId: String
  public var cpuCores, cpuThreads: UInt32
  public var memoryTotal: UInt64
  public var primaryInterface: String
  public var primarySpeedMbps: UInt32?
  public var primaryDuplex: String
  public var addresses: [Address]
  public var macs: [MAC]
  public var labels: [String: String]
  public var registeredAt: Int64

  init(_ s: HostStatus, _ i: HostInfo) {
    hostname = i.hostname
    osName = i.osName
    osVersion = i.osVersion
    kernel = i.kernel
    architecture = i.architecture
    cpuModel = i.cpuModel
    agentVersion = i.agentVersion
    bootId = i.bootId
    machineId = i.machineId
    cpuCores = i.cpuCores
    cpuThreads = i.cpuThreads
    memoryTotal = i.memoryTotalBytes
    primaryInterface = i.primaryInterface
    primarySpeedMbps = i.primaryInterfaceSpeedMbps
    primaryDuplex = apiName(i.primaryInterfaceDuplex.description, prefix: "DUPLEX_")
    addresses = i.addresses.map { Address(interface: $0.interfaceName, address: $0.address, prefix: $0.prefixLength) }
    macs = i.hardwareAddresses.map { MAC(interface: $0.interfaceName, mac: $0.mac) }
    labels = labelMap(s.labels)
    registeredAt = s.registeredAtUnixMs
  }
}

/// A host's latest batch, as the detail screen shows it.
public struct LatestView: Codable, Sendable {
  public struct Core: Codable, Sendable {
    public var index: UInt32
    public var percent: Double
    public var mhz: Double?
  }
  public struct CPU: Codable, Sendable {
    public var total, load1, load5, load15: Double
    public var cores: [Core]
    public var uptime: UInt64
    public var running, processes: UInt32
  }
  public struct Memory: Codable, Sendable {
    public var total, used, available, cached, buffers, swapTotal, swapUsed: UInt64
    public var percent: Double
  }
  public struct Mount: Codable, Sendable {
    public var mount, device, fs, error: String
    public var total, used, available: UInt64
    public var percent: Double?
  }
  public struct Disk: Codable, Sendable {
    public var device, model, serial, smart: String
    public var smartTemp: Double?
    public var powerOnHours: UInt64?
    public var readIops, writeIops, readBps, writeBps, busy: Double?
  }
  public struct Interface: Codable, Sendable {
    public var name, duplex, oper, mac: String
    public var rxBps, txBps, util: Double?
    public var speedMbps: UInt32?
    public var mtu: UInt32
    public var primary: Bool
    public var rxErrors, txErrors: UInt64
  }
  public struct Temperature: Codable, Sendable {
    public var chip, label: String
    public var celsius: Double
    public var high, critical: Double?
  }
  public struct GPU: Codable, Sendable {
    public var index: UInt32
    public var name: String
    public var util, memUtil, temp, power, fan: Double?
    public var memTotal, memUsed: UInt64?
  }
  public struct Process: Codable, Sendable {
    public var pid: UInt32
    public var name, user: String
    public var cpu: Double
    public var rss: UInt64
  }
  public struct CollectorFailure: Codable, Sendable {
    public var collector, message: String
  }
  public var at: Int64
  public var cpu: CPU?
  public var memory: Memory?
  public var mounts: [Mount]
  public var disks: [Disk]
  public var interfaces: [Interface]
  public var temperatures: [Temperature]
  public var gpus: [GPU]
  public var topCpu, topMemory: [Process]
  public var errors: [CollectorFailure]

  init(_ n: NormalizedBatch) {
    let b = n.batch ?? MetricsBatch()
    at = b.collectedAtUnixMs
    cpu = b.cpu.map { c in
      CPU(
        total: n.cpuPercent, load1: c.load1, load5: c.load5, load15: c.load15,
        cores: c.cores.map { Core(index: $0.index, percent: $0.utilizationPercent, mhz: $0.frequencyMhz) },
        uptime: c.uptimeSeconds, running: c.processesRunning, processes: c.processesTotal)
    }
    memory = b.memory.map { m in
      Memory(
        total: m.totalBytes, used: m.usedBytes, available: m.availableBytes, cached: m.cachedBytes,
        buffers: m.buffersBytes, swapTotal: m.swapTotalBytes, swapUsed: m.swapUsedBytes, percent: n.memoryUsedPercent)
    }
    mounts = b.mounts.map {
      Mount(
        mount: $0.mountPoint, device: $0.device, fs: $0.fsType, error: $0.error, total: $0.totalBytes,
        used: $0.usedBytes, available: $0.availableBytes,
        percent: $0.available && $0.totalBytes > 0 ? Double($0.usedBytes) * 100 / Double($0.totalBytes) : nil)
    }
    let rates = Dictionary(n.disks.map { ($0.device, $0) }, uniquingKeysWith: { a, _ in a })
    disks = b.disks.map { d in
      let r = rates[d.device]
      return Disk(
        device: d.device, model: d.model, serial: d.serial,
        smart: apiName(d.smartHealth.description, prefix: "SMART_HEALTH_"),
        smartTemp: d.smartTemperatureCelsius, powerOnHours: d.powerOnHours, readIops: r?.readIops,
        writeIops: r?.writeIops, readBps: r?.readBytesPerSecond, writeBps: r?.writeBytesPerSecond,
        busy: r?.busyPercent)
    }
    let links = Dictionary(n.interfaces.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    interfaces = b.interfaces.map { i in
      let r = links[i.name]
      return Interface(
        name: i.name, duplex: apiName(i.duplex.description, prefix: "DUPLEX_"),
        oper: apiName(i.operState.description, prefix: "OPER_STATE_"), mac: i.mac, rxBps: r?.rxBytesPerSecond,
        txBps: r?.txBytesPerSecond, util: r?.utilizationPercent, speedMbps: i.speedMbps, mtu: i.mtu,
        primary: i.primary, rxErrors: i.rxErrors, txErrors: i.txErrors)
    }
    temperatures = b.temperatures.map {
      Temperature(
        chip: $0.chip, label: $0.label, celsius: $0.celsius, high: $0.highCelsius, critical: $0.criticalCelsius)
    }
    gpus = b.gpus.map {
      GPU(
        index: $0.index, name: $0.name, util: $0.utilizationPercent, memUtil: $0.memoryUtilizationPercent,
        temp: $0.temperatureCelsius, power: $0.powerDrawWatts, fan: $0.fanSpeedPercent, memTotal: $0.memoryTotalBytes,
        memUsed: $0.memoryUsedBytes)
    }
    func process(_ p: ProcessSample) -> Process {
      Process(pid: p.pid, name: p.name, user: p.user, cpu: p.cpuPercent, rss: p.rssBytes)
    }
    topCpu = b.topCpu.map(process)
    topMemory = b.topMemory.map(process)
    errors = b.errors.map { CollectorFailure(collector: $0.collector, message: $0.message) }
  }
}

/// A chunk of a command's output, as the browser gets it live and in the
/// stored output.
struct CommandOutputMessage: Codable, Sendable {
  var type = "output"
  var commandId, host: String
  var seq: UInt64
  var stream: String
  var text: String
  var at: Int64

  init(_ o: CommandOutput) {
    commandId = o.commandId
    host = o.host
    seq = o.chunkSequence
    stream =
      switch o.channel {
      case .stderr: "stderr"
      case .input: "input"
      case .resize: "resize"
      default: "stdout"
      }
    text = String(decoding: o.data, as: UTF8.self)
    at = o.emittedAtUnixMs
  }
}

/// A host's final word on a command.
struct CommandResultMessage: Codable, Sendable {
  var type = "result"
  var commandId, host, state, reason: String
  var exitCode, signal: Int32?
  var startedAt, finishedAt: Int64?
  var truncated: Bool
  var outputBytes: UInt64

  init(_ r: CommandResult) {
    commandId = r.commandId
    host = r.host
    state = apiName(r.state.description, prefix: "COMMAND_STATE_")
    reason = r.reason
    exitCode = r.exitCode
    signal = r.signal
    startedAt = r.startedAtUnixMs == 0 ? nil : r.startedAtUnixMs
    finishedAt = r.finishedAtUnixMs == 0 ? nil : r.finishedAtUnixMs
    truncated = r.truncated
    outputBytes = r.outputBytes
  }
}
