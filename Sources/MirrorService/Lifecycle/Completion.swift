import Synchronization

/// A one-shot signal between a task that hands work over and the task that
/// does it: `wait()` returns once `finish()` was called — or at once when
/// the waiting task is cancelled, so a shutdown that drops the work never
/// leaves the waiter hanging (which would keep the process from exiting).
public final class Completion: Sendable {
  private let state = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

  public init() {}

  public func wait() async {
    await withTaskCancellationHandler {
      await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
        let already = state.withLock { s -> Bool in
          if s.done { return true }
          s.waiter = c
          return false
        }
        if already { c.resume() }
      }
    } onCancel: {
      finish()
    }
  }

  /// Idempotent: only the first call wakes the waiter.
  public func finish() {
    let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
      s.done = true
      defer { s.waiter = nil }
      return s.waiter
    }
    waiter?.resume()
  }
}

/// Hands a value that is not Sendable (a service's state, owned by one
/// loop) across a task boundary once: the sender must not touch it after.
public final class Handover<Value>: @unchecked Sendable {
  public let value: Value
  public init(_ value: Value) { self.value = value }
}
