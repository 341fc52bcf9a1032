#!/usr/bin/env bash
# Runs every fuzz target briefly from its seed corpus (no sanitizer, works on stable Rust).
# Prints one summary line per target; on a crash prints the end of the log (stack trace and
# the artifact path under fuzz/artifacts/) and exits non-zero.
# Usage: scripts/fuzz-smoke.sh [seconds-per-target]
# CARGO_TARGET_DIR is honoured, so fuzz builds can be kept apart from workspace builds.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-15}"
targets=$(cargo fuzz list)
[ -n "$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }
cargo fuzz build --sanitizer none
failed=()
for target in $targets; do
  mkdir -p "corpus/$target"
  # Work on a copy so the committed seeds stay as they are.
  work=$(mktemp -d)
  log=$(mktemp)
  cp -r "corpus/$target/." "$work/"
  if cargo fuzz run --sanitizer none "$target" "$work" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    echo "ok   $target: ${runs:-?} runs in ${seconds}s (${rate:-?}/s), ${cov:-cov: ?}"
  else
    echo "FAIL $target:"
    tail -n 60 "$log"
    failed+=("$target")
  fi
  rm -rf "$work" "$log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]}" >&2
  exit 1
fi
