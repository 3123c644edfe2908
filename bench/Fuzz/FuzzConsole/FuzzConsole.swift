// libFuzzer target: the console API's request parsing — each endpoint's
// JSON body and the checks made on it, the series query string. Built and
// run by bench/fuzz.sh.
import ConsoleCore
import Foundation
import MirrorWire

/// The first byte picks the endpoint (`ConsoleRequestParsing.Input`), the
/// rest is its body.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConsole(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  guard size > 0 else { return 0 }
  let inputs = ConsoleRequestParsing.Input.allCases
  let input = inputs[Int(data[0]) % inputs.count]
  _ = try? ConsoleRequestParsing.parse(input, Array(UnsafeBufferPointer(start: data + 1, count: size - 1)))
  return 0
}

/// With MIRROR_FUZZ_SEEDS=DIR: writes a seed corpus (bodies as the front
/// end sends them, docs/console.md) into DIR and exits.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzConsoleInitialize(
  _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
  guard let dir = ProcessInfo.processInfo.environment["MIRROR_FUZZ_SEEDS"] else { return 0 }
  let command = CommandRequest(
    id: "c1", target: CommandTarget(kind: .selector, selector: [Label(key: "role", value: "web")]),
    action: CommandAction(argv: ["uptime"]), timeoutMs: 30_000, requester: "ann", reason: "check",
    operatorKeyId: "ann/k1")
  let request = Data(command.encode()).base64EncodedString()
  let signature = Data(repeating: 7, count: 64).base64EncodedString()
  let seeds: [(ConsoleRequestParsing.Input, String)] = [
    (.login, #"{"user":"ann","password":"secret","code":"123456"}"#),
    (.enrol, #"{"code":"123456"}"#),
    (.addKey, #"{"publicKey":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","label":"laptop","code":"123456"}"#),
    (
      .prepare,
      #"{"target":{"kind":"hosts","hosts":["web-1","web-2"]},"action":{"argv":["uptime"]},"reason":"check","keyId":"k1"}"#
    ),
    (
      .prepare,
      #"{"target":{"kind":"selector","selector":"role=web,rack=a"},"action":{"builtin":"restart_service","service":"nginx"},"reason":"r","timeoutSeconds":60,"keyId":"k1","code":"123456"}"#
    ),
    (.prepare, #"{"target":{"kind":"group","group":"web"},"action":{"shell":"df -h"},"reason":"r","keyId":"k1"}"#),
    (
      .prepare,
      #"{"target":{"kind":"hosts","hosts":["web-1"]},"action":{"builtin":"shell","cols":120,"rows":40},"reason":"r","keyId":"k1"}"#
    ),
    (
      .prepare,
      #"{"target":{"kind":"all"},"action":{"builtin":"wake_on_lan","mac":"00:11:22:33:44:55","broadcast":"10.0.0.255"},"reason":"r","keyId":"k1"}"#
    ),
    (.submit, #"{"request":"\#(request)","signature":"\#(signature)"}"#),
    (.submit, #"{"request":"\#(request)"}"#),
    (.acknowledge, #"{"comment":"on it"}"#),
    (.silence, #"{"alertId":"a1","rule":"cpu-high","host":"web-1","comment":"maintenance","minutes":90}"#),
    (.newUser, #"{"name":"bob","role":"operator","password":"correct horse","displayName":"Bob"}"#),
    (.userChange, #"{"role":"viewer","disabled":true,"displayName":"Bob"}"#),
    (.seriesQuery, "metric=cpu_percent&from=1800000000000&to=1800003600000&step=60"),
    (.seriesQuery, "metric=network_rx_bytes_per_second"),
  ]
  for (n, (input, body)) in seeds.enumerated() {
    _ = FileManager.default.createFile(
      atPath: "\(dir)/console-\(n)", contents: Data([input.rawValue] + Array(body.utf8)))
  }
  exit(0)
}
