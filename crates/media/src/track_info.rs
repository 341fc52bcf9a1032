//! What each track of a stream carries: codec, parsed configuration, counters.
//!
//! A [`TrackTable`] watches a publisher's frames and keeps one [`TrackInfo`] per
//! (kind, track id): the codec, what its configuration record or first frames say (profile,
//! level, resolution, bit depth; sample rate, channels) and frame counts, from which the
//! frame rate is measured. The outputs build renditions from it and the API reports it; its
//! `Display` is the publish log's description, e.g. `video#0 hvc1 Main L4.1 1920x1080 10-bit
//! 60fps`.

use std::fmt;

use crate::aac::AudioSpecificConfig;
use crate::audio_config::{self, AudioFormat};
use crate::av1::{self, Av1Config, Vp9Config};
use crate::avc::AvcDecoderConfig;
use crate::flv::{Codec, TrackKind, TrackPacket, TrackPacketType, Tracks};
use crate::frame::{Audience, Frame, MediaKind};
use crate::hevc::HevcConfig;

/// What a codec configuration (or a first frame) says; `None` where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodecDetails {
    /// Profile name (`High`, `Main 10`, `LC`, ...).
    pub profile: Option<String>,
    /// Level as written in the codec's spec (`4.1`).
    pub level: Option<String>,
    /// Picture width in pixels.
    pub width: Option<u32>,
    /// Picture height in pixels.
    pub height: Option<u32>,
    /// Bits per sample (video luma; FLAC).
    pub bit_depth: Option<u8>,
    /// Audio sample rate in Hz.
    pub sample_rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u8>,
}

/// One track of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// Audio or video.
    pub kind: TrackKind,
    /// Track id (0 is the default track).
    pub track_id: u8,
    /// The codec of its latest message.
    pub codec: Codec,
    /// What its configuration says.
    pub details: CodecDetails,
    /// Coded frames seen.
    pub frames: u64,
    /// Coded key frames seen (video).
    pub keyframes: u64,
    /// Bytes of its bodies seen.
    pub bytes: u64,
    /// Sequence headers seen (a change mid-stream shows here).
    pub sequence_headers: u64,
    first_timestamp: Option<u32>,
    last_timestamp: u32,
}

impl TrackInfo {
    /// A track with nothing counted yet.
    pub fn new(kind: TrackKind, track_id: u8, codec: Codec) -> TrackInfo {
        TrackInfo {
            kind,
            track_id,
            codec,
            details: CodecDetails::default(),
            frames: 0,
            keyframes: 0,
            bytes: 0,
            sequence_headers: 0,
            first_timestamp: None,
            last_timestamp: 0,
        }
    }

    /// Frames per second measured over the frames seen (after at least half a second).
    pub fn frame_rate(&self) -> Option<f64> {
        let first = self.first_timestamp?;
        let span = self.last_timestamp.wrapping_sub(first);
        (self.kind == TrackKind::Video && span >= 500 && self.frames > 1)
            .then(|| (self.frames - 1) as f64 * 1000.0 / f64::from(span))
    }

    fn observe(&mut self, track: &TrackPacket<'_>, timestamp: u32, keyframe: bool) {
        self.codec = track.codec;
        self.bytes += track.body.len() as u64;
        match track.packet_type {
            TrackPacketType::SequenceStart => {
                self.sequence_headers += 1;
                if let Some(details) = describe(track.codec, track.body) {
                    self.details = details;
                }
            }
            TrackPacketType::CodedFrames | TrackPacketType::CodedFramesX | TrackPacketType::Raw => {
                self.frames += 1;
                if keyframe {
                    self.keyframes += 1;
                }
                if self.first_timestamp.is_none() {
                    self.first_timestamp = Some(timestamp);
                }
                self.last_timestamp = timestamp;
                self.details_from_frame(track, keyframe);
            }
            _ => {}
        }
    }

    /// Codecs whose frames say what no configuration record does.
    fn details_from_frame(&mut self, track: &TrackPacket<'_>, keyframe: bool) {
        let details = &mut self.details;
        match track.codec {
            Codec::Vp9 if keyframe && details.width.is_none() => {
                if let Some((w, h)) = av1::vp9_keyframe_size(track.body) {
                    details.width = Some(w);
                    details.height = Some(h);
                }
            }
            Codec::Ac3 | Codec::Eac3 | Codec::Mp3 if details.sample_rate.is_none() => {
                let format = match track.codec {
                    Codec::Mp3 => audio_config::mp3_frame(track.body),
                    _ => audio_config::ac3_frame(track.body),
                };
                if let Some(format) = format {
                    set_audio(details, format);
                }
            }
            _ => {}
        }
    }
}

fn set_audio(details: &mut CodecDetails, format: AudioFormat) {
    details.sample_rate = Some(format.sample_rate);
    details.channels = Some(format.channels);
    details.bit_depth = format.bits_per_sample;
}

