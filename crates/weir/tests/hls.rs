//! HLS and DASH from one RTMP ingest: Debian's FFmpeg publishes the test fixture (H.264
//! 640x360 30 fps, 1 s GOP, AAC), Debian's FFmpeg plays `index.m3u8` (CMAF renditions),
//! `ts/index.m3u8` (MPEG-TS) and `index.mpd` (DASH) live; raw requests and our validator check
//! the playlists (Low-Latency rules, blocking reloads, delta updates), caching headers and
//! errors; thousands of held blocking requests; `hls.always`; the `hls.dir` copy.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use common::fixtures::{HEIGHT, WIDTH};
use common::playlist::MediaPlaylist;
use common::{ffmpeg_play_to_flv, Expect, Ffmpeg, TestDir, WeirServer};

/// GET `path` with HTTP/1.0 (body until close): status line + headers, body.
fn get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut data = Vec::new();
    let _ = socket.read_to_end(&mut data);
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |i| i + 4);
    (
        String::from_utf8_lossy(&data[..end]).to_ascii_lowercase(),
        data[end..].to_vec(),
    )
}

/// The validator itself catches what it is there for.
#[test]
fn the_playlist_validator_catches_broken_playlists() {
    let ok = MediaPlaylist::parse(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:2.0,\na.ts\n",
    )
    .unwrap();
    assert_eq!(ok.segments[0].0, 5);
    for bad in [
        "#EXT-X-TARGETDURATION:2\n",
        "#EXTM3U\n#EXTINF:1.0,\na.ts\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:2.0,\na.ts\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\na.ts\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:01.000Z\n\
         #EXTINF:1.0,\na.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n#EXTINF:1.0,\nb.ts\n",
    ] {
        assert!(MediaPlaylist::parse(bad).is_err(), "accepted {bad:?}");
    }
    // Low-Latency HLS: parts against PART-TARGET, hold-back, skips, hints.
    let ll = |server: &str, parts: &str| {
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:{server}\n\
             #EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:1\n{parts}\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p9.m4s\"\n"
        )
    };
    let server = "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=12.0";
    let good = "#EXT-X-PART:DURATION=0.5,URI=\"p1.m4s\",INDEPENDENT=YES\n\
                #EXT-X-PART:DURATION=0.5,URI=\"p2.m4s\"\n#EXTINF:1.0,\ns1.m4s\n\
                #EXT-X-PART:DURATION=0.5,URI=\"p3.m4s\"\n";
    let parsed = MediaPlaylist::parse(&ll(server, good)).unwrap();
    assert_eq!(parsed.parts.len(), 3);
    assert!(parsed.has_part(2, Some(0)) && !parsed.has_part(2, Some(1)));
    for (server, parts, why) in [
        (
            server,
            good.replace("DURATION=0.5,URI=\"p2", "DURATION=0.6,URI=\"p2"),
            "part over PART-TARGET",
        ),
        (
            server,
            good.replace("DURATION=0.5,URI=\"p2", "DURATION=0.3,URI=\"p2"),
            "parts not adding up",
        ),
        (
            server,
            good.replace("DURATION=0.5,URI=\"p3", "DURATION=0.3,URI=\"p3"),
            "short part mid-segment",
        ),
        (
            "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.9",
            good.to_owned(),
            "hold-back under 2 parts",
        ),
        (
            "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,CAN-SKIP-UNTIL=6.0",
            good.to_owned(),
            "skip under 6 targets",
        ),
        (
            "CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5",
            format!("#EXT-X-SKIP:SKIPPED-SEGMENTS=2\n{good}"),
            "skip not offered",
        ),
    ] {
        assert!(
            MediaPlaylist::parse(&ll(server, &parts)).is_err(),
            "accepted {why}"
        );
    }
    let later = |text: &str| MediaPlaylist::parse(text).unwrap();
    let back =
        later("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:4\n#EXTINF:2.0,\na.ts\n");
    assert!(back.check_reload(&ok).is_err(), "media sequence going back");
    let target =
        later("#EXTM3U\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:2.0,\na.ts\n");
    assert!(
        target.check_reload(&ok).is_err(),
        "target duration changing"
    );
    let changed =
        later("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:1.5,\na.ts\n");
    assert!(changed.check_reload(&ok).is_err(), "segment 5 changing");
}

