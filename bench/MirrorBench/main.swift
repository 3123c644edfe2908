// MIRROR STAGE benchmarks (run by bench/run.sh; never part of the tests).
//   MirrorBench wire                         encode+decode of a realistic MetricsBatch
//   MirrorBench payload FILE                 write that batch's bytes (the C baseline's payload)
//   MirrorBench publish URL SUBJECT COUNT    JetStream publish-with-ack from Swift
//   MirrorBench sections                     CPU time of each collector section of this host
//   MirrorBench fleet-fill URL HOSTS PER_HOST         a backlog of a simulated fleet
//   MirrorBench fleet-live URL HOSTS INTERVALS SECS   a live fleet; lag to metrics.normalized
//   MirrorBench twin NODES LINKS             the twin: layout, recompute + diff, diff size
//   MirrorBench alert-eval HOSTS INTERVALS   CPU time of the Notifier's rule evaluation per interval
//   MirrorBench alert-latency URL PORTFILE COUNT   breach → ntfy receiver (a receiver of its own;
//                                            its port is written to PORTFILE for the notifier's rules)
//   MirrorBench exec-latency URL KEY USER HOST COUNT      echo on one host, a long-lived client
//   MirrorBench shell-echo URL KEY USER HOST COUNT        keystroke echo through an interactive session
//   MirrorBench exec-fanout URL KEY USER ROUTERPUB N RUNS  echo on N simulated hosts until all results are in
//   MirrorBench chaos-fleet URLS KEY USER ROUTERPUB HOSTS SECONDS OUT   the chaos soak's simulated hosts and
//                                            operator (bench/chaos.sh); URLS comma-separated
import Foundation
import Logging
import MirrorBus
import MirrorWire
import ReflectorCore
import TestSupport

/// A batch as a busy server sends it: 16 cores, 6 mounts, 4 NICs, 2 GPUs,
/// 10 top processes by CPU and by memory, 8 disks, 12 temperature sensors.
func realisticBatch() -> MetricsBatch {
  let times = CpuTimes(
    userTicks: 123_456_789, niceTicks: 1_234, systemTicks: 23_456_789, idleTicks: 987_654_321, iowaitTicks: 12_345,
    irqTicks: 1_234, softirqTicks: 23_456, stealTicks: 0)
  let cores = (0..<16).map {
    CpuCore(
      index: UInt32($0), utilizationPercent: Double($0) * 3.7, frequencyMhz: 3400 + Double($0), times: times,
      online: true)
  }
  let mounts = ["/", "/boot", "/home", "/var", "/srv/data", "/mnt/backup"].enumerated().map { i, m in
    MountUsage(
      mountPoint: m, device: "/dev/nvme0n1p\(i + 1)", fsType: "ext4", totalBytes: 512_000_000_000,
      usedBytes: 200_000_000_000 + UInt64(i), availableBytes: 300_000_000_000, inodesTotal: 32_000_000,
      inodesUsed: 1_200_000, available: true)
  }
  let disks = (0..<8).map { i in
    DiskDevice(
      device: "nvme\(i)n1", readsCompleted: 12_345_678, readBytes: 987_654_321_000, writesCompleted: 2_345_678,
      writeBytes: 123_456_789_000, ioTimeMs: 3_456_789, weightedIoTimeMs: 4_567_890, inFlight: 1,
      smartHealth: .passed, smartCheckedUnixMs: 1_790_000_000_000, model: "Samsung SSD 990 PRO 2TB",
      serial: "S6Z2NF0W12345\(i)", smartTemperatureCelsius: 41, powerOnHours: 12_345)
  }
  let nics = ["eno1", "eno2", "wlp3s0", "docker0"].enumerated().map { i, n in
    NetworkInterface(
      name: n, rxBytes: 987_654_321_012, txBytes: 123_456_789_012, rxPackets: 987_654_321, txPackets: 123_456_789,
      rxErrors: 0, txErrors: 0, rxDropped: 12, txDropped: 0, speedMbps: i < 2 ? 1000 : nil, duplex: .full,
      operState: .up, mac: "aa:bb:cc:dd:ee:0\(i)", mtu: 1500, primary: i == 0)
  }
  let gpus = (0..<2).map { i in
    GpuStats(
      index: UInt32(i), uuid: "GPU-5b2e8c61-0c3f-4f7a-9d1e-00000000000\(i)", name: "NVIDIA GeForce RTX 4090",
      utilizationPercent: 87, memoryUtilizationPercent: 45, memoryTotalBytes: 25_757_220_864,
      memoryUsedBytes: 11_000_000_000, temperatureCelsius: 71, powerDrawWatts: 312.5, fanSpeedPercent: 60)
  }
  let temps = (0..<12).map { i in
    TemperatureSensor(
      source: "hwmon", chip: "coretemp", label: "Core \(i)", celsius: 48 + Double(i), highCelsius: 80,
      criticalCelsius: 100)
  }
  let procs = (0..<10).map { i in
    ProcessSample(
      pid: UInt32(1000 + i), name: "postgres: worker \(i)", user: "postgres", cpuPercent: 12.5, rssBytes: 512_000_000)
  }
  return MetricsBatch(
    host: "rack1-node07", bootId: "5f0c2a4e-3b2d-4c1e-9f8a-1234567890ab", sequence: 123_456,
    collectedAtUnixMs: 1_795_000_000_000, intervalMs: 5000,
    cpu: CpuStats(
      utilizationPercent: 37.5, times: times, cores: cores, load1: 2.5, load5: 2.1, load15: 1.9,
      uptimeSeconds: 1_234_567,
      processesRunning: 3, processesTotal: 612, contextSwitches: 9_876_543_210),
    memory: MemoryStats(
      totalBytes: 68_719_476_736, availableBytes: 40_000_000_000, usedBytes: 28_000_000_000, freeBytes: 10_000_000_000,
      cachedBytes: 25_000_000_000, buffersBytes: 1_000_000_000, swapTotalBytes: 8_589_934_592, swapUsedBytes: 0),
    mounts: mounts, disks: disks, interfaces: nics,
    latency: [LatencyProbe(target: "10.0.0.1:22", method: "tcp", reachable: true, rttMs: 0.42)], gpus: gpus,
    temperatures: temps, topCpu: procs, topMemory: procs, agentVersion: "0.1.0", primaryInterfaceSpeedMbps: 1000)
}

