//! A live FLV byte stream (HTTP-FLV, WebSocket-FLV), written as chunks that share the
//! frames' payloads.
//!
//! Each tag goes out as three chunks: its 11-byte header (with the viewer's own timestamp),
//! the frame's payload itself (a reference-counted [`Bytes`] shared with the hub and every
//! other viewer, never copied) and its 4-byte back pointer. The back pointer goes right
//! after the payload, not with the next tag: flv.js and mpegts.js parse a tag only once its
//! back pointer has arrived, so holding it back would delay every tag by one. The file header
//! starts the stream.

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv_file::{tag_header, write_header, MAX_TAG_SIZE, TAG_HEADER_LEN};
use crate::frame::Frame;

/// Bytes reserved at a time for the per-tag headers and back pointers (about 270 tags).
const SCRATCH_BYTES: usize = 4096;

/// Writes one viewer's FLV stream; see the module docs.
#[derive(Debug, Default)]
pub struct FlvStreamWriter {
    /// The file header was written.
    started: bool,
}

impl FlvStreamWriter {
    /// A writer that has written nothing yet.
    pub fn new() -> FlvStreamWriter {
        FlvStreamWriter::default()
    }

    /// Whether the file header was written.
    pub fn started(&self) -> bool {
        self.started
    }

    /// The FLV file header with its audio/video flags, and PreviousTagSize0 (13 bytes).
    pub fn header(&mut self, has_audio: bool, has_video: bool) -> Bytes {
        self.started = true;
        let mut out = BytesMut::with_capacity(13);
        write_header(has_audio, has_video, &mut out);
        out.freeze()
    }

    /// The chunks of one tag for `frame` at the viewer's `timestamp`: the header, the payload
    /// (shared, not copied) and the back pointer. The two small chunks are split off
    /// `scratch`, so many tags share one allocation. A payload FLV cannot describe (over
    /// 16 MiB) gives no chunks.
    pub fn tag(
        &mut self,
        frame: &Frame,
        timestamp: u32,
        scratch: &mut BytesMut,
    ) -> Option<[Bytes; 3]> {
        let size = u32::try_from(frame.payload.len())
            .ok()
            .filter(|s| *s <= MAX_TAG_SIZE)?;
        if scratch.capacity() - scratch.len() < TAG_HEADER_LEN + 4 {
            scratch.reserve(SCRATCH_BYTES);
        }
        scratch.put_slice(&tag_header(frame.kind, timestamp, size));
        let header = scratch.split().freeze();
        scratch.put_u32(size + TAG_HEADER_LEN as u32);
        let back = scratch.split().freeze();
        Some([header, frame.payload.clone(), back])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv_file::FlvReader;

    #[test]
    fn chunks_make_a_file_the_reader_reads_back() {
        let frames = [
            Frame::data(
                0,
                Bytes::from_static(b"\x02\x00\x0aonMetaData\x03\x00\x00\x09"),
            ),
            Frame::video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64])),
            Frame::audio(0, Bytes::from_static(&[0xaf, 0, 0x12, 0x10])),
            Frame::video(0, Bytes::from_static(&[0x17, 1, 0, 0, 0, 0x65])),
            Frame::audio(23, Bytes::from_static(&[0xaf, 1, 0x21])),
            Frame::video(0x0100_0040, Bytes::from_static(&[0x27, 1, 0, 0, 0, 0x41])),
        ];
        let mut writer = FlvStreamWriter::new();
        let mut file = writer.header(true, true).to_vec();
        let mut scratch = BytesMut::new();
        for frame in &frames {
            let [header, payload, back] = writer.tag(frame, frame.timestamp, &mut scratch).unwrap();
            // The payload chunk is the frame's own buffer.
            assert_eq!(payload.as_ptr(), frame.payload.as_ptr());
            assert_eq!(back.as_ref(), &(11 + payload.len() as u32).to_be_bytes());
            file.extend_from_slice(&header);
            file.extend_from_slice(&payload);
            file.extend_from_slice(&back);
        }
        let reader = FlvReader::from_bytes(Bytes::from(file)).unwrap();
        assert!(reader.has_audio() && reader.has_video());
        let read: Vec<_> = reader.map(|t| t.unwrap().to_frame()).collect();
        let expected: Vec<_> = frames
            .iter()
            .map(|f| (f.kind, f.timestamp, f.payload.clone()))
            .collect();
        let got: Vec<_> = read
            .iter()
            .map(|f| (f.kind, f.timestamp, f.payload.clone()))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn flags_and_oversized_payloads() {
        let mut writer = FlvStreamWriter::new();
        assert!(!writer.started());
        assert_eq!(
            writer.header(false, true).as_ref(),
            b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00"
        );
        assert!(writer.started());
        let huge = Frame::video(0, Bytes::from(vec![0x17; MAX_TAG_SIZE as usize + 1]));
        assert!(writer.tag(&huge, 0, &mut BytesMut::new()).is_none());
    }
}
