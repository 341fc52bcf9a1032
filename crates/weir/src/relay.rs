//! Push relays (`[[apps.NAME.push]]`): every stream published in the app is re-published to
//! each target (YouTube, Twitch, Facebook over `rtmps://`, another weir, nginx-rtmp) by a
//! weir-client publisher, one task per (stream, target).
//!
//! Each target reads the stream through its own viewer core with `LagPolicy::Skip`: a slow or
//! dead target loses frames up to the next key frame and never slows the publisher or the
//! other targets (the hub's ring is bounded; the client's send queue waits while 1 MiB is
//! unwritten; a connection that takes nothing for 8 s is dropped). A failed connection is retried with exponential backoff (1 s doubling to 30 s,
//! with jitter) while the stream is published; the state (connected, bytes, retries, the
//! last error) is logged. The relay ends when the publisher leaves and starts again with the
//! next one; a publisher takeover continues on the same connection. Targets get the default
//! track of an E-RTMP Multitrack stream (legacy players' form) unless they announce in their
//! `connect` answer that they read Multitrack (`capsEx`), as weir does: those get every track.
//!
//! The relays' state is in `GET /api/v1/streams/{app}/{name}` (`relays`) and the metrics
//! (`weir_relays{state}`, `weir_relay_bytes_total`, `weir_relay_failures_total`).
//!

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use weir_client::{Client, ClientOptions, RtmpUrl};

use crate::config::{PushTarget, Unadvertised};
use crate::rtmp::Context;
use crate::stream_key::StreamKey;
use crate::viewer::{Accepts, Collected, LagPolicy, Viewer};

/// The driver's clock (tokio's, so tests on paused time work).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// First retry delay; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A target whose connection takes nothing (the client's queue stays full) this long is
/// given up and reconnected.
const STALL: Duration = Duration::from_secs(8);

/// The relays running, by (stream path, target URL).
#[derive(Debug, Default)]
pub(crate) struct Relays {
    running: Mutex<HashMap<(String, String), Arc<RelayState>>>,
}

/// What one relay is doing (read by the API and the metrics).
#[derive(Debug, Default)]
pub(crate) struct RelayState {
    /// The target with its stream key withheld.
    pub(crate) target: String,
    /// Publishing to the target now.
    pub(crate) connected: AtomicBool,
    /// Bytes of media handed to the target's connection.
    pub(crate) bytes: AtomicU64,
    /// Failed attempts so far.
    pub(crate) retries: AtomicU32,
    /// Frames the target could not take in time (skipped to the next key frame) on the
    /// current connection: its lag.
    pub(crate) frames_skipped: AtomicU64,
    /// The target gets every track of a Multitrack stream.
    pub(crate) multitrack: AtomicBool,
    /// The last failure.
    pub(crate) last_error: Mutex<Option<String>>,
}

impl Relays {
    /// The relays of stream `path`.
    pub(crate) fn of(&self, path: &str) -> Vec<Arc<RelayState>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|((p, _), _)| p == path)
            .map(|(_, state)| Arc::clone(state))
            .collect()
    }

    /// Every relay running.
    pub(crate) fn all(&self) -> Vec<Arc<RelayState>> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

/// The URL of `target` for `key`: `{app}` and `{stream}` replaced.
pub(crate) fn target_url(target: &PushTarget, key: &StreamKey) -> String {
    target
        .url
        .replace("{app}", key.app())
        .replace("{stream}", key.name())
}

/// A publish of `key` started: starts a relay to every push target of its app that has none.
pub(crate) fn publish_started(context: &Arc<Context>, key: &StreamKey) {
    let live = context.live();
    let Some(rules) = live.app_rules(key.app()) else {
        return;
    };
    for target in &rules.push {
        let url = target_url(target, key);
        let entry = (key.path().to_owned(), url.clone());
        let state = Arc::new(RelayState {
            target: redact(&url),
            ..RelayState::default()
        });
        {
            let mut running = context
                .relays
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if running.contains_key(&entry) {
                continue;
            }
            running.insert(entry.clone(), Arc::clone(&state));
        }
        let ca_file = target.ca_file.clone();
        let context = Arc::clone(context);
        let key = key.clone();
        tokio::spawn(async move {
            run(&context, &key, &url, &ca_file, &state).await;
            context
                .relays
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&entry);
        });
    }
}

/// How one connection to the target ended.
enum Ended {
    /// The publisher left: the relay is done.
    PublisherLeft,
    /// The target failed; retry while the stream is published.
    Failed(String),
}