func benchWire() throws {
  let batch = realisticBatch()
  let bytes = batch.encode()
  let decoded = try MetricsBatch(decoding: bytes)
  precondition(decoded == batch)
  let iterations = Int(ProcessInfo.processInfo.environment["BENCH_WIRE_ITERATIONS"] ?? "") ?? 20_000
  var sink = 0
  let clock = ContinuousClock()
  // Warm up.
  for _ in 0..<1000 { sink &+= try MetricsBatch(decoding: batch.encode()).cpu!.cores.count }
  var encodeTotal = Duration.zero
  var decodeTotal = Duration.zero
  for _ in 0..<iterations {
    var encoded: [UInt8] = []
    encodeTotal += clock.measure { encoded = batch.encode() }
    try decodeTotal += clock.measure { sink &+= try MetricsBatch(decoding: encoded).cpu!.cores.count }
  }
  func ns(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e9 + Double(d.components.attoseconds) / 1e9
  }
  let enc = ns(encodeTotal) / Double(iterations)
  let dec = ns(decodeTotal) / Double(iterations)
  print("wire.metrics_batch_bytes \(bytes.count)")
  print(String(format: "wire.encode_ns_per_op %.0f", enc))
  print(String(format: "wire.decode_ns_per_op %.0f", dec))
  print(String(format: "wire.encode_decode_ns_per_op %.0f", enc + dec))
  if sink == 42 { print("") }
}

func benchPublish(url: String, subject: String, count: Int) async throws {
  let batch = realisticBatch()
  var logger = Logger(label: "bench")
  logger.logLevel = .warning
  let bus = try await BusConnection.connect(BusOptions(urls: [url], name: "bench"), logger: logger)
  let payload = batch.encode()
  let headers = BusHeader.describing(MetricsBatch.self)
  let clock = ContinuousClock()
  // Thread-owned (blocking) form, as a dedicated publisher thread uses it.
  let blocking = try clock.measure {
    for i in 0..<count {
      _ = try bus.jetStreamPublishBlocking(subject, payload: payload, headers: headers, msgID: "swift-sync:\(i)")
    }
  }
  // The async form, hopping to the bus's blocking queue for every publish.
  let asyncTime = try await clock.measure {
    for i in 0..<count {
      _ = try await bus.jetStreamPublish(subject, payload: payload, headers: headers, msgID: "swift-async:\(i)")
    }
  }
  func rate(_ d: Duration) -> Double {
    Double(count) / (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18)
  }
  print(String(format: "publish.swift_blocking_msgs_per_s %.1f", rate(blocking)))
  print(String(format: "publish.swift_async_msgs_per_s %.1f", rate(asyncTime)))
}

