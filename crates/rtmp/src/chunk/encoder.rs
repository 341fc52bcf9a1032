//! Chunk stream encoder: splits messages into chunks with header compression (spec section 5.3).
//!
//! Header choice per chunk stream:
//!
//! * fmt 0 for the first message, when the message stream id changes, or when the timestamp
//!   goes backwards (serial number arithmetic, see [`crate::time`]);
//! * fmt 1 when the length or the type changes;
//! * fmt 3 when length, type and delta all equal the previous message's, the previous delta
//!   came from a fmt 1/2 header and no extended timestamp is in force (OBS bug c41946513: fmt 3
//!   repeats the previous *delta*, so it is never used merely because timestamps are equal);
//! * fmt 2 otherwise.
//!
//! Whenever the header in force has 0xFFFFFF in its timestamp field, every type-3
//! continuation chunk repeats the 4-byte extended timestamp with the same value.

use bytes::{BufMut, BytesMut};

use super::transmit::{Continuation, TransmitQueue};
use super::{
    ChunkMessage, DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MAX_CHUNK_STREAM_ID, MAX_MESSAGE_LENGTH,
    MIN_CHUNK_STREAM_ID,
};
use crate::time;

/// Timestamp field value announcing a 4-byte extended timestamp.
const EXTENDED_TIMESTAMP_MARKER: u32 = 0xFF_FFFF;

/// Splits messages into chunks, keeping per-chunk-stream header state for compression.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    /// Header state per chunk stream id. A connection uses a handful of chunk streams (weir:
    /// control, commands, audio, video, data), so a short list searched in order is cheaper
    /// than hashing on every message.
    streams: Vec<(u32, HeaderState)>,
}

impl ChunkEncoder {
    /// Creates an encoder with the default chunk size (128).
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
        }
    }

    /// Changes the outgoing chunk size, clamped to 1..=[`MAX_CHUNK_SIZE`].
    ///
    /// The caller sends the Set Chunk Size message itself (encoded with the old size) and then
    /// calls this, between two messages.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// The chunk size in force for outgoing chunks.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends the chunks of one message to `out`, with header compression.
    ///
    /// # Panics
    ///
    /// If the chunk stream id is outside 2..=65599 or the payload is longer than
    /// [`MAX_MESSAGE_LENGTH`]; both are bugs in the caller, never peer input.
    pub fn encode(&mut self, message: &ChunkMessage, out: &mut BytesMut) {
        let (header, continuation) = self.plan(message);
        let chunk_size = self.chunk_size as usize;
        let payload = &message.payload[..];
        let chunks = payload.len().div_ceil(chunk_size).max(1);
        out.reserve(header.len() + payload.len() + (chunks - 1) * continuation.as_slice().len());
        out.put_slice(header.as_slice());
        let mut pieces = payload.chunks(chunk_size);
        if let Some(first) = pieces.next() {
            out.put_slice(first);
        }
        for piece in pieces {
            out.put_slice(continuation.as_slice());
            out.put_slice(piece);
        }
    }

    /// Queues one message on `queue` without copying its payload (beyond small ones): the
    /// same bytes as [`Self::encode`], for writers that use vectored IO.
    ///
    /// # Panics
    ///
    /// As [`Self::encode`].
    pub fn encode_to_queue(&mut self, message: &ChunkMessage, queue: &mut TransmitQueue) {
        let (header, continuation) = self.plan(message);
        queue.push_message(
            header.as_slice(),
            message.payload.clone(),
            self.chunk_size as usize,
            continuation,
        );
    }

    /// [`Self::encode_to_queue`] for a message the caller gives up: its payload moves into
    /// the queue (no reference count taken and dropped again on the hot path).
    ///
    /// # Panics
    ///
    /// As [`Self::encode`].
    pub fn encode_owned_to_queue(&mut self, message: ChunkMessage, queue: &mut TransmitQueue) {
        let (header, continuation) = self.plan(&message);
        queue.push_message(
            header.as_slice(),
            message.payload,
            self.chunk_size as usize,
            continuation,
        );
    }

    /// Chooses the header for `message`, updates the chunk stream's state, and returns the
    /// first chunk's header and the continuation header.
    fn plan(&mut self, message: &ChunkMessage) -> (FirstHeader, Continuation) {
        let csid = message.chunk_stream_id;
        assert!(
            (MIN_CHUNK_STREAM_ID..=MAX_CHUNK_STREAM_ID).contains(&csid),
            "chunk stream id {csid} out of range"
        );
        let length = match u32::try_from(message.payload.len()) {
            Ok(length) if length <= MAX_MESSAGE_LENGTH => length,
            _ => panic!("message payload longer than {MAX_MESSAGE_LENGTH} bytes"),
        };

        let next = HeaderState {
            timestamp: message.timestamp,
            length,
            type_id: message.type_id,
            stream_id: message.stream_id,
            delta: None,
            extended: false,
        };
        let slot = self.streams.iter().position(|(id, _)| *id == csid);
        let (fmt, field, state) = match slot.map(|i| &self.streams[i].1) {
            Some(prev)
                if prev.stream_id == message.stream_id
                    && !time::is_before(message.timestamp, prev.timestamp) =>
            {
                let delta = message.timestamp.wrapping_sub(prev.timestamp);
                let fmt = if prev.length != length || prev.type_id != message.type_id {
                    1
                } else if prev.delta == Some(delta) && !prev.extended {
                    3
                } else {
                    2
                };
                let extended = fmt != 3 && delta >= EXTENDED_TIMESTAMP_MARKER;
                let state = HeaderState {
                    delta: Some(delta),
                    extended,
                    ..next
                };
                (fmt, delta, state)
            }
            _ => {
                let extended = message.timestamp >= EXTENDED_TIMESTAMP_MARKER;
                (0, message.timestamp, HeaderState { extended, ..next })
            }
        };
        match slot {
            Some(i) => self.streams[i].1 = state,
            None => self.streams.push((csid, state)),
        }

        let mut header = FirstHeader::default();
        put_basic_header(&mut header, fmt, csid);
        let timestamp_field = field.min(EXTENDED_TIMESTAMP_MARKER);
        if fmt <= 2 {
            header.put(&timestamp_field.to_be_bytes()[1..]);
        }
        if fmt <= 1 {
            header.put(&length.to_be_bytes()[1..]);
            header.put(&[message.type_id]);
        }
        if fmt == 0 {
            header.put(&message.stream_id.to_le_bytes());
        }
        if state.extended {
            header.put(&field.to_be_bytes());
        }
        let mut basic = FirstHeader::default();
        put_basic_header(&mut basic, 3, csid);
        let continuation =
            Continuation::new(&basic.bytes[..basic.len], state.extended.then_some(field));
        (header, continuation)
    }
}

