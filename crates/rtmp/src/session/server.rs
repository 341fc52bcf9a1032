//! The server side of an RTMP connection.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::{debug, warn};

use super::wire::{Wire, AUDIO_CHUNK_STREAM, VIDEO_CHUNK_STREAM};
use super::{
    aggregate_messages, parse_data_message, split_stream_name, DataMessage, MediaType, SessionError,
};
use crate::amf0::{self, Value};
use crate::chunk::{ChunkMessage, DecoderLimits, TransmitQueue};
use crate::command::{self, code, Command, StatusLevel};
use crate::handshake::ServerHandshake;
use crate::message::{self, BandwidthLimit, Message, UserControl, TYPE_AUDIO, TYPE_VIDEO};

/// Settings of a server session. `Default` gives values that work with OBS, FFmpeg, librtmp
/// and GStreamer.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Our outbound chunk size, announced right after connect (nginx-rtmp's default is 4096).
    pub chunk_size: u32,
    /// Window Acknowledgement Size we ask the peer to use.
    pub window_ack_size: u32,
    /// Set Peer Bandwidth we send.
    pub peer_bandwidth: u32,
    /// Time allowed from the first byte to a complete `connect`.
    pub handshake_timeout: Duration,
    /// A connection that is not playing anything and sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Time the application has to answer a publish or play request, counted from when the
    /// session raised it (a request raised by `accept_*`/`reject_*`, which take no time, is
    /// counted from the next `handle_timeout`); after it the session refuses the request
    /// itself and reports [`ServerEvent::RequestTimedOut`]. A pending connect is bounded by
    /// `handshake_timeout` instead, which closes the connection.
    pub request_timeout: Duration,
    /// Message streams (createStream) one connection may hold.
    pub max_message_streams: usize,
    /// Bytes buffered from the peer while the application decides on a request.
    pub max_pending_input: usize,
    /// Chunk decoder limits.
    pub decoder_limits: DecoderLimits,
    /// AMF decoder limits for commands and metadata.
    pub amf_limits: amf0::Limits,
    /// E-RTMP `capsEx` bits announced in the connect `_result`, together with every FourCC
    /// as forwardable ([`crate::caps::server_announcement`]).
    pub caps_ex: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            max_message_streams: 16,
            max_pending_input: 4 << 20,
            decoder_limits: DecoderLimits::default(),
            amf_limits: amf0::Limits::default(),
            caps_ex: crate::caps::CAPS_EX_RECONNECT
                | crate::caps::CAPS_EX_MULTITRACK
                | crate::caps::CAPS_EX_MOD_EX
                | crate::caps::CAPS_EX_TIMESTAMP_NANO_OFFSET,
        }
    }
}

/// A client's `connect`, waiting for [`ServerSession::accept_connect`] or
/// [`ServerSession::reject_connect`].
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectRequest {
    /// Application name (`live` in `rtmp://host/live/key`), without any query string.
    pub app: String,
    /// Query string of the app or tcUrl, kept for authorization.
    pub query: Option<String>,
    /// The tcUrl the client gave, if any.
    pub tc_url: Option<String>,
    /// flashVer, which names the client (`FMLE/3.0 …` for encoders, `LNX 9,0,124,2` for FFmpeg).
    pub flash_version: Option<String>,
    /// objectEncoding: 0 (AMF0) or 3 (AMF3).
    pub object_encoding: f64,
    /// The whole command object, for capability fields such as `fourCcList`.
    pub object: Value,
    /// The E-RTMP capabilities read from it (`fourCcList`, the InfoMaps, `capsEx`).
    pub capabilities: crate::caps::Capabilities,
}

/// A `publish`, waiting for [`ServerSession::accept_publish`] or
/// [`ServerSession::reject_publish`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRequest {
    /// Message stream the client publishes on.
    pub stream_id: u32,
    /// Stream name (the stream key) without its query string.
    pub stream_name: String,
    /// The key's query string (`token=…`), kept for authorization.
    pub query: Option<String>,
    /// `live`, `record` or `append`.
    pub publish_type: String,
}

/// A `play`, waiting for [`ServerSession::accept_play`] or [`ServerSession::reject_play`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlayRequest {
    /// Message stream the client plays on.
    pub stream_id: u32,
    /// Stream name without its query string.
    pub stream_name: String,
    /// The name's query string.
    pub query: Option<String>,
    /// Start: -2 live or recorded, -1 live only, >= 0 recorded from that second.
    pub start: f64,
    /// Duration: -1 until the end.
    pub duration: f64,
    /// Whether to flush a previous playlist.
    pub reset: bool,
}

/// Why a publish was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishRejection {
    /// The name is already being published, or is not a valid name.
    BadName,
    /// Policy (authorization) refused it.
    Denied,
}

