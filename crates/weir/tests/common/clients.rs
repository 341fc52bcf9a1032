//! Drivers for real RTMP clients. Players return what they received, parsed by ffprobe
//! ([`MediaReport`]); publishers return a [`Publisher`] handle.
//!
//! All functions block; `log_dir` receives recordings and each tool's stdout/stderr.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::fixtures::{self, Fixture};
use super::probe::{self, MediaReport};
use super::process::ChildGuard;
use super::tools;

/// Which FFmpeg build to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ffmpeg {
    /// Debian's FFmpeg 5.1 (`ffmpeg` on PATH).
    Debian,
    /// A recent static FFmpeg (see [`tools::ffmpeg_recent`]).
    Recent,
}

impl Ffmpeg {
    /// The binary.
    pub fn path(self) -> &'static Path {
        match self {
            Ffmpeg::Debian => tools::ffmpeg(),
            Ffmpeg::Recent => tools::ffmpeg_recent(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Ffmpeg::Debian => "ffmpeg",
            Ffmpeg::Recent => "ffmpeg-recent",
        }
    }
}

/// A running publisher.
pub struct Publisher {
    child: ChildGuard,
    url: String,
    log_dir: PathBuf,
    /// ffmpeg's `-progress` file, if the publisher is ffmpeg.
    progress: Option<PathBuf>,
}

