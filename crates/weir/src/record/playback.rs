//! Recordings over HTTP: `GET /{app}/{stream}/recordings` lists a stream's files (start,
//! duration, size), `GET /{app}/{stream}/recordings/{file}` serves one (byte ranges, for
//! players and downloads), and `GET /{app}/{stream}/vod.m3u8?start=…&end=…` is an HLS
//! playlist over the fMP4 fragments recorded in a wall-clock range (RFC 3339 times or Unix
//! seconds; either end may be left open), by byte range, with no remux. While the stream is
//! recorded and no `end` is given the playlist is an `EVENT` playlist that grows.
//!
//! A file's index is read from its boxes (`weir_media::record::index`) and kept until the
//! file changes. FLV recordings are listed and served but not in playlists (their start is
//! the file's modification time less their duration).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use serde_json::json;
use tower::ServiceExt;
use weir_media::record::index::{box_header, FileIndex, Indexer, MAX_BOX_BODY};
use weir_media::record::vod::{playlist, VodFile};

use super::template::StreamFiles;
use crate::http::text;
use crate::rtmp::Context;

/// Files indexed at most in the cache; past that it starts over.
const MAX_CACHED: usize = 4096;

/// A file's index with the length and modification time it was read at.
type Cached = (u64, SystemTime, Arc<FileIndex>);

/// Indexes of recorded files, by path.
#[derive(Debug, Default)]
pub(crate) struct IndexCache {
    entries: Mutex<HashMap<PathBuf, Cached>>,
}

/// The recording template of `app`, or an answer saying there is none.
fn stream_files(
    context: &Context,
    app: &str,
    stream: &str,
) -> Result<StreamFiles, Box<Response<Body>>> {
    let live = context.live();
    let template = live
        .app_rules(app)
        .filter(|r| r.record.format.is_some())
        .map(|r| r.record.path.clone());
    match template {
        Some(template) => Ok(StreamFiles::new(&template, app, stream)),
        None => Err(Box::new(text(
            StatusCode::NOT_FOUND,
            format!(
                "{app} is not recorded: add [apps.{app}.record] format = \"fmp4\" to the config\n"
            ),
        ))),
    }
}

/// A file's id in URLs: its path below the stream's directory, `/` escaped.
fn file_id(relative: &str) -> String {
    relative.replace('%', "%25").replace('/', "%2F")
}

/// The index of `path`, from the cache while the file is unchanged.
fn index_of(cache: &IndexCache, path: &Path) -> Option<Arc<FileIndex>> {
    let meta = std::fs::metadata(path).ok()?;
    let (len, modified) = (meta.len(), meta.modified().ok()?);
    {
        let entries = cache.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((l, m, index)) = entries.get(path) {
            if *l == len && *m == modified {
                return Some(Arc::clone(index));
            }
        }
    }
    let index = Arc::new(read_index(path, len).ok()?);
    let mut entries = cache.entries.lock().unwrap_or_else(|p| p.into_inner());
    if entries.len() >= MAX_CACHED {
        entries.clear();
    }
    entries.insert(path.to_owned(), (len, modified, Arc::clone(&index)));
    Some(index)
}

/// Reads an fMP4 recording's index box by box (bodies only for the small boxes).
fn read_index(path: &Path, len: u64) -> std::io::Result<FileIndex> {
    let mut file = std::fs::File::open(path)?;
    let mut indexer = Indexer::new();
    let mut at = 0u64;
    let mut head = [0u8; 16];
    while at + 8 <= len {
        file.seek(SeekFrom::Start(at))?;
        let want = (len - at).min(16) as usize;
        file.read_exact(&mut head[..want])?;
        let Some(header) = box_header(&head[..want]) else {
            break;
        };
        let size = header.size.unwrap_or(len - at);
        let end = at.checked_add(size).filter(|&e| e <= len && e > at);
        if size < u64::from(header.header_len) || end.is_none() {
            break;
        }
        let body = if Indexer::wants_body(&header.kind) {
            if size > MAX_BOX_BODY {
                break;
            }
            let mut body = vec![0u8; (size - u64::from(header.header_len)) as usize];
            file.seek(SeekFrom::Start(at + u64::from(header.header_len)))?;
            file.read_exact(&mut body)?;
            Some(body)
        } else {
            None
        };
        if indexer.push_box(at, header, body.as_deref()).is_err() {
            break;
        }
        at += size;
    }
    Ok(indexer.finish())
}

