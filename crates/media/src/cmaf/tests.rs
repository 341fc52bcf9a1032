//! The packager on synthetic streams: where segments and parts are cut, how renditions line
//! up, what the playlists say, and when a blocking request is answered.

use bytes::Bytes;

use super::playlist::Blocking;
use super::*;

use crate::test_util::{audio, audio_header, video, video_header, AVCC};

/// An E-RTMP Multitrack (OneTrack) AVC message for `track`: a sequence start or a frame.
fn multitrack_video(ts: u32, track: u8, key: bool, header: bool) -> Frame {
    let frame_type = if key || header { 1 } else { 2 };
    let packet = if header { 0 } else { 1 };
    let mut payload = vec![0x80 | frame_type << 4 | 6, packet];
    payload.extend_from_slice(b"avc1");
    payload.push(track);
    if header {
        payload.extend_from_slice(AVCC);
    } else {
        let nal = if key { 0x65 } else { 0x41 };
        payload.extend_from_slice(&[0, 0, 0, 0, 0, 0, 2, nal, 0xbb]);
    }
    Frame::video(ts, Bytes::from(payload))
}

/// `seconds` of 25 fps video (key frame every `gop` frames) and AAC every ~21 ms, from `from`.
fn feed(p: &mut Packager, from: u32, seconds: u32, gop: u32) {
    p.push(&video_header());
    p.push(&audio_header());
    let mut next_audio = from;
    for i in 0..seconds * 25 {
        let ts = from + i * 40;
        while next_audio <= ts {
            p.push(&audio(next_audio));
            next_audio += 21;
        }
        p.push(&video(ts, i % gop == 0));
    }
}

fn check_parts(r: &Rendition) {
    let target = f64::from(r.config().part_target_ms()) / 1000.0;
    for segment in r.segments() {
        let total: f64 = segment.parts.iter().map(|p| p.duration).sum();
        assert!((total - segment.duration).abs() < 0.002, "{segment:?}");
        for (i, part) in segment.parts.iter().enumerate() {
            assert!(part.duration <= target + 1e-9, "{} part {part:?}", r.name());
            let last = i + 1 == segment.parts.len();
            if !last && !part.independent {
                assert!(part.duration >= 0.85 * target, "{} part {part:?}", r.name());
            }
        }
        // A segment is its parts back to back; each is a moof + mdat.
        assert_eq!(segment.chunks.len(), segment.parts.len());
        for chunk in &segment.chunks {
            assert_eq!(&chunk[4..8], b"moof");
        }
    }
}

#[test]
fn segments_at_key_frames_parts_within_the_target_and_renditions_aligned() {
    let mut p = Packager::new(CmafConfig::default());
    feed(&mut p, 0, 12, 50);
    let names: Vec<&str> = p.renditions().iter().map(Rendition::name).collect();
    assert_eq!(names, ["v0", "a0"]);
    let (v, a) = (p.rendition("v0").unwrap(), p.rendition("a0").unwrap());
    // Key frames every 2 s: five finished 2 s segments, the sixth in progress.
    let durations: Vec<f64> = v.segments().iter().map(|s| s.duration).collect();
    assert_eq!(durations, [2.0; 5]);
    assert!(v.segments().iter().all(|s| s.independent));
    assert_eq!(v.edge().next_sequence, 5);
    // Audio starts its segments at the first sample at or after each video segment start.
    let sequences: Vec<u64> = a.segments().iter().map(|s| s.sequence).collect();
    assert_eq!(sequences, [0, 1, 2, 3, 4]);
    for segment in a.segments() {
        assert!((segment.duration - 2.0).abs() < 0.025, "{segment:?}");
    }
    // Decode times add up: each segment starts where the one before ended.
    for r in [v, a] {
        let segments: Vec<_> = r.segments().iter().collect();
        for pair in segments.windows(2) {
            assert_eq!(
                pair[0].start_ticks + pair[0].duration_ticks,
                pair[1].start_ticks
            );
        }
        check_parts(r);
    }
    // 200 ms parts of 25 fps video: five frames each.
    assert!(v.segments()[0].parts.iter().all(|p| p.duration == 0.2));
    assert_eq!(v.segments()[0].parts.len(), 10);
    assert!(v.segments()[0].parts[0].independent && !v.segments()[0].parts[1].independent);
}

#[test]
fn a_long_gop_is_cut_before_the_target_duration_is_exceeded() {
    let mut p = Packager::new(CmafConfig::default());
    feed(&mut p, 0, 20, 200); // key frames every 8 s
    let v = p.rendition("v0").unwrap();
    assert!(v.segments().len() >= 6);
    for s in v.segments() {
        assert!(s.duration.round() <= 2.0, "{s:?}");
    }
    assert!(v.segments().iter().any(|s| !s.independent));
    check_parts(v);
}

