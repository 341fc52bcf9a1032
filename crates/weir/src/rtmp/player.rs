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
            caught_up_at: now,
            max_lag,
            frames_sent: 0,
            frames_skipped: 0,
        }
    }

    /// Sends the subscribe-time snapshot: metadata and sequence headers stamped with the
    /// first cached frame's time, then the GOP from its keyframe.
    pub(crate) fn start(&mut self, session: &mut ServerSession) {
        let snapshot = self.subscription.take_snapshot();
        let first_media = snapshot
            .iter()
            .find(|f| f.kind != MediaKind::Data && !f.info.is_sequence_header)
            .map(|f| f.timestamp);
        for frame in snapshot {
            let is_config = frame.kind == MediaKind::Data || frame.info.is_sequence_header;
            let timestamp = match first_media {
                Some(ts) if is_config => ts,
                _ => frame.timestamp,
            };
            self.send(session, &frame, timestamp);
        }
    }

    /// Handles one packet from the hub.
    pub(crate) fn handle(&mut self, session: &mut ServerSession, packet: Packet) {
        match packet {
            Packet::Frame(frame) => {
                if self.need_keyframe && !self.is_resume_point(&frame) {
                    self.frames_skipped += 1;
                    return;
                }
                self.need_keyframe = false;
                let timestamp = frame.timestamp;
                self.send(session, &frame, timestamp);
            }
            Packet::PublisherLeft => {
                session.notify_unpublish(self.stream_id);
                self.rebaser.reset_source();
                self.has_video = false;
            }
            Packet::PublisherStarted => session.notify_publish(self.stream_id),
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

    /// Drops frames until the next keyframe (after a pause, for instance).
    pub(crate) fn skip_to_keyframe(&mut self) {
        self.need_keyframe = true;
    }

    fn lagged(&mut self, lost: u64) {
        if !self.need_keyframe {
            warn!(
                stream = self.subscription.key(),
                lost, "viewer too slow: dropped {lost} frames, skipping to the next keyframe"
            );
        }
        self.frames_skipped += lost;
        self.need_keyframe = true;
    }

    fn is_resume_point(&self, frame: &Frame) -> bool {
        match frame.kind {
            MediaKind::Video => frame.info.is_keyframe || frame.info.is_sequence_header,
            MediaKind::Audio => !self.has_video || frame.info.is_sequence_header,
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
                session.send_media(self.stream_id, MediaType::Video, timestamp, payload);
            }
        }
        self.frames_sent += 1;
    }

    /// Logs the end of playback.
    pub(crate) fn log_end(&self, peer: &str, started: Instant, reason: &str) {
        info!(
            peer,
            stream = self.subscription.key(),
            frames = self.frames_sent,
            skipped = self.frames_skipped,
            duration_s = format!("{:.1}", started.elapsed().as_secs_f64()),
            reason,
            "play ended"
        );
    }
}
