#!/bin/bash
# Pinned A/B: server on CPU 0, load tool on CPU 1, fan-out N, 20 s windows.
cd "$(dirname "$0")/../../.."
# BASE_BIN: the server build to compare with (a0115cb here); reports go to $OUT.
OUT=${OUT:-/tmp/pinned}
N=${N:-3000}
ulimit -n 20000
mkdir -p "$OUT"
for who in base new base new base new; do
  bin=target/release/weir; [ $who = base ] && bin=${BASE_BIN:?set BASE_BIN}
  port=$((20000 + RANDOM % 20000))
  taskset -c 0 $bin --rtmp-addr 127.0.0.1:$port --log warn > "$OUT/server.log" 2>&1 &
  spid=$!
  sleep 0.5
  taskset -c 1 target/release/weir-bench --url rtmp://127.0.0.1:$port/live --file ${STREAM:-bench-results/cache/stream-ad7f8d4f8509.flv} --publishers 1 --players $N --duration 20 --server-pid $spid --label $who > "$OUT/$who-$(date +%H%M%S).json" 2>/dev/null
  kill $spid; wait $spid 2>/dev/null
  echo "$who done"
done
