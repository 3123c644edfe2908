#!/usr/bin/env bash
# Runs the benchmarks and prints figures and ratios (record them in
# bench/RESULTS.md with this command). Release build; a nats-server of its
# own on a free loopback port, file storage, torn down at the end.
#   bench/run.sh [wire|publish|agent|ingest|notifier|twin|console|console3d|exec|all|chaos]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
# The chaos soak (issue 17) is a script of its own, with a stack of its own
# (a 3-node NATS cluster); minutes long, so not part of `all`.
if [[ $what == chaos ]]; then exec bench/chaos.sh; fi
scripts/deps.sh test >/dev/null
swift build -c release --product MirrorBench 2>&1 | grep -E "error|warning:" || true
bin=$(swift build -c release --show-bin-path)/MirrorBench

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# Nanoseconds of CPU a process (all its threads, living and exited) has
# used: utime + stime from /proc/PID/stat, in clock ticks.
cpu_ns() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) * 1000000000 / hz }' "/proc/$1/stat"; }
# A process's CPU time to the nanosecond, exited threads included: it is
# moved into a cpuacct cgroup of its own where the bench can make one (root,
# cgroup v1 cpuacct mounted); else utime+stime from /proc (10 ms ticks: at
# 60 cycles that is 0.17 ms per cycle, too coarse to compare runs).
cpuacct=/sys/fs/cgroup/cpuacct
meter() {  # PID NAME -> a handle for cpu_of
  local dir="$cpuacct/mirror-bench-$2-$$"
  if [[ -w $cpuacct ]] && mkdir -p "$dir" 2>/dev/null && echo "$1" >"$dir/cgroup.procs" 2>/dev/null; then
    echo "cg:$dir"
  else
    echo "pid:$1"
  fi
}
cpu_of() { case $1 in cg:*) cat "${1#cg:}/cpuacct.usage" ;; pid:*) cpu_ns "${1#pid:}" ;; esac; }
unmeter() { [[ $1 == cg:* ]] && rmdir "${1#cg:}" 2>/dev/null || true; }
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
# Deletes a JetStream stream or consumer: $JS.API.<what>.DELETE.<names>,
# e.g. js_delete PORT STREAM METRICS_NORM, js_delete PORT CONSUMER METRICS.INGEST.
js_delete() {
  python3 - "$1" "$2" "$3" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); f = s.makefile("rb"); f.readline()
