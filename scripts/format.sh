#!/usr/bin/env bash
# Formats (or with --lint, checks) every hand-written Swift file. Generated
# code under */Generated/ is left as the generator writes it.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.swift' | grep -v '/Generated/' | sort)
if [[ "${1:-}" == "--lint" ]]; then
  out=$(swift format lint --strict "${files[@]}" 2>&1) || true
  if [[ -n "$out" ]]; then
    echo "$out"
    echo "swift format lint: $(echo "$out" | wc -l) findings (run scripts/format.sh)"
    exit 1
  fi
  echo "swift format lint: clean (${#files[@]} files)"
else
  swift format -i "${files[@]}"
fi