/// What a server session reports to the application.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerEvent {
    /// Answer with `accept_connect` or `reject_connect`; nothing else is processed until then.
    ConnectRequested(ConnectRequest),
    /// Answer with `accept_publish` or `reject_publish`.
    PublishRequested(PublishRequest),
    /// Answer with `accept_play` or `reject_play`.
    PlayRequested(PlayRequest),
    /// An audio or video message on a publishing stream.
    Media {
        /// Message stream.
        stream_id: u32,
        /// Audio or video.
        media_type: MediaType,
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// The FLV tag body (tag header byte(s) included).
        payload: Bytes,
    },
    /// Metadata on a publishing stream, as `["onMetaData", {...}]` in AMF0.
    Metadata {
        /// Message stream.
        stream_id: u32,
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// AMF0 body.
        payload: Bytes,
    },
    /// The client stopped publishing on a stream (FCUnpublish, closeStream, deleteStream).
    PublishStopped {
        /// Message stream.
        stream_id: u32,
    },
    /// The client stopped playing a stream (closeStream, deleteStream, play with no name).
    PlayStopped {
        /// Message stream.
        stream_id: u32,
    },
    /// The client paused or resumed playback.
    PlayPaused {
        /// Message stream.
        stream_id: u32,
        /// True when paused.
        paused: bool,
    },
    /// A publish or play request was not answered within `request_timeout`: the session
    /// refused it (`NetStream.Publish.Denied` / `NetStream.Play.Failed`); a later accept or
    /// reject of it does nothing.
    RequestTimedOut {
        /// Message stream of the request.
        stream_id: u32,
    },
}

/// Where a message stream stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum StreamState {
    Created,
    PublishPending,
    Publishing,
    PlayPending,
    Playing {
        paused: bool,
        audio: bool,
        video: bool,
    },
}

/// Where the connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    AwaitingConnect,
    ConnectPending { transaction_id_bits: u64 },
    Connected,
    Closing,
}

/// One accepted RTMP connection, from the handshake to the close.
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    handshake: ServerHandshake,
    phase: Phase,
    wire: Wire,
    input: BytesMut,
    events: VecDeque<ServerEvent>,
    /// A publish or play the application has not answered yet (its message stream).
    pending_stream: Option<u32>,
    /// When the pending publish or play is refused if still unanswered; `None` until the
    /// session learns the time the request was raised at (it is armed at the next
    /// [`ServerSession::handle_timeout`], which [`ServerSession::poll_timeout`] asks for at once).
    request_deadline: Option<Instant>,
    /// The time of the input or timeout call being processed, if any.
    clock: Option<Instant>,
    streams: BTreeMap<u32, StreamState>,
    next_stream_id: u32,
    object_encoding: f64,
    deadline: Instant,
    last_input: Instant,
}

impl ServerSession {
    /// A session for a connection accepted at `now`. `random` fills S1 (the caller supplies
    /// randomness so the crate stays deterministic).
    pub fn new(config: ServerConfig, now: Instant, random: [u8; 1528]) -> Self {
        let wire = Wire::new(config.decoder_limits.clone());
        Self {
            handshake: ServerHandshake::new(random, 0),
            phase: Phase::Handshake,
            wire,
            input: BytesMut::new(),
            events: VecDeque::new(),
            pending_stream: None,
            request_deadline: None,
            clock: None,
            streams: BTreeMap::new(),
            next_stream_id: 1,
            object_encoding: 0.0,
            deadline: now + config.handshake_timeout,
            last_input: now,
            config,
        }
    }

