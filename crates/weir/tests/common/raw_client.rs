//! A byte-level RTMP client for bad-input tests: it speaks valid RTMP through the sans-IO
//! pieces of `weir_rtmp` (handshake, chunk codec, commands) so a test can build a valid prefix
//! and then break it anywhere, and it tells how and when the server closed the connection.
//!
//! Not a witness of interoperability (the real clients in [`super::clients`] are); a tool
//! to put exact bytes on the wire.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_rtmp::amf0::{self, Value};
use weir_rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkMessage, DecoderLimits};
use weir_rtmp::command::{Command, Status};
use weir_rtmp::handshake::ClientHandshake;
use weir_rtmp::message::{self, Message, UserControl, TYPE_COMMAND_AMF0};

/// Chunk stream our commands go on.
pub const COMMAND_CHUNK_STREAM: u32 = 3;

/// How the server ended a connection, seen from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// A read returned 0 (FIN).
    Eof,
    /// The connection was reset (RST), e.g. because the server closed with unread input.
    Reset,
}

/// One raw TCP connection to an RTMP server.
pub struct RawClient {
    stream: TcpStream,
    local: SocketAddr,
    started: Instant,
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
    input: BytesMut,
    next_transaction: f64,
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let local = stream.local_addr().expect("local addr");
        RawClient {
            stream,
            local,
            started: Instant::now(),
            encoder: ChunkEncoder::new(),
            decoder: ChunkDecoder::new(DecoderLimits::default()),
            input: BytesMut::new(),
            next_transaction: 2.0,
        }
    }

    /// Our local port: the server logs us as `peer=127.0.0.1:<port>`.
    pub fn port(&self) -> u16 {
        self.local.port()
    }

    /// When the TCP connection was made.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Writes raw bytes. Errors are returned, not raised: a server that already closed the
    /// connection makes writes fail, which bad-input tests expect.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Sends FIN (shuts down our write half) and keeps reading possible.
    pub async fn shutdown_write(&mut self) -> std::io::Result<()> {
        self.stream.shutdown().await
    }

    /// Does a simple-style client handshake: C0+C1, waits for S0+S1+S2, sends C2.
    pub async fn handshake(&mut self) -> Result<(), String> {
        let mut handshake = ClientHandshake::new([0x5A; 1528], 0, false);
        let c0c1 = handshake.poll_transmit().expect("C0+C1");
        self.send_raw(&c0c1)
            .await
            .map_err(|e| format!("C0C1: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let done = handshake
                .handle_input(&mut self.input)
                .map_err(|e| format!("handshake: {e}"))?;
            if let Some(c2) = handshake.poll_transmit() {
                self.send_raw(&c2).await.map_err(|e| format!("C2: {e}"))?;
            }
            if done {
                return Ok(());
            }
            self.fill(deadline).await?;
        }
    }

    /// Encodes and sends one message with our chunk encoder.
    pub async fn send_message(&mut self, message: &ChunkMessage) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        self.encoder.encode(message, &mut out);
        self.send_raw(&out).await
    }

    /// Sends Set Chunk Size with an arbitrary 32-bit body (no masking of bit 31) and switches
    /// our encoder to it (clamped by the encoder to 1..=0xFFFFFF).
    pub async fn send_set_chunk_size(&mut self, size: u32) -> std::io::Result<()> {
        let mut msg = message::set_chunk_size(0);
        msg.payload = Bytes::copy_from_slice(&size.to_be_bytes());
        self.send_message(&msg).await?;
        self.encoder.set_chunk_size(size);
        Ok(())
    }

    /// Sends an AMF0 command body (already encoded) on message stream `stream_id`.
    pub async fn send_command_body(&mut self, stream_id: u32, body: Bytes) -> std::io::Result<()> {
        self.send_message(&ChunkMessage {
            chunk_stream_id: COMMAND_CHUNK_STREAM,
            timestamp: 0,
            type_id: TYPE_COMMAND_AMF0,
            stream_id,
            payload: body,
        })
        .await
    }

    /// Sends a command on message stream `stream_id`.
    pub async fn send_command(&mut self, stream_id: u32, command: &Command) -> std::io::Result<()> {
        self.send_command_body(stream_id, command.encode()).await
    }

    /// A fresh transaction id.
    pub fn transaction(&mut self) -> f64 {
        self.next_transaction += 1.0;
        self.next_transaction
    }

    /// Reads the next message the server sends, applying its Set Chunk Size; fails on close,
    /// error or timeout.
    pub async fn read_message(&mut self, timeout: Duration) -> Result<ChunkMessage, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let decoded = self
                .decoder
                .decode(&mut self.input)
                .map_err(|e| format!("decoding the server's chunks: {e}"))?;
            match decoded {
                Some(msg) => {
                    if let Ok(Message::SetChunkSize(size)) = Message::parse(&msg) {
                        self.decoder
                            .set_chunk_size(size)
                            .map_err(|e| format!("server chunk size: {e}"))?;
                    }
                    return Ok(msg);
                }
                None => self.fill(deadline).await?,
            }
        }
    }

    /// Reads until a command matching `wanted` arrives (skipping everything else).
    pub async fn expect_command(
        &mut self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(&Command) -> bool,
    ) -> Result<Command, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self
                .read_message(left)
                .await
                .map_err(|e| format!("waiting for {what}: {e}"))?;
            if let Ok(Message::Command(body)) = Message::parse(&msg) {
                let command = Command::decode(&body, &amf0::Limits::default())
                    .map_err(|e| format!("bad command from server: {e}"))?;
                if wanted(&command) {
                    return Ok(command);
                }
            }
        }
    }

    /// Sends `connect` for `app` (transaction 1) and waits for its `_result`.
    pub async fn connect_app(&mut self, app: &str) -> Result<(), String> {
        let object = Value::object([
            ("app", Value::from(app)),
            ("flashVer", Value::from("FMLE/3.0 (weir bad-input test)")),
            (
                "tcUrl",
                Value::from(format!("rtmp://127.0.0.1/{app}").as_str()),
            ),
        ]);
        let connect = Command::new("connect", 1.0, object, vec![]);
        self.send_command(0, &connect)
            .await
            .map_err(|e| format!("send connect: {e}"))?;
        self.expect_command(Duration::from_secs(5), "connect _result", |c| {
            c.transaction_id == 1.0 && (c.name == "_result" || c.name == "_error")
        })
        .await
        .and_then(|c| match c.name.as_str() {
            "_result" => Ok(()),
            _ => Err(format!("connect refused: {c:?}")),
        })
    }

    /// Sends `createStream` and returns the new message stream id.
    pub async fn create_stream(&mut self) -> Result<u32, String> {
        let tid = self.transaction();
        let create = Command::new("createStream", tid, Value::Null, vec![]);
        self.send_command(0, &create)
            .await
            .map_err(|e| format!("send createStream: {e}"))?;
        let reply = self
            .expect_command(Duration::from_secs(5), "createStream reply", |c| {
                c.transaction_id == tid
            })
            .await?;
        match (reply.name.as_str(), reply.arguments.first()) {
            ("_result", Some(Value::Number(id))) => Ok(*id as u32),
            _ => Err(format!("createStream failed: {reply:?}")),
        }
    }

    /// Sends `publish` of `name` on `stream_id` and waits for `NetStream.Publish.Start`.
    pub async fn publish(&mut self, stream_id: u32, name: &str) -> Result<(), String> {
        let publish = Command::new(
            "publish",
            0.0,
            Value::Null,
            vec![Value::from(name), Value::from("live")],
        );
        self.send_command(stream_id, &publish)
            .await
            .map_err(|e| format!("send publish: {e}"))?;
        self.expect_status(Duration::from_secs(5), "NetStream.Publish.Start")
            .await
    }

    /// Sends `play` of `name` on `stream_id` and waits for `NetStream.Play.Start`.
    pub async fn play(&mut self, stream_id: u32, name: &str) -> Result<(), String> {
        let play = Command::new("play", 0.0, Value::Null, vec![Value::from(name)]);
        self.send_command(stream_id, &play)
            .await
            .map_err(|e| format!("send play: {e}"))?;
        self.expect_status(Duration::from_secs(5), "NetStream.Play.Start")
            .await
    }

    /// Waits for an `onStatus` with `code`.
    pub async fn expect_status(&mut self, timeout: Duration, code: &str) -> Result<(), String> {
        self.expect_command(timeout, code, |c| {
            c.name == "onStatus" && Status::from_command(c).is_some_and(|s| s.code == code)
        })
        .await
        .map(drop)
    }

    /// Reads until the server ends the connection or `timeout` passes; everything received
    /// meanwhile is decoded and returned (for assertions on what the server said last).
    pub async fn wait_closed(
        &mut self,
        timeout: Duration,
    ) -> Result<(Closed, Instant, Vec<Message>), String> {
        let deadline = Instant::now() + timeout;
        let mut messages = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while let Ok(Some(msg)) = self.decoder.decode(&mut self.input) {
                if let Ok(parsed) = Message::parse(&msg) {
                    if let Message::SetChunkSize(size) = parsed {
                        let _ = self.decoder.set_chunk_size(size);
                    }
                    messages.push(parsed);
                }
            }
            let read = tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf)).await;
            match read {
                Err(_) => {
                    return Err(format!(
                        "still open {:?} after the connection started",
                        self.started.elapsed()
                    ))
                }
                Ok(Ok(0)) => return Ok((Closed::Eof, Instant::now(), messages)),
                Ok(Ok(n)) => self.input.extend_from_slice(&buf[..n]),
                Ok(Err(e)) if is_reset(&e) => return Ok((Closed::Reset, Instant::now(), messages)),
                Ok(Err(e)) => return Err(format!("read error: {e}")),
            }
        }
    }

    /// Reads more bytes into the input buffer before `deadline`.
    async fn fill(&mut self, deadline: Instant) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf)).await {
            Err(_) => Err("timed out reading from the server".to_owned()),
            Ok(Ok(0)) => Err("server closed the connection".to_owned()),
            Ok(Ok(n)) => {
                self.input.extend_from_slice(&buf[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("read error: {e}")),
        }
    }
}

/// Whether a socket error means the peer reset or aborted the connection.
pub fn is_reset(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Whether `msg` tells a player the publisher left: StreamEOF or `NetStream.Play.UnpublishNotify`.
pub fn is_unpublish_notice(msg: &Message) -> Option<&'static str> {
    match msg {
        Message::UserControl(UserControl::StreamEof(_)) => Some("StreamEOF"),
        Message::Command(body) => {
            let command = Command::decode(body, &amf0::Limits::default()).ok()?;
            let status = Status::from_command(&command)?;
            (status.code == "NetStream.Play.UnpublishNotify").then_some("UnpublishNotify")
        }
        _ => None,
    }
}
