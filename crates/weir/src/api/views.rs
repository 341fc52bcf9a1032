//! The JSON the API answers with: stable field names, units in the names (`_bps`, `_secs`,
//! `_unix`), documented in the OpenAPI document generated from these types.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::registry::{ConnectionInfo, Protocol, Role};
use crate::stats::StreamStats;

/// Seconds since the Unix epoch.
fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `GET /api/v1/server`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ServerView {
    /// weir's version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_secs: f64,
    /// When it started, Unix seconds.
    pub started_unix: u64,
    /// The configuration file in use, or `built-in defaults`.
    pub config_source: String,
    /// Whether a drain is under way (no new clients, the others asked to leave).
    pub draining: bool,
    /// The bound listeners.
    pub listeners: ListenersView,
    /// Streams with a publisher.
    pub streams: usize,
    /// Open connections (RTMP, RTMPS, HTTP-FLV).
    pub connections: usize,
}

/// Where the server listens.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ListenersView {
    /// RTMP address.
    pub rtmp: String,
    /// RTMPS address, when on.
    pub rtmps: Option<String>,
    /// HTTP (or HTTPS) address.
    pub http: String,
    /// This admin listener.
    pub api: String,
}

/// `GET /api/v1/streams`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StreamsView {
    /// Every stream with a publisher or a viewer.
    pub streams: Vec<StreamView>,
}

/// One stream.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct StreamView {
    /// The application (`live`).
    pub app: String,
    /// The stream name (`alice`).
    pub name: String,
    /// Whether a publisher is live.
    pub published: bool,
    /// The publisher, while one is live.
    pub publisher: Option<PublisherView>,
    /// The publisher's tracks.
    pub tracks: Vec<TrackView>,
    /// Viewers by protocol.
    pub viewers: ViewersView,
    /// Payload bytes received from the current publisher.
    pub bytes_in: u64,
    /// Bytes written to viewers (reported about once a second).
    pub bytes_out: u64,
    /// Frames received from the current publisher.
    pub frames_in: FramesView,
    /// Frames written to viewers.
    pub frames_out: u64,
    /// Ingest bitrate over the last second, bits per second.
    pub bitrate_1s_bps: u64,
    /// Ingest bitrate over the last ten seconds, bits per second.
    pub bitrate_10s_bps: u64,
    /// Seconds since the publisher last sent anything.
    pub idle_secs: Option<f64>,
    /// What is wrong with the stream now (empty: nothing found).
    pub health: Vec<HealthView>,
    /// Its push relays (`[[apps.NAME.push]]`).
    pub relays: Vec<RelayView>,
    /// The upstream it is pulled from (`[apps.NAME.pull]`, edge mode), stream key withheld.
    pub pulled_from: Option<String>,
    /// The recording file being written (`[apps.NAME.record]`).
    pub recording: Option<String>,
}

/// One push relay of a stream.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RelayView {
    /// The target URL, its stream key withheld.
    pub target: String,
    /// Publishing to the target now.
    pub connected: bool,
    /// Media bytes handed to the target.
    pub bytes: u64,
    /// Failed attempts so far.
    pub retries: u32,
    /// The last failure.
    pub last_error: Option<String>,
    /// Frames the target could not take in time on this connection (skipped to the next
    /// key frame): how far it lags.
    pub frames_skipped: u64,
    /// The target reads E-RTMP Multitrack and gets every track.
    pub multitrack: bool,
}

/// A stream's publisher.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PublisherView {
    /// Its connection id (`DELETE /api/v1/clients/{id}` closes it).
    pub client_id: Option<u64>,
    /// Its address.
    pub addr: Option<String>,
    /// `rtmp` or `rtmps`.
    pub protocol: Option<String>,
    /// When it started publishing, Unix seconds.
    pub since_unix: u64,
    /// Seconds it has been publishing.
    pub published_secs: f64,
    /// What the encoder says it is (RTMP flashVer).
    pub client: Option<String>,
}

/// One track.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TrackView {
    /// `video` or `audio`.
    pub kind: String,
    /// Track id (0 is the default track; E-RTMP multitrack has more).
    pub track_id: u8,
    /// Codec name (`H.264`, `HEVC`, `AV1`, `AAC`, `Opus`, ...).
    pub codec: String,
    /// Profile (`High`, `Main 10`, `LC`).
    pub profile: Option<String>,
    /// Level.
    pub level: Option<String>,
    /// Picture width, pixels.
    pub width: Option<u32>,
    /// Picture height, pixels.
    pub height: Option<u32>,
    /// Frames per second measured over the frames received.
    pub fps: Option<f64>,
    /// Bits per sample.
    pub bit_depth: Option<u8>,
    /// Audio sample rate, Hz.
    pub sample_rate: Option<u32>,
    /// Audio channels.
    pub channels: Option<u8>,
    /// Coded frames received.
    pub frames: u64,
    /// Key frames received (video).
    pub keyframes: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Bitrate over the last second, bits per second.
    pub bitrate_1s_bps: u64,
    /// Bitrate over the last ten seconds, bits per second.
    pub bitrate_10s_bps: u64,
}

