//! A measuring player: an RTMP connection that plays one stream and records what arrives.
//!
//! It runs the sans-IO client session directly over the socket (no per-event timers), so one
//! load-generator process can hold thousands of players. It passes the time in with each
//! input but arms none of the session's deadlines: the run's stop signal bounds a player.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_client::RtmpUrl;
use weir_media::Frame;
use weir_rtmp::session::{ClientConfig, ClientEvent, ClientSession, MediaType};

use crate::stamp;

/// What one player saw.
#[derive(Debug, Default)]
pub struct PlayerResult {
    /// Time from TCP connect to the first video frame.
    pub time_to_first_frame: Option<Duration>,
    /// Video frames received inside the measurement window.
    pub video_frames: u64,
    /// Bytes received inside the measurement window.
    pub bytes: u64,
    /// Server-added latency of stamped video frames sent after the player joined (ms).
    pub latencies_ms: Vec<f32>,
    /// LL-HLS: the latency of the last frame of each part (the part is finished when the
    /// frame after it arrives, one frame interval later; what is left is the serving delay).
    pub part_end_latencies_ms: Vec<f32>,
    /// Why the connection ended before the run did, if it did.
    pub disconnect: Option<String>,
    /// An idle player (waits on an unpublished stream; not counted in fps or latency).
    pub idle: bool,
}

/// Flags the load tool shares with every player.
pub struct Shared {
    /// Count frames and bytes only while this is true.
    pub measuring: AtomicBool,
    /// Players stop when this turns true.
    pub stop: AtomicBool,
    /// Wakes waiting players when the run stops.
    pub stop_signal: tokio::sync::watch::Sender<bool>,
    /// Time origin of the frame stamps.
    pub epoch: Instant,
    /// Collect latency samples.
    pub latency: bool,
}

/// Plays `url` until `shared.stop`; `idle` players never expect media (they wait on a stream
/// that is not published).
pub async fn run(url: RtmpUrl, shared: Arc<Shared>, idle: bool) -> PlayerResult {
    let mut result = PlayerResult {
        idle,
        ..PlayerResult::default()
    };
    let started = Instant::now();
    let outcome = play(&url, &shared, idle, started, &mut result).await;
    result.ended(outcome, &shared)
}

async fn play(
    url: &RtmpUrl,
    shared: &Shared,
    idle: bool,
    started: Instant,
    result: &mut PlayerResult,
) -> Result<(), String> {
    let mut socket = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|err| format!("connect: {err}"))?;
    socket.set_nodelay(true).map_err(|err| err.to_string())?;
    let mut random = [0u8; 1528];
    rand::thread_rng().fill_bytes(&mut random);
    let mut config = ClientConfig::new(&url.authority(), &url.app);
    config.digest_handshake = false;
    // A legacy connect, like FFmpeg, ffplay and VLC: no E-RTMP capabilities.
    config.caps_ex = None;
    let mut session = ClientSession::new(config, Instant::now(), random);
    session.play(Instant::now(), &url.stream);
    let joined_ns = shared.epoch.elapsed().as_nanos() as u64;
    let mut stop = shared.stop_signal.subscribe();
    loop {
        while let Some(bytes) = session.poll_transmit() {
            socket
                .write_all(&bytes)
                .await
                .map_err(|err| format!("write: {err}"))?;
        }
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let input = session.input_buffer();
        input.reserve(if idle { 512 } else { 64 * 1024 });
        let read = tokio::select! {
            read = socket.read_buf(input) => read,
            _ = stop.changed() => return Ok(()),
        };
        let n = match read {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => n,
            Err(err) => return Err(format!("read: {err}")),
        };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        if measuring {
            result.bytes += n as u64;
        }
        session
            .handle_buffered_input(Instant::now())
            .map_err(|err| format!("session: {err}"))?;
        let now_ns = shared.epoch.elapsed().as_nanos() as u64;
        while let Some(event) = session.poll_event() {
            let ClientEvent::Media {
                media_type: MediaType::Video,
                payload,
                ..
            } = event
            else {
                continue;
            };
            let frame = Frame::video(0, payload);
            if frame.info.is_sequence_header {
                continue;
            }
            result.video_frame(&frame, shared, started, measuring, (joined_ns, now_ns));
        }
    }
}

impl PlayerResult {
    /// Counts a received video frame (not a sequence header) and its stamp's latency;
    /// `times` are the player's join time and now, in ns since the epoch.
    /// The result once the player stopped: an error before the run's end is its disconnect
    /// reason (after it, closing was the run's doing).
    pub(crate) fn ended(mut self, outcome: Result<(), String>, shared: &Shared) -> PlayerResult {
        if let Err(err) = outcome {
            if !shared.stop.load(Ordering::Relaxed) {
                self.disconnect = Some(err);
            }
        }
        self
    }

    pub(crate) fn video_frame(
        &mut self,
        frame: &Frame,
        shared: &Shared,
        started: Instant,
        measuring: bool,
        (joined_ns, now_ns): (u64, u64),
    ) {
        if self.time_to_first_frame.is_none() {
            self.time_to_first_frame = Some(started.elapsed());
        }
        if !measuring {
            return;
        }
        self.video_frames += 1;
        if shared.latency {
            if let Some(sent_ns) = stamp::read(&frame.payload) {
                if sent_ns >= joined_ns && now_ns >= sent_ns {
                    self.latencies_ms.push((now_ns - sent_ns) as f32 / 1e6);
                }
            }
        }
    }
}
