import Dispatch
import Foundation
import Synchronization
import Testing

@testable import MirrorBus

/// The threads that run blocking libnats calls.
@Suite struct BlockingTests {
  /// Three calls that each wait for the other two to start can only finish
  /// if they run at once; later calls reuse the threads, which stay.
  @Test func callsRunAtOnceAndTheThreadsStay() async throws {
    let pool = BlockingThreads()
    let threads = Mutex(Set<pid_t>())
    let started = Mutex(0)
    let release = DispatchSemaphore(value: 0)
    let finished = DispatchSemaphore(value: 0)
    for _ in 0..<3 {
      pool.submit {
        threads.withLock { _ = $0.insert(threadID()) }
        let n = started.withLock { n -> Int in
          n += 1
          return n
        }
        if n == 3 { for _ in 0..<3 { release.signal() } }
        if release.wait(timeout: .now() + 10) == .success { finished.signal() }
      }
    }
    for _ in 0..<3 { #expect(finished.wait(timeout: .now() + 15) == .success, "the three calls ran at once") }
    #expect(pool.threadCount == 3)
    #expect(threads.withLock { $0.count } == 3)
    for _ in 0..<20 {
      let done = DispatchSemaphore(value: 0)
      pool.submit {
        threads.withLock { _ = $0.insert(threadID()) }
        done.signal()
      }
      #expect(done.wait(timeout: .now() + 10) == .success)
    }
    #expect(pool.threadCount == 3, "one call at a time needs no new thread")
    // Idle for longer than libdispatch keeps a worker: the same threads.
    try await Task.sleep(for: .seconds(6))
    let done = DispatchSemaphore(value: 0)
    let tid = Mutex<pid_t>(0)
    pool.submit {
      tid.withLock { $0 = threadID() }
      done.signal()
    }
    #expect(done.wait(timeout: .now() + 10) == .success)
    let id = tid.withLock { $0 }
    #expect(threads.withLock { $0.contains(id) }, "an idle thread stays")
    #expect(FileManager.default.fileExists(atPath: "/proc/self/task/\(id)"))
    #expect(pool.threadCount == 3)
  }
}

/// The calling thread's kernel id (its /proc/self/task entry).
private func threadID() -> pid_t {
  // /proc/thread-self links to "PID/task/TID".
  let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? ""
  return pid_t(link.split(separator: "/").last.flatMap { Int32($0) } ?? -1)
}
