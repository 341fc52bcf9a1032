//! Interoperability: real, independent RTMP clients (Debian's FFmpeg 5.1, a recent FFmpeg,
//! ffprobe, rtmpdump, GStreamer rtmp2src/rtmp2sink) publish to and play from a weir started
//! in-process on 127.0.0.1:0. Every test checks what the players received: codec parameters,
//! frame counts for the time played, keyframe first, continuous timelines.
//!
//! The same checks pass against nginx-rtmp (harness_nginx.rs), so a failure here is weir's.
//! Each test starts its own server; its log is printed when the test fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::fixtures::{
    small_fixture, HEIGHT, SECONDS, SMALL_HEIGHT, SMALL_SECONDS, SMALL_WIDTH, WIDTH,
};
use common::process::ChildGuard;
use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, ffprobe_url, fixture, gst_play, gst_publish, rtmpdump_play,
    tools, Expect, Ffmpeg, FixtureKind, MediaReport, TestDir, WeirServer,
};

/// Generous bounds: the machine is small and shared.
const START: Duration = Duration::from_secs(15);
const FINISH: Duration = Duration::from_secs(20);
const FPS: f64 = 30.0;

/// Joins a scoped thread, re-raising its panic (with its own message) in the test thread.
fn join<T>(handle: thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Video frame count within `[min_s, max_s]` seconds of 30 fps, audio at least `min_s`.
fn assert_counts(report: &MediaReport, who: &str, min_s: f64, max_s: f64) {
    let v = report.video_frames();
    let (lo, hi) = (
        (min_s * FPS).floor() as usize,
        (max_s * FPS).ceil() as usize,
    );
    assert!(
        (lo..=hi).contains(&v),
        "{who}: {v} video frames, want {lo}..={hi} ({min_s}..{max_s} s at 30 fps)\n{}",
        report.summary()
    );
    let a = report.audio_frames();
    let (alo, ahi) = (
        (min_s * 44_100.0 / 1024.0).floor() as usize,
        (max_s * 44_100.0 / 1024.0).ceil() as usize + 2,
    );
    assert!(
        (alo..=ahi).contains(&a),
        "{who}: {a} audio frames, want {alo}..={ahi}\n{}",
        report.summary()
    );
}

/// Without B-frames every video step is one frame (33.3 ms): no duplicate (step 0), no
/// reordering, no dropped frame (step ≥ 2 frames).
fn assert_one_frame_steps(report: &MediaReport, who: &str) {
    let dts = report.video_dts_ms();
    let bad: Vec<String> = dts
        .windows(2)
        .enumerate()
        .filter(|(_, w)| !(20..=50).contains(&(w[1] - w[0])))
        .map(|(i, w)| format!("packet {}: {} -> {} ms", i + 1, w[0], w[1]))
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "{who}: video steps are not one frame apart: {bad:?}\n{}",
        report.summary()
    );
}

fn assert_span(report: &MediaReport, who: &str, min: f64, max: f64) {
    let d = report.duration_s();
    assert!(
        (min..=max).contains(&d),
        "{who}: media span {d:.3} s not in {min}..{max}\n{}",
        report.summary()
    );
}

/// weir rebases every viewer to start near 0 (README "Every viewer's timestamps start near
/// zero"); rtmpdump writes the server's timestamps unchanged, so this is visible there.
fn assert_starts_near_zero(report: &MediaReport, who: &str) {
    let first = report.video_dts_ms().first().copied();
    assert!(
        first.is_some_and(|t| (0..=100).contains(&t)),
        "{who}: first video timestamp {first:?} ms, weir should start each viewer near 0\n{}",
        report.summary()
    );
}

