import MirrorService
import Testing

/// The hand-over signal the Notifier's and TwinService's consumers wait on.
@Suite struct CompletionTests {
  @Test func waitReturnsOnFinishBeforeOrAfterIt() async {
    let early = Completion()
    early.finish()
    await early.wait()  // already done: returns at once
    let late = Completion()
    let waiter = Task { await late.wait() }
    try? await Task.sleep(for: .milliseconds(50))
    late.finish()
    late.finish()  // a second call is harmless
    await waiter.value
  }

  /// A shutdown that drops the work must not leave the waiter hanging.
  @Test func aCancelledWaiterReturnsWithoutAFinish() async {
    let never = Completion()
    let waiter = Task { await never.wait() }
    try? await Task.sleep(for: .milliseconds(50))
    waiter.cancel()
    await waiter.value
    let cancelledFirst = Task {
      withUnsafeCurrentTask { $0?.cancel() }
      await Completion().wait()
      return true
    }
    #expect(await cancelledFirst.value)
  }
}
