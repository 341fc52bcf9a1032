//! weir in-process with weir's own client on one side and Debian's FFmpeg on the other:
//! a publisher that stops and comes back while a player stays, a late joiner's first frames,
//! and our client as the publisher.

mod client_support;
#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::time::{Duration, Instant};

use common::fixtures::{HEIGHT, WIDTH};
use common::{ffmpeg_play_to_flv, ffmpeg_publish, fixture, Expect, Ffmpeg, FixtureKind, TestDir};
use tokio::sync::mpsc;
use weir::{Config, Server};
use weir_client::{read_flv_file, Client, ClientError, ClientEvent, PublishOptions, RtmpUrl};
use weir_rtmp::command::code;

use client_support::{collect, Received};

const START: Duration = Duration::from_secs(10);

async fn start_weir() -> Server {
    let mut config = Config::default();
    config.rtmp.addr = "127.0.0.1:0".parse().unwrap();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.api.addr = "127.0.0.1:0".parse().unwrap();
    Server::start(config).await.expect("start weir")
}

fn url(server: &Server, stream: &str) -> RtmpUrl {
    RtmpUrl::parse(&format!("rtmp://{}/live/{stream}", server.rtmp_addr())).unwrap()
}

/// A player task's events, with the time each arrived.
struct Events {
    rx: mpsc::UnboundedReceiver<(Instant, ClientEvent)>,
    all: Vec<(Instant, ClientEvent)>,
}

impl Events {
    /// Reads events until one is a status with `code`; returns its index in `all`.
    async fn until_status(&mut self, code: &str, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            let Ok(Some(item)) = next else {
                panic!(
                    "no {code} within {timeout:?} (player ended: {}); got {:?}",
                    matches!(next, Ok(None)),
                    Received::from(&self.all)
                );
            };
            let hit = matches!(&item.1, ClientEvent::Status { status, .. } if status.code == code);
            self.all.push(item);
            if hit {
                return self.all.len() - 1;
            }
        }
    }
}

/// Plays `url` in a task that forwards every event until the connection fails.
async fn spawn_player(url: &RtmpUrl) -> (Events, tokio::task::JoinHandle<ClientError>) {
    let mut client = Client::connect(url).await.expect("connect to weir");
    client.play(&url.stream).await.expect("play before publish");
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match client.next_event(Duration::from_secs(60)).await {
                Ok(Some(event)) => {
                    if tx.send((Instant::now(), event)).is_err() {
                        return ClientError::Closed;
                    }
                }
                Ok(None) => {}
                Err(e) => return e,
            }
        }
    });
    let events = Events {
        rx,
        all: Vec::new(),
    };
    (events, task)
}

/// Publishes the baseline fixture with ffmpeg for about `seconds`, then stops it with SIGINT.
async fn ffmpeg_publish_for(url: &RtmpUrl, seconds: f64, dir: &TestDir) {
    let url = url.to_string();
    let log_dir = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut publisher = ffmpeg_publish(
            Ffmpeg::Debian,
            &url,
            fixture(FixtureKind::H264Baseline),
            true,
            &log_dir,
        );
        publisher.wait_started(START);
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let status = publisher.child().stop(Duration::from_secs(5));
        eprintln!("ffmpeg publisher stopped: {status:?}");
    })
    .await
    .unwrap();
}

