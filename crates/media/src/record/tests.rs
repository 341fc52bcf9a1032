//! The recorder on synthetic streams: where files and fragments start, what the index reads
//! back from the bytes, and what the VOD playlist lists.

use bytes::Bytes;

use super::index::{index_bytes, FileIndex};
use super::vod::{playlist, VodFile};
use super::*;
use crate::test_util::{audio, audio_header, video, video_header};

const WALL: u64 = 1_790_000_000_000;

/// The files a run produced, as bytes, and why each after the first opened.
#[derive(Default)]
struct Files {
    files: Vec<Vec<u8>>,
    rotations: Vec<Option<Rotation>>,
    closed: usize,
    fragments: usize,
}

impl Files {
    fn take(&mut self, events: &mut Vec<RecordEvent>) {
        for event in events.drain(..) {
            match event {
                RecordEvent::Open { init, rotated, .. } => {
                    self.files.push(init.to_vec());
                    self.rotations.push(rotated);
                }
                RecordEvent::Fragment { chunks, .. } => {
                    let file = self.files.last_mut().expect("a fragment before any file");
                    for chunk in chunks {
                        file.extend_from_slice(&chunk);
                    }
                    self.fragments += 1;
                }
                RecordEvent::Close { .. } => self.closed += 1,
            }
        }
    }

    fn index(&self, n: usize) -> FileIndex {
        index_bytes(&self.files[n]).expect("an index")
    }
}

/// `seconds` of 25 fps video (key frame every `gop` frames) and AAC every ~21 ms, from `from`.
fn feed(r: &mut Fmp4Recorder, files: &mut Files, from: u32, seconds: u32, gop: u32) {
    let mut events = Vec::new();
    r.push(&video_header(), WALL, &mut events);
    r.push(&audio_header(), WALL, &mut events);
    let mut next_audio = from;
    for i in 0..seconds * 25 {
        let ts = from + i * 40;
        let wall = WALL + u64::from(ts - from);
        while next_audio <= ts {
            r.push(&audio(next_audio), wall, &mut events);
            next_audio += 21;
        }
        r.push(&video(ts, i % gop == 0), wall, &mut events);
        files.take(&mut events);
    }
}

#[test]
fn a_stream_becomes_one_file_of_keyframe_fragments() {
    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut files = Files::default();
    feed(&mut r, &mut files, 0, 10, 50);
    let mut events = Vec::new();
    r.finish(&mut events);
    files.take(&mut events);
    assert_eq!(files.files.len(), 1);
    assert_eq!(files.closed, 1);
    let index = files.index(0);
    assert_eq!(index.tracks.len(), 2);
    assert!(index.tracks[0].video && !index.tracks[1].video);
    assert_eq!(index.tracks[0].timescale, 90_000);
    assert_eq!(index.tracks[1].timescale, 48_000);
    // 2 s GOPs: five fragments, each starting with a key frame.
    assert_eq!(index.fragments.len(), 5, "{:?}", index.fragments);
    for (i, f) in index.fragments.iter().enumerate() {
        assert!(f.independent, "{f:?}");
        assert!((f.start - 2.0 * i as f64).abs() < 0.001, "{f:?}");
        assert!((f.duration - 2.0).abs() < 0.001, "{f:?}");
        assert_eq!(f.wall_ms, Some(WALL + 2_000 * i as u64), "{f:?}");
    }
    assert!((index.duration() - 10.0).abs() < 0.001);
    // The fragments cover the file after the init segment, back to back.
    let mut at = index.init_len;
    for f in &index.fragments {
        assert_eq!(f.offset, at);
        at += f.len;
    }
    assert_eq!(at, files.files[0].len() as u64);
}

#[test]
fn long_gops_are_cut_at_fragment_secs_without_key_frames() {
    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut files = Files::default();
    // 8 s GOP: fragments every 2 s, one in four independent.
    feed(&mut r, &mut files, 0, 16, 200);
    let index = files.index(0);
    assert!(index.fragments.len() >= 6, "{:?}", index.fragments);
    for f in &index.fragments {
        assert!(f.duration <= 2.0 + 0.001, "{f:?}");
        let key = (f.start % 8.0).abs() < 0.001;
        assert_eq!(f.independent, key, "{f:?}");
    }
}

#[test]
fn a_file_cut_short_keeps_its_whole_fragments() {
    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut files = Files::default();
    feed(&mut r, &mut files, 0, 7, 25);
    let whole = files.index(0);
    let mut bytes = files.files[0].clone();
    bytes.truncate(bytes.len() - 100);
    let cut = index_bytes(&bytes).unwrap();
    assert_eq!(cut.fragments.len(), whole.fragments.len() - 1);
    assert_eq!(
        cut.fragments[..],
        whole.fragments[..whole.fragments.len() - 1]
    );
    // Garbage is an empty index or an error, never a panic.
    for junk in [&b""[..], &[0, 0, 0, 1, 0, 0][..], &[0xff; 64][..]] {
        let _ = index_bytes(junk);
    }
}

