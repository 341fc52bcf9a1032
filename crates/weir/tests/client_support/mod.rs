//! Shared by the tests that drive weir's own RTMP client: collecting and classifying what a
//! player received.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use weir_client::{Client, ClientEvent};
use weir_media::Frame;
use weir_rtmp::session::MediaType;

/// Every event until `wait` has passed (the connection must stay open).
pub async fn collect(client: &mut Client, wait: Duration) -> Vec<(Instant, ClientEvent)> {
    let end = Instant::now() + wait;
    let mut events = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match client
            .next_event(left)
            .await
            .expect("connection stays open")
        {
            Some(event) => events.push((Instant::now(), event)),
            None => break,
        }
    }
    events
}

/// What a player received, classified.
#[derive(Debug, Default)]
pub struct Received {
    /// onMetaData messages.
    pub metadata: usize,
    /// Video messages.
    pub video: usize,
    /// Audio messages.
    pub audio: usize,
    /// The first few media/data messages: `metadata`, `video-sequence-header`, ...
    pub order: Vec<&'static str>,
    /// Video timestamps in arrival order.
    pub video_ts: Vec<u32>,
    /// Audio timestamps in arrival order.
    pub audio_ts: Vec<u32>,
}

impl Received {
    /// Classifies `events`.
    pub fn from(events: &[(Instant, ClientEvent)]) -> Received {
        let mut r = Received::default();
        for (_, event) in events {
            let name = match event {
                ClientEvent::Data {
                    payload, timestamp, ..
                } => {
                    if Frame::data(*timestamp, payload.clone()).info.is_metadata {
                        r.metadata += 1;
                        "metadata"
                    } else {
                        "data"
                    }
                }
                ClientEvent::Media {
                    media_type,
                    timestamp,
                    payload,
                    ..
                } => {
                    let (frame, media) = classify(*media_type, *timestamp, payload);
                    match media_type {
                        MediaType::Video => {
                            r.video += 1;
                            r.video_ts.push(*timestamp);
                        }
                        MediaType::Audio => {
                            r.audio += 1;
                            r.audio_ts.push(*timestamp);
                        }
                    }
                    match (media, frame.info.is_sequence_header, frame.info.is_keyframe) {
                        ("video", true, _) => "video-sequence-header",
                        ("video", _, true) => "video-keyframe",
                        ("video", ..) => "video-frame",
                        (_, true, _) => "audio-sequence-header",
                        _ => "audio-frame",
                    }
                }
                _ => continue,
            };
            if r.order.len() < 16 && name != "data" {
                r.order.push(name);
            }
        }
        r
    }
}

fn classify(media_type: MediaType, timestamp: u32, payload: &Bytes) -> (Frame, &'static str) {
    match media_type {
        MediaType::Video => (Frame::video(timestamp, payload.clone()), "video"),
        MediaType::Audio => (Frame::audio(timestamp, payload.clone()), "audio"),
    }
}
