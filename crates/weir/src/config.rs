//! Configuration: built-in defaults, a TOML file, command-line overrides.
//!
//! Every field has a default, so `weir` with no config file just works. Unknown keys are an
//! error that names the key, so a typo never silently does nothing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The RTMP listener and protocol limits.
    pub rtmp: RtmpConfig,
    /// The RTMPS (RTMP over TLS) listener.
    pub rtmps: RtmpsConfig,
    /// Per-stream buffering: GOP cache and viewer queues.
    pub streams: StreamsConfig,
    /// The HTTP listener: HTTP-FLV (and the browser outputs to come).
    pub http: HttpConfig,
    /// HLS segmenting.
    pub hls: HlsConfig,
    /// What players get of E-RTMP streams.
    pub playback: PlaybackConfig,
    /// Logging.
    pub log: LogConfig,
    /// What happens when a second publisher arrives for a live stream.
    pub publish: PublishConfig,
    /// Secrets for signed URLs.
    pub auth: AuthConfig,
    /// Proxies and load balancers whose word on the client's address is taken.
    pub proxy: ProxyConfig,
    /// The admin listener: HTTP API and Prometheus metrics.
    pub api: ApiConfig,
    /// How the server stops.
    pub shutdown: ShutdownConfig,
    /// The origin/edge cluster (off while `redis_url` is empty).
    pub cluster: ClusterConfig,
    /// The file this configuration was read from (`None`: built-in defaults). Not a key:
    /// set by whoever loads the file; `POST /api/v1/reload` and SIGHUP read it again.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
    /// Who may publish and play, per application (`[apps.NAME]`; `[apps.default]` for the
    /// others). Empty: anyone may publish and play any stream.
    pub apps: std::collections::BTreeMap<String, AppRules>,
}

/// `[publish]`: a second publisher of a live stream.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// A new publisher replaces the current one when that one has sent nothing for this
    /// many seconds (an encoder reconnecting after a network drop); 0: never on staleness.
    pub stale_secs: u64,
    /// A new publisher always replaces the current one (the newest encoder wins).
    pub takeover: bool,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            stale_secs: 5,
            takeover: false,
        }
    }
}

/// `[auth]`: secrets shared with a web backend.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HMAC-SHA256 secrets for signed URLs (`?expires=…&sig=…`): `weir sign` signs with the
    /// first, every one is accepted (rotation).
    pub secrets: Vec<String>,
}

/// `[proxy]`: reverse proxies and TCP load balancers in front of weir.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses (CIDR) of the proxies trusted to name the client: their `X-Forwarded-For`
    /// is read on HTTP, and their PROXY protocol headers where `rtmp.proxy_protocol` /
    /// `http.proxy_protocol` are on. Everyone else is taken at their TCP address.
    pub trusted: Vec<String>,
}

/// `[apps.NAME]`: who may publish and play in one application.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppRules {
    /// Who may publish.
    pub publish: PublishRule,
    /// Who may play.
    pub play: PlayRule,
    /// The secret stream keys (`publish = "keys"`), each by its hash, and the public name a
    /// publish with it gets.
    pub keys: Vec<StreamKeyEntry>,
    /// Addresses (CIDR, IPv4 or IPv6) allowed to publish; empty: any.
    pub allow_publish: Vec<String>,
    /// Addresses refused publishing (before `allow_publish`).
    pub deny_publish: Vec<String>,
    /// Addresses allowed to play (RTMP, HTTP-FLV, HLS, DASH); empty: any.
    pub allow_play: Vec<String>,
    /// Addresses refused playing (before `allow_play`).
    pub deny_play: Vec<String>,
    /// Streams of this app published at once; 0 for no limit.
    pub max_publishers: usize,
    /// Viewers of one stream at once (RTMP, RTMPS and HTTP-FLV; HLS requests are not
    /// counted); 0 for no limit.
    pub max_viewers_per_stream: usize,
    /// This app's own `[publish] takeover` (a new publisher always replaces the current one);
    /// unset: the `[publish]` value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub takeover: Option<bool>,
    /// Webhook (URL, `http://` or `https://`) asked before a client connects to this app;
    /// empty: none.
    pub on_connect: String,
    /// Webhook asked before a publish (after the `publish` rule allowed it); it may rename
    /// the stream. Required by `publish = "webhook"`.
    pub on_publish: String,
    /// Webhook asked before a play (RTMP, HTTP-FLV; HLS and DASH per request). Required by
    /// `play = "webhook"`.
    pub on_play: String,
    /// Webhook told when a publish ends (its answer is not waited for).
    pub on_unpublish: String,
    /// Webhook told when a play ends (RTMP and HTTP-FLV).
    pub on_play_done: String,
    /// Milliseconds a webhook may take to answer (then `webhook_on_error` applies).
    pub webhook_timeout_ms: u64,
    /// What an unreachable, failing or slow webhook means: "deny" (fail closed) or "allow".
    pub webhook_on_error: WebhookFailure,
    /// Seconds a webhook's decision is reused for the same action, stream and query; 0: ask
    /// every time.
    pub webhook_cache_secs: u64,
    /// Webhook told when a recording file is closed (path, start, duration, size).
    pub on_record_done: String,
    /// Push relays: every stream published in the app is re-published to each target.
    pub push: Vec<PushTarget>,
    /// `[apps.NAME.record]`: recording every stream of the app.
    pub record: RecordRules,
    /// `[apps.NAME.pull]`: edge mode, streams not published here are pulled from upstream.
    pub pull: PullRules,
}

/// `[apps.NAME.pull]`: pull relays (edge mode); off while `url` is empty.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PullRules {
    /// The upstream, `rtmp://` or `rtmps://` with `{app}` and `{stream}` replaced, e.g.
    /// `rtmp://origin:1935/{app}/{stream}`.
    pub url: String,
    /// The pull stops this long after the last player left.
    pub idle_secs: u64,
    /// For `rtmps://`: a PEM file of the certificate authorities to trust instead of the
    /// public ones; empty: the public web authorities.
    pub ca_file: String,
}

impl Default for PullRules {
    fn default() -> Self {
        Self {
            url: String::new(),
            idle_secs: 30,
            ca_file: String::new(),
        }
    }
}

/// `[apps.NAME.record]`: recording; off unless `format` is set.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RecordRules {
    /// `"fmp4"` (fragmented MP4, every codec and track) or `"flv"`; unset: no recording.
    pub format: Option<RecordFormat>,
    /// The stream names recorded (public names); empty: every stream of the app.
    pub streams: Vec<String>,
    /// Where files go: `{app}`, `{stream}`, `{start}` (UTC, `%Y-%m-%d_%H-%M-%S`),
    /// `{start:FORMAT}` (`%Y %m %d %H %M %S %s`) and `{ext}` (`mp4`/`flv`) are replaced.
    pub path: String,
    /// Longest time between two writes to the file (fMP4 fragments; FLV flushes): the most a
    /// crash can lose.
    pub fragment_secs: u64,
    /// A new file after this many seconds (at the next key frame); 0 for none.
    pub max_file_secs: u64,
    /// A new file after this many MB (at the next key frame); 0 for none.
    pub max_file_mb: u64,
    /// Files older than this are deleted (`"7d"`, `"12h"`, `"90m"`); empty keeps them.
    pub delete_after: String,
    /// How far back the player page lets a viewer seek in a live stream recorded as fMP4
    /// (its DVR button), seconds; 0: no DVR.
    pub dvr_secs: u64,
}