#[test]
fn files_rotate_by_duration_and_size_at_key_frames() {
    let config = RecordConfig {
        max_file_ms: 4_000,
        ..RecordConfig::default()
    };
    let mut r = Fmp4Recorder::new(config);
    let mut files = Files::default();
    feed(&mut r, &mut files, 0, 12, 25);
    assert_eq!(files.files.len(), 3, "{:?}", files.rotations);
    assert_eq!(files.rotations[1], Some(Rotation::Duration));
    for n in 0..2 {
        let index = files.index(n);
        assert!(
            (index.duration() - 4.0).abs() < 0.05,
            "{}",
            index.duration()
        );
        assert!(index.fragments[0].independent);
        // Every file's times start near zero.
        assert!(index.fragments[0].start < 0.001);
    }
    assert_eq!(files.index(1).start_wall_ms(), Some(WALL + 4_000));

    let config = RecordConfig {
        max_file_bytes: 2_000,
        ..RecordConfig::default()
    };
    let mut r = Fmp4Recorder::new(config);
    let mut files = Files::default();
    feed(&mut r, &mut files, 0, 6, 25);
    assert!(files.files.len() >= 3);
    assert_eq!(files.rotations[1], Some(Rotation::Size));
}

#[test]
fn a_codec_change_starts_a_new_file() {
    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut files = Files::default();
    feed(&mut r, &mut files, 0, 3, 25);
    // A new AVC configuration (another level), then more media.
    let mut events = Vec::new();
    let mut header = video_header().payload.to_vec();
    header[8] = 0x28;
    r.push(
        &Frame::video(3000, Bytes::from(header)),
        WALL + 3000,
        &mut events,
    );
    files.take(&mut events);
    assert_eq!(
        files.files.len(),
        1,
        "the file changes at the next key frame"
    );
    for i in 0..50u32 {
        let ts = 3000 + i * 40;
        r.push(&video(ts, i % 25 == 0), WALL + u64::from(ts), &mut events);
    }
    files.take(&mut events);
    assert_eq!(files.files.len(), 2);
    assert_eq!(files.rotations[1], Some(Rotation::CodecChange));
}

#[test]
fn waits_for_a_key_frame_and_records_audio_only_streams() {
    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut events = Vec::new();
    r.push(&video_header(), WALL, &mut events);
    r.push(&audio_header(), WALL, &mut events);
    r.push(&video(0, false), WALL, &mut events);
    r.push(&audio(10), WALL, &mut events);
    assert!(events.is_empty());
    r.push(&video(40, true), WALL + 40, &mut events);
    assert!(
        events.is_empty(),
        "the file waits half a second for more tracks"
    );
    for i in 2..20u32 {
        r.push(&video(i * 40, false), WALL + u64::from(i * 40), &mut events);
    }
    assert!(
        matches!(events[0], RecordEvent::Open { start_wall_ms, .. } if start_wall_ms == WALL + 40)
    );

    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut files = Files::default();
    events.clear();
    r.push(&audio_header(), WALL, &mut events);
    for i in 0..300u32 {
        r.push(&audio(i * 21), WALL + u64::from(i * 21), &mut events);
    }
    r.finish(&mut events);
    files.take(&mut events);
    assert_eq!(files.files.len(), 1);
    let index = files.index(0);
    assert_eq!(index.tracks.len(), 1);
    assert!(
        (index.duration() - 300.0 * 0.021).abs() < 0.05,
        "{}",
        index.duration()
    );
    assert_eq!(index.start_wall_ms(), Some(WALL));
}

#[test]
fn the_vod_playlist_lists_byte_ranges_in_the_asked_range() {
    let mut r = Fmp4Recorder::new(RecordConfig::default());
    let mut files = Files::default();
    feed(&mut r, &mut files, 0, 10, 25);
    let mut events = Vec::new();
    r.finish(&mut events);
    files.take(&mut events);
    let index = files.index(0);
    let all = [VodFile {
        uri: "a.mp4",
        index: &index,
    }];
    let text = playlist(&all, None, None, false).unwrap();
    assert!(text.starts_with("#EXTM3U\n"));
    assert!(text.contains(&format!(
        "#EXT-X-MAP:URI=\"a.mp4\",BYTERANGE=\"{}@0\"",
        index.init_len
    )));
    assert_eq!(text.matches("#EXTINF:").count(), 5, "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"));
    // 3.5 s to 6.5 s: from the key frame at 3 s, in 2 s segments (of 1 s fragments, a key
    // frame every second): 3-5, 5-7.
    let text = playlist(&all, Some(WALL + 3_500), Some(WALL + 6_500), false).unwrap();
    assert_eq!(text.matches("#EXTINF:").count(), 2, "{text}");
    let segment = index.fragments[3].len + index.fragments[4].len;
    let expected = format!("#EXT-X-BYTERANGE:{segment}@{}", index.fragments[3].offset);
    assert!(text.contains(&expected), "{expected} not in {text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"));
    assert!(playlist(&all, Some(WALL + 60_000), None, false).is_none());
    let live = playlist(&all, None, None, true).unwrap();
    assert!(live.contains("PLAYLIST-TYPE:EVENT") && !live.contains("ENDLIST"));
    // The growing file's last segment is not listed yet.
    assert_eq!(live.matches("#EXTINF:").count(), 4, "{live}");
    // Two files: one discontinuity, two maps.
    let two = [
        all[0],
        VodFile {
            uri: "b.mp4",
            index: &index,
        },
    ];
    let text = playlist(&two, None, None, false).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert_eq!(text.matches("#EXT-X-MAP:").count(), 2);
}

#[test]
fn prft_round_trips_the_wall_clock() {
    let b = prft(1, WALL + 123, 900);
    assert_eq!(&b[4..8], b"prft");
    let ntp = u64::from_be_bytes(b[16..24].try_into().unwrap());
    assert_eq!(ntp_to_unix_ms(ntp), WALL + 123);
}
