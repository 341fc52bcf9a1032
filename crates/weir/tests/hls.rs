//! HLS from one RTMP ingest: Debian's FFmpeg publishes the test fixture (H.264 640x360 30 fps,
//! 1 s GOP, AAC), Debian's FFmpeg plays `index.m3u8` (fMP4) and `ts/index.m3u8` (MPEG-TS) as
//! live HLS; raw requests check the playlist, the caching headers and the 404s.

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

#[test]
fn ffmpeg_plays_live_hls_in_both_containers() {
    let dir = TestDir::new("hls");
    let weir = WeirServer::start(dir.path());
    let addr = weir.http_addr();

    // Nothing published: 404, and nothing starts.
    let (head, _) = get(addr, "/live/hls/index.m3u8");
    assert!(head.starts_with("http/1.0 404"), "{head}");

    let mut publisher = weir.publish_fixture("hls", dir.path());

    // The first playlist request waits for the first segment.
    let (head, body) = get(addr, "/live/hls/index.m3u8");
    let playlist = String::from_utf8_lossy(&body).to_string();
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("cache-control: max-age=1"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(playlist.starts_with("#EXTM3U\n"), "{playlist}");
    assert!(playlist.contains("#EXT-X-TARGETDURATION:6\n"), "{playlist}");
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"init0.mp4\""),
        "{playlist}"
    );
    assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{playlist}");
    assert!(playlist.contains("seg0.m4s"), "{playlist}");
    let (head, init) = get(addr, "/live/hls/init0.mp4");
    assert!(
        head.starts_with("http/1.0 200") && &init[4..8] == b"ftyp",
        "{head}"
    );
    let (head, segment) = get(addr, "/live/hls/seg0.m4s");
    assert!(head.contains("immutable"), "{head}");
    assert_eq!(&segment[4..8], b"moof");
    let (head, _) = get(addr, "/live/hls/seg999.m4s");
    assert!(head.starts_with("http/1.0 404"), "{head}");

    // Our validator on live reloads of both playlists: each on its own, and against the one
    // before; every listed segment downloads.
    for container in ["", "ts/"] {
        let mut before: Option<MediaPlaylist> = None;
        for _ in 0..3 {
            let (_, body) = get(addr, &format!("/live/hls/{container}index.m3u8"));
            let text = String::from_utf8_lossy(&body).to_string();
            let playlist = MediaPlaylist::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            if let Some(before) = &before {
                playlist
                    .check_reload(before)
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
            }
            assert!(!playlist.segments.is_empty());
            let last = playlist.segments.last().unwrap();
            let (head, data) = get(addr, &format!("/live/hls/{container}{}", last.2));
            assert!(
                head.starts_with("http/1.0 200") && !data.is_empty(),
                "{}: {head}",
                last.2
            );
            before = Some(playlist);
            thread::sleep(Duration::from_millis(500));
        }
    }

    let fmp4 = format!("http://{addr}/live/hls/index.m3u8");
    let ts = format!("http://{addr}/live/hls/ts/index.m3u8");
    let (from_fmp4, from_ts) = thread::scope(|s| {
        let from_ts = s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &ts, 2.0, dir.path()));
        let from_fmp4 = ffmpeg_play_to_flv(Ffmpeg::Debian, &fmp4, 2.0, dir.path());
        (from_fmp4, from_ts.join().unwrap())
    });
    let expect = Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.8);
    for (who, report) in [("hls fmp4", &from_fmp4), ("hls ts", &from_ts)] {
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
