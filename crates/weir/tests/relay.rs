//! weir-client as a relay between two in-process weir servers: FFmpeg publishes a test file
//! to server A, one weir-client plays it from A and a second publishes every frame to B (the
//! payloads passed on as they arrived, not copied), and FFmpeg, an independent client, plays
//! it from B.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::time::Duration;

use common::fixtures::{HEIGHT, WIDTH};
use common::{ffmpeg_play_to_flv, ffmpeg_publish, fixture, Expect, Ffmpeg, FixtureKind, TestDir};
use weir::{Config, Server};
use weir_client::{Client, ClientError, ClientEvent, RtmpUrl};
use weir_media::Frame;
use weir_rtmp::command::code;
use weir_rtmp::session::MediaType;

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

/// What the relay forwarded.
#[derive(Debug, Default)]
struct Relayed {
    video: usize,
    audio: usize,
    metadata: usize,
    video_ts: Vec<u32>,
}

/// Plays from `source` and publishes every frame to `sink` until the source's publisher
/// leaves (`NetStream.Play.UnpublishNotify`). `first_keyframe` fires when the first keyframe
/// has been forwarded.
async fn relay(
    mut source: Client,
    mut sink: Client,
    first_keyframe: tokio::sync::oneshot::Sender<()>,
) -> Result<Relayed, ClientError> {
    let mut relayed = Relayed::default();
    let mut first_keyframe = Some(first_keyframe);
    loop {
        let Some(event) = source.next_event(Duration::from_secs(10)).await? else {
            return Err(ClientError::Timeout("media from the source"));
        };
        match event {
            ClientEvent::Media {
                media_type,
                timestamp,
                payload,
                ..
            } => {
                if media_type == MediaType::Video {
                    relayed.video += 1;
                    relayed.video_ts.push(timestamp);
                    if Frame::video(timestamp, payload.clone()).info.is_keyframe {
                        if let Some(tx) = first_keyframe.take() {
                            let _ = tx.send(());
                        }
                    }
                } else {
                    relayed.audio += 1;
                }
                // The payload `Bytes` goes on as it arrived: shared, not copied.
                sink.send_media(media_type, timestamp, payload).await?;
            }
            ClientEvent::Data {
                timestamp, payload, ..
            } => {
                let frame = Frame::data(timestamp, payload);
                if frame.info.is_metadata {
                    relayed.metadata += 1;
                    sink.send_frame(&frame).await?;
                }
            }
            ClientEvent::Status { status, .. } if status.code == code::PLAY_UNPUBLISH_NOTIFY => {
                source.close().await?;
                sink.close().await?;
                return Ok(relayed);
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_relays_a_stream_from_one_weir_to_another() {
    let dir = TestDir::new("relay");
    let a = start_weir().await;
    let b = start_weir().await;
    let (from_a, to_b) = (url(&a, "src"), url(&b, "copy"));

    let mut source = Client::connect(&from_a).await.expect("connect to A");
    source.play(&from_a.stream).await.expect("play from A");
    let mut sink = Client::connect(&to_b).await.expect("connect to B");
    sink.publish(&to_b.stream).await.expect("publish to B");
    let (keyframe_tx, keyframe_rx) = tokio::sync::oneshot::channel();
    let relay = tokio::spawn(relay(source, sink, keyframe_tx));

    let publish_url = from_a.to_string();
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
    tokio::time::timeout(START, keyframe_rx)
        .await
        .expect("the relay forwards a keyframe")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // FFmpeg plays the relayed copy from B.
    let play_url = to_b.to_string();
    let log_dir = dir.path().to_owned();
    let report = tokio::task::spawn_blocking(move || {
        ffmpeg_play_to_flv(Ffmpeg::Debian, &play_url, 3.0, &log_dir)
    })
    .await
    .unwrap();
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8),
        "ffmpeg play from B of the stream relayed from A",
    );

    tokio::task::spawn_blocking(move || publisher.wait_finished(Duration::from_secs(15)))
        .await
        .unwrap();
    let relayed = tokio::time::timeout(Duration::from_secs(15), relay)
        .await
        .expect("the relay ends when A's publisher leaves")
        .unwrap()
        .expect("relay");
    eprintln!(
        "relayed {} video, {} audio, {} metadata messages",
        relayed.video, relayed.audio, relayed.metadata
    );
    // The relay joined before the publisher: everything FFmpeg sent (180 frames and the
    // sequence header; 6 s of 44.1 kHz AAC) went through it, in order.
    assert!(relayed.video >= 181, "{relayed:?}");
    assert!(relayed.audio >= 6 * 44_100 / 1024, "{relayed:?}");
    assert_eq!(relayed.metadata, 1, "{relayed:?}");
    assert!(
        relayed
            .video_ts
            .windows(2)
            .all(|w| w[1] >= w[0] && w[1] - w[0] < 250),
        "video timestamps {:?}",
        relayed.video_ts
    );
    a.shutdown().await;
    b.shutdown().await;
}