impl Default for RecordRules {
    fn default() -> Self {
        Self {
            format: None,
            streams: Vec::new(),
            path: "recordings/{app}/{stream}/{start}.{ext}".into(),
            fragment_secs: 2,
            max_file_secs: 0,
            max_file_mb: 0,
            delete_after: String::new(),
            dvr_secs: 0,
        }
    }
}

/// `apps.NAME.record.format`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    /// Fragmented MP4 (CMAF): every codec weir ingests, one track per E-RTMP track.
    Fmp4,
    /// FLV: the tags as published (legacy players' form of Multitrack streams).
    Flv,
}

impl RecordRules {
    /// Whether stream `name` of the app is recorded.
    pub fn records(&self, name: &str) -> bool {
        self.format.is_some() && (self.streams.is_empty() || self.streams.iter().any(|s| s == name))
    }

    /// `delete_after` as a duration; `None` when files are kept.
    pub fn delete_after(&self) -> Option<Duration> {
        let text = self.delete_after.trim();
        if text.is_empty() {
            return None;
        }
        humantime::parse_duration(text).ok()
    }
}

/// One `[[apps.NAME.push]]` target.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PushTarget {
    /// `rtmp://` or `rtmps://` URL with the stream name (`{app}` and `{stream}` are replaced),
    /// e.g. `rtmps://a.rtmp.youtube.com/live2/KEY`.
    pub url: String,
    /// For `rtmps://`: a PEM file of the certificate authorities to trust instead of the
    /// public ones (a target with a private or self-signed certificate); empty: the public
    /// web authorities.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
}

impl Default for AppRules {
    fn default() -> Self {
        Self {
            publish: PublishRule::default(),
            play: PlayRule::default(),
            keys: Vec::new(),
            allow_publish: Vec::new(),
            deny_publish: Vec::new(),
            allow_play: Vec::new(),
            deny_play: Vec::new(),
            max_publishers: 0,
            max_viewers_per_stream: 0,
            takeover: None,
            on_connect: String::new(),
            on_publish: String::new(),
            on_play: String::new(),
            on_unpublish: String::new(),
            on_play_done: String::new(),
            webhook_timeout_ms: 3000,
            webhook_on_error: WebhookFailure::Deny,
            webhook_cache_secs: 0,
            on_record_done: String::new(),
            push: Vec::new(),
            record: RecordRules::default(),
            pull: PullRules::default(),
        }
    }
}

/// `apps.NAME.webhook_on_error`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFailure {
    /// Refuse the client (fail closed).
    #[default]
    Deny,
    /// Let the client in (fail open), with a warning in the log.
    Allow,
}

/// `apps.NAME.publish`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PublishRule {
    /// Anyone may publish any stream name.
    #[default]
    Open,
    /// Only with a stream key from `keys`; the stream gets the key's public name.
    Keys,
    /// Only with a signed, unexpired URL (`[auth] secrets`, `weir sign`).
    Signed,
    /// Whoever the `on_publish` webhook allows.
    Webhook,
}

/// `apps.NAME.play`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlayRule {
    /// Anyone may play.
    #[default]
    Open,
    /// Only with a signed, unexpired URL (RTMP, HTTP-FLV, and HLS and DASH, whose playlists
    /// then carry the signature to every segment).
    Signed,
    /// Whoever the `on_play` webhook allows.
    Webhook,
}

/// One secret stream key.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StreamKeyEntry {
    /// `sha256:` and the hex SHA-256 of the key (`weir hash-key` prints it).
    pub hash: String,
    /// The public stream name a publish with this key gets (viewers watch `app/stream`).
    pub stream: String,
}

/// `[rtmps]`: RTMP over TLS; on when `cert_file` and `key_file` are set.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpsConfig {
    /// Address and port of the RTMPS listener.
    pub addr: SocketAddr,
    /// PEM certificate chain (e.g. Let's Encrypt's `fullchain.pem`); re-read when it changes.
    pub cert_file: String,
    /// PEM private key (e.g. `privkey.pem`).
    pub key_file: String,
    /// More certificates for other names on the same port: a handshake gets the first one
    /// valid for the name the client asks for (SNI), else `cert_file`.
    pub certificates: Vec<CertificatePair>,
}

/// One more certificate of `rtmps.certificates`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key.
    pub key_file: String,
}

impl Default for RtmpsConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 1936)),
            cert_file: String::new(),
            key_file: String::new(),
            certificates: Vec::new(),
        }
    }
}

impl RtmpsConfig {
    /// Whether the RTMPS listener runs (a certificate and a key are configured).
    pub fn enabled(&self) -> bool {
        !self.cert_file.is_empty() && !self.key_file.is_empty()
    }

    /// Every (certificate, key) file pair, the default first.
    pub fn certificate_files(&self) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
        std::iter::once((&self.cert_file, &self.key_file))
            .chain(
                self.certificates
                    .iter()
                    .map(|p| (&p.cert_file, &p.key_file)),
            )
            .map(|(c, k)| (c.into(), k.into()))
            .collect()
    }
}

/// `[http]`: the HTTP listener.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port of the HTTP listener.
    pub addr: SocketAddr,
    /// Seconds an HTTP-FLV request for a stream nobody publishes waits for a publisher before
    /// it is answered 404; 0 answers at once.
    pub flv_wait_secs: u64,
    /// A directory with `hls.min.js`, `mpegts.js` and `dash.all.min.js` for the player page
    /// (served at `/player/lib/`); empty, the page loads them from pinned CDN URLs.
    pub player_lib_dir: String,
    /// Serve HTTPS instead of HTTP, with the `[rtmps]` certificate.
    pub tls: bool,
    /// Connections from `proxy.trusted` addresses start with a PROXY protocol header (v1 or
    /// v2) naming the client.
    pub proxy_protocol: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            flv_wait_secs: 0,
            player_lib_dir: String::new(),
            tls: false,
            proxy_protocol: false,
        }
    }
}

/// `[hls]`: how HLS segments are cut and kept.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    /// `EXT-X-TARGETDURATION` in seconds: no segment is longer (a longer GOP is cut).
    pub target_duration_secs: u32,
    /// A segment ends at the first key frame after it is this long, in milliseconds.
    pub min_segment_ms: u32,
    /// Low-Latency HLS part length in milliseconds (fMP4); 0 turns Low-Latency HLS off.
    pub part_ms: u32,
    /// Segments listed in a playlist (as many more stay downloadable).
    pub window: usize,
    /// Seconds a stream's segmenter keeps running after the last HLS request.
    pub idle_secs: u64,
    /// Package every published stream from its first frame (the first HLS or DASH request is
    /// answered at once), instead of starting on the first request.
    pub always: bool,
    /// Also write each stream's HLS and DASH files under this directory (for a CDN origin or
    /// a plain web server); empty: memory only. Implies `always`.
    pub dir: String,
}

impl Config {
    /// The rules `app` runs under: `[apps.NAME]`, else `[apps.default]`.
    pub fn app_rules(&self, app: &str) -> Option<&AppRules> {
        self.apps.get(app).or_else(|| self.apps.get("default"))
    }

    /// Whether publishing to `app` takes a secret key (`[apps.NAME]` or `[apps.default]`).
    pub fn publish_uses_keys(&self, app: &str) -> bool {
        self.apps
            .get(app)
            .or_else(|| self.apps.get("default"))
            .is_some_and(|rules| rules.publish == PublishRule::Keys)
    }
}

