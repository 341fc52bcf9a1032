//! Recording: FFmpeg publishes, weir records (`[apps.NAME.record]`), ffprobe reads the files.
//! Every codec and a Multitrack stream are recorded exactly; `kill -9` of weir or of the
//! encoder leaves files that play to within `fragment_secs` of the end; files rotate, old ones
//! are deleted, a directory weir cannot write harms no stream; stream names never escape the
//! recording directory; and a time range of the recordings plays back as HLS.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::access::{http_get, play_and_count};
use common::process::{self, ChildGuard};
use common::{tools, TestDir, WeirServer};
use serde_json::Value;
use weir::config::{AppRules, RecordFormat, RecordRules};

/// An app that records into `dir` with `format`.
fn recording_app(dir: &Path, format: RecordFormat) -> AppRules {
    AppRules {
        record: RecordRules {
            format: Some(format),
            path: format!("{}/{{app}}/{{stream}}/{{start}}.{{ext}}", dir.display()),
            ..RecordRules::default()
        },
        ..AppRules::default()
    }
}

/// FFmpeg (`ffmpeg`) publishing `seconds` of lavfi `inputs` with `codecs` to `url` in real
/// time, and, with `copy`, the same packets to that file.
fn publish(
    ffmpeg: &Path,
    url: &str,
    inputs: &[&str],
    codecs: &[&str],
    seconds: u32,
    copy: Option<&Path>,
    dir: &Path,
) -> ChildGuard {
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"]);
    for input in inputs {
        cmd.args(["-f", "lavfi", "-i", input]);
    }
    for i in 0..inputs.len() {
        cmd.args(["-map", &i.to_string()]);
    }
    cmd.args(codecs)
        .args(["-frames:v", &(seconds * 25).to_string(), "-t"])
        .arg(seconds.to_string());
    match copy {
        Some(copy) => cmd
            .args(["-f", "tee"])
            .arg(format!("[f=flv]{url}|[f=flv]{}", copy.display())),
        None => cmd.args(["-f", "flv", url]),
    };
    ChildGuard::spawn("ffmpeg-publish", cmd, dir)
}

const VIDEO: &str = "testsrc=size=320x240:rate=25";
const AUDIO: &str = "sine=frequency=440:sample_rate=48000";

