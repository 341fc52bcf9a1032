//! HLS and DASH of a stream another node of the cluster is the origin of: the request goes to
//! the origin's HTTP listener (`cluster.advertise_http`), so every node serves the same
//! playlists and the same bytes under each URI (a CDN may fetch from any node). Concurrent
//! requests for one URI (a new part every viewer asks for at once, a blocking playlist
//! reload) share one upstream fetch; segments, parts and init segments (their URIs never name
//! other bytes) are kept a minute (at most 512 objects and 64 MiB), so later requests need
//! no fetch at all.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tracing::warn;

use crate::cluster::store::Owner;
use crate::rtmp::Context;

/// How long a fetched segment, part or init segment is kept.
const KEEP: Duration = Duration::from_secs(60);
/// Objects kept at most, and their bytes at most.
const KEEP_MAX: usize = 512;
const KEEP_MAX_BYTES: usize = 64 << 20;
/// The largest answer taken from an origin (a segment of 6 s at 100 Mbit/s is 75 MB); a
/// larger one is a 502, not unbounded memory.
const MAX_BODY: usize = 256 << 20;
/// How long an idle connection to an origin is kept for the next fetch (the origin closes
/// idle connections after 10 s).
const POOL_IDLE: Duration = Duration::from_secs(4);
/// A fetch that failed sooner than this without a timeout met a connection the origin had
/// closed: it is sent again once.
const STALE_CONNECTION: Duration = Duration::from_millis(500);
/// How long a resolved origin is trusted before Redis is asked again.
const OWNER_FRESH: Duration = Duration::from_secs(1);
/// The longest an upstream fetch may take when the origin may hold it (a blocking playlist
/// reload waits up to three target durations there; a part may be the one being built).
const BLOCKING_TIMEOUT: Duration = Duration::from_secs(12);
/// The longest any other fetch may take (a frozen origin is given up on this soon).
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// An upstream answer.
#[derive(Clone, Debug)]
struct Fetched {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    cache_control: Option<HeaderValue>,
    body: Bytes,
}

type Fetch = Shared<BoxFuture<'static, Fetched>>;

/// Objects kept, by URI, with when each was fetched; and the URIs oldest first.
type Kept = (HashMap<String, (Instant, Fetched)>, VecDeque<String>);

/// The proxy's state: fetches in flight, kept objects, resolved origins.
#[derive(Default)]
pub(crate) struct HlsProxy {
    client: std::sync::OnceLock<reqwest::Client>,
    inflight: Mutex<HashMap<String, Fetch>>,
    kept: Mutex<Kept>,
    owners: Mutex<HashMap<String, (Instant, Owner)>>,
    /// Fetches sent upstream.
    pub(crate) fetches: AtomicU64,
}

impl std::fmt::Debug for HlsProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsProxy").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether `file` names bytes that never change (a segment, part or init segment).
fn immutable(file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    (name.starts_with("seg") || name.starts_with("part") || name.starts_with("init"))
        && (name.ends_with(".m4s") || name.ends_with(".mp4") || name.ends_with(".ts"))
}

/// Whether an HLS/DASH request for `path` (`app/stream`) is served by another node: the
/// cluster is on and this node is not the stream's origin (it holds no lease of it and
/// nothing publishes it here but a pull).
pub(crate) fn elsewhere(context: &Context, path: &str) -> bool {
    let Some(cluster) = &context.cluster else {
        return false;
    };
    if cluster.holds(path) {
        return false;
    }
    let published_here = context.hub.stream_stats(path).is_some_and(|s| s.published)
        && context.pulls.upstream(path).is_none();
    let fixed_upstream = path.split_once('/').is_some_and(|(app, _)| {
        context
            .live()
            .app_rules(app)
            .is_some_and(|r| !r.pull.url.is_empty())
    });
    !published_here && !fixed_upstream
}

/// Answers `/{path}/{file}?{query}` from the stream's origin.
pub(crate) async fn serve(
    context: &Arc<Context>,
    path: &str,
    file: &str,
    query: Option<&str>,
) -> Response<Body> {
    let proxy = &context.hls_proxy;
    let uri = match query {
        Some(q) if !q.is_empty() => format!("/{path}/{file}?{q}"),
        _ => format!("/{path}/{file}"),
    };
    if let Some(fetched) = kept(proxy, &uri) {
        return respond(fetched);
    }
    let owner = match origin(context, path, false).await {
        Ok(Some(owner)) => owner,
        Ok(None) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("stream {path} is not being published\n"),
            )
        }
        Err(why) => return unavailable(why),
    };
    let mut fetched = fetch(context, &owner, &uri).await;
    if fetched.status == StatusCode::BAD_GATEWAY {
        // The origin may have changed: ask Redis again and retry once.
        if let Ok(Some(now)) = origin(context, path, true).await {
            if now != owner {
                fetched = fetch(context, &now, &uri).await;
            }
        }
    }
    respond(fetched)
}

