//! The stream hub: live streams by `app/name`, each with at most one publisher and any number
//! of subscribers.
//!
//! A stream's publisher pushes frames under a short per-stream lock that does two things: add
//! the frame to the GOP cache and put it in a bounded broadcast ring (refcount clones only, no
//! payload copy). A subscriber takes, under the same lock, a snapshot of the cache and a
//! receiver on the ring, so it gets every frame exactly once: the cached ones, then live.
//!
//! Queue policy (docs/ARCHITECTURE.md, "Queues and the lag policy"): the ring holds `viewer_queue_frames` packets. A subscriber
//! that falls further behind loses the oldest packets (the receiver reports how many) and must
//! skip to the next keyframe; the publisher never waits for anyone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use weir_media::{Frame, GopCache, GopLimits, TrackInfo, TrackTable};

use crate::config::StreamsConfig;
use crate::registry::Protocol;
use crate::stats::{IngestCounters, StreamStats};

/// What travels from a publisher to its subscribers.
#[derive(Clone, Debug)]
pub enum Packet {
    /// A media or metadata frame.
    Frame(Frame),
    /// Audio frames that waited for the next video frame, then that frame, in order: one
    /// wake-up of every subscriber instead of one per audio frame.
    Batch(Arc<[Frame]>),
    /// The publisher started (a subscriber that waited is told so).
    PublisherStarted,
    /// The publisher left; the stream stays, waiting for the next one.
    PublisherLeft,
    /// The publisher was replaced by a new one of the same stream (publisher takeover): its
    /// frames follow at once, so players stay as they are.
    PublisherReplaced,
}

/// Why a publish was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// Someone is already publishing this stream.
    #[error("stream {0} is already being published")]
    AlreadyPublishing(String),
}

struct StreamState {
    publisher: Option<u64>,
    /// What the current publisher sent.
    ingest: Option<IngestCounters>,
    gop: GopCache,
    /// The current publisher's tracks.
    tracks: TrackTable,
    /// Audio frames waiting to travel with the next video frame.
    held: Vec<Frame>,
    /// The current publisher has sent video.
    has_video: bool,
    /// The current publisher is being replaced (its departure is a hand-over, not an end).
    handing_over: bool,
}

impl StreamState {
    /// Caches and broadcasts `frames` as one packet.
    fn release(&mut self, ring: &broadcast::Sender<Packet>, frames: Vec<Frame>, gop_cache: bool) {
        for frame in &frames {
            if gop_cache
                || frame.info.is_sequence_header
                || frame.kind == weir_media::MediaKind::Data
            {
                self.gop.push(frame);
            }
        }
        let packet = match <[Frame; 1]>::try_from(frames) {
            Ok([frame]) => Packet::Frame(frame),
            Err(frames) => Packet::Batch(frames.into()),
        };
        // An error only means nobody is subscribed.
        let _ = ring.send(packet);
    }
}

/// One live stream.
pub struct Stream {
    key: String,
    state: Mutex<StreamState>,
    ring: broadcast::Sender<Packet>,
    /// Viewers by protocol ([`Protocol::index`]).
    viewers: [AtomicUsize; Protocol::ALL.len()],
    /// What viewers reported writing.
    bytes_out: AtomicU64,
    frames_out: AtomicU64,
}

impl Stream {
    /// `app/name`.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn lock(&self) -> MutexGuard<'_, StreamState> {
        // A panic while holding the lock cannot leave the cache in a state worse than stale.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a publisher is live.
    pub fn is_published(&self) -> bool {
        self.lock().publisher.is_some()
    }

    /// Subscribers currently attached.
    pub fn subscriber_count(&self) -> usize {
        self.ring.receiver_count()
    }

    /// A snapshot of the stream's state and counters.
    pub fn stats(&self) -> StreamStats {
        self.stats_at(Instant::now())
    }

