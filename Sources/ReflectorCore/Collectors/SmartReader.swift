public import Foundation
public import MirrorService
public import MirrorWire
import Synchronization

/// SMART data from `smartctl --json`, refreshed in the background on a slow
/// cadence (default hourly) and served from a cache in between, so a slow
/// disk never delays a collection cycle.
public final class SmartReader: Sendable {
  public struct Reading: Sendable, Hashable {
    public var health: SmartHealth
    public var checkedUnixMs: Int64
    public var model: String
    public var serial: String
    public var temperatureCelsius: Double?
    public var powerOnHours: UInt64?
  }

  private struct State {
    var cache: [String: Reading] = [:]
    var known: Set<String> = []
    var lastRefresh: ContinuousClock.Instant?
    var refreshing = false
  }

  private let smartctl: String
  private let interval: Duration
  private let devicePrefix: String
  private let state = Mutex(State())

  /// nil when smartctl is not installed: no SMART section, no errors.
  public init?(
    interval: Duration = .seconds(3600), path: String? = ProcessInfo.processInfo.environment["PATH"],
    devicePrefix: String = "/dev/"
  ) {
    guard let smartctl = Programs.find("smartctl", path: path) else { return nil }
    self.smartctl = smartctl
    self.interval = interval
    self.devicePrefix = devicePrefix
  }

  /// The cached readings of `devices`; schedules a background refresh of
  /// every known device when the interval has passed or a device is new.
  public func readings(for devices: [String]) -> [String: Reading] {
    let (readings, due) = state.withLock { s -> ([String: Reading], [String]?) in
      var isNew = false
      for d in devices where s.known.insert(d).inserted { isNew = true }
      let expired = s.lastRefresh.map { ContinuousClock.now - $0 >= interval } ?? true
      return (s.cache, (isNew || expired) && !s.refreshing ? s.known.sorted() : nil)
    }
    if let due { refresh(devices: due) }
    return readings
  }

  /// Reads every device now, on a background thread.
  public func refresh(devices: [String]) {
    let start = state.withLock { s -> Bool in
      if s.refreshing { return false }
      s.refreshing = true
      s.lastRefresh = .now
      return true
    }
    guard start else { return }
    Thread.detachNewThread { [self] in
      var results: [String: Reading] = [:]
      for d in devices { if let r = read(d) { results[d] = r } }
      state.withLock { s in
        for (k, v) in results { s.cache[k] = v }
        s.refreshing = false
      }
    }
  }

  /// Reads one device synchronously (also used by `reflector check`).
  public func read(_ device: String) -> Reading? {
    guard
      let (status, output) = Programs.run(
        smartctl, ["--json", "-H", "-A", "-i", devicePrefix + device], timeout: .seconds(20))
    else {
      return nil
    }
    return Self.parse(output, exitStatus: status)
  }

  /// Parses `smartctl --json` output. Bit 3 of the exit status means "disk
  /// failing"; smart_status.passed is the verdict when present.
  public static func parse(_ json: [UInt8], exitStatus: Int32, now: Int64 = Date().unixMilliseconds)
    -> Reading?
  {
    guard let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] else { return nil }
    var health = SmartHealth.unknown
    if let status = object["smart_status"] as? [String: Any], let passed = status["passed"] as? Bool {
      health = passed ? .passed : .failed
    } else if exitStatus & 0x08 != 0 {
      health = .failed
    }
    let temperature = (object["temperature"] as? [String: Any])?["current"] as? Double
    let hours = ((object["power_on_time"] as? [String: Any])?["hours"] as? NSNumber)?.uint64Value
    return Reading(
      health: health, checkedUnixMs: now, model: object["model_name"] as? String ?? "",
      serial: object["serial_number"] as? String ?? "", temperatureCelsius: temperature, powerOnHours: hours)
  }
}
