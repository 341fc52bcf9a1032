//! HLS: `GET /{app}/{stream}/index.m3u8` (the multivariant playlist over CMAF renditions, with
//! Low-Latency HLS) and `GET /{app}/{stream}/ts/index.m3u8` (MPEG-TS, the default tracks).
//!
//! Each rendition lives under its name: `v0/index.m3u8`, `v0/init{N}.mp4`, `v0/seg{N}.m4s`,
//! `v0/part{N}.m4s` (and `a0/...` for audio). One packager per stream and container, whatever
//! the number of clients: the first playlist request of a published stream starts it (a hub
//! subscription through the shared viewer core with `LagPolicy::Skip`, rebased timestamps;
//! every track for CMAF, the default track in single-track form for TS), and it stops
//! `hls.idle_secs` after the last request. It outlives a publisher: the next one continues the
//! same playlists after an `EXT-X-DISCONTINUITY`.
//!
//! Blocking requests (`_HLS_msn`/`_HLS_part`, and a part or segment that is the next one to be
//! finished) wait for the packager's progress, at most three target durations (then 503);
//! requests too far past the live edge get 400 at once. Everything is served from memory:
//! playlists short-lived, segments and parts immutable (cache headers for a CDN).
//!
//! `GET /{app}/{stream}/index.mpd` is DASH over the same renditions (weir-media `cmaf::mpd`).
//!
//! With `hls.dir`, every file is also written to disk (`hls_dir.rs`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use tokio::sync::watch;
use tracing::{info, warn};
use weir_media::cmaf::{Blocking, CmafConfig, Packager, PartState, PlaylistQuery};
use weir_media::hls::{Container, HlsConfig, Segmenter};
use weir_media::Frame;

use super::hls_dir::DirWriter;
use super::text;
use crate::config::Unadvertised;
use crate::rtmp::Context;
use crate::viewer::{Accepts, Collected, LagPolicy, Viewer};

/// The running packagers, by stream path and container.
#[derive(Default)]
pub(crate) struct HlsStreams {
    map: Mutex<HashMap<(String, Container), Arc<HlsStream>>>,
}

/// What one stream is packaged into.
enum Packaging {
    Cmaf(Box<Packager>),
    Ts(Box<Segmenter>),
}

impl Packaging {
    fn push(&mut self, frame: &Frame) {
        match self {
            Packaging::Cmaf(p) => p.push(frame),
            Packaging::Ts(s) => {
                s.push(frame);
            }
        }
    }

    fn progress(&self) -> u64 {
        match self {
            Packaging::Cmaf(p) => p.progress(),
            Packaging::Ts(s) => s.segment_count(),
        }
    }

    /// Segments and parts made so far (over every rendition), for the metrics.
    fn produced(&self) -> (u64, u64) {
        match self {
            Packaging::Cmaf(p) => p.renditions().iter().fold((0, 0), |(segments, parts), r| {
                (
                    segments + r.segments().back().map_or(0, |s| s.sequence + 1),
                    parts + r.next_part(),
                )
            }),
            Packaging::Ts(s) => (s.segment_count(), 0),
        }
    }

    /// How many segments the furthest rendition has closed: it moves once a segment, however
    /// many renditions close theirs (audio and video may close in different batches).
    fn newest_segment(&self) -> u64 {
        match self {
            Packaging::Cmaf(p) => p
                .renditions()
                .iter()
                .map(|r| r.segments().back().map_or(0, |s| s.sequence + 1))
                .max()
                .unwrap_or(0),
            Packaging::Ts(s) => s.segment_count(),
        }
    }

    fn cmaf(&self) -> Option<&Packager> {
        match self {
            Packaging::Cmaf(p) => Some(p),
            Packaging::Ts(_) => None,
        }
    }
}

