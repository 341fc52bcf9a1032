//! Checking viewers for the endurance scenarios: an RTMP player and an HTTP-FLV player that
//! check their timeline ([`Timeline`]), note the wall-clock gaps between video frames and
//! how their connection ended, and can misbehave on purpose: stop reading after the first
//! frame (a stalled or SIGSTOPped viewer), read at a capped rate (a viewer on a slow link),
//! or leave with a TCP reset (`SO_LINGER` 0).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::RngCore;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use weir_client::RtmpUrl;
use weir_media::Frame;
use weir_rtmp::command::StatusLevel;
use weir_rtmp::session::{ClientConfig, ClientEvent, ClientSession, MediaType};

use crate::timeline::Timeline;

/// Live counters a scenario reads while its viewers run (times in ms since `epoch`).
#[derive(Debug, Default)]
pub struct Live {
    /// Video frames received (sequence headers excluded).
    pub frames: AtomicU64,
    /// When the last video frame arrived.
    pub last_frame_ms: AtomicU64,
    /// When the last video keyframe arrived.
    pub last_key_ms: AtomicU64,
    /// Viewers whose first video frame arrived.
    pub started: AtomicU64,
    /// Viewers that got a video frame after their first `UnpublishNotify` (a new publisher's).
    pub resumed: AtomicU64,
}

/// What a checking viewer does and when it stops.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// A forward timestamp step longer than this is a jump, ms.
    pub max_step_ms: u32,
    /// Leave at this time.
    pub until: Option<tokio::time::Instant>,
    /// Leave when this turns true.
    pub stop: watch::Receiver<bool>,
    /// Stop reading after the first video frame (until stopped): a stalled viewer.
    pub stall: bool,
    /// Read at most this many kbit/s: a viewer on a slow link.
    pub read_kbps: Option<u64>,
    /// Leave with a TCP reset (`SO_LINGER` 0) instead of a FIN.
    pub reset: bool,
    /// Counters to update, if any.
    pub live: Option<Arc<Live>>,
    /// Origin of the `live` times.
    pub epoch: Instant,
    /// Longest wait for the TCP connection.
    pub connect_timeout: Duration,
    /// The socket's receive buffer (`SO_RCVBUF`), bytes; `None`: the kernel's autotuning.
    /// A small one makes a stalled viewer felt by the server sooner.
    pub recv_buffer: Option<u32>,
}

impl WatchOptions {
    /// Options of a well-behaved viewer stopped by `stop`.
    pub fn new(stop: watch::Receiver<bool>, epoch: Instant) -> WatchOptions {
        WatchOptions {
            max_step_ms: 1033,
            until: None,
            stop,
            stall: false,
            read_kbps: None,
            reset: false,
            live: None,
            epoch,
            connect_timeout: Duration::from_secs(10),
            recv_buffer: None,
        }
    }
}

/// How a checking viewer's connection ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum End {
    /// It was stopped (or reached its time).
    Left,
    /// The server closed it (a stalled viewer: while it was not reading).
    ServerClosed,
    /// An error: refused, a read or protocol error, an HTTP status other than 200.
    Failed(String),
}

/// What one checking viewer saw.
#[derive(Clone, Debug, Serialize)]
pub struct Watched {
    /// The play was accepted (RTMP `Play.Start`, HTTP 200).
    pub playing: bool,
    /// The video timestamps.
    pub timeline: Timeline,
    /// Time from connecting to the first video frame.
    pub first_frame_ms: Option<u64>,
    /// Longest wall-clock gap between two video frames, ms.
    pub max_gap_ms: u64,
    /// RTMP `NetStream.Play.UnpublishNotify` statuses received.
    pub unpublished: u32,
    /// Video frames received after the first `UnpublishNotify` (the timeline went on across
    /// a publisher's restart).
    pub frames_after_unpublish: u64,
    /// Bytes received.
    pub bytes: u64,
    /// How it ended.
    pub end: End,
}

impl Watched {
    fn new(max_step_ms: u32) -> Watched {
        Watched {
            playing: false,
            timeline: Timeline::new(max_step_ms),
            first_frame_ms: None,
            max_gap_ms: 0,
            unpublished: 0,
            frames_after_unpublish: 0,
            bytes: 0,
            end: End::Left,
        }
    }
}

/// One read's outcome.
enum Read {
    Bytes(usize),
    Stop,
}

/// The socket side every checking viewer shares: stop, deadline, stall and rate cap.
struct Reader {
    socket: TcpStream,
    options: WatchOptions,
    started: Instant,
    last_frame: Option<Instant>,
}

