//! Recording a stream into FLV files, sans-IO, with the same events as the fMP4 recorder.
//!
//! A file is the FLV header, the stream's metadata and latest sequence headers, then the tags
//! as the publisher sent them (the legacy form: feed it frames a legacy player would get),
//! with timestamps from 0 at the file's first key frame. Tags are handed out at least every
//! `fragment_ms` of media, so a crash loses at most that much; FLV needs nothing at the end,
//! so a file is always playable up to its last whole tag. New files start at a key frame
//! after `max_file_ms` or `max_file_bytes`; a codec change mid-file is written as it came
//! (FLV players take new sequence headers).

use bytes::{Bytes, BytesMut};

use super::{RecordConfig, RecordEvent, Rotation};
use crate::flv_file::{write_header, write_tag};
use crate::frame::{Frame, MediaKind};

/// Most bytes buffered between two writes.
const MAX_BUFFER: usize = 32 << 20;

/// One stream's FLV recorder.
#[derive(Debug)]
pub struct FlvRecorder {
    config: RecordConfig,
    metadata: Option<Frame>,
    video_header: Option<Frame>,
    audio_header: Option<Frame>,
    has_video: bool,
    file: Option<FlvFile>,
    /// Audio seen before any video (an audio-only stream opens its file after a second).
    audio_since: Option<u32>,
    /// Audio arrived (MP3 has no sequence header to say so).
    saw_audio: bool,
}

#[derive(Debug)]
struct FlvFile {
    start: u32,
    buffer: BytesMut,
    buffered_since: u32,
    bytes: u64,
    last: u32,
    rotate: Option<Rotation>,
}

impl FlvRecorder {
    /// A recorder that has seen nothing yet.
    pub fn new(config: RecordConfig) -> FlvRecorder {
        FlvRecorder {
            config,
            metadata: None,
            video_header: None,
            audio_header: None,
            has_video: false,
            file: None,
            audio_since: None,
            saw_audio: false,
        }
    }

    /// Takes one frame a legacy player would get, with the viewer's timestamp and the wall
    /// clock now (ms since the Unix epoch).
    pub fn push(&mut self, frame: &Frame, wall_ms: u64, out: &mut Vec<RecordEvent>) {
        let info = &frame.info;
        self.saw_audio |= frame.kind == MediaKind::Audio;
        match frame.kind {
            MediaKind::Data if info.is_metadata => self.metadata = Some(frame.clone()),
            MediaKind::Video if info.is_sequence_header => {
                self.video_header = Some(frame.clone());
                self.has_video = true;
            }
            MediaKind::Audio if info.is_sequence_header => self.audio_header = Some(frame.clone()),
            _ => {}
        }
        if self.file.is_none() {
            let audio_only_ready = frame.kind == MediaKind::Audio && !self.has_video && {
                let since = *self.audio_since.get_or_insert(frame.timestamp);
                frame.timestamp.wrapping_sub(since) >= 1_000
            };
            if !(info.is_keyframe || audio_only_ready) {
                return;
            }
            self.open(frame.timestamp, wall_ms, None, out);
        } else if let Some(file) = &self.file {
            let cut_here = info.is_keyframe || !self.has_video && frame.kind == MediaKind::Audio;
            if file.rotate.is_some() && cut_here {
                let why = file.rotate;
                self.flush(out);
                self.open(frame.timestamp, wall_ms, why, out);
            }
        }
        let Some(file) = &mut self.file else { return };
        let at = frame.timestamp.wrapping_sub(file.start);
        if at > 0x7fff_ffff {
            // Before the file's start (audio that arrived ahead of the key frame).
            return;
        }
        if file.buffer.is_empty() {
            file.buffered_since = at;
        }
        write_tag(frame.kind, at, &frame.payload, &mut file.buffer);
        file.last = file.last.max(at);
        let due = u64::from(at.saturating_sub(file.buffered_since)) >= self.config.fragment_ms
            || file.buffer.len() >= MAX_BUFFER;
        if due {
            self.flush(out);
        }
    }

