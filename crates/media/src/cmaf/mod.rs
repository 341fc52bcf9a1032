//! CMAF packaging for HLS (with Low-Latency HLS parts) and DASH, sans-IO: a stream's frames in,
//! one rendition per track out (init segments, parts, segments), and the playlists and the MPD
//! that list them.
//!
//! Every audio and video track of the stream (E-RTMP Multitrack included) becomes its own
//! rendition (`v0`, `v1`, `a0`, ...), demuxed, each with its own init segment: what an HLS
//! multivariant playlist (one variant per video track, alternate audio per audio track) and a
//! DASH MPD (an AdaptationSet per kind, a Representation per track) need, with no transcoding.
//!
//! **Segments.** The leading track (the first video track, else the first audio track) starts
//! a segment at a key frame once the current one is at least `min_segment_ms` long, or earlier
//! than a frame that would take it past `EXT-X-TARGETDURATION` + 0.49 s (so the rounded
//! duration never exceeds the target, which therefore never changes). The other tracks start
//! theirs at their first sample at or after each of the leader's segment starts, so sequence
//! numbers line up across renditions (a follower without samples for a whole segment falls
//! one behind; not handled).
//!
//! **Parts.** With `part_ms` > 0 each segment is written as parts: a part closes as soon as it
//! is `part_ms` long, or before a sample that would take it past `PART-TARGET` (`part_ms` +
//! 10 %). A part is a `moof` + `mdat`; a segment is its parts back to back. Parts are numbered
//! per rendition (`part{N}.m4s`), so the preload hint names the next part before anyone knows
//! which segment it will belong to.
//!
//! A sample's duration is known when the next sample of its track arrives, so a part is
//! finished when the first sample after it arrives. Frames must carry the viewer's rebased
//! timestamps (continuous across publishers).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::flv::{TrackKind, TrackPacketType, Tracks};
use crate::frame::{Audience, Frame, MediaKind};
use crate::track_info::CodecDetails;

pub mod codecs;
mod mpd;
mod playlist;
mod rendition;

pub use playlist::{Blocking, PlaylistQuery};
use rendition::Role;
pub use rendition::{Edge, PartInfo, PartState, Rendition, Segment};

/// Most frames or payload bytes one segment collects; past either it is cut whatever the
/// timestamps say (a publisher whose timestamps stand still must not grow it without bound).
const MAX_SEGMENT_FRAMES: usize = 20_000;
const MAX_SEGMENT_BYTES: usize = 64 << 20;
/// Most renditions of one stream.
const MAX_RENDITIONS: usize = 16;

/// Packaging settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CmafConfig {
    /// `EXT-X-TARGETDURATION`, seconds: no segment's rounded duration is longer.
    pub target_duration_secs: u32,
    /// A segment ends at the first key frame after it is this long.
    pub min_segment_ms: u32,
    /// Low-Latency HLS part length in ms; 0 for none.
    pub part_ms: u32,
    /// Segments in a playlist.
    pub window: usize,
}

impl Default for CmafConfig {
    fn default() -> Self {
        Self {
            target_duration_secs: 2,
            min_segment_ms: 1000,
            part_ms: 200,
            window: 12,
        }
    }
}

impl CmafConfig {
    /// `PART-TARGET` in ms: `part_ms` + 10 %.
    pub fn part_target_ms(&self) -> u32 {
        self.part_ms + self.part_ms.div_ceil(10)
    }

    /// How many of the last segments can have parts listed: those within three target
    /// durations of the live edge, at the shortest segment length.
    fn part_segments(&self) -> usize {
        (3 * self.target_duration_secs * 1000).div_ceil(self.min_segment_ms.max(1)) as usize + 1
    }
}

/// Where a packager's numbering starts when it continues another's (the stream moved to
/// another server of a cluster): every number it uses is past the other's, so no URI names
/// different bytes, and its first segment follows a discontinuity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Continuation {
    /// The first segment's media sequence number.
    pub sequence: u64,
    /// The first part's number.
    pub part: u64,
    /// The first init segment's id.
    pub init: u32,
    /// Discontinuities before the first segment (`EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuity_sequence: u64,
}

