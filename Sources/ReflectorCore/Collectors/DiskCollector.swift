import Dispatch
import Foundation
import MirrorBus
public import MirrorWire
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// What statvfs says about a mount point.
public struct FileSystemUsage: Sendable, Hashable {
  public var totalBytes: UInt64
  public var availableBytes: UInt64
  public var freeBytes: UInt64
  public var inodesTotal: UInt64
  public var inodesFree: UInt64

  public init(totalBytes: UInt64, availableBytes: UInt64, freeBytes: UInt64, inodesTotal: UInt64, inodesFree: UInt64) {
    self.totalBytes = totalBytes
    self.availableBytes = availableBytes
    self.freeBytes = freeBytes
    self.inodesTotal = inodesTotal
    self.inodesFree = inodesFree
  }
}

/// The statvfs call, replaceable so tests can stand in a mount that hangs.
public typealias StatFileSystem = @Sendable (String) -> FileSystemUsage?

public let liveStatFileSystem: StatFileSystem = { path in
  var s = statvfs()
  guard statvfs(path, &s) == 0 else { return nil }
  let frsize = UInt64(s.f_frsize)
  return FileSystemUsage(
    totalBytes: UInt64(s.f_blocks) * frsize, availableBytes: UInt64(s.f_bavail) * frsize,
    freeBytes: UInt64(s.f_bfree) * frsize, inodesTotal: UInt64(s.f_files), inodesFree: UInt64(s.f_ffree))
}

/// Mount usage (statvfs, each bounded in time), block-device I/O counters
/// (/proc/diskstats) and SMART health (smartctl, on a slow cadence, cached).
public final class DiskCollector {
  /// File systems that hold no user data.
  static let pseudo: Set<String> = [
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "securityfs", "pstore", "bpf", "debugfs",
    "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "ramfs",
    "efivarfs", "selinuxfs", "squashfs", "overlay", "fuse.lxcfs", "fuse.portal", "fuse.gvfsd-fuse", "nfsd",
  ]

  private let files: SystemFiles
  private let statfs: StatFileSystem
  private let mountTimeout: Duration
  /// Mounts whose statvfs has not returned yet: not asked again until it does.
  private let hung = HungMounts()
  private let smart: SmartReader?

  public init(
    files: SystemFiles, statfs: @escaping StatFileSystem = liveStatFileSystem, mountTimeout: Duration = .seconds(1),
    smart: SmartReader?
  ) {
    self.files = files
    self.statfs = statfs
    self.mountTimeout = mountTimeout
    self.smart = smart
  }

  /// A real mount from the table.
  struct Mount: Equatable {
    var device: String
    var mountPoint: String
    var type: String
  }

  /// The real mounts (pseudo file systems and repeats left out), in order.
  static func parseMounts(_ table: String) -> [Mount] {
    var seenMountPoints = Set<String>()
    var out: [Mount] = []
    for line in table.split(separator: "\n") {
      let f = line.split(separator: " ")
      guard f.count >= 3 else { continue }
      let mount = Mount(device: Self.unescape(f[0]), mountPoint: Self.unescape(f[1]), type: String(f[2]))
      guard !Self.pseudo.contains(mount.type), seenMountPoints.insert(mount.mountPoint).inserted else { continue }
      out.append(mount)
    }
    return out
  }

  /// On a live /proc the table is parsed again only when it changed: the
  /// kernel flags the open /proc/self/mounts with POLLPRI after a mount or
  /// an unmount. Captured files are read every time.
  private var mountTable: [Mount]?
  private var mountsFD: Int32 = -1

  deinit { if mountsFD >= 0 { close(mountsFD) } }

  func currentMounts() -> [Mount] {
    if mountsFD < 0 {
      let fd = open(files.path("/proc/self/mounts"), O_RDONLY | O_CLOEXEC)
      if fd >= 0, KeptFiles.isKernelFile(fd) {
        mountsFD = fd
      } else if fd >= 0 {
        close(fd)
      }
    }
    guard mountsFD >= 0 else {
      let table = files.string("/proc/self/mounts") ?? files.string("/proc/mounts") ?? ""
      return Self.parseMounts(table)
    }
    var p = pollfd(fd: mountsFD, events: Int16(POLLPRI), revents: 0)
    if let table = mountTable, poll(&p, 1, 0) == 0 { return table }
    var bytes: [UInt8] = []
    guard SystemFiles.readAll(mountsFD, into: &bytes) else { return mountTable ?? [] }
    let table = Self.parseMounts(String(decoding: bytes, as: UTF8.self))
    mountTable = table
    return table
  }