/// Relays `key` to `url` until the publisher leaves.
async fn run(
    context: &Arc<Context>,
    key: &StreamKey,
    url: &str,
    ca_file: &str,
    state: &RelayState,
) {
    let shown = redact(url);
    let target = match RtmpUrl::parse(url) {
        Ok(target) => target,
        Err(err) => {
            warn!(stream = %key, target = %shown, "push relay not started: {err}");
            return;
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0u32;
    loop {
        let started = Instant::now();
        let ended = push_once(context, key, &target, &shown, ca_file, state).await;
        state.connected.store(false, Ordering::Relaxed);
        match ended {
            Ended::PublisherLeft => {
                // A new publisher that came before this relay saw the old one leave is
                // relayed here: its publish found this relay still running. Decided under
                // the table's lock, so a publish either finds the relay going on or gone.
                let mut running = context
                    .relays
                    .running
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let republished = context
                    .hub
                    .stream_stats(key.path())
                    .is_some_and(|s| s.published);
                if republished {
                    info!(stream = %key, target = %shown, "push relay goes on with the stream's new publisher");
                    continue;
                }
                running.retain(|(path, _), s| !(path == key.path() && std::ptr::eq(&**s, state)));
                info!(stream = %key, target = %shown, retries, "push relay ended: the publisher left");
                return;
            }
            Ended::Failed(why) => {
                if !context
                    .hub
                    .stream_stats(key.path())
                    .is_some_and(|s| s.published)
                {
                    info!(stream = %key, target = %shown, "push relay ended: {why}; the stream is no longer published");
                    return;
                }
                if started.elapsed() > MAX_BACKOFF {
                    backoff = FIRST_BACKOFF;
                }
                retries += 1;
                state.retries.store(retries, Ordering::Relaxed);
                *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.clone());
                context.hub.metrics().relay_failures.inc();
                let jitter = Duration::from_millis(rand::random::<u64>() % 500);
                warn!(stream = %key, target = %shown, retries,
                    "push relay failed: {why}; retrying in {:.1} s", (backoff + jitter).as_secs_f64());
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// One connection: connect, publish, forward until something ends it.
async fn push_once(
    context: &Arc<Context>,
    key: &StreamKey,
    target: &RtmpUrl,
    shown: &str,
    ca_file: &str,
    state: &RelayState,
) -> Ended {
    let options = match client_options(ca_file) {
        Ok(options) => options,
        Err(err) => return Ended::Failed(err),
    };
    let mut client = match Client::connect_with(target, options).await {
        Ok(client) => client,
        Err(err) => return Ended::Failed(format!("connect: {err}")),
    };
    if let Err(err) = client.publish(&target.stream).await {
        return Ended::Failed(format!("publish: {err}"));
    }
    // A target that reads E-RTMP Multitrack (it says so in its connect answer) gets every
    // track; others get the default track in its legacy form.
    let multitrack = client.server_reads_multitrack();
    info!(stream = %key, target = %shown,
        tracks = if multitrack { "all (the target reads Multitrack)" } else { "the default track" },
        "push relay connected");
    state.connected.store(true, Ordering::Relaxed);
    state.multitrack.store(multitrack, Ordering::Relaxed);
    let relay_bytes = context.hub.metrics().relay_bytes.clone();
    let subscription = context.hub.subscribe(key.path());
    if !subscription.was_published() {
        // The publisher left while this relay connected or waited to retry.
        return Ended::PublisherLeft;
    }
    let mut viewer = Viewer::new(subscription, LagPolicy::Skip, now()).with_accepts(Accepts::new(
        multitrack,
        None,
        None,
        Unadvertised::Send,
    ));
    let mut sink = Collected::default();
    viewer.start(&mut sink);
    let mut sent = 0u64;
    let ended = 'relay: loop {
        for frame in std::mem::take(&mut sink.frames) {
            let len = frame.payload.len() as u64;
            sent += len;
            state.bytes.fetch_add(len, Ordering::Relaxed);
            relay_bytes.inc_by(len);
            match tokio::time::timeout(STALL, client.send_frame(&frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => break 'relay Ended::Failed(format!("send: {err}")),
                Err(_) => {
                    break 'relay Ended::Failed(format!(
                        "the target took nothing for {} s (its connection is stuck)",
                        STALL.as_secs()
                    ))
                }
            }
        }
        if sink.left {
            break Ended::PublisherLeft;
        }
        let received = viewer.recv().await;
        if let Err(lagging) = viewer.handle_recv(received, &mut sink, now()) {
            break Ended::Failed(lagging.to_string());
        }
        state
            .frames_skipped
            .store(viewer.core().frames_skipped(), Ordering::Relaxed);
    };
    info!(stream = %key, target = %shown, bytes = sent, "push relay connection closed");
    let _ = client.close().await;
    ended
}

/// Client options trusting the authorities in `ca_file` (PEM) for `rtmps://`, or the public
/// ones when it is empty.
pub(crate) fn client_options(ca_file: &str) -> Result<ClientOptions, String> {
    let mut options = ClientOptions::default();
    if ca_file.is_empty() {
        return Ok(options);
    }
    use rustls_pki_types::pem::PemObject;
    let certificates: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(ca_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read ca_file {ca_file}: {err}"))?;
    if certificates.is_empty() {
        return Err(format!("ca_file {ca_file} holds no certificate"));
    }
    options.tls = Some(weir_client::TlsTrust::only(certificates));
    Ok(options)
}

/// `url` without its stream key (the last path element, which for platforms is a secret).
pub(crate) fn redact(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, key)) if !key.is_empty() && base.matches('/').count() >= 3 => {
            format!("{base}/(key withheld)")
        }
        _ => url.to_owned(),
    }
}
