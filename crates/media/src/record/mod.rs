//! Recording a stream into fragmented MP4 files, sans-IO: frames in, file events out
//! ([`Fmp4Recorder`]), and the index of a recorded file read back from its boxes
//! ([`index`]) for listing and time-range playback.
//!
//! **Files.** A file is an init segment (`ftyp` + `moov` with one track per audio and video
//! track of the stream, E-RTMP Multitrack included) followed by fragments, each a `prft`
//! (the wall clock of its first sample, so a file says itself when it was recorded) and a
//! `moof` + `mdat`. A file is playable up to its last whole fragment at every moment: nothing
//! is ever rewritten, so a `kill -9` of the server or of the encoder loses at most the
//! fragment being built.
//!
//! **Fragments.** The leading track (the first video track, else the first audio track)
//! decides: a fragment ends before a key frame once it is at least a second long (or
//! `fragment_ms`, if shorter), and before any sample once it is `fragment_ms` long. With a
//! key frame interval up to `fragment_ms` every fragment therefore starts with a key frame.
//! The other tracks' samples go into the fragment in progress as their durations become
//! known (a sample's duration is known when the next one of its track arrives). While the
//! leading track sends nothing (video stalled, audio going on) no fragment is cut by time:
//! the others' samples wait, up to 32 MiB or 20,000 samples, and a crash then loses them.
//!
//! **A new file** starts (the recorder emits [`RecordEvent::Open`]) at the first key frame
//! (or, for audio-only streams, after a second of audio), and again at the next key frame
//! after a codec configuration changes, a new track appears, or the file has reached
//! `max_file_ms` or `max_file_bytes`. Each file's decode times start near 0. The first file
//! is opened half a second of media after its first key frame (the samples wait), so the
//! tracks a Multitrack encoder announces one after the other are all in it. A video track
//! starts in a file at its own first key frame.
//!
//! The FLV recorder ([`flv`]) emits the same events.
//!
//! Frames must carry the viewer's rebased timestamps.

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::{Codec, TrackKind, TrackPacketType, Tracks};
use crate::fmp4::{self, Sample, TrackConfig, TrackRun, TrackType};
use crate::frame::{Audience, Frame, MediaKind};
use crate::track_info::TrackTable;

pub mod flv;
pub mod index;
pub mod vod;

/// Most tracks one recording takes.
const MAX_TRACKS: usize = 16;
/// A fragment is cut whatever the timestamps say past this many bytes or samples (a
/// publisher whose timestamps stand still must not grow it without bound).
const MAX_FRAGMENT_BYTES: usize = 32 << 20;
const MAX_FRAGMENT_SAMPLES: usize = 20_000;
/// Samples held before the first file opens (waiting for a key frame), at most.
const MAX_PENDING: usize = 1_000;
/// Audio an audio-only stream buffers before its file opens, ms.
const AUDIO_ONLY_AFTER_MS: u64 = 1_000;
/// Media the first file waits for after its first key frame, so tracks whose sequence starts
/// come just after it are in the file, ms.
const OPEN_AFTER_MS: u64 = 500;

/// Recording settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordConfig {
    /// Longest fragment, ms: the most a crash can lose.
    pub fragment_ms: u64,
    /// A new file after this much media, ms; 0 for no limit.
    pub max_file_ms: u64,
    /// A new file after this many bytes; 0 for no limit.
    pub max_file_bytes: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            fragment_ms: 2_000,
            max_file_ms: 0,
            max_file_bytes: 0,
        }
    }
}

/// Why a file was closed and the next one opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The file reached `max_file_ms`.
    Duration,
    /// The file reached `max_file_bytes`.
    Size,
    /// A track's codec or configuration changed.
    CodecChange,
    /// A track that is not in the file appeared.
    NewTrack,
}

impl std::fmt::Display for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rotation::Duration => "it reached its maximum duration",
            Rotation::Size => "it reached its maximum size",
            Rotation::CodecChange => "a track's codec configuration changed",
            Rotation::NewTrack => "a new track appeared",
        })
    }
}

