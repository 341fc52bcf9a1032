//! The HTTP listener: HTTP-FLV and WebSocket-FLV today; the other browser outputs (HLS, DASH,
//! the player page) plug in here next.
//!
//! axum over hyper (HTTP/1.1 and HTTP/2 cleartext). Media endpoints answer CORS requests from
//! any origin (`OPTIONS` preflights included), `HEAD` works wherever `GET` does, and unknown
//! paths get a short 404 text.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::BytesMut;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::warn;

use crate::log_throttle::Throttle;
use crate::metrics::Metrics;
use crate::policy::{Answer, Client, Decision, StreamRequest};
use crate::registry::Protocol;
use crate::rtmp::Context;
use crate::stream_key::StreamKey;

mod cluster_proxy;
mod flv;
mod hls;
mod hls_dir;
mod page;
mod prefixed;

pub(crate) use cluster_proxy::HlsProxy;
pub(crate) use hls::HlsStreams;

/// Longest time a client may take to send a request's head (slowloris).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head read (a bigger one gets 431).
const MAX_HEAD: usize = 16 * 1024;

/// Serves HTTP on `listener` until `shutdown` turns true. Every connection takes a permit of
/// `rtmp.max_connections` (shared with RTMP); a request head must arrive within 10 s and fit
/// in 16 KiB.
pub(crate) async fn serve(
    listener: Arc<TcpListener>,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
    mut retire: watch::Receiver<bool>,
) {
    let app = router(Arc::clone(&context));
    let mut tasks = JoinSet::new();
    let mut listener = Some(listener);
    // A flood is refused one connection at a time: one log line a second says how many.
    let mut refusals = Throttle::new(Duration::from_secs(1));
    loop {
        // A retired listener (a reload moved it) serves its connections to their end.
        if listener.is_none() && tasks.is_empty() {
            return;
        }
        tokio::select! {
            accepted = accept_next(&listener), if listener.is_some() => {
                let (socket, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        warn!("http accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Our own probe while a drain hands the port over (see handoff.rs).
                if context.probes.claim(peer) {
                    continue;
                }
                let metrics = context.hub.metrics();
                let Ok(permit) = Arc::clone(&context.permits).try_acquire_owned() else {
                    if let Some(more) = refusals.allow(std::time::Instant::now()) {
                        warn!(%peer, limit = context.config.rtmp.max_connections, more,
                            "refused http connection: connection limit reached (rtmp.max_connections)");
                    }
                    Metrics::count(&metrics.refused, &[("protocol", "http"), ("reason", "max_connections")]);
                    continue;
                };
                // A trusted proxy's connections carry many clients: the per-address limits
                // apply to the client a PROXY header names, or not at all.
                let slot = if context.proxies.trusts(peer.ip()) {
                    None
                } else {
                    match context.admit(peer.ip()) {
                        Ok(slot) => Some(slot),
                        Err(why) => {
                            if let Some(more) = refusals.allow(std::time::Instant::now()) {
                                warn!(%peer, more, "refused http connection: {why}");
                            }
                            Metrics::count(&metrics.refused, &[("protocol", "http"), ("reason", "per_ip")]);
                            continue;
                        }
                    }
                };
                Metrics::count(&metrics.accepted, &[("protocol", "http")]);
                let _ = socket.set_nodelay(true);
                tasks.spawn(connection(
                    socket,
                    peer,
                    app.clone(),
                    Arc::clone(&context),
                    shutdown.clone(),
                    (permit, slot),
                ));
            }
            stop = shutdown.changed() => if stop.is_err() || *shutdown.borrow() { break },
            changed = retire.changed(), if listener.is_some() => {
                if changed.is_err() || *retire.borrow() {
                    listener = None;
                    tracing::info!("the http listener closed (a reload moved it); its connections go on");
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    // Closed at once (a new weir sharing the port takes the new requests); requests under
    // way finish.
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

/// The next connection of a listener that is still open.
async fn accept_next(
    listener: &Option<Arc<TcpListener>>,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// How far the first request head of a connection was read.
enum Head {
    /// A whole head (or bytes that are no HTTP/1 request: hyper answers them).
    Complete,
    /// More than [`MAX_HEAD`] bytes without the end of a head.
    TooLarge,
}

/// Reads the first request head of a connection into `buf`.
async fn read_head(socket: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        match httparse::Request::new(&mut headers).parse(buf) {
            Ok(httparse::Status::Partial) => {}
            // Complete, or not HTTP/1 (h2c's preface, garbage, too many headers): hyper
            // takes it from here.
            _ => return Ok(Head::Complete),
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Head::TooLarge);
        }
        buf.reserve(4096);
        if socket.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// A plain HTTP/1 `GET` or `HEAD` of `/{app}/{stream}.flv` (no WebSocket upgrade, nothing
/// percent-encoded): served without hyper.
fn raw_flv_request(head: &[u8]) -> Option<flv::RawFlvRequest> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let head_only = match request.method? {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
    {
        return None;
    }
    let target = request.path?;
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query.to_owned())),
        None => (target, None),
    };
    if path.contains('%') {
        return None;
    }
    let (app, file) = path.strip_prefix('/')?.split_once('/')?;
    let stream = file.strip_suffix(".flv")?;
    if app.is_empty() || stream.is_empty() || stream.contains('/') {
        return None;
    }
    Some(flv::RawFlvRequest {
        app: app.to_owned(),
        stream: stream.to_owned(),
        query,
        head_only,
        minor_version: request.version?.min(1),
    })
}

/// One HTTP connection until it ends or the server stops. Its first request head is read
/// here: a plain HTTP-FLV request is served on the socket directly ([`flv::play_raw`]);
/// anything else (HTTP/1.1 with upgrades, h2c) goes to hyper with the bytes read so far.
async fn connection(
    mut socket: TcpStream,
    mut peer: SocketAddr,
    app: Router,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
    mut permit: (OwnedSemaphorePermit, Option<crate::limits::IpSlot>),
) {
    if context.proxies.http_header() && context.proxies.trusts(peer.ip()) {
        let read = tokio::time::timeout(HEADER_TIMEOUT, crate::proxy::read_header(&mut socket));
        let client = match read.await {
            Ok(Ok(client)) => client.unwrap_or(peer),
            Ok(Err(err)) => {
                tracing::info!(proxy = %peer, "http connection closed: {err}");
                return;
            }
            Err(_) => return,
        };
        if client != peer {
            match context.admit(client.ip()) {
                Ok(slot) => permit.1 = Some(slot),
                Err(why) => {
                    warn!(peer = %client, proxy = %peer, "refused http connection: {why}");
                    return;
                }
            }
            peer = client;
        }
    }
    let proxies = Arc::clone(&context.proxies);
    if let Some(certificates) = &context.https {
        // HTTPS: the TLS handshake within the head timeout, then everything through hyper.
        let acceptor = certificates.acceptor();
        let accepted = tokio::select! {
            accepted = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(socket)) => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if let Ok(Ok(tls)) = accepted {
            serve_hyper(tls, peer, proxies, app, shutdown).await;
        }
        drop(permit);
        return;
    }
    let mut head = BytesMut::with_capacity(1024);
    let read = tokio::select! {
        read = tokio::time::timeout(HEADER_TIMEOUT, read_head(&mut socket, &mut head)) => read,
        _ = shutdown.wait_for(|stop| *stop) => return,
    };
    match read {
        // Too slow (slowloris), or gone before a whole head: closed.
        Err(_) | Ok(Err(_)) => return,
        Ok(Ok(Head::TooLarge)) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                socket.write_all(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            )
            .await;
            return;
        }
        Ok(Ok(Head::Complete)) => {}
    }
    if let Some(request) = raw_flv_request(&head) {
        let client = proxies.http_client(peer, &forwarded_for(&head));
        flv::play_raw(context, client, socket, request).await;
        drop(permit);
        return;
    }
    let socket = prefixed::Prefixed::new(head, socket);
    serve_hyper(socket, peer, proxies, app, shutdown).await;
    drop(permit);
}

/// The `X-Forwarded-For` values of a request head.
fn forwarded_for(head: &[u8]) -> Vec<&str> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    if request.parse(head).is_err() {
        return Vec::new();
    }
    headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
        .filter_map(|h| std::str::from_utf8(h.value).ok())
        .collect()
}

/// Serves one connection with hyper (HTTP/1.1 with upgrades, or h2c / h2) until it ends or
/// the server stops.
async fn serve_hyper<I>(
    io: I,
    peer: SocketAddr,
    proxies: Arc<crate::proxy::Proxies>,
    app: Router,
    mut shutdown: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        // Behind a trusted reverse proxy, the client it names in X-Forwarded-For.
        let client = if proxies.trusts(peer.ip()) {
            let forwarded: Vec<&str> = request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            proxies.http_client(peer, &forwarded)
        } else {
            peer
        };
        request.extensions_mut().insert(ConnectInfo(client));
        app.clone().oneshot(request)
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

fn router(context: Arc<Context>) -> Router {
    Router::new()
        .route("/", get(page::page))
        .route("/streams.json", get(page::streams))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/player/lib/{file}", get(page::lib))
        .route("/{app}/{file}", get(media))
        .route("/{app}/{stream}/{file}", get(stream_file))
        .route("/{app}/{stream}/{sub}/{file}", get(rendition_file))
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .with_state(context)
}

/// `/{app}/{stream}.flv`; other files under an app are not there (yet).
async fn media(
    State(context): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((app, file)): Path<(String, String)>,
    request: Request<Body>,
) -> Response<Body> {
    let Some(stream) = file.strip_suffix(".flv").filter(|s| !s.is_empty()) else {
        return not_found().await;
    };
    let query = request.uri().query().map(str::to_owned);
    let output = if is_websocket(&request) {
        let (mut parts, _) = request.into_parts();
        match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => flv::Output::WebSocket(upgrade),
            Err(rejection) => return rejection.into_response(),
        }
    } else if request.method() == Method::HEAD {
        flv::Output::HeadOnly
    } else {
        flv::Output::Body
    };
    flv::play(context, peer, &app, stream, query.as_deref(), output).await
}

/// `/{app}/{stream}/index.m3u8` (HLS multivariant playlist), `index.mpd` (DASH).
async fn stream_file(
    State(context): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((app, stream, file)): Path<(String, String, String)>,
    request: Request<Body>,
) -> Response<Body> {
    let (path, carry) = match hls_admit(
        &context,
        peer,
        &app,
        &stream,
        request.uri().query(),
        trusted_request(&context, &request),
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    let metrics = Arc::clone(context.hub.metrics());
    if matches!(file.as_str(), "index.m3u8" | "index.mpd")
        && cluster_proxy::elsewhere(&context, &path)
    {
        let kind = if file == "index.mpd" {
            "mpd"
        } else {
            "playlist"
        };
        let response = cluster_proxy::serve(&context, &path, &file, request.uri().query()).await;
        count_hls(&metrics, kind, &response);
        return response;
    }
    let (kind, response) = match file.as_str() {
        "index.m3u8" => ("playlist", hls::multivariant(context, &path).await),
        "index.mpd" => ("mpd", hls::mpd(context, &path).await),
        "recordings" | "vod.m3u8" => {
            let Some((app, stream)) = path.split_once('/') else {
                return not_found().await;
            };
            let (app, stream) = (app.to_owned(), stream.to_owned());
            return if file == "recordings" {
                crate::record::playback::recordings(context, app, stream, carry).await
            } else {
                let query = request.uri().query().map(str::to_owned);
                crate::record::playback::vod(context, app, stream, query, carry).await
            };
        }
        _ => return not_found().await,
    };
    count_hls(&metrics, kind, &response);
    hls::carry_query(response, carry.as_deref()).await
}

/// Counts an answered HLS/DASH request in `weir_hls_requests`.
fn count_hls(metrics: &crate::metrics::Metrics, kind: &str, response: &Response<Body>) {
    let status = match response.status().as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    Metrics::count(&metrics.hls_requests, &[("kind", kind), ("status", status)]);
}

/// What an HLS file request asks for.
fn hls_kind(file: &str) -> &'static str {
    if file.ends_with(".m3u8") {
        "playlist"
    } else if file.starts_with("part") {
        "part"
    } else if file.starts_with("init") {
        "init"
    } else {
        "segment"
    }
}

/// `/{app}/{stream}/ts/...` (HLS MPEG-TS) and `/{app}/{stream}/{rendition}/...` (HLS CMAF).
async fn rendition_file(
    State(context): State<Arc<Context>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((app, stream, sub, file)): Path<(String, String, String, String)>,
    request: Request<Body>,
) -> Response<Body> {
    let (path, carry) = match hls_admit(
        &context,
        peer,
        &app,
        &stream,
        request.uri().query(),
        trusted_request(&context, &request),
    )
    .await
    {
        Ok(admitted) => admitted,
        Err(refused) => return refused,
    };
    if sub != "recordings" && cluster_proxy::elsewhere(&context, &path) {
        let metrics = Arc::clone(context.hub.metrics());
        let response = cluster_proxy::serve(
            &context,
            &path,
            &format!("{sub}/{file}"),
            request.uri().query(),
        )
        .await;
        count_hls(&metrics, hls_kind(&file), &response);
        return response;
    }
    if sub == "recordings" {
        let Some((app, stream)) = path.split_once('/') else {
            return not_found().await;
        };
        let (app, stream) = (app.to_owned(), stream.to_owned());
        return crate::record::playback::file(context, app, stream, file, request).await;
    }
    let metrics = Arc::clone(context.hub.metrics());
    let response = match (sub.as_str(), file.as_str()) {
        ("ts", "index.m3u8") => hls::ts_playlist(context, &path).await,
        ("ts", _) => hls::ts_file(&context, &path, &file),
        _ if is_rendition(&sub) => {
            hls::rendition_file(context, &path, &sub, &file, request.uri().query()).await
        }
        _ => return not_found().await,
    };
    count_hls(&metrics, hls_kind(&file), &response);
    hls::carry_query(response, carry.as_deref()).await
}

/// Whether `request` comes from another node of the cluster.
fn trusted_request(context: &Context, request: &Request<Body>) -> bool {
    context
        .cluster
        .as_ref()
        .is_some_and(|c| c.trusted_request(request.headers()))
}

/// Whether an HLS or DASH request may be answered: every request asks the play policy (IP
/// rules, signed URLs, the `on_play` webhook) with the request's query less the `_HLS_`
/// delivery directives. Allowed: the stream's path (a webhook may rename it) and the query
/// to carry into the URLs of a playlist or MPD (a signature or token then reaches every
/// segment and part request).
async fn hls_admit(
    context: &Context,
    peer: SocketAddr,
    app: &str,
    stream: &str,
    query: Option<&str>,
    trusted: bool,
) -> Result<(String, Option<String>), Response<Body>> {
    let carry = query
        .map(|q| {
            q.split('&')
                .filter(|pair| !pair.is_empty() && !pair.starts_with("_HLS_"))
                .collect::<Vec<_>>()
                .join("&")
        })
        .filter(|q| !q.is_empty());
    let request = StreamRequest {
        client: Client {
            id: 0,
            peer,
            protocol: Protocol::Hls,
            tc_url: None,
        },
        key: StreamKey::new(app, stream, carry.as_deref()),
    };
    if trusted {
        // Another node of the cluster, serving its own viewers (it applied the policy).
        return Ok((request.key.path().to_owned(), carry));
    }
    match decided(context, context.policy().play(&request)).await {
        Decision::Deny(reason) => {
            tracing::info!(%peer, stream = %request.key, reason = %reason, "hls request denied");
            Metrics::count(
                &context.hub.metrics().denied,
                &[("action", "play"), ("protocol", "hls")],
            );
            Err(text(StatusCode::FORBIDDEN, format!("{reason}\n")))
        }
        Decision::Allow => Ok((request.key.path().to_owned(), carry)),
        Decision::AllowAs(name) => Ok((format!("{app}/{name}"), carry)),
    }
}

/// The policy's decision, waited for up to `rtmp.request_timeout_secs` (then a refusal).
pub(crate) async fn decided(context: &Context, answer: Answer) -> Decision {
    match answer {
        Answer::Ready(decision) => decision,
        Answer::Pending(answer) => {
            match tokio::time::timeout(context.config.rtmp.request_timeout(), answer).await {
                Ok(decision) => decision,
                Err(_) => Decision::Deny(
                    "the access policy did not answer in time (rtmp.request_timeout_secs)".into(),
                ),
            }
        }
    }
}

/// `v0`, `a1`: a CMAF rendition's name.
fn is_rendition(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('v' | 'a'))
        && !chars.as_str().is_empty()
        && chars.all(|c| c.is_ascii_digit())
}

/// A WebSocket upgrade request (`Upgrade: websocket`).
fn is_websocket(request: &Request<Body>) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn not_found() -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        "not found; streams play at /{app}/{stream}.flv, /{app}/{stream}/index.m3u8, /{app}/{stream}/ts/index.m3u8 and /{app}/{stream}/index.mpd\n",
    )
}

/// A short plain-text answer.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::from(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Lets pages on any origin use the media (players fetch with CORS); answers preflights.
async fn cors(request: Request<Body>, next: Next) -> Response<Body> {
    let mut response = if request.method() == Method::OPTIONS {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        response
    } else {
        next.run(request).await
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests;
