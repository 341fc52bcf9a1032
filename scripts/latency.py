#!/usr/bin/env python3
"""Glass-to-glass latency of every output of weir in headless Chromium.

    scripts/latency.py [--seconds 10] [--gop 2] [--techs "llhls hls ts flv dash"]

FFmpeg (Debian's) publishes a 320x180 30 fps H.264 picture whose 16 vertical stripes spell its
media time in centiseconds (geq), with a GOP of --gop seconds, in real time (-re) to a release
build of weir. The wall clock at which media time 0 left the encoder is taken from FFmpeg's
-progress reports (the smallest wall clock minus out_time seen). For each player of the page
(hls.js in Low-Latency mode, hls.js plain, hls.js on MPEG-TS, mpegts.js on HTTP-FLV, dash.js),
scripts/latency.cjs reads the stripes off the picture on screen 4 times a second and reports the
wall clock minus the media time shown. Needs what scripts/setup.sh installs (Chromium, the npm
packages) and `cargo build --release`. Results: bench-results/latency-<time>/.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

repo = Path(__file__).resolve().parent.parent
tools = Path(os.environ.get("WEIR_TOOLS_DIR", Path.home() / ".cache/weir-tools"))
modules = tools / "browser" / "node_modules"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--gop", type=int, default=2)
    ap.add_argument("--techs", default="llhls hls ts flv dash")
    args = ap.parse_args()
    out = repo / "bench-results" / time.strftime("latency-%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    libs = out / "libs"
    libs.mkdir()
    for src, name in [("hls.js/dist/hls.min.js", "hls.min.js"), ("mpegts.js/dist/mpegts.js", "mpegts.js"),
                      ("dashjs/dist/modern/umd/dash.all.min.js", "dash.all.min.js")]:
        (libs / name).write_bytes((modules / src).read_bytes())
    (out / "weir.toml").write_text(f'[http]\nplayer_lib_dir = "{libs}"\n')
    rtmp, http = free_port(), free_port()
    weir = subprocess.Popen([str(repo / "target/release/weir"), "-c", str(out / "weir.toml"),
                             "--rtmp-addr", f"127.0.0.1:{rtmp}", "--http-addr", f"127.0.0.1:{http}", "--api-addr", "127.0.0.1:0",
                             "--log", "warn"], stdout=open(out / "weir.log", "w"), stderr=subprocess.STDOUT)
    time.sleep(1)
    stripes = "if(mod(floor(floor(T*100)/pow(2\\,floor(X*16/W)))\\,2)\\,235\\,16)"
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
         "-f", "lavfi", "-i", f"color=c=black:s=320x180:r=30,format=yuv420p,geq=lum='{stripes}':cb=128:cr=128",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
         "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", str(30 * args.gop),
         "-c:a", "aac", "-t", "600", "-progress", "pipe:1", "-stats_period", "0.2",
         "-f", "flv", f"rtmp://127.0.0.1:{rtmp}/live/lat"],
        stdout=subprocess.PIPE, stderr=open(out / "ffmpeg.log", "w"), text=True)
    offsets = []

    def progress():
        for line in ffmpeg.stdout:
            if line.startswith("out_time_us="):
                try:
                    offsets.append(time.time() * 1000 - int(line.split("=")[1]) / 1000)
                except ValueError:
                    pass
    threading.Thread(target=progress, daemon=True).start()
    # Start every packager and let the playlists fill (viewers join streams that have been
    # running for a while: a player that joins a two-segment playlist starts unusually close).
    time.sleep(2)
    for path in ["index.m3u8", "ts/index.m3u8", "index.mpd"]:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http}/live/lat/{path}", timeout=10).read()
        except OSError as err:
            print(f"warming {path}: {err}", file=sys.stderr)
    time.sleep(26)
    try:
        w0 = min(offsets)
        env = dict(os.environ, NODE_PATH=str(modules))
        result = subprocess.run(["node", str(repo / "scripts/latency.cjs"), f"http://127.0.0.1:{http}",
                                 "live/lat", str(int(w0)), str(args.seconds), *args.techs.split()],
                                capture_output=True, text=True, env=env, timeout=600)
        if result.returncode != 0:
            sys.exit(f"latency.cjs failed: {result.stderr}")
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    finally:
        ffmpeg.terminate()
        weir.terminate()
    names = {"llhls": "LL-HLS, hls.js (lowLatencyMode)", "hls": "HLS fMP4, hls.js (plain mode)",
             "ts": "HLS MPEG-TS, hls.js", "flv": "HTTP-FLV, mpegts.js", "dash": "DASH, dash.js"}
    lines = [f"Glass-to-glass latency, {args.gop} s GOP, 30 fps, samples over {args.seconds} s per player "
             f"(stream running 28 s, then 8 s of settling per player); seconds behind the encoder",
             "", "| output, player | p50 | min | max | samples |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        fmt = lambda v: "–" if v is None else f"{v:.2f}"
        lines.append(f"| {names.get(r['tech'], r['tech'])} | {fmt(r['p50'])} | {fmt(r['min'])} | "
                     f"{fmt(r['max'])} | {r['samples']} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    print(text)
    print(f"results in {out}")


if __name__ == "__main__":
    main()
