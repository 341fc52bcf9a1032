//! HTTP-FLV: `GET /{app}/{stream}.flv` streams the live FLV (mpegts.js, flv.js, ffplay, VLC);
//! WebSocket-FLV: the same URL with `Upgrade: websocket` sends the same bytes as binary
//! messages (mpegts.js's WebSocket loader). What a WebSocket client sends is read and
//! dropped (messages over 64 KiB close it); a close frame or a broken socket ends it.
//!
//! The request goes through the access policy like an RTMP play, then one task per viewer
//! runs the shared viewer core (snapshot: metadata, sequence headers, the cached GOP; then
//! live; keyframe gating, rebased timestamps, the RTMP viewers' lag policy) into an FLV sink.
//! The sink writes each tag as its 11-byte header, the frame's shared payload and its back pointer
//! ([`FlvStreamWriter`]). A plain HTTP/1 request (what mpegts.js, flv.js, FFmpeg and VLC send)
//! is served without hyper ([`play_raw`]): the viewer's task writes the response head and then
//! each batch straight to the socket in one vectored write, so an HTTP-FLV viewer costs what an
//! RTMP viewer costs (BENCHMARKS.md §8). HTTP/2, WebSocket and percent-encoded requests go
//! through hyper ([`play`]), the chunks to the body or the WebSocket through a bounded
//! channel. Either way a client that stops reading holds its own task back and is dropped after
//! `rtmp.write_timeout_secs` (or when it falls `streams.max_viewer_lag_secs` behind), never
//! the publisher. The response ends when the publisher leaves (players reconnect).
//! HTTP-FLV viewers get the default track, with every codec (mpegts.js plays HEVC, AV1, Opus
//! and FLAC in enhanced tags), or the track they chose (`?track=N`).

