//! Live stream statistics: counters kept on the publish path and their snapshots.
//!
//! The publisher updates its stream's [`IngestCounters`] under the stream lock it already
//! takes for every frame, so counting costs a few additions and no extra synchronisation.
//! [`RateMeter`] is sans-IO: the time is passed in.

use std::time::{Duration, Instant, SystemTime};

use weir_media::{Frame, MediaKind, TrackInfo, TrackKind};

use crate::registry::Protocol;

/// Width of one rate bucket.
const BUCKET: Duration = Duration::from_millis(100);
/// Buckets kept: ten seconds of complete buckets plus the current one.
const BUCKETS: usize = 101;

/// Bytes per 100 ms over the last ten seconds, for bitrates over sliding windows.
#[derive(Clone, Debug)]
pub struct RateMeter {
    origin: Instant,
    /// Tick (100 ms since `origin`) of the newest bucket.
    tick: u64,
    buckets: [u64; BUCKETS],
}

impl RateMeter {
    /// A meter whose time starts at `origin`.
    pub fn new(origin: Instant) -> RateMeter {
        RateMeter {
            origin,
            tick: 0,
            buckets: [0; BUCKETS],
        }
    }

    fn tick_of(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.origin).as_millis() / BUCKET.as_millis()) as u64
    }

    /// Moves the newest bucket to `now`, clearing the buckets skipped over.
    fn advance(&mut self, now: Instant) {
        let tick = self.tick_of(now);
        if tick <= self.tick {
            return;
        }
        let gap = (tick - self.tick).min(BUCKETS as u64);
        for step in 1..=gap {
            self.buckets[((self.tick + step) % BUCKETS as u64) as usize] = 0;
        }
        self.tick = tick;
    }

    /// Counts `bytes` at `now`.
    pub fn add(&mut self, now: Instant, bytes: u64) {
        self.advance(now);
        self.buckets[(self.tick % BUCKETS as u64) as usize] += bytes;
    }

    /// Bits per second over the complete buckets of the last `window` (at most 10 s) before
    /// `now`; shortly after the meter's start, over the complete buckets since then.
    pub fn bits_per_second(&self, now: Instant, window: Duration) -> u64 {
        let now_tick = self.tick_of(now);
        let ticks = (window.as_millis() / BUCKET.as_millis()).clamp(1, BUCKETS as u128 - 1) as u64;
        let ticks = ticks.min(now_tick);
        if ticks == 0 {
            return 0;
        }
        let mut bytes = 0;
        for back in 1..=ticks {
            let Some(tick) = now_tick.checked_sub(back) else {
                break;
            };
            // Buckets older than the newest by a full ring, or newer than it, hold nothing.
            if tick <= self.tick && self.tick - tick < BUCKETS as u64 {
                bytes += self.buckets[(tick % BUCKETS as u64) as usize];
            }
        }
        bytes * 8 * 1000 / (ticks * BUCKET.as_millis() as u64)
    }
}

/// What the current publisher of a stream has sent.
#[derive(Clone, Debug)]
pub struct IngestCounters {
    /// When the publisher started (wall clock).
    pub since: SystemTime,
    /// When the publisher started.
    pub started: Instant,
    /// When its last frame arrived (its start, before any).
    pub last_input: Instant,
    /// Payload bytes received.
    pub bytes: u64,
    /// Video frames (sequence headers included).
    pub video_frames: u64,
    /// Audio frames (sequence headers included).
    pub audio_frames: u64,
    /// Metadata frames.
    pub data_frames: u64,
    /// Video keyframes.
    pub keyframes: u64,
    /// Payload bytes over sliding windows.
    pub meter: RateMeter,
    /// The same per track.
    pub track_rates: TrackRates,
    /// Media time between the last two key frames of the default video track, ms.
    pub keyframe_interval_ms: Option<u32>,
    /// DTS of the default video track's last key frame.
    last_keyframe: Option<u32>,
    /// Continuous diagnostics of what the publisher sends.
    pub health: weir_media::health::HealthAnalyzer,
}

/// Most tracks whose bitrates are measured (a track table holds no more).
const MAX_METERED_TRACKS: usize = 32;

/// Bitrates per track: each track's byte count (from the track table) fed into its own
/// [`RateMeter`] as it grows.
#[derive(Clone, Debug, Default)]
pub struct TrackRates {
    /// (kind, track id, bytes seen so far, meter).
    tracks: Vec<(TrackKind, u8, u64, RateMeter)>,
}