fn assert_b_frames(report: &MediaReport, who: &str) {
    let b = report.video_frames_of_type("B");
    assert!(
        b * 3 >= report.video_frames(),
        "{who}: B-frames lost or reordered away: {b} of {}\n{}",
        report.video_frames(),
        report.summary()
    );
    // Composition times survived: with B-frames, presentation differs from decoding time.
    let reordered = report
        .packets
        .iter()
        .filter(|p| p.media == common::probe::Media::Video)
        .filter(|p| matches!((p.pts_ms, p.dts_ms), (Some(pts), Some(dts)) if pts != dts))
        .count();
    assert!(
        reordered * 3 >= report.video_packets(),
        "{who}: only {reordered} of {} video packets have pts != dts (composition time lost)\n{}",
        report.video_packets(),
        report.summary()
    );
}

/// Case 1: Debian's FFmpeg publishes in real time; four different players share the stream.
#[test]
fn debian_ffmpeg_publish_played_by_ffmpeg_ffprobe_rtmpdump_gstreamer() {
    let dir = TestDir::new("interop-debian");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("debian");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);
    weir.wait_published(&["live/debian"], START);

    let (played, probed, dumped, gst) = thread::scope(|s| {
        let probed = s.spawn(|| ffprobe_url(&url, 3.0, dir.path()));
        let dumped = s.spawn(|| rtmpdump_play(&url, 4.0, dir.path()));
        let gst = s.spawn(|| gst_play(&url, 4.0, dir.path()));
        let played = ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 3.0, dir.path());
        (played, join(probed), join(dumped), join(gst))
    });

    let expect = Expect::h264_aac(WIDTH, HEIGHT);
    played.assert_matches(&expect.clone().min_seconds(2.8), "ffmpeg 5.1 play (-t 3)");
    assert_counts(&played, "ffmpeg 5.1 play", 2.8, 3.2);
    assert_span(&played, "ffmpeg 5.1 play", 2.8, 3.2);
    assert_one_frame_steps(&played, "ffmpeg 5.1 play");
    let video = played.video.as_ref().expect("video");
    assert!(
        video.profile.contains("Baseline"),
        "profile {}",
        video.profile
    );
    assert_eq!(played.audio.as_ref().expect("audio").profile, "LC");

    probed.assert_matches(&expect.clone().min_seconds(2.5), "ffprobe live URL (3 s)");
    assert_counts(&probed, "ffprobe live URL", 2.5, 3.4);
    assert_one_frame_steps(&probed, "ffprobe live URL");

    // Wall-clock players: the cached GOP (≤ 1 s) plus up to 4 s live (less their slow start
    // on a loaded machine), never more than the file (6 s).
    for (who, report) in [("rtmpdump", &dumped), ("gst rtmp2src", &gst)] {
        report.assert_matches(&expect.clone().min_seconds(2.5), who);
        assert_counts(report, who, 2.5, 6.0);
        assert_one_frame_steps(report, who);
    }
    assert_starts_near_zero(&dumped, "rtmpdump");

    publisher.wait_finished(FINISH);
    weir.wait_published(&[], Duration::from_secs(5));
    weir.shutdown();
}

/// Case 2: A recent FFmpeg publishes the B-frame fixture and plays it back: the composition time
/// offsets survive the server (B-frames decode as B, pts != dts).
#[test]
fn recent_ffmpeg_publishes_and_plays_b_frames() {
    let dir = TestDir::new("interop-recent");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("recent");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Recent,
        &url,
        fixture(FixtureKind::H264BFrames),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let played = ffmpeg_play_to_flv(Ffmpeg::Recent, &url, 3.0, dir.path());
    played.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8),
        "recent ffmpeg play, B-frames",
    );
    assert_counts(&played, "recent ffmpeg play", 2.8, 3.2);
    assert_span(&played, "recent ffmpeg play", 2.8, 3.2);
    assert_b_frames(&played, "recent ffmpeg play");
    let profile = &played.video.as_ref().expect("video").profile;
    assert_eq!(profile, "Main");

    publisher.wait_finished(FINISH);
    weir.shutdown();
}

