#!/usr/bin/env bash
# The full test suite: installs the tools the tests drive (scripts/setup.sh), then runs
# fmt and clippy checks, every unit, session, end-to-end and interop test, and a short
# fuzzing pass over every fuzz target.
#   WEIR_FUZZ_SECONDS=N   seconds per fuzz target (default 15; 0 skips fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."

# A one-off build needs no incremental cache (it doubles the target directory's size).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
echo "== $free_gb GB free on the build disk"
if [ "$free_gb" -lt 6 ]; then
  echo "warning: the build and tests need about 6 GB of free disk; free some space if the build fails" >&2
fi

bash scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace
echo "== the README's run command resolves the server binary"
cargo run --quiet -- config > /dev/null

fuzz_seconds="${WEIR_FUZZ_SECONDS:-15}"
if [ "$fuzz_seconds" != "0" ]; then
  bash scripts/fuzz-smoke.sh "$fuzz_seconds"
fi
echo "== all tests passed"