s.sendall(b'CONNECT {"verbose":false}\r\nSUB _INBOX.d 1\r\nPUB $JS.API.%s.DELETE.%s _INBOX.d 0\r\n\r\nPING\r\n' % (sys.argv[2].encode(), sys.argv[3].encode()))
while not f.readline().startswith(b"MSG"): pass
f.readline()
PY
}
# A nats-server ($port, $nats_pid) and a PostgreSQL ($pg_port) for the
# parts that need them, started unless an earlier part left them running.
ensure_stack() {
  if [[ -z "${nats_pid:-}" ]] || ! kill -0 "$nats_pid" 2>/dev/null; then
    port=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js-$1" >"$work/nats.log" 2>&1 &
    nats_pid=$!
    wait_port "$port"
  fi
  if [[ ! -d "$work/stack/pg" ]]; then
    pg_port=$(free_port)
    chmod 755 "$work"
    MIRROR_STACK_DIR="$work/stack" MIRROR_PG_PORT=$pg_port scripts/stack.sh start-pg custom >/dev/null
  fi
}
# Release builds of PRODUCTS, the stack, and ingest on it: sets rel, db,
# nats and ingest_pid.
ingest_stack() {  # NAME PRODUCT...
  local name=$1; shift
  for product in "$@"; do
    swift build -c release --product "$product" 2>&1 | grep -E "error|warning:" || true
  done
  rel=$(swift build -c release --show-bin-path)
  ensure_stack "$name"
  db="postgresql://mirror:mirror@127.0.0.1:$pg_port/mirror"
  nats="nats://127.0.0.1:$port"
  [[ -n "${ingest_pid:-}" ]] && kill -0 "$ingest_pid" 2>/dev/null || {
    "$rel/ingest" --nats-url "$nats" --database-url "$db" --http "127.0.0.1:$(free_port)" --log-level error \
      >"$work/ingest.log" 2>&1 &
    ingest_pid=$!
  }
}
work=$(mktemp -d)
cleanup() {
  [[ -n "${ingest_pid:-}" ]] && kill "$ingest_pid" 2>/dev/null
  [[ -n "${notifier_pid:-}" ]] && kill "$notifier_pid" 2>/dev/null
  [[ -n "${console_pid:-}" ]] && kill "$console_pid" 2>/dev/null
  [[ -n "${netdata_pid:-}" ]] && kill "$netdata_pid" 2>/dev/null
  for p in "${router_pid:-}" "${reflector_pid:-}" "${sshd_pid:-}"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done
  [[ -n "${nats_pid:-}" ]] && kill "$nats_pid" 2>/dev/null
  [[ -d "$work/stack/pg" ]] && MIRROR_STACK_DIR="$work/stack" MIRROR_PG_PORT=0 scripts/stack.sh stop custom >/dev/null 2>&1
  wait 2>/dev/null; rm -rf "$work"
}
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
  for round in 1 2 3 4 5; do
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
  # A just-linked executable's pages are dirty in the page cache until
  # written back (~30 s); the agent cannot give back dirty pages after
  # start-up, so its RSS depended on how long ago the build ran. An
  # installed package's files are clean: write this one back first.
  sync "$reflector"
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
  ne_meter=$(meter $ne_pid node-exporter)
  ne_before=$(cpu_of "$ne_meter")
  for _ in $(seq "$scrapes"); do curl -s "http://127.0.0.1:$ne_port/metrics" >/dev/null; sleep 0.5; done
  ne_after=$(cpu_of "$ne_meter")
  ne_rss=$(rss_kib $ne_pid)
  ne_series=$(curl -s "http://127.0.0.1:$ne_port/metrics" | grep -vc '^#')
  kill $ne_pid; wait $ne_pid 2>/dev/null || true
  unmeter "$ne_meter"

  # The agent at 500 ms (the same cadence as the scrapes) for the same time.
  "$reflector" run --nats-url "nats://127.0.0.1:$port" --http "127.0.0.1:$(free_port)" --log-level warning \
    --set reflector.interval=500ms --set reflector.host=bench ${BENCH_REFLECTOR_ARGS:-} >"$work/reflector.log" 2>&1 &
  rf_pid=$!
  sleep 3  # start-up and the first cycles
  rf_meter=$(meter $rf_pid reflector)
  rf_before=$(cpu_of "$rf_meter")
  count_before=$(stream_messages "$port" METRICS)
  sleep "$seconds"
  rf_after=$(cpu_of "$rf_meter")
  rf_rss=$(rss_kib $rf_pid)
  count_after=$(stream_messages "$port" METRICS)
  kill -TERM $rf_pid; wait $rf_pid 2>/dev/null || true
  unmeter "$rf_meter"
  echo "agent.cpu_meter ${rf_meter%%:*}  (cg: cpuacct cgroup, ns; pid: /proc ticks)"
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

