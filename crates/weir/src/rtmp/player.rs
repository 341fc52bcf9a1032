//! One RTMP player: a hub subscription feeding a server session's message stream.
//!
//! Slow-viewer policy (DESIGN.md rule 3): frames wait in the hub's bounded ring. A player
//! that falls off the ring skips to the next keyframe; one that stays behind the live edge
//! for longer than `max_viewer_lag` is disconnected. Nothing here ever slows the publisher.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tracing::{info, warn};
use weir_media::{Frame, MediaKind, TimestampRebaser};
use weir_rtmp::session::{MediaType, ServerSession};

use crate::hub::{Packet, Subscription};

/// Bytes queued in the session before the driver stops draining the ring and writes.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// State of one playing message stream.
pub(crate) struct Player {
    pub(crate) stream_id: u32,
    pub(crate) subscription: Subscription,
    rebaser: TimestampRebaser,
    /// Skip frames until a video keyframe (or any audio frame on an audio-only stream).
    need_keyframe: bool,
    has_video: bool,
    /// A video frame was queued since the driver last asked.
    video_queued: bool,
    /// Metadata and sequence headers held while waiting for a keyframe.
    pending_config: Vec<Frame>,
    /// Last time the player had nothing queued, i.e. was at the live edge.
    caught_up_at: Instant,
    max_lag: Duration,
    pub(crate) frames_sent: u64,
    pub(crate) frames_skipped: u64,
}

/// Why a player must be disconnected.
#[derive(Debug)]
pub(crate) struct TooSlow(pub(crate) Duration);

impl Player {
    pub(crate) fn new(
        stream_id: u32,
        subscription: Subscription,
        max_lag: Duration,
        now: Instant,
    ) -> Self {
        Self {
            stream_id,
            subscription,
            rebaser: TimestampRebaser::new(),
            need_keyframe: false,
            has_video: false,
            pending_config: Vec::new(),
            video_queued: false,
            caught_up_at: now,
            max_lag,
            frames_sent: 0,
            frames_skipped: 0,
        }
    }

    /// Sends the subscribe-time snapshot: metadata and sequence headers stamped with the
    /// first cached frame's time, then the GOP from its keyframe. When the cache holds no
    /// keyframe (GOP cache off, or a GOP over its limits), the player waits for the next
    /// keyframe and gets the metadata and sequence headers stamped with its time.
    pub(crate) fn start(&mut self, session: &mut ServerSession) {
        let snapshot = self.subscription.take_snapshot();
        let has_keyframe = snapshot.iter().any(is_video_keyframe);
        let has_video = snapshot.iter().any(|f| f.kind == MediaKind::Video);
        if has_video && !has_keyframe {
            self.has_video = true;
            self.need_keyframe = true;
            self.pending_config = snapshot.into_iter().filter(is_config).collect();
            return;
        }
        let first_media = snapshot.iter().find(|f| !is_config(f)).map(|f| f.timestamp);
        for frame in snapshot {
            let timestamp = match first_media {
                Some(ts) if is_config(&frame) => ts,
                _ => frame.timestamp,
            };
            self.send(session, &frame, timestamp);
        }
    }

    /// Handles one packet from the hub.
    pub(crate) fn handle(&mut self, session: &mut ServerSession, packet: Packet) {
        match packet {
            Packet::Frame(frame) => self.handle_frame(session, frame),
            Packet::Batch(frames) => {
                for frame in frames.iter() {
                    self.handle_frame(session, frame.clone());
                }
            }
            Packet::PublisherLeft => {
                session.notify_unpublish(self.stream_id);
                self.rebaser.reset_source();
                self.has_video = false;
                self.pending_config.clear();
                // The next publisher's stream starts at its first keyframe.
                self.need_keyframe = true;
            }
            Packet::PublisherStarted => session.notify_publish(self.stream_id),
        }
    }

    /// Handles one frame: forwards it, or holds or skips it while waiting for a keyframe.
    fn handle_frame(&mut self, session: &mut ServerSession, frame: Frame) {
        if !self.need_keyframe {
            let timestamp = frame.timestamp;
            self.send(session, &frame, timestamp);
        } else if is_config(&frame) {
            // Held back until the keyframe, so the viewer's timeline starts there; only the
            // latest of each kind (metadata, video or audio header per track).
            if frame.kind == MediaKind::Video {
                self.has_video = true;
            }
            self.pending_config
                .retain(|held| !same_config_slot(held, &frame));
            self.pending_config.push(frame);
        } else if self.is_resume_point(&frame) {
            self.need_keyframe = false;
            for config in std::mem::take(&mut self.pending_config) {
                self.send(session, &config, frame.timestamp);
            }
            let timestamp = frame.timestamp;
            self.send(session, &frame, timestamp);
        } else {
            self.frames_skipped += 1;
        }
    }

    /// Handles the result of a blocking receive; `Err` ends the connection.
    pub(crate) fn handle_recv(
        &mut self,
        session: &mut ServerSession,
        received: Result<Packet, RecvError>,
        now: Instant,
    ) -> Result<(), TooSlow> {
        match received {
            Ok(packet) => self.handle(session, packet),
            Err(RecvError::Lagged(lost)) => self.lagged(lost),
            Err(RecvError::Closed) => {}
        }
        self.drain(session, now)
    }

