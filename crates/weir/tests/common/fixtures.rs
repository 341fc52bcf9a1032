//! Test media: FLV files made by Debian's FFmpeg from lavfi sources, generated once and
//! cached under `CARGO_TARGET_TMPDIR/weir-fixtures` (shared by test processes; written to a
//! temporary name and renamed, so concurrent processes never see a partial file).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::probe::{self, Expect, MediaReport};
use super::{process, tools, TestDir};

/// Width of every fixture.
pub const WIDTH: u32 = 640;
/// Height of every fixture.
pub const HEIGHT: u32 = 360;
/// Frame rate of every fixture (keyframe every `FPS` frames = 1 s).
pub const FPS: u32 = 30;
/// AAC sample rate of every fixture.
pub const SAMPLE_RATE: u32 = 44_100;
/// Length of every fixture in seconds.
pub const SECONDS: u32 = 6;
/// 2^24 ms: where an RTMP timestamp no longer fits the 3-byte field (extended timestamp).
pub const EXTENDED_TIMESTAMP_MS: i64 = 0xFF_FFFF;

/// The fixture variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixtureKind {
    /// H.264 Constrained Baseline without B-frames + AAC-LC; timestamps from 0.
    H264Baseline,
    /// H.264 Main with 2 B-frames (non-zero composition times) + AAC-LC; timestamps from 0.
    H264BFrames,
    /// Like `H264Baseline` but timestamps start at 16775 s, so the stream crosses
    /// 2^24 ms (16777.215 s) about 2.2 s in.
    NearExtendedTimestamp,
}

impl FixtureKind {
    const ALL: [FixtureKind; 3] = [
        FixtureKind::H264Baseline,
        FixtureKind::H264BFrames,
        FixtureKind::NearExtendedTimestamp,
    ];

    fn file_stem(self) -> &'static str {
        match self {
            FixtureKind::H264Baseline => "h264-baseline-aac",
            FixtureKind::H264BFrames => "h264-bframes-aac",
            FixtureKind::NearExtendedTimestamp => "h264-baseline-aac-ts16775s",
        }
    }

    fn ts_offset_s(self) -> Option<&'static str> {
        match self {
            FixtureKind::NearExtendedTimestamp => Some("16775"),
            _ => None,
        }
    }

    fn video_args(self) -> &'static [&'static str] {
        match self {
            FixtureKind::H264BFrames => &["-profile:v", "main", "-bf", "2"],
            _ => &["-profile:v", "baseline", "-bf", "0"],
        }
    }
}

/// A generated, verified fixture file.
#[derive(Debug)]
pub struct Fixture {
    /// The variant.
    pub kind: FixtureKind,
    /// The FLV file.
    pub path: PathBuf,
    /// What ffprobe found in it.
    pub report: MediaReport,
}

impl Fixture {
    /// First video timestamp in ms (as stored in the file).
    pub fn first_video_ms(&self) -> i64 {
        self.report
            .video_dts_ms()
            .first()
            .copied()
            .expect("fixture has video")
    }

    /// Last video timestamp in ms.
    pub fn last_video_ms(&self) -> i64 {
        self.report
            .video_dts_ms()
            .last()
            .copied()
            .expect("fixture has video")
    }
}

/// The fixture of `kind`, generated on first use in this process (or found in the cache) and
/// checked with ffprobe: codecs, size, frame counts, keyframe spacing, B-frames, and for
/// `NearExtendedTimestamp` that the timestamps really cross 2^24 ms.
pub fn fixture(kind: FixtureKind) -> &'static Fixture {
    static CACHE: [OnceLock<Fixture>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = FixtureKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("listed kind");
    CACHE[i].get_or_init(|| build(kind))
}

fn build(kind: FixtureKind) -> Fixture {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-fixtures");
    std::fs::create_dir_all(&dir).expect("create fixture dir");
    // The name carries every parameter, so changing one regenerates.
    let path = dir.join(format!(
        "{}-{WIDTH}x{HEIGHT}-{FPS}fps-{SECONDS}s-v1.flv",
        kind.file_stem()
    ));
    let logs = TestDir::new("fixture");
    if !path.is_file() {
        generate(kind, &dir, &path, logs.path());
    }
    let report = probe::probe_file(&path, logs.path());
    verify(kind, &path, &report);
    Fixture { kind, path, report }
}

