import Foundation
import MirrorBus
import MirrorService
public import MirrorWire
import Synchronization

/// Why a message from `metrics.raw.>` was not stored. Duplicates are not
/// rejections: they are acknowledged and counted.
public struct RejectReason: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
  public var rawValue: String
  public init(rawValue: String) { self.rawValue = rawValue }
  public static let tooLarge = RejectReason(rawValue: "too_large")
  public static let malformed = RejectReason(rawValue: "malformed")
  public static let badSubject = RejectReason(rawValue: "bad_subject")
  public static let hostMismatch = RejectReason(rawValue: "host_mismatch")
  public static let unknownHost = RejectReason(rawValue: "unknown_host")
  public static let missingIdentity = RejectReason(rawValue: "missing_identity")
  public static let stale = RejectReason(rawValue: "stale")
  public static let future = RejectReason(rawValue: "future")
  public static let rateLimited = RejectReason(rawValue: "rate_limited")
  public var description: String { rawValue }
}

public struct Rejected: Error, Hashable, Sendable {
  public var reason: RejectReason
  public var message: String
}

/// Checks one raw message before anything is stored: size, decoding, the
/// subject's host against the payload's, a known (or auto-registered) host,
/// the timestamp window, and a per-host token bucket so one noisy host
/// cannot crowd out the others.
public final class BatchValidator: Sendable {
  public struct Settings: Sendable {
    public var maxBytes: Int
    public var maxAge: Duration
    public var maxFuture: Duration
    public var autoRegister: Bool
    /// Token bucket per host: sustained batches per second and burst.
    public var ratePerSecond: Double
    public var burst: Double

    public init(
      maxBytes: Int = WireLimits.defaultMaxMessageBytes, maxAge: Duration = .seconds(3600),
      maxFuture: Duration = .seconds(300), autoRegister: Bool = true, ratePerSecond: Double = 2, burst: Double = 120
    ) {
      self.maxBytes = maxBytes
      self.maxAge = maxAge
      self.maxFuture = maxFuture
      self.autoRegister = autoRegister
      self.ratePerSecond = ratePerSecond
      self.burst = burst
    }
  }

  public let settings: Settings
  private let buckets = Mutex<[String: (tokens: Double, at: Double)]>([:])

  public init(settings: Settings) { self.settings = settings }

  public func validate(subject: String, payload: [UInt8], isKnown: (String) -> Bool, nowMs: Int64) -> Result<
    MetricsBatch, Rejected
  > {
    let parts = subject.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3, parts[0] == "metrics", parts[1] == "raw", Subjects.isValidHostToken(String(parts[2])) else {
      return .failure(Rejected(reason: .badSubject, message: "subject \(subject) is not metrics.raw.<host>"))
    }
    let subjectHost = String(parts[2])
    guard payload.count <= settings.maxBytes else {
      return .failure(Rejected(reason: .tooLarge, message: "\(payload.count) bytes exceeds \(settings.maxBytes)"))
    }
    guard take(subjectHost, nowMs: nowMs) else {
      return .failure(
        Rejected(reason: .rateLimited, message: "host \(subjectHost) exceeds \(settings.ratePerSecond) batches/s"))
    }
    let batch: MetricsBatch
    do {
      batch = try MetricsBatch(decoding: payload, limit: settings.maxBytes)
    } catch {
      return .failure(Rejected(reason: .malformed, message: "\(error)"))
    }
    guard batch.host == subjectHost else {
      return .failure(Rejected(reason: .hostMismatch, message: "payload host '\(batch.host)' published on \(subject)"))
    }
    // The sequence is stored as a bigint.
    guard !batch.bootId.isEmpty, batch.sequence > 0, batch.sequence <= UInt64(Int64.max) else {
      return .failure(Rejected(reason: .missingIdentity, message: "batch has no boot id or no usable sequence"))
    }
    guard settings.autoRegister || isKnown(batch.host) else {
      return .failure(Rejected(reason: .unknownHost, message: "host \(batch.host) is not registered"))
    }
    let ageMs = nowMs - batch.collectedAtUnixMs
    if ageMs > settings.maxAge.wholeMilliseconds {
      return .failure(Rejected(reason: .stale, message: "collected \(ageMs / 1000) s ago (limit \(settings.maxAge))"))
    }
    if -ageMs > settings.maxFuture.wholeMilliseconds {
      return .failure(
        Rejected(reason: .future, message: "collected \(-ageMs / 1000) s in the future (limit \(settings.maxFuture))"))
    }
    return .success(batch)
  }

  private func take(_ host: String, nowMs: Int64) -> Bool {
    let now = Double(nowMs) / 1000
    return buckets.withLock { b in
      var (tokens, at) = b[host] ?? (settings.burst, now)
      tokens = min(settings.burst, tokens + max(0, now - at) * settings.ratePerSecond)
      guard tokens >= 1 else {
        b[host] = (tokens, now)
        return false
      }
      b[host] = (tokens - 1, now)
      return true
    }
  }
}
