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
nats_url="nats://127.0.0.1:$nats_port"

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

nats_running() { [[ -f "$dir/nats.pid" ]] && kill -0 "$(cat "$dir/nats.pid")" 2>/dev/null; }
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
  mkdir -p "$dir/nats"
  nats-server -js -a 127.0.0.1 -p "$nats_port" -m "$nats_mon" -sd "$dir/nats" -n "mirror-$profile" \
    >"$dir/nats.log" 2>&1 &
  echo $! >"$dir/nats.pid"
  wait_port "$nats_port"
  echo "nats-server: $nats_url (monitor http://127.0.0.1:$nats_mon)"
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
    if nats_running; then kill "$(cat "$dir/nats.pid")"; rm -f "$dir/nats.pid"; fi
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
  *) echo "usage: $0 start|start-pg|stop|status|env [dev|test]" >&2; exit 2 ;;
esac