/// What a sequence header body says, by codec.
fn describe(codec: Codec, body: &[u8]) -> Option<CodecDetails> {
    let mut details = CodecDetails::default();
    match codec {
        Codec::Avc => {
            let sps = AvcDecoderConfig::parse(body).ok()?.first_sps().ok()?;
            details.profile = Some(sps.profile_name().to_owned());
            details.level = Some(format!("{}.{}", sps.level_idc / 10, sps.level_idc % 10));
            details.width = Some(sps.width);
            details.height = Some(sps.height);
            details.bit_depth = u8::try_from(sps.bit_depth).ok();
        }
        Codec::Hevc => {
            let config = HevcConfig::parse(body).ok()?;
            details.profile = Some(config.profile_name().to_owned());
            details.level = Some(config.level());
            details.width = config.width;
            details.height = config.height;
            details.bit_depth = Some(config.bit_depth);
        }
        Codec::Av1 => {
            let config = Av1Config::parse(body).ok()?;
            details.profile = Some(config.profile_name().to_owned());
            details.level = config.level();
            details.width = config.width;
            details.height = config.height;
            details.bit_depth = Some(config.bit_depth);
        }
        Codec::Vp9 => {
            let config = Vp9Config::parse(body).ok()?;
            details.profile = Some(format!("Profile {}", config.profile));
            details.level =
                (config.level > 0).then(|| format!("{}.{}", config.level / 10, config.level % 10));
            details.bit_depth = Some(config.bit_depth);
        }
        Codec::Aac => {
            let config = AudioSpecificConfig::parse(body).ok()?;
            details.profile = Some(
                match config.object_type {
                    2 => "LC",
                    5 => "HE-AAC",
                    29 => "HE-AACv2",
                    1 => "Main",
                    _ => "AAC",
                }
                .to_owned(),
            );
            details.sample_rate = Some(config.extension_sample_rate.unwrap_or(config.sample_rate));
            details.channels = (config.channels > 0).then_some(config.channels);
        }
        Codec::Opus => set_audio(&mut details, audio_config::opus_head(body)?),
        Codec::Flac => set_audio(&mut details, audio_config::flac_stream_info(body)?),
        _ => return None,
    }
    Some(details)
}

impl fmt::Display for TrackInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            TrackKind::Video => "video",
            TrackKind::Audio => "audio",
        };
        write!(f, "{kind}#{} ", self.track_id)?;
        match self.codec.fourcc() {
            Some(fourcc) if fourcc != 0 => {
                for b in fourcc.to_be_bytes() {
                    write!(f, "{}", char::from(b))?;
                }
            }
            _ => write!(f, "{}", self.codec)?,
        }
        let d = &self.details;
        if let Some(profile) = &d.profile {
            write!(f, " {profile}")?;
        }
        if let Some(level) = &d.level {
            write!(f, " L{level}")?;
        }
        if let (Some(w), Some(h)) = (d.width, d.height) {
            write!(f, " {w}x{h}")?;
        }
        if self.kind == TrackKind::Video {
            if let Some(depth) = d.bit_depth {
                write!(f, " {depth}-bit")?;
            }
            if let Some(fps) = self.frame_rate() {
                let rounded = (fps * 100.0).round() / 100.0;
                write!(f, " {rounded}fps")?;
            }
        }
        if let Some(rate) = d.sample_rate {
            let khz = f64::from(rate) / 1000.0;
            write!(f, " {khz} kHz")?;
        }
        match d.channels {
            Some(1) => write!(f, " mono")?,
            Some(2) => write!(f, " stereo")?,
            Some(n) => write!(f, " {n} channels")?,
            None => {}
        }
        Ok(())
    }
}

/// Most tracks a table keeps (of both kinds); messages for more are counted nowhere.
pub const MAX_TRACKS: usize = 64;

/// The tracks of one publication; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct TrackTable {
    tracks: Vec<TrackInfo>,
}

impl TrackTable {
    /// An empty table.
    pub fn new() -> TrackTable {
        TrackTable::default()
    }

    /// Takes a frame the publisher sent (its single-track copies are skipped: the original
    /// already counted). Unparseable messages are left alone.
    pub fn observe(&mut self, frame: &Frame) {
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
        let keyframe = kind == TrackKind::Video && matches!(tracks.frame_type(), 1 | 4);
        for track in tracks.flatten() {
            let slot = self
                .tracks
                .iter()
                .position(|t| t.kind == kind && t.track_id == track.track_id);
            let index = match slot {
                Some(i) => i,
                None if self.tracks.len() < MAX_TRACKS => {
                    self.tracks
                        .push(TrackInfo::new(kind, track.track_id, track.codec));
                    self.tracks
                        .sort_by_key(|t| (t.kind == TrackKind::Audio, t.track_id));
                    self.tracks
                        .iter()
                        .position(|t| t.kind == kind && t.track_id == track.track_id)
                        .unwrap_or_default()
                }
                None => continue,
            };
            self.tracks[index].observe(&track, frame.timestamp, keyframe);
        }
    }

    /// Every track, video first, by id.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// One line describing every track: `video#0 avc1 High L3.1 1280x720 8-bit 30fps,
    /// audio#0 mp4a LC 48 kHz stereo`.
    pub fn describe(&self) -> String {
        self.tracks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Forgets everything (a new publisher).
    pub fn clear(&mut self) {
        self.tracks.clear();
    }
}

#[cfg(test)]
mod tests;
