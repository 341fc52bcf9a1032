//! HLS segmenter and media playlists (RFC 8216), sans-IO: frames in, segments and playlists
//! out, in fMP4 (CMAF) or MPEG-TS.
//!
//! A segment starts at a default-track video key frame once the current one is at least
//! `min_segment_ms` long; if the key frames are further apart than the target duration, the
//! segment is cut at the target duration anyway (mid-GOP), so `EXT-X-TARGETDURATION` is fixed
//! and never exceeded. Audio-only streams are cut at `min_segment_ms`. The playlist lists the
//! last `window` segments; segments that left it stay downloadable for a while (RFC 8216
//! §6.2.2: at least the playlist's duration), then are dropped. Frames must carry the
//! viewer's rebased timestamps (continuous, starting near 0).
//!
//! Not yet: Low-Latency HLS parts, `EXT-X-DISCONTINUITY` on a codec change, multitrack
//! renditions.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Bytes, BytesMut};

use crate::fmp4::{self, Sample, TrackConfig, TrackRun};
use crate::frame::{Frame, MediaKind};
use crate::track_info::CodecDetails;
use crate::ts::{TsMuxer, TsStream};

/// The container of the segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// CMAF: an init segment and `.m4s` media segments.
    Fmp4,
    /// MPEG-TS `.ts` segments.
    Ts,
}

/// Segmenter settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HlsConfig {
    /// fMP4 or TS.
    pub container: Container,
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
            container: Container::Fmp4,
            target_duration_secs: 6,
            min_segment_ms: 1000,
            window: 6,
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
}

/// A frame waiting for the next one of its track (which gives its duration).
#[derive(Debug, Clone)]
struct Pending {
    frame: Frame,
}

/// The segmenter of one stream; see the module docs.
#[derive(Debug)]
pub struct Segmenter {
    config: HlsConfig,
    video: Option<Frame>,
    audio: Option<Frame>,
    details: (CodecDetails, CodecDetails),
    init: Option<Bytes>,
    ts: Option<TsMuxer>,
    /// Frames of the segment being built, in arrival order, each with its duration once known.
    current: Vec<(Frame, u32)>,
    held: [Option<Pending>; 2],
    segment_start: Option<u32>,
    segment_independent: bool,
    segments: VecDeque<Segment>,
    next_sequence: u64,
    /// Segments kept after leaving the playlist.
    keep_after: usize,
    has_video: bool,
}

impl Segmenter {
    /// A segmenter that has seen nothing yet.
    pub fn new(config: HlsConfig) -> Segmenter {
        Segmenter {
            config,
            video: None,
            audio: None,
            details: (CodecDetails::default(), CodecDetails::default()),
            init: None,
            ts: None,
            current: Vec::new(),
            held: [None, None],
            segment_start: None,
            segment_independent: false,
            segments: VecDeque::new(),
            next_sequence: 0,
            keep_after: config.window,
            has_video: false,
        }
    }

    /// Sets what the track table says of the video and audio tracks (sizes, sample rates).
    pub fn set_details(&mut self, video: CodecDetails, audio: CodecDetails) {
        self.details = (video, audio);
    }

