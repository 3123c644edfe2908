#!/usr/bin/env bash
# Chaos soak (issue 17): the EGO services under a simulated fleet while
# their processes, a NATS node and PostgreSQL are killed in turn; then an
# account of every batch, command and alert against PostgreSQL and the
# files the fleet and a webhook receiver wrote.
#
#   bench/chaos.sh                 (or bench/run.sh chaos)
#
# All on loopback, all its own: a 3-node nats-server JetStream cluster
# (streams R3), a PostgreSQL, release builds of ingest, command-router,
# notifier and twin-service given every NATS URL, a local webhook receiver
# (python3) logging every notification, and `MirrorBench chaos-fleet`:
# CHAOS_HOSTS simulated hosts publishing a batch every 5 s each (retried in
# order until acked, as the reflector) and answering their dispatches (as
# the reflector: verify, ack, run at most once, results under its message
# ids), plus an operator submitting a signed command every ~2 s, alternately
# through commands.submit and the commands.pending stream.
#
# Chaos, at fractions of the run: kill -9 ingest (10 %), command-router
# (20 %), notifier (30 %), twin-service (40 %), each started again 5 s
# later; kill -9 the JetStream meta leader node (50 %), started again 15 s
# later; PostgreSQL restarted with `pg_ctl -m immediate` (70 %).
#
# Environment: CHAOS_SECONDS (300: publishing and submitting), CHAOS_HOSTS
# (50), CHAOS_SETTLE (120: at most this long for what is in flight to land
# after the run), CHAOS_KEEP=1 keeps the work directory (logs, journals).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${CHAOS_SECONDS:-300}
hosts=${CHAOS_HOSTS:-50}
settle=${CHAOS_SETTLE:-120}

scripts/deps.sh bench >/dev/null
build() {
  local out
  if ! out=$(swift build -c release --product "$1" 2>&1); then
    echo "$out" | grep -E "error" | head -20 >&2
    # mirrorctl only makes keys and the operator here: an earlier build of
    # it will do (the services and the fleet must be built from this tree).
    if [[ $1 == mirrorctl && -x $(swift build -c release --show-bin-path)/mirrorctl ]]; then
      echo "chaos.note mirrorctl did not build; using the earlier binary (keys and users only)"
      return 0
    fi
    echo "chaos: the release build of $1 failed" >&2
    exit 1
  fi
  echo "$out" | grep -E "warning:" | grep -v "swift-distributed-tracing" || true
}
for product in ingest command-router notifier twin-service mirrorctl MirrorBench; do build "$product"; done
rel=$(swift build -c release --show-bin-path)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

work=$(mktemp -d /tmp/mirror-chaos.XXXXXX)
chmod 755 "$work"
out="$work/out"
mkdir -p "$out"
declare -A pid=() http=()
nats_pid=("" "" "" "")
bench_pid=""
receiver_pid=""
cleanup() {
  set +e
  [[ -n $bench_pid ]] && kill "$bench_pid" 2>/dev/null
  for s in ingest command-router notifier twin-service; do
    [[ -n ${pid[$s]:-} ]] && kill "${pid[$s]}" 2>/dev/null
  done
  [[ -n $receiver_pid ]] && kill "$receiver_pid" 2>/dev/null
  for s in ingest command-router notifier twin-service; do
    [[ -n ${pid[$s]:-} ]] && wait "${pid[$s]}" 2>/dev/null
  done
  for i in 1 2 3; do [[ -n ${nats_pid[$i]} ]] && kill "${nats_pid[$i]}" 2>/dev/null; done
  [[ -d "$work/stack/pg" ]] && MIRROR_STACK_DIR="$work/stack" MIRROR_PG_PORT=0 scripts/stack.sh stop custom >/dev/null 2>&1
  wait 2>/dev/null
  if [[ -n ${CHAOS_KEEP:-} ]]; then echo "chaos.work_dir $work  (kept: logs, journals)"; else rm -rf "$work"; fi
}
trap cleanup EXIT

t0=""
elapsed() { python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "${t0:-$(date +%s.%N)}"; }
event() {
  local line
  line=$(printf '+%6ss  %s' "$(elapsed)" "$*")
  echo "chaos.event $line"
  echo "$line" >>"$work/timeline.txt"
}

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "chaos.config seconds $seconds, hosts $hosts, settle at most $settle s"