if [[ $what == ingest || $what == all ]]; then
  # Ingest (release build) against a nats-server and a PostgreSQL of its own:
  # (1) a backlog of a simulated fleet drained as fast as it goes, rows/s
  #     against psql's \copy of the very same rows into the same tables;
  # (2) live fleets of growing size, lag from collection to the batch's
  #     NormalizedBatch (published after the commit): the largest fleet whose
  #     worst lag stays under 5 s.
  swift build -c release --product ingest 2>&1 | grep -E "error|warning:" || true
  ingest=$(swift build -c release --show-bin-path)/ingest
  [[ -n "${nats_pid:-}" ]] && { kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true; }
  port=$(free_port)
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$work/js-ingest" >"$work/nats.log" 2>&1 &
  nats_pid=$!
  wait_port "$port"
  pg_port=$(free_port)
  chmod 755 "$work"
  MIRROR_STACK_DIR="$work/stack" MIRROR_PG_PORT=$pg_port scripts/stack.sh start-pg custom >/dev/null
  db="postgresql://mirror:mirror@127.0.0.1:$pg_port/mirror"
  sql() { PGPASSWORD=mirror psql -h 127.0.0.1 -p "$pg_port" -U mirror -d mirror -qtAX "$@"; }
  # The same conditions for both loads of a round. No autovacuum: Ingest's
  # commits make new rows visible during its load, so autovacuum ANALYZEs
  # the growing partitions while it runs (a tenth of the machine), while
  # psql's one-transaction load defers all of it until after its clock
  # stops (and into the next load). A checkpoint before each load and room
  # for a whole load's WAL: a checkpoint in the middle of one load (and the
  # full-page images every index page then writes again) fell on one side
  # or the other at random.
  sql -c "ALTER SYSTEM SET autovacuum = off" -c "ALTER SYSTEM SET max_wal_size = '16GB'" \
    -c "ALTER SYSTEM SET checkpoint_timeout = '1h'" -c "SELECT pg_reload_conf()" >/dev/null
  tables="metrics_cpu metrics_memory metrics_network metrics_disk metrics_mount metrics_gpu metrics_temperature metrics_process"
  rows() { sql -c "SELECT $(for t in $tables; do printf '(SELECT count(*) FROM %s)+' "$t"; done)0"; }
  # Waits for Ingest's first commit and then for all $1 batches stored,
  # printing "first t0 t1" (batches stored at the first sight, and the two
  # times): one Python process polling /metrics every 20 ms, not a curl
  # per poll (a process start each 50 ms took CPU from the load it timed).
  drained() {
    python3 - "$ingest_http" "$1" <<'PY'
import http.client, sys, time
port, total = int(sys.argv[1]), int(sys.argv[2])
def stored():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        for line in c.getresponse().read().split(b"\n"):
            if line.startswith(b"ingest_batches_stored_total"):
                return int(float(line.split()[-1]))
    except (OSError, http.client.HTTPException):
        pass
    return 0
while (first := stored()) == 0:
    time.sleep(0.02)
t0 = time.time()
while stored() < total:
    time.sleep(0.02)
print(first, t0, time.time())
PY
  }
  start_ingest() {
    ingest_http=$(free_port)
    "$ingest" --nats-url "nats://127.0.0.1:$port" --database-url "$db" --http "127.0.0.1:$ingest_http" \
      --log-level error --set storage.maintenance-interval=1h ${BENCH_INGEST_ARGS:-} >>"$work/ingest.log" 2>&1 &
    ingest_pid=$!
  }
  stop_ingest() { kill -TERM "$ingest_pid"; wait "$ingest_pid" 2>/dev/null || true; ingest_pid=; }
  # Streams and tables first, then the backlog with Ingest stopped.
  # Ingest stays up until its storage maintenance has run once (today's
  # partitions made): the loads measure a system in service, not its first
  # minute (rows into the DEFAULT partition and then moved).
  start_ingest
  for _ in $(seq 300); do
    curl -s "http://127.0.0.1:$ingest_http/metrics" | grep -q '^ingest_maintenance_runs_total [1-9]' && break
    sleep 0.2
  done
  stop_ingest
  hosts=${BENCH_BACKLOG_HOSTS:-2000}
  per_host=${BENCH_BACKLOG_PER_HOST:-20}
  total=$((hosts * per_host))
  "$bin" fleet-fill "nats://127.0.0.1:$port" "$hosts" "$per_host"
  # The backlog's stream files written out before the first load (their
  # writeback took CPU from the first round's Ingest only).
  sync
  # Rounds (BENCH_INGEST_ROUNDS, default 7), alternating: Ingest drains
  # the backlog (steady state, from the first commit to the last, start-up
  # excluded), then psql loads the very same rows. Between rounds the
  # consumer is deleted (a new one starts from the first message) and the
  # tables are emptied. The ratio is the median of the rounds' own ratios,
  # each Ingest load against the psql loads just before and just after it
  # (their mean; the first round has only the one after): this 2-core VM
  # runs the same psql load at 260k-420k rows/s from one minute to the
  # next, so each Ingest load is compared with its neighbours only.
  reset() {
    sql -c "TRUNCATE $(echo $tables | tr ' ' ','), ingest_batches, host_latest, metrics_rollup_1h, metrics_rollup_1d"
  }
  ingest_rates=(); psql_rates=(); peaks=(); stored_rows=0
  for round in $(seq "${BENCH_INGEST_ROUNDS:-7}"); do
    if [[ $round -gt 1 ]]; then
      js_delete "$port" CONSUMER METRICS.INGEST
      # Every round stores its normalized batches as in service: without
      # this, the stream would drop the later rounds' as duplicates (same
      # message ids, inside its duplicate window), which is less work
      # than a real deployment does. Ingest declares the stream again.
      js_delete "$port" STREAM METRICS_NORM
      reset
    fi
    sql -c "CHECKPOINT"
    start_ingest
    read -r first t0 t1 < <(drained "$total")
    peaks+=("$(awk '/^VmHWM/ {print $2}' "/proc/$ingest_pid/status")")
    stop_ingest
    stored_rows=$(rows)
    ingest_rates+=("$(python3 -c "print(($total - $first) * $stored_rows / $total / ($t1 - $t0))")")
    if [[ $round == 1 ]]; then
      for t in $tables; do sql -c "\\copy (SELECT * FROM $t) TO '$work/$t.copy'"; done
      for t in $tables; do echo "\\copy $t FROM '$work/$t.copy'"; done >"$work/load.sql"
    fi
    sql -c "TRUNCATE $(echo $tables | tr ' ' ',')"
    sql -c "CHECKPOINT"
    p0=$(date +%s.%N)
    sql -1 -f "$work/load.sql"
    p1=$(date +%s.%N)
    psql_rates+=("$(python3 -c "print($stored_rows / ($p1 - $p0))")")
  done
  echo "ingest.peak_rss_mib $(printf '%s\n' "${peaks[@]}" | sort -n | tail -1 | awk '{printf "%.0f", $1 / 1024}')  (while draining, highest of the rounds)"
  python3 - "$total" "$stored_rows" "${ingest_rates[*]}" "${psql_rates[*]}" <<'PY'
