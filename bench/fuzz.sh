#!/usr/bin/env bash
# Fuzzes every parser of untrusted or hand-written input (issue 17) with
# libFuzzer: the protobuf decoders and the JSON mapping of the wire
# messages, the YAML configuration, the alert rules, the twin inventory, the
# command policy and the console API's requests (bench/Fuzz/*). Builds them
# with libFuzzer and AddressSanitizer (debug) into .build-fuzz — Package.swift
# declares them only when MIRROR_FUZZ is set —, seeds a corpus per target in
# a temporary directory and runs each for SECONDS, then prints executions,
# coverage and what was found. Crashing inputs are kept in
# .build-fuzz/artifacts. Record the table in bench/RESULTS.md.
#   bench/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 60, all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
all=(FuzzWire FuzzWireJSON FuzzConfig FuzzRules FuzzInventory FuzzPolicy FuzzConsole)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
scripts/deps.sh build >/dev/null

export MIRROR_FUZZ=1
# A crash is libFuzzer's to report (and to write the input of): not the
# Swift runtime's backtracer, which would stop it for seconds.
export SWIFT_BACKTRACE=enable=no
# --sanitize for the C targets and for SwiftPM (no renamed entry point:
# libFuzzer has the main); -Xswiftc with both at once because swiftc keeps
# only the last -sanitize= it is given, so the two --sanitize flags alone
# leave the Swift code without either coverage or ASan.
flags=(-c debug --build-path .build-fuzz --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address)
for t in "${targets[@]}"; do
  echo "building $t" >&2
  swift build "${flags[@]}" --product "$t" 2>&1 | { grep -E "error|warning:" | grep -v -e "Cannot export local symbol" -e "unhandled; explicitly declare" || true; } >&2
done
bin=$(swift build "${flags[@]}" --show-bin-path)
artifacts=.build-fuzz/artifacts
mkdir -p "$artifacts"

work=$(mktemp -d /tmp/mirror-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Seeds. YAML: every configuration file of the repository, the files a
# ConfigMap carries (k8s/), the YAML examples of docs/, the built-in alert
# rules and the policy example in CommandPolicy's documentation — for all
# four YAML targets (each keeps what reaches new code).
yaml="$work/seeds/yaml"
mkdir -p "$yaml"
python3 - "$yaml" <<'PY'
import glob, os, re, sys, textwrap
out = sys.argv[1]
n = 0
def seed(text):
    global n
    if text.strip():
        n += 1
        open(os.path.join(out, "yaml-%03d" % n), "w").write(text)
for path in sorted(glob.glob("config/*.yaml") + glob.glob("packaging/debian/*.yaml")):
    seed(open(path).read())
for path in sorted(glob.glob("k8s/*.yaml")):
    # ConfigMap data: `name.yaml: |` and the block indented below it.
    lines = open(path).read().split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)[\w.-]+\.ya?ml: \|", line)
        if not m:
            continue
        block, indent = [], None
        for l in lines[i + 1:]:
            if l.strip() and len(l) - len(l.lstrip()) <= len(m.group(1)):
                break
            if indent is None and l.strip():
                indent = len(l) - len(l.lstrip())
            block.append(l[indent or 0:])
        seed("\n".join(block))
for path in sorted(glob.glob("docs/*.md")):
    for block in re.findall(r"```yaml\n(.*?)```", open(path).read(), re.S):
        seed(block)
rules = open("Sources/NotifierCore/DefaultRules.swift").read()
for block in re.findall(r'"""\n(.*?)"""', rules, re.S):
    seed(textwrap.dedent(block).replace("\\\\", "\\"))
policy = open("Sources/ReflectorCore/Commands/CommandPolicy.swift").read()
m = re.search(r"/// ```yaml\n(.*?)/// ```", policy, re.S)
if m:
    seed("\n".join(l[4:] for l in m.group(1).split("\n")))
PY
dict_of() {  # TARGET: its libFuzzer dictionary (edge values, syntax, names)
  case $1 in
    FuzzConfig | FuzzRules | FuzzInventory | FuzzPolicy) echo bench/Fuzz/yaml.dict ;;
    FuzzConsole | FuzzWireJSON) echo bench/Fuzz/json.dict ;;
  esac
}
seeds_of() {  # TARGET DIR: its seeds into DIR
  case $1 in
    FuzzWire | FuzzWireJSON | FuzzConsole) MIRROR_FUZZ_SEEDS=$2 "$bin/$1" >/dev/null 2>&1 ;;
    *) cp "$yaml"/* "$2"/ ;;
  esac
}

echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ), $(swift --version 2>/dev/null | head -1)"
echo "seconds per target: $seconds"
printf '%-14s %7s %12s %9s %7s %8s %7s  %s\n' target seeds executions execs/s cov features corpus found
found_any=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  mkdir -p "$corpus"
  seeds_of "$t" "$corpus"
  nseeds=$(find "$corpus" -type f | wc -l)
  log="$work/$t.log"
  # -timeout: an input taking 10 s is reported as a hang.
  dict=$(dict_of "$t")
  "$bin/$t" "$corpus" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
    ${dict:+-dict="$dict"} -artifact_prefix="$artifacts/$t-" >"$log" 2>&1 || true
  execs=$(awk '/^stat::number_of_executed_units/ {print $NF}' "$log")
  rate=$(awk '/^stat::average_exec_per_sec/ {print $NF}' "$log")
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  # A crash in the first second leaves the average at 0; the last status
  # line has a rate too.
  [[ ${rate:-0} != 0 ]] || rate=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$last")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
  found=$(sed -nE 's/^artifact_prefix=.*; Test unit written to (.*)$/\1/p' "$log" | head -1)
  what="none"
  if [[ -n $found ]]; then
    found_any=1
    kind=$(grep -m1 -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+( [a-z-]+)?' "$log" || true)
    fatal=$(grep -m1 -oE '(Fatal error|Swift runtime failure).*' "$log" | cut -c1-100 || true)
    what="${kind:-crash}${fatal:+ ($fatal)} -> $found"
    cp "$log" "$artifacts/$t.log"
  fi
  printf '%-14s %7s %12s %9s %7s %8s %7s  %s\n' "$t" "$nseeds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$what"
done
if ((found_any)); then
  echo "logs and inputs: $artifacts (reproduce: $bin/TARGET INPUT; minimise: add -minimize_crash=1 -runs=20000)"
fi