/// A first chunk header: at most 3 + 11 + 4 bytes.
#[derive(Debug, Default)]
struct FirstHeader {
    bytes: [u8; 18],
    len: usize,
}

impl FirstHeader {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn len(&self) -> usize {
        self.len
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What the next message on a chunk stream is compared against.
#[derive(Clone, Copy, Debug)]
struct HeaderState {
    timestamp: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// Delta of the last fmt 1/2 header (kept by fmt 3); `None` after fmt 0, so that fmt 3 is
    /// never used where receivers disagree on what the delta of a fmt 0 header is.
    delta: Option<u32>,
    /// Whether the header in force had the extended timestamp marker.
    extended: bool,
}

/// Writes a 1-, 2- or 3-byte basic header; `csid` is within 2..=65599.
fn put_basic_header(out: &mut FirstHeader, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.put(&[fmt | csid as u8]),
        64..=319 => out.put(&[fmt, (csid - 64) as u8]),
        _ => {
            let rest = ((csid - 64) as u16).to_le_bytes();
            out.put(&[fmt | 1, rest[0], rest[1]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::chunk::tests::hex;

    fn message(csid: u32, timestamp: u32, type_id: u8, payload: &[u8]) -> ChunkMessage {
        ChunkMessage {
            chunk_stream_id: csid,
            timestamp,
            type_id,
            stream_id: 1,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn encode_all(encoder: &mut ChunkEncoder, messages: &[ChunkMessage]) -> BytesMut {
        let mut out = BytesMut::new();
        for message in messages {
            encoder.encode(message, &mut out);
        }
        out
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
        ] {
            let out = encode_all(&mut ChunkEncoder::new(), &[message(csid, 0x10, 8, &[0xAA])]);
            assert_eq!(out, hex(&format!("{basic} {tail}")), "csid {csid}");
        }
    }

    #[test]
    fn header_compression_uses_every_fmt() {
        let out = encode_all(
            &mut ChunkEncoder::new(),
            &[
                message(4, 100, 9, &[0x17, 0x17]),
                message(4, 140, 8, &[0xAA, 0xBB, 0xCC]),
                message(4, 170, 8, &[0xDD; 3]),
                message(4, 200, 8, &[0xEE; 3]),
                message(4, 230, 8, &[0xFF; 3]),
            ],
        );
        let expected = "04 000064 000002 09 01000000 1717
                        44 000028 000003 08 aabbcc
                        84 00001e dddddd
                        c4 eeeeee
                        c4 ffffff";
        assert_eq!(out, hex(expected));
    }

    #[test]
    fn fmt0_when_stream_id_changes_or_time_goes_backwards() {
        let mut other_stream = message(4, 20, 8, &[2]);
        other_stream.stream_id = 2;
        let out = encode_all(
            &mut ChunkEncoder::new(),
            &[
                message(4, 10, 8, &[1]),
                other_stream,
                message(4, 5, 8, &[3]),
            ],
        );
        let expected = "04 00000a 000001 08 01000000 01
                        04 000014 000001 08 02000000 02
                        04 000005 000001 08 01000000 03";
        assert_eq!(out, hex(expected));
    }

    #[test]
    fn fmt3_only_when_the_delta_repeats() {
        // OBS bug c41946513: equal absolute timestamps are a delta of 0, not a repeat of 40.
        let out = encode_all(
            &mut ChunkEncoder::new(),
            &[
                message(4, 0, 8, &[1]),
                message(4, 40, 8, &[2]),
                message(4, 40, 8, &[3]),
                message(4, 40, 8, &[4]),
            ],
        );
        assert_eq!(
            out,
            hex("04 000000 000001 08 01000000 01 84 000028 02 84 000000 03 c4 04")
        );
    }

    #[test]
    fn no_fmt3_after_fmt0_even_when_delta_matches_its_timestamp() {
        let out = encode_all(
            &mut ChunkEncoder::new(),
            &[message(4, 40, 8, &[1]), message(4, 80, 8, &[2])],
        );
        assert_eq!(out, hex("04 000028 000001 08 01000000 01 84 000028 02"));
    }

    #[test]
    fn extended_timestamp_on_fmt0_repeats_on_continuations() {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(2);
        let out = encode_all(
            &mut encoder,
            &[message(6, 0x0100_0000, 9, &[1, 2, 3, 4, 5])],
        );
        let expected = "06 ffffff 000005 09 01000000 01000000 0102
                        c6 01000000 0304
                        c6 01000000 05";
        assert_eq!(out, hex(expected));
    }

    #[test]
    fn extended_delta_never_becomes_fmt3() {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(2);
        let out = encode_all(
            &mut encoder,
            &[
                message(4, 0, 9, &[0x11]),
                message(4, 0x0100_0000, 9, &[0x22]),
                message(4, 0x0200_0000, 9, &[0x33, 0x33, 0x33]),
                message(4, 0x0300_0000, 9, &[0x44, 0x44, 0x44]),
                message(4, 0x0300_0010, 9, &[0x55, 0x55, 0x55]),
                message(4, 0x0300_0020, 9, &[0x66, 0x66, 0x66]),
            ],
        );
        let expected = "04 000000 000001 09 01000000 11
                        84 ffffff 01000000 22
                        44 ffffff 000003 09 01000000 3333 c4 01000000 33
                        84 ffffff 01000000 4444 c4 01000000 44
                        84 000010 5555 c4 55
                        c4 6666 c4 66";
        assert_eq!(out, hex(expected));
    }

    #[test]
    fn empty_message_is_one_header() {
        let out = encode_all(&mut ChunkEncoder::new(), &[message(3, 0, 8, &[])]);
        assert_eq!(out, hex("03 000000 000000 08 01000000"));
    }

    #[test]
    fn chunk_size_is_clamped() {
        let mut encoder = ChunkEncoder::default();
        assert_eq!(encoder.chunk_size(), 128);
        encoder.set_chunk_size(0);
        assert_eq!(encoder.chunk_size(), 1);
        encoder.set_chunk_size(u32::MAX);
        assert_eq!(encoder.chunk_size(), MAX_CHUNK_SIZE);
        encoder.set_chunk_size(4096);
        assert_eq!(encoder.chunk_size(), 4096);
    }

    proptest::proptest! {
        #[test]
        fn queued_encoding_equals_contiguous_encoding(
            messages in proptest::collection::vec(
                (2u32..400, proptest::num::u32::ANY, 8u8..10, 0usize..3000), 1..20),
            chunk_size in 1u32..5000,
        ) {
            let mut contiguous = ChunkEncoder::new();
            let mut queued = ChunkEncoder::new();
            contiguous.set_chunk_size(chunk_size);
            queued.set_chunk_size(chunk_size);
            let mut out = BytesMut::new();
            let mut queue = TransmitQueue::new();
            for (csid, timestamp, type_id, len) in messages {
                let message = message(csid, timestamp, type_id, &vec![csid as u8; len]);
                contiguous.encode(&message, &mut out);
                queued.encode_to_queue(&message, &mut queue);
            }
            proptest::prop_assert_eq!(queue.take_contiguous().unwrap_or_default(), out.freeze());
        }
    }
}