    /// Takes whatever else is queued, up to a write batch, so one write carries many frames.
    fn drain(&mut self, session: &mut ServerSession, now: Instant) -> Result<(), TooSlow> {
        while session.pending_output() < WRITE_BATCH_BYTES {
            match self.subscription.try_recv() {
                Ok(packet) => self.handle(session, packet),
                Err(TryRecvError::Lagged(lost)) => self.lagged(lost),
                Err(TryRecvError::Empty | TryRecvError::Closed) => {
                    self.caught_up_at = now;
                    return Ok(());
                }
            }
        }
        let behind = now.saturating_duration_since(self.caught_up_at);
        if behind > self.max_lag {
            return Err(TooSlow(behind));
        }
        Ok(())
    }

    /// Whether a video frame was queued since the last call.
    pub(crate) fn take_video_queued(&mut self) -> bool {
        std::mem::take(&mut self.video_queued)
    }

    /// Drops frames until the next keyframe (after a pause, for instance).
    pub(crate) fn skip_to_keyframe(&mut self) {
        self.need_keyframe = true;
    }

    fn lagged(&mut self, lost: u64) {
        if !self.need_keyframe {
            warn!(
                stream = %self.subscription.key(),
                lost, "viewer too slow: dropped {lost} frames, skipping to the next keyframe"
            );
        }
        self.frames_skipped += lost;
        self.need_keyframe = true;
    }

    /// A frame a waiting player may start on (config frames are handled before this).
    fn is_resume_point(&self, frame: &Frame) -> bool {
        match frame.kind {
            MediaKind::Video => is_video_keyframe(frame),
            MediaKind::Audio => !self.has_video,
            MediaKind::Data => true,
        }
    }

    fn send(&mut self, session: &mut ServerSession, frame: &Frame, timestamp: u32) {
        let timestamp = self.rebaser.rebase(frame.kind, timestamp);
        let payload: Bytes = frame.payload.clone();
        match frame.kind {
            MediaKind::Data => session.send_metadata(self.stream_id, timestamp, payload),
            MediaKind::Audio => {
                session.send_media(self.stream_id, MediaType::Audio, timestamp, payload);
            }
            MediaKind::Video => {
                self.has_video = true;
                self.video_queued = true;
                session.send_media(self.stream_id, MediaType::Video, timestamp, payload);
            }
        }
        self.frames_sent += 1;
    }

    /// Logs the end of playback.
    pub(crate) fn log_end(&self, peer: &str, started: Instant, reason: &str) {
        info!(
            peer = %peer,
            stream = %self.subscription.key(),
            frames = self.frames_sent,
            skipped = self.frames_skipped,
            duration_s = format!("{:.1}", started.elapsed().as_secs_f64()),
            reason = %reason,
            "play ended"
        );
    }
}

/// Metadata and sequence headers: what a decoder needs before the first picture.
fn is_config(frame: &Frame) -> bool {
    frame.kind == MediaKind::Data || frame.info.is_sequence_header
}

/// A coded video keyframe (not a sequence header).
fn is_video_keyframe(frame: &Frame) -> bool {
    frame.kind == MediaKind::Video && frame.info.is_keyframe && !frame.info.is_sequence_header
}

/// Whether two config frames fill the same slot (a newer one replaces an older one).
fn same_config_slot(a: &Frame, b: &Frame) -> bool {
    a.kind == b.kind
        && a.info.track_id == b.info.track_id
        && a.info.is_metadata == b.info.is_metadata
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weir_rtmp::session::ServerConfig;

    use super::*;
    use crate::config::StreamsConfig;
    use crate::hub::Hub;

    #[test]
    fn waiting_player_holds_only_the_latest_config_of_each_kind() {
        let hub = Arc::new(Hub::new(StreamsConfig::default()));
        let now = Instant::now();
        let mut session = ServerSession::new(ServerConfig::default(), now, [0; 1528]);
        let mut player = Player::new(1, hub.subscribe("live/a"), Duration::from_secs(5), now);
        player.skip_to_keyframe();
        let metadata = Bytes::from_static(b"\x02\x00\x0aonMetaData\x05");
        let avc_header = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64]);
        let aac_header = Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]);
        for ts in 0..10_000 {
            for frame in [
                Frame::data(ts, metadata.clone()),
                Frame::video(ts, avc_header.clone()),
                Frame::audio(ts, aac_header.clone()),
            ] {
                player.handle(&mut session, Packet::Frame(frame));
            }
        }
        assert_eq!(player.pending_config.len(), 3);
        assert!(player.pending_config.iter().all(|f| f.timestamp == 9_999));
        // Audio does not end the wait once the stream is known to have video.
        let audio = Frame::audio(10_000, Bytes::from_static(&[0xAF, 0x01, 0x21]));
        player.handle(&mut session, Packet::Frame(audio));
        assert!(player.need_keyframe);
        let key = Frame::video(
            10_001,
            Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
        );
        player.handle(&mut session, Packet::Frame(key));
        assert!(!player.need_keyframe);
        assert!(player.pending_config.is_empty());
    }
}
