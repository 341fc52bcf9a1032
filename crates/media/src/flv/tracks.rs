//! Every track of an audio or video message: the E-RTMP Multitrack reader.
//!
//! [`VideoTagHeader`](super::VideoTagHeader) and [`AudioTagHeader`](super::AudioTagHeader) read
//! a message's header up to its first track. [`Tracks`] reads all of them: a legacy or plain
//! enhanced message is one track (track 0), a Multitrack message is one track (OneTrack) or
//! several (ManyTracks, ManyTracksManyCodecs), each with its own id, FourCC and body. The whole
//! message is consumed; a `sizeOfTrack` that runs past the end is an error, never a panic.

use super::{Codec, FlvError, Reader};

/// Audio or video, for [`Tracks::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackKind {
    /// An audio message (type 8).
    Audio,
    /// A video message (type 9).
    Video,
}

/// The packet type of one track, in E-RTMP numbering (legacy AVC/AAC packets are mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackPacketType {
    /// Codec configuration record (0).
    SequenceStart,
    /// Coded frames (1); for AVC/HEVC/VVC the body starts with the SI24 composition time.
    CodedFrames,
    /// End of sequence (2).
    SequenceEnd,
    /// Coded frames without the composition time, implied 0 (video 3).
    CodedFramesX,
    /// AMF metadata such as `colorInfo` (video 4).
    Metadata,
    /// AV1 `AV1VideoDescriptor` (video 5).
    Mpeg2TsSequenceStart,
    /// Audio multichannel configuration (audio 4).
    MultichannelConfig,
    /// Legacy codecs without packet types (MP3, Speex, H.263, ...): the body is all payload.
    Raw,
}

impl TrackPacketType {
    fn from_enhanced(kind: TrackKind, value: u8) -> Result<Self, FlvError> {
        Ok(match (kind, value) {
            (_, 0) => Self::SequenceStart,
            (_, 1) => Self::CodedFrames,
            (_, 2) => Self::SequenceEnd,
            (TrackKind::Video, 3) => Self::CodedFramesX,
            (TrackKind::Video, 4) => Self::Metadata,
            (TrackKind::Video, 5) => Self::Mpeg2TsSequenceStart,
            (TrackKind::Audio, 4) => Self::MultichannelConfig,
            (_, other) => return Err(FlvError::UnknownPacketType(other)),
        })
    }

    /// The E-RTMP packet type number, for writing an enhanced header (`Raw` has none).
    pub fn enhanced_value(self) -> Option<u8> {
        Some(match self {
            Self::SequenceStart => 0,
            Self::CodedFrames => 1,
            Self::SequenceEnd => 2,
            Self::CodedFramesX => 3,
            Self::Metadata | Self::MultichannelConfig => 4,
            Self::Mpeg2TsSequenceStart => 5,
            Self::Raw => return None,
        })
    }
}

/// One track's packet inside a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackPacket<'a> {
    /// The track id (0 is the default track; legacy and plain enhanced messages are track 0).
    pub track_id: u8,
    /// The codec.
    pub codec: Codec,
    /// What the body holds.
    pub packet_type: TrackPacketType,
    /// The track's body: a configuration record, or coded data (after the SI24 composition
    /// time for AVC/HEVC/VVC `CodedFrames`, which is the first 3 bytes of the body).
    pub body: &'a [u8],
}

impl TrackPacket<'_> {
    /// The coded sample of a coded-frames packet whose body is `body` (this packet's body as
    /// shared bytes): its composition time in ms (the SI24 before AVC/HEVC/VVC
    /// `CodedFrames` data, else 0) and its data. `None` for other packets, a body too short
    /// for its composition time, or no data.
    pub fn coded_sample(&self, body: bytes::Bytes) -> Option<(i32, bytes::Bytes)> {
        let (composition_ms, data) = match self.packet_type {
            TrackPacketType::CodedFrames if self.codec.has_composition_time() => {
                let ct = body.get(..3)?;
                let ct = i32::from_be_bytes([0, ct[0], ct[1], ct[2]]) << 8 >> 8;
                (ct, body.slice(3..))
            }
            TrackPacketType::CodedFrames | TrackPacketType::CodedFramesX | TrackPacketType::Raw => {
                (0, body)
            }
            _ => return None,
        };
        (!data.is_empty()).then_some((composition_ms, data))
    }
}

/// The iterator over a message's tracks; see the module docs.
#[derive(Debug, Clone)]
pub struct Tracks<'a> {
    kind: TrackKind,
    reader: Reader<'a>,
    /// The video frame type (bits 4..6 of the first byte); 0 for audio.
    frame_type: u8,
    packet_type: TrackPacketType,
    /// Multitrack type (0 OneTrack, 1 ManyTracks, 2 ManyTracksManyCodecs), if multitrack.
    multitrack: Option<u8>,
    /// The FourCC shared by all tracks (not for ManyTracksManyCodecs).
    shared_fourcc: u32,
    /// A legacy or plain enhanced message: its one track, not yet returned.
    single: Option<TrackPacket<'a>>,
    done: bool,
}

const VIDEO_MULTITRACK: u8 = 6;
const AUDIO_MULTITRACK: u8 = 5;
const SOUND_FORMAT_EX_HEADER: u8 = 9;