/// One stream's packager and who waits for it.
pub(crate) struct HlsStream {
    packaging: Mutex<Packaging>,
    /// Grows with every part or segment (blocked requests wait on it).
    progress: watch::Sender<u64>,
    last_request: Mutex<Instant>,
    /// `EXT-X-TARGETDURATION`, for how long a blocked request may wait.
    target: Duration,
    /// Media playlists as last rendered, by (rendition, delta update), with the progress they
    /// were rendered at: every blocked request wakes on the same part and gets the same text.
    rendered: Mutex<HashMap<(String, bool), (u64, Bytes)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl HlsStream {
    /// `name`'s media playlist, rendered once per packager progress.
    fn rendered(&self, packager: &Packager, name: &str, skip: bool) -> Option<Bytes> {
        let progress = packager.progress();
        let mut cache = lock(&self.rendered);
        if let Some((at, text)) = cache.get(&(name.to_owned(), skip)) {
            if *at == progress {
                return Some(text.clone());
            }
        }
        let text = Bytes::from(packager.media_playlist(name, skip)?);
        // Renditions are few (MAX_RENDITIONS), so is the cache.
        cache.insert((name.to_owned(), skip), (progress, text.clone()));
        Some(text)
    }

    /// Waits until `check` finds what it looks for, at most three target durations; `None` on
    /// time out.
    async fn wait_for<T>(&self, mut check: impl FnMut(&Packaging) -> Option<T>) -> Option<T> {
        let mut progress = self.progress.subscribe();
        let until = tokio::time::Instant::now() + 3 * self.target;
        loop {
            if let Some(found) = check(&lock(&self.packaging)) {
                return Some(found);
            }
            match tokio::time::timeout_at(until, progress.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}

impl HlsStreams {
    /// The packager of `path`, started if the stream is published; `None` if it is not.
    fn get_or_start(
        &self,
        context: &Arc<Context>,
        path: &str,
        container: Container,
    ) -> Option<Arc<HlsStream>> {
        let mut map = lock(&self.map);
        let key = (path.to_owned(), container);
        if let Some(stream) = map.get(&key) {
            *lock(&stream.last_request) = Instant::now();
            return Some(Arc::clone(stream));
        }
        if !context.hub.stream_stats(path).is_some_and(|s| s.published) {
            // An edge pulls the stream; the packager waits for its first frames.
            let pulled = path.split_once('/').is_some_and(|(app, name)| {
                crate::pull::wanted(context, &crate::stream_key::StreamKey::new(app, name, None))
            });
            if !pulled {
                return None;
            }
        }
        let hls = &context.config.hls;
        let packaging = match container {
            Container::Fmp4 => Packaging::Cmaf(Box::new(Packager::new(CmafConfig {
                target_duration_secs: hls.target_duration_secs,
                min_segment_ms: hls.min_segment_ms,
                part_ms: hls.part_ms,
                window: hls.window,
            }))),
            Container::Ts => Packaging::Ts(Box::new(Segmenter::new(HlsConfig {
                target_duration_secs: hls.target_duration_secs,
                min_segment_ms: hls.min_segment_ms,
                window: hls.window,
            }))),
        };
        let stream = Arc::new(HlsStream {
            packaging: Mutex::new(packaging),
            progress: watch::channel(0).0,
            last_request: Mutex::new(Instant::now()),
            target: Duration::from_secs(u64::from(hls.target_duration_secs)),
            rendered: Mutex::new(HashMap::new()),
        });
        map.insert(key, Arc::clone(&stream));
        info!(stream = %path, container = ?container, "hls packager started");
        tokio::spawn(run(
            Arc::clone(context),
            path.to_owned(),
            container,
            Arc::clone(&stream),
        ));
        Some(stream)
    }
}

impl HlsStreams {
    /// `hls.always`: starts the packagers (CMAF and TS) of a stream that was just published.
    pub(crate) fn publish_started(&self, context: &Arc<Context>, path: &str) {
        if context.config.hls.packages_always() {
            for container in [Container::Fmp4, Container::Ts] {
                let _ = self.get_or_start(context, path, container);
            }
        }
    }
}

/// Feeds one stream's packager until nobody asked for `hls.idle_secs`.
async fn run(context: Arc<Context>, path: String, container: Container, stream: Arc<HlsStream>) {
    let idle = Duration::from_secs(context.config.hls.idle_secs);
    let subscription = context.hub.subscribe(&path);
    let now = || tokio::time::Instant::now().into_std();
    let accepts = match container {
        Container::Fmp4 => Accepts::everything(),
        Container::Ts => Accepts::legacy(Unadvertised::Send),
    };
    let container_name = match container {
        Container::Fmp4 => "fmp4",
        Container::Ts => "ts",
    };
    // The origin of a stream that moved here continues the numbering the last origin left
    // in Redis: media sequence, parts and init segments go on, after a discontinuity.
    if let Some(cluster) = &context.cluster {
        if let Some(from) = cluster.hls_continuation(&path, container_name).await {
            info!(stream = %path, container = container_name, sequence = from.sequence, part = from.part, discontinuity = from.discontinuity_sequence,
                "hls continues the numbering of the stream's previous origin");
            match &mut *lock(&stream.packaging) {
                Packaging::Cmaf(p) => p.continue_from(from),
                Packaging::Ts(s) => s.continue_from(from.sequence, from.discontinuity_sequence),
            }
        }
    }
    let mut viewer = Viewer::new(subscription, LagPolicy::Skip, now()).with_accepts(accepts);
    let mut sink = Collected::default();
    viewer.start(&mut sink);
    let mut unsupported_logged = Vec::new();
    let mut dir = Some(&context.config.hls.dir)
        .filter(|d| !d.is_empty())
        .and_then(|d| DirWriter::new(Path::new(d), &path));
    let reason = loop {
        if !sink.frames.is_empty() || sink.left || sink.replaced {
            let describes = sink
                .frames
                .iter()
                .any(|f| f.info.is_sequence_header || f.info.is_keyframe);
            let tracks = if describes {
                viewer.subscription().tracks()
            } else {
                Vec::new()
            };
            let (progress, ops) = {
                let mut packaging = lock(&stream.packaging);
                let wall = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                match &mut *packaging {
                    Packaging::Cmaf(p) => {
                        p.set_wall_clock(wall);
                        for track in &tracks {
                            p.set_details(track.kind, track.track_id, track.details.clone());
                        }
                    }
                    Packaging::Ts(s) => s.set_wall_clock(wall),
                }
                let before = packaging.produced();
                let newest = packaging.newest_segment();
                for frame in sink.frames.drain(..) {
                    packaging.push(&frame);
                }
                let after = packaging.produced();
                // The numbering goes to Redis once a segment (not once a rendition's segment).
                if packaging.newest_segment() > newest {
                    if let Some(cluster) = &context.cluster {
                        let numbers = match &*packaging {
                            Packaging::Cmaf(p) => p.continuation(),
                            Packaging::Ts(s) => {
                                let (sequence, discontinuity_sequence) = s.continuation();
                                weir_media::cmaf::Continuation {
                                    sequence,
                                    discontinuity_sequence,
                                    ..Default::default()
                                }
                            }
                        };
                        cluster.save_hls(&path, container_name, numbers);
                    }
                }
                let metrics = context.hub.metrics();
                metrics
                    .hls_segments
                    .inc_by(after.0.saturating_sub(before.0));
                metrics.hls_parts.inc_by(after.1.saturating_sub(before.1));
                // A new encoder is a discontinuity in the playlists all the same.
                let left = std::mem::take(&mut sink.left);
                if std::mem::take(&mut sink.replaced) || left {
                    match &mut *packaging {
                        Packaging::Cmaf(p) => p.publisher_left(),
                        Packaging::Ts(s) => {
                            s.publisher_left();
                        }
                    }
                }
                if let Some(p) = packaging.cmaf() {
                    for r in p.renditions() {
                        if let Some(why) = r.unsupported() {
                            if !unsupported_logged.contains(&r.name().to_owned()) {
                                unsupported_logged.push(r.name().to_owned());
                                warn!(stream = %path, track = r.name(), "hls leaves this track out: {why}");
                            }
                        }
                    }
                }
                let progress = packaging.progress();
                let ops = match (&mut dir, &*packaging) {
                    (Some(dir), Packaging::Cmaf(p)) => dir.plan_cmaf(p, wall),
                    (Some(dir), Packaging::Ts(s)) => dir.plan_ts(s),
                    (None, _) => Vec::new(),
                };
                (progress, ops)
            };
            stream
                .progress
                .send_if_modified(|n| std::mem::replace(n, progress) != progress);
            // After waking the waiting requests: the disk copy never delays them.
            if let Some(dir) = &mut dir {
                dir.apply(ops, &path).await;
            }
        }
        let since = lock(&stream.last_request).elapsed();
        if since >= idle {
            let published = context.hub.stream_stats(&path).is_some_and(|s| s.published);
            if !(context.config.hls.packages_always() && published) {
                break "no client asked for a while (hls.idle_secs)";
            }
            // hls.always: kept while the stream is published.
            *lock(&stream.last_request) = Instant::now();
            continue;
        }
        tokio::select! {
            received = viewer.recv() => {
                let _ = viewer.handle_recv(received, &mut sink, now());
            }
            () = tokio::time::sleep(idle - since) => {}
        }
    };
    let mut map = lock(&context.hls.map);
    let key = (path.clone(), container);
    if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &stream)) {
        map.remove(&key);
    }
    info!(stream = %path, container = ?container, reason, "hls packager stopped");
}

fn not_published(path: &str) -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        format!("stream {path} is not being published\n"),
    )
}