/// The stream's origin, from the proxy's cache or Redis.
async fn origin(context: &Context, path: &str, fresh: bool) -> Result<Option<Owner>, String> {
    let proxy = &context.hls_proxy;
    if !fresh {
        if let Some((at, owner)) = lock(&proxy.owners).get(path) {
            if at.elapsed() < OWNER_FRESH {
                return Ok(Some(owner.clone()));
            }
        }
    }
    let Some(cluster) = &context.cluster else {
        return Ok(None);
    };
    let owner = cluster.resolve(path).await?;
    let mut owners = lock(&proxy.owners);
    match &owner {
        Some(owner) => {
            owners.insert(path.to_owned(), (Instant::now(), owner.clone()));
        }
        None => {
            owners.remove(path);
        }
    }
    if owners.len() > 10_000 {
        owners.retain(|_, (at, _)| at.elapsed() < OWNER_FRESH);
    }
    Ok(owner)
}

/// One upstream fetch per URI at a time: a request arriving while one is in flight waits
/// for its answer.
async fn fetch(context: &Context, owner: &Owner, uri: &str) -> Fetched {
    let proxy = &context.hls_proxy;
    let key = format!("{}{uri}", owner.http);
    let shared = {
        let mut inflight = lock(&proxy.inflight);
        if let Some(fetch) = inflight.get(&key) {
            fetch.clone()
        } else if let Some(fetched) = kept(proxy, uri) {
            // Fetched and kept since this request looked.
            return fetched;
        } else {
            let client = proxy
                .client
                .get_or_init(|| {
                    reqwest::Client::builder()
                        .connect_timeout(FETCH_TIMEOUT)
                        // Below the origin's 10 s keep-alive (HEADER_TIMEOUT): a connection
                        // is not reused just as the origin closes it.
                        .pool_idle_timeout(POOL_IDLE)
                        .pool_max_idle_per_host(64)
                        .build()
                        .unwrap_or_default()
                })
                .clone();
            let token = context
                .cluster
                .as_ref()
                .map(|c| c.token())
                .unwrap_or_default();
            proxy.fetches.fetch_add(1, Ordering::Relaxed);
            let url = key.clone();
            let name = uri.split('?').next().unwrap_or(uri);
            let blocking = uri.contains("_HLS_msn=")
                || name
                    .rsplit('/')
                    .next()
                    .is_some_and(|f| f.starts_with("part"));
            let timeout = if blocking {
                BLOCKING_TIMEOUT
            } else {
                FETCH_TIMEOUT
            };
            let fetch = async move { get(&client, &url, &token, timeout, MAX_BODY).await }
                .boxed()
                .shared();
            inflight.insert(key.clone(), fetch.clone());
            fetch
        }
    };
    let fetched = shared.clone().await;
    // Kept before the fetch leaves the in-flight table: a request arriving in between finds
    // one or the other, never neither.
    if fetched.status == StatusCode::OK && immutable(uri.split('?').next().unwrap_or(uri)) {
        keep(proxy, uri, &fetched);
    }
    let mut inflight = lock(&proxy.inflight);
    if inflight.get(&key).is_some_and(|f| f.ptr_eq(&shared)) {
        inflight.remove(&key);
    }
    fetched
}

/// One upstream GET: the answer, or a 502 saying why (unreachable, timed out, or larger
/// than `max` bytes).
async fn get(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    timeout: Duration,
    max: usize,
) -> Fetched {
    let failed = |why: String| {
        warn!(url, "cluster: HLS fetch from the origin failed: {why}");
        Fetched {
            status: StatusCode::BAD_GATEWAY,
            content_type: None,
            cache_control: Some(HeaderValue::from_static("no-store")),
            body: Bytes::from(format!("the stream's origin did not answer: {why}\n")),
        }
    };
    let send = || {
        client
            .get(url)
            .header(crate::cluster::CLUSTER_HEADER, token)
            .timeout(timeout)
            .send()
    };
    let started = Instant::now();
    let response = match send().await {
        Ok(response) => response,
        // A pooled connection the origin closed as the request left (its idle timeout):
        // the request never reached it, and a GET is asked again once, on a new connection.
        Err(err) if !err.is_timeout() && started.elapsed() < STALE_CONNECTION => {
            match send().await {
                Ok(response) => response,
                Err(err) => return failed(err.to_string()),
            }
        }
        Err(err) => return failed(err.to_string()),
    };
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
    };
    let content_type = header("content-type");
    let cache_control = header("cache-control");
    let too_large = || failed(format!("its answer is larger than {max} bytes"));
    if response.content_length().is_some_and(|n| n > max as u64) {
        return too_large();
    }
    let mut response = response;
    let mut body = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > max => return too_large(),
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => return failed(err.to_string()),
        }
    }
    Fetched {
        status,
        content_type,
        cache_control,
        body: body.freeze(),
    }
}

