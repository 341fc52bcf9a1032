//! A paced publisher: sends an FLV file in real time, looping with continuous timestamps,
//! stamping each video frame with its send time.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use weir_client::{Client, RtmpUrl};
use weir_media::flv_file::FlvTag;
use weir_media::{Frame, MediaKind};
use weir_rtmp::session::MediaType;

use crate::filler;
use crate::player::Shared;
use crate::stamp;

/// What one publisher did.
#[derive(Debug, Default)]
pub struct PublisherResult {
    /// Frames sent.
    pub frames: u64,
    /// Bytes of payload sent.
    pub bytes: u64,
    /// Largest delay behind the real-time schedule, in milliseconds.
    pub max_behind_ms: f64,
    /// Why publishing stopped early, if it did.
    pub error: Option<String>,
    /// The server accepted the publish.
    pub started: bool,
}

/// How a publisher stamps, pads and ends its stream.
#[derive(Clone, Debug, Default)]
pub struct PublishOptions {
    /// Timestamp of the first tag, in ms; later ones follow with wrapping u32 arithmetic (a
    /// start just below 2^31 or 2^32 crosses that point).
    pub start_ms: u32,
    /// Pad every video frame with a filler NAL unit so the stream carries about this many
    /// kbit/s (nothing when the file already does, or `None`).
    pub kbps: Option<u64>,
    /// Stop (closing the connection) after this long; `None`: at `shared.stop` only.
    pub run_for: Option<Duration>,
}

/// Publishes `tags` to `url` until `shared.stop`.
pub async fn run(url: RtmpUrl, tags: Arc<Vec<FlvTag>>, shared: Arc<Shared>) -> PublisherResult {
    run_with(url, tags, shared, PublishOptions::default()).await
}

/// Publishes `tags` to `url` as `options` say, until `shared.stop` or `options.run_for`.
pub async fn run_with(
    url: RtmpUrl,
    tags: Arc<Vec<FlvTag>>,
    shared: Arc<Shared>,
    options: PublishOptions,
) -> PublisherResult {
    let mut result = PublisherResult::default();
    if let Err(err) = publish(&url, &tags, &shared, &options, &mut result).await {
        result.error = Some(err);
    }
    result
}

async fn publish(
    url: &RtmpUrl,
    tags: &[FlvTag],
    shared: &Shared,
    options: &PublishOptions,
    result: &mut PublisherResult,
) -> Result<(), String> {
    let mut client = Client::connect(url).await.map_err(|e| e.to_string())?;
    client
        .publish(&url.stream)
        .await
        .map_err(|e| e.to_string())?;
    result.started = true;
    let pad = options.kbps.map_or(0, |kbps| padding_per_frame(tags, kbps));
    let first = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
    let last = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
    // One frame interval past the last tag, so the next loop does not repeat a timestamp.
    let span = u64::from(last.wrapping_sub(first)) + 33;
    let start = Instant::now();
    let end = options.run_for.map(|d| start + d);
    let over = || shared.stop.load(Ordering::Relaxed) || end.is_some_and(|e| Instant::now() >= e);
    let mut offset = 0u64;
    let mut pass = 0u64;
    while !over() {
        for tag in tags {
            let frame = tag.to_frame();
            if pass > 0 && (frame.kind == MediaKind::Data || frame.info.is_sequence_header) {
                continue;
            }
            let due_ms = offset + u64::from(tag.timestamp.wrapping_sub(first));
            let due = start + Duration::from_millis(due_ms);
            tokio::time::sleep_until(due).await;
            let behind = Instant::now().saturating_duration_since(due).as_secs_f64() * 1e3;
            result.max_behind_ms = result.max_behind_ms.max(behind);
            if over() {
                break;
            }
            let timestamp = options.start_ms.wrapping_add(due_ms as u32);
            let sent = match frame.kind {
                MediaKind::Video => {
                    let payload = if frame.info.is_sequence_header {
                        frame.payload.clone()
                    } else {
                        let now_ns = shared.epoch.elapsed().as_nanos() as u64;
                        let padded = filler::pad(&frame.payload, pad);
                        stamp::write(&padded, frame.info.header_len.max(5), now_ns)
                            .unwrap_or(padded)
                    };
                    let bytes = payload.len();
                    client
                        .send_media(MediaType::Video, timestamp, payload)
                        .await
                        .map(|()| bytes)
                }
                MediaKind::Audio => client
                    .send_media(MediaType::Audio, timestamp, frame.payload.clone())
                    .await
                    .map(|()| frame.payload.len()),
                MediaKind::Data => client
                    .send_frame(&Frame {
                        timestamp,
                        ..frame.clone()
                    })
                    .await
                    .map(|()| frame.payload.len()),
            };
            let bytes = sent.map_err(|e| e.to_string())?;
            result.frames += 1;
            result.bytes += bytes as u64;
        }
        offset += span;
        pass += 1;
    }
    let _ = client.close().await;
    Ok(())
}

/// Bytes of filler each video frame needs so `tags` (looped in real time) carry `kbps`.
fn padding_per_frame(tags: &[FlvTag], kbps: u64) -> usize {
    let first = tags.iter().map(|t| t.timestamp).min().unwrap_or(0);
    let last = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
    let secs = (f64::from(last.wrapping_sub(first)) / 1e3).max(0.001);
    let bytes: usize = tags.iter().map(|t| t.body.len()).sum();
    let frames = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Video)
        .count()
        .max(1);
    let have_bps = bytes as f64 * 8.0 / secs;
    let missing_bytes_per_sec = (kbps as f64 * 1e3 - have_bps).max(0.0) / 8.0;
    (missing_bytes_per_sec * secs / frames as f64) as usize
}