impl HlsConfig {
    /// Whether every published stream is packaged from its first frame (`always`, or a
    /// directory copy to keep current).
    pub fn packages_always(&self) -> bool {
        self.always || !self.dir.is_empty()
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self {
            target_duration_secs: 2,
            min_segment_ms: 1000,
            part_ms: 200,
            window: 12,
            idle_secs: 30,
            always: false,
            dir: String::new(),
        }
    }
}

/// `[playback]`: what players get of Enhanced RTMP streams (codecs beyond H.264/AAC, several
/// tracks).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlaybackConfig {
    /// Players that say they read E-RTMP Multitrack (`capsEx`) get every track; off, every
    /// player gets the default track only. Players that do not say so always get the
    /// default track only, in single-track framing.
    pub multitrack: bool,
    /// What a player that lists no codecs in `connect` (stock FFmpeg, ffplay, VLC, OBS's
    /// preview) gets of codecs beyond H.264/AAC/MP3 (HEVC, AV1, VP9, Opus, FLAC, AC-3, ...):
    /// `send` (logged once per player) or `withhold`.
    pub unadvertised_codecs: Unadvertised,
    /// `unadvertised_codecs` for particular apps, e.g. `{ legacy = "withhold" }`.
    pub app_unadvertised_codecs: std::collections::BTreeMap<String, Unadvertised>,
    /// `multitrack` for particular apps, e.g. `{ simple = false }`.
    pub app_multitrack: std::collections::BTreeMap<String, bool>,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            multitrack: true,
            unadvertised_codecs: Unadvertised::Send,
            app_unadvertised_codecs: Default::default(),
            app_multitrack: Default::default(),
        }
    }
}

impl PlaybackConfig {
    /// `multitrack` for `app`.
    pub fn multitrack_for(&self, app: &str) -> bool {
        self.app_multitrack
            .get(app)
            .copied()
            .unwrap_or(self.multitrack)
    }

    /// `unadvertised_codecs` for `app`.
    pub fn unadvertised_for(&self, app: &str) -> Unadvertised {
        self.app_unadvertised_codecs
            .get(app)
            .copied()
            .unwrap_or(self.unadvertised_codecs)
    }
}

/// What a player that lists no codecs gets of non-legacy codecs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unadvertised {
    /// Send them (as SRS does; FFmpeg 6.1+ reads them without asking).
    Send,
    /// Withhold them; the player gets the legacy tracks only.
    Withhold,
}

/// `[rtmp]`: where to listen and what a connection may do.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address and port of the RTMP listener.
    pub addr: SocketAddr,
    /// Outbound chunk size announced to every client.
    pub chunk_size: u32,
    /// Connections held at once; further ones are refused with a log line.
    pub max_connections: usize,
    /// Connections one client address may hold at once, RTMP, RTMPS and HTTP together; 0
    /// for no limit.
    pub max_connections_per_ip: usize,
    /// New connections one client address may open per second, RTMP, RTMPS and HTTP
    /// together (a burst of as many is allowed); 0 for no limit.
    pub max_connection_rate_per_ip: u32,
    /// Connections from `proxy.trusted` addresses on the RTMP and RTMPS listeners start
    /// with a PROXY protocol header (v1 or v2) naming the client.
    pub proxy_protocol: bool,
    /// Seconds allowed from accept to a complete `connect` command.
    pub handshake_timeout_secs: u64,
    /// Seconds a publisher (or a connection doing nothing) may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a write to a client may block before the client is disconnected.
    pub write_timeout_secs: u64,
    /// Seconds the access policy may take to decide on a publish or play before the request
    /// is refused.
    pub request_timeout_secs: u64,
    /// Largest RTMP message accepted, in bytes (at most 16777215).
    pub max_message_size: u32,
    /// Most chunk streams one connection may use at once.
    pub max_chunk_streams: usize,
    /// Socket send buffer in bytes; 0 leaves the kernel's autotuning in charge.
    pub send_buffer_bytes: usize,
    /// Socket receive buffer in bytes; 0 leaves the kernel's autotuning in charge.
    pub recv_buffer_bytes: usize,
    /// Seconds a client that handles E-RTMP ReconnectRequest is still served after being
    /// asked to reconnect at shutdown; others are closed at once. 0 closes everyone at once.
    pub drain_timeout_secs: u64,
    /// The tcUrl sent with ReconnectRequest (another server, `//host/app` or `/app`); empty:
    /// reconnect to the same address.
    pub reconnect_tc_url: String,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 1935)),
            chunk_size: 4096,
            max_connections: 20_000,
            max_connections_per_ip: 0,
            max_connection_rate_per_ip: 0,
            proxy_protocol: false,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 30,
            write_timeout_secs: 10,
            request_timeout_secs: 10,
            max_message_size: 0xFF_FFFF,
            max_chunk_streams: 64,
            send_buffer_bytes: 0,
            recv_buffer_bytes: 0,
            drain_timeout_secs: 10,
            reconnect_tc_url: String::new(),
        }
    }
}

impl RtmpConfig {
    /// The handshake timeout as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// The idle timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// The policy decision timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The write timeout as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }
}

/// `[streams]`: what each live stream keeps for late joiners and how slow viewers are treated.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamsConfig {
    /// Keep the current GOP so a new viewer starts at once on a keyframe.
    pub gop_cache: bool,
    /// Largest GOP kept, in bytes; a longer GOP is dropped until the next keyframe.
    pub gop_max_bytes: usize,
    /// Longest GOP kept, in milliseconds.
    pub gop_max_duration_ms: u32,
    /// Frames queued per viewer; a viewer further behind skips to the next keyframe.
    pub viewer_queue_frames: usize,
    /// Seconds a viewer may stay behind the live edge before it is disconnected.
    pub max_viewer_lag_secs: u64,
    /// The latency budget: the longest a live frame may wait in weir so that writes to a
    /// viewer can be merged. Below [`MERGE_FROM_MS`] every picture is written the moment it
    /// arrives, with the audio that came since the previous picture (audio waits at most
    /// [`AUDIO_HOLD_MS`] for it); 0 writes every frame, audio too, the moment it arrives. From
    /// [`MERGE_FROM_MS`] on, a viewer writes at most once per budget, everything that arrived
    /// since (SRS-style merged writes: least CPU per viewer, up to the budget of latency).
    pub max_added_latency_ms: u64,
    /// Replaced by `max_added_latency_ms`; set, it is a configuration error naming the new key.
    #[serde(skip_serializing)]
    pub write_coalesce_ms: Option<u64>,
    /// Replaced by `max_added_latency_ms`; set, it is a configuration error naming the new key.
    #[serde(skip_serializing)]
    pub video_coalesce_ms: Option<u64>,
    /// The ingest bitrate a stream should stay under, bits per second (the health finding
    /// `bitrate_over_limit`); 0 for no limit.
    pub max_bitrate: u64,
}

/// The budget (`streams.max_added_latency_ms`) from which pictures are merged into fewer
/// writes: below it, holding a picture could not merge it with the next one at common frame
/// rates (a 30 fps picture comes every 33 ms), so it would only add latency.
pub const MERGE_FROM_MS: u64 = 20;

/// How long audio waits for the next picture to travel with it, in media time, when the
/// budget is not 0: one wake-up and one write per viewer per picture, not per audio frame.
pub const AUDIO_HOLD_MS: u64 = 40;

