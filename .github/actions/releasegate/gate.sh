#!/usr/bin/env bash
# The gate step of action.yml: the action's inputs arrive as environment
# variables (never spliced into the script, so no input can inject shell).
# tools/image/action_test.go runs this script against a local releasegate.
set -uo pipefail
set -f # globs in FILES are releasegate's to expand, not the shell's

report="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/opsight-releasegate"
mkdir -p "$report"
out="${GITHUB_OUTPUT:-/dev/null}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
die() { echo "::error::releasegate: $*"; echo "verdict=error" >> "$out"; echo "exit-code=3" >> "$out"; exit 3; }

args=(--baseline "${BASELINE:-}" --candidate "${CANDIDATE:-}")
case "${SOURCE:-}" in
  otlp-file)
    [ -n "${FILES:-}" ] || die "source otlp-file needs the files input (OTLP JSON lines files or globs)"
    for f in $FILES; do args+=(--otlp-file "$f"); done ;;
  prometheus|tempo)
    [ -n "${URL:-}" ] || die "source $SOURCE needs the url input"
    args+=("--$SOURCE-url" "$URL") ;;
  *) die "source '${SOURCE:-}': expected otlp-file, prometheus or tempo" ;;
esac
[ -z "${SERVICE:-}" ] || args+=(--service "$SERVICE")
[ -z "${BASELINE_WINDOW:-}" ] || args+=(--baseline-window "$BASELINE_WINDOW")
[ -z "${CANDIDATE_WINDOW:-}" ] || args+=(--candidate-window "$CANDIDATE_WINDOW")
for th in ${THRESHOLDS:-}; do args+=(--threshold "$th"); done
for a in ${ARGS:-}; do args+=("$a"); done

# One run decides and writes the human report; a second writes the machine
# one (same windows, same data). The text table goes to the log.
releasegate "${args[@]}" --format markdown --output "$report/gate.md" --plot "$report/gate.svg"
code=$?
if [ "$code" -lt 3 ]; then
  releasegate "${args[@]}" --format json --output "$report/gate.json" >/dev/null 2>&1
  cat "$report/gate.md"
  cat "$report/gate.md" >> "$summary"
fi

case "$code" in
  0) verdict=pass ;;
  1) verdict=fail ;;
  2) verdict=inconclusive ;;
  *) verdict=error ;;
esac
{ echo "verdict=$verdict"; echo "exit-code=$code"; echo "report=$report"; } >> "$out"

case "$verdict" in
  pass) echo "release gate: pass" ;;
  fail) echo "::error::release gate: latency regression of $CANDIDATE against $BASELINE (report: $report/gate.md)"; exit 1 ;;
  inconclusive)
    if [ "${FAIL_ON_INCONCLUSIVE:-false}" = true ]; then
      echo "::error::release gate: inconclusive (too few spans or coarse buckets; see the report)"; exit 2
    fi
    echo "::warning::release gate: inconclusive (too few spans or coarse buckets; see the report)" ;;
  *) echo "::error::release gate could not run (exit $code); see the log above"; exit "$code" ;;
esac