impl Publisher {
    /// The publishing process.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Waits until the stream is being published: for ffmpeg, until its progress report
    /// counts a sent video frame; for other publishers, until a player can read the stream
    /// ([`wait_until_playable`]). Panics with the publisher's output on timeout or exit.
    pub fn wait_started(&mut self, timeout: Duration) {
        let Some(progress) = self.progress.clone() else {
            assert!(
                wait_until_playable(&self.url, timeout, &self.log_dir),
                "stream {} did not become playable within {timeout:?}\n{}",
                self.url,
                self.child.diagnostics()
            );
            eprintln!(
                "{} playable after {:?}",
                self.child.name(),
                self.child.elapsed()
            );
            return;
        };
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(&progress).unwrap_or_default();
            let sent = text
                .lines()
                .filter_map(|l| l.strip_prefix("frame="))
                .filter_map(|n| n.trim().parse::<u64>().ok())
                .any(|n| n > 0);
            if sent {
                eprintln!(
                    "{} publishing after {:?}",
                    self.child.name(),
                    self.child.elapsed()
                );
                return;
            }
            assert!(
                self.child.is_running(),
                "{} exited before publishing to {}\n{}",
                self.child.name(),
                self.url,
                self.child.diagnostics()
            );
            assert!(
                Instant::now() < deadline,
                "{} did not start publishing to {} within {timeout:?}\n{}",
                self.child.name(),
                self.url,
                self.child.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How much media ffmpeg has sent so far, in seconds (the last `out_time_us` of its
    /// progress report); `None` for other publishers or before the first report.
    pub fn media_seconds(&self) -> Option<f64> {
        let progress = self.progress.as_ref()?;
        let text = std::fs::read_to_string(progress).unwrap_or_default();
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("out_time_us="))
            .filter_map(|n| n.trim().parse::<i64>().ok())
            .find(|us| *us >= 0)
            .map(|us| us as f64 / 1e6)
    }

    /// Waits until ffmpeg has sent at least `seconds` of media ([`Publisher::media_seconds`]);
    /// returns the value reached. Panics if it exits first or `timeout` passes.
    pub fn wait_media_seconds(&mut self, seconds: f64, timeout: Duration) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = self.media_seconds().filter(|t| *t >= seconds) {
                return t;
            }
            assert!(
                self.child.is_running() && Instant::now() < deadline,
                "{} did not reach {seconds} s of media within {timeout:?} (at {:?})\n{}",
                self.child.name(),
                self.media_seconds(),
                self.child.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the publisher to finish on its own with status 0; panics otherwise.
    pub fn wait_finished(&mut self, timeout: Duration) {
        self.child.expect_success(timeout);
    }
}

/// Publishes `fixture` to `url` with `-c copy -f flv` (`-re` when `realtime`), keeping the
/// file's timestamps (`-copyts`, so [`fixtures::FixtureKind::NearExtendedTimestamp`] really
/// sends timestamps near 2^24 ms). Returns at once; see [`Publisher::wait_started`].
pub fn ffmpeg_publish(
    ffmpeg: Ffmpeg,
    url: &str,
    fixture: &Fixture,
    realtime: bool,
    log_dir: &Path,
) -> Publisher {
    ffmpeg_publish_with(ffmpeg, url, fixture, realtime, &[], log_dir)
}

/// [`ffmpeg_publish`] with extra output options (e.g. `-ca_file` for `rtmps://`).
pub fn ffmpeg_publish_with(
    ffmpeg: Ffmpeg,
    url: &str,
    fixture: &Fixture,
    realtime: bool,
    output_options: &[&str],
    log_dir: &Path,
) -> Publisher {
    let progress = unique(log_dir, &format!("{}-publish", ffmpeg.name()), "progress");
    let mut cmd = Command::new(ffmpeg.path());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "info"]);
    if realtime {
        cmd.arg("-re");
    }
    cmd.arg("-copyts")
        .arg("-i")
        .arg(&fixture.path)
        .args(["-c", "copy", "-stats_period", "0.1", "-progress"])
        .arg(&progress)
        .args(output_options)
        .args(["-f", "flv", url]);
    Publisher {
        child: ChildGuard::spawn(&format!("{}-publish", ffmpeg.name()), cmd, log_dir),
        url: url.to_owned(),
        log_dir: log_dir.to_owned(),
        progress: Some(progress),
    }
}

/// Plays `url` with ffmpeg for `seconds` of media (`-c copy -copyinkf -t seconds`, so the
/// file holds exactly what the server sent from the first packet on, with timestamps
/// rebased to 0 by ffmpeg) and ffprobes the recording.
pub fn ffmpeg_play_to_flv(ffmpeg: Ffmpeg, url: &str, seconds: f64, log_dir: &Path) -> MediaReport {
    let out = unique(log_dir, &format!("{}-play", ffmpeg.name()), "flv");
    let mut cmd = Command::new(ffmpeg.path());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "info", "-i", url])
        .args([
            "-map",
            "0:v",
            "-map",
            "0:a",
            "-c",
            "copy",
            "-copyinkf",
            "-t",
        ])
        .arg(seconds.to_string())
        .args(["-f", "flv"])
        .arg(&out);
    let mut child = ChildGuard::spawn(&format!("{}-play", ffmpeg.name()), cmd, log_dir);
    child.expect_success(Duration::from_secs_f64(seconds + 20.0));
    probe_recording(&out, &child, log_dir)
}

