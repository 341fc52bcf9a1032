//! FLV files: a reader for whole files held in memory and a tiny writer.
//!
//! An FLV file is a 9-byte header (`FLV`, version 1, flags, header size), a 4-byte
//! PreviousTagSize0 (always 0), then tags. Each tag is an 11-byte header (type, UI24 body size,
//! UI24 timestamp + UI8 timestamp extension, UI24 stream id = 0), the body, and a UI32 back
//! pointer holding `11 + body size`.
//!
//! The reader never panics on truncated or malformed input: it yields an error and stops.
//! Tags of an unknown type (encrypted tags, garbage) are skipped. Script tags written by an
//! RTMP-to-file tool sometimes keep the `@setDataFrame` prefix; the reader strips it, so data
//! tags always start with the handler name (`"onMetaData"`).

use bytes::{BufMut, Bytes};
use thiserror::Error;

use crate::frame::{Frame, MediaKind};

/// Bytes in the FLV file header (signature, version, flags, header size).
pub const FILE_HEADER_LEN: usize = 9;
/// Bytes in an FLV tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Largest tag body an FLV tag can describe (UI24).
pub const MAX_TAG_SIZE: u32 = 0xFF_FFFF;

const TAG_AUDIO: u8 = 0x08;
const TAG_VIDEO: u8 = 0x09;
const TAG_SCRIPT: u8 = 0x12;
const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;
/// Header size field values above this are not believed (the spec says 9).
const MAX_HEADER_SIZE: u32 = 1024;
/// AMF0 string `"@setDataFrame"`: marker 0x02, length 0x000D, the name.
const SET_DATA_FRAME: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// Why an FLV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FlvFileError {
    /// The file does not start with `FLV`.
    #[error("not an flv file (no FLV signature)")]
    NotFlv,
    /// A version other than 1.
    #[error("unsupported flv version {0}")]
    UnsupportedVersion(u8),
    /// The header size field is below 9 or implausibly large.
    #[error("bad flv header size {0}")]
    BadHeaderSize(u32),
    /// The file ends inside the header, a tag header, a tag body or a back pointer.
    #[error("truncated {what} at byte {offset}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// File offset where it starts.
        offset: usize,
    },
    /// A tag body is larger than the reader's limit.
    #[error("tag at byte {offset} is {size} bytes, over the limit of {limit}")]
    TagTooLarge {
        /// File offset of the tag header.
        offset: usize,
        /// Body size the tag header claims.
        size: u32,
        /// The limit.
        limit: u32,
    },
    /// A back pointer does not match the tag before it.
    #[error("tag at byte {offset}: previous tag size {found}, want {expected}")]
    BadPreviousTagSize {
        /// File offset of the tag header.
        offset: usize,
        /// What the file says.
        found: u32,
        /// `11 + body size`.
        expected: u32,
    },
}

/// One audio, video or data tag of an FLV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    /// Audio (8), video (9) or data (18).
    pub kind: MediaKind,
    /// Timestamp in milliseconds (UI24 + UI8 extension).
    pub timestamp: u32,
    /// The tag body; for data tags, the AMF0 body without `@setDataFrame`.
    pub body: Bytes,
}

impl FlvTag {
    /// The tag as a media frame (parses its tag header once).
    pub fn to_frame(&self) -> Frame {
        match self.kind {
            MediaKind::Audio => Frame::audio(self.timestamp, self.body.clone()),
            MediaKind::Video => Frame::video(self.timestamp, self.body.clone()),
            MediaKind::Data => Frame::data(self.timestamp, self.body.clone()),
        }
    }
}

/// Reads the tags of an FLV file held in memory. An iterator of `Result<FlvTag, _>` that ends
/// after the last tag or after the first error.
#[derive(Debug, Clone)]
pub struct FlvReader {
    data: Bytes,
    offset: usize,
    has_audio: bool,
    has_video: bool,
    max_tag_size: u32,
    failed: bool,
}

impl FlvReader {
    /// Parses the file header and PreviousTagSize0; tags are read by iterating.
    pub fn from_bytes(data: Bytes) -> Result<FlvReader, FlvFileError> {
        let header = data.get(..FILE_HEADER_LEN).ok_or(FlvFileError::Truncated {
            what: "file header",
            offset: 0,
        })?;
        if &header[..3] != b"FLV" {
            return Err(FlvFileError::NotFlv);
        }
        if header[3] != 1 {
            return Err(FlvFileError::UnsupportedVersion(header[3]));
        }
        let flags = header[4];
        let header_size = u32::from_be_bytes([header[5], header[6], header[7], header[8]]);
        if !(FILE_HEADER_LEN as u32..=MAX_HEADER_SIZE).contains(&header_size) {
            return Err(FlvFileError::BadHeaderSize(header_size));
        }
        let offset = header_size as usize;
        // PreviousTagSize0 is 0 by the spec; its value is not checked (some muxers differ).
        if data.len() < offset + 4 {
            return Err(FlvFileError::Truncated {
                what: "previous tag size 0",
                offset,
            });
        }
        Ok(FlvReader {
            data,
            offset: offset + 4,
            has_audio: flags & FLAG_AUDIO != 0,
            has_video: flags & FLAG_VIDEO != 0,
            max_tag_size: MAX_TAG_SIZE,
            failed: false,
        })
    }

