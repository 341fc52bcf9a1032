//! Helpers shared by the unit tests.

/// Bytes from hex written with spaces and line breaks anywhere (`"17 00 0000 00"`).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

use bytes::Bytes;

use crate::frame::Frame;

/// An avcC record: High profile, level 3.1, one SPS and one PPS.
pub(crate) const AVCC: &[u8] = &[
    1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x1f, 1, 0, 4, 0x68, 0xee, 0x3c, 0x80,
];

/// A legacy AVC sequence header carrying [`AVCC`].
pub(crate) fn video_header() -> Frame {
    Frame::video(0, Bytes::from([&[0x17, 0, 0, 0, 0][..], AVCC].concat()))
}

/// A legacy AAC sequence header (AAC-LC, 48 kHz, stereo).
pub(crate) fn audio_header() -> Frame {
    Frame::audio(0, Bytes::from_static(&[0xaf, 0, 0x11, 0x90]))
}

/// A tiny legacy AVC frame at `ts`, a key frame or not.
pub(crate) fn video(ts: u32, key: bool) -> Frame {
    let first = if key { 0x17 } else { 0x27 };
    let nal = if key { 0x65 } else { 0x41 };
    Frame::video(
        ts,
        Bytes::from(vec![first, 1, 0, 0, 0, 0, 0, 0, 2, nal, 0xaa]),
    )
}

/// A tiny legacy AAC frame at `ts`.
pub(crate) fn audio(ts: u32) -> Frame {
    Frame::audio(ts, Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04]))
}
