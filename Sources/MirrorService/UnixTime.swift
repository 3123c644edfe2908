public import Foundation

extension Date {
  /// Milliseconds since the Unix epoch, as the wire's `*_unix_ms` fields
  /// carry them.
  public var unixMilliseconds: Int64 { Int64(timeIntervalSince1970 * 1000) }
}
