//! One RTMP connection: a byte stream around a sans-IO `ServerSession`, the policy's answers
//! to its requests, and the bridge between its events and the hub.
//!
//! The driver is generic over the byte stream (TCP, TLS, an in-memory pipe) and reads its
//! clock through tokio, so tests run it on paused time.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, info, warn};
use weir_media::Frame;
use weir_rtmp::session::{MediaType, PublishRejection, ServerEvent, ServerSession, SessionError};

use super::player::Player;
use super::Context;
use crate::config::Unadvertised;
use crate::hub::{Packet, PublishError, Publisher};
use crate::metrics::Metrics;
use crate::policy::{self, Answer, Decision, StreamRequest};
use crate::registry::{CloseRequest, ConnectionHandle, Protocol, Role};
use crate::stream_key::StreamKey;
use crate::viewer::{Accepts, Lagging};

/// Read buffer of a connection that publishes; others keep a small one, so that thousands of
/// idle players cost little memory.
const PUBLISHER_READ_SIZE: usize = 64 * 1024;
/// Read buffer of a connection that does not publish.
const READ_SIZE: usize = 2 * 1024;
/// Most pieces handed to one vectored write (Linux's IOV_MAX is 1024).
const MAX_IO_SLICES: usize = 512;

/// The current time, from tokio's clock (which tests can pause and advance).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A publishing message stream.
struct Publication {
    publisher: Publisher,
    key: StreamKey,
    started: Instant,
    /// The tracks were described in the log (once a second of media came in).
    tracks_logged: bool,
    /// When to look at the tracks next, until they are described.
    tracks_check_at: Instant,
    /// A tag header weir could not parse was logged.
    warned_header: bool,
    /// The stream's cluster lease, given back when the publication ends.
    _lease: Option<crate::cluster::LeaseGuard>,
}

/// Time a publication has been live before its tracks are described in the log (then as
/// soon as every video track's frame rate is measured, at the latest 5 times this).
const DESCRIBE_TRACKS_AFTER: Duration = Duration::from_secs(1);

/// A request waiting for the policy.
struct PendingRequest {
    request: Request,
    answer: Pin<Box<dyn Future<Output = Decision> + Send>>,
    since: Instant,
}

/// What a pending decision is about.
enum Request {
    Connect,
    Publish {
        stream_id: u32,
        key: StreamKey,
        publish_type: String,
        /// Waiting for a replaced publisher to leave (no second takeover then).
        taking_over: bool,
    },
    Play {
        stream_id: u32,
        key: StreamKey,
    },
}

/// Connection-level state the driver keeps beside the session.
struct Connection {
    handle: ConnectionHandle,
    peer: SocketAddr,
    protocol: Protocol,
    app: String,
    /// The tcUrl of its `connect`.
    tc_url: Option<String>,
    /// What the client said it can take in `connect`, under `[playback]`.
    accepts: Accepts,
    /// The client set `capsEx` Reconnect in `connect`.
    reconnect: bool,
    context: Arc<Context>,
    publications: HashMap<u32, Publication>,
    player: Option<Player>,
    /// Boxed: most connections never wait for a decision, and every byte of the connection's
    /// state is paid once per viewer.
    pending: Option<Box<PendingRequest>>,
    /// Cluster: a publish's lease claim while it is decided, then the lease until the
    /// publication takes it.
    claim: Option<Arc<crate::cluster::ClaimSlot>>,
    lease: Option<crate::cluster::LeaseGuard>,
    /// Cluster: the play's stream was looked up in Redis (a stream this node has not).
    looked_up: bool,
    /// This connection is another cluster node pulling a stream this node is the origin of.
    cluster_pull: bool,
}

/// A connection asked to reconnect by a drain, served until `until`.
struct Draining {
    until: Instant,
    reason: String,
}

/// Why the connection ended, for the close log line.
enum End {
    PeerClosed,
    Session(SessionError),
    Io(std::io::Error),
    WriteTimeout,
    Lagging(Lagging),
    Rejected,
    Closed(String),
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PeerClosed => write!(f, "peer closed the connection"),
            Self::Session(err) => write!(f, "{err}"),
            Self::Io(err) => write!(f, "socket error: {err}"),
            Self::WriteTimeout => write!(
                f,
                "write timed out (rtmp.write_timeout_secs; for a player \
                 streams.max_viewer_lag_secs if shorter)"
            ),
            Self::Lagging(lagging) => write!(f, "{lagging}"),
            Self::Rejected => write!(f, "connection rejected"),
            Self::Closed(reason) => write!(f, "{reason}"),
        }
    }
}