impl Reader {
    async fn connect(addr: &str, options: WatchOptions) -> Result<Reader, String> {
        let connect = async {
            let addr = tokio::net::lookup_host(addr)
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other("no address"))?;
            let socket = match addr {
                std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            if let Some(size) = options.recv_buffer {
                socket.set_recv_buffer_size(size)?;
            }
            socket.connect(addr).await
        };
        let socket = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| "connect: timed out".to_owned())?
            .map_err(|err| format!("connect: {err}"))?;
        socket.set_nodelay(true).map_err(|err| err.to_string())?;
        Ok(Reader {
            socket,
            options,
            started: Instant::now(),
            last_frame: None,
        })
    }

    async fn read(&mut self, buf: &mut BytesMut, watched: &Watched) -> Result<Read, String> {
        if self.options.stall && watched.first_frame_ms.is_some() {
            self.wait_stop().await;
            return self.drain_after_stall(buf).await;
        }
        buf.reserve(64 * 1024);
        let until = self.options.until;
        let stop = &mut self.options.stop;
        let read = tokio::select! {
            read = self.socket.read_buf(buf) => read,
            _ = stop.wait_for(|s| *s) => return Ok(Read::Stop),
            _ = sleep_until(until) => return Ok(Read::Stop),
        };
        match read {
            Ok(0) => Err("server closed the connection".into()),
            Ok(n) => {
                if let Some(kbps) = self.options.read_kbps {
                    let ms = n as u64 * 8 / kbps.max(1);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Ok(Read::Bytes(n))
            }
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                Err("server closed the connection".into())
            }
            Err(err) => Err(format!("read: {err}")),
        }
    }

    async fn wait_stop(&mut self) {
        let until = self.options.until;
        let stop = &mut self.options.stop;
        tokio::select! {
            _ = stop.wait_for(|s| *s) => {}
            _ = sleep_until(until) => {}
        }
    }

    /// After a stall: reads what is left; the server had cut the viewer when the stream
    /// ends within two seconds.
    async fn drain_after_stall(&mut self, buf: &mut BytesMut) -> Result<Read, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            buf.clear();
            buf.reserve(256 * 1024);
            match tokio::time::timeout_at(deadline, self.socket.read_buf(buf)).await {
                Err(_) => return Ok(Read::Stop),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(String::new()),
                Ok(Ok(_)) => {}
            }
        }
    }

    fn video_frame(&mut self, watched: &mut Watched, timestamp: u32, keyframe: bool) {
        let now = Instant::now();
        if watched.first_frame_ms.is_none() {
            watched.first_frame_ms = Some(self.started.elapsed().as_millis() as u64);
            if let Some(live) = &self.options.live {
                live.started.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(last) = self.last_frame {
            let gap = now.duration_since(last).as_millis() as u64;
            watched.max_gap_ms = watched.max_gap_ms.max(gap);
        }
        self.last_frame = Some(now);
        watched.timeline.push(timestamp);
        if watched.unpublished > 0 {
            watched.frames_after_unpublish += 1;
            if let (1, Some(live)) = (watched.frames_after_unpublish, &self.options.live) {
                live.resumed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(live) = &self.options.live {
            let ms = now.duration_since(self.options.epoch).as_millis() as u64;
            live.frames.fetch_add(1, Ordering::Relaxed);
            live.last_frame_ms.store(ms, Ordering::Relaxed);
            if keyframe {
                live.last_key_ms.store(ms, Ordering::Relaxed);
            }
        }
    }

    fn close(self) {
        if self.options.reset {
            // SO_LINGER 0: the close sends a reset, not a FIN.
            let _ = socket2::SockRef::from(&self.socket).set_linger(Some(Duration::ZERO));
        }
        drop(self.socket);
    }
}

async fn sleep_until(until: Option<tokio::time::Instant>) {
    match until {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Plays `url` over RTMP (a legacy connect, like FFmpeg) with `options`.
pub async fn rtmp(url: &RtmpUrl, options: WatchOptions) -> Watched {
    let mut watched = Watched::new(options.max_step_ms);
    let reader = match Reader::connect(&format!("{}:{}", url.host, url.port), options).await {
        Ok(reader) => reader,
        Err(err) => {
            watched.end = End::Failed(err);
            return watched;
        }
    };
    let (outcome, reader) = rtmp_play(url, reader, &mut watched).await;
    watched.end = match outcome {
        Ok(()) => End::Left,
        Err(err) if err.is_empty() || err == "server closed the connection" => End::ServerClosed,
        Err(err) => End::Failed(err),
    };
    reader.close();
    watched
}

async fn rtmp_play(
    url: &RtmpUrl,
    mut reader: Reader,
    watched: &mut Watched,
) -> (Result<(), String>, Reader) {
    let mut random = [0u8; 1528];
    rand::thread_rng().fill_bytes(&mut random);
    let mut config = ClientConfig::new(&url.authority(), &url.app);
    config.digest_handshake = false;
    config.caps_ex = None;
    let mut session = ClientSession::new(config, Instant::now(), random);
    session.play(Instant::now(), &url.stream);
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if let Err(err) = reader.socket.write_all(&bytes).await {
                return (Err(format!("write: {err}")), reader);
            }
        }
        let n = match reader.read(session.input_buffer(), watched).await {
            Ok(Read::Bytes(n)) => n,
            Ok(Read::Stop) => return (Ok(()), reader),
            Err(err) => return (Err(err), reader),
        };
        watched.bytes += n as u64;
        if let Err(err) = session.handle_buffered_input(Instant::now()) {
            return (Err(format!("session: {err}")), reader);
        }
        while let Some(event) = session.poll_event() {
            match event {
                ClientEvent::PlayStarted { .. } => watched.playing = true,
                ClientEvent::Status { status, .. } => {
                    if status.code == "NetStream.Play.UnpublishNotify" {
                        watched.unpublished += 1;
                    } else if status.level == StatusLevel::Error {
                        return (Err(format!("status {}", status.code)), reader);
                    }
                }
                ClientEvent::Media {
                    media_type: MediaType::Video,
                    timestamp,
                    payload,
                    ..
                } => {
                    let frame = Frame::video(timestamp, payload);
                    if !frame.info.is_sequence_header && frame.info.is_coded_frame {
                        reader.video_frame(watched, timestamp, frame.info.is_keyframe);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Plays `http://{authority}/{app}/{stream}.flv` with `options`.
pub async fn flv(authority: &str, app: &str, stream: &str, options: WatchOptions) -> Watched {
    let mut watched = Watched::new(options.max_step_ms);
    let reader = match Reader::connect(authority, options).await {
        Ok(reader) => reader,
        Err(err) => {
            watched.end = End::Failed(err);
            return watched;
        }
    };
    let path = format!("/{app}/{stream}.flv");
    let (outcome, reader) = flv_play(authority, &path, reader, &mut watched).await;
    watched.end = match outcome {
        Ok(()) => End::Left,
        Err(err) if err.is_empty() || err == "server closed the connection" => End::ServerClosed,
        Err(err) => End::Failed(err),
    };
    reader.close();
    watched
}

async fn flv_play(
    authority: &str,
    path: &str,
    mut reader: Reader,
    watched: &mut Watched,
) -> (Result<(), String>, Reader) {
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    if let Err(err) = reader.socket.write_all(request.as_bytes()).await {
        return (Err(format!("write: {err}")), reader);
    }
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut skip_header = 13usize;
    loop {
        match reader.read(&mut buf, watched).await {
            Ok(Read::Bytes(n)) => watched.bytes += n as u64,
            Ok(Read::Stop) => return (Ok(()), reader),
            Err(err) => return (Err(err), reader),
        }
        if !watched.playing {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > 16 * 1024 {
                    return (Err("response head too long".into()), reader);
                }
                continue;
            };
            if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
                let head = &buf[..end.min(60)];
                let line_end = head.windows(2).position(|w| w == b"\r\n");
                let line = String::from_utf8_lossy(&head[..line_end.unwrap_or(head.len())]);
                return (Err(format!("http: {line}")), reader);
            }
            let _ = buf.split_to(end + 4);
            watched.playing = true;
        }
        if skip_header > 0 {
            let n = skip_header.min(buf.len());
            let _ = buf.split_to(n);
            skip_header -= n;
        }
        // Whole tags: 11-byte header, body, 4-byte back pointer.
        while buf.len() >= 11 {
            let size = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 11 + size + 4 {
                break;
            }
            let kind = buf[0];
            let timestamp = u32::from_be_bytes([buf[7], buf[4], buf[5], buf[6]]);
            let mut tag = buf.split_to(11 + size + 4);
            if kind != 9 {
                continue;
            }
            let _ = tag.split_to(11);
            tag.truncate(size);
            let frame = Frame::video(timestamp, tag.freeze());
            if !frame.info.is_sequence_header && frame.info.is_coded_frame {
                reader.video_frame(watched, timestamp, frame.info.is_keyframe);
            }
        }
    }
}
