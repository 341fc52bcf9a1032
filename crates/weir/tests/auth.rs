//! Who may publish: secret stream keys (`[apps.NAME] publish = "keys"`). Debian's FFmpeg
//! publishes with a key and the stream appears under its public name, where FFmpeg plays it;
//! a wrong key and the public name itself are refused before any media enters the hub, the
//! key never shows in the log, and an open app on the same server keeps working.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::time::Duration;

use common::access::play_until_stopped;
use common::fixtures::{small_fixture, HEIGHT, SMALL_HEIGHT, SMALL_WIDTH, WIDTH};
use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, fixture, Expect, Ffmpeg, FixtureKind, TestDir, WeirServer,
};
use weir::config::{AppRules, PublishRule, StreamKeyEntry};

const KEY: &str = "sk_test_alice_4f1b9c";

#[test]
fn a_secret_key_publishes_under_its_public_name_and_nothing_else_does() {
    let dir = TestDir::new("auth-keys");
    let mut config = common::loopback_config();
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            publish: PublishRule::Keys,
            keys: vec![StreamKeyEntry {
                hash: weir::auth::hash_key(KEY),
                stream: "alice".to_owned(),
            }],
            ..AppRules::default()
        },
    );
    let weir = WeirServer::start_with(config, dir.path());

    // Refused: a wrong key, and the public name used as a key.
    for name in ["sk_wrong", "alice"] {
        let url = weir.url(name);
        let mut refused = ffmpeg_publish(
            Ffmpeg::Debian,
            &url,
            fixture(FixtureKind::H264Baseline),
            false,
            dir.path(),
        );
        let status = refused.child().wait_timeout(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| !s.success()),
            "publishing {name} was not refused: {status:?}"
        );
        assert!(weir.published_keys().is_empty(), "{name} reached the hub");
    }
    let log = weir.log_text();
    assert!(
        log.contains("publish rejected: unknown stream key (apps.live.publish = \"keys\""),
        "{log}"
    );
    assert!(log.contains("live/(key withheld)"), "{log}");

    // The key publishes as live/alice; a player of live/alice gets the stream.
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &weir.url(KEY),
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(Duration::from_secs(15));
    weir.wait_published(&["live/alice"], Duration::from_secs(10));
    assert_eq!(weir.published_keys(), ["live/alice"]);
    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &weir.url("alice"), 2.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.8),
        "key play",
    );
    publisher.wait_finished(Duration::from_secs(20));

    // The key itself is never written to the log.
    assert!(
        !weir.log_text().contains(KEY),
        "the key leaked into the log"
    );
    weir.shutdown();
}

/// `weir hash-key` prints the hash the config takes, and a new key when given none.
#[test]
fn hash_key_prints_what_the_config_takes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["hash-key", KEY])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&weir::auth::hash_key(KEY)), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("hash-key")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("sk_"))
        .expect("a new key");
    assert!(text.contains(&weir::auth::hash_key(key)), "{text}");
    // What it prints is a config weir accepts.
    let snippet = &text[text.find("[apps.live]").unwrap()..];
    let config = weir::Config::from_toml(snippet).unwrap();
    assert!(config.validate().is_ok());
}

