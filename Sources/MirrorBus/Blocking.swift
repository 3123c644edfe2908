import Dispatch
import Foundation
import Synchronization

/// Runs blocking libnats calls off the cooperative thread pool.
enum Blocking {
  /// Runs `body` on a thread of `queue`, or of the shared pool of threads
  /// kept for blocking calls when no queue is given (a serial queue keeps
  /// one consumer's fetches in order).
  static func run<T: Sendable, E: Error>(
    on queue: DispatchQueue? = nil, _ body: @escaping @Sendable () throws(E) -> T
  ) async throws(E) -> T {
    let result: Result<T, E> = await withCheckedContinuation { continuation in
      let job: @Sendable () -> Void = {
        do throws(E) {
          continuation.resume(returning: .success(try body()))
        } catch {
          continuation.resume(returning: .failure(error))
        }
      }
      if let queue { queue.async(execute: job) } else { BlockingThreads.shared.submit(job) }
    }
    return try result.get()
  }
}

/// Threads for blocking calls that stay for the life of the process: a
/// call runs on an idle one, else on a new one (so a long fetch never holds
/// up a publish). Unlike libdispatch's workers they do not exit when idle:
/// a thread that exits runs the exit handlers of what it used (OpenSSL
/// frees the random generator state libnats's inbox names made it create,
/// Foundation its thread data), which both costs time and maps those
/// libraries' code back into a small agent's memory every few seconds.
final class BlockingThreads: Sendable {
  static let shared = BlockingThreads()

  private struct State {
    var jobs: [@Sendable () -> Void] = []
    var next = 0
    /// Threads waiting for a job and not yet promised one.
    var idle = 0
    var threads = 0
  }

  private let state = Mutex(State())
  private let ready = DispatchSemaphore(value: 0)

  /// How many threads the pool holds (for tests).
  var threadCount: Int { state.withLock { $0.threads } }

  func submit(_ job: @escaping @Sendable () -> Void) {
    let spawn = state.withLock { s -> Bool in
      s.jobs.append(job)
      if s.idle > 0 {
        s.idle -= 1
        return false
      }
      s.threads += 1
      return true
    }
    if spawn {
      let thread = Thread { [self] in work() }
      thread.name = "mirrorstage.blocking"
      thread.start()
    }
    ready.signal()
  }

  private func work() {
    while true {
      ready.wait()
      let job = state.withLock { s -> (@Sendable () -> Void) in
        let job = s.jobs[s.next]
        s.next += 1
        if s.next == s.jobs.count {
          s.jobs.removeAll(keepingCapacity: true)
          s.next = 0
        }
        return job
      }
      job()
      state.withLock { $0.idle += 1 }
    }
  }
}
