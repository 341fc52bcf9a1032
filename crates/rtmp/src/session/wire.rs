//! The part of a session that server and client share: chunk codec state in both directions,
//! protocol control messages, acknowledgements and the output buffer.

use bytes::{Bytes, BytesMut};

use super::SessionError;
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkMessage, DecoderLimits, TransmitQueue};
use crate::command::Command;
use crate::message::{self, Message, UserControl, TYPE_COMMAND_AMF0, TYPE_DATA_AMF0};

/// Chunk stream used for commands.
pub(crate) const COMMAND_CHUNK_STREAM: u32 = 3;
/// Chunk stream used for data messages (metadata, sample access).
pub(crate) const DATA_CHUNK_STREAM: u32 = 5;
/// Chunk stream used for audio.
pub(crate) const AUDIO_CHUNK_STREAM: u32 = 6;
/// Chunk stream used for video.
pub(crate) const VIDEO_CHUNK_STREAM: u32 = 7;

/// Chunk codec state, acknowledgement bookkeeping and pending output of one connection.
#[derive(Debug)]
pub(crate) struct Wire {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    out: TransmitQueue,
    /// Bytes received since the connection started (handshake included).
    received: u64,
    /// Value of `received` when we last sent an Acknowledgement.
    acknowledged: u64,
    /// Acknowledgement window the peer asked for; `None` until it sends one.
    ack_window: Option<u32>,
    /// Last sequence number the peer acknowledged.
    peer_acknowledged: u32,
}

impl Wire {
    pub(crate) fn new(limits: DecoderLimits) -> Self {
        Self {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            out: TransmitQueue::new(),
            received: 0,
            acknowledged: 0,
            ack_window: None,
            peer_acknowledged: 0,
        }
    }

    /// Records bytes taken off the socket (handshake bytes included).
    pub(crate) fn count_received(&mut self, bytes: usize) {
        self.received = self.received.saturating_add(bytes as u64);
        if let Some(window) = self.ack_window {
            if window > 0 && self.received - self.acknowledged >= u64::from(window) {
                self.acknowledged = self.received;
                // The sequence number wraps at 2^32 (SRS #598/#730).
                self.send(&message::acknowledgement(self.received as u32));
            }
        }
    }

    /// Starts the byte counter at `bytes`, as if that many had been received and acknowledged
    /// (tests of the 2^32 wrap).
    #[cfg(test)]
    pub(crate) fn start_byte_count_at(&mut self, bytes: u64) {
        self.received = bytes;
        self.acknowledged = bytes;
    }

    /// Total bytes received.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// The last sequence number the peer acknowledged.
    pub(crate) fn peer_acknowledged(&self) -> u32 {
        self.peer_acknowledged
    }

    /// Queues raw bytes (handshake) for sending.
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.out.push_copy(bytes);
    }

    /// Queues one message.
    pub(crate) fn send(&mut self, message: &ChunkMessage) {
        self.encoder.encode_to_queue(message, &mut self.out);
    }

    /// Queues a message whose payload moves into the queue (media, on the hot path).
    pub(crate) fn send_owned(&mut self, message: ChunkMessage) {
        self.encoder.encode_owned_to_queue(message, &mut self.out);
    }

    /// Queues a command on the command chunk stream.
    pub(crate) fn send_command(&mut self, stream_id: u32, command: &Command) {
        self.send(&ChunkMessage {
            chunk_stream_id: COMMAND_CHUNK_STREAM,
            timestamp: 0,
            type_id: TYPE_COMMAND_AMF0,
            stream_id,
            payload: command.encode(),
        });
    }

    /// Queues an AMF0 data message.
    pub(crate) fn send_data(&mut self, stream_id: u32, timestamp: u32, payload: Bytes) {
        self.send(&ChunkMessage {
            chunk_stream_id: DATA_CHUNK_STREAM,
            timestamp,
            type_id: TYPE_DATA_AMF0,
            stream_id,
            payload,
        });
    }

    /// Announces and switches to a new outbound chunk size.
    pub(crate) fn set_out_chunk_size(&mut self, size: u32) {
        self.send(&message::set_chunk_size(size));
        self.encoder.set_chunk_size(size);
    }

    /// Takes everything queued for sending.
    pub(crate) fn take_output(&mut self) -> Option<Bytes> {
        self.out.take_contiguous()
    }

    /// The output queue, for vectored writers.
    pub(crate) fn queue(&mut self) -> &mut TransmitQueue {
        &mut self.out
    }

    /// Bytes queued and not yet taken.
    pub(crate) fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Decodes the next message and handles protocol control messages itself. Returns the
    /// messages the session must act on (user control, media, commands, data, aggregates).
    pub(crate) fn next_message(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<(ChunkMessage, Message)>, SessionError> {
        loop {
            let before = input.len();
            let decoded = self.decoder.decode(input);
            self.count_received(before - input.len());
            let Some(chunk) = decoded? else {
                return Ok(None);
            };
            let message = Message::parse(&chunk)?;
            match message {
                Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
                Message::Abort(chunk_stream_id) => self.decoder.abort(chunk_stream_id),
                Message::Acknowledgement(sequence) => self.peer_acknowledged = sequence,
                Message::WindowAckSize(size) => self.ack_window = Some(size),
                Message::SetPeerBandwidth { .. } => {}
                Message::UserControl(UserControl::PingRequest(time)) => {
                    self.send(&message::user_control(UserControl::PingResponse(time)));
                }
                _ => return Ok(Some((chunk, message))),
            }
        }
    }
}
