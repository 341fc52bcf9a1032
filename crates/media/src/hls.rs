//! The MPEG-TS HLS segmenter and its media playlist (RFC 8216), sans-IO: the default tracks'
//! frames in, `.ts` segments and the playlist out. (fMP4/CMAF with Low-Latency HLS is
//! [`crate::cmaf`].)
//!
//! A segment starts at a default-track video key frame once the current one is at least
//! `min_segment_ms` long; if the key frames are further apart than the target duration, the
//! segment is cut before a frame that would take it past the target + 0.49 s (mid-GOP), so
//! `EXT-X-TARGETDURATION` is fixed and no rounded duration exceeds it. Audio-only streams are cut at `min_segment_ms`. The playlist lists the
//! last `window` segments; segments that left it stay downloadable for a while (RFC 8216
//! §6.2.2: at least the playlist's duration), then are dropped. Frames must carry the
//! viewer's rebased timestamps (continuous, starting near 0).
//!
//! A publisher leaving ([`Segmenter::publisher_left`]) or a codec configuration that changes
//! closes the current segment and marks the next one `EXT-X-DISCONTINUITY`; media sequence
//! numbers never go back. With a
//! wall clock given ([`Segmenter::set_wall_clock`]) every segment carries
//! `EXT-X-PROGRAM-DATE-TIME`.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use crate::frame::{Frame, MediaKind};
use crate::ts::{TsMuxer, TsStream};

/// The two HLS flavours a server packages a stream into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// CMAF renditions with Low-Latency HLS ([`crate::cmaf::Packager`]).
    Fmp4,
    /// MPEG-TS `.ts` segments of the default tracks ([`Segmenter`]).
    Ts,
}

/// Segmenter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsConfig {
    /// `EXT-X-TARGETDURATION`, seconds: no segment is longer.
    pub target_duration_secs: u32,
    /// A segment is cut at the first key frame after it is this long.
    pub min_segment_ms: u32,
    /// Segments in the playlist.
    pub window: usize,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            target_duration_secs: 2,
            min_segment_ms: 1000,
            window: 12,
        }
    }
}

/// A finished segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// Duration in seconds.
    pub duration: f64,
    /// The segment's bytes.
    pub data: Bytes,
    /// Starts with a key frame.
    pub independent: bool,
    /// Follows a discontinuity (publisher change, codec change).
    pub discontinuity: bool,
    /// Discontinuities up to and including this segment's.
    pub discontinuity_sequence: u64,
    /// Wall clock at its first frame, ms since the Unix epoch, when known.
    pub program_date_ms: Option<u64>,
}

/// Most frames or payload bytes one segment collects; past either it is cut whatever the
/// timestamps say (a publisher whose timestamps stand still must not grow it without bound).
const MAX_SEGMENT_FRAMES: usize = 20_000;
const MAX_SEGMENT_BYTES: usize = 64 << 20;

/// The segmenter of one stream; see the module docs.
#[derive(Debug)]
pub struct Segmenter {
    config: HlsConfig,
    video: Option<Frame>,
    audio: Option<Frame>,
    /// The muxer for the current codec configuration (rebuilt when it changes).
    ts: Option<TsMuxer>,
    /// Frames of the segment being built, in arrival order, each with its duration once known.
    current: Vec<(Frame, u32)>,
    /// Payload bytes in `current`.
    current_bytes: usize,
    /// The latest frame of each track (video, audio), waiting for the next one of its track,
    /// which gives its duration.
    held: [Option<Frame>; 2],
    segment_start: Option<u32>,
    segment_independent: bool,
    segments: VecDeque<Segment>,
    next_sequence: u64,
    has_video: bool,
    /// The next segment follows a discontinuity.
    discontinuity_pending: bool,
    /// The segment being built follows one.
    current_discontinuity: bool,
    discontinuity_sequence: u64,
    wall_ms: Option<u64>,
    current_wall_ms: Option<u64>,
    /// Last frame duration per track, for closing a segment without a next frame.
    last_duration: [u32; 2],
}

impl Segmenter {
    /// A segmenter that has seen nothing yet.
    pub fn new(config: HlsConfig) -> Segmenter {
        Segmenter {
            config,
            video: None,
            audio: None,
            ts: None,
            current: Vec::new(),
            current_bytes: 0,
            held: [None, None],
            segment_start: None,
            segment_independent: false,
            segments: VecDeque::new(),
            next_sequence: 0,
            has_video: false,
            discontinuity_pending: false,
            current_discontinuity: false,
            discontinuity_sequence: 0,
            wall_ms: None,
            current_wall_ms: None,
            last_duration: [40, 21],
        }
    }