/// One stream's CMAF renditions; see the module docs.
#[derive(Debug)]
pub struct Packager {
    config: CmafConfig,
    /// Where numbering starts (renditions created later start there too).
    continuation: Option<Continuation>,
    renditions: Vec<Rendition>,
    wall_ms: Option<u64>,
    /// Wall clock minus media time, fixed at the first sample after a (re)start.
    wall_offset_ms: Option<i64>,
    /// The last timestamp seen and its unwrapped value.
    clock: Option<(u32, u64)>,
    /// Where each publisher's segments start (DASH Periods), the first kept for good.
    periods: VecDeque<mpd::PeriodAnchor>,
}

impl Packager {
    /// A packager that has seen nothing yet.
    pub fn new(config: CmafConfig) -> Packager {
        Packager {
            config,
            continuation: None,
            renditions: Vec::new(),
            wall_ms: None,
            wall_offset_ms: None,
            clock: None,
            periods: VecDeque::new(),
        }
    }

    /// Continues another packager's numbering (call before the first frame).
    pub fn continue_from(&mut self, continuation: Continuation) {
        self.continuation = Some(continuation);
        for rendition in &mut self.renditions {
            rendition.continue_from(continuation);
        }
    }

    /// Where a packager taking this one's stream over would start: past every segment, part
    /// and init segment this one has published, with room for the parts of a segment in
    /// progress that may be published after this is read (`hls` keeps it in Redis once a
    /// segment).
    pub fn continuation(&self) -> Continuation {
        let parts_per_segment =
            u64::from(self.config.target_duration_secs * 1000 / self.config.part_ms.max(1));
        let base = self.continuation.unwrap_or_default();
        let mut next = Continuation {
            sequence: base.sequence,
            part: base.part,
            init: base.init,
            discontinuity_sequence: base.discontinuity_sequence,
        };
        for r in &self.renditions {
            next.sequence = next.sequence.max(r.edge().next_sequence + 2);
            next.part = next.part.max(r.next_part() + 2 * parts_per_segment + 4);
            next.init = next.init.max(r.latest_init_id() + 1);
            next.discontinuity_sequence = next.discontinuity_sequence.max(r.discontinuity_count());
        }
        next
    }

    /// Its settings.
    pub fn config(&self) -> &CmafConfig {
        &self.config
    }

    /// The wall clock now, ms since the Unix epoch (for `EXT-X-PROGRAM-DATE-TIME`).
    pub fn set_wall_clock(&mut self, unix_ms: u64) {
        self.wall_ms = Some(unix_ms);
    }

    /// What the track table says of a track (sizes, sample rate), for its init segment.
    pub fn set_details(&mut self, kind: TrackKind, track_id: u8, details: CodecDetails) {
        let kind = match kind {
            TrackKind::Video => MediaKind::Video,
            TrackKind::Audio => MediaKind::Audio,
        };
        // The track may not have sent anything through here yet: its rendition starts now,
        // so its first init segment has the sizes.
        if let Some(index) = self.rendition_index(kind, track_id) {
            self.renditions[index].details = details;
        }
    }

    /// Every rendition, video first, by track id.
    pub fn renditions(&self) -> &[Rendition] {
        &self.renditions
    }

    /// A rendition by name (`v0`, `a1`).
    pub fn rendition(&self, name: &str) -> Option<&Rendition> {
        self.renditions.iter().find(|r| r.name() == name)
    }

    /// Grows with every part or segment finished (for waking blocked requests).
    pub fn progress(&self) -> u64 {
        self.renditions
            .iter()
            .map(|r| r.next_part() + r.segments().back().map_or(0, |s| s.sequence + 1))
            .sum()
    }

