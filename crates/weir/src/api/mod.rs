//! The admin listener (`api.addr`, loopback by default): the HTTP API under `/api/v1` and
//! Prometheus `/metrics`. With `api.tokens` set, every request needs
//! `Authorization: Bearer TOKEN` whose SHA-256 is listed (401 otherwise, and nothing
//! changes). Errors are JSON `{"error": "…"}`; request bodies are capped at 64 KiB (413).
//! The OpenAPI 3.1 document at `/api/v1/openapi.json` is generated from the handlers and the
//! types in [`views`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use utoipa::OpenApi;

use crate::registry::Role;
use crate::rtmp::Context;

pub mod views;

use views::{
    ClientView, ClientsView, ClosedView, DrainRequest, ErrorView, ListenersView, ServerView,
    StreamView, StreamsView,
};

/// Largest request body taken.
const MAX_BODY: usize = 64 * 1024;
/// Largest page of `GET /clients`.
const MAX_PAGE: usize = 1000;

/// What the admin handlers share.
pub(crate) struct Admin {
    pub(crate) context: Arc<Context>,
    pub(crate) started: Instant,
    pub(crate) started_at: SystemTime,
    pub(crate) listeners: ListenersView,
}

impl Admin {
    pub(crate) fn new(context: Arc<Context>, listeners: ListenersView) -> Admin {
        Admin {
            context,
            started: Instant::now(),
            started_at: SystemTime::now(),
            listeners,
        }
    }
}

/// The OpenAPI document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "weir admin API",
        description = "Streams, clients, drain and reload of a weir live streaming server. Units are in the field names: _bps bits per second, _secs seconds, _unix Unix seconds."
    ),
    paths(
        server_info,
        streams,
        stream,
        kick_stream,
        clients,
        close_client,
        drain,
        reload,
        cluster,
        openapi_json
    ),
    components(schemas(
        ServerView,
        ListenersView,
        StreamsView,
        StreamView,
        views::PublisherView,
        views::TrackView,
        views::ViewersView,
        views::FramesView,
        views::HealthView,
        views::RelayView,
        ClientsView,
        ClientView,
        DrainRequest,
        ClosedView,
        ErrorView,
        crate::reload::Report,
        views::ClusterView,
        views::ClusterNodeView,
        views::ClusterLeaseView,
        views::ClusterPullView
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Serves the admin listener until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    admin: Arc<Admin>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(admin);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        warn!("admin listener failed: {err}");
    }
}

fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/api/v1/server", get(server_info))
        .route("/api/v1/streams", get(streams))
        .route(
            "/api/v1/streams/{app}/{name}",
            get(stream).delete(kick_stream),
        )
        .route("/api/v1/clients", get(clients))
        .route("/api/v1/clients/{id}", delete(close_client))
        .route("/api/v1/drain", post(drain))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/metrics", get(crate::metrics::scrape))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see /api/v1/openapi.json",
            )
        })
        .layer(middleware::from_fn_with_state(Arc::clone(&admin), guard))
        .with_state(admin)
}

/// A JSON error.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorView {
            error: message.into(),
        }),
    )
        .into_response()
}

/// The bearer token check and the body cap, before any handler.
async fn guard(State(admin): State<Arc<Admin>>, request: Request<Body>, next: Next) -> Response {
    // Read per request: a reload may change the tokens.
    let tokens: Vec<[u8; 32]> = admin
        .context
        .live()
        .api
        .tokens
        .iter()
        .filter_map(|t| crate::auth::parse_hash(t))
        .collect();
    if !tokens.is_empty() && !authorized(&tokens, request.headers()) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "a bearer token from api.tokens is needed: Authorization: Bearer TOKEN",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request bodies are at most {MAX_BODY} bytes"),
        );
    }
    next.run(request).await
}

