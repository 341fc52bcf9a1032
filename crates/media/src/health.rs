//! Stream health: continuous diagnostics computed from what a publisher sends, so that an
//! operator learns what is wrong with a stream before the viewers do.
//!
//! A [`HealthAnalyzer`] is shown every audio and video frame as it arrives
//! ([`HealthAnalyzer::observe`], with the arrival time) and says what is wrong now
//! ([`HealthAnalyzer::findings`]). Every finding is measured over a sliding window of recent
//! history, so it goes away once the encoder is fixed. Sans-IO: time is passed in and never
//! read; memory is bounded whatever the input.
//!
//! Only the default track (track 0) of audio and video is analysed; frames of every track
//! count for stalls, and every frame's bytes count for the ingest bitrate. Timing is read from
//! coded frames only (sequence headers, metadata and commands carry no timing).
//!
//! | code | severity | when |
//! |------|----------|------|
//! | `keyframe_interval_long` | warning, error | mean keyframe interval over the last [`KEYFRAME_WINDOW`] intervals above [`KEYFRAME_LONG_FACTOR`] × the target (error above [`KEYFRAME_LONG_ERROR_FACTOR`] ×, or no keyframe for [`KEYFRAME_MISSING_MS`] of video) |
//! | `keyframe_interval_irregular` | info, warning | longest / shortest of at least [`KEYFRAME_IRREGULAR_MIN_INTERVALS`] recent intervals above [`KEYFRAME_IRREGULAR_RATIO`] (warning above [`KEYFRAME_IRREGULAR_WARNING_RATIO`]) |
//! | `bitrate_over_limit` | warning | ingest bitrate over the last [`BITRATE_WINDOW_MS`] above the configured limit |
//! | `bitrate_dropping` | info | the last [`TREND_RECENT_MS`] of ingest below [`TREND_DROP_RATIO`] of the rest of the window (which carried at least [`TREND_MIN_BPS`]) |
//! | `fps_below_metadata` | warning | video frame rate over the last [`FPS_WINDOW_MS`] of video below [`FPS_MIN_RATIO`] × the declared rate |
//! | `frames_dropped` | warning | gaps in video DTS over [`GAP_FACTOR`] × the typical frame duration in the last [`VIDEO_WINDOW_MS`] of video: at least [`DROP_MIN_GAPS`] gaps or more than [`DROP_MIN_FRACTION`] of the frames missing |
//! | `timestamp_jump` | warning | a DTS step [`JUMP_THRESHOLD_MS`] longer than the wall-clock time since the track's previous frame, in the last [`DISCONTINUITY_VISIBLE_MS`] |
//! | `timestamp_backwards` | warning | a DTS step backwards, in the last [`DISCONTINUITY_VISIBLE_MS`] |
//! | `av_drift` | warning, error | median over [`DRIFT_WINDOW_MS`] of newest audio DTS − newest video DTS at each arrival beyond ±[`DRIFT_WARNING_MS`] (error beyond ±[`DRIFT_ERROR_MS`]) |
//! | `track_stalled` | error | a track silent for over [`STALL_MS`] while another arrived within [`STILL_ARRIVING_MS`] |
//! | `cts_anomaly` | warning | a video composition time offset below 0 or above [`CTS_MAX_MS`] in the last [`CTS_WINDOW_MS`] |
//! | `ingest_burst` | warning | media time over the last [`INGEST_WINDOW_MS`] of arrival advancing over [`INGEST_BURST_RATIO`] × wall time |
//! | `ingest_slow` | warning | the same ratio below [`INGEST_SLOW_RATIO`] |
//!
//! Both ingest findings wait until the window starts [`INGEST_WARMUP_MS`] after the first
//! frame, so an encoder's start-up flush is not reported.

use std::collections::VecDeque;
use std::time::Instant;

use crate::frame::{Frame, MediaKind};

/// Default keyframe interval target, in seconds.
pub const DEFAULT_KEYFRAME_TARGET_SECS: f64 = 2.0;
/// A mean keyframe interval above this many times the target is a warning.
pub const KEYFRAME_LONG_FACTOR: f64 = 2.0;
/// A mean keyframe interval above this many times the target is an error.
pub const KEYFRAME_LONG_ERROR_FACTOR: f64 = 5.0;
/// Video media time without a keyframe, in ms, that is an error whatever the mean.
pub const KEYFRAME_MISSING_MS: i64 = 10_000;
/// How many of the most recent keyframe intervals the keyframe findings look at.
pub const KEYFRAME_WINDOW: usize = 8;
/// Fewest keyframe intervals that can be called irregular.
pub const KEYFRAME_IRREGULAR_MIN_INTERVALS: usize = 3;
/// Longest / shortest keyframe interval above this is irregular (info).
pub const KEYFRAME_IRREGULAR_RATIO: f64 = 2.0;
/// Longest / shortest keyframe interval above this is irregular (warning).
pub const KEYFRAME_IRREGULAR_WARNING_RATIO: f64 = 4.0;
/// Arrival window of the ingest bitrate, in ms.
pub const BITRATE_WINDOW_MS: u64 = 5_000;
/// Arrival time after the first frame before the bitrate is judged, in ms.
pub const BITRATE_MIN_SPAN_MS: u64 = 2_000;
/// `bitrate_dropping` compares the last this many ms of ingest with the rest of the window.
pub const TREND_RECENT_MS: u64 = 1_000;
/// ... and reports when the last second is below this share of the seconds before.
pub const TREND_DROP_RATIO: f64 = 0.35;
/// ... if those carried at least this many bits per second.
pub const TREND_MIN_BPS: f64 = 100_000.0;
/// Video media time over which the frame rate is measured, in ms.
pub const FPS_WINDOW_MS: i64 = 5_000;
/// Fewest ms of video media time the frame rate is measured over.
pub const FPS_MIN_SPAN_MS: i64 = 2_000;
/// A measured frame rate below this fraction of the declared one is reported.
pub const FPS_MIN_RATIO: f64 = 0.9;
/// Video media time over which dropped frames are counted, in ms.
pub const VIDEO_WINDOW_MS: i64 = 10_000;
/// A DTS step longer than this many typical frame durations is a gap (a frame is missing).
///
/// One missing frame makes a step of two frame durations, so the factor sits between normal
/// timestamp jitter (rounding to whole ms) and 2.
pub const GAP_FACTOR: f64 = 1.75;
/// This many gaps in the window are reported whatever the fraction of missing frames.
pub const DROP_MIN_GAPS: usize = 3;
/// More than this fraction of frames missing in the window is reported.
pub const DROP_MIN_FRACTION: f64 = 0.01;
/// Fewest DTS steps in the window before dropped frames are judged.
pub const DROP_MIN_STEPS: usize = 10;
/// A forward DTS step this many ms longer than the wall-clock time since the track's previous
/// frame is a timestamp jump.
pub const JUMP_THRESHOLD_MS: i64 = 1_000;
/// How long a timestamp jump or step backwards stays reported after it happened, in ms.
pub const DISCONTINUITY_VISIBLE_MS: u64 = 30_000;
/// Arrival window of the A/V drift median, in ms.
pub const DRIFT_WINDOW_MS: u64 = 10_000;
/// Fewest drift samples in the window before drift is judged.
pub const DRIFT_MIN_SAMPLES: usize = 10;
/// A median A/V drift beyond this many ms (either way) is a warning.
pub const DRIFT_WARNING_MS: i64 = 500;
/// A median A/V drift beyond this many ms (either way) is an error.
pub const DRIFT_ERROR_MS: i64 = 2_000;
/// A drift sample is taken only while the other kind arrived within this many ms.
pub const DRIFT_LIVE_MS: u64 = 1_000;
/// A track silent for longer than this many ms is stalled (while another still arrives).
pub const STALL_MS: u64 = 3_000;
/// A track that arrived within this many ms "still arrives".
pub const STILL_ARRIVING_MS: u64 = 1_000;
/// Video whose last frame arrived longer ago than this (ms) is gone; its frame rate,
/// keyframes and drops are no longer judged (a stall says what happened).
pub const VIDEO_GONE_MS: u64 = 10_000;
/// Composition time offsets above this many ms are anomalous (negative ones always are).
pub const CTS_MAX_MS: i32 = 2_000;
/// How long an anomalous composition time stays reported, in ms.
pub const CTS_WINDOW_MS: u64 = 10_000;
/// Arrival window over which media time is compared with wall time, in ms.
pub const INGEST_WINDOW_MS: u64 = 5_000;
/// The ingest window must start at least this many ms after the first frame.
pub const INGEST_WARMUP_MS: u64 = 2_000;
/// Media time advancing faster than this many times wall time is a burst.
pub const INGEST_BURST_RATIO: f64 = 1.5;
/// Media time advancing slower than this many times wall time is slow ingest.
pub const INGEST_SLOW_RATIO: f64 = 0.8;

