//! Chunk stream decoder: reassembles messages from interleaved chunks (spec section 5.3).
//!
//! The decoder works one whole chunk at a time: it parses a chunk's headers without consuming
//! anything, and only when the chunk's payload has arrived too does it consume the chunk and
//! update the chunk stream's state. So the result is the same however the input is split.
//!
//! # Extended timestamps on type-3 chunks
//!
//! Writers disagree on whether a type-3 chunk carries the 4-byte extended timestamp when the
//! header in force had 0xFFFFFF in its timestamp field (the 2009 spec says no, the 2012 spec
//! says yes). We read them the way SRS does:
//!
//! * a type-3 chunk that **starts** a message always carries the field (read unconditionally);
//! * a type-3 **continuation** chunk: we peek at the next 4 bytes and consume them only if they
//!   equal the extended value last read on that chunk stream; otherwise they are payload.
//!
//! The heuristic misreads a continuation chunk of a writer that omits the field when the
//! payload happens to start with the same 4 bytes. No reader can tell those apart.
//!
//! # Timestamp deltas
//!
//! Headers of fmt 1 and 2 carry a delta (in the extended field too, when it is present). A
//! type-3 chunk that starts a new message applies the chunk stream's previous delta again;
//! after a fmt 0 header that delta is the fmt 0 timestamp itself, as the spec says. Timestamps
//! wrap at 2^32.

use std::collections::HashMap;

use bytes::{Buf, Bytes, BytesMut};

use super::{ChunkMessage, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_MESSAGE_LENGTH};

/// Timestamp field value announcing a 4-byte extended timestamp.
const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;

/// Largest buffer reserved up front for a multi-chunk message; it grows as chunks arrive.
const MAX_INITIAL_REASSEMBLY_CAPACITY: usize = 64 * 1024;

/// Default for [`DecoderLimits::max_chunk_streams`].
pub const DEFAULT_MAX_CHUNK_STREAMS: usize = 64;

/// Default for [`DecoderLimits::max_pending_bytes`]: 32 MiB.
pub const DEFAULT_MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;

/// Limits on what a peer may make the decoder hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest message length accepted from a chunk header (default 0xFFFFFF, the UI24 maximum).
    pub max_message_length: u32,
    /// Most chunk streams that may have state at once (default 64).
    pub max_chunk_streams: usize,
    /// Most payload bytes of partially assembled messages held across all chunk streams
    /// (default 32 MiB).
    pub max_pending_bytes: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        Self {
            max_message_length: MAX_MESSAGE_LENGTH,
            max_chunk_streams: DEFAULT_MAX_CHUNK_STREAMS,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

/// Errors from the chunk decoder. All of them are fatal for the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk header declared a message longer than [`DecoderLimits::max_message_length`].
    #[error("message length {length} exceeds limit {limit}")]
    ExceedMessageLength {
        /// The declared length.
        length: u32,
        /// The limit in force.
        limit: u32,
    },
    /// A new chunk stream would exceed [`DecoderLimits::max_chunk_streams`].
    #[error("too many chunk streams (limit {limit})")]
    ExceedChunkStreams {
        /// The limit in force.
        limit: usize,
    },
    /// Partial messages would hold more than [`DecoderLimits::max_pending_bytes`].
    #[error("partial messages exceed {limit} bytes")]
    ExceedPendingBytes {
        /// The limit in force.
        limit: usize,
    },
    /// A Set Chunk Size of 0 or with bit 31 set.
    #[error("chunk size {0} is invalid")]
    RejectChunkSize(u32),
    /// A fmt 1, 2 or 3 chunk on a chunk stream that never had a fmt 0 header.
    #[error("fmt {fmt} chunk on chunk stream {chunk_stream_id} with no previous header")]
    MissPreviousHeader {
        /// The chunk's fmt (1, 2 or 3).
        fmt: u8,
        /// The chunk stream id.
        chunk_stream_id: u32,
    },
    /// A fmt 0 or 1 header changed the length of a message still being assembled.
    #[error("message length changed mid-message on chunk stream {chunk_stream_id}")]
    ChangeLengthMidMessage {
        /// The chunk stream id.
        chunk_stream_id: u32,
    },
}

