//! The player page at `/`: the live streams (refreshing from `/streams.json`) and, per stream,
//! a player (hls.js for HLS and Low-Latency HLS, mpegts.js for HTTP-FLV, dash.js for DASH,
//! the browser's own HLS where it has it) with the URLs to copy for OBS, VLC and ffplay.
//!
//! The page is ours (`player.html`). The player libraries load from pinned jsDelivr URLs with
//! their Subresource Integrity hashes, or, with `http.player_lib_dir`, from that directory at
//! `/player/lib/{file}` (an offline machine, or the tests, which serve npm-installed copies).
//! No third-party code is in the repository.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::text;
use crate::rtmp::Context;

const PAGE: &str = include_str!("player.html");

/// (name, file, pinned CDN URL, SRI hash): the player libraries the page loads.
const LIBS: [(&str, &str, &str, &str); 3] = [
    (
        "hls",
        "hls.min.js",
        "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js",
        "sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg",
    ),
    (
        "mpegts",
        "mpegts.js",
        "https://cdn.jsdelivr.net/npm/mpegts.js@1.8.2/dist/mpegts.js",
        "sha384-sQp+4cJv0jChNCYvgy6W0RSfQZB/w6d3ZTDoIBlY4Uorfw4PLS56T2yM2z47bSkl",
    ),
    (
        "dash",
        "dash.all.min.js",
        "https://cdn.jsdelivr.net/npm/dashjs@5.2.1/dist/modern/umd/dash.all.min.js",
        "sha384-NwbBGevMmVf2Lv50ZqQWLZ0dLH69dxVHYeS+8t54klP9odovQ2+Ms0J4SWfKzPkr",
    ),
];

/// `GET /`: the page, with where its libraries come from.
pub(super) async fn page(State(context): State<Arc<Context>>) -> Response<Body> {
    let local = !context.config.http.player_lib_dir.is_empty();
    let libs: serde_json::Map<String, serde_json::Value> = LIBS
        .iter()
        .map(|(name, file, url, integrity)| {
            let value = if local {
                serde_json::json!({ "src": format!("/player/lib/{file}") })
            } else {
                serde_json::json!({ "src": url, "integrity": integrity })
            };
            ((*name).to_owned(), value)
        })
        .collect();
    let body = PAGE
        .replace("/*LIBS*/{}", &serde_json::Value::Object(libs).to_string())
        .replace(
            "/*RTMP_PORT*/1935",
            &context.config.rtmp.addr.port().to_string(),
        );
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One live stream in `/streams.json`.
#[derive(Serialize)]
struct StreamEntry {
    /// `app/name`.
    path: String,
    /// Its tracks in one line (`video#0 avc1 High L3.1 1280x720 ...`).
    tracks: String,
    /// Ingest bitrate over the last 10 s, kbit/s.
    kbps: f64,
    /// Viewers over every protocol.
    viewers: usize,
    /// Health findings: `severity: message` each.
    health: Vec<String>,
    /// Seconds a viewer may seek back (the stream is recorded with `record.dvr_secs`).
    dvr_secs: u64,
}

/// `GET /streams.json`: the published streams, for the page.
pub(super) async fn streams(State(context): State<Arc<Context>>) -> Response<Body> {
    let live = context.live();
    let dvr = |path: &str| {
        let recorded = context.recordings.of(path).is_some();
        let app = path.split('/').next().unwrap_or_default();
        live.app_rules(app)
            .filter(|_| recorded)
            .map_or(0, |r| r.record.dvr_secs)
    };
    let list: Vec<StreamEntry> = context
        .hub
        .stats()
        .into_iter()
        .filter(|s| s.published)
        .map(|s| StreamEntry {
            tracks: s
                .tracks
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            kbps: s.bitrate_10s as f64 / 1000.0,
            viewers: s.viewers.iter().map(|(_, n)| n).sum(),
            health: s
                .health
                .iter()
                .map(|f| format!("{}: {}", f.severity.as_str(), f.message))
                .collect(),
            dvr_secs: dvr(&s.path),
            path: s.path,
        })
        .collect();
    let mut response = Response::new(Body::from(
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
    ));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /player/lib/{file}`: a player library from `http.player_lib_dir` (only the three
/// file names the page uses; nothing else under the directory is served).
pub(super) async fn lib(
    State(context): State<Arc<Context>>,
    Path(file): Path<String>,
) -> Response<Body> {
    let missing = || {
        text(
            StatusCode::NOT_FOUND,
            "player libraries are served from a CDN unless http.player_lib_dir is set\n",
        )
    };
    let dir = std::path::Path::new(&context.config.http.player_lib_dir);
    if dir.as_os_str().is_empty() {
        return missing();
    }
    let Some((_, name, ..)) = LIBS.iter().find(|(_, name, ..)| *name == file) else {
        return missing();
    };
    match tokio::fs::read(dir.join(name)).await {
        Ok(data) => {
            let mut response = Response::new(Body::from(data));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript"),
            );
            response
        }
        Err(err) => text(
            StatusCode::NOT_FOUND,
            format!(
                "{name} is not in http.player_lib_dir ({}): {err}\n",
                dir.display()
            ),
        ),
    }
}
