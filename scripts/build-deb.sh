#!/usr/bin/env bash
# Builds dist/mirror-stage-reflector_<version>_<arch>.deb with dpkg-deb: the
# reflector (release build, Swift runtime linked statically, stripped), its
# systemd unit, default configuration as conffiles, and maintainer scripts.
#   scripts/build-deb.sh [--binary PATH]   (a prebuilt binary skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*public static let current = "\(.*\)".*/\1/p' Sources/ReflectorCore/Collector.swift)
arch=$(dpkg --print-architecture)
binary=""
if [[ "${1:-}" == "--binary" ]]; then binary=$2; fi
if [[ -z "$binary" ]]; then
  scripts/deps.sh build >/dev/null
  swift build -c release --product reflector --static-swift-stdlib 2>&1 | grep -E "error|warning:" || true
  binary=$(swift build -c release --show-bin-path)/reflector
fi
[[ -x "$binary" ]] || { echo "no reflector binary at $binary" >&2; exit 1; }

pkg=mirror-stage-reflector
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/mirror-stage" \
  "$root/usr/share/doc/$pkg" "$root/usr/share/man/man1" "$root/usr/share/lintian/overrides"
install -m 0755 "$binary" "$root/usr/bin/reflector"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/reflector"
install -m 0644 packaging/debian/mirror-stage-reflector.service "$root/lib/systemd/system/"
install -m 0644 packaging/debian/reflector.yaml packaging/debian/commands-policy.yaml "$root/etc/mirror-stage/"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/$pkg/copyright"
install -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/$pkg"
gzip -9n <packaging/debian/reflector.1 >"$root/usr/share/man/man1/reflector.1.gz"
printf '%s (%s) unstable; urgency=medium\n\n  * Release %s.\n\n -- MIRROR STAGE developers <dev@mirror-stage.invalid>  %s\n' \
  "$pkg" "$version" "$version" "$(date -R -u -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
  gzip -9n >"$root/usr/share/doc/$pkg/changelog.gz"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
printf '/etc/mirror-stage/reflector.yaml\n/etc/mirror-stage/commands-policy.yaml\n' >"$root/DEBIAN/conffiles"

# Depends: the package of every shared library the binary needs, at least
# the version it was built against.
depends=()
# (Whole outputs are read before filtering: an early exit in a pipeline
# would kill its writer with SIGPIPE, which pipefail turns into a failure.)
cache=$(ldconfig -p)
for lib in $(objdump -p "$root/usr/bin/reflector" | awk '/NEEDED/ {print $2}'); do
  path=$(awk -v l="$lib" '$1 == l && !found {print $NF; found = 1}' <<<"$cache")
  [[ -n "$path" ]] || continue
  owner=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | sed -n '1s/:.*//p') || true
  [[ -n "$owner" ]] || owner=$(dpkg -S "$path" 2>/dev/null | sed -n '1s/:.*//p') || true
  [[ -n "$owner" ]] || continue
  ver=$(dpkg-query -W -f='${Version}' "$owner" | sed 's/[-+~].*//')
  depends+=("$owner (>= $ver)")
done
depends_line=$(printf '%s\n' "${depends[@]}" adduser | sort -u | paste -sd, | sed 's/,/, /g')
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $version
Architecture: $arch
Maintainer: MIRROR STAGE developers <dev@mirror-stage.invalid>
Installed-Size: $size
Depends: $depends_line
Recommends: smartmontools
Suggests: bubblewrap
Section: admin
Priority: optional
Homepage: https://github.com/mirror-stage/mirror-stage
Description: MIRROR STAGE host agent (REFLECTOR)
 Pushes CPU, memory, disk, SMART, network, GPU, temperature and process
 metrics of this host to the MIRROR STAGE command centre over NATS
 JetStream every few seconds, buffering while the server is unreachable,
 and runs remote commands that carry a valid signature of the command
 router and that the local policy allows.
CONTROL
mkdir -p dist
out="dist/${pkg}_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