import statistics, sys
total, rows = int(sys.argv[1]), int(sys.argv[2])
ingest_all = [float(x) for x in sys.argv[3].split()]
psql_all = [float(x) for x in sys.argv[4].split()]
ingest, psql = statistics.median(ingest_all), statistics.median(psql_all)
around = [psql_all[0]] + [(a + b) / 2 for a, b in zip(psql_all, psql_all[1:])]
ratios = [i / p for i, p in zip(ingest_all, around)]
print(f"ingest.backlog_batches {total}  ({rows} rows, {rows / total:.0f} per batch)")
print(f"ingest.rows_per_s {ingest:.0f}  (median of {' '.join(f'{x:.0f}' for x in ingest_all)})")
print(f"ingest.batches_per_s {ingest * total / rows:.0f}")
print(f"ingest.psql_copy_rows_per_s {psql:.0f}  (median of {' '.join(f'{x:.0f}' for x in psql_all)}; one transaction each)")
print(f"ingest.rows_ratio_to_psql_copy {statistics.median(ratios):.3f}  (goal >= 0.7; median of the rounds' {' '.join(f'{x:.2f}' for x in ratios)})")
PY
  # Live fleets.
  start_ingest
  sleep 2
  best=0
  for n in ${BENCH_FLEET_SIZES:-1000 2500 5000 10000}; do
    out=$("$bin" fleet-live "nats://127.0.0.1:$port" "$n" "${BENCH_FLEET_INTERVALS:-6}" 5)
    echo "$out" | sed "s/^fleet\./fleet.n$n./"
    max=$(echo "$out" | awk '/lag_max_ms/ {print $2}')
    got=$(echo "$out" | awk '/batches_received/ {print $2 == $4}')
    if [[ "$got" == 1 && "$max" -lt 5000 ]]; then best=$n; fi
  done
  echo "fleet.largest_hosts_with_lag_under_5s $best"
  stop_ingest
fi

