//! Endurance, the short variant for CI (issue 12; the long runs are `scripts/soak.sh` and
//! `scripts/faults.sh`, see docs/ENDURANCE.md). Each test starts the weir binary as a
//! process of its own (so its RSS and open files are its own) on free loopback ports and
//! drives it with the load tool's library (weir-bench), the same code the scripts run:
//!
//! * a one-minute soak: 4 publishers restarting every 10-20 s, 50 RTMP viewers, 4 HTTP-FLV
//!   and 4 HLS clients joining and leaving, timelines checked, RSS and open fds sampled;
//! * the timestamp wraps at 2^31 and 2^32 ms on RTMP, HTTP-FLV and HLS (fMP4 and MPEG-TS),
//!   with ffprobe as an independent witness of the HLS segments' decode times;
//! * the faults, small: kill -9 of an FFmpeg publisher mid-GOP, 300 viewers reset at once,
//!   a flood at 5x `rtmp.max_connections`, stalled viewers cut by the lag policy, and a
//!   50 Mbit/s publisher.
//!
//! Every test fails on a panic or an ERROR line in the server's log.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::process::ChildGuard;
use common::{fixture, free_port, probe_file, wait_for_port, FixtureKind, TestDir};
use weir_bench::faults::{self, Outcome, Target};
use weir_bench::hls_watch::get;
use weir_bench::soak::{self, SoakOptions};

/// weir running as a process with a config file.
struct Weir {
    child: ChildGuard,
    rtmp: SocketAddr,
    http: SocketAddr,
}

impl Weir {
    /// Starts weir with `[rtmp]` extras and other TOML sections, on free loopback ports.
    fn start(dir: &TestDir, rtmp_extra: &str, other: &str) -> Weir {
        for attempt in 0..3 {
            let rtmp: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let http: SocketAddr = ([127, 0, 0, 1], free_port()).into();
            let config = dir.file(&format!("weir-{attempt}.toml"));
            std::fs::write(
                &config,
                format!(
                    "[rtmp]\naddr = \"{rtmp}\"\n{rtmp_extra}\n[http]\naddr = \"{http}\"\n\
                     [api]\naddr = \"127.0.0.1:0\"\n{other}\n"
                ),
            )
            .expect("write weir.toml");
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
            cmd.arg("--config").arg(&config);
            let mut child = ChildGuard::spawn("weir", cmd, dir.path());
            let up = wait_for_port(rtmp, Duration::from_secs(15), || child.is_running())
                && wait_for_port(http, Duration::from_secs(5), || child.is_running());
            if up {
                return Weir { child, rtmp, http };
            }
            eprintln!(
                "weir did not start (attempt {attempt}):\n{}",
                child.diagnostics()
            );
        }
        panic!("weir did not start in three attempts");
    }

    fn target(&self, file: PathBuf) -> Target {
        Target {
            url: format!("rtmp://{}/live", self.rtmp),
            file,
            server_pid: self.child.pid(),
        }
    }

