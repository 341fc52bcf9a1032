//! Pull relays, edge mode (`[apps.NAME.pull]`): a player asking for a stream nobody publishes
//! here makes weir play it from the upstream (`url`, `{app}` and `{stream}` replaced) with
//! weir-client and publish it into the hub under the same name: one upstream connection per
//! stream however many players, the GOP cache filled from the upstream so later players start
//! at once.
//!
//! The pull publishes into the hub once the upstream sends media, and leaves it when the
//! upstream's publisher leaves (players stay attached and continue on the same timeline when
//! it returns, as across a republish). A lost upstream is retried with backoff (1 s doubling
//! to 30 s, with jitter) while anyone watches; the pull ends `idle_secs` after the last player
//! (RTMP, HTTP-FLV, and HLS/DASH packagers, which stop `hls.idle_secs` after the last request)
//! left. A stream published here locally is never pulled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{info, warn};
use weir_client::{Client, RtmpUrl};
use weir_media::Frame;
use weir_rtmp::command::code;
use weir_rtmp::session::{ClientEvent, MediaType};

use crate::cluster::Cluster;
use crate::config::PullRules;
use crate::hub::Publisher;
use crate::rtmp::Context;
use crate::stream_key::StreamKey;

/// First retry delay; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the pull looks at its audience.
const CHECK: Duration = Duration::from_millis(500);
/// Pulls running at most (each is an upstream connection a player's request can open).
const MAX_PULLS: usize = 1000;

/// A pull that runs: where it pulls from (shown, key withheld) and its stop signal.
#[derive(Debug)]
pub(crate) struct PullEntry {
    shown: Mutex<String>,
    stop: tokio::sync::Notify,
    stopped: std::sync::atomic::AtomicBool,
}

