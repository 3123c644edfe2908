import Foundation
import MirrorWire
import ReflectorCore
import Testing

@Suite struct CPUCollectorTests {
  @Test func liveCaptureParses() throws {
    let cpu = try #require(CPUCollector(files: SystemFiles(root: Fixture.path("live"))).collect())
    #expect(cpu.cores.count == 2)
    #expect(cpu.cores.allSatisfy { $0.online })
    #expect(cpu.cores[0].frequencyMhz == 2596.122, "from /proc/cpuinfo: the VM has no cpufreq")
    #expect(cpu.times!.userTicks > 0)
    #expect(cpu.contextSwitches > 0)
    #expect(cpu.utilizationPercent == 0, "no delta on the first sample")
  }

  @Test func offlineCoreAndFrequencySources() throws {
    let cpu = try #require(CPUCollector(files: SystemFiles(root: Fixture.path("edge"))).collect())
    #expect(cpu.cores.map(\.index) == [0, 1, 2, 3])
    #expect(cpu.cores.map(\.online) == [true, true, false, true])
    #expect(cpu.cores[0].frequencyMhz == 3400, "cpufreq")
    #expect(cpu.cores[1].frequencyMhz == 1200, "cpufreq")
    #expect(cpu.cores[2].frequencyMhz == nil, "offline")
    #expect(cpu.cores[3].frequencyMhz == 2000, "cpuinfo fallback")
    #expect(cpu.load1 == 1.5 && cpu.load5 == 0.75 && cpu.load15 == 0.25)
    #expect(cpu.processesRunning == 3)
    #expect(cpu.processesTotal == 456)
    #expect(cpu.uptimeSeconds == 86400)
    #expect(cpu.contextSwitches == 123_456_789)
  }

  @Test func utilisationFromDeltas() throws {
    let root = try Fixture.copy("edge")
    let collector = CPUCollector(files: SystemFiles(root: root))
    _ = collector.collect()
    // +300 busy (user 200, system 100) and +700 idle ticks overall: 30 %.
    try Fixture.write(
      """
      cpu  4200 100 2100 90700 500 0 100 0 0 0
      cpu0 1200 25 600 22500 125 0 25 0 0 0
      cpu1 1000 25 500 23000 125 0 25 0 0 0
      cpu3 2000 50 1000 45200 250 0 50 0 0 0
      ctxt 123456999
      """, to: root, "/proc/stat")
    let cpu = try #require(collector.collect())
    #expect(abs(cpu.utilizationPercent - 30) < 0.001)
    #expect(abs(cpu.cores[0].utilizationPercent - 100) < 0.001)
    #expect(cpu.cores[1].utilizationPercent == 0)
    #expect(cpu.cores[3].utilizationPercent == 0)
  }

  @Test func counterGoingBackwardsNeverGivesNegativeOrNaN() throws {
    let root = try Fixture.copy("edge")
    let collector = CPUCollector(files: SystemFiles(root: root))
    _ = collector.collect()
    // Counters reset (e.g. a CPU came back online): the new values count
    // from zero.
    try Fixture.write(
      """
      cpu  10 0 10 80 0 0 0 0 0 0
      cpu0 10 0 10 80 0 0 0 0 0 0
      """, to: root, "/proc/stat")
    let cpu = try #require(collector.collect())
    #expect(abs(cpu.utilizationPercent - 20) < 0.001)
    #expect(cpu.cores.first { $0.index == 0 }.map { abs($0.utilizationPercent - 20) < 0.001 } == true)
    #expect(cpu.cores.filter(\.online).count == 1)
  }

  @Test func missingProcStatIsNil() {
    #expect(CPUCollector(files: SystemFiles(root: "/nonexistent")).collect() == nil)
  }
}

@Suite struct MemoryCollectorTests {
  @Test func liveCapture() throws {
    let m = try #require(MemoryCollector(files: SystemFiles(root: Fixture.path("live"))).collect())
    #expect(m.totalBytes > 1 << 30)
    #expect(m.availableBytes <= m.totalBytes)
    #expect(m.usedBytes == m.totalBytes - m.availableBytes)
  }