    /// Takes one frame as the hub holds it (every track; single-track copies are skipped),
    /// with the viewer's rebased timestamp.
    pub fn push(&mut self, frame: &Frame) {
        let kind = match frame.kind {
            MediaKind::Video => TrackKind::Video,
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Data => return,
        };
        if frame.info.audience == Audience::SingleTrack || frame.payload.is_empty() {
            return;
        }
        let Ok(tracks) = Tracks::parse(kind, &frame.payload) else {
            return;
        };
        let ms = self.unwrap(frame.timestamp);
        let sync = kind == TrackKind::Video && matches!(tracks.frame_type(), 1 | 4);
        for track in tracks.flatten() {
            let Some(index) = self.rendition_index(frame.kind, track.track_id) else {
                continue;
            };
            let body = frame.payload.slice_ref(track.body);
            match track.packet_type {
                TrackPacketType::SequenceStart => {
                    self.renditions[index].set_record(track.codec, body);
                }
                _ => {
                    if let Some((composition_ms, data)) = track.coded_sample(body) {
                        self.sample(index, track.codec, ms, data, composition_ms, sync);
                    }
                }
            }
        }
    }

    fn sample(
        &mut self,
        index: usize,
        codec: crate::flv::Codec,
        ms: u64,
        data: Bytes,
        composition_ms: i32,
        sync: bool,
    ) {
        if self.wall_offset_ms.is_none() {
            self.wall_offset_ms = self.wall_ms.map(|wall| wall as i64 - ms as i64);
        }
        let leader = self.leader();
        let role = Role {
            leader: leader == Some(index),
            leader_sequence: leader.map(|l| self.renditions[l].edge().next_sequence),
            wall_offset_ms: self.wall_offset_ms,
        };
        let started = self.renditions[index].push(codec, ms, data, composition_ms, sync, role);
        if role.leader {
            self.note_period(index);
        }
        for start in started.into_iter().flatten() {
            for (i, other) in self.renditions.iter_mut().enumerate() {
                if i != index && other.boundaries.len() < 64 {
                    other.boundaries.push_back(start);
                }
            }
        }
    }

    /// Records where a new publisher's segments start (for DASH Periods).
    fn note_period(&mut self, leader: usize) {
        let (Some((id, media_ms)), Some(wall_offset_ms)) = (
            self.renditions[leader].building_period(),
            self.wall_offset_ms,
        ) else {
            return;
        };
        if self.periods.back().is_some_and(|p| p.id >= id) {
            return;
        }
        if self.periods.len() >= 32 {
            // The first stays: it fixes availabilityStartTime.
            self.periods.remove(1);
        }
        self.periods.push_back(mpd::PeriodAnchor {
            id,
            media_ms,
            wall_offset_ms,
        });
    }

    /// The publisher left: every rendition ends its segment; the next ones follow a
    /// discontinuity.
    pub fn publisher_left(&mut self) {
        for rendition in &mut self.renditions {
            rendition.publisher_left();
        }
        self.wall_offset_ms = None;
    }

    /// The track that decides where segments start: the first video track, else the first
    /// audio track.
    pub(super) fn leader(&self) -> Option<usize> {
        let usable = |r: &Rendition| r.unsupported().is_none();
        self.renditions
            .iter()
            .position(|r| r.kind() == MediaKind::Video && usable(r))
            .or_else(|| self.renditions.iter().position(usable))
    }

    fn rendition_index(&mut self, kind: MediaKind, track_id: u8) -> Option<usize> {
        if let Some(i) = self
            .renditions
            .iter()
            .position(|r| r.kind() == kind && r.track_id() == track_id)
        {
            return Some(i);
        }
        if self.renditions.len() >= MAX_RENDITIONS {
            return None;
        }
        let mut rendition = Rendition::new(kind, track_id, self.config);
        if let Some(continuation) = self.continuation {
            rendition.continue_from(continuation);
        }
        self.renditions.push(rendition);
        self.renditions
            .sort_by_key(|r| (r.kind() == MediaKind::Audio, r.track_id()));
        self.renditions
            .iter()
            .position(|r| r.kind() == kind && r.track_id() == track_id)
    }

    /// Extends a 32-bit ms timestamp to 64 bits (wraps after 49 days; small steps back are
    /// taken as such).
    fn unwrap(&mut self, timestamp: u32) -> u64 {
        let value = match self.clock {
            None => u64::from(timestamp),
            Some((last, value)) => {
                let step = timestamp.wrapping_sub(last) as i32;
                value.saturating_add_signed(i64::from(step))
            }
        };
        self.clock = Some((timestamp, value));
        value
    }
}

#[cfg(test)]
mod tests;