use std::convert::Infallible;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{header, HeaderValue, Response, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::SinkExt;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{info, warn};
use weir_media::flv_stream::FlvStreamWriter;
use weir_media::{track_form, Frame, MediaKind, SingleTrack, TrackKind};

use super::text;
use crate::config::Unadvertised;
use crate::policy::{Client, Decision, StreamRequest};
use crate::registry::{ConnectionHandle, Protocol, Role};
use crate::rtmp::Context;
use crate::stream_key::StreamKey;
use crate::viewer::{Accepts, LagPolicy, Viewer, ViewerSink};

/// Batches of chunks queued for the response body (a batch is what one wake-up of the viewer
/// took from the hub: usually one picture with its audio, three chunks per tag).
const CHANNEL_BATCHES: usize = 64;
/// Bytes the sink gathers before they are handed to the body.
const BATCH_BYTES: usize = 256 * 1024;
/// How often a viewer adds what it wrote to the stream's counters.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Most pieces in one vectored write of the raw path.
const MAX_SLICES: usize = 64;

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Where the FLV stream goes.
pub(super) enum Output {
    /// The response body (HTTP-FLV).
    Body,
    /// Only the headers (`HEAD`): no viewer starts.
    HeadOnly,
    /// Binary messages on a WebSocket (WebSocket-FLV).
    WebSocket(WebSocketUpgrade),
}

/// Largest message a WebSocket-FLV client may send (it has nothing to say).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// A play the policy allowed, of a stream that is published.
pub(super) struct Admitted {
    context: Arc<Context>,
    peer: SocketAddr,
    handle: ConnectionHandle,
    key: StreamKey,
    /// `?track=N`: the (video, audio) track ids instead of the default ones.
    selection: Option<(u8, u8)>,
}

/// The checks of `GET /{app}/{stream}.flv` before any byte of media: the track choice (400),
/// the access policy (403), a publisher (404 at once or after `http.flv_wait_secs`), the
/// chosen track (404). An error is the status and a short text.
pub(super) async fn admit(
    context: Arc<Context>,
    peer: SocketAddr,
    app: &str,
    stream: &str,
    query: Option<&str>,
) -> Result<Admitted, (StatusCode, String)> {
    let mut key = StreamKey::new(app, stream, query);
    let chosen =
        chosen_track(query).map_err(|why| (StatusCode::BAD_REQUEST, format!("{why}\n")))?;
    let handle = context.registry.register(peer, Protocol::HttpFlv);
    let client = Client {
        id: handle.id(),
        peer,
        protocol: Protocol::HttpFlv,
        tc_url: None,
    };
    let request = StreamRequest {
        client,
        key: key.clone(),
    };
    let decision = super::decided(&context, context.policy().play(&request)).await;
    if let Decision::AllowAs(name) = &decision {
        key = StreamKey::new(key.app(), name, key.query());
    }
    if let Decision::Deny(reason) = decision {
        info!(id = handle.id(), peer = %peer, stream = %key, reason = %reason, "http-flv play denied");
        crate::metrics::Metrics::count(
            &context.hub.metrics().denied,
            &[("action", "play"), ("protocol", "http-flv")],
        );
        return Err((StatusCode::FORBIDDEN, format!("{reason}\n")));
    }
    if let Err(why) = crate::cluster::cold_play(&context, &key).await {
        warn!(id = handle.id(), peer = %peer, stream = %key, "http-flv play refused: {why}");
        return Err((StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")));
    }
    let pulled = crate::pull::wanted(&context, &key);
    if !wait_for_publisher(&context, key.path(), pulled).await {
        info!(id = handle.id(), peer = %peer, stream = %key, "http-flv play of a stream nobody publishes: 404");
        return Err((
            StatusCode::NOT_FOUND,
            format!("stream {} is not being published\n", key.path()),
        ));
    }
    let tracks_now = || {
        context
            .hub
            .stream_stats(key.path())
            .map(|s| s.tracks)
            .unwrap_or_default()
    };
    let mut tracks = tracks_now();
    if chosen.is_some() {
        // A publisher that just started has not sent its codec headers yet: a chosen track
        // is checked against them (up to 3 s).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while tracks.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            tracks = tracks_now();
        }
    }
    if let Some(why) = crate::rtmp::over_viewer_limit(&context, &key) {
        info!(id = handle.id(), peer = %peer, stream = %key, "http-flv play refused: {why}");
        return Err((StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")));
    }
    // `?track=N`: video track N, with audio track N if there is one, else the default audio.
    let selection = chosen.map(|n| {
        let has = |kind| tracks.iter().any(|t| t.kind == kind && t.track_id == n);
        (n, if has(TrackKind::Audio) { n } else { 0 })
    });
    if let Some((n, _)) = selection {
        if !tracks.is_empty()
            && !tracks
                .iter()
                .any(|t| t.kind == TrackKind::Video && t.track_id == n)
        {
            let names: Vec<String> = tracks.iter().map(ToString::to_string).collect();
            return Err((
                StatusCode::NOT_FOUND,
                format!(
                    "stream {} has no video track {n} (tracks: {})\n",
                    key.path(),
                    names.join(", ")
                ),
            ));
        }
    }
    Ok(Admitted {
        context,
        peer,
        handle,
        key,
        selection,
    })
}

impl Admitted {
    /// The viewer (a hub subscription through the shared viewer core) and its FLV sink.
    fn start(&self) -> (Viewer, FlvSink) {
        let context = &self.context;
        let subscription = context
            .hub
            .subscribe_viewer(self.key.path(), Protocol::HttpFlv);
        let (flags_audio, flags_video) = flags(&subscription.tracks(), self.selection);
        let max_lag = Duration::from_secs(context.config.streams.max_viewer_lag_secs);
        // A chosen track is cut out of the publisher's Multitrack messages per viewer.
        let accepts = match self.selection {
            Some(_) => Accepts::everything(),
            None => Accepts::new(false, None, None, Unadvertised::Send),
        };
        let viewer = Viewer::new(subscription, LagPolicy::SkipThenDisconnect(max_lag), now())
            .with_accepts(accepts);
        info!(id = self.handle.id(), peer = %self.peer, stream = %self.key, "http-flv play started");
        self.handle.set_role(Role::Playing(self.key.clone()));
        let sink = FlvSink {
            selection: self.selection,
            writer: FlvStreamWriter::new(),
            scratch: BytesMut::new(),
            flags: (flags_audio, flags_video),
            chunks: Vec::new(),
            bytes: 0,
            ended: false,
        };
        (viewer, sink)
    }
}

/// Answers `GET /{app}/{stream}.flv` through hyper: HTTP-FLV (HTTP/2, or a request the raw
/// path leaves to hyper), WebSocket-FLV, or `HEAD`.
pub(super) async fn play(
    context: Arc<Context>,
    peer: SocketAddr,
    app: &str,
    stream: &str,
    query: Option<&str>,
    output: Output,
) -> Response<Body> {
    let admitted = match admit(context, peer, app, stream, query).await {
        Ok(admitted) => admitted,
        Err((status, why)) => return text(status, why),
    };
    let mut response = if matches!(output, Output::HeadOnly) {
        Response::new(Body::empty())
    } else {
        let (viewer, sink) = admitted.start();
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        tokio::spawn(run(admitted, viewer, sink, Delivery::Channel(tx)));
        if let Output::WebSocket(upgrade) = output {
            return upgrade
                .max_message_size(MAX_CLIENT_MESSAGE)
                .max_frame_size(MAX_CLIENT_MESSAGE)
                .on_upgrade(move |socket| forward(socket, rx));
        }
        // One channel message per batch; the body yields its chunks one by one.
        let body = futures_util::stream::unfold(
            (rx, std::collections::VecDeque::new()),
            |(mut rx, mut pending): (
                mpsc::Receiver<Vec<Bytes>>,
                std::collections::VecDeque<Bytes>,
            )| async move {
                loop {
                    if let Some(chunk) = pending.pop_front() {
                        return Some((Ok::<Bytes, Infallible>(chunk), (rx, pending)));
                    }
                    pending.extend(rx.recv().await?);
                }
            },
        );
        Response::new(Body::from_stream(body))
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("video/x-flv"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    response
}

/// HTTP/1 `GET`/`HEAD /{app}/{stream}.flv` on the connection itself, without hyper: the
/// response head, then the FLV written straight to the socket by the viewer's own task (one
/// vectored write per batch, no channel, no second task). Errors are short text answers;
/// the connection closes at the end of every answer.
pub(super) async fn play_raw(
    context: Arc<Context>,
    peer: SocketAddr,
    mut socket: TcpStream,
    request: RawFlvRequest,
) {
    let timeout = context.config.rtmp.write_timeout();
    let admitted = match admit(
        context,
        peer,
        &request.app,
        &request.stream,
        request.query.as_deref(),
    )
    .await
    {
        Ok(admitted) => admitted,
        Err((status, why)) => {
            let head = format!(
                "HTTP/1.{} {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
                 Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
                request.minor_version,
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                why.len()
            );
            let mut answer = head.into_bytes();
            if !request.head_only {
                answer.extend_from_slice(why.as_bytes());
            }
            let _ = tokio::time::timeout(timeout, socket.write_all(&answer)).await;
            return;
        }
    };
    // The status line answers in the request's HTTP version (1.0 or 1.1); the body runs
    // until the connection closes.
    let head = Bytes::from(format!(
        "HTTP/1.{} 200 OK\r\nContent-Type: video/x-flv\r\n\
         Cache-Control: no-cache, no-store\r\nAccess-Control-Allow-Origin: *\r\n\
         Connection: close\r\n\r\n",
        request.minor_version
    ));
    if request.head_only {
        let _ = tokio::time::timeout(timeout, socket.write_all(&head)).await;
        return;
    }
    let (viewer, mut sink) = admitted.start();
    sink.bytes += head.len();
    sink.chunks.push(head);
    run(admitted, viewer, sink, Delivery::Socket(socket)).await;
}

/// What `GET /{app}/{stream}.flv` asked for, read off the raw request head.
pub(super) struct RawFlvRequest {
    /// The app.
    pub app: String,
    /// The stream name (without `.flv`).
    pub stream: String,
    /// The query, if any.
    pub query: Option<String>,
    /// `HEAD`: the response head only.
    pub head_only: bool,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
}

/// Moves the FLV chunks to the WebSocket as binary messages (the payloads are not copied),
/// reading and dropping what the client sends; ends with either side.
async fn forward(mut socket: WebSocket, mut rx: mpsc::Receiver<Vec<Bytes>>) {
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    // Queued without a flush each, then flushed once: one write per batch.
                    for chunk in batch {
                        if socket.feed(Message::Binary(chunk)).await.is_err() {
                            return;
                        }
                    }
                    if socket.flush().await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Whether `path` is published, waiting up to `http.flv_wait_secs` for a publisher.
/// How long an HTTP-FLV request for a pulled stream waits for the upstream's first frames.
const PULL_WAIT_SECS: u64 = 10;

async fn wait_for_publisher(context: &Context, path: &str, pulled: bool) -> bool {
    let published = || {
        context
            .hub
            .stream_stats(path)
            .is_some_and(|stats| stats.published)
    };
    // A pulled stream gets the time an upstream takes to answer.
    let wait = match pulled {
        true => context.config.http.flv_wait_secs.max(PULL_WAIT_SECS),
        false => context.config.http.flv_wait_secs,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        if published() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The FLV header's audio and video flags: the tracks the stream has (both when it has
/// announced none yet).
fn flags(tracks: &[weir_media::TrackInfo], selection: Option<(u8, u8)>) -> (bool, bool) {
    if tracks.is_empty() {
        return (true, true);
    }
    let (video, audio) = selection.unwrap_or((0, 0));
    let has = |kind, id| tracks.iter().any(|t| t.kind == kind && t.track_id == id);
    (has(TrackKind::Audio, audio), has(TrackKind::Video, video))
}

/// `?track=N` of the query, if any.
fn chosen_track(query: Option<&str>) -> Result<Option<u8>, &'static str> {
    let Some(value) = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("track="))
    else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| "track must be a track number from 0 to 255")
}

/// Turns the viewer core's frames into FLV chunks.
struct FlvSink {
    /// `?track=N`: the (video, audio) track ids this viewer gets instead of the default ones.
    selection: Option<(u8, u8)>,
    writer: FlvStreamWriter,
    /// Where the per-tag headers and back pointers are written (one allocation for many).
    scratch: BytesMut,
    flags: (bool, bool),
    chunks: Vec<Bytes>,
    bytes: usize,
    /// The publisher left: the response ends.
    ended: bool,
}

impl ViewerSink for FlvSink {
    fn frame(&mut self, frame: &Frame, timestamp: u32) {
        if self.ended {
            return;
        }
        if !self.writer.started() {
            let header = self.writer.header(self.flags.0, self.flags.1);
            self.bytes += header.len();
            self.chunks.push(header);
        }
        let reframed;
        let frame = match (self.selection, frame.kind) {
            (Some((video, audio)), kind @ (MediaKind::Video | MediaKind::Audio)) => {
                let (track_kind, id) = if kind == MediaKind::Video {
                    (TrackKind::Video, video)
                } else {
                    (TrackKind::Audio, audio)
                };
                match track_form(track_kind, &frame.payload, id) {
                    SingleTrack::AsIs => frame,
                    SingleTrack::Rebuilt(payload) => {
                        reframed = match kind {
                            MediaKind::Video => Frame::video(frame.timestamp, payload),
                            _ => Frame::audio(frame.timestamp, payload),
                        };
                        &reframed
                    }
                    SingleTrack::Withheld(_) => return,
                }
            }
            _ => frame,
        };
        if let Some(chunks) = self.writer.tag(frame, timestamp, &mut self.scratch) {
            for chunk in chunks {
                self.bytes += chunk.len();
                self.chunks.push(chunk);
            }
        }
    }

    fn publisher_left(&mut self) {
        self.ended = true;
    }

    fn is_full(&self) -> bool {
        self.bytes >= BATCH_BYTES
    }
}

/// Where a viewer's FLV batches go.
enum Delivery {
    /// The hyper response body or the WebSocket, through a bounded channel.
    Channel(mpsc::Sender<Vec<Bytes>>),
    /// The connection's socket, written by the viewer's own task.
    Socket(TcpStream),
}

impl Delivery {
    /// Hands over one batch, within `timeout`.
    async fn deliver(&mut self, batch: Vec<Bytes>, timeout: Duration) -> Result<(), String> {
        match self {
            Delivery::Channel(tx) => match tokio::time::timeout(timeout, tx.send(batch)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err("client closed the connection".to_owned()),
                Err(_) => Err("write timed out (rtmp.write_timeout_secs, or streams.max_viewer_lag_secs if shorter)".to_owned()),
            },
            Delivery::Socket(socket) => write_chunks(socket, &batch, timeout).await,
        }
    }

    /// Resolves when the client went away (a raw socket: it closed or reset the
    /// connection; whatever else it sends is read and dropped).
    async fn closed(&mut self) {
        match self {
            Delivery::Channel(tx) => tx.closed().await,
            Delivery::Socket(socket) => {
                let mut scratch = [0u8; 1024];
                loop {
                    if socket.readable().await.is_err() {
                        return;
                    }
                    match socket.try_read(&mut scratch) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            }
        }
    }
}

/// Writes `chunks` in vectored writes; a timer is armed only when the socket is full.
async fn write_chunks(
    socket: &mut TcpStream,
    chunks: &[Bytes],
    timeout: Duration,
) -> Result<(), String> {
    let (mut index, mut offset) = (0usize, 0usize);
    while index < chunks.len() {
        if chunks[index].len() == offset {
            index += 1;
            offset = 0;
            continue;
        }
        let mut slices = Vec::with_capacity(MAX_SLICES.min(chunks.len() - index));
        slices.push(IoSlice::new(&chunks[index][offset..]));
        slices.extend(
            chunks[index + 1..]
                .iter()
                .take(MAX_SLICES - 1)
                .map(|c| IoSlice::new(c)),
        );
        let first = std::future::poll_fn(|cx| {
            Poll::Ready(Pin::new(&mut *socket).poll_write_vectored(cx, &slices))
        })
        .await;
        let written = match first {
            Poll::Ready(result) => result,
            Poll::Pending => {
                match tokio::time::timeout(timeout, socket.write_vectored(&slices)).await {
                    Ok(result) => result,
                    Err(_) => return Err("write timed out (rtmp.write_timeout_secs, or streams.max_viewer_lag_secs if shorter)".to_owned()),
                }
            }
        };
        let mut written = match written {
            Ok(0) => return Err("client closed the connection".to_owned()),
            Ok(n) => n,
            Err(err) => return Err(format!("write failed: {err}")),
        };
        drop(slices);
        while written > 0 {
            let left = chunks[index].len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    Ok(())
}

/// One viewer's task: the viewer core into its delivery until something ends it.
async fn run(admitted: Admitted, mut viewer: Viewer, mut sink: FlvSink, mut delivery: Delivery) {
    let Admitted {
        context,
        mut handle,
        key,
        peer,
        ..
    } = admitted;
    let started = now();
    let write_timeout = crate::rtmp::connection::write_timeout(&context.config, true);
    let closed = handle.closed();
    tokio::pin!(closed);
    let (mut bytes_out, mut unreported, mut reported_frames) = (0u64, 0u64, 0u64);
    let mut reported_at = started;
    // Merged writes under a latency budget from `streams.max_added_latency_ms`: after a write,
    // the viewer stops receiving for the budget, then takes everything queued at once.
    let merge = context.config.streams.merge_window();
    let mut quiet_until: Option<tokio::time::Instant> = None;
    viewer.start(&mut sink);
    let reason = loop {
        if !sink.chunks.is_empty() {
            // A drain that stopped at a full batch left frames in the ring: no quiet time then.
            let full = sink.is_full();
            let batch = std::mem::take(&mut sink.chunks);
            let len = sink.bytes as u64;
            if let Err(reason) = delivery.deliver(batch, write_timeout).await {
                break reason;
            }
            bytes_out += len;
            unreported += len;
            if !merge.is_zero() {
                let at = match full {
                    true => now(),
                    false => crate::viewer::merged_until(context.merge_epoch, now(), merge),
                };
                quiet_until = Some(at.into());
            }
        }
        sink.bytes = 0;
        if sink.ended {
            break "publisher stopped".to_owned();
        }
        let now = now();
        if now.saturating_duration_since(reported_at) >= REPORT_EVERY {
            let frames = viewer.core().frames_sent();
            viewer
                .subscription()
                .record_output(frames - reported_frames, unreported);
            handle.add_bytes_out(unreported);
            (reported_frames, unreported, reported_at) = (frames, 0, now);
        }
        let quiet = async {
            match quiet_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = viewer.recv(), if quiet_until.is_none() => {
                if let Err(lagging) = viewer.handle_recv(received, &mut sink, crate::http::flv::now()) {
                    break lagging.to_string();
                }
            }
            () = quiet => {
                quiet_until = None;
                if let Err(lagging) = viewer.drain(&mut sink, crate::http::flv::now()) {
                    break lagging.to_string();
                }
            }
            () = delivery.closed() => break "client closed the connection".to_owned(),
            request = &mut closed => break request.reason,
        }
    };
    let frames = viewer.core().frames_sent();
    viewer
        .subscription()
        .record_output(frames - reported_frames, unreported);
    let skipped = viewer.core().frames_skipped();
    viewer.subscription().record_skipped(skipped);
    let class = match reason.as_str() {
        "client closed the connection" => "peer_closed",
        "publisher stopped" => "publisher_stopped",
        r if r.contains("behind") || r.contains("lag") => "lagging",
        r if r.contains("timed out") => "write_timeout",
        _ => "closed",
    };
    crate::metrics::Metrics::count(
        &context.hub.metrics().disconnects,
        &[
            ("protocol", "http-flv"),
            ("role", "player"),
            ("reason", class),
        ],
    );
    handle.add_bytes_out(unreported);
    info!(
        id = handle.id(),
        stream = %key,
        frames,
        skipped = viewer.core().frames_skipped(),
        bytes_out,
        duration_s = format!("{:.1}", now().saturating_duration_since(started).as_secs_f64()),
        reason = %reason,
        "http-flv play ended"
    );
    context.policy().ended(&crate::policy::Ended {
        what: crate::policy::Ending::Play,
        request: StreamRequest {
            client: Client {
                id: handle.id(),
                peer,
                protocol: Protocol::HttpFlv,
                tc_url: None,
            },
            key,
        },
        duration: now().saturating_duration_since(started),
        bytes: bytes_out,
        reason,
    });
}
