//! The HTTP listener and HTTP-FLV: Debian's FFmpeg publishes over RTMP, ffprobe and ffmpeg
//! read `http://…/live/{stream}.flv`; raw HTTP requests check the status codes, CORS, HEAD
//! and what a client that stops reading does to nobody else.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::fixtures::{HEIGHT, WIDTH};
use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, ffprobe_url, fixture, Expect, Ffmpeg, FixtureKind, TestDir,
    WeirServer,
};

const START: Duration = Duration::from_secs(15);

/// Sends `request` and reads the answer's head (status line and headers) and up to `body`
/// bytes of its body within `wait`.
fn http(addr: SocketAddr, request: &str, body: usize, wait: Duration) -> (String, Vec<u8>) {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.write_all(request.as_bytes()).unwrap();
    let mut data = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + wait;
    let mut head_end = None;
    while Instant::now() < deadline {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if head_end.is_none() {
            head_end = data
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|i| i + 4);
        }
        if let Some(end) = head_end {
            if data.len() - end >= body {
                break;
            }
        }
    }
    let end = head_end.unwrap_or(data.len());
    (
        String::from_utf8_lossy(&data[..end]).into_owned(),
        data[end..].to_vec(),
    )
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
}

#[test]
fn status_codes_cors_and_head() {
    let dir = TestDir::new("http-basics");
    let weir = WeirServer::start(dir.path());
    let addr = weir.http_addr();
    let wait = Duration::from_secs(5);

    let (head, body) = http(addr, &get("/nothing/here/at/all"), 1, wait);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains(".flv"), "{body:?}");

    // A stream nobody publishes: 404 at once (http.flv_wait_secs = 0).
    let started = Instant::now();
    let (head, _) = http(addr, &get("/live/nobody.flv"), 1, wait);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{head}"
    );

    let preflight = "OPTIONS /live/x.flv HTTP/1.1\r\nHost: test\r\nOrigin: http://page\r\n\
                     Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n";
    let (head, _) = http(addr, preflight, 0, wait);
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert!(lower.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        lower.contains("access-control-allow-methods: get, head, options"),
        "{head}"
    );

    // With a publisher: HEAD answers the headers of the stream, and no body.
    let url = weir.url("head");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);
    weir.wait_published(&["live/head"], START);
    let (head, body) = http(
        addr,
        "HEAD /live/head.flv HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        1,
        Duration::from_secs(2),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: video/x-flv"),
        "{head}"
    );
    assert!(body.is_empty(), "HEAD sent {} body bytes", body.len());

    // GET: an FLV header with audio and video flags, then tags. (HTTP/1.0: the body is the
    // raw stream until the connection closes; HTTP/1.1 clients get it chunked.)
    let (head, body) = http(
        addr,
        "GET /live/head.flv HTTP/1.0\r\nHost: test\r\n\r\n",
        64 * 1024,
        Duration::from_secs(5),
    );
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(
        &body[..5],
        b"FLV\x01\x05",
        "FLV header with audio and video flags"
    );
    assert_eq!(&body[5..13], &[0, 0, 0, 9, 0, 0, 0, 0]);
    // The first tag is the metadata, then the video sequence header.
    assert_eq!(body[13], 18, "first tag type");
    publisher.child().kill();
    weir.shutdown();
}

/// ffprobe and ffmpeg (Debian's 5.1) read HTTP-FLV: codecs, size, frame counts, one frame
/// per step, while a client that stopped reading sits on the same stream.
#[test]
fn ffmpeg_plays_http_flv_while_another_client_stalls() {
    let dir = TestDir::new("http-flv-play");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("flv");
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &url,
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(START);
    weir.wait_published(&["live/flv"], START);
    let flv = weir.flv_url("flv");

    // A client that asks and never reads again.
    let mut stalled = TcpStream::connect(weir.http_addr()).unwrap();
    stalled.write_all(get("/live/flv.flv").as_bytes()).unwrap();

    let (probed, played) = thread::scope(|s| {
        let probed = s.spawn(|| ffprobe_url(&flv, 3.0, dir.path()));
        let played = ffmpeg_play_to_flv(Ffmpeg::Debian, &flv, 3.0, dir.path());
        (probed.join().unwrap(), played)
    });
    let expect = Expect::h264_aac(WIDTH, HEIGHT);
    probed.assert_matches(&expect.clone().min_seconds(2.5), "ffprobe http-flv");
    played.assert_matches(&expect.min_seconds(2.8), "ffmpeg 5.1 http-flv (-t 3)");
    let v = played.video_frames();
    assert!(
        (84..=96).contains(&v),
        "ffmpeg played {v} video frames in 3 s at 30 fps"
    );
    assert!(played.video_keyframes() >= 1);
    let stats = weir.hub().stream_stats("live/flv").expect("stream");
    let http_viewers = stats
        .viewers
        .iter()
        .find(|(p, _)| p.as_str() == "http-flv")
        .map_or(0, |(_, n)| *n);
    assert!(http_viewers >= 1, "{:?}", stats.viewers);
    drop(stalled);
    publisher.child().kill();
    weir.shutdown();
}
