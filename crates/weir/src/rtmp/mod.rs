//! The RTMP listener: accepts connections from a [`Transport`] and runs one task per
//! connection, whatever the byte stream underneath (TCP today, TLS next, in-memory pipes in
//! tests).

pub(crate) mod connection;
pub(crate) use connection::over_viewer_limit;
mod player;
#[cfg(test)]
mod tests;
pub(crate) mod tls;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use weir_rtmp::chunk::DecoderLimits;
use weir_rtmp::session::ServerConfig;

use crate::config::Config;
use crate::hub::Hub;
use crate::log_throttle::Throttle;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::registry::{Drain, Protocol, Registry};

/// What every connection task shares.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) session: ServerConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) registry: Arc<Registry>,
    /// The access policy; replaced by a reload when it was built from the config.
    policy: std::sync::RwLock<Arc<dyn Policy>>,
    /// Whether the policy comes from `[apps]` (a reload rebuilds it) or was given by the
    /// embedding program (a reload keeps it).
    pub(crate) policy_from_config: bool,
    /// The configuration as last (re)loaded: the rules read per request (app limits,
    /// takeover, playback policies) come from here; listener settings from `config`.
    pub(crate) live: watch::Sender<Arc<Config>>,
    /// What the command line changes in every configuration loaded (addresses, log level).
    #[allow(clippy::type_complexity)]
    pub(crate) overrides: std::sync::Mutex<Option<Box<dyn Fn(&mut Config) + Send + Sync>>>,
    /// The HLS segmenters that run (started by the HTTP listener).
    pub(crate) hls: crate::http::HlsStreams,
    /// Connections held at once, RTMP and HTTP together (`rtmp.max_connections`).
    pub(crate) permits: Arc<Semaphore>,
    /// Connections held per client address (`rtmp.max_connections_per_ip`).
    pub(crate) per_ip: Arc<crate::limits::PerIp>,
    /// New connections per client address per second (`rtmp.max_connection_rate_per_ip`).
    pub(crate) rate: Arc<crate::limits::Rate>,
    /// The trusted proxies (`[proxy]`).
    pub(crate) proxies: Arc<crate::proxy::Proxies>,
    /// The certificate the HTTP listener serves HTTPS with (`http.tls`).
    pub(crate) https: Option<Arc<tls::Certificates>>,
    /// The RTMPS (and HTTPS) certificates, when on (a reload may load other files).
    pub(crate) certificates: Option<Arc<tls::Certificates>>,
    /// The origin of the merged-writes grid ([`crate::viewer::merged_until`]): viewers that
    /// merge writes end their quiet times on a shared grid, so a worker thread wakes once
    /// for many of them instead of once each.
    pub(crate) merge_epoch: std::time::Instant,
    /// The push relays running.
    pub(crate) relays: crate::relay::Relays,
    /// The recordings running and the indexes of recorded files.
    pub(crate) recordings: crate::record::Recordings,
    /// The pull relays running (edge mode).
    pub(crate) pulls: crate::pull::Pulls,
    /// The media listeners and their accept loops (a reload may move them).
    pub(crate) listeners: std::sync::Mutex<crate::listeners::Listeners>,
    /// Set when a drain was asked for (`POST /api/v1/drain`); the process waits on it.
    pub(crate) draining: watch::Sender<bool>,
    /// This node in the origin/edge cluster (`[cluster]`), when on.
    pub(crate) cluster: Option<Arc<crate::cluster::Cluster>>,
    /// HLS/DASH requests of streams another node is the origin of (cluster).
    pub(crate) hls_proxy: crate::http::HlsProxy,
    /// Our own connections to our ports while a drain hands them over (see `handoff`).
    pub(crate) probes: crate::handoff::Probes,
}