/// Reassembles messages from chunks, keeping per-chunk-stream header state.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: DecoderLimits,
    chunk_size: u32,
    streams: HashMap<u32, ChunkStream>,
    pending_bytes: usize,
}

impl ChunkDecoder {
    /// Creates a decoder with the default chunk size (128) and the given limits.
    pub fn new(limits: DecoderLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            pending_bytes: 0,
        }
    }

    /// Applies a peer's Set Chunk Size (called by the session right after it decoded that
    /// message, so it affects the very next chunk, including the rest of partial messages).
    ///
    /// 0 or a size with bit 31 set is an error; sizes above [`MAX_CHUNK_SIZE`] are clamped.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size & 0x8000_0000 != 0 {
            return Err(ChunkError::RejectChunkSize(size));
        }
        self.chunk_size = size.min(MAX_CHUNK_SIZE);
        Ok(())
    }

    /// The chunk size in force for incoming chunks.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Applies an Abort message (type 2): drops the partial message on that chunk stream, if
    /// any. The chunk stream keeps its last header, so later fmt 1/2/3 chunks still work.
    pub fn abort(&mut self, chunk_stream_id: u32) {
        if let Some(stream) = self.streams.get_mut(&chunk_stream_id) {
            if let Some(partial) = stream.partial.take() {
                self.pending_bytes = self.pending_bytes.saturating_sub(partial.len());
            }
        }
    }

    /// Consumes complete chunks from the front of `input` and returns at most one complete
    /// message per call; `Ok(None)` means more bytes are needed.
    ///
    /// Bytes of an incomplete chunk are left in `input`. Every payload gets its own buffer: a
    /// message that fits in one chunk is copied out (splitting it off `input` would let a small
    /// frame held in a GOP cache pin the whole read buffer), longer ones are reassembled.
    pub fn decode(&mut self, input: &mut BytesMut) -> Result<Option<ChunkMessage>, ChunkError> {
        loop {
            match self.decode_chunk(input)? {
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
                Step::Complete(message) => return Ok(Some(message)),
            }
        }
    }

    /// Decodes one chunk if all of it is in `input`.
    fn decode_chunk(&mut self, input: &mut BytesMut) -> Result<Step, ChunkError> {
        let Some(header) = ChunkHeader::parse(input) else {
            return Ok(Step::NeedMore);
        };
        let csid = header.chunk_stream_id;
        let (state, received) = match self.streams.get(&csid) {
            Some(stream) => (
                stream.state,
                stream.partial.as_ref().map(|partial| partial.len()),
            ),
            None if header.fmt != 0 => {
                return Err(ChunkError::MissPreviousHeader {
                    fmt: header.fmt,
                    chunk_stream_id: csid,
                })
            }
            None if self.streams.len() >= self.limits.max_chunk_streams => {
                return Err(ChunkError::ExceedChunkStreams {
                    limit: self.limits.max_chunk_streams,
                })
            }
            None => (HeaderState::default(), None),
        };

        let length = if header.fmt <= 1 {
            if received.is_some() && header.length != state.length {
                return Err(ChunkError::ChangeLengthMidMessage {
                    chunk_stream_id: csid,
                });
            }
            if header.length > self.limits.max_message_length {
                return Err(ChunkError::ExceedMessageLength {
                    length: header.length,
                    limit: self.limits.max_message_length,
                });
            }
            header.length
        } else {
            state.length
        };

        let mut pos = header.len;
        let extended = if header.fmt <= 2 {
            if header.timestamp_field == EXTENDED_TIMESTAMP_MARKER {
                let Some(value) = read_u32(input, pos) else {
                    return Ok(Step::NeedMore);
                };
                pos += 4;
                Some(value)
            } else {
                None
            }
        } else if !state.extended {
            None
        } else if received.is_none() {
            let Some(value) = read_u32(input, pos) else {
                return Ok(Step::NeedMore);
            };
            pos += 4;
            Some(value)
        } else {
            match peek_extended(input, pos, state.extended_value) {
                Peek::NeedMore => return Ok(Step::NeedMore),
                Peek::Absent => None,
                Peek::Present => {
                    pos += 4;
                    Some(state.extended_value)
                }
            }
        };

        let remaining = (length as usize).saturating_sub(received.unwrap_or(0));
        let chunk_len = remaining.min(self.chunk_size as usize);
        if input.len() < pos + chunk_len {
            return Ok(Step::NeedMore);
        }
        let single_chunk = received.is_none() && chunk_len == remaining;
        if !single_chunk && self.pending_bytes + chunk_len > self.limits.max_pending_bytes {
            return Err(ChunkError::ExceedPendingBytes {
                limit: self.limits.max_pending_bytes,
            });
        }

        // The whole chunk is here: commit.
        input.advance(pos);
        let stream = self.streams.entry(csid).or_default();
        stream
            .state
            .apply(&header, length, extended, received.is_none());
        if single_chunk {
            let payload = Bytes::copy_from_slice(&input[..chunk_len]);
            input.advance(chunk_len);
            return Ok(Step::Complete(stream.state.message(csid, payload)));
        }
        let chunk = input.split_to(chunk_len);
        let partial = stream.partial.get_or_insert_with(|| {
            BytesMut::with_capacity((length as usize).min(MAX_INITIAL_REASSEMBLY_CAPACITY))
        });
        partial.extend_from_slice(&chunk);
        self.pending_bytes += chunk_len;
        if partial.len() < length as usize {
            return Ok(Step::Continue);
        }
        let payload = stream.partial.take().unwrap_or_default().freeze();
        self.pending_bytes = self.pending_bytes.saturating_sub(payload.len());
        Ok(Step::Complete(stream.state.message(csid, payload)))
    }
}

