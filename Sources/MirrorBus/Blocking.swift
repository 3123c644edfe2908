import Dispatch

/// Runs blocking libnats calls off the cooperative thread pool.
enum Blocking {
  /// The queue for blocking calls of every connection; concurrent, so a
  /// long fetch does not hold up a publish.
  static let queue = DispatchQueue(label: "mirrorstage.nats.blocking", attributes: .concurrent)

  static func run<T: Sendable, E: Error>(
    on queue: DispatchQueue = Blocking.queue, _ body: @escaping @Sendable () throws(E) -> T
  ) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
      queue.async {
        do throws(E) {
          continuation.resume(returning: .success(try body()))
        } catch {
          continuation.resume(returning: .failure(error))
        }
      }
    }
    return try result.get()
  }
}
