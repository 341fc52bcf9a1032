//! Publisher takeover: an encoder that reconnects after a network drop finds its old, frozen
//! session still holding the stream. With `publish.stale_secs`, the newcomer replaces it once
//! the old one has sent nothing for that long; before that it is refused. The player attached
//! to the stream stays attached and its timeline continues without a jump.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::thread;
use std::time::Duration;

use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, fixture, Ffmpeg, FixtureKind, TestDir, WeirServer,
};

#[test]
fn a_frozen_publisher_is_replaced_after_stale_secs_and_players_stay_attached() {
    let dir = TestDir::new("takeover");
    let mut config = common::loopback_config();
    // 2 s: the early newcomer below (an FFmpeg started after the freeze) must arrive within
    // it even on a loaded machine.
    config.publish.stale_secs = 2;
    let weir = WeirServer::start_with(config, dir.path());
    let url = weir.url("take");
    let mut first = weir.publish_fixture("take", dir.path());
    let player = {
        let url = url.clone();
        let dir = dir.path().to_owned();
        thread::spawn(move || ffmpeg_play_to_flv(Ffmpeg::Debian, &url, 6.0, &dir))
    };
    thread::sleep(Duration::from_millis(1200));
    // The network drops: the first encoder freezes with its connection open.
    let pid = first.child().pid();
    assert!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) } == 0);

    // A newcomer while the old session is still fresh: refused.
    let mut early = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    let status = early.child().wait_timeout(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| !s.success()),
        "early newcomer: {status:?}"
    );

    // After stale_secs of silence the reconnecting encoder takes over.
    thread::sleep(Duration::from_millis(2200));
    let mut second = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    second.wait_started(Duration::from_secs(15));
    let log = weir.log_text();
    assert!(
        log.contains("publisher takeover: the current publisher sent nothing for"),
        "{log}"
    );
    assert!(
        log.contains("replaced by a new publisher of the same stream"),
        "{log}"
    );

    // The player saw both publishers as one continuous stream.
    let report = player.join().unwrap();
    assert!(
        report.video_frames() >= 150,
        "{} video frames",
        report.video_frames()
    );
    let problems = report.video_timeline_problems(400);
    assert!(problems.is_empty(), "timeline: {problems:?}");
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    first.child().kill();
    second.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}
