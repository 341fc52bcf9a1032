#!/usr/bin/env bash
# Load benchmark: weir against nginx-rtmp (Debian libnginx-mod-rtmp, one worker) on loopback,
# same scenarios, same test stream, same load tool (weir-bench).
#
#   scripts/bench.sh [--quick] [--scenarios "fanout:100 ingest:200 idle:10000"]
#                    [--servers "weir nginx"] [--duration S]
#
# Scenarios: fanout:N (one publisher, N players), flvfanout:N (the same with HTTP-FLV players;
# weir only: nginx-rtmp has no HTTP-FLV), llhlsfanout:N (N Low-Latency HLS clients: blocking
# playlist reloads and every part of the video rendition; weir only), ingest:M (M publishers, one player each),
# streams:SxV (S publishers with V players each: the cost per viewer over many streams),
# idle:N (N players waiting on a key nobody publishes: memory per connection).
# WEIR_CONFIG=/path/to/weir.toml starts weir with that configuration (recording, relays);
# NGINX_APP_EXTRA="record all; ..." adds directives to nginx-rtmp's `application live`.
# WEIR_BIN=/path/to/weir benchmarks that server binary (e.g. a build of an older commit, for a
# before/after comparison with the same load tool) instead of the one built here.
# --quick is a smoke run with tiny counts. Each server is started fresh for each scenario on
# a free 127.0.0.1 port. Results go to bench-results/<timestamp>/: one JSON report per
# server and scenario, the weir-bench command lines, the nginx config used, server logs,
# machine info, and summary.md (the table printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

scenarios=""
servers="weir nginx"
duration=""
quick=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --scenarios) scenarios="${2:?}"; shift ;;
    --servers) servers="${2:?}"; shift ;;
    --duration) duration="${2:?}"; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
# explicit --scenarios / --duration win over --quick's
if [ "$quick" = 1 ]; then
  scenarios=${scenarios:-"fanout:50 ingest:10 idle:200"}
  duration=${duration:-5}
fi
scenarios=${scenarios:-"fanout:100 fanout:1000 fanout:4000 fanout:6000 ingest:200 idle:10000"}
duration=${duration:-20}
for s in $servers; do
  case "$s" in weir|nginx) ;; *) echo "bench: unknown server $s (weir, nginx)" >&2; exit 2 ;; esac
done
for sc in $scenarios; do
  case "$sc" in
    fanout:[0-9]*|flvfanout:[0-9]*|llhlsfanout:[0-9]*|ingest:[0-9]*|idle:[0-9]*) ;;
    streams:[0-9]*x[0-9]*) ;;
    *) echo "bench: bad scenario $sc (fanout:N, flvfanout:N, llhlsfanout:N, ingest:M, streams:SxV, idle:N)" >&2; exit 2 ;;
  esac
done

# ---- everything started here is stopped on exit (only processes still running and not yet
# reaped are listed, so a recycled pid is never signalled)
server_main=""  # the server process to stop
bench_pid=""    # the running weir-bench
tmp=$(mktemp -d /tmp/weir-bench.XXXXXX)
cleanup() {
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
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- tools
module=$(find /usr/lib/nginx/modules -name ngx_rtmp_module.so 2>/dev/null | head -n1 || true)
case " $servers " in *" nginx "*)
  if ! command -v nginx >/dev/null || [ -z "$module" ]; then
    echo "bench: nginx-rtmp not found; install it with: apt-get install nginx-light libnginx-mod-rtmp" >&2
    echo "       (or run scripts/setup.sh), or pass --servers weir" >&2
    exit 1
  fi ;;
esac
command -v ffmpeg >/dev/null || { echo "bench: ffmpeg not found (apt-get install ffmpeg)" >&2; exit 1; }

