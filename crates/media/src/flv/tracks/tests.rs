//! Golden messages from PROTOCOL.md §1 (OBS and FFmpeg captures) and hand-built Multitrack
//! messages of every form.

use super::*;

use crate::test_util::hex;

fn tracks(kind: TrackKind, s: &str) -> Vec<(u8, Codec, TrackPacketType, Vec<u8>)> {
    let payload = hex(s);
    Tracks::parse(kind, &payload)
        .unwrap()
        .map(|t| {
            let t = t.unwrap();
            (t.track_id, t.codec, t.packet_type, t.body.to_vec())
        })
        .collect()
}

use TrackPacketType::*;

#[test]
fn legacy_messages_are_track_zero() {
    assert_eq!(
        tracks(TrackKind::Video, "17 00 000000 01640028"),
        vec![(0, Codec::Avc, SequenceStart, hex("01640028"))]
    );
    assert_eq!(
        tracks(TrackKind::Video, "27 01 000050 00000002 0906"),
        vec![(0, Codec::Avc, CodedFrames, hex("000050 00000002 0906"))]
    );
    // A bare end of sequence, and legacy CodecID 12 HEVC.
    assert_eq!(
        tracks(TrackKind::Video, "17 02"),
        vec![(0, Codec::Avc, SequenceEnd, vec![])]
    );
    assert_eq!(
        tracks(TrackKind::Video, "1c 00 000000 01"),
        vec![(0, Codec::Hevc, SequenceStart, hex("01"))]
    );
    assert_eq!(
        tracks(TrackKind::Audio, "af 00 1210"),
        vec![(0, Codec::Aac, SequenceStart, hex("1210"))]
    );
    assert_eq!(
        tracks(TrackKind::Audio, "2f fffb"),
        vec![(0, Codec::Mp3, Raw, hex("fffb"))]
    );
}

#[test]
fn obs_enhanced_single_track_messages() {
    // PROTOCOL.md §1.2: OBS HEVC sequence start, coded frames (with and without the
    // composition time), AV1 sequence start, colorInfo metadata.
    assert_eq!(
        tracks(TrackKind::Video, "90 68766331 01016000"),
        vec![(0, Codec::Hevc, SequenceStart, hex("01016000"))]
    );
    assert_eq!(
        tracks(TrackKind::Video, "91 68766331 000028 00000001 26"),
        vec![(0, Codec::Hevc, CodedFrames, hex("000028 00000001 26"))]
    );
    assert_eq!(
        tracks(TrackKind::Video, "a3 68766331 00000001 02"),
        vec![(0, Codec::Hevc, CodedFramesX, hex("00000001 02"))]
    );
    assert_eq!(
        tracks(TrackKind::Video, "90 61763031 81000c00"),
        vec![(0, Codec::Av1, SequenceStart, hex("81000c00"))]
    );
    let color = "84 68766331 02 0009 636f6c6f72496e666f 03 000009";
    assert_eq!(
        tracks(TrackKind::Video, color),
        vec![(
            0,
            Codec::Hevc,
            Metadata,
            hex("02 0009 636f6c6f72496e666f 03 000009")
        )]
    );
    assert_eq!(
        tracks(TrackKind::Audio, "94 4f707573 01 02 00000003"),
        vec![(0, Codec::Opus, MultichannelConfig, hex("01 02 00000003"))]
    );
}

#[test]
fn one_track_messages_as_obs_and_ffmpeg_send_them() {
    // OBS / FFmpeg 9 second video rendition and second audio track.
    assert_eq!(
        tracks(TrackKind::Video, "96 00 61766331 01 01640028"),
        vec![(1, Codec::Avc, SequenceStart, hex("01640028"))]
    );
    assert_eq!(
        tracks(TrackKind::Video, "a6 01 61766331 01 000050 00000002 0906"),
        vec![(1, Codec::Avc, CodedFrames, hex("000050 00000002 0906"))]
    );
    assert_eq!(
        tracks(TrackKind::Audio, "95 01 6d703461 01 21"),
        vec![(1, Codec::Aac, CodedFrames, hex("21"))]
    );
    assert_eq!(
        tracks(TrackKind::Audio, "95 04 6d703461 01 01 01 00000004"),
        vec![(1, Codec::Aac, MultichannelConfig, hex("01 01 00000004"))]
    );
}

#[test]
fn many_tracks_and_many_codecs() {
    let many = "96 11 68766331 01 000004 00000011 00 000005 000000aabb 02 000000";
    assert_eq!(
        tracks(TrackKind::Video, many),
        vec![
            (1, Codec::Hevc, CodedFrames, hex("00000011")),
            (0, Codec::Hevc, CodedFrames, hex("000000aabb")),
            (2, Codec::Hevc, CodedFrames, vec![]),
        ]
    );
    let mixed = "95 21 4f707573 00 000001 fc 664c6143 03 000002 fff8";
    assert_eq!(
        tracks(TrackKind::Audio, mixed),
        vec![
            (0, Codec::Opus, CodedFrames, hex("fc")),
            (3, Codec::Flac, CodedFrames, hex("fff8")),
        ]
    );
    // ModEx before the Multitrack packet type.
    let with_mod_ex = "97 02 0f4240 05 01 6d703461 02 21";
    assert_eq!(
        tracks(TrackKind::Audio, with_mod_ex),
        vec![(2, Codec::Aac, CodedFrames, hex("21"))]
    );
}

#[test]
fn bad_messages_fail_in_a_controlled_way() {
    // A track size past the end of the message.
    let short = hex("96 11 68766331 01 000009 0000");
    let results: Vec<_> = Tracks::parse(TrackKind::Video, &short).unwrap().collect();
    assert_eq!(results, vec![Err(FlvError::Truncated)]);
    // A truncated second track after a good first one.
    let second = hex("95 11 4f707573 00 000001 fc 01 00");
    let results: Vec<_> = Tracks::parse(TrackKind::Audio, &second).unwrap().collect();
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert_eq!(results[1], Err(FlvError::Truncated));
    for (kind, bad, err) in [
        (
            TrackKind::Video,
            "96 36 61766331",
            FlvError::UnknownMultitrackType(3),
        ),
        (
            TrackKind::Video,
            "96 06 61766331",
            FlvError::NestedMultitrack,
        ),
        (
            TrackKind::Audio,
            "95 05 6d703461",
            FlvError::NestedMultitrack,
        ),
        (
            TrackKind::Video,
            "98 61766331",
            FlvError::UnknownPacketType(8),
        ),
        (
            TrackKind::Audio,
            "93 4f707573",
            FlvError::UnknownPacketType(3),
        ),
        (TrackKind::Video, "", FlvError::Empty),
    ] {
        assert_eq!(Tracks::parse(kind, &hex(bad)).err(), Some(err), "{bad}");
    }
    // Command frames carry no track.
    assert!(Tracks::parse(TrackKind::Video, &hex("d1 00")).is_err());
    assert!(Tracks::parse(TrackKind::Video, &hex("57 00")).is_err());
}

mod prop {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_bodies_stay_inside(
            first in any::<u8>(),
            rest in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut payload = vec![first];
            payload.extend(rest);
            for kind in [TrackKind::Audio, TrackKind::Video] {
                if let Ok(tracks) = Tracks::parse(kind, &payload) {
                    let mut total = 0;
                    for t in tracks.flatten() {
                        total += t.body.len();
                    }
                    prop_assert!(total <= payload.len());
                }
                let _ = crate::flv::single_track(kind, &payload);
            }
        }
    }
}
