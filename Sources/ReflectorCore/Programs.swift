public import Foundation
import MirrorBus

/// Finding and running the external programs the agent reads (smartctl,
/// nvidia-smi), bounded in time.
public enum Programs {
  /// The program's path on PATH (plus the sbin folders), or nil.
  public static func find(_ name: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
    let dirs = (path ?? "").split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin"]
    for dir in dirs where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
      return "\(dir)/\(name)"
    }
    return nil
  }

  /// Runs a program and returns its exit status and standard output, or nil
  /// when it could not start or did not finish within `timeout` (it is then
  /// killed).
  public static func run(_ executable: String, _ arguments: [String], timeout: Duration) -> (
    status: Int32, output: [UInt8]
  )? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    process.standardOutput = out
    process.standardError = FileHandle.nullDevice
    process.standardInput = FileHandle.nullDevice
    do { try process.run() } catch { return nil }
    let reader = out.fileHandleForReading
    let collected = OutputBox()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      collected.set(reader.readDataToEndOfFile())
      done.signal()
    }
    let ms = Int(timeout.wholeMilliseconds)
    if done.wait(timeout: .now() + .milliseconds(ms)) == .timedOut {
      process.terminate()
      kill(process.processIdentifier, SIGKILL)
      process.waitUntilExit()
      return nil
    }
    process.waitUntilExit()
    return (process.terminationStatus, Array(collected.get()))
  }
}

private final class OutputBox: @unchecked Sendable {
  // Written once by the reader thread before `done` is signalled; read
  // after the wait.
  private var data = Data()
  private let lock = NSLock()
  func set(_ d: Data) { lock.withLock { data = d } }
  func get() -> Data { lock.withLock { data } }
}
