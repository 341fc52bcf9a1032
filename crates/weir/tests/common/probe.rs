//! ffprobe, parsed: streams, every packet (timestamps, key flag) and every decoded frame.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::process;
use super::tools;

/// Which elementary stream a packet or frame belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// A video stream.
    Video,
    /// An audio stream.
    Audio,
    /// Anything else (data, subtitle).
    Other,
}

/// The first video stream's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoInfo {
    /// ffprobe codec name, e.g. `h264`.
    pub codec: String,
    /// Codec profile, e.g. `Main`.
    pub profile: String,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
}

/// The first audio stream's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioInfo {
    /// ffprobe codec name, e.g. `aac`.
    pub codec: String,
    /// Codec profile, e.g. `LC`.
    pub profile: String,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
}

/// One demuxed packet, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Stream kind.
    pub media: Media,
    /// Presentation time in ms, as read (not rebased).
    pub pts_ms: Option<i64>,
    /// Decoding time in ms, as read (not rebased).
    pub dts_ms: Option<i64>,
    /// Key flag from the container.
    pub key: bool,
    /// Payload size in bytes.
    pub size: usize,
}

/// One decoded frame, in decoder output order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedFrame {
    /// Stream kind.
    pub media: Media,
    /// The decoder's key-frame flag.
    pub key: bool,
    /// `I`, `P`, `B` for video; `?` for audio.
    pub pict_type: String,
}

/// What ffprobe saw in a file or live URL.
#[derive(Clone, Debug)]
pub struct MediaReport {
    /// The probed file or URL.
    pub source: String,
    /// First video stream, if any.
    pub video: Option<VideoInfo>,
    /// First audio stream, if any.
    pub audio: Option<AudioInfo>,
    /// Container duration in seconds, if the container states one.
    pub format_duration: Option<f64>,
    /// Every packet.
    pub packets: Vec<Packet>,
    /// Every decoded frame.
    pub frames: Vec<DecodedFrame>,
}