    /// The wall clock now, ms since the Unix epoch (for `EXT-X-PROGRAM-DATE-TIME`).
    pub fn set_wall_clock(&mut self, unix_ms: u64) {
        self.wall_ms = Some(unix_ms);
    }

    /// Continues another segmenter's numbering (a stream that moved to another server of a
    /// cluster): the first segment is numbered `sequence` and follows a discontinuity, with
    /// `discontinuity_sequence` before it. Call before the first frame.
    pub fn continue_from(&mut self, sequence: u64, discontinuity_sequence: u64) {
        self.next_sequence = self.next_sequence.max(sequence);
        self.discontinuity_sequence = self.discontinuity_sequence.max(discontinuity_sequence);
        self.discontinuity_pending = true;
    }

    /// Where a segmenter taking this one's stream over would start: (first sequence number,
    /// discontinuities before it); the segment in progress's number is skipped.
    pub fn continuation(&self) -> (u64, u64) {
        (
            self.next_sequence + 1,
            self.discontinuity_sequence + u64::from(self.current_discontinuity),
        )
    }

    /// The publisher left: the current segment ends with its last frame and the next one
    /// (from the next publisher) follows a discontinuity.
    pub fn publisher_left(&mut self) -> bool {
        let mut end = None;
        for slot in 0..2 {
            if let Some(held) = self.held[slot].take() {
                let duration = self.last_duration[slot];
                let frame_end = held.timestamp.wrapping_add(duration);
                end = Some(end.map_or(frame_end, |e: u32| e.max(frame_end)));
                self.current.push((held, duration));
            }
        }
        let finished = end.is_some_and(|end| self.finish_segment(end));
        self.current.clear();
        self.current_bytes = 0;
        self.segment_start = None;
        self.has_video = false;
        self.discontinuity_pending = true;
        finished
    }

    /// Takes one frame (default track, single-track form, rebased timestamps). Returns
    /// whether a segment was finished.
    pub fn push(&mut self, frame: &Frame) -> bool {
        let info = &frame.info;
        if frame.kind == MediaKind::Data || info.track_id != 0 || info.multitrack {
            return false;
        }
        if info.is_sequence_header {
            let slot = match frame.kind {
                MediaKind::Video => &mut self.video,
                _ => &mut self.audio,
            };
            let changed = slot
                .as_ref()
                .is_some_and(|old| old.payload != frame.payload);
            let new = slot.is_none() || changed;
            *slot = Some(frame.clone());
            if new {
                self.ts = None;
            }
            if changed {
                self.discontinuity_pending = true;
            }
            return false;
        }
        if !info.is_coded_frame {
            return false;
        }
        let slot = usize::from(frame.kind == MediaKind::Audio);
        if frame.kind == MediaKind::Video {
            self.has_video = true;
        }
        // The held frame of this track gets its duration from this one.
        if let Some(held) = self.held[slot].take() {
            let duration = frame.timestamp.wrapping_sub(held.timestamp).min(10_000);
            self.last_duration[slot] = duration.max(1);
            self.current_bytes += held.payload.len();
            self.current.push((held, duration));
        }
        let mut finished = false;
        // A codec change mid-segment closes it at once, and so does a segment that grew
        // past its bounds.
        let forced = self.segment_start.is_some()
            && (self.discontinuity_pending
                || self.current.len() >= MAX_SEGMENT_FRAMES
                || self.current_bytes >= MAX_SEGMENT_BYTES);
        let cut_here = forced
            || match self.segment_start {
                None => frame.kind == MediaKind::Video && info.is_keyframe || !self.has_video,
                Some(start) => {
                    let length = frame.timestamp.wrapping_sub(start);
                    let key = frame.kind == MediaKind::Video && info.is_keyframe;
                    let long_enough = length >= self.config.min_segment_ms;
                    // This frame would end past the target + 0.49 s (rounded, above it).
                    let too_long = length.saturating_add(self.last_duration[slot])
                        > self.config.target_duration_secs * 1000 + 490;
                    if self.has_video {
                        frame.kind == MediaKind::Video && (key && long_enough || too_long)
                    } else {
                        long_enough
                    }
                }
            };
        if cut_here {
            if self.segment_start.is_some() {
                finished = self.finish_segment(frame.timestamp);
            }
            self.segment_start = Some(frame.timestamp);
            self.segment_independent = frame.kind == MediaKind::Audio || info.is_keyframe;
            self.current_discontinuity = std::mem::take(&mut self.discontinuity_pending);
            self.current_wall_ms = self.wall_ms;
        }
        if self.segment_start.is_some() {
            self.held[slot] = Some(frame.clone());
        }
        finished
    }

