//! One track of a stream packaged as CMAF: samples in, parts and segments out.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{CmafConfig, MAX_SEGMENT_BYTES, MAX_SEGMENT_FRAMES};
use crate::flv::Codec;
use crate::fmp4::{self, Sample, TrackConfig, TrackRun, TrackType};
use crate::frame::MediaKind;
use crate::track_info::CodecDetails;

/// A part (LL-HLS partial segment, a CMAF chunk) in a playlist.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PartInfo {
    /// The rendition's running part number (`part{number}.m4s`).
    pub number: u64,
    /// Duration in seconds.
    pub duration: f64,
    /// Starts with a sync sample.
    pub independent: bool,
}

/// A finished segment of one rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// Decode time of its first sample, in the track's timescale.
    pub start_ticks: u64,
    /// Its duration in the track's timescale.
    pub duration_ticks: u64,
    /// Duration in seconds.
    pub duration: f64,
    /// Its bytes: one `moof` + `mdat` per part, shared with the parts.
    pub chunks: Vec<Bytes>,
    /// Its parts (empty without low latency).
    pub parts: Vec<PartInfo>,
    /// Starts with a sync sample.
    pub independent: bool,
    /// Follows a discontinuity (publisher change, codec change).
    pub discontinuity: bool,
    /// Discontinuities up to and including this segment's.
    pub discontinuity_sequence: u64,
    /// The init segment it needs (`init{id}.mp4`).
    pub init_id: u32,
    /// Wall clock at its first sample, ms since the Unix epoch, when known.
    pub program_date_ms: Option<u64>,
    /// Samples in it.
    pub frames: usize,
}

impl Segment {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// Whether it holds no bytes (never for a finished segment).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A sample whose duration is known once the next one of its track arrives.
#[derive(Debug)]
struct Held {
    ms: u64,
    data: Bytes,
    composition_ms: i32,
    sync: bool,
}

/// The segment being built.
#[derive(Debug)]
pub(super) struct Building {
    pub(super) sequence: u64,
    start_ms: u64,
    start_ticks: u64,
    ticks: u64,
    chunks: Vec<Bytes>,
    pub(super) parts: Vec<PartInfo>,
    independent: bool,
    pub(super) discontinuity: bool,
    pub(super) program_date_ms: Option<u64>,
    bytes: usize,
    frames: usize,
}

/// Whether a part is there, coming next, or neither.
#[derive(Debug, Clone, PartialEq)]
pub enum PartState {
    /// Its bytes.
    Ready(Bytes),
    /// The next part of the rendition: not finished yet.
    Next,
    /// Gone, or too far ahead.
    Missing,
}

/// Where a rendition's live edge is, for a blocking playlist request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The sequence number the next finished segment gets.
    pub next_sequence: u64,
    /// Parts finished in the segment being built.
    pub parts_built: usize,
}

/// One track of the stream: its codec configuration, init segments, the segment being built,
/// the finished segments and the recent parts.
#[derive(Debug)]
pub struct Rendition {
    kind: MediaKind,
    track_id: u8,
    name: String,
    config: CmafConfig,
    pub(super) codec: Option<Codec>,
    /// The sequence start body (configuration record), if the codec has one.
    pub(super) record: Option<Bytes>,
    pub(super) details: CodecDetails,
    timescale: u32,
    init_stale: bool,
    /// Why this track cannot be packaged, once known.
    unsupported: Option<String>,
    inits: VecDeque<(u32, Bytes)>,
    held: Option<Held>,
    last_duration_ms: u64,
    /// Samples of the part being built and its first decode time.
    part: Vec<Sample>,
    part_start_ticks: u64,
    part_ticks: u64,
    /// The next sample's decode time in the track's timescale (durations add up exactly).
    decode_ticks: Option<u64>,
    building: Option<Building>,
    segments: VecDeque<Segment>,
    /// Recent parts with their bytes, by number.
    parts: VecDeque<(u64, Bytes)>,
    next_part: u64,
    next_sequence: u64,
    fragment_sequence: u32,
    discontinuity_pending: bool,
    discontinuity_sequence: u64,
    /// The first init segment's id.
    init_base: u32,
    /// Segment starts the leading track made (ms) that this one has not reached yet.
    pub(super) boundaries: VecDeque<u64>,
    last_program_date_ms: u64,
}

/// What the stream tells a rendition about one sample.
#[derive(Debug, Clone, Copy)]
pub(super) struct Role {
    /// This track decides where segments start.
    pub leader: bool,
    /// The sequence number of the leader's segment in progress (where a follower starts).
    pub leader_sequence: Option<u64>,
    /// Wall clock minus media time (ms) for `EXT-X-PROGRAM-DATE-TIME`, when known.
    pub wall_offset_ms: Option<i64>,
}