/// Most video DTS samples kept (the window is also cut at [`VIDEO_WINDOW_MS`]).
const VIDEO_SAMPLES_MAX: usize = 4_096;
/// Most drift samples kept (the window is also cut at [`DRIFT_WINDOW_MS`]).
const DRIFT_SAMPLES_MAX: usize = 1_024;
/// Width of an ingest byte-count bucket, in ms.
const BYTES_BUCKET_MS: u64 = 100;
/// Most byte-count buckets kept (the window needs `BITRATE_WINDOW_MS / BYTES_BUCKET_MS`).
const BYTES_BUCKETS_MAX: usize = 64;
/// Width of a media-progress bucket, in ms.
const PROGRESS_BUCKET_MS: u64 = 100;
/// Most media-progress samples kept per kind (one per bucket).
const PROGRESS_SAMPLES_MAX: usize = 64;
/// Width of an event bucket, in ms.
const EVENT_BUCKET_MS: u64 = 1_000;
/// Most event buckets kept per kind of event (the longest window needs 31).
const EVENT_BUCKETS_MAX: usize = 40;
/// Most tracks tracked for stalls: every (audio or video, track id) pair.
const TRACKS_MAX: usize = 2 * 256;

/// Slot of the default-track audio clock.
const AUDIO: usize = 0;
/// Slot of the default-track video clock.
const VIDEO: usize = 1;

/// Thresholds of a [`HealthAnalyzer`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthConfig {
    /// The keyframe interval the encoder should use, in seconds (default 2.0). A value that is
    /// not a positive finite number means the default.
    pub keyframe_target_secs: f64,
    /// The most ingest bitrate allowed, in bit/s; 0 means no limit (the default).
    pub max_bitrate_bps: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            keyframe_target_secs: DEFAULT_KEYFRAME_TARGET_SECS,
            max_bitrate_bps: 0,
        }
    }
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; viewers are probably fine.
    Info,
    /// Viewers are or will be affected.
    Warning,
    /// The stream is broken for viewers.
    Error,
}

impl Severity {
    /// `"info"`, `"warning"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One thing wrong with a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// A stable snake_case code, such as `keyframe_interval_long`.
    pub code: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// Plain English: the measured value and what to change on the encoder.
    pub message: String,
}

impl Finding {
    fn new(code: &'static str, severity: Severity, message: String) -> Self {
        Self {
            code,
            severity,
            message,
        }
    }
}

/// Timing of one default-track kind (audio or video).
#[derive(Debug, Clone, Copy)]
struct Clock {
    /// The newest coded frame's timestamp as sent.
    last_raw: u32,
    /// When it arrived, in ms since the analyzer started.
    last_arrival: u64,
    /// The newest DTS unwrapped past 2^32 (steps back count as steps back).
    dts: i64,
    /// Media time advanced, in ms, without discontinuities: a jump counts as the wall time it
    /// took, a step back as nothing.
    progress: i64,
}

/// What a new timestamp did to a [`Clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    First,
    Normal,
    /// Forward by this many ms, more than the wall time allows.
    Jump(i64),
    /// Backwards by this many ms.
    Backwards(i64),
}

impl Clock {
    fn new(timestamp: u32, at: u64) -> Self {
        Self {
            last_raw: timestamp,
            last_arrival: at,
            dts: i64::from(timestamp),
            progress: 0,
        }
    }

    fn advance(&mut self, timestamp: u32, at: u64) -> Step {
        // A step back of more than 2^31 is a forward wrap.
        let delta = i64::from(timestamp.wrapping_sub(self.last_raw) as i32);
        let wall = i64::try_from(at.saturating_sub(self.last_arrival)).unwrap_or(i64::MAX);
        let step = if delta < 0 {
            Step::Backwards(-delta)
        } else if delta > wall.saturating_add(JUMP_THRESHOLD_MS) {
            Step::Jump(delta)
        } else {
            Step::Normal
        };
        let progressed = match step {
            Step::Normal => delta,
            Step::Jump(_) => wall,
            Step::First | Step::Backwards(_) => 0,
        };
        self.progress = self.progress.saturating_add(progressed);
        self.dts = self.dts.saturating_add(delta);
        self.last_raw = timestamp;
        self.last_arrival = at;
        step
    }
}

/// Counts of rare events per second of arrival, for a window.
#[derive(Debug, Clone)]
struct EventWindow {
    window_ms: u64,
    /// (second, count, largest magnitude), oldest first.
    buckets: VecDeque<(u64, u32, i64)>,
}

impl EventWindow {
    fn new(window_ms: u64) -> Self {
        Self {
            window_ms,
            buckets: VecDeque::new(),
        }
    }