    /// Refuses tags with a body larger than `limit` bytes (default: [`MAX_TAG_SIZE`]).
    pub fn with_max_tag_size(mut self, limit: u32) -> FlvReader {
        self.max_tag_size = limit;
        self
    }

    /// The header's audio flag.
    pub fn has_audio(&self) -> bool {
        self.has_audio
    }

    /// The header's video flag.
    pub fn has_video(&self) -> bool {
        self.has_video
    }

    /// Reads the next tag of a known type, skipping others; `None` at the end of the file.
    fn read_tag(&mut self) -> Option<Result<FlvTag, FlvFileError>> {
        loop {
            let start = self.offset;
            if start == self.data.len() {
                return None;
            }
            let Some(header) = self.data.get(start..start + TAG_HEADER_LEN) else {
                return Some(Err(FlvFileError::Truncated {
                    what: "tag header",
                    offset: start,
                }));
            };
            let tag_type = header[0] & 0x1F;
            let size = u32::from_be_bytes([0, header[1], header[2], header[3]]);
            let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
            if size > self.max_tag_size {
                return Some(Err(FlvFileError::TagTooLarge {
                    offset: start,
                    size,
                    limit: self.max_tag_size,
                }));
            }
            let body_start = start + TAG_HEADER_LEN;
            let body_end = body_start + size as usize;
            let Some(body) =
                (body_end <= self.data.len()).then(|| self.data.slice(body_start..body_end))
            else {
                return Some(Err(FlvFileError::Truncated {
                    what: "tag body",
                    offset: start,
                }));
            };
            let Some(back) = self.data.get(body_end..body_end + 4) else {
                return Some(Err(FlvFileError::Truncated {
                    what: "previous tag size",
                    offset: body_end,
                }));
            };
            let found = u32::from_be_bytes([back[0], back[1], back[2], back[3]]);
            let expected = size + TAG_HEADER_LEN as u32;
            if found != expected {
                return Some(Err(FlvFileError::BadPreviousTagSize {
                    offset: start,
                    found,
                    expected,
                }));
            }
            self.offset = body_end + 4;
            let kind = match tag_type {
                TAG_AUDIO => MediaKind::Audio,
                TAG_VIDEO => MediaKind::Video,
                TAG_SCRIPT => MediaKind::Data,
                _ => continue,
            };
            let body = match kind {
                MediaKind::Data => strip_set_data_frame(body),
                _ => body,
            };
            return Some(Ok(FlvTag {
                kind,
                timestamp,
                body,
            }));
        }
    }
}