/// Case 3: GStreamer's rtmp2sink publishes live-encoded media; Debian's ffprobe and ffmpeg read it.
#[test]
fn gstreamer_rtmp2sink_publish_read_by_debian_ffmpeg() {
    let dir = TestDir::new("interop-gst-publish");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("gst");
    let mut publisher = gst_publish(&url, 7, dir.path());
    publisher.wait_started(START);
    weir.wait_published(&["live/gst"], Duration::from_secs(5));

    let (probed, played) = thread::scope(|s| {
        let probed = s.spawn(|| ffprobe_url(&url, 2.0, dir.path()));
        let played = ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 2.5, dir.path());
        (join(probed), played)
    });
    let expect = Expect::h264_aac(WIDTH, HEIGHT);
    probed.assert_matches(&expect.clone().min_seconds(1.7), "ffprobe of rtmp2sink");
    assert_counts(&probed, "ffprobe of rtmp2sink", 1.7, 2.4);
    played.assert_matches(&expect.min_seconds(2.3), "ffmpeg 5.1 play of rtmp2sink");
    assert_counts(&played, "ffmpeg 5.1 play of rtmp2sink", 2.3, 2.7);
    assert_one_frame_steps(&played, "ffmpeg 5.1 play of rtmp2sink");

    publisher.wait_finished(FINISH);
    weir.wait_published(&[], Duration::from_secs(5));
    weir.shutdown();
}

/// Case 4: Two streams at once, with different resolutions: each player gets its own stream, and
/// stopping one publisher does not disturb the other stream's player.
#[test]
fn two_streams_are_independent() {
    let dir = TestDir::new("interop-two");
    let weir = WeirServer::start(dir.path());
    let (url_a, url_b) = (weir.url("big"), weir.url("small"));
    let small = small_fixture();
    let mut pub_a = ffmpeg_publish(
        Ffmpeg::Debian,
        &url_a,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    let mut pub_b = ffmpeg_publish(Ffmpeg::Debian, &url_b, small, true, dir.path());
    pub_a.wait_started(START);
    pub_b.wait_started(START);
    weir.wait_published(&["live/big", "live/small"], Duration::from_secs(5));

    let (a, b) = thread::scope(|s| {
        // B's player runs 5 s of media; A's publisher is stopped about 1.5 s into it.
        let b = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &url_b, 5.0, dir.path()));
        let a = ffmpeg_play_to_flv(Ffmpeg::Debian, &url_a, 1.5, dir.path());
        let status = pub_a.child().stop(Duration::from_secs(5));
        assert!(status.is_some(), "publisher A did not stop on SIGINT");
        weir.wait_published(&["live/small"], Duration::from_secs(5));
        (a, join(b))
    });
    a.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.4),
        "player of stream A",
    );
    assert_counts(&a, "player of stream A", 1.4, 1.7);
    b.assert_matches(
        &Expect::h264_aac(SMALL_WIDTH, SMALL_HEIGHT).min_seconds(4.8),
        "player of stream B",
    );
    assert_counts(&b, "player of stream B", 4.8, 5.2);
    assert_one_frame_steps(&b, "player of stream B");

    pub_b.wait_finished(FINISH);
    weir.wait_published(&[], Duration::from_secs(5));
    assert!(f64::from(SMALL_SECONDS) > f64::from(SECONDS));
    weir.shutdown();
}

