//! The GOP cache: what a late joiner receives before live frames.
//!
//! Policy:
//! - The latest `onMetaData`, the latest video and audio sequence header per track and the
//!   latest E-RTMP `colorInfo` are kept apart from the GOP (latest wins).
//! - A video key frame on the default track (track 0) starts a new GOP. Coded audio and video
//!   accumulate after it until a limit (bytes or duration) is exceeded; then the GOP part is
//!   dropped until the next key frame, so a late joiner waits for that key frame instead of
//!   starting far behind live.
//! - Until the first video frame, the stream is audio-only: a sliding window of the last
//!   [`AUDIO_ONLY_WINDOW_MS`] of audio (also bounded by the limits) lets joiners start at once.
//! - A sequence header whose bytes change drops the GOP part (old frames need the old header).
//! - Sequence ends, command frames, other data messages and empty payloads are not cached.

use std::collections::VecDeque;

use crate::frame::{Audience, Frame, MediaKind};

/// Bounds of the GOP part of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopLimits {
    /// Most payload bytes held in the GOP part (default 16 MiB).
    pub max_bytes: usize,
    /// Longest span from the GOP's first frame to its newest, in ms (default 10 000).
    pub max_duration_ms: u32,
}

impl Default for GopLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_duration_ms: 10_000,
        }
    }
}

/// How much audio an audio-only stream keeps for joiners, in ms.
pub const AUDIO_ONLY_WINDOW_MS: u32 = 1_000;

/// Per-stream cache of metadata, sequence headers and the current GOP.
#[derive(Debug, Clone)]
pub struct GopCache {
    limits: GopLimits,
    metadata: Option<Frame>,
    color_info: Option<Frame>,
    /// Latest video sequence header per track id, sorted by track id.
    video_headers: Vec<Frame>,
    /// Latest audio sequence header per track id, sorted by track id.
    audio_headers: Vec<Frame>,
    frames: VecDeque<Frame>,
    bytes: usize,
    /// Whether any coded video has been seen (otherwise the stream is audio-only).
    video_seen: bool,
    /// Whether frames are being collected (false: waiting for the next key frame).
    collecting: bool,
}

impl GopCache {
    /// An empty cache with the given limits.
    pub fn new(limits: GopLimits) -> Self {
        Self {
            limits,
            metadata: None,
            color_info: None,
            video_headers: Vec::new(),
            audio_headers: Vec::new(),
            frames: VecDeque::new(),
            bytes: 0,
            video_seen: false,
            collecting: true,
        }
    }

    /// Takes a frame the publisher sent (a clone shares the payload).
    pub fn push(&mut self, frame: &Frame) {
        let info = &frame.info;
        match frame.kind {
            MediaKind::Data => {
                if info.is_metadata {
                    self.metadata = Some(frame.clone());
                }
            }
            MediaKind::Video if info.is_metadata => self.color_info = Some(frame.clone()),
            MediaKind::Video | MediaKind::Audio if info.is_sequence_header => {
                let headers = match frame.kind {
                    MediaKind::Video => &mut self.video_headers,
                    _ => &mut self.audio_headers,
                };
                if store_header(headers, frame) {
                    self.drop_gop();
                }
            }
            MediaKind::Video if info.is_coded_frame => {
                // The single-track copy of a message (or the message itself when it has no
                // other form) says whether the default track has a key frame.
                let starts_gop =
                    info.is_keyframe && info.track_id == 0 && info.audience != Audience::Multitrack;
                if !self.video_seen {
                    self.video_seen = true;
                    // Leave audio-only mode: the audio window is not a GOP.
                    self.drop_gop();
                }
                if starts_gop {
                    self.frames.clear();
                    self.bytes = 0;
                    self.collecting = true;
                }
                self.append(frame);
            }
            MediaKind::Audio if info.is_coded_frame => {
                self.append(frame);
                if !self.video_seen {
                    self.trim_audio_window();
                }
            }
            MediaKind::Video | MediaKind::Audio => {}
        }
    }

    /// What a new subscriber receives first, in order: metadata, video sequence headers,
    /// `colorInfo`, audio sequence headers, then the GOP from its key frame (audio interleaved
    /// as received), or the audio window of an audio-only stream.
    pub fn snapshot(&self) -> Vec<Frame> {
        let mut out = Vec::with_capacity(self.len() + 4);
        out.extend(self.metadata.iter().cloned());
        out.extend(self.video_headers.iter().cloned());
        out.extend(self.color_info.iter().cloned());
        out.extend(self.audio_headers.iter().cloned());
        out.extend(self.frames.iter().cloned());
        out
    }