/// Per stream of a file (video first): (codec, packets), and the duration of its first
/// stream's packets (first timestamp to the end of the last packet), seconds.
fn probe(path: &Path, dir: &Path) -> (Vec<(String, u64)>, f64) {
    let mut cmd = Command::new(tools::ffprobe8());
    cmd.args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("stream=index,codec_type,codec_name:packet=stream_index,size,pts_time,duration_time")
        .arg(path);
    let (status, out, err) = process::run("ffprobe8", cmd, dir, Duration::from_secs(30));
    assert!(status.success(), "ffprobe {}: {err}", path.display());
    let json: Value = serde_json::from_str(&out).expect("ffprobe json");
    let packets = json["packets"].as_array().cloned().unwrap_or_default();
    let mut streams: Vec<(String, String, u64)> = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            let index = s["index"].as_u64().unwrap_or(u64::MAX);
            let count = packets
                .iter()
                .filter(|p| p["stream_index"].as_u64() == Some(index))
                .filter(|p| p["size"].as_str().and_then(|n| n.parse::<u64>().ok()) > Some(0))
                .count() as u64;
            (
                s["codec_type"].as_str().unwrap_or("").to_owned(),
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                count,
            )
        })
        .collect();
    let first_video = json["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["codec_type"] == "video").or(s.first()))
        .and_then(|s| s["index"].as_u64());
    let number = |v: &Value| v.as_str().and_then(|n| n.parse::<f64>().ok());
    let times: Vec<(f64, f64)> = packets
        .iter()
        .filter(|p| p["stream_index"].as_u64() == first_video)
        .filter_map(|p| {
            Some((
                number(&p["pts_time"])?,
                number(&p["duration_time"]).unwrap_or(0.0),
            ))
        })
        .collect();
    let first = times.iter().map(|t| t.0).fold(f64::MAX, f64::min);
    let last = times.iter().map(|t| t.0 + t.1).fold(f64::MIN, f64::max);
    let duration = if times.is_empty() { 0.0 } else { last - first };
    streams.sort_by_key(|s| s.0 != "video");
    (
        streams.into_iter().map(|(_, c, n)| (c, n)).collect(),
        duration,
    )
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Waits until the log has `n` lines containing `needle`.
fn wait_log(weir: &WeirServer, needle: &str, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if weir.log_text().matches(needle).count() >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{n} × {needle:?} not logged\n{}", weir.log_tail(40));
}

#[test]
fn every_codec_and_multitrack_are_recorded_exactly() {
    let dir = TestDir::new("record-codecs");
    let rec = dir.path().join("rec");
    let mut config = common::loopback_config();
    config
        .apps
        .insert("live".into(), recording_app(&rec, RecordFormat::Fmp4));
    config
        .apps
        .insert("flv".into(), recording_app(&rec, RecordFormat::Flv));
    let weir = WeirServer::start_with(config, dir.path());
    let x264 = ["-c:v", "libx264", "-g", "25"];
    let x265 = [
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error",
        "-g",
        "25",
    ];
    let av1 = [
        "-c:v",
        "libsvtav1",
        "-preset",
        "12",
        "-svtav1-params",
        "lp=1",
        "-g",
        "25",
    ];
    type Case<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<&'a str>, usize);
    let cases: Vec<Case> = vec![
        (
            "live",
            "h264",
            vec![VIDEO, AUDIO],
            [&x264[..], &["-c:a", "aac"]].concat(),
            2,
        ),
        (
            "live",
            "hevc",
            vec![VIDEO, AUDIO],
            [&x265[..], &["-c:a", "aac"]].concat(),
            2,
        ),
        (
            "live",
            "av1",
            vec![VIDEO, AUDIO],
            [&av1[..], &["-c:a", "libopus"]].concat(),
            2,
        ),
        (
            "live",
            "multitrack",
            vec![
                VIDEO,
                "testsrc=size=160x120:rate=25",
                AUDIO,
                "sine=frequency=880:sample_rate=48000",
            ],
            [&x264[..], &["-c:a", "aac"]].concat(),
            4,
        ),
        (
            "flv",
            "h264",
            vec![VIDEO, AUDIO],
            [&x264[..], &["-c:a", "aac"]].concat(),
            2,
        ),
    ];
    for (i, (app, name, inputs, codecs, tracks)) in cases.iter().enumerate() {
        let copy = dir.file(&format!("{app}-{name}-sent.flv"));
        let url = common::rtmp_url(weir.addr(), app, name);
        let mut publisher = publish(
            tools::ffmpeg_recent(),
            &url,
            inputs,
            codecs,
            3,
            Some(&copy),
            dir.path(),
        );
        publisher.expect_success(Duration::from_secs(60));
        wait_log(
            &weir,
            "recording file closed",
            i + 1,
            Duration::from_secs(10),
        );
        let files = files_under(&rec.join(app).join(name));
        assert_eq!(files.len(), 1, "{app}/{name}: {files:?}");
        let ext = if *app == "flv" { "flv" } else { "mp4" };
        assert_eq!(files[0].extension().unwrap(), ext);
        let (sent, sent_secs) = probe(&copy, dir.path());
        let (recorded, secs) = probe(&files[0], dir.path());
        assert_eq!(sent.len(), *tracks, "{app}/{name}: sent {sent:?}");
        if *app == "flv" || *tracks == 2 {
            assert_eq!(recorded.len(), 2, "{app}/{name}: recorded {recorded:?}");
        } else {
            assert_eq!(
                recorded.len(),
                *tracks,
                "{app}/{name}: every track in the fMP4: {recorded:?}"
            );
        }
        for (r, s) in recorded.iter().zip(&sent) {
            assert_eq!(r.0, s.0, "{app}/{name}: codec");
            if ["h264", "hevc", "av1"].contains(&r.0.as_str()) {
                assert_eq!(
                    r.1, s.1,
                    "{app}/{name}: every video frame: recorded {recorded:?} sent {sent:?}"
                );
            } else {
                assert!(
                    r.1.abs_diff(s.1) <= 2,
                    "{app}/{name}: audio frames: recorded {recorded:?} sent {sent:?}"
                );
            }
        }
        assert!(
            (secs - sent_secs).abs() <= 0.041,
            "{app}/{name}: {secs} s of video recorded, {sent_secs} s sent (one frame is 0.04 s)"
        );
    }
    // The closed files were announced with what they hold.
    let log = weir.log_text();
    assert!(
        log.contains("recording to a new file (video H.265"),
        "{}",
        weir.log_tail(30)
    );
    weir.shutdown();
}

/// weir as a process, with `config` (TOML) written next to its logs.
fn weir_process(config: &str, rtmp: u16, http: u16, dir: &Path) -> ChildGuard {
    let file = dir.join("weir.toml");
    std::fs::write(&file, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("--config").arg(&file).args([
        "--rtmp-addr",
        &format!("127.0.0.1:{rtmp}"),
        "--http-addr",
        &format!("127.0.0.1:{http}"),
        "--api-addr",
        "127.0.0.1:0",
    ]);
    ChildGuard::spawn("weir", cmd, dir)
}

#[test]
fn kill_9_of_weir_or_of_the_encoder_leaves_playable_files() {
    let dir = TestDir::new("record-kill");
    let rec = dir.path().join("rec");
    let (rtmp, http) = (common::free_port(), common::free_port());
    let config = format!(
        "[apps.live.record]\nformat = \"fmp4\"\npath = \"{}/{{stream}}/{{start}}.{{ext}}\"\nfragment_secs = 1\n",
        rec.display()
    );
    let addr = format!("127.0.0.1:{rtmp}").parse().unwrap();
    let url = format!("rtmp://127.0.0.1:{rtmp}/live/cam");
    let codecs = ["-c:v", "libx264", "-g", "50", "-c:a", "aac"];
    for victim in ["weir", "encoder"] {
        let mut weir = weir_process(&config, rtmp, http, dir.path());
        assert!(
            common::wait_for_port(addr, Duration::from_secs(15), || weir.is_running()),
            "weir did not start\n{}",
            weir.diagnostics()
        );
        let before = files_under(&rec).len();
        let mut encoder = publish(
            tools::ffmpeg(),
            &url,
            &[VIDEO, AUDIO],
            &codecs,
            30,
            None,
            dir.path(),
        );
        // The file exists once the first key frame is in.
        let deadline = Instant::now() + Duration::from_secs(15);
        while files_under(&rec).len() == before {
            assert!(
                Instant::now() < deadline,
                "no recording started\n{}",
                weir.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let started = Instant::now();
        std::thread::sleep(Duration::from_secs(5));
        match victim {
            "weir" => weir.kill(),
            _ => encoder.kill(),
        }
        let killed_after = started.elapsed().as_secs_f64();
        // After an encoder's death weir closes the file on its own.
        std::thread::sleep(Duration::from_millis(500));
        let file = files_under(&rec).pop().unwrap();
        let (streams, secs) = probe(&file, dir.path());
        assert_eq!(streams.len(), 2, "{victim}: {streams:?}");
        // At most the fragment in progress (1 s) is lost; an encoder on a loaded machine may
        // also run up to a second behind the wall clock.
        assert!(
            secs >= killed_after - 1.0 - 1.5 && secs <= killed_after + 1.0,
            "kill -9 of {victim} after {killed_after:.2} s left {secs:.2} s in {}",
            file.display()
        );
        encoder.kill();
        weir.stop(Duration::from_secs(5));
    }
}

#[test]
fn files_rotate_old_ones_go_and_a_broken_directory_harms_no_stream() {
    let dir = TestDir::new("record-rotate");
    let rec = dir.path().join("rec");
    // Old recordings (and a file that is none) before the server starts.
    let old_dir = rec.join("live/old");
    std::fs::create_dir_all(&old_dir).unwrap();
    let old = old_dir.join("2020-01-01_00-00-00.mp4");
    std::fs::write(&old, b"old").unwrap();
    let notes = rec.join("live/notes.txt");
    std::fs::write(&notes, b"keep").unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(3 * 86_400);
    for path in [&old, &notes] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    // A "directory" that is a regular file: nothing can be written under it.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"not a directory").unwrap();

    let mut config = common::loopback_config();
    let mut live = recording_app(&rec, RecordFormat::Fmp4);
    live.record.max_file_secs = 2;
    live.record.delete_after = "2d".into();
    config.apps.insert("live".into(), live);
    config.apps.insert(
        "broken".into(),
        recording_app(&blocked.join("rec"), RecordFormat::Fmp4),
    );
    let weir = WeirServer::start_with(config, dir.path());
    wait_log(
        &weir,
        "deleted a recording older than record.delete_after",
        1,
        Duration::from_secs(10),
    );
    assert!(
        !old.exists() && !old_dir.exists(),
        "the old recording and its directory stay"
    );
    assert!(
        notes.exists(),
        "a file the template does not match was deleted"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let codecs = ["-c:v", "libx264", "-g", "25", "-c:a", "aac"];
    let broken_url = common::rtmp_url(weir.addr(), "broken", "cam");
    let mut broken = publish(
        tools::ffmpeg(),
        &broken_url,
        &[VIDEO, AUDIO],
        &codecs,
        7,
        None,
        dir.path(),
    );
    weir.wait_published(&["broken/cam"], Duration::from_secs(15));
    let viewer = runtime.spawn(play_and_count(
        weir.addr(),
        "broken",
        "cam",
        Duration::from_secs(4),
    ));
    let url = common::rtmp_url(weir.addr(), "live", "cam");
    let mut publisher = publish(
        tools::ffmpeg(),
        &url,
        &[VIDEO, AUDIO],
        &codecs,
        7,
        None,
        dir.path(),
    );
    publisher.expect_success(Duration::from_secs(60));
    broken.expect_success(Duration::from_secs(60));
    let (media, _, _) = runtime.block_on(viewer).unwrap();
    assert!(
        media > 100,
        "the stream whose recording failed reached its viewer: {media} messages"
    );
    let log = weir.log_text();
    assert!(
        log.contains("the recording stopped: cannot create") && log.contains("the stream goes on"),
        "{}",
        weir.log_tail(30)
    );
    wait_log(&weir, "recording file closed", 3, Duration::from_secs(10));
    let files = files_under(&rec.join("live/cam"));
    assert!(files.len() >= 3, "7 s in files of 2 s: {files:?}");
    let mut total = 0.0;
    for file in &files {
        let (streams, secs) = probe(file, dir.path());
        assert_eq!(streams.len(), 2, "{}", file.display());
        assert!(secs < 3.2, "{}: {secs} s", file.display());
        total += secs;
    }
    assert!((total - 7.0).abs() < 0.3, "{total} s in all");
    assert!(log.contains("a new file started: it reached its maximum duration"));
    weir.shutdown();
}

#[test]
fn hostile_stream_names_stay_inside_the_recording_directory() {
    let dir = TestDir::new("record-names");
    let rec = dir.path().join("inside/rec");
    let mut config = common::loopback_config();
    config
        .apps
        .insert("live".into(), recording_app(&rec, RecordFormat::Flv));
    let weir = WeirServer::start_with(config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let long = "x".repeat(3000);
    let names = [
        "../../x",
        "a/../../b",
        "/etc/evil",
        "..",
        "nul\0byte",
        "ctl\x01\x1b[31m",
        long.as_str(),
    ];
    for name in names {
        let (mut client, code, _) =
            runtime.block_on(common::access::publish_eagerly(weir.addr(), "live", name));
        if code == "NetStream.Publish.Start" {
            // A few more key frames, then leave: the recorder closes the file.
            runtime.block_on(async {
                for i in 3..30u32 {
                    let _ = client
                        .send_message(&weir_rtmp::chunk::ChunkMessage {
                            chunk_stream_id: 6,
                            timestamp: i * 40,
                            type_id: 9,
                            stream_id: 1,
                            payload: common::bad_bytes::avc_keyframe(),
                        })
                        .await;
                }
            });
        }
        drop(client);
    }
    wait_log(
        &weir,
        "recording file closed",
        names.len(),
        Duration::from_secs(10),
    );
    // Nothing outside the recording directory; whatever was recorded is inside it.
    let outside: Vec<_> = files_under(dir.path())
        .into_iter()
        .filter(|p| !p.starts_with(&rec) && p.extension().is_some_and(|e| e == "flv"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    let inside = files_under(&rec);
    // Each name was published and recorded, under a name made safe.
    assert_eq!(
        inside.len(),
        names.len(),
        "{inside:?}\n{}",
        weir.log_tail(30)
    );
    for file in &inside {
        let relative = file.strip_prefix(&rec).unwrap();
        assert_eq!(relative.components().count(), 3, "{}", file.display());
        let name = file.to_str().unwrap();
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(relative.to_str().unwrap().len() < 200, "{name}");
    }
    weir.shutdown();
}

#[test]
fn a_time_range_of_the_recordings_plays_as_hls() {
    let dir = TestDir::new("record-vod");
    let rec = dir.path().join("rec");
    let mut config = common::loopback_config();
    let mut live = recording_app(&rec, RecordFormat::Fmp4);
    // Only `cam` is recorded; `other`, published at the same time, is not.
    live.record.streams = vec!["cam".into()];
    config.apps.insert("live".into(), live);
    let weir = WeirServer::start_with(config, dir.path());
    let url = common::rtmp_url(weir.addr(), "live", "cam");
    let codecs = ["-c:v", "libx264", "-g", "25", "-c:a", "aac"];
    let other_url = common::rtmp_url(weir.addr(), "live", "other");
    let mut other = publish(
        tools::ffmpeg(),
        &other_url,
        &[VIDEO, AUDIO],
        &codecs,
        3,
        None,
        dir.path(),
    );
    let mut publisher = publish(
        tools::ffmpeg(),
        &url,
        &[VIDEO, AUDIO],
        &codecs,
        8,
        None,
        dir.path(),
    );
    publisher.expect_success(Duration::from_secs(60));
    other.expect_success(Duration::from_secs(30));
    assert!(
        files_under(&rec.join("live/other")).is_empty(),
        "a stream not in record.streams was recorded"
    );
    wait_log(&weir, "recording file closed", 1, Duration::from_secs(10));

    let (status, body) = http_get(weir.http_addr(), "/live/cam/recordings");
    assert!(status.contains("200"), "{status}");
    let listing: Value = serde_json::from_slice(&body).unwrap();
    let entry = &listing["recordings"][0];
    let duration = entry["duration_secs"].as_f64().unwrap();
    assert!((duration - 8.0).abs() < 0.1, "{listing}");
    assert_eq!(entry["format"], "fmp4");
    assert_eq!(entry["recording"], false);
    let start = humantime::parse_rfc3339(entry["start"].as_str().unwrap()).unwrap();
    // The file itself, with a byte range.
    let (status, _) = http_get(weir.http_addr(), entry["url"].as_str().unwrap());
    assert!(status.contains("200"), "{status}");

    // 3.5 s to 6.5 s into the recording.
    let from = start + Duration::from_millis(3_500);
    let to = start + Duration::from_millis(6_500);
    let path = format!(
        "/live/cam/vod.m3u8?start={}&end={}",
        humantime::format_rfc3339_millis(from),
        humantime::format_rfc3339_millis(to)
    );
    let (status, body) = http_get(weir.http_addr(), &path);
    assert!(
        status.contains("200"),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("#EXT-X-ENDLIST") && text.contains("#EXT-X-BYTERANGE:"),
        "{text}"
    );
    // The first segment starts within one GOP (1 s) before the asked start.
    let first = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:"))
        .unwrap();
    let first = humantime::parse_rfc3339(first).unwrap();
    let early = from.duration_since(first).unwrap_or_default();
    assert!(
        early <= Duration::from_millis(1_000) && first <= from,
        "first segment at {first:?}, asked {from:?}\n{text}"
    );

    // FFmpeg plays the range from the playlist: about 3 s, from a key frame.
    let out = dir.file("range.mkv");
    let mut cmd = Command::new(tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(format!("http://{}{path}", weir.http_addr()))
        .args(["-c", "copy"])
        .arg(&out);
    let (status, _, err) = process::run("ffmpeg-vod", cmd, dir.path(), Duration::from_secs(30));
    assert!(status.success(), "ffmpeg could not play the range: {err}");
    let (streams, secs) = probe(&out, dir.path());
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert!(
        (3.0..=5.1).contains(&secs),
        "{secs} s played for a 3 s range"
    );
    // Outside the recordings: a clear 404; a bad time: 400.
    let (status, _) = http_get(
        weir.http_addr(),
        "/live/cam/vod.m3u8?start=2001-01-01T00:00:00Z&end=2001-01-02T00:00:00Z",
    );
    assert!(status.contains("404"), "{status}");
    let (status, _) = http_get(weir.http_addr(), "/live/cam/vod.m3u8?start=yesterday");
    assert!(status.contains("400"), "{status}");
    let (status, _) = http_get(weir.http_addr(), "/live/cam/recordings/..%2F..%2Fweir.log");
    assert!(status.contains("404"), "{status}");
    weir.shutdown();
}
