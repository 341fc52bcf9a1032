//! Stream health diagnostics against deliberately bad FFmpeg streams: each shows its finding
//! in `GET /api/v1/streams/{app}/{name}` within a few seconds, and a clean stream shows none.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::process::ChildGuard;
use common::{tools, TestDir, WeirServer};

/// FFmpeg encoding a 320x180 test pattern and a tone to `url` with `extra` options; `input`
/// options go before the inputs (`-re`, `-itsoffset` for the tone is `audio_input`).
fn publish(
    name: &str,
    url: &str,
    realtime: bool,
    audio_input: &[&str],
    output: &[&str],
    dir: &std::path::Path,
) -> ChildGuard {
    let mut cmd = Command::new(tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.args(audio_input)
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "40", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-tune", "zerolatency", "-pix_fmt", "yuv420p", "-c:a", "aac"])
        .args(output)
        .args(["-f", "flv", url]);
    ChildGuard::spawn(name, cmd, dir)
}

/// The health codes of `live/{name}` now (None: no such stream yet).
fn codes(api: SocketAddr, name: &str) -> Option<Vec<String>> {
    let mut socket = TcpStream::connect(api).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        socket,
        "GET /api/v1/streams/live/{name} HTTP/1.0\r\nHost: t\r\n\r\n"
    )
    .unwrap();
    let mut data = Vec::new();
    let _ = socket.read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data);
    let body = text.split("\r\n\r\n").nth(1)?;
    let stream: Value = serde_json::from_str(body).ok()?;
    Some(
        stream["health"]
            .as_array()?
            .iter()
            .map(|f| format!("{}: {}", f["code"].as_str().unwrap_or("?"), f["message"]))
            .collect(),
    )
}

/// Waits until `live/{name}` shows a finding `code` (or `timeout`); the findings last seen.
fn wait_for(api: SocketAddr, name: &str, code: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut last = Vec::new();
    while Instant::now() < deadline {
        if let Some(found) = codes(api, name) {
            if found.iter().any(|f| f.starts_with(&format!("{code}:"))) {
                return found;
            }
            last = found;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("live/{name}: no {code} within {timeout:?}; findings: {last:?}");
}

#[test]
fn bad_streams_show_their_findings_and_a_clean_one_none() {
    let dir = TestDir::new("health");
    let weir = WeirServer::start_with(common::loopback_config(), dir.path());
    let api = weir.api_addr();
    let url = |name: &str| weir.url(name);
    let gop = ["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut all: Vec<&'static str> =
            vec!["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"];
        all.extend_from_slice(extra);
        all
    };
    let started = Instant::now();
    let mut publishers = vec![
        publish("clean", &url("clean"), true, &[], &gop, dir.path()),
        publish(
            "gop300",
            &url("gop"),
            true,
            &[],
            &["-g", "300", "-keyint_min", "300", "-sc_threshold", "0"],
            dir.path(),
        ),
        publish(
            "dropped",
            &url("dropped"),
            true,
            &[],
            &with(&[
                "-vf",
                "select='not(eq(mod(n\\,3)\\,0))'",
                "-fps_mode",
                "passthrough",
            ]),
            dir.path(),
        ),
        publish(
            "drift",
            &url("drift"),
            true,
            &["-itsoffset", "1"],
            &gop,
            dir.path(),
        ),
        publish(
            "jump",
            &url("jump"),
            true,
            &[],
            &with(&[
                "-vf",
                "setpts='if(gte(T,3),PTS+5/TB,PTS)'",
                "-af",
                "asetpts='if(gte(T,3),PTS+5/TB,PTS)'",
            ]),
            dir.path(),
        ),
    ];
    weir.wait_published(
        &[
            "live/clean",
            "live/drift",
            "live/dropped",
            "live/gop",
            "live/jump",
        ],
        Duration::from_secs(15),
    );
    let mut table = Vec::new();
    for (name, code) in [
        ("gop", "keyframe_interval_long"),
        ("dropped", "fps_below_metadata"),
        ("dropped", "frames_dropped"),
        ("drift", "av_drift"),
        ("jump", "timestamp_jump"),
    ] {
        let found = wait_for(api, name, code, Duration::from_secs(15));
        table.push(format!(
            "{name}: {code} after {:.1} s: {found:?}",
            started.elapsed().as_secs_f64()
        ));
    }
    // The clean stream, by now well past its first seconds, shows nothing.
    let clean = codes(api, "clean").expect("live/clean");
    assert!(clean.is_empty(), "a clean stream has findings: {clean:?}");
    for publisher in &mut publishers {
        publisher.kill();
    }

    // A publisher without -re floods in faster than real time.
    let _burst = publish(
        "burst",
        &url("burst"),
        false,
        &[],
        &with(&["-t", "600"]),
        dir.path(),
    );
    let found = wait_for(api, "burst", "ingest_burst", Duration::from_secs(15));
    table.push(format!("burst: ingest_burst: {found:?}"));
    println!("{}", table.join("\n"));
    // The log says it too (read every 2 s, rate-limited per stream and finding).
    let deadline = Instant::now() + Duration::from_secs(6);
    while !weir.log_text().contains("live/burst: media time arrives") {
        assert!(Instant::now() < deadline, "no health line in the log");
        std::thread::sleep(Duration::from_millis(200));
    }
    weir.shutdown();
}