if [[ $what == notifier || $what == all ]]; then
  # (1) Rule evaluation alone: 10,000 hosts x 20 rules (the defaults and
  #     five more), one batch each per 5 s interval, five ticks.
  "$bin" alert-eval "${BENCH_ALERT_HOSTS:-10000}" 20
  # (2) A breaching batch published on metrics.normalized to the ntfy
  #     receiver's hands, through a real notifier (release build), NATS and
  #     PostgreSQL; the rule has no hold ("for"), so all of it is overhead.
  swift build -c release --product notifier 2>&1 | grep -E "error|warning:" || true
  notifier=$(swift build -c release --show-bin-path)/notifier
  ensure_stack notifier
  "$bin" alert-latency "nats://127.0.0.1:$port" "$work/receiver.port" "${BENCH_ALERT_SAMPLES:-10}" &
  bench_pid=$!
  until [[ -s "$work/receiver.port" ]]; do sleep 0.1; done
  {
    echo "include-defaults: false"
    echo "channels:"
    echo "  - {name: phone, type: ntfy, url: \"http://127.0.0.1:$(cat "$work/receiver.port")/bench\"}"
    echo "rules:"
    echo "  - {name: hot, kind: threshold, metric: cpu.percent, op: '>', value: 90}"
  } >"$work/rules.yaml"
  notifier_http=$(free_port)
  "$notifier" --nats-url "nats://127.0.0.1:$port" --database-url "postgresql://mirror:mirror@127.0.0.1:$pg_port/mirror" \
    --http "127.0.0.1:$notifier_http" --log-level error --set notifier.rules="$work/rules.yaml" >"$work/notifier.log" 2>&1 &
  notifier_pid=$!
  until curl -sf "http://127.0.0.1:$notifier_http/healthz" >/dev/null; do sleep 0.2; done
  sleep 2  # its consumers bound
  touch "$work/receiver.port.ready"
  wait "$bench_pid"
  echo "notifier.group_wait_ms 500  (the default window in which alerts are grouped; part of the figure)"
  kill -TERM "$notifier_pid"; wait "$notifier_pid" 2>/dev/null || true; notifier_pid=
fi

if [[ $what == twin || $what == all ]]; then
  # The twin at 10,000 nodes and 20,000 links (racks of 38 hosts and two
  # switches, every host on both): layout from scratch, recompute + diff
  # per interval with every host reporting, the diff when one host changes.
  "$bin" twin "${BENCH_TWIN_NODES:-10000}" "${BENCH_TWIN_LINKS:-20000}"
fi

if [[ $what == exec || $what == all ]]; then
  # `echo` on one host through the command path (release command-router,
  # ingest, a reflector on this machine; a nats-server and PostgreSQL of its
  # own) against `ssh 127.0.0.1 echo hi` (Debian's openssh-server on a port
  # of its own, key authentication): a long-lived client (CommandRun, as
  # mirrorctl exec waits), a fresh mirrorctl process each time, and ssh.
  # Then a keystroke's echo in an interactive shell (ours, and ssh -tt),
  # and one command to 1,000 simulated hosts.
  scripts/deps.sh bench >/dev/null
  ingest_stack exec ingest command-router reflector mirrorctl
  # The usual policy, its sessions (if any) replaced by shells of /bin/sh
  # (for the echo measurement).
  {
    awk '/^sessions:/ { skip = 1; next } skip && /^[ \t]/ { next } { skip = 0; print }' config/commands-policy.yaml
    printf 'sessions:\n  shell: true\n  shell_program: /bin/sh\n'
  } >"$work/policy.yaml"
  "$rel/mirrorctl" keys gen --out "$work/router" >/dev/null
  "$rel/mirrorctl" keys gen --out "$work/op" >/dev/null
  "$rel/command-router" --nats-url "$nats" --database-url "$db" --http "127.0.0.1:$(free_port)" --log-level error \
    --set router.signing-key="$work/router.key" >"$work/router.log" 2>&1 &
  router_pid=$!
  "$rel/reflector" --nats-url "$nats" --http "127.0.0.1:$(free_port)" --log-level error --set reflector.host=bench-host \
    --set reflector.spool-dir="$work/spool" --set commands.router-key="$work/router.pub" \
    --set commands.policy="$work/policy.yaml" >"$work/reflector.log" 2>&1 &
  reflector_pid=$!
  # The reflector registered (through ingest) before the first command.
  for _ in $(seq 60); do
    [[ $(psql -qtA "$db" -c "SELECT count(*) FROM hosts WHERE name = 'bench-host'" 2>/dev/null) == 1 ]] && break
    sleep 0.5
  done
  echo "operator password 1" >"$work/op.password"
  "$rel/mirrorctl" users add bench --role admin --password-file "$work/op.password" --database-url "$db" >/dev/null
  psql -q "$db" -c "UPDATE users SET public_key = decode('$(tr -d '\n' <"$work/op.pub")', 'base64') WHERE name = 'bench'"
  n=${BENCH_EXEC_SAMPLES:-300}
  "$bin" exec-latency "$nats" "$work/op.key" bench bench-host "$n" | tee "$work/long.txt"
  # A fresh mirrorctl process each time (connect, sign, submit, wait).
  fresh=()
  for _ in $(seq 50); do
    t0=$(date +%s%N)
    "$rel/mirrorctl" exec bench-host --nats-url "$nats" --user bench --key "$work/op.key" -- echo hi >/dev/null 2>&1
    fresh+=($(( ($(date +%s%N) - t0) / 1000 )))
  done
  # ssh to this machine: sshd on a port of its own, a key of the bench's.
  ssh-keygen -q -t ed25519 -N "" -f "$work/ssh_host" && ssh-keygen -q -t ed25519 -N "" -f "$work/ssh_user"
  cp "$work/ssh_user.pub" "$work/authorized_keys"
  sp=$(free_port)
  mkdir -p /run/sshd
  /usr/sbin/sshd -D -p "$sp" -h "$work/ssh_host" -o ListenAddress=127.0.0.1 -o PermitRootLogin=prohibit-password \
    -o AuthorizedKeysFile="$work/authorized_keys" -o StrictModes=no -o UsePAM=no -o LogLevel=ERROR 2>"$work/sshd.log" &
  sshd_pid=$!
  wait_port "$sp"
  sshs=()
  for _ in $(seq 50); do
    t0=$(date +%s%N)
    ssh -q -p "$sp" -i "$work/ssh_user" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
      "$(id -un)@127.0.0.1" echo hi >/dev/null
    sshs+=($(( ($(date +%s%N) - t0) / 1000 )))
  done
  python3 - "${fresh[*]}" "${sshs[*]}" "$work/long.txt" <<'PY'
