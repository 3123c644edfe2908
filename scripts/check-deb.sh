#!/usr/bin/env bash
# Checks a built reflector package: lintian reports no errors or warnings;
# unpacked into a scratch root it holds the expected files, conffiles and
# maintainer scripts; its binary runs there; systemd-analyze verifies the unit.
#   scripts/check-deb.sh dist/mirror-stage-reflector_<v>_<arch>.deb
set -euo pipefail
deb=${1:?usage: $0 PACKAGE.deb}
command -v lintian >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq lintian >/dev/null
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

lint=$(lintian --fail-on error,warning --tag-display-limit 0 "$deb" 2>&1 | grep -v "root privileges" || true)
check "lintian: no errors or warnings" '[[ -z "$lint" ]] || { echo "$lint"; false; }'

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
dpkg-deb -x "$deb" "$scratch/root"
dpkg-deb -e "$deb" "$scratch/control"
r="$scratch/root"
check "binary installed, executable" '[[ -x $r/usr/bin/reflector ]]'
sections=$(readelf -SW "$r/usr/bin/reflector")
needed=$(objdump -p "$r/usr/bin/reflector" | awk '/NEEDED/ {print $2}')
check "binary stripped (no symbol table, no debug info)" '[[ "$sections" != *" .symtab "* && "$sections" != *".debug_info"* ]]'
check "no Swift runtime needed on the host" '[[ "${needed,,}" != *swift* ]]'
check "systemd unit" '[[ -f $r/lib/systemd/system/mirror-stage-reflector.service ]]'
check "default configuration" '[[ -f $r/etc/mirror-stage/reflector.yaml && -f $r/etc/mirror-stage/commands-policy.yaml ]]'
check "configuration files are conffiles" \
  'diff <(sort "$scratch/control/conffiles") <(printf "/etc/mirror-stage/commands-policy.yaml\n/etc/mirror-stage/reflector.yaml\n")'
check "copyright, changelog, man page" \
  '[[ -f $r/usr/share/doc/mirror-stage-reflector/copyright && -f $r/usr/share/doc/mirror-stage-reflector/changelog.gz && -f $r/usr/share/man/man1/reflector.1.gz ]]'
check "maintainer scripts parse" 'for s in postinst prerm postrm; do sh -n "$scratch/control/$s" || exit 1; done'
check "postinst creates the system user" 'grep -q "adduser --system" "$scratch/control/postinst"'
check "postrm purge removes state and configuration" \
  'grep -q "rm -rf /var/lib/mirror-stage" "$scratch/control/postrm" && grep -q "deb-systemd-helper purge" "$scratch/control/postrm"'
check "unit restarts always and runs the packaged binary" \
  'grep -q "^Restart=always" $r/lib/systemd/system/mirror-stage-reflector.service && grep -q "^ExecStart=/usr/bin/reflector run" $r/lib/systemd/system/mirror-stage-reflector.service'
check "packaged binary runs: reflector check with the shipped config" \
  '"$r/usr/bin/reflector" check --config "$r/etc/mirror-stage/reflector.yaml" --set reflector.spool-dir="$scratch/spool" --set commands.policy="$r/etc/mirror-stage/commands-policy.yaml" | grep -q "configuration: ok"'
if command -v systemd-analyze >/dev/null; then
  unit="$scratch/mirror-stage-reflector.service"
  sed "s|/usr/bin/reflector|$r/usr/bin/reflector|" "$r/lib/systemd/system/mirror-stage-reflector.service" >"$unit"
  out=$(systemd-analyze verify "$unit" 2>&1 || true)
  check "systemd-analyze verify" '[[ -z "$(echo "$out" | grep -v -e "^$" -e "sysinit.target" -e "Failed to create .*/start" )" ]] || { echo "$out"; false; }'
fi
if [[ $fail != 0 ]]; then echo "package check failed"; exit 1; fi
echo "package check: $deb ok"