    /// Stops weir and asserts its log has no panic and no ERROR line.
    fn stop_and_check_log(mut self) {
        assert!(
            self.child.is_running(),
            "weir died\n{}",
            self.child.diagnostics()
        );
        self.child.terminate();
        let log = self.child.stderr();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("panicked at") || l.contains(" ERROR "))
            .take(5)
            .collect();
        assert!(bad.is_empty(), "weir logged:\n{}", bad.join("\n"));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn stream_file() -> PathBuf {
    fixture(FixtureKind::H264Baseline).path.clone()
}

fn assert_passed(outcome: &Outcome) {
    eprintln!("{}", outcome.line());
    assert!(
        outcome.pass,
        "{}\n{}",
        outcome.line(),
        serde_json::to_string_pretty(&outcome.numbers).unwrap_or_default()
    );
}

#[test]
fn soak_one_minute_with_restarts_and_churn() {
    let dir = TestDir::new("soak");
    let weir = Weir::start(&dir, "", "");
    let options = SoakOptions {
        url: format!("rtmp://{}/live", weir.rtmp),
        http: Some(weir.http.to_string()),
        file: stream_file(),
        minutes: 1.0,
        publishers: 4,
        restart_min_secs: 10,
        restart_max_secs: 20,
        pause_max_ms: 2000,
        rtmp_viewers: 50,
        flv_viewers: 4,
        hls_clients: 4,
        stay_min_secs: 5,
        stay_max_secs: 20,
        server_pid: Some(weir.child.pid()),
        sample_secs: 2,
        warmup_secs: Some(25),
        // A minute is short for a flat RSS (HLS windows still filling); the fds back to
        // their starting count after everyone left is the tight check here.
        max_growth_pct: 30.0,
        fd_slack: 4,
        max_step_ms: 1033,
        start_ms: 0,
    };
    let report = runtime().block_on(soak::run(options)).expect("soak runs");
    let summary = soak::summary(&report);
    eprintln!("{summary}");
    assert!(report.pass, "{summary}");
    // What weir promises across a publisher's restart: RTMP viewers stay and go on.
    assert!(report.publishers.publishes >= 8, "{summary}");
    assert!(report.rtmp.saw_unpublish > 0, "{summary}");
    // (Some leave before their publisher is back; those that stay go on, on one timeline.)
    assert!(report.rtmp.continued_across_restart > 0, "{summary}");
    assert!(
        report.flv.frames > 0 && report.hls.segments > 0,
        "{summary}"
    );
    weir.stop_and_check_log();
}

#[test]
fn timestamps_wrap_at_2_31_and_2_32_on_every_output() {
    let dir = TestDir::new("wrap");
    let weir = Weir::start(&dir, "", "[hls]\nwindow = 30");
    let target = weir.target(stream_file());
    let options = faults::WrapOptions {
        lead_secs: 8,
        secs: 18,
        http: weir.http.to_string(),
    };
    let runtime = runtime();
    let outcome = runtime
        .block_on(faults::wrap(&target, &options))
        .expect("wrap runs");
    assert_passed(&outcome);
    // ffprobe, independently: the segments of each stream, joined, on one timeline.
    for stream in ["wrap-31", "wrap-32"] {
        for flavour in ["ts", "v0"] {
            let joined = dir.file(&format!("{stream}-{flavour}.media"));
            runtime.block_on(join_segments(weir.http, stream, flavour, &joined));
            let report = probe_file(&joined, dir.path());
            let dts = report.video_dts_ms();
            let span = dts.last().copied().unwrap_or(0) - dts.first().copied().unwrap_or(0);
            assert!(
                span >= 12_000,
                "{stream} {flavour}: {span} ms of video\n{}",
                report.summary()
            );
            let problems = report.video_timeline_problems(100);
            assert!(
                problems.is_empty(),
                "{stream} {flavour}: {problems:?}\n{}",
                report.summary()
            );
        }
    }
    weir.stop_and_check_log();
}

/// The init segment (fMP4) and every segment of a media playlist, concatenated into `out`.
async fn join_segments(http: SocketAddr, stream: &str, flavour: &str, out: &std::path::Path) {
    let authority = http.to_string();
    let base = format!("/live/{stream}/{flavour}");
    let (status, body) = get(&authority, &format!("{base}/index.m3u8"))
        .await
        .expect("playlist");
    assert_eq!(status, 200, "{base}/index.m3u8");
    let text = String::from_utf8_lossy(&body).into_owned();
    let mut uris: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .filter_map(|l| l.split('"').next())
        .take(1)
        .map(str::to_owned)
        .collect();
    uris.extend(
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned),
    );
    assert!(uris.len() >= 8, "{base}: {text}");
    let mut data = Vec::new();
    for uri in uris {
        let (status, body) = get(&authority, &format!("{base}/{uri}"))
            .await
            .expect("segment");
        assert_eq!(status, 200, "{base}/{uri}");
        data.extend_from_slice(&body);
    }
    std::fs::write(out, data).expect("write joined segments");
}