/// CPU time of each collector section, per call (to find where a cycle goes).
func benchSections() {
  let files = SystemFiles()
  let cpu = CPUCollector(files: files)
  let memory = MemoryCollector(files: files)
  let disks = DiskCollector(files: files, smart: nil)
  let network = NetworkCollector(files: files)
  let temps = TemperatureCollector(files: files)
  let procs = ProcessCollector(files: files, topK: 10)
  let gpu = GPUCollector(path: ProcessInfo.processInfo.environment["PATH"])
  let full = Collector(settings: .init(host: "bench"))
  let sections: [(String, () -> Void)] = [
    ("cpu", { _ = cpu.collect() }), ("memory", { _ = memory.collect() }), ("mounts", { _ = disks.mounts() }),
    ("diskstats", { _ = disks.devices() }), ("network", { _ = network.collect() }),
    ("temperatures", { _ = temps.collect() }),
    ("processes", { _ = procs.collect() }), ("gpu", { _ = gpu.collect() }),
    ("full_cycle_with_encode", { _ = full.collect(sequence: 1, intervalMs: 500).encode() }),
  ]
  for (name, body) in sections {
    for _ in 0..<5 { body() }
    let n = 200
    let start = cpuNanos()
    for _ in 0..<n { body() }
    print(String(format: "section.%@_us %.0f", name, Double(cpuNanos() - start) / Double(n) / 1000))
  }
}

/// A duration in milliseconds.
func milliseconds(_ d: Duration) -> Double {
  Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
}

/// CPU time of this process (all threads), nanoseconds.
func cpuNanos() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
  return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

let args = CommandLine.arguments
switch args.dropFirst().first {
case "wire":
  try benchWire()
case "sections":
  benchSections()
case "payload" where args.count == 3:
  try Data(realisticBatch().encode()).write(to: URL(fileURLWithPath: args[2]))
case "publish" where args.count == 5:
  try await benchPublish(url: args[2], subject: args[3], count: Int(args[4])!)
case "fleet-fill" where args.count == 5:
  try await Fleet.fill(url: args[2], hosts: Int(args[3])!, perHost: Int(args[4])!)
case "fleet-live" where args.count == 6:
  try await Fleet.live(url: args[2], hosts: Int(args[3])!, intervals: Int(args[4])!, interval: Double(args[5])!)
case "console-latency" where args.count == 5:
  try await ConsoleLatency.run(url: args[2], count: Int(args[3])!, periodMs: Int(args[4])!)
case "twin" where args.count == 4:
  TwinBench.run(nodes: Int(args[2])!, links: Int(args[3])!)
case "exec-latency" where args.count == 7:
  try await ExecBench.run(url: args[2], keyPath: args[3], user: args[4], host: args[5], count: Int(args[6])!)
case "shell-echo" where args.count == 7:
  try await ShellEcho.run(url: args[2], keyPath: args[3], user: args[4], host: args[5], count: Int(args[6])!)
case "exec-fanout" where args.count == 8:
  try await ExecFanout.run(
    url: args[2], keyPath: args[3], user: args[4], routerKeyPath: args[5], hosts: Int(args[6])!, runs: Int(args[7])!)
case "chaos-fleet" where args.count == 9:
  try await ChaosFleet.run(
    urls: args[2], keyPath: args[3], user: args[4], routerKeyPath: args[5], hosts: Int(args[6])!,
    seconds: Int(args[7])!, out: args[8])
case "twin-scene" where args.count == 6:
  try TwinBench.scene(to: args[2], nodes: Int(args[3])!, links: Int(args[4])!, rounds: Int(args[5])!)
case "alert-eval" where args.count == 4:
  try Alerts.evaluation(hosts: Int(args[2])!, intervals: Int(args[3])!)
case "alert-latency" where args.count == 5:
  let receiver = try HTTPReceiver()
  try "\(receiver.port)".write(toFile: args[3], atomically: true, encoding: .utf8)
  // The notifier is started by bench/run.sh once the port is known.
  while !FileManager.default.fileExists(atPath: args[3] + ".ready") { try await Task.sleep(for: .milliseconds(100)) }
  try await Alerts.latency(url: args[2], receiver: receiver, count: Int(args[4])!)
default:
  print("usage: MirrorBench wire | payload FILE | publish URL SUBJECT COUNT")
  exit(2)
}
