//! Push relays to several independent targets at once: two nginx-rtmp servers and a weir
//! over RTMPS (trusted through `ca_file`). The weir target restarts mid-stream and the relay
//! reconnects while FFmpeg players on the nginx targets see no gap; a target frozen with
//! SIGSTOP (it accepts and then never reads) holds a bounded amount of data, skips, and slows
//! nobody else.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::process::ChildGuard;
use common::tls::certificate;
use common::{ffmpeg_play_to_flv, tools, Ffmpeg, NginxRtmp, TestDir, WeirServer};
use serde_json::Value;
use weir::config::{AppRules, PushTarget};
use weir_rtmp::chunk::ChunkMessage;

/// FFmpeg publishing `seconds` of a 25 fps test pattern with a tone to `url`, in real time.
fn publish_pattern(url: &str, seconds: u32, dir: &std::path::Path) -> ChildGuard {
    let mut cmd = Command::new(tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-c:v", "libx264", "-g", "25", "-c:a", "aac", "-t"])
        .arg(seconds.to_string())
        .args(["-f", "flv", url]);
    ChildGuard::spawn("ffmpeg-publish", cmd, dir)
}

/// The `relays` of `app/stream` in the weir's API.
fn relays(weir: &WeirServer, path: &str) -> Vec<Value> {
    let (status, body) =
        common::access::http_get(weir.api_addr(), &format!("/api/v1/streams/{path}"));
    assert!(status.contains("200"), "{status}");
    let stream: Value = serde_json::from_slice(&body).unwrap();
    stream["relays"].as_array().cloned().unwrap_or_default()
}

fn target(url: String) -> PushTarget {
    PushTarget {
        url,
        ca_file: String::new(),
    }
}

#[test]
fn two_nginx_and_an_rtmps_weir_get_the_stream_and_a_restart_disturbs_no_other() {
    let dir = TestDir::new("push-targets");
    let (cert, key) = certificate(dir.path(), "b");
    let (nginx1, nginx2) = (NginxRtmp::start(), NginxRtmp::start());
    let rtmps_port = common::free_port();
    let b_config = || {
        let mut config = common::loopback_config();
        config.rtmps.addr = format!("127.0.0.1:{rtmps_port}").parse().unwrap();
        config.rtmps.cert_file = cert.display().to_string();
        config.rtmps.key_file = key.display().to_string();
        config
    };
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let b = WeirServer::start_with(b_config(), &b_dir);
    let mut config = common::loopback_config();
    config.apps.insert(
        "live".into(),
        AppRules {
            push: vec![
                target(nginx1.url("{stream}")),
                target(nginx2.url("{stream}")),
                PushTarget {
                    url: format!("rtmps://127.0.0.1:{rtmps_port}/live/{{stream}}"),
                    ca_file: cert.display().to_string(),
                },
            ],
            ..AppRules::default()
        },
    );
    let a = WeirServer::start_with(config, dir.path());
    let mut publisher = publish_pattern(&a.url("cam"), 14, dir.path());
    a.wait_published(&["live/cam"], Duration::from_secs(15));
    b.wait_published(&["live/cam"], Duration::from_secs(10));

    // FFmpeg plays from both nginx servers while the RTMPS target restarts.
    let players: Vec<_> = [nginx1.url("cam"), nginx2.url("cam")]
        .into_iter()
        .map(|url| {
            let log_dir = dir.path().to_owned();
            std::thread::spawn(move || ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 7.0, &log_dir))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    b.shutdown();
    let b = WeirServer::start_with(b_config(), &b_dir);
    b.wait_published(&["live/cam"], Duration::from_secs(10));
    for (i, player) in players.into_iter().enumerate() {
        let report = player.join().unwrap();
        let gaps = report.video_timeline_problems(200);
        assert!(
            gaps.is_empty(),
            "nginx {}: {gaps:?}\n{}",
            i + 1,
            report.summary()
        );
        assert!(
            report.duration_s() >= 6.5,
            "nginx {}: {}",
            i + 1,
            report.summary()
        );
    }
    // The stream is back on the restarted target, over RTMPS, and plays there.
    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &b.url("cam"), 1.0, dir.path());
    assert!(report.video_frames() >= 20, "{}", report.summary());
    let states = relays(&a, "live/cam");
    assert_eq!(states.len(), 3, "{states:?}");
    for relay in &states {
        assert_eq!(relay["connected"], true, "{relay}");
    }
    let rtmps = states
        .iter()
        .find(|r| {
            r["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("rtmps://"))
        })
        .unwrap();
    assert!(rtmps["retries"].as_u64() >= Some(1), "{rtmps}");
    // weir reads Multitrack and says so; nginx-rtmp does not.
    assert_eq!(rtmps["multitrack"], true, "{rtmps}");
    assert!(states.iter().filter(|r| r["multitrack"] == false).count() == 2);
    publisher.expect_success(Duration::from_secs(30));
    b.shutdown();
    a.shutdown();
}

/// The relay to `nginx` among `states`.
fn of<'a>(states: &'a [Value], nginx: &NginxRtmp) -> Option<&'a Value> {
    let port = format!(":{}/", nginx.addr().port());
    states
        .iter()
        .find(|r| r["target"].as_str().is_some_and(|t| t.contains(&port)))
}