  public func mounts() -> [MountUsage] {
    var out: [MountUsage] = []
    for m in currentMounts() {
      var usage = MountUsage(mountPoint: m.mountPoint, device: m.device, fsType: m.type)
      switch stat(m.mountPoint, device: m.device, type: m.type) {
      case .ok(let s):
        usage.totalBytes = s.totalBytes
        usage.availableBytes = s.availableBytes
        usage.usedBytes = s.totalBytes > s.freeBytes ? s.totalBytes - s.freeBytes : 0
        usage.inodesTotal = s.inodesTotal
        usage.inodesUsed = s.inodesTotal > s.inodesFree ? s.inodesTotal - s.inodesFree : 0
        usage.available = true
      case .failed:
        usage.error = "statvfs failed"
      case .timedOut:
        usage.error = "statvfs did not answer within \(mountTimeout) (hung mount)"
      case .stillHung:
        usage.error = "statvfs still hung from an earlier cycle"
      }
      out.append(usage)
    }
    return out
  }

  enum StatOutcome { case ok(FileSystemUsage), failed, timedOut, stillHung }

  /// File systems whose statvfs may wait on a server.
  static let remote: Set<String> = [
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "9p", "fuse.sshfs", "sshfs",
    "afs", "davfs", "fuse.rclone", "fuse.s3fs", "lustre", "gpfs", "beegfs", "fuse",
  ]

  private func stat(_ mountPoint: String, device: String, type: String) -> StatOutcome {
    // A local block device answers at once: ask it on this thread. Remote
    // and unknown file systems get a thread and a time limit.
    if device.hasPrefix("/dev/") && !Self.remote.contains(type) {
      return statfs(mountPoint).map(StatOutcome.ok) ?? .failed
    }
    return statWithTimeout(mountPoint)
  }

  private func statWithTimeout(_ mountPoint: String) -> StatOutcome {
    guard hung.begin(mountPoint) else { return .stillHung }
    let box = StatBox()
    let statfs = self.statfs
    let hung = self.hung
    // statvfs on a dead NFS server blocks in the kernel; it runs on a thread
    // of its own so only that thread waits, and the mount is not asked
    // again until it returns.
    Thread.detachNewThread {
      box.finish(statfs(mountPoint))
      hung.end(mountPoint)
    }
    let ms = mountTimeout.wholeMilliseconds
    guard box.done.wait(timeout: .now() + .milliseconds(Int(ms))) == .success else { return .timedOut }
    guard let usage = box.result.withLock({ $0 }) else { return .failed }
    return .ok(usage)
  }

  /// Mount tables escape space, tab, newline and backslash as octal.
  static func unescape(_ s: Substring) -> String {
    guard s.contains("\\") else { return String(s) }
    var out: [UInt8] = []
    let b = Array(s.utf8)
    var i = 0
    while i < b.count {
      if b[i] == 0x5C, i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
        out.append(v)
        i += 4
      } else {
        out.append(b[i])
        i += 1
      }
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Whole block devices with their cumulative counters.
  public func devices() -> [DiskDevice] {
    guard let stats = files.string("/proc/diskstats") else { return [] }
    let wholeDisks = Set(files.list("/sys/block"))
    var out: [DiskDevice] = []
    for line in stats.split(separator: "\n") {
      let f = line.split(separator: " ")
      guard f.count >= 14 else { continue }
      let name = String(f[2])
      if name.hasPrefix("loop") || name.hasPrefix("ram") { continue }
      if !wholeDisks.isEmpty && !wholeDisks.contains(name) { continue }
      out.append(
        DiskDevice(
          device: name, readsCompleted: f[3].u64, readBytes: f[5].u64 * 512, writesCompleted: f[7].u64,
          writeBytes: f[9].u64 * 512, ioTimeMs: f[12].u64, weightedIoTimeMs: f[13].u64, inFlight: f[11].u64))
    }
    if let smart {
      let readings = smart.readings(for: out.map(\.device).filter { !$0.hasPrefix("zram") && !$0.hasPrefix("dm-") })
      for i in out.indices {
        guard let s = readings[out[i].device] else { continue }
        out[i].smartHealth = s.health
        out[i].smartCheckedUnixMs = s.checkedUnixMs
        out[i].model = s.model
        out[i].serial = s.serial
        out[i].smartTemperatureCelsius = s.temperatureCelsius
        out[i].powerOnHours = s.powerOnHours
      }
    }
    return out
  }
}

/// Mount points whose statvfs is still running.
final class HungMounts: Sendable {
  private let set = Mutex<Set<String>>([])
  /// False when the mount is still being asked.
  func begin(_ m: String) -> Bool { set.withLock { $0.insert(m).inserted } }
  func end(_ m: String) { _ = set.withLock { $0.remove(m) } }
}

final class StatBox: Sendable {
  let result = Mutex<FileSystemUsage?>(nil)
  let done = DispatchSemaphore(value: 0)
  func finish(_ r: FileSystemUsage?) {
    result.withLock { $0 = r }
    done.signal()
  }
}
