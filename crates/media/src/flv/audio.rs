//! The FLV audio tag header, legacy and Enhanced RTMP (SoundFormat 9 "ExHeader").

use super::{multitrack, Codec, FlvError, Reader};

/// What an audio tag carries after its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket {
    /// Codec configuration (AAC AudioSpecificConfig, OpusHead, FLAC STREAMINFO): the sequence
    /// header.
    SequenceStart,
    /// Coded audio frames.
    CodedFrames,
    /// End of sequence.
    SequenceEnd,
    /// E-RTMP multichannel configuration (channel order and count).
    MultichannelConfig,
}

/// A parsed FLV audio tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTagHeader {
    /// The codec. For a Multitrack message, the first track's codec.
    pub codec: Codec,
    /// The packet inside the tag.
    pub packet: AudioPacket,
    /// Legacy SoundRate bits (0 5.5 kHz, 1 11 kHz, 2 22 kHz, 3 44 kHz); 0 when enhanced.
    pub sound_rate: u8,
    /// Legacy SoundSize bit (0 8-bit, 1 16-bit); 0 when enhanced.
    pub sound_size: u8,
    /// Legacy SoundType bit (0 mono, 1 stereo); 0 when enhanced.
    pub sound_type: u8,
    /// Whether the header is an E-RTMP extended header.
    pub enhanced: bool,
    /// Whether the tag is an E-RTMP Multitrack message.
    pub multitrack: bool,
    /// The first track's id in a Multitrack message; 0 (the default track) otherwise.
    pub track_id: u8,
    /// The E-RTMP TimestampOffsetNano (0..999 999 ns) from a ModEx prefix, if present.
    pub timestamp_offset_nano: Option<u32>,
    /// Bytes of header before the codec payload (for Multitrack: the first track's payload).
    pub header_len: usize,
}

/// Legacy SoundFormat that announces the E-RTMP extended header.
const SOUND_FORMAT_EX_HEADER: u8 = 9;
/// Enhanced AudioPacketType Multitrack.
const PACKET_MULTITRACK: u8 = 5;

impl AudioTagHeader {
    /// Parses the audio tag header at the start of `body`. A zero-length audio message (the
    /// legacy "silence" message) has no header and gives [`FlvError::Empty`].
    pub fn parse(body: &[u8]) -> Result<AudioTagHeader, FlvError> {
        let mut r = Reader::new(body);
        let b0 = r.u8().map_err(|_| FlvError::Empty)?;
        let format = b0 >> 4;
        let mut header = AudioTagHeader {
            codec: Codec::OtherAudio(format),
            packet: AudioPacket::CodedFrames,
            sound_rate: 0,
            sound_size: 0,
            sound_type: 0,
            enhanced: false,
            multitrack: false,
            track_id: 0,
            timestamp_offset_nano: None,
            header_len: 1,
        };
        if format == SOUND_FORMAT_EX_HEADER {
            header.enhanced = true;
            let (mut packet_type, nano) = r.mod_ex(b0 & 0x0f)?;
            header.timestamp_offset_nano = nano;
            let fourcc = if packet_type == PACKET_MULTITRACK {
                let (inner, fourcc, track_id) = multitrack(&mut r, PACKET_MULTITRACK)?;
                packet_type = inner;
                header.multitrack = true;
                header.track_id = track_id;
                fourcc
            } else {
                r.u32()?
            };
            header.codec = Codec::from_fourcc(fourcc);
            header.packet = match packet_type {
                0 => AudioPacket::SequenceStart,
                1 => AudioPacket::CodedFrames,
                2 => AudioPacket::SequenceEnd,
                4 => AudioPacket::MultichannelConfig,
                other => return Err(FlvError::UnknownPacketType(other)),
            };
        } else {
            header.sound_rate = (b0 >> 2) & 0x03;
            header.sound_size = (b0 >> 1) & 0x01;
            header.sound_type = b0 & 0x01;
            match format {
                10 => {
                    header.codec = Codec::Aac;
                    header.packet = match r.u8()? {
                        0 => AudioPacket::SequenceStart,
                        1 => AudioPacket::CodedFrames,
                        other => return Err(FlvError::UnknownPacketType(other)),
                    };
                }
                2 | 14 => header.codec = Codec::Mp3,
                _ => {}
            }
        }
        header.header_len = r.pos;
        Ok(header)
    }
}
