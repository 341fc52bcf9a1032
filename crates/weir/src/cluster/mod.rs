//! The origin/edge cluster (`[cluster]`, docs/CLUSTER.md): nodes share one Redis; the node an
//! encoder publishes to holds the stream's lease (with an epoch that only grows: the fencing
//! token) and is its origin; a node asked for a stream it does not have finds the origin
//! through Redis and pulls it once however many viewers ([`crate::pull`]).
//!
//! Every second a node's heartbeat (time to live 3 s) also checks the leases it believes it
//! holds, in one Redis call: a lease that is another node's now (a newer epoch) is dropped
//! here with its publisher and the pulls it served (fencing); a lease Redis lost (a restart
//! with empty data) is written back. The same tick resolves the owners of the streams this
//! node pulls, so an edge follows a stream that moved. Redis load: two calls per node per
//! second, plus one per publish, unpublish and cold play.
//!
//! A Redis outage stops nothing that runs: publishers, pulls and viewers continue; a new
//! publish is accepted without a lease and registered when Redis is back; a cold play (a
//! stream this node has not) is refused at once with a retryable error.

mod redis;
pub(crate) mod store;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::ClusterConfig;
use crate::registry::Role;
use crate::rtmp::Context;
use store::{Acquire, Beat, BeatReply, Member, Owner, Store, StoreError, View};

pub(crate) use self::redis::unix_ms;

/// How often a node beats.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a heartbeat lives: a node silent this long is dead, its leases free.
pub(crate) const NODE_TTL: Duration = Duration::from_secs(3);
/// The query parameter that marks a pull by another node of the cluster (its value is the
/// cluster's token).
pub(crate) const PULL_PARAM: &str = "weir_cluster";
/// The header that marks an HTTP request by another node of the cluster (its value is the
/// cluster's token).
pub(crate) const CLUSTER_HEADER: &str = "x-weir-cluster";
/// The longest a cold play waits for Redis before it is refused.
const COLD_PLAY_WAIT: Duration = Duration::from_millis(900);
/// How often a publish of a stream leased by another node asks again, waiting for that
/// node's heartbeat to expire.
const CLAIM_POLL: Duration = Duration::from_millis(50);

/// A lease this node holds.
#[derive(Clone, Copy, Debug)]
struct Held {
    /// Its epoch; `None` while Redis was unreachable when it was taken (registered later).
    epoch: Option<u64>,
    /// A number per claim, so a guard only ever removes its own entry.
    claim: u64,
    since: Instant,
}

/// How the store has been answering.
#[derive(Clone, Debug, Default)]
struct Health {
    up: bool,
    /// The last call's round trip.
    latency: Duration,
    down_since: Option<Instant>,
    /// When the outage was last logged.
    logged: Option<Instant>,
}

/// This node in the cluster.
pub(crate) struct Cluster {
    member: Member,
    store: Arc<dyn Store>,
    leases: Mutex<HashMap<String, Held>>,
    claims: AtomicU64,
    /// The owners of the streams this node pulls, as last resolved.
    owners: Mutex<HashMap<String, Option<Owner>>>,
    /// The streams this node pulls from other nodes (resolved every heartbeat).
    pulled: Mutex<HashSet<String>>,
    /// The cluster's pull token (and the one before it, still accepted).
    token: Mutex<(String, String)>,
    health: Mutex<Health>,
    /// Leases lost to another node.
    pub(crate) fenced: AtomicU64,
    /// Store calls that failed.
    pub(crate) store_errors: AtomicU64,
    /// Store calls made.
    pub(crate) store_calls: AtomicU64,
    /// Leases whose release failed (Redis unreachable): given back at the next heartbeat
    /// that reaches Redis, so no lease outlives its publisher.
    unreleased: Mutex<Vec<(String, u64)>>,
    /// Heartbeats sent.
    beats: AtomicU64,
    /// Whether the "node id taken" error was logged.
    replaced_logged: std::sync::atomic::AtomicBool,
    /// Held while leases are given back at a drain, so a second caller returns only once
    /// they are.
    releasing: tokio::sync::Mutex<()>,
}

/// A publish's hold on its stream's lease: given back when dropped (the publisher left).
pub(crate) struct LeaseGuard {
    cluster: Arc<Cluster>,
    stream: String,
    claim: u64,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.cluster.give_back(&self.stream, self.claim);
    }
}

/// A readable name of a store error for a client.
fn unreachable(err: &StoreError) -> String {
    format!("the cluster's Redis is unreachable ({err}); try again in a few seconds")
}

