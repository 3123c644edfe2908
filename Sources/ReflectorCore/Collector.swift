public import Foundation
public import MirrorWire

/// Everything the agent collects in one cycle, assembled into a
/// `MetricsBatch`. Not thread-safe: one collector per agent, used by one
/// cycle at a time. A collector that fails adds a `CollectorError`; the rest
/// of the batch is still sent.
public final class Collector {
  public struct Settings: Sendable {
    public var host: String
    public var root: String
    public var topK: Int
    public var latencyTargets: [String]
    public var mountTimeout: Duration
    public var smartInterval: Duration
    /// PATH used to look for nvidia-smi and smartctl.
    public var programPath: String?
    public var statfs: StatFileSystem

    public init(
      host: String, root: String = "/", topK: Int = 10, latencyTargets: [String] = [],
      mountTimeout: Duration = .seconds(1),
      smartInterval: Duration = .seconds(3600), programPath: String? = ProcessInfo.processInfo.environment["PATH"],
      statfs: @escaping StatFileSystem = liveStatFileSystem
    ) {
      self.host = host
      self.root = root
      self.topK = topK
      self.latencyTargets = latencyTargets
      self.mountTimeout = mountTimeout
      self.smartInterval = smartInterval
      self.programPath = programPath
      self.statfs = statfs
    }
  }

  public let settings: Settings
  let files: SystemFiles
  let cpu: CPUCollector
  let memory: MemoryCollector
  let disks: DiskCollector
  let network: NetworkCollector
  let gpus: GPUCollector
  let temperatures: TemperatureCollector
  let processes: ProcessCollector
  let latency: LatencyProber
  public let bootID: String

  public init(settings: Settings) {
    self.settings = settings
    files = SystemFiles(root: settings.root)
    cpu = CPUCollector(files: files)
    memory = MemoryCollector(files: files)
    disks = DiskCollector(
      files: files, statfs: settings.statfs, mountTimeout: settings.mountTimeout,
      smart: SmartReader(interval: settings.smartInterval, path: settings.programPath))
    network = NetworkCollector(files: files)
    gpus = GPUCollector(path: settings.programPath)
    temperatures = TemperatureCollector(files: files)
    processes = ProcessCollector(files: files, topK: settings.topK)
    latency = LatencyProber(targets: settings.latencyTargets)
    bootID = files.line("/proc/sys/kernel/random/boot_id") ?? UUID().uuidString.lowercased()
  }

  /// One cycle. `sequence` and `interval` are the publisher's.
  public func collect(sequence: UInt64, intervalMs: UInt32, now: Date = Date()) -> MetricsBatch {
    var batch = MetricsBatch(
      host: settings.host, bootId: bootID, sequence: sequence,
      collectedAtUnixMs: now.unixMilliseconds,
      intervalMs: intervalMs, agentVersion: AgentVersion.current)
    func failed(_ name: String, _ message: String) {
      batch.errors.append(CollectorError(collector: name, message: message))
    }
    if let c = cpu.collect() { batch.cpu = c } else { failed("cpu", "cannot read /proc/stat") }
    if let m = memory.collect() { batch.memory = m } else { failed("memory", "cannot read /proc/meminfo") }
    batch.mounts = disks.mounts()
    for m in batch.mounts where !m.available { failed("disk", "\(m.mountPoint): \(m.error)") }
    batch.disks = disks.devices()
    batch.interfaces = network.collect()
    batch.primaryInterfaceSpeedMbps = batch.interfaces.first(where: \.primary)?.speedMbps
    batch.latency = latency.probe()
    let (gpuStats, gpuError) = gpus.collect()
    batch.gpus = gpuStats
    if let gpuError { failed("gpu", gpuError) }
    batch.temperatures = temperatures.collect()
    let (byCPU, byMemory) = processes.collect()
    batch.topCpu = byCPU
    batch.topMemory = byMemory
    return batch
  }

  public func hostInfo(labels: [Label]) -> HostInfo {
    HostInfoCollector(files: files, host: settings.host, labels: labels, agentVersion: AgentVersion.current).collect()
  }
}

public enum AgentVersion {
  public static let current = "0.1.0"
}
