//! A server session fed arbitrary bytes in arbitrary splits, driven like the application
//! drives it: every request is answered (accept or reject), the application now and then sends
//! media, metadata and publish notifications, and simulated time advances. It must never
//! panic, its events must follow the session's contract, and its output must stay bounded.
//!
//! Input layout: 4 control bytes, then the bytes the peer sends.
//! * byte 0: low 3 bits pick the largest piece `handle_input` gets (whole input, 1, 13, 128,
//!   1536, 4096, 65536 or a mix); all 8 bits seed the generator that picks the pieces;
//! * byte 1: answer pattern; bit `k % 8` set accepts the k-th request, clear rejects it;
//! * byte 2: how often (x/256 per piece) the application calls send_media, send_metadata,
//!   notify_publish, notify_unpublish or handle_timeout;
//! * byte 3: bit 0 selects tight limits, bit 1 lets the application delay an answer until
//!   after the next piece, bits 4..8 scale the time step between pieces (up to 2^15 ms).
//!
//! Seeds starting with a valid handshake, connect, createStream and publish or play come from
//! `cargo run --example seeds` (see `examples/seeds.rs`).

#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_rtmp::amf0;
use weir_rtmp::chunk::DecoderLimits;
use weir_rtmp::session::{
    MediaType, PublishRejection, ServerConfig, ServerEvent, ServerSession, SessionError,
};

/// The fixed S1 random block, so runs are deterministic.
const RANDOM: [u8; 1528] = [0x5A; 1528];
/// Pending output must never exceed this.
const MAX_PENDING_OUTPUT: usize = 64 << 20;
/// Output the peer can cause, per input byte, on top of [`AMPLIFICATION_SLACK`].
const AMPLIFICATION: u64 = 64;
/// Fixed output allowance (handshake, connect reply, ...).
const AMPLIFICATION_SLACK: u64 = 64 << 10;

fuzz_target!(|data: &[u8]| {
    let [split, answers, actions, flags, stream @ ..] = data else {
        return;
    };
    let mut harness = Harness::new(*split, *answers, *actions, *flags);
    // Errors end the connection, as the driver closes the socket; that is not a failure.
    let _ = harness.run(stream);
    harness.check_output();
});

/// xorshift32: small, deterministic and good enough to pick pieces and actions.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n.max(1)
    }
}

struct Harness {
    session: ServerSession,
    rng: Rng,
    now: Instant,
    max_piece: usize,
    answers: u8,
    actions: u8,
    delay_answers: bool,
    time_scale: u32,
    /// A request popped from the session and not answered yet.
    pending: Option<ServerEvent>,
    requests: u32,
    connect_seen: bool,
    connected: bool,
    publishing: BTreeSet<u32>,
    playing: BTreeSet<u32>,
    input_bytes: u64,
    output_bytes: u64,
    app_output_bytes: u64,
}

impl Harness {
    fn new(split: u8, answers: u8, actions: u8, flags: u8) -> Self {
        let now = Instant::now();
        let config = if flags & 0x01 != 0 {
            ServerConfig {
                chunk_size: 128,
                max_message_streams: 2,
                max_pending_input: 64 << 10,
                decoder_limits: DecoderLimits {
                    max_message_length: 64 << 10,
                    max_chunk_streams: 4,
                    max_pending_bytes: 128 << 10,
                },
                amf_limits: amf0::Limits {
                    max_depth: 4,
                    max_string_length: 256,
                    max_entries: 16,
                    max_values: 64,
                },
                ..ServerConfig::default()
            }
        } else {
            ServerConfig::default()
        };
        let max_piece = match split & 0x07 {
            0 => usize::MAX,
            1 => 1,
            2 => 13,
            3 => 128,
            4 => 1536,
            5 => 4096,
            6 => 65536,
            _ => 0,
        };
        Self {
            session: ServerSession::new(config, now, RANDOM),
            rng: Rng(u32::from_le_bytes([split, answers, actions, flags]) | 1),
            now,
            max_piece,
            answers,
            actions,
            delay_answers: flags & 0x02 != 0,
            time_scale: u32::from(flags >> 4),
            pending: None,
            requests: 0,
            connect_seen: false,
            connected: false,
            publishing: BTreeSet::new(),
            playing: BTreeSet::new(),
            input_bytes: 0,
            output_bytes: 0,
            app_output_bytes: 0,
        }
    }

