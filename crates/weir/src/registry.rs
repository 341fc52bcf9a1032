//! The registry of open connections: who is connected, doing what, since when, how many
//! bytes, and a handle to close any of them.
//!
//! A connection task registers itself when it starts and holds a [`ConnectionHandle`]; the
//! entry disappears when the handle drops. Byte counters are per-connection atomics that only
//! the owning task writes, so keeping them costs no contention on the media path.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;

use crate::stream_key::StreamKey;

/// How a client reached the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// RTMP over TCP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
    /// HTTP-FLV (a long GET of an FLV stream).
    HttpFlv,
    /// HLS or DASH requests (playlists, segments; no lasting connection).
    Hls,
}

impl Protocol {
    /// Every protocol, in a fixed order (index = [`Protocol::index`]).
    pub const ALL: [Protocol; 4] = [
        Protocol::Rtmp,
        Protocol::Rtmps,
        Protocol::HttpFlv,
        Protocol::Hls,
    ];

    /// Lowercase name, as in logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Rtmps => "rtmps",
            Protocol::HttpFlv => "http-flv",
            Protocol::Hls => "hls",
        }
    }

    /// Position in [`Protocol::ALL`], for per-protocol counters.
    pub fn index(self) -> usize {
        match self {
            Protocol::Rtmp => 0,
            Protocol::Rtmps => 1,
            Protocol::HttpFlv => 2,
            Protocol::Hls => 3,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a connection does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Handshake or connect not finished, or connected without a stream yet.
    Connecting,
    /// Connected to an application, neither publishing nor playing.
    Connected {
        /// The application.
        app: String,
    },
    /// Publishing a stream.
    Publishing(StreamKey),
    /// Playing a stream.
    Playing(StreamKey),
}

impl Role {
    /// `connecting`, `connected`, `publisher` or `player`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Connecting => "connecting",
            Role::Connected { .. } => "connected",
            Role::Publishing(_) => "publisher",
            Role::Playing(_) => "player",
        }
    }
}

/// One registered connection, shared by its task and the registry.
struct Entry {
    id: u64,
    peer: SocketAddr,
    protocol: Protocol,
    since: SystemTime,
    started: Instant,
    role: Mutex<Role>,
    /// What the client says it is (RTMP flashVer), once it said.
    agent: Mutex<Option<String>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Taken by the first close request, which sends its reason. A oneshot: the driver polls
    /// its receiver on every turn of its loop, and that poll takes no lock.
    close: Mutex<Option<oneshot::Sender<CloseRequest>>>,
}

/// Why and how a connection is asked to close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseRequest {
    /// The reason, logged by the connection.
    pub reason: String,
    /// A drain: a client that handles E-RTMP ReconnectRequest is asked to reconnect and
    /// served until it leaves or the drain's time is up; other clients close at once.
    pub drain: Option<Drain>,
}

/// A drain's terms (see [`CloseRequest::drain`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    /// How long a client asked to reconnect is still served.
    pub timeout: std::time::Duration,
    /// Where it should reconnect (`None`: the same server).
    pub tc_url: Option<String>,
}

/// A point-in-time copy of one connection's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// Connection id (also in every log line of the connection).
    pub id: u64,
    /// Client address.
    pub peer: SocketAddr,
    /// How it connected.
    pub protocol: Protocol,
    /// What it does.
    pub role: Role,
    /// What the client says it is (RTMP `flashVer`, e.g. `FMLE/3.0 (compatible; OBS …)`).
    pub agent: Option<String>,
    /// When it connected (wall clock).
    pub since: SystemTime,
    /// How long it has been connected, in milliseconds.
    pub age_ms: u64,
    /// Bytes received from it (handshake included).
    pub bytes_in: u64,
    /// Bytes written to it.
    pub bytes_out: u64,
}

/// All open connections of a server.
#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    open: HashMap<u64, Arc<Entry>>,
    /// Set by [`Registry::close_all`] / [`Registry::drain_all`]: connections registered later
    /// get the same request at once.
    closing: Option<CloseRequest>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry {
            next_id: AtomicU64::new(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        lock(&self.entries)
    }

    /// Registers a new connection; it stays listed until the handle drops.
    pub fn register(self: &Arc<Self>, peer: SocketAddr, protocol: Protocol) -> ConnectionHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        let entry = Arc::new(Entry {
            id,
            peer,
            protocol,
            since: SystemTime::now(),
            started: Instant::now(),
            role: Mutex::new(Role::Connecting),
            agent: Mutex::new(None),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            close: Mutex::new(Some(close)),
        });
        {
            let mut entries = self.entries();
            if let Some(reason) = &entries.closing {
                entry.request_close(reason);
            }
            entries.open.insert(id, Arc::clone(&entry));
        }
        ConnectionHandle {
            registry: Arc::clone(self),
            entry,
            closed: Some(closed),
        }
    }

    /// Every open connection, ordered by id.
    pub fn list(&self) -> Vec<ConnectionInfo> {
        let entries: Vec<Arc<Entry>> = self.entries().open.values().cloned().collect();
        let mut list: Vec<ConnectionInfo> = entries.iter().map(|e| info(e)).collect();
        list.sort_by_key(|c| c.id);
        list
    }

    /// One connection.
    pub fn get(&self, id: u64) -> Option<ConnectionInfo> {
        let entry = self.entries().open.get(&id).cloned()?;
        Some(info(&entry))
    }

    /// Number of open connections.
    pub fn len(&self) -> usize {
        self.entries().open.len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks connection `id` to close (its task logs `reason`); false if it is not open.
    pub fn close(&self, id: u64, reason: &str) -> bool {
        let Some(entry) = self.entries().open.get(&id).cloned() else {
            return false;
        };
        entry.request_close(&CloseRequest {
            reason: reason.to_owned(),
            drain: None,
        });
        true
    }

    /// Closes every connection, and any that registers from now on (server shutdown). Each
    /// connection waits on its own signal, so no shared one sits in the drivers' loops.
    pub fn close_all(&self, reason: &str) {
        self.request_all(CloseRequest {
            reason: reason.to_owned(),
            drain: None,
        });
    }

    /// Drains every connection, and any that registers from now on: clients that handle
    /// E-RTMP ReconnectRequest are asked to reconnect and served until they leave or
    /// `drain.timeout` passes; the others close at once.
    pub fn drain_all(&self, reason: &str, drain: Drain) {
        self.request_all(CloseRequest {
            reason: reason.to_owned(),
            drain: Some(drain),
        });
    }

    fn request_all(&self, request: CloseRequest) {
        let mut entries = self.entries();
        for entry in entries.open.values() {
            entry.request_close(&request);
        }
        entries.closing = Some(request);
    }
}

