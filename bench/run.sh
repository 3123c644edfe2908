#!/usr/bin/env bash
# Runs the benchmarks and prints figures and ratios (record them in
# bench/RESULTS.md with this command). Release build; a nats-server of its
# own on a free loopback port, file storage, torn down at the end.
#   bench/run.sh [wire|publish|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
scripts/deps.sh test >/dev/null
swift build -c release --product MirrorBench 2>&1 | grep -E "error|warning:" || true
bin=$(swift build -c release --show-bin-path)/MirrorBench
work=$(mktemp -d)
cleanup() { [[ -n "${nats_pid:-}" ]] && kill "$nats_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
if [[ $what == wire || $what == all ]]; then
  "$bin" wire
fi
if [[ $what == publish || $what == all ]]; then
  cc -O2 -o "$work/js_publish" bench/c/js_publish.c -lnats
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  python3 - "$port" <<'PY'
import json, socket, sys
# Create the stream with a plain NATS request ($JS.API.STREAM.CREATE).
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
f.readline()  # INFO
cfg = json.dumps({"name": "BENCH", "subjects": ["bench.>"], "storage": "file", "duplicate_window": 600000000000}).encode()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.b 1\r\nPUB $JS.API.STREAM.CREATE.BENCH _INBOX.b %d\r\n%s\r\nPING\r\n' % (len(cfg), cfg))
while True:
    line = f.readline()
    if line.startswith(b"MSG"):
        print("stream:", f.readline().decode().strip()[:60]); break
PY
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
