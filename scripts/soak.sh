#!/usr/bin/env bash
# Endurance soak (issue 12): weir under churn for a long time.
#
#   scripts/soak.sh [--minutes N] [--publishers N] [--rtmp-viewers N] [--flv-viewers N]
#                   [--hls-clients N] [--restart-min S] [--restart-max S]
#                   [-- more weir-bench soak options, e.g. --stay-min-secs 1 --stay-max-secs 2]
#
# Defaults are the issue's: 60 minutes; 20 publishers that stop and restart every 1-5
# minutes; 500 RTMP viewers, 20 HTTP-FLV and 20 HLS clients (fMP4 and MPEG-TS playlists)
# joining and leaving all the time (stays of 10-120 s). The server runs from a config file
# on free loopback ports; weir-bench samples its RSS and open fds every 5 s.
# Pass: RSS and open fds grow at most 5 % over the last two thirds of the run (after a
# warm-up of a third: 20 of 60 minutes), open fds back to their starting count (+16) once
# every client left, every viewer's timeline continuous (RTMP viewers stay attached across
# their publisher's restart), no viewer cut, HLS media sequences never go back, and no panic
# or ERROR line in the server log.
# Results in bench-results/soak-<timestamp>/: report.json (every sample), summary.txt,
# weir.toml, weir.log, commands.txt, machine.txt. Exit status 1 on failure.
# Runs under `nice` if you ask it to (nice -n 10 scripts/soak.sh ...); it takes no lock.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

minutes=60
publishers=20
rtmp_viewers=500
flv_viewers=20
hls_clients=20
restart_min=60
restart_max=300
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?}"; shift ;;
    --publishers) publishers="${2:?}"; shift ;;
    --rtmp-viewers) rtmp_viewers="${2:?}"; shift ;;
    --flv-viewers) flv_viewers="${2:?}"; shift ;;
    --hls-clients) hls_clients="${2:?}"; shift ;;
    --restart-min) restart_min="${2:?}"; shift ;;
    --restart-max) restart_max="${2:?}"; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "soak: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

tmp=$(mktemp -d /tmp/weir-soak.XXXXXX)
# shellcheck source=scripts/endurance-lib.sh
. "$repo/scripts/endurance-lib.sh"
trap endurance_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

results="$repo/bench-results/soak-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
{
  echo "date:    $(date -Is)"
  echo "host:    $(uname -n)"
  echo "cpus:    $(nproc) ($(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1))"
  echo "kernel:  $(uname -srm)"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
  echo "nice:    $(nice)"
  echo "weir:    $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  echo "open files limit: $(ulimit -n)"
  echo "malloc:  MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-unset} MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-unset} (passed to weir)"
} | tee "$results/machine.txt"

build_tools
test_stream
start_weir weir "[log]
level = \"info\"" || { echo "soak: weir did not start" >&2; exit 1; }

args=(soak --url "$rtmp_url" --http "$http_authority" --file "$stream" --minutes "$minutes"
  --publishers "$publishers" --restart-min-secs "$restart_min" --restart-max-secs "$restart_max"
  --rtmp-viewers "$rtmp_viewers" --flv-viewers "$flv_viewers" --hls-clients "$hls_clients"
  --server-pid "$server_main" --out "$results/report.json" "$@")
echo "weir-bench ${args[*]}" | sed "s#$repo/##g" >>"$results/commands.txt"
echo "== soak: $minutes min, $publishers publishers, $rtmp_viewers RTMP + $flv_viewers HTTP-FLV + $hls_clients HLS clients"
status=0
"$bench" "${args[@]}" >"$results/summary.txt" 2>"$results/weir-bench.stderr" &
bench_pid=$!
wait "$bench_pid" || status=$?
bench_pid=""
cat "$results/summary.txt"
if ! stop_weir; then
  echo "FAIL soak: weir died during the run" | tee -a "$results/summary.txt"
  status=1
fi
if ! log_check weir | tee -a "$results/summary.txt"; then
  echo "FAIL soak: panic or ERROR line in the server log" | tee -a "$results/summary.txt"
  status=1
fi
echo "== results in $results"
exit "$status"
