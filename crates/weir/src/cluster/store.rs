//! The cluster's shared state behind a small trait: node heartbeats, per-stream leases with a
//! monotonic epoch (the fencing token), owner lookups. [`super::redis::RedisStore`] is the
//! backend; another (etcd, a database) implements the same five operations with the same
//! atomicity: each is one compare-and-set step, never a blind write.

use futures_util::future::BoxFuture;

/// What a store call failed with: the store is unreachable, slow or answered nonsense. The
/// cluster treats every error alike (the store is "down" until a call succeeds).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StoreError(pub(crate) String);

/// A store call's result.
pub(crate) type StoreResult<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// This process as a cluster member.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    /// `cluster.node_id`.
    pub(crate) id: String,
    /// Random per process: a restarted node's leases from before are not its own.
    pub(crate) incarnation: String,
    /// How other nodes reach its RTMP listener.
    pub(crate) rtmp: String,
    /// How other nodes reach its HTTP listener.
    pub(crate) http: String,
    /// When the process started (Unix ms): of two processes claiming one node id, the newer
    /// keeps it.
    pub(crate) started_ms: u64,
}

/// A heartbeat's content besides the member.
#[derive(Clone, Debug, Default)]
pub(crate) struct Beat {
    /// Heartbeat time to live.
    pub(crate) ttl_ms: u64,
    /// The cluster pull token this node would set if none is there.
    pub(crate) token: String,
    /// Also drop the leases the store names this process for that it does not hold (after
    /// an outage: a store restarted from an old snapshot brings back ended leases).
    pub(crate) sweep: bool,
    /// The leases this node believes it holds: (stream, epoch, ms since its publisher last
    /// sent anything).
    pub(crate) leases: Vec<(String, u64, u64)>,
}

/// The store's answer to a heartbeat.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum BeatReply {
    /// Alive; `lost` leases are another node's now (or newer than ours).
    Alive {
        /// The heartbeat counter (it moves once per beat: how others tell a live owner).
        beat: u64,
        /// Leases written back because the store had lost them (a restart with empty data).
        restored: u64,
        /// The cluster pull token every node uses.
        token: String,
        /// Leases that are not ours any more: (stream, owner or "", owner's epoch).
        lost: Vec<(String, String, u64)>,
    },
    /// A newer process took this node id (its incarnation).
    Replaced(String),
}

/// The answer to a lease request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Acquire {
    /// The lease is ours with this epoch; the node that held it before, if any.
    Granted { epoch: u64, previous: String },
    /// A live node holds it.
    Held {
        owner: String,
        epoch: u64,
        /// The owner's heartbeat counter: when it moves, the owner is alive.
        beat: u64,
        /// How long the owner's publisher had sent nothing, as of its last heartbeat (ms).
        idle_ms: u64,
    },
}

/// The live owner of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) node: String,
    pub(crate) epoch: u64,
    pub(crate) rtmp: String,
    pub(crate) http: String,
}

/// A node as the store has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeView {
    pub(crate) id: String,
    pub(crate) incarnation: String,
    pub(crate) rtmp: String,
    pub(crate) http: String,
    pub(crate) beat: u64,
    pub(crate) started_ms: u64,
    pub(crate) seen_ms: u64,
}

/// A lease as the store has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseView {
    pub(crate) stream: String,
    pub(crate) node: String,
    pub(crate) epoch: u64,
    pub(crate) since_ms: u64,
    /// Whether its node's heartbeat lives.
    pub(crate) alive: bool,
}

/// The whole cluster as the store has it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) nodes: Vec<NodeView>,
    pub(crate) leases: Vec<LeaseView>,
}

/// The shared state of a cluster. Every method is one atomic step in the store.
pub(crate) trait Store: Send + Sync {
    /// Refreshes `member`'s heartbeat and checks (restoring what the store lost) the leases
    /// it believes it holds.
    fn heartbeat<'a>(&'a self, member: &'a Member, beat: &'a Beat) -> StoreResult<'a, BeatReply>;
    /// Takes `stream`'s lease with a new epoch unless another live node holds it (`takeover`:
    /// even then).
    fn acquire<'a>(
        &'a self,
        member: &'a Member,
        stream: &'a str,
        takeover: bool,
    ) -> StoreResult<'a, Acquire>;
    /// Gives leases back where they are still `member`'s with that epoch; how many were.
    fn release<'a>(
        &'a self,
        member: &'a Member,
        leases: &'a [(String, u64)],
    ) -> StoreResult<'a, u64>;
    /// The live owner of each stream.
    fn resolve<'a>(&'a self, streams: &'a [String]) -> StoreResult<'a, Vec<Option<Owner>>>;
    /// Every node and lease.
    fn view(&self) -> StoreResult<'_, View>;
    /// A stream's HLS numbering for `container`, as its last origin left it.
    fn hls_numbers<'a>(
        &'a self,
        stream: &'a str,
        container: &'a str,
    ) -> StoreResult<'a, Option<weir_media::cmaf::Continuation>>;
    /// Keeps a stream's HLS numbering (only while `member` holds its lease with `epoch`;
    /// each number only grows); whether it was written.
    fn put_hls_numbers<'a>(
        &'a self,
        member: &'a Member,
        stream: &'a str,
        epoch: u64,
        container: &'a str,
        numbers: weir_media::cmaf::Continuation,
    ) -> StoreResult<'a, bool>;
    /// Removes `member`'s heartbeat (shutdown).
    fn leave<'a>(&'a self, member: &'a Member) -> StoreResult<'a, bool>;
}
