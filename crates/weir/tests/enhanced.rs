//! Enhanced RTMP end to end: FFmpeg 9 publishes every codec of the E-RTMP v2 spec and
//! Multitrack streams to an in-process weir; FFmpeg 8, Debian's FFmpeg 5.1, rtmpdump,
//! GStreamer and weir-client play them back. What the publisher sent is written to a file at
//! the same time (FFmpeg's tee muxer), so every check compares against the exact stream:
//! codecs, resolution, and packet counts per track.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::process::{self, ChildGuard};
use common::{gst_play, tools, TestDir, WeirServer};
use serde_json::Value;
use weir_client::{Client, ClientEvent, ClientOptions, RtmpUrl};
use weir_media::flv::{TrackKind, Tracks};
use weir_rtmp::session::MediaType;

const START: Duration = Duration::from_secs(15);
/// Video frames every publish sends (2 s at 25 fps).
const FRAMES: usize = 50;

/// One elementary stream as ffprobe 8 counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stream {
    kind: String,
    codec: String,
    width: u64,
    height: u64,
    packets: u64,
}

/// Every stream of `path`, video first, with its count of non-empty packets (FFmpeg's FLV
/// demuxer shows an empty Opus sequence start as a packet; Matroska keeps it as extradata).
fn streams(path: &Path, log_dir: &Path) -> Vec<Stream> {
    let mut cmd = Command::new(tools::ffprobe8());
    cmd.args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("stream=index,codec_type,codec_name,width,height:packet=stream_index,size")
        .arg(path);
    let (status, out, err) = process::run("ffprobe8", cmd, log_dir, Duration::from_secs(30));
    assert!(status.success(), "ffprobe8 {}: {err}", path.display());
    let json: Value = serde_json::from_str(&out).expect("ffprobe json");
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    let count = |index: u64| {
        packets
            .iter()
            .filter(|p| p["stream_index"].as_u64() == Some(index))
            .filter(|p| p["size"].as_str().and_then(|n| n.parse::<u64>().ok()) > Some(0))
            .count() as u64
    };
    let mut list: Vec<Stream> = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| Stream {
            kind: s["codec_type"].as_str().unwrap_or("").to_owned(),
            codec: s["codec_name"].as_str().unwrap_or("").to_owned(),
            width: s["width"].as_u64().unwrap_or(0),
            height: s["height"].as_u64().unwrap_or(0),
            packets: count(s["index"].as_u64().unwrap_or(u64::MAX)),
        })
        .collect();
    list.sort_by_key(|s| s.kind != "video");
    list
}

/// Starts FFmpeg 9 publishing `FRAMES` frames of a 25 fps test pattern per video input and
/// a 48 kHz tone per audio input to `url`, in real time, and the same packets to `copy`.
fn publish(url: &str, inputs: &[&str], codecs: &[&str], copy: &Path, dir: &Path) -> ChildGuard {
    publish_frames(url, inputs, codecs, FRAMES, copy, dir)
}

/// [`publish`] with `frames` frames (at 25 fps) instead of [`FRAMES`].
fn publish_frames(
    url: &str,
    inputs: &[&str],
    codecs: &[&str],
    frames: usize,
    copy: &Path,
    dir: &Path,
) -> ChildGuard {
    let seconds = (frames / 25).max(1).to_string();
    let mut cmd = Command::new(tools::ffmpeg_recent());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    for i in 0..inputs.len() {
        cmd.args(["-map", &i.to_string()]);
    }
    cmd.args(codecs)
        .args([
            "-frames:v",
            &frames.to_string(),
            "-t",
            &seconds,
            "-f",
            "tee",
        ])
        .arg(format!("[f=flv]{url}|[f=flv]{}", copy.display()));
    ChildGuard::spawn("ffmpeg9-publish", cmd, dir)
}

/// Starts `ffmpeg -i url -map 0 -c copy out` (it ends when the publisher leaves).
fn play(ffmpeg: &Path, name: &str, url: &str, out: &Path, dir: &Path) -> ChildGuard {
    let mut cmd = Command::new(ffmpeg);
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-i",
        url,
    ])
    .args(["-map", "0", "-c", "copy"])
    .arg(out);
    ChildGuard::spawn(name, cmd, dir)
}