impl Cluster {
    /// This node's cluster membership, from `[cluster]` and the bound listeners.
    pub(crate) fn new(
        config: &ClusterConfig,
        rtmp: SocketAddr,
        http: SocketAddr,
    ) -> Result<Cluster, String> {
        let store = redis::RedisStore::new(config).map_err(|e| e.0)?;
        let id = if config.node_id.is_empty() {
            hostname()
        } else {
            config.node_id.clone()
        };
        let advertise = |given: &str, scheme: &str, addr: SocketAddr| {
            if !given.is_empty() {
                return given.trim_end_matches('/').to_owned();
            }
            let host = if addr.ip().is_unspecified() {
                hostname()
            } else {
                match addr.ip() {
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                }
            };
            format!("{scheme}://{host}:{}", addr.port())
        };
        let member = Member {
            id,
            incarnation: format!("{:016x}", rand::random::<u64>()),
            rtmp: advertise(&config.advertise_rtmp, "rtmp", rtmp),
            http: advertise(&config.advertise_http, "http", http),
            started_ms: unix_ms(),
        };
        let token = format!("{:032x}", rand::random::<u128>());
        Ok(Cluster {
            member,
            store: Arc::new(store),
            leases: Mutex::default(),
            claims: AtomicU64::new(0),
            owners: Mutex::default(),
            pulled: Mutex::default(),
            token: Mutex::new((token, String::new())),
            health: Mutex::default(),
            fenced: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            store_calls: AtomicU64::new(0),
            releasing: tokio::sync::Mutex::new(()),
            unreleased: Mutex::default(),
            replaced_logged: std::sync::atomic::AtomicBool::new(false),
            beats: AtomicU64::new(0),
        })
    }

    /// This node's id.
    pub(crate) fn node_id(&self) -> &str {
        &self.member.id
    }

