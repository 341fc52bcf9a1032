//! The player page in headless Chromium (Debian's, driven by playwright-core through
//! `tests/browser/play.cjs`), with the player libraries served from npm-installed copies
//! (`http.player_lib_dir`): H.264/AAC plays over Low-Latency HLS (fMP4), HLS-TS, HTTP-FLV
//! and DASH, AV1/Opus over Low-Latency HLS, and an E-RTMP multitrack publish shows two
//! renditions in hls.js, which switches from one to the other (the picture size changes). Each
//! page is sampled for several seconds: the picture must advance with no player error. A
//! Low-Latency HLS page paused for 4 s jumps back to live when played again.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::browser::play_pages;
use common::process::ChildGuard;
use common::{tools, TestDir, WeirServer};

fn lavfi_publish(
    ffmpeg: &Path,
    name: &str,
    url: &str,
    inputs: &[&str],
    codecs: &[&str],
    dir: &Path,
) -> ChildGuard {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    for i in 0..inputs.len() {
        cmd.args(["-map", &i.to_string()]);
    }
    // A bound in case the test dies without dropping the guard; the test stops them sooner.
    cmd.args(codecs).args(["-t", "120", "-f", "flv", url]);
    ChildGuard::spawn(name, cmd, dir)
}

#[test]
fn the_player_page_plays_every_output_in_chromium() {
    let dir = TestDir::new("browser");
    // The page loads the npm-installed player libraries from the server.
    let libs = common::browser::player_libs(dir.path());
    let mut config = common::loopback_config();
    config.http.player_lib_dir = libs.display().to_string();
    let weir = WeirServer::start_with(config, dir.path());
    let http = weir.http_addr();

    let h264 = lavfi_publish(
        tools::ffmpeg(),
        "ffmpeg-h264",
        &weir.url("h264"),
        &[
            "testsrc2=size=640x360:rate=30",
            "sine=frequency=440:sample_rate=48000",
        ],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "baseline",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
        dir.path(),
    );
    let av1 = lavfi_publish(
        tools::ffmpeg_recent(),
        "ffmpeg-av1",
        &weir.url("av1"),
        &[
            "testsrc2=size=320x180:rate=30",
            "sine=frequency=660:sample_rate=48000",
        ],
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-g",
            "30",
            "-c:a",
            "libopus",
        ],
        dir.path(),
    );
    let multitrack = lavfi_publish(
        tools::ffmpeg_recent(),
        "ffmpeg-multitrack",
        &weir.url("mt"),
        &[
            "testsrc2=size=640x360:rate=30",
            "testsrc2=size=320x180:rate=30",
            "sine=frequency=440:sample_rate=48000",
        ],
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
        dir.path(),
    );
    weir.wait_published(
        &["live/h264", "live/av1", "live/mt"],
        Duration::from_secs(20),
    );
    // A few segments first, so every player starts inside a window.
    std::thread::sleep(Duration::from_secs(3));

    let page =
        |stream: &str, tech: &str| format!("http://{http}/?stream=live/{stream}&tech={tech}");
    let targets = [
        page("h264", "llhls"),
        page("h264", "ts"),
        page("h264", "flv"),
        page("h264", "dash"),
        page("av1", "llhls"),
        format!("{}|switch", page("mt", "llhls")),
        format!("{}|pause", page("h264", "llhls")),
    ];
    // Two groups of pages, so Chromium's decoding and the three encoders fit on two cores.
    let mut runs = play_pages(&targets[..4], 10, dir.path());
    runs.extend(play_pages(&targets[4..], 12, dir.path()));
    assert_eq!(runs.len(), targets.len());
    let mut report = String::new();
    for run in &runs {
        report.push_str(&format!(
            "{} {} played {:?}s latency {:?} (jumps to live {}) width {} levels {} level {} errors {:?} logs {:?}\n",
            run.url,
            run.action.as_deref().unwrap_or(""),
            run.times.last(),
            run.latency,
            run.jumps,
            run.width,
            run.levels,
            run.level,
            run.errors,
            run.logs.iter().take(3).collect::<Vec<_>>()
        ));
        // Each sample's position and distance to live, for a run that went wrong.
        let series: Vec<String> = run
            .times
            .iter()
            .zip(&run.latencies)
            .map(|(t, l)| match l {
                Some(l) => format!("{t:.1}/{l:.1}"),
                None => format!("{t:.1}/-"),
            })
            .collect();
        report.push_str(&format!("  position/behind: {}\n", series.join(" ")));
    }
    println!("{report}");
    for run in &runs {
        assert!(run.errors.is_empty(), "player errors:\n{report}");
        // The picture advances: at least 4 s of the 10 s window, still moving in the last 3 s.
        let first_moving = run
            .times
            .iter()
            .position(|&t| t > 0.0)
            .unwrap_or(run.times.len());
        let played = run.times.last().copied().unwrap_or(0.0)
            - run.times[first_moving.min(run.times.len() - 1)];
        assert!(played >= 4.0, "{} played {played:.1}s:\n{report}", run.url);
        let tail = &run.times[run.times.len() - 6..];
        assert!(
            tail[5] > tail[0],
            "{} stalled at the end:\n{report}",
            run.url
        );
        assert!(run.width > 0, "{} shows no picture:\n{report}", run.url);
    }
    let mt = runs.iter().find(|r| r.url.contains("live/mt")).unwrap();
    assert!(mt.levels >= 2, "multitrack renditions in hls.js:\n{report}");
    // hls.js was told to switch to the rendition it was not playing: both pictures showed.
    assert!(
        mt.widths.contains(&320) && mt.widths.contains(&640),
        "hls.js did not switch between the renditions: widths {:?}\n{report}",
        mt.widths
    );
    // A loose bound: this machine also runs three encoders and six players here, and a page
    // that starts slowly starts far behind (the page then catches up: 1.5x, or a jump);
    // BENCHMARKS.md has the latency measured on a quiet machine.
    for ll in runs.iter().filter(|r| r.url.contains("tech=llhls")) {
        if ll.action.as_deref() == Some("pause") {
            // Paused 4 s: far behind live when played again (the rate catch-up alone would
            // still be 3 s behind at the end), so the page jumped to live.
            assert!(
                ll.jumps >= 1 && ll.latency.is_some_and(|l| l < 3.0),
                "{}: no jump to live after the pause:\n{report}",
                ll.url
            );
        }
        assert!(
            ll.latency.is_some_and(|l| l < 6.0),
            "Low-Latency HLS latency of {}:\n{report}",
            ll.url
        );
    }
    drop((h264, av1, multitrack));
    weir.shutdown();
}