  @Test func oldKernelWithoutMemAvailable() throws {
    let m = try #require(MemoryCollector(files: SystemFiles(root: Fixture.path("edge"))).collect())
    #expect(m.totalBytes == 16_303_016 * 1024)
    #expect(m.availableBytes == (1_000_000 + 200_000 + 3_000_000) * 1024)
    #expect(m.swapTotalBytes == 2_097_148 * 1024)
    #expect(m.swapUsedBytes == (2_097_148 - 1_048_574) * 1024)
    #expect(m.cachedBytes == 3_000_000 * 1024)
  }
}

@Suite struct DiskCollectorTests {
  static let usage = FileSystemUsage(
    totalBytes: 100_000, availableBytes: 30_000, freeBytes: 40_000, inodesTotal: 1000, inodesFree: 250)

  @Test func realMountsOnlyWithEscapesAndNoDuplicates() {
    let disks = DiskCollector(files: SystemFiles(root: Fixture.path("edge")), statfs: { _ in Self.usage }, smart: nil)
    let mounts = disks.mounts()
    #expect(mounts.map(\.mountPoint) == ["/", "/mnt/nas", "/mnt/with space"])
    let root = mounts[0]
    #expect(root.available)
    #expect(root.totalBytes == 100_000)
    #expect(root.usedBytes == 60_000)
    #expect(root.availableBytes == 30_000)
    #expect(root.inodesUsed == 750)
    #expect(mounts[1].fsType == "nfs4")
  }

  @Test func hungMountDoesNotStallTheCycle() {
    let disks = DiskCollector(
      files: SystemFiles(root: Fixture.path("edge")),
      statfs: { path in
        if path == "/mnt/nas" { Thread.sleep(forTimeInterval: 3) }
        return Self.usage
      }, mountTimeout: .milliseconds(200), smart: nil)
    let start = ContinuousClock.now
    let mounts = disks.mounts()
    #expect(ContinuousClock.now - start < .seconds(1))
    let nas = mounts.first { $0.mountPoint == "/mnt/nas" }
    #expect(nas?.available == false)
    #expect(nas?.error.contains("hung mount") == true)
    #expect(mounts.first { $0.mountPoint == "/" }?.available == true)
    // Asked again while the first statvfs still hangs: not asked twice.
    let again = disks.mounts().first { $0.mountPoint == "/mnt/nas" }
    #expect(again?.error.contains("still hung") == true)
  }

  @Test func wholeDisksWithCountersAndNoLoopOrPartitions() {
    let disks = DiskCollector(files: SystemFiles(root: Fixture.path("edge")), statfs: { _ in nil }, smart: nil)
    let devices = disks.devices()
    #expect(devices.map(\.device) == ["sda", "nvme0n1"])
    #expect(devices[0].readsCompleted == 151_338)
    #expect(devices[0].readBytes == 18_617_778 * 512)
    #expect(devices[0].writesCompleted == 43_689)
    #expect(devices[0].writeBytes == 6_071_864 * 512)
    #expect(devices[0].ioTimeMs == 27_008)
    #expect(devices[0].inFlight == 2)
    // A counter at the 32-bit limit is carried as is (64-bit field).
    #expect(devices[1].readsCompleted == 4_294_967_295)
    #expect(devices[1].readBytes == 4_294_967_296 * 512)
  }