    /// Feeds bytes read from the socket.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        if !data.is_empty() {
            self.last_input = now;
        }
        self.input.extend_from_slice(data);
        self.clock = Some(now);
        let result = self.after_input();
        self.clock = None;
        result
    }

    /// Like [`Self::handle_input`], but takes the bytes out of `data` (leaving it empty, with
    /// capacity to read into again) and copies nothing when no partial chunk is buffered.
    pub fn handle_input_buf(
        &mut self,
        now: Instant,
        data: &mut BytesMut,
    ) -> Result<(), SessionError> {
        if data.is_empty() {
            return Ok(());
        }
        self.last_input = now;
        if self.input.is_empty() {
            std::mem::swap(&mut self.input, data);
        } else {
            self.input.extend_from_slice(data);
            data.clear();
        }
        self.clock = Some(now);
        let result = self.after_input();
        self.clock = None;
        result
    }

    fn after_input(&mut self) -> Result<(), SessionError> {
        self.process()?;
        // While a request waits for the application, input piles up; bound it. Otherwise the
        // buffer holds at most one partial chunk, which the chunk decoder's limits bound.
        if self.is_waiting() && self.input.len() > self.config.max_pending_input {
            return Err(SessionError::InputOverflow(self.input.len()));
        }
        Ok(())
    }

    /// True while a connect, publish or play waits for the application's answer: the session
    /// processes nothing else meanwhile and only buffers input (see [`Self::buffered_input`]).
    pub fn is_waiting(&self) -> bool {
        self.pending_stream.is_some() || matches!(self.phase, Phase::ConnectPending { .. })
    }

    /// Bytes received and not processed yet. While [`Self::is_waiting`], a driver should stop
    /// reading well before `max_pending_input` (past it the session fails with
    /// [`SessionError::InputOverflow`]) and let TCP hold the peer back.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Checks deadlines; call it at (or after) [`Self::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if let Some(stream_id) = self.pending_stream {
            match self.request_deadline {
                None => self.request_deadline = Some(now + self.config.request_timeout),
                Some(at) if now >= at => {
                    self.expire_request(stream_id);
                    self.clock = Some(now);
                    let result = self.process();
                    self.clock = None;
                    return result;
                }
                Some(_) => {}
            }
        }
        match self.phase {
            Phase::Handshake if now >= self.deadline => Err(SessionError::Timeout("handshake")),
            Phase::AwaitingConnect | Phase::ConnectPending { .. } if now >= self.deadline => {
                Err(SessionError::Timeout("connect"))
            }
            Phase::Connected if self.idle_applies() && now >= self.idle_deadline() => {
                Err(SessionError::Timeout("no data from peer"))
            }
            _ => Ok(()),
        }
    }

    /// When [`Self::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Handshake | Phase::AwaitingConnect | Phase::ConnectPending { .. } => {
                Some(self.deadline)
            }
            Phase::Connected if self.idle_applies() => Some(self.idle_deadline()),
            _ => None,
        };
        // An unarmed request deadline asks for a call at once (a time already past).
        let request = self
            .pending_stream
            .map(|_| self.request_deadline.unwrap_or(self.last_input));
        match (request, phase) {
            (Some(request), Some(at)) => Some(at.min(request)),
            (request, phase) => request.or(phase),
        }
    }

    /// Bytes to write to the socket.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.wire.take_output()
    }

    /// The output queue: write its [`TransmitQueue::io_slices`] with vectored IO and
    /// [`TransmitQueue::advance`] it, instead of copying everything out with `poll_transmit`.
    pub fn transmit_queue(&mut self) -> &mut TransmitQueue {
        self.wire.queue()
    }

    /// Bytes queued for the socket and not yet taken by [`Self::poll_transmit`].
    pub fn pending_output(&self) -> usize {
        self.wire.pending_output()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// True once the session wants the connection closed (after its last bytes are written),
    /// e.g. after a rejected connect.
    pub fn is_closing(&self) -> bool {
        self.phase == Phase::Closing
    }

    /// Bytes received so far, handshake included.
    pub fn bytes_received(&self) -> u64 {
        self.wire.received()
    }

    /// Starts the received-bytes counter at `bytes` (tests of the 2^32 acknowledgement wrap).
    #[cfg(test)]
    pub(crate) fn start_byte_count_at(&mut self, bytes: u64) {
        self.wire.start_byte_count_at(bytes);
    }

    /// The last byte count the peer acknowledged (wrapping at 2^32).
    pub fn peer_acknowledged(&self) -> u32 {
        self.wire.peer_acknowledged()
    }

    /// Accepts the pending connect: sends Window Ack Size, Set Peer Bandwidth, Set Chunk Size
    /// and the `_result`, in the order nginx-rtmp uses and clients expect.
    pub fn accept_connect(&mut self) -> Result<(), SessionError> {
        let Phase::ConnectPending {
            transaction_id_bits,
        } = self.phase
        else {
            return Ok(());
        };
        let transaction_id = f64::from_bits(transaction_id_bits);
        self.wire
            .send(&message::window_ack_size(self.config.window_ack_size));
        self.wire.send(&message::set_peer_bandwidth(
            self.config.peer_bandwidth,
            BandwidthLimit::Dynamic,
        ));
        self.wire.set_out_chunk_size(self.config.chunk_size);
        let mut properties = vec![
            ("fmsVer".to_owned(), Value::from("FMS/3,0,1,123")),
            ("capabilities".to_owned(), Value::from(31.0)),
            ("mode".to_owned(), Value::from(1.0)),
        ];
        properties.extend(crate::caps::server_announcement(self.config.caps_ex));
        let properties = Value::Object(properties);
        let info = Value::object([
            ("level", Value::from(StatusLevel::Status.as_str())),
            ("code", Value::from(code::CONNECT_SUCCESS)),
            ("description", Value::from("Connection succeeded.")),
            ("objectEncoding", Value::from(self.object_encoding)),
        ]);
        self.wire
            .send_command(0, &command::result(transaction_id, properties, vec![info]));
        self.phase = Phase::Connected;
        self.process()
    }

    /// Refuses the pending connect with `NetConnection.Connect.Rejected`; the session then
    /// closes ([`Self::is_closing`]).
    pub fn reject_connect(&mut self, description: &str) {
        if let Phase::ConnectPending {
            transaction_id_bits,
        } = self.phase
        {
            self.wire.send_command(
                0,
                &command::error(
                    f64::from_bits(transaction_id_bits),
                    code::CONNECT_REJECTED,
                    description,
                ),
            );
        }
        self.phase = Phase::Closing;
    }

    /// Accepts a pending publish: StreamBegin and `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), SessionError> {
        if self.take_pending(stream_id, &StreamState::PublishPending) {
            self.streams.insert(stream_id, StreamState::Publishing);
            self.wire
                .send(&message::user_control(UserControl::StreamBegin(stream_id)));
            self.send_status(
                stream_id,
                StatusLevel::Status,
                code::PUBLISH_START,
                "Start publishing",
            );
        }
        self.process()
    }

    /// Refuses a pending publish with an error-level `onStatus`; the connection stays open so
    /// the client can close it itself.
    pub fn reject_publish(
        &mut self,
        stream_id: u32,
        why: PublishRejection,
        description: &str,
    ) -> Result<(), SessionError> {
        if self.take_pending(stream_id, &StreamState::PublishPending) {
            self.streams.insert(stream_id, StreamState::Created);
            let code = match why {
                PublishRejection::BadName => code::PUBLISH_BAD_NAME,
                PublishRejection::Denied => code::PUBLISH_DENIED,
            };
            self.send_status(stream_id, StatusLevel::Error, code, description);
        }
        self.process()
    }

    /// Accepts a pending play: StreamBegin, `Play.Reset`, `Play.Start` and
    /// `|RtmpSampleAccess`. Then send metadata and media with [`Self::send_metadata`]
    /// and [`Self::send_media`].
    pub fn accept_play(&mut self, stream_id: u32) -> Result<(), SessionError> {
        if self.take_pending(stream_id, &StreamState::PlayPending) {
            self.streams.insert(
                stream_id,
                StreamState::Playing {
                    paused: false,
                    audio: true,
                    video: true,
                },
            );
            self.wire
                .send(&message::user_control(UserControl::StreamBegin(stream_id)));
            self.send_status(
                stream_id,
                StatusLevel::Status,
                code::PLAY_RESET,
                "Playing and resetting stream.",
            );
            self.send_status(
                stream_id,
                StatusLevel::Status,
                code::PLAY_START,
                "Started playing stream.",
            );
            let mut access = Vec::with_capacity(32);
            amf0::encode_all(
                &[
                    Value::from("|RtmpSampleAccess"),
                    Value::from(true),
                    Value::from(true),
                ],
                &mut access,
            );
            // No `onStatus NetStream.Data.Start` data message (FMS sends one): libavformat
            // turns any data message it does not know into a phantom "data" stream, which
            // breaks `ffmpeg -i rtmp://… -map 0`. nginx-rtmp does not send it either, and no
            // player needs it. FFmpeg knows and skips `|RtmpSampleAccess`.
            self.wire.send_data(stream_id, 0, Bytes::from(access));
        }
        self.process()
    }

    /// Refuses a pending play with `NetStream.Play.StreamNotFound` (error level).
    pub fn reject_play(&mut self, stream_id: u32, description: &str) -> Result<(), SessionError> {
        if self.take_pending(stream_id, &StreamState::PlayPending) {
            self.streams.insert(stream_id, StreamState::Created);
            self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PLAY_STREAM_NOT_FOUND,
                description,
            );
        }
        self.process()
    }

    /// Refuses a pending play by policy with `NetStream.Play.Failed` (error level).
    pub fn deny_play(&mut self, stream_id: u32, description: &str) -> Result<(), SessionError> {
        if self.take_pending(stream_id, &StreamState::PlayPending) {
            self.streams.insert(stream_id, StreamState::Created);
            self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PLAY_FAILED,
                description,
            );
        }
        self.process()
    }

    /// Sends metadata (`["onMetaData", {...}]`) to a playing stream.
    pub fn send_metadata(&mut self, stream_id: u32, timestamp: u32, payload: Bytes) {
        if matches!(
            self.streams.get(&stream_id),
            Some(StreamState::Playing { .. })
        ) {
            self.wire.send_data(stream_id, timestamp, payload);
        }
    }

    /// Sends an audio or video message to a playing stream. Returns false (and sends nothing)
    /// when the stream is not playing, is paused, or the client turned that media type off.
    pub fn send_media(
        &mut self,
        stream_id: u32,
        media_type: MediaType,
        timestamp: u32,
        payload: Bytes,
    ) -> bool {
        let Some(StreamState::Playing {
            paused,
            audio,
            video,
        }) = self.streams.get(&stream_id)
        else {
            return false;
        };
        let wanted = match media_type {
            MediaType::Audio => *audio,
            MediaType::Video => *video,
        };
        if *paused || !wanted {
            return false;
        }
        let (chunk_stream_id, type_id) = match media_type {
            MediaType::Audio => (AUDIO_CHUNK_STREAM, TYPE_AUDIO),
            MediaType::Video => (VIDEO_CHUNK_STREAM, TYPE_VIDEO),
        };
        self.wire.send_owned(ChunkMessage {
            chunk_stream_id,
            timestamp,
            type_id,
            stream_id,
            payload,
        });
        true
    }

    /// Tells a player that the publisher left (`NetStream.Play.UnpublishNotify`). The stream
    /// stays in playing state; [`Self::notify_publish`] tells it the publisher is back.
    pub fn notify_unpublish(&mut self, stream_id: u32) {
        if matches!(
            self.streams.get(&stream_id),
            Some(StreamState::Playing { .. })
        ) {
            self.wire
                .send(&message::user_control(UserControl::StreamEof(stream_id)));
            self.send_status(
                stream_id,
                StatusLevel::Status,
                code::PLAY_UNPUBLISH_NOTIFY,
                "The stream's publisher stopped.",
            );
        }
    }

    /// Tells a player that a publisher started (`NetStream.Play.PublishNotify`).
    pub fn notify_publish(&mut self, stream_id: u32) {
        if matches!(
            self.streams.get(&stream_id),
            Some(StreamState::Playing { .. })
        ) {
            self.wire
                .send(&message::user_control(UserControl::StreamBegin(stream_id)));
            self.send_status(
                stream_id,
                StatusLevel::Status,
                code::PLAY_PUBLISH_NOTIFY,
                "The stream's publisher started.",
            );
        }
    }

    /// The idle timeout closes a connection that neither plays nor waits for an answer (while
    /// a request waits, the request deadline applies and the driver may stop reading).
    fn idle_applies(&self) -> bool {
        !self.is_playing() && self.pending_stream.is_none()
    }

    fn is_playing(&self) -> bool {
        self.streams
            .values()
            .any(|s| matches!(s, StreamState::Playing { .. } | StreamState::PlayPending))
    }

    fn idle_deadline(&self) -> Instant {
        self.last_input + self.config.idle_timeout
    }

    /// Refuses an unanswered publish or play by itself and tells the application.
    fn expire_request(&mut self, stream_id: u32) {
        self.pending_stream = None;
        self.request_deadline = None;
        match self.streams.get(&stream_id) {
            Some(StreamState::PublishPending) => self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PUBLISH_DENIED,
                "the server did not decide on the publish in time",
            ),
            Some(StreamState::PlayPending) => self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PLAY_FAILED,
                "the server did not decide on the play in time",
            ),
            _ => return,
        }
        self.streams.insert(stream_id, StreamState::Created);
        self.events
            .push_back(ServerEvent::RequestTimedOut { stream_id });
    }

    fn take_pending(&mut self, stream_id: u32, expected: &StreamState) -> bool {
        if self.pending_stream == Some(stream_id) && self.streams.get(&stream_id) == Some(expected)
        {
            self.pending_stream = None;
            self.request_deadline = None;
            true
        } else {
            false
        }
    }

    /// E-RTMP v2 Reconnect Request: `onStatus NetConnection.Connect.ReconnectRequest` on the
    /// NetConnection, with `tcUrl` when the client should go elsewhere (absolute, `//host/app`
    /// or `/app`). Send it only to clients whose connect set `capsEx` Reconnect
    /// ([`crate::caps::Capabilities::reconnect`]); keep serving them until they leave.
    pub fn request_reconnect(&mut self, tc_url: Option<&str>, description: &str) {
        if self.phase != Phase::Connected {
            return;
        }
        let mut info = command::status_object(
            StatusLevel::Status,
            code::CONNECT_RECONNECT_REQUEST,
            description,
        );
        if let (Some(url), Value::Object(fields)) = (tc_url, &mut info) {
            fields.push(("tcUrl".to_owned(), Value::from(url)));
        }
        let status = command::Command::new("onStatus", 0.0, Value::Null, vec![info]);
        self.wire.send_command(0, &status);
    }

    fn send_status(&mut self, stream_id: u32, level: StatusLevel, code: &str, description: &str) {
        self.wire
            .send_command(stream_id, &command::on_status(level, code, description));
    }

    /// Works through buffered input until it runs out or a request needs an answer.
    fn process(&mut self) -> Result<(), SessionError> {
        loop {
            match self.phase {
                Phase::Closing | Phase::ConnectPending { .. } => return Ok(()),
                _ if self.pending_stream.is_some() => return Ok(()),
                Phase::Handshake => {
                    let before = self.input.len();
                    let done = self.handshake.handle_input(&mut self.input)?;
                    self.wire.count_received(before - self.input.len());
                    if let Some(bytes) = self.handshake.poll_transmit() {
                        self.wire.send_raw(&bytes);
                    }
                    if !done {
                        return Ok(());
                    }
                    self.phase = Phase::AwaitingConnect;
                }
                Phase::AwaitingConnect | Phase::Connected => {
                    let Some((chunk, message)) = self.wire.next_message(&mut self.input)? else {
                        return Ok(());
                    };
                    self.handle_message(chunk, message)?;
                }
            }
        }
    }

    fn handle_message(
        &mut self,
        chunk: ChunkMessage,
        message: Message,
    ) -> Result<(), SessionError> {
        match message {
            Message::Command(body) => {
                let command = Command::decode(&body, &self.config.amf_limits)?;
                self.handle_command(chunk.stream_id, command)
            }
            Message::Audio(payload) => {
                self.media(chunk.stream_id, MediaType::Audio, chunk.timestamp, payload);
                Ok(())
            }
            Message::Video(payload) => {
                self.media(chunk.stream_id, MediaType::Video, chunk.timestamp, payload);
                Ok(())
            }
            Message::Data(body) => {
                self.data(chunk.stream_id, chunk.timestamp, &body);
                Ok(())
            }
            Message::Aggregate(body) => {
                let (parts, truncated) = aggregate_messages(&chunk, &body);
                if truncated {
                    warn!(
                        stream_id = chunk.stream_id,
                        "aggregate message truncated; kept {} messages",
                        parts.len()
                    );
                }
                for (sub, message) in parts {
                    self.handle_message(sub, message)?;
                }
                Ok(())
            }
            Message::UserControl(event) => {
                debug!(?event, "user control from client");
                Ok(())
            }
            Message::Other(type_id) => {
                debug!("ignored message of type {type_id}");
                Ok(())
            }
            // Control messages are consumed by the wire.
            _ => Ok(()),
        }
    }

    fn media(&mut self, stream_id: u32, media_type: MediaType, timestamp: u32, payload: Bytes) {
        if self.streams.get(&stream_id) == Some(&StreamState::Publishing) {
            self.events.push_back(ServerEvent::Media {
                stream_id,
                media_type,
                timestamp,
                payload,
            });
        } else {
            debug!(
                stream_id,
                "dropped media on a stream that is not publishing"
            );
        }
    }

    fn data(&mut self, stream_id: u32, timestamp: u32, body: &Bytes) {
        if self.streams.get(&stream_id) != Some(&StreamState::Publishing) {
            debug!(
                stream_id,
                "dropped data message on a stream that is not publishing"
            );
            return;
        }
        match parse_data_message(body, &self.config.amf_limits) {
            Ok(DataMessage::Metadata(payload)) => self.events.push_back(ServerEvent::Metadata {
                stream_id,
                timestamp,
                payload,
            }),
            Ok(DataMessage::ClearMetadata) => debug!(stream_id, "ignored @clearDataFrame"),
            Ok(DataMessage::Other(name)) => debug!(stream_id, "ignored data message {name:?}"),
            Err(err) => warn!(
                stream_id,
                len = body.len(),
                "ignored a data message that is not valid amf0: {err}"
            ),
        }
    }

    fn handle_command(&mut self, stream_id: u32, command: Command) -> Result<(), SessionError> {
        let tid = command.transaction_id;
        if self.phase == Phase::AwaitingConnect && command.name != "connect" {
            return Err(SessionError::Protocol(format!(
                "{:?} before connect",
                command.name
            )));
        }
        match command.name.as_str() {
            "connect" => self.on_connect(command),
            "createStream" => {
                if self.streams.len() >= self.config.max_message_streams {
                    self.wire.send_command(
                        0,
                        &command::error(tid, code::CALL_FAILED, "too many streams"),
                    );
                    return Ok(());
                }
                // Ids a client chose itself (publish without createStream) stay taken.
                let mut id = self.next_stream_id;
                while self.streams.contains_key(&id) {
                    id = id.wrapping_add(1).max(1);
                }
                self.next_stream_id = id.wrapping_add(1).max(1);
                self.streams.insert(id, StreamState::Created);
                self.wire.send_command(
                    0,
                    &command::result(tid, Value::Null, vec![Value::from(f64::from(id))]),
                );
                Ok(())
            }
            "publish" => self.on_publish(stream_id, command),
            "play" => self.on_play(stream_id, command),
            "pause" => {
                let paused = command.bool_argument(0).unwrap_or(true);
                if let Some(StreamState::Playing { paused: p, .. }) =
                    self.streams.get_mut(&stream_id)
                {
                    *p = paused;
                    let (code, text) = if paused {
                        (code::PAUSE_NOTIFY, "Paused stream.")
                    } else {
                        (code::UNPAUSE_NOTIFY, "Unpaused stream.")
                    };
                    self.send_status(stream_id, StatusLevel::Status, code, text);
                    self.events
                        .push_back(ServerEvent::PlayPaused { stream_id, paused });
                }
                Ok(())
            }
            "receiveAudio" | "receiveVideo" => {
                let on = command.bool_argument(0).unwrap_or(true);
                if let Some(StreamState::Playing { audio, video, .. }) =
                    self.streams.get_mut(&stream_id)
                {
                    if command.name == "receiveAudio" {
                        *audio = on;
                    } else {
                        *video = on;
                    }
                }
                Ok(())
            }
            "FCUnpublish" => {
                self.reply_result(tid);
                let key = command.string_argument(0).map(|k| split_stream_name(k).0);
                let publishing: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, s)| **s == StreamState::Publishing)
                    .map(|(id, _)| *id)
                    .collect();
                // FCUnpublish names the key, not the stream id; with one publishing stream
                // (the usual case) that is the one.
                if publishing.len() == 1 || key.is_none() {
                    for id in publishing {
                        self.stop_stream(id, false);
                    }
                }
                Ok(())
            }
            "closeStream" => {
                self.stop_stream(stream_id, false);
                Ok(())
            }
            "deleteStream" => {
                let id = command
                    .number_argument(0)
                    .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
                    .map_or(stream_id, |n| n as u32);
                self.stop_stream(id, true);
                Ok(())
            }
            "releaseStream" | "FCPublish" | "FCSubscribe" | "_checkbw" | "getStreamLength" => {
                if command.name == "getStreamLength" {
                    self.wire.send_command(
                        stream_id,
                        &command::result(tid, Value::Null, vec![Value::from(0.0)]),
                    );
                } else {
                    self.reply_result(tid);
                }
                if command.name == "FCPublish" {
                    let key = command.string_argument(0).unwrap_or_default().to_owned();
                    let on_fc = Command::new(
                        "onFCPublish",
                        0.0,
                        Value::Null,
                        vec![command::status_object(
                            StatusLevel::Status,
                            code::PUBLISH_START,
                            &key,
                        )],
                    );
                    self.wire.send_command(stream_id, &on_fc);
                }
                Ok(())
            }
            "_result" | "_error" | "onStatus" | "onBWDone" | "_onbwcheck" | "_onbwdone" => Ok(()),
            other => {
                if tid != 0.0 {
                    self.wire.send_command(
                        stream_id,
                        &command::error(
                            tid,
                            code::CALL_FAILED,
                            &format!("unknown command {other:?}"),
                        ),
                    );
                }
                debug!(command = other, "unknown command answered with _error");
                Ok(())
            }
        }
    }

    fn reply_result(&mut self, transaction_id: f64) {
        if transaction_id != 0.0 {
            self.wire.send_command(
                0,
                &command::result(transaction_id, Value::Null, vec![Value::Undefined]),
            );
        }
    }

    fn on_connect(&mut self, command: Command) -> Result<(), SessionError> {
        if self.phase != Phase::AwaitingConnect {
            return Err(SessionError::Protocol("second connect".into()));
        }
        let object = command.object;
        if object.properties().is_none() {
            return Err(SessionError::Protocol(
                "connect without a command object".into(),
            ));
        }
        let text = |key: &str| object.property(key).and_then(Value::as_str);
        let raw_app = match object.property("app") {
            None => "",
            Some(value) => value
                .as_str()
                .ok_or_else(|| SessionError::Protocol("connect app is not a string".into()))?,
        };
        let (app, app_query) = split_stream_name(raw_app);
        let tc_url = text("tcUrl").map(str::to_owned);
        let query = app_query.or_else(|| {
            tc_url
                .as_deref()
                .and_then(|url| url.split_once('?'))
                .map(|(_, q)| q.to_owned())
        });
        self.object_encoding = object
            .property("objectEncoding")
            .and_then(Value::as_number)
            .unwrap_or(0.0);
        let request = ConnectRequest {
            app,
            query,
            tc_url,
            flash_version: text("flashVer").map(str::to_owned),
            object_encoding: self.object_encoding,
            capabilities: crate::caps::Capabilities::from_connect(&object),
            object: object.clone(),
        };
        self.phase = Phase::ConnectPending {
            transaction_id_bits: command.transaction_id.to_bits(),
        };
        self.events
            .push_back(ServerEvent::ConnectRequested(request));
        Ok(())
    }

    /// Makes sure a stream id exists for publish/play; hardware encoders sometimes skip
    /// createStream and publish on stream 1.
    fn ensure_stream(&mut self, stream_id: u32) -> Result<(), SessionError> {
        if stream_id == 0 {
            return Err(SessionError::Protocol(
                "publish or play on message stream 0".into(),
            ));
        }
        if !self.streams.contains_key(&stream_id) {
            if self.streams.len() >= self.config.max_message_streams {
                return Err(SessionError::Protocol("too many message streams".into()));
            }
            self.streams.insert(stream_id, StreamState::Created);
            self.next_stream_id = self.next_stream_id.max(stream_id.saturating_add(1));
        }
        Ok(())
    }

    fn on_publish(&mut self, stream_id: u32, command: Command) -> Result<(), SessionError> {
        let raw = command
            .string_argument(0)
            .ok_or_else(|| SessionError::Protocol("publish without a stream name string".into()))?;
        let (stream_name, query) = split_stream_name(raw);
        let publish_type = command.string_argument(1).unwrap_or("live").to_owned();
        self.ensure_stream(stream_id)?;
        if self.streams.get(&stream_id) != Some(&StreamState::Created) {
            self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PUBLISH_BAD_NAME,
                "stream is already publishing or playing",
            );
            return Ok(());
        }
        if stream_name.is_empty() {
            self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PUBLISH_BAD_NAME,
                "empty stream key",
            );
            return Ok(());
        }
        self.streams.insert(stream_id, StreamState::PublishPending);
        self.pending_stream = Some(stream_id);
        self.request_deadline = self.clock.map(|now| now + self.config.request_timeout);
        self.events
            .push_back(ServerEvent::PublishRequested(PublishRequest {
                stream_id,
                stream_name,
                query,
                publish_type,
            }));
        Ok(())
    }

    fn on_play(&mut self, stream_id: u32, command: Command) -> Result<(), SessionError> {
        let raw = command
            .string_argument(0)
            .ok_or_else(|| SessionError::Protocol("play without a stream name string".into()))?;
        let (stream_name, query) = split_stream_name(raw);
        self.ensure_stream(stream_id)?;
        if matches!(
            self.streams.get(&stream_id),
            Some(StreamState::Playing { .. })
        ) {
            // play on a stream that already plays switches streams.
            self.stop_stream(stream_id, false);
        }
        if self.streams.get(&stream_id) != Some(&StreamState::Created) {
            return Err(SessionError::Protocol(
                "play on a stream that is publishing".into(),
            ));
        }
        if stream_name.is_empty() {
            self.send_status(
                stream_id,
                StatusLevel::Error,
                code::PLAY_STREAM_NOT_FOUND,
                "empty stream name",
            );
            return Ok(());
        }
        self.streams.insert(stream_id, StreamState::PlayPending);
        self.pending_stream = Some(stream_id);
        self.request_deadline = self.clock.map(|now| now + self.config.request_timeout);
        self.events
            .push_back(ServerEvent::PlayRequested(PlayRequest {
                stream_id,
                stream_name,
                query,
                start: command.number_argument(1).unwrap_or(-2.0),
                duration: command.number_argument(2).unwrap_or(-1.0),
                reset: command.bool_argument(3).unwrap_or(true),
            }));
        Ok(())
    }

    /// Ends publishing or playing on a stream; `delete` also forgets the stream id.
    fn stop_stream(&mut self, stream_id: u32, delete: bool) {
        match self.streams.get(&stream_id) {
            Some(StreamState::Publishing) => {
                self.events
                    .push_back(ServerEvent::PublishStopped { stream_id });
                self.send_status(
                    stream_id,
                    StatusLevel::Status,
                    code::UNPUBLISH_SUCCESS,
                    "Stopped publishing.",
                );
            }
            Some(StreamState::Playing { .. }) => {
                self.events
                    .push_back(ServerEvent::PlayStopped { stream_id });
            }
            _ => {}
        }
        if delete {
            self.streams.remove(&stream_id);
        } else if self.streams.contains_key(&stream_id) {
            self.streams.insert(stream_id, StreamState::Created);
        }
    }
}
