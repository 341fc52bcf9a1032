//! RTMP messages (spec sections 5.4, 6 and 7): protocol control, user control, media, command,
//! data and aggregate messages, parsed from and encoded into [`ChunkMessage`]s.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::chunk::{ChunkMessage, CONTROL_CHUNK_STREAM_ID};

/// Message type 1: Set Chunk Size.
pub const TYPE_SET_CHUNK_SIZE: u8 = 0x01;
/// Message type 2: Abort.
pub const TYPE_ABORT: u8 = 0x02;
/// Message type 3: Acknowledgement.
pub const TYPE_ACKNOWLEDGEMENT: u8 = 0x03;
/// Message type 4: User Control.
pub const TYPE_USER_CONTROL: u8 = 0x04;
/// Message type 5: Window Acknowledgement Size.
pub const TYPE_WINDOW_ACK_SIZE: u8 = 0x05;
/// Message type 6: Set Peer Bandwidth.
pub const TYPE_SET_PEER_BANDWIDTH: u8 = 0x06;
/// Message type 8: audio.
pub const TYPE_AUDIO: u8 = 0x08;
/// Message type 9: video.
pub const TYPE_VIDEO: u8 = 0x09;
/// Message type 15: data message in AMF3 (leading format byte).
pub const TYPE_DATA_AMF3: u8 = 0x0F;
/// Message type 16: shared object in AMF3.
pub const TYPE_SHARED_OBJECT_AMF3: u8 = 0x10;
/// Message type 17: command message in AMF3 (leading format byte).
pub const TYPE_COMMAND_AMF3: u8 = 0x11;
/// Message type 18: data message in AMF0.
pub const TYPE_DATA_AMF0: u8 = 0x12;
/// Message type 19: shared object in AMF0.
pub const TYPE_SHARED_OBJECT_AMF0: u8 = 0x13;
/// Message type 20: command message in AMF0.
pub const TYPE_COMMAND_AMF0: u8 = 0x14;
/// Message type 22: aggregate message.
pub const TYPE_AGGREGATE: u8 = 0x16;

/// Limit type of a Set Peer Bandwidth message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandwidthLimit {
    /// The peer should limit its output to the window size.
    Hard,
    /// The peer should limit its output to this size or the one in force, whichever is smaller.
    Soft,
    /// Hard if the previous limit was hard, otherwise ignored.
    Dynamic,
}

impl BandwidthLimit {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Hard),
            1 => Some(Self::Soft),
            2 => Some(Self::Dynamic),
            _ => None,
        }
    }

    fn to_byte(self) -> u8 {
        match self {
            Self::Hard => 0,
            Self::Soft => 1,
            Self::Dynamic => 2,
        }
    }
}

/// A User Control event (message type 4, spec 7.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserControl {
    /// Event 0: a stream became functional.
    StreamBegin(u32),
    /// Event 1: playback of the stream is over.
    StreamEof(u32),
    /// Event 2: no more data on the stream for now.
    StreamDry(u32),
    /// Event 3: the client's buffer length for a stream, in milliseconds.
    SetBufferLength {
        /// Message stream id.
        stream_id: u32,
        /// Buffer length in milliseconds.
        millis: u32,
    },
    /// Event 4: the stream is a recorded one.
    StreamIsRecorded(u32),
    /// Event 6: a liveness probe; the peer answers with [`UserControl::PingResponse`].
    PingRequest(u32),
    /// Event 7: the answer to a ping request, echoing its value.
    PingResponse(u32),
    /// Any other event, kept so it can be logged.
    Unknown(u16),
}

impl UserControl {
    fn parse(mut body: &[u8]) -> Option<Self> {
        if body.len() < 2 {
            return None;
        }
        let event = body.get_u16();
        let mut word = || (body.len() >= 4).then(|| body.get_u32());
        Some(match event {
            0 => Self::StreamBegin(word()?),
            1 => Self::StreamEof(word()?),
            2 => Self::StreamDry(word()?),
            3 => {
                let stream_id = word()?;
                let millis = word()?;
                Self::SetBufferLength { stream_id, millis }
            }
            4 => Self::StreamIsRecorded(word()?),
            6 => Self::PingRequest(word()?),
            7 => Self::PingResponse(word()?),
            other => Self::Unknown(other),
        })
    }

