public import MirrorWire

#if canImport(Glibc)
  import Glibc
#endif

extension Silence {
  /// Whether this silence mutes `alert` at `nowMs`: not ended, and every
  /// field it sets matches — the alert's id, a rule glob, a host glob. The
  /// Notifier (what it sends) and the console (what it shows) match alike.
  public func mutes(_ alert: Alert, nowMs: Int64) -> Bool {
    endsAtUnixMs > nowMs && (alertId.isEmpty || alertId == alert.id)
      && (rule.isEmpty || fnmatch(rule, alert.rule, 0) == 0) && (host.isEmpty || fnmatch(host, alert.host, 0) == 0)
  }
}
