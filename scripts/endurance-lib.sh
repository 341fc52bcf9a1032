# Shared by scripts/soak.sh and scripts/faults.sh (sourced, not run): building, the test
# stream, free ports, starting and stopping weir with a config file, and the log check.
# Callers set: repo (the repository root), results (the results directory), tmp (scratch).

# Processes started here, stopped on exit (only ours, by pid).
server_main=""
bench_pid=""
endurance_cleanup() {
  local pid
  for pid in $bench_pid $server_main; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $bench_pid $server_main; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}

# Builds release weir and weir-bench; sets $weir and $bench. With WEIR_BIN and
# WEIR_BENCH_BIN both set, uses those binaries and builds nothing (a long run started without
# the build lock, from binaries built and copied beforehand).
build_tools() {
  if [ -n "${WEIR_BIN:-}" ] && [ -n "${WEIR_BENCH_BIN:-}" ]; then
    weir=$WEIR_BIN
    bench=$WEIR_BENCH_BIN
    echo "== using $weir and $bench (WEIR_BIN, WEIR_BENCH_BIN; no build)"
    return
  fi
  echo "== cargo build --release -p weir -p weir-bench"
  CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}" cargo build --release -p weir -p weir-bench
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  weir="${WEIR_BIN:-$target_dir/release/weir}"
  bench="$target_dir/release/weir-bench"
}

# The benchmark's test stream (3 Mbit/s 720p30 H.264 + AAC, 2 s GOP, 30 s), cached like
# scripts/bench.sh caches it (same arguments, same file); sets $stream.
test_stream() {
  command -v ffmpeg >/dev/null || { echo "ffmpeg not found (apt-get install ffmpeg)" >&2; exit 1; }
  local ffmpeg_args=(-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100
    -t 30 -c:v libx264 -preset veryfast -b:v 3M -maxrate 3M -bufsize 6M -g 60 -keyint_min 60
    -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 -f flv)
  local cache="$repo/bench-results/cache"
  stream="$cache/stream-$(echo "${ffmpeg_args[*]}" | sha256sum | cut -c1-12).flv"
  if [ ! -s "$stream" ]; then
    echo "== generating the test stream (cached in $stream)"
    mkdir -p "$cache"
    ffmpeg -nostdin -hide_banner -loglevel error -y "${ffmpeg_args[@]}" "$stream.part"
    mv "$stream.part" "$stream"
  fi
  echo "ffmpeg ${ffmpeg_args[*]} OUT.flv" >"$results/stream.txt"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until 127.0.0.1:$1 accepts connections while process $2 is alive.
wait_port() {
  local i
  for i in $(seq 100); do
    kill -0 "$2" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

# start_weir NAME EXTRA_TOML: writes $results/NAME.toml (free loopback ports, then the extra
# TOML, whose [sections] must not repeat rtmp/http/api), starts weir with it, logging to
# $results/NAME.log; sets $server_main, $rtmp_port, $http_port, $rtmp_url, $http_authority.
start_weir() {
  local name=$1 extra=${2:-}
  local attempt
  for attempt in 1 2 3; do
    rtmp_port=$(free_port)
    http_port=$(free_port)
    {
      echo "[rtmp]"
      echo "addr = \"127.0.0.1:$rtmp_port\""
      echo "${WEIR_RTMP_EXTRA:-}"
      echo "[http]"
      echo "addr = \"127.0.0.1:$http_port\""
      echo "[api]"
      echo "addr = \"127.0.0.1:0\""
      echo "$extra"
    } >"$results/$name.toml"
    "$weir" --config "$results/$name.toml" >"$results/$name.log" 2>&1 &
    server_main=$!
    if wait_port "$rtmp_port" "$server_main" && wait_port "$http_port" "$server_main"; then
      rtmp_url="rtmp://127.0.0.1:$rtmp_port/live"
      http_authority="127.0.0.1:$http_port"
      echo "# $weir --config $results/$name.toml   (pid $server_main)" >>"$results/commands.txt"
      return 0
    fi
    kill -KILL "$server_main" 2>/dev/null || true
    wait "$server_main" 2>/dev/null || true
    server_main=""
    echo "weir did not start (attempt $attempt); log:" >&2
    tail -n 5 "$results/$name.log" >&2
  done
  return 1
}

# stop_weir NAME: SIGTERM, wait; fails when weir had died before.
stop_weir() {
  local alive=1
  kill -0 "$server_main" 2>/dev/null || alive=0
  kill -TERM "$server_main" 2>/dev/null || true
  wait "$server_main" 2>/dev/null || true
  server_main=""
  [ "$alive" = 1 ]
}

# log_check NAME: fails on a panic or an ERROR line in $results/NAME.log; prints the WARN
# messages by count (expected ones, e.g. refusals in the flood, are the caller's to judge).
log_check() {
  local log="$results/$1.log"
  local bad
  bad=$(grep -aE 'panicked at|[[:space:]]ERROR[[:space:]]' "$log" | head -n 5 || true)
  local warns
  warns=$(grep -ac '[[:space:]]WARN[[:space:]]' "$log" || true)
  echo "   log $1.log: ${warns:-0} WARN lines; most frequent:"
  grep -a '[[:space:]]WARN[[:space:]]' "$log" | sed -E 's/^[^ ]+ +WARN +//; s/[0-9]+(\.[0-9]+)?/N/g' \
    | cut -c1-110 | sort | uniq -c | sort -rn | head -n 4 | sed 's/^/     /' || true
  if [ -n "$bad" ]; then
    echo "   log $1.log has panics or ERROR lines:"
    echo "$bad" | sed 's/^/     /'
    return 1
  fi
  return 0
}