impl StreamsConfig {
    /// How long audio may wait in the hub for the next picture (media time).
    pub fn audio_hold(&self) -> Duration {
        match self.max_added_latency_ms {
            0 => Duration::ZERO,
            _ => Duration::from_millis(AUDIO_HOLD_MS),
        }
    }

    /// How long a viewer may hold what it got before writing: zero (write each picture as it
    /// arrives) below [`MERGE_FROM_MS`], else the budget.
    pub fn merge_window(&self) -> Duration {
        match self.max_added_latency_ms {
            ms if ms < MERGE_FROM_MS => Duration::ZERO,
            ms => Duration::from_millis(ms),
        }
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self {
            gop_cache: true,
            gop_max_bytes: 16 << 20,
            gop_max_duration_ms: 10_000,
            viewer_queue_frames: 1024,
            max_viewer_lag_secs: 5,
            max_added_latency_ms: 5,
            write_coalesce_ms: None,
            video_coalesce_ms: None,
            max_bitrate: 0,
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `weir=debug,weir_rtmp=trace`, ...
    pub level: String,
    /// `"text"` (colours only on a terminal) or `"json"` (one object per line, for log
    /// shippers).
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `log.format`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[shutdown]`: draining on SIGTERM or `POST /api/v1/drain`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// The longest a drain waits for clients to leave before the rest are closed and the
    /// process exits.
    pub drain_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { drain_secs: 30 }
    }
}

/// `[cluster]`: several weir nodes sharing streams through Redis (docs/CLUSTER.md). Off
/// while `redis_url` is empty: a single node, as without the section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS, or
    /// `unix:///path/redis.sock`) of the Redis that holds the nodes' heartbeats and the
    /// streams' leases; empty: no cluster.
    pub redis_url: String,
    /// For `rediss://`: PEM file of the certificate authorities the Redis server's
    /// certificate must chain to; empty: the system's trusted roots.
    pub redis_ca_file: String,
    /// For `rediss://` to a Redis that asks for client certificates (`tls-auth-clients`):
    /// this node's certificate chain (PEM); empty: none sent.
    pub redis_cert_file: String,
    /// The private key (PEM) of `redis_cert_file`.
    pub redis_key_file: String,
    /// This node's name in the cluster (unique); empty: the machine's hostname.
    pub node_id: String,
    /// How the other nodes reach this node's RTMP listener (`rtmp://host:port`); empty: the
    /// listener's address (the hostname when it listens on every interface).
    pub advertise_rtmp: String,
    /// How the other nodes reach this node's HTTP listener (`http://host:port`); empty: the
    /// listener's address (the hostname when it listens on every interface).
    pub advertise_http: String,
    /// Prefix of every Redis key weir writes, so several clusters can share one Redis.
    pub key_prefix: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            redis_ca_file: String::new(),
            redis_cert_file: String::new(),
            redis_key_file: String::new(),
            node_id: String::new(),
            advertise_rtmp: String::new(),
            advertise_http: String::new(),
            key_prefix: "weir".to_owned(),
        }
    }
}

impl ClusterConfig {
    /// Whether the cluster is on.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }
}

/// `[api]`: the admin listener (HTTP API under `/api/v1`, Prometheus `/metrics`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Address and port of the admin listener; loopback by default so it is never public by
    /// accident.
    pub addr: SocketAddr,
    /// Bearer tokens allowed to use the API, each as `sha256:` + hex (`weir hash-key`
    /// prints one); empty: no token needed.
    pub tokens: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tokens: Vec::new(),
        }
    }
}