# NATS: three nodes, each with its own store, routes to all three.
client=(0 "$(free_port)" "$(free_port)" "$(free_port)")
route=(0 "$(free_port)" "$(free_port)" "$(free_port)")
mon=(0 "$(free_port)" "$(free_port)" "$(free_port)")
routes="nats://127.0.0.1:${route[1]},nats://127.0.0.1:${route[2]},nats://127.0.0.1:${route[3]}"
nats="nats://127.0.0.1:${client[1]},nats://127.0.0.1:${client[2]},nats://127.0.0.1:${client[3]}"
start_node() {
  local i=$1
  nats-server -js -a 127.0.0.1 -p "${client[$i]}" -m "${mon[$i]}" -sd "$work/nats$i" -n "chaos-$i" \
    --cluster_name chaos --cluster "nats://127.0.0.1:${route[$i]}" --routes "$routes" >>"$work/nats$i.log" 2>&1 &
  nats_pid[$i]=$!
}
# JetStream answering on a node (its /healthz checks JetStream too).
node_ready() { curl -sf "http://127.0.0.1:${mon[$1]}/healthz" >/dev/null 2>&1; }
for i in 1 2 3; do start_node "$i"; done
for i in 1 2 3; do
  wait_port "${client[$i]}"
  for _ in $(seq 300); do node_ready "$i" && break; sleep 0.1; done
done
meta_leader() {
  curl -s "http://127.0.0.1:${mon[1]}/jsz" 2>/dev/null | python3 -c \
    'import json, sys; print(json.load(sys.stdin).get("meta_cluster", {}).get("leader", ""))' 2>/dev/null || true
}

# PostgreSQL: synchronous_commit on, as in production (the custom
# profile's default is off: an immediate restart would lose commits that
# were already reported, and so acked, by design of that setting).
pg_port=$(free_port)
MIRROR_STACK_DIR="$work/stack" MIRROR_PG_PORT=$pg_port scripts/stack.sh start-pg custom >/dev/null
db="postgresql://mirror:mirror@127.0.0.1:$pg_port/mirror"
sql() { PGPASSWORD=mirror psql -h 127.0.0.1 -p "$pg_port" -U mirror -d mirror -qtAX "$@"; }
sql -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null

# Keys: the router's, and an operator's.
"$rel/mirrorctl" keys gen --out "$work/router" >/dev/null
"$rel/mirrorctl" keys gen --out "$work/op" >/dev/null

# The webhook receiver: every POST as one JSON line, answered 200.
python3 - "$work/received.jsonl" "$work/receiver.port" >"$work/receiver.log" 2>&1 <<'PY' &
import http.server, json, sys, threading, time
log = open(sys.argv[1], "a", buffering=1)
lock = threading.Lock()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            log.write(json.dumps({"t": time.time(), "path": self.path, "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(sys.argv[2] + ".tmp", "w").write(str(server.server_address[1]))
__import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
PY
receiver_pid=$!
for _ in $(seq 100); do [[ -s "$work/receiver.port" ]] && break; sleep 0.1; done
cat >"$work/rules.yaml" <<YAML
settings: {group-wait: 500ms, retry-initial: 500ms, retry-max: 5s, max-attempts: 100}
include-defaults: false
channels:
  - {name: hook, type: webhook, url: "http://127.0.0.1:$(cat "$work/receiver.port")/hook"}
rules:
  - {name: chaos-cpu, kind: threshold, metric: cpu.percent, op: '>', value: 90, severity: warning, clear-for: 15s, hosts: ["chaos-*"]}
YAML

# The services: every NATS URL, a fresh HTTP port each start.
start_service() {
  local s=$1 port
  port=$(free_port)
  http[$s]=$port
  local args=(--nats-url "$nats" --http "127.0.0.1:$port" --log-level info)
  case $s in
    ingest) "$rel/ingest" "${args[@]}" --database-url "$db" >>"$work/$s.log" 2>&1 & ;;
    command-router)
      "$rel/command-router" "${args[@]}" --database-url "$db" --set router.signing-key="$work/router.key" \
        >>"$work/$s.log" 2>&1 &
      ;;
    notifier)
      "$rel/notifier" "${args[@]}" --database-url "$db" --set notifier.rules="$work/rules.yaml" \
        >>"$work/$s.log" 2>&1 &
      ;;
    twin-service) "$rel/twin-service" "${args[@]}" >>"$work/$s.log" 2>&1 & ;;
  esac
  pid[$s]=$!
}
healthy() { curl -sf "http://127.0.0.1:${http[$1]}/healthz" >/dev/null 2>&1; }
wait_healthy() {  # SERVICE SECONDS
  local until=$(($(date +%s) + $2))
  while (($(date +%s) < until)); do healthy "$1" && return 0; sleep 0.2; done
  return 1
}
services=(ingest command-router notifier twin-service)
# Ingest first: it applies the migrations the others' tables need.
start_service ingest
wait_healthy ingest 60 || { echo "chaos: ingest did not become healthy" >&2; tail -5 "$work/ingest.log" >&2; exit 1; }
for s in command-router notifier twin-service; do start_service "$s"; done
for s in "${services[@]}"; do
  wait_healthy "$s" 60 || { echo "chaos: $s did not become healthy" >&2; tail -5 "$work/$s.log" >&2; exit 1; }