#[test]
fn kill_9_of_a_publisher_mid_gop_then_a_republish() {
    let dir = TestDir::new("kill9");
    let weir = Weir::start(&dir, "", "");
    let target = weir.target(stream_file());
    // A real process to kill: Debian's FFmpeg publishing the fixture in a loop.
    let mut ffmpeg = Command::new(common::tools::ffmpeg());
    ffmpeg
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-stream_loop", "-1", "-i"])
        .arg(&target.file)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("{}/fault-kill9", target.url));
    let options = faults::Kill9Options {
        viewers: 5,
        observe_secs: 4,
    };
    let outcome = runtime()
        .block_on(faults::kill9(&target, &options, ffmpeg))
        .expect("kill9 runs");
    assert_passed(&outcome);
    weir.stop_and_check_log();
}

#[test]
fn three_hundred_viewers_reset_at_once() {
    let dir = TestDir::new("reset");
    let weir = Weir::start(&dir, "", "");
    let target = weir.target(stream_file());
    let options = faults::ResetOptions {
        viewers: 300,
        fd_slack: 4,
    };
    let outcome = runtime()
        .block_on(faults::reset(&target, &options))
        .expect("reset runs");
    assert_passed(&outcome);
    weir.stop_and_check_log();
}

#[test]
fn connection_flood_at_five_times_max_connections() {
    let dir = TestDir::new("flood");
    let weir = Weir::start(&dir, "max_connections = 30", "");
    let target = weir.target(stream_file());
    let options = faults::FloodOptions {
        max_connections: 30,
        factor: 5,
        secs: 5,
    };
    let outcome = runtime()
        .block_on(faults::flood(&target, &options))
        .expect("flood runs");
    assert_passed(&outcome);
    // Thousands of refusals, about one log line a second (not one per connection).
    let log = weir.child.stderr();
    let lines = log.matches("refused rtmp connection").count();
    assert!(
        (1..=options.secs as usize + 3).contains(&lines),
        "{lines} refusal lines for a {} s flood",
        options.secs
    );
    assert!(log.contains(" more="), "the refusal lines count the others");
    weir.stop_and_check_log();
}

#[test]
fn stalled_viewers_are_cut_by_the_lag_policy() {
    let dir = TestDir::new("stall");
    // Small socket buffers on both sides, so the server feels the stall within seconds
    // (the kernel would otherwise hold minutes of this small stream).
    let weir = Weir::start(
        &dir,
        "write_timeout_secs = 3\nsend_buffer_bytes = 32768",
        "[streams]\nmax_viewer_lag_secs = 2",
    );
    let target = weir.target(stream_file());
    let options = faults::StopOptions {
        viewers: 50,
        lag_secs: 2,
        write_timeout_secs: 3,
        rss_limit_mib: 64,
        fd_slack: 4,
        recv_buffer: 16_384,
    };
    // In-process viewers that stop reading: to the server, the same as stopped processes
    // (scripts/faults.sh stops real ones with SIGSTOP).
    let outcome = runtime()
        .block_on(faults::sigstop(&target, &options, None))
        .expect("sigstop runs");
    assert_passed(&outcome);
    weir.stop_and_check_log();
}

#[test]
fn a_50_mbit_publisher_into_slow_viewers() {
    let dir = TestDir::new("overload");
    let weir = Weir::start(
        &dir,
        "write_timeout_secs = 3",
        "[streams]\nmax_viewer_lag_secs = 2",
    );
    let target = weir.target(stream_file());
    let options = faults::OverloadOptions {
        kbps: 50_000,
        slow_viewers: 4,
        slow_kbps: 4_000,
        fast_viewers: 1,
        control_viewers: 3,
        secs: 12,
        rss_limit_mib: 128,
    };
    let outcome = runtime()
        .block_on(faults::overload(&target, &options))
        .expect("overload runs");
    assert_passed(&outcome);
    weir.stop_and_check_log();
}