    fn encode(self) -> Bytes {
        let mut out = BytesMut::with_capacity(10);
        let (event, a, b) = match self {
            Self::StreamBegin(id) => (0, id, None),
            Self::StreamEof(id) => (1, id, None),
            Self::StreamDry(id) => (2, id, None),
            Self::SetBufferLength { stream_id, millis } => (3, stream_id, Some(millis)),
            Self::StreamIsRecorded(id) => (4, id, None),
            Self::PingRequest(t) => (6, t, None),
            Self::PingResponse(t) => (7, t, None),
            Self::Unknown(event) => (event, 0, None),
        };
        out.put_u16(event);
        out.put_u32(a);
        if let Some(b) = b {
            out.put_u32(b);
        }
        out.freeze()
    }
}

/// An RTMP message, classified by type.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Type 1.
    SetChunkSize(u32),
    /// Type 2: drop the partial message on this chunk stream.
    Abort(u32),
    /// Type 3: bytes received so far (wrapping at 2^32).
    Acknowledgement(u32),
    /// Type 4.
    UserControl(UserControl),
    /// Type 5.
    WindowAckSize(u32),
    /// Type 6.
    SetPeerBandwidth {
        /// Window size in bytes.
        size: u32,
        /// How to apply it.
        limit: BandwidthLimit,
    },
    /// Type 8.
    Audio(Bytes),
    /// Type 9.
    Video(Bytes),
    /// Types 20 and 17: an AMF command. For type 17 the format byte is already stripped.
    Command(Bytes),
    /// Types 18 and 15: an AMF data message. For type 15 the format byte is already stripped.
    Data(Bytes),
    /// Type 22: several audio/video/data messages in one body.
    Aggregate(Bytes),
    /// Shared object messages (types 16 and 19) and unknown types: not acted on.
    Other(u8),
}

/// Errors that make a message unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A control message shorter than its fixed layout.
    #[error("message type {type_id} is {len} bytes, too short")]
    TooShort {
        /// Message type id.
        type_id: u8,
        /// Length received.
        len: usize,
    },
    /// A Set Peer Bandwidth limit type outside 0..=2.
    #[error("set peer bandwidth limit type {0} is invalid")]
    InvalidLimitType(u8),
}

impl Message {
    /// Classifies a message received from the chunk stream.
    pub fn parse(message: &ChunkMessage) -> Result<Self, MessageError> {
        let body = &message.payload;
        let short = || MessageError::TooShort {
            type_id: message.type_id,
            len: body.len(),
        };
        let word = || {
            body.get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(short)
        };
        Ok(match message.type_id {
            TYPE_SET_CHUNK_SIZE => Self::SetChunkSize(word()?),
            TYPE_ABORT => Self::Abort(word()?),
            TYPE_ACKNOWLEDGEMENT => Self::Acknowledgement(word()?),
            TYPE_USER_CONTROL => Self::UserControl(UserControl::parse(body).ok_or_else(short)?),
            TYPE_WINDOW_ACK_SIZE => Self::WindowAckSize(word()?),
            TYPE_SET_PEER_BANDWIDTH => {
                let size = word()?;
                let limit = *body.get(4).ok_or_else(short)?;
                Self::SetPeerBandwidth {
                    size,
                    limit: BandwidthLimit::from_byte(limit)
                        .ok_or(MessageError::InvalidLimitType(limit))?,
                }
            }
            TYPE_AUDIO => Self::Audio(body.clone()),
            TYPE_VIDEO => Self::Video(body.clone()),
            TYPE_COMMAND_AMF0 => Self::Command(body.clone()),
            TYPE_DATA_AMF0 => Self::Data(body.clone()),
            // AMF3 command and data bodies start with a format selector; only 0 (AMF0 follows)
            // is defined. An empty body stays empty.
            TYPE_COMMAND_AMF3 => Self::Command(strip_format_byte(body)),
            TYPE_DATA_AMF3 => Self::Data(strip_format_byte(body)),
            TYPE_AGGREGATE => Self::Aggregate(body.clone()),
            other => Self::Other(other),
        })
    }
}