done

# The fleet registered (the router resolves targets from the registry),
# the operator an admin with the key.
sql -c "INSERT INTO hosts (name, last_seen_at) SELECT 'chaos-' || g, now() FROM generate_series(1, $hosts) g
  ON CONFLICT DO NOTHING"
echo "chaos operator password" >"$work/op.password"
"$rel/mirrorctl" users add chaos --role admin --password-file "$work/op.password" --database-url "$db" >/dev/null
sql -c "UPDATE users SET public_key = decode('$(tr -d '\n' <"$work/op.pub")', 'base64') WHERE name = 'chaos'"
sleep 2  # the notifier's durable consumers bound (it takes new batches only on a first start)
replicas=$(curl -s "http://127.0.0.1:${mon[1]}/jsz?streams=true" | python3 -c '
import json, sys
d = json.load(sys.stdin)
out = []
for a in d.get("account_details", []):
    for s in a.get("stream_detail", []):
        out.append("%s:R%d" % (s["name"], 1 + len((s.get("cluster") or {}).get("replicas") or [])))
print(" ".join(sorted(out)))' || true)
echo "chaos.streams $replicas"

"$rel/MirrorBench" chaos-fleet "$nats" "$work/op.key" chaos "$work/router.pub" "$hosts" "$seconds" "$out" \
  >"$work/fleet.out" 2>"$work/fleet.log" &
bench_pid=$!
for _ in $(seq 600); do [[ -f "$out/ready" ]] && break; sleep 0.1; done
[[ -f "$out/ready" ]] || { echo "chaos: the fleet did not bind its consumers" >&2; tail -5 "$work/fleet.log" >&2; exit 1; }
t0=$(date +%s.%N)
event "fleet of $hosts hosts publishing; operator submitting"

# The chaos schedule: (time, what) in order; restarts are events too.
at() { python3 -c "import sys; print(int(float(sys.argv[1]) * float(sys.argv[2])))" "$seconds" "$1"; }
sleep_until() {  # SECONDS after t0
  local left
  left=$(python3 -c "import sys, time; print(max(0.0, float(sys.argv[1]) + float(sys.argv[2]) - time.time()))" "$t0" "$1")
  sleep "$left"
}
# Logs, in the background, when SERVICE answers /healthz again.
watch_back() {
  local s=$1 since=$2
  (
    for _ in $(seq 600); do healthy "$s" && break; sleep 0.2; done
    if healthy "$s"; then
      event "$s healthy again ($(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$since") s after its start)"
    else
      event "$s NOT healthy 120 s after its start"
    fi
  ) &
}
kill_service() {
  local s=$1 when=$2
  sleep_until "$when"
  kill -9 "${pid[$s]}"
  wait "${pid[$s]}" 2>/dev/null || true
  event "kill -9 $s (pid ${pid[$s]})"
  sleep_until $((when + 5))
  start_service "$s"
  event "$s started again (pid ${pid[$s]})"
  watch_back "$s" "$(date +%s.%N)"
}
kill_service ingest "$(at 0.10)"
kill_service command-router "$(at 0.20)"
kill_service notifier "$(at 0.30)"
kill_service twin-service "$(at 0.40)"

