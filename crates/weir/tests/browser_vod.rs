//! Recordings in headless Chromium: the player page's DVR button plays a recorded live stream
//! from its recording (hls.js, a growing EVENT playlist the viewer can seek back in), and a
//! time range of the recordings plays through `vod.m3u8` with its finite duration.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::process::Command;
use std::time::Duration;

use common::access::http_get;
use common::browser::{play_pages, player_libs};
use common::process::ChildGuard;
use common::{tools, TestDir, WeirServer};
use weir::config::{AppRules, RecordFormat, RecordRules};

#[test]
fn dvr_and_a_time_range_play_in_hls_js() {
    let dir = TestDir::new("browser-vod");
    let mut config = common::loopback_config();
    config.http.player_lib_dir = player_libs(dir.path()).display().to_string();
    config.apps.insert(
        "live".into(),
        AppRules {
            record: RecordRules {
                format: Some(RecordFormat::Fmp4),
                path: format!("{}/rec/{{stream}}/{{start}}.{{ext}}", dir.path().display()),
                dvr_secs: 120,
                ..RecordRules::default()
            },
            ..AppRules::default()
        },
    );
    let weir = WeirServer::start_with(config, dir.path());
    let http = weir.http_addr();
    let mut cmd = Command::new(tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-profile:v",
            "baseline",
        ])
        .args(["-g", "30", "-c:a", "aac", "-t", "16", "-f", "flv"])
        .arg(weir.url("rec"));
    let mut publisher = ChildGuard::spawn("ffmpeg-publish", cmd, dir.path());
    weir.wait_published(&["live/rec"], Duration::from_secs(15));
    // Some recording first: the DVR then has seconds to seek back into.
    std::thread::sleep(Duration::from_secs(6));
    let (_, body) = http_get(http, "/streams.json");
    let streams: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(streams[0]["dvr_secs"], 120, "{streams}");

    let dvr = play_pages(
        &[format!("http://{http}/?stream=live/rec&tech=dvr")],
        5,
        dir.path(),
    );
    let page = &dvr[0];
    assert!(page.errors.is_empty() && page.logs.is_empty(), "{page:?}");
    let (first, last) = (page.times[0], *page.times.last().unwrap());
    assert!(last - first >= 3.0, "the DVR did not play: {page:?}");
    let (from, to) = page.seekable.expect("a seekable range");
    // The recorded past (6 s before the page opened, and what came since) is seekable.
    assert!(to - from >= 8.0, "cannot seek back far: {page:?}");
    publisher.expect_success(Duration::from_secs(30));

    // A 6 s range of the finished recording.
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = http_get(http, "/live/rec/recordings");
    let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let start =
        humantime::parse_rfc3339(listing["recordings"][0]["start"].as_str().unwrap()).unwrap();
    let at =
        |secs: u64| humantime::format_rfc3339_millis(start + Duration::from_secs(secs)).to_string();
    let url = format!(
        "http://{http}/?stream=live/rec&tech=vod&start={}&end={}",
        at(4),
        at(10)
    );
    let vod = play_pages(&[url], 5, dir.path());
    let page = &vod[0];
    assert!(page.errors.is_empty() && page.logs.is_empty(), "{page:?}");
    let duration = page.duration.expect("a finite duration");
    // 4 s to 10 s in whole 1 s GOPs: 6 s, give or take a GOP at each end.
    assert!(
        (5.0..=8.1).contains(&duration),
        "duration {duration}: {page:?}"
    );
    let last = *page.times.last().unwrap();
    assert!(last >= 3.0, "the range did not play: {page:?}");
    weir.shutdown();
}