fn strip_format_byte(body: &Bytes) -> Bytes {
    if body.is_empty() {
        body.clone()
    } else {
        body.slice(1..)
    }
}

/// Builds a protocol control message (chunk stream 2, message stream 0).
fn control(type_id: u8, payload: Bytes) -> ChunkMessage {
    ChunkMessage {
        chunk_stream_id: CONTROL_CHUNK_STREAM_ID,
        timestamp: 0,
        type_id,
        stream_id: 0,
        payload,
    }
}

fn word(value: u32) -> Bytes {
    Bytes::copy_from_slice(&value.to_be_bytes())
}

/// A Set Chunk Size message.
pub fn set_chunk_size(size: u32) -> ChunkMessage {
    control(TYPE_SET_CHUNK_SIZE, word(size & 0x7FFF_FFFF))
}

/// An Acknowledgement message.
pub fn acknowledgement(sequence_number: u32) -> ChunkMessage {
    control(TYPE_ACKNOWLEDGEMENT, word(sequence_number))
}

/// A Window Acknowledgement Size message.
pub fn window_ack_size(size: u32) -> ChunkMessage {
    control(TYPE_WINDOW_ACK_SIZE, word(size))
}

/// A Set Peer Bandwidth message.
pub fn set_peer_bandwidth(size: u32, limit: BandwidthLimit) -> ChunkMessage {
    let mut body = BytesMut::with_capacity(5);
    body.put_u32(size);
    body.put_u8(limit.to_byte());
    control(TYPE_SET_PEER_BANDWIDTH, body.freeze())
}

/// A User Control message.
pub fn user_control(event: UserControl) -> ChunkMessage {
    control(TYPE_USER_CONTROL, event.encode())
}

/// An Abort message for a chunk stream.
pub fn abort(chunk_stream_id: u32) -> ChunkMessage {
    control(TYPE_ABORT, word(chunk_stream_id))
}

/// Largest number of sub-messages taken from one aggregate message.
pub const MAX_AGGREGATE_MESSAGES: usize = 4096;

/// One message taken out of an aggregate message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregatePart {
    /// Message type (8 audio, 9 video, 18 data, ...).
    pub type_id: u8,
    /// Absolute timestamp, normalised to the aggregate's timeline.
    pub timestamp: u32,
    /// Body of the sub-message (a slice of the aggregate body, no copy).
    pub payload: Bytes,
}

