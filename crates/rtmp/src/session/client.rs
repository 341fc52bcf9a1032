//! The client side of an RTMP connection: connect, then publish or play one stream.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tracing::debug;

use super::wire::{Wire, AUDIO_CHUNK_STREAM, VIDEO_CHUNK_STREAM};
use super::{aggregate_messages, MediaType, SessionError};
use crate::amf0::{self, Value};
use crate::chunk::{ChunkMessage, DecoderLimits, TransmitQueue};
use crate::command::{code, Command, Status, StatusLevel};
use crate::handshake::ClientHandshake;
use crate::message::{self, Message, UserControl, TYPE_AUDIO, TYPE_VIDEO};

/// Settings of a client session.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Application name (`live` in `rtmp://host/live/key`).
    pub app: String,
    /// The tcUrl sent in connect (`rtmp://host:port/app`).
    pub tc_url: String,
    /// flashVer sent in connect.
    pub flash_version: String,
    /// Outbound chunk size, announced before connect.
    pub chunk_size: u32,
    /// Window Acknowledgement Size we send after connect.
    pub window_ack_size: u32,
    /// Buffer length (ms) announced for played streams.
    pub buffer_length_ms: u32,
    /// Send a complex (digest) C1, as FFmpeg does; false sends a simple one, as OBS does.
    pub digest_handshake: bool,
    /// Chunk decoder limits.
    pub decoder_limits: DecoderLimits,
    /// AMF limits.
    pub amf_limits: amf0::Limits,
    /// Time allowed from the session's start to the server's answer to `connect` (the
    /// handshake included).
    pub connect_timeout: Duration,
    /// Time allowed from sending a publish or play request (createStream included) to the
    /// server's answer: `NetStream.Publish.Start`, `NetStream.Play.Start` or an error status.
    pub request_timeout: Duration,
    /// Once connected and not publishing (playing, or waiting for a request or its answer),
    /// the session fails when the server sends no byte for this long. A publisher is exempt:
    /// servers may stay silent towards it. weir sends no pings, so a player waiting on a
    /// stream nobody publishes needs a value longer than the wait.
    pub idle_timeout: Duration,
    /// E-RTMP `capsEx` bits to advertise in `connect`, together with every FourCC of the spec
    /// ([`crate::caps::Capabilities::connect_fields`]); `None` sends a legacy connect.
    pub caps_ex: Option<u32>,
}

