//! An async RTMP client: a tokio `TcpStream` driving a sans-IO
//! [`weir_rtmp::session::ClientSession`].
//!
//! It publishes (relays, the load tool's publisher, tests) or plays (the load tool's viewers,
//! tests) one stream per connection:
//!
//! ```no_run
//! # async fn run() -> Result<(), weir::client::ClientError> {
//! use weir::client::{Client, RtmpUrl};
//! let url = RtmpUrl::parse("rtmp://127.0.0.1/live/key")?;
//! let mut client = Client::connect(&url).await?;
//! client.play(&url.stream).await?;
//! while let Some(event) = client.next_event(std::time::Duration::from_secs(5)).await? {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! Every input and every send is followed by a write of whatever the session queued, so acks,
//! ping responses and commands go out at once; the socket has `TCP_NODELAY` set.

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tracing::debug;
use weir_media::flv_file::{FlvFileError, FlvReader, FlvTag};
use weir_media::{Frame, MediaKind};
use weir_rtmp::command::{code, StatusLevel};
use weir_rtmp::session::{ClientConfig, ClientSession, MediaType, SessionError};

pub use weir_rtmp::session::ClientEvent;

/// Port used when an RTMP URL names none.
pub const DEFAULT_PORT: u16 = 1935;
/// How long [`Client::connect`], [`Client::publish`] and [`Client::play`] wait by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Events kept while nobody asks for them (a publisher that never reads its events); older
/// ones are dropped beyond this.
const MAX_BACKLOG: usize = 1024;
/// How long [`Client::close`] waits for the server to close its side.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
const READ_BUFFER: usize = 64 * 1024;

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `rtmp://host[:port]/app[/stream]`.
    #[error("bad rtmp url {url:?}: {why}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A socket error.
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
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// A wait ran out.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Media was sent before publishing started.
    #[error("not publishing")]
    NotPublishing,
    /// An FLV file could not be read.
    #[error("flv file: {0}")]
    Flv(#[from] FlvFileError),
}

/// An `rtmp://host[:port]/app/stream` URL, split the way FFmpeg splits it.
///
/// FFmpeg's rule (libavformat/rtmpproto.c): with one path element, it is the app and there is
/// no stream; with two, `app/stream`; with three or more, the first two elements are the app
/// (`app/instance`) and the rest is the stream — unless the second element contains a `:`
/// (`vod/mp4:dir/file`), in which case only the first is the app. So `live/a/b` is app
/// `live/a`, stream `b` (the last element), and `live/a/b/c` is app `live/a`, stream `b/c`.
/// A query stays on the stream name (`live/key?token=abc` → stream `key?token=abc`), and
/// slashes inside it are not path separators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtmpUrl {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Application name.
    pub app: String,
    /// Stream name with its query, possibly empty.
    pub stream: String,
}