  @Test func smartFromFakeSmartctl() async throws {
    let bin = try Fixture.fakePrograms()
    let smart = try #require(SmartReader(interval: .seconds(3600), path: bin))
    let disks = DiskCollector(files: SystemFiles(root: Fixture.path("edge")), statfs: { _ in nil }, smart: smart)
    _ = disks.devices()  // starts the background read
    var devices: [DiskDevice] = []
    for _ in 0..<100 {
      devices = disks.devices()
      if devices.allSatisfy({ $0.smartHealth != .unknown }) { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    #expect(devices[0].smartHealth == .passed)
    #expect(devices[0].model == "Samsung SSD 870 EVO 1TB")
    #expect(devices[0].serial == "S5Y1NX0R123456")
    #expect(devices[0].smartTemperatureCelsius == 34)
    #expect(devices[0].powerOnHours == 8123)
    #expect(devices[0].smartCheckedUnixMs != nil)
    #expect(devices[1].smartHealth == .failed)
  }

  @Test func noSmartctlMeansNoReader() {
    #expect(SmartReader(path: "/nonexistent") == nil || Programs.find("smartctl", path: "/nonexistent") != nil)
  }

  @Test func smartctlParseFailureExitBit() throws {
    let json = Array(#"{"model_name":"X","serial_number":"Y"}"#.utf8)
    #expect(SmartReader.parse(json, exitStatus: 8)?.health == .failed)
    #expect(SmartReader.parse(json, exitStatus: 0)?.health == .unknown)
    #expect(SmartReader.parse(Array("not json".utf8), exitStatus: 0) == nil)
  }
}

@Suite struct NetworkCollectorTests {
  @Test func edgeInterfaces() {
    let nics = NetworkCollector(files: SystemFiles(root: Fixture.path("edge"))).collect()
    #expect(nics.map(\.name) == ["enp3s0", "wlan0"], "lo is skipped")
    let wired = nics[0]
    #expect(wired.primary, "lowest-metric default route")
    #expect(wired.speedMbps == 1000)
    #expect(wired.duplex == .full)
    #expect(wired.operState == .up)
    #expect(wired.rxBytes == 123_456_789_012)
    #expect(wired.txBytes == 98_765_432)
    #expect(wired.rxErrors == 3)
    #expect(wired.rxDropped == 7)
    #expect(wired.mac == "3c:ec:ef:01:02:03")
    let wifi = nics[1]
    #expect(wifi.speedMbps == nil, "no speed file: unknown, not zero")
    #expect(wifi.operState == .dormant)
    #expect(!wifi.primary)
  }

  @Test func liveCaptureUnknownSpeed() {
    let nics = NetworkCollector(files: SystemFiles(root: Fixture.path("live"))).collect()
    let eth0 = nics.first { $0.name == "eth0" }
    #expect(eth0?.primary == true)
    #expect(eth0?.speedMbps == nil, "the VM's NIC reports speed -1")
    #expect(nics.first { $0.name == "ifb0" }?.speedMbps == nil, "reading speed fails with EINVAL")
  }

  @Test func ipv6OnlyDefaultRoute() throws {
    let root = try Fixture.copy("edge")
    try Fixture.write("Iface\tDestination\tGateway\n", to: root, "/proc/net/route")
    try Fixture.write(
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     wlan0\n",
      to: root, "/proc/net/ipv6_route")
    #expect(NetworkCollector(files: SystemFiles(root: root)).primaryInterface() == "wlan0")
  }
}

@Suite struct GPUCollectorTests {
  @Test func notSupportedAndNAAreAbsentNotZero() {
    let gpus = GPUCollector.parse(
      """
      0, GPU-8e6f, NVIDIA GeForce RTX 3090, 35, 12, 24576, 1843, 52, 115.32, 30
      1, GPU-1a2b, Tesla T4, [N/A], [N/A], 15360, 0, 38, [N/A], [Not Supported]
      garbage line
      """)
    #expect(gpus.count == 2)
    #expect(gpus[0].utilizationPercent == 35)
    #expect(gpus[0].memoryTotalBytes == UInt64(24576) * 1_048_576)
    #expect(gpus[0].powerDrawWatts == 115.32)
    #expect(gpus[1].utilizationPercent == nil)
    #expect(gpus[1].powerDrawWatts == nil)
    #expect(gpus[1].fanSpeedPercent == nil)
    #expect(gpus[1].memoryUsedBytes == 0, "a real zero stays zero")
    #expect(gpus[1].temperatureCelsius == 38)
  }

  @Test func fakeNvidiaSmiOnPath() throws {
    let (gpus, error) = GPUCollector(path: try Fixture.fakePrograms()).collect()
    #expect(error == nil)
    #expect(gpus.map(\.name) == ["NVIDIA GeForce RTX 3090", "Tesla T4"])
  }

  @Test func noNvidiaSmiMeansNoSectionAndNoError() {
    let (gpus, error) = GPUCollector(path: "/nonexistent").collect()
    #expect(gpus.isEmpty)
    #expect(error == nil)
  }
}

@Suite struct TemperatureAndProcessTests {
  @Test func hwmonWithLabelsAndThermalZones() {
    let t = TemperatureCollector(files: SystemFiles(root: Fixture.path("edge"))).collect()
    #expect(t.count == 3)
    #expect(
      t[0]
        == TemperatureSensor(
          source: "hwmon", chip: "coretemp", label: "Package id 0", celsius: 45, highCelsius: 80, criticalCelsius: 100))
    #expect(t[1].label == "temp2")
    #expect(t[1].highCelsius == nil)
    #expect(
      t[2] == TemperatureSensor(source: "thermal_zone", chip: "thermal_zone0", label: "x86_pkg_temp", celsius: 44))
  }

  @Test func processNamesWithParenthesesAndRSS() {
    let p = ProcessCollector(files: SystemFiles(root: Fixture.path("edge")), topK: 5).collect()
    let weird = p.byMemory.first { $0.pid == 123 }
    #expect(weird?.name == "my (weird) proc")
    #expect(p.byMemory.first?.pid == 456, "12800 pages beats 2560")
    #expect(p.byMemory.first?.rssBytes == 12800 * UInt64(sysconf(Int32(_SC_PAGESIZE))))
    #expect(p.byCPU.count == 2)
  }

  /// Kernel threads are read from schedstat (nanoseconds) once recognised
  /// by their stat flags; without schedstat their stat ticks are used.
  @Test func kernelThreadsAreTimedFromSchedstat() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("kthreads-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: root) }
    func stat(_ pid: Int, _ name: String, flags: Int, ticks: Int, rss: Int) -> String {
      "\(pid) (\(name)) S 2 0 0 0 -1 \(flags) 0 0 0 0 \(ticks) 0 0 0 20 0 1 0 5 0 \(rss) 18446744073709551615 0 0 0\n"
    }
    func write(_ pid: Int, _ file: String, _ text: String) throws {
      try FileManager.default.createDirectory(atPath: "\(root)/proc/\(pid)", withIntermediateDirectories: true)
      try text.write(toFile: "\(root)/proc/\(pid)/\(file)", atomically: true, encoding: .utf8)
    }
    let kthread = 0x0020_8040  // PF_KTHREAD | PF_NOFREEZE | PF_FORKNOEXEC
    try write(7, "stat", stat(7, "kworker/0:1", flags: kthread, ticks: 100, rss: 0))
    try write(7, "schedstat", "1000000000 5000 40\n")
    try write(9, "stat", stat(9, "ksoftirqd/0", flags: kthread, ticks: 100, rss: 0))  // no schedstat
    try write(11, "stat", stat(11, "postgres", flags: 0x40_0100, ticks: 100, rss: 300))
    let collector = ProcessCollector(files: SystemFiles(root: root), topK: 5)
    let t0 = ContinuousClock.now
    _ = collector.collect(now: t0)
    #expect(collector.kernelThreadCount == 1, "only the thread with a schedstat file")
    // One second later: 0.5 s of run time in schedstat (its stat says
    // nothing moved, so a stat-based figure would be 0), 25 ticks in the
    // other thread's stat, 10 in the process's.
    try write(7, "stat", stat(7, "kworker/0:1", flags: kthread, ticks: 100, rss: 0))
    try write(7, "schedstat", "1500000000 5000 41\n")
    try write(9, "stat", stat(9, "ksoftirqd/0", flags: kthread, ticks: 125, rss: 0))
    try write(11, "stat", stat(11, "postgres", flags: 0x40_0100, ticks: 110, rss: 300))
    let p = collector.collect(now: t0 + .seconds(1))
    let tps = Double(sysconf(Int32(_SC_CLK_TCK)))
    #expect(p.byCPU.map(\.pid) == [7, 9, 11])
    #expect(abs((p.byCPU.first { $0.pid == 7 }?.cpuPercent ?? 0) - 50) < 0.001)
    #expect(abs((p.byCPU.first { $0.pid == 9 }?.cpuPercent ?? 0) - 25 / tps * 100) < 0.001)
    #expect(abs((p.byCPU.first { $0.pid == 11 }?.cpuPercent ?? 0) - 10 / tps * 100) < 0.001)
    #expect(p.byCPU.first?.name == "kworker/0:1", "the name still comes from stat")
    #expect(p.byMemory.first?.pid == 11)
    #expect(p.byMemory.first?.rssBytes == 300 * UInt64(sysconf(Int32(_SC_PAGESIZE))))
  }

  @Test func liveKernelThreadsKeepTheirSchedstatOpen() throws {
    // kthreadd is PID 2 where the kernel's threads are visible (not in a
    // PID namespace of a container).
    let flags = try? String(contentsOfFile: "/proc/2/stat", encoding: .utf8)
      .split(separator: ")").last?.split(separator: " ")[6]
    let collector = ProcessCollector(files: SystemFiles(), topK: 10)
    _ = collector.collect()
    _ = collector.collect()
    // Without CONFIG_SCHED_INFO there is no schedstat: stat is read instead.
    let schedstat = FileManager.default.isReadableFile(atPath: "/proc/2/schedstat")
    if let flags, let value = Int(flags), value & 0x0020_0000 != 0, schedstat {
      #expect(collector.kernelThreadCount > 0)
      let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
        try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
      }
      #expect(open.contains("/proc/2/schedstat"))
      #expect(!open.contains("/proc/2/stat"))
    } else {
      #expect(collector.kernelThreadCount == 0)
    }
  }

