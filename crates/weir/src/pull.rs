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

/// The pulls running, by stream path.
#[derive(Debug, Default)]
pub(crate) struct Pulls {
    /// By stream path: the upstream (key withheld), shared with the pull's task so it only
    /// ever removes its own entry.
    running: Mutex<HashMap<String, Arc<String>>>,
}

impl Pulls {
    /// The upstream (key withheld) stream `path` is pulled from, if it is.
    pub(crate) fn upstream(&self, path: &str) -> Option<String> {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .map(|u| u.to_string())
    }

    /// Removes `entry` for `path` if it is still the one running there.
    fn release(&self, path: &str, entry: &Arc<String>) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(path).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            running.remove(path);
        }
    }
}

/// A player wants `key`: pulls it from the app's upstream unless it is published here or
/// pulled already. Returns whether the stream is pulled (or being pulled).
pub(crate) fn wanted(context: &Arc<Context>, key: &StreamKey) -> bool {
    let live = context.live();
    let Some(rules) = live
        .app_rules(key.app())
        .map(|r| r.pull.clone())
        .filter(|p| !p.url.is_empty())
    else {
        return false;
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
    let url = rules
        .url
        .replace("{app}", key.app())
        .replace("{stream}", key.name());
    let shown = Arc::new(crate::relay::redact(&url));
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
        running.insert(key.path().to_owned(), Arc::clone(&shown));
    }
    let context = Arc::clone(context);
    let key = key.clone();
    tokio::spawn(async move {
        run(&context, &key, &url, &shown, &rules).await;
        context.pulls.release(key.path(), &shown);
    });
    true
}

/// Whether anyone uses the stream: its viewers and the outputs reading it (HLS packagers,
/// recorders, push relays).
fn audience(context: &Context, key: &StreamKey) -> usize {
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
}

async fn run(
    context: &Arc<Context>,
    key: &StreamKey,
    url: &str,
    shown: &Arc<String>,
    rules: &PullRules,
) {
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
        let ended = pull_once(
            context,
            key,
            &target,
            shown,
            &rules.ca_file,
            idle,
            &mut watched_at,
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

/// One upstream connection: play, publish what comes into the hub, until something ends it.
async fn pull_once(
    context: &Arc<Context>,
    key: &StreamKey,
    target: &RtmpUrl,
    shown: &Arc<String>,
    ca_file: &str,
    idle: Duration,
    watched_at: &mut Instant,
) -> Ended {
    let options = match crate::relay::client_options(ca_file) {
        Ok(options) => options,
        Err(err) => return Ended::Failed(err),
    };
    let mut client = match Client::connect_with(target, options).await {
        Ok(client) => client,
        Err(err) => return Ended::Failed(format!("connect: {err}")),
    };
    if let Err(err) = client.play(&target.stream).await {
        return Ended::Failed(format!("play: {err}"));
    }
    info!(stream = %key, upstream = %shown, "pulling from the upstream");
    let mut publisher: Option<Publisher> = None;
    let pulled_bytes = context.hub.metrics().pull_bytes.clone();
    let mut next_check = Instant::now() + CHECK;
    let ended = loop {
        if Instant::now() >= next_check {
            next_check = Instant::now() + CHECK;
            if audience(context, key) > 0 {
                *watched_at = Instant::now();
            } else if watched_at.elapsed() >= idle {
                // Out of the table before the teardown: a player arriving now starts a new
                // pull instead of waiting on this one.
                context.pulls.release(key.path(), shown);
                break Ended::Idle;
            }
        }
        let event = match client.next_event(CHECK).await {
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
                // The upstream's publisher left: so does ours; the players wait.
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
    drop(publisher);
    let _ = client.close().await;
    ended
}