/// What the writer does with the file system.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordEvent {
    /// Close the open file (if any) and start a new one with these bytes.
    Open {
        /// `ftyp` + `moov`.
        init: Bytes,
        /// Wall clock at the file's first sample, ms since the Unix epoch.
        start_wall_ms: u64,
        /// Why the previous file closed, when this one replaces it.
        rotated: Option<Rotation>,
        /// The tracks, for the log (`video#0 avc1, audio#0 mp4a`).
        tracks: String,
    },
    /// Append one fragment to the open file.
    Fragment {
        /// `prft` + `moof` + `mdat`, the sample data shared with the frames.
        chunks: Vec<Bytes>,
        /// Media in the file after this fragment, ms.
        file_ms: u64,
    },
    /// Close the open file: the publisher left.
    Close {
        /// Media in the file, ms.
        file_ms: u64,
    },
}

/// A sample whose duration is known once the next one of its track arrives.
#[derive(Debug, Clone)]
struct Held {
    ms: u64,
    data: Bytes,
    composition_ms: i32,
    sync: bool,
}

/// One audio or video track of the stream.
#[derive(Debug)]
struct Track {
    kind: MediaKind,
    track_id: u8,
    codec: Codec,
    record: Option<Bytes>,
    /// The configuration the open file was made with; `None` when not in the file.
    in_file: Option<FileTrack>,
    held: Option<Held>,
    last_duration_ms: u64,
    /// Samples of the fragment in progress and the decode time of its first.
    run: Vec<Sample>,
    run_start: u64,
    /// The next sample's decode time in the file's timescale of this track.
    decode_ticks: u64,
    /// Why it cannot be recorded (no fMP4 mapping for its codec), once known.
    unsupported: bool,
}

/// A track as the open file has it.
#[derive(Debug, Clone)]
struct FileTrack {
    id: u32,
    /// A sample is in the file (a video track starts at a key frame).
    started: bool,
    timescale: u32,
    codec: Codec,
    record: Bytes,
}

/// The open file.
#[derive(Debug)]
struct File {
    /// Media time of its start (the leader's first sample), ms.
    start_ms: u64,
    /// Wall clock minus media time, ms.
    wall_offset_ms: i64,
    /// Index of the leading track in `tracks`.
    leader: usize,
    bytes: u64,
    /// Media time of the fragment in progress's start, ms; `None` when it is empty.
    fragment_start_ms: Option<u64>,
    fragment_bytes: usize,
    fragment_samples: usize,
    fragment_sequence: u32,
    /// Media after the last fragment written, ms.
    written_ms: u64,
    rotate: Option<Rotation>,
}

/// One stream's recorder; see the module docs.
#[derive(Debug)]
pub struct Fmp4Recorder {
    config: RecordConfig,
    tracks: Vec<Track>,
    table: TrackTable,
    file: Option<File>,
    /// Samples that arrived before the first file opened: (track index, sample).
    pending: Vec<(usize, Held)>,
    /// The first key frame's track, time and wall clock, while the first file waits.
    opening: Option<(usize, u64, u64)>,
    clock: Option<(u32, u64)>,
    unsupported: Vec<String>,
}

impl Fmp4Recorder {
    /// A recorder that has seen nothing yet.
    pub fn new(config: RecordConfig) -> Fmp4Recorder {
        Fmp4Recorder {
            config: RecordConfig {
                fragment_ms: config.fragment_ms.max(100),
                ..config
            },
            tracks: Vec::new(),
            table: TrackTable::new(),
            file: None,
            pending: Vec::new(),
            opening: None,
            clock: None,
            unsupported: Vec::new(),
        }
    }