/// An FLV recording's duration: the last tag's timestamp, found from the file's last back
/// pointer; `None` if the file does not end with a whole tag.
fn flv_duration_ms(path: &Path, len: u64) -> Option<u64> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut word = [0u8; 4];
    file.seek(SeekFrom::Start(len.checked_sub(4)?)).ok()?;
    file.read_exact(&mut word).ok()?;
    let tag_len = u64::from(u32::from_be_bytes(word));
    let tag_start = len.checked_sub(4 + tag_len)?;
    let mut header = [0u8; 11];
    file.seek(SeekFrom::Start(tag_start)).ok()?;
    file.read_exact(&mut header).ok()?;
    let size = u64::from(u32::from_be_bytes([0, header[1], header[2], header[3]]));
    if size + 11 != tag_len {
        return None;
    }
    Some(u64::from(u32::from_be_bytes([
        header[7], header[4], header[5], header[6],
    ])))
}

/// One listed file.
struct Listed {
    relative: String,
    path: PathBuf,
    size: u64,
    fmp4: bool,
    start_ms: Option<u64>,
    duration_secs: Option<f64>,
    index: Option<Arc<FileIndex>>,
}

fn list(context: &Context, files: &StreamFiles) -> Vec<Listed> {
    files
        .list()
        .into_iter()
        .filter_map(|relative| {
            let path = files.base.join(&relative);
            let meta = std::fs::metadata(&path).ok()?;
            let fmp4 = relative.ends_with(".mp4") || relative.ends_with(".m4s");
            if fmp4 {
                let index = index_of(&context.recordings.indexes, &path);
                Some(Listed {
                    relative,
                    path,
                    size: meta.len(),
                    fmp4,
                    start_ms: index.as_ref().and_then(|i| i.start_wall_ms()),
                    duration_secs: index.as_ref().map(|i| i.duration()),
                    index,
                })
            } else {
                let duration = flv_duration_ms(&path, meta.len());
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                Some(Listed {
                    relative,
                    path,
                    size: meta.len(),
                    fmp4,
                    start_ms: modified.map(|m| m.saturating_sub(duration.unwrap_or(0))),
                    duration_secs: duration.map(|d| d as f64 / 1000.0),
                    index: None,
                })
            }
        })
        .collect()
}