impl Context {
    pub(crate) fn new(
        config: Config,
        hub: Arc<Hub>,
        registry: Arc<Registry>,
        policy: Arc<dyn Policy>,
    ) -> Self {
        let config_copy = config.clone();
        let rtmp = &config.rtmp;
        let session = ServerConfig {
            chunk_size: rtmp.chunk_size,
            handshake_timeout: rtmp.handshake_timeout(),
            idle_timeout: rtmp.idle_timeout(),
            request_timeout: rtmp.request_timeout(),
            decoder_limits: DecoderLimits {
                max_message_length: rtmp.max_message_size,
                max_chunk_streams: rtmp.max_chunk_streams,
                ..DecoderLimits::default()
            },
            ..ServerConfig::default()
        };
        let permits = Arc::new(Semaphore::new(config.rtmp.max_connections));
        let per_ip = Arc::new(crate::limits::PerIp::new(
            config.rtmp.max_connections_per_ip,
        ));
        let rate = Arc::new(crate::limits::Rate::new(
            config.rtmp.max_connection_rate_per_ip,
        ));
        let proxies = Arc::new(crate::proxy::Proxies::new(&config));
        Self {
            config,
            session,
            hub,
            registry,
            policy: std::sync::RwLock::new(policy),
            policy_from_config: false,
            overrides: std::sync::Mutex::new(None),
            live: watch::channel(Arc::new(config_copy)).0,
            hls: Default::default(),
            permits,
            per_ip,
            rate,
            proxies,
            https: None,
            certificates: None,
            merge_epoch: tokio::time::Instant::now().into_std(),
            relays: Default::default(),
            recordings: Default::default(),
            pulls: Default::default(),
            listeners: std::sync::Mutex::new(crate::listeners::Listeners::new(
                watch::channel(false).1,
            )),
            draining: watch::channel(false).0,
            cluster: None,
            hls_proxy: Default::default(),
            probes: Default::default(),
        }
    }

    /// Asks the server to drain: whoever runs it ([`crate::Server::drain_requested`]) shuts
    /// down gracefully.
    pub(crate) fn request_drain(&self, reason: &str) {
        tracing::info!("drain requested: {reason}");
        self.draining.send_replace(true);
    }

    /// The access policy now.
    pub(crate) fn policy(&self) -> Arc<dyn Policy> {
        Arc::clone(&self.policy.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Replaces the access policy (a reload).
    pub(crate) fn set_policy(&self, policy: Arc<dyn Policy>) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// The configuration as last (re)loaded.
    pub(crate) fn live(&self) -> Arc<Config> {
        Arc::clone(&self.live.borrow())
    }

    /// A place for one more connection from `ip` under the per-address limits, or the
    /// refusal for the log.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<crate::limits::IpSlot, String> {
        if !self.rate.allow(ip, std::time::Instant::now()) {
            return Err(format!(
                "this address opens connections faster than {} a second (rtmp.max_connection_rate_per_ip)",
                self.config.rtmp.max_connection_rate_per_ip
            ));
        }
        self.per_ip.take(ip).ok_or_else(|| {
            format!(
                "this address holds its limit of {} connections (rtmp.max_connections_per_ip)",
                self.per_ip.max()
            )
        })
    }
}

/// A connection being established: the byte stream and the client's address, later.
pub(crate) type Establishing<Io> =
    Pin<Box<dyn Future<Output = io::Result<(Io, SocketAddr)>> + Send>>;

/// A source of connections: accepts them (quickly, in the listener loop) and then makes each
/// one a byte stream (inside the connection's own task, under the handshake timeout: a TLS
/// handshake goes there).
pub(crate) trait Transport: Send + 'static {
    /// An accepted connection before it is established.
    type Incoming: Send + 'static;
    /// The established byte stream.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection and its peer address.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Incoming, SocketAddr)>> + Send;

    /// Turns an accepted connection into a byte stream, with the client's address (the
    /// peer's, or the one a trusted proxy's PROXY header names).
    fn establish(&self, incoming: Self::Incoming, peer: SocketAddr) -> Establishing<Self::Io>;