impl RtmpUrl {
    /// Parses `rtmp://host[:port]/app[/stream]`.
    pub fn parse(url: &str) -> Result<RtmpUrl, ClientError> {
        let bad = |why| ClientError::BadUrl {
            url: url.to_owned(),
            why,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad("no scheme"))?;
        if !scheme.eq_ignore_ascii_case("rtmp") {
            return Err(bad("only rtmp:// is supported"));
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = split_authority(authority).ok_or(bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (app, stream) = split_path(path);
        if app.is_empty() {
            return Err(bad("no app"));
        }
        Ok(RtmpUrl {
            host: host.to_owned(),
            port,
            app: app.to_owned(),
            stream: stream.to_owned(),
        })
    }

    /// `host:port` (IPv6 in brackets), as used in tcUrl.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The same server and app with another stream name.
    pub fn with_stream(&self, stream: &str) -> RtmpUrl {
        RtmpUrl {
            stream: stream.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for RtmpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtmp://{}/{}", self.authority(), self.app)?;
        if !self.stream.is_empty() {
            write!(f, "/{}", self.stream)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for RtmpUrl {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RtmpUrl::parse(s)
    }
}

fn split_authority(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => DEFAULT_PORT,
    };
    Some((host, port))
}

/// FFmpeg's app/playpath split of the URL path (without its leading `/`). Slashes inside the
/// query do not count (FFmpeg counts them; a token with a `/` would move into the app).
fn split_path(path: &str) -> (&str, &str) {
    let bare = path.split_once('?').map_or(path, |(bare, _)| bare);
    let Some(first) = bare.find('/') else {
        return (bare, path.get(bare.len()..).unwrap_or_default());
    };
    let after = &bare[first + 1..];
    let colon = after.find(':');
    match after.find('/') {
        Some(second) if !matches!(colon, Some(c) if c < second) => {
            (&path[..first + 1 + second], &path[first + second + 2..])
        }
        _ => (&path[..first], &path[first + 1..]),
    }
}

/// What [`Client::publish_tags`] and [`publish_file`] sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Video messages sent.
    pub video: u64,
    /// Audio messages sent.
    pub audio: u64,
    /// Metadata messages sent.
    pub data: u64,
    /// Payload bytes sent.
    pub bytes: u64,
    /// Passes over the file that were completed.
    pub loops: u64,
    /// Timestamp of the last message sent.
    pub last_timestamp: u32,
}

/// How [`Client::publish_tags`] and [`publish_file`] send a file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// Send each tag when its timestamp is due (like `ffmpeg -re`); otherwise as fast as the
    /// socket takes them.
    pub realtime: bool,
    /// Start over at the end of the file, with timestamps continuing; runs until an error or
    /// until the future is dropped.
    pub looping: bool,
}

/// One RTMP connection to a server.
pub struct Client {
    socket: TcpStream,
    session: ClientSession,
    /// Events read while waiting for something else, handed out first by `next_event`.
    backlog: VecDeque<ClientEvent>,
    read_buf: Vec<u8>,
    timeout: Duration,
    publishing: bool,
    eof: bool,
}

impl Client {
    /// Connects, completes the handshake and `connect`, with [`DEFAULT_TIMEOUT`].
    pub async fn connect(url: &RtmpUrl) -> Result<Client, ClientError> {
        Client::connect_timeout(url, DEFAULT_TIMEOUT).await
    }

    /// Like [`Client::connect`]; `timeout` also bounds later `publish` and `play` calls.
    pub async fn connect_timeout(url: &RtmpUrl, timeout: Duration) -> Result<Client, ClientError> {
        let deadline = Instant::now() + timeout;
        let socket = timeout_at(deadline, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| ClientError::Timeout("tcp connect"))??;
        socket.set_nodelay(true)?;
        let mut random = [0; 1528];
        rand::thread_rng().fill_bytes(&mut random);
        let config = ClientConfig::new(&url.authority(), &url.app);
        let mut client = Client {
            socket,
            session: ClientSession::new(config, std::time::Instant::now(), random),
            backlog: VecDeque::new(),
            read_buf: vec![0; READ_BUFFER],
            timeout,
            publishing: false,
            eof: false,
        };
        client.flush().await?;
        client
            .wait_for(deadline, "connect", |event| match event {
                ClientEvent::Connected => Some(Ok(())),
                _ => None,
            })
            .await?;
        Ok(client)
    }

    /// Publishes `name` (with its query, if any); waits for `NetStream.Publish.Start`, or
    /// fails with [`ClientError::Refused`] carrying the server's status.
    pub async fn publish(&mut self, name: &str) -> Result<(), ClientError> {
        self.session.publish(std::time::Instant::now(), name);
        self.flush().await?;
        let deadline = Instant::now() + self.timeout;
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
        self.session.play(std::time::Instant::now(), name);
        self.flush().await?;
        let deadline = Instant::now() + self.timeout;
        self.wait_for(deadline, "play start", |event| match event {
            ClientEvent::PlayStarted { .. } => Some(Ok(())),
            ClientEvent::Status { stream_id, status } => refusal(*stream_id, status),
            _ => None,
        })
        .await
    }

    /// Sends one audio, video or metadata frame. Data frames other than `onMetaData` are
    /// skipped (the session sends data only as `@setDataFrame` metadata).
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

    /// Sends an audio or video message (an FLV tag body) and writes it out at once.
    pub async fn send_media(
        &mut self,
        media_type: MediaType,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), ClientError> {
        if !self.publishing {
            return Err(ClientError::NotPublishing);
        }
        self.session.send_media(media_type, timestamp, payload);
        self.flush().await?;
        self.drain_input()
    }

    /// Sends metadata; `payload` is the AMF0 body `"onMetaData", {...}` (sent as
    /// `@setDataFrame`).
    pub async fn send_metadata(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), ClientError> {
        if !self.publishing {
            return Err(ClientError::NotPublishing);
        }
        self.session.send_metadata(timestamp, payload);
        self.flush().await?;
        self.drain_input()
    }

    /// The next event (media, data, status, user control), waiting at most `timeout`:
    /// `Ok(None)` when the time ran out, [`ClientError::Closed`] when the server closed.
    pub async fn next_event(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<ClientEvent>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self
                .backlog
                .pop_front()
                .or_else(|| self.session.poll_event())
            {
                return Ok(Some(event));
            }
            match timeout_at(deadline, self.read_some()).await {
                Ok(result) => result?,
                Err(_) => return Ok(None),
            }
        }
    }

    /// Sends `tags` in order, with timestamps rebased so the first is 0;
    /// paced by timestamp when `options.realtime`. Must be publishing already.
    pub async fn publish_tags(
        &mut self,
        tags: &[FlvTag],
        options: PublishOptions,
    ) -> Result<PublishStats, ClientError> {
        let mut stats = PublishStats::default();
        let Some(first) = tags.iter().map(|t| t.timestamp).min() else {
            return Ok(stats);
        };
        let span = loop_span(tags, first);
        let start = Instant::now();
        let mut offset: u64 = 0;
        loop {
            for tag in tags {
                let frame = tag.to_frame();
                // Later passes skip what a player already has: metadata and codec headers.
                if stats.loops > 0
                    && (frame.kind == MediaKind::Data || frame.info.is_sequence_header)
                {
                    continue;
                }
                let due = offset + u64::from(tag.timestamp.wrapping_sub(first));
                if options.realtime {
                    tokio::time::sleep_until(start + Duration::from_millis(due)).await;
                }
                let timestamp = due as u32;
                let frame = Frame { timestamp, ..frame };
                self.send_frame(&frame).await?;
                match frame.kind {
                    MediaKind::Audio => stats.audio += 1,
                    MediaKind::Video => stats.video += 1,
                    MediaKind::Data => stats.data += 1,
                }
                stats.bytes += frame.payload.len() as u64;
                stats.last_timestamp = timestamp;
            }
            stats.loops += 1;
            if !options.looping {
                return Ok(stats);
            }
            offset += span;
        }
    }

    /// Stops publishing or playing (FCUnpublish, deleteStream), closes our side of the
    /// connection and waits briefly for the server to close its side.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.session.close_stream();
        self.flush().await?;
        self.socket.shutdown().await?;
        let deadline = Instant::now() + CLOSE_GRACE;
        while !self.eof {
            match timeout_at(deadline, self.read_some()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        Ok(())
    }

    /// Bytes received from the server so far (handshake included).
    pub fn bytes_received(&self) -> u64 {
        self.session.bytes_received()
    }

    async fn wait_for(
        &mut self,
        deadline: Instant,
        what: &'static str,
        mut done: impl FnMut(&ClientEvent) -> Option<Result<(), ClientError>>,
    ) -> Result<(), ClientError> {
        loop {
            while let Some(event) = self.session.poll_event() {
                if let Some(result) = done(&event) {
                    return result;
                }
                self.keep(event);
            }
            timeout_at(deadline, self.read_some())
                .await
                .map_err(|_| ClientError::Timeout(what))??;
        }
    }

    /// Reads once from the socket, feeds the session and writes its reply.
    async fn read_some(&mut self) -> Result<(), ClientError> {
        if self.eof {
            return Err(ClientError::Closed);
        }
        let n = self.socket.read(&mut self.read_buf).await?;
        if n == 0 {
            self.eof = true;
            return Err(ClientError::Closed);
        }
        self.session
            .handle_input(std::time::Instant::now(), &self.read_buf[..n])?;
        self.flush().await
    }

    /// Feeds whatever the socket already holds into the session without waiting (a publisher
    /// must still answer pings and acknowledge bytes), keeping the events for later.
    fn drain_input(&mut self) -> Result<(), ClientError> {
        while !self.eof {
            match self.socket.try_read(&mut self.read_buf) {
                Ok(0) => self.eof = true,
                Ok(n) => self
                    .session
                    .handle_input(std::time::Instant::now(), &self.read_buf[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        while let Some(event) = self.session.poll_event() {
            self.keep(event);
        }
        // Replies (acks, pongs) go out with the next send.
        Ok(())
    }

    fn keep(&mut self, event: ClientEvent) {
        if self.backlog.len() >= MAX_BACKLOG {
            self.backlog.pop_front();
        }
        self.backlog.push_back(event);
    }

    /// Writes what the session queued; a peer that stops reading fails the write after the
    /// client's timeout instead of blocking forever.
    async fn flush(&mut self) -> Result<(), ClientError> {
        while let Some(bytes) = self.session.poll_transmit() {
            tokio::time::timeout(self.timeout, self.socket.write_all(&bytes))
                .await
                .map_err(|_| ClientError::Timeout("write"))??;
        }
        Ok(())
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.socket.peer_addr().ok())
            .field("publishing", &self.publishing)
            .field("bytes_received", &self.session.bytes_received())
            .finish_non_exhaustive()
    }
}

/// An error status that ends a publish or play request.
fn refusal(stream_id: u32, status: &weir_rtmp::command::Status) -> Option<Result<(), ClientError>> {
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

/// How far timestamps advance per pass over the tags: the span of the file plus one video
/// frame interval (or 40 ms without video), so a loop does not repeat a timestamp.
fn loop_span(tags: &[FlvTag], first: u32) -> u64 {
    let last = tags
        .iter()
        .map(|t| u64::from(t.timestamp.wrapping_sub(first)))
        .max()
        .unwrap_or(0);
    let mut video = tags.iter().filter(|t| t.kind == MediaKind::Video);
    let mut previous = video.next().map(|t| t.timestamp);
    let mut step = u64::MAX;
    for tag in video {
        if let Some(p) = previous {
            let d = u64::from(tag.timestamp.wrapping_sub(p));
            if d > 0 && d < step {
                step = d;
            }
        }
        previous = Some(tag.timestamp);
    }
    last + if step == u64::MAX { 40 } else { step }
}

/// Reads an FLV file into memory: its tags.
pub async fn read_flv_file(path: &Path) -> Result<Vec<FlvTag>, ClientError> {
    let data = tokio::fs::read(path).await?;
    Ok(FlvReader::from_bytes(Bytes::from(data))?.collect::<Result<Vec<_>, _>>()?)
}

/// Connects to `url`, publishes its stream, sends the FLV file at `path` (see
/// [`Client::publish_tags`]) and closes. With `options.looping` it runs until an error or
/// until the future is dropped.
pub async fn publish_file(
    url: &RtmpUrl,
    path: &Path,
    options: PublishOptions,
) -> Result<PublishStats, ClientError> {
    let tags = read_flv_file(path).await?;
    let mut client = Client::connect(url).await?;
    client.publish(&url.stream).await?;
    let stats = client.publish_tags(&tags, options).await?;
    client.close().await?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> (String, u16, String, String) {
        let u = RtmpUrl::parse(s).unwrap();
        (u.host, u.port, u.app, u.stream)
    }

    #[test]
    fn parses_urls_like_ffmpeg() {
        let t = |h: &str, p, a: &str, s: &str| (h.to_owned(), p, a.to_owned(), s.to_owned());
        assert_eq!(url("rtmp://h/live/key"), t("h", 1935, "live", "key"));
        assert_eq!(url("rtmp://h:1936/live"), t("h", 1936, "live", ""));
        assert_eq!(url("RTMP://h/live/"), t("h", 1935, "live", ""));
        assert_eq!(
            url("rtmp://127.0.0.1:19350/live/key?token=a/b"),
            t("127.0.0.1", 19350, "live", "key?token=a/b")
        );
        assert_eq!(url("rtmp://h/live?x=1"), t("h", 1935, "live", "?x=1"));
        assert_eq!(
            url("rtmp://h/live/inst/key"),
            t("h", 1935, "live/inst", "key")
        );
        assert_eq!(url("rtmp://h/a/b/c/d"), t("h", 1935, "a/b", "c/d"));
        assert_eq!(
            url("rtmp://h/vod/mp4:dir/file"),
            t("h", 1935, "vod", "mp4:dir/file")
        );
        assert_eq!(url("rtmp://[::1]:99/live/k"), t("::1", 99, "live", "k"));
        assert_eq!(url("rtmp://[::1]/live/k"), t("::1", 1935, "live", "k"));
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "http://h/live/k",
            "h/live/k",
            "rtmp:///live/k",
            "rtmp://h",
            "rtmp://h/",
            "rtmp://h:x/live/k",
            "rtmp://h:70000/live/k",
            "rtmp://[::1/live/k",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_round_trip() {
        for s in [
            "rtmp://h:1935/live/key",
            "rtmp://[::1]:1936/a/b/c",
            "rtmp://h:1/live",
        ] {
            assert_eq!(RtmpUrl::parse(s).unwrap().to_string(), s);
        }
        let u = RtmpUrl::parse("rtmp://h/live/a")
            .unwrap()
            .with_stream("b?x=1");
        assert_eq!(u.to_string(), "rtmp://h:1935/live/b?x=1");
    }

    #[test]
    fn loop_span_adds_one_frame() {
        let tag = |kind, timestamp| FlvTag {
            kind,
            timestamp,
            body: Bytes::new(),
        };
        let tags = [
            tag(MediaKind::Video, 100),
            tag(MediaKind::Audio, 110),
            tag(MediaKind::Video, 133),
            tag(MediaKind::Video, 166),
            tag(MediaKind::Audio, 180),
        ];
        assert_eq!(loop_span(&tags, 100), 80 + 33);
        assert_eq!(loop_span(&tags[1..2], 110), 40);
    }

    #[test]
    fn only_netstream_errors_refuse() {
        let status = |level, code: &str| weir_rtmp::command::Status {
            level,
            code: code.to_owned(),
            description: "d".to_owned(),
        };
        assert!(refusal(1, &status(StatusLevel::Error, code::PUBLISH_BAD_NAME)).is_some());
        assert!(refusal(0, &status(StatusLevel::Error, code::CALL_FAILED)).is_none());
        assert!(refusal(1, &status(StatusLevel::Status, code::PLAY_RESET)).is_none());
    }
}
