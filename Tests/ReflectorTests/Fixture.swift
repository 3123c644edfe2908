import Foundation
import TestSupport

/// Captured and hand-made /proc and /sys trees under Tests/ReflectorTests/Fixtures.
/// `live` was captured from a development VM (2 vCPU, virtio disk, a NIC
/// without a speed); `edge` is hand-made: an offline CPU, cpufreq on some
/// cores, a hung NFS mount, an escaped mount point, a 32-bit counter at its
/// limit, hwmon and thermal sensors, a process name with parentheses.
enum Fixture {
  static func path(_ name: String) -> String {
    Harness.root.appendingPathComponent("Tests/ReflectorTests/Fixtures/\(name)").path
  }

  /// A writable copy, for tests that change files between cycles.
  static func copy(_ name: String) throws -> String {
    let dest = FileManager.default.temporaryDirectory.appendingPathComponent("fixture-\(UUID().uuidString)").path
    try FileManager.default.copyItem(atPath: path(name), toPath: dest)
    return dest
  }

  static func write(_ text: String, to root: String, _ file: String) throws {
    try text.write(toFile: root + file, atomically: true, encoding: .utf8)
  }

  /// A folder holding fake `nvidia-smi` and `smartctl` scripts that print
  /// their real output formats.
  static func fakePrograms() throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fakebin-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let nvidia = """
      #!/bin/sh
      # nvidia-smi --query-gpu=... --format=csv,noheader,nounits (driver 535)
      case "$*" in *--query-gpu=index,uuid,name,utilization.gpu,utilization.memory,memory.total,memory.used,temperature.gpu,power.draw,fan.speed*--format=csv,noheader,nounits*) ;; *) echo "unexpected arguments: $*" >&2; exit 9 ;; esac
      echo "0, GPU-8e6f4f2a-6c2b-2d1e-93a7-6f1d2c3b4a59, NVIDIA GeForce RTX 3090, 35, 12, 24576, 1843, 52, 115.32, 30"
      echo "1, GPU-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d, Tesla T4, [N/A], [N/A], 15360, 0, 38, [N/A], [Not Supported]"
      """
    let smart = """
      #!/bin/sh
      # smartctl --json -H -A -i /dev/X (smartmontools 7.3)
      for last; do :; done
      case "$last" in
      /dev/sda) cat <<'JSON'
      {"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0},"device":{"name":"/dev/sda","type":"sat","protocol":"ATA"},"model_name":"Samsung SSD 870 EVO 1TB","serial_number":"S5Y1NX0R123456","smart_status":{"passed":true},"temperature":{"current":34},"power_on_time":{"hours":8123}}
      JSON
      exit 0 ;;
      /dev/nvme0n1) cat <<'JSON'
      {"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":8},"device":{"name":"/dev/nvme0n1","type":"nvme","protocol":"NVMe"},"model_name":"WDC WDS500G2B0C","serial_number":"2034XX456789","smart_status":{"passed":false},"temperature":{"current":61},"power_on_time":{"hours":30211}}
      JSON
      exit 8 ;;
      *) echo '{"smartctl":{"exit_status":2,"messages":[{"string":"No such device","severity":"error"}]}}'; exit 2 ;;
      esac
      """
    for (name, text) in [("nvidia-smi", nvidia), ("smartctl", smart)] {
      let p = "\(dir)/\(name)"
      try text.write(toFile: p, atomically: true, encoding: .utf8)
      chmod(p, 0o755)
    }
    return dir
  }
}