/// Waits until `n` viewers wait on `path` (players started before the publisher get the
/// stream from its first frame).
fn wait_viewers(weir: &WeirServer, path: &str, n: usize) {
    let deadline = Instant::now() + START;
    while Instant::now() < deadline {
        let viewers = weir
            .hub()
            .stream_stats(path)
            .map_or(0, |s| s.viewer_count());
        if viewers >= n {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{n} viewers did not arrive on {path}\n{}",
        weir.log_tail(30)
    );
}

fn finish(child: &mut ChildGuard, what: &str) {
    child.expect_success(Duration::from_secs(30));
    let _ = what;
}

/// The FourCC weir names an ffprobe codec by in its log.
fn fourcc_of(ffprobe_name: &str) -> &'static str {
    match ffprobe_name {
        "h264" => "avc1",
        "hevc" => "hvc1",
        "av1" => "av01",
        "vp9" => "vp09",
        "aac" => "mp4a",
        "opus" => "Opus",
        "flac" => "fLaC",
        "ac3" => "ac-3",
        "eac3" => "ec-3",
        "mp3" => ".mp3",
        other => panic!("no FourCC for {other}"),
    }
}

/// A codec pair: stream name, video encoder arguments, audio encoder arguments, and the
/// codec names ffprobe reports.
type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str, &'a str);

/// Every codec pair: FFmpeg 9 publishes, FFmpeg 8 (which lists no codecs in connect: weir
/// sends them anyway by default) plays; the recording matches what was sent packet for
/// packet. ffprobe sees exactly one video and one audio stream.
#[test]
fn every_enhanced_codec_is_played_back_exactly() {
    let dir = TestDir::new("enhanced-codecs");
    let weir = WeirServer::start(dir.path());
    let x265 = ["-c:v", "libx265", "-x265-params", "log-level=error"];
    let cases: &[Case] = &[
        ("hevc_aac", &x265, &["-c:a", "aac"], "hevc", "aac"),
        (
            "av1_opus",
            &[
                "-c:v",
                "libsvtav1",
                "-preset",
                "12",
                "-svtav1-params",
                "lp=1",
            ],
            &["-c:a", "libopus"],
            "av1",
            "opus",
        ),
        (
            "vp9_opus",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
            &["-c:a", "libopus"],
            "vp9",
            "opus",
        ),
        ("hevc_flac", &x265, &["-c:a", "flac"], "hevc", "flac"),
        (
            "h264_ac3",
            &["-c:v", "libx264"],
            &["-c:a", "ac3"],
            "h264",
            "ac3",
        ),
        (
            "h264_eac3",
            &["-c:v", "libx264"],
            &["-c:a", "eac3"],
            "h264",
            "eac3",
        ),
        (
            "h264_mp3",
            &["-c:v", "libx264"],
            &["-c:a", "libmp3lame"],
            "h264",
            "mp3",
        ),
    ];
    let inputs = [
        "testsrc=size=320x240:rate=25",
        "sine=frequency=440:sample_rate=48000",
    ];
    for (name, video, audio, vcodec, acodec) in cases {
        let url = weir.url(name);
        let copy = dir.file(&format!("{name}-sent.flv"));
        let out = dir.file(&format!("{name}-played.mkv"));
        let mut player = play(tools::ffmpeg8(), "ffmpeg8-play", &url, &out, dir.path());
        wait_viewers(&weir, &format!("live/{name}"), 1);
        let mut codecs: Vec<&str> = video.to_vec();
        codecs.extend(["-g", "25"]);
        codecs.extend(audio.iter());
        let mut publisher = publish(&url, &inputs, &codecs, &copy, dir.path());
        finish(&mut publisher, "publish");
        finish(&mut player, "play");

        let sent = streams(&copy, dir.path());
        let played = streams(&out, dir.path());
        assert_eq!(sent.len(), 2, "{name}: sent {sent:?}");
        assert_eq!(
            (sent[0].codec.as_str(), sent[1].codec.as_str()),
            (*vcodec, *acodec)
        );
        assert_eq!((sent[0].width, sent[0].height), (320, 240), "{name}");
        assert_eq!(sent[0].packets, FRAMES as u64, "{name}: video frames sent");
        assert_eq!(
            played, sent,
            "{name}: FFmpeg 8 played back {played:?}, sent {sent:?}"
        );
        // The publish's end line describes its tracks from their configurations and frames.
        let ended = weir
            .log_text()
            .lines()
            .find(|l| l.contains("publish ended") && l.contains(&format!("live/{name} ")))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no publish end line for {name}\n{}", weir.log_tail(20)));
        let (vfourcc, afourcc) = (fourcc_of(vcodec), fourcc_of(acodec));
        for part in [
            format!("video#0 {vfourcc}"),
            "320x240 8-bit 25fps".to_owned(),
            format!("audio#0 {afourcc}"),
            "48 kHz mono".to_owned(),
        ] {
            assert!(ended.contains(&part), "{name}: {part:?} not in {ended}");
        }
    }
    // FFmpeg 8 listed no codecs: weir said once per track that it sends them anyway.
    let log = weir.log_text();
    assert!(
        log.contains("player listed no codecs") && log.contains("video#0 H.265"),
        "{}",
        weir.log_tail(40)
    );
    weir.shutdown();
}

