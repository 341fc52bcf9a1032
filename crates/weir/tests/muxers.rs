//! weir-media's muxers against FFmpeg. Fragmented MP4: FFmpeg 9 encodes a test pattern and a
//! tone to FLV (H.264+AAC, HEVC+Opus, AV1+Opus, VP9+Opus), weir-media turns the FLV frames
//! into an init segment and one-second media segments, and FFmpeg 8's ffprobe and FFmpeg 9
//! read the result: codecs, size, every packet, and a decode without errors (also H.264 with
//! AC-3, E-AC-3 and FLAC). MPEG-TS: the same with H.264+AAC, HEVC+AAC, H.264+MP3, H.264+AC-3 and
//! H.264+E-AC-3.
//!
//! FLAC too: FFmpeg refused these files ("error reading header") until the test stopped
//! writing the empty frame FFmpeg's FLV muxer ends a FLAC stream with as a zero-size sample
//! (the packager skips empty frames).

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::process;
use common::{tools, TestDir};
use serde_json::Value;
use weir_media::fmp4::{init_segment, media_segment, Sample, TrackConfig, TrackRun, TrackType};
use weir_media::{Codec, FlvReader, Frame, MediaKind, TrackTable};

/// The samples of one track: (decode time, sample), in the track's timescale.
struct Track {
    config: TrackConfig,
    samples: Vec<(u64, Sample)>,
}

/// Builds tracks from FLV frames: the first sequence header of each kind, its coded frames.
fn tracks(frames: &[Frame]) -> Vec<Track> {
    let mut table = TrackTable::new();
    for frame in frames {
        table.observe(frame);
    }
    let mut out: Vec<Track> = Vec::new();
    for (index, kind) in [MediaKind::Video, MediaKind::Audio].into_iter().enumerate() {
        let details = &table
            .tracks()
            .iter()
            .find(|t| (t.kind == weir_media::TrackKind::Video) == (kind == MediaKind::Video))
            .expect("track info")
            .details;
        let first_coded = frames
            .iter()
            .find(|f| f.kind == kind && f.info.is_coded_frame);
        let config = match first_coded.and_then(|f| f.info.codec) {
            // No sequence start: a sync frame describes the stream.
            Some(codec @ (Codec::Ac3 | Codec::Eac3)) => TrackConfig {
                track_id: index as u32 + 1,
                kind: TrackType::Audio,
                codec,
                timescale: details.sample_rate.unwrap(),
                width: 0,
                height: 0,
                sample_rate: details.sample_rate.unwrap(),
                channels: details.channels.map_or(2, u16::from),
                config: first_coded.unwrap().body(),
            },
            _ => {
                let Some(header) = frames
                    .iter()
                    .find(|f| f.kind == kind && f.info.is_sequence_header)
                else {
                    continue;
                };
                TrackConfig::from_sequence_header(index as u32 + 1, header, details)
                    .expect("track config")
            }
        };
        let scale = u64::from(config.timescale);
        // Empty frames are no samples (FFmpeg's FLV muxer ends a FLAC stream with one; the
        // packager skips them the same way, and a zero-size sample breaks FFmpeg's reader).
        let coded: Vec<&Frame> = frames
            .iter()
            .filter(|f| f.kind == kind && f.info.is_coded_frame && !f.body().is_empty())
            .collect();
        let dts: Vec<u64> = coded
            .iter()
            .map(|f| u64::from(f.timestamp) * scale / 1000)
            .collect();
        let mut samples = Vec::new();
        for (i, frame) in coded.iter().enumerate() {
            let duration = match dts.get(i + 1) {
                Some(next) => next - dts[i],
                None => dts[i] - dts[i.saturating_sub(1)],
            };
            let sample = Sample {
                data: frame.body(),
                duration: duration.max(1) as u32,
                composition_offset: (i64::from(frame.info.composition_time) * scale as i64 / 1000)
                    as i32,
                sync: kind == MediaKind::Audio || frame.info.is_keyframe,
            };
            samples.push((dts[i], sample));
        }
        out.push(Track { config, samples });
    }
    out
}

