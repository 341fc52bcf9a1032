//! The `weir` binary itself: banner with the real port, a real publish through it, `weir
//! config`, config errors, and SIGTERM.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{self, ChildGuard};
use common::{ffmpeg_publish, fixture, Ffmpeg, FixtureKind, TestDir};

fn weir_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.env_remove("WEIR_LOG").env("NO_COLOR", "1");
    cmd
}

/// Removes ANSI escape sequences (in case the log is colored anyway).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn output(child: &ChildGuard) -> String {
    strip_ansi(&format!("{}{}", child.stdout(), child.stderr()))
}

/// Waits until the process output has a line containing `needle`; returns that line.
fn wait_for_line(child: &mut ChildGuard, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(line) = output(child).lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        assert!(
            child.is_running() && Instant::now() < deadline,
            "weir printed no line with {needle:?} within {timeout:?}\n{}",
            child.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &mut ChildGuard) {
    let pid = libc::pid_t::try_from(child.pid()).expect("pid fits pid_t");
    assert!(
        child.is_running(),
        "weir already exited\n{}",
        child.diagnostics()
    );
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped child.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill(SIGTERM) failed");
}

#[test]
fn binary_prints_real_port_serves_a_publisher_and_stops_on_sigterm() {
    let dir = TestDir::new("cli-run");
    let mut cmd = weir_command();
    cmd.args([
        "--rtmp-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        "--api-addr",
        "127.0.0.1:0",
    ]);
    let mut weir = ChildGuard::spawn("weir", cmd, dir.path());

    let listening = wait_for_line(&mut weir, "listening for RTMP on ", Duration::from_secs(15));
    eprintln!("banner: {listening}");
    let addr = listening
        .rsplit("listening for RTMP on ")
        .next()
        .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("no address in the banner line {listening:?}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1", "banner: {listening}");
    assert_ne!(
        addr.port(),
        0,
        "banner shows port 0, not the bound port: {listening}"
    );
    let publish = wait_for_line(&mut weir, "publish:", Duration::from_secs(5));
    let base = format!("rtmp://127.0.0.1:{}/live", addr.port());
    assert!(
        publish.contains(&base),
        "publish hint {publish:?} lacks {base}"
    );
    let watch = wait_for_line(&mut weir, "watch:", Duration::from_secs(5));
    assert!(watch.contains(&base), "watch hint {watch:?} lacks {base}");
    // stderr is a pipe here, not a terminal: no colour escape codes in the log.
    assert!(
        !weir.stderr().contains('\x1b'),
        "ANSI escapes in a log that is not a terminal"
    );
    let admin = wait_for_line(&mut weir, "admin API and metrics:", Duration::from_secs(5));
    assert!(admin.contains("/api/v1/streams"), "{admin}");

    // A real publish through the binary: the whole 6 s file as fast as it goes.
    let url = format!("{base}/cli");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        false,
        dir.path(),
    );
    publisher.wait_finished(Duration::from_secs(20));
    let ended = wait_for_line(&mut weir, "publish ended", Duration::from_secs(5));
    let frames: u64 = ended
        .split_whitespace()
        .find_map(|w| w.strip_prefix("frames="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frames= in {ended:?}"));
    // 180 video + 259 AAC frames, plus the two sequence headers.
    assert!(
        (435..=445).contains(&frames),
        "weir counted {frames} frames from a publisher of 180 video + 259 audio frames: {ended}"
    );
    assert!(ended.contains("live/cli"), "{ended}");

    // A player waiting for an unpublished key must not hold up the shutdown.
    let mut cmd = Command::new(common::tools::rtmpdump());
    cmd.args(["-v", "-r", &format!("{base}/waiting"), "-o"])
        .arg(dir.file("waiting.flv"));
    let mut waiting = ChildGuard::spawn("rtmpdump-waiting", cmd, dir.path());
    let play = wait_for_line(&mut weir, "play started", Duration::from_secs(10));
    assert!(play.contains("live/waiting"), "{play}");

    sigterm(&mut weir);
    let started = Instant::now();
    let status = weir.wait_timeout(Duration::from_secs(8));
    let stopped_in = started.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "weir did not exit within 8 s of SIGTERM\n{}",
            weir.diagnostics()
        )
    });
    eprintln!("weir exited {status} {stopped_in:?} after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "weir exit status after SIGTERM\n{}",
        weir.diagnostics()
    );
    assert!(
        waiting.wait_timeout(Duration::from_secs(5)).is_some(),
        "the waiting rtmpdump was not disconnected by the shutdown\n{}",
        waiting.diagnostics()
    );
    let log = output(&weir);
    assert!(log.contains("shutting down"), "no shutdown line\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("live/waiting") && l.contains("server shutting down")),
        "the waiting player's end was not logged with the shutdown reason\n{log}"
    );
    assert!(log.contains("stopped"), "no stopped line\n{log}");
}