fn kept(proxy: &HlsProxy, uri: &str) -> Option<Fetched> {
    let kept = lock(&proxy.kept);
    kept.0
        .get(uri)
        .filter(|(at, _)| at.elapsed() < KEEP)
        .map(|(_, f)| f.clone())
}

fn keep(proxy: &HlsProxy, uri: &str, fetched: &Fetched) {
    let mut kept = lock(&proxy.kept);
    let (map, order) = &mut *kept;
    if map
        .insert(uri.to_owned(), (Instant::now(), fetched.clone()))
        .is_none()
    {
        order.push_back(uri.to_owned());
    }
    let mut bytes: usize = map.values().map(|(_, f)| f.body.len()).sum();
    while order.len() > KEEP_MAX || bytes > KEEP_MAX_BYTES {
        let Some(old) = order.pop_front() else { break };
        if let Some((_, gone)) = map.remove(&old) {
            bytes -= gone.body.len();
        }
    }
}

fn respond(fetched: Fetched) -> Response<Body> {
    let mut response = Response::new(Body::from(fetched.body));
    *response.status_mut() = fetched.status;
    let headers = response.headers_mut();
    if let Some(v) = fetched.content_type {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = fetched.cache_control {
        headers.insert(header::CACHE_CONTROL, v);
    }
    response
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn unavailable(why: String) -> Response<Body> {
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n"));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-request HTTP server answering `answer` (raw bytes) on loopback.
    async fn origin(answer: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(&answer).await;
        });
        format!("http://{addr}/live/cam/seg1.m4s")
    }

    fn answer(length_header: bool, body: &[u8]) -> Vec<u8> {
        let mut head = "HTTP/1.1 200 OK\r\nconnection: close\r\n".to_owned();
        if length_header {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        let mut bytes = format!("{head}\r\n").into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// An origin that answers the first request on a kept-alive connection, then closes
    /// that connection when the second request arrives (as when its idle timeout strikes
    /// just as a request is sent), and answers on a new connection.
    #[tokio::test]
    async fn a_request_on_a_connection_the_origin_closed_is_sent_again() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        tokio::spawn({
            let accepted = Arc::clone(&accepted);
            async move {
                let ok = answer(true, b"#EXTM3U\n").to_vec();
                let keep_alive = String::from_utf8(ok.clone())
                    .unwrap()
                    .replace("connection: close\r\n", "");
                let (mut first, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0u8; 4096];
                let _ = first.read(&mut request).await;
                first.write_all(keep_alive.as_bytes()).await.unwrap();
                let _ = first.read(&mut request).await;
                drop(first);
                let (mut second, _) = listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let _ = second.read(&mut request).await;
                second.write_all(&ok).await.unwrap();
            }
        });
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/live/cam/v0/index.m3u8");
        for _ in 0..2 {
            let fetched = get(&client, &url, "t", Duration::from_secs(2), 1 << 20).await;
            assert_eq!(fetched.status, StatusCode::OK);
            assert_eq!(&fetched.body[..], b"#EXTM3U\n");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_origin_answer_over_the_limit_is_a_502_with_or_without_its_length() {
        let client = reqwest::Client::new();
        let body = vec![7u8; 4096];
        for length_header in [true, false] {
            let url = origin(answer(length_header, &body)).await;
            let fetched = get(&client, &url, "t", Duration::from_secs(2), 4096).await;
            assert_eq!(fetched.status, StatusCode::OK);
            assert_eq!(fetched.body.len(), 4096);
            let url = origin(answer(length_header, &body)).await;
            let fetched = get(&client, &url, "t", Duration::from_secs(2), 4095).await;
            assert_eq!(fetched.status, StatusCode::BAD_GATEWAY, "{length_header}");
            let why = String::from_utf8_lossy(&fetched.body).into_owned();
            assert!(why.contains("larger than 4095 bytes"), "{why}");
        }
    }
}
