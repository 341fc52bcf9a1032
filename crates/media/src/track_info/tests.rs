//! Track tables fed with what FFmpeg 9 really sent (configuration records captured from its
//! FLV output) and hand-built Multitrack messages.

use bytes::Bytes;

use super::*;

use crate::test_util::hex;

fn video(ts: u32, parts: &[&[u8]]) -> Frame {
    Frame::video(ts, Bytes::from(parts.concat()))
}

fn audio(ts: u32, parts: &[&[u8]]) -> Frame {
    Frame::audio(ts, Bytes::from(parts.concat()))
}

/// libx264's avcC for FFmpeg 9's 320x240 RGB test pattern (High 4:4:4 Predictive, L1.3).
const AVCC: &str =
    "01f4000dffe1001967f4000d919b28283f6022000003000200000300641e28532c01000668ebe3c44844";
/// libx265's hvcC for the same (Rext, level 2), SEI array left out.
const HVCC: &str =
    "0104080000009e08000000003cf000fcfff8f800000f03200001001740010c01ffff0408000003009e08
    00000300003c959809210001002b4201010408000003009e0800000300003c90014101e2cb2b349265780b70
    2020004000000300400000064222000100084401c172860c4624";

#[test]
fn a_legacy_stream_at_25_fps() {
    let mut table = TrackTable::new();
    table.observe(&video(0, &[&hex("1700000000"), &hex(AVCC)]));
    table.observe(&audio(0, &[&hex("af00 1188")]));
    for i in 0..26u32 {
        let key: &[u8] = if i % 25 == 0 { &[0x17] } else { &[0x27] };
        table.observe(&video(i * 40, &[key, &hex("01 000000 00000001 65")]));
        table.observe(&audio(i * 40, &[&hex("af01 21")]));
    }
    assert_eq!(
        table.describe(),
        "video#0 avc1 High 4:4:4 Predictive L1.3 320x240 8-bit 25fps, \
         audio#0 mp4a LC 48 kHz mono"
    );
    let video = &table.tracks()[0];
    assert_eq!(
        (video.frames, video.keyframes, video.sequence_headers),
        (26, 2, 1)
    );
}

#[test]
fn enhanced_codecs_and_multitrack() {
    let mut table = TrackTable::new();
    // HEVC on track 0, AV1 on track 1 (OneTrack), Opus on track 0, FLAC on track 2.
    table.observe(&video(0, &[b"\x90hvc1", &hex(HVCC)]));
    table.observe(&video(
        0,
        &[
            b"\x96\x00av01\x01",
            &hex("81000c00 0a0b0200000521e7fde017c002"),
        ],
    ));
    table.observe(&audio(
        0,
        &[b"\x90Opus", &hex("4f707573486561640102380180bb0000000000")],
    ));
    table.observe(&audio(
        0,
        &[
            b"\x95\x00fLaC\x02",
            &hex("0400040000000000 10980bb802f000000000"),
        ],
    ));
    // A ManyTracks message with coded frames of tracks 0 and 1 (HEVC's time offset inside).
    let many = hex("96 11 68766331 00 000005 000000aabb 01 000005 000000ccdd");
    table.observe(&Frame::video(40, Bytes::from(many)));
    let lines: Vec<String> = table.tracks().iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "video#0 hvc1 Rext L2 320x240 8-bit",
            "video#1 hvc1 Main L2.0 320x240 8-bit",
            "audio#0 Opus 48 kHz stereo",
            "audio#2 fLaC 48 kHz stereo",
        ]
    );
    // Track 1 kept the AV1 details; its last message named HEVC.
    let track1 = &table.tracks()[1];
    assert_eq!((track1.frames, track1.keyframes), (1, 1));
}

#[test]
fn frames_tell_what_no_record_does_and_copies_do_not_count() {
    let mut table = TrackTable::new();
    // VP9: the size from the first key frame; AC-3: the format from a frame.
    table.observe(&video(
        0,
        &[b"\x90vp09", &hex("01000000 01 14 87 02 02 00 0000")],
    ));
    table.observe(&video(
        0,
        &[b"\x91vp09", &hex("a2498342e013f00ef60638241c184a000d904f")],
    ));
    table.observe(&audio(0, &[b"\x90ac-3"]));
    table.observe(&audio(0, &[b"\x91ac-3", &hex("0b77480d0c402f842bc1")]));
    table.observe(&audio(0, &[&hex("2e fffb54c4")]));
    assert_eq!(
        table.describe(),
        "video#0 vp09 Profile 1 L2.0 320x240 8-bit, audio#0 .mp3 48 kHz mono"
    );
    // A single-track copy is not counted again; data frames and empty audio are ignored.
    let (original, copy) = video(40, &[b"\x96\x01vp09\x00", &hex("a2")]).with_single_track_form();
    table.observe(&original);
    table.observe(&copy.unwrap());
    table.observe(&Frame::data(
        0,
        Bytes::from_static(b"\x02\x00\x0aonMetaData"),
    ));
    table.observe(&audio(0, &[]));
    assert_eq!(table.tracks()[0].frames, 2);
}

#[test]
fn bounded_and_panic_free() {
    let mut table = TrackTable::new();
    for id in 0..=255u8 {
        table.observe(&video(0, &[b"\x96\x01avc1", &[id], &hex("000000 00")]));
    }
    assert_eq!(table.tracks().len(), MAX_TRACKS);
    for junk in ["", "ff", "90", "96 11 61766331 00 ffffff", "af00", "9f"] {
        table.observe(&video(0, &[&hex(junk)]));
        table.observe(&audio(0, &[&hex(junk)]));
    }
}