when=$(at 0.50)
sleep_until "$when"
leader=$(meta_leader)
victim=${leader#chaos-}
[[ $victim =~ ^[123]$ ]] || victim=2
kill -9 "${nats_pid[$victim]}"
wait "${nats_pid[$victim]}" 2>/dev/null || true
event "kill -9 nats node chaos-$victim (pid ${nats_pid[$victim]}; JetStream meta leader: ${leader:-unknown})"
sleep_until $((when + 15))
start_node "$victim"
event "nats node chaos-$victim started again (pid ${nats_pid[$victim]})"
(
  since=$(date +%s.%N)
  for _ in $(seq 600); do node_ready "$victim" && break; sleep 0.2; done
  event "nats node chaos-$victim JetStream ready ($(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$since") s after its start)"
) &

when=$(at 0.70)
sleep_until "$when"
event "PostgreSQL: pg_ctl restart -m immediate"
as_pg "$pg_bin/pg_ctl" -D "$work/stack/pg" -l "$work/stack/pg.log" -m immediate -w -t 60 restart >/dev/null
event "PostgreSQL accepting connections again"
(
  since=$(date +%s.%N)
  for _ in $(seq 600); do
    all=1
    for s in "${services[@]}"; do healthy "$s" || all=0; done
    ((all)) && break
    sleep 0.2
  done
  event "every service healthy after the PostgreSQL restart ($(python3 -c "import sys, time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$since") s)"
) &

