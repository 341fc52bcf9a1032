//! A media frame: one RTMP audio, video or data message, parsed once at ingest and shared.

use bytes::Bytes;

use crate::flv::{
    single_track, AudioPacket, AudioTagHeader, Codec, SingleTrack, TrackKind, VideoPacket,
    VideoTagHeader,
};

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
    /// Which players the frame is for (see [`Frame::with_single_track_form`]).
    pub audience: Audience,
}

/// Which players a frame is for, once the hub holds both forms of an E-RTMP message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Audience {
    /// Every player: the message is legacy or plain single-track enhanced.
    #[default]
    All,
    /// Players that read E-RTMP Multitrack: the message as the publisher sent it, which has
    /// a different single-track form (or none).
    Multitrack,
    /// Players that cannot read Multitrack: the single-track form of a message (its default
    /// track, legacy framing for H.264 and AAC).
    SingleTrack,
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
            audience: Audience::All,
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

    /// The frames an audio or video message becomes in the hub: itself, and, when players
    /// that cannot read E-RTMP Multitrack need another form of it, that form
    /// ([`crate::flv::single_track`]: the default track, legacy framing for H.264 and AAC).
    /// The first is then marked [`Audience::Multitrack`], the second [`Audience::SingleTrack`];
    /// a message without a single-track form is marked [`Audience::Multitrack`] alone. Legacy
    /// messages and data frames are returned unchanged at no cost.
    pub fn with_single_track_form(mut self) -> (Frame, Option<Frame>) {
        // Plain single-track enhanced messages of a codec without legacy framing (an HEVC or
        // AV1 stream) are their own single-track form: decided from what was parsed already.
        let mod_ex = self.payload.first().is_some_and(|b| b & 0x0f == 7);
        let legacy_codec = matches!(self.info.codec, Some(Codec::Avc | Codec::Aac));
        if !self.info.multitrack && !mod_ex && !legacy_codec {
            return (self, None);
        }
        let kind = match self.kind {
            _ if !self.info.enhanced => return (self, None),
            MediaKind::Video => TrackKind::Video,
            MediaKind::Audio => TrackKind::Audio,
            MediaKind::Data => return (self, None),
        };
        match single_track(kind, &self.payload) {
            SingleTrack::AsIs => (self, None),
            SingleTrack::Rebuilt(payload) => {
                self.info.audience = Audience::Multitrack;
                let mut copy = match kind {
                    TrackKind::Video => Frame::video(self.timestamp, payload),
                    TrackKind::Audio => Frame::audio(self.timestamp, payload),
                };
                copy.info.audience = Audience::SingleTrack;
                (self, Some(copy))
            }
            SingleTrack::Withheld(_) => {
                self.info.audience = Audience::Multitrack;
                (self, None)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_keyframe_info() {
        let f = Frame::video(
            40,
            Bytes::from_static(&[0x17, 0x01, 0xff, 0xff, 0xdf, 0, 0, 0, 1, 0x65]),
        );
        assert!(f.info.is_keyframe && f.info.is_coded_frame && !f.info.is_sequence_header);
        assert_eq!(
            (f.info.codec, f.info.composition_time),
            (Some(Codec::Avc), -33)
        );
        assert_eq!(f.body().as_ref(), &[0, 0, 0, 1, 0x65]);
    }

    #[test]
    fn sequence_headers_and_end() {
        let v = Frame::video(0, Bytes::from_static(&[0x90, 0x68, 0x76, 0x63, 0x31, 0x01]));
        assert!(v.info.is_sequence_header && v.info.enhanced && !v.info.is_keyframe);
        assert_eq!(v.info.codec, Some(Codec::Hevc));
        let a = Frame::audio(0, Bytes::from_static(&[0xaf, 0x00, 0x12, 0x10]));
        assert!(a.info.is_sequence_header);
        assert_eq!(a.body().as_ref(), &[0x12, 0x10]);
        let end = Frame::video(0, Bytes::from_static(&[0x17, 0x02, 0, 0, 0]));
        assert!(end.info.is_sequence_end && !end.info.is_coded_frame);
    }

    #[test]
    fn empty_and_unparseable_payloads_get_default_info() {
        let silence = Frame::audio(5, Bytes::new());
        assert_eq!(silence.info, FrameInfo::default());
        assert!(silence.body().is_empty());
        assert_eq!(Frame::video(5, Bytes::new()).info, FrameInfo::default());
        assert_eq!(
            Frame::video(5, Bytes::from_static(&[0x17])).info,
            FrameInfo::default()
        );
        assert_eq!(
            Frame::audio(5, Bytes::from_static(&[0x9f])).info,
            FrameInfo::default()
        );
    }

    #[test]
    fn enhanced_command_frame_has_no_codec() {
        let f = Frame::video(0, Bytes::from_static(&[0xd1, 0x00]));
        assert_eq!(f.info.codec, None);
        assert!(!f.info.is_coded_frame && !f.info.is_keyframe);
    }

    #[test]
    fn data_frames_detect_on_metadata() {
        let meta = b"\x02\x00\x0aonMetaData\x03\x00\x00\x09";
        assert!(Frame::data(0, Bytes::from_static(meta)).info.is_metadata);
        let mut with_set = b"\x02\x00\x0d@setDataFrame".to_vec();
        with_set.extend_from_slice(meta);
        assert!(Frame::data(0, Bytes::from(with_set)).info.is_metadata);
        assert!(
            !Frame::data(0, Bytes::from_static(b"\x02\x00\x0aonCuePoint"))
                .info
                .is_metadata
        );
        assert!(!Frame::data(0, Bytes::new()).info.is_metadata);
    }

    #[test]
    fn single_track_forms() {
        // Legacy: unchanged, for everyone.
        let legacy = Frame::video(0, Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 9]));
        let (f, copy) = legacy.clone().with_single_track_form();
        assert_eq!((f, copy), (legacy, None));
        // Track 1 of a OneTrack message: multitrack players only.
        let track1 = Frame::video(0, Bytes::from_static(b"\x96\x01avc1\x01\x00\x00\x00\x09"));
        let (f, copy) = track1.with_single_track_form();
        assert_eq!((f.info.audience, copy), (Audience::Multitrack, None));
        // Track 0 wrapped in Multitrack: a legacy copy for single-track players.
        let track0 = Frame::video(40, Bytes::from_static(b"\x96\x01avc1\x00\x00\x00\x00\x09"));
        let (f, copy) = track0.with_single_track_form();
        let copy = copy.unwrap();
        assert_eq!(f.info.audience, Audience::Multitrack);
        assert_eq!(copy.info.audience, Audience::SingleTrack);
        assert_eq!(copy.payload.as_ref(), &[0x17, 0x01, 0, 0, 0, 9]);
        assert!(copy.info.is_keyframe && !copy.info.multitrack && copy.timestamp == 40);
        // Plain enhanced HEVC: unchanged, for everyone.
        let hevc = Frame::video(0, Bytes::from_static(b"\x91hvc1\x00\x00\x00\x09"));
        assert_eq!(hevc.clone().with_single_track_form(), (hevc, None));
    }

    #[test]
    fn clone_shares_the_payload() {
        let f = Frame::audio(0, Bytes::from(vec![0xaf, 0x01, 0x21]));
        let g = f.clone();
        assert_eq!(f.payload.as_ptr(), g.payload.as_ptr());
    }

    mod prop {
        use proptest::prelude::*;

        use super::super::*;
        use crate::aac::AudioSpecificConfig;
        use crate::avc::{AvcDecoderConfig, SequenceParameterSet};

        proptest! {
            #[test]
            fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
                let payload = Bytes::from(data.clone());
                for f in [Frame::audio(0, payload.clone()), Frame::video(0, payload.clone()), Frame::data(0, payload)] {
                    prop_assert!(f.info.header_len <= f.payload.len());
                    let _ = f.body();
                }
                let _ = AvcDecoderConfig::parse(&data);
                let _ = SequenceParameterSet::parse(&data);
                let _ = AudioSpecificConfig::parse(&data);
            }

            #[test]
            fn enhanced_headers_never_panic(first in 0x80u8..=0xff, rest in proptest::collection::vec(any::<u8>(), 0..32)) {
                let mut body = vec![first];
                body.extend(rest);
                if let Ok(h) = VideoTagHeader::parse(&body) {
                    prop_assert!(h.header_len <= body.len());
                }
                body[0] = 0x90 | (first & 0x0f);
                if let Ok(h) = AudioTagHeader::parse(&body) {
                    prop_assert!(h.header_len <= body.len());
                }
            }
        }
    }
}
