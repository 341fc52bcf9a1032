//! One RTMP connection: socket IO around a sans-IO `ServerSession`, and the bridge between
//! its events and the hub.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use weir_media::Frame;
use weir_rtmp::session::{MediaType, PublishRejection, ServerEvent, ServerSession, SessionError};

use super::player::Player;
use super::{next_connection_id, Context};
use crate::hub::{PublishError, Publisher};

/// Read buffer of a connection that publishes; others keep a small one, so that thousands of
/// idle players cost little memory.
const PUBLISHER_READ_SIZE: usize = 64 * 1024;
/// Read buffer of a connection that does not publish.
const READ_SIZE: usize = 2 * 1024;
/// Most pieces handed to one vectored write (Linux's IOV_MAX is 1024).
const MAX_IO_SLICES: usize = 512;

/// A publishing message stream.
struct Publication {
    publisher: Publisher,
    started: Instant,
    frames: u64,
    bytes: u64,
}

/// Connection-level state the driver keeps beside the session.
struct Connection {
    id: u64,
    peer: String,
    app: String,
    context: Arc<Context>,
    publications: HashMap<u32, Publication>,
    player: Option<Player>,
    play_started: Instant,
}

/// Why the connection ended, for the close log line.
enum End {
    PeerClosed,
    Session(SessionError),
    Io(std::io::Error),
    WriteTimeout,
    TooSlow(std::time::Duration),
    Rejected,
    Shutdown,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PeerClosed => write!(f, "peer closed the connection"),
            Self::Session(err) => write!(f, "{err}"),
            Self::Io(err) => write!(f, "socket error: {err}"),
            Self::WriteTimeout => write!(f, "write timed out (rtmp.write_timeout_secs)"),
            Self::TooSlow(behind) => write!(
                f,
                "viewer fell {:.1}s behind the live edge (streams.max_viewer_lag_secs)",
                behind.as_secs_f64()
            ),
            Self::Rejected => write!(f, "connection rejected"),
            Self::Shutdown => write!(f, "server shutting down"),
        }
    }
}