#[test]
fn the_media_playlist_has_the_low_latency_tags() {
    let mut p = Packager::new(CmafConfig::default());
    p.set_wall_clock(1_700_000_000_000);
    feed(&mut p, 0, 30, 25); // 1 s segments
    let v = p.rendition("v0").unwrap();
    let text = p.media_playlist("v0", false).unwrap();
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"));
    assert!(text.contains(
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=0.660\n"
    ));
    assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.220\n"));
    let first = v.segments()[v.segments().len() - 12].sequence;
    assert!(text.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{first}\n")));
    assert_eq!(text.matches("#EXTINF:").count(), 12);
    assert!(text.contains("#EXT-X-MAP:URI=\"init0.mp4\"\n"));
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:"));
    // Parts only for the segments within three target durations (6 s) of the end.
    let parts_of = |seq: u64| {
        let s = v.segment(seq).unwrap();
        text.contains(&format!("URI=\"part{}.m4s\"", s.parts[0].number))
    };
    let last = v.segments().back().unwrap().sequence;
    assert!(parts_of(last) && parts_of(last - 4));
    assert!(!parts_of(last - 7));
    assert!(text.contains(&format!(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{}.m4s\"\n",
        v.next_part()
    )));
    let (msn, part) = p.rendition("a0").unwrap().last_part().unwrap();
    assert!(text.contains(&format!(
        "#EXT-X-RENDITION-REPORT:URI=\"../a0/index.m3u8\",LAST-MSN={msn},LAST-PART={part}\n"
    )));
    // A delta update skips what starts more than 12 s before the end.
    let mut p = Packager::new(CmafConfig::default());
    feed(&mut p, 0, 40, 50);
    let delta = p.media_playlist("v0", true).unwrap();
    assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS="), "{delta}");
    let skipped: usize = delta
        .split("SKIPPED-SEGMENTS=")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(skipped + delta.matches("#EXTINF:").count(), 12);
    assert!(delta.contains("#EXT-X-MAP:URI=\"init0.mp4\"\n"));
}

#[test]
fn blocking_requests_wait_for_what_they_ask_and_refuse_what_is_too_far() {
    let mut p = Packager::new(CmafConfig::default());
    feed(&mut p, 0, 5, 25);
    let v = p.rendition("v0").unwrap();
    let edge = v.edge();
    let q = |msn: u64, part: Option<u64>| PlaylistQuery {
        msn: Some(msn),
        part,
        skip: false,
    };
    assert_eq!(v.blocking(&PlaylistQuery::default()), Blocking::Ready);
    assert_eq!(
        v.blocking(&q(edge.next_sequence - 1, None)),
        Blocking::Ready
    );
    assert_eq!(v.blocking(&q(edge.next_sequence, None)), Blocking::Wait);
    assert_eq!(v.blocking(&q(edge.next_sequence + 2, None)), Blocking::Wait);
    assert!(matches!(
        v.blocking(&q(edge.next_sequence + 3, None)),
        Blocking::BadRequest(_)
    ));
    let built = edge.parts_built as u64;
    assert!(built > 0);
    assert_eq!(
        v.blocking(&q(edge.next_sequence, Some(built - 1))),
        Blocking::Ready
    );
    assert_eq!(
        v.blocking(&q(edge.next_sequence, Some(built))),
        Blocking::Wait
    );
    assert!(matches!(
        v.blocking(&q(edge.next_sequence, Some(built + 14))),
        Blocking::BadRequest(_)
    ));
    assert_eq!(
        PlaylistQuery::parse("_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&x=1").unwrap(),
        PlaylistQuery {
            msn: Some(5),
            part: Some(2),
            skip: true
        }
    );
    assert!(PlaylistQuery::parse("_HLS_part=2").is_err());
    assert!(PlaylistQuery::parse("_HLS_msn=x").is_err());
    // The next part is "coming"; older ones are there.
    assert_eq!(v.part(v.next_part()), PartState::Next);
    assert!(matches!(v.part(v.next_part() - 1), PartState::Ready(_)));
    assert_eq!(v.part(v.next_part() + 1), PartState::Missing);
}

#[test]
fn a_new_publisher_continues_after_a_discontinuity() {
    let mut p = Packager::new(CmafConfig::default());
    feed(&mut p, 0, 4, 25);
    p.publisher_left();
    let before = p
        .rendition("v0")
        .unwrap()
        .segments()
        .back()
        .unwrap()
        .sequence;
    feed(&mut p, 4000, 4, 25);
    let v = p.rendition("v0").unwrap();
    let after: Vec<_> = v
        .segments()
        .iter()
        .filter(|s| s.sequence > before)
        .collect();
    assert!(after[0].discontinuity && after[0].sequence == before + 1);
    assert!(after[1..].iter().all(|s| !s.discontinuity));
    let text = p.media_playlist("v0", false).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    let a = p.rendition("a0").unwrap();
    assert_eq!(a.segments().iter().filter(|s| s.discontinuity).count(), 1);
}

#[test]
fn multitrack_video_becomes_variants_with_alternate_audio() {
    let mut p = Packager::new(CmafConfig::default());
    p.push(&video_header());
    p.push(&multitrack_video(0, 1, false, true));
    p.push(&audio_header());
    let mut next_audio = 0;
    for i in 0..100u32 {
        let ts = i * 40;
        while next_audio <= ts {
            p.push(&audio(next_audio));
            next_audio += 21;
        }
        p.push(&video(ts, i % 25 == 0));
        p.push(&multitrack_video(ts, 1, i % 25 == 0, false));
    }
    p.set_details(
        TrackKind::Video,
        0,
        CodecDetails {
            width: Some(1280),
            height: Some(720),
            ..CodecDetails::default()
        },
    );
    let names: Vec<&str> = p.renditions().iter().map(Rendition::name).collect();
    assert_eq!(names, ["v0", "v1", "a0"]);
    let v1: Vec<u64> = p
        .rendition("v1")
        .unwrap()
        .segments()
        .iter()
        .map(|s| s.sequence)
        .collect();
    assert_eq!(v1, [0, 1, 2]);
    let text = p.multivariant().unwrap();
    assert!(text.contains(
        "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio 0\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a0/index.m3u8\"\n"
    ));
    assert_eq!(text.matches("#EXT-X-STREAM-INF:").count(), 2, "{text}");
    assert!(text.contains("CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=25.000,AUDIO=\"audio\"\nv0/index.m3u8\n"), "{text}");
    assert!(text.contains("\nv1/index.m3u8\n"));
}

#[test]
fn audio_only_streams_lead_with_audio_and_unpackaged_codecs_are_left_out() {
    let mut p = Packager::new(CmafConfig::default());
    p.push(&audio_header());
    for i in 0..200u32 {
        p.push(&audio(i * 21));
    }
    let a = p.rendition("a0").unwrap();
    assert!(a.segments().len() >= 3);
    assert!(a.segments().iter().all(|s| (s.duration - 1.0).abs() < 0.03));
    let text = p.multivariant().unwrap();
    assert!(
        text.contains("CODECS=\"mp4a.40.2\"\na0/index.m3u8\n"),
        "{text}"
    );

    // MP3 has no fMP4 sample entry here: the track is marked, nothing panics.
    let mut p = Packager::new(CmafConfig::default());
    for i in 0..100u32 {
        p.push(&Frame::audio(
            i * 26,
            Bytes::from_static(&[0x2f, 0xff, 0xfb, 0x90, 0x00]),
        ));
    }
    let a = p.rendition("a0").unwrap();
    assert!(a.unsupported().is_some() && a.segments().is_empty());
    assert!(p.multivariant().is_none());
}

#[test]
fn without_parts_a_segment_is_one_fragment() {
    let mut p = Packager::new(CmafConfig {
        part_ms: 0,
        ..CmafConfig::default()
    });
    feed(&mut p, 0, 6, 50);
    let v = p.rendition("v0").unwrap();
    assert!(v
        .segments()
        .iter()
        .all(|s| s.chunks.len() == 1 && s.parts.is_empty()));
    let text = p.media_playlist("v0", true).unwrap();
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"));
    assert!(!text.contains("#EXT-X-PART") && !text.contains("PRELOAD") && !text.contains("SKIP"));
}

#[test]
fn the_mpd_lists_each_rendition_with_a_timeline_and_a_period_per_publisher() {
    let mut p = Packager::new(CmafConfig::default());
    p.set_wall_clock(1_700_000_000_000);
    feed(&mut p, 0, 8, 50);
    p.publisher_left();
    p.set_wall_clock(1_700_000_020_000);
    feed(&mut p, 8000, 8, 50);
    let mpd = p.mpd(1_700_000_030_000).unwrap();
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
    assert!(
        mpd.contains("availabilityStartTime=\"2023-11-14T22:13:20.000Z\""),
        "{mpd}"
    );
    assert!(
        mpd.contains("suggestedPresentationDelay=\"PT6.000S\""),
        "{mpd}"
    );
    assert!(mpd.contains("<UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"2023-11-14T22:13:50.000Z\"/>"), "{mpd}");
    // Two publishers: two Periods, the second starting 20 s after the first in wall time.
    assert_eq!(mpd.matches("<Period ").count(), 2, "{mpd}");
    assert!(
        mpd.contains("<Period id=\"0\" start=\"PT0.000S\">"),
        "{mpd}"
    );
    assert!(
        mpd.contains("<Period id=\"1\" start=\"PT20.000S\">"),
        "{mpd}"
    );
    assert_eq!(mpd.matches("<AdaptationSet ").count(), 4, "{mpd}");
    assert!(
        mpd.contains("<Representation id=\"v0\" bandwidth=\""),
        "{mpd}"
    );
    assert!(mpd.contains("codecs=\"avc1.64001f\""), "{mpd}");
    assert!(mpd.contains("codecs=\"mp4a.40.2\""), "{mpd}");
    // Video: 2 s segments at 90 kHz, first period from 0, second from 8 s.
    assert!(mpd.contains("presentationTimeOffset=\"0\" startNumber=\"0\" initialization=\"v0/init0.mp4\" media=\"v0/seg$Number$.m4s\">\n          <SegmentTimeline>\n            <S t=\"0\" d=\"180000\" r=\"3\"/>"), "{mpd}");
    assert!(
        mpd.contains("presentationTimeOffset=\"720000\" startNumber=\"4\""),
        "{mpd}"
    );
    assert!(
        mpd.contains("<S t=\"720000\" d=\"180000\" r=\"2\"/>"),
        "{mpd}"
    );
}

#[test]
fn the_plain_playlist_has_no_low_latency_tags() {
    let mut p = Packager::new(CmafConfig::default());
    feed(&mut p, 0, 6, 25);
    let text = p.rendition("v0").unwrap().plain_playlist();
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n"));
    assert!(
        !text.contains("#EXT-X-PART")
            && !text.contains("PRELOAD")
            && !text.contains("SERVER-CONTROL")
    );
    assert_eq!(text.matches("#EXTINF:").count(), 5);
}

#[test]
fn ac3_has_no_sequence_start_and_its_first_frame_describes_it() {
    let mut p = Packager::new(CmafConfig::default());
    p.push(&video_header());
    let ac3 = |ts: u32| {
        let mut payload = vec![0x91];
        payload.extend_from_slice(b"ac-3");
        payload.extend_from_slice(&[0x0b, 0x77, 0x48, 0x0d, 0x0c, 0x40, 0x2f, 0x84, 0, 0]);
        Frame::audio(ts, Bytes::from(payload))
    };
    let mut next_audio = 0;
    for i in 0..100u32 {
        let ts = i * 40;
        while next_audio <= ts {
            p.push(&ac3(next_audio));
            next_audio += 32;
        }
        p.push(&video(ts, i % 25 == 0));
    }
    let a = p.rendition("a0").unwrap();
    assert!(a.unsupported().is_none(), "{:?}", a.unsupported());
    assert!(a.segments().len() >= 2);
    let init = a.init_segment().unwrap();
    assert!(init.windows(7).any(|w| w == b"dac3\x10\x08\xc0"));
    assert!(p
        .multivariant()
        .unwrap()
        .contains("CODECS=\"avc1.64001f,ac-3\""));
}

#[test]
fn a_continued_packager_numbers_past_the_other_and_starts_with_a_discontinuity() {
    let config = CmafConfig::default();
    let mut first = Packager::new(config);
    feed(&mut first, 0, 6, 25);
    let from = first.continuation();
    let first_rendition = first.rendition("v0").unwrap();
    let last_sequence = first_rendition.segments().back().unwrap().sequence;
    assert!(from.sequence > last_sequence + 1, "{from:?}");
    assert!(from.part > first_rendition.next_part(), "{from:?}");

    let mut second = Packager::new(config);
    second.continue_from(from);
    feed(&mut second, 0, 4, 25);
    let rendition = second.rendition("v0").unwrap();
    let segments = rendition.segments();
    assert_eq!(segments.front().unwrap().sequence, from.sequence);
    assert!(segments.front().unwrap().discontinuity);
    let playlist = second.media_playlist("v0", false).unwrap();
    assert!(
        playlist.contains(&format!("#EXT-X-MEDIA-SEQUENCE:{}", from.sequence)),
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    assert!(
        playlist.contains(&format!(
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            from.discontinuity_sequence
        )),
        "{playlist}"
    );
    assert!(
        playlist.contains(&format!("init{}.mp4", from.init)),
        "{playlist}"
    );
    // Every part number is new.
    let first_parts: Vec<u64> = (0..first_rendition.next_part()).collect();
    assert!(rendition.next_part() > from.part);
    assert!(first_parts.iter().all(|p| *p < from.part));
}