/// `GET /{app}/{stream}/recordings`.
pub(crate) async fn recordings(
    context: Arc<Context>,
    app: String,
    stream: String,
    carry: Option<String>,
) -> Response<Body> {
    let files = match stream_files(&context, &app, &stream) {
        Ok(files) => files,
        Err(answer) => return *answer,
    };
    let recording = context
        .recordings
        .of(&format!("{app}/{stream}"))
        .and_then(|s| s.file.lock().unwrap_or_else(|p| p.into_inner()).clone());
    let listing = {
        let context = Arc::clone(&context);
        tokio::task::spawn_blocking(move || list(&context, &files))
            .await
            .unwrap_or_default()
    };
    let query = carry.map(|q| format!("?{q}")).unwrap_or_default();
    let entries: Vec<_> = listing
        .iter()
        .map(|f| {
            json!({
                "file": f.relative,
                "url": format!("/{app}/{stream}/recordings/{}{query}", file_id(&f.relative)),
                "format": if f.fmp4 { "fmp4" } else { "flv" },
                "start": f.start_ms.map(weir_media::hls::iso8601),
                "duration_secs": f.duration_secs,
                "size_bytes": f.size,
                "recording": recording.as_deref() == Some(f.path.as_path()),
            })
        })
        .collect();
    let body = json!({
        "stream": format!("{app}/{stream}"),
        "vod": format!("/{app}/{stream}/vod.m3u8{query}"),
        "recordings": entries,
    });
    let mut response = Response::new(Body::from(body.to_string()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A time in a query: RFC 3339 (`2026-11-27T10:30:00Z`) or Unix seconds.
fn parse_time(value: &str) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs >= 0.0).then_some((secs * 1000.0) as u64);
    }
    let time = humantime::parse_rfc3339_weak(value).ok()?;
    time.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// A query parameter, percent-decoded.
fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (hex, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, b) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /{app}/{stream}/vod.m3u8?start=…&end=…`.
pub(crate) async fn vod(
    context: Arc<Context>,
    app: String,
    stream: String,
    query: Option<String>,
    carry: Option<String>,
) -> Response<Body> {
    let files = match stream_files(&context, &app, &stream) {
        Ok(files) => files,
        Err(answer) => return *answer,
    };
    let start = param(query.as_deref(), "start");
    let end = param(query.as_deref(), "end");
    let start_ms = match start.as_deref().map(parse_time) {
        Some(None) => return bad_time("start"),
        other => other.flatten(),
    };
    let end_ms = match end.as_deref().map(parse_time) {
        Some(None) => return bad_time("end"),
        other => other.flatten(),
    };
    let recording = context.recordings.of(&format!("{app}/{stream}")).is_some();
    let listing = {
        let context = Arc::clone(&context);
        tokio::task::spawn_blocking(move || list(&context, &files))
            .await
            .unwrap_or_default()
    };
    // Only the other parameters (a signature, a token) are carried to the files.
    let carry = carry
        .map(|q| {
            q.split('&')
                .filter(|p| !p.starts_with("start=") && !p.starts_with("end="))
                .collect::<Vec<_>>()
                .join("&")
        })
        .filter(|q| !q.is_empty())
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let uris: Vec<String> = listing
        .iter()
        .map(|f| format!("recordings/{}{carry}", file_id(&f.relative)))
        .collect();
    let vod_files: Vec<VodFile<'_>> = listing
        .iter()
        .zip(&uris)
        .filter_map(|(f, uri)| {
            Some(VodFile {
                uri,
                index: f.index.as_deref()?,
            })
        })
        .collect();
    let live = recording && end_ms.is_none();
    match playlist(&vod_files, start_ms, end_ms, live) {
        Some(text) => {
            let mut response = Response::new(Body::from(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.apple.mpegurl"),
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => crate::http::text(
            StatusCode::NOT_FOUND,
            format!("no fMP4 recording of {app}/{stream} in that time range; GET /{app}/{stream}/recordings lists them\n"),
        ),
    }
}

fn bad_time(name: &str) -> Response<Body> {
    text(
        StatusCode::BAD_REQUEST,
        format!("{name} is not a time: use RFC 3339 (like 2026-11-27T10:30:00Z) or Unix seconds\n"),
    )
}

/// `GET /{app}/{stream}/recordings/{file}`: the file, with byte ranges.
pub(crate) async fn file(
    context: Arc<Context>,
    app: String,
    stream: String,
    file: String,
    request: Request<Body>,
) -> Response<Body> {
    let files = match stream_files(&context, &app, &stream) {
        Ok(files) => files,
        Err(answer) => return *answer,
    };
    let Some(path) = files.resolve(&file) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("{file} is not a recording of {app}/{stream}; GET /{app}/{stream}/recordings lists them\n"),
        );
    };
    // The type follows the extension (video/mp4, video/x-flv); ranges and HEAD work.
    let serve = tower_http::services::ServeFile::new(&path);
    match serve.oneshot(request).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(err) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")),
    }
}
