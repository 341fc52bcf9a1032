//! The running server: binds the listeners, runs them, shuts them down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::hub::Hub;
use crate::listeners::Kind;
use crate::policy::{OpenPolicy, Policy};
use crate::registry::{Drain, Registry};
use crate::rtmp;

/// The admin listener at start.
enum ApiListener {
    /// Bound.
    Ready(TcpListener),
    /// Held by another (draining) weir: bound when free.
    Later(std::net::SocketAddr),
}

/// How long shutdown waits for connections to close before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started server. [`Server::shutdown`] stops it and waits for its connections; dropping it
/// also stops the listener and closes every connection, without waiting.
pub struct Server {
    rtmp_addr: SocketAddr,
    http_addr: SocketAddr,
    api_addr: SocketAddr,
    api_task: JoinHandle<()>,
    api_stop: watch::Sender<bool>,
    context: Arc<rtmp::Context>,
    hub: Arc<Hub>,
    registry: Arc<Registry>,
    shutdown: Arc<watch::Sender<bool>>,
    drain_timeout_secs: u64,
    drain_secs: u64,
    reconnect_tc_url: Option<String>,
}

impl Server {
    /// Binds every listener and starts serving with the configured access rules
    /// ([`crate::auth::ConfigPolicy`] over `[apps]`; with none configured, the zero-config
    /// rules of [`OpenPolicy`]).
    /// Fails if an address cannot be bound.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let policy: Arc<dyn Policy> = if config.apps.is_empty() {
            Arc::new(OpenPolicy)
        } else {
            Arc::new(
                crate::auth::ConfigPolicy::new(&config.apps, &config.auth.secrets)
                    .with_metrics(Arc::clone(&metrics)),
            )
        };
        Server::start_inner(config, policy, metrics, true).await
    }

    /// Like [`Server::start`], with `policy` deciding every connect, publish and play.
    pub async fn start_with_policy(
        config: Config,
        policy: Arc<dyn Policy>,
    ) -> anyhow::Result<Server> {
        Server::start_inner(config, policy, Arc::default(), false).await
    }

    async fn start_inner(
        config: Config,
        policy: Arc<dyn Policy>,
        metrics: Arc<crate::metrics::Metrics>,
        policy_from_config: bool,
    ) -> anyhow::Result<Server> {
        config.validate()?;
        let listener = listen(config.rtmp.addr).with_context(|| {
            format!(
                "cannot listen for RTMP on {} (is another server using the port? set rtmp.addr or --rtmp-addr)",
                config.rtmp.addr
            )
        })?;
        let rtmp_addr = listener.local_addr()?;
        let http_listener = listen(config.http.addr).with_context(|| {
            format!(
                "cannot listen for HTTP on {} (is another server using the port? set http.addr or --http-addr)",
                config.http.addr
            )
        })?;
        let http_addr = http_listener.local_addr()?;
        // The admin port: bound now, or (while a draining weir holds it) in the background.
        let api_addr;
        let api_listener = match listen_with(config.api.addr, false) {
            Ok(listener) => {
                api_addr = listener.local_addr()?;
                ApiListener::Ready(listener)
            }
            Err(err)
                if err.kind() == std::io::ErrorKind::AddrInUse
                    && someone_listens(config.api.addr) =>
            {
                api_addr = config.api.addr;
                ApiListener::Later(config.api.addr)
            }
            Err(err) => {
                return Err(err).with_context(|| {
                    format!(
                        "cannot listen for the admin API on {} (is another server using the port? set api.addr or --api-addr)",
                        config.api.addr
                    )
                })
            }
        };
        let certificates = if config.rtmps.enabled() {
            Some(Arc::new(
                rtmp::tls::Certificates::load(&config.rtmps.certificate_files())
                    .map_err(|err| anyhow::anyhow!("rtmps: {err}"))?,
            ))
        } else {
            None
        };
        let https = certificates.clone().filter(|_| config.http.tls);
        let rtmps_listener = if let Some(certificates) = certificates {
            let listener = listen(config.rtmps.addr).with_context(|| {
                format!(
                    "cannot listen for RTMPS on {} (is another server using the port? set rtmps.addr)",
                    config.rtmps.addr
                )
            })?;
            Some((listener, certificates))
        } else {
            None
        };
        let drain_timeout_secs = config.rtmp.drain_timeout_secs;
        let drain_secs = config.shutdown.drain_secs;
        let reconnect_tc_url =
            Some(config.rtmp.reconnect_tc_url.clone()).filter(|url| !url.is_empty());
        let hub = Arc::new(Hub::with_metrics(config.streams.clone(), metrics));
        let registry = Arc::new(Registry::new());
        let (shutdown, watcher) = watch::channel(false);
        let shutdown = Arc::new(shutdown);
        let mut context =
            rtmp::Context::new(config, Arc::clone(&hub), Arc::clone(&registry), policy);
        context.listeners =
            std::sync::Mutex::new(crate::listeners::Listeners::new(watcher.clone()));
        context.https = https;
        context.certificates = rtmps_listener.as_ref().map(|(_, c)| Arc::clone(c));
        context.policy_from_config = policy_from_config;
        if context.config.cluster.enabled() {
            let cluster =
                crate::cluster::Cluster::new(&context.config.cluster, rtmp_addr, http_addr)
                    .map_err(|err| anyhow::anyhow!("cluster: {err}"))?;
            context.cluster = Some(Arc::new(cluster));
        }
        let context = Arc::new(context);
        if let Some(cluster) = &context.cluster {
            tokio::spawn(Arc::clone(cluster).run(Arc::clone(&context), watcher.clone()));
        }
        let rtmp_config = context.config.rtmp.addr;
        crate::listeners::start(&context, Kind::Rtmp, rtmp_config, listener)?;
        crate::listeners::start(
            &context,
            Kind::Http,
            context.config.http.addr,
            http_listener,
        )?;
        let rtmps_addr = match rtmps_listener {
            Some((listener, _)) => Some(crate::listeners::start(
                &context,
                Kind::Rtmps,
                context.config.rtmps.addr,
                listener,
            )?),
            None => None,
        };
        let admin = crate::api::Admin::new(
            Arc::clone(&context),
            crate::api::listeners(rtmp_addr, rtmps_addr, http_addr, api_addr),
        );
        let (api_stop, api_stopped) = watch::channel(false);
        let admin = Arc::new(admin);
        let api_task = tokio::spawn(async move {
            let listener = match api_listener {
                ApiListener::Ready(listener) => listener,
                ApiListener::Later(addr) => match admin_listener(addr).await {
                    Ok(listener) => listener,
                    Err(err) => {
                        warn!("{err:#}");
                        return;
                    }
                },
            };
            crate::api::serve(listener, admin, api_stopped).await;
        });
        tokio::spawn(crate::health_log::run(Arc::clone(&hub), watcher.clone()));
        tokio::spawn(crate::record::retention::run(Arc::clone(&context)));
        // A drain asked for through the API stops the listeners as a shutdown does: no new
        // clients, the open ones asked to leave (the admin listener stays until the end).
        let mut draining = context.draining.subscribe();
        let stop = Arc::downgrade(&shutdown);
        let cluster = context.cluster.clone();
        let weak = Arc::downgrade(&context);
        tokio::spawn(async move {
            if draining.wait_for(|d| *d).await.is_ok() {
                // The leases go first: encoders reconnecting elsewhere are accepted at once.
                if let Some(cluster) = cluster {
                    cluster.release_all().await;
                }
                // A successor sharing the ports takes the new connections before ours close.
                if let Some(context) = weak.upgrade() {
                    crate::listeners::hand_over(&context).await;
                }
                if let Some(stop) = stop.upgrade() {
                    stop.send_replace(true);
                }
            }
        });
        Ok(Server {
            rtmp_addr,
            http_addr,
            api_addr,
            api_task,
            api_stop,
            context,
            hub,
            registry,
            shutdown,
            drain_timeout_secs,
            drain_secs,
            reconnect_tc_url,
        })
    }

    /// The bound RTMP address (with the real port when the config asked for port 0).
    pub fn rtmp_addr(&self) -> SocketAddr {
        crate::listeners::local(&self.context, Kind::Rtmp).unwrap_or(self.rtmp_addr)
    }

    /// The bound RTMPS address, when RTMPS is on.
    pub fn rtmps_addr(&self) -> Option<SocketAddr> {
        crate::listeners::local(&self.context, Kind::Rtmps)
    }

    /// The bound HTTP address (with the real port when the config asked for port 0).
    pub fn http_addr(&self) -> SocketAddr {
        crate::listeners::local(&self.context, Kind::Http).unwrap_or(self.http_addr)
    }

    /// The bound admin API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Resolves when a drain was asked for through the API (`POST /api/v1/drain`): the
    /// caller then shuts the server down as for SIGTERM.
    pub async fn drain_requested(&self) {
        let mut draining = self.context.draining.subscribe();
        let _ = draining.wait_for(|d| *d).await;
    }

    /// Applies a new configuration to new connections and sessions without dropping any (see
    /// [`crate::reload`]); an error leaves the current one in place.
    pub fn reload(&self, config: Config) -> Result<crate::reload::Report, String> {
        crate::reload::apply(&self.context, config)
    }

    /// Sets what the command line changes in every configuration a reload loads (the
    /// addresses and log level given as flags), so a reload does not undo them.
    pub fn set_overrides(&self, overrides: impl Fn(&mut Config) + Send + Sync + 'static) {
        *self
            .context
            .overrides
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(overrides));
    }

    /// Re-reads the configuration file the server was started from and applies it.
    pub fn reload_file(&self) -> Result<crate::reload::Report, String> {
        crate::reload::from_file(&self.context)
    }

    /// A receiver that sees every configuration applied (the first is the start-up one):
    /// the binary follows `log.level` through it.
    pub fn config_changes(&self) -> watch::Receiver<Arc<Config>> {
        self.context.live.subscribe()
    }

    /// The stream hub, for inspection.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The open connections.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Asks every client to leave, for maintenance (the trigger the API will expose): clients
    /// that handle E-RTMP ReconnectRequest are asked to reconnect (to
    /// `rtmp.reconnect_tc_url` when set) and served until they leave, at most
    /// `rtmp.drain_timeout_secs`; the others are closed at once, and so is every connection
    /// that arrives from now on. The listener stays open until [`Server::shutdown`].
    pub fn drain(&self, reason: &str) {
        self.registry.drain_all(
            reason,
            Drain {
                timeout: Duration::from_secs(self.drain_timeout_secs),
                tc_url: self.reconnect_tc_url.clone(),
            },
        );
    }

    /// Stops accepting and drains every connection: clients that handle E-RTMP
    /// ReconnectRequest are asked to reconnect and served until they leave (at most
    /// `rtmp.drain_timeout_secs`), the others are closed at once. Waits for them all.
    pub async fn shutdown(self) {
        // The leases go first: encoders reconnecting elsewhere are accepted at once.
        if let Some(cluster) = &self.context.cluster {
            cluster.release_all().await;
        }
        // A successor sharing the ports takes the new connections before ours close.
        crate::listeners::hand_over(&self.context).await;
        let _ = self.shutdown.send(true);
        let api_stop = self.api_stop;
        // Clients asked to reconnect are served up to rtmp.drain_timeout_secs; the whole
        // drain takes at most shutdown.drain_secs.
        let grace = (SHUTDOWN_GRACE + Duration::from_secs(self.drain_timeout_secs))
            .min(Duration::from_secs(self.drain_secs));
        let registry = Arc::clone(&self.registry);
        let tasks = crate::listeners::take_tasks(&self.context);
        let api_task = self.api_task;
        let both = async move {
            for task in tasks {
                let _ = task.await;
            }
            api_stop.send_replace(true);
            let _ = api_task.await;
        };
        tokio::pin!(both);
        if tokio::time::timeout(grace, &mut both).await.is_err() {
            warn!(
                "{} connections still open after {grace:?} (shutdown.drain_secs): closing them",
                registry.list().len()
            );
            registry.close_all("drain time is up (shutdown.drain_secs)");
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, both).await;
        }
        if let Some(cluster) = &self.context.cluster {
            cluster.leave().await;
        }
    }
}