    /// Whether a connection from `peer` starts with a PROXY header (then the per-address
    /// limits apply to the client it names, after `establish`).
    fn proxied(&self, _peer: SocketAddr) -> bool {
        false
    }

    /// The protocol its connections speak, for logs and stats.
    fn protocol(&self) -> Protocol;
}

/// Plain RTMP over TCP.
pub(crate) struct TcpTransport {
    listener: Arc<TcpListener>,
    config: Arc<Config>,
    proxies: Arc<crate::proxy::Proxies>,
}

impl TcpTransport {
    pub(crate) fn new(listener: Arc<TcpListener>, context: &Context) -> Self {
        Self {
            listener,
            config: Arc::new(context.config.clone()),
            proxies: Arc::clone(&context.proxies),
        }
    }
}

/// The client behind `socket`: read from its PROXY header if `proxied`, else `peer`.
pub(crate) async fn client_of(
    socket: &mut TcpStream,
    peer: SocketAddr,
    proxied: bool,
) -> io::Result<SocketAddr> {
    if !proxied {
        return Ok(peer);
    }
    Ok(crate::proxy::read_header(socket).await?.unwrap_or(peer))
}

impl Transport for TcpTransport {
    type Incoming = TcpStream;
    type Io = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }

    fn establish(&self, mut socket: TcpStream, peer: SocketAddr) -> Establishing<TcpStream> {
        tune_socket(&socket, &self.config, peer);
        let proxied = self.proxied(peer);
        Box::pin(async move {
            let client = client_of(&mut socket, peer, proxied).await?;
            Ok((socket, client))
        })
    }

    fn proxied(&self, peer: SocketAddr) -> bool {
        self.proxies.rtmp_header() && self.proxies.trusts(peer.ip())
    }

    fn protocol(&self) -> Protocol {
        Protocol::Rtmp
    }
}

/// The next connection of a listener that is still open.
async fn accept_next<T: Transport>(
    transport: &mut Option<T>,
) -> io::Result<(T::Incoming, SocketAddr)> {
    match transport {
        Some(transport) => transport.accept().await,
        None => std::future::pending().await,
    }
}

