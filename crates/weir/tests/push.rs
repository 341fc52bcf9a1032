//! Push relays: weir A re-publishes what FFmpeg publishes to it to weir B
//! (`[[apps.live.push]] url = "rtmp://B/live/{stream}"`); FFmpeg plays it from B. B is stopped
//! and started again on the same port mid-stream: A reconnects and the stream comes back on
//! B, while A's own viewer never notices.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::time::{Duration, Instant};

use common::access::play_and_count;
use common::fixtures::{small_fixture, SMALL_HEIGHT, SMALL_WIDTH};
use common::{ffmpeg_play_to_flv, ffmpeg_publish, Expect, Ffmpeg, TestDir, WeirServer};
use weir::config::{AppRules, PushTarget};

#[test]
fn a_stream_is_pushed_to_another_server_and_reconnects_when_it_returns() {
    let dir = TestDir::new("push");
    let port = common::free_port();
    let target_config = || {
        let mut config = common::loopback_config();
        config.rtmp.addr = format!("127.0.0.1:{port}").parse().unwrap();
        config
    };
    let target_dir = dir.path().join("b");
    std::fs::create_dir_all(&target_dir).unwrap();
    let b = WeirServer::start_with(target_config(), &target_dir);
    let mut config = common::loopback_config();
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            push: vec![PushTarget {
                url: format!("rtmp://127.0.0.1:{port}/live/{{stream}}"),
                ca_file: String::new(),
            }],
            ..AppRules::default()
        },
    );
    let a = WeirServer::start_with(config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &a.url("cam"),
        small_fixture(),
        true,
        dir.path(),
    );
    publisher.wait_started(Duration::from_secs(15));
    a.wait_published(&["live/cam"], Duration::from_secs(10));
    b.wait_published(&["live/cam"], Duration::from_secs(10));
    let a_viewer = runtime.spawn(play_and_count(
        a.addr(),
        "live",
        "cam",
        Duration::from_secs(6),
    ));
    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &b.url("cam"), 1.5, dir.path());
    report.assert_matches(
        &Expect::h264_aac(SMALL_WIDTH, SMALL_HEIGHT).min_seconds(1.3),
        "played from the push target",
    );

    // The target goes away and comes back on the same port: the relay reconnects.
    b.shutdown();
    let restarted_at = Instant::now();
    let b = WeirServer::start_with(target_config(), &target_dir);
    b.wait_published(&["live/cam"], Duration::from_secs(8));
    let back_after = restarted_at.elapsed();
    let (a_media, _, _) = runtime.block_on(a_viewer).unwrap();
    assert!(
        a_media > 200,
        "A's own viewer suffered from the target's restart: {a_media} messages"
    );
    // The relay's state in A's API: connected again, with the failures it went through.
    let mut api = std::net::TcpStream::connect(a.api_addr()).unwrap();
    std::io::Write::write_all(
        &mut api,
        b"GET /api/v1/streams/live/cam HTTP/1.0\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut api, &mut answer).unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let stream: serde_json::Value = serde_json::from_str(body).unwrap();
    let relay = &stream["relays"][0];
    assert_eq!(relay["connected"], true, "{stream}");
    assert!(relay["retries"].as_u64().is_some_and(|r| r >= 1), "{relay}");
    assert!(
        relay["bytes"].as_u64().is_some_and(|b| b > 10_000),
        "{relay}"
    );
    assert!(
        relay["target"]
            .as_str()
            .is_some_and(|t| t.ends_with("(key withheld)")),
        "{relay}"
    );
    let log = a.log_text();
    assert!(log.contains("push relay connected"), "{log}");
    assert!(log.contains("push relay failed"), "no retry logged");
    println!("the stream was back on the restarted target after {back_after:?}");
    publisher.wait_finished(Duration::from_secs(20));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.log_text().contains("push relay ended") {
        assert!(
            Instant::now() < deadline,
            "the relay did not end with the publisher"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    b.shutdown();
    a.shutdown();
}