/// Connections the kernel queues for a listener before `accept` (capped by
/// `net.core.somaxconn`): a burst of viewers (everyone reconnecting after a restart) must not
/// overflow it, or their SYNs are dropped and each waits a 1 s retransmit (seen with the
/// standard library's 128).
const LISTEN_BACKLOG: i32 = 4096;

/// A listening socket on `addr` with a deep accept queue. A `shared` one sets SO_REUSEPORT
/// (Unix): a new weir can bind the same port while the old one drains, and the kernel hands
/// new connections to both until the old one closes its listener (a deploy with no refused
/// connection). Another process already listening there is told in the log.
fn listen_with(addr: std::net::SocketAddr, shared: bool) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    if shared {
        socket.set_reuse_port(true)?;
        if addr.port() != 0 && someone_listens(addr) {
            warn!(
                "another process already listens on {addr}: new connections are shared with it \
                 until it stops (SO_REUSEPORT; this is how a deploy hands over: drain the old weir \
                 with SIGTERM). If that was not meant, stop one of them"
            );
        }
    }
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

/// A shared media listener (see [`listen_with`]).
pub(crate) fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    listen_with(addr, true)
}

/// Whether something accepts TCP connections on `addr` (loopback for a wildcard address).
fn someone_listens(addr: std::net::SocketAddr) -> bool {
    let mut probe = addr;
    if probe.ip().is_unspecified() {
        probe.set_ip(if addr.is_ipv6() {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        });
    }
    std::net::TcpStream::connect_timeout(&probe, Duration::from_millis(200)).is_ok()
}

/// The admin listener: not shared (an API call must reach the server it names). While a
/// draining weir still holds the port, this one binds it as soon as it is free.
async fn admin_listener(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    match listen_with(addr, false) {
        Ok(listener) => Ok(listener),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && someone_listens(addr) => {
            warn!(
                "the admin listener {addr} is in use (a weir still draining?); this server takes \
                 it over when it is free"
            );
            for _ in 0..600 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if let Ok(listener) = listen_with(addr, false) {
                    info!("the admin listener {addr} is free now: serving the API");
                    return Ok(listener);
                }
            }
            Err(err).with_context(|| format!("the admin listener {addr} stayed in use"))
        }
        Err(err) => Err(err).with_context(|| {
            format!(
                "cannot listen for the admin API on {addr} (is another server using the port? set api.addr or --api-addr)"
            )
        }),
    }
}