    /// The publisher left: what is buffered is written and the file closes.
    pub fn finish(&mut self, out: &mut Vec<RecordEvent>) {
        if self.file.is_none() {
            return;
        }
        self.flush(out);
        let file_ms = self.file.take().map_or(0, |f| u64::from(f.last));
        out.push(RecordEvent::Close { file_ms });
        self.audio_since = None;
    }

    fn open(
        &mut self,
        start: u32,
        wall_ms: u64,
        rotated: Option<Rotation>,
        out: &mut Vec<RecordEvent>,
    ) {
        let mut head = BytesMut::new();
        // MP3 has no sequence header: any audio seen counts.
        let has_audio = self.audio_header.is_some() || self.saw_audio;
        write_header(has_audio, self.has_video, &mut head);
        let mut tracks = Vec::new();
        if let Some(meta) = &self.metadata {
            write_tag(MediaKind::Data, 0, &meta.payload, &mut head);
        }
        for header in [&self.video_header, &self.audio_header]
            .into_iter()
            .flatten()
        {
            write_tag(header.kind, 0, &header.payload, &mut head);
            if let Some(codec) = header.info.codec {
                let kind = if header.kind == MediaKind::Video {
                    "video"
                } else {
                    "audio"
                };
                tracks.push(format!("{kind} {codec}"));
            }
        }
        let init: Bytes = head.freeze();
        self.file = Some(FlvFile {
            start,
            buffer: BytesMut::new(),
            buffered_since: 0,
            bytes: init.len() as u64,
            last: 0,
            rotate: None,
        });
        out.push(RecordEvent::Open {
            init,
            start_wall_ms: wall_ms,
            rotated,
            tracks: tracks.join(", "),
        });
    }

    fn flush(&mut self, out: &mut Vec<RecordEvent>) {
        let Some(file) = &mut self.file else { return };
        if file.buffer.is_empty() {
            return;
        }
        let chunk = file.buffer.split().freeze();
        file.bytes += chunk.len() as u64;
        out.push(RecordEvent::Fragment {
            chunks: vec![chunk],
            file_ms: u64::from(file.last),
        });
        let config = self.config;
        if file.rotate.is_none() {
            if config.max_file_ms > 0 && u64::from(file.last) >= config.max_file_ms {
                file.rotate = Some(Rotation::Duration);
            } else if config.max_file_bytes > 0 && file.bytes >= config.max_file_bytes {
                file.rotate = Some(Rotation::Size);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv_file::FlvReader;
    use crate::test_util::{audio, audio_header, video, video_header};

    #[test]
    fn tags_are_written_from_the_first_key_frame_and_rotate() {
        let config = RecordConfig {
            fragment_ms: 1_000,
            max_file_ms: 4_000,
            max_file_bytes: 0,
        };
        let mut r = FlvRecorder::new(config);
        let mut out = Vec::new();
        r.push(&video_header(), 0, &mut out);
        r.push(&audio_header(), 0, &mut out);
        r.push(&video(960, false), 0, &mut out);
        assert!(out.is_empty(), "waits for a key frame");
        let mut files: Vec<Vec<u8>> = Vec::new();
        for i in 0..250u32 {
            let ts = 1000 + i * 40;
            r.push(&audio(ts), 0, &mut out);
            r.push(&video(ts, i % 25 == 0), 0, &mut out);
        }
        r.finish(&mut out);
        for event in out {
            match event {
                RecordEvent::Open { init, .. } => files.push(init.to_vec()),
                RecordEvent::Fragment { chunks, .. } => {
                    for c in chunks {
                        files.last_mut().unwrap().extend_from_slice(&c);
                    }
                }
                RecordEvent::Close { .. } => {}
            }
        }
        assert_eq!(files.len(), 3);
        for file in files {
            let reader = FlvReader::from_bytes(Bytes::from(file)).unwrap();
            assert!(reader.has_audio() && reader.has_video());
            let tags: Vec<_> = reader.map(Result::unwrap).collect();
            // Sequence headers first, then a key frame at 0.
            assert!(tags[0].to_frame().info.is_sequence_header);
            let first_video = tags
                .iter()
                .map(|t| t.to_frame())
                .find(|f| f.info.is_coded_frame && f.kind == MediaKind::Video)
                .unwrap();
            assert!(first_video.info.is_keyframe);
            assert_eq!(first_video.timestamp, 0);
        }
    }
}