/// Whether the request carries a listed token (every hash is compared).
fn authorized(tokens: &[[u8; 32]], headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    let mut found = false;
    for hash in tokens {
        let same = hash
            .iter()
            .zip(&digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        found |= same;
    }
    found
}

/// The origin/edge cluster: its nodes, the stream leases with their epochs, this node's
/// leases and pulls, Redis's health and latency.
#[utoipa::path(get, path = "/api/v1/cluster", security(("bearer" = [])),
    responses((status = 200, body = views::ClusterView), (status = 401, body = ErrorView)))]
async fn cluster(State(admin): State<Arc<Admin>>) -> Json<views::ClusterView> {
    use views::{ClusterLeaseView, ClusterNodeView, ClusterPullView, ClusterView};
    let context = &admin.context;
    let Some(cluster) = &context.cluster else {
        return Json(ClusterView {
            enabled: false,
            node_id: String::new(),
            redis_up: false,
            redis_latency_ms: 0.0,
            redis_error: None,
            nodes: Vec::new(),
            leases: Vec::new(),
            held: Vec::new(),
            pulls: Vec::new(),
        });
    };
    let now_ms = crate::cluster::unix_ms();
    let (nodes, leases, redis_error) = match cluster.view().await {
        Ok(view) => (
            view.nodes
                .into_iter()
                .map(|n| ClusterNodeView {
                    this_node: n.id == cluster.node_id(),
                    id: n.id,
                    rtmp: n.rtmp,
                    http: n.http,
                    beats: n.beat,
                    started_unix: n.started_ms as f64 / 1000.0,
                    seen_unix: n.seen_ms as f64 / 1000.0,
                })
                .collect(),
            view.leases
                .into_iter()
                .map(|l| ClusterLeaseView {
                    stream: l.stream,
                    node: l.node,
                    epoch: l.epoch,
                    held_secs: now_ms.saturating_sub(l.since_ms) as f64 / 1000.0,
                    alive: l.alive,
                })
                .collect(),
            None,
        ),
        Err(err) => (Vec::new(), Vec::new(), Some(err)),
    };
    let held = cluster
        .held()
        .into_iter()
        .map(|(stream, epoch, held)| ClusterLeaseView {
            stream,
            node: cluster.node_id().to_owned(),
            epoch,
            held_secs: held.as_secs_f64(),
            alive: true,
        })
        .collect();
    let pulls = cluster
        .pulled()
        .into_iter()
        .map(|stream| {
            let owner = cluster.known_owner(&stream).flatten();
            let viewers = context
                .hub
                .stream_stats(&stream)
                .map_or(0, |s| s.viewer_count() as u64);
            ClusterPullView {
                origin: owner.as_ref().map_or_else(String::new, |o| o.node.clone()),
                epoch: owner.map_or(0, |o| o.epoch),
                viewers,
                stream,
            }
        })
        .collect();
    Json(ClusterView {
        enabled: true,
        node_id: cluster.node_id().to_owned(),
        redis_up: cluster.store_up(),
        redis_latency_ms: cluster.store_latency().as_secs_f64() * 1000.0,
        redis_error,
        nodes,
        leases,
        held,
        pulls,
    })
}

/// Version, uptime, configuration source, listeners.
#[utoipa::path(get, path = "/api/v1/server", security(("bearer" = [])),
    responses((status = 200, body = ServerView), (status = 401, body = ErrorView)))]
async fn server_info(State(admin): State<Arc<Admin>>) -> Json<ServerView> {
    let context = &admin.context;
    Json(ServerView {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: admin.started.elapsed().as_secs_f64(),
        started_unix: admin
            .started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        config_source: context.config.source.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        ),
        draining: *context.draining.borrow(),
        listeners: {
            use crate::listeners::{local, Kind};
            let now = |kind| local(context, kind).map(|a| a.to_string());
            ListenersView {
                rtmp: now(Kind::Rtmp).unwrap_or_else(|| admin.listeners.rtmp.clone()),
                rtmps: now(Kind::Rtmps).or_else(|| admin.listeners.rtmps.clone()),
                http: now(Kind::Http).unwrap_or_else(|| admin.listeners.http.clone()),
                api: admin.listeners.api.clone(),
            }
        },
        streams: context.hub.published_keys().len(),
        connections: context.registry.list().len(),
    })
}