  @Test func liveProcessesIncludeThisOne() {
    let p = ProcessCollector(files: SystemFiles(), topK: 1000).collect()
    let me = p.byMemory.first { $0.pid == UInt32(getpid()) }
    #expect(me != nil)
    #expect(me?.user == String(cString: getpwuid(getuid())!.pointee.pw_name))
    #expect(me?.rssBytes ?? 0 > 0)
  }
}

/// Kernel files kept open between cycles and read again from offset 0.
@Suite struct KeptDescriptorTests {
  @Test func aKeptKernelFileIsReadAfreshEachTime() throws {
    let files = SystemFiles()
    let first = try #require(files.string("/proc/self/stat"))
    #expect(files.keptCount == 1, "/proc/self/stat is the kernel's: kept open")
    // Burn CPU so this process's utime moves on, then read again.
    var x: UInt64 = 1
    let end = ContinuousClock.now + .milliseconds(60)
    while ContinuousClock.now < end { x = x &* 6_364_136_223_846_793_005 &+ 1 }
    #expect(x != 0)
    let second = try #require(files.string("/proc/self/stat"))
    #expect(files.keptCount == 1, "the same descriptor, not a second one")
    #expect(first != second, "the kernel regenerated the contents")
    #expect(files.line("/proc/sys/kernel/random/boot_id")?.count == 36)
    #expect(files.keptCount == 2)
    #expect(files.string("/proc/1/stat") != nil)
    #expect(files.keptCount == 2, "another process's files are not kept")
  }

