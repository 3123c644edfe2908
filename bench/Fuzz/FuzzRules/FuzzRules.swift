// libFuzzer target: the Notifier's rules file, then an engine built from
// the rules evaluating a few batches, an event and a tick, and each
// channel's message for the alerts. Built and run by bench/fuzz.sh.
import MirrorService
import MirrorWire
import NotifierCore
import TestSupport

/// A batch with every field set (the sample rule), from host `web-1`.
let sample: NormalizedBatch = {
  var n = Sample.make(NormalizedBatch.self)
  n.batch?.host = "web-1"
  return n
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRules(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  guard let doc = try? YAMLValue.parse(text, file: "fuzz.yaml"),
    let rules = try? NotifierRules.parse(doc, environment: ["NTFY_TOKEN": "token"])
  else { return 0 }
  let t0: Int64 = 1_800_000_000_000
  let engine = AlertEngine(rules: rules)
  let meta = HostMeta(labels: ["role": "web"], groups: ["web"])
  engine.setHosts(["web-1": meta], lastSeen: ["web-1": (ms: t0 - 10_000, intervalMs: 5000)])
  for k in 0..<4 {
    var n = sample
    n.batch?.collectedAtUnixMs = t0 + Int64(k) * 5000
    engine.observe(n, nowMs: t0 + Int64(k) * 5000)
  }
  engine.observe(Event(host: "web-1", kind: .smartFailed, severity: .critical, source: "sda"), nowMs: t0 + 20_000)
  engine.tick(nowMs: t0 + 3_600_000)
  let alerts =
    engine.openAlerts + [
      Alert(rule: "r", host: "web-1", severity: .warning, labels: [Label(key: "role", value: "web")])
    ]
  for alert in alerts {
    _ = rules.channels(for: alert, meta: meta)
    for channel in rules.channels {
      _ = MessageFormatter.request(
        for: channel, items: [.init(alert: alert, kind: .firing), .init(alert: alert, kind: .resolved)],
        settings: rules.settings)
    }
  }
  return 0
}
