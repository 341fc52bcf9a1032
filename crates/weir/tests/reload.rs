//! Hot reload under load: 100 RTMP viewers of an FFmpeg stream keep playing while the access
//! rules and limits change through `POST /api/v1/reload`; the new rules hold for the next
//! player at once; an invalid file is refused as a whole and the server keeps running on the
//! old configuration.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::access::play_and_count;
use common::fixtures::small_fixture;
use common::{TestDir, WeirServer};

const VIEWERS: usize = 100;

/// `POST`/`GET` on the admin listener: status and body.
fn admin(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        socket,
        "{method} {path} HTTP/1.0\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut data = String::new();
    let _ = socket.read_to_string(&mut data);
    let status = data
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = data.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

const BASE: &str = "[rtmp]\naddr = \"127.0.0.1:0\"\n[http]\naddr = \"127.0.0.1:0\"\n\
                    [api]\naddr = \"127.0.0.1:0\"\n[rtmps]\naddr = \"127.0.0.1:0\"\n";

#[test]
fn rules_change_under_load_and_nobody_drops() {
    let dir = TestDir::new("reload");
    let file = dir.path().join("weir.toml");
    std::fs::write(
        &file,
        format!("{BASE}[apps.live]\nmax_viewers_per_stream = 0\n"),
    )
    .unwrap();
    let config = weir::Config::from_file(&file).unwrap();
    let weir = WeirServer::start_with(config, dir.path());
    let (addr, api) = (weir.addr(), weir.api_addr());
    let runtime = tokio::runtime::Runtime::new().unwrap();

    let mut publisher = weir.publish("cam", small_fixture(), dir.path());
    let viewers: Vec<_> = (0..VIEWERS)
        .map(|_| runtime.spawn(play_and_count(addr, "live", "cam", Duration::from_secs(6))))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while weir
        .hub()
        .stream_stats("live/cam")
        .map_or(0, |s| s.viewer_count())
        < VIEWERS
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the viewers never came"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // New rules: nobody from loopback may play any more, one viewer per stream, a limit per
    // address. The 100 already playing are not touched.
    std::fs::write(
        &file,
        format!(
            "{BASE}[apps.live]\nmax_viewers_per_stream = 1\ndeny_play = [\"127.0.0.0/8\"]\n\
             [auth]\nsecrets = [\"s\"]\n"
        ),
    )
    .unwrap();
    let (status, body) = admin(api, "POST", "/api/v1/reload");
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let applied = report["applied"].to_string();
    assert!(
        applied.contains("apps") && applied.contains("auth"),
        "{report}"
    );
    assert_eq!(report["restart_needed"], serde_json::json!([]), "{report}");

    // The next player meets the new rules at once (RTMP and HTTP-FLV).
    let (media, _, statuses) = runtime.block_on(play_and_count(
        addr,
        "live",
        "cam",
        Duration::from_millis(1500),
    ));
    assert_eq!(media, 0);
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("NetStream.Play.Failed") && s.contains("apps.live.deny_play")),
        "{statuses:?}"
    );
    let mut flv = TcpStream::connect(weir.http_addr()).unwrap();
    flv.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    flv.write_all(b"GET /live/cam.flv HTTP/1.0\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = flv.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 403") || answer.starts_with("HTTP/1.0 403"),
        "{answer}"
    );

    // The RTMP listener moves: the new port takes connections, the old one is closed, the
    // viewers connected through it play on.
    let old_rtmp = weir.addr();
    let port = common::free_port();
    std::fs::write(
        &file,
        format!(
            "{}[apps.live]\nmax_viewers_per_stream = 1\ndeny_play = [\"127.0.0.0/8\"]\n\
             [auth]\nsecrets = [\"s\"]\n",
            BASE.replace(
                "[rtmp]\naddr = \"127.0.0.1:0\"",
                &format!("[rtmp]\naddr = \"127.0.0.1:{port}\"")
            )
        ),
    )
    .unwrap();
    let (status, body) = admin(api, "POST", "/api/v1/reload");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("rtmp.addr (now listening on 127.0.0.1:{port})")),
        "{body}"
    );
    let moved: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        TcpStream::connect(moved).is_ok(),
        "the new RTMP port does not accept"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while TcpStream::connect(old_rtmp).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old RTMP port still accepts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, body) = admin(api, "GET", "/api/v1/server");
    assert!(
        body.contains(&format!("\"rtmp\":\"127.0.0.1:{port}\"")),
        "{body}"
    );

    // An invalid file is refused as a whole; the server goes on with the rules it has.
    std::fs::write(&file, format!("{BASE}[apps.live]\nmax_viewers = 3\n")).unwrap();
    let (status, body) = admin(api, "POST", "/api/v1/reload");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("max_viewers"), "{body}");
    let (status, _) = admin(api, "GET", "/api/v1/server");
    assert_eq!(status, 200);

    // Nobody of the 100 dropped: each played to the end of its window.
    let counts: Vec<usize> = viewers
        .into_iter()
        .map(|v| runtime.block_on(v).unwrap().0)
        .collect();
    let most = counts.iter().copied().max().unwrap_or(0);
    assert!(most > 100, "the viewers got too little: {most} messages");
    // Each got the cached GOP (0 to 1 s of media, by when it joined) and 6 s live: a viewer
    // that joined just after a key frame has up to 1/7 less than one that joined before it.
    // A viewer dropped by the reloads (early in the window) would have a fraction.
    let short: Vec<&usize> = counts.iter().filter(|c| **c * 10 < most * 8).collect();
    assert!(
        short.is_empty(),
        "{} of {VIEWERS} viewers got under 80 % of the media: {short:?} (most {most})",
        short.len()
    );
    let log = weir.log_text();
    assert!(log.contains("configuration reloaded"), "no reload line");
    assert!(log.contains("reload refused"), "no refusal line");
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}