/// Viewers by protocol.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ViewersView {
    /// All of them.
    pub total: usize,
    /// RTMP.
    pub rtmp: usize,
    /// RTMPS.
    pub rtmps: usize,
    /// HTTP-FLV and WebSocket-FLV.
    pub http_flv: usize,
    /// HLS/DASH packagers running for the stream (HLS viewers are requests, not connections).
    pub hls: usize,
}

/// Frames received.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct FramesView {
    /// Video frames (sequence headers included).
    pub video: u64,
    /// Audio frames.
    pub audio: u64,
    /// Video key frames.
    pub keyframes: u64,
}

/// One health finding.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// Stable snake_case code (`keyframe_interval_long`, `av_drift`, ...).
    pub code: String,
    /// `info`, `warning` or `error`.
    pub severity: String,
    /// What was measured and what to change.
    pub message: String,
}

/// `GET /api/v1/clients`.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientsView {
    /// This page of clients, by id.
    pub clients: Vec<ClientView>,
    /// Clients matching the filter, on every page.
    pub total: usize,
    /// Where this page starts.
    pub offset: usize,
    /// Page size asked for.
    pub limit: usize,
}

/// One connection.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClientView {
    /// Connection id (as in the logs).
    pub id: u64,
    /// Client address.
    pub addr: String,
    /// `rtmp`, `rtmps`, `http-flv`.
    pub protocol: String,
    /// `connecting`, `connected`, `publishing` or `playing`.
    pub role: String,
    /// The application, once connected.
    pub app: Option<String>,
    /// The stream (`app/name`) published or played.
    pub stream: Option<String>,
    /// What the client says it is (RTMP flashVer).
    pub client: Option<String>,
    /// When it connected, Unix seconds.
    pub since_unix: u64,
    /// Seconds connected.
    pub age_secs: f64,
    /// Bytes received from it.
    pub bytes_in: u64,
    /// Bytes written to it.
    pub bytes_out: u64,
}

/// `POST /api/v1/drain` (optional body).
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DrainRequest {
    /// Why, for the log and the clients asked to reconnect.
    pub reason: Option<String>,
}

/// The answer to a drain or a kick.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClosedView {
    /// Connections asked to close (or to reconnect elsewhere).
    pub closed: usize,
}

/// An error.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ErrorView {
    /// What went wrong and what to do.
    pub error: String,
}

impl ClientView {
    /// The view of one registry entry.
    pub fn of(info: &ConnectionInfo) -> ClientView {
        let (role, app, stream) = match &info.role {
            Role::Connecting => ("connecting", None, None),
            Role::Connected { app } => ("connected", Some(app.clone()), None),
            Role::Publishing(key) => (
                "publishing",
                Some(key.app().to_owned()),
                Some(key.path().to_owned()),
            ),
            Role::Playing(key) => (
                "playing",
                Some(key.app().to_owned()),
                Some(key.path().to_owned()),
            ),
        };
        ClientView {
            id: info.id,
            addr: info.peer.to_string(),
            protocol: info.protocol.as_str().to_owned(),
            role: role.to_owned(),
            app,
            stream,
            client: info.agent.clone(),
            since_unix: unix(info.since),
            age_secs: info.age_ms as f64 / 1000.0,
            bytes_in: info.bytes_in,
            bytes_out: info.bytes_out,
        }
    }
}

