#!/usr/bin/env bash
# Runs every Go fuzz target of the module for $FUZZTIME each (default 3000x:
# a count, not a duration: time-bounded fuzzing fails with "context deadline
# exceeded" when a loaded machine stalls a worker at the deadline).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3000x}
n=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; exit 1; }
    n=$((n+1))
  done
done
echo "fuzz: $n targets passed"