/// Resident memory of this process (the in-process weir included), bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[test]
fn a_target_that_stops_reading_holds_bounded_data_and_slows_nobody() {
    let dir = TestDir::new("push-frozen");
    let (healthy, frozen) = (NginxRtmp::start(), NginxRtmp::start());
    let mut config = common::loopback_config();
    // The hub's ring (shared by every reader) full within 2.5 s of 200 KB frames, so what
    // grows after that is what the relays hold.
    config.streams.viewer_queue_frames = 64;
    config.apps.insert(
        "live".into(),
        AppRules {
            push: vec![
                target(healthy.url("{stream}")),
                target(frozen.url("{stream}")),
            ],
            ..AppRules::default()
        },
    );
    let a = WeirServer::start_with(config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A byte-level publisher at ~40 Mbit/s: 25 frames of 200 KB a second, a key frame a second.
    let (mut client, code, _) =
        runtime.block_on(common::access::publish_eagerly(a.addr(), "live", "fat"));
    assert_eq!(code, "NetStream.Publish.Start");
    let frame = |key: bool| {
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        let nal_len = 200_000u32;
        body.extend_from_slice(&nal_len.to_be_bytes());
        body.push(if key { 0x65 } else { 0x41 });
        body.resize(9 + nal_len as usize, 0xAB);
        Bytes::from(body)
    };
    let (key, delta) = (frame(true), frame(false));
    let started = Instant::now();
    let mut sent = 0u64;
    let mut n = 0u32;
    let mut frozen_at = None;
    let mut measured = Vec::new();
    while started.elapsed() < Duration::from_secs(18) {
        let payload = if n.is_multiple_of(25) {
            key.clone()
        } else {
            delta.clone()
        };
        sent += payload.len() as u64;
        runtime
            .block_on(client.send_message(&ChunkMessage {
                chunk_stream_id: 6,
                timestamp: 3 * 40 + n * 40,
                type_id: 9,
                stream_id: 1,
                payload,
            }))
            .unwrap();
        n += 1;
        // Real time: frame n is due at n × 40 ms.
        let due = Duration::from_millis(u64::from(n) * 40);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let elapsed = started.elapsed();
        if frozen_at.is_none() && elapsed >= Duration::from_secs(2) {
            // The frozen target accepts, then never reads again.
            unsafe { libc::kill(frozen.pid() as i32, libc::SIGSTOP) };
            frozen_at = Some(Instant::now());
        }
        if let Some(at) = frozen_at {
            // Looks at 4 s and 13 s after the freeze (the stuck connection is given up
            // after 8 s without progress).
            if measured.len() < 2
                && at.elapsed() >= Duration::from_secs(4 + 9 * measured.len() as u64)
            {
                let states = relays(&a, "live/fat");
                let bytes = |nginx: &NginxRtmp| {
                    of(&states, nginx)
                        .and_then(|r| r["bytes"].as_u64())
                        .unwrap_or(0)
                };
                measured.push((bytes(&healthy), bytes(&frozen), rss(), states.clone()));
            }
        }
    }
    unsafe { libc::kill(frozen.pid() as i32, libc::SIGCONT) };
    assert_eq!(
        measured.len(),
        2,
        "the publisher ran {:?}",
        started.elapsed()
    );
    let (healthy_1, frozen_1, rss_1, _) = measured[0].clone();
    let (healthy_2, frozen_2, rss_2, states) = measured[1].clone();
    let window = 9 * 25 * 200_000u64;
    // The healthy target got (nearly) everything sent in the nine seconds between the two looks.
    assert!(
        healthy_2 - healthy_1 > window * 9 / 10,
        "the healthy target got {} of {window} bytes while the other was frozen: {states:?}",
        healthy_2 - healthy_1
    );
    // The frozen one took at most its queues' worth (the client's 1 MiB and the sockets').
    assert!(
        frozen_2 - frozen_1 < 16 << 20,
        "{} bytes handed to a target that reads nothing: {states:?}",
        frozen_2 - frozen_1
    );
    // 45 MB went out meanwhile; memory did not follow it.
    assert!(
        rss_2 < rss_1 + (24 << 20),
        "resident memory grew from {rss_1} to {rss_2} bytes with a frozen target"
    );
    let frozen_state = of(&states, &frozen).unwrap();
    assert!(
        frozen_state["frames_skipped"].as_u64() > Some(0)
            || frozen_state["retries"].as_u64() > Some(0),
        "the frozen target's relay neither skipped nor failed: {frozen_state}"
    );
    println!(
        "sent {sent} bytes; healthy target +{} B, frozen +{} B, rss {rss_1} -> {rss_2}",
        healthy_2 - healthy_1,
        frozen_2 - frozen_1
    );
    drop(client);
    a.shutdown();
}
