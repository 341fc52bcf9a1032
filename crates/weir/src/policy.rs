//! Who may connect, publish and play: the [`Policy`] every listener asks.
//!
//! A request is a value the connection driver hands to the policy; the answer is either ready
//! at once ([`Answer::Ready`]) or arrives later ([`Answer::Pending`], a future: a webhook, a
//! database lookup). While a request waits, the connection's session holds everything the
//! client sends after it (no media enters the hub, nothing reaches a player; past a few MiB the
//! driver stops reading and TCP holds the client back), and the wait is one more branch of that
//! connection's loop (other connections never wait for it). An unanswered publish or play is
//! refused by the session itself when `rtmp.request_timeout_secs` runs out; an unanswered
//! connect ends the connection at `rtmp.handshake_timeout_secs`. A publish the policy refuses
//! gets `NetStream.Publish.BadName` with the reason and the connection closes (OBS then shows
//! the error instead of retrying); a refused play gets `NetStream.Play.Failed`; a refused
//! connect `NetConnection.Connect.Rejected`.
//!
//! The one-publisher-per-stream rule is the hub's, applied after the policy allowed a publish.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::registry::Protocol;
use crate::stream_key::StreamKey;

/// The client behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Connection id (as in the logs and the registry).
    pub id: u64,
    /// Client address.
    pub peer: SocketAddr,
    /// How it connected.
    pub protocol: Protocol,
    /// The tcUrl of its RTMP `connect` (absent over HTTP).
    pub tc_url: Option<String>,
}

/// A `connect` to an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Who asks.
    pub client: Client,
    /// Application name.
    pub app: String,
    /// Query string of the app or tcUrl.
    pub query: Option<String>,
    /// The tcUrl, if the client sent one.
    pub tc_url: Option<String>,
    /// The client's flashVer (names the encoder or player).
    pub flash_version: Option<String>,
}

/// A publish or a play of one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    /// Who asks.
    pub client: Client,
    /// The stream, with the query that came with it.
    pub key: StreamKey,
}

/// What ended: a publish or a play the policy had allowed, or a recording file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A publish (unpublished, or the publisher left).
    Publish,
    /// A play (stopped, or the player left).
    Play,
    /// A recording file was closed (`request.client` is the server itself; `reason` says
    /// why the file closed). `file` is its path, `start` when it began (RFC 3339).
    RecordDone {
        /// The file's path as the recorder wrote it.
        file: String,
        /// Wall clock at its first sample, RFC 3339.
        start: String,
        /// `"fmp4"` or `"flv"`.
        format: &'static str,
    },
}

/// A publish or play that ended, told to [`Policy::ended`].
#[derive(Clone, Debug)]
pub struct Ended {
    /// Which.
    pub what: Ending,
    /// Who, and the stream under its public name.
    pub request: StreamRequest,
    /// How long it lasted.
    pub duration: std::time::Duration,
    /// Bytes received (publish) or sent (play).
    pub bytes: u64,
    /// Why it ended, as in the log.
    pub reason: String,
}

/// A policy's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Go ahead under this stream name instead of the one asked for (a secret publish key
    /// becomes the public name viewers watch). For a connect, the same as `Allow`.
    AllowAs(String),
    /// Refuse; the text goes to the client's error status and to the log.
    Deny(String),
}

/// A decision now, or one that arrives later.
pub enum Answer {
    /// Decided already (no allocation, no extra wake-up).
    Ready(Decision),
    /// Decided when the future resolves.
    Pending(Pin<Box<dyn Future<Output = Decision> + Send>>),
}

impl Answer {
    /// An answer that comes from `future`.
    pub fn later(future: impl Future<Output = Decision> + Send + 'static) -> Answer {
        Answer::Pending(Box::pin(future))
    }
}

impl From<Decision> for Answer {
    fn from(decision: Decision) -> Answer {
        Answer::Ready(decision)
    }
}

/// Decides connects, publishes and plays. Implementations must be cheap to call: anything
/// slow belongs in the returned future, which only its own connection waits for.
pub trait Policy: Send + Sync + 'static {
    /// May this client connect to this application?
    fn connect(&self, request: &ConnectRequest) -> Answer;
    /// May this client publish this stream?
    fn publish(&self, request: &StreamRequest) -> Answer;
    /// May this client play this stream?
    fn play(&self, request: &StreamRequest) -> Answer;
    /// A publish or play it allowed has ended (for webhooks; nothing is waited for).
    fn ended(&self, _ended: &Ended) {}
}

/// The zero-config rules: any application name but an empty one, any stream key, anyone may
/// watch. (One publisher per key still holds: the hub refuses a second one.)
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenPolicy;

impl Policy for OpenPolicy {
    fn connect(&self, request: &ConnectRequest) -> Answer {
        if request.app.is_empty() {
            Decision::Deny("application name is empty; use rtmp://HOST/live".to_owned()).into()
        } else {
            Decision::Allow.into()
        }
    }

    fn publish(&self, _request: &StreamRequest) -> Answer {
        Decision::Allow.into()
    }

    fn play(&self, _request: &StreamRequest) -> Answer {
        Decision::Allow.into()
    }
}