    /// Forgets everything (the publisher left).
    pub fn clear(&mut self) {
        *self = GopCache::new(self.limits);
    }

    /// The latest `onMetaData`.
    pub fn metadata(&self) -> Option<&Frame> {
        self.metadata.as_ref()
    }

    /// The latest video sequence header of the default track (track 0), in single-track form.
    pub fn video_sequence_header(&self) -> Option<&Frame> {
        self.video_headers.iter().find(|f| is_default_single(f))
    }

    /// The latest audio sequence header of the default track (track 0), in single-track form.
    pub fn audio_sequence_header(&self) -> Option<&Frame> {
        self.audio_headers.iter().find(|f| is_default_single(f))
    }

    /// The latest E-RTMP `colorInfo` video metadata.
    pub fn color_info(&self) -> Option<&Frame> {
        self.color_info.as_ref()
    }

    /// Frames in the GOP part (or audio window).
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the GOP part is empty.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes the GOP part counts against its limit: payloads plus [`FRAME_OVERHEAD`] per frame.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The limits this cache enforces.
    pub fn limits(&self) -> GopLimits {
        self.limits
    }

    fn append(&mut self, frame: &Frame) {
        if !self.collecting {
            return;
        }
        self.frames.push_back(frame.clone());
        self.bytes += cost(frame);
        if self.video_seen
            && (self.bytes > self.limits.max_bytes || self.span() > self.limits.max_duration_ms)
        {
            self.drop_gop();
        }
    }

    fn trim_audio_window(&mut self) {
        let window = AUDIO_ONLY_WINDOW_MS.min(self.limits.max_duration_ms);
        while self.frames.len() > 1 && (self.span() > window || self.bytes > self.limits.max_bytes)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= cost(&old);
            }
        }
        if self.bytes > self.limits.max_bytes {
            self.frames.clear();
            self.bytes = 0;
        }
    }

    /// Drops the GOP part; with video, waits for the next key frame.
    fn drop_gop(&mut self) {
        self.frames.clear();
        self.bytes = 0;
        self.collecting = !self.video_seen;
    }

    /// Wrapping span from the oldest to the newest frame, in ms; 0 when out of order.
    fn span(&self) -> u32 {
        match (self.frames.front(), self.frames.back()) {
            (Some(first), Some(last)) => {
                let span = last.timestamp.wrapping_sub(first.timestamp);
                if span > i32::MAX as u32 {
                    0
                } else {
                    span
                }
            }
            _ => 0,
        }
    }
}

/// Stores `frame` as its track's latest header; returns whether a different header was replaced.
fn store_header(headers: &mut Vec<Frame>, frame: &Frame) -> bool {
    // One slot per track and form: a Multitrack message and its single-track copy are both
    // kept, each for its players.
    let slot = |f: &Frame| (f.info.track_id, f.info.audience, f.info.multitrack);
    match headers.binary_search_by_key(&slot(frame), slot) {
        Ok(i) => {
            let changed = headers[i].payload != frame.payload;
            headers[i] = frame.clone();
            changed
        }
        Err(i) => {
            headers.insert(i, frame.clone());
            false
        }
    }
}

fn is_default_single(frame: &Frame) -> bool {
    frame.info.track_id == 0 && frame.info.audience != Audience::Multitrack
}

/// Bookkeeping bytes charged per cached frame besides its payload, so that a flood of tiny
/// frames is bounded by `max_bytes` too (a cached frame costs about this much memory).
pub const FRAME_OVERHEAD: usize = 64;

