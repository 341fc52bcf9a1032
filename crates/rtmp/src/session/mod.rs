//! RTMP sessions: [`ServerSession`] for connections a server accepts and [`ClientSession`] for
//! connections it makes (relays, load tools, tests).
//!
//! Both follow the sans-IO contract: bytes read from the socket go into `handle_input(now, ..)`,
//! bytes to write come out of `poll_transmit()`, things the application must know or decide come
//! out of `poll_event()`, and `poll_timeout()` says when `handle_timeout(now)` must be called.
//! An `Err` from any of these is fatal for the connection: log it and close the socket.

mod client;
mod server;
mod wire;

use bytes::Bytes;

pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use server::{
    ConnectRequest, PlayRequest, PublishRejection, PublishRequest, ServerConfig, ServerEvent,
    ServerSession,
};

use crate::amf0::{self, Value};
use crate::chunk::{ChunkError, ChunkMessage};
use crate::command::CommandError;
use crate::handshake::HandshakeError;
use crate::message::{split_aggregate, Message, MessageError};

/// Audio or video, the two media message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// Message type 8.
    Audio,
    /// Message type 9.
    Video,
}

/// Why a session ended. Every variant is connection-level: close the socket.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// The chunk stream is broken.
    #[error("chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    /// A control message is malformed.
    #[error("message: {0}")]
    Message(#[from] MessageError),
    /// A command the session depends on is malformed.
    #[error("command: {0}")]
    Command(#[from] CommandError),
    /// The peer broke the command protocol (wrong order, wrong argument types).
    #[error("protocol: {0}")]
    Protocol(String),
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// The peer sent more than the session will buffer while a request is pending.
    #[error("peer sent {0} bytes while a request was pending")]
    InputOverflow(usize),
    /// The application refused the connection.
    #[error("connection rejected: {0}")]
    Rejected(String),
}

/// A stream name split into the name proper and its query string: `key?token=abc` becomes
/// (`key`, `Some("token=abc")`). Surrounding slashes and whitespace are trimmed, so OBS's
/// `live/` + empty key or a key with a trailing slash still name the same stream.
pub fn split_stream_name(raw: &str) -> (String, Option<String>) {
    let (name, query) = match raw.split_once('?') {
        Some((name, query)) => (name, Some(query.to_owned())),
        None => (raw, None),
    };
    (name.trim().trim_matches('/').to_owned(), query)
}

/// The sub-messages of an aggregate message (spec 7.1.6) as the messages they carry, on the
/// aggregate's chunk and message stream, and whether the body was cut short. Only audio,
/// video and data messages are kept: a nested aggregate or a control message inside one has
/// no meaning and is dropped (which also keeps the caller from recursing).
pub(crate) fn aggregate_messages(
    chunk: &ChunkMessage,
    body: &Bytes,
) -> (Vec<(ChunkMessage, Message)>, bool) {
    let (parts, truncated) = split_aggregate(chunk.timestamp, body);
    let messages = parts
        .into_iter()
        .filter_map(|part| {
            let sub = ChunkMessage {
                chunk_stream_id: chunk.chunk_stream_id,
                timestamp: part.timestamp,
                type_id: part.type_id,
                stream_id: chunk.stream_id,
                payload: part.payload,
            };
            match Message::parse(&sub) {
                Ok(message @ (Message::Audio(_) | Message::Video(_) | Message::Data(_))) => {
                    Some((sub, message))
                }
                _ => {
                    tracing::debug!(type_id = sub.type_id, "ignored aggregate sub-message");
                    None
                }
            }
        })
        .collect();
    (messages, truncated)
}

/// What a publisher's data message means to the server.
#[derive(Debug, PartialEq)]
pub(crate) enum DataMessage {
    /// Stream metadata, re-encoded as `["onMetaData", {...}]` (no `@setDataFrame`).
    Metadata(Bytes),
    /// `@clearDataFrame`.
    ClearMetadata,
    /// Something else, named for the log.
    Other(String),
}

/// Classifies an AMF0 data message body.
pub(crate) fn parse_data_message(
    body: &Bytes,
    limits: &amf0::Limits,
) -> Result<DataMessage, amf0::Amf0Error> {
    let values = amf0::decode_all(body, limits)?;
    let name = values.first().and_then(Value::as_str).unwrap_or_default();
    match name {
        "@setDataFrame" => {
            let rest = values.get(1..).unwrap_or_default();
            if rest.first().and_then(Value::as_str) == Some("onMetaData") {
                let mut out = Vec::with_capacity(body.len());
                amf0::encode_all(rest, &mut out);
                if out.len() > crate::chunk::MAX_MESSAGE_LENGTH as usize {
                    // AMF3 references can make the re-encoded form longer than any message.
                    return Ok(DataMessage::Other(format!(
                        "onMetaData of {} bytes once re-encoded, over the message limit",
                        out.len()
                    )));
                }
                Ok(DataMessage::Metadata(Bytes::from(out)))
            } else {
                Ok(DataMessage::Other(format!(
                    "@setDataFrame {}",
                    rest.first().and_then(Value::as_str).unwrap_or("?")
                )))
            }
        }
        "onMetaData" => Ok(DataMessage::Metadata(body.clone())),
        "@clearDataFrame" => Ok(DataMessage::ClearMetadata),
        other => Ok(DataMessage::Other(other.to_owned())),
    }
}

#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod request_tests;
#[cfg(test)]
mod tests;
