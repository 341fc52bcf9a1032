//! weir's RTMP client: publishes or plays one stream per connection, for relays, the load
//! tool and tests.
//!
//! Connecting spawns a tokio task that owns the transport and a sans-IO
//! [`weir_rtmp::session::ClientSession`]; the [`Client`] handle talks to it over bounded
//! channels. The task runs over any `AsyncRead + AsyncWrite` transport ([`Client::connect_io`]:
//! TCP from [`Client::connect`], an in-memory `tokio::io::duplex` in tests, TLS later).
//!
//! ```no_run
//! # async fn run() -> Result<(), weir_client::ClientError> {
//! use weir_client::{Client, RtmpUrl};
//! let url = RtmpUrl::parse("rtmp://127.0.0.1/live/key")?;
//! let mut client = Client::connect(&url).await?;
//! client.play(&url.stream).await?;
//! while let Some(event) = client.next_event(std::time::Duration::from_secs(5)).await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! # What the task does
//!
//! It reads the transport continuously, so a publisher that sends nothing still answers the
//! server's pings, acknowledges bytes, and sees an error status or the server's close at once.
//! It writes with vectored writes straight from the session's transmit queue: a frame's
//! payload (`Bytes`) goes from [`Client::send_frame`] through the channel into the queue and
//! out to the socket without being copied. The session's deadlines ([`ClientOptions`]: connect,
//! publish/play answer, idle) and a write timeout end the connection with
//! [`ClientError::Timeout`].
//!
//! # Queues and their policy
//!
//! * Requests (media, metadata, commands) go through a channel of
//!   [`ClientOptions::send_queue`] entries. The task stops taking them while 1 MiB waits to be
//!   written, so a full channel makes [`Client::send_frame`] wait: a relay feels the remote
//!   server's pace (backpressure), and memory does not grow.
//! * Events go through a channel of 256 entries. While **playing** (or connecting), when the
//!   handle does not keep up, the task stops reading the transport once 64 more events wait:
//!   backpressure to the server, whose own lag policy then applies. While **publishing**, the
//!   task keeps reading (to answer pings and see errors) and, as nothing is played on a
//!   publishing connection, drops media and data events and keeps at most 1024 status and
//!   user control events, dropping the oldest: a publisher that never reads its events
//!   neither blocks nor grows.
//!
//! Dropping the handle ends the task: it stops the stream, writes what was queued, closes its
//! side and waits briefly for the server's close.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod file;
mod task;
mod url;

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tracing::debug;
use weir_media::flv_file::FlvFileError;
use weir_media::{Frame, MediaKind};
use weir_rtmp::command::{code, Status, StatusLevel};
use weir_rtmp::session::{ClientConfig, ClientSession, MediaType, SessionError};

pub use file::{publish_file, read_flv_file, PublishOptions, PublishStats};
pub use url::{RtmpUrl, DEFAULT_PORT, DEFAULT_TLS_PORT};
pub use weir_rtmp::session::ClientEvent;

use task::{Request, Task, CLOSE_GRACE, PUBLISHER_BACKLOG};

/// How long [`Client::connect`], [`Client::publish`] and [`Client::play`] wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Capacity of the event channel from the task to the handle.
const EVENT_CHANNEL: usize = 256;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `rtmp[s]://host[:port]/app[/stream]`.
    #[error("bad rtmp url {url:?}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The URL asks for something this client cannot do (an `rtmps://` host that is no
    /// valid TLS server name).
    #[error("{0}")]
    Unsupported(&'static str),
    /// A transport error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The RTMP session failed (handshake, chunk stream, protocol, connect rejected).
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// The server refused publish or play with an error `onStatus`.
    #[error("server refused: {code} {description}")]
    Refused {
        /// Status code, such as `NetStream.Publish.BadName`.
        code: String,
        /// Status description.
        description: String,
    },
    /// The server closed the connection (or the connection was closed before).
    #[error("connection closed by the server")]
    Closed,
    /// A deadline passed: `tcp connect`, `connect`, `publish or play answer`, `idle`,
    /// `write`, or what a call was waiting for.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Media was sent before publishing started.
    #[error("not publishing")]
    NotPublishing,
    /// An FLV file could not be read.
    #[error("flv file: {0}")]
    Flv(#[from] FlvFileError),
}

/// Settings of one connection. `Default` gives the values [`Client::connect`] uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Time allowed for the TCP connect, and again for the handshake and `connect`, and for
    /// the server's answer to each publish or play.
    pub timeout: Duration,
    /// While not publishing, the connection fails when the server sends nothing for this
    /// long (see [`ClientConfig::idle_timeout`]).
    pub idle_timeout: Duration,
    /// A write that makes no progress for this long fails the connection.
    pub write_timeout: Duration,
    /// Send a complex (digest) C1, as FFmpeg does; false sends a simple one, as OBS does.
    pub digest_handshake: bool,
    /// Requests (frames) the channel to the task holds before senders wait.
    pub send_queue: usize,
    /// E-RTMP `capsEx` bits advertised in `connect` with every FourCC (default: Multitrack,
    /// ModEx, TimestampNanoOffset, so a player gets every track); `None`: a legacy connect,
    /// which gets the default track only.
    pub caps_ex: Option<u32>,
    /// Whom `rtmps://` servers are checked against; `None`: the public web's certificate
    /// authorities (Mozilla's list, as browsers use; what YouTube, Twitch and Facebook have).
    pub tls: Option<TlsTrust>,
}

