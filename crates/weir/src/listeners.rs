//! The media listeners a server runs (RTMP, RTMPS, HTTP) and their accept loops. A reload
//! that moves one binds the new address first, starts its loop, and retires the old one: the
//! old socket closes, its connections go on to their end, and shutdown waits for every loop,
//! retired ones included.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, MutexGuard, Weak};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::handoff;
use crate::rtmp::{self, Context};

/// Which listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// RTMP over TCP.
    Rtmp,
    /// RTMP over TLS.
    Rtmps,
    /// HTTP (or HTTPS).
    Http,
}

impl Kind {
    /// Its config key.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Kind::Rtmp => "rtmp.addr",
            Kind::Rtmps => "rtmps.addr",
            Kind::Http => "http.addr",
        }
    }
}

/// One running listener.
struct Bound {
    kind: Kind,
    /// The address the configuration asked for (port 0 stays 0).
    configured: SocketAddr,
    /// The address bound.
    local: SocketAddr,
    retire: watch::Sender<bool>,
    /// The socket, while its accept loop holds it (for the handover of a drain).
    socket: Weak<TcpListener>,
}

/// The listeners and every accept loop started.
pub(crate) struct Listeners {
    bound: Vec<Bound>,
    tasks: Vec<JoinHandle<()>>,
    shutdown: watch::Receiver<bool>,
}

impl Listeners {
    /// No listener yet; loops stop when `shutdown` turns true.
    pub(crate) fn new(shutdown: watch::Receiver<bool>) -> Listeners {
        Listeners {
            bound: Vec::new(),
            tasks: Vec::new(),
            shutdown,
        }
    }
}

fn lock(context: &Context) -> MutexGuard<'_, Listeners> {
    context.listeners.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the accept loop of `kind` on `listener` (bound for `configured`); a listener of the
/// same kind already running is retired.
pub(crate) fn start(
    context: &Arc<Context>,
    kind: Kind,
    configured: SocketAddr,
    listener: TcpListener,
) -> io::Result<SocketAddr> {
    let local = listener.local_addr()?;
    let listener = Arc::new(listener);
    let socket = Arc::downgrade(&listener);
    let (retire, retired) = watch::channel(false);
    let shutdown = lock(context).shutdown.clone();
    let task = match kind {
        Kind::Rtmp => {
            let transport = rtmp::TcpTransport::new(listener, context);
            tokio::spawn(rtmp::serve(
                transport,
                Arc::clone(context),
                shutdown,
                retired,
            ))
        }
        Kind::Rtmps => {
            let Some(certificates) = context.certificates.clone() else {
                return Err(io::Error::other("RTMPS has no certificate"));
            };
            let transport = rtmp::tls::TlsTransport::new(listener, context, certificates);
            tokio::spawn(rtmp::serve(
                transport,
                Arc::clone(context),
                shutdown,
                retired,
            ))
        }
        Kind::Http => tokio::spawn(crate::http::serve(
            listener,
            Arc::clone(context),
            shutdown,
            retired,
        )),
    };
    let mut listeners = lock(context);
    if let Some(old) = listeners.bound.iter().position(|b| b.kind == kind) {
        let old = listeners.bound.remove(old);
        old.retire.send_replace(true);
    }
    listeners.bound.push(Bound {
        kind,
        configured,
        local,
        retire,
        socket,
    });
    listeners.tasks.push(task);
    Ok(local)
}

/// The bound address of `kind`, if it runs.
pub(crate) fn local(context: &Context, kind: Kind) -> Option<SocketAddr> {
    lock(context)
        .bound
        .iter()
        .find(|b| b.kind == kind)
        .map(|b| b.local)
}

/// The configured address of `kind`, if it runs.
pub(crate) fn configured(context: &Context, kind: Kind) -> Option<SocketAddr> {
    lock(context)
        .bound
        .iter()
        .find(|b| b.kind == kind)
        .map(|b| b.configured)
}

/// Before a drain closes the listeners: steers each port's new connections to another weir
/// listening on it (a deploy's successor), then waits [`handoff::GRACE`] while the
/// connections already on their way here arrive (see `handoff`). Returns at once when no
/// other process shares a port. The accept loops must still run. Done once: a later call
/// (a drain, then the shutdown that follows it) waits for the first.
pub(crate) async fn hand_over(context: &Context) {
    context
        .probes
        .handed_over
        .get_or_init(|| steer_all(context))
        .await;
}

async fn steer_all(context: &Context) {
    let sockets: Vec<(Kind, Arc<TcpListener>)> = lock(context)
        .bound
        .iter()
        .filter_map(|b| Some((b.kind, b.socket.upgrade()?)))
        .collect();
    let steering = sockets.iter().map(|(kind, socket)| async move {
        let steered = handoff::steer_away(socket, &context.probes).await;
        (*kind, steered)
    });
    let handed: Vec<&str> = futures_util::future::join_all(steering)
        .await
        .into_iter()
        .filter(|(_, steered)| *steered == handoff::Steered::Away)
        .map(|(kind, _)| kind.key())
        .collect();
    // Our references go before the wait: the accept loops own the listeners again.
    drop(sockets);
    if handed.is_empty() {
        return;
    }
    tracing::info!(
        "another weir listens on the same port ({}): new connections go to it from now on; \
         accepting the ones already on their way here for {:?} before closing",
        handed.join(", "),
        handoff::GRACE
    );
    tokio::time::sleep(handoff::GRACE).await;
}

/// Every accept loop started (each ends after the shutdown, once its connections are gone).
pub(crate) fn take_tasks(context: &Context) -> Vec<JoinHandle<()>> {
    std::mem::take(&mut lock(context).tasks)
}