/// GET with a timing.
fn timed_get(addr: SocketAddr, path: &str) -> (String, Vec<u8>, Duration) {
    let started = std::time::Instant::now();
    let (head, body) = get(addr, path);
    (head, body, started.elapsed())
}

fn playlist_at(addr: SocketAddr, path: &str) -> (MediaPlaylist, String) {
    let (head, body) = get(addr, path);
    let text = String::from_utf8_lossy(&body).to_string();
    assert!(head.starts_with("http/1.0 200"), "{path}: {head}{text}");
    let playlist = MediaPlaylist::parse(&text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
    (playlist, text)
}

#[test]
fn ffmpeg_plays_live_hls_in_both_containers() {
    let dir = TestDir::new("hls");
    let weir = WeirServer::start(dir.path());
    let addr = weir.http_addr();

    // Nothing published: 404, and nothing starts.
    let (head, _) = get(addr, "/live/hls/index.m3u8");
    assert!(head.starts_with("http/1.0 404"), "{head}");

    let mut publisher = weir.publish_fixture("hls", dir.path());

    // The first request waits for the first segments; the multivariant playlist lists the
    // video rendition with the audio as its alternate group, codecs from the real headers.
    let (head, body) = get(addr, "/live/hls/index.m3u8");
    let multivariant = String::from_utf8_lossy(&body).to_string();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("cache-control: max-age=1"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(
        multivariant.contains("URI=\"a0/index.m3u8\"")
            && multivariant.contains(&format!(
                "CODECS=\"avc1.42c01e,mp4a.40.2\",RESOLUTION={WIDTH}x{HEIGHT},FRAME-RATE="
            ))
            && multivariant.contains("AUDIO=\"audio\"\nv0/index.m3u8\n"),
        "{multivariant}"
    );

    let (v0, text) = playlist_at(addr, "/live/hls/v0/index.m3u8");
    assert_eq!(v0.target, 2, "{text}");
    assert!(
        v0.can_block_reload && v0.part_target == Some(0.22),
        "{text}"
    );
    assert!(!v0.parts.is_empty() && v0.maps == ["init0.mp4"], "{text}");
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    assert!(
        v0.reports.iter().any(|r| r.contains("a0/index.m3u8")),
        "{text}"
    );
    let (head, init) = get(addr, "/live/hls/v0/init0.mp4");
    assert!(
        head.starts_with("http/1.0 200") && &init[4..8] == b"ftyp",
        "{head}"
    );
    let (head, segment) = get(addr, &format!("/live/hls/v0/{}", v0.segments[0].2));
    assert!(head.contains("immutable"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", segment.len())),
        "{head}"
    );
    assert_eq!(&segment[4..8], b"moof");
    let (head, _) = get(addr, "/live/hls/v0/seg999.m4s");
    assert!(head.starts_with("http/1.0 404"), "{head}");
    let (head, _) = get(addr, "/live/hls/v7/index.m3u8");
    assert!(head.starts_with("http/1.0 404"), "{head}");

    // Blocking reload: ask for the next part; the answer holds it, soon after it exists.
    let (v0, _) = playlist_at(addr, "/live/hls/v0/index.m3u8");
    let msn = v0.segments.last().unwrap().0 + 1;
    let part = v0.parts.iter().filter(|p| p.0 == msn).count() as u64;
    let (head, body, took) = timed_get(
        addr,
        &format!("/live/hls/v0/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
    );
    let text = String::from_utf8_lossy(&body).to_string();
    assert!(head.starts_with("http/1.0 200"), "{head}{text}");
    let answer = MediaPlaylist::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        answer.has_part(msn, Some(part)),
        "asked {msn}.{part}:\n{text}"
    );
    assert!(took < Duration::from_millis(1500), "blocked {took:?}");
    // The preload hint is served once it is finished.
    let hint = answer.preload_hint.clone().unwrap();
    let (head, data, took) = timed_get(addr, &format!("/live/hls/v0/{hint}"));
    assert!(
        head.starts_with("http/1.0 200") && &data[4..8] == b"moof",
        "{hint}: {head}"
    );
    assert!(took < Duration::from_millis(1500), "part blocked {took:?}");
    // Too far ahead: 400 at once; a part long past: 404.
    for bad in [
        format!("_HLS_msn={}", msn + 10),
        format!("_HLS_msn={msn}&_HLS_part=99"),
        "_HLS_part=1".to_owned(),
        "_HLS_msn=x".to_owned(),
    ] {
        let (head, _, took) = timed_get(addr, &format!("/live/hls/v0/index.m3u8?{bad}"));
        assert!(head.starts_with("http/1.0 400"), "{bad}: {head}");
        assert!(took < Duration::from_millis(500), "{bad}: {took:?}");
    }
    let (head, _) = get(addr, "/live/hls/v0/part999999.m4s");
    assert!(head.starts_with("http/1.0 404"), "{head}");
    // Each container's packager starts on its first request: the TS one now too, so FFmpeg
    // below finds seconds of it however long the checks in between take.
    let (head, _) = get(addr, "/live/hls/ts/index.m3u8");
    assert!(head.starts_with("http/1.0 200"), "{head}");

    // Our validator on live reloads of every playlist (plain, blocking and delta): each on
    // its own, and against the one before; every listed segment and part downloads.
    for (rendition, ext) in [("v0/", "m4s"), ("a0/", "m4s"), ("ts/", "ts")] {
        let mut before: Option<MediaPlaylist> = None;
        for round in 0..3 {
            let query = match (&before, round) {
                (Some(b), 1) if !b.parts.is_empty() => {
                    format!("?_HLS_msn={}&_HLS_part=0", b.segments.last().unwrap().0 + 1)
                }
                (Some(_), 2) if ext == "m4s" => "?_HLS_skip=YES".to_owned(),
                _ => String::new(),
            };
            let (playlist, text) =
                playlist_at(addr, &format!("/live/hls/{rendition}index.m3u8{query}"));
            if let Some(before) = &before {
                playlist
                    .check_reload(before)
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
            assert!(!playlist.segments.is_empty());
            let last = playlist.segments.last().unwrap();
            assert!(last.2.ends_with(ext), "{text}");
            let mut files = vec![last.2.clone()];
            files.extend(playlist.parts.iter().rev().take(2).map(|p| p.2.clone()));
            for file in files {
                let (head, data) = get(addr, &format!("/live/hls/{rendition}{file}"));
                assert!(
                    head.starts_with("http/1.0 200") && !data.is_empty(),
                    "{rendition}{file}: {head}"
                );
            }
            before = Some(playlist);
            thread::sleep(Duration::from_millis(300));
        }
    }

    let fmp4 = format!("http://{addr}/live/hls/index.m3u8");
    let ts = format!("http://{addr}/live/hls/ts/index.m3u8");
    let dash = format!("http://{addr}/live/hls/index.mpd");
    let (from_fmp4, from_ts, from_dash) = thread::scope(|s| {
        let from_ts = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &ts, 2.0, dir.path()));
        let from_dash = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &dash, 2.0, dir.path()));
        let from_fmp4 = ffmpeg_play_to_flv(Ffmpeg::Debian, &fmp4, 2.0, dir.path());
        (
            from_fmp4,
            from_ts.join().unwrap(),
            from_dash.join().unwrap(),
        )
    });
    let expect = Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.8);
    for (who, report) in [
        ("hls fmp4", &from_fmp4),
        ("hls ts", &from_ts),
        ("dash", &from_dash),
    ] {
        report.assert_matches(&expect, who);
        let v = report.video_frames();
        assert!(
            (54..=62).contains(&v),
            "{who}: {v} video frames for 2 s at 30 fps"
        );
        assert!(report.video_keyframes() >= 1, "{who}");
    }
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}

