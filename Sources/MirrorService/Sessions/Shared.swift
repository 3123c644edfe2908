import Synchronization

/// A value behind a lock that closures can capture (a `Mutex` cannot be).
public final class Shared<Value: Sendable>: Sendable {
  private let mutex: Mutex<Value>
  public init(_ value: Value) { mutex = Mutex(value) }
  public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
    try mutex.withLock { v in try body(&v) }
  }
  public var value: Value { mutex.withLock { $0 } }
}