    /// Closes the current segment at `end` (ms).
    fn finish_segment(&mut self, end: u32) -> bool {
        let Some(start) = self.segment_start else {
            return false;
        };
        let frames = std::mem::take(&mut self.current);
        self.current_bytes = 0;
        if frames.is_empty() {
            return false;
        }
        let Some(data) = self.ts_segment(&frames) else {
            return false;
        };
        if self.current_discontinuity {
            self.discontinuity_sequence += 1;
        }
        let segment = Segment {
            sequence: self.next_sequence,
            duration: f64::from(end.wrapping_sub(start)) / 1000.0,
            data,
            independent: self.segment_independent,
            discontinuity: std::mem::take(&mut self.current_discontinuity),
            discontinuity_sequence: self.discontinuity_sequence,
            program_date_ms: self.current_wall_ms,
        };
        self.next_sequence += 1;
        self.segments.push_back(segment);
        // As many segments as the playlist lists stay downloadable after leaving it.
        while self.segments.len() > 2 * self.config.window {
            self.segments.pop_front();
        }
        true
    }

    fn ts_segment(&mut self, frames: &[(Frame, u32)]) -> Option<Bytes> {
        if self.ts.is_none() {
            let stream = |f: &Option<Frame>| {
                f.as_ref().and_then(|f| {
                    Some(TsStream {
                        codec: f.info.codec?,
                        config: f.body(),
                    })
                })
            };
            let mut audio = stream(&self.audio);
            if audio.is_none() {
                // MP3 has no sequence header.
                audio = frames
                    .iter()
                    .find(|(f, _)| f.kind == MediaKind::Audio)
                    .and_then(|(f, _)| f.info.codec)
                    .map(|codec| TsStream {
                        codec,
                        config: Bytes::new(),
                    });
            }
            self.ts = TsMuxer::new(stream(&self.video), audio).ok();
        }
        let muxer = self.ts.as_mut()?;
        let mut out = BytesMut::new();
        muxer.tables(&mut out);
        for (frame, _) in frames {
            let dts = u64::from(frame.timestamp) * 90;
            match frame.kind {
                MediaKind::Video => {
                    let pts = (dts as i64 + i64::from(frame.info.composition_time) * 90).max(0);
                    muxer.video(
                        &frame.body(),
                        dts,
                        pts as u64,
                        frame.info.is_keyframe,
                        &mut out,
                    );
                }
                MediaKind::Audio => muxer.audio(&frame.body(), dts, &mut out),
                MediaKind::Data => {}
            }
        }
        Some(out.freeze())
    }

    /// A segment still held, by sequence number.
    pub fn segment(&self, sequence: u64) -> Option<&Segment> {
        let first = self.segments.front()?.sequence;
        self.segments
            .get(usize::try_from(sequence.checked_sub(first)?).ok()?)
    }

    /// Segments finished so far.
    pub fn segment_count(&self) -> u64 {
        self.next_sequence
    }

    /// The media playlist: the last `window` segments, named `seg{sequence}.ts`.
    pub fn playlist(&self) -> String {
        let listed: Vec<&Segment> = self
            .segments
            .iter()
            .skip(self.segments.len().saturating_sub(self.config.window))
            .collect();
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
        let _ = writeln!(
            out,
            "#EXT-X-TARGETDURATION:{}",
            self.config.target_duration_secs
        );
        sequence_tags(
            &mut out,
            listed.first().map_or(0, |s| s.sequence),
            listed
                .first()
                .map_or(0, |s| s.discontinuity_sequence - u64::from(s.discontinuity)),
        );
        for segment in listed {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(ms) = segment.program_date_ms {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(ms));
            }
            let _ = writeln!(
                out,
                "#EXTINF:{:.3},\nseg{}.ts",
                segment.duration, segment.sequence
            );
        }
        out
    }
}

/// `EXT-X-MEDIA-SEQUENCE` and `EXT-X-DISCONTINUITY-SEQUENCE`: the first listed segment's
/// number and the discontinuities before it.
pub(crate) fn sequence_tags(out: &mut String, media_sequence: u64, discontinuity_sequence: u64) {
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
    let _ = writeln!(
        out,
        "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
    );
}

/// `2026-11-27T01:23:45.678Z` from ms since the Unix epoch (UTC, proleptic Gregorian).
pub fn iso8601(unix_ms: u64) -> String {
    let days = (unix_ms / 86_400_000) as i64;
    let ms_of_day = unix_ms % 86_400_000;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

#[cfg(test)]
mod tests;
