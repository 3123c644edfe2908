public import MirrorWire

/// NVIDIA GPUs through nvidia-smi. No nvidia-smi: no GPU section and no
/// error; it is looked for again every few minutes (a driver installed later).
public final class GPUCollector {
  static let query =
    "--query-gpu=index,uuid,name,utilization.gpu,utilization.memory,memory.total,memory.used,temperature.gpu,power.draw,fan.speed"
  private let path: String?
  private var executable: String?
  private var lastLookup: ContinuousClock.Instant?

  public init(path: String?) { self.path = path }

  public func collect() -> (gpus: [GpuStats], error: String?) {
    if executable == nil, lastLookup.map({ ContinuousClock.now - $0 > .seconds(300) }) ?? true {
      lastLookup = .now
      executable = Programs.find("nvidia-smi", path: path)
    }
    guard let executable else { return ([], nil) }
    guard
      let (status, output) = Programs.run(
        executable, [Self.query, "--format=csv,noheader,nounits"], timeout: .seconds(3))
    else { return ([], "nvidia-smi did not answer within 3s") }
    guard status == 0 else { return ([], "nvidia-smi exited with status \(status)") }
    return (Self.parse(String(decoding: output, as: UTF8.self)), nil)
  }

  /// Parses `--format=csv,noheader,nounits` lines; `[N/A]` and
  /// `[Not Supported]` (and anything unparsable) become absent fields.
  public static func parse(_ csv: String) -> [GpuStats] {
    var out: [GpuStats] = []
    for line in csv.split(whereSeparator: \.isNewline) {
      let f = line.split(separator: ",", omittingEmptySubsequences: false).map {
        $0.trimmingCharacters(in: .whitespaces)
      }
      guard f.count >= 10, let index = UInt32(f[0]) else { continue }
      func number(_ i: Int) -> Double? { f[i].hasPrefix("[") ? nil : Double(f[i]) }
      func mib(_ i: Int) -> UInt64? { number(i).map { UInt64($0 * 1_048_576) } }
      out.append(
        GpuStats(
          index: index, uuid: f[1], name: f[2], utilizationPercent: number(3), memoryUtilizationPercent: number(4),
          memoryTotalBytes: mib(5), memoryUsedBytes: mib(6), temperatureCelsius: number(7), powerDrawWatts: number(8),
          fanSpeedPercent: number(9)))
    }
    return out
  }
}
