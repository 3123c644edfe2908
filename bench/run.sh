#!/usr/bin/env bash
# Runs the benchmarks and prints figures and ratios (record them in
# bench/RESULTS.md with this command). Release build; a nats-server of its
# own on a free loopback port, file storage, torn down at the end.
#   bench/run.sh [wire|publish|agent|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
scripts/deps.sh test >/dev/null
swift build -c release --product MirrorBench 2>&1 | grep -E "error|warning:" || true
bin=$(swift build -c release --show-bin-path)/MirrorBench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# Nanoseconds of CPU a process (all its threads, living and exited) has
# used: utime + stime from /proc/PID/stat, in clock ticks.
cpu_ns() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000000000 / hz }' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# The number of messages in a stream ($JS.API.STREAM.INFO.<name>).
stream_messages() {
  python3 - "$1" "$2" <<'PY'
import json, socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); f = s.makefile("rb"); f.readline()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.i 1\r\nPUB $JS.API.STREAM.INFO.%s _INBOX.i 0\r\n\r\nPING\r\n' % sys.argv[2].encode())
while not f.readline().startswith(b"MSG"): pass
print(json.loads(f.readline())["state"]["messages"])
PY
}
# Creates a stream with a plain NATS request ($JS.API.STREAM.CREATE.<name>).
create_stream() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, socket, sys
port, name, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
f = s.makefile("rb")
f.readline()
cfg = json.dumps({"name": name, "subjects": [subject], "storage": "file", "duplicate_window": 600000000000}).encode()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.b 1\r\nPUB $JS.API.STREAM.CREATE.%s _INBOX.b %d\r\n%s\r\nPING\r\n' % (name.encode(), len(cfg), cfg))
while not f.readline().startswith(b"MSG"):
    pass
f.readline()
PY
}
work=$(mktemp -d)
cleanup() { [[ -n "${nats_pid:-}" ]] && kill "$nats_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
if [[ $what == wire || $what == all ]]; then
  "$bin" wire
fi
if [[ $what == publish || $what == all ]]; then
  cc -O2 -o "$work/js_publish" bench/c/js_publish.c -lnats
  port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  wait_port "$port"
  create_stream "$port" BENCH "bench.>"
  count=${BENCH_PUBLISH_COUNT:-20000}
  "$bin" payload "$work/payload.bin"
  # Alternate C and Swift runs; report the median of three each.
  c_rates=(); swift_lines=()
  for round in 1 2 3; do
    c_rates+=("$("$work/js_publish" "nats://127.0.0.1:$port" "bench.c$round" "$work/payload.bin" "$count")")
    swift_lines+=("$("$bin" publish "nats://127.0.0.1:$port" "bench.swift$round" "$count")")
  done
  python3 - "$count" "${c_rates[@]}" -- "${swift_lines[@]}" <<'PY'
import statistics, sys
args = sys.argv[1:]
count = args[0]
sep = args.index("--")
c = [float(x) for x in args[1:sep] if x]
sw = {}
for block in args[sep + 1:]:
    for line in block.splitlines():
        k, v = line.split()
        sw.setdefault(k, []).append(float(v))
cm = statistics.median(c)
print(f"publish.messages_per_run {count}")
print(f"publish.c_libnats_msgs_per_s {cm:.0f}")
for k in ("publish.swift_blocking_msgs_per_s", "publish.swift_async_msgs_per_s"):
    m = statistics.median(sw[k])
    print(f"{k} {m:.0f}")
    print(f"{k.replace('_msgs_per_s', '')}_ratio_to_c {m / cm:.3f}")
PY
fi

if [[ $what == agent || $what == all ]]; then
  # The reflector and prometheus-node-exporter side by side on this
  # machine: CPU time per collection cycle vs. per scrape, and RSS.
  [[ -x /usr/bin/prometheus-node-exporter ]] ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter >/dev/null
  # The binary as packaged: Swift runtime linked statically.
  swift build -c release --product reflector --static-swift-stdlib 2>&1 | grep -E "error|warning:" || true
  reflector=$(swift build -c release --show-bin-path)/reflector
  seconds=${BENCH_AGENT_SECONDS:-30}
  if [[ -z "${nats_pid:-}" ]]; then
    port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" >"$work/nats.log" 2>&1 &
    nats_pid=$!
    wait_port "$port"
  fi
  create_stream "$port" METRICS "metrics.raw.>"
  create_stream "$port" EVENTS "events.>"

  ne_port=$(free_port)
  /usr/bin/prometheus-node-exporter --web.listen-address="127.0.0.1:$ne_port" >"$work/ne.log" 2>&1 &
  ne_pid=$!
  wait_port "$ne_port"
  for _ in 1 2 3; do curl -s "http://127.0.0.1:$ne_port/metrics" >/dev/null; done  # warm up
  scrapes=$((seconds * 2))
  ne_before=$(cpu_ns $ne_pid)
  for _ in $(seq "$scrapes"); do curl -s "http://127.0.0.1:$ne_port/metrics" >/dev/null; sleep 0.5; done
  ne_after=$(cpu_ns $ne_pid)
  ne_rss=$(rss_kib $ne_pid)
  ne_series=$(curl -s "http://127.0.0.1:$ne_port/metrics" | grep -vc '^#')
  kill $ne_pid

  # The agent at 500 ms (the same cadence as the scrapes) for the same time.
  "$reflector" run --nats-url "nats://127.0.0.1:$port" --http "127.0.0.1:$(free_port)" --log-level warning \
    --set reflector.interval=500ms --set reflector.host=bench >"$work/reflector.log" 2>&1 &
  rf_pid=$!
  sleep 3  # start-up and the first cycles
  rf_before=$(cpu_ns $rf_pid)
  count_before=$(stream_messages "$port" METRICS)
  sleep "$seconds"
  rf_after=$(cpu_ns $rf_pid)
  rf_rss=$(rss_kib $rf_pid)
  count_after=$(stream_messages "$port" METRICS)
  kill -TERM $rf_pid; wait $rf_pid 2>/dev/null || true
  python3 - "$ne_before" "$ne_after" "$scrapes" "$ne_rss" "$ne_series" "$rf_before" "$rf_after" "$count_before" "$count_after" "$rf_rss" <<'PY'
import sys
neb, nea, scrapes, ne_rss, series, rfb, rfa, cb, ca, rf_rss = map(int, sys.argv[1:])
cycles = ca - cb
ne_ms = (nea - neb) / scrapes / 1e6
rf_ms = (rfa - rfb) / cycles / 1e6
print(f"agent.node_exporter_cpu_ms_per_scrape {ne_ms:.2f}  ({scrapes} scrapes, {series} series)")
print(f"agent.reflector_cpu_ms_per_cycle {rf_ms:.2f}  ({cycles} cycles published)")
print(f"agent.cpu_ratio_reflector_to_node_exporter {rf_ms / ne_ms:.3f}  (goal <= 0.2)")
print(f"agent.node_exporter_rss_mib {ne_rss / 1024:.1f}")
print(f"agent.reflector_rss_mib {rf_rss / 1024:.1f}  (goal < 15)")
PY
fi