/// Outcome of decoding one chunk.
enum Step {
    NeedMore,
    Continue,
    Complete(ChunkMessage),
}

/// Per-chunk-stream state: the header in force and the message being assembled.
#[derive(Debug, Default)]
struct ChunkStream {
    state: HeaderState,
    /// Payload received so far of an incomplete multi-chunk message.
    partial: Option<BytesMut>,
}

/// The header fields a later fmt 1/2/3 chunk inherits.
#[derive(Clone, Copy, Debug, Default)]
struct HeaderState {
    /// Absolute timestamp of the current (or last) message.
    timestamp: u32,
    /// Delta a type-3 chunk starting a new message applies.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Whether the last fmt 0/1/2 header had the extended timestamp marker.
    extended: bool,
    /// The extended timestamp value last read on this chunk stream.
    extended_value: u32,
}

impl HeaderState {
    /// Applies a consumed chunk's header. Timestamp, type and stream id change only on the
    /// first chunk of a message; a fmt 0/1/2 header in the middle of a message (same length)
    /// is tolerated as a continuation and only updates the extended timestamp state.
    fn apply(&mut self, header: &ChunkHeader, length: u32, extended: Option<u32>, first: bool) {
        let field = extended.unwrap_or(header.timestamp_field);
        if first {
            match header.fmt {
                0 => {
                    self.timestamp = field;
                    self.delta = field;
                    self.type_id = header.type_id;
                    self.stream_id = header.stream_id;
                }
                1 | 2 => {
                    self.timestamp = self.timestamp.wrapping_add(field);
                    self.delta = field;
                    if header.fmt == 1 {
                        self.type_id = header.type_id;
                    }
                }
                _ => self.timestamp = self.timestamp.wrapping_add(self.delta),
            }
            self.length = length;
        }
        if header.fmt <= 2 {
            self.extended = header.timestamp_field == EXTENDED_TIMESTAMP_MARKER;
        }
        if let Some(value) = extended {
            self.extended_value = value;
        }
    }

    fn message(&self, chunk_stream_id: u32, payload: bytes::Bytes) -> ChunkMessage {
        ChunkMessage {
            chunk_stream_id,
            timestamp: self.timestamp,
            type_id: self.type_id,
            stream_id: self.stream_id,
            payload,
        }
    }
}