impl Rendition {
    pub(super) fn new(kind: MediaKind, track_id: u8, config: CmafConfig) -> Rendition {
        let letter = if kind == MediaKind::Video { 'v' } else { 'a' };
        Rendition {
            kind,
            track_id,
            name: format!("{letter}{track_id}"),
            config,
            codec: None,
            record: None,
            details: CodecDetails::default(),
            timescale: if kind == MediaKind::Video {
                90_000
            } else {
                48_000
            },
            init_stale: true,
            unsupported: None,
            inits: VecDeque::new(),
            held: None,
            last_duration_ms: if kind == MediaKind::Video { 33 } else { 21 },
            part: Vec::new(),
            part_start_ticks: 0,
            part_ticks: 0,
            decode_ticks: None,
            building: None,
            segments: VecDeque::new(),
            parts: VecDeque::new(),
            next_part: 0,
            next_sequence: 0,
            fragment_sequence: 1,
            discontinuity_pending: false,
            discontinuity_sequence: 0,
            init_base: 0,
            boundaries: VecDeque::new(),
            last_program_date_ms: 0,
        }
    }

    /// Starts its numbering where `c` says, its first segment after a discontinuity.
    pub(super) fn continue_from(&mut self, c: super::Continuation) {
        self.next_sequence = self.next_sequence.max(c.sequence);
        self.next_part = self.next_part.max(c.part);
        self.init_base = self.init_base.max(c.init);
        self.discontinuity_sequence = self.discontinuity_sequence.max(c.discontinuity_sequence);
        self.discontinuity_pending = true;
    }

    /// Discontinuities so far, the segment in progress's included (a playlist may have
    /// shown it with its parts).
    pub(super) fn discontinuity_count(&self) -> u64 {
        self.discontinuity_sequence
            + u64::from(self.building.as_ref().is_some_and(|b| b.discontinuity))
    }

    /// `v0`, `a1`: the rendition's path segment in URLs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// The E-RTMP track id (0 is the default track).
    pub fn track_id(&self) -> u8 {
        self.track_id
    }

    /// The codec, once seen.
    pub fn codec(&self) -> Option<Codec> {
        self.codec
    }

    /// The RFC 6381 codec string, once the configuration is known.
    pub fn codec_string(&self) -> Option<String> {
        super::codecs::codec_string(self.codec?, self.record.as_deref().unwrap_or_default())
    }

    /// Sizes and sample rates the stream's track table reported.
    pub fn details(&self) -> &CodecDetails {
        &self.details
    }

    /// Why this track cannot be packaged (a codec without an fMP4 mapping here).
    pub fn unsupported(&self) -> Option<&str> {
        self.unsupported.as_deref()
    }

    /// Ticks per second of its decode times.
    pub fn timescale(&self) -> u32 {
        self.timescale
    }

    /// The settings it was made with.
    pub fn config(&self) -> &CmafConfig {
        &self.config
    }

    /// A new codec configuration record (a sequence start).
    pub(super) fn set_record(&mut self, codec: Codec, record: Bytes) {
        let changed = self.record.as_ref().is_some_and(|old| *old != record)
            || self.codec.is_some_and(|old| old != codec);
        if self.record.is_none() || changed {
            self.init_stale = true;
            self.unsupported = None;
        }
        if changed {
            self.discontinuity_pending = true;
        }
        self.codec = Some(codec);
        self.record = Some(record);
    }

    /// Takes one coded sample at `ms`; returns the starts (ms) of the segments it began or
    /// will begin, if this rendition leads.
    pub(super) fn push(
        &mut self,
        codec: Codec,
        ms: u64,
        data: Bytes,
        composition_ms: i32,
        sync: bool,
        role: Role,
    ) -> [Option<u64>; 2] {
        if self.codec.is_none() {
            self.codec = Some(codec);
        }
        if self.unsupported.is_some() {
            return [None; 2];
        }
        let sync_frame = |r: &Bytes| r.starts_with(&[0x0b, 0x77]);
        if matches!(codec, Codec::Ac3 | Codec::Eac3)
            && !self.record.as_ref().is_some_and(sync_frame)
        {
            // No sequence start: the first sync frame describes the stream.
            self.record = Some(data.clone());
        }
        let next = Held {
            ms,
            data,
            composition_ms,
            sync: sync || self.kind == MediaKind::Audio,
        };
        // A leader's key frame that will start a segment is announced at once, so the other
        // tracks cut at the same time even though this frame waits for its duration.
        let mut announced = None;
        if role.leader && self.kind == MediaKind::Video && next.sync {
            if let Some(building) = &self.building {
                if ms.saturating_sub(building.start_ms) >= u64::from(self.config.min_segment_ms) {
                    announced = Some(ms);
                }
            }
        }
        let Some(held) = self.held.replace(next) else {
            return [None, announced];
        };
        let duration_ms = ms.saturating_sub(held.ms).clamp(1, 10_000);
        self.last_duration_ms = duration_ms;
        let started = self.commit(held, duration_ms, role);
        [started, announced.filter(|&a| Some(a) != started)]
    }