    /// Takes one frame (default track, single-track form, rebased timestamps). Returns
    /// whether a segment was finished.
    pub fn push(&mut self, frame: &Frame) -> bool {
        let info = &frame.info;
        if frame.kind == MediaKind::Data || info.track_id != 0 || info.multitrack {
            return false;
        }
        if info.is_sequence_header {
            match frame.kind {
                MediaKind::Video => self.video = Some(frame.clone()),
                _ => self.audio = Some(frame.clone()),
            }
            self.init = None;
            self.ts = None;
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
            let duration = frame
                .timestamp
                .wrapping_sub(held.frame.timestamp)
                .min(10_000);
            self.current.push((held.frame, duration));
        }
        let mut finished = false;
        let cut_here = match self.segment_start {
            None => frame.kind == MediaKind::Video && info.is_keyframe || !self.has_video,
            Some(start) => {
                let length = frame.timestamp.wrapping_sub(start);
                let key = frame.kind == MediaKind::Video && info.is_keyframe;
                let long_enough = length >= self.config.min_segment_ms;
                let too_long = length + 100 >= self.config.target_duration_secs * 1000;
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
        }
        if self.segment_start.is_some() {
            self.held[slot] = Some(Pending {
                frame: frame.clone(),
            });
        }
        finished
    }

    /// Closes the current segment at `end` (ms).
    fn finish_segment(&mut self, end: u32) -> bool {
        let Some(start) = self.segment_start else {
            return false;
        };
        let frames = std::mem::take(&mut self.current);
        if frames.is_empty() {
            return false;
        }
        let data = match self.config.container {
            Container::Fmp4 => self.fmp4_segment(&frames),
            Container::Ts => self.ts_segment(&frames),
        };
        let Some(data) = data else {
            return false;
        };
        let segment = Segment {
            sequence: self.next_sequence,
            duration: f64::from(end.wrapping_sub(start)) / 1000.0,
            data,
            independent: self.segment_independent,
        };
        self.next_sequence += 1;
        self.segments.push_back(segment);
        while self.segments.len() > self.config.window + self.keep_after {
            self.segments.pop_front();
        }
        true
    }

    fn tracks(&self) -> Vec<TrackConfig> {
        let mut tracks = Vec::new();
        if let Some(video) = &self.video {
            tracks.extend(TrackConfig::from_sequence_header(1, video, &self.details.0));
        }
        if let Some(audio) = &self.audio {
            tracks.extend(TrackConfig::from_sequence_header(2, audio, &self.details.1));
        }
        tracks
    }

    fn fmp4_segment(&mut self, frames: &[(Frame, u32)]) -> Option<Bytes> {
        let tracks = self.tracks();
        if self.init.is_none() {
            self.init = fmp4::init_segment(&tracks).ok();
        }
        self.init.as_ref()?;
        let mut runs: Vec<(u32, u64, Vec<Sample>)> = Vec::new();
        for track in &tracks {
            let kind = match track.kind {
                fmp4::TrackType::Video => MediaKind::Video,
                fmp4::TrackType::Audio => MediaKind::Audio,
            };
            let scale = u64::from(track.timescale);
            let mut first = None;
            let samples: Vec<Sample> = frames
                .iter()
                .filter(|(f, _)| f.kind == kind)
                .map(|(f, duration)| {
                    first.get_or_insert(u64::from(f.timestamp) * scale / 1000);
                    Sample {
                        data: f.body(),
                        duration: (u64::from(*duration) * scale / 1000).max(1) as u32,
                        composition_offset: (i64::from(f.info.composition_time) * scale as i64
                            / 1000) as i32,
                        sync: kind == MediaKind::Audio || f.info.is_keyframe,
                    }
                })
                .collect();
            if !samples.is_empty() {
                runs.push((track.track_id, first.unwrap_or(0), samples));
            }
        }
        let runs: Vec<TrackRun<'_>> = runs
            .iter()
            .map(|(id, base, samples)| TrackRun {
                track_id: *id,
                base_decode_time: *base,
                samples,
            })
            .collect();
        let chunks = fmp4::media_segment(self.next_sequence as u32 + 1, &runs);
        Some(Bytes::from(chunks.concat()))
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

    /// The init segment (fMP4), once the codecs are known and a segment was written.
    pub fn init_segment(&self) -> Option<Bytes> {
        self.init.clone()
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

    /// The media playlist: the last `window` segments, named `{prefix}{sequence}{ext}`.
    pub fn playlist(&self) -> String {
        let listed: Vec<&Segment> = self
            .segments
            .iter()
            .skip(self.segments.len().saturating_sub(self.config.window))
            .collect();
        let mut out = String::from("#EXTM3U\n");
        let version = match self.config.container {
            Container::Fmp4 => 7,
            Container::Ts => 3,
        };
        let _ = writeln!(out, "#EXT-X-VERSION:{version}");
        let _ = writeln!(
            out,
            "#EXT-X-TARGETDURATION:{}",
            self.config.target_duration_secs
        );
        let first = listed.first().map_or(0, |s| s.sequence);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        if self.config.container == Container::Fmp4 {
            out.push_str("#EXT-X-MAP:URI=\"init.mp4\"\n");
        }
        let ext = match self.config.container {
            Container::Fmp4 => "m4s",
            Container::Ts => "ts",
        };
        for segment in listed {
            let _ = writeln!(
                out,
                "#EXTINF:{:.3},\nseg{}.{ext}",
                segment.duration, segment.sequence
            );
        }
        out
    }
}

#[cfg(test)]
mod tests;