fn unavailable(what: String) -> Response<Body> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, what);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn respond(data: impl Into<Body>, content_type: &'static str, cache: String) -> Response<Body> {
    let mut response = Response::new(data.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(cache) = HeaderValue::from_str(&cache) {
        headers.insert(header::CACHE_CONTROL, cache);
    }
    response
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

/// Largest playlist or MPD rewritten by [`carry_query`].
const MAX_REWRITE: usize = 4 << 20;

/// `response` with `query` appended to every URL in it, if it is a playlist or an MPD (other
/// responses, and every response when `query` is `None`, pass unchanged).
pub(super) async fn carry_query(response: Response<Body>, query: Option<&str>) -> Response<Body> {
    let Some(query) = query else {
        return response;
    };
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_mpd = kind == "application/dash+xml";
    if kind != PLAYLIST && !is_mpd {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(data) = axum::body::to_bytes(body, MAX_REWRITE).await else {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "playlist too large\n");
    };
    let listing = String::from_utf8_lossy(&data);
    let rewritten = if is_mpd {
        with_query_mpd(&listing, query)
    } else {
        with_query_m3u8(&listing, query)
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rewritten))
}

/// `uri` with `query` appended.
fn append(uri: &str, query: &str) -> String {
    let joiner = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{joiner}{query}")
}

/// Every `URI="…"` value in `line` with `query` appended.
fn quoted_with_query(line: &str, attribute: &str, query: &str) -> String {
    let mut out = String::with_capacity(line.len() + query.len());
    let mut rest = line;
    while let Some(start) = rest.find(attribute) {
        let value_start = start + attribute.len();
        let Some(len) = rest[value_start..].find('"') else {
            break;
        };
        out.push_str(&rest[..value_start]);
        out.push_str(&append(&rest[value_start..value_start + len], query));
        rest = &rest[value_start + len..];
    }
    out.push_str(rest);
    out
}

/// An HLS playlist with `query` on every URI line and `URI="…"` attribute.
pub(crate) fn with_query_m3u8(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() * 2);
    for line in playlist.lines() {
        if line.is_empty() {
        } else if line.starts_with('#') {
            out.push_str(&quoted_with_query(line, "URI=\"", query));
        } else {
            out.push_str(&append(line, query));
        }
        out.push('\n');
    }
    out
}