/// Writes init + one media segment per second of media.
fn write_fmp4(tracks: &[Track], path: &Path) {
    let configs: Vec<TrackConfig> = tracks.iter().map(|t| t.config.clone()).collect();
    let mut file = init_segment(&configs).expect("init segment").to_vec();
    for second in 0..10u64 {
        let runs: Vec<(u32, u64, Vec<Sample>)> = tracks
            .iter()
            .map(|t| {
                let scale = u64::from(t.config.timescale);
                let window = |dts: u64| dts / scale == second;
                let first = t.samples.iter().find(|(d, _)| window(*d)).map(|(d, _)| *d);
                let samples = t
                    .samples
                    .iter()
                    .filter(|(d, _)| window(*d))
                    .map(|(_, s)| s.clone())
                    .collect();
                (t.config.track_id, first.unwrap_or(0), samples)
            })
            .filter(|(_, _, s): &(u32, u64, Vec<Sample>)| !s.is_empty())
            .collect();
        if runs.is_empty() {
            continue;
        }
        let runs: Vec<TrackRun<'_>> = runs
            .iter()
            .map(|(id, base, samples)| TrackRun {
                track_id: *id,
                base_decode_time: *base,
                samples,
            })
            .collect();
        for chunk in media_segment(second as u32 + 1, &runs) {
            file.extend_from_slice(&chunk);
        }
    }
    std::fs::write(path, file).unwrap();
}

fn probe(path: &Path, dir: &Path) -> Vec<(String, u64, u64, u64)> {
    let mut cmd = Command::new(tools::ffprobe8());
    cmd.args([
        "-v",
        "error",
        "-count_packets",
        "-of",
        "json",
        "-show_entries",
    ])
    .arg("stream=codec_name,width,height,nb_read_packets")
    .arg(path);
    let (status, out, err) = process::run("ffprobe8", cmd, dir, Duration::from_secs(30));
    assert!(status.success(), "{err}");
    let json: Value = serde_json::from_str(&out).unwrap();
    json["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
                s["nb_read_packets"]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
            )
        })
        .collect()
}

/// FFmpeg 9 encodes 3 s of a 320x240 25 fps test pattern (1 s GOP) and a tone at `rate` Hz
/// with `codecs` into FLV; the file's frames.
fn encode_flv(dir: &Path, name: &str, codecs: &[&str], rate: u32) -> Vec<Frame> {
    let flv = dir.join(format!("{name}.flv"));
    let mut cmd = Command::new(tools::ffmpeg_recent());
    cmd.args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:sample_rate={rate}"))
        .args(["-t", "3", "-g", "25"])
        .args(codecs)
        .arg(&flv);
    let (status, _, err) = process::run("ffmpeg9-encode", cmd, dir, Duration::from_secs(60));
    assert!(status.success(), "{name}: {err}");
    let data = Bytes::from(std::fs::read(&flv).unwrap());
    FlvReader::from_bytes(data)
        .unwrap()
        .map(|t| t.unwrap().to_frame())
        .collect()
}

/// FFmpeg 9 decodes every frame of `path` without a complaint.
fn assert_decodes(path: &Path, name: &str, dir: &Path) {
    let mut cmd = Command::new(tools::ffmpeg_recent());
    cmd.args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]);
    let (status, _, err) = process::run("ffmpeg9-decode", cmd, dir, Duration::from_secs(60));
    assert!(
        status.success() && err.trim().is_empty(),
        "{name}: decode errors: {err}"
    );
}

