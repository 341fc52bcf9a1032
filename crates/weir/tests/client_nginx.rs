//! weir's RTMP client against nginx-rtmp, an independent server (which answers FFmpeg's
//! digest C1 with a complex handshake), with Debian's FFmpeg as the other end.

mod client_support;
mod common;

use std::time::Duration;

use common::fixtures::{HEIGHT, WIDTH};
use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, fixture, Expect, Ffmpeg, FixtureKind, NginxRtmp, TestDir,
};
use weir_client::{read_flv_file, Client, PublishOptions, RtmpUrl};

use client_support::{collect, Received};

const START: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_publishes_ffmpeg_plays() {
    let dir = TestDir::new("client-publish-nginx");
    let mut nginx = NginxRtmp::start();
    let url = RtmpUrl::parse(&nginx.url("cp")).unwrap();
    let fixture = fixture(FixtureKind::H264Baseline);
    let tags = read_flv_file(&fixture.path).await.unwrap();

    let mut client = Client::connect(&url).await.expect("connect to nginx");
    client.publish(&url.stream).await.expect("publish to nginx");
    // Loop the 6 s file, so the 4 s the player records cross the loop point (continuing
    // timestamps, no repeated sequence headers).
    let publisher = tokio::spawn(async move {
        let options = PublishOptions {
            realtime: true,
            looping: true,
        };
        client.publish_tags(&tags, options).await
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let play_url = url.to_string();
    let log_dir = dir.path().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        ffmpeg_play_to_flv(Ffmpeg::Debian, &play_url, 4.0, &log_dir)
    })
    .await
    .unwrap();
    assert!(
        !publisher.is_finished(),
        "publisher ended: {:?}",
        publisher.await
    );
    publisher.abort();
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(3.8),
        "ffmpeg play of our client's stream via nginx",
    );
    let d = report.duration_s();
    assert!(
        (3.8..=4.2).contains(&d),
        "duration {d}\n{}",
        report.summary()
    );
    nginx.assert_running();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_plays_what_ffmpeg_publishes() {
    let dir = TestDir::new("client-play-nginx");
    let nginx = NginxRtmp::start();
    let url = RtmpUrl::parse(&nginx.url("pl")).unwrap();
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url.to_string(),
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let mut client = Client::connect(&url).await.expect("connect to nginx");
    client.play(&url.stream).await.expect("play from nginx");
    let events = collect(&mut client, Duration::from_secs(3)).await;
    client.close().await.unwrap();
    let seen = Received::from(&events);
    eprintln!("our client received from nginx: {seen:?}");

    assert!(seen.metadata >= 1, "no onMetaData: {seen:?}");
    // nginx waits for the next keyframe (wait_key), so up to 1 s of the 3 s is lost; what
    // arrived must be complete: 30 fps video and 44.1 kHz AAC over the received span.
    assert!(seen.video >= 50, "too few video messages: {seen:?}");
    assert_complete(&seen.video_ts, 1000.0 / 30.0, "video");
    assert_complete(&seen.audio_ts, 1024.0 * 1000.0 / 44_100.0, "audio");
    let video: Vec<&str> = seen
        .order
        .iter()
        .filter(|n| n.starts_with("video"))
        .take(2)
        .copied()
        .collect();
    assert_eq!(
        video,
        ["video-sequence-header", "video-keyframe"],
        "{seen:?}"
    );
    // nginx sends the AAC sequence header after the keyframe and one raw AAC frame (its
    // "coheader" logic); require it among the first two audio messages.
    let audio: Vec<&str> = seen
        .order
        .iter()
        .filter(|n| n.starts_with("audio"))
        .take(2)
        .copied()
        .collect();
    assert!(audio.contains(&"audio-sequence-header"), "{seen:?}");
    for (kind, ts) in [("video", &seen.video_ts), ("audio", &seen.audio_ts)] {
        assert!(
            ts.windows(2).all(|w| w[1] >= w[0] && w[1] - w[0] < 250),
            "{kind} timestamps {ts:?}"
        );
    }
    publisher.wait_finished(Duration::from_secs(15));
}

/// `ts` (one track) has one message per `step_ms` over its span, give or take 2.
fn assert_complete(ts: &[u32], step_ms: f64, what: &str) {
    let (Some(first), Some(last)) = (ts.first(), ts.last()) else {
        panic!("no {what}");
    };
    let expected = f64::from(last - first) / step_ms + 1.0;
    assert!(
        (ts.len() as f64 - expected).abs() <= 2.0,
        "{} {what} messages over {first}..{last} ms, want about {expected:.0}",
        ts.len()
    );
}