fn video_ts(events: &[(Instant, ClientEvent)]) -> Vec<u32> {
    Received::from(events).video_ts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn player_stays_through_publisher_restart() {
    let dir = TestDir::new("republish");
    let server = start_weir().await;
    let url = url(&server, "x");
    let (mut events, player) = spawn_player(&url).await;

    ffmpeg_publish_for(&url, 3.0, &dir).await;
    let unpublish = events
        .until_status(code::PLAY_UNPUBLISH_NOTIFY, Duration::from_secs(5))
        .await;
    let first_run = video_ts(&events.all[..unpublish]);
    assert!(
        first_run.len() >= 80,
        "first publish: {} video messages",
        first_run.len()
    );
    // Still connected after the publisher left.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!player.is_finished(), "player dropped: {:?}", player.await);

    let again = {
        let url = url.clone();
        let dir_path = TestDir::new("republish-2");
        tokio::spawn(async move { ffmpeg_publish_for(&url, 2.5, &dir_path).await })
    };
    let notify = events
        .until_status(code::PLAY_PUBLISH_NOTIFY, Duration::from_secs(10))
        .await;
    // The whole second run: until its publisher (2.5 s) leaves too.
    again.await.unwrap();
    events
        .until_status(code::PLAY_UNPUBLISH_NOTIFY, Duration::from_secs(10))
        .await;
    let second_run = video_ts(&events.all[notify..]);
    assert!(
        second_run.len() >= 50,
        "after the restart: {} video messages",
        second_run.len()
    );

    let (before, after) = (*first_run.last().unwrap(), second_run[0]);
    eprintln!(
        "video timestamps: first run {}..{before} ms, second run {after}..{} ms",
        first_run[0],
        second_run.last().unwrap()
    );
    assert!(
        after >= before && after - before < 1000,
        "timestamps not continuous across the restart: {before} -> {after}"
    );
    let all = video_ts(&events.all);
    assert!(
        all.windows(2).all(|w| w[1] >= w[0]),
        "video timestamps go backwards: {all:?}"
    );
    assert!(!player.is_finished(), "player dropped: {:?}", player.await);
    player.abort();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_gets_metadata_headers_then_keyframe() {
    let dir = TestDir::new("late-joiner");
    let server = start_weir().await;
    let url = url(&server, "late");
    let publish_url = url.to_string();
    let log_dir = dir.path().to_owned();
    let mut publisher = tokio::task::spawn_blocking(move || {
        let mut p = ffmpeg_publish(
            Ffmpeg::Debian,
            &publish_url,
            fixture(FixtureKind::H264Baseline),
            true,
            &log_dir,
        );
        p.wait_started(START);
        p
    })
    .await
    .unwrap();
    // Join mid-GOP (keyframes every second).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let connect_at = Instant::now();
    let mut client = Client::connect(&url).await.expect("connect to weir");
    let play_at = Instant::now();
    client.play(&url.stream).await.expect("play");
    let events = collect(&mut client, Duration::from_millis(1500)).await;
    client.close().await.unwrap();
    let seen = Received::from(&events);
    let first_key = events
        .iter()
        .find(|(_, e)| {
            matches!(e, ClientEvent::Media { media_type: weir_rtmp::session::MediaType::Video, payload, timestamp, .. }
                if weir_media::Frame::video(*timestamp, payload.clone()).info.is_keyframe)
        })
        .map(|(at, _)| *at)
        .expect("a keyframe");
    eprintln!(
        "late joiner: time to first keyframe {:?} from play ({:?} from connect); order {:?}",
        first_key - play_at,
        first_key - connect_at,
        &seen.order[..4.min(seen.order.len())]
    );
    assert_eq!(
        &seen.order[..4],
        [
            "metadata",
            "video-sequence-header",
            "audio-sequence-header",
            "video-keyframe"
        ],
        "{seen:?}"
    );
    assert!(
        first_key - play_at < Duration::from_millis(500),
        "the GOP cache should give the keyframe at once"
    );
    // The cached GOP arrives as a burst: about half a second of video in no time.
    assert!(seen.video >= 30, "{seen:?}");
    tokio::task::spawn_blocking(move || publisher.child().stop(Duration::from_secs(5)))
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_publishes_ffmpeg_plays() {
    let dir = TestDir::new("client-publish-weir");
    let server = start_weir().await;
    let url = url(&server, "ours");
    let tags = read_flv_file(&fixture(FixtureKind::H264Baseline).path)
        .await
        .unwrap();
    // 180 frames + the sequence header + the end-of-sequence FFmpeg writes.
    let video_tags = tags
        .iter()
        .filter(|t| t.kind == weir_media::MediaKind::Video)
        .count() as u64;
    assert_eq!(video_tags, 182);

    let mut client = Client::connect(&url).await.expect("connect to weir");
    client.publish(&url.stream).await.expect("publish to weir");
    let publisher = tokio::spawn(async move {
        let options = PublishOptions {
            realtime: true,
            looping: false,
        };
        let started = Instant::now();
        let stats = client.publish_tags(&tags, options).await;
        let elapsed = started.elapsed();
        client.close().await.map(|()| (stats, elapsed))
    });

    // A second publisher of the same key is refused with the server's status.
    let mut second = Client::connect(&url).await.expect("second connect");
    match second.publish(&url.stream).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, code::PUBLISH_BAD_NAME),
        other => panic!("second publisher: {other:?}"),
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let play_url = url.to_string();
    let log_dir = dir.path().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        ffmpeg_play_to_flv(Ffmpeg::Debian, &play_url, 3.0, &log_dir)
    })
    .await
    .unwrap();
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8),
        "ffmpeg play of our client's stream via weir",
    );
    let (stats, elapsed) = publisher.await.unwrap().unwrap();
    let stats = stats.unwrap();
    eprintln!("our publisher sent {stats:?} in {elapsed:?}");
    // Paced by timestamp: the last tag (5990 ms) goes out 5.99 s after the first (plus the
    // close and, on a loaded machine, a late wake-up).
    let paced = elapsed.as_secs_f64() * 1000.0 - f64::from(stats.last_timestamp);
    assert!(
        (0.0..250.0).contains(&paced),
        "pacing off by {paced:.1} ms: {elapsed:?} for {} ms of media",
        stats.last_timestamp
    );
    assert_eq!((stats.video, stats.loops), (video_tags, 1), "{stats:?}");
    server.shutdown().await;
}