impl Entry {
    /// Sends the close request, unless one was sent already (the first reason wins).
    fn request_close(&self, request: &CloseRequest) {
        if let Some(close) = lock(&self.close).take() {
            let _ = close.send(request.clone());
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn info(entry: &Entry) -> ConnectionInfo {
    ConnectionInfo {
        id: entry.id,
        peer: entry.peer,
        protocol: entry.protocol,
        role: lock(&entry.role).clone(),
        agent: lock(&entry.agent).clone(),
        since: entry.since,
        age_ms: entry.started.elapsed().as_millis() as u64,
        bytes_in: entry.bytes_in.load(Ordering::Relaxed),
        bytes_out: entry.bytes_out.load(Ordering::Relaxed),
    }
}

/// A connection's own entry: it updates role and counters and hears close requests.
/// Dropping it removes the connection from the registry.
pub struct ConnectionHandle {
    registry: Arc<Registry>,
    entry: Arc<Entry>,
    closed: Option<oneshot::Receiver<CloseRequest>>,
}

impl ConnectionHandle {
    /// The connection id.
    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// Sets what the connection does.
    pub fn set_role(&self, role: Role) {
        *lock(&self.entry.role) = role;
    }

    /// Sets what the client says it is (at most 256 characters are kept).
    pub fn set_agent(&self, agent: &str) {
        *lock(&self.entry.agent) = Some(agent.chars().take(256).collect());
    }

    /// Records the total bytes received so far.
    pub fn set_bytes_in(&self, total: u64) {
        self.entry.bytes_in.store(total, Ordering::Relaxed);
    }

    /// Adds bytes written.
    pub fn add_bytes_out(&self, bytes: u64) {
        self.entry.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot of this connection.
    pub fn info(&self) -> ConnectionInfo {
        info(&self.entry)
    }

    /// Resolves when [`Registry::close`] (or [`Registry::close_all`]) is called for this
    /// connection, with the reason. The future owns what it needs, so a driver pins it once
    /// outside its loop; a second call gives a future that never resolves.
    pub fn closed(&mut self) -> impl std::future::Future<Output = CloseRequest> + Send + 'static {
        let closed = self.closed.take();
        async move {
            match closed {
                Some(closed) => closed.await.unwrap_or_else(|_| CloseRequest {
                    reason: "closed by the server".to_owned(),
                    drain: None,
                }),
                None => std::future::pending().await,
            }
        }
    }
}

impl Drop for ConnectionHandle {
    fn drop(&mut self) {
        self.registry.entries().open.remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_updates_and_closes_connections() {
        let registry = Arc::new(Registry::new());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = registry.register(peer, Protocol::Rtmp);
        let mut b = registry.register(peer, Protocol::Rtmps);
        a.set_role(Role::Publishing(StreamKey::new("live", "x", None)));
        a.set_bytes_in(1000);
        a.add_bytes_out(10);
        a.add_bytes_out(5);
        let list = registry.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id, a.id());
        assert_eq!(list[0].role.as_str(), "publisher");
        assert_eq!((list[0].bytes_in, list[0].bytes_out), (1000, 15));
        assert_eq!(list[1].protocol, Protocol::Rtmps);
        assert!(registry.close(b.id(), "kicked by test"));
        assert_eq!(b.closed().await.reason, "kicked by test");
        drop(b);
        assert_eq!(registry.len(), 1);
        assert!(!registry.close(999, "nobody"));
        drop(a);
        assert!(registry.is_empty());
    }

    #[tokio::test]
    async fn close_all_reaches_open_and_later_connections() {
        let registry = Arc::new(Registry::new());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut open = registry.register(peer, Protocol::Rtmp);
        registry.close_all("server shutting down");
        let mut late = registry.register(peer, Protocol::Rtmp);
        assert_eq!(open.closed().await.reason, "server shutting down");
        assert_eq!(late.closed().await.reason, "server shutting down");
    }
}