#[test]
fn ffmpeg_reads_what_the_fmp4_writer_wrote() {
    let dir = TestDir::new("fmp4-files");
    let cases: [(&str, &[&str], &str, &str); 7] = [
        (
            "h264_aac",
            &["-c:v", "libx264", "-c:a", "aac"],
            "h264",
            "aac",
        ),
        (
            "h264_ac3",
            &["-c:v", "libx264", "-c:a", "ac3"],
            "h264",
            "ac3",
        ),
        (
            "h264_eac3",
            &["-c:v", "libx264", "-c:a", "eac3"],
            "h264",
            "eac3",
        ),
        (
            "h264_flac",
            &["-c:v", "libx264", "-c:a", "flac"],
            "h264",
            "flac",
        ),
        (
            "hevc_opus",
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error",
                "-c:a",
                "libopus",
            ],
            "hevc",
            "opus",
        ),
        (
            "av1_opus",
            &["-c:v", "libsvtav1", "-preset", "12", "-c:a", "libopus"],
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
                "-c:a",
                "libopus",
            ],
            "vp9",
            "opus",
        ),
    ];
    for (name, codecs, vcodec, acodec) in cases {
        let frames = encode_flv(dir.path(), name, codecs, 48000);
        let tracks = tracks(&frames);
        assert_eq!(tracks.len(), 2, "{name}");
        let mp4 = dir.file(&format!("{name}.mp4"));
        write_fmp4(&tracks, &mp4);

        let streams = probe(&mp4, dir.path());
        let sent_video = tracks[0].samples.len() as u64;
        let sent_audio = tracks[1].samples.len() as u64;
        assert_eq!(
            streams,
            vec![
                (vcodec.to_owned(), 320, 240, sent_video),
                (acodec.to_owned(), 0, 0, sent_audio),
            ],
            "{name}"
        );
        assert_eq!(sent_video, 75, "{name}: 3 s at 25 fps");
        assert_decodes(&mp4, name, dir.path());
    }
}

/// The MPEG-TS muxer the same way: H.264+AAC, HEVC+AAC, H.264+MP3 from FFmpeg 9's FLV, one
/// PES per frame; ffprobe 8 counts every packet, FFmpeg 9 decodes without an error.
#[test]
fn ffmpeg_reads_what_the_ts_muxer_wrote() {
    use weir_media::ts::{TsMuxer, TsStream};
    let dir = TestDir::new("ts-files");
    let cases: [(&str, &[&str], &str, &str); 5] = [
        (
            "h264_aac",
            &["-c:v", "libx264", "-c:a", "aac"],
            "h264",
            "aac",
        ),
        (
            "h264_ac3",
            &["-c:v", "libx264", "-c:a", "ac3"],
            "h264",
            "ac3",
        ),
        (
            "h264_eac3",
            &["-c:v", "libx264", "-c:a", "eac3"],
            "h264",
            "eac3",
        ),
        (
            "hevc_aac",
            &[
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error",
                "-c:a",
                "aac",
            ],
            "hevc",
            "aac",
        ),
        (
            "h264_mp3",
            &["-c:v", "libx264", "-c:a", "libmp3lame"],
            "h264",
            "mp3",
        ),
    ];
    for (name, codecs, vcodec, acodec) in cases {
        let frames = encode_flv(dir.path(), name, codecs, 44100);
        let header = |kind| {
            frames
                .iter()
                .find(|f| f.kind == kind && f.info.is_sequence_header)
                .map(Frame::body)
                .unwrap_or_default()
        };
        let codec = |kind| {
            frames
                .iter()
                .find(|f| f.kind == kind && f.info.codec.is_some())
                .and_then(|f| f.info.codec)
                .unwrap()
        };
        let mut muxer = TsMuxer::new(
            Some(TsStream {
                codec: codec(MediaKind::Video),
                config: header(MediaKind::Video),
            }),
            Some(TsStream {
                codec: codec(MediaKind::Audio),
                config: header(MediaKind::Audio),
            }),
        )
        .expect("muxer");
        let mut out = bytes::BytesMut::new();
        muxer.tables(&mut out);
        let (mut video, mut audio) = (0, 0);
        for frame in frames.iter().filter(|f| f.info.is_coded_frame) {
            let dts = u64::from(frame.timestamp) * 90;
            match frame.kind {
                MediaKind::Video => {
                    let pts = (dts as i64 + i64::from(frame.info.composition_time) * 90) as u64;
                    muxer.video(&frame.body(), dts, pts, frame.info.is_keyframe, &mut out);
                    video += 1;
                }
                MediaKind::Audio => {
                    muxer.audio(&frame.body(), dts, &mut out);
                    audio += 1;
                }
                MediaKind::Data => {}
            }
        }
        let ts = dir.file(&format!("{name}.ts"));
        std::fs::write(&ts, &out).unwrap();
        let streams = probe(&ts, dir.path());
        assert_eq!(
            streams,
            vec![
                (vcodec.to_owned(), 320, 240, video),
                (acodec.to_owned(), 0, 0, audio),
            ],
            "{name}"
        );
        assert_decodes(&ts, name, dir.path());
    }
}