    /// [`Stream::stats`] with bitrates and durations as of `now`.
    pub fn stats_at(&self, now: Instant) -> StreamStats {
        let state = self.lock();
        let ingest = state.ingest.as_ref();
        let count = |f: fn(&IngestCounters) -> u64| ingest.map_or(0, f);
        StreamStats {
            path: self.key.clone(),
            published: state.publisher.is_some(),
            publisher_since: ingest.map(|i| i.since),
            published_for: ingest.map(|i| now.saturating_duration_since(i.started)),
            idle_for: ingest.map(|i| now.saturating_duration_since(i.last_input)),
            bytes_in: count(|i| i.bytes),
            video_frames_in: count(|i| i.video_frames),
            audio_frames_in: count(|i| i.audio_frames),
            keyframes_in: count(|i| i.keyframes),
            bitrate_1s: ingest.map_or(0, |i| i.meter.bits_per_second(now, Duration::from_secs(1))),
            bitrate_10s: ingest
                .map_or(0, |i| i.meter.bits_per_second(now, Duration::from_secs(10))),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            viewers: Protocol::ALL
                .iter()
                .map(|p| (*p, self.viewers[p.index()].load(Ordering::Relaxed)))
                .collect(),
            tracks: state.tracks.tracks().to_vec(),
            track_rates: ingest.map_or_else(Vec::new, |i| i.track_rates.rates(now)),
            keyframe_interval: ingest
                .and_then(|i| i.keyframe_interval_ms)
                .map(|ms| Duration::from_millis(u64::from(ms))),
            health: ingest.map_or_else(Vec::new, |i| i.health.findings(now)),
        }
    }

    /// The current publisher's tracks (empty when nobody publishes).
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.lock().tracks.tracks().to_vec()
    }
}

/// The frame rate an `onMetaData` body declares (`framerate`, or `fps`).
fn declared_fps(payload: &[u8]) -> Option<f64> {
    let values = weir_rtmp::amf0::decode_all(payload, &weir_rtmp::amf0::Limits::default()).ok()?;
    let properties = values.get(1)?.properties()?;
    properties
        .iter()
        .find(|(key, _)| key == "framerate" || key == "fps")
        .and_then(|(_, value)| value.as_number())
        .filter(|fps| fps.is_finite() && *fps > 0.0 && *fps <= 1000.0)
}

/// All streams of the server.
pub struct Hub {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    config: StreamsConfig,
    next_publisher: std::sync::atomic::AtomicU64,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Hub {
    /// An empty hub.
    pub fn new(config: StreamsConfig) -> Self {
        Self::with_metrics(config, Arc::default())
    }

    /// An empty hub counting events in `metrics`.
    pub fn with_metrics(config: StreamsConfig, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            streams: Mutex::new(HashMap::new()),
            config,
            next_publisher: std::sync::atomic::AtomicU64::new(1),
            metrics,
        }
    }