/// The certificate authorities an `rtmps://` connection trusts (compared by identity).
#[derive(Clone, Debug)]
pub struct TlsTrust(Arc<tokio_rustls::rustls::ClientConfig>);

impl PartialEq for TlsTrust {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for TlsTrust {}

impl TlsTrust {
    /// Trusts the public web's authorities (Mozilla's root list).
    pub fn public() -> TlsTrust {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        TlsTrust::with_roots(roots)
    }

    /// Trusts only these certificates (DER) as authorities: a private CA, or a server's
    /// self-signed certificate.
    pub fn only(certificates: Vec<rustls_pki_types::CertificateDer<'static>>) -> TlsTrust {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        for certificate in certificates {
            let _ = roots.add(certificate);
        }
        TlsTrust::with_roots(roots)
    }

    fn with_roots(roots: tokio_rustls::rustls::RootCertStore) -> TlsTrust {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        TlsTrust(Arc::new(config))
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            digest_handshake: true,
            tls: None,
            send_queue: 64,
            caps_ex: ClientConfig::new("", "").caps_ex,
        }
    }
}

/// The handle of one RTMP connection; the connection itself runs in a task (see the crate
/// documentation).
pub struct Client {
    requests: mpsc::Sender<Request>,
    events: mpsc::Receiver<ClientEvent>,
    /// Events read while waiting for something else, handed out first by `next_event`.
    backlog: VecDeque<ClientEvent>,
    /// The task, until its end reason has been taken.
    task: Option<JoinHandle<ClientError>>,
    bytes_received: Arc<AtomicU64>,
    timeout: Duration,
    write_timeout: Duration,
    publishing: bool,
    url: RtmpUrl,
    /// The E-RTMP `capsEx` bits the server announced when it accepted `connect`.
    server_caps_ex: u32,
}

impl Client {
    /// Connects over TCP, completes the handshake and `connect`, with [`DEFAULT_TIMEOUT`].
    pub async fn connect(url: &RtmpUrl) -> Result<Client, ClientError> {
        Client::connect_with(url, ClientOptions::default()).await
    }

    /// Like [`Client::connect`]; `timeout` also bounds later `publish` and `play` calls.
    pub async fn connect_timeout(url: &RtmpUrl, timeout: Duration) -> Result<Client, ClientError> {
        let options = ClientOptions {
            timeout,
            ..ClientOptions::default()
        };
        Client::connect_with(url, options).await
    }

    /// Connects over TCP (and TLS for `rtmps://`, checked against `options.tls`) with
    /// `options`.
    pub async fn connect_with(
        url: &RtmpUrl,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let deadline = Instant::now() + options.timeout;
        let socket = timeout_at(deadline, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| ClientError::Timeout("tcp connect"))??;
        socket.set_nodelay(true)?;
        if !url.tls {
            return Client::connect_io(socket, url, options).await;
        }
        let trust = options.tls.clone().unwrap_or_else(TlsTrust::public);
        let name = rustls_pki_types::ServerName::try_from(url.host.clone()).map_err(|_| {
            ClientError::Unsupported("the rtmps:// host is no valid TLS server name")
        })?;
        let tls = timeout_at(
            deadline,
            tokio_rustls::TlsConnector::from(trust.0).connect(name, socket),
        )
        .await
        .map_err(|_| ClientError::Timeout("tls handshake"))??;
        Client::connect_io(tls, url, options).await
    }