/// One track's bitrates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackRate {
    /// Audio or video.
    pub kind: TrackKind,
    /// Track id.
    pub track_id: u8,
    /// Bits per second over the last second.
    pub bitrate_1s: u64,
    /// Bits per second over the last ten seconds.
    pub bitrate_10s: u64,
}

impl TrackRates {
    /// Takes the track table after a frame at `now`: what each track's byte count grew by.
    pub fn update(&mut self, tracks: &[TrackInfo], now: Instant) {
        for track in tracks {
            let slot = self
                .tracks
                .iter()
                .position(|(kind, id, _, _)| *kind == track.kind && *id == track.track_id);
            match slot {
                Some(index) => {
                    let (_, _, seen, meter) = &mut self.tracks[index];
                    if track.bytes > *seen {
                        meter.add(now, track.bytes - *seen);
                        *seen = track.bytes;
                    }
                }
                None if self.tracks.len() < MAX_METERED_TRACKS => {
                    let mut meter = RateMeter::new(now);
                    meter.add(now, track.bytes);
                    self.tracks
                        .push((track.kind, track.track_id, track.bytes, meter));
                }
                None => {}
            }
        }
    }

    /// Every track's bitrates as of `now`.
    pub fn rates(&self, now: Instant) -> Vec<TrackRate> {
        self.tracks
            .iter()
            .map(|(kind, track_id, _, meter)| TrackRate {
                kind: *kind,
                track_id: *track_id,
                bitrate_1s: meter.bits_per_second(now, Duration::from_secs(1)),
                bitrate_10s: meter.bits_per_second(now, Duration::from_secs(10)),
            })
            .collect()
    }
}

impl IngestCounters {
    /// Counters for a publisher starting at `now`, without a bitrate limit.
    pub fn new(now: Instant) -> IngestCounters {
        Self::with_health(now, weir_media::health::HealthConfig::default())
    }

    /// Counters for a publisher starting at `now`, diagnosed with `health`.
    pub fn with_health(now: Instant, health: weir_media::health::HealthConfig) -> IngestCounters {
        IngestCounters {
            since: SystemTime::now(),
            started: now,
            last_input: now,
            bytes: 0,
            video_frames: 0,
            audio_frames: 0,
            data_frames: 0,
            keyframes: 0,
            meter: RateMeter::new(now),
            track_rates: TrackRates::default(),
            keyframe_interval_ms: None,
            last_keyframe: None,
            health: weir_media::health::HealthAnalyzer::new(health, now),
        }
    }

    /// Counts one frame received at `now`.
    pub fn count(&mut self, frame: &Frame, now: Instant) {
        let bytes = frame.payload.len() as u64;
        self.bytes += bytes;
        self.last_input = now;
        match frame.kind {
            MediaKind::Video => {
                self.video_frames += 1;
                if frame.info.is_keyframe && !frame.info.is_sequence_header {
                    self.keyframes += 1;
                    if frame.info.track_id == 0 {
                        if let Some(last) = self.last_keyframe {
                            let step = frame.timestamp.wrapping_sub(last);
                            if step > 0 && step < 3_600_000 {
                                self.keyframe_interval_ms = Some(step);
                            }
                        }
                        self.last_keyframe = Some(frame.timestamp);
                    }
                }
            }
            MediaKind::Audio => self.audio_frames += 1,
            MediaKind::Data => self.data_frames += 1,
        }
        self.meter.add(now, bytes);
        if frame.kind != MediaKind::Data {
            self.health.observe(frame, now);
        }
    }
}

