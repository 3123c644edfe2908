/// The rules that ship with the project; a rules file adds to them (and
/// replaces one by naming a rule the same), unless it says
/// `include-defaults: false`. `notifier defaults` prints this.
public enum DefaultRules {
  public static let yaml = """
    # MIRROR STAGE default alert rules.
    rules:
      - name: host-down
        kind: absence
        intervals: 3            # no batch for 3 of the host's intervals
        severity: critical
        summary: "{{host}} stopped reporting"
      - name: cpu-high
        kind: threshold
        metric: cpu.percent
        op: ">"
        value: 90
        for: 2m
        severity: warning
        summary: "CPU at {{value}} % on {{host}} (above {{threshold}} % for 2 minutes)"
      - name: memory-high
        kind: threshold
        metric: memory.used_percent
        op: ">"
        value: 90
        for: 5m
        severity: warning
        summary: "memory {{value}} % used on {{host}}"
      - name: swap-high
        kind: threshold
        metric: swap.used_percent
        op: ">"
        value: 80
        for: 10m
        severity: info
        summary: "swap {{value}} % used on {{host}}"
      - name: disk-full
        kind: threshold
        metric: disk.used_percent
        op: ">"
        value: 90
        for: 1m
        severity: warning
        summary: "{{series}} is {{value}} % full on {{host}}"
      - name: disk-critical
        kind: threshold
        metric: disk.used_percent
        op: ">"
        value: 97
        for: 1m
        severity: critical
        summary: "{{series}} is {{value}} % full on {{host}}"
      - name: disk-full-soon
        kind: trend
        metric: disk.used_percent
        limit: 100
        horizon: 24h
        window: 6h
        min-samples: 12
        severity: warning
        summary: "{{series}} on {{host}} will be full in about {{value}} h"
      - name: mount-unavailable
        kind: threshold
        metric: disk.unavailable
        op: ">"
        value: 0
        for: 1m
        severity: warning
        summary: "{{series}} on {{host}} does not answer"
      - name: temperature-high
        kind: threshold
        metric: temperature.celsius
        op: ">"
        value: 85
        for: 2m
        severity: warning
        summary: "{{series}} at {{value}} °C on {{host}}"
      - name: gpu-temperature-high
        kind: threshold
        metric: gpu.temperature_celsius
        op: ">"
        value: 85
        for: 2m
        severity: warning
        summary: "GPU {{series}} at {{value}} °C on {{host}}"
      - name: smart-failed
        kind: threshold
        metric: disk.smart_failed
        op: ">"
        value: 0
        severity: critical
        clear-for: 0s
        summary: "SMART health check FAILED for {{series}} on {{host}}"
      - name: smart-failed-event
        kind: event
        events: [smart_failed]
        severity: critical
        summary: "SMART failure reported on {{host}}"
      - name: collector-failing
        kind: threshold
        metric: collector.failed
        op: ">"
        value: 0
        for: 5m
        severity: info
        summary: "the {{series}} collector keeps failing on {{host}}"
      - name: command-failed
        kind: event
        events: [command_failed]
        severity: info
        resolve-after: 10m
        summary: "a command failed on {{host}}"
      - name: cpu-anomaly
        kind: anomaly
        metric: cpu.percent
        z: 5
        alpha: 0.02
        min-samples: 120
        min-deviation: 20
        for: 1m
        severity: info
        summary: "CPU at {{value}} % on {{host}} is far above its usual level"
    """
}
