//! The HTTP listener: HTTP-FLV and WebSocket-FLV today; the other browser outputs (HLS, DASH,
//! the player page) plug in here next.
//!
//! axum over hyper (HTTP/1.1 and HTTP/2 cleartext). Media endpoints answer CORS requests from
//! any origin (`OPTIONS` preflights included), `HEAD` works wherever `GET` does, and unknown
//! paths get a short 404 text.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::warn;

use crate::rtmp::Context;

mod flv;
mod hls;

pub(crate) use hls::HlsStreams;
use weir_media::hls::Container;

/// Serves HTTP on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(context);
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    })
    .await;
    if let Err(err) = result {
        warn!("http listener stopped: {err}");
    }
}

fn router(context: Arc<Context>) -> Router {
    Router::new()
        .route("/{app}/{file}", get(media))
        .route("/{app}/{stream}/{file}", get(hls_fmp4))
        .route("/{app}/{stream}/ts/{file}", get(hls_ts))
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

/// `/{app}/{stream}/index.m3u8`, `init.mp4`, `seg{N}.m4s`.
async fn hls_fmp4(
    State(context): State<Arc<Context>>,
    Path((app, stream, file)): Path<(String, String, String)>,
) -> Response<Body> {
    hls_file(context, &app, &stream, &file, Container::Fmp4).await
}

/// `/{app}/{stream}/ts/index.m3u8`, `seg{N}.ts`.
async fn hls_ts(
    State(context): State<Arc<Context>>,
    Path((app, stream, file)): Path<(String, String, String)>,
) -> Response<Body> {
    hls_file(context, &app, &stream, &file, Container::Ts).await
}

async fn hls_file(
    context: Arc<Context>,
    app: &str,
    stream: &str,
    file: &str,
    container: Container,
) -> Response<Body> {
    let path = format!("{app}/{stream}");
    if file == "index.m3u8" {
        hls::playlist(context, &path, container).await
    } else {
        hls::file(&context, &path, container, file)
    }
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
        "not found; streams play at /{app}/{stream}.flv, /{app}/{stream}/index.m3u8 and /{app}/{stream}/ts/index.m3u8\n",
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
