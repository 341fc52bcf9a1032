//! Structure checks with a small box reader: sizes add up, boxes nest where they belong, the
//! data offsets point at the samples.

use bytes::Bytes;

use super::*;

/// (path, payload) of every box, depth first; containers are descended into.
fn walk(data: &[u8], prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    const CONTAINERS: [&[u8; 4]; 11] = [
        b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"dinf", b"edts",
        b"udta",
    ];
    let mut pos = 0;
    while pos < data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        assert!(
            size >= 8 && pos + size <= data.len(),
            "bad size {size} at {pos} in {prefix}"
        );
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
        let path = format!("{prefix}/{}", String::from_utf8_lossy(&kind));
        let payload = &data[pos + 8..pos + size];
        out.push((path.clone(), payload.to_vec()));
        if CONTAINERS.contains(&&kind) {
            walk(payload, &path, out);
        }
        pos += size;
    }
}

fn paths(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    walk(data, "", &mut out);
    out.into_iter().map(|(p, _)| p).collect()
}

fn avc_track() -> TrackConfig {
    TrackConfig {
        track_id: 1,
        kind: TrackType::Video,
        codec: Codec::Avc,
        timescale: 90_000,
        width: 320,
        height: 240,
        sample_rate: 0,
        channels: 0,
        config: Bytes::from_static(&[1, 0x64, 0, 0x1f, 0xff, 0xe0, 0]),
    }
}

fn opus_track() -> TrackConfig {
    TrackConfig {
        track_id: 2,
        kind: TrackType::Audio,
        codec: Codec::Opus,
        timescale: 48_000,
        width: 0,
        height: 0,
        sample_rate: 48_000,
        channels: 2,
        config: Bytes::from_static(b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"),
    }
}

#[test]
fn init_segment_structure() {
    let init = init_segment(&[avc_track(), opus_track()]).unwrap();
    let p = paths(&init);
    for want in [
        "/ftyp",
        "/moov/mvhd",
        "/moov/trak/tkhd",
        "/moov/trak/mdia/mdhd",
        "/moov/trak/mdia/hdlr",
        "/moov/trak/mdia/minf/vmhd",
        "/moov/trak/mdia/minf/smhd",
        "/moov/trak/mdia/minf/dinf/dref",
        "/moov/trak/mdia/minf/stbl/stsd",
        "/moov/trak/mdia/minf/stbl/stsz",
        "/moov/mvex/trex",
    ] {
        assert!(p.iter().any(|x| x == want), "{want} missing from {p:?}");
    }
    assert_eq!(p.iter().filter(|x| *x == "/moov/trak").count(), 2);
    // The Opus entry carries dOps converted from the OpusHead: version 0, 2 channels,
    // pre-skip 312, 48 kHz, gain 0, family 0 (big-endian).
    let needle = b"dOps\x00\x02\x01\x38\x00\x00\xbb\x80\x00\x00\x00";
    assert!(init.windows(needle.len()).any(|w| w == needle));
    assert!(init.windows(8).any(|w| w == b"avcC\x01\x64\x00\x1f"));
}

#[test]
fn unsupported_and_bad_configs() {
    let mut mp3 = opus_track();
    mp3.codec = Codec::Mp3;
    assert_eq!(
        init_segment(&[mp3]),
        Err(Fmp4Error::Unsupported(Codec::Mp3))
    );
    // AC-3 needs a sync frame as its configuration.
    let mut ac3 = opus_track();
    ac3.codec = Codec::Ac3;
    assert_eq!(
        init_segment(&[ac3.clone()]),
        Err(Fmp4Error::BadConfig(Codec::Ac3))
    );
    ac3.config = Bytes::from_static(&[0x0b, 0x77, 0x48, 0x0d, 0x0c, 0x40, 0x2f, 0x84]);
    let init = init_segment(&[ac3]).unwrap();
    assert!(init.windows(7).any(|w| w == b"dac3\x10\x08\xc0"));
    let mut bad = opus_track();
    bad.config = Bytes::from_static(b"OpusHea");
    assert_eq!(init_segment(&[bad]), Err(Fmp4Error::BadConfig(Codec::Opus)));
}

#[test]
fn media_segment_offsets_point_at_the_samples() {
    let video = [
        Sample {
            data: Bytes::from_static(b"KEYFRAME"),
            duration: 3000,
            composition_offset: 6000,
            sync: true,
        },
        Sample {
            data: Bytes::from_static(b"inter"),
            duration: 3000,
            composition_offset: -3000,
            sync: false,
        },
    ];
    let audio = [Sample {
        data: Bytes::from_static(b"opus!"),
        duration: 960,
        composition_offset: 0,
        sync: true,
    }];
    let chunks = media_segment(
        7,
        &[
            TrackRun {
                track_id: 1,
                base_decode_time: 90_000,
                samples: &video,
            },
            TrackRun {
                track_id: 2,
                base_decode_time: 48_000,
                samples: &audio,
            },
        ],
    );
    // The sample chunks are the callers' buffers.
    assert_eq!(chunks[2].as_ptr(), video[0].data.as_ptr());
    let segment: Vec<u8> = chunks.concat();
    let mut boxes = Vec::new();
    walk(&segment, "", &mut boxes);
    let truns: Vec<&Vec<u8>> = boxes
        .iter()
        .filter(|(p, _)| p == "/moof/traf/trun")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(truns.len(), 2);
    let offset = |trun: &[u8]| i32::from_be_bytes(trun[8..12].try_into().unwrap()) as usize;
    assert_eq!(
        &segment[offset(truns[0])..offset(truns[0]) + 8],
        b"KEYFRAME"
    );
    assert_eq!(&segment[offset(truns[1])..offset(truns[1]) + 5], b"opus!");
    let tfdt = &boxes
        .iter()
        .find(|(p, _)| p == "/moof/traf/tfdt")
        .unwrap()
        .1;
    assert_eq!(&tfdt[..4], &[1, 0, 0, 0], "version 1");
    assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 90_000);
    let mfhd = &boxes.iter().find(|(p, _)| p == "/moof/mfhd").unwrap().1;
    assert_eq!(u32::from_be_bytes(mfhd[4..8].try_into().unwrap()), 7);
    assert!(boxes.iter().any(|(p, b)| p == "/mdat" && b.len() == 18));
}
