//! Validates the real-client harness against nginx-rtmp, an independent RTMP server: if
//! these pass, a failure of the same checks against weir is weir's, not the harness's.
//!
//! Each test starts its own nginx on a free loopback port.

mod common;

use std::time::Duration;

use common::fixtures::{EXTENDED_TIMESTAMP_MS, HEIGHT, WIDTH};
use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, ffprobe_url, fixture, gst_play, gst_publish, rtmpdump_play,
    Expect, Ffmpeg, FixtureKind, MediaReport, NginxRtmp, TestDir,
};

const START: Duration = Duration::from_secs(10);
const FINISH: Duration = Duration::from_secs(15);

#[test]
fn fixtures_are_what_they_claim() {
    // fixture() verifies codecs, counts, keyframe spacing, B-frames and the 2^24 crossing.
    for kind in [
        FixtureKind::H264Baseline,
        FixtureKind::H264BFrames,
        FixtureKind::NearExtendedTimestamp,
    ] {
        let f = fixture(kind);
        assert!(f.path.is_file(), "{kind:?} at {}", f.path.display());
    }
    // The checks can fail: the same report against wrong expectations must be rejected.
    let report = &fixture(FixtureKind::H264Baseline).report;
    assert!(report.check(&Expect::h264_aac(WIDTH, HEIGHT)).is_empty());
    assert_eq!(report.check(&Expect::h264_aac(1280, 720)).len(), 1);
    assert_eq!(
        report
            .check(&Expect::h264_aac(WIDTH, HEIGHT).min_seconds(7.0))
            .len(),
        2
    );
    let mut gap = Expect::h264_aac(WIDTH, HEIGHT);
    gap.max_gap_ms = Some(20);
    assert!(
        !report.check(&gap).is_empty(),
        "33 ms frame steps must exceed a 20 ms limit"
    );
    let wrap = fixture(FixtureKind::NearExtendedTimestamp);
    assert!(
        wrap.first_video_ms() < EXTENDED_TIMESTAMP_MS
            && wrap.last_video_ms() > EXTENDED_TIMESTAMP_MS
    );
}

#[test]
fn debian_ffmpeg_publishes_and_plays() {
    let dir = TestDir::new("a-ffmpeg");
    let mut nginx = NginxRtmp::start();
    let url = nginx.url("a");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 3.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8),
        "ffmpeg 5.1 play",
    );
    assert_duration(&report, 2.8, 3.2);
    let profile = &report.video.as_ref().expect("video").profile;
    assert!(profile.contains("Baseline"), "profile {profile}");

    publisher.wait_finished(FINISH);
    nginx.assert_running();
}

#[test]
fn debian_ffmpeg_keeps_b_frames() {
    let dir = TestDir::new("a-bframes");
    let nginx = NginxRtmp::start();
    let url = nginx.url("ab");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264BFrames),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 3.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8),
        "ffmpeg 5.1 play, B-frames",
    );
    assert_b_frames(&report);
    publisher.wait_finished(FINISH);
}

#[test]
fn rtmpdump_plays() {
    let dir = TestDir::new("b-rtmpdump");
    let nginx = NginxRtmp::start();
    let url = nginx.url("b");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    // 4 s of wall clock for 1.5 s of media: nginx waits for a key frame, and the player's
    // start is slow on a loaded machine.
    let report = rtmpdump_play(&url, 4.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.5),
        "rtmpdump play",
    );
    publisher.wait_finished(FINISH);
}

#[test]
fn gstreamer_rtmp2src_plays() {
    let dir = TestDir::new("c-gst-play");
    let nginx = NginxRtmp::start();
    let url = nginx.url("c");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let report = gst_play(&url, 4.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.5),
        "gst rtmp2src play",
    );
    publisher.wait_finished(FINISH);
}

#[test]
fn gstreamer_rtmp2sink_publishes() {
    let dir = TestDir::new("d-gst-publish");
    let nginx = NginxRtmp::start();
    let url = nginx.url("d");
    let mut publisher = gst_publish(&url, 8, dir.path());
    publisher.wait_started(START);

    let report = ffprobe_url(&url, 2.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.5),
        "ffprobe of gst rtmp2sink",
    );
    publisher.wait_finished(FINISH);
}

#[test]
fn recent_ffmpeg_publishes_and_plays() {
    let dir = TestDir::new("e-ffmpeg-recent");
    let nginx = NginxRtmp::start();
    let url = nginx.url("e");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Recent,
        &url,
        fixture(FixtureKind::H264BFrames),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let report = ffmpeg_play_to_flv(Ffmpeg::Recent, &url, 3.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8),
        "recent ffmpeg play",
    );
    assert_duration(&report, 2.8, 3.2);
    assert_b_frames(&report);
    publisher.wait_finished(FINISH);
}

#[test]
fn timestamps_cross_extended_timestamp_boundary() {
    let dir = TestDir::new("f-extended-ts");
    let nginx = NginxRtmp::start();
    let url = nginx.url("f");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::NearExtendedTimestamp),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let (probed, dumped) = std::thread::scope(|s| {
        let dumped = s.spawn(|| rtmpdump_play(&url, 4.5, dir.path()));
        (
            ffprobe_url(&url, 4.0, dir.path()),
            dumped.join().expect("rtmpdump thread"),
        )
    });
    for (who, report) in [("ffprobe", &probed), ("rtmpdump", &dumped)] {
        report.assert_matches(&Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.5), who);
        // nginx relays absolute timestamps, so the readers must see the crossing itself.
        let v = report.video_dts_ms();
        assert!(
            v[0] < EXTENDED_TIMESTAMP_MS && v[v.len() - 1] > EXTENDED_TIMESTAMP_MS + 500,
            "{who}: video timestamps do not cross 2^24 ms\n{}",
            report.summary()
        );
    }
    publisher.wait_finished(FINISH);
}

fn assert_duration(report: &MediaReport, min: f64, max: f64) {
    let d = report.duration_s();
    assert!(
        (min..=max).contains(&d),
        "duration {d:.3} s not in {min}..{max}\n{}",
        report.summary()
    );
}

fn assert_b_frames(report: &MediaReport) {
    let b = report.video_frames_of_type("B");
    assert!(
        b * 3 >= report.video_frames(),
        "B-frames lost or reordered away: {b} of {}\n{}",
        report.video_frames(),
        report.summary()
    );
}
