//! The single-track form of a message, for players that cannot read E-RTMP Multitrack.
//!
//! Such a player (Debian's FFmpeg 5.1, rtmpdump, GStreamer's `flvdemux`, flv.js, mpegts.js)
//! gets the default track (track 0) only, in the plainest framing that can carry its codec:
//! legacy FLV framing for H.264 (`0x17`/`0x27`) and AAC (`0xAF`), an enhanced single-track
//! header (no Multitrack, no ModEx) otherwise. The form is built once per message, when it
//! enters the hub, and shared by every such player.

use bytes::{BufMut, Bytes, BytesMut};

use super::tracks::{TrackKind, TrackPacket, TrackPacketType, Tracks};
use super::Codec;

/// How a message reaches a player that cannot read Multitrack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SingleTrack {
    /// The message is already in single-track form (legacy, or plain enhanced): send it.
    AsIs,
    /// Send these bytes instead: the default track, reframed.
    Rebuilt(Bytes),
    /// Such a player gets nothing of this message.
    Withheld(Withheld),
}

/// Why a message has no single-track form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Withheld {
    /// A Multitrack message without the default track (track 0).
    #[error("it carries no default track (only tracks other than 0)")]
    NoDefaultTrack,
    /// A packet legacy framing has no place for (H.264 `colorInfo` metadata, AAC multichannel
    /// configuration or sequence end).
    #[error("legacy framing has no place for this packet")]
    NoLegacyForm,
    /// The message does not carry the track asked for ([`track_form`] with a track other
    /// than 0).
    #[error("it does not carry the chosen track")]
    NoSuchTrack,
}

/// The single-track form of an audio or video message (see the module docs). Messages this
/// crate cannot parse are left as they are.
pub fn single_track(kind: TrackKind, payload: &[u8]) -> SingleTrack {
    track_form(kind, payload, 0)
}

/// Track `track_id` of an audio or video message in single-track form, for a player that
/// asked for that track (HTTP-FLV `?track=N`): like [`single_track`] for track 0; for
/// another track, its packet reframed, and [`Withheld::NoSuchTrack`] for a message without it
/// (a legacy or plain single-track message is track 0).
pub fn track_form(kind: TrackKind, payload: &[u8], track_id: u8) -> SingleTrack {
    let missing = || {
        SingleTrack::Withheld(if track_id == 0 {
            Withheld::NoDefaultTrack
        } else {
            Withheld::NoSuchTrack
        })
    };
    let Some(&b0) = payload.first() else {
        return SingleTrack::AsIs;
    };
    let enhanced = match kind {
        TrackKind::Video => b0 & 0x80 != 0,
        TrackKind::Audio => b0 >> 4 == 9,
    };
    if !enhanced {
        return if track_id == 0 {
            SingleTrack::AsIs
        } else {
            missing()
        };
    }
    let Ok(mut tracks) = Tracks::parse(kind, payload) else {
        return SingleTrack::AsIs;
    };
    let frame_type = tracks.frame_type();
    let multitrack = tracks.is_multitrack();
    let chosen = tracks.find_map(|t| t.ok().filter(|t| t.track_id == track_id));
    let Some(track) = chosen else {
        return missing();
    };
    let mod_ex = b0 & 0x0f == 7;
    let legacy_codec = matches!(track.codec, Codec::Avc | Codec::Aac);
    if !multitrack && !mod_ex && !legacy_codec {
        return SingleTrack::AsIs;
    }
    match kind {
        TrackKind::Video => video(frame_type, &track),
        TrackKind::Audio => audio(&track),
    }
}

fn video(frame_type: u8, track: &TrackPacket<'_>) -> SingleTrack {
    let mut out = BytesMut::with_capacity(track.body.len() + 8);
    if track.codec == Codec::Avc {
        out.put_u8(frame_type << 4 | 7);
        match track.packet_type {
            TrackPacketType::SequenceStart => out.put_slice(&[0, 0, 0, 0]),
            // The body starts with the composition time.
            TrackPacketType::CodedFrames => out.put_u8(1),
            TrackPacketType::CodedFramesX => out.put_slice(&[1, 0, 0, 0]),
            TrackPacketType::SequenceEnd => out.put_slice(&[2, 0, 0, 0]),
            _ => return SingleTrack::Withheld(Withheld::NoLegacyForm),
        }
    } else {
        let Some((packet_type, fourcc)) = enhanced_fields(track) else {
            return SingleTrack::Withheld(Withheld::NoLegacyForm);
        };
        out.put_u8(0x80 | frame_type << 4 | packet_type);
        out.put_u32(fourcc);
    }
    out.put_slice(track.body);
    SingleTrack::Rebuilt(out.freeze())
}

fn audio(track: &TrackPacket<'_>) -> SingleTrack {
    let mut out = BytesMut::with_capacity(track.body.len() + 6);
    if track.codec == Codec::Aac {
        out.put_u8(0xaf);
        match track.packet_type {
            TrackPacketType::SequenceStart => out.put_u8(0),
            TrackPacketType::CodedFrames => out.put_u8(1),
            _ => return SingleTrack::Withheld(Withheld::NoLegacyForm),
        }
    } else {
        let Some((packet_type, fourcc)) = enhanced_fields(track) else {
            return SingleTrack::Withheld(Withheld::NoLegacyForm);
        };
        out.put_u8(0x90 | packet_type);
        out.put_u32(fourcc);
    }
    out.put_slice(track.body);
    SingleTrack::Rebuilt(out.freeze())
}