impl PullEntry {
    fn new(shown: String) -> Arc<PullEntry> {
        Arc::new(PullEntry {
            shown: Mutex::new(shown),
            stop: tokio::sync::Notify::new(),
            stopped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn shown(&self) -> String {
        self.shown.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_shown(&self, shown: String) {
        *self.shown.lock().unwrap_or_else(|p| p.into_inner()) = shown;
    }

    fn stopped(&self) -> bool {
        self.stopped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The pulls running, by stream path.
#[derive(Debug, Default)]
pub(crate) struct Pulls {
    /// By stream path, shared with the pull's task so it only ever removes its own entry.
    running: Mutex<HashMap<String, Arc<PullEntry>>>,
}

impl Pulls {
    /// The upstream (key withheld) stream `path` is pulled from, if it is.
    pub(crate) fn upstream(&self, path: &str) -> Option<String> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .map(|e| e.shown())
    }

    /// Stops the pull of `path` (a local publisher takes the stream); whether one ran.
    pub(crate) fn stop(&self, path: &str) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(path) {
            Some(entry) => {
                entry
                    .stopped
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                entry.stop.notify_one();
                true
            }
            None => false,
        }
    }

    /// Removes `entry` for `path` if it is still the one running there.
    fn release(&self, path: &str, entry: &Arc<PullEntry>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(path).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            running.remove(path);
        }
    }
}

/// Where a pull takes the stream from.
enum Source {
    /// `[apps.NAME.pull]`: a fixed upstream.
    Rules(PullRules),
    /// The cluster: whichever node holds the stream's lease.
    Cluster(Arc<Cluster>, u64),
}

/// A player wants `key`: pulls it from the app's upstream (or, in a cluster, from the node
/// that publishes it) unless it is published here or pulled already. Returns whether the
/// stream is pulled (or being pulled).
pub(crate) fn wanted(context: &Arc<Context>, key: &StreamKey) -> bool {
    let live = context.live();
    let rules = live.app_rules(key.app()).map(|r| r.pull.clone());
    let source = match (rules, &context.cluster) {
        (Some(rules), _) if !rules.url.is_empty() => Source::Rules(rules),
        (rules, Some(cluster)) => Source::Cluster(
            Arc::clone(cluster),
            rules.map_or(PullRules::default().idle_secs, |r| r.idle_secs),
        ),
        _ => return false,
    };
    if context.pulls.upstream(key.path()).is_some() {
        return true;
    }
    if context
        .hub
        .stream_stats(key.path())
        .is_some_and(|s| s.published)
    {
        return false;
    }
    if let Source::Cluster(cluster, _) = &source {
        if cluster.holds(key.path()) {
            // This node is the origin: its publisher is (about to be) here.
            return false;
        }
    }
    let (url, shown) = match &source {
        Source::Rules(rules) => {
            let url = rules
                .url
                .replace("{app}", key.app())
                .replace("{stream}", key.name());
            let shown = crate::relay::redact(&url);
            (url, shown)
        }
        Source::Cluster(..) => (String::new(), "the cluster (resolving)".to_owned()),
    };
    let entry = PullEntry::new(shown);
    {
        let mut running = context
            .pulls
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if running.contains_key(key.path()) {
            return true;
        }
        if running.len() >= MAX_PULLS {
            warn!(stream = %key, "not pulled: {MAX_PULLS} pulls are running already");
            return false;
        }
        running.insert(key.path().to_owned(), Arc::clone(&entry));
    }
    let context = Arc::clone(context);
    let key = key.clone();
    tokio::spawn(async move {
        match source {
            Source::Rules(rules) => run(&context, &key, &url, &entry, &rules).await,
            Source::Cluster(cluster, idle_secs) => {
                cluster.set_pulled(key.path(), true);
                run_cluster(&context, &key, &entry, &cluster, idle_secs).await;
                cluster.set_pulled(key.path(), false);
            }
        }
        context.pulls.release(key.path(), &entry);
    });
    true
}

/// Whether anyone uses the stream: its viewers and the outputs reading it (HLS packagers,
/// recorders, push relays).
pub(crate) fn audience(context: &Context, key: &StreamKey) -> usize {
    context
        .hub
        .stream_stats(key.path())
        .map_or(0, |s| s.viewer_count())
        .max(context.hub.subscriber_count(key.path()))
}

/// How one upstream connection ended.
enum Ended {
    /// Nobody watched for `idle_secs`.
    Idle,
    /// A local publisher has the stream.
    Local,
    /// The upstream failed.
    Failed(String),
    /// The stream moved to another node of the cluster (or its node died).
    Moved,
}

async fn run(
    context: &Arc<Context>,
    key: &StreamKey,
    url: &str,
    entry: &Arc<PullEntry>,
    rules: &PullRules,
) {
    let shown = &entry.shown();
    let target = match RtmpUrl::parse(url) {
        Ok(target) => target,
        Err(err) => {
            warn!(stream = %key, upstream = %shown, "pull not started: {err}");
            return;
        }
    };
    let idle = Duration::from_secs(rules.idle_secs);
    let mut watched_at = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0u32;
    loop {
        let started = Instant::now();
        let options = match crate::relay::client_options(&rules.ca_file) {
            Ok(options) => options,
            Err(err) => {
                warn!(stream = %key, upstream = %shown, "pull not started: {err}");
                return;
            }
        };
        let ended = pull_once(
            context,
            key,
            &target,
            options,
            entry,
            idle,
            &mut watched_at,
            None,
        )
        .await;
        match ended {
            Ended::Idle => {
                info!(stream = %key, upstream = %shown, "pull ended: nobody watched for {} s (pull.idle_secs)", rules.idle_secs);
                return;
            }
            Ended::Local => {
                info!(stream = %key, upstream = %shown, "pull ended: the stream is published here");
                return;
            }
            Ended::Moved => continue,
            Ended::Failed(why) => {
                if audience(context, key) == 0 && watched_at.elapsed() >= idle {
                    info!(stream = %key, upstream = %shown, "pull ended: {why}; nobody watches");
                    return;
                }
                if started.elapsed() > MAX_BACKOFF {
                    backoff = FIRST_BACKOFF;
                }
                retries += 1;
                context.hub.metrics().pull_failures.inc();
                let jitter = Duration::from_millis(rand::random::<u64>() % 500);
                warn!(stream = %key, upstream = %shown, retries,
                    "pull failed: {why}; retrying in {:.1} s (the players stay)", (backoff + jitter).as_secs_f64());
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// The cluster node a pull follows: the pull ends when the stream's owner changes.
struct Follow<'a> {
    cluster: &'a Cluster,
    node: String,
    epoch: u64,
}

/// One upstream connection: play, publish what comes into the hub, until something ends it.
#[allow(clippy::too_many_arguments)]
async fn pull_once(
    context: &Arc<Context>,
    key: &StreamKey,
    target: &RtmpUrl,
    options: weir_client::ClientOptions,
    entry: &Arc<PullEntry>,
    idle: Duration,
    watched_at: &mut Instant,
    follow: Option<Follow<'_>>,
) -> Ended {
    let shown = entry.shown();
    let connect = async {
        let mut client = Client::connect_with(target, options)
            .await
            .map_err(|err| format!("connect: {err}"))?;
        client
            .play(&target.stream)
            .await
            .map_err(|err| format!("play: {err}"))?;
        Ok::<_, String>(client)
    };
    let mut client = tokio::select! {
        client = connect => match client {
            Ok(client) => client,
            Err(why) => return Ended::Failed(why),
        },
        _ = entry.stop.notified() => return Ended::Local,
    };
    info!(stream = %key, upstream = %shown, "pulling from the upstream");
    let mut publisher: Option<Publisher> = None;
    let pulled_bytes = context.hub.metrics().pull_bytes.clone();
    let mut next_check = Instant::now() + CHECK;
    let ended = loop {
        if entry.stopped() {
            break Ended::Local;
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + CHECK;
            if audience(context, key) > 0 {
                *watched_at = Instant::now();
            } else if watched_at.elapsed() >= idle {
                // Out of the table before the teardown: a player arriving now starts a new
                // pull instead of waiting on this one.
                context.pulls.release(key.path(), entry);
                break Ended::Idle;
            }
            if let Some(follow) = &follow {
                let moved = match follow.cluster.known_owner(key.path()) {
                    Some(Some(owner)) => owner.node != follow.node || owner.epoch != follow.epoch,
                    Some(None) => true,
                    None => false,
                };
                if moved {
                    info!(stream = %key, upstream = %shown, "the stream left node {} (epoch {}); finding where it is now", follow.node, follow.epoch);
                    break Ended::Moved;
                }
            }
        }
        let event = tokio::select! {
            event = client.next_event(CHECK) => event,
            _ = entry.stop.notified() => break Ended::Local,
        };
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(err) => break Ended::Failed(format!("upstream: {err}")),
        };
        let frame = match event {
            ClientEvent::Media {
                media_type,
                timestamp,
                payload,
                ..
            } => match media_type {
                MediaType::Audio => Frame::audio(timestamp, payload),
                MediaType::Video => Frame::video(timestamp, payload),
            },
            ClientEvent::Data {
                timestamp, payload, ..
            } => {
                let frame = Frame::data(timestamp, payload);
                if !frame.info.is_metadata {
                    continue;
                }
                frame
            }
            ClientEvent::Status { status, .. } if status.code == code::PLAY_UNPUBLISH_NOTIFY => {
                // The upstream's publisher left: so does ours; the players wait. In a cluster
                // the encoder may come back on any node: the players are told of a
                // hand-over, not an end, so they stay and continue.
                if follow.is_some() {
                    context.hub.hand_over(key.path());
                }
                if publisher.take().is_some() {
                    info!(stream = %key, upstream = %shown, "the upstream's publisher left");
                }
                continue;
            }
            _ => continue,
        };
        if publisher.is_none() {
            match context.hub.publish(key.path()) {
                Ok(p) => {
                    info!(stream = %key, upstream = %shown, "publish started (pulled)");
                    publisher = Some(p);
                }
                Err(_) => break Ended::Local,
            }
        }
        pulled_bytes.inc_by(frame.payload.len() as u64);
        if let Some(p) = &publisher {
            p.send(frame);
        }
    };
    if follow.is_some() && matches!(ended, Ended::Failed(_) | Ended::Moved | Ended::Local) {
        // The stream goes on elsewhere (or here): the players are told of a hand-over, not
        // an end, and continue on the next publisher's frames.
        context.hub.hand_over(key.path());
    }
    drop(publisher);
    let _ = client.close().await;
    ended
}

/// How often a cluster pull asks where a stream is while it has no origin, for the first
/// [`LOOK_FAST_FOR`] after it last had one (a failover), and after that.
const LOOK_FAST: Duration = Duration::from_millis(200);
const LOOK_FAST_FOR: Duration = Duration::from_secs(15);
const LOOK_SLOW: Duration = Duration::from_secs(1);

/// A cluster pull: finds the node that holds the stream's lease, pulls from it, and follows
/// the stream when it moves (the players stay attached across the switch, as across a
/// republish). Ends when nobody watched for `idle_secs` or the stream is published here.
async fn run_cluster(
    context: &Arc<Context>,
    key: &StreamKey,
    entry: &Arc<PullEntry>,
    cluster: &Arc<Cluster>,
    idle_secs: u64,
) {
    let idle = Duration::from_secs(idle_secs);
    let mut watched_at = Instant::now();
    let mut had_origin = Instant::now();
    let mut failures = 0u32;
    // The owner a pull last failed from, and when to try it again: a different owner is
    // tried at once (a failover), the same one after a growing pause.
    let mut failed: Option<(String, u64, Instant)> = None;
    loop {
        if entry.stopped() {
            return;
        }
        if audience(context, key) > 0 {
            watched_at = Instant::now();
        } else if watched_at.elapsed() >= idle {
            info!(stream = %key, "cluster pull ended: nobody watched for {idle_secs} s (pull.idle_secs)");
            return;
        }
        let owner = cluster.resolve(key.path()).await;
        let owner = match owner {
            Ok(Some(owner)) if owner.node == cluster.node_id() => {
                info!(stream = %key, "cluster pull ended: this node is the stream's origin");
                return;
            }
            Ok(owner) => owner,
            // Redis unreachable: ask again (the players stay).
            Err(_) => None,
        };
        let retry_later = match (&owner, &failed) {
            (Some(owner), Some((node, epoch, at))) => {
                *node == owner.node && *epoch == owner.epoch && Instant::now() < *at
            }
            _ => false,
        };
        let owner = owner.filter(|_| !retry_later);
        let Some(owner) = owner else {
            let wait = if retry_later || had_origin.elapsed() < LOOK_FAST_FOR {
                LOOK_FAST
            } else {
                LOOK_SLOW
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = entry.stop.notified() => return,
            }
            continue;
        };
        had_origin = Instant::now();
        let url = format!(
            "{}/{}/{}?{}",
            owner.rtmp,
            key.app(),
            key.name(),
            cluster.pull_query()
        );
        let target = match RtmpUrl::parse(&url) {
            Ok(target) => target,
            Err(err) => {
                warn!(stream = %key, node = %owner.node, "cannot pull from node {}: its advertised address {} is not usable ({err}); set cluster.advertise_rtmp there", owner.node, owner.rtmp);
                tokio::time::sleep(LOOK_SLOW).await;
                continue;
            }
        };
        entry.set_shown(format!("node {} ({})", owner.node, owner.rtmp));
        let options = weir_client::ClientOptions {
            timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let follow = Follow {
            cluster,
            node: owner.node.clone(),
            epoch: owner.epoch,
        };
        let ended = pull_once(
            context,
            key,
            &target,
            options,
            entry,
            idle,
            &mut watched_at,
            Some(follow),
        )
        .await;
        match ended {
            Ended::Idle => {
                info!(stream = %key, "cluster pull ended: nobody watched for {idle_secs} s (pull.idle_secs)");
                return;
            }
            Ended::Local => {
                info!(stream = %key, "cluster pull ended: the stream is published here");
                return;
            }
            Ended::Moved => {
                failures = 0;
                failed = None;
            }
            Ended::Failed(why) => {
                failures += 1;
                context.hub.metrics().pull_failures.inc();
                if failures == 1 || failures.is_multiple_of(25) {
                    warn!(stream = %key, node = %owner.node, failures, "cluster pull from node {} failed: {why}; asking again where the stream is (the players stay)", owner.node);
                }
                let pause = LOOK_FAST * failures.min(10);
                failed = Some((owner.node, owner.epoch, Instant::now() + pause));
            }
        }
    }
}