/// Basic header plus message header of one chunk, without the extended timestamp.
#[derive(Debug)]
struct ChunkHeader {
    fmt: u8,
    chunk_stream_id: u32,
    /// Bytes of basic and message header.
    len: usize,
    timestamp_field: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

impl ChunkHeader {
    /// Parses the headers at the front of `buf`; `None` if they are not all there yet.
    fn parse(buf: &[u8]) -> Option<Self> {
        let first = *buf.first()?;
        let fmt = first >> 6;
        let (chunk_stream_id, basic_len) = match first & 0x3F {
            0 => (64 + u32::from(*buf.get(1)?), 2),
            1 => {
                let b = buf.get(1..3)?;
                (64 + u32::from(u16::from_le_bytes([b[0], b[1]])), 3)
            }
            id => (u32::from(id), 1),
        };
        let message_len = match fmt {
            0 => 11,
            1 => 7,
            2 => 3,
            _ => 0,
        };
        let m = buf.get(basic_len..basic_len + message_len)?;
        let mut header = Self {
            fmt,
            chunk_stream_id,
            len: basic_len + message_len,
            timestamp_field: 0,
            length: 0,
            type_id: 0,
            stream_id: 0,
        };
        if fmt <= 2 {
            header.timestamp_field = u24(&m[0..3]);
        }
        if fmt <= 1 {
            header.length = u24(&m[3..6]);
            header.type_id = m[6];
        }
        if fmt == 0 {
            header.stream_id = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
        }
        Some(header)
    }
}

/// Result of peeking for an optional extended timestamp on a continuation chunk.
enum Peek {
    NeedMore,
    Absent,
    Present,
}

/// Checks whether the bytes at `pos` are the stored extended value. Decides as soon as the
/// available bytes mismatch, so a short continuation chunk at the end of the input waits for
/// more bytes only while those bytes are a prefix of the stored value.
fn peek_extended(buf: &[u8], pos: usize, expected: u32) -> Peek {
    let expected = expected.to_be_bytes();
    let available = buf.get(pos..).unwrap_or_default();
    let n = available.len().min(4);
    if available[..n] != expected[..n] {
        Peek::Absent
    } else if n < 4 {
        Peek::NeedMore
    } else {
        Peek::Present
    }
}

fn read_u32(buf: &[u8], pos: usize) -> Option<u32> {
    let b = buf.get(pos..pos + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Big-endian 24-bit value; `b` has exactly 3 bytes.
fn u24(b: &[u8]) -> u32 {
    (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::tests::hex;

    fn message(
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &str,
    ) -> ChunkMessage {
        ChunkMessage {
            chunk_stream_id: csid,
            timestamp,
            type_id,
            stream_id,
            payload: hex(payload).freeze(),
        }
    }

    /// Decodes every message in `input`, which must be consumed entirely.
    fn decode_all(decoder: &mut ChunkDecoder, input: &str) -> Vec<ChunkMessage> {
        let mut buf = hex(input);
        let mut messages = Vec::new();
        while let Some(message) = decoder.decode(&mut buf).unwrap() {
            messages.push(message);
        }
        assert!(buf.is_empty(), "left over: {buf:x?}");
        messages
    }

    fn decoder_with_chunk_size(size: u32) -> ChunkDecoder {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        decoder.set_chunk_size(size).unwrap();
        decoder
    }

    #[test]
    fn basic_header_forms() {
        let tail = "000010 000001 08 01000000 aa";
        for (basic, csid) in [
            ("02", 2),
            ("3f", 63),
            ("00 00", 64),
            ("00 ff", 319),
            ("01 00 01", 320),
            ("01 ff ff", 65_599),
            ("01 00 00", 64),
        ] {
            let mut decoder = ChunkDecoder::new(DecoderLimits::default());
            let got = decode_all(&mut decoder, &format!("{basic} {tail}"));
            assert_eq!(got, vec![message(csid, 0x10, 8, 1, "aa")], "csid {csid}");
        }
    }

    #[test]
    fn every_fmt_in_sequence() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        let got = decode_all(
            &mut decoder,
            "04 000064 000002 09 01000000 1717
             44 000028 000003 08 aabbcc
             84 00001e dddddd
             c4 eeeeee
             c4 ffffff",
        );
        assert_eq!(
            got,
            vec![
                message(4, 100, 9, 1, "1717"),
                message(4, 140, 8, 1, "aabbcc"),
                message(4, 170, 8, 1, "dddddd"),
                message(4, 200, 8, 1, "eeeeee"),
                message(4, 230, 8, 1, "ffffff"),
            ]
        );
    }

    #[test]
    fn fmt3_after_fmt0_repeats_fmt0_timestamp_as_delta() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        let got = decode_all(&mut decoder, "04 000064 000001 09 01000000 11 c4 22");
        assert_eq!(got[1], message(4, 200, 9, 1, "22"));
    }

    #[test]
    fn extended_timestamp_fmt0_with_and_without_field_on_continuations() {
        let expected = vec![message(6, 0x0100_0000, 9, 1, "0102030405")];
        let with_field = "06 ffffff 000005 09 01000000 01000000 0102
                          c6 01000000 0304
                          c6 01000000 05";
        let without_field = "06 ffffff 000005 09 01000000 01000000 0102
                             c6 0304
                             c6 05";
        for input in [with_field, without_field] {
            let mut decoder = decoder_with_chunk_size(2);
            assert_eq!(decode_all(&mut decoder, input), expected);
        }
    }

    #[test]
    fn continuation_waits_only_while_bytes_match_extended_prefix() {
        let mut decoder = decoder_with_chunk_size(2);
        let mut buf = hex("06 ffffff 000003 09 01000000 01000000 0102 c6 01");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(&buf[..], &hex("c6 01")[..]);
        buf.extend_from_slice(&hex("000000 03"));
        let got = decoder.decode(&mut buf).unwrap();
        assert_eq!(got, Some(message(6, 0x0100_0000, 9, 1, "010203")));
    }

    #[test]
    fn extended_delta_on_fmt1_and_fmt3_new_message() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        let got = decode_all(
            &mut decoder,
            "04 000064 000001 09 01000000 11
             44 ffffff 000002 09 01000000 2233
             c4 01000000 4455
             84 ffffff 01000000 6677",
        );
        assert_eq!(
            got,
            vec![
                message(4, 100, 9, 1, "11"),
                message(4, 0x0100_0064, 9, 1, "2233"),
                message(4, 0x0200_0064, 9, 1, "4455"),
                message(4, 0x0300_0064, 9, 1, "6677"),
            ]
        );
    }

    #[test]
    fn timestamp_wraps_at_2_pow_32() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        let got = decode_all(
            &mut decoder,
            "04 ffffff 000001 09 01000000 fffffff0 11
             84 000020 22",
        );
        assert_eq!(got[1].timestamp, 0x10);
    }

