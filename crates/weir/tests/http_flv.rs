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
use common::{ffmpeg_play_to_flv, ffprobe_url, Expect, Ffmpeg, TestDir, WeirServer};

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
    let mut publisher = weir.publish_fixture("head", dir.path());
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
    let mut publisher = weir.publish_fixture("flv", dir.path());
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

/// A WebSocket client, just enough for the tests: the opening handshake, then frames.
struct Ws {
    socket: TcpStream,
    buffered: Vec<u8>,
}

impl Ws {
    fn open(addr: SocketAddr, path: &str) -> Ws {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).unwrap();
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            let n = socket.read(&mut buf).expect("read the handshake answer");
            assert!(n > 0, "closed during the handshake");
            data.extend_from_slice(&buf[..n]);
            if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&data[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // RFC 6455's example key and its accept value.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        Ws {
            socket,
            buffered: data[end..].to_vec(),
        }
    }

    fn fill(&mut self, n: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        while self.buffered.len() < n {
            match self.socket.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(k) => self.buffered.extend_from_slice(&buf[..k]),
            }
        }
        true
    }

    /// The next frame's opcode and payload (server frames are not masked); `None` at EOF.
    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if !self.fill(2) {
            return None;
        }
        let opcode = self.buffered[0] & 0x0f;
        let (len, header) = match self.buffered[1] & 0x7f {
            126 => {
                self.fill(4).then_some(())?;
                (
                    u16::from_be_bytes([self.buffered[2], self.buffered[3]]) as usize,
                    4,
                )
            }
            127 => {
                self.fill(10).then_some(())?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buffered[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (n as usize, 2),
        };
        self.fill(header + len).then_some(())?;
        let payload = self.buffered[header..header + len].to_vec();
        self.buffered.drain(..header + len);
        Some((opcode, payload))
    }

    /// Binary payloads, concatenated, until `want` bytes or the end.
    fn read_binary(&mut self, want: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < want {
            match self.frame() {
                Some((2, payload)) => out.extend_from_slice(&payload),
                Some((8, _)) | None => break,
                Some(_) => {}
            }
        }
        out
    }
}

/// WebSocket-FLV on the same URL: the same FLV stream as binary messages; a client that sends
/// a frame over the limit is closed and the other keeps playing.
#[test]
fn websocket_flv_streams_the_same_flv() {
    let dir = TestDir::new("ws-flv");
    let weir = WeirServer::start(dir.path());
    let mut publisher = weir.publish_fixture("ws", dir.path());

    let mut good = Ws::open(weir.http_addr(), "/live/ws.flv");
    let mut bad = Ws::open(weir.http_addr(), "/live/ws.flv");
    // A masked binary frame that announces 100 MiB (over the 64 KiB limit).
    let mut frame = vec![0x82, 0xff];
    frame.extend_from_slice(&(100u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    bad.socket.write_all(&frame).unwrap();
    let started = Instant::now();
    while bad.frame().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the bad client was not closed"
        );
    }

    let data = good.read_binary(256 * 1024);
    assert_eq!(&data[..5], b"FLV\x01\x05");
    let mut tags = Vec::new();
    if let Ok(reader) = weir_media::FlvReader::from_bytes(bytes::Bytes::from(data)) {
        tags.extend(reader.map_while(Result::ok).map(|t| t.to_frame()));
    }
    assert!(tags.len() > 10, "{} tags", tags.len());
    assert!(tags[0].info.is_metadata, "metadata first");
    assert!(tags[1].info.is_sequence_header, "then the codec headers");
    let first_coded = tags
        .iter()
        .find(|f| f.info.is_coded_frame && f.kind == weir_media::MediaKind::Video);
    assert!(
        first_coded.is_some_and(|f| f.info.is_keyframe),
        "video starts at a keyframe"
    );
    publisher.child().kill();
    weir.shutdown();
}

