import Foundation

/// QR codes drawn by Debian's `qrencode` (the console's package depends on
/// it): an SVG of the text, for a phone to scan.
enum QRCode {
  struct Failure: Error, CustomStringConvertible {
    var description: String
  }

  static func svg(_ text: String) async throws -> [UInt8] {
    // A process and its pipe block: off the cooperative pool.
    try await withCheckedThrowingContinuation { continuation in
      DispatchQueue.global().async { continuation.resume(with: Result { try run(text) }) }
    }
  }

  private static func run(_ text: String) throws -> [UInt8] {
    do {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/usr/bin/qrencode")
      // The text as an argument: it is ours (an otpauth URI), never a shell's.
      process.arguments = ["-t", "SVG", "-m", "2", "-s", "6", "-o", "-", text]
      let out = Pipe()
      process.standardOutput = out
      process.standardError = FileHandle.nullDevice
      do {
        try process.run()
      } catch {
        throw Failure(description: "cannot run /usr/bin/qrencode (apt-get install qrencode): \(error)")
      }
      // qrencode answers in milliseconds; one that hangs is stopped.
      let watchdog = DispatchWorkItem { [process] in if process.isRunning { process.terminate() } }
      DispatchQueue.global().asyncAfter(deadline: .now() + 5, execute: watchdog)
      defer { watchdog.cancel() }
      let data = out.fileHandleForReading.readDataToEndOfFile()
      process.waitUntilExit()
      guard process.terminationStatus == 0, !data.isEmpty else {
        throw Failure(description: "qrencode failed with status \(process.terminationStatus)")
      }
      return [UInt8](data)
    }
  }
}