/// Runs a connection to its end and logs how it ended.
pub(crate) async fn run<S>(mut io: S, peer: SocketAddr, protocol: Protocol, context: Arc<Context>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let started = now();
    let mut conn = Connection {
        handle: context.registry.register(peer, protocol),
        peer,
        protocol,
        app: String::new(),
        tc_url: None,
        accepts: Accepts::legacy(Unadvertised::Send),
        reconnect: false,
        context: Arc::clone(&context),
        publications: HashMap::new(),
        player: None,
        pending: None,
        claim: None,
        lease: None,
        looked_up: false,
        cluster_pull: false,
    };
    let mut session = ServerSession::new(context.session.clone(), started, random_block());
    let mut buf = BytesMut::new();
    debug!(id = conn.id(), %peer, %protocol, "rtmp connection accepted");

    // Write coalescing for players, from the latency budget (`streams.max_added_latency_ms`).
    // Below the merge threshold a picture goes out at once, with whatever waits; audio and
    // metadata alone wait at most `audio_hold` for the next picture, so the small audio
    // frames between two pictures cost no write of their own.
    let audio_hold = context.config.streams.audio_hold();
    let mut flush_due: Option<Instant> = None;
    // From the threshold on, merged writes: after a write the player stops receiving for
    // `merge` (no wake-up per picture), then takes everything queued and writes it at once.
    let merge = context.config.streams.merge_window();
    let mut quiet_until: Option<Instant> = None;
    let pause_reading_at = context.session.max_pending_input / 2;
    // The connection's own close signal (a kick, or the server's shutdown through
    // `Registry::close_all`): a oneshot pinned once, so polling it on every turn of the loop
    // takes no lock and shares nothing with other connections.
    let closed = conn.handle.closed();
    tokio::pin!(closed);
    // Set when a drain asked the client to reconnect: served until then.
    let mut draining: Option<Box<Draining>> = None;
    let end = loop {
        // One timer for the session's deadline and the drain's end.
        let deadline = match (session.poll_timeout(), draining.as_ref().map(|d| d.until)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let flush_timer = async {
            match flush_due.or(quiet_until) {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut from_player = false;
        // While a request waits for the policy, the session only buffers input; past half its
        // cap, stop reading and let TCP hold the client back instead of failing it.
        let reading = !(session.is_waiting() && session.buffered_input() >= pause_reading_at);
        let step: Result<(), End> = tokio::select! {
            read = read_some(&mut io, &mut buf, !conn.publications.is_empty()), if reading => match read {
                Ok(0) => Err(End::PeerClosed),
                Ok(_) => {
                    let now = now();
                    let result = session
                        .handle_input_buf(now, &mut buf)
                        .map_err(End::Session)
                        .and_then(|()| conn.handle_events(&mut session, now));
                    conn.handle.set_bytes_in(session.bytes_received());
                    result
                }
                Err(err) => Err(End::Io(err)),
            },
            received = recv_packet(&mut conn.player), if conn.player.is_some() && quiet_until.is_none() => {
                from_player = true;
                match conn.player.as_mut() {
                    Some(player) => player
                        .handle_recv(&mut session, received, now())
                        .map_err(End::Lagging),
                    None => Ok(()),
                }
            }
            decision = wait_for(&mut conn.pending), if conn.pending.is_some() => {
                conn.decided(&mut session, decision)
                    .and_then(|()| conn.handle_events(&mut session, now()))
            }
            () = sleep => {
                let now = now();
                match draining.as_ref().filter(|d| now >= d.until) {
                    Some(d) => Err(End::Closed(format!(
                        "{} (asked to reconnect, still connected after rtmp.drain_timeout_secs)",
                        d.reason
                    ))),
                    None => session
                        .handle_timeout(now)
                        .map_err(End::Session)
                        .and_then(|()| conn.handle_events(&mut session, now)),
                }
            }
            () = flush_timer => match (quiet_until.take(), conn.player.as_mut()) {
                // The quiet time of merged writes is over: take what came meanwhile.
                (Some(_), Some(player)) => {
                    from_player = true;
                    player.drain(&mut session, now()).map_err(End::Lagging)
                }
                _ => Ok(()),
            },
            request = &mut closed, if draining.is_none() => {
                conn.close_requested(&mut session, request)
                    .map(|drain| draining = Some(drain))
            }
        };
        if let Err(end) = step {
            // Send what is queued (a rejection, a status) before closing.
            let _ = flush(&mut session, &mut io, &mut conn, now()).await;
            break end;
        }
        let now = now();
        if from_player && !merge.is_zero() {
            // Merged writes: write what was taken, then stay quiet for the budget. A drain
            // that found nothing goes back to waiting for the next packet.
            let queued = session.pending_output();
            if queued == 0 {
                continue;
            }
            if let Err(end) = flush(&mut session, &mut io, &mut conn, now).await {
                break end;
            }
            // A drain that stopped at a full write batch left frames in the ring: take them
            // at once (a stream above a batch per budget must not fall behind).
            quiet_until = Some(if queued >= super::player::WRITE_BATCH_BYTES {
                now
            } else {
                crate::viewer::merged_until(context.merge_epoch, now, merge)
            });
            continue;
        }
        let video_queued = conn.player.as_mut().is_some_and(Player::take_video_queued);
        let hold = if video_queued {
            Duration::ZERO
        } else {
            audio_hold
        };
        if from_player && !hold.is_zero() {
            // The deadline is set by the first frame held: nothing waits longer than `hold`.
            let due = *flush_due.get_or_insert(now + hold);
            if now < due {
                continue;
            }
        }
        if let Err(end) = flush(&mut session, &mut io, &mut conn, now).await {
            break end;
        }
        flush_due = None;
        if session.is_closing() {
            break End::Rejected;
        }
    };
    // Bounded: a TLS close writes, and the peers that end here often stopped reading.
    let _ = tokio::time::timeout(context.config.rtmp.write_timeout(), io.shutdown()).await;
    if matches!(end, End::Rejected) {
        linger(&mut io).await;
    }
    conn.finish(&end);
    let info = conn.handle.info();
    info!(
        id = conn.id(),
        peer = %peer,
        %protocol,
        app = %conn.app,
        bytes_in = session.bytes_received(),
        bytes_out = info.bytes_out,
        duration_s = format!("{:.1}", now().saturating_duration_since(started).as_secs_f64()),
        reason = %end,
        "rtmp connection closed"
    );
}

/// A refused client may still be sending (an encoder streams right behind its `publish`);
/// closing with its bytes unread would reset the connection and could lose the refusal we
/// just wrote. So read and drop what it sends until it closes, at most 1 s and 1 MiB.
async fn linger<S: AsyncRead + Unpin>(io: &mut S) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    let mut scratch = vec![0u8; 16 * 1024];
    let mut total = 0usize;
    while total < 1 << 20 {
        match tokio::time::timeout_at(deadline, io.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
}

/// Reads whatever is available into `buf`.
async fn read_some<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
    publishing: bool,
) -> std::io::Result<usize> {
    buf.reserve(if publishing {
        PUBLISHER_READ_SIZE
    } else {
        READ_SIZE
    });
    io.read_buf(buf).await
}

async fn recv_packet(
    player: &mut Option<Player>,
) -> Result<Packet, tokio::sync::broadcast::error::RecvError> {
    match player {
        Some(player) => player.recv().await,
        None => std::future::pending().await,
    }
}

/// Why one more viewer of `key` is refused, if it is: `apps.NAME.max_viewers_per_stream`.
pub(crate) fn over_viewer_limit(context: &Context, key: &StreamKey) -> Option<String> {
    let live = context.live();
    let rules = live.app_rules(key.app())?;
    let max = rules.max_viewers_per_stream;
    let viewers = context
        .hub
        .stream_stats(key.path())
        .map_or(0, |s| s.viewer_count());
    (max > 0 && viewers >= max).then(|| {
        format!(
            "stream {key} has its maximum of {max} viewers (apps.{}.max_viewers_per_stream)",
            if context.config.apps.contains_key(key.app()) {
                key.app()
            } else {
                "default"
            }
        )
    })
}

/// Why one more published stream in `key`'s app is refused, if it is:
/// `apps.NAME.max_publishers`.
fn over_publisher_limit(context: &Context, key: &StreamKey) -> Option<String> {
    let live = context.live();
    let rules = live.app_rules(key.app())?;
    let max = rules.max_publishers;
    if max == 0 {
        return None;
    }
    let prefix = format!("{}/", key.app());
    let published = context
        .hub
        .published_keys()
        .iter()
        .filter(|k| k.starts_with(&prefix) && k.as_str() != key.path())
        .count();
    (published >= max).then(|| {
        format!(
            "application {} has its maximum of {max} published streams (apps.{}.max_publishers)",
            key.app(),
            if context.config.apps.contains_key(key.app()) {
                key.app()
            } else {
                "default"
            }
        )
    })
}

/// The policy's decision on the pending request.
async fn wait_for(pending: &mut Option<Box<PendingRequest>>) -> Decision {
    match pending {
        Some(pending) => pending.answer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Writes everything the session queued, bounded by the write timeout. A backlog goes out in
/// one vectored write (up to [`MAX_IO_SLICES`] pieces), payloads straight from the shared
/// frame buffers.
async fn flush<S: AsyncWrite + Unpin>(
    session: &mut ServerSession,
    io: &mut S,
    conn: &mut Connection,
    now: Instant,
) -> Result<(), End> {
    let queue = session.transmit_queue();
    if queue.is_empty() {
        return Ok(());
    }
    let timeout = write_timeout(&conn.context.config, conn.player.is_some());
    let mut total = 0;
    while !queue.is_empty() {
        let mut slices = Vec::with_capacity(16);
        queue.io_slices(&mut slices, MAX_IO_SLICES);
        let written = match tokio::time::timeout(timeout, io.write_vectored(&slices)).await {
            Ok(Ok(0)) => return Err(End::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => n,
            Ok(Err(err)) => return Err(End::Io(err)),
            Err(_) => return Err(End::WriteTimeout),
        };
        drop(slices);
        queue.advance(written);
        total += written as u64;
    }
    flush_io(io, timeout).await?;
    conn.handle.add_bytes_out(total);
    if let Some(player) = conn.player.as_mut() {
        player.wrote(total, now);
    }
    Ok(())
}

/// How long one write may make no progress: `rtmp.write_timeout_secs`, and for a player at
/// most `streams.max_viewer_lag_secs` too: a player whose socket takes nothing for that long
/// is at least that far behind the live edge, so the lag policy cuts it then (it could not
/// see the lag otherwise: nothing is taken from its queue while the write waits).
pub(crate) fn write_timeout(config: &crate::config::Config, playing: bool) -> Duration {
    let timeout = config.rtmp.write_timeout();
    match playing {
        true => timeout.min(Duration::from_secs(
            config.streams.max_viewer_lag_secs.max(1),
        )),
        false => timeout,
    }
}

/// Flushes the stream: a TLS stream keeps written bytes in its own buffer until then. TCP's
/// flush is ready at once, and then no timer is armed.
async fn flush_io<S: AsyncWrite + Unpin>(io: &mut S, timeout: Duration) -> Result<(), End> {
    let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *io).poll_flush(cx))).await;
    let result = match first {
        Poll::Ready(result) => result,
        Poll::Pending => match tokio::time::timeout(timeout, io.flush()).await {
            Ok(result) => result,
            Err(_) => return Err(End::WriteTimeout),
        },
    };
    result.map_err(End::Io)
}

impl Connection {
    fn id(&self) -> u64 {
        self.handle.id()
    }

    fn client(&self) -> policy::Client {
        policy::Client {
            id: self.id(),
            peer: self.peer,
            protocol: self.protocol,
            tc_url: self.tc_url.clone(),
        }
    }

    fn handle_events(&mut self, session: &mut ServerSession, now: Instant) -> Result<(), End> {
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::ConnectRequested(request) => {
                    self.app = request.app.clone();
                    self.tc_url = request.tc_url.clone();
                    if let Some(agent) = &request.flash_version {
                        self.handle.set_agent(agent);
                    }
                    self.reconnect = request.capabilities.reconnect();
                    let live = self.context.live();
                    let playback = &live.playback;
                    self.accepts = Accepts::from_capabilities(
                        &request.capabilities,
                        playback.multitrack_for(&request.app),
                        playback.unadvertised_for(&request.app),
                    );
                    info!(
                        id = self.id(),
                        peer = %self.peer,
                        app = %request.app,
                        tc_url = request.tc_url.as_deref().unwrap_or(""),
                        flash_ver = request.flash_version.as_deref().unwrap_or(""),
                        "rtmp connect"
                    );
                    let request = policy::ConnectRequest {
                        client: self.client(),
                        app: request.app,
                        query: request.query,
                        tc_url: request.tc_url,
                        flash_version: request.flash_version,
                    };
                    let answer = self.context.policy().connect(&request);
                    self.ask(session, Request::Connect, answer)?;
                }
                ServerEvent::PublishRequested(request) => {
                    let key =
                        StreamKey::new(&self.app, &request.stream_name, request.query.as_deref());
                    let answer = self.context.policy().publish(&StreamRequest {
                        client: self.client(),
                        key: key.clone(),
                    });
                    let request = Request::Publish {
                        stream_id: request.stream_id,
                        key,
                        publish_type: request.publish_type,
                        taking_over: false,
                    };
                    self.ask(session, request, answer)?;
                }
                ServerEvent::PlayRequested(request) => {
                    let key =
                        StreamKey::new(&self.app, &request.stream_name, request.query.as_deref());
                    if self.player.is_some() {
                        warn!(id = self.id(), stream = %key, "play rejected: this connection already plays a stream");
                        session
                            .reject_play(request.stream_id, "one stream per connection")
                            .map_err(End::Session)?;
                        continue;
                    }
                    let answer = match self.cluster_pull_answer(&key) {
                        Some(answer) => answer,
                        None => self.context.policy().play(&StreamRequest {
                            client: self.client(),
                            key: key.clone(),
                        }),
                    };
                    let request = Request::Play {
                        stream_id: request.stream_id,
                        key,
                    };
                    self.ask(session, request, answer)?;
                }
                ServerEvent::RequestTimedOut { stream_id } => {
                    if let Some(pending) = self.pending.take() {
                        warn!(
                            id = self.id(),
                            peer = %self.peer,
                            stream_id,
                            waited_s = format!("{:.1}", now.saturating_duration_since(pending.since).as_secs_f64()),
                            "request refused: no policy decision in time (rtmp.request_timeout_secs)"
                        );
                    }
                }
                ServerEvent::Media {
                    stream_id,
                    media_type,
                    timestamp,
                    payload,
                } => {
                    if let Some(publication) = self.publications.get_mut(&stream_id) {
                        let frame = match media_type {
                            MediaType::Audio => Frame::audio(timestamp, payload),
                            MediaType::Video => Frame::video(timestamp, payload),
                        };
                        if frame.info.codec.is_none() && !publication.warned_header {
                            if let Some(err) = header_error(&frame) {
                                publication.warned_header = true;
                                warn!(
                                    id = self.handle.id(),
                                    stream = %publication.key,
                                    kind = ?frame.kind,
                                    "a media tag header weir does not understand ({err}); \
                                     such messages are forwarded as they are (logged once)"
                                );
                            }
                        }
                        publication.publisher.send_at(frame, now);
                        let live_for = now.saturating_duration_since(publication.started);
                        if !publication.tracks_logged && now >= publication.tracks_check_at {
                            // Looked at a few times a second, not per frame (it locks the
                            // stream and copies its track table).
                            publication.tracks_check_at = now + Duration::from_millis(250);
                            let tracks = publication.publisher.tracks();
                            // Wait for the frame rates, up to a few seconds.
                            let rates_known = tracks.iter().all(|t| {
                                t.kind == weir_media::TrackKind::Video && t.frame_rate().is_some()
                                    || t.kind == weir_media::TrackKind::Audio
                            });
                            if !rates_known && live_for < DESCRIBE_TRACKS_AFTER * 5 {
                                continue;
                            }
                            publication.tracks_logged = true;
                            info!(
                                id = self.handle.id(),
                                stream = %publication.key,
                                tracks = %describe_tracks(&tracks),
                                "publish tracks"
                            );
                        }
                    }
                }
                ServerEvent::Metadata {
                    stream_id,
                    timestamp,
                    payload,
                } => {
                    if let Some(publication) = self.publications.get_mut(&stream_id) {
                        debug!(stream = %publication.key, "metadata updated");
                        publication
                            .publisher
                            .send_at(Frame::data(timestamp, payload), now);
                    }
                }
                ServerEvent::PublishStopped { stream_id } => {
                    if let Some(publication) = self.publications.remove(&stream_id) {
                        self.log_publish_end(&publication, "publisher stopped");
                        self.set_idle_role();
                    }
                }
                ServerEvent::PlayStopped { stream_id } => {
                    if self.player.as_ref().map(|p| p.stream_id) == Some(stream_id) {
                        if let Some(player) = self.player.take() {
                            self.play_ended(player, now, "player stopped");
                            self.set_idle_role();
                        }
                    }
                }
                ServerEvent::PlayPaused { stream_id, paused } => {
                    debug!(id = self.id(), stream_id, paused, "play paused");
                    if let Some(player) = self.player.as_mut().filter(|p| p.stream_id == stream_id)
                    {
                        // Frames were dropped while paused: resume on a keyframe.
                        player.skip_to_keyframe();
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies a ready answer at once; parks a pending one as a branch of the driver loop.
    fn ask(
        &mut self,
        session: &mut ServerSession,
        request: Request,
        answer: Answer,
    ) -> Result<(), End> {
        match answer {
            Answer::Ready(decision) => self.decide(session, request, decision),
            Answer::Pending(answer) => {
                debug!(id = self.id(), "waiting for the policy's decision");
                self.pending = Some(Box::new(PendingRequest {
                    request,
                    answer,
                    since: now(),
                }));
                Ok(())
            }
        }
    }

    /// The parked request was decided.
    fn decided(&mut self, session: &mut ServerSession, decision: Decision) -> Result<(), End> {
        match self.pending.take() {
            Some(pending) => {
                let PendingRequest { request, .. } = *pending;
                self.decide(session, request, decision)
            }
            None => Ok(()),
        }
    }

    fn decide(
        &mut self,
        session: &mut ServerSession,
        request: Request,
        decision: Decision,
    ) -> Result<(), End> {
        if matches!(decision, Decision::Deny(_)) {
            let action = match request {
                Request::Connect => "connect",
                Request::Publish { .. } => "publish",
                Request::Play { .. } => "play",
            };
            Metrics::count(
                &self.context.hub.metrics().denied,
                &[("action", action), ("protocol", self.protocol.as_str())],
            );
        }
        match (request, decision) {
            (Request::Connect, Decision::Allow | Decision::AllowAs(_)) => {
                self.handle.set_role(Role::Connected {
                    app: self.app.clone(),
                });
                session.accept_connect().map_err(End::Session)
            }
            (Request::Connect, Decision::Deny(why)) => {
                warn!(id = self.id(), peer = %self.peer, app = %self.app, "connect rejected: {why}");
                session.reject_connect(&why);
                Err(End::Rejected)
            }
            (
                Request::Publish {
                    stream_id,
                    key,
                    publish_type,
                    taking_over,
                },
                Decision::Allow,
            ) => self.start_publish(session, stream_id, key, &publish_type, taking_over),
            (
                Request::Publish {
                    stream_id,
                    key,
                    publish_type,
                    taking_over,
                },
                Decision::AllowAs(name),
            ) => {
                // The key stays out of the log: only its public name is told.
                let public = StreamKey::new(key.app(), &name, key.query());
                info!(id = self.id(), peer = %self.peer, stream = %public,
                    "publish accepted under the public name its key maps to");
                self.start_publish(session, stream_id, public, &publish_type, taking_over)
            }
            (Request::Publish { stream_id, key, .. }, Decision::Deny(why)) => {
                self.claim = None;
                self.lease = None;
                // In an app whose publishers use secret keys, what was tried stays out of
                // the log (it may be a mistyped real key).
                let shown = if self.context.live().publish_uses_keys(key.app()) {
                    format!("{}/(key withheld)", key.app())
                } else {
                    key.to_string()
                };
                warn!(id = self.id(), peer = %self.peer, stream = %shown,
                    "publish rejected: {why} (NetStream.Publish.BadName, connection closed)");
                // BadName and a closed connection: OBS shows the error instead of retrying
                // the same publish in a loop (a refusal it did not understand would).
                session
                    .reject_publish(stream_id, PublishRejection::BadName, &why)
                    .map_err(End::Session)?;
                Err(End::Rejected)
            }
            (Request::Play { stream_id, key }, Decision::Allow) => {
                self.start_play(session, stream_id, key)
            }
            (Request::Play { stream_id, key }, Decision::AllowAs(name)) => {
                let renamed = StreamKey::new(key.app(), &name, key.query());
                self.start_play(session, stream_id, renamed)
            }
            (Request::Play { stream_id, key }, Decision::Deny(why)) => {
                warn!(id = self.id(), peer = %self.peer, stream = %key,
                    "play rejected: {why} (NetStream.Play.Failed)");
                session.deny_play(stream_id, &why).map_err(End::Session)
            }
        }
    }

    fn start_publish(
        &mut self,
        session: &mut ServerSession,
        stream_id: u32,
        key: StreamKey,
        publish_type: &str,
        taking_over: bool,
    ) -> Result<(), End> {
        if let Some(why) = over_publisher_limit(&self.context, &key) {
            warn!(id = self.id(), peer = %self.peer, stream = %key,
                "publish rejected: {why} (NetStream.Publish.BadName, connection closed)");
            session
                .reject_publish(stream_id, PublishRejection::BadName, &why)
                .map_err(End::Session)?;
            return Err(End::Rejected);
        }
        if let Some(cluster) = self.context.cluster.clone() {
            if let Some(slot) = self.claim.take() {
                self.lease = slot.take();
            }
            // A second publisher of a stream this node is the origin of and publishes: no new
            // claim (a refused one must not give the current publisher's lease back); the
            // local rules decide, and a takeover claims once the current one has left.
            let published_here = cluster.holds(key.path())
                && !taking_over
                && self.context.pulls.upstream(key.path()).is_none()
                && self
                    .context
                    .hub
                    .stream_stats(key.path())
                    .is_some_and(|s| s.published);
            if self.lease.is_none() && !published_here {
                // The stream's lease first: refused while another live node holds it,
                // granted at once when that node's heartbeat has expired.
                let slot = crate::cluster::ClaimSlot::new(&cluster, key.path());
                self.claim = Some(Arc::clone(&slot));
                let takeover = self.takeover_configured(&key).is_some();
                let stale = Duration::from_secs(self.context.live().publish.stale_secs);
                let answer = async move {
                    match slot.claim(takeover, stale).await {
                        Ok(()) => Decision::Allow,
                        Err(why) => Decision::Deny(why),
                    }
                };
                self.pending = Some(Box::new(PendingRequest {
                    request: Request::Publish {
                        stream_id,
                        key,
                        publish_type: publish_type.to_owned(),
                        taking_over,
                    },
                    answer: Box::pin(answer),
                    since: now(),
                }));
                return Ok(());
            }
        }
        match self.context.hub.publish(key.path()) {
            Ok(publisher) => {
                info!(
                    id = self.id(),
                    peer = %self.peer,
                    stream = %key,
                    kind = %publish_type,
                    "publish started"
                );
                self.handle.set_role(Role::Publishing(key.clone()));
                self.context.hls.publish_started(&self.context, key.path());
                crate::relay::publish_started(&self.context, &key);
                crate::record::publish_started(&self.context, &key);
                self.publications.insert(
                    stream_id,
                    Publication {
                        publisher,
                        key,
                        started: now(),
                        tracks_logged: false,
                        tracks_check_at: now() + DESCRIBE_TRACKS_AFTER,
                        warned_header: false,
                        _lease: self.lease.take(),
                    },
                );
                session.accept_publish(stream_id).map_err(End::Session)
            }
            Err(PublishError::AlreadyPublishing(_)) if !taking_over => {
                // In a cluster, a node that pulled the stream gives way to the publisher that
                // now holds its lease.
                let pulled = self.context.cluster.is_some() && self.context.pulls.stop(key.path());
                let reason = if pulled {
                    Some(
                        "this node holds the stream's lease now; its pull from the cluster ends"
                            .to_owned(),
                    )
                } else {
                    self.takeover_reason(&key)
                };
                let Some(reason) = reason else {
                    return self.refuse_busy(session, stream_id, &key);
                };
                // The current publisher is closed; this request waits for it to leave (up to
                // 3 s), then publishes. Players stay attached: the hub tells them of a
                // hand-over, not an end.
                self.context.hub.hand_over(key.path());
                let mut replaced = 0;
                for info in self.context.registry.list() {
                    let theirs =
                        matches!(&info.role, Role::Publishing(k) if k.path() == key.path());
                    if theirs && info.id != self.id() {
                        self.context.registry.close(
                            info.id,
                            &format!("replaced by a new publisher of the same stream ({reason})"),
                        );
                        replaced += 1;
                    }
                }
                info!(id = self.id(), peer = %self.peer, stream = %key, replaced,
                    "publisher takeover: {reason}");
                let hub = Arc::clone(&self.context.hub);
                let path = key.path().to_owned();
                let wait = async move {
                    for _ in 0..150 {
                        if !hub.stream_stats(&path).is_some_and(|s| s.published) {
                            return Decision::Allow;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Decision::Deny("the previous publisher did not leave in time".to_owned())
                };
                self.pending = Some(Box::new(PendingRequest {
                    request: Request::Publish {
                        stream_id,
                        key,
                        publish_type: publish_type.to_owned(),
                        taking_over: true,
                    },
                    answer: Box::pin(wait),
                    since: now(),
                }));
                Ok(())
            }
            Err(PublishError::AlreadyPublishing(_)) => {
                self.lease = None;
                self.refuse_busy(session, stream_id, &key)
            }
        }
    }

    /// Why a new publisher may replace the current one of `path`, if it may: the app's
    /// `takeover` (else `publish.takeover`), or a current publisher silent for
    /// `publish.stale_secs`.
    fn takeover_reason(&self, key: &StreamKey) -> Option<String> {
        if let Some(reason) = self.takeover_configured(key) {
            return Some(reason);
        }
        let config = self.context.live();
        let publish = &config.publish;
        let path = key.path();
        let idle = self.context.hub.stream_stats(path)?.idle_for?;
        (publish.stale_secs > 0 && idle >= Duration::from_secs(publish.stale_secs)).then(|| {
            format!(
                "the current publisher sent nothing for {:.1} s (publish.stale_secs = {})",
                idle.as_secs_f64(),
                publish.stale_secs
            )
        })
    }

    /// Why a new publisher replaces the current one whatever it does, if the configuration
    /// says so: the app's `takeover`, else `publish.takeover`.
    fn takeover_configured(&self, key: &StreamKey) -> Option<String> {
        let config = self.context.live();
        let app = key.app();
        match config.app_rules(app).and_then(|rules| rules.takeover) {
            Some(true) => Some(format!("apps.{app}.takeover = true")),
            None if config.publish.takeover => Some("publish.takeover = true".to_owned()),
            _ => None,
        }
    }

    /// The answer to a play by another node of the cluster (its query carries the cluster's
    /// token): allowed without the play policy (the node that serves the viewers applied it)
    /// while this node is the stream's origin, refused otherwise (the node asks Redis
    /// again). `None` for every other play.
    fn cluster_pull_answer(&mut self, key: &StreamKey) -> Option<Answer> {
        let cluster = self.context.cluster.as_ref()?;
        let token = key.query_param(crate::cluster::PULL_PARAM)?;
        if !cluster.token_ok(token) {
            return Some(Answer::Ready(Decision::Deny(
                "not a pull by a node of this cluster (the cluster token does not match)"
                    .to_owned(),
            )));
        }
        let path = key.path();
        let here = cluster.holds(path)
            || self
                .context
                .hub
                .stream_stats(path)
                .is_some_and(|s| s.published && self.context.pulls.upstream(path).is_none());
        if !here {
            return Some(Answer::Ready(Decision::Deny(format!(
                "node {} is not the origin of {path} (its lease is elsewhere)",
                cluster.node_id()
            ))));
        }
        self.cluster_pull = true;
        Some(Answer::Ready(Decision::Allow))
    }

    /// Refuses a publish of a stream someone else publishes.
    fn refuse_busy(
        &mut self,
        session: &mut ServerSession,
        stream_id: u32,
        key: &StreamKey,
    ) -> Result<(), End> {
        warn!(
            id = self.id(),
            peer = %self.peer,
            stream = %key,
            "publish rejected: stream is already being published (NetStream.Publish.BadName)"
        );
        session
            .reject_publish(
                stream_id,
                PublishRejection::BadName,
                &format!(
                    "stream {key} is already being published (a new publisher replaces it after publish.stale_secs of silence)"
                ),
            )
            .map_err(End::Session)
    }

    fn start_play(
        &mut self,
        session: &mut ServerSession,
        stream_id: u32,
        key: StreamKey,
    ) -> Result<(), End> {
        if let Some(why) = over_viewer_limit(&self.context, &key) {
            warn!(id = self.id(), peer = %self.peer, stream = %key, "play rejected: {why}");
            return session.deny_play(stream_id, &why).map_err(End::Session);
        }
        if !self.looked_up && crate::cluster::needs_lookup(&self.context, &key) {
            // A stream this node has not: where it is is asked of Redis first (an
            // unreachable Redis refuses the play with a retryable error within a second).
            self.looked_up = true;
            let context = Arc::clone(&self.context);
            let lookup_key = key.clone();
            let answer = async move {
                match crate::cluster::cold_play(&context, &lookup_key).await {
                    Ok(()) => Decision::Allow,
                    Err(why) => Decision::Deny(why),
                }
            };
            self.pending = Some(Box::new(PendingRequest {
                request: Request::Play { stream_id, key },
                answer: Box::pin(answer),
                since: now(),
            }));
            return Ok(());
        }
        self.looked_up = false;
        if !self.cluster_pull {
            crate::pull::wanted(&self.context, &key);
        }
        let subscription = self.context.hub.subscribe_viewer(key.path(), self.protocol);
        info!(
            id = self.id(),
            peer = %self.peer,
            stream = %key,
            live = subscription.was_published(),
            "play started"
        );
        let max_lag = Duration::from_secs(self.context.config.streams.max_viewer_lag_secs);
        self.handle.set_role(Role::Playing(key.clone()));
        let mut player = Player::new(
            stream_id,
            key,
            subscription,
            max_lag,
            self.accepts.clone(),
            now(),
        );
        session.accept_play(stream_id).map_err(End::Session)?;
        player.start(session);
        self.player = Some(player);
        Ok(())
    }

    /// A kick, a shutdown or a drain. A drain asks a client that handles ReconnectRequest to
    /// reconnect and keeps serving it until it leaves or the drain's time is up.
    fn close_requested(
        &mut self,
        session: &mut ServerSession,
        request: CloseRequest,
    ) -> Result<Box<Draining>, End> {
        let drain = match request.drain {
            Some(drain) if self.reconnect && !drain.timeout.is_zero() => drain,
            _ => return Err(End::Closed(request.reason)),
        };
        session.request_reconnect(drain.tc_url.as_deref(), &request.reason);
        info!(
            id = self.id(),
            peer = %self.peer,
            tc_url = drain.tc_url.as_deref().unwrap_or(""),
            "asked the client to reconnect ({}); serving it for up to {:?}",
            request.reason,
            drain.timeout
        );
        Ok(Box::new(Draining {
            until: now() + drain.timeout,
            reason: request.reason,
        }))
    }

    fn set_idle_role(&self) {
        if self.publications.is_empty() && self.player.is_none() {
            self.handle.set_role(Role::Connected {
                app: self.app.clone(),
            });
        }
    }

    fn finish(&mut self, end: &End) {
        let reason = end.to_string();
        let role = if !self.publications.is_empty() {
            "publisher"
        } else if self.player.is_some() {
            "player"
        } else {
            "other"
        };
        let class = match end {
            End::PeerClosed => "peer_closed",
            End::Session(_) => "protocol_error",
            End::Io(_) => "io_error",
            End::WriteTimeout => "write_timeout",
            End::Lagging(_) => "lagging",
            End::Rejected => "rejected",
            End::Closed(_) => "closed",
        };
        Metrics::count(
            &self.context.hub.metrics().disconnects,
            &[
                ("protocol", self.protocol.as_str()),
                ("role", role),
                ("reason", class),
            ],
        );
        for (_, publication) in std::mem::take(&mut self.publications) {
            self.log_publish_end(&publication, &reason);
        }
        if let Some(player) = self.player.take() {
            self.play_ended(player, now(), &reason);
        }
    }

    /// Logs the end of a play and tells the policy.
    fn play_ended(&self, player: Player, now: Instant, reason: &str) {
        let key = player.key.clone();
        let duration = player.end(self.id(), &self.peer.to_string(), now, reason);
        self.context.policy().ended(&policy::Ended {
            what: policy::Ending::Play,
            request: StreamRequest {
                client: self.client(),
                key,
            },
            duration,
            bytes: self.handle.info().bytes_out,
            reason: reason.to_owned(),
        });
    }

    fn log_publish_end(&self, publication: &Publication, reason: &str) {
        let stats = publication.publisher.stats();
        let duration = stats.published_for.unwrap_or_default().as_secs_f64();
        let kbps = if duration > 0.0 {
            stats.bytes_in as f64 * 8.0 / duration / 1000.0
        } else {
            0.0
        };
        info!(
            id = self.id(),
            peer = %self.peer,
            stream = %publication.key,
            frames = stats.video_frames_in + stats.audio_frames_in,
            video_frames = stats.video_frames_in,
            keyframes = stats.keyframes_in,
            bytes = stats.bytes_in,
            avg_kbps = format!("{kbps:.0}"),
            viewers = stats.viewer_count(),
            duration_s = format!("{duration:.1}"),
            tracks = %describe_tracks(&stats.tracks),
            reason = %reason,
            "publish ended"
        );
        self.context.policy().ended(&policy::Ended {
            what: policy::Ending::Publish,
            request: StreamRequest {
                client: self.client(),
                key: publication.key.clone(),
            },
            duration: stats.published_for.unwrap_or_default(),
            bytes: stats.bytes_in,
            reason: reason.to_owned(),
        });
    }
}

/// Why a media frame's tag header did not parse (`None`: it did, or it is empty).
fn header_error(frame: &Frame) -> Option<weir_media::FlvError> {
    use weir_media::{AudioTagHeader, MediaKind, VideoTagHeader};
    if frame.payload.is_empty() {
        return None;
    }
    match frame.kind {
        MediaKind::Video => VideoTagHeader::parse(&frame.payload).err(),
        MediaKind::Audio => AudioTagHeader::parse(&frame.payload).err(),
        MediaKind::Data => None,
    }
}

/// `video#0 avc1 High L3.1 1280x720 8-bit 30fps, audio#0 mp4a LC 48 kHz stereo`.
fn describe_tracks(tracks: &[weir_media::TrackInfo]) -> String {
    let lines: Vec<String> = tracks.iter().map(ToString::to_string).collect();
    lines.join(", ")
}

/// Fresh randomness for S1 (and S2 in the digest style).
fn random_block() -> [u8; 1528] {
    use rand::RngCore;
    let mut block = [0u8; 1528];
    rand::thread_rng().fill_bytes(&mut block);
    block
}
