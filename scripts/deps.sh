#!/usr/bin/env bash
# Installs what a part of the project needs, and nothing when it is there.
#   scripts/deps.sh codegen|build|run|test|bench
# Debian packages through apt-get (run as root, or with sudo), Python test
# tools through pip. Idempotent.
set -euo pipefail

debs=(pkg-config libnats-dev libpq-dev libprotobuf-c-dev libcurl4)
case "${1:-build}" in
  # libprotobuf-dev: google/protobuf/wrappers.proto, which the schema imports.
  codegen) debs+=(protobuf-c-compiler protobuf-compiler libprotobuf-dev) ;;
  build) ;;
  # The console: QR codes for TOTP enrolment (qrencode), the charts
  # (libjs-dygraphs, libjs-three) and the terminal (libjs-term.js: Debian's
  # libjs-xterm ships a stub that loads nothing), served from
  # /usr/share/javascript. util-linux's setsid gives a shell its terminal.
  run) debs+=(nats-server postgresql qrencode libjs-dygraphs libjs-three libjs-term.js curl iproute2 util-linux) ;;
  # The browser tests drive Debian's chromium through chromium-driver.
  test) debs+=(nats-server postgresql protobuf-c-compiler protobuf-compiler libprotobuf-dev lintian binutils
    qrencode libjs-dygraphs libjs-three libjs-term.js chromium chromium-driver curl iproute2 util-linux) ;;
  # The benchmarks' peers: ssh for the command path (bench/run.sh exec).
  bench) debs+=(nats-server postgresql openssh-server openssh-client) ;;
  *) echo "usage: $0 codegen|build|run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

case "${1:-build}" in
  codegen | test)
    if ! python3 -c 'import google.protobuf, sys; sys.exit(0 if google.protobuf.__version__.startswith("4.") else 1)' 2>/dev/null; then
      echo "installing: python protobuf 4.x"
      python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore 'protobuf>=4.21,<5'
    fi
    ;;
esac
case "${1:-build}" in
  test)
    # An independent glTF reader for the TwinService's export; selenium
    # (the console's browser tests) and pyotp (TOTP codes computed by an
    # implementation that is not ours). pysocks comes with selenium
    # (urllib3[socks]); named so the list says all that is installed.
    # nats-py: an independent client and its micro module's response types,
    # to check the services' NATS micro answers.
    if ! python3 -c 'import pygltflib, selenium, pyotp, nats.micro' 2>/dev/null; then
      echo "installing: python pygltflib selenium pyotp nats-py"
      python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore 'pygltflib>=1.16,<2' \
        'selenium>=4.20,<5' 'pyotp>=2.9,<3' pysocks 'nats-py>=2.16,<3'
    fi
    ;;
esac