    /// Counts a store call's outcome and keeps the store's health.
    fn note<T>(&self, result: &Result<T, StoreError>, started: Instant) {
        self.store_calls.fetch_add(1, Ordering::Relaxed);
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => {
                if let Some(since) = health.down_since.take() {
                    info!(
                        "cluster: Redis answers again after {:.1} s",
                        since.elapsed().as_secs_f64()
                    );
                }
                health.up = true;
                health.latency = started.elapsed();
            }
            Err(err) => {
                self.store_errors.fetch_add(1, Ordering::Relaxed);
                health.up = false;
                let now = Instant::now();
                if health.down_since.is_none() {
                    health.down_since = Some(now);
                }
                if health
                    .logged
                    .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
                {
                    health.logged = Some(now);
                    warn!(
                        "cluster: Redis unreachable: {err} (streams continue; new publishes are taken without a lease, plays of streams this node has not are refused until it is back)"
                    );
                }
            }
        }
    }

    /// Whether the last store call succeeded.
    pub(crate) fn store_up(&self) -> bool {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).up
    }

    /// The last call's round trip to Redis.
    pub(crate) fn store_latency(&self) -> Duration {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .latency
    }

    /// The leases this node holds: (stream, epoch (0 while not registered), held for).
    pub(crate) fn held(&self) -> Vec<(String, u64, Duration)> {
        let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let mut held: Vec<_> = leases
            .iter()
            .map(|(s, h)| (s.clone(), h.epoch.unwrap_or(0), h.since.elapsed()))
            .collect();
        held.sort();
        held
    }

    /// Whether this node holds `stream`'s lease.
    pub(crate) fn holds(&self, stream: &str) -> bool {
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(stream)
    }

    /// The query a pull by this node carries.
    pub(crate) fn pull_query(&self) -> String {
        let token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        format!("{PULL_PARAM}={}", token.0)
    }

    /// Whether `token` is the cluster's (a pull by another node).
    pub(crate) fn token_ok(&self, token: &str) -> bool {
        let known = self.token.lock().unwrap_or_else(|p| p.into_inner());
        !token.is_empty() && (token == known.0 || token == known.1)
    }

    /// Asks for `stream`'s lease for a publish. While another live node holds it the answer
    /// waits, asking again every 50 ms: granted as soon as that node's heartbeat expires (a
    /// dead origin), refused as soon as its heartbeat moves (a live one) or after the
    /// heartbeat's time to live. `takeover`: taken even from a live node (which is fenced
    /// within a heartbeat); so is a stream whose publisher there sent nothing for `stale`
    /// (`publish.stale_secs`; zero: never).
    pub(crate) async fn claim(
        self: &Arc<Self>,
        stream: &str,
        mut takeover: bool,
        stale: Duration,
    ) -> Result<u64, String> {
        let started = Instant::now();
        let mut seen: Option<(String, u64)> = None;
        loop {
            let t = Instant::now();
            let result = self.store.acquire(&self.member, stream, takeover).await;
            self.note(&result, t);
            match result {
                Ok(Acquire::Granted { epoch, previous }) => {
                    if !previous.is_empty() && previous != self.member.id {
                        info!(stream, epoch, previous = %previous, "cluster: lease taken over from node {previous}");
                    }
                    let claim = self.remember(stream, Some(epoch));
                    return Ok(claim);
                }
                Ok(Acquire::Held {
                    owner,
                    epoch,
                    beat,
                    idle_ms,
                }) => {
                    if !stale.is_zero() && idle_ms >= stale.as_millis() as u64 {
                        info!(stream, owner = %owner, epoch,
                            "cluster: the publisher on node {owner} sent nothing for {:.1} s (publish.stale_secs = {}): taking the stream over", idle_ms as f64 / 1000.0, stale.as_secs());
                        takeover = true;
                        continue;
                    }
                    match &seen {
                        None => {
                            info!(stream, owner = %owner, epoch,
                                "cluster: stream leased by node {owner}; waiting to see whether it is alive (up to {} s)", NODE_TTL.as_secs());
                            seen = Some((owner.clone(), beat));
                        }
                        Some((was, first)) if *was != owner || *first != beat => {
                            return Err(format!(
                                "stream {stream} is published on node {owner} of the cluster (a live node); stop that publisher first"
                            ));
                        }
                        Some(_) => {}
                    }
                    if started.elapsed() > NODE_TTL + Duration::from_millis(500) {
                        return Err(format!(
                            "stream {stream} is leased by node {owner} of the cluster, whose heartbeat did not expire"
                        ));
                    }
                    tokio::time::sleep(CLAIM_POLL).await;
                }
                Err(err) => {
                    warn!(stream, "cluster: publish accepted without a lease: {err}; registered when Redis is back");
                    let claim = self.remember(stream, None);
                    return Ok(claim);
                }
            }
        }
    }

    /// Records a lease taken by claim number `claim`.
    fn remember(&self, stream: &str, epoch: Option<u64>) -> u64 {
        let claim = self.claims.fetch_add(1, Ordering::Relaxed) + 1;
        self.leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                stream.to_owned(),
                Held {
                    epoch,
                    claim,
                    since: Instant::now(),
                },
            );
        claim
    }

    /// The guard that gives claim `claim` of `stream` back when dropped.
    pub(crate) fn guard(self: &Arc<Self>, stream: &str, claim: u64) -> LeaseGuard {
        LeaseGuard {
            cluster: Arc::clone(self),
            stream: stream.to_owned(),
            claim,
        }
    }

    /// Gives claim `claim` of `stream` back (if it is still this node's).
    fn give_back(self: &Arc<Self>, stream: &str, claim: u64) {
        let held = {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            match leases.get(stream) {
                Some(h) if h.claim == claim => leases.remove(stream),
                _ => None,
            }
        };
        let Some(Held {
            epoch: Some(epoch), ..
        }) = held
        else {
            return;
        };
        let cluster = Arc::clone(self);
        let stream = stream.to_owned();
        tokio::spawn(async move {
            let t = Instant::now();
            let result = cluster
                .store
                .release(&cluster.member, &[(stream.clone(), epoch)])
                .await;
            cluster.note(&result, t);
            match result {
                Ok(1) => info!(stream = %stream, epoch, "cluster: lease released"),
                Ok(_) => {}
                Err(err) => {
                    warn!(stream = %stream, epoch, "cluster: lease not released ({err}); released when Redis answers again");
                    cluster
                        .unreleased
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((stream, epoch));
                }
            }
        });
    }

    /// Gives every lease back at once (a drain or shutdown: encoders may reconnect to
    /// another node right away).
    pub(crate) async fn release_all(&self) {
        let _releasing = self.releasing.lock().await;
        let leases: Vec<(String, u64)> = {
            let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            leases
                .drain()
                .filter_map(|(s, h)| h.epoch.map(|e| (s, e)))
                .collect()
        };
        if leases.is_empty() {
            return;
        }
        let t = Instant::now();
        let result = self.store.release(&self.member, &leases).await;
        self.note(&result, t);
        match result {
            Ok(n) => info!("cluster: released {n} stream leases"),
            Err(err) => {
                warn!("cluster: leases not released ({err}); released when Redis answers again (or when this node's heartbeat ends)");
                self.unreleased
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(leases);
            }
        }
    }

    /// Leaves the cluster (shutdown): the leases and the heartbeat go at once.
    pub(crate) async fn leave(&self) {
        self.release_all().await;
        let t = Instant::now();
        let result = self.store.leave(&self.member).await;
        self.note(&result, t);
    }

    /// The live owner of `stream`, asked of Redis now (a cold play; at most ~1 s).
    pub(crate) async fn resolve(&self, stream: &str) -> Result<Option<Owner>, String> {
        let streams = [stream.to_owned()];
        let t = Instant::now();
        let result = match tokio::time::timeout(COLD_PLAY_WAIT, self.store.resolve(&streams)).await
        {
            Ok(result) => result,
            Err(_) => Err(StoreError("Redis did not answer in time".to_owned())),
        };
        self.note(&result, t);
        let owner = result.map_err(|e| unreachable(&e))?.pop().flatten();
        // Kept for the streams this node pulls only (a play of any name may ask).
        if self
            .pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(stream)
        {
            self.owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(stream.to_owned(), owner.clone());
        }
        Ok(owner)
    }

    /// The owner of a stream this node pulls, as last resolved (`None`: never resolved).
    pub(crate) fn known_owner(&self, stream: &str) -> Option<Option<Owner>> {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .cloned()
    }

    /// Marks `stream` as pulled here (its owner is resolved every heartbeat) or not.
    pub(crate) fn set_pulled(&self, stream: &str, pulled: bool) {
        let mut set = self.pulled.lock().unwrap_or_else(|p| p.into_inner());
        if pulled {
            set.insert(stream.to_owned());
        } else {
            set.remove(stream);
            self.owners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(stream);
        }
    }

    /// The streams this node pulls from the cluster.
    pub(crate) fn pulled(&self) -> Vec<String> {
        let mut v: Vec<_> = self
            .pulled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Where this node's HLS packager of `stream` starts its numbering, when this node is the
    /// stream's origin and an earlier origin left numbering in Redis (at most ~1 s).
    pub(crate) async fn hls_continuation(
        &self,
        stream: &str,
        container: &str,
    ) -> Option<weir_media::cmaf::Continuation> {
        if !self.holds(stream) {
            return None;
        }
        let t = Instant::now();
        let result =
            match tokio::time::timeout(COLD_PLAY_WAIT, self.store.hls_numbers(stream, container))
                .await
            {
                Ok(result) => result,
                Err(_) => Err(StoreError("Redis did not answer in time".to_owned())),
            };
        self.note(&result, t);
        match result {
            Ok(numbers) => numbers,
            Err(err) => {
                warn!(
                    stream,
                    "cluster: HLS numbering not read ({err}); the playlists start again from 0"
                );
                None
            }
        }
    }

    /// Keeps `stream`'s HLS numbering in Redis (once a segment), while this node holds the
    /// stream's lease, for the origin that may follow.
    pub(crate) fn save_hls(
        self: &Arc<Self>,
        stream: &str,
        container: &'static str,
        numbers: weir_media::cmaf::Continuation,
    ) {
        let epoch = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(stream)
            .and_then(|h| h.epoch);
        let Some(epoch) = epoch else { return };
        let cluster = Arc::clone(self);
        let stream = stream.to_owned();
        tokio::spawn(async move {
            let t = Instant::now();
            let result = cluster
                .store
                .put_hls_numbers(&cluster.member, &stream, epoch, container, numbers)
                .await;
            cluster.note(&result, t);
        });
    }

    /// Whether an HTTP request comes from another node of the cluster (its `x-weir-cluster`
    /// header carries the cluster token).
    pub(crate) fn trusted_request(&self, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get(CLUSTER_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| self.token_ok(t))
    }

    /// The cluster token, for a request to another node.
    pub(crate) fn token(&self) -> String {
        self.token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// The cluster as Redis has it.
    pub(crate) async fn view(&self) -> Result<View, String> {
        let t = Instant::now();
        let result = self.store.view().await;
        self.note(&result, t);
        result.map_err(|e| unreachable(&e))
    }

    /// One heartbeat: refreshes this node, checks its leases, registers provisional ones,
    /// fences lost ones, then resolves the owners of the streams it pulls.
    async fn beat(self: &Arc<Self>, context: &Arc<Context>) {
        let (confirmed, provisional): (Vec<_>, Vec<_>) = {
            let leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
            leases
                .iter()
                .map(|(s, h)| (s.clone(), h.epoch))
                .partition(|(_, e)| e.is_some())
        };
        // After an outage (the last call failed) and every 30 beats, leases Redis names this
        // process for but it does not hold are dropped.
        let beats = self.beats.fetch_add(1, Ordering::Relaxed);
        let beat = Beat {
            sweep: !self.store_up() || beats.is_multiple_of(30),
            ttl_ms: NODE_TTL.as_millis() as u64,
            token: self
                .token
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .0
                .clone(),
            leases: confirmed
                .into_iter()
                .map(|(s, e)| {
                    let idle = context
                        .hub
                        .stream_stats(&s)
                        .and_then(|st| st.idle_for)
                        .map_or(0, |d| d.as_millis() as u64);
                    (s, e.unwrap_or(0), idle)
                })
                .collect(),
        };
        let t = Instant::now();
        let result = self.store.heartbeat(&self.member, &beat).await;
        self.note(&result, t);
        match result {
            Ok(BeatReply::Alive {
                restored,
                token,
                lost,
                ..
            }) => {
                {
                    let mut known = self.token.lock().unwrap_or_else(|p| p.into_inner());
                    if known.0 != token {
                        known.1 = std::mem::replace(&mut known.0, token);
                    }
                }
                if restored > 0 {
                    info!(
                        restored,
                        "cluster: Redis had lost leases of this node; written back"
                    );
                }
                for (stream, owner, epoch) in lost {
                    self.fence(context, &stream, &owner, epoch);
                }
            }
            Ok(BeatReply::Replaced(incarnation)) => {
                if !self.replaced_logged.swap(true, Ordering::Relaxed) {
                    error!(node = %self.member.id, other = %incarnation,
                        "cluster: a newer process took this node id (cluster.node_id must be unique); giving up every lease");
                }
                let streams: Vec<String> = self
                    .leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                for stream in streams {
                    self.fence(context, &stream, "", 0);
                }
                return;
            }
            Err(_) => return,
        }
        let unreleased =
            std::mem::take(&mut *self.unreleased.lock().unwrap_or_else(|p| p.into_inner()));
        if !unreleased.is_empty() {
            let t = Instant::now();
            let result = self.store.release(&self.member, &unreleased).await;
            self.note(&result, t);
            match result {
                Ok(n) => info!(
                    released = n,
                    "cluster: leases of publishers that left during the outage released"
                ),
                Err(_) => self
                    .unreleased
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(unreleased),
            }
        }
        for (stream, _) in provisional {
            let t = Instant::now();
            let result = self.store.acquire(&self.member, &stream, false).await;
            self.note(&result, t);
            match result {
                Ok(Acquire::Granted { epoch, .. }) => {
                    let mut leases = self.leases.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(held) = leases.get_mut(&stream) {
                        if held.epoch.is_none() {
                            held.epoch = Some(epoch);
                            info!(stream = %stream, epoch, "cluster: lease registered (taken while Redis was unreachable)");
                        }
                    }
                }
                Ok(Acquire::Held { owner, epoch, .. }) => {
                    self.fence(context, &stream, &owner, epoch)
                }
                Err(_) => return,
            }
        }
        let pulled = self.pulled();
        if pulled.is_empty() {
            return;
        }
        let t = Instant::now();
        let result = self.store.resolve(&pulled).await;
        self.note(&result, t);
        if let Ok(owners) = result {
            let mut known = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            for (stream, owner) in pulled.into_iter().zip(owners) {
                known.insert(stream, owner);
            }
        }
    }

    /// `stream` is another node's now: its lease is dropped here, its publisher and the
    /// pulls other nodes make of it closed; local viewers stay and follow it to its new
    /// origin.
    fn fence(self: &Arc<Self>, context: &Arc<Context>, stream: &str, owner: &str, epoch: u64) {
        let held = self
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(stream);
        let Some(held) = held else { return };
        self.fenced.fetch_add(1, Ordering::Relaxed);
        let why = if owner.is_empty() {
            format!("fenced: this node's lease of {stream} is no longer valid")
        } else {
            format!("fenced: node {owner} holds {stream} now (epoch {epoch})")
        };
        warn!(
            stream,
            ours = held.epoch.unwrap_or(0),
            theirs = epoch,
            "cluster: {why}; closing its publisher and the pulls of other nodes"
        );
        // Local viewers are told of a hand-over, not an end: they stay and follow the stream
        // to its new origin.
        context.hub.hand_over(stream);
        for info in context.registry.list() {
            let close = match &info.role {
                Role::Publishing(k) => k.path() == stream,
                Role::Playing(k) => k.path() == stream && k.query_param(PULL_PARAM).is_some(),
                _ => false,
            };
            if close {
                context.registry.close(info.id, &why);
            }
        }
        follow_when_unpublished(context, stream);
    }

    /// Beats every second until `stop`; leaves the cluster then.
    pub(crate) async fn run(
        self: Arc<Self>,
        context: Arc<Context>,
        mut stop: watch::Receiver<bool>,
    ) {
        info!(node = %self.member.id, rtmp = %self.member.rtmp, http = %self.member.http,
            "cluster: joining through Redis (heartbeat every {} s, expires after {} s)", HEARTBEAT.as_secs(), NODE_TTL.as_secs());
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = tick.tick() => self.beat(&context).await,
                _ = stop.changed() => {}
            }
        }
        self.leave().await;
        info!("cluster: left");
    }
}