/// A DASH MPD with `query` on its `media` and `initialization` templates (the query's `&`
/// written as `&amp;`).
pub(crate) fn with_query_mpd(mpd: &str, query: &str) -> String {
    let query = query.replace('&', "&amp;");
    let media = quoted_with_query(mpd, "media=\"", &query);
    quoted_with_query(&media, "initialization=\"", &query)
}
const IMMUTABLE: &str = "public, max-age=86400, immutable";

/// `index.m3u8` of the CMAF renditions: waits for the first segments of a starting stream.
pub(super) async fn multivariant(context: Arc<Context>, path: &str) -> Response<Body> {
    let Some(stream) = context.hls.get_or_start(&context, path, Container::Fmp4) else {
        return not_published(path);
    };
    let body = stream
        .wait_for(|p| p.cmaf().and_then(Packager::multivariant))
        .await;
    match body {
        Some(body) => respond(body, PLAYLIST, "max-age=1".into()),
        None => unavailable(format!("no segment of {path} yet; try again\n")),
    }
}

/// `index.mpd`: DASH over the same renditions; waits for the first segments like
/// `index.m3u8`.
pub(super) async fn mpd(context: Arc<Context>, path: &str) -> Response<Body> {
    let Some(stream) = context.hls.get_or_start(&context, path, Container::Fmp4) else {
        return not_published(path);
    };
    let body = stream
        .wait_for(|p| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            p.cmaf().and_then(|p| p.mpd(now))
        })
        .await;
    match body {
        // Not cached: DASH clients refresh it every minimumUpdatePeriod.
        Some(body) => respond(body, "application/dash+xml", "no-cache".into()),
        None => unavailable(format!("no segment of {path} yet; try again\n")),
    }
}

