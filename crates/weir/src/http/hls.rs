//! HLS: `GET /{app}/{stream}/index.m3u8` (fMP4: `init.mp4`, `seg{N}.m4s`) and
//! `GET /{app}/{stream}/ts/index.m3u8` (`seg{N}.ts`).
//!
//! One segmenter per stream and container, whatever the number of clients: the first
//! playlist request of a published stream starts it (a hub subscription through the shared
//! viewer core with `LagPolicy::Skip`, the default track in single-track form, rebased
//! timestamps), and it stops `hls.idle_secs` after the last request. It outlives a publisher:
//! the next one continues the same playlist after an `EXT-X-DISCONTINUITY`. Segments are served
//! from memory: playlists short-lived, segments immutable (cache headers for a CDN).
//!
//! Not yet: Low-Latency HLS (parts, blocking reload), DASH, the multivariant playlist for
//! multitrack streams, a directory copy for a web server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use tokio::sync::watch;
use tracing::info;
use weir_media::hls::{Container, HlsConfig, Segmenter};
use weir_media::{Frame, TrackKind};

use super::text;
use crate::config::Unadvertised;
use crate::rtmp::Context;
use crate::viewer::{Accepts, LagPolicy, Viewer, ViewerSink};

/// The running segmenters, by stream path and container.
#[derive(Default)]
pub(crate) struct HlsStreams {
    map: Mutex<HashMap<(String, bool), Arc<HlsStream>>>,
}

/// One stream's segmenter and who waits for it.
pub(crate) struct HlsStream {
    segmenter: Mutex<Segmenter>,
    /// Segments finished so far (playlist requests wait for the first).
    finished: watch::Sender<u64>,
    last_request: Mutex<Instant>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(path: &str, container: Container) -> (String, bool) {
    (path.to_owned(), container == Container::Ts)
}

impl HlsStreams {
    /// The segmenter of `path`, started if the stream is published; `None` if it is not.
    fn get_or_start(
        &self,
        context: &Arc<Context>,
        path: &str,
        container: Container,
    ) -> Option<Arc<HlsStream>> {
        let mut map = lock(&self.map);
        if let Some(stream) = map.get(&key(path, container)) {
            *lock(&stream.last_request) = Instant::now();
            return Some(Arc::clone(stream));
        }
        if !context.hub.stream_stats(path).is_some_and(|s| s.published) {
            return None;
        }
        let hls = &context.config.hls;
        let config = HlsConfig {
            container,
            target_duration_secs: hls.target_duration_secs,
            min_segment_ms: hls.min_segment_ms,
            window: hls.window,
        };
        let stream = Arc::new(HlsStream {
            segmenter: Mutex::new(Segmenter::new(config)),
            finished: watch::channel(0).0,
            last_request: Mutex::new(Instant::now()),
        });
        map.insert(key(path, container), Arc::clone(&stream));
        info!(stream = %path, container = ?container, "hls segmenter started");
        tokio::spawn(run(
            Arc::clone(context),
            path.to_owned(),
            container,
            Arc::clone(&stream),
        ));
        Some(stream)
    }

    /// The segmenter of `path` if it runs (segment and init requests never start one).
    fn get(&self, path: &str, container: Container) -> Option<Arc<HlsStream>> {
        let map = lock(&self.map);
        let stream = map.get(&key(path, container))?;
        *lock(&stream.last_request) = Instant::now();
        Some(Arc::clone(stream))
    }
}

/// Collects the viewer core's frames for the segmenter.
#[derive(Default)]
struct Collect {
    frames: Vec<Frame>,
    ended: bool,
}

impl ViewerSink for Collect {
    fn frame(&mut self, frame: &Frame, timestamp: u32) {
        let mut frame = frame.clone();
        frame.timestamp = timestamp;
        self.frames.push(frame);
    }