impl MediaReport {
    /// Number of decoded video frames.
    pub fn video_frames(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.media == Media::Video)
            .count()
    }

    /// Number of decoded audio frames (1024 samples each for AAC-LC).
    pub fn audio_frames(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.media == Media::Audio)
            .count()
    }

    /// Number of decoded video frames with the given picture type (`"I"`, `"P"`, `"B"`).
    pub fn video_frames_of_type(&self, pict_type: &str) -> usize {
        self.frames
            .iter()
            .filter(|f| f.media == Media::Video && f.pict_type == pict_type)
            .count()
    }

    /// Number of video packets.
    pub fn video_packets(&self) -> usize {
        self.packets
            .iter()
            .filter(|p| p.media == Media::Video)
            .count()
    }

    /// Number of audio packets.
    pub fn audio_packets(&self) -> usize {
        self.packets
            .iter()
            .filter(|p| p.media == Media::Audio)
            .count()
    }

    /// Number of video packets flagged as keyframes.
    pub fn video_keyframes(&self) -> usize {
        self.packets
            .iter()
            .filter(|p| p.media == Media::Video && p.key)
            .count()
    }

    /// The first decoded video frame.
    pub fn first_video_frame(&self) -> Option<&DecodedFrame> {
        self.frames.iter().find(|f| f.media == Media::Video)
    }

    /// The first video packet in the file (what the server sent first).
    pub fn first_video_packet(&self) -> Option<&Packet> {
        self.packets.iter().find(|p| p.media == Media::Video)
    }

    /// Video decoding timestamps in ms, in file order.
    pub fn video_dts_ms(&self) -> Vec<i64> {
        self.packets
            .iter()
            .filter(|p| p.media == Media::Video)
            .filter_map(|p| p.dts_ms.or(p.pts_ms))
            .collect()
    }

    /// Audio timestamps in ms, in file order.
    pub fn audio_dts_ms(&self) -> Vec<i64> {
        self.packets
            .iter()
            .filter(|p| p.media == Media::Audio)
            .filter_map(|p| p.dts_ms.or(p.pts_ms))
            .collect()
    }

    /// Span of the audio and video timestamps in seconds (max pts − min pts).
    pub fn duration_s(&self) -> f64 {
        let ts: Vec<i64> = self
            .packets
            .iter()
            .filter(|p| p.media != Media::Other)
            .filter_map(|p| p.pts_ms.or(p.dts_ms))
            .collect();
        match (ts.iter().min(), ts.iter().max()) {
            (Some(lo), Some(hi)) => (hi - lo) as f64 / 1000.0,
            _ => 0.0,
        }
    }

    /// Problems in the video timeline: a step backwards, or a step forward larger than
    /// `max_gap_ms`. Empty when the timeline is continuous.
    pub fn video_timeline_problems(&self, max_gap_ms: i64) -> Vec<String> {
        timeline_problems("video", &self.video_dts_ms(), max_gap_ms)
    }

    /// Same as [`MediaReport::video_timeline_problems`] for audio.
    pub fn audio_timeline_problems(&self, max_gap_ms: i64) -> Vec<String> {
        timeline_problems("audio", &self.audio_dts_ms(), max_gap_ms)
    }

    /// A one-paragraph description for failure messages.
    pub fn summary(&self) -> String {
        let v = self.video_dts_ms();
        let a = self.audio_dts_ms();
        let mut s = format!(
            "{}:\n  video {:?}\n  audio {:?}\n",
            self.source, self.video, self.audio
        );
        let _ = writeln!(
            s,
            "  video: {} packets ({} key, first key: {:?}), {} decoded (I {}, P {}, B {}), dts {:?}..{:?} ms",
            self.video_packets(),
            self.video_keyframes(),
            self.first_video_packet().map(|p| p.key),
            self.video_frames(),
            self.video_frames_of_type("I"),
            self.video_frames_of_type("P"),
            self.video_frames_of_type("B"),
            v.first(),
            v.last(),
        );
        let _ = write!(
            s,
            "  audio: {} packets, {} decoded, dts {:?}..{:?} ms; span {:.3} s, format duration {:?}",
            self.audio_packets(),
            self.audio_frames(),
            a.first(),
            a.last(),
            self.duration_s(),
            self.format_duration,
        );
        s
    }

    /// Every way this report falls short of `expect` (empty when it matches).
    pub fn check(&self, expect: &Expect) -> Vec<String> {
        let mut bad = Vec::new();
        match &self.video {
            None => bad.push("no video stream".to_owned()),
            Some(v) => {
                if v.codec != expect.video_codec {
                    bad.push(format!("video codec {} != {}", v.codec, expect.video_codec));
                }
                if (v.width, v.height) != (expect.width, expect.height) {
                    bad.push(format!(
                        "video size {}x{} != {}x{}",
                        v.width, v.height, expect.width, expect.height
                    ));
                }
            }
        }
        match &self.audio {
            None => bad.push("no audio stream".to_owned()),
            Some(a) => {
                if a.codec != expect.audio_codec {
                    bad.push(format!("audio codec {} != {}", a.codec, expect.audio_codec));
                }
                if a.sample_rate != expect.sample_rate {
                    bad.push(format!(
                        "sample rate {} != {}",
                        a.sample_rate, expect.sample_rate
                    ));
                }
                if a.channels != expect.channels {
                    bad.push(format!("channels {} != {}", a.channels, expect.channels));
                }
            }
        }
        if self.video_frames() < expect.min_video_frames {
            bad.push(format!(
                "{} decoded video frames < {}",
                self.video_frames(),
                expect.min_video_frames
            ));
        }
        if self.audio_frames() < expect.min_audio_frames {
            bad.push(format!(
                "{} decoded audio frames < {}",
                self.audio_frames(),
                expect.min_audio_frames
            ));
        }
        if expect.first_video_keyframe {
            match self.first_video_packet() {
                Some(p) if p.key => {}
                Some(_) => bad.push("first video packet is not a keyframe".to_owned()),
                None => bad.push("no video packets".to_owned()),
            }
            match self.first_video_frame() {
                Some(f) if f.key && f.pict_type == "I" => {}
                Some(f) => bad.push(format!(
                    "first decoded video frame is not a key I frame: key={} type={}",
                    f.key, f.pict_type
                )),
                None => bad.push("no decoded video frames".to_owned()),
            }
        }
        if let Some(gap) = expect.max_gap_ms {
            bad.extend(self.video_timeline_problems(gap));
            bad.extend(self.audio_timeline_problems(gap));
        }
        bad
    }

    /// Panics with every problem and [`MediaReport::summary`] unless the report matches.
    pub fn assert_matches(&self, expect: &Expect, context: &str) {
        eprintln!("{context}: {}", self.summary());
        let bad = self.check(expect);
        assert!(
            bad.is_empty(),
            "{context}: received media does not match {expect:?}:\n  - {}\n{}",
            bad.join("\n  - "),
            self.summary()
        );
    }
}

