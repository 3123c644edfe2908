public import MirrorWire

/// Memory and swap from /proc/meminfo.
public struct MemoryCollector {
  let files: SystemFiles

  public init(files: SystemFiles) { self.files = files }

  public func collect() -> MemoryStats? {
    guard let info = files.string("/proc/meminfo") else { return nil }
    var kb: [Substring: UInt64] = [:]
    for line in info.split(separator: "\n") {
      guard let colon = line.firstIndex(of: ":") else { continue }
      let value = line[line.index(after: colon)...].split(separator: " ").first
      kb[line[..<colon]] = value.map { $0.u64 } ?? 0
    }
    func bytes(_ k: Substring) -> UInt64 { (kb[k] ?? 0) * 1024 }
    let total = bytes("MemTotal")
    // Kernels before 3.14 have no MemAvailable: estimate it.
    let available =
      kb["MemAvailable"] != nil ? bytes("MemAvailable") : bytes("MemFree") + bytes("Buffers") + bytes("Cached")
    let swapTotal = bytes("SwapTotal")
    return MemoryStats(
      totalBytes: total, availableBytes: available, usedBytes: total > available ? total - available : 0,
      freeBytes: bytes("MemFree"), cachedBytes: bytes("Cached"), buffersBytes: bytes("Buffers"),
      swapTotalBytes: swapTotal, swapUsedBytes: swapTotal > bytes("SwapFree") ? swapTotal - bytes("SwapFree") : 0)
  }
}