/// Once `stream` is no longer published here, viewers still watching it follow it to
/// whichever node publishes it next (a cluster pull).
pub(crate) fn follow_when_unpublished(context: &Arc<Context>, stream: &str) {
    let context = Arc::clone(context);
    let stream = stream.to_owned();
    tokio::spawn(async move {
        for _ in 0..100 {
            if !context
                .hub
                .stream_stats(&stream)
                .is_some_and(|s| s.published)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some((app, name)) = stream.split_once('/') {
            let key = crate::stream_key::StreamKey::new(app, name, None);
            if crate::pull::audience(&context, &key) > 0 {
                crate::pull::wanted(&context, &key);
            }
        }
    });
}

/// The machine's hostname (the default node id).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weir".to_owned())
}

/// Whether a play of `key` here must first ask Redis where the stream is: the cluster is on,
/// the stream is neither published nor pulled here, this node holds no lease of it, and the
/// app has no fixed upstream.
pub(crate) fn needs_lookup(context: &Context, key: &crate::stream_key::StreamKey) -> bool {
    let Some(cluster) = &context.cluster else {
        return false;
    };
    let path = key.path();
    key.query_param(PULL_PARAM).is_none()
        && !cluster.holds(path)
        && context.pulls.upstream(path).is_none()
        && !context.hub.stream_stats(path).is_some_and(|s| s.published)
        && context
            .live()
            .app_rules(key.app())
            .is_none_or(|r| r.pull.url.is_empty())
}

