//! Prometheus metrics (`GET /metrics` on the admin listener), with prometheus-client.
//!
//! Two kinds: counters of events, kept in [`Metrics`] (owned by the hub, so every part of the
//! server that sees the hub counts without a global), and gauges read from the hub and the
//! connection registry at each scrape ([`Snapshot`]). Label values come from small fixed
//! sets (protocols, reasons, events), except the per-stream gauges, which cover at most
//! [`STREAM_LABELS`] streams (the ones with the most viewers, then the highest bitrate);
//! `weir_streams_unlabelled` says how many were left out, so a server with 10,000 streams
//! still answers a scrape of bounded size.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::hub::Hub;
use crate::registry::{Protocol, Registry as Connections, Role};

/// Streams given their own labels at most.
pub const STREAM_LABELS: usize = 50;

/// Label pairs.
type Labels = Vec<(&'static str, String)>;

/// Event counters.
#[derive(Debug)]
pub struct Metrics {
    /// Connections accepted, by protocol.
    pub accepted: Family<Labels, Counter>,
    /// Connections refused before any protocol, by protocol and reason (`max_connections`,
    /// `per_ip`, `rate`, `proxy_header`, `tls`, `handshake_timeout`).
    pub refused: Family<Labels, Counter>,
    /// Connects, publishes and plays the access policy refused, by action and protocol.
    pub denied: Family<Labels, Counter>,
    /// Connections ended, by protocol, role and reason class.
    pub disconnects: Family<Labels, Counter>,
    /// Webhook calls by event and outcome (`allow`, `deny`, `error`).
    pub webhook_calls: Family<Labels, Counter>,
    /// Webhook round trips, seconds, by event.
    pub webhook_seconds: Family<Labels, Histogram>,
    /// HLS and DASH requests answered, by kind (`playlist`, `segment`, `part`, `init`, `mpd`)
    /// and status class.
    pub hls_requests: Family<Labels, Counter>,
    /// HLS/DASH segments made (every rendition and container).
    pub hls_segments: Counter,
    /// Low-Latency HLS parts made (every rendition).
    pub hls_parts: Counter,
    /// Media bytes handed to push relay targets.
    pub relay_bytes: Counter,
    /// Push relay connections that failed (each followed by a retry while the stream is live).
    pub relay_failures: Counter,
    /// Media bytes pulled from upstreams (edge mode).
    pub pull_bytes: Counter,
    /// Pull connections that failed (each followed by a retry while someone watches).
    pub pull_failures: Counter,
    /// Bytes written to recordings.
    pub record_bytes: Counter,
    /// Recording files closed.
    pub record_files: Counter,
    /// Recordings stopped by a write error (disk full, permissions).
    pub record_errors: Counter,
    /// Recordings deleted by `record.delete_after`.
    pub record_deleted: Counter,
    /// Payload bytes received from publishers.
    pub bytes_in: Counter,
    /// Bytes written to viewers (reported by them about once a second).
    pub bytes_out: Counter,
    /// Frames received, by kind.
    pub frames_in: Family<Labels, Counter>,
    /// Frames written to viewers.
    pub frames_out: Counter,
    /// Frames a lagging viewer skipped (counted when it leaves).
    pub frames_skipped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            accepted: Family::default(),
            refused: Family::default(),
            denied: Family::default(),
            disconnects: Family::default(),
            webhook_calls: Family::default(),
            webhook_seconds: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
            }),
            hls_requests: Family::default(),
            hls_segments: Counter::default(),
            hls_parts: Counter::default(),
            relay_bytes: Counter::default(),
            relay_failures: Counter::default(),
            pull_bytes: Counter::default(),
            pull_failures: Counter::default(),
            record_bytes: Counter::default(),
            record_files: Counter::default(),
            record_errors: Counter::default(),
            record_deleted: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            frames_in: Family::default(),
            frames_out: Counter::default(),
            frames_skipped: Counter::default(),
        }
    }
}

