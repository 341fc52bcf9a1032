//! The viewer core every output shares: what a viewer receives from a hub subscription.
//!
//! [`ViewerCore`] is sans-IO: hub packets and the time go in; frames with rebased timestamps,
//! publisher start/stop notices and a lag verdict come out through a [`ViewerSink`]. It
//!
//! * replays the subscribe-time snapshot (metadata and sequence headers stamped with the
//!   first cached frame's time, then the GOP from its keyframe);
//! * gates on keyframes: after a join without a cached keyframe, a loss, a pause or a new
//!   publisher it skips to the next video keyframe (any audio frame on an audio-only stream),
//!   holding only the latest metadata and sequence header of each kind until then;
//! * rebases timestamps so every viewer's timeline starts near 0 and stays continuous across
//!   publisher restarts and the 2^24 / 2^32 ms wraps;
//! * applies a [`LagPolicy`] given by the output: an RTMP or HTTP viewer skips to the next
//!   keyframe when it falls off the hub's ring and is disconnected when it stays behind, a
//!   recorder skips and never disconnects.
//!
//! [`Viewer`] pairs a core with its [`Subscription`] for the async drivers: it receives one
//! packet, then takes whatever else is queued until the sink is full, so one write carries
//! many frames. Nothing here ever slows the publisher (docs/ARCHITECTURE.md, "Queues and the lag policy").

use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tracing::warn;
use weir_media::{Frame, MediaKind, TimestampRebaser};

use crate::hub::{Packet, Subscription};

mod accepts;

pub use accepts::{Accepts, Verdict, WithheldReason};

/// A sink that keeps the frames it is given (with the viewer's timestamps) for an output that
/// hands them on in batches (the HLS packager, a push relay), and notes what happened to the
/// publisher meanwhile.
#[derive(Debug, Default)]
pub struct Collected {
    /// Frames since the output last took them.
    pub frames: Vec<Frame>,
    /// The publisher left.
    pub left: bool,
    /// The publisher was replaced by a new one.
    pub replaced: bool,
}

impl ViewerSink for Collected {
    fn frame(&mut self, frame: &Frame, timestamp: u32) {
        let mut frame = frame.clone();
        frame.timestamp = timestamp;
        self.frames.push(frame);
    }

    fn publisher_left(&mut self) {
        self.left = true;
    }

    fn publisher_replaced(&mut self) {
        self.replaced = true;
    }
}

/// What a viewer gets, in order.
pub trait ViewerSink {
    /// A frame to deliver, with the viewer's own timestamp.
    fn frame(&mut self, frame: &Frame, timestamp: u32);
    /// The publisher left (the viewer stays subscribed).
    fn publisher_left(&mut self) {}
    /// The publisher was replaced by a new one (publisher takeover): its frames follow with
    /// the viewer's timeline continuing; nothing to tell most viewers (an HLS packager marks a
    /// discontinuity).
    fn publisher_replaced(&mut self) {}
    /// A publisher started.
    fn publisher_started(&mut self) {}
    /// True when the sink holds enough to be written out before more is taken.
    fn is_full(&self) -> bool {
        false
    }
    /// A track will not reach this viewer (called once per track and reason; `frame` is the
    /// first frame withheld).
    fn withheld(&mut self, _frame: &Frame, _reason: WithheldReason) {}
    /// The viewer listed no codecs and gets a non-legacy one anyway (called once per kind).
    fn unlisted_codec(&mut self, _frame: &Frame) {}
}

/// What to do with a viewer that falls behind the publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LagPolicy {
    /// Frames lost to a full queue are skipped up to the next keyframe; a viewer that stays
    /// behind the live edge longer than this is disconnected (RTMP and HTTP viewers).
    SkipThenDisconnect(Duration),
    /// Skip to the next keyframe after a loss; never disconnect (recorders).
    Skip,
    /// Disconnect at the first lost frame (outputs that must not have gaps).
    Disconnect,
}

/// Why a viewer must be disconnected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Lagging {
    /// It stayed this long behind the live edge.
    #[error("viewer fell {:.1}s behind the live edge (streams.max_viewer_lag_secs)", .0.as_secs_f64())]
    Behind(Duration),
    /// It lost frames and its policy allows no gap.
    #[error("viewer lost {0} frames to a full queue")]
    Lost(u64),
}

