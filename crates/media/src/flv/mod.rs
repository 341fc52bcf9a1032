//! FLV and Enhanced FLV (E-RTMP) audio and video tag headers.
//!
//! The first byte(s) of every RTMP audio (type 8) and video (type 9) message, and of every FLV
//! audio/video tag body, describe the codec and the packet inside. Parsing reads only the header;
//! the codec payload after `header_len` is left to the codec parsers.

use std::fmt;

use thiserror::Error;

mod audio;
mod single_track;
mod tracks;
mod video;

pub use audio::{AudioPacket, AudioTagHeader};
pub use single_track::{single_track, track_form, SingleTrack, Withheld};
pub use tracks::{TrackKind, TrackPacket, TrackPacketType, Tracks};
pub use video::{VideoFrameType, VideoPacket, VideoTagHeader};

/// A failure to parse an FLV audio or video tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FlvError {
    /// The tag body has no bytes at all.
    #[error("empty tag body")]
    Empty,
    /// The tag body ends inside the header.
    #[error("truncated tag header")]
    Truncated,
    /// An enhanced or legacy packet type this parser does not know (critical signalling).
    #[error("unknown packet type {0}")]
    UnknownPacketType(u8),
    /// An unknown Multitrack type (AvMultitrackType above 2).
    #[error("unknown multitrack type {0}")]
    UnknownMultitrackType(u8),
    /// A Multitrack packet that announces another Multitrack packet.
    #[error("nested multitrack packet")]
    NestedMultitrack,
}

/// A media codec, as signalled by a legacy FLV codec id or an E-RTMP FourCC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 / AVC (legacy CodecID 7 or FourCC `avc1`).
    Avc,
    /// H.265 / HEVC (FourCC `hvc1`, or the non-standard legacy CodecID 12).
    Hevc,
    /// AV1 (FourCC `av01`).
    Av1,
    /// VP9 (FourCC `vp09`).
    Vp9,
    /// VP8 (FourCC `vp08`).
    Vp8,
    /// H.266 / VVC (FourCC `vvc1`).
    Vvc,
    /// AAC (legacy SoundFormat 10 or FourCC `mp4a`).
    Aac,
    /// MP3 (legacy SoundFormat 2 or 14, or FourCC `.mp3`).
    Mp3,
    /// Opus (FourCC `Opus`).
    Opus,
    /// FLAC (FourCC `fLaC`).
    Flac,
    /// AC-3 (FourCC `ac-3`).
    Ac3,
    /// E-AC-3 (FourCC `ec-3`).
    Eac3,
    /// Another legacy video codec, by FLV CodecID (2 H.263, 3 Screen, 4 VP6, ...).
    OtherVideo(u8),
    /// Another legacy audio codec, by FLV SoundFormat (0 LPCM, 1 ADPCM, 11 Speex, ...).
    OtherAudio(u8),
    /// An E-RTMP FourCC this crate does not know.
    UnknownFourCc(u32),
}

/// FourCC `avc1`.
pub const FOURCC_AVC: u32 = 0x6176_6331;
/// FourCC `hvc1`.
pub const FOURCC_HEVC: u32 = 0x6876_6331;
/// FourCC `av01`.
pub const FOURCC_AV1: u32 = 0x6176_3031;
/// FourCC `vp09`.
pub const FOURCC_VP9: u32 = 0x7670_3039;
/// FourCC `vp08`.
pub const FOURCC_VP8: u32 = 0x7670_3038;
/// FourCC `vvc1`.
pub const FOURCC_VVC: u32 = 0x7676_6331;
/// FourCC `mp4a`.
pub const FOURCC_AAC: u32 = 0x6d70_3461;
/// FourCC `.mp3`.
pub const FOURCC_MP3: u32 = 0x2e6d_7033;
/// FourCC `Opus`.
pub const FOURCC_OPUS: u32 = 0x4f70_7573;
/// FourCC `fLaC`.
pub const FOURCC_FLAC: u32 = 0x664c_6143;
/// FourCC `ac-3`.
pub const FOURCC_AC3: u32 = 0x6163_2d33;
/// FourCC `ec-3`.
pub const FOURCC_EAC3: u32 = 0x6563_2d33;

impl Codec {
    /// The codec named by an E-RTMP video or audio FourCC.
    pub fn from_fourcc(fourcc: u32) -> Codec {
        match fourcc {
            FOURCC_AVC => Codec::Avc,
            FOURCC_HEVC => Codec::Hevc,
            FOURCC_AV1 => Codec::Av1,
            FOURCC_VP9 => Codec::Vp9,
            FOURCC_VP8 => Codec::Vp8,
            FOURCC_VVC => Codec::Vvc,
            FOURCC_AAC => Codec::Aac,
            FOURCC_MP3 => Codec::Mp3,
            FOURCC_OPUS => Codec::Opus,
            FOURCC_FLAC => Codec::Flac,
            FOURCC_AC3 => Codec::Ac3,
            FOURCC_EAC3 => Codec::Eac3,
            other => Codec::UnknownFourCc(other),
        }
    }