fn enhanced_fields(track: &TrackPacket<'_>) -> Option<(u8, u32)> {
    Some((track.packet_type.enhanced_value()?, track.codec.fourcc()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    fn rebuilt(kind: TrackKind, s: &str) -> Vec<u8> {
        match single_track(kind, &hex(s)) {
            SingleTrack::Rebuilt(b) => b.to_vec(),
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn a_chosen_track_is_reframed_and_messages_without_it_are_withheld() {
        // ManyTracks AVC coded frames: track 0 (body 0a) and track 1 (body 0b0c), each with
        // its composition time.
        let many = hex("96 11 61766331 00 000004 000000 0a 01 000005 000000 0b0c");
        assert_eq!(
            track_form(TrackKind::Video, &many, 1),
            SingleTrack::Rebuilt(hex("17 01 000000 0b0c").into())
        );
        assert_eq!(
            track_form(TrackKind::Video, &many, 0),
            single_track(TrackKind::Video, &many)
        );
        assert_eq!(
            track_form(TrackKind::Video, &many, 2),
            SingleTrack::Withheld(Withheld::NoSuchTrack)
        );
        // A legacy message is track 0 only.
        assert_eq!(
            track_form(TrackKind::Audio, &hex("af 01 21"), 1),
            SingleTrack::Withheld(Withheld::NoSuchTrack)
        );
        assert_eq!(
            track_form(TrackKind::Audio, &hex("af 01 21"), 0),
            SingleTrack::AsIs
        );
    }

    #[test]
    fn legacy_and_plain_enhanced_messages_stay_as_they_are() {
        for (kind, s) in [
            (TrackKind::Video, "17 01 000050 00000002 0906"),
            (TrackKind::Video, "91 68766331 000000 00000001 26"),
            (TrackKind::Audio, "af 01 21"),
            (TrackKind::Audio, "91 4f707573 fc"),
            (TrackKind::Audio, ""),
            (TrackKind::Video, "ff"),
        ] {
            assert_eq!(single_track(kind, &hex(s)), SingleTrack::AsIs, "{s}");
        }
    }

    #[test]
    fn enhanced_avc_and_aac_become_legacy() {
        assert_eq!(
            rebuilt(TrackKind::Video, "90 61766331 01640028"),
            hex("17 00 000000 01640028")
        );
        assert_eq!(
            rebuilt(TrackKind::Video, "91 61766331 000050 00000002 0906"),
            hex("17 01 000050 00000002 0906")
        );
        assert_eq!(
            rebuilt(TrackKind::Video, "a3 61766331 00000002 0906"),
            hex("27 01 000000 00000002 0906")
        );
        assert_eq!(
            rebuilt(TrackKind::Video, "92 61766331"),
            hex("17 02 000000")
        );
        assert_eq!(
            rebuilt(TrackKind::Audio, "90 6d703461 1210"),
            hex("af 00 1210")
        );
        assert_eq!(
            rebuilt(TrackKind::Audio, "91 6d703461 2111"),
            hex("af 01 2111")
        );
        assert_eq!(
            single_track(TrackKind::Audio, &hex("92 6d703461")),
            SingleTrack::Withheld(Withheld::NoLegacyForm)
        );
        assert_eq!(
            single_track(TrackKind::Video, &hex("84 61766331 0200")),
            SingleTrack::Withheld(Withheld::NoLegacyForm)
        );
    }

    #[test]
    fn multitrack_gives_the_default_track_or_nothing() {
        // FFmpeg 9's second rendition: OneTrack, track 1.
        assert_eq!(
            single_track(TrackKind::Video, &hex("96 00 61766331 01 01640028")),
            SingleTrack::Withheld(Withheld::NoDefaultTrack)
        );
        // ManyTracks with the default track second.
        let many = "96 11 68766331 01 000004 00000011 00 000005 000000aa bb";
        assert_eq!(
            rebuilt(TrackKind::Video, many),
            hex("91 68766331 000000aa bb")
        );
        // ManyTracksManyCodecs: track 0 AV1 (no composition time), track 2 HEVC.
        let mixed = "a6 21 68766331 02 000004 00000001 61763031 00 000002 1234";
        assert_eq!(rebuilt(TrackKind::Video, mixed), hex("a1 61763031 1234"));
        // H.264 track 0 in a OneTrack message becomes legacy.
        assert_eq!(
            rebuilt(TrackKind::Video, "96 01 61766331 00 000028 abcd"),
            hex("17 01 000028 abcd")
        );
        // Audio: AAC default track and Opus ManyTracks.
        assert_eq!(
            rebuilt(TrackKind::Audio, "95 01 6d703461 00 2111"),
            hex("af 01 2111")
        );
        assert_eq!(
            rebuilt(TrackKind::Audio, "95 11 4f707573 00 000001 fc 01 000001 fd"),
            hex("91 4f707573 fc")
        );
    }

    #[test]
    fn mod_ex_is_dropped() {
        // TimestampOffsetNano 1 ns, then CodedFrames Opus.
        assert_eq!(
            rebuilt(TrackKind::Audio, "97 02 000001 01 4f707573 fc"),
            hex("91 4f707573 fc")
        );
    }
}
