//! Publishing an FLV file: reading its tags, and sending them paced and looped.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use weir_media::flv_file::{FlvReader, FlvTag};
use weir_media::{Frame, MediaKind};

use crate::{Client, ClientError, RtmpUrl};

/// What [`Client::publish_tags`] and [`publish_file`] sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Video messages sent.
    pub video: u64,
    /// Audio messages sent.
    pub audio: u64,
    /// Metadata messages sent.
    pub data: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Passes over the file that were completed.
    pub loops: u64,
    /// Timestamp of the last message sent.
    pub last_timestamp: u32,
}

/// How [`Client::publish_tags`] and [`publish_file`] send a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Send each tag when its timestamp is due (like `ffmpeg -re`); otherwise as fast as the
    /// connection takes them.
    pub realtime: bool,
    /// Start over at the end of the file, with timestamps continuing; runs until an error or
    /// until the future is dropped.
    pub looping: bool,
}

impl Client {
    /// Sends `tags` in order, with timestamps rebased so the first is 0;
    /// paced by timestamp when `options.realtime`. Must be publishing already.
    pub async fn publish_tags(
        &mut self,
        tags: &[FlvTag],
        options: PublishOptions,
    ) -> Result<PublishStats, ClientError> {
        let mut stats = PublishStats::default();
        let Some(first) = tags.iter().map(|t| t.timestamp).min() else {
            return Ok(stats);
        };
        let span = loop_span(tags, first);
        let start = Instant::now();
        let mut offset: u64 = 0;
        loop {
            for tag in tags {
                let frame = tag.to_frame();
                // Later passes skip what a player already has: metadata and codec headers.
                if stats.loops > 0
                    && (frame.kind == MediaKind::Data || frame.info.is_sequence_header)
                {
                    continue;
                }
                let due = offset + u64::from(tag.timestamp.wrapping_sub(first));
                if options.realtime {
                    tokio::time::sleep_until(start + Duration::from_millis(due)).await;
                }
                let timestamp = due as u32;
                let frame = Frame { timestamp, ..frame };
                self.send_frame(&frame).await?;
                match frame.kind {
                    MediaKind::Audio => stats.audio += 1,
                    MediaKind::Video => stats.video += 1,
                    MediaKind::Data => stats.data += 1,
                }
                stats.bytes += frame.payload.len() as u64;
                stats.last_timestamp = timestamp;
            }
            stats.loops += 1;
            if !options.looping {
                return Ok(stats);
            }
            offset += span;
        }
    }
}

/// How far timestamps advance per pass over the tags: the span of the file plus one video
/// frame interval (or 40 ms without video), so a loop does not repeat a timestamp.
fn loop_span(tags: &[FlvTag], first: u32) -> u64 {
    let last = tags
        .iter()
        .map(|t| u64::from(t.timestamp.wrapping_sub(first)))
        .max()
        .unwrap_or(0);
    let mut video = tags.iter().filter(|t| t.kind == MediaKind::Video);
    let mut previous = video.next().map(|t| t.timestamp);
    let mut step = u64::MAX;
    for tag in video {
        if let Some(p) = previous {
            let d = u64::from(tag.timestamp.wrapping_sub(p));
            if d > 0 && d < step {
                step = d;
            }
        }
        previous = Some(tag.timestamp);
    }
    last + if step == u64::MAX { 40 } else { step }
}

/// Reads an FLV file into memory: its tags.
pub async fn read_flv_file(path: &Path) -> Result<Vec<FlvTag>, ClientError> {
    let data = tokio::fs::read(path).await?;
    Ok(FlvReader::from_bytes(Bytes::from(data))?.collect::<Result<Vec<_>, _>>()?)
}

/// Connects to `url`, publishes its stream, sends the FLV file at `path` (see
/// [`Client::publish_tags`]) and closes. With `options.looping` it runs until an error or
/// until the future is dropped.
pub async fn publish_file(
    url: &RtmpUrl,
    path: &Path,
    options: PublishOptions,
) -> Result<PublishStats, ClientError> {
    let tags = read_flv_file(path).await?;
    let mut client = Client::connect(url).await?;
    client.publish(&url.stream).await?;
    let stats = client.publish_tags(&tags, options).await?;
    client.close().await?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_span_adds_one_frame() {
        let tag = |kind, timestamp| FlvTag {
            kind,
            timestamp,
            body: Bytes::new(),
        };
        let tags = [
            tag(MediaKind::Video, 100),
            tag(MediaKind::Audio, 110),
            tag(MediaKind::Video, 133),
            tag(MediaKind::Video, 166),
            tag(MediaKind::Audio, 180),
        ];
        assert_eq!(loop_span(&tags, 100), 80 + 33);
        assert_eq!(loop_span(&tags[1..2], 110), 40);
    }
}