/// Accepts connections until `shutdown` turns true, then closes every connection (through the
/// registry) and waits for their tasks.
pub(crate) async fn serve<T: Transport>(
    transport: T,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
    mut retire: watch::Receiver<bool>,
) {
    let permits = Arc::clone(&context.permits);
    // A flood is refused one connection at a time: one log line a second says how many.
    let mut refusals = Throttle::new(Duration::from_secs(1));
    let protocol = transport.protocol();
    let mut transport = Some(transport);
    let mut tasks = JoinSet::new();
    loop {
        // A retired listener (a reload moved it) serves its connections to their end.
        if transport.is_none() && tasks.is_empty() {
            return;
        }
        tokio::select! {
            accepted = accept_next(&mut transport), if transport.is_some() => {
                let Some(transport) = transport.as_ref() else { continue };
                let (incoming, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        warn!("{protocol} accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Our own probe while a drain hands the port over (see handoff.rs).
                if context.probes.claim(peer) {
                    continue;
                }
                let metrics = context.hub.metrics();
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    if let Some(more) = refusals.allow(std::time::Instant::now()) {
                        warn!(%peer, limit = context.config.rtmp.max_connections, more,
                            "refused {protocol} connection: connection limit reached (rtmp.max_connections)");
                    }
                    Metrics::count(&metrics.refused, &[("protocol", protocol.as_str()), ("reason", "max_connections")]);
                    continue;
                };
                // Behind a PROXY-protocol balancer the limits apply to the client it names.
                let proxied = transport.proxied(peer);
                let slot = if proxied {
                    None
                } else {
                    match context.admit(peer.ip()) {
                        Ok(slot) => Some(slot),
                        Err(why) => {
                            if let Some(more) = refusals.allow(std::time::Instant::now()) {
                                warn!(%peer, more, "refused {protocol} connection: {why}");
                            }
                            Metrics::count(&metrics.refused, &[("protocol", protocol.as_str()), ("reason", "per_ip")]);
                            continue;
                        }
                    }
                };
                Metrics::count(&metrics.accepted, &[("protocol", protocol.as_str())]);
                let establish = transport.establish(incoming, peer);
                let context = Arc::clone(&context);
                tasks.spawn(async move {
                    let limit = context.config.rtmp.handshake_timeout();
                    match tokio::time::timeout(limit, establish).await {
                        Ok(Ok((io, client))) => {
                            let slot = match slot {
                                Some(slot) => slot,
                                None => match context.admit(client.ip()) {
                                    Ok(slot) => slot,
                                    Err(why) => {
                                        warn!(peer = %client, proxy = %peer,
                                            "refused {protocol} connection: {why}");
                                        Metrics::count(&context.hub.metrics().refused, &[("protocol", protocol.as_str()), ("reason", "per_ip")]);
                                        return;
                                    }
                                },
                            };
                            if client != peer {
                                debug!(peer = %client, proxy = %peer, "client named by a PROXY header");
                            }
                            connection::run(io, client, protocol, context).await;
                            drop(slot);
                        }
                        Ok(Err(err)) => {
                            info!(%peer, %protocol, reason = %err,
                                "connection closed before rtmp: transport failed");
                            Metrics::count(&context.hub.metrics().refused, &[("protocol", protocol.as_str()), ("reason", "transport")]);
                        }
                        Err(_) => {
                            info!(%peer, %protocol,
                                "connection closed before rtmp: transport timed out (rtmp.handshake_timeout_secs)");
                            Metrics::count(&context.hub.metrics().refused, &[("protocol", protocol.as_str()), ("reason", "handshake_timeout")]);
                        }
                    }
                    drop(permit);
                });
            }
            _ = shutdown.changed() => break,
            changed = retire.changed(), if transport.is_some() => {
                if changed.is_err() || *retire.borrow() {
                    transport = None;
                    info!("the {protocol} listener closed (a reload moved it); its connections go on");
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // The listener closes now: with SO_REUSEPORT, a new weir on the same port takes every new
    // connection from here on while these drain.
    drop(transport);
    // Every connection (of every listener) closes through its own registry signal.
    let rtmp = &context.config.rtmp;
    context.registry.drain_all(
        "server shutting down",
        Drain {
            timeout: Duration::from_secs(rtmp.drain_timeout_secs),
            tc_url: Some(rtmp.reconnect_tc_url.clone()).filter(|url| !url.is_empty()),
        },
    );
    let open = tasks.len();
    if open > 0 {
        info!("closing {open} {protocol} connections");
    }
    while tasks.join_next().await.is_some() {}
}

fn tune_socket(socket: &TcpStream, config: &Config, peer: SocketAddr) {
    if let Err(err) = socket.set_nodelay(true) {
        warn!(%peer, "cannot set TCP_NODELAY: {err}");
    }
    let sock = SockRef::from(socket);
    // A viewer waiting on an unpublished stream is never written to; keepalive finds peers
    // that vanished without a FIN (NAT timeouts, pulled cables) in about a minute.
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(err) = sock.set_tcp_keepalive(&keepalive) {
        warn!(%peer, "cannot enable TCP keepalive: {err}");
    }
    if config.rtmp.send_buffer_bytes > 0 {
        if let Err(err) = sock.set_send_buffer_size(config.rtmp.send_buffer_bytes) {
            warn!(%peer, "cannot set the send buffer size: {err}");
        }
    }
    if config.rtmp.recv_buffer_bytes > 0 {
        if let Err(err) = sock.set_recv_buffer_size(config.rtmp.recv_buffer_bytes) {
            warn!(%peer, "cannot set the receive buffer size: {err}");
        }
    }
}