    /// Runs the connection over `io`, an established transport to the server named by `url`
    /// (TCP, TLS, an in-memory duplex stream), and completes the handshake and `connect`.
    /// The tcUrl is built from `url`, so an `rtmps://` URL over a TLS stream says so.
    pub async fn connect_io<S>(
        io: S,
        url: &RtmpUrl,
        options: ClientOptions,
    ) -> Result<Client, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut config = ClientConfig::new(&url.authority(), &url.app);
        config.tc_url = url.tc_url();
        config.digest_handshake = options.digest_handshake;
        config.caps_ex = options.caps_ex;
        config.connect_timeout = options.timeout;
        config.request_timeout = options.timeout;
        config.idle_timeout = options.idle_timeout;
        let mut random = [0; 1528];
        rand::thread_rng().fill_bytes(&mut random);
        let started = Instant::now();
        let session = ClientSession::new(config, started.into_std(), random);
        let (request_tx, request_rx) = mpsc::channel(options.send_queue.max(1));
        let (event_tx, event_rx) = mpsc::channel(EVENT_CHANNEL);
        let bytes_received = Arc::new(AtomicU64::new(0));
        let task = Task::new(
            io,
            session,
            request_rx,
            event_tx,
            Arc::clone(&bytes_received),
            options.write_timeout,
        );
        let mut client = Client {
            requests: request_tx,
            events: event_rx,
            backlog: VecDeque::new(),
            task: Some(tokio::spawn(task.run())),
            bytes_received,
            timeout: options.timeout,
            write_timeout: options.write_timeout,
            publishing: false,
            url: url.clone(),
            server_caps_ex: 0,
        };
        // The session's own deadline ends the task first; this one is a backstop.
        let deadline = started + options.timeout + Duration::from_secs(1);
        let mut caps = 0;
        client
            .wait_for(deadline, "connect", |event| match event {
                ClientEvent::Connected { caps_ex } => {
                    caps = *caps_ex;
                    Some(Ok(()))
                }
                _ => None,
            })
            .await?;
        client.server_caps_ex = caps;
        Ok(client)
    }

    /// Whether the server said (E-RTMP `capsEx` in its `connect` answer) that it reads
    /// Multitrack messages.
    pub fn server_reads_multitrack(&self) -> bool {
        self.server_caps_ex & weir_rtmp::caps::CAPS_EX_MULTITRACK != 0
    }

    /// Publishes `name` (with its query, if any); waits for `NetStream.Publish.Start`, or
    /// fails with [`ClientError::Refused`] carrying the server's status.
    pub async fn publish(&mut self, name: &str) -> Result<(), ClientError> {
        let deadline = self.answer_deadline();
        self.request(Request::Publish(name.to_owned())).await?;
        self.wait_for(deadline, "publish start", |event| match event {
            ClientEvent::PublishStarted { .. } => Some(Ok(())),
            ClientEvent::Status { stream_id, status } => refusal(*stream_id, status),
            _ => None,
        })
        .await?;
        self.publishing = true;
        Ok(())
    }

    /// Plays `name`; waits for `NetStream.Play.Start`, or fails with [`ClientError::Refused`].
    /// Media and status events follow through [`Client::next_event`].
    pub async fn play(&mut self, name: &str) -> Result<(), ClientError> {
        let deadline = self.answer_deadline();
        self.request(Request::Play(name.to_owned())).await?;
        self.wait_for(deadline, "play start", |event| match event {
            ClientEvent::PlayStarted { .. } => Some(Ok(())),
            ClientEvent::Status { stream_id, status } => refusal(*stream_id, status),
            _ => None,
        })
        .await
    }

    /// Sends one audio, video or metadata frame; the payload is shared, not copied. Data
    /// frames other than `onMetaData` are skipped (the session sends data only as
    /// `@setDataFrame` metadata). Waits while the connection's send queue is full.
    pub async fn send_frame(&mut self, frame: &Frame) -> Result<(), ClientError> {
        match frame.kind {
            MediaKind::Audio => {
                self.send_media(MediaType::Audio, frame.timestamp, frame.payload.clone())
                    .await
            }
            MediaKind::Video => {
                self.send_media(MediaType::Video, frame.timestamp, frame.payload.clone())
                    .await
            }
            MediaKind::Data if frame.info.is_metadata => {
                self.send_metadata(frame.timestamp, &frame.payload).await
            }
            MediaKind::Data => {
                debug!("client skipped a data frame that is not onMetaData");
                Ok(())
            }
        }
    }

    /// Sends an audio or video message (an FLV tag body) without copying it. Waits while the
    /// connection's send queue is full.
    pub async fn send_media(
        &mut self,
        media_type: MediaType,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        if !self.publishing {
            return Err(ClientError::NotPublishing);
        }
        self.request(Request::Media {
            media_type,
            timestamp,
            payload,
        })
        .await
    }

    /// Sends metadata; `payload` is the AMF0 body `"onMetaData", {...}` (sent as
    /// `@setDataFrame`; it is copied once, being small).
    pub async fn send_metadata(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        if !self.publishing {
            return Err(ClientError::NotPublishing);
        }
        self.request(Request::Metadata {
            timestamp,
            payload: Bytes::copy_from_slice(payload),
        })
        .await
    }

    /// The next event (media, data, status, user control), waiting at most `timeout`:
    /// `Ok(None)` when the time ran out, [`ClientError::Closed`] when the server closed, or
    /// the error that ended the connection.
    pub async fn next_event(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ClientEvent>, ClientError> {
        if let Some(event) = self.backlog.pop_front() {
            return Ok(Some(event));
        }
        match tokio::time::timeout(timeout, self.events.recv()).await {
            Ok(Some(event)) => Ok(Some(event)),
            Ok(None) => Err(self.end_reason().await),
            Err(_) => Ok(None),
        }
    }

    /// Stops publishing or playing (FCUnpublish, deleteStream), writes what is queued, closes
    /// our side of the connection and waits briefly for the server to close its side.
    pub async fn close(mut self) -> Result<(), ClientError> {
        // A task that already ended reports why in `end_reason`.
        let _ = self.requests.send(Request::Close).await;
        let wait = CLOSE_GRACE + self.write_timeout * 2 + Duration::from_secs(1);
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(wait, task).await {
            Ok(Ok(ClientError::Closed)) | Ok(Err(_)) => Ok(()),
            Ok(Ok(err)) => Err(err),
            Err(_) => Err(ClientError::Timeout("close")),
        }
    }

    /// Bytes received from the server so far (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Whether the server accepted our publish.
    pub fn is_publishing(&self) -> bool {
        self.publishing
    }

    /// The URL this connection was made for.
    pub fn url(&self) -> &RtmpUrl {
        &self.url
    }

    fn answer_deadline(&self) -> Instant {
        // The session's request deadline ends the task first; this one is a backstop.
        Instant::now() + self.timeout + Duration::from_secs(1)
    }

    /// Hands `request` to the task, waiting for room; fails with the task's end reason.
    async fn request(&mut self, request: Request) -> Result<(), ClientError> {
        match self.requests.send(request).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.end_reason().await),
        }
    }

    /// Why the task ended: its error the first time, [`ClientError::Closed`] afterwards.
    async fn end_reason(&mut self) -> ClientError {
        match self.task.take() {
            Some(task) => task.await.unwrap_or(ClientError::Closed),
            None => ClientError::Closed,
        }
    }

    async fn wait_for(
        &mut self,
        deadline: Instant,
        what: &'static str,
        mut done: impl FnMut(&ClientEvent) -> Option<Result<(), ClientError>>,
    ) -> Result<(), ClientError> {
        loop {
            let event = match timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => event,
                Ok(None) => return Err(self.end_reason().await),
                Err(_) => return Err(ClientError::Timeout(what)),
            };
            if let Some(result) = done(&event) {
                return result;
            }
            if self.backlog.len() >= PUBLISHER_BACKLOG {
                self.backlog.pop_front();
            }
            self.backlog.push_back(event);
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.url.to_string())
            .field("publishing", &self.publishing)
            .field("bytes_received", &self.bytes_received())
            .finish_non_exhaustive()
    }
}

/// An error status that ends a publish or play request.
fn refusal(stream_id: u32, status: &Status) -> Option<Result<(), ClientError>> {
    // `_error` replies to releaseStream/FCPublish on stream 0 are harmless; NetStream errors
    // and errors on our stream are not.
    let fatal = status.level == StatusLevel::Error
        && (stream_id != 0 || status.code.starts_with("NetStream."))
        || status.code == code::PLAY_STREAM_NOT_FOUND;
    fatal.then(|| {
        Err(ClientError::Refused {
            code: status.code.clone(),
            description: status.description.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_netstream_errors_refuse() {
        let status = |level, code: &str| Status {
            level,
            code: code.to_owned(),
            description: "d".to_owned(),
        };
        assert!(refusal(1, &status(StatusLevel::Error, code::PUBLISH_BAD_NAME)).is_some());
        assert!(refusal(0, &status(StatusLevel::Error, code::CALL_FAILED)).is_none());
        assert!(refusal(1, &status(StatusLevel::Status, code::PLAY_RESET)).is_none());
    }

    #[test]
    fn trust_is_compared_by_identity() {
        let public = TlsTrust::public();
        assert_eq!(public, public.clone());
        assert_ne!(public, TlsTrust::only(Vec::new()));
    }
}
