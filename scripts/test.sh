#!/usr/bin/env bash
# Runs every check: generated code is fresh, the format lint is clean, the
# build has no warnings, and every test passes against a real nats-server and
# PostgreSQL (started here, on loopback ports of their own, and stopped).
# Installs what it needs. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "dependencies"
scripts/deps.sh test

step "generated code"
scripts/generate.sh --check

step "format"
scripts/format.sh --lint

step "k8s and argocd manifests"
scripts/check-manifests.sh

step "build (warnings are errors in our code)"
log=$(mktemp)
trap 'rm -f "$log"; scripts/stack.sh stop test >/dev/null 2>&1 || true' EXIT
swift build --build-tests 2>&1 | tee "$log" | grep -E "error|warning:|Compiling|Build complete" | grep -v "^\[" || true
if grep -E "^$(pwd)/(Sources|Tests|bench)/.*(warning|error):" "$log" | grep -v "/Generated/" | sort -u | grep .; then
  echo "the build has warnings or errors in our code"
  exit 1
fi
grep -q "Build complete" "$log" || { tail -50 "$log"; exit 1; }

step "reflector Debian package"
deb=$(scripts/build-deb.sh | tail -n 1)
scripts/check-deb.sh "$deb"

step "test PostgreSQL"
scripts/stack.sh start-pg test

step "tests"
# One suite at a time: the suites start real servers and processes, and some
# check timing (a collection cadence through a NATS outage, a connect bound);
# run side by side on a small machine they starve each other (~3 min serial).
swift test --skip-build --no-parallel 2>&1 | tee "$log" | grep -vE "^(◇|↳)|started\.$" || true
status=${PIPESTATUS[0]}
if grep -q "✘" "$log" || [[ $status != 0 ]]; then
  echo
  echo "FAILED:"
  grep "✘" "$log" | head -40
  exit 1
fi