/// The view of a stream with its publisher's entry from `registry` and its relays.
fn stream_view(
    context: &Context,
    registry: &[crate::registry::ConnectionInfo],
    stats: &crate::stats::StreamStats,
) -> StreamView {
    let publisher = registry
        .iter()
        .find(|c| matches!(&c.role, Role::Publishing(k) if k.path() == stats.path));
    let recording = context.recordings.of(&stats.path).and_then(|r| {
        r.file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|f| f.display().to_string())
    });
    StreamView::of(
        stats,
        publisher,
        &context.relays.of(&stats.path),
        context.pulls.upstream(&stats.path),
        recording,
    )
}

/// Every stream with a publisher or viewers.
#[utoipa::path(get, path = "/api/v1/streams", security(("bearer" = [])),
    responses((status = 200, body = StreamsView), (status = 401, body = ErrorView)))]
async fn streams(State(admin): State<Arc<Admin>>) -> Json<StreamsView> {
    let context = &admin.context;
    let registry = context.registry.list();
    let mut all = context.hub.stats();
    all.retain(|s| s.published || s.viewer_count() > 0);
    all.sort_by(|a, b| a.path.cmp(&b.path));
    let streams = all
        .iter()
        .map(|stats| stream_view(context, &registry, stats))
        .collect();
    Json(StreamsView { streams })
}

/// One stream.
#[utoipa::path(get, path = "/api/v1/streams/{app}/{name}", security(("bearer" = [])),
    params(("app" = String, Path, description = "application"), ("name" = String, Path, description = "stream name")),
    responses((status = 200, body = StreamView), (status = 404, body = ErrorView), (status = 401, body = ErrorView)))]
async fn stream(
    State(admin): State<Arc<Admin>>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    let path = format!("{app}/{name}");
    match admin.context.hub.stream_stats(&path) {
        Some(stats) if stats.published || stats.viewer_count() > 0 => {
            let registry = admin.context.registry.list();
            Json(stream_view(&admin.context, &registry, &stats)).into_response()
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no stream {path} (nobody publishes or plays it)"),
        ),
    }
}

/// Disconnects the stream's publisher (its viewers stay, waiting for the next one).
#[utoipa::path(delete, path = "/api/v1/streams/{app}/{name}", security(("bearer" = [])),
    params(("app" = String, Path, description = "application"), ("name" = String, Path, description = "stream name")),
    responses((status = 200, body = ClosedView), (status = 404, body = ErrorView), (status = 401, body = ErrorView)))]
async fn kick_stream(
    State(admin): State<Arc<Admin>>,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    let path = format!("{app}/{name}");
    let registry = &admin.context.registry;
    let mut closed = 0;
    for info in registry.list() {
        if matches!(&info.role, Role::Publishing(k) if k.path() == path)
            && registry.close(info.id, "publisher kicked through the API")
        {
            closed += 1;
        }
    }
    if closed == 0 {
        return error(StatusCode::NOT_FOUND, format!("nobody publishes {path}"));
    }
    info!(stream = %path, closed, "publisher kicked through the API");
    Json(ClosedView { closed }).into_response()
}

/// `GET /api/v1/clients` filters and paging.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct ClientsQuery {
    /// Only clients publishing or playing this stream (`app/name`).
    stream: Option<String>,
    /// Only clients of this protocol (`rtmp`, `rtmps`, `http-flv`).
    protocol: Option<String>,
    /// Skip this many (default 0).
    offset: Option<usize>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
}

/// Open connections, by id, filtered and paged.
#[utoipa::path(get, path = "/api/v1/clients", security(("bearer" = [])), params(ClientsQuery),
    responses((status = 200, body = ClientsView), (status = 400, body = ErrorView), (status = 401, body = ErrorView)))]
