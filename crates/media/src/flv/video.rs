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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::hex;

    fn parse(s: &str) -> VideoTagHeader {
        VideoTagHeader::parse(&hex(s)).unwrap()
    }

    #[test]
    fn legacy_avc_sequence_header() {
        let h = parse("17 00 000000 01 64 00 1f ff e1");
        assert_eq!(h.frame_type, VideoFrameType::KeyFrame);
        assert_eq!(h.codec, Codec::Avc);
        assert_eq!(h.packet, VideoPacket::SequenceStart);
        assert_eq!(h.header_len, 5);
        assert!(!h.enhanced && !h.is_keyframe());
    }

    #[test]
    fn legacy_avc_nalu_positive_and_negative_cts() {
        let h = parse("17 01 000042 00000002 0910");
        assert_eq!(h.packet, VideoPacket::CodedFrames);
        assert_eq!(h.composition_time, 0x42);
        assert!(h.is_keyframe());
        let h = parse("27 01 ffffdf 00000002 0910");
        assert_eq!(h.frame_type, VideoFrameType::InterFrame);
        assert_eq!(h.composition_time, -33);
        assert!(!h.is_keyframe());
        assert_eq!(parse("27 01 800000").composition_time, -(1 << 23));
    }

    #[test]
    fn legacy_avc_sequence_end_with_and_without_cts() {
        assert_eq!(parse("17 02 000000").packet, VideoPacket::SequenceEnd);
        let h = parse("17 02");
        assert_eq!((h.packet, h.header_len), (VideoPacket::SequenceEnd, 2));
    }

    #[test]
    fn legacy_hevc_codec_id_12() {
        let h = parse("1c 01 000010");
        assert_eq!(
            (h.codec, h.packet, h.composition_time),
            (Codec::Hevc, VideoPacket::CodedFrames, 16)
        );
    }

    #[test]
    fn legacy_other_codecs_pass_through() {
        let h = parse("12 aabb");
        assert_eq!(h.codec, Codec::OtherVideo(2));
        assert_eq!((h.packet, h.header_len), (VideoPacket::CodedFrames, 1));
        assert!(h.is_keyframe());
        let h = parse("24 00");
        assert_eq!(h.codec, Codec::OtherVideo(4));
        assert_eq!(h.frame_type, VideoFrameType::InterFrame);
    }

    #[test]
    fn legacy_command_frame() {
        let h = parse("57 01");
        assert_eq!(h.packet, VideoPacket::Command(1));
        assert_eq!(h.header_len, 2);
    }

    #[test]
    fn legacy_unknown_avc_packet_type() {
        assert_eq!(
            VideoTagHeader::parse(&hex("17 05 000000")),
            Err(FlvError::UnknownPacketType(5))
        );
    }

    #[test]
    fn enhanced_hevc_sequence_start_and_frames() {
        let h = parse("90 68766331 01");
        assert!(h.enhanced);
        assert_eq!(
            (h.codec, h.packet, h.header_len),
            (Codec::Hevc, VideoPacket::SequenceStart, 5)
        );
        let h = parse("91 68766331 000021 00000001 26");
        assert_eq!(
            (h.packet, h.composition_time, h.header_len),
            (VideoPacket::CodedFrames, 33, 8)
        );
        assert!(h.is_keyframe());
        let h = parse("92 68766331");
        assert_eq!(h.packet, VideoPacket::SequenceEnd);
    }

    #[test]
    fn enhanced_coded_frames_x_implies_zero_cts() {
        let h = parse("93 68766331 00000001 26");
        assert_eq!(
            (h.packet, h.composition_time, h.header_len),
            (VideoPacket::CodedFrames, 0, 5)
        );
        assert!(h.is_keyframe());
        let h = parse("a3 61766331 00000001 41");
        assert_eq!(
            (h.codec, h.frame_type),
            (Codec::Avc, VideoFrameType::InterFrame)
        );
        assert!(!h.is_keyframe());
    }

    #[test]
    fn enhanced_av1_has_no_cts() {
        let h = parse("90 61763031 81 00 0c 00");
        assert_eq!(
            (h.codec, h.packet, h.header_len),
            (Codec::Av1, VideoPacket::SequenceStart, 5)
        );
        let h = parse("91 61763031 12 00 0a 0b");
        assert_eq!(
            (h.codec, h.composition_time, h.header_len),
            (Codec::Av1, 0, 5)
        );
        let h = parse("a1 76703039 aa");
        assert_eq!(h.codec, Codec::Vp9);
    }

    #[test]
    fn enhanced_metadata_ignores_frame_type() {
        let h = parse("84 68766331 02 0009 636f6c6f72496e666f");
        assert_eq!(
            (h.packet, h.frame_type),
            (VideoPacket::Metadata, VideoFrameType::Reserved(0))
        );
        // FrameType Command with Metadata is still Metadata, with a FourCC.
        let h = parse("d4 68766331");
        assert_eq!((h.packet, h.codec), (VideoPacket::Metadata, Codec::Hevc));
    }

    #[test]
    fn enhanced_command_frame_has_no_fourcc() {
        let h = parse("d1 00");
        assert_eq!((h.packet, h.header_len), (VideoPacket::Command(0), 2));
    }

    #[test]
    fn enhanced_multitrack_one_track() {
        // OBS track 1: Multitrack/OneTrack, CodedFrames, avc1, trackId 1, SI24 cts.
        let h = parse("96 01 61766331 01 000010 00000001 65");
        assert!(h.multitrack);
        assert_eq!(h.track_id, 1);
        assert_eq!(
            (h.codec, h.packet, h.composition_time),
            (Codec::Avc, VideoPacket::CodedFrames, 16)
        );
        assert_eq!(h.header_len, 10);
        assert!(h.is_keyframe());
    }

    #[test]
    fn enhanced_multitrack_many_tracks_and_many_codecs() {
        let h = parse("96 10 68766331 02 000004 01020304");
        assert_eq!(
            (h.track_id, h.codec, h.packet, h.header_len),
            (2, Codec::Hevc, VideoPacket::SequenceStart, 10)
        );
        let h = parse("a6 23 61763031 00 000002 aabb 76703039 01 000001 cc");
        assert_eq!(
            (h.track_id, h.codec, h.packet),
            (0, Codec::Av1, VideoPacket::CodedFrames)
        );
        assert_eq!(h.header_len, 10);
    }

    #[test]
    fn enhanced_multitrack_rejects_nesting_and_unknown_type() {
        assert_eq!(
            VideoTagHeader::parse(&hex("96 06 68766331 00")),
            Err(FlvError::NestedMultitrack)
        );
        assert_eq!(
            VideoTagHeader::parse(&hex("96 31 68766331 00")),
            Err(FlvError::UnknownMultitrackType(3))
        );
    }

    #[test]
    fn enhanced_mod_ex_timestamp_offset_nano() {
        // ModEx, size 3, nano 0x0f423f (999 999), then type 0 (TimestampOffsetNano) / CodedFrames.
        let h = parse("97 02 0f423f 01 68766331 000000 00000001 26");
        assert_eq!(h.timestamp_offset_nano, Some(999_999));
        assert_eq!(
            (h.packet, h.codec, h.header_len),
            (VideoPacket::CodedFrames, Codec::Hevc, 13)
        );
        // Two ModEx prefixes: an unknown type 1, then nano, then CodedFramesX.
        let h = parse("97 00 aa 17 02 000064 03 68766331");
        assert_eq!(h.timestamp_offset_nano, Some(100));
        assert_eq!(h.header_len, 13);
        // A 256-byte ModEx payload uses the UI16 size.
        let mut body = hex("97 ff 00ff");
        body.extend([0u8; 256]);
        body.extend(hex("03 68766331"));
        let h = VideoTagHeader::parse(&body).unwrap();
        assert_eq!(h.timestamp_offset_nano, Some(0));
        assert_eq!(h.header_len, body.len());
    }

    #[test]
    fn enhanced_unknown_packet_type_and_fourcc() {
        assert_eq!(
            VideoTagHeader::parse(&hex("98 68766331")),
            Err(FlvError::UnknownPacketType(8))
        );
        let h = parse("91 78797a31 00");
        assert_eq!(h.codec, Codec::UnknownFourCc(0x7879_7a31));
        assert_eq!(h.codec.to_string(), "xyz1");
        assert_eq!(h.header_len, 5);
    }

    #[test]
    fn empty_and_truncated_never_panic() {
        assert_eq!(VideoTagHeader::parse(&[]), Err(FlvError::Empty));
        for full in [
            "17 01 000042",
            "91 68766331 000021",
            "96 10 68766331 02 000004",
            "97 02 0f423f 01 68766331 000000",
            "97 ff 0001 0000 13 68766331",
            "d1 00",
        ] {
            let full = hex(full);
            for len in 1..full.len() {
                assert_eq!(
                    VideoTagHeader::parse(&full[..len]),
                    Err(FlvError::Truncated),
                    "{full:02x?} at {len}"
                );
            }
        }
    }
}