/// A label set.
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Metrics {
    /// Counts one event of `family` with `pairs`.
    pub fn count(family: &Family<Labels, Counter>, pairs: &[(&'static str, &str)]) {
        family.get_or_create(&labels(pairs)).inc();
    }
}

/// The registry a scrape encodes: the event counters and the snapshot collector.
pub(crate) fn registry(
    hub: &Arc<Hub>,
    connections: &Arc<Connections>,
    relays: Vec<Arc<crate::relay::RelayState>>,
) -> Registry {
    let metrics = hub.metrics();
    let mut registry = Registry::with_prefix("weir");
    registry.register(
        "connections_accepted",
        "Connections accepted, by protocol",
        metrics.accepted.clone(),
    );
    registry.register(
        "connections_refused",
        "Connections refused before any protocol, by protocol and reason",
        metrics.refused.clone(),
    );
    registry.register(
        "requests_denied",
        "Connects, publishes and plays the access rules refused, by action and protocol",
        metrics.denied.clone(),
    );
    registry.register(
        "disconnects",
        "Connections ended, by protocol, role and reason",
        metrics.disconnects.clone(),
    );
    registry.register(
        "webhook_calls",
        "Webhook calls by event and outcome",
        metrics.webhook_calls.clone(),
    );
    registry.register(
        "webhook_duration_seconds",
        "Webhook round trips by event",
        metrics.webhook_seconds.clone(),
    );
    registry.register(
        "hls_requests",
        "HLS and DASH requests answered, by kind and status class",
        metrics.hls_requests.clone(),
    );
    registry.register(
        "hls_segments",
        "HLS/DASH segments made",
        metrics.hls_segments.clone(),
    );
    registry.register(
        "hls_parts",
        "Low-Latency HLS parts made",
        metrics.hls_parts.clone(),
    );
    registry.register(
        "relay_bytes",
        "Media bytes handed to push relay targets",
        metrics.relay_bytes.clone(),
    );
    registry.register(
        "relay_failures",
        "Push relay connections that failed",
        metrics.relay_failures.clone(),
    );
    registry.register(
        "pull_bytes",
        "Media bytes pulled from upstreams (edge mode)",
        metrics.pull_bytes.clone(),
    );
    registry.register(
        "pull_failures",
        "Pull connections that failed",
        metrics.pull_failures.clone(),
    );
    registry.register(
        "record_bytes",
        "Bytes written to recordings",
        metrics.record_bytes.clone(),
    );
    registry.register(
        "record_files",
        "Recording files closed",
        metrics.record_files.clone(),
    );
    registry.register(
        "record_errors",
        "Recordings stopped by a write error (disk full, permissions)",
        metrics.record_errors.clone(),
    );
    registry.register(
        "record_deleted",
        "Recordings deleted by record.delete_after",
        metrics.record_deleted.clone(),
    );
    registry.register(
        "ingest_bytes",
        "Payload bytes received from publishers",
        metrics.bytes_in.clone(),
    );
    registry.register(
        "egress_bytes",
        "Bytes written to viewers",
        metrics.bytes_out.clone(),
    );
    registry.register(
        "frames_in",
        "Frames received from publishers, by kind",
        metrics.frames_in.clone(),
    );
    registry.register(
        "frames_out",
        "Frames written to viewers",
        metrics.frames_out.clone(),
    );
    registry.register(
        "frames_skipped",
        "Frames lagging viewers skipped",
        metrics.frames_skipped.clone(),
    );
    registry.register_collector(Box::new(Snapshot {
        hub: Arc::clone(hub),
        connections: Arc::clone(connections),
        relays,
    }));
    registry
}

/// Gauges read at each scrape.
struct Snapshot {
    hub: Arc<Hub>,
    connections: Arc<Connections>,
    relays: Vec<Arc<crate::relay::RelayState>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

/// Encodes one gauge family built on the spot.
fn gauge_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: Vec<(Labels, f64)>,
) -> Result<(), std::fmt::Error> {
    let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Connections by protocol and state.
        let mut by_state: Vec<(Labels, f64)> = Vec::new();
        for info in self.connections.list() {
            let state = match info.role {
                Role::Connecting => "connecting",
                Role::Connected { .. } => "connected",
                Role::Publishing(_) => "publishing",
                Role::Playing(_) => "playing",
            };
            let key = labels(&[("protocol", info.protocol.as_str()), ("state", state)]);
            match by_state.iter_mut().find(|(l, _)| *l == key) {
                Some((_, n)) => *n += 1.0,
                None => by_state.push((key, 1.0)),
            }
        }
        gauge_family(
            &mut encoder,
            "connections",
            "Open connections by protocol and state",
            by_state,
        )?;

        let mut streams = self.hub.stats();
        streams.retain(|s| s.published || s.viewer_count() > 0);
        let published = streams.iter().filter(|s| s.published).count();
        let gauge = ConstGauge::new(published as i64);
        gauge.encode(encoder.encode_descriptor(
            "streams",
            "Streams with a live publisher",
            None,
            gauge.metric_type(),
        )?)?;
        let viewers: Vec<(Labels, f64)> = Protocol::ALL
            .iter()
            .map(|p| {
                let n: usize = streams
                    .iter()
                    .map(|s| {
                        s.viewers
                            .iter()
                            .find(|(q, _)| q == p)
                            .map_or(0, |(_, n)| *n)
                    })
                    .sum();
                (labels(&[("protocol", p.as_str())]), n as f64)
            })
            .collect();
        gauge_family(&mut encoder, "viewers", "Viewers by protocol", viewers)?;

        // Per-stream gauges for the busiest streams only.
        streams.sort_by(|a, b| {
            (b.viewer_count(), b.bitrate_10s).cmp(&(a.viewer_count(), a.bitrate_10s))
        });
        let left_out = streams.len().saturating_sub(STREAM_LABELS);
        streams.truncate(STREAM_LABELS);
        let per_stream = |f: &dyn Fn(&crate::stats::StreamStats) -> Option<f64>| {
            streams
                .iter()
                .filter_map(|s| Some((labels(&[("stream", &s.path)]), f(s)?)))
                .collect::<Vec<_>>()
        };
        gauge_family(
            &mut encoder,
            "stream_ingest_bitrate_bps",
            "Ingest bitrate over 10 s, bits per second (busiest streams)",
            per_stream(&|s| s.published.then_some(s.bitrate_10s as f64)),
        )?;
        gauge_family(
            &mut encoder,
            "stream_viewers",
            "Viewers of a stream (busiest streams)",
            per_stream(&|s| Some(s.viewer_count() as f64)),
        )?;
        gauge_family(
            &mut encoder,
            "stream_fps",
            "Measured frame rate of the default video track (busiest streams)",
            per_stream(&|s| {
                s.tracks
                    .iter()
                    .find(|t| t.kind == weir_media::TrackKind::Video)
                    .and_then(weir_media::TrackInfo::frame_rate)
            }),
        )?;
        gauge_family(
            &mut encoder,
            "stream_keyframe_interval_seconds",
            "Mean key frame interval of the default video track (busiest streams)",
            per_stream(&|s| s.keyframe_interval.map(|d| d.as_secs_f64())),
        )?;
        let mut findings = Vec::new();
        for s in &streams {
            for finding in &s.health {
                findings.push((
                    labels(&[
                        ("stream", &s.path),
                        ("code", finding.code),
                        ("severity", finding.severity.as_str()),
                    ]),
                    1.0,
                ));
            }
        }
        gauge_family(
            &mut encoder,
            "stream_health_findings",
            "Health findings now present (1 per stream and code; busiest streams)",
            findings,
        )?;
        let connected = self
            .relays
            .iter()
            .filter(|r| r.connected.load(std::sync::atomic::Ordering::Relaxed))
            .count();
        gauge_family(
            &mut encoder,
            "relays",
            "Push relays by state",
            vec![
                (labels(&[("state", "connected")]), connected as f64),
                (
                    labels(&[("state", "retrying")]),
                    (self.relays.len() - connected) as f64,
                ),
            ],
        )?;
        let gauge = ConstGauge::new(left_out as i64);
        gauge.encode(encoder.encode_descriptor(
            "streams_unlabelled",
            "Streams left out of the per-stream gauges (beyond the busiest)",
            None,
            gauge.metric_type(),
        )?)?;
        Ok(())
    }
}

/// The cluster's gauges and counters (`[cluster]` on).
struct ClusterGauges(Arc<crate::cluster::Cluster>);

impl std::fmt::Debug for ClusterGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterGauges").finish_non_exhaustive()
    }
}

