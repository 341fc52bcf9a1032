#!/usr/bin/env bash
# The cluster's Redis load and fan-out across nodes (BENCHMARKS.md §14): a redis-server and
# three release weir nodes on loopback; STREAMS streams published to node A (weir-bench
# publish, the benchmark's 3 Mbit/s test stream), VIEWERS RTMP viewers of each on node B
# (pulled once per stream), and each stream's HLS asked for once through node C (packaged on
# A, fetched by C). Then, for SECONDS, the calls the nodes make to Redis are counted (every
# operation is one script: EVALSHA) and each node's CPU time and RSS sampled from /proc.
#   scripts/cluster-load.sh [--streams 20] [--viewers 5] [--seconds 30]
# Results: bench-results/cluster-<time>/ (summary.txt, the nodes' logs).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
streams=20
viewers=5
seconds=30
while [ $# -gt 0 ]; do
  case "$1" in
    --streams) streams=$2; shift 2 ;;
    --viewers) viewers=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
results="$repo/bench-results/cluster-$(date +%Y%m%d-%H%M%S)"
tmp=$(mktemp -d)
mkdir -p "$results"
# shellcheck source=endurance-lib.sh
source "$repo/scripts/endurance-lib.sh"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 1
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
command -v redis-server >/dev/null || { echo "redis-server not found (bash scripts/setup.sh)" >&2; exit 1; }
build_tools
test_stream

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$results/redis.log" 2>&1 &
pids+=($!)
declare -A rtmp http api pid
for node in a b c; do
  rtmp[$node]=$(free_port); http[$node]=$(free_port); api[$node]=$(free_port)
  cat >"$tmp/$node.toml" <<EOF
[rtmp]
addr = "127.0.0.1:${rtmp[$node]}"
[http]
addr = "127.0.0.1:${http[$node]}"
[api]
addr = "127.0.0.1:${api[$node]}"
[cluster]
redis_url = "redis://127.0.0.1:$redis_port"
node_id = "$node"
EOF
  "$weir" --config "$tmp/$node.toml" >"$results/$node.log" 2>&1 &
  pid[$node]=$!
  pids+=($!)
done
for node in a b c; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:${api[$node]}/api/v1/cluster" >/dev/null && break
    sleep 0.1
  done
done
echo "== $streams streams on node A, $viewers RTMP viewers of each on node B, HLS of each through node C"
for i in $(seq 1 "$streams"); do
  "$bench" publish --url "rtmp://127.0.0.1:${rtmp[a]}/live/s$i" --file "$stream" >/dev/null 2>&1 &
  pids+=($!)
done
sleep 3
# weir-bench viewers runs until its stdin ends: a pipe this script holds open.
mkfifo "$tmp/hold"
exec 3<>"$tmp/hold"
for i in $(seq 1 "$streams"); do
  "$bench" viewers --url "rtmp://127.0.0.1:${rtmp[b]}/live/s$i" --count "$viewers" >/dev/null 2>&1 <&3 &
  pids+=($!)
done
# HLS of every stream asked for through C every 5 s, 16 requests at a time (a stream's first
# request waits for its first segment; the packagers stop hls.idle_secs after the last one).
# Requests that failed are counted in $tmp/hls-failed.
(
  while true; do
    seq 1 "$streams" | xargs -P 16 -I{} sh -c \
      'curl -fs --max-time 15 "http://127.0.0.1:'"${http[c]}"'/live/s{}/v0/index.m3u8" >/dev/null || echo {} >>"'"$tmp"'/hls-failed"'
    sleep 5
  done
) &
pids+=($!)
sleep 8
calls() {
  redis-cli -p "$redis_port" info commandstats \
    | awk -F'[=,:]' '/^cmdstat_(evalsha|eval|script)/ {n += $3} END {print n + 0}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
c0=$(calls)
declare -A t0
for node in a b c; do t0[$node]=$(cpu_ticks "${pid[$node]}"); done
echo "== measuring for $seconds s"
sleep "$seconds"
c1=$(calls)
# Then 10 s of MONITOR: the calls by script (an EVALSHA names its script by the SHA-1 of its
# text) and by node (the client's port: each node opens one connection).
timeout 10 redis-cli -p "$redis_port" monitor >"$tmp/monitor.txt" 2>/dev/null || true
declare -A script_of
for lua in "$repo"/crates/weir/src/cluster/lua/*.lua; do
  script_of[$(sha1sum "$lua" | cut -c1-40)]=$(basename "$lua" .lua)
done
by_script=$(grep -io '"EVALSHA" "[0-9a-f]*"' "$tmp/monitor.txt" | awk '{print $2}' | tr -d '"' | sort | uniq -c |
  while read -r n sha; do echo "${script_of[$sha]:-$sha} $(awk -v n="$n" 'BEGIN {printf "%.1f", n / 10}')/s"; done | tr '\n' ' ')
hz=$(getconf CLK_TCK)
{
  echo "cluster load: $streams streams published on A, $viewers RTMP viewers each on B, HLS of each through C; $seconds s"
  echo "weir $(git -C "$repo" rev-parse --short HEAD), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  awk -v c="$((c1 - c0))" -v s="$seconds" -v n="$streams" \
    'BEGIN {printf "redis calls: %.1f /s in all (%.2f per stream per second beside 2 per node per second: %.1f)\n", c / s, (c / s - 6) / n, 6}'
  echo "redis calls by script (10 s of MONITOR after the measurement): $by_script"
  for node in a b c; do
    awk -v t="$(( $(cpu_ticks "${pid[$node]}") - t0[$node] ))" -v hz="$hz" -v s="$seconds" -v n="$node" -v r="$(rss_kib "${pid[$node]}")" \
      'BEGIN {printf "node %s: CPU %.1f %% of a core, RSS %.1f MiB\n", n, 100 * t / hz / s, r / 1024}'
  done
  curl -fs "http://127.0.0.1:${api[b]}/api/v1/cluster" | python3 -c '
import json, sys
v = json.load(sys.stdin)
print("node b pulls:", len(v["pulls"]), "streams, from", sorted({p["origin"] for p in v["pulls"]}))
print("leases:", len(v["leases"]), "held by", sorted({l["node"] for l in v["leases"]}))'
  echo "HLS playlist requests through C that failed: $(cat "$tmp/hls-failed" 2>/dev/null | wc -l)"
  echo "node a RTMP players (the pulls): $(curl -fs "http://127.0.0.1:${api[a]}/api/v1/clients?limit=1000" | python3 -c 'import json,sys; print(sum(1 for c in json.load(sys.stdin)["clients"] if c["role"] == "playing"))')"
} | tee "$results/summary.txt"
echo "== results in $results"
