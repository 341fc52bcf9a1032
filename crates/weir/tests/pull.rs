//! Pull relays (edge mode): an edge weir with `[apps.live.pull]` pulls a stream from an origin
//! weir when players ask for it. 50 byte-level players and FFmpeg play on the edge over one
//! upstream connection; the origin's publisher restarts and the edge's players go on; the
//! pull stops `idle_secs` after the last player left.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::time::{Duration, Instant};

use common::access::play_across_republish;
use common::fixtures::{small_fixture, SMALL_HEIGHT, SMALL_WIDTH};
use common::{ffmpeg_play_to_flv, ffmpeg_publish, Expect, Ffmpeg, TestDir, WeirServer};
use weir::config::{AppRules, PullRules};

const PLAYERS: usize = 50;
/// Media messages each edge player waits for from the second publisher (~2 s).
const AFTER_REPUBLISH: usize = 136;

#[test]
fn an_edge_pulls_once_for_many_players_follows_a_republish_and_stops_when_idle() {
    let dir = TestDir::new("pull");
    let origin_dir = dir.path().join("origin");
    std::fs::create_dir_all(&origin_dir).unwrap();
    let origin = WeirServer::start_with(common::loopback_config(), &origin_dir);
    let mut config = common::loopback_config();
    config.apps.insert(
        "live".into(),
        AppRules {
            pull: PullRules {
                url: format!("rtmp://{}/{{app}}/{{stream}}", origin.addr()),
                idle_secs: 2,
                ..PullRules::default()
            },
            ..AppRules::default()
        },
    );
    let edge = WeirServer::start_with(config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut first = origin.publish("cam", small_fixture(), dir.path());
    // 50 players on the edge, over the first publisher's end and the second's start: each
    // stays until 2 s of the second publisher's media came (bounded at 40 s).
    let players: Vec<_> = (0..PLAYERS)
        .map(|_| {
            runtime.spawn(play_across_republish(
                edge.addr(),
                "live",
                "cam",
                AFTER_REPUBLISH,
                Duration::from_secs(40),
            ))
        })
        .collect();
    edge.wait_published(&["live/cam"], Duration::from_secs(10));
    // FFmpeg plays from the edge too.
    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &edge.url("cam"), 1.5, dir.path());
    report.assert_matches(
        &Expect::h264_aac(SMALL_WIDTH, SMALL_HEIGHT).min_seconds(1.3),
        "played from the edge",
    );
    // One upstream connection for everyone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let edge_viewers = edge
            .hub()
            .stream_stats("live/cam")
            .map_or(0, |s| s.viewer_count());
        let origin_viewers = origin
            .hub()
            .stream_stats("live/cam")
            .map_or(0, |s| s.viewer_count());
        if edge_viewers >= PLAYERS {
            assert_eq!(
                origin_viewers, 1,
                "the origin sees one player: the edge's pull"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{edge_viewers} players on the edge\n{}",
            edge.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    first.child().expect_success(Duration::from_secs(30));
    // The origin's publisher comes back.
    let mut second = ffmpeg_publish(
        Ffmpeg::Debian,
        &origin.url("cam"),
        small_fixture(),
        true,
        dir.path(),
    );
    second.wait_started(Duration::from_secs(15));
    let mut counts = Vec::new();
    for player in players {
        let (before, after, statuses) = runtime.block_on(player).unwrap();
        counts.push((before, after));
        // Told of the first publisher's end, then of the next one's start.
        let left = statuses
            .iter()
            .position(|s| s.starts_with("NetStream.Play.UnpublishNotify"));
        let back = statuses
            .iter()
            .rposition(|s| s.starts_with("NetStream.Play.PublishNotify"));
        assert!(
            matches!((left, back), (Some(l), Some(b)) if b > l),
            "a player was not told of the republish: {statuses:?}"
        );
    }
    // The fixture sends ~68 messages a second (25 fps, 44.1 kHz AAC): every player got the
    // first publisher's media, then 2 s of the second's.
    let log = edge.log_text();
    assert!(
        log.matches("publish started (pulled)").count() >= 2,
        "the edge did not follow the republish\n{}",
        edge.log_tail(30)
    );
    assert!(
        counts
            .iter()
            .all(|&(before, after)| before > 200 && after >= AFTER_REPUBLISH),
        "a player got too little (before, after the republish): {counts:?}"
    );
    second.child().expect_success(Duration::from_secs(30));

    // Nobody watches: the pull stops after idle_secs and the origin loses its player.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !edge.log_text().contains("pull ended: nobody watched") {
        assert!(
            Instant::now() < deadline,
            "the pull did not stop\n{}",
            edge.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin
        .hub()
        .stream_stats("live/cam")
        .map_or(0, |s| s.viewer_count())
        > 0
    {
        assert!(Instant::now() < deadline, "the origin still has a player");
        std::thread::sleep(Duration::from_millis(50));
    }
    edge.shutdown();
    origin.shutdown();
}