/// What a received stream must look like; see [`MediaReport::check`].
#[derive(Clone, Debug)]
pub struct Expect {
    /// ffprobe video codec name.
    pub video_codec: &'static str,
    /// Video width.
    pub width: u32,
    /// Video height.
    pub height: u32,
    /// ffprobe audio codec name.
    pub audio_codec: &'static str,
    /// Audio sample rate.
    pub sample_rate: u32,
    /// Audio channels.
    pub channels: u32,
    /// At least this many decoded video frames.
    pub min_video_frames: usize,
    /// At least this many decoded audio frames.
    pub min_audio_frames: usize,
    /// The first video packet must be a keyframe and decode to a key I frame.
    pub first_video_keyframe: bool,
    /// Timestamps per track must never go back nor jump forward by more than this.
    pub max_gap_ms: Option<i64>,
}

impl Expect {
    /// H.264 `width`x`height` + AAC 44.1 kHz stereo, starting with a keyframe, timestamps
    /// continuous within 250 ms, at least one frame of each.
    pub fn h264_aac(width: u32, height: u32) -> Expect {
        Expect {
            video_codec: "h264",
            width,
            height,
            audio_codec: "aac",
            sample_rate: 44_100,
            channels: 2,
            min_video_frames: 1,
            min_audio_frames: 1,
            first_video_keyframe: true,
            max_gap_ms: Some(250),
        }
    }

    /// Requires at least `n` decoded video frames.
    pub fn min_video_frames(mut self, n: usize) -> Expect {
        self.min_video_frames = n;
        self
    }

    /// Requires at least `n` decoded audio frames.
    pub fn min_audio_frames(mut self, n: usize) -> Expect {
        self.min_audio_frames = n;
        self
    }

    /// Requires at least `seconds` of 30 fps video and 44.1 kHz AAC (1024-sample frames).
    pub fn min_seconds(self, seconds: f64) -> Expect {
        self.min_video_frames((seconds * 30.0) as usize)
            .min_audio_frames((seconds * 44_100.0 / 1024.0) as usize)
    }
}

