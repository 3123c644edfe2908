public import MirrorWire

/// hwmon sensors (with their labels) and thermal zones.
public struct TemperatureCollector {
  let files: SystemFiles

  public init(files: SystemFiles) { self.files = files }

  public func collect() -> [TemperatureSensor] {
    var out: [TemperatureSensor] = []
    for hw in files.list("/sys/class/hwmon") {
      let base = "/sys/class/hwmon/\(hw)"
      let chip = files.line("\(base)/name") ?? hw
      for entry in files.list(base) where entry.hasPrefix("temp") && entry.hasSuffix("_input") {
        let prefix = String(entry.dropLast("_input".count))
        guard let milli = files.int("\(base)/\(entry)") else { continue }
        out.append(
          TemperatureSensor(
            source: "hwmon", chip: chip, label: files.line("\(base)/\(prefix)_label") ?? prefix,
            celsius: Double(milli) / 1000, highCelsius: files.int("\(base)/\(prefix)_max").map { Double($0) / 1000 },
            criticalCelsius: files.int("\(base)/\(prefix)_crit").map { Double($0) / 1000 }))
      }
    }
    for zone in files.list("/sys/class/thermal") where zone.hasPrefix("thermal_zone") {
      let base = "/sys/class/thermal/\(zone)"
      guard let milli = files.int("\(base)/temp") else { continue }
      out.append(
        TemperatureSensor(
          source: "thermal_zone", chip: zone, label: files.line("\(base)/type") ?? zone, celsius: Double(milli) / 1000))
    }
    return out
  }
}
