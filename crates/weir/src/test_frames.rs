//! Small FLV frames the unit tests of the hub, the viewer core and the driver share.

use bytes::Bytes;
use weir_media::Frame;

/// `onMetaData` with an empty ECMA array start.
pub(crate) fn metadata(ts: u32) -> Frame {
    Frame::data(ts, Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"))
}

/// An AVC sequence header.
pub(crate) fn avc_header(ts: u32) -> Frame {
    Frame::video(ts, Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64]))
}

/// An AAC sequence header.
pub(crate) fn aac_header(ts: u32) -> Frame {
    Frame::audio(ts, Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]))
}

/// An AVC keyframe (IDR NAL unit).
pub(crate) fn keyframe(ts: u32) -> Frame {
    Frame::video(
        ts,
        Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
    )
}

/// An AVC inter frame.
pub(crate) fn interframe(ts: u32) -> Frame {
    Frame::video(
        ts,
        Bytes::from_static(&[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41]),
    )
}

/// An AAC frame.
pub(crate) fn audio(ts: u32) -> Frame {
    Frame::audio(ts, Bytes::from_static(&[0xAF, 0x01, 0x21]))
}
