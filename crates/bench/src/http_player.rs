//! A measuring HTTP-FLV player: `GET /{app}/{stream}.flv` over HTTP/1.0 (the body is the raw
//! FLV stream until the server closes), FLV tags parsed as they arrive, video frames counted
//! and their stamps read like the RTMP player's.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_media::Frame;

use crate::player::{PlayerResult, Shared};

/// Plays `http://{authority}/{app}/{stream}.flv` until `shared.stop`.
pub async fn run(
    authority: String,
    app: String,
    stream: String,
    shared: std::sync::Arc<Shared>,
) -> PlayerResult {
    let mut result = PlayerResult::default();
    let started = Instant::now();
    let outcome = play(&authority, &app, &stream, &shared, started, &mut result).await;
    result.ended(outcome, &shared)
}

async fn play(
    authority: &str,
    app: &str,
    stream: &str,
    shared: &Shared,
    started: Instant,
    result: &mut PlayerResult,
) -> Result<(), String> {
    let mut socket = TcpStream::connect(authority)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    socket.set_nodelay(true).map_err(|err| err.to_string())?;
    let request = format!("GET /{app}/{stream}.flv HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|err| format!("write: {err}"))?;
    let joined_ns = shared.epoch.elapsed().as_nanos() as u64;
    let mut stop = shared.stop_signal.subscribe();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // The response head, then the FLV header (9 bytes and PreviousTagSize0).
    let mut in_body = false;
    let mut skip_header = 13usize;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        buf.reserve(64 * 1024);
        let read = tokio::select! {
            read = socket.read_buf(&mut buf) => read,
            _ = stop.changed() => return Ok(()),
        };
        let n = match read {
            Ok(0) => return Err("server closed the connection".into()),
            Ok(n) => n,
            Err(err) => return Err(format!("read: {err}")),
        };
        let measuring = shared.measuring.load(Ordering::Relaxed);
        if measuring {
            result.bytes += n as u64;
        }
        if !in_body {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if buf.len() > 16 * 1024 {
                    return Err("response head too long".into());
                }
                continue;
            };
            if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
                let line = String::from_utf8_lossy(&buf[..end.min(80)]).into_owned();
                return Err(format!("http: {line}"));
            }
            let _ = buf.split_to(end + 4);
            in_body = true;
        }
        if skip_header > 0 {
            let n = skip_header.min(buf.len());
            let _ = buf.split_to(n);
            skip_header -= n;
        }
        let now_ns = shared.epoch.elapsed().as_nanos() as u64;
        // Whole tags: 11-byte header, body, 4-byte back pointer.
        while buf.len() >= 11 {
            let size = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 11 + size + 4 {
                break;
            }
            let kind = buf[0];
            let mut tag = buf.split_to(11 + size + 4);
            let _ = tag.split_to(11);
            tag.truncate(size);
            if kind != 9 {
                continue;
            }
            let frame = Frame::video(0, tag.freeze());
            if frame.info.is_sequence_header || !frame.info.is_coded_frame {
                continue;
            }
            result.video_frame(&frame, shared, started, measuring, (joined_ns, now_ns));
        }
    }
}