    fn run(&mut self, mut stream: &[u8]) -> Result<(), SessionError> {
        while !stream.is_empty() {
            let limit = match self.max_piece {
                0 => [1, 7, 200, 1537, 3000][self.rng.below(5) as usize],
                n => n,
            };
            let len = if limit == usize::MAX {
                stream.len()
            } else {
                1 + self.rng.below(limit as u32) as usize
            }
            .min(stream.len());
            let (piece, rest) = stream.split_at(len);
            stream = rest;
            self.now += Duration::from_millis(u64::from(self.rng.below(1 << self.time_scale)));
            self.input_bytes += piece.len() as u64;
            self.session.handle_input(self.now, piece)?;
            let delay = self.delay_answers && self.rng.below(4) == 0;
            self.answer(delay)?;
            if (self.rng.below(256) as u8) < self.actions {
                self.act()?;
            }
            self.drain();
            if self.session.is_closing() {
                return Ok(());
            }
        }
        self.answer(false)?;
        self.drain();
        // The idle and handshake deadlines must fire on simulated time, never panic.
        if let Some(deadline) = self.session.poll_timeout() {
            self.now = self.now.max(deadline);
            self.session.handle_timeout(self.now)?;
        }
        Ok(())
    }

    /// Answers the pending request and every request the session reports, unless `delay`
    /// keeps the next one waiting until after the next piece.
    fn answer(&mut self, delay: bool) -> Result<(), SessionError> {
        if self.pending.is_some() {
            // Nothing but the session's own refusal at the request deadline may come while a
            // request waits.
            match self.session.poll_event() {
                Some(event) => {
                    assert!(
                        matches!(event, ServerEvent::RequestTimedOut { .. }),
                        "event while a request waits: {event:?}"
                    );
                    self.check_event(&event);
                }
                None if delay => return Ok(()),
                None => {}
            }
        }
        if let Some(request) = self.pending.take() {
            self.respond(request)?;
        }
        while let Some(event) = self.session.poll_event() {
            self.check_event(&event);
            match event {
                ServerEvent::ConnectRequested(_)
                | ServerEvent::PublishRequested(_)
                | ServerEvent::PlayRequested(_) => {
                    if delay {
                        self.pending = Some(event);
                        assert_eq!(self.session.poll_event(), None, "event after a request");
                        return Ok(());
                    }
                    self.respond(event)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn respond(&mut self, request: ServerEvent) -> Result<(), SessionError> {
        let accept = self.answers & (1 << (self.requests % 8)) != 0;
        self.requests += 1;
        match request {
            ServerEvent::ConnectRequested(_) if accept => {
                self.connected = true;
                self.session.accept_connect()
            }
            ServerEvent::ConnectRequested(_) => {
                self.session.reject_connect("rejected by the fuzzer");
                assert!(self.session.is_closing());
                Ok(())
            }
            ServerEvent::PublishRequested(request) if accept => {
                self.publishing.insert(request.stream_id);
                self.session.accept_publish(request.stream_id)
            }
            ServerEvent::PublishRequested(request) => {
                let why = if self.rng.below(2) == 0 {
                    PublishRejection::BadName
                } else {
                    PublishRejection::Denied
                };
                self.session
                    .reject_publish(request.stream_id, why, "in use")
            }
            ServerEvent::PlayRequested(request) if accept => {
                self.playing.insert(request.stream_id);
                self.session.accept_play(request.stream_id)
            }
            ServerEvent::PlayRequested(request) => {
                self.session.reject_play(request.stream_id, "not found")
            }
            _ => unreachable!("only requests are answered"),
        }
    }

    /// Checks an event against the session's contract.
    fn check_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::ConnectRequested(_) => {
                assert!(!self.connect_seen, "second connect request");
                self.connect_seen = true;
            }
            ServerEvent::PublishRequested(request) => {
                assert!(self.connected, "publish request before connect accepted");
                assert_ne!(request.stream_id, 0);
                assert!(!request.stream_name.is_empty());
                assert!(!self.publishing.contains(&request.stream_id));
                assert!(!self.playing.contains(&request.stream_id));
            }
            ServerEvent::PlayRequested(request) => {
                assert!(self.connected, "play request before connect accepted");
                assert_ne!(request.stream_id, 0);
                assert!(!request.stream_name.is_empty());
                assert!(!self.publishing.contains(&request.stream_id));
                assert!(!self.playing.contains(&request.stream_id));
            }
            ServerEvent::Media { stream_id, .. } | ServerEvent::Metadata { stream_id, .. } => {
                assert!(
                    self.publishing.contains(stream_id),
                    "media on stream {stream_id}, which is not publishing"
                );
            }
            ServerEvent::PublishStopped { stream_id } => {
                assert!(self.publishing.remove(stream_id), "stop without publish");
            }
            ServerEvent::PlayStopped { stream_id } => {
                assert!(self.playing.remove(stream_id), "stop without play");
            }
            ServerEvent::PlayPaused { stream_id, .. } => {
                assert!(self.playing.contains(stream_id), "pause without play");
            }
            ServerEvent::RequestTimedOut { stream_id } => {
                let waiting = match &self.pending {
                    Some(ServerEvent::PublishRequested(request)) => Some(request.stream_id),
                    Some(ServerEvent::PlayRequested(request)) => Some(request.stream_id),
                    _ => None,
                };
                assert_eq!(
                    waiting,
                    Some(*stream_id),
                    "timeout of a request nobody waits on"
                );
                self.pending = None;
            }
        }
    }

    /// One thing the application does on its own: send to players, or check the clock.
    fn act(&mut self) -> Result<(), SessionError> {
        let stream_id = match self.playing.iter().next() {
            Some(id) if self.rng.below(4) != 0 => *id,
            _ => self.rng.below(4),
        };
        let before = self.session.pending_output();
        match self.rng.below(6) {
            0 | 1 => {
                let media_type = if self.rng.below(2) == 0 {
                    MediaType::Audio
                } else {
                    MediaType::Video
                };
                let len = [0, 1, 300, 5000][self.rng.below(4) as usize];
                let payload = Bytes::from(vec![0x17; len]);
                let timestamp = self.rng.next();
                let sent = self
                    .session
                    .send_media(stream_id, media_type, timestamp, payload);
                if !self.playing.contains(&stream_id) {
                    assert!(
                        !sent,
                        "media sent to stream {stream_id}, which is not playing"
                    );
                }
            }
            2 => {
                let mut body = Vec::new();
                amf0::encode_all(
                    &[
                        amf0::Value::from("onMetaData"),
                        amf0::Value::object([("width", amf0::Value::from(640.0))]),
                    ],
                    &mut body,
                );
                self.session
                    .send_metadata(stream_id, self.rng.next(), Bytes::from(body));
            }
            3 => self.session.notify_unpublish(stream_id),
            4 => self.session.notify_publish(stream_id),
            _ => {
                let _ = self.session.poll_timeout();
                self.session.handle_timeout(self.now)?;
            }
        }
        self.app_output_bytes += (self.session.pending_output() - before) as u64;
        let _ = (
            self.session.bytes_received(),
            self.session.peer_acknowledged(),
        );
        Ok(())
    }

    fn drain(&mut self) {
        let pending = self.session.pending_output();
        assert!(
            pending <= MAX_PENDING_OUTPUT,
            "{pending} bytes of pending output"
        );
        while let Some(bytes) = self.session.poll_transmit() {
            self.output_bytes += bytes.len() as u64;
        }
        assert_eq!(self.session.pending_output(), 0);
        self.check_output();
    }

    /// What the peer made the server send stays proportional to what the peer sent.
    fn check_output(&self) {
        let caused_by_peer = self.output_bytes.saturating_sub(self.app_output_bytes);
        assert!(
            caused_by_peer <= AMPLIFICATION * self.input_bytes + AMPLIFICATION_SLACK,
            "{} input bytes made {caused_by_peer} output bytes",
            self.input_bytes
        );
    }
}
