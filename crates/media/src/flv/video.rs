//! The FLV video tag header, legacy and Enhanced RTMP.

use super::{multitrack, Codec, FlvError, Reader};

/// The frame type of a video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoFrameType {
    /// A key frame (seekable frame).
    KeyFrame,
    /// An inter frame (non-seekable).
    InterFrame,
    /// A disposable inter frame (H.263 only).
    DisposableInterFrame,
    /// A generated key frame (server use only).
    GeneratedKeyFrame,
    /// A video info/command frame.
    Command,
    /// A reserved value (0, 6 or 7); OBS sends 0 on Metadata packets.
    Reserved(u8),
}

impl VideoFrameType {
    fn from_bits(bits: u8) -> Self {
        match bits {
            1 => VideoFrameType::KeyFrame,
            2 => VideoFrameType::InterFrame,
            3 => VideoFrameType::DisposableInterFrame,
            4 => VideoFrameType::GeneratedKeyFrame,
            5 => VideoFrameType::Command,
            other => VideoFrameType::Reserved(other),
        }
    }
}

/// What a video tag carries after its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacket {
    /// A codec configuration record (avcC, hvcC, av1C, vpcC, vvcC): the sequence header.
    SequenceStart,
    /// Coded frames. E-RTMP CodedFramesX is reported as this with a composition time of 0.
    CodedFrames,
    /// End of sequence; no body.
    SequenceEnd,
    /// E-RTMP AMF-encoded metadata such as `["colorInfo", {...}]`.
    Metadata,
    /// E-RTMP MPEG-2 TS sequence start (AV1 `AV1VideoDescriptor`).
    Mpeg2TsSequenceStart,
    /// A video command frame (0 StartSeek, 1 EndSeek); there is no body.
    Command(u8),
}

/// A parsed FLV video tag header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTagHeader {
    /// The frame type. Meaningless for Metadata packets.
    pub frame_type: VideoFrameType,
    /// The codec. For a Multitrack message, the first track's codec; for an enhanced command
    /// frame, which names no codec, `Codec::UnknownFourCc(0)`.
    pub codec: Codec,
    /// The packet inside the tag.
    pub packet: VideoPacket,
    /// Composition time offset in ms (PTS − DTS); 0 where the header carries none.
    pub composition_time: i32,
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

impl VideoTagHeader {
    /// Parses the video tag header at the start of `body`.
    pub fn parse(body: &[u8]) -> Result<VideoTagHeader, FlvError> {
        let mut r = Reader::new(body);
        let b0 = r.u8().map_err(|_| FlvError::Empty)?;
        if b0 & 0x80 != 0 {
            Self::parse_enhanced(b0, r)
        } else {
            Self::parse_legacy(b0, r)
        }
    }

    fn parse_legacy(b0: u8, mut r: Reader<'_>) -> Result<VideoTagHeader, FlvError> {
        let frame_type = VideoFrameType::from_bits(b0 >> 4);
        let codec = match b0 & 0x0f {
            7 => Codec::Avc,
            12 => Codec::Hevc,
            other => Codec::OtherVideo(other),
        };
        let mut header = VideoTagHeader {
            frame_type,
            codec,
            packet: VideoPacket::CodedFrames,
            composition_time: 0,
            enhanced: false,
            multitrack: false,
            track_id: 0,
            timestamp_offset_nano: None,
            header_len: 1,
        };
        if frame_type == VideoFrameType::Command {
            header.packet = VideoPacket::Command(r.u8()?);
        } else if codec.has_composition_time() {
            header.packet = match r.u8()? {
                0 => VideoPacket::SequenceStart,
                1 => VideoPacket::CodedFrames,
                2 => VideoPacket::SequenceEnd,
                other => return Err(FlvError::UnknownPacketType(other)),
            };
            match r.si24() {
                Ok(cts) => header.composition_time = cts,
                // Some encoders send a bare `17 02` end of sequence.
                Err(_) if header.packet == VideoPacket::SequenceEnd => {}
                Err(e) => return Err(e),
            }
        }
        header.header_len = r.pos;
        Ok(header)
    }

    fn parse_enhanced(b0: u8, mut r: Reader<'_>) -> Result<VideoTagHeader, FlvError> {
        let frame_type = VideoFrameType::from_bits((b0 >> 4) & 0x07);
        let (mut packet_type, timestamp_offset_nano) = r.mod_ex(b0 & 0x0f)?;
        let mut header = VideoTagHeader {
            frame_type,
            codec: Codec::UnknownFourCc(0),
            packet: VideoPacket::CodedFrames,
            composition_time: 0,
            enhanced: true,
            multitrack: false,
            track_id: 0,
            timestamp_offset_nano,
            header_len: 1,
        };
        if frame_type == VideoFrameType::Command && packet_type != PACKET_METADATA {
            header.packet = VideoPacket::Command(r.u8()?);
            header.header_len = r.pos;
            return Ok(header);
        }
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
            0 => VideoPacket::SequenceStart,
            1 | 3 => VideoPacket::CodedFrames,
            2 => VideoPacket::SequenceEnd,
            PACKET_METADATA => VideoPacket::Metadata,
            5 => VideoPacket::Mpeg2TsSequenceStart,
            other => return Err(FlvError::UnknownPacketType(other)),
        };
        if packet_type == 1 && header.codec.has_composition_time() {
            header.composition_time = r.si24()?;
        }
        header.header_len = r.pos;
        Ok(header)
    }

    /// Whether this tag is a key frame of coded video (not a sequence header or command).
    pub fn is_keyframe(&self) -> bool {
        self.packet == VideoPacket::CodedFrames
            && matches!(
                self.frame_type,
                VideoFrameType::KeyFrame | VideoFrameType::GeneratedKeyFrame
            )
    }
}

/// Enhanced VideoPacketType Metadata.
const PACKET_METADATA: u8 = 4;
/// Enhanced VideoPacketType Multitrack.
const PACKET_MULTITRACK: u8 = 6;
