//! One RTMP player: the shared viewer core writing into a server session's message stream.
//!
//! The core ([`crate::viewer`]) decides what the viewer gets (snapshot, keyframe gating,
//! timestamps, lag policy); this sink only turns its frames and notices into RTMP messages.

use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use tracing::info;
use weir_media::{Frame, MediaKind};
use weir_rtmp::session::{MediaType, ServerSession};

use crate::hub::{Packet, Subscription};
use crate::stream_key::StreamKey;
use crate::viewer::{Accepts, LagPolicy, Lagging, Viewer, ViewerSink, WithheldReason};

/// Bytes queued in the session before the driver stops draining the ring and writes.
pub(crate) const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// How often a player adds what it wrote to the stream's shared output counters.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// State of one playing message stream.
pub(crate) struct Player {
    pub(crate) stream_id: u32,
    pub(crate) key: StreamKey,
    viewer: Viewer,
    /// A video frame was queued since the driver last asked.
    video_queued: bool,
    started: Instant,
    /// Bytes not yet added to the stream's counters.
    unreported_bytes: u64,
    /// Frames already added to them.
    reported_frames: u64,
    reported_at: Instant,
}

/// Writes the viewer core's output into the session.
struct SessionSink<'a> {
    session: &'a mut ServerSession,
    key: &'a StreamKey,
    stream_id: u32,
    video_queued: &'a mut bool,
}

impl ViewerSink for SessionSink<'_> {
    fn frame(&mut self, frame: &Frame, timestamp: u32) {
        let payload = frame.payload.clone();
        match frame.kind {
            MediaKind::Data => self
                .session
                .send_metadata(self.stream_id, timestamp, payload),
            MediaKind::Audio => {
                self.session
                    .send_media(self.stream_id, MediaType::Audio, timestamp, payload);
            }
            MediaKind::Video => {
                *self.video_queued = true;
                self.session
                    .send_media(self.stream_id, MediaType::Video, timestamp, payload);
            }
        }
    }

    fn publisher_left(&mut self) {
        self.session.notify_unpublish(self.stream_id);
    }

    fn publisher_started(&mut self) {
        self.session.notify_publish(self.stream_id);
    }

    fn is_full(&self) -> bool {
        self.session.pending_output() >= WRITE_BATCH_BYTES
    }

    fn withheld(&mut self, frame: &Frame, reason: WithheldReason) {
        info!(
            stream = %self.key,
            track = %track_name(frame),
            "track withheld from this player: {reason}"
        );
    }

    fn unlisted_codec(&mut self, frame: &Frame) {
        info!(
            stream = %self.key,
            track = %track_name(frame),
            "player listed no codecs in connect; sending this one anyway \
             (playback.unadvertised_codecs = \"send\")"
        );
    }
}

/// `video#1 hvc1`: kind, track id and codec, for log lines.
fn track_name(frame: &Frame) -> String {
    let kind = match frame.kind {
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Data => "data",
    };
    let codec = frame.info.codec.map(|c| c.to_string()).unwrap_or_default();
    format!("{kind}#{} {codec}", frame.info.track_id)
}

impl Player {
    pub(crate) fn new(
        stream_id: u32,
        key: StreamKey,
        subscription: Subscription,
        max_lag: Duration,
        accepts: Accepts,
        now: Instant,
    ) -> Self {
        Self {
            stream_id,
            key,
            viewer: Viewer::new(subscription, LagPolicy::SkipThenDisconnect(max_lag), now)
                .with_accepts(accepts),
            video_queued: false,
            started: now,
            unreported_bytes: 0,
            reported_frames: 0,
            reported_at: now,
        }
    }

    fn sink<'a>(
        session: &'a mut ServerSession,
        key: &'a StreamKey,
        stream_id: u32,
        video_queued: &'a mut bool,
    ) -> SessionSink<'a> {
        SessionSink {
            session,
            key,
            stream_id,
            video_queued,
        }
    }

    /// Sends the subscribe-time snapshot.
    pub(crate) fn start(&mut self, session: &mut ServerSession) {
        let mut sink = Self::sink(session, &self.key, self.stream_id, &mut self.video_queued);
        self.viewer.start(&mut sink);
    }

    /// Waits for the next live packet.
    pub(crate) async fn recv(&mut self) -> Result<Packet, RecvError> {
        self.viewer.recv().await
    }

    /// Handles a receive and drains what else is queued; `Err` ends the connection.
    pub(crate) fn handle_recv(
        &mut self,
        session: &mut ServerSession,
        received: Result<Packet, RecvError>,
        now: Instant,
    ) -> Result<(), Lagging> {
        let mut sink = Self::sink(session, &self.key, self.stream_id, &mut self.video_queued);
        self.viewer.handle_recv(received, &mut sink, now)
    }

    /// Takes what is queued without waiting (merged writes); `Err` ends the connection.
    pub(crate) fn drain(
        &mut self,
        session: &mut ServerSession,
        now: Instant,
    ) -> Result<(), Lagging> {
        let mut sink = Self::sink(session, &self.key, self.stream_id, &mut self.video_queued);
        self.viewer.drain(&mut sink, now)
    }

    /// Whether a video frame was queued since the last call.
    pub(crate) fn take_video_queued(&mut self) -> bool {
        std::mem::take(&mut self.video_queued)
    }

    /// Drops frames until the next keyframe (after a pause, for instance).
    pub(crate) fn skip_to_keyframe(&mut self) {
        self.viewer.core().skip_to_keyframe();
    }

    /// Counts bytes written to this player; adds them to the stream's counters about once a
    /// second (they are shared by every viewer, so not on every write).
    pub(crate) fn wrote(&mut self, bytes: u64, now: Instant) {
        self.unreported_bytes += bytes;
        if now.saturating_duration_since(self.reported_at) >= REPORT_EVERY {
            self.report(now);
        }
    }

    fn report(&mut self, now: Instant) {
        let sent = self.viewer.core().frames_sent();
        let frames = sent - self.reported_frames;
        self.reported_frames = sent;
        self.viewer
            .subscription()
            .record_output(frames, self.unreported_bytes);
        self.unreported_bytes = 0;
        self.reported_at = now;
    }

    /// Logs the end of playback (and reports the last counts); gives how long it played.
    pub(crate) fn end(mut self, id: u64, peer: &str, now: Instant, reason: &str) -> Duration {
        self.report(now);
        let skipped = self.viewer.core().frames_skipped();
        self.viewer.subscription().record_skipped(skipped);
        let core = self.viewer.core();
        info!(
            id,
            peer = %peer,
            stream = %self.key,
            frames = core.frames_sent(),
            skipped = core.frames_skipped(),
            duration_s = format!("{:.1}", now.saturating_duration_since(self.started).as_secs_f64()),
            reason = %reason,
            "play ended"
        );
        now.saturating_duration_since(self.started)
    }
}