/// A point-in-time copy of one stream's state and counters.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamStats {
    /// `app/name`.
    pub path: String,
    /// Whether a publisher is live.
    pub published: bool,
    /// When the current publisher started (wall clock).
    pub publisher_since: Option<SystemTime>,
    /// How long the current publisher has been live (monotonic clock).
    pub published_for: Option<Duration>,
    /// How long the publisher has sent nothing (a stalled encoder, a frozen network).
    pub idle_for: Option<Duration>,
    /// Payload bytes from the current publisher.
    pub bytes_in: u64,
    /// Video frames from the current publisher.
    pub video_frames_in: u64,
    /// Audio frames from the current publisher.
    pub audio_frames_in: u64,
    /// Video keyframes from the current publisher.
    pub keyframes_in: u64,
    /// Incoming payload bitrate over the last second, bits/s.
    pub bitrate_1s: u64,
    /// Incoming payload bitrate over the last ten seconds, bits/s.
    pub bitrate_10s: u64,
    /// Bytes written to viewers (reported by them about once a second and when they leave).
    pub bytes_out: u64,
    /// Frames delivered to viewers (same reporting).
    pub frames_out: u64,
    /// Viewers by protocol, in [`Protocol::ALL`] order; subscriptions that are not viewers
    /// (recorders, segmenters) are not counted.
    pub viewers: Vec<(Protocol, usize)>,
    /// The current publisher's tracks: codec, configuration, counters.
    pub tracks: Vec<weir_media::TrackInfo>,
    /// Each track's bitrates.
    pub track_rates: Vec<TrackRate>,
    /// Media time between the last two key frames of the default video track.
    pub keyframe_interval: Option<Duration>,
    /// What is wrong with the stream now (empty for a clean one).
    pub health: Vec<weir_media::health::Finding>,
}

impl StreamStats {
    /// All viewers, whatever their protocol.
    pub fn viewer_count(&self) -> usize {
        self.viewers.iter().map(|(_, n)| n).sum()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn rate_meter_windows() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(t0);
        // 1250 bytes every 10 ms = 125 kB/s = 1 Mbit/s, for 12 s.
        for ms in (0..12_000).step_by(10) {
            meter.add(t0 + Duration::from_millis(ms), 1250);
        }
        let now = t0 + Duration::from_millis(12_000);
        assert_eq!(
            meter.bits_per_second(now, Duration::from_secs(1)),
            1_000_000
        );
        assert_eq!(
            meter.bits_per_second(now, Duration::from_secs(10)),
            1_000_000
        );
        // Silence: the 1 s window empties first, the 10 s window after ten seconds.
        let later = now + Duration::from_millis(2_000);
        assert_eq!(meter.bits_per_second(later, Duration::from_secs(1)), 0);
        assert_eq!(
            meter.bits_per_second(later, Duration::from_secs(10)),
            800_000
        );
        meter.add(later, 0);
        assert_eq!(
            meter.bits_per_second(later + Duration::from_secs(30), Duration::from_secs(10)),
            0
        );
    }

    #[test]
    fn rate_meter_early_windows_cover_the_time_since_the_start() {
        let t0 = Instant::now();
        let mut meter = RateMeter::new(t0);
        for ms in (0..2_000).step_by(10) {
            meter.add(t0 + Duration::from_millis(ms), 1250);
        }
        let early = t0 + Duration::from_millis(2_000);
        assert_eq!(
            meter.bits_per_second(early, Duration::from_secs(10)),
            1_000_000
        );
        assert_eq!(
            meter.bits_per_second(early, Duration::from_secs(1)),
            1_000_000
        );
        assert_eq!(meter.bits_per_second(t0, Duration::from_secs(1)), 0);
    }

    #[test]
    fn track_rates_follow_each_tracks_bytes() {
        let t0 = Instant::now();
        let mut rates = TrackRates::default();
        let mut video = TrackInfo::new(TrackKind::Video, 0, weir_media::Codec::Avc);
        let mut audio = TrackInfo::new(TrackKind::Audio, 0, weir_media::Codec::Aac);
        for ms in (0..3_000).step_by(100) {
            video.bytes += 12_500; // 1 Mbit/s
            audio.bytes += 1_250; // 100 kbit/s
            rates.update(
                &[video.clone(), audio.clone()],
                t0 + Duration::from_millis(ms),
            );
        }
        let now = t0 + Duration::from_millis(3_000);
        let got = rates.rates(now);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].bitrate_1s, 1_000_000);
        assert_eq!(got[1].bitrate_1s, 100_000);
    }

    #[test]
    fn ingest_counts_kinds_and_keyframes() {
        let now = Instant::now();
        let mut counters = IngestCounters::new(now);
        let key = Frame::video(0, Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0x65]));
        let header = Frame::video(0, Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01]));
        let audio = Frame::audio(0, Bytes::from_static(&[0xAF, 0x01, 0x21]));
        for frame in [&header, &key, &audio, &audio] {
            counters.count(frame, now);
        }
        assert_eq!(counters.video_frames, 2);
        assert_eq!(counters.keyframes, 1);
        assert_eq!(counters.audio_frames, 2);
        assert_eq!(counters.bytes, 6 + 6 + 3 + 3);
    }
}