/// ffprobe of the live `url` printing each packet as soon as it is read (line-buffered
/// through `stdbuf`); returns the wall time from spawn to the first packet line, and the
/// finished process.
fn time_to_first_packet(url: &str, seconds: f64, log_dir: &Path) -> (Duration, ChildGuard) {
    let stdbuf = ["/usr/bin/stdbuf", "/bin/stdbuf"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("stdbuf (coreutils) not found; run scripts/setup.sh");
    let mut cmd = Command::new(stdbuf);
    cmd.arg("-oL")
        .arg(tools::ffprobe())
        .args(["-hide_banner", "-v", "error", "-read_intervals"])
        .arg(format!("%+{seconds}"))
        .args([
            "-show_entries",
            "stream=codec_type,codec_name,width,height,sample_rate,channels\
             :packet=codec_type,pts_time,flags",
            "-of",
            "compact",
        ])
        .arg(url);
    let mut child = ChildGuard::spawn("ffprobe-ttff", cmd, log_dir);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    let first = loop {
        if child.stdout().lines().any(|l| l.starts_with("packet|")) {
            break started.elapsed();
        }
        assert!(
            child.is_running() && Instant::now() < deadline,
            "ffprobe printed no packet\n{}",
            child.diagnostics()
        );
        thread::sleep(Duration::from_millis(5));
    };
    child.expect_success(Duration::from_secs_f64(seconds + 15.0));
    (first, child)
}

/// Whether the first AVC NALU video tag of the FLV file prefix `data` (AVC packet type 1, so
/// not the sequence header) is a keyframe (frame type 1); `None` until that whole tag is in.
fn first_video_nalu_tag(data: &[u8]) -> Option<bool> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        return None;
    }
    let mut at = 9 + 4;
    while at + 11 <= data.len() {
        let kind = data[at] & 0x1f;
        let size = usize::from(data[at + 1]) << 16
            | usize::from(data[at + 2]) << 8
            | usize::from(data[at + 3]);
        let body = at + 11;
        if body + size > data.len() {
            return None;
        }
        if kind == 9 && size >= 2 && data[body + 1] == 1 {
            return Some(data[body] >> 4 == 1);
        }
        at = body + size + 4;
    }
    None
}

/// rtmpdump the live `url` to a file, timing from spawn until the file holds the first
/// whole video frame (which must be a keyframe); stops after `seconds` of wall time (or when
/// the stream ends) and ffprobes the file.
fn rtmpdump_time_to_keyframe(url: &str, seconds: f64, log_dir: &Path) -> (Duration, MediaReport) {
    let out = log_dir.join("rtmpdump-late.flv");
    let mut cmd = Command::new(tools::rtmpdump());
    cmd.args(["-v", "-r", url, "-o"]).arg(&out);
    let mut child = ChildGuard::spawn("rtmpdump-late", cmd, log_dir);
    let started = Instant::now();
    let ttff = loop {
        let data = std::fs::read(&out).unwrap_or_default();
        if let Some(key) = first_video_nalu_tag(&data) {
            assert!(key, "rtmpdump's first video frame is not a keyframe");
            break started.elapsed();
        }
        assert!(
            child.is_running() && started.elapsed() < Duration::from_secs(15),
            "rtmpdump received no video frame\n{}",
            child.diagnostics()
        );
        thread::sleep(Duration::from_millis(5));
    };
    let _ = child.wait_timeout(Duration::from_secs_f64(seconds).saturating_sub(started.elapsed()));
    child.stop(Duration::from_secs(5));
    (ttff, common::probe_file(&out, log_dir))
}