/// A file of one CMAF rendition: `index.m3u8` (with delivery directives), `init{N}.mp4`,
/// `seg{N}.m4s`, `part{N}.m4s`.
pub(super) async fn rendition_file(
    context: Arc<Context>,
    path: &str,
    name: &str,
    file: &str,
    query: Option<&str>,
) -> Response<Body> {
    let missing = || {
        text(
            StatusCode::NOT_FOUND,
            format!("{name}/{file} is not there\n"),
        )
    };
    let is_playlist = file == "index.m3u8";
    let stream = if is_playlist {
        context.hls.get_or_start(&context, path, Container::Fmp4)
    } else {
        get(&context, path, Container::Fmp4)
    };
    let Some(stream) = stream else {
        return if is_playlist {
            not_published(path)
        } else {
            missing()
        };
    };
    let content_type = if name.starts_with('a') {
        "audio/mp4"
    } else {
        "video/mp4"
    };
    if is_playlist {
        let query = match PlaylistQuery::parse(query.unwrap_or_default()) {
            Ok(query) => query,
            Err(why) => return text(StatusCode::BAD_REQUEST, format!("{why}\n")),
        };
        let target = stream.target.as_secs();
        let answer = stream
            .wait_for(|p| {
                let packager = p.cmaf()?;
                let Some(rendition) = packager.rendition(name) else {
                    // Once the stream has renditions, an unknown name stays unknown.
                    return packager
                        .ready_renditions()
                        .next()
                        .map(|_| Err("no such rendition"));
                };
                if rendition.unsupported().is_some() {
                    return Some(Err("this track cannot be packaged in fMP4"));
                }
                if rendition.segments().is_empty() {
                    return None;
                }
                match rendition.blocking(&query) {
                    Blocking::Ready => stream.rendered(packager, name, query.skip).map(Ok),
                    Blocking::Wait => None,
                    Blocking::BadRequest(why) => Some(Err(why)),
                }
            })
            .await;
        return match answer {
            Some(Err(why @ ("no such rendition" | "this track cannot be packaged in fMP4"))) => {
                text(StatusCode::NOT_FOUND, format!("{name}/index.m3u8: {why}\n"))
            }
            Some(Ok(body)) => {
                let cache = if query.msn.is_some() {
                    format!("public, max-age={target}")
                } else {
                    "max-age=1".into()
                };
                respond(body, PLAYLIST, cache)
            }
            Some(Err(why)) => text(StatusCode::BAD_REQUEST, format!("{why}\n")),
            None => unavailable(format!(
                "{name}/index.m3u8 of {path} has not reached what was asked for; try again\n"
            )),
        };
    }
    if let Some(id) = file
        .strip_prefix("init")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        let packaging = lock(&stream.packaging);
        let Some(rendition) = packaging.cmaf().and_then(|p| p.rendition(name)) else {
            return missing();
        };
        return match id {
            "" => rendition
                .init_segment()
                .map(|init| respond(init, content_type, "max-age=1".into())),
            id => id
                .parse()
                .ok()
                .and_then(|id| rendition.init_segment_by_id(id))
                .map(|init| respond(init, content_type, IMMUTABLE.into())),
        }
        .unwrap_or_else(missing);
    }
    let number = |prefix: &str| {
        file.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".m4s"))
            .and_then(|n| n.parse::<u64>().ok())
    };
    let found: Option<Option<Vec<Bytes>>> = if let Some(n) = number("part") {
        // The next part (the preload hint) is held until it is finished.
        stream
            .wait_for(|p| {
                let rendition = p.cmaf()?.rendition(name);
                match rendition.map(|r| r.part(n)) {
                    Some(PartState::Ready(data)) => Some(Some(vec![data])),
                    Some(PartState::Next) => None,
                    _ => Some(None),
                }
            })
            .await
    } else if let Some(n) = number("seg") {
        // So is the segment in progress.
        stream
            .wait_for(|p| {
                let rendition = p.cmaf()?.rendition(name);
                let rendition = rendition?;
                if let Some(segment) = rendition.segment(n) {
                    return Some(Some(segment.chunks.clone()));
                }
                (n != rendition.edge().next_sequence).then_some(None)
            })
            .await
    } else {
        Some(None)
    };
    match found {
        Some(Some(chunks)) => {
            let length: usize = chunks.iter().map(Bytes::len).sum();
            let body = Body::from_stream(futures_util::stream::iter(
                chunks.into_iter().map(Ok::<_, Infallible>),
            ));
            let mut response = respond(body, content_type, IMMUTABLE.into());
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            response
        }
        Some(None) => missing(),
        None => unavailable(format!("{name}/{file} of {path} is not ready; try again\n")),
    }
}