# ---- machine
results="$repo/bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
{
  echo "date:    $(date -Is)"
  echo "host:    $(uname -n)"
  echo "cpus:    $(nproc) ($(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1))"
  echo "kernel:  $(uname -srm)"
  echo "memory:  $(free -h 2>/dev/null | awk '/^Mem:/ {print $2}')"
  echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before the run)"
  if [ -n "${WEIR_BIN:-}" ]; then
    echo "weir:    $WEIR_BIN (WEIR_BIN; load tool from $(git rev-parse --short HEAD 2>/dev/null))"
  else
    echo "weir:    $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  fi
  echo "nginx:   $(nginx -v 2>&1 | sed 's/^nginx version: //'), rtmp module $(dpkg-query -W -f='${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?')"
  echo "ffmpeg:  $(ffmpeg -version | head -n1)"
} | tee "$results/machine.txt"
echo

# ---- open files: 10k idle clients need > 10k descriptors in the server and in weir-bench
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1048576
echo "open files limit: $nofile" | tee -a "$results/machine.txt"
max_conns=0
for sc in $scenarios; do
  n=${sc#*:}
  [ "${sc%%:*}" = ingest ] && n=$((2 * n))
  [ "${sc%%:*}" = streams ] && n=$(( ${n%x*} * (1 + ${n#*x}) ))
  [ "$n" -gt "$max_conns" ] && max_conns=$n
done
if [ "$nofile" -lt $((max_conns + 100)) ]; then
  echo "bench: warning: open files limit $nofile is below the $max_conns connections asked for" >&2
fi

# ---- build
echo "== cargo build --release -p weir -p weir-bench"
cargo build --release -p weir -p weir-bench
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
weir="${WEIR_BIN:-$target_dir/release/weir}"
bench="$target_dir/release/weir-bench"

# ---- test stream: 3 Mbit/s 720p30 H.264 + AAC, 2 s GOP, 30 s (looped by weir-bench)
ffmpeg_args=(-f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100
  -t 30 -c:v libx264 -preset veryfast -b:v 3M -maxrate 3M -bufsize 6M -g 60 -keyint_min 60
  -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 -f flv)
cache="$repo/bench-results/cache"
stream="$cache/stream-$(echo "${ffmpeg_args[*]}" | sha256sum | cut -c1-12).flv"
if [ ! -s "$stream" ]; then
  echo "== generating the test stream (cached in $stream)"
  mkdir -p "$cache"
  ffmpeg -nostdin -hide_banner -loglevel error -y "${ffmpeg_args[@]}" "$stream.part"
  mv "$stream.part" "$stream"
fi
echo "ffmpeg ${ffmpeg_args[*]} OUT.flv" >"$results/stream.txt"

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

nginx_config() { # port dir
  cat <<EOF
# nginx-rtmp as its docs advise: one worker. Defaults otherwise (no wait_key, no GOP cache).
load_module $module;
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon off;
pid $2/nginx.pid;
error_log $2/error.log warn;
events { worker_connections 20000; }
rtmp {
    server {
        listen 127.0.0.1:$1;
        chunk_size 4096;
        application live { live on; ${NGINX_APP_EXTRA:-} }
    }
}
EOF
}

server_pid="" # the process whose CPU and memory are measured (nginx: the worker)
start_server() { # server port log
  case "$1" in
    weir)
      # Builds with an HTTP listener get a free port for it (older ones have no such flag).
      http_args=()
      if "$weir" --help | grep -q -- --http-addr; then http_args=(--http-addr "127.0.0.1:$http_port"); fi
      if "$weir" --help | grep -q -- --api-addr; then http_args+=(--api-addr "127.0.0.1:0"); fi
      if [ -n "${WEIR_CONFIG:-}" ]; then
        http_args+=(--config "$WEIR_CONFIG")
        cp "$WEIR_CONFIG" "$results/weir.toml"
      fi
      echo "# \$CARGO_TARGET_DIR/release/weir --rtmp-addr 127.0.0.1:$2 ${http_args[*]} --log warn" >>"$results/commands.txt"
      "$weir" --rtmp-addr "127.0.0.1:$2" "${http_args[@]}" --log warn >"$3" 2>&1 &
      server_main=$!
      server_pid=$server_main
      wait_port "$2" "$server_main"
      ;;
    nginx)
      local dir="$tmp/nginx-$2"
      mkdir -p "$dir"
      nginx_config "$2" "$dir" >"$dir/nginx.conf"
      nginx_config PORT "$dir" | sed "s#$dir#TMPDIR#g" >"$results/nginx.conf"
      echo "# nginx -p TMPDIR -e TMPDIR/error.log -c TMPDIR/nginx.conf   (nginx.conf here, PORT=$2)" >>"$results/commands.txt"
      nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$3" 2>&1 &
      server_main=$!
      wait_port "$2" "$server_main" || return 1
      # measure the worker (the master only supervises)
      server_pid=""
      for _ in $(seq 50); do
        server_pid=$(pgrep -P "$server_main" | head -n1 || true)
        [ -n "$server_pid" ] && break
        sleep 0.1
      done
      [ -n "$server_pid" ]
      ;;
  esac
}

stop_server() { # server log
  local alive=1
  kill -0 "$server_main" 2>/dev/null || alive=0
  kill -TERM "$server_main" 2>/dev/null || true
  wait "$server_main" 2>/dev/null || true
  server_main=""
  if [ "$1" = nginx ] && [ -f "$tmp/nginx-$port/error.log" ]; then
    cat "$tmp/nginx-$port/error.log" >>"$2"
  fi
  [ "$alive" = 1 ]
}

# ---- run
echo
echo "== results in $results"
for sc in $scenarios; do
  kind=${sc%%:*}
  n=${sc#*:}
  http_port=$(free_port)
  # connections of the scenario (publishers and players), for the run's time guard
  conns=$n
  [ "$kind" = streams ] && conns=$(( ${n%x*} * (1 + ${n#*x}) ))
  case "$kind" in
    fanout) args=(--file "$stream" --publishers 1 --players "$n") ;;
    flvfanout) args=(--file "$stream" --publishers 1 --players "$n" --play-http "127.0.0.1:$http_port") ;;
    llhlsfanout) args=(--file "$stream" --publishers 1 --players "$n" --play-llhls "127.0.0.1:$http_port") ;;
    ingest) args=(--file "$stream" --publishers "$n" --players "$n") ;;
    streams) args=(--file "$stream" --publishers "${n%x*}" --players "$(( ${n%x*} * ${n#*x} ))") ;;
    idle) args=(--idle "$n" --players 0) ;;
  esac
  for server in $servers; do
    if { [ "$kind" = flvfanout ] || [ "$kind" = llhlsfanout ]; } && [ "$server" != weir ]; then continue; fi
    name="$server-$kind-$n"
    port=$(free_port)
    echo "-- $server $sc (port $port, ${duration}s)"
    if ! start_server "$server" "$port" "$results/$name.server.log"; then
      echo "   $server did not start; see $results/$name.server.log" >&2
      stop_server "$server" "$results/$name.server.log" || true
      continue
    fi
    # a guard against a wedged run: weir-bench itself stops within about 20 s of the window
    cmd=(timeout --kill-after=10 $((duration + 90 + conns / 100)) "$bench" --url "rtmp://127.0.0.1:$port/live" "${args[@]}" --duration "$duration"
      --server-pid "$server_pid" --label "$server")
    echo "${cmd[*]:3}" | sed "s#$repo/##g; s#$target_dir#\$CARGO_TARGET_DIR#g" >>"$results/commands.txt"
    "${cmd[@]}" >"$results/$name.json" 2>"$results/$name.bench.log" &
    bench_pid=$!
    status=0
    wait "$bench_pid" || status=$?
    bench_pid=""
    if [ "$status" != 0 ]; then
      echo "   weir-bench failed (exit $status); see $results/$name.bench.log" >&2
      mv "$results/$name.json" "$results/$name.json.failed" 2>/dev/null || true
    fi
    if ! stop_server "$server" "$results/$name.server.log"; then
      echo "   $server had exited before the end of the run; see $results/$name.server.log" >&2
      echo "$name: server exited during the run" >>"$results/notes.txt"
    fi
    sleep 1 # let TIME_WAIT sockets and memory settle between runs
  done
done

echo
python3 "$repo/scripts/bench_table.py" "$results" | tee "$results/summary.md"
