//! The RTMP chunk stream (spec section 5.3): messages split into chunks and interleaved.
//!
//! [`ChunkDecoder`] reassembles messages from chunks; [`ChunkEncoder`] splits messages into
//! chunks with header compression. Both keep per-chunk-stream state and work on any split of
//! the input bytes.

mod decoder;
mod encoder;
#[cfg(test)]
mod tests;
mod transmit;

use bytes::Bytes;

pub use decoder::{
    ChunkDecoder, ChunkError, DecoderLimits, DEFAULT_MAX_CHUNK_STREAMS, DEFAULT_MAX_PENDING_BYTES,
};
pub use encoder::ChunkEncoder;
pub use transmit::TransmitQueue;

/// Default chunk size in both directions until a Set Chunk Size message changes it.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;

/// Largest chunk size that makes a difference: every size above it behaves the same, because a
/// message is at most 0xFFFFFF bytes long.
pub const MAX_CHUNK_SIZE: u32 = 0xFF_FFFF;

/// Largest message length a chunk header can express (UI24).
pub const MAX_MESSAGE_LENGTH: u32 = 0xFF_FFFF;

/// Lowest chunk stream id a message may use (0 and 1 select the basic header's length).
pub const MIN_CHUNK_STREAM_ID: u32 = 2;

/// Highest chunk stream id (3-byte basic header: 64 + 0xFFFF).
pub const MAX_CHUNK_STREAM_ID: u32 = 65_599;

/// Chunk stream id used for protocol control messages.
pub const CONTROL_CHUNK_STREAM_ID: u32 = 2;

/// One complete RTMP message, as carried by the chunk stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkMessage {
    /// Chunk stream the message arrived on (or is to be sent on), 2..=65599.
    pub chunk_stream_id: u32,
    /// Absolute timestamp in milliseconds (wrapping 32-bit arithmetic).
    pub timestamp: u32,
    /// Message type id (1..=6 control, 8 audio, 9 video, 15..=20 AMF, 22 aggregate, ...).
    pub type_id: u8,
    /// Message stream id (little-endian on the wire).
    pub stream_id: u32,
    /// The message body.
    pub payload: Bytes,
}