/// The per-viewer state of one subscription: see the module docs.
pub struct ViewerCore {
    rebaser: TimestampRebaser,
    /// Skip frames until a video keyframe (or any audio frame on an audio-only stream).
    need_keyframe: bool,
    has_video: bool,
    /// Metadata and sequence headers held while waiting for a keyframe.
    pending_config: Vec<Frame>,
    /// Last time the viewer had nothing queued, i.e. was at the live edge.
    caught_up_at: Instant,
    lag: LagPolicy,
    accepts: Accepts,
    /// Tracks already reported as withheld or unlisted: (kind, track, reason).
    reported: Vec<(MediaKind, u8, Option<WithheldReason>)>,
    /// Video tracks other than the default one that reached a keyframe since the last gap.
    started_tracks: Vec<u8>,
    frames_sent: u64,
    frames_skipped: u64,
}

impl ViewerCore {
    /// A core for a viewer joining at `now`.
    pub fn new(lag: LagPolicy, now: Instant) -> ViewerCore {
        ViewerCore {
            rebaser: TimestampRebaser::new(),
            need_keyframe: false,
            has_video: false,
            pending_config: Vec::new(),
            caught_up_at: now,
            lag,
            accepts: Accepts::everything(),
            reported: Vec::new(),
            started_tracks: Vec::new(),
            frames_sent: 0,
            frames_skipped: 0,
        }
    }

    /// Sets what the viewer can take (default: everything, every track, as a recorder).
    pub fn with_accepts(mut self, accepts: Accepts) -> ViewerCore {
        self.accepts = accepts;
        self
    }

    /// Whether the viewer gets `frame`; reports a withheld track or an unlisted codec the
    /// first time.
    fn admits(&mut self, frame: &Frame, sink: &mut impl ViewerSink) -> bool {
        match self.accepts.verdict(frame) {
            Verdict::Send => {
                if self.accepts.sends_unlisted(frame) && self.first_report(frame, None) {
                    sink.unlisted_codec(frame);
                }
                true
            }
            Verdict::OtherForm => false,
            Verdict::Withheld(reason) => {
                if self.first_report(frame, Some(reason)) {
                    sink.withheld(frame, reason);
                }
                false
            }
        }
    }

    fn first_report(&mut self, frame: &Frame, reason: Option<WithheldReason>) -> bool {
        let track = if reason.is_some() {
            frame.info.track_id
        } else {
            0
        };
        let slot = (frame.kind, track, reason);
        if self.reported.contains(&slot) || self.reported.len() >= 64 {
            return false;
        }
        self.reported.push(slot);
        true
    }

    /// Replays the subscribe-time snapshot. When it holds no keyframe (GOP cache off, or a GOP
    /// over its limits) the viewer waits for the next keyframe, which also stamps the held
    /// metadata and sequence headers.
    pub fn start(&mut self, mut snapshot: Vec<Frame>, sink: &mut impl ViewerSink) {
        snapshot.retain(|frame| self.admits(frame, sink));
        let has_keyframe = snapshot.iter().any(is_video_keyframe);
        let has_video = snapshot.iter().any(|f| f.kind == MediaKind::Video);
        if has_video && !has_keyframe {
            self.has_video = true;
            self.wait_for_keyframe();
            self.pending_config = snapshot.into_iter().filter(is_config).collect();
            return;
        }
        let first_media = snapshot.iter().find(|f| !is_config(f)).map(|f| f.timestamp);
        for frame in snapshot {
            let timestamp = match first_media {
                Some(ts) if is_config(&frame) => ts,
                _ => frame.timestamp,
            };
            self.send(sink, &frame, timestamp);
        }
    }

    /// Handles one packet from the hub.
    pub fn handle_packet(&mut self, packet: Packet, sink: &mut impl ViewerSink) {
        match packet {
            Packet::Frame(frame) => self.handle_frame(frame, sink),
            Packet::Batch(frames) => {
                for frame in frames.iter() {
                    self.handle_frame(frame.clone(), sink);
                }
            }
            Packet::PublisherLeft | Packet::PublisherReplaced => {
                if matches!(packet, Packet::PublisherLeft) {
                    sink.publisher_left();
                } else {
                    sink.publisher_replaced();
                }
                self.rebaser.reset_source();
                self.has_video = false;
                self.pending_config.clear();
                // The next publisher's stream starts at its first keyframe.
                self.wait_for_keyframe();
            }
            Packet::PublisherStarted => sink.publisher_started(),
        }
    }

