import Foundation
public import MirrorWire

/// Bytes to text without splitting a UTF-8 character between two chunks:
/// an incomplete sequence at the end of one chunk waits for the next.
public struct UTF8Carry: Sendable {
  private var pending: [UInt8] = []
  public init() {}

  public mutating func decode(_ bytes: [UInt8]) -> String {
    var all = pending + bytes
    pending = []
    // Walk back over at most 3 continuation bytes to a lead byte; keep an
    // incomplete character for later.
    var i = all.count - 1
    var back = 0
    while i >= 0, back < 3, all[i] & 0xC0 == 0x80 {
      i -= 1
      back += 1
    }
    if i >= 0 {
      let lead = all[i]
      let need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
      if need > all.count - i {
        pending = Array(all[i...])
        all.removeSubrange(i...)
      }
    }
    return String(decoding: all, as: UTF8.self)
  }
}

/// A session's recording as asciicast v2 (https://docs.asciinema.org):
/// a JSON header line, then `[seconds, "o" | "i" | "r", text]` per chunk
/// of output, input and resize, from the chunks the router stored.
public enum Asciicast {
  public static func render(_ stored: CommandRecordWithOutput) -> String {
    let record = stored.record ?? CommandRecord()
    let action = record.request?.action ?? CommandAction()
    let started =
      record.hosts.first.map { $0.startedAtUnixMs > 0 ? $0.startedAtUnixMs : $0.dispatchedAtUnixMs }
      ?? stored.output.first?.emittedAtUnixMs ?? 0
    struct Header: Encodable {
      var version = 2
      var width: UInt32
      var height: UInt32
      var timestamp: Int64
      var title: String
      var env: [String: String]
    }
    let header = Header(
      width: action.cols > 0 ? action.cols : 80, height: action.rows > 0 ? action.rows : 24,
      timestamp: started / 1000,
      title: "\(record.request?.requester ?? "") on \(record.hosts.first?.host ?? ""): \(record.request?.reason ?? "")",
      env: ["TERM": "xterm-256color", "SHELL": "/bin/sh"])
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    var lines = [String(decoding: (try? encoder.encode(header)) ?? Data(), as: UTF8.self)]
    var carries: [OutputChannel: UTF8Carry] = [:]
    for chunk in stored.output {
      let code: String
      switch chunk.channel {
      case .input: code = "i"
      case .resize: code = "r"
      default: code = "o"
      }
      let text = carries[chunk.channel, default: UTF8Carry()].decode(chunk.data)
      let seconds = Double(max(0, chunk.emittedAtUnixMs - started)) / 1000
      let event = (try? encoder.encode(text)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
      lines.append("[\(String(format: "%.3f", seconds)), \"\(code)\", \(event)]")
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// What a player shows: the "o" events' text, in order.
  public static func output(ofCast cast: String) -> String {
    var out = ""
    for line in cast.split(separator: "\n").dropFirst() {
      guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any], event.count == 3,
        event[1] as? String == "o", let text = event[2] as? String
      else { continue }
      out += text
    }
    return out
  }
}