/// Case 5: A player joining mid-GOP starts at once with metadata, sequence headers and the cached
/// GOP from its keyframe.
#[test]
fn late_joiner_starts_at_the_cached_keyframe_at_once() {
    let dir = TestDir::new("interop-late");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("late");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);
    // Mid-GOP: keyframes are at whole seconds.
    let joined_at = publisher.wait_media_seconds(3.2, START);
    eprintln!("players join at {joined_at:.2} s of media");
    assert!(
        joined_at < 3.7,
        "publisher ran past the middle of the GOP before the players joined ({joined_at:.2} s)"
    );

    let (ttff, probe, played, dumped) = thread::scope(|s| {
        let played = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 2.0, dir.path()));
        // Until the stream ends (at 6 s of media): shows where in the stream it started.
        let dumped = s.spawn(|| rtmpdump_time_to_keyframe(&url, 5.0, dir.path()));
        let (ttff, probe) = time_to_first_packet(&url, 1.0, dir.path());
        (ttff, probe, join(played), join(dumped))
    });
    let (dump_ttff, dumped) = dumped;

    eprintln!(
        "late joiner: time to first frame: ffprobe (spawn to first packet printed, includes \
         stream probing) {ttff:?}; rtmpdump (spawn to a whole keyframe tag on disk) {dump_ttff:?}"
    );
    assert!(
        ttff < Duration::from_secs(2),
        "late joiner waited {ttff:?} for the first packet (bound 2 s)\n{}",
        probe.diagnostics()
    );
    assert!(
        dump_ttff < Duration::from_secs(2),
        "late rtmpdump waited {dump_ttff:?} for the first keyframe (bound 2 s)"
    );
    let out = probe.stdout();
    for want in [
        "codec_name=h264",
        "width=640",
        "height=360",
        "codec_name=aac",
        "sample_rate=44100",
        "channels=2",
    ] {
        assert!(
            out.contains(want),
            "ffprobe stream info lacks {want}:\n{out}"
        );
    }
    let first_video = out
        .lines()
        .find(|l| l.starts_with("packet|codec_type=video"))
        .unwrap_or_default();
    assert!(
        first_video.contains("flags=K"),
        "first video packet is not a keyframe: {first_video}"
    );

    played.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.8),
        "late ffmpeg play",
    );
    assert_counts(&played, "late ffmpeg play", 1.8, 2.2);
    assert_one_frame_steps(&played, "late ffmpeg play");

    // rtmpdump joined at 3.2..3.7 s and played to the end (6 s): from the keyframe at 3 s it
    // got about 3 s; starting at the live edge would give < 2.7 s, an older GOP > 3.9 s.
    dumped.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.5),
        "late rtmpdump",
    );
    assert_starts_near_zero(&dumped, "late rtmpdump");
    let span = dumped.video_dts_ms();
    let span_s = (span[span.len() - 1] - span[0]) as f64 / 1000.0;
    assert!(
        (2.8..=3.2).contains(&span_s),
        "late rtmpdump got {span_s:.3} s of video, want about 3 s (from the keyframe at 3 s)\n{}",
        dumped.summary()
    );
    assert_counts(&dumped, "late rtmpdump", 2.8, 3.2);

    publisher.wait_finished(FINISH);
    weir.shutdown();
}

/// Case 6: Source timestamps cross 2^24 ms (the extended-timestamp field) 2.2 s into the stream.
/// weir rebases each viewer to start near 0, so the crossing itself is not visible to the
/// players: they must get a continuous timeline and every frame across it.
#[test]
fn timestamps_crossing_extended_timestamp_play_continuously() {
    let dir = TestDir::new("interop-extended-ts");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("extended");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::NearExtendedTimestamp),
        true,
        dir.path(),
    );
    publisher.wait_started(START);

    let (played, dumped) = thread::scope(|s| {
        let dumped = s.spawn(|| rtmpdump_play(&url, 4.5, dir.path()));
        let played = ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 4.0, dir.path());
        (played, join(dumped))
    });
    // Both joined before 1.5 s of media, so their first keyframe is at 0 or 1 s of the source
    // and 3.3 s of received media covers the crossing at 2.2 s.
    let expect = Expect::h264_aac(WIDTH, HEIGHT);
    played.assert_matches(&expect.clone().min_seconds(3.8), "ffmpeg 5.1 play");
    assert_counts(&played, "ffmpeg 5.1 play", 3.8, 4.2);
    assert_one_frame_steps(&played, "ffmpeg 5.1 play");
    dumped.assert_matches(&expect.min_seconds(3.3), "rtmpdump");
    assert_counts(&dumped, "rtmpdump", 3.3, 6.0);
    assert_one_frame_steps(&dumped, "rtmpdump");
    assert_starts_near_zero(&dumped, "rtmpdump");
    for (who, child_log) in [("ffmpeg-play", "ffmpeg-play"), ("rtmpdump", "rtmpdump")] {
        let errors = stderr_lines_matching(dir.path(), child_log, &["error", "Error"]);
        assert!(errors.is_empty(), "{who} reported errors: {errors:?}");
    }

    publisher.wait_finished(FINISH);
    weir.shutdown();
}

