public import Logging
import Metrics
public import Prometheus
import Synchronization

/// Process-wide logging and metrics, bootstrapped once.
public enum Observability {
  /// The registry `/metrics` renders; every swift-metrics counter, gauge
  /// and timer of the process lands here.
  public static let registry = PrometheusCollectorRegistry()
  private static let bootstrapped = Mutex(false)

  /// Bootstraps swift-log and swift-metrics for `service`; later calls only
  /// return a logger (tests run several services in one process).
  public static func bootstrap(service: String, level: Logger.Level, format: ServiceSettings.LogFormat) -> Logger {
    let first = bootstrapped.withLock { done -> Bool in
      defer { done = true }
      return !done
    }
    if first {
      LoggingSystem.bootstrap { label in
        switch format {
        case .json: JSONLogHandler(label: label, service: service, level: level)
        case .text:
          {
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
          }()
        }
      }
      MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }
    var logger = Logger(label: service)
    logger.logLevel = level
    return logger
  }
}