impl Collector for ClusterGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::counter::ConstCounter;
        use std::sync::atomic::Ordering;
        let cluster = &self.0;
        let node = labels(&[("node", cluster.node_id())]);
        gauge_family(
            &mut encoder,
            "cluster_redis_up",
            "Whether the last call to the cluster's Redis succeeded",
            vec![(node.clone(), if cluster.store_up() { 1.0 } else { 0.0 })],
        )?;
        gauge_family(
            &mut encoder,
            "cluster_redis_latency_seconds",
            "Round trip of the last call to Redis (a heartbeat, once a second)",
            vec![(node.clone(), cluster.store_latency().as_secs_f64())],
        )?;
        gauge_family(
            &mut encoder,
            "cluster_leases",
            "Stream leases this node holds (streams it is the origin of)",
            vec![(node.clone(), cluster.held().len() as f64)],
        )?;
        gauge_family(
            &mut encoder,
            "cluster_pulls",
            "Streams this node pulls from other nodes",
            vec![(node, cluster.pulled().len() as f64)],
        )?;
        for (name, help, value) in [
            (
                "cluster_redis_calls",
                "Calls to the cluster's Redis",
                cluster.store_calls.load(Ordering::Relaxed),
            ),
            (
                "cluster_redis_errors",
                "Calls to the cluster's Redis that failed",
                cluster.store_errors.load(Ordering::Relaxed),
            ),
            (
                "cluster_fenced",
                "Leases this node lost to a newer owner (its copy of the stream closed)",
                cluster.fenced.load(Ordering::Relaxed),
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn scrape(State(admin): State<Arc<crate::api::Admin>>) -> Response {
    let context = &admin.context;
    let mut registry = registry(&context.hub, &context.registry, context.relays.all());
    if let Some(cluster) = &context.cluster {
        registry.register_collector(Box::new(ClusterGauges(Arc::clone(cluster))));
    }
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n").into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamsConfig;

    #[test]
    fn ten_thousand_streams_give_bounded_label_sets() {
        let hub = Arc::new(Hub::new(StreamsConfig::default()));
        let connections = Arc::new(Connections::new());
        let mut publishers = Vec::new();
        for i in 0..10_000 {
            let publisher = hub.publish(&format!("live/s{i}")).unwrap();
            publisher.send(weir_media::Frame::video(
                0,
                bytes::Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
            ));
            publishers.push(publisher);
        }
        let registry = registry(&hub, &connections, Vec::new());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let labelled = text.lines().filter(|l| l.contains("stream=\"")).count();
        // Four per-stream gauges (health findings: none here), each for the busiest streams.
        assert!(labelled <= 4 * STREAM_LABELS, "{labelled} labelled samples");
        assert!(labelled >= STREAM_LABELS, "{labelled} labelled samples");
        assert!(
            text.contains(&format!(
                "weir_streams_unlabelled {}",
                10_000 - STREAM_LABELS
            )),
            "{}",
            &text[..text.len().min(2000)]
        );
        assert!(text.contains("weir_streams 10000"));
        assert!(text.ends_with("# EOF\n"));
    }
}