    /// Tracks left out of the recording (codecs without an fMP4 mapping), once, for the log;
    /// drained by the call.
    pub fn take_unsupported(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unsupported)
    }

    /// Whether a file is open.
    pub fn recording(&self) -> bool {
        self.file.is_some()
    }

    /// Takes one frame as the hub holds it (single-track copies are skipped), with the
    /// viewer's rebased timestamp and the wall clock now (ms since the Unix epoch).
    pub fn push(&mut self, frame: &Frame, wall_ms: u64, out: &mut Vec<RecordEvent>) {
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
        self.table.observe(frame);
        let ms = self.unwrap(frame.timestamp);
        let sync = kind == TrackKind::Video && matches!(tracks.frame_type(), 1 | 4);
        for track in tracks.flatten() {
            let Some(index) = self.track_index(frame.kind, track.track_id, track.codec) else {
                continue;
            };
            let body = frame.payload.slice_ref(track.body);
            match track.packet_type {
                TrackPacketType::SequenceStart => self.set_record(index, track.codec, body),
                _ => {
                    let Some((composition_ms, data)) = track.coded_sample(body) else {
                        continue;
                    };
                    let t = &mut self.tracks[index];
                    t.codec = track.codec;
                    if matches!(track.codec, Codec::Ac3 | Codec::Eac3)
                        && !t
                            .record
                            .as_ref()
                            .is_some_and(|r| r.starts_with(&[0x0b, 0x77]))
                    {
                        // No sequence start: the first sync frame describes the stream.
                        t.record = Some(data.clone());
                    }
                    let sample = Held {
                        ms,
                        data,
                        composition_ms,
                        sync: sync || frame.kind == MediaKind::Audio,
                    };
                    self.sample(index, sample, wall_ms, out);
                }
            }
        }
    }

    /// The publisher left: the last samples are written and the file closes.
    pub fn finish(&mut self, out: &mut Vec<RecordEvent>) {
        if let Some((leader, at, wall)) = self.opening.take() {
            // A publish shorter than the wait: record what there is.
            let pending = std::mem::take(&mut self.pending);
            if self.open(leader, at, wall, None, out) {
                for (i, s) in pending.into_iter().filter(|(_, s)| s.ms >= at) {
                    self.sample(i, s, wall, out);
                }
            }
        }
        self.pending.clear();
        if self.file.is_none() {
            return;
        }
        for index in 0..self.tracks.len() {
            if let Some(held) = self.tracks[index].held.take() {
                let duration = self.tracks[index].last_duration_ms;
                self.commit(index, held, duration);
            }
        }
        self.write_fragment(out);
        let file_ms = self.file.take().map_or(0, |f| f.written_ms);
        for track in &mut self.tracks {
            track.in_file = None;
        }
        out.push(RecordEvent::Close { file_ms });
    }

    fn track_index(&mut self, kind: MediaKind, track_id: u8, codec: Codec) -> Option<usize> {
        if let Some(i) = self
            .tracks
            .iter()
            .position(|t| t.kind == kind && t.track_id == track_id)
        {
            return Some(i);
        }
        if self.tracks.len() >= MAX_TRACKS {
            return None;
        }
        self.tracks.push(Track {
            kind,
            track_id,
            codec,
            record: None,
            in_file: None,
            held: None,
            last_duration_ms: if kind == MediaKind::Video { 33 } else { 21 },
            run: Vec::new(),
            run_start: 0,
            decode_ticks: 0,
            unsupported: false,
        });
        Some(self.tracks.len() - 1)
    }

    fn set_record(&mut self, index: usize, codec: Codec, record: Bytes) {
        let track = &mut self.tracks[index];
        let changed = track.record.as_ref().is_some_and(|r| *r != record) || track.codec != codec;
        track.codec = codec;
        track.record = Some(record);
        if changed {
            track.unsupported = false;
        }
        if track.unsupported && !changed {
            return;
        }
        if let Some(file) = &mut self.file {
            let differs = match &track.in_file {
                Some(t) => t.codec != codec || Some(&t.record) != track.record.as_ref(),
                None => true,
            };
            if differs && file.rotate.is_none() {
                file.rotate = Some(if track.in_file.is_some() {
                    Rotation::CodecChange
                } else {
                    Rotation::NewTrack
                });
            }
        }
    }

    /// One coded sample of track `index`.
    fn sample(&mut self, index: usize, sample: Held, wall_ms: u64, out: &mut Vec<RecordEvent>) {
        if self.tracks[index].unsupported {
            return;
        }
        if self.file.is_none() {
            self.before_open(index, sample, wall_ms, out);
            return;
        }
        let Some(leader) = self.file.as_ref().map(|f| f.leader) else {
            return;
        };
        if self.tracks[index].in_file.is_none() {
            // A track the file does not have: it waits for the next file.
            if let Some(file) = &mut self.file {
                if file.rotate.is_none() && self.tracks[index].record.is_some() {
                    file.rotate = Some(Rotation::NewTrack);
                }
            }
            if index != leader {
                return;
            }
        }
        if index == leader {
            let video = self.tracks[index].kind == MediaKind::Video;
            let why = self.file.as_ref().and_then(|f| f.rotate);
            if why.is_some() && (sample.sync || !video) {
                self.rotate(index, sample, wall_ms, why, out);
                return;
            }
        }
        let Some(held) = self.tracks[index].held.replace(sample.clone()) else {
            return;
        };
        let duration = sample.ms.saturating_sub(held.ms).clamp(1, 10_000);
        self.tracks[index].last_duration_ms = duration;
        self.commit(index, held, duration);
        if index == leader {
            self.maybe_cut(&sample, out);
            // A limit reached at this cut: the new file starts with this sample if it can.
            let video = self.tracks[index].kind == MediaKind::Video;
            let why = self.file.as_ref().and_then(|f| f.rotate);
            if why.is_some() && (sample.sync || !video) {
                if let Some(first) = self.tracks[index].held.take() {
                    self.rotate(index, first, wall_ms, why, out);
                }
            }
        } else if self.file.as_ref().is_some_and(|f| {
            f.fragment_bytes >= MAX_FRAGMENT_BYTES || f.fragment_samples >= MAX_FRAGMENT_SAMPLES
        }) {
            self.write_fragment(out);
        }
    }

    /// Before the first file: waits for a key frame (or a second of audio without video).
    fn before_open(
        &mut self,
        index: usize,
        sample: Held,
        wall_ms: u64,
        out: &mut Vec<RecordEvent>,
    ) {
        let track = &self.tracks[index];
        if self.opening.is_none()
            && track.kind == MediaKind::Video
            && sample.sync
            && track.record.is_some()
        {
            // The first key frame: the file starts here, once the other tracks had a moment
            // to announce themselves (Multitrack encoders send their sequence starts one by
            // one).
            self.opening = Some((index, sample.ms, wall_ms));
            self.pending.retain(|(_, s)| s.ms >= sample.ms);
        }
        if track.record.is_none() {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        let ms = sample.ms;
        self.pending.push((index, sample));
        if let Some((leader, at, wall)) = self.opening {
            if ms >= at + OPEN_AFTER_MS || self.pending.len() >= MAX_PENDING {
                self.opening = None;
                let pending = std::mem::take(&mut self.pending);
                if self.open(leader, at, wall, None, out) {
                    for (i, s) in pending.into_iter().filter(|(_, s)| s.ms >= at) {
                        self.sample(i, s, wall_ms, out);
                    }
                }
            }
            return;
        }
        let video_known = self
            .tracks
            .iter()
            .any(|t| t.kind == MediaKind::Video && t.record.is_some() && !t.unsupported);
        let first = self.pending.first().map_or(0, |(_, s)| s.ms);
        if !video_known && ms.saturating_sub(first) >= AUDIO_ONLY_AFTER_MS {
            let pending = std::mem::take(&mut self.pending);
            let leader = pending[0].0;
            let wall = wall_ms.saturating_sub(ms - first);
            if self.open(leader, first, wall, None, out) {
                for (i, s) in pending {
                    self.sample(i, s, wall_ms, out);
                }
            }
        } else if video_known {
            // Video is known but no key frame yet: only what follows one is kept.
            self.pending
                .retain(|(i, _)| self.tracks[*i].kind == MediaKind::Audio);
            let limit = ms.saturating_sub(AUDIO_ONLY_AFTER_MS);
            self.pending.retain(|(_, s)| s.ms >= limit);
        }
    }

    /// Closes the open file and opens the next at `sample` of track `index` (the leader).
    fn rotate(
        &mut self,
        index: usize,
        sample: Held,
        wall_ms: u64,
        why: Option<Rotation>,
        out: &mut Vec<RecordEvent>,
    ) {
        for i in 0..self.tracks.len() {
            if let Some(held) = self.tracks[i].held.take() {
                let duration = if i == index {
                    sample.ms.saturating_sub(held.ms).clamp(1, 10_000)
                } else {
                    self.tracks[i].last_duration_ms
                };
                self.commit(i, held, duration);
            }
        }
        self.write_fragment(out);
        let wall = self.file.as_ref().map_or(wall_ms, |f| {
            (sample.ms as i64 + f.wall_offset_ms).max(0) as u64
        });
        self.file = None;
        for track in &mut self.tracks {
            track.in_file = None;
        }
        // A video track that appeared in an audio-only file leads the next one.
        let leader = self.preferred_leader().unwrap_or(index);
        if self.open(leader, sample.ms, wall, why, out) {
            self.sample(index, sample, wall_ms, out);
        }
    }

    /// The first usable video track, else the first usable audio track.
    fn preferred_leader(&self) -> Option<usize> {
        let usable = |t: &&Track| t.record.is_some() && !t.unsupported;
        let first = |kind| {
            self.tracks
                .iter()
                .filter(usable)
                .filter(|t| t.kind == kind)
                .min_by_key(|t| t.track_id)
                .and_then(|t| self.tracks.iter().position(|u| std::ptr::eq(u, t)))
        };
        first(MediaKind::Video).or_else(|| first(MediaKind::Audio))
    }

    /// Opens a file whose first sample is at `start_ms`, led by track `leader`.
    fn open(
        &mut self,
        leader: usize,
        start_ms: u64,
        wall_ms: u64,
        rotated: Option<Rotation>,
        out: &mut Vec<RecordEvent>,
    ) -> bool {
        let mut configs = Vec::new();
        let details = self.table.tracks().to_vec();
        // Video first, by track id, the leader before the others of its kind.
        let mut order: Vec<usize> = (0..self.tracks.len()).collect();
        order.sort_by_key(|&i| {
            let t = &self.tracks[i];
            (t.kind == MediaKind::Audio, i != leader, t.track_id)
        });
        for i in order {
            let track = &mut self.tracks[i];
            let Some(record) = track.record.clone() else {
                continue;
            };
            if track.unsupported {
                continue;
            }
            let kind = match track.kind {
                MediaKind::Video => TrackKind::Video,
                _ => TrackKind::Audio,
            };
            let info = details
                .iter()
                .find(|d| d.kind == kind && d.track_id == track.track_id)
                .map(|d| d.details.clone())
                .unwrap_or_default();
            let (type_, timescale) = match track.kind {
                MediaKind::Video => (TrackType::Video, 90_000),
                // A rate the configuration cannot mean (0, absurd) falls back to 48 kHz;
                // Opus always runs at 48 kHz.
                _ => (
                    TrackType::Audio,
                    info.sample_rate
                        .filter(|r| (1_000..=768_000).contains(r) && track.codec != Codec::Opus)
                        .unwrap_or(48_000),
                ),
            };
            let size = |v: Option<u32>| v.and_then(|v| u16::try_from(v).ok()).unwrap_or(0);
            let config = TrackConfig {
                track_id: configs.len() as u32 + 1,
                kind: type_,
                codec: track.codec,
                timescale,
                width: size(info.width),
                height: size(info.height),
                sample_rate: info.sample_rate.unwrap_or(0),
                channels: info.channels.map_or(2, u16::from),
                config: record.clone(),
            };
            if let Err(err) = fmp4::init_segment(std::slice::from_ref(&config)) {
                track.unsupported = true;
                self.unsupported.push(format!(
                    "{}#{} {}: {err}",
                    kind_name(track.kind),
                    track.track_id,
                    track.codec
                ));
                continue;
            }
            track.in_file = Some(FileTrack {
                id: config.track_id,
                started: false,
                timescale,
                codec: track.codec,
                record,
            });
            track.held = None;
            track.run.clear();
            track.decode_ticks = 0;
            configs.push(config);
        }
        if self.tracks[leader].in_file.is_none() {
            return false;
        }
        let Ok(init) = fmp4::init_segment(&configs) else {
            return false;
        };
        let tracks = configs
            .iter()
            .map(|c| {
                format!(
                    "{} {}",
                    if c.kind == TrackType::Video {
                        "video"
                    } else {
                        "audio"
                    },
                    c.codec
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let bytes = init.len() as u64;
        self.file = Some(File {
            start_ms,
            wall_offset_ms: wall_ms as i64 - start_ms as i64,
            leader,
            bytes,
            fragment_start_ms: None,
            fragment_bytes: 0,
            fragment_samples: 0,
            fragment_sequence: 1,
            written_ms: 0,
            rotate: None,
        });
        out.push(RecordEvent::Open {
            init,
            start_wall_ms: wall_ms,
            rotated,
            tracks,
        });
        true
    }

    /// Puts one sample with a known duration into the fragment in progress.
    fn commit(&mut self, index: usize, sample: Held, duration_ms: u64) {
        let Some(file) = &mut self.file else { return };
        let track = &mut self.tracks[index];
        let Some(in_file) = &mut track.in_file else {
            return;
        };
        if sample.ms < file.start_ms || !in_file.started && !sample.sync {
            return;
        }
        in_file.started = true;
        let scale = u64::from(in_file.timescale);
        if track.run.is_empty() {
            // Decode times follow the samples' times, never going back.
            let at = (sample.ms - file.start_ms) * scale / 1000;
            track.decode_ticks = track.decode_ticks.max(at);
            track.run_start = track.decode_ticks;
        }
        let end = (sample.ms - file.start_ms + duration_ms) * scale / 1000;
        let ticks = end.saturating_sub(track.decode_ticks).max(1);
        track.decode_ticks += ticks;
        file.fragment_bytes += sample.data.len();
        file.fragment_samples += 1;
        if file.fragment_start_ms.is_none() && index == file.leader {
            file.fragment_start_ms = Some(sample.ms);
        }
        track.run.push(Sample {
            data: sample.data,
            duration: u32::try_from(ticks).unwrap_or(u32::MAX),
            composition_offset: (i64::from(sample.composition_ms) * scale as i64 / 1000) as i32,
            sync: sample.sync,
        });
    }

    /// After the leader committed a sample: ends the fragment before `next` when it is due.
    fn maybe_cut(&mut self, next: &Held, out: &mut Vec<RecordEvent>) {
        let Some(file) = &mut self.file else { return };
        let Some(start) = file.fragment_start_ms else {
            return;
        };
        let length = next.ms.saturating_sub(start);
        let video = self.tracks[file.leader].kind == MediaKind::Video;
        let at_key = !video || next.sync;
        let fragment_ms = self.config.fragment_ms;
        let due = length >= fragment_ms
            || at_key && length >= fragment_ms.min(1_000)
            || file.fragment_bytes >= MAX_FRAGMENT_BYTES
            || file.fragment_samples >= MAX_FRAGMENT_SAMPLES;
        if due {
            self.write_fragment(out);
            let config = self.config;
            if let Some(file) = &mut self.file {
                if file.rotate.is_none() {
                    if config.max_file_ms > 0 && file.written_ms >= config.max_file_ms {
                        file.rotate = Some(Rotation::Duration);
                    } else if config.max_file_bytes > 0 && file.bytes >= config.max_file_bytes {
                        file.rotate = Some(Rotation::Size);
                    }
                }
            }
        }
    }

    /// Writes the fragment in progress (if it has samples).
    fn write_fragment(&mut self, out: &mut Vec<RecordEvent>) {
        let Some(file) = &mut self.file else { return };
        let mut runs = Vec::new();
        let mut leader_ticks = None;
        let mut end_ms = file.written_ms;
        for (i, track) in self.tracks.iter().enumerate() {
            let (Some(in_file), false) = (&track.in_file, track.run.is_empty()) else {
                continue;
            };
            if i == file.leader {
                leader_ticks = Some((in_file.id, track.run_start, in_file.timescale));
                end_ms = track.decode_ticks * 1000 / u64::from(in_file.timescale);
            }
            runs.push(TrackRun {
                track_id: in_file.id,
                base_decode_time: track.run_start,
                samples: &track.run,
            });
        }
        if runs.is_empty() {
            return;
        }
        let mut chunks =
            Vec::with_capacity(3 + runs.iter().map(|r| r.samples.len()).sum::<usize>());
        if let Some((id, ticks, scale)) = leader_ticks {
            let media_ms = ticks * 1000 / u64::from(scale);
            let wall = (file.start_ms as i64 + media_ms as i64 + file.wall_offset_ms).max(0) as u64;
            chunks.push(prft(id, wall, ticks));
        }
        chunks.extend(fmp4::media_segment(file.fragment_sequence, &runs));
        drop(runs);
        file.fragment_sequence = file.fragment_sequence.wrapping_add(1);
        file.bytes += chunks.iter().map(|c| c.len() as u64).sum::<u64>();
        file.fragment_start_ms = None;
        file.fragment_bytes = 0;
        file.fragment_samples = 0;
        file.written_ms = file.written_ms.max(end_ms);
        let file_ms = file.written_ms;
        for track in &mut self.tracks {
            track.run.clear();
        }
        out.push(RecordEvent::Fragment { chunks, file_ms });
    }

    /// Extends a 32-bit ms timestamp to 64 bits.
    fn unwrap(&mut self, timestamp: u32) -> u64 {
        let value = match self.clock {
            None => u64::from(timestamp) + (1 << 32),
            Some((last, value)) => {
                let step = timestamp.wrapping_sub(last) as i32;
                value.saturating_add_signed(i64::from(step))
            }
        };
        self.clock = Some((timestamp, value));
        value
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Data => "data",
    }
}

/// Seconds from 1900 (NTP's epoch) to 1970.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A `prft` box (ISO/IEC 14496-12 8.16.5, version 1): `wall_ms` is the wall clock at
/// `media_ticks` of track `track_id`.
pub fn prft(track_id: u32, wall_ms: u64, media_ticks: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(32);
    b.put_u32(32);
    b.put_slice(b"prft");
    b.put_u32(0x0100_0000); // version 1, flags 0
    b.put_u32(track_id);
    let secs = wall_ms / 1000 + NTP_UNIX_OFFSET;
    let fraction = ((wall_ms % 1000) << 32) / 1000;
    b.put_u64(secs << 32 | fraction);
    b.put_u64(media_ticks);
    b.freeze()
}

/// The Unix ms of an NTP timestamp.
pub fn ntp_to_unix_ms(ntp: u64) -> u64 {
    let secs = (ntp >> 32).saturating_sub(NTP_UNIX_OFFSET);
    let fraction = ((ntp & 0xffff_ffff) * 1000 + (1 << 31)) >> 32;
    secs.saturating_mul(1000).saturating_add(fraction)
}

#[cfg(test)]
mod tests;