fn generate(kind: FixtureKind, dir: &Path, path: &Path, log_dir: &Path) {
    let tmp = dir.join(format!(
        "{}.{}.tmp.flv",
        kind.file_stem(),
        std::process::id()
    ));
    let mut cmd = Command::new(tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={WIDTH}x{HEIGHT}:rate={FPS}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={SAMPLE_RATE}"))
        .arg("-t")
        .arg(SECONDS.to_string())
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(kind.video_args())
        .args([
            "-g",
            &FPS.to_string(),
            "-keyint_min",
            &FPS.to_string(),
            "-sc_threshold",
            "0",
        ])
        .args([
            "-c:a",
            "aac",
            "-b:a",
            "96k",
            "-ar",
            &SAMPLE_RATE.to_string(),
            "-ac",
            "2",
        ]);
    if let Some(offset) = kind.ts_offset_s() {
        cmd.args(["-output_ts_offset", offset]);
    }
    cmd.args(["-f", "flv"]).arg(&tmp);
    let (status, _, stderr) = process::run("ffmpeg-fixture", cmd, log_dir, Duration::from_secs(60));
    assert!(
        status.success(),
        "generating fixture {kind:?} with {} failed ({status}):\n{stderr}",
        tools::version_line(tools::ffmpeg())
    );
    std::fs::rename(&tmp, path).expect("move fixture into place");
}

fn verify(kind: FixtureKind, path: &Path, report: &MediaReport) {
    let frames = (SECONDS * FPS) as usize;
    let expect = Expect::h264_aac(WIDTH, HEIGHT)
        .min_video_frames(frames)
        .min_audio_frames((f64::from(SECONDS) * f64::from(SAMPLE_RATE) / 1024.0) as usize - 2);
    let mut bad = report.check(&expect);
    if report.video_frames() != frames {
        bad.push(format!(
            "{} video frames, want exactly {frames}",
            report.video_frames()
        ));
    }
    if report.video_keyframes() != SECONDS as usize {
        bad.push(format!(
            "{} keyframes, want one per second",
            report.video_keyframes()
        ));
    }
    let b = report.video_frames_of_type("B");
    match kind {
        FixtureKind::H264BFrames if b < frames / 3 => bad.push(format!("only {b} B-frames")),
        FixtureKind::H264Baseline | FixtureKind::NearExtendedTimestamp if b > 0 => {
            bad.push(format!("{b} B-frames in a baseline fixture"))
        }
        _ => {}
    }
    let v = report.video_dts_ms();
    let (first, last) = (v[0], v[v.len() - 1]);
    if kind == FixtureKind::NearExtendedTimestamp {
        if !(first < EXTENDED_TIMESTAMP_MS - 1500 && last > EXTENDED_TIMESTAMP_MS + 1500) {
            bad.push(format!(
                "timestamps {first}..{last} ms do not cross 2^24 = {EXTENDED_TIMESTAMP_MS} ms with 1.5 s either side"
            ));
        }
    } else if !(-200..=200).contains(&first) {
        bad.push(format!("first video timestamp {first} ms, want about 0"));
    }
    assert!(
        bad.is_empty(),
        "fixture {} ({kind:?}) is not what the tests need (delete it to regenerate):\n  - {}\n{}",
        path.display(),
        bad.join("\n  - "),
        report.summary()
    );
}

/// Width of [`small_fixture`].
pub const SMALL_WIDTH: u32 = 320;
/// Height of [`small_fixture`].
pub const SMALL_HEIGHT: u32 = 180;
/// Length of [`small_fixture`] in seconds (longer than the others, so it outlives them).
pub const SMALL_SECONDS: u32 = 9;

/// A second, distinguishable stream: H.264 Baseline 320x180 30 fps (1 s GOP) + AAC 44.1 kHz
/// stereo, [`SMALL_SECONDS`] long, timestamps from 0. Generated and cached like [`fixture`],
/// and checked for size, frame count and keyframe spacing.
pub fn small_fixture() -> &'static Fixture {
    static SMALL: OnceLock<Fixture> = OnceLock::new();
    SMALL.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("weir-fixtures");
        std::fs::create_dir_all(&dir).expect("create fixture dir");
        let stem =
            format!("h264-baseline-aac-{SMALL_WIDTH}x{SMALL_HEIGHT}-{FPS}fps-{SMALL_SECONDS}s-v1");
        let path = dir.join(format!("{stem}.flv"));
        let logs = TestDir::new("fixture-small");
        if !path.is_file() {
            let tmp = dir.join(format!("{stem}.{}.tmp.flv", std::process::id()));
            let mut cmd = Command::new(tools::ffmpeg());
            cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
                .args(["-f", "lavfi", "-i"])
                .arg(format!(
                    "testsrc2=size={SMALL_WIDTH}x{SMALL_HEIGHT}:rate={FPS}"
                ))
                .args(["-f", "lavfi", "-i"])
                .arg(format!("sine=frequency=880:sample_rate={SAMPLE_RATE}"))
                .arg("-t")
                .arg(SMALL_SECONDS.to_string())
                .args([
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
                ])
                .args([
                    "-profile:v",
                    "baseline",
                    "-bf",
                    "0",
                    "-g",
                    "30",
                    "-keyint_min",
                    "30",
                ])
                .args([
                    "-sc_threshold",
                    "0",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "64k",
                    "-ac",
                    "2",
                ])
                .args(["-ar", &SAMPLE_RATE.to_string(), "-f", "flv"])
                .arg(&tmp);
            let (status, _, stderr) =
                process::run("ffmpeg-fixture", cmd, logs.path(), Duration::from_secs(60));
            assert!(
                status.success(),
                "generating the small fixture failed ({status}):\n{stderr}"
            );
            std::fs::rename(&tmp, &path).expect("move fixture into place");
        }
        let report = probe::probe_file(&path, logs.path());
        let frames = (SMALL_SECONDS * FPS) as usize;
        let mut bad = report.check(&Expect::h264_aac(SMALL_WIDTH, SMALL_HEIGHT));
        if report.video_frames() != frames {
            bad.push(format!(
                "{} video frames, want {frames}",
                report.video_frames()
            ));
        }
        if report.video_keyframes() != SMALL_SECONDS as usize {
            bad.push(format!(
                "{} keyframes, want one per second",
                report.video_keyframes()
            ));
        }
        assert!(
            bad.is_empty(),
            "small fixture {} is wrong (delete it to regenerate):\n  - {}\n{}",
            path.display(),
            bad.join("\n  - "),
            report.summary()
        );
        Fixture {
            kind: FixtureKind::H264Baseline,
            path,
            report,
        }
    })
}
