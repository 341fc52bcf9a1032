//! The cluster harness: weir nodes as separate processes (so a test can kill -9, SIGSTOP and
//! SIGCONT them) sharing a test-owned Redis, and weir-client publishers and players that log
//! when each frame arrived.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use weir_client::{Client, ClientOptions, RtmpUrl};
use weir_media::flv_file::FlvTag;
use weir_media::MediaKind;
use weir_rtmp::session::{ClientEvent, MediaType};

use super::access::http_get;
use super::process::ChildGuard;
use super::{free_port, wait_for_port};

/// One weir process of the cluster.
pub struct Node {
    /// Its `cluster.node_id`.
    pub id: String,
    /// Its RTMP listener.
    pub rtmp: SocketAddr,
    /// Its HTTP listener.
    pub http: SocketAddr,
    /// Its admin listener.
    pub api: SocketAddr,
    /// Its configuration file.
    pub config: PathBuf,
    /// The process.
    pub child: ChildGuard,
}

impl Node {
    /// Starts node `id` on free loopback ports with `[cluster] redis_url`, plus `extra`
    /// TOML appended to its configuration.
    pub fn start(dir: &Path, id: &str, redis_url: &str, extra: &str) -> Node {
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        let (rtmp, http, api) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let config = dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "[rtmp]\naddr = \"{rtmp}\"\n[http]\naddr = \"{http}\"\n[api]\naddr = \"{api}\"\n\
                 [cluster]\nredis_url = \"{redis_url}\"\nnode_id = \"{id}\"\n{extra}\n"
            ),
        )
        .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
        cmd.arg("--config").arg(&config);
        cmd.env("WEIR_LOG", "info");
        let mut child = ChildGuard::spawn(&format!("weir-{id}"), cmd, dir);
        for addr in [rtmp, api] {
            assert!(
                wait_for_port(addr, Duration::from_secs(15), || child.is_running()),
                "node {id} did not start\n{}",
                child.diagnostics()
            );
        }
        Node {
            id: id.to_owned(),
            rtmp,
            http,
            api,
            config,
            child,
        }
    }

    /// `rtmp://…/live/{stream}` on this node.
    pub fn url(&self, stream: &str) -> RtmpUrl {
        RtmpUrl::parse(&format!("rtmp://{}/live/{stream}", self.rtmp)).unwrap()
    }

    /// A GET on the admin API, as JSON.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = http_get(self.api, path);
        assert!(status.contains("200"), "{path}: {status}");
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// RTMP players of `stream` on this node (viewers counted by the hub).
    pub fn rtmp_viewers(&self, stream: &str) -> u64 {
        let clients = self.api("/api/v1/clients");
        clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["role"] == "playing" && c["stream"] == stream)
            .count() as u64
    }

    /// Whether `stream` is published on this node (locally or pulled).
    pub fn published(&self, stream: &str) -> bool {
        let streams = self.api("/api/v1/streams");
        streams["streams"].as_array().unwrap().iter().any(|s| {
            format!(
                "{}/{}",
                s["app"].as_str().unwrap_or(""),
                s["name"].as_str().unwrap_or("")
            ) == stream
                && s["published"] == true
        })
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        self.child.stderr()
    }

    /// Polls until `what` holds or `timeout` passes; panics with the node's log then.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "node {}: {what} within {timeout:?}\n{}",
                self.id,
                tail(&self.log(), 40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A frame a player received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// Its RTMP timestamp.
    pub timestamp: u32,
    /// Video (else audio).
    pub video: bool,
    /// A video key frame.
    pub key: bool,
    /// A hash of its payload (the same frame through several nodes has the same hash).
    pub hash: u64,
}

/// What a player saw.
#[derive(Debug, Default)]
pub struct PlayerLog {
    /// When its play was sent.
    pub asked_at: Option<Instant>,
    /// When the play was accepted.
    pub played_at: Option<Instant>,
    /// Every media frame, in order.
    pub frames: Vec<Seen>,
    /// Why it ended before it was stopped (a refusal, a closed connection).
    pub ended: Option<String>,
    /// When it ended so.
    pub ended_at: Option<Instant>,
    /// Status codes it was told.
    pub statuses: Vec<String>,
}

/// Notes in `log` why and when the player ended.
fn player_ended(log: &Arc<Mutex<PlayerLog>>, why: String) {
    let mut log = lock(log);
    log.ended = Some(why);
    log.ended_at = Some(Instant::now());
}

