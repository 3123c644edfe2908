// libFuzzer target: the reflector's command policy file, and the checks a
// dispatch goes through with the policy read. Built and run by
// bench/fuzz.sh.
import ReflectorCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPolicy(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  guard let policy = try? CommandPolicy.parse(text: text, source: "fuzz.yaml") else { return 0 }
  _ = policy.allows(argv: ["/usr/bin/df", "-h", "/"])
  _ = policy.allows(argv: ["uptime"])
  _ = policy.allows(service: "nginx.service")
  _ = policy.sessions.allowsForward(address: "127.0.0.1", port: 8080)
  return 0
}
