/// The metrics that `metrics.query` serves and the rollups summarise: each
/// is one SQL expression over one raw table, with an optional key (the
/// interface, device, mount or sensor).
public struct MetricDefinition: Sendable, Hashable {
  public var name: String
  public var table: String
  /// SQL over the table's columns; NULL values are not samples.
  public var value: String
  /// SQL giving the series key; `''` for host-wide metrics.
  public var key: String
  public var unit: String
}

public enum MetricCatalog {
  public static let all: [MetricDefinition] = [
    .init(name: "cpu_percent", table: "metrics_cpu", value: "cpu_percent", key: "''", unit: "%"),
    .init(name: "load1", table: "metrics_cpu", value: "load1", key: "''", unit: ""),
    .init(name: "memory_used_percent", table: "metrics_memory", value: "used_percent", key: "''", unit: "%"),
    .init(
      name: "memory_used_bytes", table: "metrics_memory", value: "used_bytes::double precision", key: "''", unit: "B"),
    .init(
      name: "swap_used_percent", table: "metrics_memory",
      value: "CASE WHEN swap_total_bytes > 0 THEN swap_used_bytes * 100.0 / swap_total_bytes ELSE 0 END", key: "''",
      unit: "%"),
    .init(
      name: "network_rx_bytes_per_second", table: "metrics_network", value: "rx_bytes_per_second", key: "interface",
      unit: "B/s"),
    .init(
      name: "network_tx_bytes_per_second", table: "metrics_network", value: "tx_bytes_per_second", key: "interface",
      unit: "B/s"),
    .init(
      name: "network_utilization_percent", table: "metrics_network", value: "utilization_percent", key: "interface",
      unit: "%"),
    .init(name: "disk_read_iops", table: "metrics_disk", value: "read_iops", key: "device", unit: "1/s"),
    .init(name: "disk_write_iops", table: "metrics_disk", value: "write_iops", key: "device", unit: "1/s"),
    .init(
      name: "disk_read_bytes_per_second", table: "metrics_disk", value: "read_bytes_per_second", key: "device",
      unit: "B/s"),
    .init(
      name: "disk_write_bytes_per_second", table: "metrics_disk", value: "write_bytes_per_second", key: "device",
      unit: "B/s"),
    .init(name: "disk_busy_percent", table: "metrics_disk", value: "busy_percent", key: "device", unit: "%"),
    .init(
      name: "mount_used_percent", table: "metrics_mount",
      value: "CASE WHEN available AND total_bytes > 0 THEN used_bytes * 100.0 / total_bytes END", key: "mount_point",
      unit: "%"),
    .init(
      name: "temperature_celsius", table: "metrics_temperature", value: "celsius", key: "chip || '/' || label",
      unit: "°C"),
    .init(
      name: "gpu_utilization_percent", table: "metrics_gpu", value: "utilization_percent", key: "gpu_index::text",
      unit: "%"),
    .init(
      name: "gpu_temperature_celsius", table: "metrics_gpu", value: "temperature_celsius", key: "gpu_index::text",
      unit: "°C"),
  ]

  private static let byName = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

  public static func named(_ name: String) -> MetricDefinition? { byName[name] }
}
