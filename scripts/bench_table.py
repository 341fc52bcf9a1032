#!/usr/bin/env python3
"""Markdown summary of a scripts/bench.sh results directory (stdlib only).

    scripts/bench_table.py bench-results/<timestamp>

Reads <server>-<kind>-<count>.json (weir-bench reports) and prints, per scenario, the servers
side by side.
"""

import json
import re
import sys
from pathlib import Path

SERVER_ORDER = ["weir", "nginx"]
KIND_ORDER = ["fanout", "flvfanout", "llhlsfanout", "ingest", "streams", "idle"]
NAME = re.compile(r"^(?P<server>[a-z]+)-(?P<kind>fanout|flvfanout|llhlsfanout|ingest|streams|idle)-(?P<n>\d+(?:x\d+)?)\.json(?P<failed>\.failed)?$")


def dash(value):
    return "–" if value is None else value


def num(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def mib(value):
    return "–" if value is None else f"{value / 2**20:,.1f} MiB"


def kib(value):
    return "–" if value is None else f"{value / 2**10:,.1f} KiB"


def summary(report, key, fields, digits=0):
    s = report.get(key) or {}
    if not s.get("count"):
        return "–"
    return " / ".join(num(s.get(f), digits) for f in fields)


def rows(kind, r):
    """(metric, value) pairs for one report."""
    asked = r["players"]
    if kind == "idle":
        held = f"{asked - r['disconnects']:,} / {asked:,} connected"
    else:
        held = f"{r['players_held']:,} / {asked:,}"
    disconnects = f"{r['disconnects']:,}"
    if r["disconnect_reasons"]:
        reason, count = max(r["disconnect_reasons"], key=lambda rc: rc[1])
        disconnects += f" ({count:,}× {reason})"
    out = [
        ("players held / asked", held),
        ("disconnects", disconnects),
    ]
    if kind != "idle":
        out += [
            ("fps min / p50", summary(r, "fps", ["min", "p50"], 1)),
            ("server CPU s per GB", num(r.get("server_cpu_s_per_gb"), 2)),
            ("server cores", num(r.get("server_cores"), 2)),
            ("latency ms p50 / p99 / max", summary(r, "latency_ms", ["p50", "p99", "max"], 1)),
            ("time to first frame ms p50", summary(r, "time_to_first_frame_ms", ["p50"])),
        ]
    if kind == "llhlsfanout":
        out += [("last frame of a part: latency ms p50 / p99 / max",
                 summary(r, "part_end_latency_ms", ["p50", "p99", "max"], 1))]
    out += [("server peak RSS", mib(r.get("server_peak_rss")))]
    if kind == "idle":
        out += [("server RSS per connection", kib(r.get("server_rss_per_player")))]
        out += [("server cores", num(r.get("server_cores"), 2))]
    out += [("loadgen CPU s", num(r.get("loadgen_cpu_s"), 2))]
    if r.get("publisher_errors"):
        errors = r["publisher_errors"]
        out += [("publisher errors", f"{len(errors)} ({errors[0]})")]
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results = Path(sys.argv[1])
    runs = {}  # (kind, n) -> {server: report or None}
    for path in results.iterdir():
        m = NAME.match(path.name)
        if not m:
            continue
        report = None
        if not m["failed"]:
            try:
                report = json.loads(path.read_text())
            except (OSError, ValueError):
                report = None
        runs.setdefault((m["kind"], m["n"]), {})[m["server"]] = report

    def server_key(s):
        return (SERVER_ORDER.index(s) if s in SERVER_ORDER else len(SERVER_ORDER), s)

    servers = sorted({s for by in runs.values() for s in by}, key=server_key)
    machine = results / "machine.txt"
    print(f"## Benchmark results ({results.name})\n")
    if machine.exists():
        print("```\n" + machine.read_text().rstrip() + "\n```\n")
    labels = {"weir": "weir", "nginx": "nginx-rtmp"}
    for kind, n in sorted(runs, key=lambda k: (KIND_ORDER.index(k[0]), [int(x) for x in k[1].split("x")])):
        by = runs[(kind, n)]
        count = n.split("x")
        title = {
            "fanout": lambda: f"fan-out: 1 publisher, {int(n):,} players",
            "flvfanout": lambda: f"HTTP-FLV fan-out: 1 RTMP publisher, {int(n):,} HTTP-FLV players",
            "llhlsfanout": lambda: f"LL-HLS fan-out: 1 RTMP publisher, {int(n):,} Low-Latency HLS clients (blocking reload, every part)",
            "ingest": lambda: f"ingest: {int(n):,} publishers, one player each",
            "streams": lambda: f"streams: {count[0]} publishers with {count[-1]} players each",
            "idle": lambda: f"idle: {int(n):,} players waiting on an unpublished key",
        }[kind]()
        print(f"### {title}\n")
        print("| metric | " + " | ".join(labels.get(s, s) for s in servers) + " |")
        print("|---|" + "---:|" * len(servers))
        table = {}
        order = []
        for s in servers:
            report = by.get(s)
            if report is None:
                continue
            for metric, value in rows(kind, report):
                if metric not in table:
                    table[metric] = {}
                    order.append(metric)
                table[metric][s] = value
        if not order:
            order = ["players held / asked"]
            table = {order[0]: {}}
        for metric in order:
            cells = []
            for s in servers:
                if s not in by:
                    cells.append("not run")
                elif by[s] is None:
                    cells.append("failed")
                else:
                    cells.append(str(dash(table[metric].get(s))))
            print(f"| {metric} | " + " | ".join(cells) + " |")
        print()
    print(
        "Latency is server-added: receive time minus send time of the same video frame, "
        "in one process on loopback.\n"
        "nginx-rtmp has no GOP cache: a new player waits for the next keyframe (2 s GOP), "
        "which its time to first frame includes. weir starts a player at the cached keyframe.\n"
        "A player is held when it stays connected and keeps 95% of the source frame rate."
    )
    notes = results / "notes.txt"
    if notes.exists():
        print("\nNotes:\n" + notes.read_text().rstrip())


if __name__ == "__main__":
    main()