    /// The publisher left: the segment in progress ends with its last sample and the next
    /// one follows a discontinuity.
    pub(super) fn publisher_left(&mut self) {
        if let Some(held) = self.held.take() {
            let role = Role {
                leader: false,
                leader_sequence: None,
                wall_offset_ms: None,
            };
            self.boundaries.clear();
            let _ = self.commit(held, self.last_duration_ms, role);
        }
        self.finish_segment();
        self.boundaries.clear();
        self.discontinuity_pending = true;
    }

    fn ticks(&self, ms: u64) -> u64 {
        ms * u64::from(self.timescale) / 1000
    }

    /// Puts one sample with a known duration into the part and segment being built.
    fn commit(&mut self, sample: Held, duration_ms: u64, role: Role) -> Option<u64> {
        let mut started = None;
        let cut = match &self.building {
            None => self.kind == MediaKind::Audio || sample.sync,
            Some(building) => {
                let length = sample.ms.saturating_sub(building.start_ms);
                let forced = self.discontinuity_pending
                    || building.frames >= MAX_SEGMENT_FRAMES
                    || building.bytes >= MAX_SEGMENT_BYTES;
                let limit = u64::from(self.config.target_duration_secs) * 1000 + 490;
                let too_long = length + duration_ms > limit;
                if role.leader {
                    let long_enough = length >= u64::from(self.config.min_segment_ms);
                    forced
                        || too_long
                        || if self.kind == MediaKind::Video {
                            sample.sync && long_enough
                        } else {
                            long_enough
                        }
                } else {
                    // A start at or before this segment's own start is already behind it.
                    let mut reached = false;
                    while let Some(&b) = self.boundaries.front().filter(|&&b| b <= sample.ms) {
                        self.boundaries.pop_front();
                        reached |= b > building.start_ms;
                    }
                    forced || reached || too_long
                }
            }
        };
        if !cut && self.building.is_none() {
            // A video track starts at a key frame.
            return None;
        }
        if cut {
            self.finish_segment();
            self.ensure_init()?;
            let mut start_ticks = self.ticks(sample.ms);
            if let Some(decode) = self.decode_ticks {
                if !self.discontinuity_pending {
                    start_ticks = decode;
                } else {
                    start_ticks = start_ticks.max(decode);
                }
            }
            self.decode_ticks = Some(start_ticks);
            let sequence = match (self.segments.back(), role.leader_sequence) {
                (None, Some(leader)) if !role.leader => leader.max(self.next_sequence),
                _ => self.next_sequence,
            };
            self.next_sequence = sequence;
            let program_date_ms = role.wall_offset_ms.map(|offset| {
                let at = (sample.ms as i64 + offset).max(0) as u64;
                at.max(self.last_program_date_ms)
            });
            self.building = Some(Building {
                sequence,
                start_ms: sample.ms,
                start_ticks,
                ticks: 0,
                chunks: Vec::new(),
                parts: Vec::new(),
                independent: sample.sync,
                discontinuity: std::mem::take(&mut self.discontinuity_pending),
                program_date_ms,
                bytes: 0,
                frames: 0,
            });
            self.part_start_ticks = start_ticks;
            self.part_ticks = 0;
            if role.leader {
                started = Some(sample.ms);
            }
        }
        let decode = self.decode_ticks.unwrap_or_default();
        let end = self.ticks(sample.ms + duration_ms);
        let duration_ticks = end.saturating_sub(decode).max(1);
        // A part closes before a sample that would take it past the part target.
        let part_limit = self.part_target_ticks();
        if !self.part.is_empty() && self.part_ticks + duration_ticks > part_limit {
            self.finish_part();
        }
        if self.part.is_empty() {
            self.part_start_ticks = decode;
        }
        let scale = i64::from(self.timescale);
        self.part.push(Sample {
            data: sample.data,
            duration: u32::try_from(duration_ticks).unwrap_or(u32::MAX),
            composition_offset: (i64::from(sample.composition_ms) * scale / 1000) as i32,
            sync: sample.sync,
        });
        self.part_ticks += duration_ticks;
        self.decode_ticks = Some(decode + duration_ticks);
        if let Some(building) = &mut self.building {
            building.frames += 1;
            building.bytes += self.part.last().map_or(0, |s| s.data.len());
            building.ticks += duration_ticks;
        }
        // ... and as soon as it is long enough.
        if self.config.part_ms > 0
            && self.part_ticks * 1000 >= u64::from(self.config.part_ms) * u64::from(self.timescale)
        {
            self.finish_part();
        }
        started
    }