impl<'a> Tracks<'a> {
    /// Reads the header of an audio or video message. Video command frames and empty
    /// payloads have no tracks (an error here).
    pub fn parse(kind: TrackKind, payload: &'a [u8]) -> Result<Tracks<'a>, FlvError> {
        let mut r = Reader::new(payload);
        let b0 = r.u8().map_err(|_| FlvError::Empty)?;
        let enhanced = match kind {
            TrackKind::Video => b0 & 0x80 != 0,
            TrackKind::Audio => b0 >> 4 == SOUND_FORMAT_EX_HEADER,
        };
        let frame_type = match kind {
            TrackKind::Video => (b0 >> 4) & 0x07,
            TrackKind::Audio => 0,
        };
        let mut tracks = Tracks {
            kind,
            reader: r.clone(),
            frame_type,
            packet_type: TrackPacketType::Raw,
            multitrack: None,
            shared_fourcc: 0,
            single: None,
            done: false,
        };
        if !enhanced {
            tracks.single = Some(legacy_track(kind, b0, &mut r)?);
            return Ok(tracks);
        }
        let (packet_type, _nano) = r.mod_ex(b0 & 0x0f)?;
        if kind == TrackKind::Video && frame_type == 5 && packet_type != 4 {
            // A command frame: no FourCC, no body.
            return Err(FlvError::UnknownPacketType(packet_type));
        }
        let multitrack_packet = match kind {
            TrackKind::Video => VIDEO_MULTITRACK,
            TrackKind::Audio => AUDIO_MULTITRACK,
        };
        if packet_type == multitrack_packet {
            let b = r.u8()?;
            let multitrack_type = b >> 4;
            if multitrack_type > 2 {
                return Err(FlvError::UnknownMultitrackType(multitrack_type));
            }
            if b & 0x0f == multitrack_packet {
                return Err(FlvError::NestedMultitrack);
            }
            tracks.packet_type = TrackPacketType::from_enhanced(kind, b & 0x0f)?;
            tracks.multitrack = Some(multitrack_type);
            if multitrack_type != 2 {
                tracks.shared_fourcc = r.u32()?;
            }
            tracks.reader = r;
        } else {
            tracks.packet_type = TrackPacketType::from_enhanced(kind, packet_type)?;
            let fourcc = r.u32()?;
            let rest = r.take(r.body.len() - r.pos)?;
            tracks.single = Some(TrackPacket {
                track_id: 0,
                codec: Codec::from_fourcc(fourcc),
                packet_type: tracks.packet_type,
                body: rest,
            });
        }
        Ok(tracks)
    }

    /// Audio or video.
    pub fn kind(&self) -> TrackKind {
        self.kind
    }

    /// The video frame type bits (1 key frame, 2 inter frame, ...); 0 for audio.
    pub fn frame_type(&self) -> u8 {
        self.frame_type
    }

    /// The packet type every track of the message has.
    pub fn packet_type(&self) -> TrackPacketType {
        self.packet_type
    }

    /// Whether the message is an E-RTMP Multitrack message.
    pub fn is_multitrack(&self) -> bool {
        self.multitrack.is_some()
    }

    fn next_track(&mut self) -> Result<Option<TrackPacket<'a>>, FlvError> {
        let Some(multitrack_type) = self.multitrack else {
            return Ok(self.single.take());
        };
        let r = &mut self.reader;
        if r.pos >= r.body.len() {
            return Ok(None);
        }
        let fourcc = if multitrack_type == 2 {
            r.u32()?
        } else {
            self.shared_fourcc
        };
        let track_id = r.u8()?;
        let size = if multitrack_type == 0 {
            r.body.len() - r.pos
        } else {
            r.u24()? as usize
        };
        let body = r.take(size)?;
        if multitrack_type == 0 {
            // OneTrack: the rest of the message is the track; nothing may follow.
            r.pos = r.body.len();
        }
        Ok(Some(TrackPacket {
            track_id,
            codec: Codec::from_fourcc(fourcc),
            packet_type: self.packet_type,
            body,
        }))
    }
}

impl<'a> Iterator for Tracks<'a> {
    type Item = Result<TrackPacket<'a>, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_track() {
            Ok(Some(track)) => Some(Ok(track)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The one track of a legacy message.
fn legacy_track<'a>(
    kind: TrackKind,
    b0: u8,
    r: &mut Reader<'a>,
) -> Result<TrackPacket<'a>, FlvError> {
    let (codec, packet_type) = match kind {
        TrackKind::Video => {
            if (b0 >> 4) & 0x07 == 5 {
                return Err(FlvError::UnknownPacketType(r.u8()?));
            }
            match b0 & 0x0f {
                id @ (7 | 12) => {
                    let codec = if id == 7 { Codec::Avc } else { Codec::Hevc };
                    let packet_type = match r.u8()? {
                        0 => TrackPacketType::SequenceStart,
                        1 => TrackPacketType::CodedFrames,
                        2 => TrackPacketType::SequenceEnd,
                        other => return Err(FlvError::UnknownPacketType(other)),
                    };
                    if packet_type != TrackPacketType::CodedFrames {
                        // The composition time of a sequence start or end means nothing and
                        // is not part of the record (a bare `17 02` has none).
                        let _ = r.take(3.min(r.body.len() - r.pos))?;
                    }
                    (codec, packet_type)
                }
                other => (Codec::OtherVideo(other), TrackPacketType::Raw),
            }
        }
        TrackKind::Audio => match b0 >> 4 {
            10 => {
                let packet_type = match r.u8()? {
                    0 => TrackPacketType::SequenceStart,
                    1 => TrackPacketType::CodedFrames,
                    other => return Err(FlvError::UnknownPacketType(other)),
                };
                (Codec::Aac, packet_type)
            }
            2 | 14 => (Codec::Mp3, TrackPacketType::Raw),
            other => (Codec::OtherAudio(other), TrackPacketType::Raw),
        },
    };
    let body = r.take(r.body.len() - r.pos)?;
    Ok(TrackPacket {
        track_id: 0,
        codec,
        packet_type,
        body,
    })
}

#[cfg(test)]
mod tests;