/// `playback.unadvertised_codecs = "withhold"` for an app: a player that lists nothing gets
/// the H.264 video and not the Opus audio, and the log says why.
#[test]
fn unadvertised_codecs_can_be_withheld_per_app() {
    let dir = TestDir::new("enhanced-withhold");
    let mut config = common::loopback_config();
    config
        .playback
        .app_unadvertised_codecs
        .insert("live".into(), weir::config::Unadvertised::Withhold);
    let weir = WeirServer::start_with(config, dir.path());
    let url = weir.url("opus");
    let copy = dir.file("sent.flv");
    let out = dir.file("played.mkv");
    let mut player = play(tools::ffmpeg8(), "ffmpeg8-play", &url, &out, dir.path());
    wait_viewers(&weir, "live/opus", 1);
    let inputs = [
        "testsrc=size=320x240:rate=25",
        "sine=frequency=440:sample_rate=48000",
    ];
    let codecs = ["-c:v", "libx264", "-g", "25", "-c:a", "libopus"];
    let mut publisher = publish(&url, &inputs, &codecs, &copy, dir.path());
    finish(&mut publisher, "publish");
    finish(&mut player, "play");
    let played = streams(&out, dir.path());
    assert_eq!(played.len(), 1, "{played:?}");
    assert_eq!(
        (played[0].codec.as_str(), played[0].packets),
        ("h264", FRAMES as u64)
    );
    assert!(
        weir.log_text()
            .contains("track withheld from this player: the player listed no codecs"),
        "{}",
        weir.log_tail(30)
    );
    weir.shutdown();
}

/// What a Multitrack-capable weir-client received, per (kind, track).
fn play_multitrack(url: String, stop_after: Duration) -> Vec<((TrackKind, u8), usize)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let url = RtmpUrl::parse(&url).unwrap();
        let mut client = Client::connect_with(&url, ClientOptions::default())
            .await
            .expect("connect");
        client.play(&url.stream).await.expect("play");
        let mut counts: Vec<((TrackKind, u8), usize)> = Vec::new();
        let deadline = tokio::time::Instant::now() + stop_after;
        while let Ok(Some(event)) = client
            .next_event(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            let (media_type, payload) = match event {
                ClientEvent::Media {
                    media_type,
                    payload,
                    ..
                } => (media_type, payload),
                ClientEvent::Status { status, .. }
                    if status.code == weir_rtmp::command::code::PLAY_UNPUBLISH_NOTIFY =>
                {
                    break;
                }
                _ => continue,
            };
            let kind = match media_type {
                MediaType::Video => TrackKind::Video,
                MediaType::Audio => TrackKind::Audio,
            };
            let Ok(tracks) = Tracks::parse(kind, &payload) else {
                continue;
            };
            for track in tracks.flatten() {
                // Coded frames only (sequence headers and configs are not packets).
                if matches!(
                    track.packet_type,
                    weir_media::TrackPacketType::CodedFrames
                        | weir_media::TrackPacketType::CodedFramesX
                ) {
                    let key = (kind, track.track_id);
                    match counts.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((key, 1)),
                    }
                }
            }
        }
        counts.sort();
        counts
    })
}