    /// The longest part, in ticks: `PART-TARGET` (10 % above `part_ms`, so a frame that does
    /// not divide it exactly still fits); without low latency, unbounded.
    fn part_target_ticks(&self) -> u64 {
        if self.config.part_ms == 0 {
            return u64::MAX;
        }
        u64::from(self.config.part_target_ms()) * u64::from(self.timescale) / 1000
    }

    /// Builds the init segment if the configuration changed; `None` (and the track marked
    /// unsupported) if it cannot be written.
    fn ensure_init(&mut self) -> Option<()> {
        if !self.init_stale {
            return Some(());
        }
        let codec = self.codec?;
        let (kind, default_scale) = match self.kind {
            MediaKind::Video => (TrackType::Video, 90_000),
            _ => (TrackType::Audio, 48_000),
        };
        let timescale = match kind {
            TrackType::Video => default_scale,
            TrackType::Audio => self.details.sample_rate.unwrap_or(default_scale),
        };
        let size = |v: Option<u32>| v.and_then(|v| u16::try_from(v).ok()).unwrap_or(0);
        let track = TrackConfig {
            track_id: 1,
            kind,
            codec,
            timescale,
            width: size(self.details.width),
            height: size(self.details.height),
            sample_rate: self.details.sample_rate.unwrap_or(0),
            channels: self.details.channels.map_or(2, u16::from),
            config: self.record.clone().unwrap_or_default(),
        };
        match fmp4::init_segment(std::slice::from_ref(&track)) {
            Ok(init) => {
                if timescale != self.timescale && self.decode_ticks.is_some() {
                    // A new timescale restarts the decode clock from the sample times.
                    self.decode_ticks = None;
                }
                self.timescale = timescale;
                self.init_stale = false;
                if self.inits.back().is_none_or(|(_, last)| *last != init) {
                    let id = self
                        .inits
                        .back()
                        .map_or(self.init_base, |(id, _)| id.saturating_add(1));
                    self.inits.push_back((id, init));
                    if self.inits.len() > 8 {
                        self.inits.pop_front();
                    }
                }
                Some(())
            }
            Err(err) => {
                self.unsupported = Some(err.to_string());
                self.held = None;
                self.building = None;
                self.part.clear();
                None
            }
        }
    }

    /// Writes the part being built as one `moof` + `mdat`.
    fn finish_part(&mut self) {
        if self.part.is_empty() {
            return;
        }
        let Some(building) = &mut self.building else {
            self.part.clear();
            return;
        };
        let samples = std::mem::take(&mut self.part);
        let run = TrackRun {
            track_id: 1,
            base_decode_time: self.part_start_ticks,
            samples: &samples,
        };
        let data = Bytes::from(fmp4::media_segment(self.fragment_sequence, &[run]).concat());
        self.fragment_sequence = self.fragment_sequence.wrapping_add(1);
        let number = self.next_part;
        self.next_part += 1;
        building.chunks.push(data.clone());
        if self.config.part_ms > 0 {
            building.parts.push(PartInfo {
                number,
                duration: self.part_ticks as f64 / f64::from(self.timescale),
                independent: samples.first().is_some_and(|s| s.sync),
            });
            self.parts.push_back((number, data));
        }
        self.part_start_ticks += self.part_ticks;
        self.part_ticks = 0;
    }