/// `play = "signed"`: a URL signed by `weir sign` plays over RTMP and HTTP-FLV; a missing,
/// forged or expired signature is refused (FFmpeg gets nothing; HTTP 403), HLS is refused for
/// the app, and publishing stays open.
#[test]
fn signed_play_urls_work_until_they_expire_and_nothing_else_plays() {
    use weir::auth::signed::{signed_query, Action};
    use weir::config::PlayRule;
    const SECRET: &str = "test-secret-7f3c";
    let dir = TestDir::new("auth-signed");
    let mut config = common::loopback_config();
    config.auth.secrets = vec!["newer-secret".to_owned(), SECRET.to_owned()];
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            play: PlayRule::Signed,
            ..AppRules::default()
        },
    );
    // `weir sign` with the same config prints a query the server accepts.
    let toml_path = dir.path().join("weir.toml");
    std::fs::write(&toml_path, config.to_commented_toml()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("-c")
        .arg(&toml_path)
        .args([
            "sign",
            "--app",
            "live",
            "--stream",
            "cam",
            "--expires-in",
            "10m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        signed.starts_with("expires=") && signed.contains("&sig="),
        "{signed}"
    );

    let weir = WeirServer::start_with(config, dir.path());
    let http = weir.http_addr();
    // The 9 s stream: four refused players and a signed one come before the HLS checks.
    let mut publisher = weir.publish("cam", small_fixture(), dir.path());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = signed_query(SECRET, Action::Play, "live", "cam", now - 5);
    let forged = signed_query("not-the-secret", Action::Play, "live", "cam", now + 600);
    let other_stream = signed_query(SECRET, Action::Play, "live", "other", now + 600);
    for (why, query) in [
        ("missing", String::new()),
        ("expired", format!("?{expired}")),
        ("forged", format!("?{forged}")),
        ("for another stream", format!("?{other_stream}")),
    ] {
        let url = format!("{}{query}", weir.url("cam"));
        let mut cmd = std::process::Command::new(common::tools::ffmpeg());
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
            .arg(&url)
            .args(["-t", "1", "-c", "copy", "-f", "flv", "-y"])
            .arg(dir.path().join("refused.flv"));
        let (status, _, _) =
            common::process::run("ffmpeg-refused", cmd, dir.path(), Duration::from_secs(20));
        assert!(!status.success(), "{why}: FFmpeg played");
        let size = std::fs::metadata(dir.path().join("refused.flv")).map_or(0, |m| m.len());
        assert!(size < 100, "{why}: {size} bytes of media written");
        let (status, _) = http_status(http, &format!("/live/cam.flv{query}"));
        assert!(status.contains(" 403"), "{why}: HTTP-FLV {status}");
    }
    let log = weir.log_text();
    for reason in ["needs a signed URL", "has expired", "does not match"] {
        assert!(log.contains(reason), "no log line with {reason:?}");
    }
    assert!(log.contains("apps.live.play = \"signed\""));

    // The signed URL plays over RTMP and HTTP-FLV.
    let report = ffmpeg_play_to_flv(
        Ffmpeg::Debian,
        &format!("{}?{signed}", weir.url("cam")),
        1.5,
        dir.path(),
    );
    report.assert_matches(
        &Expect::h264_aac(SMALL_WIDTH, SMALL_HEIGHT).min_seconds(1.3),
        "signed play",
    );
    let (status, _) = http_status(http, &format!("/live/cam.flv?{signed}"));
    assert!(status.contains(" 200"), "{status}");
    // HLS: refused without the signature; with it, every URL in the playlists carries it,
    // so the rendition playlist and its init segment are served too.
    let (status, body) = http_status(http, "/live/cam/index.m3u8");
    assert!(
        status.contains(" 403") && body.contains("signed"),
        "{status} {body}"
    );
    let (status, body) = http_status(http, &format!("/live/cam/index.m3u8?{signed}"));
    assert!(status.contains(" 200"), "{status} {body}");
    let variant = body
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap_or_default()
        .to_owned();
    assert!(variant.ends_with(&format!("?{signed}")), "{body}");
    let (status, unsigned) = http_status(http, "/live/cam/v0/index.m3u8");
    assert!(status.contains(" 403"), "{status} {unsigned}");
    let (status, body) = http_whole(http, &format!("/live/cam/{variant}"));
    assert!(status.contains(" 200"), "{status} {body}");
    assert!(body.contains(&format!("init0.mp4?{signed}\"")), "{body}");
    let (status, _) = http_status(http, &format!("/live/cam/v0/init0.mp4?{signed}"));
    assert!(status.contains(" 200"), "{status}");
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}

/// The status line and the whole body of a GET (HTTP/1.0: the server closes after it).
fn http_whole(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut data = Vec::new();
    let _ = socket.read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data).to_string();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// The status line and the start of the body of a GET (HTTP/1.0; reads at most 2 s).
fn http_status(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut data = vec![0u8; 4096];
    let mut got = 0;
    while got < 512 {
        match socket.read(&mut data[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let text = String::from_utf8_lossy(&data[..got]).to_string();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// IP rules: a publisher outside `allow_publish` is refused; a player inside `deny_play` is
/// refused over RTMP, HTTP-FLV and HLS alike, while the publish from the same address to an
/// app without rules goes through.
#[test]
fn ip_rules_refuse_by_address_on_every_listener() {
    let dir = TestDir::new("auth-ip");
    let mut config = common::loopback_config();
    config.apps.insert(
        "cams".to_owned(),
        AppRules {
            allow_publish: vec!["10.0.0.0/8".to_owned(), "2001:db8::/32".to_owned()],
            ..AppRules::default()
        },
    );
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            deny_play: vec!["127.0.0.0/8".to_owned()],
            ..AppRules::default()
        },
    );
    let weir = WeirServer::start_with(config, dir.path());
    let http = weir.http_addr();
    let cams = weir.url("x").replace("/live/x", "/cams/x");
    let mut refused = ffmpeg_publish(
        Ffmpeg::Debian,
        &cams,
        fixture(FixtureKind::H264Baseline),
        false,
        dir.path(),
    );
    let status = refused.child().wait_timeout(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "cams publish: {status:?}"
    );
    assert!(weir.published_keys().is_empty());

    let mut publisher = weir.publish_fixture("open", dir.path());
    let mut cmd = std::process::Command::new(common::tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(weir.url("open"))
        .args(["-t", "1", "-c", "copy", "-f", "flv", "-y"])
        .arg(dir.path().join("refused.flv"));
    let (status, _, _) =
        common::process::run("ffmpeg-refused", cmd, dir.path(), Duration::from_secs(20));
    assert!(!status.success(), "RTMP play from a denied address");
    for path in [
        "/live/open.flv",
        "/live/open/index.m3u8",
        "/live/open/ts/index.m3u8",
        "/live/open/index.mpd",
    ] {
        let (status, body) = http_status(http, path);
        assert!(
            status.contains(" 403") && body.contains("apps.live.deny_play"),
            "{path}: {status} {body}"
        );
    }
    let log = weir.log_text();
    assert!(
        log.contains("address 127.0.0.1 is not allowed (not in apps.cams.allow_publish)"),
        "{log}"
    );
    assert!(log.contains("127.0.0.0/8 in apps.live.deny_play"), "{log}");
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}

/// `rtmp.max_connections_per_ip`: an address holds at most that many connections, RTMP and
/// HTTP together; one more is closed at once with a log line, and a place freed is usable.
#[test]
fn an_address_holds_at_most_its_connection_limit() {
    use std::io::Read;
    let dir = TestDir::new("auth-per-ip");
    let mut config = common::loopback_config();
    config.rtmp.max_connections_per_ip = 3;
    let weir = WeirServer::start_with(config, dir.path());
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(weir.addr()).unwrap())
        .chain(std::iter::once(
            std::net::TcpStream::connect(weir.http_addr()).unwrap(),
        ))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let closed_at_once = |addr| {
        let mut extra = std::net::TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        matches!(extra.read(&mut [0u8; 1]), Ok(0))
            || matches!(extra.read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    };
    assert!(
        closed_at_once(weir.addr()),
        "a 4th RTMP connection was kept"
    );
    assert!(
        closed_at_once(weir.http_addr()),
        "a 4th HTTP connection was kept"
    );
    assert!(weir
        .log_text()
        .contains("this address holds its limit of 3 connections (rtmp.max_connections_per_ip)"));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !closed_at_once(weir.addr()),
        "a freed place was not given back"
    );
    weir.shutdown();
}

/// `max_publishers` and `max_viewers_per_stream`: one stream more than the app allows is
/// refused at publish, one viewer more than the stream allows is refused over RTMP and
/// HTTP-FLV, and the ones within the limits play on.
#[test]
fn app_limits_refuse_one_more_publisher_and_viewer() {
    let dir = TestDir::new("auth-limits");
    let mut config = common::loopback_config();
    config.apps.insert(
        "small".to_owned(),
        AppRules {
            max_publishers: 1,
            max_viewers_per_stream: 1,
            ..AppRules::default()
        },
    );
    let weir = WeirServer::start_with(config, dir.path());
    let url = |name: &str| weir.url(name).replace("/live/", "/small/");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url("a"),
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(Duration::from_secs(15));
    weir.wait_published(&["small/a"], Duration::from_secs(10));
    let mut second = ffmpeg_publish(
        Ffmpeg::Debian,
        &url("b"),
        fixture(FixtureKind::H264Baseline),
        false,
        dir.path(),
    );
    let status = second.child().wait_timeout(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| !s.success()),
        "a second stream: {status:?}"
    );

    // The viewer within the limit stays until the refusals were checked.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stop_viewer, stop) = tokio::sync::oneshot::channel();
    let first_viewer = runtime.spawn(play_until_stopped(
        weir.addr(),
        "small",
        "a",
        stop,
        Duration::from_secs(30),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while weir
        .hub()
        .stream_stats("small/a")
        .map_or(0, |s| s.viewer_count())
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the first viewer never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut cmd = std::process::Command::new(common::tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(url("a"))
        .args(["-t", "1", "-c", "copy", "-f", "flv", "-y"])
        .arg(dir.path().join("refused.flv"));
    let (status, _, _) =
        common::process::run("ffmpeg-refused", cmd, dir.path(), Duration::from_secs(20));
    assert!(!status.success(), "a second RTMP viewer played");
    let (status, body) = http_status(weir.http_addr(), "/small/a.flv");
    assert!(
        status.contains(" 503") && body.contains("max_viewers_per_stream"),
        "{status} {body}"
    );
    stop_viewer.send(()).unwrap();
    let (media, statuses) = runtime.block_on(first_viewer).unwrap();
    assert!(
        media > 30
            && statuses
                .iter()
                .any(|s| s.starts_with("NetStream.Play.Start")),
        "the viewer within the limit: {media} media messages, {statuses:?}"
    );
    let log = weir.log_text();
    assert!(
        log.contains("has its maximum of 1 published streams (apps.small.max_publishers)"),
        "{log}"
    );
    assert!(
        log.contains("has its maximum of 1 viewers (apps.small.max_viewers_per_stream)"),
        "{log}"
    );
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}