impl Iterator for FlvReader {
    type Item = Result<FlvTag, FlvFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.read_tag();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

/// Drops a leading AMF0 `"@setDataFrame"` string from a data tag body.
fn strip_set_data_frame(body: Bytes) -> Bytes {
    if body.starts_with(SET_DATA_FRAME) {
        body.slice(SET_DATA_FRAME.len()..)
    } else {
        body
    }
}

/// Writes the 9-byte FLV file header and PreviousTagSize0.
pub fn write_header(has_audio: bool, has_video: bool, out: &mut impl BufMut) {
    let mut flags = 0;
    if has_audio {
        flags |= FLAG_AUDIO;
    }
    if has_video {
        flags |= FLAG_VIDEO;
    }
    out.put_slice(b"FLV\x01");
    out.put_u8(flags);
    out.put_u32(FILE_HEADER_LEN as u32);
    out.put_u32(0);
}

/// The 11-byte tag header for a body of `size` bytes (at most [`MAX_TAG_SIZE`]; larger sizes
/// are truncated to 24 bits, so callers must not pass them).
pub fn tag_header(kind: MediaKind, timestamp: u32, size: u32) -> [u8; TAG_HEADER_LEN] {
    let tag_type = match kind {
        MediaKind::Audio => TAG_AUDIO,
        MediaKind::Video => TAG_VIDEO,
        MediaKind::Data => TAG_SCRIPT,
    };
    let s = size.to_be_bytes();
    let t = timestamp.to_be_bytes();
    [tag_type, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0]
}

/// Writes one tag: header, body and back pointer. Bodies over [`MAX_TAG_SIZE`] cannot be
/// described by FLV and are not written; returns whether the tag was written.
pub fn write_tag(kind: MediaKind, timestamp: u32, body: &[u8], out: &mut impl BufMut) -> bool {
    let Ok(size) = u32::try_from(body.len()) else {
        return false;
    };
    if size > MAX_TAG_SIZE {
        return false;
    }
    out.put_slice(&tag_header(kind, timestamp, size));
    out.put_slice(body);
    out.put_u32(size + TAG_HEADER_LEN as u32);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::hex;

    /// Header (audio+video) + a 2-byte video tag at 0x01020304 ms + a 1-byte audio tag at 40 ms.
    const GOLDEN: &str = "464c5601 05 00000009 00000000 \
                          09 000002 020304 01 000000 1700 0000000d \
                          08 000001 000028 00 000000 af 0000000c";

    #[test]
    fn writes_golden_bytes() {
        let mut out = Vec::new();
        write_header(true, true, &mut out);
        assert!(write_tag(
            MediaKind::Video,
            0x0102_0304,
            &[0x17, 0x00],
            &mut out
        ));
        assert!(write_tag(MediaKind::Audio, 40, &[0xAF], &mut out));
        assert_eq!(out, hex(GOLDEN));
    }

    #[test]
    fn reads_golden_bytes() {
        let reader = FlvReader::from_bytes(Bytes::from(hex(GOLDEN))).unwrap();
        assert!(reader.has_audio() && reader.has_video());
        let tags: Vec<FlvTag> = reader.map(Result::unwrap).collect();
        assert_eq!(
            tags,
            vec![
                FlvTag {
                    kind: MediaKind::Video,
                    timestamp: 0x0102_0304,
                    body: Bytes::from_static(&[0x17, 0x00]),
                },
                FlvTag {
                    kind: MediaKind::Audio,
                    timestamp: 40,
                    body: Bytes::from_static(&[0xAF]),
                },
            ]
        );
    }

    #[test]
    fn header_flags_and_data_tags() {
        let mut out = Vec::new();
        write_header(false, true, &mut out);
        assert_eq!(out, hex("464c5601 01 00000009 00000000"));
        // "@setDataFrame" "onMetaData" null
        let mut body = SET_DATA_FRAME.to_vec();
        body.extend_from_slice(&hex("02000a 6f6e4d65746144617461 05"));
        write_tag(MediaKind::Data, 0, &body, &mut out);
        assert_eq!(&out[13..24], &hex("12 00001e 000000 00 000000")[..]);
        let tags: Vec<_> = FlvReader::from_bytes(Bytes::from(out))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].kind, MediaKind::Data);
        assert_eq!(
            &tags[0].body[..],
            &hex("02000a 6f6e4d65746144617461 05")[..]
        );
        assert!(tags[0].to_frame().info.is_metadata);
    }

    #[test]
    fn skips_unknown_tag_types_and_honours_header_size() {
        // Header size 13 (4 extra bytes), then an unknown type 0x0f tag, then audio.
        let bytes = hex("464c5601 04 0000000d deadbeef 00000000 \
             0f 000001 000000 00 000000 ff 0000000c \
             08 000001 000005 00 000000 af 0000000c");
        let tags: Vec<_> = FlvReader::from_bytes(Bytes::from(bytes))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!((tags[0].kind, tags[0].timestamp), (MediaKind::Audio, 5));
    }

    #[test]
    fn rejects_bad_headers() {
        let err = |s: &str| FlvReader::from_bytes(Bytes::from(hex(s))).unwrap_err();
        assert_eq!(err("464c58 01 05 00000009 00000000"), FlvFileError::NotFlv);
        assert_eq!(
            err("464c56 02 05 00000009 00000000"),
            FlvFileError::UnsupportedVersion(2)
        );
        assert_eq!(
            err("464c56 01 05 00000008 00000000"),
            FlvFileError::BadHeaderSize(8)
        );
        assert_eq!(
            err("464c56 01 05 00000009 0000"),
            FlvFileError::Truncated {
                what: "previous tag size 0",
                offset: 9
            }
        );
    }

    #[test]
    fn bad_back_pointer_and_size_limit() {
        let mut bytes = hex(GOLDEN);
        bytes[29] = 0x0e; // first back pointer 0x0d -> 0x0e
        let mut reader = FlvReader::from_bytes(Bytes::from(bytes)).unwrap();
        assert_eq!(
            reader.next(),
            Some(Err(FlvFileError::BadPreviousTagSize {
                offset: 13,
                found: 14,
                expected: 13
            }))
        );
        assert_eq!(reader.next(), None, "iteration stops after an error");

        let mut reader = FlvReader::from_bytes(Bytes::from(hex(GOLDEN)))
            .unwrap()
            .with_max_tag_size(1);
        assert!(matches!(
            reader.next(),
            Some(Err(FlvFileError::TagTooLarge { size: 2, .. }))
        ));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let full = hex(GOLDEN);
        for len in 0..full.len() {
            let data = Bytes::copy_from_slice(&full[..len]);
            let result: Result<Vec<FlvTag>, FlvFileError> =
                FlvReader::from_bytes(data).and_then(|r| r.collect());
            // Truncation exactly at a tag boundary is a shorter, valid file.
            let boundary = [13, 13 + 11 + 2 + 4].contains(&len);
            assert_eq!(result.is_ok(), boundary, "length {len}: {result:?}");
        }
    }

    #[test]
    fn oversized_bodies_are_not_written() {
        let mut out = Vec::new();
        let big = vec![0; MAX_TAG_SIZE as usize + 1];
        assert!(!write_tag(MediaKind::Video, 0, &big, &mut out));
        assert!(out.is_empty());
    }
}