    /// `lost` packets never reached this viewer (its queue overflowed).
    pub fn handle_loss(&mut self, lost: u64) -> Result<(), Lagging> {
        if self.lag == LagPolicy::Disconnect {
            return Err(Lagging::Lost(lost));
        }
        self.frames_skipped += lost;
        self.wait_for_keyframe();
        Ok(())
    }

    /// The viewer has taken everything queued for it: it is at the live edge.
    pub fn caught_up(&mut self, now: Instant) {
        self.caught_up_at = now;
    }

    /// Applies the lag policy: `Err` when the viewer has been behind for too long.
    pub fn check_lag(&self, now: Instant) -> Result<(), Lagging> {
        match self.lag {
            LagPolicy::SkipThenDisconnect(max) => {
                let behind = now.saturating_duration_since(self.caught_up_at);
                if behind > max {
                    Err(Lagging::Behind(behind))
                } else {
                    Ok(())
                }
            }
            LagPolicy::Skip | LagPolicy::Disconnect => Ok(()),
        }
    }

    /// Drops frames until the next keyframe (after a pause, for instance).
    pub fn skip_to_keyframe(&mut self) {
        self.wait_for_keyframe();
    }

    /// Whether the viewer waits for a keyframe.
    pub fn is_waiting_for_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Frames delivered so far.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// Frames skipped or lost so far.
    pub fn frames_skipped(&self) -> u64 {
        self.frames_skipped
    }

    /// Forwards a frame, or holds or skips it while waiting for a keyframe.
    fn handle_frame(&mut self, frame: Frame, sink: &mut impl ViewerSink) {
        if !self.admits(&frame, sink) {
            return;
        }
        if !self.need_keyframe {
            let timestamp = frame.timestamp;
            self.send(sink, &frame, timestamp);
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
                self.send(sink, &config, frame.timestamp);
            }
            let timestamp = frame.timestamp;
            self.send(sink, &frame, timestamp);
        } else {
            self.frames_skipped += 1;
        }
    }

    /// A frame a waiting viewer may start on (config frames are handled before this).
    fn is_resume_point(&self, frame: &Frame) -> bool {
        match frame.kind {
            MediaKind::Video => is_video_keyframe(frame),
            MediaKind::Audio => !self.has_video,
            MediaKind::Data => true,
        }
    }

    /// Skips to the next default-track keyframe; every other video track then waits for its
    /// own keyframe too.
    fn wait_for_keyframe(&mut self) {
        self.need_keyframe = true;
        self.started_tracks.clear();
    }

    /// Whether a coded frame of a video track other than the default one may go out: from
    /// that track's first keyframe on, so a Multitrack viewer starts every rendition clean.
    fn track_started(&mut self, frame: &Frame) -> bool {
        let info = &frame.info;
        if frame.kind != MediaKind::Video || info.track_id == 0 || !info.is_coded_frame {
            return true;
        }
        if self.started_tracks.contains(&info.track_id) {
            return true;
        }
        if info.is_keyframe {
            self.started_tracks.push(info.track_id);
            return true;
        }
        false
    }

    fn send(&mut self, sink: &mut impl ViewerSink, frame: &Frame, timestamp: u32) {
        if !self.track_started(frame) {
            self.frames_skipped += 1;
            return;
        }
        if frame.kind == MediaKind::Video {
            self.has_video = true;
        }
        let timestamp = self.rebaser.rebase(frame.kind, timestamp);
        sink.frame(frame, timestamp);
        self.frames_sent += 1;
    }
}

/// A [`ViewerCore`] fed by its hub [`Subscription`], for async drivers.
pub struct Viewer {
    core: ViewerCore,
    subscription: Subscription,
}

impl Viewer {
    /// A viewer of `subscription` joining at `now`.
    pub fn new(subscription: Subscription, lag: LagPolicy, now: Instant) -> Viewer {
        Viewer {
            core: ViewerCore::new(lag, now),
            subscription,
        }
    }