    fn record(&mut self, at: u64, magnitude: i64) {
        let bucket = at / EVENT_BUCKET_MS;
        match self.buckets.back_mut() {
            Some((b, count, largest)) if *b == bucket => {
                *count = count.saturating_add(1);
                *largest = (*largest).max(magnitude);
            }
            _ => self.buckets.push_back((bucket, 1, magnitude)),
        }
        while let Some(&(b, _, _)) = self.buckets.front() {
            if self.buckets.len() > EVENT_BUCKETS_MAX || !self.live(b, at) {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    fn live(&self, bucket: u64, now: u64) -> bool {
        let end = bucket.saturating_add(1).saturating_mul(EVENT_BUCKET_MS);
        end.saturating_add(self.window_ms) > now
    }

    /// Events in the window ending at `now`: how many and the largest magnitude.
    fn summary(&self, now: u64) -> Option<(u32, i64)> {
        self.buckets
            .iter()
            .filter(|&&(b, _, _)| self.live(b, now))
            .fold(None, |acc, &(_, count, largest)| match acc {
                None => Some((count, largest)),
                Some((c, l)) => Some((c.saturating_add(count), largest.max(l))),
            })
    }
}

/// Media progress of one kind sampled at arrival, one sample per bucket of arrival time.
#[derive(Debug, Clone, Default)]
struct ProgressWindow {
    /// (arrival, progress), oldest first; the oldest is at or before the window's start.
    samples: VecDeque<(u64, i64)>,
}

impl ProgressWindow {
    fn record(&mut self, at: u64, progress: i64) {
        match self.samples.back_mut() {
            Some(last) if last.0 / PROGRESS_BUCKET_MS == at / PROGRESS_BUCKET_MS => {
                *last = (at, progress);
            }
            _ => self.samples.push_back((at, progress)),
        }
        let start = at.saturating_sub(INGEST_WINDOW_MS);
        while self.samples.len() > PROGRESS_SAMPLES_MAX
            || self.samples.get(1).is_some_and(|s| s.0 <= start)
        {
            self.samples.pop_front();
        }
    }

    /// Media ms per wall ms from the newest sample at or before `now - window` to `now`, and
    /// that sample's arrival time.
    fn rate(&self, now: u64) -> Option<(u64, f64)> {
        let start = now.checked_sub(INGEST_WINDOW_MS)?;
        let &(from_at, from_progress) = self.samples.iter().rev().find(|s| s.0 <= start)?;
        let &(_, to_progress) = self.samples.back()?;
        let wall = now.saturating_sub(from_at);
        if wall == 0 {
            return None;
        }
        let media = to_progress.saturating_sub(from_progress);
        Some((from_at, media as f64 / wall as f64))
    }
}

/// When a track (audio or video, any id) last sent anything.
#[derive(Debug, Clone, Copy)]
struct TrackSeen {
    kind: MediaKind,
    id: u8,
    last_arrival: u64,
}

/// Stream-health diagnostics of one publisher's stream.
///
/// Feed every audio and video frame to [`observe`](Self::observe) as it arrives and ask
/// [`findings`](Self::findings) about once a second. Arrival times before a previous one are
/// taken as that previous one.
#[derive(Debug, Clone)]
pub struct HealthAnalyzer {
    config: HealthConfig,
    /// Time zero of all arrival times (ms since this).
    start: Instant,
    declared_fps: Option<f64>,
    /// The latest arrival seen, in ms.
    last_arrival: u64,
    first_arrival: Option<u64>,
    tracks: Vec<TrackSeen>,
    clocks: [Option<Clock>; 2],
    progress: [ProgressWindow; 2],
    jumps: [EventWindow; 2],
    backwards: [EventWindow; 2],
    /// Unwrapped DTS of recent default-track coded video, oldest first, non-decreasing.
    video_dts: VecDeque<i64>,
    /// Unwrapped DTS of the most recent keyframes, oldest first.
    keyframes: VecDeque<i64>,
    /// DTS of the newest keyframe, or of the first video frame since there was none.
    key_baseline: Option<i64>,
    /// Negative composition times: magnitude of the most negative.
    cts_negative: EventWindow,
    /// Composition times above [`CTS_MAX_MS`].
    cts_large: EventWindow,
    /// (arrival, newest audio DTS − newest video DTS).
    drift: VecDeque<(u64, i32)>,
    /// The first coded frame's timestamp of the default audio and video tracks.
    first_dts: [Option<u32>; 2],
    /// (arrival bucket, bytes).
    bytes: VecDeque<(u64, u64)>,
}

impl HealthAnalyzer {
    /// An analyzer that has seen nothing yet; `now` is time zero.
    pub fn new(config: HealthConfig, now: Instant) -> Self {
        let mut config = config;
        if !(config.keyframe_target_secs.is_finite() && config.keyframe_target_secs > 0.0) {
            config.keyframe_target_secs = DEFAULT_KEYFRAME_TARGET_SECS;
        }
        let discontinuities = || {
            [
                EventWindow::new(DISCONTINUITY_VISIBLE_MS),
                EventWindow::new(DISCONTINUITY_VISIBLE_MS),
            ]
        };
        Self {
            config,
            start: now,
            declared_fps: None,
            last_arrival: 0,
            first_arrival: None,
            tracks: Vec::new(),
            clocks: [None, None],
            progress: Default::default(),
            jumps: discontinuities(),
            backwards: discontinuities(),
            video_dts: VecDeque::new(),
            keyframes: VecDeque::new(),
            key_baseline: None,
            cts_negative: EventWindow::new(CTS_WINDOW_MS),
            cts_large: EventWindow::new(CTS_WINDOW_MS),
            drift: VecDeque::new(),
            first_dts: [None, None],
            bytes: VecDeque::new(),
        }
    }

    /// One frame as the publisher sent it, at arrival time `now`. Call for every audio and
    /// video frame; data frames only count towards the ingest bitrate. Only track 0 is
    /// analysed for timing; frames of other tracks count for stalls and bitrate.
    pub fn observe(&mut self, frame: &Frame, now: Instant) {
        let at = self.ms(now);
        self.last_arrival = at;
        self.first_arrival.get_or_insert(at);
        self.count_bytes(at, frame.payload.len());
        let slot = match frame.kind {
            MediaKind::Audio => AUDIO,
            MediaKind::Video => VIDEO,
            MediaKind::Data => return,
        };
        self.track_seen(frame, at);
        if frame.info.track_id != 0 || !frame.info.is_coded_frame {
            return;
        }
        let step = match &mut self.clocks[slot] {
            Some(clock) => clock.advance(frame.timestamp, at),
            none => {
                *none = Some(Clock::new(frame.timestamp, at));
                self.first_dts[slot].get_or_insert(frame.timestamp);
                Step::First
            }
        };
        match step {
            Step::Jump(ms) => self.jumps[slot].record(at, ms),
            Step::Backwards(ms) => self.backwards[slot].record(at, ms),
            Step::First | Step::Normal => {}
        }
        let Some(clock) = self.clocks[slot] else {
            return;
        };
        self.progress[slot].record(at, clock.progress);
        if slot == VIDEO {
            let discontinuity = matches!(step, Step::Jump(_) | Step::Backwards(_));
            self.observe_video(frame, clock.dts, at, discontinuity);
        }
        self.sample_drift(slot, at);
    }

    /// The frame rate the publisher's metadata declares (`onMetaData` `framerate`), when
    /// known. Values that are not positive finite numbers mean unknown.
    pub fn set_declared_fps(&mut self, fps: Option<f64>) {
        self.declared_fps = fps.filter(|f| f.is_finite() && *f > 0.0);
    }

    /// What is wrong now: empty for a clean stream; most severe first, then by code. Each code
    /// appears at most once. Cheap enough to call about once a second.
    pub fn findings(&self, now: Instant) -> Vec<Finding> {
        let now = self.ms(now);
        let mut out = Vec::new();
        if self.first_arrival.is_none() {
            return out;
        }
        self.keyframe_findings(now, &mut out);
        self.bitrate_finding(now, &mut out);
        self.video_rate_findings(now, &mut out);
        self.timestamp_findings(now, &mut out);
        self.drift_finding(now, &mut out);
        self.stall_finding(now, &mut out);
        self.cts_finding(now, &mut out);
        self.ingest_finding(now, &mut out);
        out.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(b.code)));
        out
    }

    /// `now` in ms since the start, never before the latest arrival.
    fn ms(&self, now: Instant) -> u64 {
        let ms = u64::try_from(now.saturating_duration_since(self.start).as_millis())
            .unwrap_or(u64::MAX);
        ms.max(self.last_arrival)
    }

    fn count_bytes(&mut self, at: u64, len: usize) {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let bucket = at / BYTES_BUCKET_MS;
        match self.bytes.back_mut() {
            Some((b, bytes)) if *b == bucket => *bytes = bytes.saturating_add(len),
            _ => self.bytes.push_back((bucket, len)),
        }
        while let Some(&(b, _)) = self.bytes.front() {
            let end = b.saturating_add(1).saturating_mul(BYTES_BUCKET_MS);
            if self.bytes.len() > BYTES_BUCKETS_MAX || end.saturating_add(BITRATE_WINDOW_MS) <= at {
                self.bytes.pop_front();
            } else {
                break;
            }
        }
    }

    fn track_seen(&mut self, frame: &Frame, at: u64) {
        let (kind, id) = (frame.kind, frame.info.track_id);
        let found = self
            .tracks
            .iter()
            .position(|t| t.kind == kind && t.id == id);
        if frame.info.is_sequence_end {
            // The track ended on purpose: its silence is no stall.
            if let Some(i) = found {
                self.tracks.swap_remove(i);
            }
            return;
        }
        match found {
            Some(i) => self.tracks[i].last_arrival = at,
            None if self.tracks.len() < TRACKS_MAX => self.tracks.push(TrackSeen {
                kind,
                id,
                last_arrival: at,
            }),
            None => {}
        }
    }

    fn observe_video(&mut self, frame: &Frame, dts: i64, at: u64, discontinuity: bool) {
        if discontinuity {
            // Intervals across a discontinuity mean nothing; start measuring again.
            self.video_dts.clear();
            self.keyframes.clear();
            self.key_baseline = None;
        }
        let cts = frame.info.composition_time;
        if cts < 0 {
            self.cts_negative.record(at, -i64::from(cts));
        } else if cts > CTS_MAX_MS {
            self.cts_large.record(at, i64::from(cts));
        }
        self.video_dts.push_back(dts);
        while self.video_dts.len() > VIDEO_SAMPLES_MAX
            || self
                .video_dts
                .front()
                .is_some_and(|&d| d < dts.saturating_sub(VIDEO_WINDOW_MS))
        {
            self.video_dts.pop_front();
        }
        if frame.info.is_keyframe {
            self.keyframes.push_back(dts);
            while self.keyframes.len() > KEYFRAME_WINDOW + 1 {
                self.keyframes.pop_front();
            }
            self.key_baseline = Some(dts);
        } else if self.key_baseline.is_none() {
            self.key_baseline = Some(dts);
        }
    }

    fn sample_drift(&mut self, slot: usize, at: u64) {
        let (Some(audio), Some(video)) = (self.clocks[AUDIO], self.clocks[VIDEO]) else {
            return;
        };
        let other = if slot == AUDIO { video } else { audio };
        if at.saturating_sub(other.last_arrival) > DRIFT_LIVE_MS {
            return;
        }
        let drift = audio.last_raw.wrapping_sub(video.last_raw) as i32;
        self.drift.push_back((at, drift));
        while self.drift.len() > DRIFT_SAMPLES_MAX
            || self
                .drift
                .front()
                .is_some_and(|s| s.0.saturating_add(DRIFT_WINDOW_MS) <= at)
        {
            self.drift.pop_front();
        }
    }

    /// The video clock, if video arrived recently enough to judge.
    fn live_video(&self, now: u64) -> Option<Clock> {
        self.clocks[VIDEO].filter(|c| now.saturating_sub(c.last_arrival) <= VIDEO_GONE_MS)
    }

    fn keyframe_findings(&self, now: u64, out: &mut Vec<Finding>) {
        let Some(video) = self.live_video(now) else {
            return;
        };
        let target_ms = self.config.keyframe_target_secs * 1000.0;
        let target = self.config.keyframe_target_secs;
        let since_key = self.key_baseline.map_or(0, |b| video.dts.saturating_sub(b));
        let intervals: Vec<i64> = self
            .keyframes
            .iter()
            .zip(self.keyframes.iter().skip(1))
            .map(|(a, b)| b.saturating_sub(*a))
            .filter(|&i| i > 0)
            .collect();
        if since_key > KEYFRAME_MISSING_MS {
            out.push(Finding::new(
                "keyframe_interval_long",
                Severity::Error,
                format!(
                    "no keyframe in the last {} of video; viewers cannot start playing: set \
                     the encoder's keyframe interval to {target} s for HLS and fast joins",
                    secs(since_key as f64)
                ),
            ));
        } else if !intervals.is_empty() {
            let mean = intervals.iter().map(|&i| i as f64).sum::<f64>() / intervals.len() as f64;
            if mean > KEYFRAME_LONG_FACTOR * target_ms {
                let severity = if mean > KEYFRAME_LONG_ERROR_FACTOR * target_ms {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                out.push(Finding::new(
                    "keyframe_interval_long",
                    severity,
                    format!(
                        "keyframe every {} (mean of the last {}); set the encoder's keyframe \
                         interval to {target} s for HLS and fast joins",
                        secs(mean),
                        match intervals.len() {
                            1 => "interval".to_string(),
                            n => format!("{n} intervals"),
                        }
                    ),
                ));
            }
        }
        if intervals.len() >= KEYFRAME_IRREGULAR_MIN_INTERVALS {
            let min = intervals.iter().copied().min().unwrap_or(1).max(1);
            let max = intervals.iter().copied().max().unwrap_or(1);
            let ratio = max as f64 / min as f64;
            if ratio > KEYFRAME_IRREGULAR_RATIO {
                let severity = if ratio > KEYFRAME_IRREGULAR_WARNING_RATIO {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                out.push(Finding::new(
                    "keyframe_interval_irregular",
                    severity,
                    format!(
                        "keyframe intervals vary from {} to {} over the last {} intervals; use a \
                         fixed keyframe interval of {target} s (turn off scene-cut keyframes) so \
                         HLS segments have even durations",
                        secs(min as f64),
                        secs(max as f64),
                        intervals.len()
                    ),
                ));
            }
        }
    }

    /// Bytes that arrived in `[from, to)` ms (whole buckets).
    fn bytes_between(&self, from: u64, to: u64) -> u64 {
        self.bytes
            .iter()
            .filter(|&&(b, _)| {
                let start = b.saturating_mul(BYTES_BUCKET_MS);
                start >= from && start.saturating_add(BYTES_BUCKET_MS) <= to
            })
            .fold(0u64, |sum, &(_, n)| sum.saturating_add(n))
    }

    /// `bitrate_dropping`: the last second's bitrate far below the four before it.
    fn bitrate_trend_finding(&self, now: u64, out: &mut Vec<Finding>) {
        let Some(first) = self.first_arrival else {
            return;
        };
        let now = now - now % BYTES_BUCKET_MS;
        if now.saturating_sub(first) < BITRATE_WINDOW_MS + BYTES_BUCKET_MS {
            return;
        }
        let recent =
            self.bytes_between(now.saturating_sub(TREND_RECENT_MS), now) as f64 * 8.0 * 1000.0
                / TREND_RECENT_MS as f64;
        let before_ms = BITRATE_WINDOW_MS - TREND_RECENT_MS;
        let before = self.bytes_between(
            now.saturating_sub(BITRATE_WINDOW_MS),
            now.saturating_sub(TREND_RECENT_MS),
        ) as f64
            * 8.0
            * 1000.0
            / before_ms as f64;
        if before >= TREND_MIN_BPS && recent < before * TREND_DROP_RATIO {
            out.push(Finding::new(
                "bitrate_dropping",
                Severity::Info,
                format!(
                    "ingest bitrate fell from {} to {} in the last {}: the encoder lowered its \
                     bitrate (a congested uplink, or a dynamic bitrate reacting to one) or the \
                     picture went still",
                    bitrate(before),
                    bitrate(recent),
                    secs(TREND_RECENT_MS as f64)
                ),
            ));
        }
    }

    fn bitrate_finding(&self, now: u64, out: &mut Vec<Finding>) {
        self.bitrate_trend_finding(now, out);
        let limit = self.config.max_bitrate_bps;
        let Some(first) = self.first_arrival else {
            return;
        };
        let age = now.saturating_sub(first);
        if limit == 0 || age < BITRATE_MIN_SPAN_MS {
            return;
        }
        let bytes = self
            .bytes
            .iter()
            .filter(|&&(b, _)| {
                let end = b.saturating_add(1).saturating_mul(BYTES_BUCKET_MS);
                end.saturating_add(BITRATE_WINDOW_MS) > now
            })
            .fold(0u64, |sum, &(_, n)| sum.saturating_add(n));
        let span_ms = age.min(BITRATE_WINDOW_MS) as f64;
        let bps = bytes as f64 * 8.0 * 1000.0 / span_ms;
        if bps > limit as f64 {
            out.push(Finding::new(
                "bitrate_over_limit",
                Severity::Warning,
                format!(
                    "ingest bitrate is {} over the last {}, above the {} limit; lower the \
                     encoder's bitrate (use CBR or set a maximum bitrate)",
                    bitrate(bps),
                    secs(span_ms),
                    bitrate(limit as f64)
                ),
            ));
        }
    }

    fn video_rate_findings(&self, now: u64, out: &mut Vec<Finding>) {
        if self.live_video(now).is_none() {
            return;
        }
        let Some(&newest) = self.video_dts.back() else {
            return;
        };
        if let Some(declared) = self.declared_fps {
            let from = newest.saturating_sub(FPS_WINDOW_MS);
            let recent = self.video_dts.iter().filter(|&&d| d >= from);
            let (count, oldest) = recent.fold((0usize, newest), |(n, o), &d| (n + 1, o.min(d)));
            let span = newest.saturating_sub(oldest);
            if span >= FPS_MIN_SPAN_MS && count >= 2 {
                let fps = (count - 1) as f64 * 1000.0 / span as f64;
                if fps < FPS_MIN_RATIO * declared {
                    out.push(Finding::new(
                        "fps_below_metadata",
                        Severity::Warning,
                        format!(
                            "video runs at {fps:.1} fps but the metadata declares {declared:.1} \
                             fps; the encoder cannot keep up: lower the resolution, frame rate \
                             or encoder preset, or free CPU/GPU on the encoding machine"
                        ),
                    ));
                }
            }
        }
        let mut steps: Vec<i64> = self
            .video_dts
            .iter()
            .zip(self.video_dts.iter().skip(1))
            .map(|(a, b)| b.saturating_sub(*a))
            .filter(|&s| s > 0)
            .collect();
        if steps.len() < DROP_MIN_STEPS {
            return;
        }
        let (mut gaps, mut missing) = (0usize, 0u64);
        let frames = self.video_dts.len() as u64;
        let mut sorted = steps.clone();
        sorted.sort_unstable();
        // The lower quartile: a typical frame duration even when many frames are missing.
        let typical = sorted[sorted.len() / 4] as f64;
        if typical <= 0.0 {
            return;
        }
        for step in steps.drain(..) {
            let step = step as f64;
            if step > GAP_FACTOR * typical {
                gaps += 1;
                let lost = ((step / typical).round() as u64).saturating_sub(1).max(1);
                missing = missing.saturating_add(lost);
            }
        }
        let expected = frames.saturating_add(missing) as f64;
        let fraction = missing as f64 / expected.max(1.0);
        if gaps >= DROP_MIN_GAPS || fraction > DROP_MIN_FRACTION {
            out.push(Finding::new(
                "frames_dropped",
                Severity::Warning,
                format!(
                    "about {missing} video frames missing in the last {} of video ({gaps} gaps \
                     in the timestamps, {:.1} % of frames); the encoder is dropping frames: \
                     if its CPU/GPU is overloaded lower the resolution, frame rate or encoder \
                     preset; if its upload is congested lower the bitrate",
                    secs(VIDEO_WINDOW_MS as f64),
                    fraction * 100.0
                ),
            ));
        }
    }

    fn timestamp_findings(&self, now: u64, out: &mut Vec<Finding>) {
        let kinds = |windows: &[EventWindow; 2]| {
            let audio = windows[AUDIO].summary(now);
            let video = windows[VIDEO].summary(now);
            let which = match (audio.is_some(), video.is_some()) {
                (true, true) => "audio and video",
                (true, false) => "audio",
                (false, true) => "video",
                (false, false) => return None,
            };
            let (count, largest) = [audio, video]
                .into_iter()
                .flatten()
                .fold((0u32, 0i64), |(c, l), (n, m)| {
                    (c.saturating_add(n), l.max(m))
                });
            Some((which, count, largest))
        };
        let window = secs(DISCONTINUITY_VISIBLE_MS as f64);
        if let Some((which, count, largest)) = kinds(&self.jumps) {
            out.push(Finding::new(
                "timestamp_jump",
                Severity::Warning,
                format!(
                    "{which} timestamps jumped forward by up to {} ({count} {} in the last \
                     {window}); players may freeze or skip: make the encoder use one steady \
                     clock for timestamps",
                    secs(largest as f64),
                    times(count)
                ),
            ));
        }
        if let Some((which, count, largest)) = kinds(&self.backwards) {
            out.push(Finding::new(
                "timestamp_backwards",
                Severity::Warning,
                format!(
                    "{which} timestamps went backwards by up to {} ({count} {} in the last \
                     {window}); players and recorders may drop or reorder frames: make the \
                     encoder's timestamps increase steadily",
                    secs(largest as f64),
                    times(count)
                ),
            ));
        }
    }

    fn drift_finding(&self, now: u64, out: &mut Vec<Finding>) {
        let mut recent: Vec<i32> = self
            .drift
            .iter()
            .filter(|s| s.0.saturating_add(DRIFT_WINDOW_MS) > now)
            .map(|s| s.1)
            .collect();
        if recent.len() < DRIFT_MIN_SAMPLES {
            return;
        }
        recent.sort_unstable();
        let median = i64::from(recent[recent.len() / 2]);
        if median.abs() <= DRIFT_WARNING_MS {
            // Interleaved by timestamp, the tracks may still be offset from the start: an
            // encoder's audio sync offset shows only there.
            self.start_offset_finding(out);
            return;
        }
        let severity = if median.abs() > DRIFT_ERROR_MS {
            Severity::Error
        } else {
            Severity::Warning
        };
        let (side, leads) = if median > 0 {
            ("ahead of", "leads")
        } else {
            ("behind", "trails")
        };
        out.push(Finding::new(
            "av_drift",
            severity,
            format!(
                "audio is {} {side} video (audio DTS {leads} the video DTS arriving with it, \
                 median over the last {}); viewers see audio and video out of sync: fix the \
                 encoder's audio sync offset or its audio/video interleaving",
                secs(median.abs() as f64),
                secs(DRIFT_WINDOW_MS as f64)
            ),
        ));
    }

    /// `av_drift` from the tracks' first timestamps: audio starting more than
    /// [`DRIFT_WARNING_MS`] before or after video.
    fn start_offset_finding(&self, out: &mut Vec<Finding>) {
        let [Some(audio), Some(video)] = self.first_dts else {
            return;
        };
        let offset = i64::from(audio.wrapping_sub(video) as i32);
        if offset.abs() <= DRIFT_WARNING_MS {
            return;
        }
        let severity = if offset.abs() > DRIFT_ERROR_MS {
            Severity::Error
        } else {
            Severity::Warning
        };
        let side = if offset > 0 { "after" } else { "before" };
        out.push(Finding::new(
            "av_drift",
            severity,
            format!(
                "audio timestamps start {} {side} video's (the tracks' first frames): an audio \
                 sync offset in the encoder, or an audio source that started late; players \
                 keep that offset between sound and picture",
                secs(offset.abs() as f64)
            ),
        ));
    }

    fn stall_finding(&self, now: u64, out: &mut Vec<Finding>) {
        let silent = |t: &TrackSeen| now.saturating_sub(t.last_arrival);
        let mut stalled: Vec<&TrackSeen> = self
            .tracks
            .iter()
            .filter(|t| {
                silent(t) > STALL_MS
                    && self.tracks.iter().any(|o| {
                        !(o.kind == t.kind && o.id == t.id) && silent(o) <= STILL_ARRIVING_MS
                    })
            })
            .collect();
        if stalled.is_empty() {
            return;
        }
        stalled.sort_by_key(|t| (t.kind == MediaKind::Video, t.id));
        let name = |t: &TrackSeen| {
            let kind = if t.kind == MediaKind::Audio {
                "audio"
            } else {
                "video"
            };
            format!("{kind} track {}", t.id)
        };
        let message = if let [one] = stalled[..] {
            let source = if one.kind == MediaKind::Audio {
                "audio"
            } else {
                "video"
            };
            format!(
                "{} has sent nothing for {} while other tracks still arrive; check the \
                 encoder's {source} source (capture device, muted or removed input)",
                name(one),
                secs(silent(one) as f64)
            )
        } else {
            const LISTED: usize = 4;
            let mut list: Vec<String> = stalled
                .iter()
                .take(LISTED)
                .map(|t| format!("{} ({})", name(t), secs(silent(t) as f64)))
                .collect();
            if stalled.len() > LISTED {
                list.push(format!("{} more", stalled.len() - LISTED));
            }
            format!(
                "{} have sent nothing while other tracks still arrive; check the encoder's \
                 sources for those tracks (capture devices, muted or removed inputs)",
                list.join(", ")
            )
        };
        out.push(Finding::new("track_stalled", Severity::Error, message));
    }

    fn cts_finding(&self, now: u64, out: &mut Vec<Finding>) {
        let mut parts = Vec::new();
        if let Some((count, largest)) = self.cts_negative.summary(now) {
            parts.push(format!("{count} negative (down to -{largest} ms)"));
        }
        if let Some((count, largest)) = self.cts_large.summary(now) {
            parts.push(format!(
                "{count} above {CTS_MAX_MS} ms (up to {largest} ms)"
            ));
        }
        if parts.is_empty() {
            return;
        }
        out.push(Finding::new(
            "cts_anomaly",
            Severity::Warning,
            format!(
                "video composition time offsets out of range in the last {}: {}; presentation \
                 time must not precede decode time nor trail it by seconds: check the \
                 encoder's B-frame and timestamp settings",
                secs(CTS_WINDOW_MS as f64),
                parts.join(", ")
            ),
        ));
    }

    fn ingest_finding(&self, now: u64, out: &mut Vec<Finding>) {
        let Some(first) = self.first_arrival else {
            return;
        };
        let live = |slot: usize| {
            self.clocks[slot]
                .is_some_and(|c| now.saturating_sub(c.last_arrival) <= INGEST_WINDOW_MS)
        };
        // Video paces the stream, unless it stopped while audio goes on.
        let slot = if self.clocks[VIDEO].is_some() && (live(VIDEO) || !live(AUDIO)) {
            VIDEO
        } else if self.clocks[AUDIO].is_some() {
            AUDIO
        } else {
            return;
        };
        let Some((from, ratio)) = self.progress[slot].rate(now) else {
            return;
        };
        if from < first.saturating_add(INGEST_WARMUP_MS) {
            return;
        }
        let window = secs(INGEST_WINDOW_MS as f64);
        if ratio > INGEST_BURST_RATIO {
            out.push(Finding::new(
                "ingest_burst",
                Severity::Warning,
                format!(
                    "media time arrives {ratio:.1}× faster than real time over the last \
                     {window}; the publisher is not pacing its output (use ffmpeg -re or a live \
                     source) or is flushing a backlog after a reconnect"
                ),
            ));
        } else if ratio < INGEST_SLOW_RATIO {
            out.push(Finding::new(
                "ingest_slow",
                Severity::Warning,
                format!(
                    "media time arrives at {ratio:.2}× real time over the last {window}; the \
                     network cannot carry the stream (the publisher's send buffer is full): \
                     lower the encoder's bitrate or check the publisher's upload bandwidth"
                ),
            ));
        }
    }
}

/// Milliseconds as seconds with one decimal: `"8.0 s"`.
fn secs(ms: f64) -> String {
    format!("{:.1} s", ms / 1000.0)
}

/// Bits per second as `"12.3 Mbit/s"` or `"800 kbit/s"`.
fn bitrate(bps: f64) -> String {
    if bps >= 1_000_000.0 {
        format!("{:.1} Mbit/s", bps / 1_000_000.0)
    } else {
        format!("{:.0} kbit/s", bps / 1000.0)
    }
}

fn times(count: u32) -> &'static str {
    if count == 1 {
        "time"
    } else {
        "times"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::test_util::{audio_header, video_header};

    const FPS: u64 = 30;

    /// A legacy AVC frame of `size` bytes with composition time `cts`.
    fn vframe(ts: u32, key: bool, cts: i32, size: usize) -> Frame {
        let c = (cts as u32).to_be_bytes();
        let mut body = vec![
            if key { 0x17 } else { 0x27 },
            1,
            c[1],
            c[2],
            c[3],
            0,
            0,
            0,
            1,
        ];
        body.resize(size.max(body.len() + 1), 0xaa);
        Frame::video(ts, Bytes::from(body))
    }

    /// A legacy AAC frame of about 128 kbit/s at 48 kHz.
    fn aframe(ts: u32) -> Frame {
        let mut body = vec![0xaf, 1];
        body.resize(340, 0x21);
        Frame::audio(ts, Bytes::from(body))
    }

    /// One frame of a synthetic stream, before timestamps and arrival times are chosen.
    #[derive(Debug, Clone, Copy)]
    struct M {
        video: bool,
        index: u64,
        /// Media time in ms.
        ms: u64,
        key: bool,
    }

    /// Media time [from, to) ms of a 30 fps video (keyframe every `gop` frames) + 48 kHz AAC
    /// stream; consecutive ranges tile.
    fn media(from: u64, to: u64, gop: u64) -> Vec<M> {
        let mut out = Vec::new();
        let mut i = (from * FPS).div_ceil(1000);
        while i * 1000 / FPS < to {
            out.push(M {
                video: true,
                index: i,
                ms: i * 1000 / FPS,
                key: i.is_multiple_of(gop),
            });
            i += 1;
        }
        let mut j = (from * 3).div_ceil(64);
        while j * 64 / 3 < to {
            out.push(M {
                video: false,
                index: j,
                ms: j * 64 / 3,
                key: false,
            });
            j += 1;
        }
        out
    }

    /// The frame of `m` at `ts`: B-frame style composition times, 20 kB keyframes, 2.5 kB
    /// other frames (about 1 Mbit/s).
    fn frame(m: &M, ts: u32) -> Frame {
        if m.video {
            let cts = if m.index.is_multiple_of(3) { 100 } else { 33 };
            vframe(ts, m.key, cts, if m.key { 20_000 } else { 2_500 })
        } else {
            aframe(ts)
        }
    }

    /// Frames of `ms` with arrival = media time and ts = media time.
    fn real_time(ms: &[M]) -> Vec<(u64, Frame)> {
        ms.iter().map(|m| (m.ms, frame(m, m.ms as u32))).collect()
    }

    struct Run {
        analyzer: HealthAnalyzer,
        t0: Instant,
    }

    impl Run {
        fn new(config: HealthConfig) -> Self {
            let t0 = Instant::now();
            let mut analyzer = HealthAnalyzer::new(config, t0);
            analyzer.set_declared_fps(Some(30.0));
            let mut run = Run { analyzer, t0 };
            run.feed(vec![(0, video_header()), (0, audio_header())]);
            run
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Observes the frames in arrival order (stable for equal arrivals).
        fn feed(&mut self, mut frames: Vec<(u64, Frame)>) {
            frames.sort_by_key(|f| f.0);
            for (at, f) in &frames {
                self.analyzer.observe(f, self.at(*at));
            }
        }

        fn findings(&self, ms: u64) -> Vec<Finding> {
            self.analyzer.findings(self.at(ms))
        }

        fn codes(&self, ms: u64) -> Vec<&'static str> {
            self.findings(ms).iter().map(|f| f.code).collect()
        }

        fn finding(&self, ms: u64, code: &str) -> Finding {
            let all = self.findings(ms);
            all.iter()
                .find(|f| f.code == code)
                .cloned()
                .unwrap_or_else(|| panic!("no {code} at {ms} ms in {all:?}"))
        }
    }

    /// The first number in a message.
    fn first_number(message: &str) -> f64 {
        let start = message.find(|c: char| c.is_ascii_digit()).unwrap();
        let rest = &message[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        rest[..end].parse().unwrap()
    }

    fn assert_bounded(a: &HealthAnalyzer) {
        assert!(a.tracks.len() <= TRACKS_MAX);
        assert!(a.video_dts.len() <= VIDEO_SAMPLES_MAX);
        assert!(a.keyframes.len() <= KEYFRAME_WINDOW + 1);
        assert!(a.drift.len() <= DRIFT_SAMPLES_MAX);
        assert!(a.bytes.len() <= BYTES_BUCKETS_MAX);
        for p in &a.progress {
            assert!(p.samples.len() <= PROGRESS_SAMPLES_MAX);
        }
        for e in a.jumps.iter().chain(&a.backwards) {
            assert!(e.buckets.len() <= EVENT_BUCKETS_MAX);
        }
        assert!(a.cts_negative.buckets.len() <= EVENT_BUCKETS_MAX);
        assert!(a.cts_large.buckets.len() <= EVENT_BUCKETS_MAX);
    }

    #[test]
    fn a_clean_stream_has_no_findings() {
        // Also across the 2^32 wrap of the timestamps.
        for base in [0u32, u32::MAX - 10_000] {
            let mut run = Run::new(HealthConfig::default());
            for s in 0..30 {
                let frames = media(s * 1000, (s + 1) * 1000, 60)
                    .iter()
                    .map(|m| {
                        let ts = base.wrapping_add(m.ms as u32);
                        // Audio comes in batches every 200 ms, behind the video.
                        let at = if m.video {
                            m.ms
                        } else {
                            m.ms.div_ceil(200) * 200
                        };
                        (at, frame(m, ts))
                    })
                    .collect();
                run.feed(frames);
                let end = (s + 1) * 1000;
                assert_eq!(run.findings(end), vec![], "at {end} ms, base {base}");
            }
            assert_bounded(&run.analyzer);
        }
    }

    #[test]
    fn long_gop_is_reported_with_its_interval_and_clears_when_fixed() {
        let mut run = Run::new(HealthConfig::default());
        run.feed(real_time(&media(0, 40_000, 300)));
        let f = run.finding(40_000, "keyframe_interval_long");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("keyframe every 10.0 s"), "{}", f.message);
        assert!(f.message.contains("to 2 s"), "{}", f.message);
        assert_eq!(run.codes(40_000), ["keyframe_interval_long"]);
        // The encoder is fixed: 2 s GOPs.
        run.feed(real_time(&media(40_000, 60_000, 60)));
        assert_eq!(run.findings(60_000), vec![]);

        // No keyframe after the first one: an error.
        let mut run = Run::new(HealthConfig::default());
        run.feed(real_time(&media(0, 15_000, u64::MAX)));
        let f = run.finding(15_000, "keyframe_interval_long");
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.message.contains("no keyframe in the last 15.0 s"),
            "{}",
            f.message
        );
    }

    #[test]
    fn irregular_keyframes_are_reported() {
        let mut run = Run::new(HealthConfig::default());
        // Keyframes 0.5 s and 2.5 s apart in turn.
        let frames = media(0, 20_000, u64::MAX)
            .iter()
            .map(|m| {
                let mut m = *m;
                m.key = m.video && matches!(m.index % 90, 0 | 15);
                (m.ms, frame(&m, m.ms as u32))
            })
            .collect();
        run.feed(frames);
        let f = run.finding(20_000, "keyframe_interval_irregular");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.message.contains("from 0.5 s to 2.5 s"), "{}", f.message);
        assert_eq!(run.codes(20_000), ["keyframe_interval_irregular"]);
    }

    #[test]
    fn dropped_frames_show_in_fps_and_gaps() {
        let mut run = Run::new(HealthConfig::default());
        let ms: Vec<M> = media(0, 10_000, 60)
            .into_iter()
            .filter(|m| !(m.video && m.index % 3 == 2))
            .collect();
        run.feed(real_time(&ms));
        assert_eq!(run.codes(10_000), ["fps_below_metadata", "frames_dropped"]);
        let f = run.finding(10_000, "fps_below_metadata");
        let measured = first_number(&f.message);
        assert!((19.5..=20.5).contains(&measured), "{}", f.message);
        assert!(f.message.contains("declares 30.0 fps"), "{}", f.message);
        let f = run.finding(10_000, "frames_dropped");
        assert!(f.message.contains("missing"), "{}", f.message);

        // Without a declared rate only the gaps are reported.
        run.analyzer.set_declared_fps(None);
        assert_eq!(run.codes(10_000), ["frames_dropped"]);
    }

    #[test]
    fn a_bitrate_that_falls_is_reported() {
        let t0 = Instant::now();
        let mut analyzer = HealthAnalyzer::new(HealthConfig::default(), t0);
        for ms in (0..8_000u32).step_by(40) {
            let now = t0 + Duration::from_millis(u64::from(ms));
            // 1 Mbit/s for 7 s, then a tenth of it.
            let size = if ms < 7_000 { 5_000 } else { 500 };
            analyzer.observe(&vframe(ms, ms % 2000 == 0, 0, size), now);
        }
        let found = analyzer.findings(t0 + Duration::from_millis(8_000));
        let trend: Vec<&Finding> = found
            .iter()
            .filter(|f| f.code == "bitrate_dropping")
            .collect();
        assert_eq!(trend.len(), 1, "{found:?}");
        // A steady stream has no such finding.
        let mut steady = HealthAnalyzer::new(HealthConfig::default(), t0);
        for ms in (0..8_000u32).step_by(40) {
            let now = t0 + Duration::from_millis(u64::from(ms));
            steady.observe(&vframe(ms, ms % 2000 == 0, 0, 5_000), now);
        }
        let found = steady.findings(t0 + Duration::from_millis(8_000));
        assert!(
            found.iter().all(|f| f.code != "bitrate_dropping"),
            "{found:?}"
        );
    }

    #[test]
    fn audio_starting_late_in_timestamps_is_av_drift() {
        // Interleaved by timestamp (as FFmpeg's FLV muxer does), audio stamped 1 s late
        // arrives with the video of the same time: only the first timestamps differ.
        let t0 = Instant::now();
        let mut analyzer = HealthAnalyzer::new(HealthConfig::default(), t0);
        for ms in (0..8_000u32).step_by(20) {
            let now = t0 + Duration::from_millis(u64::from(ms));
            if ms % 40 == 0 {
                let key = ms % 2000 == 0;
                analyzer.observe(&vframe(ms, key, 0, 2_500), now);
            }
            if ms >= 1000 && ms % 20 == 0 {
                analyzer.observe(&aframe(ms), now);
            }
        }
        let found = analyzer.findings(t0 + Duration::from_millis(8_000));
        let drift: Vec<&Finding> = found.iter().filter(|f| f.code == "av_drift").collect();
        assert_eq!(drift.len(), 1, "{found:?}");
        assert!(
            drift[0].message.contains("1.0 s after video"),
            "{}",
            drift[0].message
        );
    }

    #[test]
    fn av_drift_names_the_side() {
        let mut run = Run::new(HealthConfig::default());
        let frames = media(0, 15_000, 60)
            .iter()
            .map(|m| {
                let ts = if m.video { m.ms } else { m.ms + 1000 };
                (m.ms, frame(m, ts as u32))
            })
            .collect();
        run.feed(frames);
        assert_eq!(run.codes(15_000), ["av_drift"]);
        let f = run.finding(15_000, "av_drift");
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.message.starts_with("audio is 1.0 s ahead of video"),
            "{}",
            f.message
        );

        let mut run = Run::new(HealthConfig::default());
        let frames = media(0, 15_000, 60)
            .iter()
            .map(|m| {
                let ts = if m.video {
                    m.ms as u32
                } else {
                    (m.ms as u32).wrapping_sub(2_500)
                };
                (m.ms, frame(m, ts))
            })
            .collect();
        run.feed(frames);
        let f = run.finding(15_000, "av_drift");
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.message.starts_with("audio is 2.5 s behind video"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_burst_is_reported() {
        let mut run = Run::new(HealthConfig::default());
        let frames = media(0, 60_000, 60)
            .iter()
            .map(|m| (m.ms / 3, frame(m, m.ms as u32)))
            .collect();
        run.feed(frames);
        assert_eq!(run.codes(20_000), ["ingest_burst"]);
        let f = run.finding(20_000, "ingest_burst");
        assert!(f.message.contains("3.0× faster"), "{}", f.message);
    }

    #[test]
    fn slow_ingest_is_reported() {
        let mut run = Run::new(HealthConfig::default());
        let frames = media(0, 10_000, 60)
            .iter()
            .map(|m| (m.ms * 2, frame(m, m.ms as u32)))
            .collect();
        run.feed(frames);
        assert_eq!(run.codes(20_000), ["ingest_slow"]);
        assert!(run
            .finding(20_000, "ingest_slow")
            .message
            .contains("lower the encoder's bitrate"));
    }

    #[test]
    fn timestamp_jump_is_reported_then_clears() {
        let mut run = Run::new(HealthConfig::default());
        run.feed(real_time(&media(0, 10_000, 60)));
        let jumped = |from, to| -> Vec<(u64, Frame)> {
            media(from, to, 60)
                .iter()
                .map(|m| (m.ms, frame(m, (m.ms + 5_000) as u32)))
                .collect()
        };
        run.feed(jumped(10_000, 12_000));
        assert_eq!(run.codes(12_000), ["timestamp_jump"]);
        let f = run.finding(12_000, "timestamp_jump");
        assert!(
            f.message
                .starts_with("audio and video timestamps jumped forward by up to 5.0 s"),
            "{}",
            f.message
        );
        run.feed(jumped(12_000, 40_000));
        assert_eq!(run.codes(40_000), ["timestamp_jump"]);
        run.feed(jumped(40_000, 45_000));
        assert_eq!(run.findings(45_000), vec![]);
    }

    #[test]
    fn timestamps_going_backwards_are_reported() {
        let mut run = Run::new(HealthConfig::default());
        run.feed(real_time(&media(0, 10_000, 60)));
        let frames = media(10_000, 12_000, 60)
            .iter()
            .map(|m| (m.ms, frame(m, (m.ms - 3_000) as u32)))
            .collect();
        run.feed(frames);
        assert_eq!(run.codes(12_000), ["timestamp_backwards"]);
        let f = run.finding(12_000, "timestamp_backwards");
        assert!(
            f.message.contains("backwards by up to 3.0 s"),
            "{}",
            f.message
        );
    }

    #[test]
    fn a_silent_track_is_stalled_while_others_arrive() {
        let mut run = Run::new(HealthConfig::default());
        let ms: Vec<M> = media(0, 15_000, 60)
            .into_iter()
            .filter(|m| m.video || m.ms < 10_000)
            .collect();
        let (early, late): (Vec<M>, Vec<M>) = ms.into_iter().partition(|m| m.ms < 12_000);
        run.feed(real_time(&early));
        assert_eq!(run.findings(12_000), vec![]);
        run.feed(real_time(&late));
        assert_eq!(run.codes(15_000), ["track_stalled"]);
        let f = run.finding(15_000, "track_stalled");
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.message
                .starts_with("audio track 0 has sent nothing for 5.0 s"),
            "{}",
            f.message
        );

        // When everything stops, no track is singled out.
        let mut run = Run::new(HealthConfig::default());
        run.feed(real_time(&media(0, 10_000, 60)));
        assert!(!run.codes(15_000).contains(&"track_stalled"));
        assert!(run.codes(15_000).contains(&"ingest_slow"));
    }

    #[test]
    fn other_tracks_count_for_stalls_and_a_sequence_end_ends_a_track() {
        let mut run = Run::new(HealthConfig::default());
        let mut frames = real_time(&media(0, 10_000, 60));
        let mut track1 = aframe(0);
        track1.info.track_id = 1;
        frames.push((500, track1.clone()));
        run.feed(frames);
        let f = run.finding(10_000, "track_stalled");
        assert!(
            f.message
                .starts_with("audio track 1 has sent nothing for 9.5 s"),
            "{}",
            f.message
        );
        let mut end = Frame::audio(0, Bytes::from_static(&[0xaf, 0x02]));
        end.info.track_id = 1;
        end.info.is_sequence_end = true;
        run.analyzer.observe(&end, run.at(10_000));
        assert_eq!(run.findings(10_000), vec![]);
    }

    #[test]
    fn bitrate_over_the_limit_is_reported() {
        let big = |config| {
            let mut run = Run::new(config);
            let frames = media(0, 6_000, 60)
                .iter()
                .map(|m| {
                    let f = if m.video {
                        vframe(m.ms as u32, m.key, 0, 50_000)
                    } else {
                        aframe(m.ms as u32)
                    };
                    (m.ms, f)
                })
                .collect();
            run.feed(frames);
            run
        };
        let run = big(HealthConfig {
            max_bitrate_bps: 6_000_000,
            ..HealthConfig::default()
        });
        assert_eq!(run.codes(6_000), ["bitrate_over_limit"]);
        let f = run.finding(6_000, "bitrate_over_limit");
        let measured = first_number(&f.message);
        assert!((12.0..=12.3).contains(&measured), "{}", f.message);
        assert!(
            f.message.contains("above the 6.0 Mbit/s limit"),
            "{}",
            f.message
        );
        let run = big(HealthConfig {
            max_bitrate_bps: 20_000_000,
            ..HealthConfig::default()
        });
        assert_eq!(run.findings(6_000), vec![]);
    }

    #[test]
    fn out_of_range_composition_times_are_reported() {
        for (cts, text) in [(-33, "negative (down to -33 ms)"), (2_500, "up to 2500 ms")] {
            let mut run = Run::new(HealthConfig::default());
            let frames = media(0, 5_000, 60)
                .iter()
                .map(|m| {
                    let f = if m.video {
                        vframe(m.ms as u32, m.key, cts, 2_500)
                    } else {
                        aframe(m.ms as u32)
                    };
                    (m.ms, f)
                })
                .collect();
            run.feed(frames);
            assert_eq!(run.codes(5_000), ["cts_anomaly"]);
            let f = run.finding(5_000, "cts_anomaly");
            assert!(f.message.contains(text), "{}", f.message);
        }
    }

    #[test]
    fn findings_are_ordered_by_severity_then_code() {
        let mut run = Run::new(HealthConfig {
            max_bitrate_bps: 1,
            ..HealthConfig::default()
        });
        // Video only, never a keyframe after the first, audio stopped at 1 s.
        let ms: Vec<M> = media(0, 15_000, u64::MAX)
            .into_iter()
            .filter(|m| m.video || m.ms < 1_000)
            .collect();
        run.feed(real_time(&ms));
        assert_eq!(
            run.codes(15_000),
            [
                "keyframe_interval_long",
                "track_stalled",
                "bitrate_over_limit"
            ]
        );
        assert_eq!(Severity::Error.as_str(), "error");
        assert_eq!(Severity::Warning.as_str(), "warning");
        assert_eq!(Severity::Info.as_str(), "info");
    }

    #[test]
    fn a_flood_stays_bounded() {
        let t0 = Instant::now();
        let mut a = HealthAnalyzer::new(HealthConfig::default(), t0);
        for i in 0..20_000u32 {
            a.observe(&vframe(i, i % 7 == 0, -1, 6), t0);
            a.observe(&aframe(i), t0);
        }
        assert_bounded(&a);
        assert_eq!(a.video_dts.len(), VIDEO_SAMPLES_MAX);
        assert_eq!(a.drift.len(), DRIFT_SAMPLES_MAX);
        let _ = a.findings(t0);
        let _ = a.findings(t0 + Duration::from_secs(1_000_000));
    }

    #[test]
    fn odd_config_and_fps_values_are_ignored() {
        let t0 = Instant::now();
        let mut a = HealthAnalyzer::new(
            HealthConfig {
                keyframe_target_secs: f64::NAN,
                max_bitrate_bps: 0,
            },
            t0,
        );
        assert_eq!(a.config.keyframe_target_secs, DEFAULT_KEYFRAME_TARGET_SECS);
        for fps in [f64::NAN, f64::INFINITY, 0.0, -30.0] {
            a.set_declared_fps(Some(fps));
            assert_eq!(a.declared_fps, None);
        }
        assert_eq!(a.findings(t0), vec![]);
    }

    proptest! {
        #[test]
        fn random_input_never_panics_and_stays_bounded(
            ops in proptest::collection::vec(
                (0u8..10, any::<u32>(), 0u32..3_000, any::<u8>(), any::<i32>()),
                1..300,
            ),
            target in prop_oneof![Just(2.0), Just(0.0), Just(-1.0), Just(f64::NAN), Just(1e300), 0.001f64..100.0],
            limit in prop_oneof![Just(0u64), Just(1u64), Just(u64::MAX), any::<u64>()],
        ) {
            let t0 = Instant::now();
            let mut a = HealthAnalyzer::new(
                HealthConfig { keyframe_target_secs: target, max_bitrate_bps: limit },
                t0,
            );
            let mut wall = 0u64;
            let mut ts = 0u32;
            for (op, value, dt, flags, cts) in ops {
                wall = wall.saturating_add(if flags & 0x80 != 0 { u64::from(value) } else { u64::from(dt) });
                let now = t0.checked_add(Duration::from_millis(wall)).unwrap_or(t0);
                ts = if flags & 0x40 != 0 { value } else { ts.wrapping_add(dt % 200) };
                let mut frame = match op {
                    0..=2 => vframe(ts, flags & 1 != 0, cts >> 8, usize::from(flags)),
                    3 | 4 => aframe(ts),
                    5 => Frame::data(ts, Bytes::from(value.to_be_bytes().to_vec())),
                    6 => {
                        let bytes = Bytes::from([value.to_be_bytes(), dt.to_be_bytes()].concat());
                        if flags & 1 != 0 { Frame::video(ts, bytes) } else { Frame::audio(ts, bytes) }
                    }
                    7 => {
                        let fps = match flags % 4 {
                            0 => None,
                            1 => Some(f64::from(value)),
                            2 => Some(f64::NAN),
                            _ => Some(-f64::from(dt)),
                        };
                        a.set_declared_fps(fps);
                        continue;
                    }
                    8 => Frame::video(ts, Bytes::from_static(&[0x17, 0x02, 0, 0, 0])),
                    _ => {
                        // Findings at any time, also before the latest arrival.
                        let at = t0.checked_add(Duration::from_millis(u64::from(value))).unwrap_or(t0);
                        let _ = a.findings(at);
                        continue;
                    }
                };
                frame.info.track_id = if flags & 0x20 != 0 { flags & 0x0f } else { 0 };
                a.observe(&frame, now);
                assert_bounded(&a);
            }
            let now = t0.checked_add(Duration::from_millis(wall)).unwrap_or(t0);
            let findings = a.findings(now);
            for pair in findings.windows(2) {
                prop_assert!(
                    (pair[1].severity, pair[0].code) < (pair[0].severity, pair[1].code),
                    "{:?}", findings
                );
            }
            for f in &findings {
                prop_assert!(!f.message.is_empty());
            }
        }
    }
}
