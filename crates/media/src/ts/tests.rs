//! Packet-level checks: sizes, sync bytes, continuity counters, tables, PES timestamps.

use bytes::{Bytes, BytesMut};

use super::*;

/// avcC of a tiny stream: High profile, one SPS (67 64 00 1f), one PPS (68 ee 3c 80).
const AVCC: &[u8] = &[
    1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80,
];

fn muxer() -> TsMuxer {
    TsMuxer::new(
        Some(TsStream {
            codec: Codec::Avc,
            config: Bytes::from_static(AVCC),
        }),
        Some(TsStream {
            codec: Codec::Aac,
            config: Bytes::from_static(&[0x11, 0x90]),
        }),
    )
    .unwrap()
}

fn packets(data: &[u8]) -> Vec<&[u8]> {
    assert_eq!(data.len() % PACKET_LEN, 0);
    data.chunks(PACKET_LEN).collect()
}

fn pid(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[1], packet[2]]) & 0x1fff
}

#[test]
fn tables_and_a_keyframe() {
    let mut m = muxer();
    let mut out = BytesMut::new();
    m.tables(&mut out);
    // A key frame: one IDR NAL unit of 400 bytes, 4-byte lengths.
    let mut au = vec![0, 0, 1, 0x90, 0x65];
    au.extend(std::iter::repeat_n(0xab, 399));
    m.video(&au, 90_000, 93_000, true, &mut out);
    m.audio(&[0x21, 0x10, 0x04], 90_000, &mut out);
    let packets = packets(&out);
    assert!(packets.iter().all(|p| p[0] == 0x47));
    assert_eq!(pid(packets[0]), 0);
    assert_eq!(pid(packets[1]), PMT_PID);
    // PAT section CRC checks out (CRC over the section including its CRC is 0).
    let section_len = usize::from(packets[0][6] & 0x0f) << 8 | usize::from(packets[0][7]);
    assert_eq!(crc::crc32(&packets[0][5..8 + section_len]), 0);
    // Video: first packet starts the PES, carries PCR and the random-access flag.
    let video: Vec<&&[u8]> = packets.iter().filter(|p| pid(p) == VIDEO_PID).collect();
    assert!(video.len() >= 3);
    assert_eq!(video[0][1] & 0x40, 0x40, "payload_unit_start");
    assert_eq!(video[0][3] & 0x30, 0x30, "adaptation + payload");
    assert_eq!(video[0][5] & 0x50, 0x50, "random access + PCR");
    // Continuity counters count up.
    for (i, p) in video.iter().enumerate() {
        assert_eq!(usize::from(p[3] & 0x0f), i);
    }
    // The elementary stream: AUD, SPS, PPS, then the IDR with a start code.
    let es: Vec<u8> = out.to_vec();
    let find = |needle: &[u8]| es.windows(needle.len()).position(|w| w == needle);
    let aud = find(&[0, 0, 0, 1, 0x09, 0xf0]).unwrap();
    let sps = find(&[0, 0, 0, 1, 0x67, 0x64]).unwrap();
    let pps = find(&[0, 0, 0, 1, 0x68, 0xee]).unwrap();
    let idr = find(&[0, 0, 0, 1, 0x65, 0xab]).unwrap();
    assert!(aud < sps && sps < pps && pps < idr);
    // PTS 93000 and DTS 90000 in the PES header.
    assert!(find(&timestamp(0x30, 93_000)).is_some());
    assert!(find(&timestamp(0x10, 90_000)).is_some());
    // Audio: an ADTS header for AAC LC 48 kHz stereo (ASC 11 90), frame length 10.
    assert!(find(&[0xff, 0xf1, 0x4c, 0x80, 0x01, 0x5f, 0xfc]).is_some());
}

#[test]
fn packet_boundaries_for_every_size() {
    for len in 0..600 {
        let mut m = muxer();
        let mut out = BytesMut::new();
        let body: Vec<u8> = std::iter::repeat_n(0x41, len).collect();
        let mut au = [(len as u32).to_be_bytes().to_vec(), body].concat();
        if len == 0 {
            au.clear();
        }
        m.video(&au, 0, 0, len % 2 == 0, &mut out);
        m.audio(&vec![0x21; len], 0, &mut out);
        for p in packets(&out) {
            assert_eq!(p[0], 0x47);
            if p[3] & 0x20 != 0 {
                assert!(usize::from(p[4]) <= 183, "adaptation length at {len}");
            }
        }
    }
}

#[test]
fn unsupported_and_bad_configs() {
    let vp9 = TsStream {
        codec: Codec::Vp9,
        config: Bytes::new(),
    };
    assert_eq!(
        TsMuxer::new(Some(vp9), None).err(),
        Some(TsError::Unsupported(Codec::Vp9))
    );
    let bad = TsStream {
        codec: Codec::Avc,
        config: Bytes::from_static(&[1, 2]),
    };
    assert_eq!(
        TsMuxer::new(Some(bad), None).err(),
        Some(TsError::BadConfig(Codec::Avc))
    );
}

#[test]
fn an_aac_frame_too_long_for_adts_is_dropped() {
    let mut m = muxer();
    let mut out = BytesMut::new();
    m.audio(&vec![0x21; 8185], 0, &mut out);
    assert!(out.is_empty());
    m.audio(&vec![0x21; 8184], 0, &mut out);
    assert!(!out.is_empty());
}