    /// The server's event counters (Prometheus).
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn stream(&self, key: &str) -> Arc<Stream> {
        let mut streams = self.streams();
        streams
            .entry(key.to_owned())
            .or_insert_with(|| {
                let (ring, _) = broadcast::channel(self.config.viewer_queue_frames);
                Arc::new(Stream {
                    key: key.to_owned(),
                    state: Mutex::new(StreamState {
                        ingest: None,
                        held: Vec::new(),
                        has_video: false,
                        handing_over: false,
                        publisher: None,
                        tracks: TrackTable::new(),
                        gop: GopCache::new(GopLimits {
                            max_bytes: self.config.gop_max_bytes,
                            max_duration_ms: self.config.gop_max_duration_ms,
                        }),
                    }),
                    ring,
                    viewers: Default::default(),
                    bytes_out: AtomicU64::new(0),
                    frames_out: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Removes a stream nobody uses any more.
    fn release(&self, stream: &Arc<Stream>) {
        let mut streams = self.streams();
        // Under the map lock, where `stream()` hands out clones: two references (the map's
        // and the caller's) mean nobody is between `stream()` and publish/subscribe.
        let unused = Arc::strong_count(stream) <= 2
            && stream.lock().publisher.is_none()
            && stream.ring.receiver_count() == 0;
        if unused {
            if let Some(current) = streams.get(&stream.key) {
                if Arc::ptr_eq(current, stream) {
                    streams.remove(&stream.key);
                }
            }
        }
    }

    /// Marks the current publisher of `key` as being replaced (publisher takeover): when it
    /// leaves, subscribers are told of a hand-over, not an end.
    pub fn hand_over(&self, key: &str) {
        if let Some(stream) = self.streams().get(key) {
            let mut state = stream.lock();
            if state.publisher.is_some() {
                state.handing_over = true;
            }
        }
    }

    /// Claims `key` for a publisher.
    pub fn publish(self: &Arc<Self>, key: &str) -> Result<Publisher, PublishError> {
        let stream = self.stream(key);
        let id = self
            .next_publisher
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut state = stream.lock();
            if state.publisher.is_some() {
                drop(state);
                self.release(&stream);
                return Err(PublishError::AlreadyPublishing(key.to_owned()));
            }
            state.publisher = Some(id);
            state.ingest = Some(IngestCounters::with_health(
                Instant::now(),
                weir_media::health::HealthConfig {
                    max_bitrate_bps: self.config.max_bitrate,
                    ..weir_media::health::HealthConfig::default()
                },
            ));
            state.gop.clear();
            state.tracks.clear();
            state.held.clear();
            state.has_video = false;
            let _ = stream.ring.send(Packet::PublisherStarted);
        }
        Ok(Publisher {
            hub: Arc::clone(self),
            stream,
            gop_cache: self.config.gop_cache,
            audio_hold_ms: self.config.audio_hold().as_millis() as u32,
            frames_in: ["audio", "video", "data"].map(|kind| {
                self.metrics
                    .frames_in
                    .get_or_create(&crate::metrics::labels(&[("kind", kind)]))
                    .clone()
            }),
        })
    }

    /// Subscribers attached to `key` (viewers and outputs), 0 for an unknown stream.
    pub fn subscriber_count(&self, key: &str) -> usize {
        self.streams()
            .get(key)
            .map_or(0, |stream| stream.subscriber_count())
    }

    /// Attaches a subscriber to `key` (the stream need not be published yet). It is not
    /// counted as a viewer: outputs with viewers use [`Hub::subscribe_viewer`].
    pub fn subscribe(self: &Arc<Self>, key: &str) -> Subscription {
        self.subscribe_as(key, None)
    }

    /// Attaches a viewer (counted by protocol in the stream's stats) to `key`.
    pub fn subscribe_viewer(self: &Arc<Self>, key: &str, protocol: Protocol) -> Subscription {
        self.subscribe_as(key, Some(protocol))
    }

    fn subscribe_as(self: &Arc<Self>, key: &str, protocol: Option<Protocol>) -> Subscription {
        let stream = self.stream(key);
        if let Some(protocol) = protocol {
            stream.viewers[protocol.index()].fetch_add(1, Ordering::Relaxed);
        }
        let (snapshot, receiver, published) = {
            let state = stream.lock();
            (
                state.gop.snapshot(),
                stream.ring.subscribe(),
                state.publisher.is_some(),
            )
        };
        Subscription {
            hub: Arc::clone(self),
            stream,
            receiver: Some(receiver),
            snapshot,
            published,
            protocol,
        }
    }

    /// A snapshot of one stream by `app/name`.
    pub fn stream_stats(&self, key: &str) -> Option<StreamStats> {
        // Under the map lock, without cloning the stream: a clone held across a publisher's
        // or viewer's departure would keep `release` from removing the stream.
        self.streams().get(key).map(|stream| stream.stats())
    }

    /// Snapshots of every stream (published or with waiting viewers), ordered by key.
    pub fn stats(&self) -> Vec<StreamStats> {
        let now = Instant::now();
        let mut stats: Vec<StreamStats> =
            self.streams().values().map(|s| s.stats_at(now)).collect();
        stats.sort_by(|a, b| a.path.cmp(&b.path));
        stats
    }

    /// Number of streams (published or with waiting subscribers).
    pub fn stream_count(&self) -> usize {
        self.streams().len()
    }

    /// Keys of the streams that have a publisher.
    pub fn published_keys(&self) -> Vec<String> {
        self.streams()
            .values()
            .filter(|s| s.is_published())
            .map(|s| s.key.clone())
            .collect()
    }
}

/// The right to publish one stream; dropping it ends the publication.
pub struct Publisher {
    hub: Arc<Hub>,
    stream: Arc<Stream>,
    gop_cache: bool,
    /// Media time audio may wait for the next video frame ([`crate::config::AUDIO_HOLD_MS`],
    /// 0 when `streams.max_added_latency_ms` is 0).
    audio_hold_ms: u32,
    /// The `weir_frames_in` counters by [`MediaKind`] (audio, video, data), looked up once.
    frames_in: [prometheus_client::metrics::counter::Counter; 3],
}

impl Publisher {
    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.stream.key
    }

    /// Sends a frame to the cache and every subscriber. Never waits for a subscriber.
    ///
    /// On a stream with video, audio frames wait (at most [`crate::config::AUDIO_HOLD_MS`] of
    /// media time, unless `streams.max_added_latency_ms` is 0) and go out together with the next video frame, so subscribers wake once per
    /// picture rather than once per frame. Audio-only streams send every frame at once.
    pub fn send(&self, frame: Frame) {
        self.send_at(frame, Instant::now());
    }

    /// [`Publisher::send`] for a frame received at `now` (counted in the stream's stats).
    ///
    /// An E-RTMP message that players without Multitrack support cannot read as it is (a
    /// Multitrack message, enhanced H.264 or AAC) travels together with its single-track form,
    /// built here once for all of them ([`Frame::with_single_track_form`]); each viewer takes
    /// the form meant for it.
    pub fn send_at(&self, frame: Frame, now: Instant) {
        use weir_media::MediaKind;
        let (frame, copy) = frame.with_single_track_form();
        let metrics = &self.hub.metrics;
        metrics.bytes_in.inc_by(frame.payload.len() as u64);
        if let Some(counter) = self.frames_in.get(frame.kind as usize) {
            counter.inc();
        }
        let declared_fps = (frame.kind == MediaKind::Data && frame.info.is_metadata)
            .then(|| declared_fps(&frame.payload))
            .flatten();
        let mut state = self.stream.lock();
        if let Some(ingest) = state.ingest.as_mut() {
            ingest.count(&frame, now);
            if declared_fps.is_some() {
                ingest.health.set_declared_fps(declared_fps);
            }
        }
        state.tracks.observe(&frame);
        let StreamState { ingest, tracks, .. } = &mut *state;
        if let Some(ingest) = ingest.as_mut() {
            ingest.track_rates.update(tracks.tracks(), now);
        }
        if frame.kind == MediaKind::Video {
            state.has_video = true;
        }
        let holdable = frame.kind == MediaKind::Audio
            && !frame.info.is_sequence_header
            && state.has_video
            && self.audio_hold_ms > 0;
        if holdable {
            let waited = state
                .held
                .first()
                .map_or(0, |first| frame.timestamp.wrapping_sub(first.timestamp));
            // A timestamp going backwards reads as a huge wait and releases at once.
            if waited < self.audio_hold_ms {
                state.held.extend(copy);
                state.held.push(frame);
                return;
            }
        }
        let mut frames = std::mem::take(&mut state.held);
        // The copy first: the GOP cache starts a GOP on the default track's single-track key
        // frame, and the original belongs to that GOP.
        frames.extend(copy);
        frames.push(frame);
        state.release(&self.stream.ring, frames, self.gop_cache);
    }

    /// Current number of subscribers.
    pub fn subscriber_count(&self) -> usize {
        self.stream.subscriber_count()
    }

    /// The stream's state and counters.
    pub fn stats(&self) -> StreamStats {
        self.stream.stats()
    }

    /// The tracks published so far: codec, configuration, counters.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.stream.tracks()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        {
            let mut state = self.stream.lock();
            let held = std::mem::take(&mut state.held);
            if !held.is_empty() {
                // The last audio frames still go to the subscribers before the goodbye.
                state.release(&self.stream.ring, held, false);
            }
            state.publisher = None;
            state.ingest = None;
            state.gop.clear();
            state.tracks.clear();
            let packet = if std::mem::take(&mut state.handing_over) {
                Packet::PublisherReplaced
            } else {
                Packet::PublisherLeft
            };
            let _ = self.stream.ring.send(packet);
        }
        self.hub.release(&self.stream);
    }
}

/// A subscriber's view of one stream: first the cached snapshot, then live packets.
pub struct Subscription {
    hub: Arc<Hub>,
    stream: Arc<Stream>,
    receiver: Option<broadcast::Receiver<Packet>>,
    snapshot: Vec<Frame>,
    published: bool,
    /// Set for viewers, counted in the stream's stats.
    protocol: Option<Protocol>,
}

impl Subscription {
    /// Adds what this subscriber delivered to the stream's output counters (report in
    /// batches: these counters are shared by every viewer of the stream).
    pub fn record_output(&self, frames: u64, bytes: u64) {
        self.stream.frames_out.fetch_add(frames, Ordering::Relaxed);
        self.stream.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        let metrics = &self.hub.metrics;
        metrics.frames_out.inc_by(frames);
        metrics.bytes_out.inc_by(bytes);
    }