async fn clients(
    State(admin): State<Arc<Admin>>,
    query: Result<Query<ClientsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad query: use stream=APP/NAME, protocol=rtmp|rtmps|http-flv, offset=N, limit=N",
        );
    };
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(100).min(MAX_PAGE);
    let matching: Vec<ClientView> = admin
        .context
        .registry
        .list()
        .iter()
        .filter(|c| {
            query
                .protocol
                .as_deref()
                .is_none_or(|wanted| wanted == c.protocol.as_str())
        })
        .map(ClientView::of)
        .filter(|c| match &query.stream {
            Some(stream) => c.stream.as_deref() == Some(stream.as_str()),
            None => true,
        })
        .collect();
    let total = matching.len();
    let clients = matching.into_iter().skip(offset).take(limit).collect();
    Json(ClientsView {
        clients,
        total,
        offset,
        limit,
    })
    .into_response()
}

/// Closes one connection.
#[utoipa::path(delete, path = "/api/v1/clients/{id}", security(("bearer" = [])),
    params(("id" = u64, Path, description = "connection id")),
    responses((status = 200, body = ClosedView), (status = 404, body = ErrorView), (status = 400, body = ErrorView), (status = 401, body = ErrorView)))]
async fn close_client(State(admin): State<Arc<Admin>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is no connection id"),
        );
    };
    if admin.context.registry.close(id, "closed through the API") {
        info!(id, "connection closed through the API");
        Json(ClosedView { closed: 1 }).into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("no connection {id}"))
    }
}

/// Drains the server as SIGTERM does: no new clients, clients that handle E-RTMP
/// ReconnectRequest are asked to reconnect, the others are closed; the process exits when
/// they are gone.
#[utoipa::path(post, path = "/api/v1/drain", security(("bearer" = [])),
    request_body(content = Option<DrainRequest>, description = "optional: why"),
    responses((status = 202, body = ClosedView), (status = 400, body = ErrorView), (status = 413, body = ErrorView), (status = 401, body = ErrorView)))]
async fn drain(State(admin): State<Arc<Admin>>, body: axum::body::Bytes) -> Response {
    let request: DrainRequest = if body.iter().all(u8::is_ascii_whitespace) {
        DrainRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(err) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("the body is not {{\"reason\": \"…\"}}: {err}"),
                )
            }
        }
    };
    let reason = request
        .reason
        .unwrap_or_else(|| "server draining (API)".to_owned());
    let closed = admin.context.registry.list().len();
    info!(reason = %reason, connections = closed, "drain requested through the API");
    admin.context.request_drain(&reason);
    (StatusCode::ACCEPTED, Json(ClosedView { closed })).into_response()
}

/// Re-reads the configuration file and applies it to new connections and sessions (nobody
/// is disconnected); an invalid file is refused as a whole and the current one stays.
#[utoipa::path(post, path = "/api/v1/reload", security(("bearer" = [])),
    responses((status = 200, body = crate::reload::Report), (status = 400, body = ErrorView), (status = 401, body = ErrorView)))]
async fn reload(State(admin): State<Arc<Admin>>) -> Response {
    match crate::reload::from_file(&admin.context) {
        Ok(report) => Json(report).into_response(),
        Err(why) => {
            warn!("reload refused, the current configuration stays: {why}");
            error(
                StatusCode::BAD_REQUEST,
                format!("{why} (the current configuration stays)"),
            )
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", security(("bearer" = [])),
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> Response {
    Json(ApiDoc::openapi()).into_response()
}

/// The listeners of a started server, for `GET /server`.
pub(crate) fn listeners(
    rtmp: SocketAddr,
    rtmps: Option<SocketAddr>,
    http: SocketAddr,
    api: SocketAddr,
) -> ListenersView {
    ListenersView {
        rtmp: rtmp.to_string(),
        rtmps: rtmps.map(|a| a.to_string()),
        http: http.to_string(),
        api: api.to_string(),
    }
}
