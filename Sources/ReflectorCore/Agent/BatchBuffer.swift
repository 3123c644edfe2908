import Foundation
import Synchronization

/// Batches waiting for their JetStream ack, oldest first, bounded: when full
/// the oldest is dropped and counted. With a spool folder each batch is also
/// a file until acked, so batches survive an agent restart.
public final class BatchBuffer: Sendable {
  public struct Entry: Sendable, Hashable {
    public var msgID: String
    public var subject: String
    public var payload: [UInt8]

    public init(msgID: String, subject: String, payload: [UInt8]) {
      self.msgID = msgID
      self.subject = subject
      self.payload = payload
    }
  }

  private struct State {
    var entries: [Entry] = []
    var head = 0
    var dropped = 0
  }

  private let state = Mutex(State())
  public let capacity: Int
  private let spool: URL?

  public init(capacity: Int, spoolDirectory: String? = nil) throws {
    self.capacity = max(1, capacity)
    spool = spoolDirectory.map { URL(fileURLWithPath: $0, isDirectory: true) }
    if let spool {
      try FileManager.default.createDirectory(at: spool, withIntermediateDirectories: true)
      try restore(from: spool)
    }
  }

  public var count: Int { state.withLock { $0.entries.count - $0.head } }
  public var dropped: Int { state.withLock { $0.dropped } }

  public func append(_ entry: Entry) {
    if let spool { try? Self.write(entry, to: spool) }
    let evicted = state.withLock { s -> [Entry] in
      s.entries.append(entry)
      var evicted: [Entry] = []
      while s.entries.count - s.head > capacity {
        evicted.append(s.entries[s.head])
        s.head += 1
        s.dropped += 1
      }
      if s.head > 1024 && s.head * 2 > s.entries.count {
        s.entries.removeFirst(s.head)
        s.head = 0
      }
      return evicted
    }
    if let spool { for e in evicted { Self.remove(e, from: spool) } }
  }

  /// The oldest waiting batch.
  public func first() -> Entry? {
    state.withLock { $0.head < $0.entries.count ? $0.entries[$0.head] : nil }
  }

  /// Removes the oldest batch once it is acked (only if it is still `entry`).
  public func removeFirst(_ entry: Entry) {
    let removed = state.withLock { s -> Bool in
      guard s.head < s.entries.count, s.entries[s.head].msgID == entry.msgID else { return false }
      s.head += 1
      return true
    }
    if removed, let spool { Self.remove(entry, from: spool) }
  }

  // Spool files: "<20-digit order>.batch" holding msgID \n subject \n payload.
  private static let order = Atomic<UInt64>(UInt64(Date().timeIntervalSince1970 * 1_000_000))

  private static func fileName(_ e: Entry) -> String {
    let safe = e.msgID.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" }
    return String(safe) + ".batch"
  }

  private static func write(_ e: Entry, to dir: URL) throws {
    let n = order.add(1, ordering: .relaxed).newValue
    var data = Data(String(format: "%020llu\n%@\n%@\n", n, e.msgID, e.subject).utf8)
    data.append(contentsOf: e.payload)
    try data.write(to: dir.appendingPathComponent(fileName(e)), options: .atomic)
  }

  private static func remove(_ e: Entry, from dir: URL) {
    try? FileManager.default.removeItem(at: dir.appendingPathComponent(fileName(e)))
  }

  private func restore(from dir: URL) throws {
    var found: [(UInt64, Entry)] = []
    for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".batch") {
      guard let data = try? Data(contentsOf: dir.appendingPathComponent(name)) else { continue }
      let bytes = [UInt8](data)
      var lines: [[UInt8]] = []
      var start = 0
      for (i, b) in bytes.enumerated() where b == 0x0A && lines.count < 3 {
        lines.append(Array(bytes[start..<i]))
        start = i + 1
      }
      guard lines.count == 3, let n = UInt64(String(decoding: lines[0], as: UTF8.self)) else { continue }
      found.append(
        (
          n,
          Entry(
            msgID: String(decoding: lines[1], as: UTF8.self), subject: String(decoding: lines[2], as: UTF8.self),
            payload: Array(bytes[start...]))
        ))
    }
    let sorted = found.sorted { $0.0 < $1.0 }.map(\.1)
    state.withLock { $0.entries = sorted }
    while count > capacity {
      if let f = first() {
        removeFirst(f)
        state.withLock { $0.dropped += 1 }
      }
    }
  }
}
