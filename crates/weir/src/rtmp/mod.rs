//! The RTMP listener: accepts TCP connections and runs one task per connection.

mod connection;
mod player;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};
use weir_rtmp::chunk::DecoderLimits;
use weir_rtmp::session::ServerConfig;

use crate::config::Config;
use crate::hub::Hub;

/// What every connection task shares.
pub(crate) struct Context {
    pub(crate) config: Config,
    pub(crate) session: ServerConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) next_id: AtomicU64,
}

impl Context {
    pub(crate) fn new(config: Config, hub: Arc<Hub>) -> Self {
        let rtmp = &config.rtmp;
        let session = ServerConfig {
            chunk_size: rtmp.chunk_size,
            handshake_timeout: rtmp.handshake_timeout(),
            idle_timeout: rtmp.idle_timeout(),
            decoder_limits: DecoderLimits {
                max_message_length: rtmp.max_message_size,
                max_chunk_streams: rtmp.max_chunk_streams,
                ..DecoderLimits::default()
            },
            ..ServerConfig::default()
        };
        Self {
            config,
            session,
            hub,
            next_id: AtomicU64::new(1),
        }
    }
}

/// Accepts connections until `shutdown` turns true, then waits for the connection tasks
/// (each of which sees the same signal and closes).
pub(crate) async fn serve(
    listener: TcpListener,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(context.config.rtmp.max_connections));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        warn!("rtmp accept failed: {err}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    warn!(%peer, limit = context.config.rtmp.max_connections,
                        "refused rtmp connection: connection limit reached (rtmp.max_connections)");
                    continue;
                };
                tune_socket(&socket, &context.config, peer);
                let context = Arc::clone(&context);
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    connection::run(socket, peer, context, shutdown).await;
                    drop(permit);
                });
            }
            _ = shutdown.changed() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    let open = tasks.len();
    if open > 0 {
        info!("closing {open} rtmp connections");
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
        .with_time(std::time::Duration::from_secs(30))
        .with_interval(std::time::Duration::from_secs(10))
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

/// A connection id for logs.
pub(crate) fn next_connection_id(context: &Context) -> u64 {
    context.next_id.fetch_add(1, Ordering::Relaxed)
}