    /// Sets what the viewer can take (default: everything).
    pub fn with_accepts(mut self, accepts: Accepts) -> Viewer {
        self.core = self.core.with_accepts(accepts);
        self
    }

    /// Replays the subscribe-time snapshot into `sink`.
    pub fn start(&mut self, sink: &mut impl ViewerSink) {
        let snapshot = self.subscription.take_snapshot();
        self.core.start(snapshot, sink);
    }

    /// Waits for the next live packet (cancel-safe: use it in `select!`).
    pub async fn recv(&mut self) -> Result<Packet, RecvError> {
        self.subscription.recv().await
    }

    /// Handles what [`Viewer::recv`] gave, then takes whatever else is queued until the sink
    /// is full or the queue is empty. `Err` means the viewer must be disconnected.
    pub fn handle_recv(
        &mut self,
        received: Result<Packet, RecvError>,
        sink: &mut impl ViewerSink,
        now: Instant,
    ) -> Result<(), Lagging> {
        match received {
            Ok(packet) => self.core.handle_packet(packet, sink),
            Err(RecvError::Lagged(lost)) => self.lost(lost)?,
            Err(RecvError::Closed) => {}
        }
        self.drain(sink, now)
    }

    /// Takes whatever is queued, without waiting, until the sink is full or the queue is
    /// empty (merged writes: a viewer that did not wait for each packet catches up here).
    /// `Err` means the viewer must be disconnected.
    pub fn drain(&mut self, sink: &mut impl ViewerSink, now: Instant) -> Result<(), Lagging> {
        while !sink.is_full() {
            match self.subscription.try_recv() {
                Ok(packet) => self.core.handle_packet(packet, sink),
                Err(TryRecvError::Lagged(lost)) => self.lost(lost)?,
                Err(TryRecvError::Empty | TryRecvError::Closed) => {
                    self.core.caught_up(now);
                    return Ok(());
                }
            }
        }
        self.core.check_lag(now)
    }

    fn lost(&mut self, lost: u64) -> Result<(), Lagging> {
        if !self.core.need_keyframe {
            warn!(
                stream = %self.subscription.key(),
                lost, "viewer too slow: dropped {lost} frames, skipping to the next keyframe"
            );
        }
        self.core.handle_loss(lost)
    }

    /// The core, for its counters and controls.
    pub fn core(&mut self) -> &mut ViewerCore {
        &mut self.core
    }

    /// The subscription.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }
}

/// When a viewer that merges writes (a budget of `merge`, from
/// `streams.max_added_latency_ms`) and wrote at `now` takes its queue next: `now + merge`,
/// rounded down to a grid of a tenth of the budget counted from `epoch`. Viewers of a stream
/// then wake together, at most 10 times per budget, so a worker thread handles them in one
/// go instead of sleeping and waking for each; nothing waits longer than the budget.
pub fn merged_until(epoch: Instant, now: Instant, merge: Duration) -> Instant {
    let due = now + merge;
    let grid = (merge / 10).max(Duration::from_millis(1));
    let since = due.saturating_duration_since(epoch);
    let steps = since.as_nanos() / grid.as_nanos();
    let aligned = u32::try_from(steps)
        .ok()
        .and_then(|steps| epoch.checked_add(grid * steps));
    match aligned {
        Some(at) if at > now && at <= due => at,
        _ => due,
    }
}

/// Metadata and sequence headers: what a decoder needs before the first picture.
fn is_config(frame: &Frame) -> bool {
    frame.kind == MediaKind::Data || frame.info.is_sequence_header
}

/// A coded video keyframe of the default track (not a sequence header).
fn is_video_keyframe(frame: &Frame) -> bool {
    frame.kind == MediaKind::Video
        && frame.info.is_keyframe
        && !frame.info.is_sequence_header
        && frame.info.track_id == 0
}

/// Whether two config frames fill the same slot (a newer one replaces an older one).
fn same_config_slot(a: &Frame, b: &Frame) -> bool {
    a.kind == b.kind
        && a.info.track_id == b.info.track_id
        && a.info.is_metadata == b.info.is_metadata
        && a.info.multitrack == b.info.multitrack
}

#[cfg(test)]
mod tests;
