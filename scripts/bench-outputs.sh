#!/usr/bin/env bash
# CPU cost of weir's outputs per GB ingested: recording (fMP4 and FLV) and a push relay.
# Runs scripts/bench.sh's ingest scenario (N publishers of the 3 Mbit/s test stream, one
# player each) four times: plain, recording fMP4, recording FLV, pushing every stream to a
# second weir (whose CPU is not counted); then prints weir's CPU seconds per GB ingested and
# the extra each output costs over the plain run. With --repeat R the four runs are repeated
# R times, interleaved, and the table shows the median and the range (the differences are
# small next to run-to-run noise: repeat).
#
# With --servers "weir nginx", nginx-rtmp (one worker) runs the same four ways in the same
# rounds: plain, `record all` (FLV; nginx-rtmp has no fMP4, so its "record fMP4" row is
# its FLV recording too), again `record all`, and `push` to the same second weir.
#
#   scripts/bench-outputs.sh [--publishers N] [--duration S] [--repeat R] [--servers "weir nginx"]
set -euo pipefail
cd "$(dirname "$0")/.."
publishers=20
duration=20
repeat=1
servers=weir
while [ $# -gt 0 ]; do
  case "$1" in
    --publishers) publishers="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    --repeat) repeat="${2:?}"; shift ;;
    --servers) servers="${2:?}"; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-outputs: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
work=$(mktemp -d /tmp/weir-bench-outputs.XXXXXX)
sink_pid=""
cleanup() {
  if [ -n "$sink_pid" ]; then kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release -p weir -p weir-bench
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The push target: a second weir.
sink_port=$(free_port)
"$target_dir/release/weir" --rtmp-addr "127.0.0.1:$sink_port" --http-addr "127.0.0.1:0" \
  --api-addr "127.0.0.1:0" --log warn >"$work/sink.log" 2>&1 &
sink_pid=$!

printf '[apps.live.record]\nformat = "fmp4"\npath = "%s/rec/{stream}/{start}.{ext}"\n' "$work" >"$work/fmp4.toml"
printf '[apps.live.record]\nformat = "flv"\npath = "%s/rec/{stream}/{start}.{ext}"\n' "$work" >"$work/flv.toml"
printf '[[apps.live.push]]\nurl = "rtmp://127.0.0.1:%s/live/{stream}"\n' "$sink_port" >"$work/push.toml"

runs=(plain fmp4 flv push)
declare -A reports
for round in $(seq "$repeat"); do
  for server in $servers; do
    for run in "${runs[@]}"; do
      config=""
      nginx_extra=""
      case "$run" in
        fmp4|flv)
          [ "$run" != plain ] && config="$work/$run.toml"
          mkdir -p "$work/rec"
          chmod 755 "$work"
          chmod 777 "$work/rec" # nginx's worker runs as nobody
          nginx_extra="record all; record_path $work/rec; record_unique on;" ;;
        push)
          config="$work/push.toml"
          nginx_extra="push rtmp://127.0.0.1:$sink_port/live;" ;;
      esac
      echo "== $server $run (round $round of $repeat)"
      out=$(WEIR_CONFIG="$config" NGINX_APP_EXTRA="$nginx_extra" bash scripts/bench.sh \
        --servers "$server" --scenarios "ingest:$publishers" --duration "$duration" 2>&1 \
        | tee "$work/$server-$run.out")
      dir=$(echo "$out" | sed -n 's/^== results in //p' | tail -n1)
      key="$server-$run"
      reports[$key]="${reports[$key]:-} $dir/$server-ingest-$publishers.json"
      if [ -d "$work/rec" ]; then
        echo "   recorded: $(find "$work/rec" -type f | wc -l) files, $(du -sm "$work/rec" | cut -f1) MB"
      fi
      rm -rf "$work/rec"
    done
  done
done

for server in $servers; do
echo
echo "### $server"
python3 - "${reports[$server-plain]}" "${reports[$server-fmp4]}" "${reports[$server-flv]}" "${reports[$server-push]}" <<'EOF'
import json, statistics, sys
names = ["plain", "record fMP4", "record FLV", "push relay"]
runs = [[json.load(open(p)) for p in arg.split()] for arg in sys.argv[1:]]
per_gb = [[r["server_cpu_s"] / (r["bytes_delivered"] / 1e9) for r in rs] for rs in runs]
base = statistics.median(per_gb[0])
print("| run | runs | publishers held | GB ingested per run | server CPU s per GB, median (range) | extra over plain, median |")
print("|---|---:|---:|---:|---:|---:|")
for name, rs, values in zip(names, runs, per_gb):
    held = min(r["players_held"] for r in rs)
    gb = statistics.median(r["bytes_delivered"] / 1e9 for r in rs)
    m = statistics.median(values)
    extra = "" if name == "plain" else f"{m - base:+.2f}"
    print(f"| {name} | {len(rs)} | {held}/{rs[0]['players']} | {gb:.3f} | {m:.2f} ({min(values):.2f}-{max(values):.2f}) | {extra} |")
for arg in sys.argv[1:]:
    for p in arg.split():
        print("report:", p)
EOF
done