/// Splits an aggregate message (spec 7.1.6) into its sub-messages.
///
/// Each sub-message is an FLV-tag-like header (type, UI24 size, UI24+UI8 timestamp, UI24 stream
/// id), the body and a UI32 back pointer. Timestamps are shifted so that the first sub-message
/// lands on the aggregate's own timestamp. Parsing stops at the first sub-message that does not
/// fit; what was parsed before it is returned, with `truncated` set.
pub fn split_aggregate(aggregate_timestamp: u32, body: &Bytes) -> (Vec<AggregatePart>, bool) {
    let mut parts = Vec::new();
    let mut offset = 0usize;
    let mut first_timestamp = None;
    while offset < body.len() && parts.len() < MAX_AGGREGATE_MESSAGES {
        let Some(header) = body.get(offset..offset + 11) else {
            return (parts, true);
        };
        let type_id = header[0];
        let size = u32::from_be_bytes([0, header[1], header[2], header[3]]) as usize;
        let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
        let start = offset + 11;
        let Some(end) = start.checked_add(size).filter(|end| *end <= body.len()) else {
            return (parts, true);
        };
        let first = *first_timestamp.get_or_insert(timestamp);
        parts.push(AggregatePart {
            type_id,
            timestamp: aggregate_timestamp.wrapping_add(timestamp.wrapping_sub(first)),
            payload: body.slice(start..end),
        });
        // Skip the 4-byte back pointer; a missing one at the very end is tolerated.
        offset = end.saturating_add(4);
    }
    (parts, offset < body.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(type_id: u8, payload: &[u8]) -> ChunkMessage {
        ChunkMessage {
            chunk_stream_id: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn parses_control_messages() {
        assert_eq!(
            Message::parse(&chunk(1, &[0x00, 0x00, 0x10, 0x00])),
            Ok(Message::SetChunkSize(4096))
        );
        assert_eq!(
            Message::parse(&chunk(3, &[0xFF, 0xFF, 0xFF, 0xFF])),
            Ok(Message::Acknowledgement(u32::MAX))
        );
        assert_eq!(
            Message::parse(&chunk(6, &[0x00, 0x4C, 0x4B, 0x40, 0x02])),
            Ok(Message::SetPeerBandwidth {
                size: 5_000_000,
                limit: BandwidthLimit::Dynamic
            })
        );
        assert_eq!(
            Message::parse(&chunk(6, &[0x00, 0x4C, 0x4B, 0x40, 0x07])),
            Err(MessageError::InvalidLimitType(7))
        );
        assert!(matches!(
            Message::parse(&chunk(1, &[0x00, 0x10])),
            Err(MessageError::TooShort { type_id: 1, len: 2 })
        ));
    }

    #[test]
    fn user_control_golden_bytes() {
        let cases: [(UserControl, &[u8]); 4] = [
            (UserControl::StreamBegin(1), &[0, 0, 0, 0, 0, 1]),
            (
                UserControl::SetBufferLength {
                    stream_id: 1,
                    millis: 3000,
                },
                &[0, 3, 0, 0, 0, 1, 0, 0, 0x0B, 0xB8],
            ),
            (UserControl::PingRequest(0x1234), &[0, 6, 0, 0, 0x12, 0x34]),
            (UserControl::StreamIsRecorded(1), &[0, 4, 0, 0, 0, 1]),
        ];
        for (event, bytes) in cases {
            assert_eq!(user_control(event).payload.as_ref(), bytes);
            assert_eq!(
                Message::parse(&chunk(4, bytes)),
                Ok(Message::UserControl(event))
            );
        }
        assert!(Message::parse(&chunk(4, &[0, 3, 0, 0, 0, 1])).is_err());
    }

    #[test]
    fn amf3_messages_lose_the_format_byte() {
        assert_eq!(
            Message::parse(&chunk(17, &[0x00, 0x02, 0x00, 0x01, b'x'])),
            Ok(Message::Command(Bytes::from_static(&[
                0x02, 0x00, 0x01, b'x'
            ])))
        );
        assert_eq!(
            Message::parse(&chunk(15, &[])),
            Ok(Message::Data(Bytes::new()))
        );
    }

    #[test]
    fn splits_aggregate_messages() {
        let mut body = Vec::new();
        for (ts, data) in [(1000u32, &b"vid"[..]), (1040, &b"audio"[..])] {
            body.push(9);
            body.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
            body.extend_from_slice(&ts.to_be_bytes()[1..]);
            body.push((ts >> 24) as u8);
            body.extend_from_slice(&[0, 0, 0]);
            body.extend_from_slice(data);
            body.extend_from_slice(&(11 + data.len() as u32).to_be_bytes());
        }
        let (parts, truncated) = split_aggregate(5000, &Bytes::from(body.clone()));
        assert!(!truncated);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].timestamp, 5000);
        assert_eq!(parts[1].timestamp, 5040);
        assert_eq!(parts[1].payload.as_ref(), b"audio");

        body.truncate(body.len() - 10);
        let (parts, truncated) = split_aggregate(0, &Bytes::from(body));
        assert!(truncated);
        assert_eq!(parts.len(), 1);
    }
}