#[test]
fn weir_config_prints_toml_that_reads_back_to_the_defaults() {
    let dir = TestDir::new("cli-config");
    let mut cmd = weir_command();
    cmd.arg("config");
    let (status, stdout, stderr) =
        process::run("weir-config", cmd, dir.path(), Duration::from_secs(10));
    assert!(status.success(), "weir config: {status}\n{stderr}");
    let value: toml::Value = toml::from_str(&stdout)
        .unwrap_or_else(|e| panic!("weir config printed bad TOML: {e}\n{stdout}"));
    for table in ["rtmp", "streams", "log"] {
        assert!(
            value.get(table).is_some_and(toml::Value::is_table),
            "no [{table}] in\n{stdout}"
        );
    }
    assert_eq!(
        value["rtmp"]["addr"].as_str(),
        Some("0.0.0.0:1935"),
        "default rtmp.addr"
    );
    let config = weir::Config::from_toml(&stdout)
        .unwrap_or_else(|e| panic!("weir config output does not load as a config: {e}\n{stdout}"));
    assert_eq!(config, weir::Config::default());
    assert!(
        stdout.contains('#'),
        "the printed config has no comments:\n{stdout}"
    );
}

#[test]
fn unknown_config_key_exits_2_and_names_the_key() {
    let dir = TestDir::new("cli-bad-config");
    for (file, text, key) in [
        ("nested.toml", "[rtmp]\nchunk_sise = 4096\n", "chunk_sise"),
        ("top.toml", "[rtmpp]\naddr = \"127.0.0.1:0\"\n", "rtmpp"),
    ] {
        let path = dir.file(file);
        std::fs::write(&path, text).expect("write config");
        let mut cmd = weir_command();
        // If the file were accepted, weir would listen on loopback, never on 1935.
        cmd.args([
            "--rtmp-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--api-addr",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&path);
        let (status, stdout, stderr) =
            process::run("weir-bad", cmd, dir.path(), Duration::from_secs(10));
        assert_eq!(
            status.code(),
            Some(2),
            "weir with {file} ({text:?}): {status}\nstdout: {stdout}\nstderr: {stderr}"
        );
        assert!(
            stderr.contains(key),
            "weir's error for {file} does not name `{key}`: {stderr}"
        );
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "one line expected: {stderr}"
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = TestDir::new("cli-json-log");
    let config = dir.path().join("weir.toml");
    std::fs::write(
        &config,
        "[rtmp]\naddr = \"127.0.0.1:0\"\n[http]\naddr = \"127.0.0.1:0\"\n[api]\naddr = \"127.0.0.1:0\"\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let mut cmd = weir_command();
    cmd.arg("--config").arg(&config);
    let mut weir = ChildGuard::spawn("weir-json", cmd, dir.path());
    let line = wait_for_line(&mut weir, "listening for RTMP on ", Duration::from_secs(15));
    let event: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    assert_eq!(event["level"], "INFO", "{event}");
    assert!(event["timestamp"].is_string(), "{event}");
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.contains("listening for RTMP on 127.0.0.1:")),
        "{event}"
    );
    sigterm(&mut weir);
    assert!(
        weir.wait_timeout(Duration::from_secs(10)).is_some(),
        "weir did not stop on SIGTERM"
    );
}

#[test]
fn sighup_reloads_the_config_file_and_refuses_a_bad_one() {
    let dir = TestDir::new("cli-sighup");
    let config = dir.path().join("weir.toml");
    let base = "[rtmp]\naddr = \"127.0.0.1:0\"\n[http]\naddr = \"127.0.0.1:0\"\n[api]\naddr = \"127.0.0.1:0\"\n";
    std::fs::write(&config, base).unwrap();
    let mut cmd = weir_command();
    cmd.arg("--config").arg(&config);
    let mut weir = ChildGuard::spawn("weir-sighup", cmd, dir.path());
    wait_for_line(&mut weir, "listening for RTMP on ", Duration::from_secs(15));
    let hup = |weir: &mut ChildGuard| {
        let pid = libc::pid_t::try_from(weir.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    };
    std::fs::write(
        &config,
        format!(
            "{base}[apps.live]\npublish = \"keys\"\nkeys = [{{ hash = \"{}\", stream = \"a\" }}]\n",
            weir::auth::hash_key("sk_x")
        ),
    )
    .unwrap();
    hup(&mut weir);
    let line = wait_for_line(
        &mut weir,
        "SIGHUP: configuration reloaded",
        Duration::from_secs(10),
    );
    assert!(line.contains("apps"), "{line}");
    std::fs::write(&config, format!("{base}[rtmp]\nchunk_sise = 1\n")).unwrap();
    hup(&mut weir);
    let line = wait_for_line(&mut weir, "SIGHUP: reload refused", Duration::from_secs(10));
    assert!(line.contains("the current configuration stays"), "{line}");
    assert!(weir.is_running(), "weir exited after a bad reload");
    sigterm(&mut weir);
    assert!(weir.wait_timeout(Duration::from_secs(10)).is_some());
}