/// Runs a connection to its end and logs how it ended.
pub(crate) async fn run(
    socket: TcpStream,
    peer: SocketAddr,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut conn = Connection {
        id: next_connection_id(&context),
        peer: peer.to_string(),
        app: String::new(),
        context: Arc::clone(&context),
        publications: HashMap::new(),
        player: None,
        play_started: started,
    };
    let mut session = ServerSession::new(context.session.clone(), started, random_block());
    let (mut reader, mut writer) = socket.into_split();
    let mut buf = BytesMut::new();
    debug!(id = conn.id, peer = %peer, "rtmp connection accepted");

    // Deadline-bounded write coalescing for players: video goes out at once, together with
    // whatever waits; audio and metadata wait at most `coalesce` for the next video frame, so
    // the small audio frames between two pictures cost no write of their own.
    let coalesce = std::time::Duration::from_millis(context.config.streams.write_coalesce_ms);
    // Optional SRS-style merged writes: video too may wait, trading latency for CPU.
    let video_coalesce = std::time::Duration::from_millis(context.config.streams.video_coalesce_ms);
    let mut flush_due: Option<Instant> = None;
    let end = loop {
        let deadline = session.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let flush_timer = async {
            match flush_due {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let mut from_player = false;
        let step: Result<(), End> = tokio::select! {
            read = read_some(&mut reader, &mut buf, !conn.publications.is_empty()) => match read {
                Ok(0) => Err(End::PeerClosed),
                Ok(_) => session
                    .handle_input_buf(Instant::now(), &mut buf)
                    .map_err(End::Session)
                    .and_then(|()| conn.handle_events(&mut session)),
                Err(err) => Err(End::Io(err)),
            },
            received = recv_packet(&mut conn.player), if conn.player.is_some() => {
                from_player = true;
                match conn.player.as_mut() {
                    Some(player) => player
                        .handle_recv(&mut session, received, Instant::now())
                        .map_err(|slow| End::TooSlow(slow.0)),
                    None => Ok(()),
                }
            }
            () = sleep => session.handle_timeout(Instant::now()).map_err(End::Session),
            () = flush_timer => Ok(()),
            _ = shutdown.changed() => Err(End::Shutdown),
        };
        if let Err(end) = step {
            // Send what is queued (a rejection, a status) before closing.
            let _ = flush(&mut session, &mut writer, &context).await;
            break end;
        }
        let now = Instant::now();
        let video_queued = conn.player.as_mut().is_some_and(Player::take_video_queued);
        let hold = if video_queued {
            video_coalesce
        } else {
            coalesce
        };
        if from_player && !hold.is_zero() {
            // The deadline is set by the first frame held: nothing waits longer than `hold`.
            let due = *flush_due.get_or_insert(now + hold);
            if now < due {
                continue;
            }
        }
        if let Err(end) = flush(&mut session, &mut writer, &context).await {
            break end;
        }
        flush_due = None;
        if session.is_closing() {
            break End::Rejected;
        }
    };
    let _ = writer.shutdown().await;
    conn.finish(&end);
    info!(
        id = conn.id,
        peer = %peer,
        app = %conn.app,
        bytes_in = session.bytes_received(),
        duration_s = format!("{:.1}", started.elapsed().as_secs_f64()),
        reason = %end,
        "rtmp connection closed"
    );
}

/// Reads whatever is available into `buf`.
async fn read_some(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    publishing: bool,
) -> std::io::Result<usize> {
    buf.reserve(if publishing {
        PUBLISHER_READ_SIZE
    } else {
        READ_SIZE
    });
    reader.read_buf(buf).await
}

async fn recv_packet(
    player: &mut Option<Player>,
) -> Result<crate::hub::Packet, tokio::sync::broadcast::error::RecvError> {
    match player {
        Some(player) => player.subscription.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes everything the session queued, bounded by the write timeout. A backlog goes out in
/// one vectored write (up to [`MAX_IO_SLICES`] pieces), payloads straight from the shared
/// frame buffers.
async fn flush(
    session: &mut ServerSession,
    writer: &mut OwnedWriteHalf,
    context: &Context,
) -> Result<(), End> {
    let queue = session.transmit_queue();
    let timeout = context.config.rtmp.write_timeout();
    while !queue.is_empty() {
        let mut slices = Vec::with_capacity(16);
        queue.io_slices(&mut slices, MAX_IO_SLICES);
        let written = match tokio::time::timeout(timeout, writer.write_vectored(&slices)).await {
            Ok(Ok(0)) => return Err(End::Io(std::io::ErrorKind::WriteZero.into())),
            Ok(Ok(n)) => n,
            Ok(Err(err)) => return Err(End::Io(err)),
            Err(_) => return Err(End::WriteTimeout),
        };
        drop(slices);
        queue.advance(written);
    }
    Ok(())
}

impl Connection {
    fn handle_events(&mut self, session: &mut ServerSession) -> Result<(), End> {
        while let Some(event) = session.poll_event() {
            match event {
                ServerEvent::ConnectRequested(request) => {
                    self.app = request.app.clone();
                    if request.app.is_empty() {
                        warn!(id = self.id, peer = %self.peer, "connect rejected: empty app name");
                        session.reject_connect("application name is empty; use rtmp://HOST/live");
                        return Err(End::Rejected);
                    }
                    info!(
                        id = self.id,
                        peer = %self.peer,
                        app = %request.app,
                        tc_url = request.tc_url.as_deref().unwrap_or(""),
                        flash_ver = request.flash_version.as_deref().unwrap_or(""),
                        "rtmp connect"
                    );
                    session.accept_connect().map_err(End::Session)?;
                }
                ServerEvent::PublishRequested(request) => {
                    let key = format!("{}/{}", self.app, request.stream_name);
                    match self.context.hub.publish(&key) {
                        Ok(publisher) => {
                            info!(
                                id = self.id,
                                peer = %self.peer,
                                stream = %key,
                                kind = %request.publish_type,
                                "publish started"
                            );
                            self.publications.insert(
                                request.stream_id,
                                Publication {
                                    publisher,
                                    started: Instant::now(),
                                    frames: 0,
                                    bytes: 0,
                                },
                            );
                            session
                                .accept_publish(request.stream_id)
                                .map_err(End::Session)?;
                        }
                        Err(PublishError::AlreadyPublishing(_)) => {
                            warn!(
                                id = self.id,
                                peer = %self.peer,
                                stream = %key,
                                "publish rejected: stream is already being published (NetStream.Publish.BadName)"
                            );
                            session
                                .reject_publish(
                                    request.stream_id,
                                    PublishRejection::BadName,
                                    &format!("stream {key} is already being published"),
                                )
                                .map_err(End::Session)?;
                        }
                    }
                }
                ServerEvent::PlayRequested(request) => {
                    let key = format!("{}/{}", self.app, request.stream_name);
                    if self.player.is_some() {
                        warn!(id = self.id, stream = %key, "play rejected: this connection already plays a stream");
                        session
                            .reject_play(request.stream_id, "one stream per connection")
                            .map_err(End::Session)?;
                        continue;
                    }
                    let subscription = self.context.hub.subscribe(&key);
                    info!(
                        id = self.id,
                        peer = %self.peer,
                        stream = %key,
                        live = subscription.was_published(),
                        "play started"
                    );
                    let now = Instant::now();
                    let max_lag = std::time::Duration::from_secs(
                        self.context.config.streams.max_viewer_lag_secs,
                    );
                    let mut player = Player::new(request.stream_id, subscription, max_lag, now);
                    session
                        .accept_play(request.stream_id)
                        .map_err(End::Session)?;
                    player.start(session);
                    self.play_started = now;
                    self.player = Some(player);
                }
                ServerEvent::Media {
                    stream_id,
                    media_type,
                    timestamp,
                    payload,
                } => {
                    if let Some(publication) = self.publications.get_mut(&stream_id) {
                        publication.frames += 1;
                        publication.bytes += payload.len() as u64;
                        let frame = match media_type {
                            MediaType::Audio => Frame::audio(timestamp, payload),
                            MediaType::Video => Frame::video(timestamp, payload),
                        };
                        publication.publisher.send(frame);
                    }
                }
                ServerEvent::Metadata {
                    stream_id,
                    timestamp,
                    payload,
                } => {
                    if let Some(publication) = self.publications.get_mut(&stream_id) {
                        debug!(stream = publication.publisher.key(), "metadata updated");
                        publication.publisher.send(Frame::data(timestamp, payload));
                    }
                }
                ServerEvent::PublishStopped { stream_id } => {
                    if let Some(publication) = self.publications.remove(&stream_id) {
                        log_publish_end(self, &publication, "publisher stopped");
                    }
                }
                ServerEvent::PlayStopped { stream_id } => {
                    if self.player.as_ref().map(|p| p.stream_id) == Some(stream_id) {
                        if let Some(player) = self.player.take() {
                            player.log_end(&self.peer, self.play_started, "player stopped");
                        }
                    }
                }
                ServerEvent::PlayPaused { stream_id, paused } => {
                    debug!(id = self.id, stream_id, paused, "play paused");
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

    fn finish(&mut self, end: &End) {
        let reason = end.to_string();
        for (_, publication) in std::mem::take(&mut self.publications) {
            log_publish_end(self, &publication, &reason);
        }
        if let Some(player) = self.player.take() {
            player.log_end(&self.peer, self.play_started, &reason);
        }
    }
}

fn log_publish_end(conn: &Connection, publication: &Publication, reason: &str) {
    info!(
        id = conn.id,
        peer = %conn.peer,
        stream = %publication.publisher.key(),
        frames = publication.frames,
        bytes = publication.bytes,
        viewers = publication.publisher.subscriber_count(),
        duration_s = format!("{:.1}", publication.started.elapsed().as_secs_f64()),
        reason = %reason,
        "publish ended"
    );
}

/// Fresh randomness for S1 (and S2 in the digest style).
fn random_block() -> [u8; 1528] {
    use rand::RngCore;
    let mut block = [0u8; 1528];
    rand::thread_rng().fill_bytes(&mut block);
    block
}