impl ClientConfig {
    /// Settings for `rtmp://{authority}/{app}`.
    pub fn new(authority: &str, app: &str) -> Self {
        Self {
            app: app.to_owned(),
            tc_url: format!("rtmp://{authority}/{app}"),
            flash_version: "FMLE/3.0 (compatible; weir)".to_owned(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            buffer_length_ms: 1000,
            digest_handshake: true,
            decoder_limits: DecoderLimits::default(),
            amf_limits: amf0::Limits::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            caps_ex: Some(
                crate::caps::CAPS_EX_MULTITRACK
                    | crate::caps::CAPS_EX_MOD_EX
                    | crate::caps::CAPS_EX_TIMESTAMP_NANO_OFFSET,
            ),
        }
    }
}

/// What a client session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientEvent {
    /// The server accepted connect.
    Connected {
        /// The E-RTMP `capsEx` bits the server announced in its `_result` (0 for a legacy
        /// server): [`crate::caps::CAPS_MULTITRACK`] means it reads Multitrack messages.
        caps_ex: u32,
    },
    /// Publishing started (`NetStream.Publish.Start`).
    PublishStarted {
        /// Our message stream.
        stream_id: u32,
    },
    /// Playing started (`NetStream.Play.Start`).
    PlayStarted {
        /// Our message stream.
        stream_id: u32,
    },
    /// Any `onStatus` (including the ones above), or an `_error` reply.
    Status {
        /// Message stream it arrived on.
        stream_id: u32,
        /// Its fields.
        status: Status,
    },
    /// E-RTMP v2: the server asks us to reconnect (`NetConnection.Connect.ReconnectRequest`,
    /// also reported as a [`ClientEvent::Status`]), to `tc_url` when it names another place
    /// (absolute, `//host/app` or `/app`: resolve it against ours), else to the same server.
    /// The server keeps serving this connection meanwhile: connect anew, switch over at a
    /// media boundary, then close this one.
    ReconnectRequest {
        /// Where to reconnect, as sent.
        tc_url: Option<String>,
        /// The server's reason.
        description: String,
    },
    /// A user control event from the server (StreamBegin, StreamEOF, ...).
    UserControl(UserControl),
    /// Audio or video on the played stream.
    Media {
        /// Message stream.
        stream_id: u32,
        /// Audio or video.
        media_type: MediaType,
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// FLV tag body.
        payload: Bytes,
    },
    /// A data message on the played stream (onMetaData, |RtmpSampleAccess, ...), AMF0 body.
    Data {
        /// Message stream.
        stream_id: u32,
        /// Timestamp in milliseconds.
        timestamp: u32,
        /// AMF0 body.
        payload: Bytes,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Intent {
    Publish(String),
    Play(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshake,
    Connecting,
    Connected,
}

const CONNECT_TRANSACTION: f64 = 1.0;
const CREATE_STREAM_TRANSACTION: f64 = 4.0;

/// One outgoing RTMP connection.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    phase: Phase,
    wire: Wire,
    input: BytesMut,
    events: VecDeque<ClientEvent>,
    intent: Option<Intent>,
    stream_id: Option<u32>,
    next_transaction: f64,
    /// When the connect answer is due.
    connect_deadline: Instant,
    /// When the answer to the publish or play request is due, while one is outstanding.
    request_deadline: Option<Instant>,
    /// The server answered the publish request with `NetStream.Publish.Start`.
    publishing: bool,
    /// When the last byte from the server arrived (or the session started).
    last_input: Instant,
}

impl ClientSession {
    /// A session started at `now` that begins its handshake at once (C0+C1 are queued).
    /// `random` fills C1 (the caller supplies randomness so the crate stays deterministic).
    pub fn new(config: ClientConfig, now: Instant, random: [u8; 1528]) -> Self {
        let mut handshake = ClientHandshake::new(random, 0, config.digest_handshake);
        let mut wire = Wire::new(config.decoder_limits.clone());
        if let Some(bytes) = handshake.poll_transmit() {
            wire.send_raw(&bytes);
        }
        Self {
            handshake,
            phase: Phase::Handshake,
            wire,
            input: BytesMut::with_capacity(8192),
            events: VecDeque::new(),
            intent: None,
            stream_id: None,
            next_transaction: 5.0,
            connect_deadline: now + config.connect_timeout,
            request_deadline: None,
            publishing: false,
            last_input: now,
            config,
        }
    }

    /// Asks at `now` to publish `stream_name` once connected (or at once if already
    /// connected). The answer is due [`ClientConfig::request_timeout`] after the request goes
    /// out.
    pub fn publish(&mut self, now: Instant, stream_name: &str) {
        self.intent = Some(Intent::Publish(stream_name.to_owned()));
        if self.phase == Phase::Connected {
            self.start_intent(now);
        }
    }

    /// Asks at `now` to play `stream_name` once connected (or at once if already connected).
    pub fn play(&mut self, now: Instant, stream_name: &str) {
        self.intent = Some(Intent::Play(stream_name.to_owned()));
        if self.phase == Phase::Connected {
            self.start_intent(now);
        }
    }

    /// Feeds bytes read from the socket at `now`.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SessionError> {
        self.input.extend_from_slice(data);
        self.handle_buffered_input(now)
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
        if self.input.is_empty() {
            std::mem::swap(&mut self.input, data);
        } else {
            self.input.extend_from_slice(data);
            data.clear();
        }
        self.handle_buffered_input(now)
    }

    /// The session's input buffer. Read socket bytes straight into it and then call
    /// [`Self::handle_buffered_input`]: that saves copying every byte once.
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Processes what was read into [`Self::input_buffer`] at `now`.
    pub fn handle_buffered_input(&mut self, now: Instant) -> Result<(), SessionError> {
        if !self.input.is_empty() {
            self.last_input = now;
        }
        loop {
            if self.phase == Phase::Handshake {
                let before = self.input.len();
                let done = self.handshake.handle_input(&mut self.input)?;
                self.wire.count_received(before - self.input.len());
                if let Some(bytes) = self.handshake.poll_transmit() {
                    self.wire.send_raw(&bytes);
                }
                if !done {
                    return Ok(());
                }
                self.send_connect();
                continue;
            }
            let Some((chunk, message)) = self.wire.next_message(&mut self.input)? else {
                return Ok(());
            };
            self.handle_message(now, chunk, message)?;
        }
    }

    /// Checks deadlines; call it at (or after) [`Self::poll_timeout`]. An error ends the
    /// connection: [`SessionError::Timeout`] names the deadline that passed (`connect`,
    /// `publish or play answer`, `idle`).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.phase != Phase::Connected {
            if now >= self.connect_deadline {
                return Err(SessionError::Timeout("connect"));
            }
            return Ok(());
        }
        if matches!(self.request_deadline, Some(deadline) if now >= deadline) {
            return Err(SessionError::Timeout("publish or play answer"));
        }
        match self.idle_deadline() {
            Some(deadline) if now >= deadline => Err(SessionError::Timeout("idle")),
            _ => Ok(()),
        }
    }

    /// When [`Self::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase != Phase::Connected {
            return Some(self.connect_deadline);
        }
        match (self.request_deadline, self.idle_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the server accepted our publish (`NetStream.Publish.Start`) and the stream
    /// is still open.
    pub fn is_publishing(&self) -> bool {
        self.publishing && self.stream_id.is_some()
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

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Our message stream, once created.
    pub fn stream_id(&self) -> Option<u32> {
        self.stream_id
    }

    /// Bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.wire.received()
    }

    /// Sends metadata on the publishing stream as `@setDataFrame`. `payload` is the AMF0 body
    /// `["onMetaData", {...}]`; a body that already starts with `@setDataFrame` is sent as it
    /// is rather than wrapped twice. The body is copied once (metadata is small). Returns
    /// false, sending nothing, unless [`Self::is_publishing`].
    pub fn send_metadata(&mut self, timestamp: u32, payload: &[u8]) -> bool {
        let Some(stream_id) = self.publishing_stream() else {
            return false;
        };
        let mut prefix = Vec::with_capacity(16);
        amf0::encode(&Value::from("@setDataFrame"), &mut prefix);
        let mut body = Vec::with_capacity(payload.len() + prefix.len());
        if !payload.starts_with(&prefix) {
            body.extend_from_slice(&prefix);
        }
        body.extend_from_slice(payload);
        self.wire.send_data(stream_id, timestamp, Bytes::from(body));
        true
    }

    /// Sends audio or video (an FLV tag body) on the publishing stream. The payload is not
    /// copied: the transmit queue holds slices of it. Returns false, sending nothing, unless
    /// [`Self::is_publishing`].
    pub fn send_media(&mut self, media_type: MediaType, timestamp: u32, payload: Bytes) -> bool {
        let Some(stream_id) = self.publishing_stream() else {
            return false;
        };
        let (chunk_stream_id, type_id) = match media_type {
            MediaType::Audio => (AUDIO_CHUNK_STREAM, TYPE_AUDIO),
            MediaType::Video => (VIDEO_CHUNK_STREAM, TYPE_VIDEO),
        };
        self.wire.send(&ChunkMessage {
            chunk_stream_id,
            timestamp,
            type_id,
            stream_id,
            payload,
        });
        true
    }

    /// Stops publishing or playing: FCUnpublish (when publishing) and deleteStream.
    pub fn close_stream(&mut self) {
        self.publishing = false;
        self.request_deadline = None;
        let Some(stream_id) = self.stream_id.take() else {
            return;
        };
        if let Some(Intent::Publish(name)) = &self.intent {
            let fc = Command::new(
                "FCUnpublish",
                0.0,
                Value::Null,
                vec![Value::from(name.as_str())],
            );
            self.wire.send_command(0, &fc);
        }
        let delete = Command::new(
            "deleteStream",
            0.0,
            Value::Null,
            vec![Value::from(f64::from(stream_id))],
        );
        self.wire.send_command(0, &delete);
    }

    fn publishing_stream(&self) -> Option<u32> {
        self.stream_id.filter(|_| self.publishing)
    }

    fn idle_deadline(&self) -> Option<Instant> {
        (self.phase == Phase::Connected && !self.is_publishing())
            .then(|| self.last_input + self.config.idle_timeout)
    }

    fn transaction(&mut self) -> f64 {
        self.next_transaction += 1.0;
        self.next_transaction
    }

    fn send_connect(&mut self) {
        self.phase = Phase::Connecting;
        self.wire.set_out_chunk_size(self.config.chunk_size);
        let mut object = Value::object([
            ("app", Value::from(self.config.app.as_str())),
            ("type", Value::from("nonprivate")),
            ("flashVer", Value::from(self.config.flash_version.as_str())),
            ("tcUrl", Value::from(self.config.tc_url.as_str())),
            ("fpad", Value::from(false)),
            ("capabilities", Value::from(15.0)),
            ("audioCodecs", Value::from(4071.0)),
            ("videoCodecs", Value::from(252.0)),
            ("videoFunction", Value::from(1.0)),
            ("objectEncoding", Value::from(0.0)),
        ]);
        if let (Some(caps_ex), Value::Object(fields)) = (self.config.caps_ex, &mut object) {
            fields.extend(crate::caps::Capabilities::connect_fields(caps_ex));
        }
        let connect = Command::new("connect", CONNECT_TRANSACTION, object, Vec::new());
        self.wire.send_command(0, &connect);
    }

    fn start_intent(&mut self, now: Instant) {
        let Some(intent) = self.intent.clone() else {
            return;
        };
        self.publishing = false;
        self.request_deadline = Some(now + self.config.request_timeout);
        if let Intent::Publish(name) = &intent {
            for call in ["releaseStream", "FCPublish"] {
                let tid = self.transaction();
                let command =
                    Command::new(call, tid, Value::Null, vec![Value::from(name.as_str())]);
                self.wire.send_command(0, &command);
            }
        }
        let create = Command::new(
            "createStream",
            CREATE_STREAM_TRANSACTION,
            Value::Null,
            vec![],
        );
        self.wire.send_command(0, &create);
    }

    fn handle_message(
        &mut self,
        now: Instant,
        chunk: ChunkMessage,
        message: Message,
    ) -> Result<(), SessionError> {
        match message {
            Message::Command(body) => {
                let command = Command::decode(&body, &self.config.amf_limits)?;
                self.handle_command(now, chunk.stream_id, command)
            }
            Message::Audio(payload) => {
                self.media(chunk.stream_id, MediaType::Audio, chunk.timestamp, payload);
                Ok(())
            }
            Message::Video(payload) => {
                self.media(chunk.stream_id, MediaType::Video, chunk.timestamp, payload);
                Ok(())
            }
            Message::Data(payload) => {
                self.events.push_back(ClientEvent::Data {
                    stream_id: chunk.stream_id,
                    timestamp: chunk.timestamp,
                    payload,
                });
                Ok(())
            }
            Message::Aggregate(body) => {
                let (parts, _) = aggregate_messages(&chunk, &body);
                for (sub, message) in parts {
                    self.handle_message(now, sub, message)?;
                }
                Ok(())
            }
            Message::UserControl(event) => {
                self.events.push_back(ClientEvent::UserControl(event));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn media(&mut self, stream_id: u32, media_type: MediaType, timestamp: u32, payload: Bytes) {
        self.events.push_back(ClientEvent::Media {
            stream_id,
            media_type,
            timestamp,
            payload,
        });
    }

    fn handle_command(
        &mut self,
        now: Instant,
        stream_id: u32,
        command: Command,
    ) -> Result<(), SessionError> {
        let status = Status::from_command(&command);
        match command.name.as_str() {
            "_result" if command.transaction_id == CONNECT_TRANSACTION => {
                self.phase = Phase::Connected;
                self.wire
                    .send(&message::window_ack_size(self.config.window_ack_size));
                let caps_ex = crate::caps::Capabilities::from_connect(&command.object).caps_ex;
                self.events.push_back(ClientEvent::Connected { caps_ex });
                self.start_intent(now);
            }
            "_result" if command.transaction_id == CREATE_STREAM_TRANSACTION => {
                let id = command
                    .number_argument(0)
                    .filter(|n| *n >= 1.0 && *n <= f64::from(u32::MAX))
                    .ok_or_else(|| {
                        SessionError::Protocol("createStream result without a stream id".into())
                    })? as u32;
                self.stream_id = Some(id);
                self.send_stream_command(id);
            }
            "_error" | "onStatus" => {
                let status = status.unwrap_or(Status {
                    level: StatusLevel::Error,
                    code: String::new(),
                    description: String::new(),
                });
                if command.name == "_error" && command.transaction_id == CONNECT_TRANSACTION {
                    return Err(SessionError::Rejected(format!(
                        "{} {}",
                        status.code, status.description
                    )));
                }
                match status.code.as_str() {
                    code::PUBLISH_START => {
                        self.request_deadline = None;
                        self.publishing = matches!(self.intent, Some(Intent::Publish(_)));
                        self.events
                            .push_back(ClientEvent::PublishStarted { stream_id });
                    }
                    code::PLAY_START => {
                        self.request_deadline = None;
                        self.events
                            .push_back(ClientEvent::PlayStarted { stream_id });
                    }
                    // An error on our stream or about a NetStream answers the request (the
                    // application decides what it means); `_error` replies to releaseStream
                    // or FCPublish on stream 0 do not.
                    _ if status.level == StatusLevel::Error
                        && (stream_id != 0 || status.code.starts_with("NetStream.")) =>
                    {
                        self.request_deadline = None;
                    }
                    _ => {}
                }
                let reconnect = (status.code == code::CONNECT_RECONNECT_REQUEST).then(|| {
                    ClientEvent::ReconnectRequest {
                        tc_url: command
                            .arguments
                            .iter()
                            .find_map(|v| v.property("tcUrl").and_then(Value::as_str))
                            .map(str::to_owned),
                        description: status.description.clone(),
                    }
                });
                self.events
                    .push_back(ClientEvent::Status { stream_id, status });
                self.events.extend(reconnect);
            }
            "onBWDone" => {
                let check = Command::new("_checkbw", 0.0, Value::Null, vec![]);
                self.wire.send_command(0, &check);
            }
            other => debug!(command = other, "client ignored command"),
        }
        Ok(())
    }

    fn send_stream_command(&mut self, stream_id: u32) {
        match self.intent.clone() {
            Some(Intent::Publish(name)) => {
                let tid = self.transaction();
                let publish = Command::new(
                    "publish",
                    tid,
                    Value::Null,
                    vec![Value::from(name.as_str()), Value::from("live")],
                );
                self.wire.send_command(stream_id, &publish);
            }
            Some(Intent::Play(name)) => {
                let tid = self.transaction();
                let play = Command::new(
                    "play",
                    tid,
                    Value::Null,
                    vec![Value::from(name.as_str()), Value::from(-2000.0)],
                );
                self.wire.send_command(stream_id, &play);
                self.wire
                    .send(&message::user_control(UserControl::SetBufferLength {
                        stream_id,
                        millis: self.config.buffer_length_ms,
                    }));
            }
            None => {}
        }
    }
}