/// Bad input on the HTTP listener, while a stream plays over HTTP-FLV: an oversized request
/// head (431), a head trickled byte by byte (closed after the 10 s header timeout), encoded
/// and plain `..` in paths (404), garbage (400), requests for streams that never existed
/// (404); HTTP connections count toward `rtmp.max_connections`.
#[test]
fn bad_http_input_is_refused_and_the_stream_plays_on() {
    let dir = TestDir::new("http-bad-input");
    let mut config = common::loopback_config();
    config.rtmp.max_connections = 12;
    let weir = WeirServer::start_with(config, dir.path());
    let mut publisher = weir.publish_fixture("bad", dir.path());
    let addr = weir.http_addr();
    let wait = Duration::from_secs(5);

    // A viewer that must keep receiving through all of this.
    let mut viewer = TcpStream::connect(addr).unwrap();
    viewer
        .write_all(b"GET /live/bad.flv HTTP/1.0\r\nHost: t\r\n\r\n")
        .unwrap();
    viewer.set_read_timeout(Some(wait)).unwrap();

    // The slowloris starts first: one byte a second.
    let slow = thread::spawn(move || {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        let started = Instant::now();
        let request =
            b"GET /live/bad.flv HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for byte in request.iter().cycle() {
            if socket.write_all(&[*byte]).is_err() {
                break;
            }
            let mut buf = [0u8; 256];
            match socket.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => break, // an error answer counts as being shown the door
                Err(_) => {}
            }
            if started.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
        started.elapsed()
    });

    let big = format!(
        "GET /live/bad.flv HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let (head, _) = http(addr, &big, 0, wait);
    assert!(head.starts_with("HTTP/1.1 431"), "oversized head: {head:?}");
    for path in [
        "/live/..%2F..%2Fetc%2Fpasswd.flv",
        "/../../etc/passwd",
        "/live/never-existed.flv",
        "/live/never/index.m3u8",
        "/live/never/seg1.m4s",
    ] {
        let (head, _) = http(addr, &get(path), 0, wait);
        assert!(head.starts_with("HTTP/1.1 404"), "{path}: {head:?}");
    }
    let (head, _) = http(addr, "\x16\x03\x01\x02\x00garbage\r\n\r\n", 0, wait);
    assert!(
        head.is_empty() || head.starts_with("HTTP/1.1 400"),
        "garbage: {head:?}"
    );

    // The connection limit: fill what is left of the 12 permits with idle connections.
    let mut idle = Vec::new();
    for _ in 0..20 {
        if let Ok(s) = TcpStream::connect(addr) {
            idle.push(s);
        }
    }
    thread::sleep(Duration::from_millis(300));
    let mut refused = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if matches!(s.read(&mut [0u8; 1]), Ok(0)) {
            refused += 1;
        }
    }
    assert!(
        refused >= 8,
        "{refused} of 20 extra connections were refused at the limit"
    );
    drop(idle);

    let slow_for = slow.join().unwrap();
    assert!(
        slow_for >= Duration::from_secs(8) && slow_for < Duration::from_secs(20),
        "the slow client was dropped after {slow_for:?}"
    );
    // The viewer still receives.
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        match viewer.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(got > 10_000, "the viewer got {got} bytes in the last 2 s");
    assert!(weir.log_text().contains("connection limit reached"));
    publisher.child().kill();
    weir.shutdown();
}

/// Reads `/live/{key}.flv` for `secs` after its first bytes and gives the bursts of bytes
/// (reads less than 15 ms apart are one burst): how many there were and the longest pause.
fn flv_bursts(server: &WeirServer, key: &str, secs: u64) -> (usize, Duration) {
    let mut socket = TcpStream::connect(server.http_addr()).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    socket
        .write_all(get(&format!("/live/{key}.flv")).as_bytes())
        .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut reads = Vec::new();
    let mut first = None;
    loop {
        let n = socket.read(&mut buf).expect("reading the FLV body");
        assert!(n > 0, "the server closed the FLV response");
        let now = Instant::now();
        let start = *first.get_or_insert(now);
        // Skip the first second: the cached GOP arrives in one go.
        if now.duration_since(start) > Duration::from_secs(1) {
            reads.push(now);
        }
        if now.duration_since(start) > Duration::from_secs(1 + secs) {
            break;
        }
    }
    let mut bursts = 1;
    let mut longest = Duration::ZERO;
    for pair in reads.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        if gap >= Duration::from_millis(15) {
            bursts += 1;
            longest = longest.max(gap);
        }
    }
    eprintln!("{key}: {bursts} bursts in {secs} s, longest pause {longest:?}");
    (bursts, longest)
}

#[test]
fn the_latency_budget_merges_http_flv_writes() {
    let dir = TestDir::new("http-flv-budget");
    // The default budget: a write per picture (the fixture has 25 or 30 of them a second).
    let logs = [dir.file("default"), dir.file("merged")];
    logs.iter()
        .for_each(|d| std::fs::create_dir_all(d).unwrap());
    let server = WeirServer::start(&logs[0]);
    let _publisher = server.publish_fixture("budget", dir.path());
    let (bursts, _) = flv_bursts(&server, "budget", 3);
    // ~90 nominal; a reader delayed on a loaded machine merges a few.
    assert!(bursts >= 40, "{bursts} writes in 3 s at the default budget");
    drop(_publisher);
    server.shutdown();

    // A 250 ms budget: at most about 4 writes a second, none held much longer than that.
    let mut config = common::loopback_config();
    config.streams.max_added_latency_ms = 250;
    let server = WeirServer::start_with(config, &logs[1]);
    let _publisher = server.publish_fixture("budget", dir.path());
    let (bursts, longest) = flv_bursts(&server, "budget", 3);
    assert!(bursts <= 16, "{bursts} writes in 3 s at a 250 ms budget");
    // The budget plus the encoder's pacing and the reader's scheduling on a loaded machine
    // (without a bound writes would wait for a whole GOP: 1 s and more).
    assert!(
        longest <= Duration::from_millis(600),
        "a pause of {longest:?} at a 250 ms budget"
    );
    // FFmpeg plays the merged writes over RTMP and HTTP-FLV as it plays the others (a new
    // publish: the fixture lasts a few seconds).
    let _publisher = server.publish_fixture("budget2", dir.path());
    let rtmp_url = server.url("budget2");
    let (rtmp, flv) = thread::scope(|s| {
        let rtmp = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &rtmp_url, 3.0, &logs[1]));
        let flv = ffmpeg_play_to_flv(Ffmpeg::Debian, &server.flv_url("budget2"), 3.0, &logs[1]);
        (rtmp.join().unwrap(), flv)
    });
    let expect = Expect::h264_aac(WIDTH, HEIGHT).min_seconds(2.8);
    for (played, what) in [(rtmp, "rtmp"), (flv, "http-flv")] {
        played.assert_matches(&expect, &format!("ffmpeg 5.1 {what} at a 250 ms budget"));
        let v = played.video_frames();
        assert!((84..=96).contains(&v), "{what}: {v} video frames in 3 s");
    }
    server.shutdown();
}
