#!/usr/bin/env bash
# Endurance faults and long uptime (issue 12): each scenario against a fresh weir (config
# file, free loopback ports), each with its pass/fail criterion printed as
#   PASS <scenario>: <what was measured>      or      FAIL <scenario>: ... [failed: why]
#
#   scripts/faults.sh [--only "kill9 reset flood sigstop overload wrap"] [--quick]
#
# Scenarios (the issue's numbers; --quick uses small ones for a smoke run):
#   wrap      publishers starting 8 s below 2^31 and 2^32 ms (24.8 / 49.7 days) play 30 s
#             through the wrap: RTMP, HTTP-FLV, HLS fMP4 and MPEG-TS continuous.
#   kill9     a publisher process killed with SIGKILL 40 % into a GOP; 20 viewers; a
#             republish is accepted and every viewer continues on one timeline.
#   reset     2000 RTMP viewers reset at once (SO_LINGER 0): open fds back to their level
#             within 10 s, new viewers served at once, a staying viewer unaffected.
#   flood     connections at 5x rtmp.max_connections (200) for 30 s: the excess refused, an
#             admitted stream flowing (no gap over 1 s), a new viewer served within 1 s after.
#   sigstop   500 viewers in 5 processes stopped with SIGSTOP: cut by the lag policy
#             (streams.max_viewer_lag_secs 5, rtmp.write_timeout_secs 10), RSS bounded.
#   overload  a 50 Mbit/s publisher whose 20 viewers read 4 Mbit/s: they are cut, the
#             publisher is not held back, another stream's viewers are unaffected.
# Every scenario also fails on a panic or an ERROR line in the server log.
# Results in bench-results/faults-<timestamp>/: <scenario>.json, <scenario>.log (weir),
# <scenario>.toml, summary.txt. Exit status 1 when any scenario failed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

only="wrap kill9 reset flood sigstop overload"
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="${2:?}"; shift ;;
    --quick) quick=1 ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "faults: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for s in $only; do
  case "$s" in wrap|kill9|reset|flood|sigstop|overload) ;;
    *) echo "faults: unknown scenario $s" >&2; exit 2 ;;
  esac
done

tmp=$(mktemp -d /tmp/weir-faults.XXXXXX)
# shellcheck source=scripts/endurance-lib.sh
. "$repo/scripts/endurance-lib.sh"
trap endurance_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

results="$repo/bench-results/faults-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
{
  echo "date:    $(date -Is)"
  echo "cpus:    $(nproc) ($(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1))"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
  echo "weir:    $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "open files limit: $(ulimit -n)"
} | tee "$results/machine.txt"
build_tools
test_stream

if [ "$quick" = 1 ]; then
  reset_viewers=200; flood_max=40; flood_secs=5; stop_viewers=50; overload_secs=20; kill_viewers=5
else
  reset_viewers=2000; flood_max=200; flood_secs=30; stop_viewers=500; overload_secs=30; kill_viewers=20
fi

failed=0
# run_scenario NAME RTMP_TOML OTHER_TOML -- weir-bench faults ARGS (the target's are added;
# @HTTP@ in ARGS is the HTTP listener's host:port)
run_scenario() {
  local name=$1 rtmp_extra=$2 other=$3
  shift 4
  echo "-- $name"
  WEIR_RTMP_EXTRA="$rtmp_extra" start_weir "$name" "$other" || {
    echo "FAIL $name: weir did not start" | tee -a "$results/summary.txt"; failed=1; return; }
  local args=(faults "${@//@HTTP@/$http_authority}" --url "$rtmp_url" --file "$stream" --server-pid "$server_main"
    --out "$results/$name.json")
  echo "weir-bench ${args[*]}" | sed "s#$repo/##g" >>"$results/commands.txt"
  local status=0
  "$bench" "${args[@]}" >"$tmp/out" 2>"$results/$name.stderr" &
  bench_pid=$!
  wait "$bench_pid" || status=$?
  bench_pid=""
  if [ ! -s "$tmp/out" ]; then
    echo "FAIL $name: weir-bench exited with $status and no verdict; $(tail -n 3 "$results/$name.stderr")" >"$tmp/out"
    status=1
  fi
  tee -a "$results/summary.txt" <"$tmp/out"
  [ "$status" = 0 ] || failed=1
  if ! stop_weir; then
    echo "FAIL $name: weir died" | tee -a "$results/summary.txt"; failed=1
  fi
  if ! log_check "$name" | tee -a "$results/summary.txt"; then
    echo "FAIL $name: panic or ERROR line in the server log" | tee -a "$results/summary.txt"; failed=1
  fi
}

for s in $only; do
  case "$s" in
    wrap) run_scenario wrap "" "" -- wrap --http @HTTP@ ;;
    kill9) run_scenario kill9 "" "" -- kill9 --viewers "$kill_viewers" ;;
    reset) run_scenario reset "" "" -- reset --viewers "$reset_viewers" ;;
    flood) run_scenario flood "max_connections = $flood_max" "" -- flood \
      --max-connections "$flood_max" --secs "$flood_secs" ;;
    sigstop) run_scenario sigstop "write_timeout_secs = 10" "[streams]
max_viewer_lag_secs = 5" -- sigstop --viewers "$stop_viewers" --lag-secs 5 --write-timeout-secs 10 ;;
    overload) run_scenario overload "" "" -- overload --secs "$overload_secs" ;;
  esac
done
echo "== results in $results"
exit "$failed"