    /// The E-RTMP FourCC of this codec, if it has one.
    pub fn fourcc(self) -> Option<u32> {
        Some(match self {
            Codec::Avc => FOURCC_AVC,
            Codec::Hevc => FOURCC_HEVC,
            Codec::Av1 => FOURCC_AV1,
            Codec::Vp9 => FOURCC_VP9,
            Codec::Vp8 => FOURCC_VP8,
            Codec::Vvc => FOURCC_VVC,
            Codec::Aac => FOURCC_AAC,
            Codec::Mp3 => FOURCC_MP3,
            Codec::Opus => FOURCC_OPUS,
            Codec::Flac => FOURCC_FLAC,
            Codec::Ac3 => FOURCC_AC3,
            Codec::Eac3 => FOURCC_EAC3,
            Codec::UnknownFourCc(fourcc) => fourcc,
            Codec::OtherVideo(_) | Codec::OtherAudio(_) => return None,
        })
    }

    /// Whether coded frames of this codec carry an SI24 composition time offset (AVC, HEVC, VVC).
    pub fn has_composition_time(self) -> bool {
        matches!(self, Codec::Avc | Codec::Hevc | Codec::Vvc)
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Avc => f.write_str("H.264"),
            Codec::Hevc => f.write_str("H.265"),
            Codec::Av1 => f.write_str("AV1"),
            Codec::Vp9 => f.write_str("VP9"),
            Codec::Vp8 => f.write_str("VP8"),
            Codec::Vvc => f.write_str("H.266"),
            Codec::Aac => f.write_str("AAC"),
            Codec::Mp3 => f.write_str("MP3"),
            Codec::Opus => f.write_str("Opus"),
            Codec::Flac => f.write_str("FLAC"),
            Codec::Ac3 => f.write_str("AC-3"),
            Codec::Eac3 => f.write_str("E-AC-3"),
            Codec::OtherVideo(id) => write!(f, "video codec {id}"),
            Codec::OtherAudio(id) => write!(f, "audio format {id}"),
            Codec::UnknownFourCc(fourcc) => {
                let bytes = fourcc.to_be_bytes();
                if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                    bytes
                        .iter()
                        .try_for_each(|b| write!(f, "{}", char::from(*b)))
                } else {
                    write!(f, "fourcc 0x{fourcc:08x}")
                }
            }
        }
    }
}

/// Packet type value that announces a ModEx prefix (audio and video).
const PACKET_TYPE_MOD_EX: u8 = 7;
/// PacketModExType: TimestampOffsetNano.
const MOD_EX_TIMESTAMP_OFFSET_NANO: u8 = 0;

/// A bounds-checked big-endian reader over a tag body.
#[derive(Debug, Clone)]
struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(body: &'a [u8]) -> Self {
        Self { body, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], FlvError> {
        let end = self.pos.checked_add(n).ok_or(FlvError::Truncated)?;
        let bytes = self.body.get(self.pos..end).ok_or(FlvError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, FlvError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, FlvError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<u32, FlvError> {
        let b = self.take(3)?;
        Ok(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }

    fn si24(&mut self) -> Result<i32, FlvError> {
        let raw = self.u24()?;
        // Sign-extend from bit 23.
        Ok(((raw << 8) as i32) >> 8)
    }

    fn u32(&mut self) -> Result<u32, FlvError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads ModEx prefixes while `packet_type` is ModEx; returns the real packet type and the
    /// TimestampOffsetNano, if one was present.
    fn mod_ex(&mut self, mut packet_type: u8) -> Result<(u8, Option<u32>), FlvError> {
        let mut nano = None;
        while packet_type == PACKET_TYPE_MOD_EX {
            let mut size = usize::from(self.u8()?) + 1;
            if size == 256 {
                size = usize::from(self.u16()?) + 1;
            }
            let data = self.take(size)?;
            let next = self.u8()?;
            packet_type = next & 0x0f;
            if next >> 4 == MOD_EX_TIMESTAMP_OFFSET_NANO {
                if let [a, b, c, ..] = *data {
                    nano = Some(u32::from_be_bytes([0, a, b, c]));
                }
            }
        }
        Ok((packet_type, nano))
    }
}

/// Reads the Multitrack prefix up to the first track's body and returns the packet type of all
/// tracks, the first track's FourCC and the first track's id. `multitrack_packet_type` is the
/// packet type that announced Multitrack (6 for video, 5 for audio); it must not repeat.
fn multitrack(r: &mut Reader<'_>, multitrack_packet_type: u8) -> Result<(u8, u32, u8), FlvError> {
    let b = r.u8()?;
    let multitrack_type = b >> 4;
    let packet_type = b & 0x0f;
    if multitrack_type > 2 {
        return Err(FlvError::UnknownMultitrackType(multitrack_type));
    }
    if packet_type == multitrack_packet_type {
        return Err(FlvError::NestedMultitrack);
    }
    // OneTrack and ManyTracks carry one shared FourCC here; ManyTracksManyCodecs carries each
    // track's own FourCC before its id. Either way the first FourCC comes next.
    let fourcc = r.u32()?;
    let track_id = r.u8()?;
    if multitrack_type != 0 {
        // UI24 sizeOfTrack: the first track's size, not needed to read its header.
        r.u24()?;
    }
    Ok((packet_type, fourcc, track_id))
}