/// FFmpeg 9 publishes two H.264 renditions and two AAC tracks in one connection (tracks 1 as
/// E-RTMP Multitrack, as OBS's Enhanced Broadcasting does). Legacy players (Debian FFmpeg
/// 5.1, rtmpdump, GStreamer) and FFmpeg 8 get exactly the default track, frame for frame;
/// weir-client, which advertises Multitrack, gets every track.
#[test]
fn multitrack_reaches_each_player_in_the_form_it_reads() {
    let dir = TestDir::new("enhanced-multitrack");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("mt");
    let debian_out = dir.file("debian.mp4");
    let ffmpeg8_out = dir.file("ffmpeg8.mkv");
    let dump_out = dir.file("rtmpdump.flv");
    let mut debian = play(
        tools::ffmpeg(),
        "ffmpeg51-play",
        &url,
        &debian_out,
        dir.path(),
    );
    let mut ffmpeg8 = play(
        tools::ffmpeg8(),
        "ffmpeg8-play",
        &url,
        &ffmpeg8_out,
        dir.path(),
    );
    let mut dump_cmd = Command::new(tools::rtmpdump());
    dump_cmd.args(["-q", "-v", "-r", &url, "-o"]).arg(&dump_out);
    let mut dump = ChildGuard::spawn("rtmpdump", dump_cmd, dir.path());
    let multitrack_url = url.clone();
    let multitrack =
        thread::spawn(move || play_multitrack(multitrack_url, Duration::from_secs(12)));
    let gst_dir: PathBuf = dir.path().to_owned();
    let gst_url = url.clone();
    let gst = thread::spawn(move || gst_play(&gst_url, 8.0, &gst_dir));
    wait_viewers(&weir, "live/mt", 5);

    let copy = dir.file("sent.flv");
    let inputs = [
        "testsrc=size=320x240:rate=25",
        "testsrc=size=160x120:rate=25",
        "sine=frequency=440:sample_rate=48000",
        "sine=frequency=880:sample_rate=48000",
    ];
    let codecs = ["-c:v", "libx264", "-g", "25", "-c:a", "aac"];
    let mut publisher = publish(&url, &inputs, &codecs, &copy, dir.path());
    finish(&mut publisher, "publish");
    finish(&mut debian, "debian play");
    finish(&mut ffmpeg8, "ffmpeg8 play");
    let _ = dump.wait_timeout(Duration::from_secs(10));
    dump.stop(Duration::from_secs(5));

    let sent = streams(&copy, dir.path());
    assert_eq!(sent.len(), 4, "sent {sent:?}");
    let default_track = vec![sent[0].clone(), sent[2].clone()];
    assert_eq!(
        (default_track[0].width, default_track[0].packets),
        (320, FRAMES as u64)
    );
    // Debian's FFmpeg 5.1 with `-map 0` to MP4: exactly one video and one audio stream (no
    // phantom data stream, no second rendition).
    for (who, path) in [
        ("ffmpeg 5.1", &debian_out),
        ("ffmpeg 8", &ffmpeg8_out),
        ("rtmpdump", &dump_out),
    ] {
        let got = streams(path, dir.path());
        assert_eq!(
            got, default_track,
            "{who} got {got:?}, the default track is {default_track:?}"
        );
    }
    let gst = gst.join().expect("gst thread");
    assert_eq!(
        gst.video.as_ref().map(|v| (v.width, v.height)),
        Some((320, 240))
    );
    assert_eq!(gst.video_packets(), FRAMES, "GStreamer video packets");

    let counts = multitrack.join().expect("multitrack client");
    let audio = default_track[1].packets as usize;
    assert_eq!(
        counts,
        vec![
            ((TrackKind::Audio, 0), audio),
            ((TrackKind::Audio, 1), sent[3].packets as usize),
            ((TrackKind::Video, 0), FRAMES),
            ((TrackKind::Video, 1), FRAMES),
        ],
        "weir-client (Multitrack) per-track coded frames"
    );
    // weir-client publishes the recording (four tracks, Multitrack messages as FFmpeg wrote
    // them); a Multitrack weir-client gets the same frames per track.
    let url2 = weir.url("mt-client");
    let player_url = url2.clone();
    let second = thread::spawn(move || play_multitrack(player_url, Duration::from_secs(12)));
    wait_viewers(&weir, "live/mt-client", 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stats = runtime
        .block_on(weir_client::publish_file(
            &RtmpUrl::parse(&url2).unwrap(),
            &copy,
            weir_client::PublishOptions::default(),
        ))
        .expect("weir-client publishes the recording");
    assert!(stats.video >= 2 * FRAMES as u64, "{stats:?}");
    assert_eq!(
        second.join().expect("second multitrack player"),
        counts,
        "weir-client publishing Multitrack"
    );
    let log = weir.log_text();
    assert!(
        log.contains("track withheld from this player") && log.contains("video#1 H.264"),
        "{}",
        weir.log_tail(40)
    );
    weir.shutdown();
}

/// ffprobe (Debian's 5.1) against a live weir stream lists exactly its video and audio: no
/// phantom "data" stream made of a data message in the play answer.
#[test]
fn ffprobe_lists_exactly_the_audio_and_video_streams() {
    let dir = TestDir::new("enhanced-ffprobe-streams");
    let weir = WeirServer::start(dir.path());
    let url = weir.url("probe");
    let inputs = [
        "testsrc=size=320x240:rate=25",
        "sine=frequency=440:sample_rate=48000",
    ];
    let codecs = ["-c:v", "libx264", "-g", "25", "-c:a", "aac"];
    let copy = dir.file("sent.flv");
    // 8 s, so ffprobe (started after the publish) finds it live; killed when done.
    let mut publisher = publish_frames(&url, &inputs, &codecs, 200, &copy, dir.path());
    weir.wait_published(&["live/probe"], START);
    let mut cmd = Command::new(tools::ffprobe());
    cmd.args([
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type",
        "-of",
        "csv=p=0",
    ])
    .arg(&url);
    let (status, out, err) = process::run("ffprobe", cmd, dir.path(), Duration::from_secs(30));
    assert!(status.success(), "ffprobe: {err}");
    let mut kinds: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["audio", "video"], "ffprobe 5.1 listed {out:?}");
    publisher.kill();
    weir.shutdown();
}

