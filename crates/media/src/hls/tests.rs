//! The TS segmenter on synthetic streams: where it cuts, what the playlist says.

use bytes::Bytes;

use super::*;

use crate::test_util::{audio, audio_header, video, video_header, AVCC};

/// `seconds` of 25 fps video with a key frame every `gop` frames, and AAC every ~21 ms.
fn feed(segmenter: &mut Segmenter, seconds: u32, gop: u32) -> usize {
    let mut finished = 0;
    segmenter.push(&video_header());
    segmenter.push(&audio_header());
    let mut next_audio = 0u32;
    for i in 0..seconds * 25 {
        let ts = i * 40;
        while next_audio <= ts {
            finished += usize::from(segmenter.push(&audio(next_audio)));
            next_audio += 21;
        }
        finished += usize::from(segmenter.push(&video(ts, i % gop == 0)));
    }
    finished
}

#[test]
fn cuts_at_key_frames_and_lists_the_window() {
    let mut s = Segmenter::new(HlsConfig::default());
    let finished = feed(&mut s, 12, 50);
    // Key frames every 2 s: segments of 2 s; the last one is still open.
    assert_eq!(finished, 5);
    let playlist = s.playlist();
    assert!(playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"));
    assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"));
    assert_eq!(playlist.matches("#EXTINF:2.000,").count(), 5, "{playlist}");
    assert!(playlist.contains("seg4.ts"));
    let segment = s.segment(1).unwrap();
    assert!(segment.independent);
    assert_eq!(segment.data[0], 0x47);
    assert!(s.segment(9).is_none());
}

#[test]
fn a_long_gop_is_cut_before_it_passes_the_target_duration() {
    let mut s = Segmenter::new(HlsConfig {
        target_duration_secs: 4,
        ..HlsConfig::default()
    });
    feed(&mut s, 30, 250); // key frames every 10 s
    for sequence in 0..s.segment_count() {
        if let Some(segment) = s.segment(sequence) {
            assert!(
                segment.duration.round() <= 4.0,
                "segment {sequence}: {}",
                segment.duration
            );
        }
    }
    let independent = (0..s.segment_count())
        .filter_map(|n| s.segment(n))
        .filter(|s| s.independent)
        .count();
    assert!(independent >= 1 && independent < s.segment_count() as usize);
}

#[test]
fn the_window_slides_and_old_segments_stay_a_while() {
    let mut s = Segmenter::new(HlsConfig {
        window: 3,
        ..HlsConfig::default()
    });
    feed(&mut s, 30, 25); // 1 s segments
    let playlist = s.playlist();
    let sequence = s.segment_count() - 3;
    assert!(
        playlist.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{sequence}\n")),
        "{playlist}"
    );
    assert_eq!(playlist.matches("#EXTINF").count(), 3);
    // Three more stay downloadable after leaving the playlist.
    assert!(s.segment(sequence - 3).is_some());
    assert!(s.segment(sequence - 4).is_none());
}

#[test]
fn ts_segments_are_whole_packets() {
    let mut s = Segmenter::new(HlsConfig::default());
    feed(&mut s, 5, 25);
    let playlist = s.playlist();
    assert!(playlist.contains("#EXT-X-VERSION:3\n") && !playlist.contains("EXT-X-MAP"));
    assert!(playlist.contains("seg0.ts"));
    let segment = s.segment(0).unwrap();
    assert_eq!(segment.data.len() % 188, 0);
    assert_eq!(segment.data[0], 0x47);
}

#[test]
fn a_new_publisher_or_codec_is_a_discontinuity_and_sequence_numbers_go_on() {
    let mut s = Segmenter::new(HlsConfig::default());
    s.set_wall_clock(1_795_742_625_678);
    feed(&mut s, 4, 25);
    let before = s.segment_count();
    assert!(s.publisher_left(), "the open segment is closed");
    assert_eq!(s.segment_count(), before + 1);
    // The next publisher, same codec configuration, timestamps continuing (rebased).
    let offset = 5_000;
    s.push(&video_header());
    s.push(&audio_header());
    for i in 0..75u32 {
        s.push(&audio(offset + i * 40));
        s.push(&video(offset + i * 40, i % 25 == 0));
    }
    let playlist = s.playlist();
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY\n").count(),
        1,
        "{playlist}"
    );
    assert!(
        playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"),
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-27T01:23:45.678Z\n"));
    let first_after = s.segment(before + 1).unwrap();
    assert!(first_after.discontinuity && first_after.independent);
    // A new codec configuration: another discontinuity.
    let other = Frame::video(
        9_000,
        Bytes::from([&[0x17, 0, 0, 0, 0][..], &AVCC[..18], &[0x81]].concat()),
    );
    s.push(&other);
    for i in 0..60u32 {
        s.push(&video(9_000 + i * 40, i % 25 == 0));
    }
    let playlist = s.playlist();
    assert_eq!(
        playlist.matches("#EXT-X-DISCONTINUITY\n").count(),
        2,
        "{playlist}"
    );
}

#[test]
fn program_date_time_format() {
    assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601(951_868_799_999), "2000-02-29T23:59:59.999Z");
    assert_eq!(iso8601(1_795_742_625_678), "2026-11-27T01:23:45.678Z");
}

#[test]
fn timestamps_that_stand_still_do_not_grow_a_segment_without_bound() {
    let mut s = Segmenter::new(HlsConfig::default());
    s.push(&video_header());
    s.push(&video(0, true));
    for _ in 0..(MAX_SEGMENT_FRAMES * 2 + 10) {
        s.push(&video(0, false));
    }
    assert!(s.segment_count() >= 2, "{} segments", s.segment_count());
    // Timestamps far apart (a wrap, a jump) never overflow the length arithmetic.
    s.push(&video(u32::MAX - 10, false));
    s.push(&video(5, false));
}