/// The packager of `path` if it runs (file requests never start one).
fn get(context: &Context, path: &str, container: Container) -> Option<Arc<HlsStream>> {
    let map = lock(&context.hls.map);
    let stream = map.get(&(path.to_owned(), container))?;
    *lock(&stream.last_request) = Instant::now();
    Some(Arc::clone(stream))
}

/// `ts/index.m3u8`: waits for the first segment of a starting stream, then the playlist.
pub(super) async fn ts_playlist(context: Arc<Context>, path: &str) -> Response<Body> {
    let Some(stream) = context.hls.get_or_start(&context, path, Container::Ts) else {
        return not_published(path);
    };
    let body = stream
        .wait_for(|p| match p {
            Packaging::Ts(s) if s.segment_count() > 0 => Some(s.playlist()),
            _ => None,
        })
        .await;
    match body {
        Some(body) => respond(body, PLAYLIST, "max-age=1".into()),
        None => unavailable(format!("no segment of {path} yet; try again\n")),
    }
}

/// `ts/seg{N}.ts` of a running segmenter.
pub(super) fn ts_file(context: &Context, path: &str, file: &str) -> Response<Body> {
    let missing = || text(StatusCode::NOT_FOUND, format!("ts/{file} is not there\n"));
    let Some(stream) = get(context, path, Container::Ts) else {
        return missing();
    };
    let packaging = lock(&stream.packaging);
    let Packaging::Ts(segmenter) = &*packaging else {
        return missing();
    };
    let sequence = file
        .strip_prefix("seg")
        .and_then(|rest| rest.strip_suffix(".ts"))
        .and_then(|n| n.parse::<u64>().ok());
    match sequence.and_then(|n| segmenter.segment(n)) {
        Some(segment) => respond(segment.data.clone(), "video/mp2t", IMMUTABLE.into()),
        None => missing(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reaches_every_url_of_a_playlist() {
        let playlist = "#EXTM3U\n#EXT-X-MAP:URI=\"init0.mp4\"\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part7.m4s\",INDEPENDENT=YES\n\
            #EXTINF:2.0,\nseg3.m4s\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part8.m4s\"\n\
            #EXT-X-RENDITION-REPORT:URI=\"../a0/index.m3u8\",LAST-MSN=3\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1\nv0/index.m3u8?x=1\n";
        let out = with_query_m3u8(playlist, "expires=9&sig=ab");
        for uri in [
            "URI=\"init0.mp4?expires=9&sig=ab\"",
            "URI=\"part7.m4s?expires=9&sig=ab\",INDEPENDENT=YES",
            "\nseg3.m4s?expires=9&sig=ab\n",
            "URI=\"part8.m4s?expires=9&sig=ab\"",
            "URI=\"../a0/index.m3u8?expires=9&sig=ab\",LAST-MSN=3",
            "\nv0/index.m3u8?x=1&expires=9&sig=ab\n",
        ] {
            assert!(out.contains(uri), "{uri} not in\n{out}");
        }
        assert_eq!(out.lines().count(), playlist.lines().count());
    }

    #[test]
    fn a_query_reaches_the_mpd_templates_escaped() {
        let mpd = r#"<SegmentTemplate timescale="1000" initialization="v0/init.mp4" media="v0/seg$Number$.m4s" startNumber="1">"#;
        let out = with_query_mpd(mpd, "expires=9&sig=ab");
        assert!(
            out.contains(r#"initialization="v0/init.mp4?expires=9&amp;sig=ab""#),
            "{out}"
        );
        assert!(
            out.contains(r#"media="v0/seg$Number$.m4s?expires=9&amp;sig=ab""#),
            "{out}"
        );
        assert!(out.contains(r#"timescale="1000""#));
    }
}