    /// Counts frames this viewer skipped to catch up (when it leaves).
    pub fn record_skipped(&self, frames: u64) {
        self.hub.metrics.frames_skipped.inc_by(frames);
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.stream.key
    }

    /// The current publisher's tracks.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.stream.tracks()
    }

    /// Whether the stream had a publisher when the subscription started.
    pub fn was_published(&self) -> bool {
        self.published
    }

    /// Takes the snapshot taken at subscribe time: metadata, sequence headers, then the
    /// current GOP from its keyframe.
    pub fn take_snapshot(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.snapshot)
    }

    /// The next live packet. `Err(Lagged(n))` means `n` packets were lost to a full queue.
    pub async fn recv(&mut self) -> Result<Packet, broadcast::error::RecvError> {
        match self.receiver.as_mut() {
            Some(receiver) => receiver.recv().await,
            None => Err(broadcast::error::RecvError::Closed),
        }
    }

    /// The next live packet if one is queued.
    pub fn try_recv(&mut self) -> Result<Packet, broadcast::error::TryRecvError> {
        match self.receiver.as_mut() {
            Some(receiver) => receiver.try_recv(),
            None => Err(broadcast::error::TryRecvError::Closed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(protocol) = self.protocol {
            self.stream.viewers[protocol.index()].fetch_sub(1, Ordering::Relaxed);
        }
        self.receiver = None;
        self.hub.release(&self.stream);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::test_frames::{interframe, keyframe};

    fn hub() -> Arc<Hub> {
        Arc::new(Hub::new(StreamsConfig {
            viewer_queue_frames: 16,
            ..StreamsConfig::default()
        }))
    }

    #[tokio::test]
    async fn second_publisher_is_refused_until_the_first_leaves() {
        let hub = hub();
        let first = hub.publish("live/a").unwrap();
        assert_eq!(
            hub.publish("live/a").err(),
            Some(PublishError::AlreadyPublishing("live/a".into()))
        );
        assert!(hub.publish("live/b").is_ok());
        drop(first);
        assert!(hub.publish("live/a").is_ok());
    }

    #[tokio::test]
    async fn late_joiner_gets_the_gop_then_live_frames_without_gap_or_duplicate() {
        let hub = hub();
        let publisher = hub.publish("live/a").unwrap();
        publisher.send(interframe(0));
        publisher.send(keyframe(40));
        publisher.send(interframe(80));
        let mut sub = hub.subscribe("live/a");
        publisher.send(interframe(120));
        let snapshot: Vec<u32> = sub.take_snapshot().iter().map(|f| f.timestamp).collect();
        assert_eq!(snapshot, vec![40, 80]);
        match sub.recv().await.unwrap() {
            Packet::Frame(frame) => assert_eq!(frame.timestamp, 120),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn slow_subscriber_lags_and_publisher_never_blocks() {
        let hub = hub();
        let publisher = hub.publish("live/a").unwrap();
        let mut sub = hub.subscribe("live/a");
        for i in 0..100 {
            publisher.send(interframe(i));
        }
        assert!(matches!(
            sub.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }

    #[tokio::test]
    async fn subscribers_hear_publisher_leave_and_return() {
        let hub = hub();
        let mut sub = hub.subscribe("live/a");
        assert!(!sub.was_published());
        let publisher = hub.publish("live/a").unwrap();
        assert!(matches!(sub.recv().await, Ok(Packet::PublisherStarted)));
        drop(publisher);
        assert!(matches!(sub.recv().await, Ok(Packet::PublisherLeft)));
        assert_eq!(
            hub.stream_count(),
            1,
            "stream stays while a subscriber waits"
        );
        drop(sub);
        assert_eq!(hub.stream_count(), 0);
    }

    #[tokio::test]
    async fn stats_count_ingest_viewers_by_protocol_and_output() {
        let hub = hub();
        assert!(hub.stream_stats("live/a").is_none());
        let publisher = hub.publish("live/a").unwrap();
        publisher.send(keyframe(0));
        publisher.send(interframe(40));
        publisher.send(Frame::audio(41, Bytes::from_static(&[0xAF, 0x01, 0x21])));
        let viewer = hub.subscribe_viewer("live/a", Protocol::Rtmp);
        let _internal = hub.subscribe("live/a");
        viewer.record_output(3, 300);
        let stats = hub.stream_stats("live/a").unwrap();
        assert!(stats.published && stats.publisher_since.is_some());
        assert_eq!(
            (
                stats.video_frames_in,
                stats.audio_frames_in,
                stats.keyframes_in
            ),
            (2, 1, 1)
        );
        assert_eq!(stats.bytes_in, 10 + 10 + 3);
        assert_eq!(
            stats.viewers,
            vec![
                (Protocol::Rtmp, 1),
                (Protocol::Rtmps, 0),
                (Protocol::HttpFlv, 0),
                (Protocol::Hls, 0)
            ]
        );
        assert_eq!((stats.frames_out, stats.bytes_out), (3, 300));
        drop(viewer);
        drop(publisher);
        let stats = hub.stats();
        assert_eq!(stats.len(), 1, "the internal subscriber keeps the stream");
        assert!(!stats[0].published);
        assert_eq!((stats[0].viewer_count(), stats[0].bytes_in), (0, 0));
    }

    #[tokio::test]
    async fn audio_waits_for_the_next_video_frame_and_travels_with_it() {
        let hub = hub();
        let publisher = hub.publish("live/a").unwrap();
        let mut sub = hub.subscribe("live/a");
        let audio = |ts| Frame::audio(ts, Bytes::from_static(&[0xAF, 0x01, 0x21]));
        publisher.send(keyframe(0));
        publisher.send(audio(10));
        publisher.send(audio(33));
        // Audio waits: nothing new for the subscriber, and a joiner's snapshot lacks it too.
        let mut snapshot = hub.subscribe("live/a");
        let cached: Vec<u32> = snapshot
            .take_snapshot()
            .iter()
            .map(|f| f.timestamp)
            .collect();
        assert_eq!(cached, vec![0]);
        publisher.send(interframe(40));
        let mut got = Vec::new();
        while let Ok(packet) = sub.try_recv() {
            match packet {
                Packet::Frame(f) => got.push(vec![f.timestamp]),
                Packet::Batch(frames) => got.push(frames.iter().map(|f| f.timestamp).collect()),
                _ => {}
            }
        }
        assert_eq!(got, vec![vec![0], vec![10, 33, 40]]);
        // The joiner gets the batch live, once.
        let mut joiner_got = Vec::new();
        while let Ok(Packet::Batch(frames)) = snapshot.try_recv() {
            joiner_got.extend(frames.iter().map(|f| f.timestamp));
        }
        assert_eq!(joiner_got, vec![10, 33, 40]);
        // Audio never waits longer than the hold (40 ms of media time).
        publisher.send(audio(50));
        publisher.send(audio(95));
        assert!(matches!(sub.try_recv(), Ok(Packet::Batch(frames)) if frames.len() == 2));
        // Held audio is delivered before the publisher's goodbye.
        publisher.send(audio(100));
        drop(publisher);
        assert!(matches!(sub.try_recv(), Ok(Packet::Frame(f)) if f.timestamp == 100));
        assert!(matches!(sub.try_recv(), Ok(Packet::PublisherLeft)));
    }

    #[tokio::test]
    async fn a_replaced_publisher_leaves_as_a_hand_over() {
        let hub = hub();
        let publisher = hub.publish("live/h").unwrap();
        let mut sub = hub.subscribe("live/h");
        hub.hand_over("live/h");
        drop(publisher);
        assert!(matches!(sub.try_recv(), Ok(Packet::PublisherReplaced)));
        // The next departure is an end again.
        let publisher = hub.publish("live/h").unwrap();
        drop(publisher);
        assert!(matches!(sub.try_recv(), Ok(Packet::PublisherStarted)));
        assert!(matches!(sub.try_recv(), Ok(Packet::PublisherLeft)));
    }
}
