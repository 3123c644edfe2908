import Foundation
import MirrorWire
import TestSupport
import Testing

/// Every message type of the schema, as a test argument.
struct MessageType: CustomTestStringConvertible, Sendable {
  let type: any WireMessage.Type
  var testDescription: String { type.fullName }
  static let all = allWireMessageTypes.map(MessageType.init)
}

private func roundTrip<M: WireMessage>(_: M.Type) throws -> (M, M) {
  let sample = Sample.make(M.self)
  return (sample, try M(decoding: sample.encode()))
}

@Suite struct WireRoundTripTests {
  @Test("every field survives encode and decode", arguments: MessageType.all)
  func fullSample(_ t: MessageType) throws {
    func check<M: WireMessage>(_: M.Type) throws {
      let (sample, decoded) = try roundTrip(M.self)
      #expect(decoded == sample)
      #expect(try sample != M(decoding: []), "the sample must set fields")
    }
    try check(t.type)
  }

  @Test("a message with every field at its default encodes to nothing", arguments: MessageType.all)
  func emptyMessage(_ t: MessageType) throws {
    func check<M: WireMessage>(_: M.Type) throws {
      let empty = try M(decoding: [])
      #expect(empty.encode() == [])
      #expect(try M(decoding: empty.encode()) == empty)
    }
    try check(t.type)
  }

  @Test func optionalFieldsStayAbsent() throws {
    var gpu = GpuStats(index: 1, name: "RTX")
    gpu.temperatureCelsius = 0  // present and zero is not absent
    let decoded = try GpuStats(decoding: gpu.encode())
    #expect(decoded.utilizationPercent == nil)
    #expect(decoded.powerDrawWatts == nil)
    #expect(decoded.temperatureCelsius == 0)
  }

  @Test func splicedEmbeddedMessageDecodesAsTheWhole() throws {
    let full = Sample.make(NormalizedBatch.self)
    var rest = full
    rest.batch = nil
    let raw = try #require(full.batch).encode()
    #expect(raw.count > 127, "a length that needs a two-byte varint")
    let spliced = WireSplice.appendingMessageField(1, raw, to: rest.encode())
    #expect(try NormalizedBatch(decoding: spliced) == full)
    let big = MetricsBatch(
      host: "big", topCpu: (0..<1000).map { ProcessSample(pid: UInt32($0), name: "process number \($0)") })
    #expect(big.encode().count > 16_384, "three-byte varint")
    let bigSpliced = WireSplice.appendingMessageField(1, big.encode(), to: NormalizedBatch(cpuPercent: 5).encode())
    #expect(try NormalizedBatch(decoding: bigSpliced) == NormalizedBatch(batch: big, cpuPercent: 5))
    let small = WireSplice.appendingMessageField(1, MetricsBatch(host: "h").encode(), to: [])
    #expect(try NormalizedBatch(decoding: small).batch?.host == "h")
  }

  @Test func unknownEnumValuesAreKept() throws {
    let alert = Alert(severity: Severity(rawValue: 42))
    #expect(try Alert(decoding: alert.encode()).severity.rawValue == 42)
  }
}

@Suite struct WireBadInputTests {
  static let batch = Sample.make(MetricsBatch.self).encode()

  @Test func truncatedPayloadIsMalformed() {
    #expect(
      throws: WireError(
        code: .malformed, messageType: "mirrorstage.v1.MetricsBatch", size: Self.batch.count - 1,
        limit: WireLimits.defaultMaxMessageBytes)
    ) {
      try MetricsBatch(decoding: Array(Self.batch.dropLast()))
    }
  }

  @Test(
    "garbage is a typed error, never a crash",
    arguments: [
      [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],  // endless varint
      [0x0F],  // field 1 with wire type 7
      [0x0A, 0x7F, 0x41],  // a string claiming 127 bytes, holding 1
      Array("GET / HTTP/1.1\r\n\r\n".utf8),
      [0x32, 0x03, 0x0A, 0x10, 0x00],  // nested message with a bad length
    ] as [[UInt8]])
  func garbage(_ bytes: [UInt8]) {
    let error = #expect(throws: WireError.self) { try MetricsBatch(decoding: bytes) }
    #expect(error?.code == .malformed)
  }

  @Test func oversizedPayloadIsRefusedBeforeParsing() {
    let error = #expect(throws: WireError.self) { try MetricsBatch(decoding: Self.batch, limit: 100) }
    #expect(error?.code == .tooLarge)
    #expect(error?.size == Self.batch.count)
    #expect(error?.description.contains("exceeds the limit of 100 bytes") == true)
  }

  @Test func errorDescriptionNamesTheTypeNotThePayload() {
    let error = WireError(code: .malformed, messageType: "mirrorstage.v1.Event", size: 3, limit: 10)
    #expect(error.description == "mirrorstage.v1.Event: payload of 3 bytes is not a valid encoding")
  }
}

@Suite struct WireInteropTests {
  /// Our bytes decode with Google's Python protobuf to the same sample it
  /// builds independently, and its bytes decode here to ours.
  @Test func googlePythonProtobufAgrees() throws {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("mirror-interop-\(UUID().uuidString)")
    let ours = base.appendingPathComponent("swift")
    let theirs = base.appendingPathComponent("python")
    try FileManager.default.createDirectory(at: ours, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: base) }
    for t in allWireMessageTypes {
      func write<M: WireMessage>(_: M.Type) throws {
        try Data(Sample.make(M.self).encode()).write(to: ours.appendingPathComponent("\(M.fullName).bin"))
      }
      try write(t)
    }
    let script = Harness.root.appendingPathComponent("Tests/interop/interop.py").path
    let (status, output) = try Harness.run("/usr/bin/env", ["python3", script, ours.path, theirs.path])
    #expect(status == 0, "\(output)")
    #expect(output.contains("\(allWireMessageTypes.count) message types checked, 0 failed"), "\(output)")
    for t in allWireMessageTypes {
      func check<M: WireMessage>(_: M.Type) throws {
        let bytes = try [UInt8](Data(contentsOf: theirs.appendingPathComponent("\(M.fullName).bin")))
        #expect(try M(decoding: bytes) == Sample.make(M.self), "\(M.fullName)")
      }
      try check(t)
    }
  }
}