/// Longest timeout accepted, in seconds (one day).
const MAX_SECS: u64 = 86_400;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has a wrong or unknown key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value is out of range.
    #[error("config key {key}: {message}")]
    Invalid {
        /// Dotted key, e.g. `rtmp.chunk_size`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file; missing keys keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_toml(&text).map_err(|err| match err {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses TOML text and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: "<text>".to_owned(),
            message: err.to_string().trim().replace('\n', " "),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        let invalid_owned = |key: String, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_owned(),
            })
        };
        let rtmp = &self.rtmp;
        if !(128..=0xFF_FFFF).contains(&rtmp.chunk_size) {
            return invalid("rtmp.chunk_size", "must be between 128 and 16777215");
        }
        if rtmp.max_connections == 0 {
            return invalid("rtmp.max_connections", "must be at least 1");
        }
        if rtmp.max_message_size < 1024 || rtmp.max_message_size > 0xFF_FFFF {
            return invalid("rtmp.max_message_size", "must be between 1024 and 16777215");
        }
        if rtmp.max_chunk_streams < 4 {
            return invalid("rtmp.max_chunk_streams", "must be at least 4");
        }
        for (key, secs) in [
            ("rtmp.handshake_timeout_secs", rtmp.handshake_timeout_secs),
            ("rtmp.idle_timeout_secs", rtmp.idle_timeout_secs),
            ("rtmp.write_timeout_secs", rtmp.write_timeout_secs),
            ("rtmp.request_timeout_secs", rtmp.request_timeout_secs),
            (
                "streams.max_viewer_lag_secs",
                self.streams.max_viewer_lag_secs,
            ),
        ] {
            if !(1..=MAX_SECS).contains(&secs) {
                return invalid(key, "must be between 1 and 86400 (one day)");
            }
        }
        if self.http.flv_wait_secs > MAX_SECS {
            return invalid("http.flv_wait_secs", "must be at most 86400 (one day)");
        }
        if self
            .proxy
            .trusted
            .iter()
            .any(|c| crate::auth::cidr::Cidr::parse(c).is_none())
        {
            return invalid(
                "proxy.trusted",
                "holds an entry that is no address or CIDR range (like 10.0.0.0/8, 192.0.2.7)",
            );
        }
        for (key, on) in [
            ("rtmp.proxy_protocol", rtmp.proxy_protocol),
            ("http.proxy_protocol", self.http.proxy_protocol),
        ] {
            if on && self.proxy.trusted.is_empty() {
                return invalid(
                    key,
                    "needs proxy.trusted: the addresses of the load balancers that send PROXY headers",
                );
            }
        }
        if self.http.tls && !self.rtmps.enabled() {
            return invalid(
                "http.tls",
                "needs a certificate: set rtmps.cert_file and rtmps.key_file",
            );
        }
        if self.rtmps.cert_file.is_empty() != self.rtmps.key_file.is_empty() {
            return invalid(
                "rtmps.cert_file",
                "and rtmps.key_file go together: set both (RTMPS on) or neither (off)",
            );
        }
        if !self.rtmps.certificates.is_empty() && !self.rtmps.enabled() {
            return invalid(
                "rtmps.certificates",
                "needs the default pair too: set rtmps.cert_file and rtmps.key_file",
            );
        }
        if self
            .rtmps
            .certificates
            .iter()
            .any(|p| p.cert_file.is_empty() || p.key_file.is_empty())
        {
            return invalid(
                "rtmps.certificates",
                "holds an entry without cert_file or key_file",
            );
        }
        if self.rtmps.enabled() && self.rtmps.addr == rtmp.addr && rtmp.addr.port() != 0 {
            return invalid("rtmps.addr", "must differ from rtmp.addr");
        }
        if self
            .api
            .tokens
            .iter()
            .any(|t| crate::auth::parse_hash(t).is_none())
        {
            return invalid(
                "api.tokens",
                "holds an entry that is not sha256: and 64 hex digits; make one with `weir hash-key`",
            );
        }
        if self.api.addr.port() != 0 && [rtmp.addr, self.http.addr].contains(&self.api.addr) {
            return invalid("api.addr", "must differ from rtmp.addr and http.addr");
        }
        if self.http.addr == rtmp.addr && rtmp.addr.port() != 0 {
            return invalid("http.addr", "must differ from rtmp.addr");
        }
        let hls = &self.hls;
        if !(1..=60).contains(&hls.target_duration_secs) {
            return invalid("hls.target_duration_secs", "must be between 1 and 60");
        }
        if hls.min_segment_ms < 100 || hls.min_segment_ms >= hls.target_duration_secs * 1000 {
            return invalid(
                "hls.min_segment_ms",
                "must be at least 100 and below hls.target_duration_secs",
            );
        }
        if hls.part_ms != 0 && !(50..=2000).contains(&hls.part_ms) {
            return invalid(
                "hls.part_ms",
                "must be 0 (no Low-Latency HLS) or between 50 and 2000",
            );
        }
        if hls.part_ms >= hls.min_segment_ms {
            return invalid("hls.part_ms", "must be below hls.min_segment_ms");
        }
        for (app, rules) in &self.apps {
            let key = |k: &str| format!("apps.{app}.{k}");
            let signed = rules.publish == PublishRule::Signed || rules.play == PlayRule::Signed;
            if signed && self.auth.secrets.iter().all(String::is_empty) {
                return invalid_owned(
                    key(if rules.publish == PublishRule::Signed { "publish" } else { "play" }),
                    "is \"signed\" but auth.secrets has no secret; add one (a long random string shared with the backend that signs)",
                );
            }
            if rules.publish == PublishRule::Keys && rules.keys.is_empty() {
                return invalid_owned(
                    key("keys"),
                    "is empty but publish = \"keys\": nobody could publish; add keys (weir hash-key) or set publish = \"open\"",
                );
            }
            for (name, list) in [
                ("allow_publish", &rules.allow_publish),
                ("deny_publish", &rules.deny_publish),
                ("allow_play", &rules.allow_play),
                ("deny_play", &rules.deny_play),
            ] {
                if list
                    .iter()
                    .any(|c| crate::auth::cidr::Cidr::parse(c).is_none())
                {
                    return invalid_owned(
                        key(name),
                        "holds an entry that is no address or CIDR range (like 10.0.0.0/8, 2001:db8::/32, 192.0.2.7)",
                    );
                }
            }
            if rules.publish == PublishRule::Webhook && rules.on_publish.is_empty() {
                return invalid_owned(
                    key("on_publish"),
                    "is empty but publish = \"webhook\": set it to the URL that decides",
                );
            }
            if rules.play == PlayRule::Webhook && rules.on_play.is_empty() {
                return invalid_owned(
                    key("on_play"),
                    "is empty but play = \"webhook\": set it to the URL that decides",
                );
            }
            for (name, url) in [
                ("on_connect", &rules.on_connect),
                ("on_publish", &rules.on_publish),
                ("on_play", &rules.on_play),
                ("on_unpublish", &rules.on_unpublish),
                ("on_play_done", &rules.on_play_done),
                ("on_record_done", &rules.on_record_done),
            ] {
                let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
                if !url.is_empty() && (!scheme_ok || url.parse::<hyper::Uri>().is_err()) {
                    return invalid_owned(
                        key(name),
                        "is not an http:// or https:// URL (like http://127.0.0.1:8000/hooks/publish)",
                    );
                }
            }
            for target in &rules.push {
                if !is_rtmp_template(&target.url) {
                    return invalid_owned(
                        key("push"),
                        "holds a url that is not rtmp:// or rtmps://HOST[:PORT]/APP/STREAM (like rtmps://a.rtmp.youtube.com/live2/KEY or rtmp://10.0.0.2/live/{stream})",
                    );
                }
            }
            if !rules.pull.url.is_empty() && !is_rtmp_template(&rules.pull.url) {
                return invalid_owned(
                    key("pull.url"),
                    "is not rtmp:// or rtmps://HOST[:PORT]/APP/STREAM (like rtmp://origin:1935/{app}/{stream})",
                );
            }
            if rules.pull.idle_secs > MAX_SECS {
                return invalid_owned(key("pull.idle_secs"), "must be at most 86400 (one day)");
            }
            let record = &rules.record;
            if !(1..=60).contains(&record.fragment_secs) {
                return invalid_owned(key("record.fragment_secs"), "must be between 1 and 60");
            }
            if let Err(why) = crate::record::template::check(&record.path) {
                return invalid_owned(key("record.path"), why);
            }
            if !record.delete_after.trim().is_empty() && record.delete_after().is_none() {
                return invalid_owned(
                    key("record.delete_after"),
                    "is not a duration (like \"7d\", \"12h\" or \"90m\")",
                );
            }
            if record.dvr_secs > MAX_SECS {
                return invalid_owned(key("record.dvr_secs"), "must be at most 86400 (one day)");
            }
            if record.dvr_secs > 0 && record.format != Some(RecordFormat::Fmp4) {
                return invalid_owned(
                    key("record.dvr_secs"),
                    "needs record.format = \"fmp4\" (the DVR plays the recorded fMP4 fragments)",
                );
            }
            let timeout_ms = rules.webhook_timeout_ms;
            if timeout_ms < 100 || timeout_ms > rtmp.request_timeout_secs.saturating_mul(1000) {
                return invalid_owned(
                    key("webhook_timeout_ms"),
                    "must be at least 100 and at most rtmp.request_timeout_secs × 1000",
                );
            }
            if rules.webhook_cache_secs > MAX_SECS {
                return invalid_owned(key("webhook_cache_secs"), "must be at most 86400 (one day)");
            }
            for entry in &rules.keys {
                if crate::auth::parse_hash(&entry.hash).is_none() {
                    return invalid_owned(
                        key("keys"),
                        "holds a hash that is not sha256: and 64 hex digits; make one with `weir hash-key`",
                    );
                }
                if entry.stream.is_empty() || entry.stream.contains(['/', '?']) {
                    return invalid_owned(
                        key("keys"),
                        "holds a stream name that is empty or has / or ? in it",
                    );
                }
            }
        }
        if !(2..=100).contains(&hls.window) {
            return invalid("hls.window", "must be between 2 and 100");
        }
        if !(1..=MAX_SECS).contains(&hls.idle_secs) {
            return invalid("hls.idle_secs", "must be between 1 and 86400 (one day)");
        }
        if !(1..=MAX_SECS).contains(&self.shutdown.drain_secs) {
            return invalid(
                "shutdown.drain_secs",
                "must be between 1 and 86400 (one day)",
            );
        }
        let cluster = &self.cluster;
        if cluster.enabled()
            && !(cluster.redis_url.starts_with("redis://")
                || cluster.redis_url.starts_with("rediss://")
                || cluster.redis_url.starts_with("redis+unix://")
                || cluster.redis_url.starts_with("unix://"))
        {
            return invalid(
                "cluster.redis_url",
                "must be a redis:// (rediss:// for TLS, or unix://) URL, e.g. redis://127.0.0.1:6379",
            );
        }
        let tls_files = [
            ("cluster.redis_ca_file", &cluster.redis_ca_file),
            ("cluster.redis_cert_file", &cluster.redis_cert_file),
            ("cluster.redis_key_file", &cluster.redis_key_file),
        ];
        if let Some((key, _)) = tls_files.iter().find(|(_, file)| !file.is_empty()) {
            if !cluster.redis_url.starts_with("rediss://") {
                return invalid(
                    key,
                    "is for TLS to Redis: set cluster.redis_url to a rediss:// URL, or leave it empty",
                );
            }
        }
        if cluster.redis_cert_file.is_empty() != cluster.redis_key_file.is_empty() {
            return invalid(
                "cluster.redis_cert_file",
                "and cluster.redis_key_file go together: set both (a client certificate) or neither",
            );
        }
        if !cluster.node_id.is_empty()
            && !cluster
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return invalid(
                "cluster.node_id",
                "may hold only letters, digits, '-', '_' and '.'",
            );
        }
        let advertised = |url: &str, schemes: [&str; 2]| {
            url.is_empty() || schemes.iter().any(|s| url.starts_with(s))
        };
        if !advertised(&cluster.advertise_rtmp, ["rtmp://", "rtmps://"]) {
            return invalid(
                "cluster.advertise_rtmp",
                "must be rtmp://host:port (how the other nodes reach this one)",
            );
        }
        if !advertised(&cluster.advertise_http, ["http://", "https://"]) {
            return invalid(
                "cluster.advertise_http",
                "must be http://host:port (how the other nodes reach this one)",
            );
        }
        if cluster.key_prefix.is_empty()
            || cluster.key_prefix.len() > 64
            || cluster.key_prefix.contains(char::is_whitespace)
        {
            return invalid(
                "cluster.key_prefix",
                "must be 1 to 64 characters without spaces",
            );
        }
        if rtmp.drain_timeout_secs > MAX_SECS {
            return invalid("rtmp.drain_timeout_secs", "must be at most 86400 (one day)");
        }
        if self.streams.viewer_queue_frames < 16 {
            return invalid("streams.viewer_queue_frames", "must be at least 16");
        }
        if self.streams.max_added_latency_ms > 1000 {
            return invalid("streams.max_added_latency_ms", "must be at most 1000");
        }
        if let Some(ms) = self.streams.video_coalesce_ms {
            return invalid_owned(
                "streams.video_coalesce_ms".to_owned(),
                &format!(
                    "was replaced by streams.max_added_latency_ms, the latency budget \
                     (set max_added_latency_ms = {} for the same merged writes)",
                    ms.max(MERGE_FROM_MS)
                ),
            );
        }
        if self.streams.write_coalesce_ms.is_some() {
            return invalid(
                "streams.write_coalesce_ms",
                "was replaced by streams.max_added_latency_ms, the latency budget: audio \
                 rides with the next picture unless the budget is 0 (remove the key)",
            );
        }
        Ok(())
    }

    /// The effective configuration as commented TOML, ready to save as `weir.toml`: the
    /// values are serialized from `self`, the comments come from [`KEYS`].
    pub fn to_commented_toml(&self) -> String {
        let mut out = String::from(
            "# weir configuration. Every key is optional; these are the values in effect.\n",
        );
        let values = match toml::Value::try_from(self) {
            Ok(toml::Value::Table(table)) => table,
            _ => return out,
        };
        for (key, doc) in KEYS {
            let Some((section, name)) = key.split_once('.') else {
                let _ = writeln!(out, "\n# {doc}\n[{key}]");
                if *key == "apps" && !self.apps.is_empty() {
                    #[derive(Serialize)]
                    struct Apps<'a> {
                        apps: &'a std::collections::BTreeMap<String, AppRules>,
                    }
                    if let Ok(text) = toml::to_string(&Apps { apps: &self.apps }) {
                        out.push_str(&text);
                    }
                }
                continue;
            };
            let value = values
                .get(section)
                .and_then(|table| table.get(name))
                .map_or_else(String::new, ToString::to_string);
            let _ = writeln!(out, "# {doc}\n{name} = {value}");
        }
        out
    }
}