/// What a cached frame counts against [`GopLimits::max_bytes`].
fn cost(frame: &Frame) -> usize {
    frame.payload.len() + FRAME_OVERHEAD
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const META: &[u8] = b"\x02\x00\x0aonMetaData\x03\x00\x00\x09";

    fn meta() -> Frame {
        Frame::data(0, Bytes::from_static(META))
    }
    fn avc_header() -> Frame {
        Frame::video(0, Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64]))
    }
    fn aac_header() -> Frame {
        Frame::audio(0, Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]))
    }
    fn key(ts: u32) -> Frame {
        Frame::video(ts, Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0xaa]))
    }
    fn inter(ts: u32) -> Frame {
        Frame::video(ts, Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0xbb]))
    }
    fn audio(ts: u32) -> Frame {
        Frame::audio(ts, Bytes::from_static(&[0xaf, 0x01, 0x21]))
    }

    fn timestamps(frames: &[Frame]) -> Vec<(MediaKind, u32)> {
        frames.iter().map(|f| (f.kind, f.timestamp)).collect()
    }

    #[test]
    fn late_joiner_gets_metadata_headers_then_keyframe() {
        let mut gop = GopCache::new(GopLimits::default());
        for f in [
            meta(),
            avc_header(),
            aac_header(),
            key(0),
            audio(10),
            inter(33),
            key(2000),
            audio(2010),
            inter(2033),
        ] {
            gop.push(&f);
        }
        let snap = gop.snapshot();
        assert_eq!(snap[0], meta());
        assert_eq!(snap[1], avc_header());
        assert_eq!(snap[2], aac_header());
        assert!(snap[3].info.is_keyframe);
        assert_eq!(
            timestamps(&snap[3..]),
            [
                (MediaKind::Video, 2000),
                (MediaKind::Audio, 2010),
                (MediaKind::Video, 2033)
            ]
        );
        assert_eq!((gop.len(), gop.bytes()), (3, 15 + 3 * FRAME_OVERHEAD));
        assert_eq!(gop.metadata(), Some(&meta()));
        assert_eq!(gop.video_sequence_header(), Some(&avc_header()));
        assert_eq!(gop.audio_sequence_header(), Some(&aac_header()));
    }

    #[test]
    fn no_keyframe_yet_means_empty_gop() {
        let mut gop = GopCache::new(GopLimits::default());
        for f in [avc_header(), inter(0), audio(5), inter(33)] {
            gop.push(&f);
        }
        assert_eq!(gop.snapshot(), [avc_header()]);
        gop.push(&key(66));
        assert_eq!(timestamps(&gop.snapshot()[1..]), [(MediaKind::Video, 66)]);
    }

    #[test]
    fn duration_limit_drops_gop_until_next_keyframe() {
        let mut gop = GopCache::new(GopLimits {
            max_bytes: 1 << 20,
            max_duration_ms: 1000,
        });
        gop.push(&key(0));
        gop.push(&inter(1000));
        assert_eq!(gop.len(), 2);
        gop.push(&inter(1001));
        assert!(gop.is_empty());
        gop.push(&audio(1002));
        gop.push(&inter(1033));
        assert!(gop.is_empty());
        gop.push(&key(1066));
        gop.push(&audio(1070));
        assert_eq!(
            timestamps(&gop.snapshot()),
            [(MediaKind::Video, 1066), (MediaKind::Audio, 1070)]
        );
    }

    #[test]
    fn byte_limit_drops_gop() {
        let mut gop = GopCache::new(GopLimits {
            max_bytes: 12 + 2 * FRAME_OVERHEAD,
            max_duration_ms: 10_000,
        });
        gop.push(&key(0));
        gop.push(&inter(33));
        assert_eq!(gop.bytes(), 12 + 2 * FRAME_OVERHEAD);
        gop.push(&audio(40));
        assert_eq!((gop.len(), gop.bytes()), (0, 0));
    }

    #[test]
    fn audio_only_keeps_a_one_second_window() {
        let mut gop = GopCache::new(GopLimits::default());
        gop.push(&aac_header());
        for i in 0..100 {
            gop.push(&audio(i * 23));
        }
        let snap = gop.snapshot();
        assert_eq!(snap[0], aac_header());
        let first = snap[1].timestamp;
        let last = snap[snap.len() - 1].timestamp;
        assert_eq!(last, 99 * 23);
        assert!(last - first <= AUDIO_ONLY_WINDOW_MS && last - first > AUDIO_ONLY_WINDOW_MS - 23);
    }

    #[test]
    fn video_after_audio_only_waits_for_keyframe() {
        let mut gop = GopCache::new(GopLimits::default());
        gop.push(&audio(0));
        gop.push(&inter(10));
        gop.push(&audio(20));
        assert!(gop.is_empty());
        gop.push(&key(30));
        gop.push(&audio(40));
        assert_eq!(gop.len(), 2);
    }

    #[test]
    fn sequence_ends_commands_and_silence_are_not_cached() {
        let mut gop = GopCache::new(GopLimits::default());
        gop.push(&avc_header());
        gop.push(&key(0));
        gop.push(&Frame::video(
            10,
            Bytes::from_static(&[0x17, 0x02, 0, 0, 0]),
        ));
        gop.push(&Frame::video(10, Bytes::from_static(&[0x57, 0x00])));
        gop.push(&Frame::audio(10, Bytes::new()));
        gop.push(&Frame::data(
            10,
            Bytes::from_static(b"\x02\x00\x0aonCuePoint"),
        ));
        assert_eq!(gop.snapshot(), [avc_header(), key(0)]);
    }

    #[test]
    fn changed_sequence_header_drops_gop_identical_does_not() {
        let mut gop = GopCache::new(GopLimits::default());
        gop.push(&avc_header());
        gop.push(&key(0));
        gop.push(&avc_header());
        assert_eq!(gop.len(), 1);
        let new_header = Frame::video(50, Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x4d]));
        gop.push(&new_header);
        assert_eq!(gop.snapshot(), [new_header]);
    }

    #[test]
    fn multitrack_headers_are_kept_per_track() {
        let mut gop = GopCache::new(GopLimits::default());
        let track1 = Frame::video(
            0,
            Bytes::from_static(&[0x96, 0x00, 0x61, 0x76, 0x63, 0x31, 0x01, 0x01]),
        );
        gop.push(&track1);
        gop.push(&avc_header());
        assert_eq!(gop.video_sequence_header(), Some(&avc_header()));
        assert_eq!(gop.snapshot(), [avc_header(), track1]);
        // A key frame on track 1 does not start a GOP.
        gop.push(&Frame::video(
            0,
            Bytes::from_static(&[0x96, 0x01, 0x61, 0x76, 0x63, 0x31, 0x01, 0, 0, 0]),
        ));
        assert!(gop.is_empty());
    }

    #[test]
    fn color_info_and_clear() {
        let mut gop = GopCache::new(GopLimits::default());
        let color = Frame::video(0, Bytes::from_static(&[0x84, 0x68, 0x76, 0x63, 0x31, 0x02]));
        let hevc = Frame::video(0, Bytes::from_static(&[0x90, 0x68, 0x76, 0x63, 0x31, 0x01]));
        gop.push(&meta());
        gop.push(&color);
        gop.push(&hevc);
        gop.push(&aac_header());
        assert_eq!(gop.snapshot(), [meta(), hevc, color.clone(), aac_header()]);
        assert_eq!(gop.color_info(), Some(&color));
        gop.clear();
        assert!(gop.snapshot().is_empty());
        assert_eq!(gop.limits(), GopLimits::default());
    }

    #[test]
    fn a_flood_of_tiny_frames_is_bounded_by_max_bytes() {
        let limits = GopLimits {
            max_bytes: 64 * 1024,
            max_duration_ms: 10_000,
        };
        let mut gop = GopCache::new(limits);
        gop.push(&key(0));
        for _ in 0..100_000 {
            gop.push(&audio(0));
        }
        assert!(
            gop.len() <= limits.max_bytes / FRAME_OVERHEAD,
            "{} frames cached",
            gop.len()
        );
    }

    /// A stream whose default track travels wrapped in Multitrack (track 0 OneTrack) next to
    /// a second rendition: both forms of every header are kept, and the GOP starts at the
    /// single-track copy's key frame, which the hub pushes before the original.
    #[test]
    fn multitrack_forms_keep_their_own_slots_and_gop() {
        let mut gop = GopCache::new(GopLimits::default());
        let msg = |ts: u32, bytes: &'static [u8]| Frame::video(ts, Bytes::from_static(bytes));
        let push = |gop: &mut GopCache, frame: Frame| {
            let (original, copy) = frame.with_single_track_form();
            if let Some(copy) = copy {
                gop.push(&copy);
            }
            gop.push(&original);
        };
        push(&mut gop, msg(0, b"\x96\x00avc1\x00\x01\x64"));
        push(&mut gop, msg(0, b"\x96\x00avc1\x01\x01\x4d"));
        push(&mut gop, msg(0, b"\x96\x01avc1\x00\x00\x00\x00\x65"));
        push(&mut gop, msg(0, b"\x96\x01avc1\x01\x00\x00\x00\x65"));
        push(&mut gop, msg(40, b"\xa6\x01avc1\x00\x00\x00\x00\x41"));
        let snapshot = gop.snapshot();
        let audiences: Vec<_> = snapshot
            .iter()
            .map(|f| (f.info.track_id, f.info.audience, f.info.is_sequence_header))
            .collect();
        use Audience::*;
        assert_eq!(
            audiences,
            vec![
                (0, Multitrack, true),
                (0, SingleTrack, true),
                (1, Multitrack, true),
                (0, SingleTrack, false),
                (0, Multitrack, false),
                (1, Multitrack, false),
                (0, SingleTrack, false),
                (0, Multitrack, false),
            ]
        );
        let header = gop.video_sequence_header().unwrap();
        assert_eq!(header.payload.as_ref(), &[0x17, 0, 0, 0, 0, 0x01, 0x64]);
        // A key frame of track 1 alone does not restart the GOP.
        push(&mut gop, msg(80, b"\x96\x01avc1\x01\x00\x00\x00\x65"));
        assert_eq!(gop.len(), 6);
    }
}
