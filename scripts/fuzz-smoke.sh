#!/usr/bin/env bash
# Runs every fuzz target briefly from its seed corpus (no sanitizer, works on stable Rust).
# Usage: scripts/fuzz-smoke.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-15}"
targets=$(cargo fuzz list)
for target in $targets; do
  echo "== fuzz $target (${seconds}s)"
  mkdir -p "corpus/$target"
  # Work on a copy so the committed seeds stay as they are.
  work=$(mktemp -d)
  cp -r "corpus/$target/." "$work/"
  cargo fuzz run --sanitizer none "$target" "$work" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3
  rm -rf "$work"
done