    /// Ends the segment being built.
    fn finish_segment(&mut self) {
        self.finish_part();
        let Some(building) = self.building.take() else {
            return;
        };
        if building.chunks.is_empty() {
            return;
        }
        if building.discontinuity {
            self.discontinuity_sequence += 1;
        }
        let duration = building.ticks as f64 / f64::from(self.timescale);
        if let Some(pdt) = building.program_date_ms {
            self.last_program_date_ms = pdt + (duration * 1000.0) as u64;
        }
        self.segments.push_back(Segment {
            sequence: building.sequence,
            start_ticks: building.start_ticks,
            duration_ticks: building.ticks,
            duration,
            chunks: building.chunks,
            parts: building.parts,
            independent: building.independent,
            discontinuity: building.discontinuity,
            discontinuity_sequence: self.discontinuity_sequence,
            init_id: self.inits.back().map_or(0, |(id, _)| *id),
            program_date_ms: building.program_date_ms,
            frames: building.frames,
        });
        self.next_sequence = building.sequence + 1;
        // As many segments as the playlist lists stay downloadable after leaving it.
        while self.segments.len() > 2 * self.config.window {
            self.segments.pop_front();
        }
        // Parts are kept for the segments whose parts a playlist lists, and one more.
        let keep_from = self
            .segments
            .iter()
            .rev()
            .nth(self.config.part_segments())
            .and_then(|s| s.parts.first())
            .map(|p| p.number);
        if let Some(first) = keep_from {
            while self.parts.front().is_some_and(|(n, _)| *n < first) {
                self.parts.pop_front();
            }
        }
    }

    /// The finished segments still held (the playlist lists the last `window`).
    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    /// A finished segment still held.
    pub fn segment(&self, sequence: u64) -> Option<&Segment> {
        let first = self.segments.front()?.sequence;
        self.segments
            .get(usize::try_from(sequence.checked_sub(first)?).ok()?)
    }

    /// The discontinuity sequence and start (ms) of the segment in progress.
    pub(super) fn building_period(&self) -> Option<(u64, u64)> {
        let b = self.building.as_ref()?;
        Some((
            self.discontinuity_sequence + u64::from(b.discontinuity),
            b.start_ms,
        ))
    }

    /// The segment in progress.
    pub(super) fn building(&self) -> Option<&Building> {
        self.building.as_ref()
    }

    /// The sequence number the segment in progress (or the next one) has, and its parts.
    pub fn edge(&self) -> Edge {
        match &self.building {
            Some(b) => Edge {
                next_sequence: b.sequence,
                parts_built: b.parts.len(),
            },
            None => Edge {
                next_sequence: self.next_sequence,
                parts_built: 0,
            },
        }
    }

    /// The last part in the playlist: (segment sequence, part index in it).
    pub fn last_part(&self) -> Option<(u64, usize)> {
        match &self.building {
            Some(b) if !b.parts.is_empty() => Some((b.sequence, b.parts.len() - 1)),
            _ => self
                .segments
                .back()
                .filter(|s| !s.parts.is_empty())
                .map(|s| (s.sequence, s.parts.len() - 1)),
        }
    }

    /// A part by number: its bytes, or whether it is the one being built.
    pub fn part(&self, number: u64) -> PartState {
        if number == self.next_part && self.config.part_ms > 0 {
            return PartState::Next;
        }
        let Some(&(first, _)) = self.parts.front() else {
            return PartState::Missing;
        };
        match number
            .checked_sub(first)
            .and_then(|i| self.parts.get(usize::try_from(i).ok()?))
        {
            Some((_, data)) => PartState::Ready(data.clone()),
            None => PartState::Missing,
        }
    }

    /// The number the next part gets.
    pub fn next_part(&self) -> u64 {
        self.next_part
    }

    /// The id of the latest init segment.
    pub(super) fn latest_init_id(&self) -> u32 {
        self.inits.back().map_or(0, |(id, _)| *id)
    }

    /// The latest init segment.
    pub fn init_segment(&self) -> Option<Bytes> {
        self.inits.back().map(|(_, init)| init.clone())
    }

    /// An init segment by id, while it is kept.
    pub fn init_segment_by_id(&self, id: u32) -> Option<Bytes> {
        self.inits
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, init)| init.clone())
    }

    /// The highest bitrate of a held segment and the average over them, bits per second.
    pub fn bandwidth(&self) -> (u64, u64) {
        let mut peak = 0f64;
        let (mut bytes, mut secs) = (0usize, 0f64);
        for segment in &self.segments {
            if segment.duration > 0.0 {
                peak = peak.max(segment.len() as f64 * 8.0 / segment.duration);
            }
            bytes += segment.len();
            secs += segment.duration;
        }
        let average = if secs > 0.0 {
            bytes as f64 * 8.0 / secs
        } else {
            0.0
        };
        (peak.ceil() as u64, average.ceil() as u64)
    }

    /// Frames per second over the held segments (video).
    pub fn frame_rate(&self) -> Option<f64> {
        let frames: usize = self.segments.iter().map(|s| s.frames).sum();
        let secs: f64 = self.segments.iter().map(|s| s.duration).sum();
        (secs > 0.0 && frames > 1).then(|| frames as f64 / secs)
    }
}
