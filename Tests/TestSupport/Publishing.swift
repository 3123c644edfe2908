import Foundation
public import MirrorBus
import MirrorService
public import MirrorWire

extension BusConnection {
  /// Publishes a batch as Ingest does: on `metrics.normalized.<host>`, its
  /// message id `<host>:<sequence>`.
  public func publishNormalized(_ n: NormalizedBatch) async throws {
    let host = n.batch?.host ?? ""
    _ = try await jetStreamPublish(
      Subjects.metricsNormalized(host), n, msgID: "\(host):\(n.batch?.sequence ?? 0)")
  }
}