fn lock<T>(m: &Arc<Mutex<T>>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A hash of a payload.
pub fn payload_hash(payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

/// Plays `stream` from `url` until `stop`, logging into `log`.
pub async fn play(url: RtmpUrl, log: Arc<Mutex<PlayerLog>>, mut stop: watch::Receiver<bool>) {
    let options = ClientOptions {
        idle_timeout: Duration::from_secs(60),
        ..ClientOptions::default()
    };
    let mut client = match Client::connect_with(&url, options).await {
        Ok(client) => client,
        Err(err) => {
            player_ended(&log, format!("connect: {err}"));
            return;
        }
    };
    lock(&log).asked_at = Some(Instant::now());
    if let Err(err) = client.play(&url.stream).await {
        player_ended(&log, format!("play: {err}"));
        return;
    }
    lock(&log).played_at = Some(Instant::now());
    loop {
        let event = tokio::select! {
            event = client.next_event(Duration::from_millis(200)) => event,
            _ = stop.wait_for(|s| *s) => break,
        };
        match event {
            Ok(Some(ClientEvent::Media {
                media_type,
                timestamp,
                payload,
                ..
            })) => {
                let video = media_type == MediaType::Video;
                let key = video && payload.first().is_some_and(|b| b >> 4 == 1);
                // Codec headers are sent again to every viewer of a new publisher: only
                // coded frames count.
                let header = payload.len() > 1 && payload[1] == 0;
                if header {
                    continue;
                }
                lock(&log).frames.push(Seen {
                    at: Instant::now(),
                    timestamp,
                    video,
                    key,
                    hash: payload_hash(&payload),
                });
            }
            Ok(Some(ClientEvent::Status { status, .. })) => {
                lock(&log).statuses.push(status.code.clone());
            }
            Ok(_) => {}
            Err(err) => {
                player_ended(&log, format!("{err}"));
                return;
            }
        }
    }
    let _ = client.close().await;
}

/// What a publisher did.
#[derive(Debug, Default)]
pub struct PublisherLog {
    /// When its publish was sent.
    pub asked_at: Option<Instant>,
    /// When the publish was accepted.
    pub accepted_at: Option<Instant>,
    /// When its first key frame was sent.
    pub first_key_at: Option<Instant>,
    /// Why it ended (a refusal, a closed connection).
    pub ended: Option<String>,
    /// Frames sent.
    pub sent: u64,
}

/// Publishes `tags` to `url` in real time, looping them on one timeline, until `stop`.
pub async fn publish(
    url: RtmpUrl,
    tags: Arc<Vec<FlvTag>>,
    log: Arc<Mutex<PublisherLog>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = match Client::connect(&url).await {
        Ok(client) => client,
        Err(err) => {
            lock(&log).ended = Some(format!("connect: {err}"));
            return;
        }
    };
    lock(&log).asked_at = Some(Instant::now());
    if let Err(err) = client.publish(&url.stream).await {
        lock(&log).ended = Some(format!("publish: {err}"));
        return;
    }
    let start = tokio::time::Instant::now();
    lock(&log).accepted_at = Some(Instant::now());
    let span = tags.last().map_or(0, |t| t.timestamp) + 40;
    let mut round = 0u32;
    'outer: loop {
        for tag in tags.iter() {
            if round > 0 && tag.kind == MediaKind::Data {
                continue;
            }
            let timestamp = tag.timestamp + round * span;
            let due = start + Duration::from_millis(u64::from(timestamp));
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.wait_for(|s| *s) => break 'outer,
            }
            let result = match tag.kind {
                MediaKind::Video => {
                    client
                        .send_media(MediaType::Video, timestamp, tag.body.clone())
                        .await
                }
                MediaKind::Audio => {
                    client
                        .send_media(MediaType::Audio, timestamp, tag.body.clone())
                        .await
                }
                MediaKind::Data => client.send_metadata(timestamp, &tag.body).await,
            };
            if let Err(err) = result {
                lock(&log).ended = Some(format!("{err}"));
                return;
            }
            let mut log = lock(&log);
            log.sent += 1;
            let key = tag.kind == MediaKind::Video && tag.body.first().is_some_and(|b| b >> 4 == 1);
            if key && log.first_key_at.is_none() && tag.body.get(1) == Some(&1) {
                log.first_key_at = Some(Instant::now());
            }
        }
        round += 1;
    }
    let _ = client.close().await;
}

/// Percentile `p` (0–100) of `values` (sorted here).
pub fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if values.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[i]
}