/// Before a play of a stream this node has not ([`needs_lookup`]): its owner is looked up
/// (at most ~1 s); an unreachable Redis refuses the play with a retryable error.
pub(crate) async fn cold_play(
    context: &Context,
    key: &crate::stream_key::StreamKey,
) -> Result<(), String> {
    match &context.cluster {
        Some(cluster) if needs_lookup(context, key) => {
            cluster.resolve(key.path()).await.map(|_| ())
        }
        _ => Ok(()),
    }
}

/// A publish's claim while it waits: the claim number once granted, given back if the
/// publish never uses it (the connection closed, the request timed out).
pub(crate) struct ClaimSlot {
    cluster: Arc<Cluster>,
    stream: String,
    claim: Mutex<Option<u64>>,
}

impl ClaimSlot {
    /// An empty slot for a claim of `stream`.
    pub(crate) fn new(cluster: &Arc<Cluster>, stream: &str) -> Arc<ClaimSlot> {
        Arc::new(ClaimSlot {
            cluster: Arc::clone(cluster),
            stream: stream.to_owned(),
            claim: Mutex::new(None),
        })
    }

    /// Claims the lease (see [`Cluster::claim`]) and keeps the claim in the slot.
    pub(crate) async fn claim(
        self: Arc<Self>,
        takeover: bool,
        stale: Duration,
    ) -> Result<(), String> {
        let claim = self.cluster.claim(&self.stream, takeover, stale).await?;
        *self.claim.lock().unwrap_or_else(|p| p.into_inner()) = Some(claim);
        Ok(())
    }

    /// The granted lease as a guard, taken out of the slot.
    pub(crate) fn take(&self) -> Option<LeaseGuard> {
        let claim = self
            .claim
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        Some(self.cluster.guard(&self.stream, claim))
    }
}

impl Drop for ClaimSlot {
    fn drop(&mut self) {
        if let Some(claim) = self
            .claim
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            self.cluster.give_back(&self.stream, claim);
        }
    }
}