/// ffprobes a recorded file (all packets, all frames decoded); panics on failure.
pub fn probe_file(path: &Path, log_dir: &Path) -> MediaReport {
    probe(
        &path.to_string_lossy(),
        &[],
        log_dir,
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Runs ffprobe on `input` with `extra` input options; `Err` holds a failure message with
/// ffprobe's stderr.
pub fn probe(
    input: &str,
    extra: &[&str],
    log_dir: &Path,
    timeout: Duration,
) -> Result<MediaReport, String> {
    let mut cmd = Command::new(tools::ffprobe());
    cmd.args(["-hide_banner", "-v", "error"])
        .args(extra)
        .args([
            "-show_entries",
            "stream=index,codec_type,codec_name,profile,width,height,sample_rate,channels\
             :format=duration\
             :packet=codec_type,pts_time,dts_time,flags,size\
             :frame=media_type,key_frame,pict_type",
            "-of",
            "json",
        ])
        .arg(input);
    let mut child = process::ChildGuard::spawn("ffprobe", cmd, log_dir);
    let status = child.wait_timeout(timeout);
    if status.is_none() {
        child.kill();
    }
    let fail = |what: &str| format!("ffprobe of {input} {what}\n{}", child.diagnostics());
    match status {
        None => return Err(fail(&format!("did not finish within {timeout:?}"))),
        Some(s) if !s.success() => return Err(fail(&format!("failed ({s})"))),
        Some(_) => {}
    }
    let json: Value = serde_json::from_str(&child.stdout())
        .map_err(|e| fail(&format!("printed bad JSON: {e}")))?;
    parse(input, &json).map_err(|e| fail(&e))
}

fn parse(source: &str, json: &Value) -> Result<MediaReport, String> {
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let stream = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind);
    let video = stream("video").map(|s| VideoInfo {
        codec: str_of(&s["codec_name"]),
        profile: str_of(&s["profile"]),
        width: num_of(&s["width"]) as u32,
        height: num_of(&s["height"]) as u32,
    });
    let audio = stream("audio").map(|s| AudioInfo {
        codec: str_of(&s["codec_name"]),
        profile: str_of(&s["profile"]),
        sample_rate: num_of(&s["sample_rate"]) as u32,
        channels: num_of(&s["channels"]) as u32,
    });
    let format_duration = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok())
        .filter(|d| *d > 0.0);

    // With both packets and frames requested, ffprobe interleaves them in one array.
    let mut entries: Vec<(&str, &Value)> = Vec::new();
    for (key, kind) in [("packets", "packet"), ("frames", "frame")] {
        if let Some(list) = json[key].as_array() {
            entries.extend(list.iter().map(|v| (kind, v)));
        }
    }
    if let Some(list) = json["packets_and_frames"].as_array() {
        for v in list {
            match v["type"].as_str() {
                Some("packet") => entries.push(("packet", v)),
                Some("frame") => entries.push(("frame", v)),
                _ => {}
            }
        }
    }
    let mut packets = Vec::new();
    let mut frames = Vec::new();
    for (kind, v) in entries {
        if kind == "packet" {
            packets.push(Packet {
                media: media_of(&v["codec_type"]),
                pts_ms: ms_of(&v["pts_time"]),
                dts_ms: ms_of(&v["dts_time"]),
                key: v["flags"].as_str().is_some_and(|f| f.starts_with('K')),
                size: num_of(&v["size"]) as usize,
            });
        } else {
            frames.push(DecodedFrame {
                media: media_of(&v["media_type"]),
                key: num_of(&v["key_frame"]) == 1.0,
                pict_type: v["pict_type"].as_str().unwrap_or("?").to_owned(),
            });
        }
    }
    if video.is_none() && audio.is_none() {
        return Err("found no audio or video stream".to_owned());
    }
    Ok(MediaReport {
        source: source.to_owned(),
        video,
        audio,
        format_duration,
        packets,
        frames,
    })
}

fn timeline_problems(track: &str, dts: &[i64], max_gap_ms: i64) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, w) in dts.windows(2).enumerate() {
        let step = w[1] - w[0];
        if step < 0 || step > max_gap_ms {
            bad.push(format!(
                "{track} timestamp step {} -> {} ms ({step:+} ms) at packet {}",
                w[0],
                w[1],
                i + 1
            ));
        }
        if bad.len() >= 5 {
            bad.push(format!("{track}: further timestamp problems not listed"));
            break;
        }
    }
    bad
}

fn media_of(v: &Value) -> Media {
    match v.as_str() {
        Some("video") => Media::Video,
        Some("audio") => Media::Audio,
        _ => Media::Other,
    }
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// A JSON number or numeric string (ffprobe prints some numbers as strings).
fn num_of(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(-1.0)
}

fn ms_of(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| (s * 1000.0).round() as i64)
}