/// Lines of the captured stderr of every `{name}.N` process in `dir` containing a needle.
fn stderr_lines_matching(dir: &Path, name: &str, needles: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read test dir").flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&format!("{name}.")) && file.ends_with(".stderr") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            out.extend(
                text.lines()
                    .filter(|l| needles.iter().any(|n| l.contains(n)))
                    .map(|l| format!("{file}: {l}")),
            );
        }
    }
    out
}

/// Case 7: A second publisher on a live key is refused; the first stream keeps flowing.
#[test]
fn second_publisher_on_a_live_key_is_rejected() {
    let dir = TestDir::new("interop-dup");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("taken");
    let base = fixture(FixtureKind::H264Baseline);
    let mut first = ffmpeg_publish(Ffmpeg::Debian, &url, base, true, dir.path());
    first.wait_started(START);
    weir.wait_published(&["live/taken"], Duration::from_secs(5));

    let played = thread::scope(|s| {
        let played = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 4.0, dir.path()));
        thread::sleep(Duration::from_millis(500));
        let mut second = ffmpeg_publish(Ffmpeg::Debian, &url, base, false, dir.path());
        let status = second.child().wait_timeout(Duration::from_secs(15));
        let diagnostics = second.child().diagnostics();
        let status = status.unwrap_or_else(|| {
            panic!("second publisher was not refused within 15 s\n{diagnostics}")
        });
        assert!(
            !status.success(),
            "second publisher on a live key exited with {status}\n{diagnostics}"
        );
        let stderr = second.child().stderr();
        assert!(
            stderr.contains("already being published") || stderr.contains("BadName"),
            "second publisher's stderr does not say why it was refused\n{diagnostics}"
        );
        assert!(
            first.child().is_running(),
            "the first publisher stopped\n{}",
            first.child().diagnostics()
        );
        assert_eq!(weir.published_keys(), ["live/taken"]);
        join(played)
    });
    played.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(3.8),
        "player of the first stream",
    );
    assert_counts(&played, "player of the first stream", 3.8, 4.2);
    assert_one_frame_steps(&played, "player of the first stream");
    assert!(
        weir.log_text().contains("publish rejected"),
        "weir did not log the refusal\n{}",
        weir.log_tail(30)
    );

    first.wait_finished(FINISH);
    weir.shutdown();
}

/// Case 5b: without a GOP cache (`streams.gop_cache = false`, and likewise when a GOP outgrows
/// `streams.gop_max_bytes` / `gop_max_duration_ms`), a player joining mid-GOP must wait for
/// the next keyframe instead of starting with undecodable inter frames.
#[test]
fn late_joiner_without_gop_cache_starts_at_the_next_keyframe() {
    let dir = TestDir::new("interop-late-nocache");
    let mut config = weir::Config::default();
    config.rtmp.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config.http.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config.api.addr = "127.0.0.1:0".parse().expect("loopback addr");
    config.streams.gop_cache = false;
    let weir = WeirServer::start_with(config, dir.path());
    let url = weir.url("nocache");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);
    let joined_at = publisher.wait_media_seconds(3.2, START);
    eprintln!("player joins at {joined_at:.2} s of media");

    // Panics if the first video frame on disk is not a keyframe.
    let (ttff, dumped) = rtmpdump_time_to_keyframe(&url, 5.0, dir.path());
    eprintln!("no GOP cache: rtmpdump time to first (key)frame {ttff:?}");
    assert!(
        ttff < Duration::from_secs(2),
        "waited {ttff:?} for the next keyframe (bound 2 s; keyframes are 1 s apart)"
    );
    dumped.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.5),
        "rtmpdump without GOP cache",
    );
    // From the keyframe at 4 s to the end at 6 s.
    assert_counts(&dumped, "rtmpdump without GOP cache", 1.8, 2.2);
    assert_starts_near_zero(&dumped, "rtmpdump without GOP cache");

    publisher.wait_finished(FINISH);
    weir.shutdown();
}
