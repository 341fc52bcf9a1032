//! A media frame: one RTMP audio, video or data message, parsed once at ingest and shared.

use bytes::Bytes;

use crate::flv::{AudioPacket, AudioTagHeader, Codec, VideoPacket, VideoTagHeader};

/// The kind of a media frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// An audio message (RTMP type 8, FLV tag type 8).
    Audio,
    /// A video message (RTMP type 9, FLV tag type 9).
    Video,
    /// A data message (RTMP type 18, FLV tag type 18), such as `onMetaData`.
    Data,
}

/// One audio, video or data message. Cloning shares the payload (a reference count, no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Audio, video or data.
    pub kind: MediaKind,
    /// RTMP timestamp (DTS) in ms; wraps at 2^32.
    pub timestamp: u32,
    /// The whole FLV tag body including the tag header byte(s). For data frames, the AMF0 body
    /// (`"onMetaData", {...}`) without `@setDataFrame`.
    pub payload: Bytes,
    /// What the header says, parsed once.
    pub info: FrameInfo,
}

/// What a frame's tag header says, parsed once when the frame is built.
///
/// An empty or unparseable payload gives the default: no codec, nothing set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameInfo {
    /// A video key frame carrying coded video (not a sequence header or command).
    pub is_keyframe: bool,
    /// A sequence header: codec configuration (avcC, hvcC, AudioSpecificConfig, OpusHead, ...).
    pub is_sequence_header: bool,
    /// An end-of-sequence packet.
    pub is_sequence_end: bool,
    /// Coded audio or video frames (what a GOP is made of).
    pub is_coded_frame: bool,
    /// Stream metadata: `onMetaData` for data frames, an E-RTMP Metadata packet (`colorInfo`)
    /// for video frames.
    pub is_metadata: bool,
    /// The codec, when the header names one.
    pub codec: Option<Codec>,
    /// Composition time offset in ms (PTS − DTS) for video; 0 otherwise.
    pub composition_time: i32,
    /// Whether the header is an E-RTMP extended header.
    pub enhanced: bool,
    /// Whether the frame is an E-RTMP Multitrack message.
    pub multitrack: bool,
    /// The (first) track id of a Multitrack message; 0, the default track, otherwise.
    pub track_id: u8,
    /// Bytes of tag header before the codec payload.
    pub header_len: usize,
}

impl FrameInfo {
    /// Info from a parsed video tag header.
    pub fn from_video(header: &VideoTagHeader) -> FrameInfo {
        FrameInfo {
            is_keyframe: header.is_keyframe(),
            is_sequence_header: header.packet == VideoPacket::SequenceStart,
            is_sequence_end: header.packet == VideoPacket::SequenceEnd,
            is_coded_frame: header.packet == VideoPacket::CodedFrames,
            is_metadata: header.packet == VideoPacket::Metadata,
            codec: match header.packet {
                VideoPacket::Command(_) if header.enhanced => None,
                _ => Some(header.codec),
            },
            composition_time: header.composition_time,
            enhanced: header.enhanced,
            multitrack: header.multitrack,
            track_id: header.track_id,
            header_len: header.header_len,
        }
    }

    /// Info from a parsed audio tag header.
    pub fn from_audio(header: &AudioTagHeader) -> FrameInfo {
        FrameInfo {
            is_sequence_header: header.packet == AudioPacket::SequenceStart,
            is_sequence_end: header.packet == AudioPacket::SequenceEnd,
            is_coded_frame: header.packet == AudioPacket::CodedFrames,
            codec: Some(header.codec),
            enhanced: header.enhanced,
            multitrack: header.multitrack,
            track_id: header.track_id,
            header_len: header.header_len,
            ..FrameInfo::default()
        }
    }
}

impl Frame {
    /// An audio frame; parses the audio tag header. Never fails: an empty payload (the legacy
    /// silence message) or an unparseable one gets the default info.
    pub fn audio(timestamp: u32, payload: Bytes) -> Frame {
        let info = AudioTagHeader::parse(&payload)
            .map(|h| FrameInfo::from_audio(&h))
            .unwrap_or_default();
        Frame {
            kind: MediaKind::Audio,
            timestamp,
            payload,
            info,
        }
    }

    /// A video frame; parses the video tag header. Never fails: an empty or unparseable payload
    /// gets the default info.
    pub fn video(timestamp: u32, payload: Bytes) -> Frame {
        let info = VideoTagHeader::parse(&payload)
            .map(|h| FrameInfo::from_video(&h))
            .unwrap_or_default();
        Frame {
            kind: MediaKind::Video,
            timestamp,
            payload,
            info,
        }
    }

    /// A data frame; `is_metadata` is set when the AMF0 body starts with the string
    /// `"onMetaData"` (also after a leftover `"@setDataFrame"`).
    pub fn data(timestamp: u32, payload: Bytes) -> Frame {
        let info = FrameInfo {
            is_metadata: is_on_metadata(&payload),
            ..FrameInfo::default()
        };
        Frame {
            kind: MediaKind::Data,
            timestamp,
            payload,
            info,
        }
    }

    /// The codec payload after the tag header (empty if the header was not understood).
    pub fn body(&self) -> Bytes {
        if self.info.header_len <= self.payload.len() {
            self.payload.slice(self.info.header_len..)
        } else {
            Bytes::new()
        }
    }
}

/// AMF0 string "onMetaData" (marker 0x02, UI16 length 10).
const AMF0_ON_METADATA: &[u8] = b"\x02\x00\x0aonMetaData";
/// AMF0 string "@setDataFrame" (marker 0x02, UI16 length 13).
const AMF0_SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

fn is_on_metadata(body: &[u8]) -> bool {
    let body = body.strip_prefix(AMF0_SET_DATA_FRAME).unwrap_or(body);
    body.starts_with(AMF0_ON_METADATA)
}