    fn publisher_left(&mut self) {
        self.ended = true;
    }
}

/// Feeds one stream's segmenter until nobody asked for `hls.idle_secs` or the publisher left.
async fn run(context: Arc<Context>, path: String, container: Container, stream: Arc<HlsStream>) {
    let idle = Duration::from_secs(context.config.hls.idle_secs);
    let subscription = context.hub.subscribe(&path);
    let now = || tokio::time::Instant::now().into_std();
    let mut viewer = Viewer::new(subscription, LagPolicy::Skip, now())
        .with_accepts(Accepts::legacy(Unadvertised::Send));
    let mut sink = Collect::default();
    viewer.start(&mut sink);
    let reason = loop {
        if !sink.frames.is_empty() {
            let has_header = sink.frames.iter().any(|f| f.info.is_sequence_header);
            let tracks = if has_header {
                viewer.subscription().tracks()
            } else {
                Vec::new()
            };
            let mut segmenter = lock(&stream.segmenter);
            if let Ok(since_epoch) =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
            {
                segmenter.set_wall_clock(since_epoch.as_millis() as u64);
            }
            if has_header {
                let details = |kind| {
                    tracks
                        .iter()
                        .find(|t| t.kind == kind && t.track_id == 0)
                        .map(|t| t.details.clone())
                        .unwrap_or_default()
                };
                segmenter.set_details(details(TrackKind::Video), details(TrackKind::Audio));
            }
            for frame in sink.frames.drain(..) {
                segmenter.push(&frame);
            }
            if std::mem::take(&mut sink.ended) {
                segmenter.publisher_left();
            }
            let count = segmenter.segment_count();
            drop(segmenter);
            stream
                .finished
                .send_if_modified(|n| std::mem::replace(n, count) != count);
        }
        let since = lock(&stream.last_request).elapsed();
        if since >= idle {
            break "no client asked for a while (hls.idle_secs)";
        }
        tokio::select! {
            received = viewer.recv() => {
                let _ = viewer.handle_recv(received, &mut sink, now());
            }
            () = tokio::time::sleep(idle - since) => {}
        }
    };
    let mut map = lock(&context.hls.map);
    if map
        .get(&key(&path, container))
        .is_some_and(|s| Arc::ptr_eq(s, &stream))
    {
        map.remove(&key(&path, container));
    }
    info!(stream = %path, container = ?container, reason, "hls segmenter stopped");
}

/// `index.m3u8`: waits for the first segment of a starting stream (up to twice the target
/// duration), then the playlist.
pub(super) async fn playlist(
    context: Arc<Context>,
    path: &str,
    container: Container,
) -> Response<Body> {
    let Some(stream) = context.hls.get_or_start(&context, path, container) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("stream {path} is not being published\n"),
        );
    };
    let wait = Duration::from_secs(u64::from(context.config.hls.target_duration_secs) * 2 + 2);
    let mut finished = stream.finished.subscribe();
    let ready = tokio::time::timeout(wait, finished.wait_for(|n| *n > 0)).await;
    if !matches!(ready, Ok(Ok(_))) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no segment of {path} yet; try again\n"),
        );
    }
    let body = lock(&stream.segmenter).playlist();
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.apple.mpegurl"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
    response
}

/// `init.mp4`, `seg{N}.m4s` or `seg{N}.ts` of a running segmenter.
pub(super) fn file(
    context: &Context,
    path: &str,
    container: Container,
    file: &str,
) -> Response<Body> {
    let missing = || text(StatusCode::NOT_FOUND, format!("{file} is not there\n"));
    let Some(stream) = context.hls.get(path, container) else {
        return missing();
    };
    let segmenter = lock(&stream.segmenter);
    let init_id = file
        .strip_prefix("init")
        .and_then(|rest| rest.strip_suffix(".mp4"))
        .filter(|_| container == Container::Fmp4);
    let (data, content_type, cache) = if let Some(id) = init_id {
        let init = match id {
            "" => segmenter.init_segment(),
            id => id
                .parse()
                .ok()
                .and_then(|id| segmenter.init_segment_by_id(id)),
        };
        match init {
            // `init{N}.mp4` never changes; `init.mp4` is the latest.
            Some(init) if id.is_empty() => (init, "video/mp4", "max-age=1"),
            Some(init) => (init, "video/mp4", "public, max-age=86400, immutable"),
            None => return missing(),
        }
    } else {
        let ext = match container {
            Container::Fmp4 => ".m4s",
            Container::Ts => ".ts",
        };
        let sequence = file
            .strip_prefix("seg")
            .and_then(|rest| rest.strip_suffix(ext))
            .and_then(|n| n.parse::<u64>().ok());
        match sequence.and_then(|n| segmenter.segment(n)) {
            Some(segment) => (
                segment.data.clone(),
                match container {
                    Container::Fmp4 => "video/mp4",
                    Container::Ts => "video/mp2t",
                },
                "public, max-age=86400, immutable",
            ),
            None => return missing(),
        }
    };
    drop(segmenter);
    let mut response = Response::new(Body::from(data));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}