# The end of the run: the fleet stops collecting and submitting and empties
# its queues; then what is in flight may land, for at most $settle s.
for _ in $(seq $((seconds * 10 + settle * 10))); do [[ -f "$out/drained" ]] && break; sleep 0.1; done
event "run over: publishing and submitting stopped$([[ -f "$out/drained" ]] && echo ", every queue empty" || echo ", queues NOT empty")"
settled=""
deadline=$(($(date +%s) + settle))
while (($(date +%s) < deadline)); do
  acked=$(sort -u "$out/acked.txt" | wc -l)
  stored=$(sql -c "SELECT count(*) FROM ingest_batches WHERE boot_id LIKE 'chaos-%'" 2>/dev/null || echo -1)
  sent=$(grep -vc " unconfirmed " "$out/submitted.txt" || true)
  recorded=$(sql -c "SELECT count(*) FILTER (WHERE state NOT IN ('pending', 'dispatched', 'running')), count(*)
    FROM commands WHERE id LIKE 'chaos-%'" -F ' ' 2>/dev/null || echo "-1 -1")
  queued=$(sql -c "SELECT count(*) FROM notifications WHERE state = 'queued'" 2>/dev/null || echo -1)
  if [[ $stored -ge $acked && "$recorded" == "$sent $sent" && $queued == 0 ]]; then
    settled=yes
    break
  fi
  sleep 1
done
event "settled: ${settled:-no, after $settle s} (batches acked $acked stored $stored; commands final/recorded $recorded of $sent; notifications queued $queued)"
# A last look at the alerts: the notifier's clear-for is 15 s.
sleep 2
touch "$out/stop"
for _ in $(seq 600); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$bench_pid" 2>/dev/null && { echo "chaos: the fleet did not stop within 60 s; killed"; kill -9 "$bench_pid"; }
wait "$bench_pid" || echo "chaos: the fleet exited with $?"
bench_pid=""
cat "$work/fleet.out"

# Which services are still up, and healthy.
up=0
for s in "${services[@]}"; do
  if kill -0 "${pid[$s]}" 2>/dev/null && healthy "$s"; then up=$((up + 1)); else echo "chaos.services.down $s"; fi
done
echo "chaos.services.healthy_at_end $up of ${#services[@]}"
for s in "${services[@]}"; do
  w=$(grep -c '"level":"warning"' "$work/$s.log" || true)
  e=$(grep -cE '"level":"(error|critical)"' "$work/$s.log" || true)
  echo "chaos.logs.$s warnings $w errors $e"
done

# The account.
sql -c "\\copy (SELECT host, boot_id, seq FROM ingest_batches WHERE boot_id LIKE 'chaos-%') TO '$work/db_batches.txt'"
sql -c "\\copy (SELECT host, uptime_seconds, count(*) FROM metrics_cpu WHERE host LIKE 'chaos-%' GROUP BY 1, 2) TO '$work/db_cpu.txt'"
sql -c "\\copy (SELECT id, state, state_reason FROM commands WHERE id LIKE 'chaos-%') TO '$work/db_commands.txt'"
sql -c "\\copy (SELECT command_id, host, state, reason FROM command_targets WHERE command_id LIKE 'chaos-%') TO '$work/db_targets.txt'"
sql -c "\\copy (SELECT id, host, state, firing_at IS NOT NULL, resolved_at IS NOT NULL, extract(epoch FROM started_at) FROM alerts WHERE rule = 'chaos-cpu') TO '$work/db_alerts.txt'"
sql -c "\\copy (SELECT alert_id, kind, state, attempts FROM notifications WHERE channel = 'hook') TO '$work/db_notifications.txt'"
python3 - "$work" "$t0" <<'PY'
import collections, json, sys
work, t0 = sys.argv[1], float(sys.argv[2])
out = f"{work}/out"
def rows(path):
    try:
        return [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
    except FileNotFoundError:
        return []
def words(path):
    try:
        return [line.split() for line in open(path) if line.strip()]
    except FileNotFoundError:
        return []

# Batches: acked by JetStream (the fleet's journal) against PostgreSQL.
acked = {}
for host, boot, seq, ms in words(f"{out}/acked.txt"):
    acked[(host, int(seq))] = int(ms)
keys = {(h, int(s)) for h, b, s in rows(f"{work}/db_batches.txt")}
cpu = {(h, int(s)): int(n) for h, s, n in rows(f"{work}/db_cpu.txt")}
missing = sorted(k for k in acked if k not in keys or k not in cpu)
duplicated = sorted(k for k, n in cpu.items() if n > 1)
once = [k for k in acked if k in keys and cpu.get(k) == 1]
extra = sorted(k for k in keys if k not in acked)
print(f"chaos.batches.published {len(acked)}  (acked by JetStream to the fleet)")
print(f"chaos.batches.stored_once {len(once)}")
print(f"chaos.batches.missing {len(missing)}")
print(f"chaos.batches.duplicated {len(duplicated)}  (hosts/sequences with more than one metrics_cpu row)")
print(f"chaos.batches.stored_not_acked {len(extra)}  (stored, never acked to the fleet)")
for h, s in missing[:10]:
    print(f"chaos.detail.missing {h} seq {s} collected +{acked[(h, s)] / 1000 - t0:.1f}s")
for h, s in duplicated[:10]:
    print(f"chaos.detail.duplicated {h} seq {s} rows {cpu[(h, s)]}")

# Commands: what the operator sent, what the router recorded, what the
# fleet ran.
sent = {}
unconfirmed = []
for cid, mode, targets, outcome, attempts in words(f"{out}/submitted.txt"):
    if outcome == "unconfirmed":
        unconfirmed.append(cid)
    else:
        sent[cid] = (mode, targets.split(","), outcome)
commands = {r[0]: (r[1], r[2] if len(r) > 2 else "") for r in rows(f"{work}/db_commands.txt")}
targets = {(r[0], r[1]): (r[2], r[3] if len(r) > 3 else "") for r in rows(f"{work}/db_targets.txt")}
executed = collections.Counter((c, h) for c, h, _ in words(f"{out}/executed.txt"))
replayed = words(f"{out}/replayed.txt")
final_states = {"succeeded", "failed", "timed_out", "expired", "rejected", "denied"}
final = collections.Counter(commands[c][0] for c in sent if c in commands and commands[c][0] in final_states)
not_final = collections.Counter(commands[c][0] if c in commands else "not_recorded" for c in sent
                                if c not in commands or commands[c][0] not in final_states)
by_mode = collections.Counter(m for m, _, _ in sent.values())
twice = [k for k, n in executed.items() if n > 1]
succeeded_not_run = [k for k, (st, _) in targets.items() if st == "succeeded" and k not in executed]
run_not_succeeded = [k for k in executed if targets.get(k, ("absent",))[0] != "succeeded"]
fmt = lambda c: ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "-"
print(f"chaos.commands.submitted {len(sent)}  (commands.submit {by_mode['submit']}, commands.pending "
      f"{by_mode['pending']}; never confirmed {len(unconfirmed)})")
print(f"chaos.commands.final {sum(final.values())}  ({fmt(final)})")
print(f"chaos.commands.not_final {sum(not_final.values())}  ({fmt(not_final)})")
print(f"chaos.commands.host_runs {sum(executed.values())}  (of {len(targets)} targets recorded)")
print(f"chaos.commands.executed_more_than_once {len(twice)}")
print(f"chaos.commands.redeliveries_refused {len(replayed)}  (dispatches seen again and refused as replays: "
      f"{fmt(collections.Counter(r[3] for r in replayed if len(r) > 3))})")
print(f"chaos.commands.succeeded_but_not_run {len(succeeded_not_run)}")
print(f"chaos.commands.run_but_not_succeeded {len(run_not_succeeded)}")
for c in [c for c in sent if c not in commands or commands[c][0] not in final_states][:10]:
    print(f"chaos.detail.not_final {c} {sent[c][0]} {','.join(sent[c][1])} {commands.get(c, ('not_recorded', ''))}")
for c in sorted(c for c in sent if commands.get(c, ("",))[0] in final_states - {"succeeded"})[:10]:
    hosts = [f"{h}={targets.get((c, h), ('?', ''))[0]}:{targets.get((c, h), ('', ''))[1]}" for h in sent[c][1]]
    print(f"chaos.detail.final_not_succeeded {c} via {sent[c][0]} ({sent[c][2]}): {commands[c][0]} {' '.join(hosts)}")
for k in (twice + run_not_succeeded)[:10]:
    print(f"chaos.detail.run {k[0]} {k[1]} runs {executed[k]} target {targets.get(k)}")
for c in unconfirmed[:10]:
    print(f"chaos.detail.unconfirmed {c} recorded as {commands.get(c, ('not_recorded',))[0]}")

# Alerts: fired (PostgreSQL) against what the receiver got.
alerts = {r[0]: r for r in rows(f"{work}/db_alerts.txt")}
got = collections.defaultdict(collections.Counter)
for line in open(f"{work}/received.jsonl") if __import__("os").path.exists(f"{work}/received.jsonl") else []:
    body = json.loads(json.loads(line)["body"])
    for a in body.get("alerts", []):
        got[a["id"]][a["notification"]] += 1
fired = [i for i, r in alerts.items() if r[3] == "t"]
resolved = [i for i, r in alerts.items() if r[3] == "t" and r[4] == "t"]
notified = [i for i in fired if got[i]["firing"] >= 1]
print(f"chaos.alerts.fired {len(fired)}  (rule chaos-cpu; {len(resolved)} of them resolved)")
print(f"chaos.alerts.notified {len(notified)}")
print(f"chaos.alerts.not_notified {len(fired) - len(notified)}")
print(f"chaos.alerts.notified_twice {sum(1 for i in fired if got[i]['firing'] > 1)}")
print(f"chaos.alerts.resolutions_notified {sum(1 for i in resolved if got[i]['resolved'] >= 1)} of {len(resolved)}"
      f"  (twice: {sum(1 for i in resolved if got[i]['resolved'] > 1)})")
print(f"chaos.alerts.unknown_notified {sum(1 for i in got if i not in alerts)}  (ids the receiver got that are not in the table)")
outbox = collections.Counter(f"{k}/{s}" for _, k, s, _ in rows(f"{work}/db_notifications.txt"))
print(f"chaos.alerts.outbox {fmt(outbox)}")
for i in [i for i in fired if got[i]["firing"] != 1][:10]:
    print(f"chaos.detail.alert {i} {alerts[i][1]} {alerts[i][2]} firing notifications {got[i]['firing']} "
          f"started +{float(alerts[i][5]) - t0:.1f}s")
PY
echo "chaos.timeline:"
sort -t+ -k2 -n "$work/timeline.txt" | sed 's/^/  /'