  @Test func ordinaryFilesAreNeverKeptSoAReplacedOneIsSeen() throws {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("kept-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root + "/proc", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let files = SystemFiles(root: root)
    try "one\n".write(toFile: root + "/proc/loadavg", atomically: true, encoding: .utf8)
    #expect(files.line("/proc/loadavg") == "one")
    try "two\n".write(toFile: root + "/proc/loadavg", atomically: true, encoding: .utf8)  // a new inode
    #expect(files.line("/proc/loadavg") == "two")
    #expect(files.keptCount == 0)
  }

  @Test func aProcessThatExitsHasItsDescriptorClosed() throws {
    let collector = ProcessCollector(files: SystemFiles(), topK: 1000)
    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/bin/sleep")
    child.arguments = ["30"]
    try child.run()
    let pid = UInt32(child.processIdentifier)
    let before = collector.collect()
    #expect(before.byMemory.contains { $0.pid == pid && $0.name == "sleep" })
    let kept = collector.keptCount
    #expect(kept > 1, "every process's stat stays open")
    kill(pid_t(pid), SIGKILL)  // SIGTERM may be blocked in a test process's children
    child.waitUntilExit()
    let after = collector.collect()
    #expect(!after.byMemory.contains { $0.pid == pid })
    #expect(collector.keptCount < kept, "the exited process's descriptor is closed")
    // The descriptors are the collector's: this process has no stat of the child open.
    let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap {
      try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")
    }
    #expect(!open.contains("/proc/\(pid)/stat"))
  }
}

/// The live mount table is parsed again only when the kernel flags a change.
@Suite(.serialized) struct LiveMountTableTests {
  @Test func aMountAndAnUnmountAreSeenOnTheNextCycle() throws {
    let disks = DiskCollector(files: SystemFiles(), smart: nil)
    let before = disks.mounts().map(\.mountPoint)
    #expect(before.contains("/"))
    #expect(disks.mounts().map(\.mountPoint) == before, "no change, the same table")
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("mnt-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: base + "/src", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: base + "/target", withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: base) }
    // A bind mount has the type of the file system under it: a real one.
    #expect(Self.run("/bin/mount", ["--bind", base + "/src", base + "/target"]) == 0)
    var unmounted = false
    defer { if !unmounted { _ = Self.run("/bin/umount", [base + "/target"]) } }
    #expect(disks.mounts().contains { $0.mountPoint == base + "/target" && $0.available })
    #expect(Self.run("/bin/umount", [base + "/target"]) == 0)
    unmounted = true
    #expect(!disks.mounts().contains { $0.mountPoint == base + "/target" })
    #expect(disks.mounts().map(\.mountPoint) == before)
  }

  static func run(_ path: String, _ arguments: [String]) -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = arguments
    guard (try? p.run()) != nil else { return -1 }
    p.waitUntilExit()
    return p.terminationStatus
  }
}

@Suite struct LiveMachineTests {
  @Test func fullBatchFromThisMachine() throws {
    let collector = Collector(settings: .init(host: "live-test", latencyTargets: ["127.0.0.1:1"]))
    _ = collector.collect(sequence: 1, intervalMs: 1000)
    let batch = collector.collect(sequence: 2, intervalMs: 1000)
    #expect(batch.cpu?.cores.isEmpty == false)
    #expect((batch.memory?.totalBytes ?? 0) > 0)
    #expect(batch.mounts.contains { $0.mountPoint == "/" && $0.available && $0.totalBytes > 0 })
    #expect(!batch.interfaces.isEmpty)
    #expect(!batch.topMemory.isEmpty)
    #expect(batch.latency.count == 1)
    #expect(
      batch.bootId
        == (try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)).trimmingCharacters(
          in: .whitespacesAndNewlines))
    let info = collector.hostInfo(labels: [Label(key: "rack", value: "r1")])
    #expect(info.hostname == "live-test")
    #expect(info.cpuThreads > 0)
    #expect(!info.kernel.isEmpty)
    #expect(!info.addresses.isEmpty)
    #expect(info.labels == [Label(key: "rack", value: "r1")])
  }
}