/// A raw GET: status line and body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
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

/// HTTP-FLV `?track=N`: a player that reads no Multitrack gets the rendition it chose, in
/// single-track form (Debian's FFmpeg 5.1 reads it); a track the stream lacks is 404, a bad
/// number 400.
#[test]
fn http_flv_plays_the_track_a_viewer_chooses() {
    let dir = TestDir::new("enhanced-track-choice");
    let mut config = common::loopback_config();
    config.http.flv_wait_secs = 20;
    let weir = WeirServer::start_with(config, dir.path());
    let http = weir.http_addr();
    let (status, _) = http_get(http, "/live/choice.flv?track=x");
    assert!(status.contains(" 400"), "{status}");
    let base = format!("http://{http}/live/choice.flv");
    let (out0, out1) = (dir.file("track0.mp4"), dir.file("track1.mp4"));
    let mut default = play(tools::ffmpeg(), "ffmpeg51-track0", &base, &out0, dir.path());
    let mut second = play(
        tools::ffmpeg(),
        "ffmpeg51-track1",
        &format!("{base}?track=1"),
        &out1,
        dir.path(),
    );
    thread::sleep(Duration::from_millis(500));
    let inputs = [
        "testsrc=size=320x240:rate=25",
        "testsrc=size=160x120:rate=25",
        "sine=frequency=440:sample_rate=48000",
        "sine=frequency=880:sample_rate=48000",
    ];
    let codecs = ["-c:v", "libx264", "-g", "25", "-c:a", "aac"];
    let copy = dir.file("sent.flv");
    let mut publisher = publish(&weir.url("choice"), &inputs, &codecs, &copy, dir.path());
    weir.wait_published(&["live/choice"], START);
    let (status, body) = http_get(http, "/live/choice.flv?track=9");
    assert!(
        status.contains(" 404") && body.contains("no video track 9"),
        "{status} {body}"
    );
    finish(&mut publisher, "publish");
    finish(&mut default, "default track play");
    finish(&mut second, "track 1 play");
    let got0 = streams(&out0, dir.path());
    let got1 = streams(&out1, dir.path());
    let video = |s: &[Stream]| {
        s.iter()
            .find(|s| s.kind == "video")
            .map(|v| (v.width, v.height, v.packets))
    };
    assert_eq!(
        video(&got0).map(|v| (v.0, v.1)),
        Some((320, 240)),
        "{got0:?}"
    );
    assert_eq!(
        video(&got1).map(|v| (v.0, v.1)),
        Some((160, 120)),
        "{got1:?}"
    );
    assert!(video(&got1).unwrap().2 >= FRAMES as u64 - 5, "{got1:?}");
    assert!(
        got1.iter().any(|s| s.kind == "audio" && s.packets > 50),
        "{got1:?}"
    );
    weir.shutdown();
}