/// Resident memory of this process (weir runs in it), KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Thousands of blocking playlist requests held at once: each is answered once its part
/// exists, in bounded time and memory, while an HTTP-FLV viewer of the same stream keeps
/// receiving.
#[test]
fn thousands_of_held_blocking_requests_are_answered_while_the_stream_plays() {
    const HELD: usize = 3000;
    // Client and server sockets both live in this process.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    assert!(
        limit.rlim_cur as usize > 2 * HELD + 200,
        "the file limit ({}) is too low for {HELD} held requests",
        limit.rlim_cur
    );
    let dir = TestDir::new("hls-held");
    let weir = WeirServer::start(dir.path());
    let addr = weir.http_addr();
    let mut publisher = weir.publish_fixture("held", dir.path());
    let (v0, _) = playlist_at(addr, "/live/held/v0/index.m3u8");
    let msn = v0.segments.last().unwrap().0 + 2;

    // A viewer that must keep getting the stream meanwhile.
    let flv_bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&flv_bytes);
    let viewer = thread::spawn(move || {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
            .write_all(b"GET /live/held.flv HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 65536];
        while let Ok(n) = socket.read(&mut buf) {
            if n == 0 {
                break;
            }
            counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    });
    thread::sleep(Duration::from_millis(300));

    let before = rss_kib();
    let started = std::time::Instant::now();
    let request = format!(
        "GET /live/held/v0/index.m3u8?_HLS_msn={msn}&_HLS_part=0 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    let mut sockets = Vec::with_capacity(HELD);
    for _ in 0..HELD {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        sockets.push(socket);
    }
    let sent_in = started.elapsed();
    let flv_at_send = flv_bytes.load(std::sync::atomic::Ordering::Relaxed);
    thread::sleep(Duration::from_millis(200));
    let held_rss = rss_kib();
    let mut statuses = std::collections::BTreeMap::new();
    for mut socket in sockets {
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut data = Vec::new();
        let _ = socket.read_to_end(&mut data);
        let status = String::from_utf8_lossy(&data[..data.len().min(12)]).to_string();
        *statuses.entry(status).or_insert(0usize) += 1;
    }
    let answered_in = started.elapsed();
    let flv_after = flv_bytes.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{HELD} held requests: sent in {sent_in:?}, all answered in {answered_in:?}, \
         statuses {statuses:?}, rss {before} -> {held_rss} KiB while held, \
         flv viewer {flv_at_send} -> {flv_after} bytes"
    );
    assert_eq!(
        statuses.get("HTTP/1.1 200").copied().unwrap_or(0),
        HELD,
        "{statuses:?}"
    );
    // Held until segment msn's first part exists (about two segments away), not longer than
    // three target durations.
    assert!(answered_in < Duration::from_secs(8), "{answered_in:?}");
    assert!(
        held_rss.saturating_sub(before) < 150 * 1024,
        "{HELD} held requests grew memory by {} KiB",
        held_rss.saturating_sub(before)
    );
    assert!(
        flv_after > flv_at_send + 10_000,
        "the HTTP-FLV viewer stalled while requests were held"
    );
    publisher.wait_finished(Duration::from_secs(20));
    viewer.join().unwrap();
    weir.shutdown();
}

/// `hls.always`: a stream is packaged from its first frame, so the first request is answered
/// at once with the segments made so far.
#[test]
fn with_hls_always_the_first_request_finds_segments_ready() {
    let dir = TestDir::new("hls-always");
    let mut config = common::loopback_config();
    config.hls.always = true;
    let weir = WeirServer::start_with(config, dir.path());
    let addr = weir.http_addr();
    let mut publisher = weir.publish_fixture("always", dir.path());
    // 3.5 s of the 6 s stream sent (key frames every second): segments closed, none asked for.
    publisher.wait_media_seconds(3.5, Duration::from_secs(15));
    for path in ["/live/always/v0/index.m3u8", "/live/always/ts/index.m3u8"] {
        let (head, body, took) = timed_get(addr, path);
        let text = String::from_utf8_lossy(&body).to_string();
        assert!(head.starts_with("http/1.0 200"), "{path}: {head}");
        let playlist = MediaPlaylist::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(playlist.segments.len() >= 2, "{path}:\n{text}");
        assert!(took < Duration::from_millis(300), "{path} took {took:?}");
    }
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}

/// `hls.dir`: the files land on disk as a plain web server would serve them (plain HLS
/// playlists, segments that play), old segments are removed, and traversal in request paths
/// reads nothing from disk (names that would leave the directory: `hls_dir.rs` unit test).
#[test]
fn hls_dir_keeps_a_playable_copy_on_disk() {
    let dir = TestDir::new("hls-dir");
    let root = dir.path().join("www");
    let mut config = common::loopback_config();
    config.hls.dir = root.display().to_string();
    config.hls.window = 2;
    let weir = WeirServer::start_with(config, dir.path());
    let addr = weir.http_addr();
    let mut publisher = weir.publish_fixture("disk", dir.path());
    publisher.wait_finished(Duration::from_secs(20));
    thread::sleep(Duration::from_millis(300));
    let base = root.join("live/disk");
    let read = |p: &str| std::fs::read_to_string(base.join(p)).unwrap_or_default();
    let multivariant = read("index.m3u8");
    assert!(multivariant.contains("v0/index.m3u8"), "{multivariant}");
    assert!(read("index.mpd").contains("<MPD"));
    for (playlist, ext) in [
        ("v0/index.m3u8", "m4s"),
        ("a0/index.m3u8", "m4s"),
        ("ts/index.m3u8", "ts"),
    ] {
        let text = read(playlist);
        let parsed =
            MediaPlaylist::parse(&text).unwrap_or_else(|e| panic!("{playlist}: {e}\n{text}"));
        assert!(
            !text.contains("#EXT-X-PART"),
            "{playlist} on disk has parts:\n{text}"
        );
        let sub = playlist.split('/').next().unwrap();
        for segment in &parsed.segments {
            assert!(segment.2.ends_with(ext));
            let file = base.join(sub).join(&segment.2);
            assert!(
                file.metadata().map(|m| m.len() > 0).unwrap_or(false),
                "{}",
                file.display()
            );
        }
        // Removed with the window: only the last 2 + 2 kept segments remain.
        let on_disk = std::fs::read_dir(base.join(sub))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("seg")
            })
            .count();
        assert!(on_disk <= 4, "{sub}: {on_disk} segments on disk");
    }
    // The files play: Debian's FFmpeg reads the newest TS segment, and the newest fMP4
    // segment behind its init segment.
    let newest = |playlist: &str| {
        MediaPlaylist::parse(&read(playlist))
            .unwrap()
            .segments
            .last()
            .unwrap()
            .2
            .clone()
    };
    let probe = common::probe_file(&base.join("ts").join(newest("ts/index.m3u8")), dir.path());
    assert!(probe.video_frames() >= 25, "{probe:?}");
    let joined = dir.path().join("joined.mp4");
    let mut bytes = std::fs::read(base.join("v0/init0.mp4")).unwrap();
    bytes.extend(std::fs::read(base.join("v0").join(newest("v0/index.m3u8"))).unwrap());
    std::fs::write(&joined, bytes).unwrap();
    let probe = common::probe_file(&joined, dir.path());
    assert!(probe.video_frames() >= 25, "{probe:?}");
    // Traversal in request paths: answered from memory routes only, never a file.
    for path in [
        "/live/../../etc/passwd",
        "/live/%2e%2e/%2e%2e/etc/passwd",
        "/live/disk/..%2f..%2fweir.log",
        "/live/disk/v0/..%2f..%2f..%2fweir.log",
        "/..%2f..%2fetc/passwd",
    ] {
        let (head, body) = get(addr, path);
        assert!(
            head.starts_with("http/1.0 404") || head.starts_with("http/1.0 400"),
            "{path}: {head}"
        );
        assert!(!String::from_utf8_lossy(&body).contains("root:"), "{path}");
    }
    weir.shutdown();
}