    #[test]
    fn interleaved_chunk_streams() {
        let mut decoder = decoder_with_chunk_size(2);
        let got = decode_all(
            &mut decoder,
            "06 000000 000004 09 01000000 aabb
             04 000000 000001 08 01000000 11
             c6 ccdd",
        );
        assert_eq!(
            got,
            vec![message(4, 0, 8, 1, "11"), message(6, 0, 9, 1, "aabbccdd")]
        );
    }

    #[test]
    fn header_mid_message_with_same_length_continues_it() {
        let mut decoder = decoder_with_chunk_size(2);
        let got = decode_all(
            &mut decoder,
            "04 000000 000004 09 01000000 aabb 44 000005 000004 09 ccdd",
        );
        assert_eq!(got, vec![message(4, 0, 9, 1, "aabbccdd")]);
    }

    #[test]
    fn length_change_mid_message_is_an_error() {
        let mut decoder = decoder_with_chunk_size(2);
        let mut buf = hex("04 000000 000004 09 01000000 aabb 44 000000 000005 09 ccdd");
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ChunkError::ChangeLengthMidMessage { chunk_stream_id: 4 })
        );
    }

    #[test]
    fn chunk_without_previous_header_is_an_error() {
        for (input, fmt) in [("c5", 3), ("85 000000", 2), ("45 000000 000001 08", 1)] {
            let mut decoder = ChunkDecoder::new(DecoderLimits::default());
            let err = decoder.decode(&mut hex(input)).unwrap_err();
            assert_eq!(
                err,
                ChunkError::MissPreviousHeader {
                    fmt,
                    chunk_stream_id: 5
                }
            );
        }
        assert_eq!(
            ChunkError::MissPreviousHeader {
                fmt: 3,
                chunk_stream_id: 5
            }
            .to_string(),
            "fmt 3 chunk on chunk stream 5 with no previous header"
        );
    }

    #[test]
    fn set_chunk_size_applies_to_the_next_chunk() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = hex("02 000000 000004 01 00000000 00000004
             04 000000 00000a 09 01000000 00010203 c4 04050607 c4 0809");
        let set = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(set, message(2, 0, 1, 0, "00000004"));
        decoder.set_chunk_size(4).unwrap();
        let got = decoder.decode(&mut buf).unwrap();
        assert_eq!(got, Some(message(4, 0, 9, 1, "00010203040506070809")));
        assert!(buf.is_empty());
    }

    #[test]
    fn set_chunk_size_rejects_and_clamps() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        assert_eq!(decoder.chunk_size(), 128);
        assert_eq!(
            decoder.set_chunk_size(0),
            Err(ChunkError::RejectChunkSize(0))
        );
        assert_eq!(
            decoder.set_chunk_size(0x8000_0000),
            Err(ChunkError::RejectChunkSize(0x8000_0000))
        );
        assert_eq!(decoder.chunk_size(), 128);
        decoder.set_chunk_size(0x7FFF_FFFF).unwrap();
        assert_eq!(decoder.chunk_size(), MAX_CHUNK_SIZE);
        assert_eq!(
            ChunkError::RejectChunkSize(0).to_string(),
            "chunk size 0 is invalid"
        );
    }

    #[test]
    fn abort_drops_partial_message() {
        let mut decoder = decoder_with_chunk_size(2);
        let mut buf = hex("04 000000 000004 09 01000000 aabb");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(decoder.pending_bytes, 2);
        decoder.abort(4);
        decoder.abort(9);
        assert_eq!(decoder.pending_bytes, 0);
        let got = decode_all(&mut decoder, "c4 ccdd c4 eeff");
        assert_eq!(got, vec![message(4, 0, 9, 1, "ccddeeff")]);
    }

    #[test]
    fn single_chunk_payload_does_not_pin_the_input_buffer() {
        let mut decoder = ChunkDecoder::new(DecoderLimits::default());
        let mut buf = hex("04 000000 000003 09 01000000 aabbcc");
        buf.reserve(64 * 1024);
        let (start, end) = (
            buf.as_ptr() as usize,
            buf.as_ptr() as usize + buf.capacity(),
        );
        let got = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(got.payload.as_ref(), &[0xAA, 0xBB, 0xCC]);
        let at = got.payload.as_ptr() as usize;
        assert!(
            !(start..end).contains(&at),
            "payload points into the read buffer"
        );
    }

    #[test]
    fn message_longer_than_limit_is_rejected() {
        let limits = DecoderLimits {
            max_message_length: 10,
            ..DecoderLimits::default()
        };
        let mut decoder = ChunkDecoder::new(limits);
        let err = decoder
            .decode(&mut hex("04 000000 00000b 09 01000000"))
            .unwrap_err();
        assert_eq!(
            err,
            ChunkError::ExceedMessageLength {
                length: 11,
                limit: 10
            }
        );
        assert_eq!(err.to_string(), "message length 11 exceeds limit 10");
    }

    #[test]
    fn too_many_chunk_streams() {
        let limits = DecoderLimits {
            max_chunk_streams: 2,
            ..DecoderLimits::default()
        };
        let mut decoder = ChunkDecoder::new(limits);
        decode_all(
            &mut decoder,
            "03 000000 000001 08 01000000 11 04 000000 000001 08 01000000 22",
        );
        let err = decoder.decode(&mut hex("05 000000 000001 08 01000000 33"));
        assert_eq!(err, Err(ChunkError::ExceedChunkStreams { limit: 2 }));
        decode_all(&mut decoder, "03 000000 000001 08 01000000 44");
    }

    #[test]
    fn pending_bytes_limit() {
        let limits = DecoderLimits {
            max_pending_bytes: 4,
            ..DecoderLimits::default()
        };
        let mut decoder = ChunkDecoder::new(limits);
        decoder.set_chunk_size(2).unwrap();
        let mut buf = hex("03 000000 000004 08 01000000 1111
             04 000000 000004 08 01000000 2222
             05 000000 000002 08 01000000 3333
             c3 1111");
        assert_eq!(
            decoder.decode(&mut buf).unwrap(),
            Some(message(5, 0, 8, 1, "3333"))
        );
        let err = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(err, ChunkError::ExceedPendingBytes { limit: 4 });
    }
}
