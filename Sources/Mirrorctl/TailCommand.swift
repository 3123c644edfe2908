import ArgumentParser
import Foundation
import MirrorBus
import MirrorWire

struct TailCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tail",
    abstract: "Print the messages on a subject (wildcards allowed), decoded to JSON, one per line.",
    discussion: """
      The type comes from the Mirror-Type header, else from the subject (metrics.raw.* is a MetricsBatch, and so
      on). A payload that does not decode is printed with its size and the error.
      """)

  @OptionGroup var connection: ConnectionOptions
  @Argument(help: "The subject, e.g. metrics.raw.> or commands.result.web1.") var subject: String
  @Option(help: "Stop after this many messages.") var count: Int?
  @Option(help: "Stop after this many seconds.") var seconds: Double?

  func run() async throws {
    let bus = try await connection.connect()
    let subscription = try bus.subscribe(subject)
    try await bus.flush()
    let deadline = seconds.map { ContinuousClock.now + .milliseconds(Int64($0 * 1000)) }
    let stopper = deadline.map { d in
      Task {
        try await Task.sleep(until: d)
        subscription.unsubscribe()
      }
    }
    defer { stopper?.cancel() }
    var seen = 0
    for await message in subscription {
      emit(Decoded.line(message) + "\n")
      seen += 1
      if let count, seen >= count { break }
    }
  }
}

/// Any bus message as one line of JSON.
enum Decoded {
  static let types = Dictionary(uniqueKeysWithValues: allWireMessageTypes.map { ($0.fullName, $0) })

  /// The type a subject carries when a publisher left out Mirror-Type.
  static func type(forSubject subject: String) -> (any WireMessage.Type)? {
    let tokens = subject.split(separator: ".")
    switch (tokens.first, tokens.dropFirst().first) {
    case ("metrics", "raw"): return MetricsBatch.self
    case ("metrics", "normalized"): return NormalizedBatch.self
    case ("metrics", "rejected"): return RpcError.self
    case ("events", _): return Event.self
    case ("commands", "pending"): return CommandRequest.self
    case ("commands", "dispatch"): return CommandDispatch.self
    case ("alerts", _): return Alert.self
    case ("visualization", "updates"): return SceneDiff.self
    default: return nil
    }
  }

  struct Line<M: Encodable>: Encodable {
    var subject: String
    var type: String
    var message: M
  }

  struct Undecodable: Encodable {
    var subject: String
    var type: String?
    var bytes: Int
    var error: String
  }

  static func line(_ m: BusMessage) -> String {
    let type = m.mirrorType.flatMap { types[$0] } ?? type(forSubject: m.subject)
    guard let type else {
      return encode(
        Undecodable(subject: m.subject, type: m.mirrorType, bytes: m.payload.count, error: "unknown message type"))
    }
    return decode(type, m)
  }

  static func decode<M: WireMessage>(_: M.Type, _ m: BusMessage) -> String {
    do {
      return encode(Line(subject: m.subject, type: M.fullName, message: try M(decoding: m.payload)))
    } catch {
      return encode(Undecodable(subject: m.subject, type: M.fullName, bytes: m.payload.count, error: "\(error)"))
    }
  }

  static func encode<T: Encodable>(_ value: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
  }
}
