#!/usr/bin/env bash
# The local stack: a nats-server with JetStream and a PostgreSQL cluster, in
# .stack/<profile>/ inside the checkout, on loopback ports of their own.
#   scripts/stack.sh start [dev|test]   start what is not running (idempotent)
#   scripts/stack.sh stop  [dev|test]   stop both
#   scripts/stack.sh status [dev|test]
#   scripts/stack.sh env   [dev|test]   print the URLs as shell exports
# Profile dev (default): NATS 14222 (monitor 18222), PostgreSQL 15432.
# Profile test: NATS 24222 (monitor 28222), PostgreSQL 25432.
# Profile custom: PostgreSQL only, in $MIRROR_STACK_DIR on $MIRROR_PG_PORT.
# MIRROR_NATS_NODES=3: a cluster of three nats-servers instead of one (client
# ports NATS, NATS+1, NATS+2; routes on NATS+2000...; JetStream on each; the
# services then keep every stream on all three, R3). `env` lists every URL.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cmd=${1:-status}
profile=${2:-dev}
case "$profile" in
  dev) nats_port=14222; nats_mon=18222; pg_port=15432 ;;
  test) nats_port=24222; nats_mon=28222; pg_port=25432 ;;
  # A cluster of a test's own: MIRROR_STACK_DIR and MIRROR_PG_PORT say where.
  custom) nats_port=0; nats_mon=0; pg_port=${MIRROR_PG_PORT:?MIRROR_PG_PORT} ;;
  *) echo "unknown profile $profile" >&2; exit 2 ;;
esac
dir="${MIRROR_STACK_DIR:-$root/.stack/$profile}"
pg_user=mirror
pg_password=mirror
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
database_url="postgresql://$pg_user:$pg_password@127.0.0.1:$pg_port/mirror"
nodes=${MIRROR_NATS_NODES:-1}
[[ $nodes == 1 || $nodes == 3 ]] || { echo "MIRROR_NATS_NODES is 1 or 3" >&2; exit 2; }
if [[ $nodes == 1 ]]; then
  nats_url="nats://127.0.0.1:$nats_port"
else
  nats_url=$(for i in 0 1 2; do printf 'nats://127.0.0.1:%d,' $((nats_port + i)); done)
  nats_url=${nats_url%,}
fi

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Alive and not a zombie (a killed node may wait to be reaped by whoever
# inherited it).
node_running() {
  [[ -f "$dir/nats$1.pid" ]] && ps -o stat= -p "$(cat "$dir/nats$1.pid")" 2>/dev/null | grep -q '^[^Z]'
}
nats_running() {
  if [[ $nodes == 1 ]]; then node_running ""; else node_running 1 && node_running 2 && node_running 3; fi
}
pg_running() { [[ -f "$dir/pg/postmaster.pid" ]] && as_pg "$pg_bin/pg_ctl" -D "$dir/pg" status >/dev/null 2>&1; }

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open" >&2
  return 1
}

start_nats() {
  nats_running && return 0
  if [[ $nodes == 1 ]]; then
    mkdir -p "$dir/nats"
    nats-server -js -a 127.0.0.1 -p "$nats_port" -m "$nats_mon" -sd "$dir/nats" -n "mirror-$profile" \
      >"$dir/nats.log" 2>&1 &
    echo $! >"$dir/nats.pid"
    wait_port "$nats_port"
    echo "nats-server: $nats_url (monitor http://127.0.0.1:$nats_mon)"
    return 0
  fi
  for i in 1 2 3; do start_node "$i"; done
  for i in 0 1 2; do wait_port $((nats_port + i)); done
  echo "nats-server cluster of 3: $nats_url (monitors http://127.0.0.1:$nats_mon..$((nats_mon + 2)))"
}

# One node of the cluster (1, 2 or 3): its own store, routes to all three.
start_node() {
  local i=$1 routes
  node_running "$i" && return 0
  routes=$(for j in 0 1 2; do printf 'nats://127.0.0.1:%d,' $((nats_port + 2000 + j)); done)
  mkdir -p "$dir/nats$i"
  nats-server -js -a 127.0.0.1 -p $((nats_port + i - 1)) -m $((nats_mon + i - 1)) -sd "$dir/nats$i" \
    -n "mirror-$profile-$i" --cluster_name "mirror-$profile" --cluster "nats://127.0.0.1:$((nats_port + 2000 + i - 1))" \
    --routes "${routes%,}" >>"$dir/nats$i.log" 2>&1 &
  echo $! >"$dir/nats$i.pid"
}

stop_nats() {
  local i
  for i in "" 1 2 3; do
    if node_running "$i"; then kill "$(cat "$dir/nats$i.pid")"; fi
    rm -f "$dir/nats$i.pid"
  done
}

start_pg() {
  pg_running && return 0
  mkdir -p "$dir"
  if [[ ! -f "$dir/pg/PG_VERSION" ]]; then
    rm -rf "$dir/pg"
    mkdir -p "$dir/pg"
    printf '%s\n' "$pg_password" >"$dir/pwfile"
    if [[ $(id -u) == 0 ]]; then chown postgres "$dir/pg" "$dir/pwfile"; fi
    chmod 700 "$dir/pg"
    as_pg "$pg_bin/initdb" -D "$dir/pg" -U "$pg_user" --pwfile="$dir/pwfile" -A scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1
    rm -f "$dir/pwfile"
    cat >>"$dir/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = ''
max_connections = 200
fsync = $([[ $profile == dev ]] && echo on || echo off)
synchronous_commit = $([[ $profile == dev ]] && echo on || echo off)
CONF
  fi
  touch "$dir/pg.log"
  if [[ $(id -u) == 0 ]]; then chown postgres "$dir/pg.log"; fi
  as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -t 60 start >/dev/null
  PGPASSWORD=$pg_password psql -h 127.0.0.1 -p "$pg_port" -U "$pg_user" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'mirror'" | grep -q 1 ||
    PGPASSWORD=$pg_password psql -h 127.0.0.1 -p "$pg_port" -U "$pg_user" -d postgres -qc "CREATE DATABASE mirror"
  echo "postgresql: $database_url"
}

case "$cmd" in
  start)
    scripts/deps.sh run >/dev/null
    start_nats
    start_pg
    ;;
  start-pg)
    scripts/deps.sh run >/dev/null
    start_pg
    ;;
  stop)
    stop_nats
    if pg_running; then as_pg "$pg_bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null; fi
    echo "stopped ($profile)"
    ;;
  status)
    nats_running && echo "nats-server: running ($nats_url)" || echo "nats-server: stopped"
    pg_running && echo "postgresql: running ($database_url)" || echo "postgresql: stopped"
    ;;
  env)
    echo "export MIRROR_NATS_URL=$nats_url"
    echo "export MIRROR_DATABASE_URL=$database_url"
    ;;
  # The cluster's nodes one at a time (MIRROR_NATS_NODES=3): for trying a
  # lost node by hand; bench/chaos.sh runs a cluster of its own.
  kill-node)
    i=${3:?node 1, 2 or 3}
    node_running "$i" && kill -9 "$(cat "$dir/nats$i.pid")" && echo "killed node $i"
    ;;
  start-node)
    start_node "${3:?node 1, 2 or 3}"
    wait_port $((nats_port + ${3} - 1))
    ;;
  *) echo "usage: $0 start|start-pg|stop|status|env|kill-node N|start-node N [dev|test]" >&2; exit 2 ;;
esac