/// Whether `url`, with `{app}` and `{stream}` filled in, is an `rtmp://` or `rtmps://` URL
/// naming a stream (push targets, pull upstreams).
fn is_rtmp_template(url: &str) -> bool {
    let probe = url.replace("{app}", "app").replace("{stream}", "stream");
    weir_client::RtmpUrl::parse(&probe).is_ok_and(|u| !u.stream.is_empty())
}

/// Every section and key of the configuration with its description, in the order
/// `weir config` prints them: the one description the commented output is built from (a test
/// checks that it lists exactly the keys the config has).
pub const KEYS: &[(&str, &str)] = &[
    ("rtmp", "The RTMP listener and protocol limits."),
    ("rtmp.addr", "Address and port of the RTMP listener."),
    (
        "rtmp.chunk_size",
        "Outbound chunk size announced to every client.",
    ),
    (
        "rtmp.max_connections",
        "Connections held at once; more are refused with a log line.",
    ),
    (
        "rtmp.max_connections_per_ip",
        "Connections one client address may hold at once (RTMP, RTMPS and HTTP together); 0 = no limit.",
    ),
    (
        "rtmp.max_connection_rate_per_ip",
        "New connections one client address may open per second (RTMP, RTMPS and HTTP together); 0 = no limit.",
    ),
    (
        "rtmp.proxy_protocol",
        "Connections from proxy.trusted addresses to the RTMP and RTMPS listeners start with a PROXY protocol v1/v2 header naming the client.",
    ),
    (
        "rtmp.handshake_timeout_secs",
        "Seconds from accept to a complete connect command.",
    ),
    (
        "rtmp.idle_timeout_secs",
        "Seconds a publisher (or a connection doing nothing) may send nothing before it is closed.",
    ),
    (
        "rtmp.write_timeout_secs",
        "Seconds a write to a client may block before it is disconnected.",
    ),
    (
        "rtmp.request_timeout_secs",
        "Seconds the access policy may take to decide on a publish or play before it is refused.",
    ),
    (
        "rtmp.max_message_size",
        "Largest RTMP message accepted, in bytes (at most 16777215).",
    ),
    (
        "rtmp.max_chunk_streams",
        "Most chunk streams one connection may use at once.",
    ),
    (
        "rtmp.send_buffer_bytes",
        "Socket send buffer in bytes; 0 = kernel autotuning.",
    ),
    (
        "rtmp.recv_buffer_bytes",
        "Socket receive buffer in bytes; 0 = kernel autotuning.",
    ),
    (
        "rtmp.drain_timeout_secs",
        "Seconds clients asked to reconnect (E-RTMP ReconnectRequest) are still served at shutdown; 0 = close at once.",
    ),
    (
        "rtmp.reconnect_tc_url",
        "tcUrl sent with ReconnectRequest (another server); empty = the same address.",
    ),
    (
        "streams",
        "Per-stream buffering: GOP cache and viewer queues.",
    ),
    (
        "streams.gop_cache",
        "Keep the current GOP so new viewers start at once on a keyframe.",
    ),
    (
        "streams.gop_max_bytes",
        "Largest GOP kept, in bytes; a longer one is dropped until the next keyframe.",
    ),
    (
        "streams.gop_max_duration_ms",
        "Longest GOP kept, in milliseconds.",
    ),
    (
        "streams.viewer_queue_frames",
        "Frames queued per viewer; a viewer further behind skips to the next keyframe.",
    ),
    (
        "streams.max_viewer_lag_secs",
        "Seconds a viewer may stay behind the live edge before it is disconnected.",
    ),
    (
        "streams.max_added_latency_ms",
        "Latency budget: below 20 each picture is written at once; from 20 writes are merged (less CPU).",
    ),
    (
        "streams.max_bitrate",
        "Ingest bitrate (bits/s) a stream should stay under: above it, the health finding bitrate_over_limit; 0 = no limit.",
    ),
    ("rtmps", "RTMP over TLS (rtmps://); on when cert_file and key_file are set."),
    ("rtmps.addr", "Address and port of the RTMPS listener."),
    (
        "rtmps.cert_file",
        "PEM certificate chain (e.g. fullchain.pem); re-read for new connections when it changes.",
    ),
    ("rtmps.key_file", "PEM private key (e.g. privkey.pem)."),
    (
        "rtmps.certificates",
        "More certificates for other names on the port, as [{ cert_file = \"…\", key_file = \"…\" }]: a handshake gets the first valid for the name asked for (SNI), else cert_file.",
    ),
    ("http", "The HTTP listener: HTTP-FLV and WebSocket-FLV at /{app}/{stream}.flv."),
    ("http.addr", "Address and port of the HTTP listener."),
    (
        "http.flv_wait_secs",
        "Seconds an HTTP-FLV request for an unpublished stream waits for a publisher before 404; 0 = at once.",
    ),
    (
        "http.player_lib_dir",
        "Directory with hls.min.js, mpegts.js and dash.all.min.js for the player page at /; empty = pinned CDN URLs.",
    ),
    (
        "http.tls",
        "Serve HTTPS instead of HTTP on http.addr, with the [rtmps] certificate (re-read when it changes).",
    ),
    (
        "http.proxy_protocol",
        "Connections from proxy.trusted addresses to the HTTP listener start with a PROXY protocol v1/v2 header naming the client.",
    ),
    ("hls", "HLS at /{app}/{stream}/index.m3u8 (fMP4, Low-Latency) and /{app}/{stream}/ts/index.m3u8 (MPEG-TS); DASH at /{app}/{stream}/index.mpd."),
    (
        "hls.target_duration_secs",
        "EXT-X-TARGETDURATION in seconds: no segment is longer (a longer GOP is cut).",
    ),
    (
        "hls.min_segment_ms",
        "A segment ends at the first key frame after it is this long (ms).",
    ),
    (
        "hls.part_ms",
        "Low-Latency HLS part length (ms) of the fMP4 playlists; 0 turns Low-Latency HLS off.",
    ),
    ("hls.window", "Segments listed in a playlist (as many more stay downloadable)."),
    (
        "hls.idle_secs",
        "Seconds a stream's segmenter keeps running after the last HLS request.",
    ),
    (
        "hls.always",
        "Package every published stream from its first frame (HLS/DASH answer at once; costs CPU for streams nobody watches).",
    ),
    (
        "hls.dir",
        "Also write each stream's HLS/DASH files under this directory (CDN origin, plain web server); empty = memory only. Implies hls.always.",
    ),
    ("playback", "What players get of Enhanced RTMP streams (HEVC, AV1, VP9, Opus, FLAC, AC-3, several tracks)."),
    (
        "playback.multitrack",
        "Players that advertise E-RTMP Multitrack (capsEx) get every track; false: the default track only.",
    ),
    (
        "playback.unadvertised_codecs",
        "Players that list no codecs in connect get codecs beyond H.264/AAC/MP3: \"send\" or \"withhold\".",
    ),
    (
        "playback.app_multitrack",
        "multitrack per app, e.g. { simple = false }.",
    ),
    (
        "playback.app_unadvertised_codecs",
        "unadvertised_codecs per app, e.g. { legacy = \"withhold\" }.",
    ),
    ("log", "Logging."),
    ("log.level", "tracing filter: info, debug, weir=debug, ..."),
    (
        "log.format",
        "\"text\" (colours only on a terminal) or \"json\" (one object per line, for log shippers).",
    ),
    ("shutdown", "Draining on SIGTERM or POST /api/v1/drain."),
    (
        "shutdown.drain_secs",
        "The longest a drain waits for clients to leave before the rest are closed and weir exits.",
    ),
    ("cluster", "The origin/edge cluster: nodes share streams through Redis (docs/CLUSTER.md); off while redis_url is empty."),
    (
        "cluster.redis_url",
        "redis://host:port (rediss:// for TLS) of the Redis holding heartbeats and stream leases; empty: a single node.",
    ),
    (
        "cluster.redis_ca_file",
        "For rediss://: PEM file of the CAs Redis's certificate must chain to; empty: the system's roots.",
    ),
    (
        "cluster.redis_cert_file",
        "For rediss:// to a Redis asking for client certificates: this node's certificate (PEM).",
    ),
    ("cluster.redis_key_file", "The private key (PEM) of cluster.redis_cert_file."),
    ("cluster.node_id", "This node's unique name in the cluster; empty: the hostname."),
    (
        "cluster.advertise_rtmp",
        "rtmp://host:port the other nodes pull from; empty: the RTMP listener's address.",
    ),
    (
        "cluster.advertise_http",
        "http://host:port the other nodes reach this node's HTTP on; empty: the HTTP listener's address.",
    ),
    ("cluster.key_prefix", "Prefix of every Redis key (several clusters may share a Redis)."),
    ("api", "The admin listener: HTTP API under /api/v1 (OpenAPI at /api/v1/openapi.json) and Prometheus /metrics."),
    (
        "api.addr",
        "Address and port of the admin listener (loopback by default: never public by accident).",
    ),
    (
        "api.tokens",
        "Bearer tokens allowed on the admin listener, as hashes from `weir hash-key`; empty = no token needed.",
    ),
    ("publish", "A second publisher of a live stream."),
    (
        "publish.stale_secs",
        "A new publisher replaces the current one when that one has sent nothing for this long (an encoder reconnecting after a drop); 0 = never.",
    ),
    (
        "publish.takeover",
        "A new publisher always replaces the current one (the newest encoder wins).",
    ),
    ("auth", "Secrets shared with a web backend."),
    (
        "auth.secrets",
        "HMAC-SHA256 secrets for signed URLs (?expires=UNIX&sig=HEX): `weir sign` uses the first, all are accepted (rotation).",
    ),
    ("proxy", "Reverse proxies and TCP load balancers in front of weir."),
    (
        "proxy.trusted",
        "Addresses (CIDR) of proxies trusted to name the client: their X-Forwarded-For is read on HTTP, their PROXY headers where rtmp/http.proxy_protocol are on.",
    ),
    (
        "apps",
        "Who may publish and play, per application: [apps.NAME] (or [apps.default] for the others) with publish = \"open\" | \"keys\" | \"signed\" | \"webhook\", play = \"open\" | \"signed\" | \"webhook\", on_connect / on_publish / on_play / on_unpublish / on_play_done = \"http://…\" (webhooks), webhook_timeout_ms, webhook_on_error = \"deny\" | \"allow\", webhook_cache_secs, takeover, push = [{ url = \"rtmps://…/{stream}\" }] (relays), keys = [{ hash = \"sha256:…\", stream = \"alice\" }] (hash from `weir hash-key`), allow_publish / deny_publish / allow_play / deny_play = [\"10.0.0.0/8\", …], max_publishers, max_viewers_per_stream (0 = no limit).",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        assert_eq!(Config::default().rtmp.addr.port(), 1935);
    }

    #[test]
    fn commented_output_reads_back_to_the_same_config() {
        let mut config = Config::default();
        config.rtmp.chunk_size = 8192;
        config.streams.gop_cache = false;
        let text = config.to_commented_toml();
        assert!(text.contains("# Outbound chunk size"));
        assert_eq!(Config::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn apps_read_back_and_bad_keys_are_named() {
        let mut config = Config::default();
        config.apps.insert(
            "live".to_owned(),
            AppRules {
                publish: PublishRule::Keys,
                keys: vec![StreamKeyEntry {
                    hash: crate::auth::hash_key("sk_x"),
                    stream: "alice".to_owned(),
                }],
                ..AppRules::default()
            },
        );
        config.validate().unwrap();
        let text = config.to_commented_toml();
        assert_eq!(Config::from_toml(&text).unwrap(), config, "{text}");
        let mut bad = config.clone();
        bad.apps.get_mut("live").unwrap().keys[0].hash = "sk_x".to_owned();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("apps.live.keys") && err.contains("weir hash-key"),
            "{err}"
        );
        let mut empty = config.clone();
        empty.apps.get_mut("live").unwrap().keys.clear();
        assert!(empty
            .validate()
            .unwrap_err()
            .to_string()
            .contains("nobody could publish"));
        let err = Config::from_toml("[apps.live]\npublish = \"sometimes\"\n").unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }

    #[test]
    fn redis_tls_files_need_a_rediss_url_and_a_cert_needs_its_key() {
        let check = |toml: &str| {
            Config::from_toml(toml)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert!(check("[cluster]\nredis_url = \"rediss://r:6380\"\n").is_ok());
        assert!(check(
            "[cluster]\nredis_url = \"rediss://r:6380\"\nredis_ca_file = \"ca.pem\"\n\
             redis_cert_file = \"n.pem\"\nredis_key_file = \"n.key\"\n"
        )
        .is_ok());
        let err = check("[cluster]\nredis_url = \"redis://r:6379\"\nredis_ca_file = \"ca.pem\"\n")
            .unwrap_err();
        assert!(
            err.contains("cluster.redis_ca_file") && err.contains("rediss://"),
            "{err}"
        );
        let err =
            check("[cluster]\nredis_url = \"rediss://r:6380\"\nredis_cert_file = \"n.pem\"\n")
                .unwrap_err();
        assert!(err.contains("cluster.redis_key_file"), "{err}");
        let err = check("[cluster]\nredis_url = \"http://r:6379\"\n").unwrap_err();
        assert!(err.contains("cluster.redis_url"), "{err}");
    }

    #[test]
    fn key_table_lists_exactly_the_config_keys() {
        let toml::Value::Table(values) = toml::Value::try_from(Config::default()).unwrap() else {
            panic!("config is not a table");
        };
        let mut serialized = Vec::new();
        for (section, table) in &values {
            serialized.push(section.clone());
            for key in table.as_table().unwrap().keys() {
                serialized.push(format!("{section}.{key}"));
            }
        }
        let mut documented: Vec<String> = KEYS.iter().map(|(k, _)| (*k).to_owned()).collect();
        serialized.sort();
        documented.sort();
        assert_eq!(serialized, documented);
    }

    #[test]
    fn the_latency_budget_replaces_the_coalescing_keys() {
        let config = Config::from_toml("[streams]\nmax_added_latency_ms = 200\n").unwrap();
        assert_eq!(config.streams.merge_window(), Duration::from_millis(200));
        assert_eq!(
            config.streams.audio_hold(),
            Duration::from_millis(AUDIO_HOLD_MS)
        );
        let default = Config::default();
        assert_eq!(default.streams.merge_window(), Duration::ZERO);
        assert_eq!(
            default.streams.audio_hold(),
            Duration::from_millis(AUDIO_HOLD_MS)
        );
        let none = Config::from_toml("[streams]\nmax_added_latency_ms = 0\n").unwrap();
        assert_eq!(none.streams.audio_hold(), Duration::ZERO);
        let err = Config::from_toml("[streams]\nvideo_coalesce_ms = 100\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("streams.video_coalesce_ms")
                && text.contains("max_added_latency_ms = 100"),
            "{text}"
        );
        let err = Config::from_toml("[streams]\nwrite_coalesce_ms = 40\n").unwrap_err();
        assert!(err.to_string().contains("max_added_latency_ms"), "{err}");
        assert!(Config::from_toml("[streams]\nmax_added_latency_ms = 5000\n").is_err());
        // The commented output never writes the old keys.
        assert!(!default.to_commented_toml().contains("coalesce"));
    }

    #[test]
    fn readme_documents_every_key() {
        let readme = include_str!("../../../README.md");
        for (key, _) in KEYS.iter().filter(|(k, _)| k.contains('.')) {
            let name = key.rsplit('.').next().unwrap();
            assert!(readme.contains(name), "README.md does not document {key}");
        }
    }

    #[test]
    fn record_settings_are_checked() {
        let config = Config::from_toml(
            "[apps.live.record]\nformat = \"fmp4\"\nmax_file_secs = 600\ndelete_after = \"7d\"\n",
        )
        .unwrap();
        let record = &config.apps["live"].record;
        assert_eq!(record.format, Some(RecordFormat::Fmp4));
        assert_eq!(record.delete_after(), Some(Duration::from_secs(7 * 86_400)));
        for (toml, key) in [
            ("fragment_secs = 0", "apps.live.record.fragment_secs"),
            ("path = \"rec/{start}.mp4\"", "apps.live.record.path"),
            (
                "path = \"../{stream}/{start}.mp4\"",
                "apps.live.record.path",
            ),
            ("delete_after = \"soon\"", "apps.live.record.delete_after"),
            ("format = \"mkv\"", "format"),
        ] {
            let err = Config::from_toml(&format!("[apps.live.record]\n{toml}\n")).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[rtmp]\nchunk_sise = 4096\n").unwrap_err();
        assert!(err.to_string().contains("chunk_sise"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Config::from_toml("[rtmp]\naddr = 1935\n").unwrap_err();
        assert!(err.to_string().contains("addr"), "{err}");
    }

    #[test]
    fn out_of_range_value_is_named() {
        let err = Config::from_toml("[rtmp]\nchunk_size = 1\n").unwrap_err();
        assert!(err.to_string().contains("rtmp.chunk_size"), "{err}");
        let err = Config::from_toml("[rtmp]\nrequest_timeout_secs = 9000000000000\n").unwrap_err();
        assert!(
            err.to_string().contains("rtmp.request_timeout_secs"),
            "{err}"
        );
    }

    #[test]
    fn playback_policy_per_app() {
        let config = Config::from_toml(
            "[playback]\nunadvertised_codecs = \"send\"\n\
             app_multitrack = { simple = false }\n\
             [playback.app_unadvertised_codecs]\nlegacy = \"withhold\"\n",
        )
        .unwrap();
        let playback = &config.playback;
        assert_eq!(playback.unadvertised_for("legacy"), Unadvertised::Withhold);
        assert_eq!(playback.unadvertised_for("live"), Unadvertised::Send);
        assert!(!playback.multitrack_for("simple"));
        assert!(playback.multitrack_for("live"));
        let err = Config::from_toml("[playback]\nunadvertised_codecs = \"maybe\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unadvertised_codecs") || err.contains("maybe"),
            "{err}"
        );
    }
}