impl StreamView {
    /// The view of a stream's stats, with its publisher's registry entry when found.
    pub(crate) fn of(
        stats: &StreamStats,
        publisher: Option<&ConnectionInfo>,
        relays: &[std::sync::Arc<crate::relay::RelayState>],
        pulled_from: Option<String>,
        recording: Option<String>,
    ) -> StreamView {
        use std::sync::atomic::Ordering;
        let (app, name) = stats.path.split_once('/').unwrap_or((&stats.path, ""));
        let viewers = |p: Protocol| {
            stats
                .viewers
                .iter()
                .find(|(q, _)| *q == p)
                .map_or(0, |(_, n)| *n)
        };
        let tracks = stats
            .tracks
            .iter()
            .map(|t| {
                let rate = stats
                    .track_rates
                    .iter()
                    .find(|r| r.kind == t.kind && r.track_id == t.track_id);
                TrackView {
                    kind: match t.kind {
                        weir_media::TrackKind::Video => "video",
                        weir_media::TrackKind::Audio => "audio",
                    }
                    .to_owned(),
                    track_id: t.track_id,
                    codec: t.codec.to_string(),
                    profile: t.details.profile.clone(),
                    level: t.details.level.clone(),
                    width: t.details.width,
                    height: t.details.height,
                    fps: t.frame_rate().map(|f| (f * 100.0).round() / 100.0),
                    bit_depth: t.details.bit_depth,
                    sample_rate: t.details.sample_rate,
                    channels: t.details.channels,
                    frames: t.frames,
                    keyframes: t.keyframes,
                    bytes: t.bytes,
                    bitrate_1s_bps: rate.map_or(0, |r| r.bitrate_1s),
                    bitrate_10s_bps: rate.map_or(0, |r| r.bitrate_10s),
                }
            })
            .collect();
        StreamView {
            app: app.to_owned(),
            name: name.to_owned(),
            published: stats.published,
            publisher: stats.published.then(|| PublisherView {
                client_id: publisher.map(|p| p.id),
                addr: publisher.map(|p| p.peer.to_string()),
                protocol: publisher.map(|p| p.protocol.as_str().to_owned()),
                since_unix: stats.publisher_since.map_or(0, unix),
                published_secs: stats.published_for.map_or(0.0, |d| d.as_secs_f64()),
                client: publisher.and_then(|p| p.agent.clone()),
            }),
            tracks,
            viewers: ViewersView {
                total: stats.viewer_count(),
                rtmp: viewers(Protocol::Rtmp),
                rtmps: viewers(Protocol::Rtmps),
                http_flv: viewers(Protocol::HttpFlv),
                hls: viewers(Protocol::Hls),
            },
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            frames_in: FramesView {
                video: stats.video_frames_in,
                audio: stats.audio_frames_in,
                keyframes: stats.keyframes_in,
            },
            frames_out: stats.frames_out,
            bitrate_1s_bps: stats.bitrate_1s,
            bitrate_10s_bps: stats.bitrate_10s,
            idle_secs: stats.idle_for.map(|d| d.as_secs_f64()),
            health: stats
                .health
                .iter()
                .map(|f| HealthView {
                    code: f.code.to_owned(),
                    severity: f.severity.as_str().to_owned(),
                    message: f.message.clone(),
                })
                .collect(),
            relays: relays
                .iter()
                .map(|r| RelayView {
                    target: r.target.clone(),
                    connected: r.connected.load(Ordering::Relaxed),
                    bytes: r.bytes.load(Ordering::Relaxed),
                    retries: r.retries.load(Ordering::Relaxed),
                    frames_skipped: r.frames_skipped.load(Ordering::Relaxed),
                    multitrack: r.multitrack.load(Ordering::Relaxed),
                    last_error: r
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                })
                .collect(),
            pulled_from,
            recording,
        }
    }
}

/// `GET /api/v1/cluster`: the origin/edge cluster as this node sees it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// Whether `[cluster]` is on (`redis_url` set); every other field is empty when not.
    pub enabled: bool,
    /// This node's id.
    pub node_id: String,
    /// Whether the last call to Redis succeeded.
    pub redis_up: bool,
    /// The last call's round trip to Redis, in milliseconds (a heartbeat, once a second).
    pub redis_latency_ms: f64,
    /// Why Redis could not be read now, when it could not (the rest is this node's own
    /// view then).
    pub redis_error: Option<String>,
    /// The nodes whose heartbeat lives.
    pub nodes: Vec<ClusterNodeView>,
    /// Every stream lease in Redis.
    pub leases: Vec<ClusterLeaseView>,
    /// The leases this node holds (its view, also while Redis is unreachable).
    pub held: Vec<ClusterLeaseView>,
    /// The streams this node pulls from other nodes.
    pub pulls: Vec<ClusterPullView>,
}

/// A node of the cluster.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClusterNodeView {
    /// Its `cluster.node_id`.
    pub id: String,
    /// How the other nodes reach its RTMP listener.
    pub rtmp: String,
    /// How the other nodes reach its HTTP listener.
    pub http: String,
    /// Its heartbeat counter.
    pub beats: u64,
    /// When its process started (Unix seconds).
    pub started_unix: f64,
    /// Its last heartbeat (Unix seconds).
    pub seen_unix: f64,
    /// This is the node answering.
    pub this_node: bool,
}

/// A stream's lease: which node is its origin.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClusterLeaseView {
    /// The stream (`app/name`).
    pub stream: String,
    /// The node holding it: the stream's origin.
    pub node: String,
    /// The fencing token: grows with every new owner.
    pub epoch: u64,
    /// Held for, in seconds.
    pub held_secs: f64,
    /// Whether its node's heartbeat lives (a dead node's lease is free to take).
    pub alive: bool,
}

/// A stream this node pulls from its origin.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ClusterPullView {
    /// The stream (`app/name`).
    pub stream: String,
    /// The node pulled from (empty while looking for one).
    pub origin: String,
    /// Its lease's epoch.
    pub epoch: u64,
    /// Viewers and outputs reading the stream here.
    pub viewers: u64,
}
