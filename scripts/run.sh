#!/usr/bin/env bash
# Runs the whole system locally: a nats-server with JetStream and a PostgreSQL
# cluster in .stack/dev/, every EGO service, and a reflector for this host.
# Installs what it needs; idempotent (what already runs is left running).
#   scripts/run.sh            start everything, show status, follow the logs
#                             (Ctrl-C stops the services; the stack stays)
#   scripts/run.sh --detach   start everything and return
#   scripts/run.sh status     health of every part
#   scripts/run.sh stop       stop the services and the stack
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir="$root/.stack/dev"
mkdir -p "$dir/logs" "$dir/pids"

services=(ingest:9101 command-router:9102 twin-service:9103 notifier:9104 console:9109 reflector:9105
  sim-01:9106 sim-02:9107 sim-03:9108)
console_port=8480

running() { [[ -f "$dir/pids/$1" ]] && kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

stop_services() {
  for entry in "${services[@]}"; do
    name=${entry%%:*}
    if running "$name"; then kill -TERM "$(cat "$dir/pids/$name")" 2>/dev/null || true; fi
  done
  for entry in "${services[@]}"; do
    name=${entry%%:*}
    for _ in $(seq 150); do running "$name" || break; sleep 0.1; done
    if running "$name"; then
      echo "$name did not stop within 15 s of SIGTERM; killing it" >&2
      kill -KILL "$(cat "$dir/pids/$name")" 2>/dev/null || true
    fi
    rm -f "$dir/pids/$name"
  done
}

status() {
  scripts/stack.sh status dev
  for entry in "${services[@]}"; do
    name=${entry%%:*}
    port=${entry##*:}
    if running "$name"; then
      health=$(curl -s --max-time 2 "http://127.0.0.1:$port/healthz" || echo "no answer")
      printf '%-15s pid %-7s http://127.0.0.1:%s  %s\n' "$name" "$(cat "$dir/pids/$name")" "$port" "$health"
    else
      printf '%-15s stopped\n' "$name"
    fi
  done
}

case "${1:-}" in
  stop)
    stop_services
    scripts/stack.sh stop dev
    exit 0
    ;;
  status)
    status
    exit 0
    ;;
esac

scripts/deps.sh run
command -v curl >/dev/null || { apt-get install -y -qq curl >/dev/null 2>&1 || true; }
echo "building (first build on a new machine takes a few minutes)..."
swift build 2>&1 | grep -E "error|warning:|Compiling|Build complete" | grep -v "^\[" || true
bin=$(swift build --show-bin-path)
scripts/stack.sh start dev
eval "$(scripts/stack.sh env dev)"

# The router's signing key (the reflector trusts its public half) and a local
# admin operator's key, made once.
keys="$dir/keys"
mkdir -p "$keys"
[[ -f "$keys/router.key" ]] || "$bin/mirrorctl" keys gen --out "$keys/router" >/dev/null
[[ -f "$keys/admin.key" ]] || "$bin/mirrorctl" keys gen --out "$keys/admin" >/dev/null

# The twin's example inventory, made for this host.
this_host=$(hostname -s | tr -c 'A-Za-z0-9_\n-' '-')
iface=$(ip route show default 2>/dev/null | awk '{print $5; exit}')
sed -e "s/@HOST@/$this_host/g" -e "s/@IFACE@/${iface:-eth0}/g" config/inventory.example.yaml >"$dir/inventory.yaml"

for entry in "${services[@]}"; do
  name=${entry%%:*}
  port=${entry##*:}
  running "$name" && continue
  binary=$name
  [[ $name == sim-* ]] && binary=reflector
  config="$root/config/$binary.yaml"
  args=(--nats-url "$MIRROR_NATS_URL" --database-url "$MIRROR_DATABASE_URL" --http "127.0.0.1:$port")
  [[ -f "$config" ]] && args+=(--config "$config")
  case "$name" in
    command-router) args+=(--set "router.signing-key=$keys/router.key") ;;
    reflector) args+=(--set "commands.router-key=$keys/router.pub" --set "commands.policy=$root/config/commands-policy.yaml") ;;
    notifier) args+=(--set "notifier.rules=$root/config/alert-rules.yaml") ;;
    twin-service) args+=(--set "twin.inventory=$dir/inventory.yaml") ;;
    console) args+=(--set "console.port=$console_port" --set "console.static-dir=$root/Sources/ConsoleCore/Public") ;;
    # Simulated hosts: this machine's metrics under another name, no commands.
    sim-*) args+=(--set "reflector.host=$name" --set "reflector.spool-dir=$dir/spool-$name") ;;
  esac
  MIRROR_LOG_FORMAT=json nohup "$bin/$binary" "${args[@]}" >>"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name"
done

for entry in "${services[@]}"; do
  port=${entry##*:}
  for _ in $(seq 100); do
    curl -sf --max-time 1 "http://127.0.0.1:${port}/healthz" >/dev/null 2>&1 && break
    sleep 0.2
  done
done
echo
status
echo
# The local operator "admin" (role admin), with the key made above.
PGPASSWORD=mirror psql -h 127.0.0.1 -p 15432 -U mirror -d mirror -qtAX -c "
  INSERT INTO users (name, display_name, public_key) VALUES ('admin', 'local operator', decode('$(cat "$keys/admin.pub")', 'base64'))
  ON CONFLICT (name) DO UPDATE SET public_key = EXCLUDED.public_key;
  INSERT INTO user_roles SELECT id, 'admin' FROM users WHERE name = 'admin' ON CONFLICT DO NOTHING;" >/dev/null 2>&1 || true
# The console's first user: admin (role admin), made once; the password is
# kept in .stack/dev/console-admin.password and TOTP is enrolled at the
# first login.
if [[ ! -s "$dir/console-admin.password" ]]; then
  (umask 077 && "$bin/mirrorctl" users add admin --role admin --database-url "$MIRROR_DATABASE_URL" |
    sed -n 's/^password: //p' >"$dir/console-admin.password")
fi
# Live data at a glance: the hosts and their latest values, from Ingest.
sleep 6
"$bin/mirrorctl" top --once --nats-url "$MIRROR_NATS_URL" || true
echo
echo "console: http://127.0.0.1:$console_port/   user: admin   password: $(cat "$dir/console-admin.password")"
echo "  (the first login shows a QR code for your authenticator app; more users: mirrorctl users add NAME --role viewer)"
echo "logs: $dir/logs/   stop: scripts/run.sh stop"
echo "look around: export MIRROR_NATS_URL=$MIRROR_NATS_URL MIRROR_OPERATOR=admin MIRROR_OPERATOR_KEY=$keys/admin.key"
echo "  $bin/mirrorctl hosts | top | query cpu_percent | tail 'metrics.normalized.>' | commands | alerts"
echo "  $bin/mirrorctl twin export --format gltf twin.gltf    (the lab in 3D; open it in any glTF viewer)"
echo "  $bin/mirrorctl exec $(hostname -s | tr -c 'A-Za-z0-9_\n-' '-') -- uptime"

if [[ "${1:-}" == "--detach" ]]; then exit 0; fi
trap 'echo; echo "stopping services (the stack keeps running; scripts/run.sh stop stops it)"; stop_services; exit 0' INT TERM
"$bin/mirrorctl" top --nats-url "$MIRROR_NATS_URL"