/// ffprobes the live `url` directly for about `seconds` (`-read_intervals %+seconds`),
/// decoding every frame. Timestamps are as the server sent them (not rebased).
pub fn ffprobe_url(url: &str, seconds: f64, log_dir: &Path) -> MediaReport {
    let interval = format!("%+{seconds}");
    probe::probe(
        url,
        &["-read_intervals", &interval],
        log_dir,
        Duration::from_secs_f64(seconds + 20.0),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `url` with short ffprobe runs until it reports a video stream (for servers that
/// reject a player before the publisher arrives as well as for those that hold it).
/// Returns whether the stream became playable within `timeout`.
pub fn wait_until_playable(url: &str, timeout: Duration, log_dir: &Path) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = probe::probe(
            url,
            &["-read_intervals", "%+0.1"],
            log_dir,
            left.min(Duration::from_secs(5)),
        );
        if attempt.is_ok_and(|r| r.video.is_some()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Plays `url` live with rtmpdump (`-v -r url -o file`) for `seconds` of wall-clock time,
/// stops it with SIGINT, and ffprobes the file (raw FLV tags with the server's timestamps).
pub fn rtmpdump_play(url: &str, seconds: f64, log_dir: &Path) -> MediaReport {
    let out = unique(log_dir, "rtmpdump", "flv");
    let mut cmd = Command::new(tools::rtmpdump());
    cmd.args(["-v", "-r", url, "-o"]).arg(&out);
    let mut child = ChildGuard::spawn("rtmpdump", cmd, log_dir);
    // rtmpdump ends by itself when the stream ends; otherwise stop it after `seconds`.
    let _ = child.wait_timeout(Duration::from_secs_f64(seconds));
    child.stop(Duration::from_secs(5));
    probe_recording(&out, &child, log_dir)
}

/// Plays `url` with GStreamer for `seconds` of wall-clock time: `rtmp2src ! flvdemux`, video
/// through `h264parse`, audio through `aacparse`, remuxed by `flvmux` to a file, which is
/// ffprobed after a SIGINT-triggered EOS. A received stream must have both audio and video.
pub fn gst_play(url: &str, seconds: f64, log_dir: &Path) -> MediaReport {
    let out = unique(log_dir, "gst-play", "flv");
    let pipeline = format!(
        "rtmp2src location={url} ! flvdemux name=d \
         d.video ! queue ! h264parse ! video/x-h264,stream-format=avc,alignment=au ! m.video \
         d.audio ! queue ! aacparse ! m.audio \
         flvmux name=m streamable=true ! filesink location={}",
        out.display()
    );
    let mut child = gst_launch("gst-play", &pipeline, log_dir);
    let _ = child.wait_timeout(Duration::from_secs_f64(seconds));
    let status = child.stop(Duration::from_secs(5));
    assert!(
        status.is_some(),
        "gst-launch-1.0 did not stop on SIGINT within 5 s\n{}",
        child.diagnostics()
    );
    probe_recording(&out, &child, log_dir)
}

/// Publishes `seconds` of live test video and audio with GStreamer: `videotestsrc` 640x360
/// 30 fps → `openh264enc` (keyframe every 30 frames) and `audiotestsrc` 44.1 kHz stereo →
/// `voaacenc`, `flvmux` → `rtmp2sink`. Ends by itself after `seconds`.
pub fn gst_publish(url: &str, seconds: u32, log_dir: &Path) -> Publisher {
    let video_buffers = seconds * fixtures::FPS;
    let audio_buffers = (seconds * fixtures::SAMPLE_RATE).div_ceil(1024);
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers={video_buffers} \
         ! video/x-raw,width={w},height={h},framerate={fps}/1 \
         ! openh264enc gop-size={fps} complexity=low ! h264parse ! queue ! m.video \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 \
         ! audio/x-raw,rate={rate},channels=2 ! voaacenc ! aacparse ! queue ! m.audio \
         flvmux name=m streamable=true ! rtmp2sink location={url}",
        w = fixtures::WIDTH,
        h = fixtures::HEIGHT,
        fps = fixtures::FPS,
        rate = fixtures::SAMPLE_RATE,
    );
    Publisher {
        child: gst_launch("gst-publish", &pipeline, log_dir),
        url: url.to_owned(),
        log_dir: log_dir.to_owned(),
        progress: None,
    }
}

fn gst_launch(name: &str, pipeline: &str, log_dir: &Path) -> ChildGuard {
    let mut cmd = Command::new(tools::gst_launch());
    cmd.arg("-e")
        .args(pipeline.split_whitespace())
        .env("GST_DEBUG_NO_COLOR", "1")
        .env("GST_DEBUG", "*:1");
    ChildGuard::spawn(name, cmd, log_dir)
}

fn probe_recording(file: &Path, client: &ChildGuard, log_dir: &Path) -> MediaReport {
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 0,
        "{} recorded nothing to {}\n{}",
        client.name(),
        file.display(),
        client.diagnostics()
    );
    probe::probe(
        &file.to_string_lossy(),
        &[],
        log_dir,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}\nrecording client:\n{}", client.diagnostics()))
}

fn unique(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    dir.join(format!(
        "{stem}.{}.{ext}",
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}