import sys
long_p50 = next(float(l.split()[1]) for l in open(sys.argv[3]) if l.startswith("exec.long_lived.p50_ms"))
fresh = sorted(int(x) / 1000 for x in sys.argv[1].split())
ssh = sorted(int(x) / 1000 for x in sys.argv[2].split())
pct = lambda v, p: v[min(len(v) - 1, int(len(v) * p))]
print(f"exec.fresh_mirrorctl.p50_ms {pct(fresh, .5):.1f}  (a new process each time: start, connect, sign, wait; 50 runs)")
print(f"exec.fresh_mirrorctl.p99_ms {pct(fresh, .99):.1f}")
print(f"ssh.p50_ms {pct(ssh, .5):.1f}  (ssh 127.0.0.1 echo hi, key auth, a new connection each time; 50 runs)")
print(f"ssh.p99_ms {pct(ssh, .99):.1f}")
print(f"ratio.ssh_p50_over_long_lived_p50 {pct(ssh, .5) / long_p50:.1f}  (goal >= 20)")
print(f"ratio.ssh_p50_over_fresh_mirrorctl_p50 {pct(ssh, .5) / pct(fresh, .5):.1f}")
PY
  # A keystroke's echo: one byte into an interactive shell (/bin/sh on a
  # PTY) until the PTY's echo of it is back; ours over NATS, then ssh -tt.
  echoes=${BENCH_ECHO_SAMPLES:-200}
  { "$bin" shell-echo "$nats" "$work/op.key" bench bench-host "$echoes" || echo "shell.echo skipped  (exit $?)"; } |
    tee "$work/shell.txt"
  python3 - "$sp" "$work/ssh_user" "$(id -un)" "$echoes" "$work/shell.txt" <<'PY' || echo "ssh.echo skipped  (exit $?)"
import os, select, subprocess, sys, time
port, key, user, count, ours = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
p = subprocess.Popen(
    ["ssh", "-tt", "-q", "-p", port, "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
     "-o", "BatchMode=yes", f"{user}@127.0.0.1", "/bin/sh"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
out, inp = p.stdout.fileno(), p.stdin.fileno()
def skip(why):
    print(f"ssh.echo skipped  ({why})")
    sys.exit(0)
def read_until(want, timeout):
    """Reads output until it contains byte `want` (None: until `timeout` of quiet); the time it came, or None."""
    end = time.perf_counter() + timeout
    while True:
        left = end - time.perf_counter()
        if left <= 0 or not select.select([out], [], [], left)[0]:
            return None
        data = os.read(out, 65536)
        if not data:
            skip("the session ended")
        if want is not None and want in data:
            return time.perf_counter()
        if want is None:
            end = time.perf_counter() + timeout
settle = lambda quiet: read_until(None, quiet)
settle(1.0)  # login, the prompt
letters = b"abcdefghijklmnopqrstuvwxyz"
samples, failures = [], 0
for i in range(count + 20):
    if i and i % 40 == 0:
        os.write(inp, b"\x15")  # Ctrl-U: the line never grows long
        settle(0.05)
    b = letters[i % len(letters)]
    t0 = time.perf_counter()
    os.write(inp, bytes([b]))
    t1 = read_until(b, 1.0)
    if t1 is None:
        failures += 1
    elif i >= 20:
        samples.append((t1 - t0) * 1000)
os.write(inp, b"\x15exit\n")
try:
    p.wait(timeout=5)
except subprocess.TimeoutExpired:
    p.kill()
if not samples:
    skip("no echo came back")
samples.sort()
pct = lambda q: samples[min(len(samples) - 1, int(len(samples) * q))]
print(f"ssh.echo.samples {len(samples)}  (failures {failures}; ssh -tt /bin/sh, one connection, 20 warm-up keystrokes not counted)")
print(f"ssh.echo.p50_ms {pct(.5):.2f}")
print(f"ssh.echo.p99_ms {pct(.99):.2f}")
mine = {l.split()[0]: float(l.split()[1]) for l in open(ours) if l.startswith("shell.echo.p")}
if "shell.echo.p50_ms" in mine:
    print(f"ratio.shell_echo_p50_over_ssh_echo_p50 {mine['shell.echo.p50_ms'] / pct(.5):.1f}")
    print(f"ratio.shell_echo_p99_over_ssh_echo_p99 {mine['shell.echo.p99_ms'] / pct(.99):.1f}")
PY
  kill "$sshd_pid" 2>/dev/null || true
  # One command to many hosts: simulated ones (one process verifies,
  # acks and answers every dispatch as its host's reflector would), in the
  # registry beside bench-host, targeted by name.
  fanout=${BENCH_FANOUT_HOSTS:-1000}
  psql -q "$db" -c "INSERT INTO hosts (name, last_seen_at) SELECT 'sim-' || g, now() FROM generate_series(1, $fanout) g
    ON CONFLICT DO NOTHING"
  "$bin" exec-fanout "$nats" "$work/op.key" bench "$work/router.pub" "$fanout" "${BENCH_FANOUT_RUNS:-5}" ||
    echo "exec.fanout skipped  (exit $?)"
  kill "$reflector_pid" "$router_pid" 2>/dev/null || true
fi

if [[ $what == console3d || $what == all ]]; then
  # The console's 3D view in headless Chromium (software GL: a floor) with
  # the twin's 10,000-node / 20,000-link scene and six diffs in which every
  # host changed, made by a real TwinModel (bench/console_3d.py).
  scene=$(mktemp -d)
  "$bin" twin-scene "$scene" "${BENCH_TWIN_NODES:-10000}" "${BENCH_TWIN_LINKS:-20000}" 6 >/dev/null
  python3 bench/console_3d.py "$scene"
  rm -rf "$scene"
fi

if [[ $what == console || $what == all ]]; then
  # The console (release build) over ingest, a nats-server and a PostgreSQL
  # of its own: (1) the first page load's bytes, ours and Debian's libraries
  # apart, beside Debian's netdata dashboard loaded the same way; (2) a batch
  # published on metrics.raw.<host> until the hosts page shows its value, in
  # headless Chromium; (3) the console's CPU and RSS with 1,000 simulated
  # hosts live and 20 live streams watching the hosts screen.
  ingest_stack console ingest console mirrorctl
  web=$(free_port)
  "$rel/console" --nats-url "$nats" --database-url "$db" --http "127.0.0.1:$(free_port)" --log-level warning \
    --set console.port="$web" --set console.static-dir="$PWD/Sources/ConsoleCore/Public" >"$work/console.log" 2>&1 &
  console_pid=$!
  wait_port "$web"
  url="http://127.0.0.1:$web"
  sleep 2
  echo "bench password" >"$work/bench.password"
  "$rel/mirrorctl" users add bench --role viewer --password-file "$work/bench.password" --database-url "$db" >/dev/null
  read -r cookie _ < <(python3 bench/console_bench.py login "$url" bench "bench password")

  parts=${BENCH_CONSOLE_PARTS:-latency weight load}
  if [[ $parts == *latency* ]]; then
  # (2) first, on a quiet console: one host, a batch every 1.5 s.
  n=${BENCH_CONSOLE_SAMPLES:-200}
  "$bin" console-latency "$nats" 1 100 >/dev/null  # the host registered and shown
  sleep 3
  python3 bench/console_bench.py latency "$url" "$cookie" "$work/published" &
  watcher=$!
  until [[ -f "$work/published.ready" ]]; do sleep 0.2; done
  "$bin" console-latency "$nats" "$n" 1500 >"$work/published"
  touch "$work/published.done"
  wait "$watcher"
  fi

  if [[ $parts == *weight* ]]; then
  # (1) page weight, ours and netdata's.
  python3 bench/console_bench.py weight "$url" "$cookie"
  own=$(find Sources/ConsoleCore/Public -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
  echo "weight.own_files_bytes $own  (uncompressed, every file of Sources/ConsoleCore/Public)"
  if [[ $(id -u) == 0 ]] && ! command -v netdata >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends netdata >/dev/null 2>&1 || true
  fi
  if command -v netdata >/dev/null; then
    nd=$(free_port)
    netdata -D -i 127.0.0.1 -p "$nd" >"$work/netdata.log" 2>&1 &
    netdata_pid=$!
    wait_port "$nd" && sleep 5
    echo "netdata $(dpkg-query -W -f='${Version}' netdata):"
    python3 bench/console_bench.py weight-plain "http://127.0.0.1:$nd/"
    kill "$netdata_pid"; wait "$netdata_pid" 2>/dev/null || true; netdata_pid=
  fi
  fi

  if [[ $parts == *load* ]]; then
  # (3) 1,000 hosts live at 5 s for 2.5 minutes; the console measured over
  # the middle 60 s with 20 streams connected.
  hosts=${BENCH_CONSOLE_HOSTS:-1000}
  "$bin" fleet-live "$nats" "$hosts" 30 5 >"$work/fleet.log" &
  fleet=$!
  sleep 40
  python3 bench/console_bench.py clients "$url" "$cookie" "${BENCH_CONSOLE_CLIENTS:-20}" "$([[ -n "${BENCH_CONSOLE_PERF:-}" ]] && echo 90 || echo 75)" &
  streams=$!
  sleep 10
  c0=$(cpu_ns "$console_pid"); t0=$(date +%s%N)
  peak=0
  for _ in $(seq 60); do sleep 1; r=$(rss_kib "$console_pid"); ((r > peak)) && peak=$r; done
  c1=$(cpu_ns "$console_pid"); t1=$(date +%s%N)
  # BENCH_CONSOLE_PERF=1: where the console's CPU goes (perf, 10 s).
  if [[ -n "${BENCH_CONSOLE_PERF:-}" ]] && command -v perf >/dev/null; then
    perf record -q -F 499 -g -p "$console_pid" -o "$work/perf.data" -- sleep 10 >/dev/null 2>&1
    perf report -q -i "$work/perf.data" --stdio --no-children --sort dso 2>/dev/null | grep -E "^ +[0-9]" | head -12
    perf report -q -i "$work/perf.data" --stdio --children --sort symbol -g none 2>/dev/null | grep -E "^ +[0-9]" |
      grep -v "\[k\]" | head -40
  fi
  wait "$streams"
  echo "console.hosts_live $hosts"
  awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "console.cpu_percent_of_a_core %.2f\n", (c1 - c0) * 100 / (t1 - t0) }'
  echo "console.rss_peak_mib $((peak / 1024))"
  wait "$fleet" || true
  grep -E "fleet\.(batches_received|publish_failures)" "$work/fleet.log" || true
  grep -E '"level":"(warning|error)"' "$work/console.log" | cut -c1-200 | sort | uniq -c | sort -rn | head -5 || true
  fi
  kill -TERM "$console_pid"; wait "$console_pid" 2>/dev/null || true; console_pid=
fi
