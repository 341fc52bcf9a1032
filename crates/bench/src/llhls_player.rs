//! A measuring Low-Latency HLS client, the way hls.js follows a live stream in low-latency
//! mode: one keep-alive HTTP/1.1 connection, the video rendition's playlist
//! (`/{app}/{stream}/v0/index.m3u8`) reloaded with blocking requests for the next part
//! (`_HLS_msn`/`_HLS_part`), every listed part not yet fetched, and the preload-hinted part
//! asked for before it exists (held by the server until it is finished). The samples of each
//! part are read out of its `moof`/`mdat` and counted like the other players' video frames;
//! their send-time stamps (carried through unchanged in the sample data) give the latency
//! from the publisher to the part arriving here.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_media::Frame;

use crate::player::{PlayerResult, Shared};

/// Follows `http://{authority}/{app}/{stream}/v0/index.m3u8` until `shared.stop`.
pub async fn run(
    authority: String,
    app: String,
    stream: String,
    shared: Arc<Shared>,
) -> PlayerResult {
    let mut result = PlayerResult::default();
    let started = Instant::now();
    let outcome = follow(&authority, &app, &stream, &shared, started, &mut result).await;
    result.ended(outcome, &shared)
}

/// One keep-alive connection: request, then a `Content-Length` body.
struct Connection {
    socket: TcpStream,
    authority: String,
    buf: BytesMut,
}

impl Connection {
    async fn get(&mut self, path: &str, shared: &Shared) -> Result<Bytes, String> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.authority);
        self.socket
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut stop = shared.stop_signal.subscribe();
        let mut head_end = None;
        let mut length = None;
        loop {
            if head_end.is_none() {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                    if !head.starts_with("http/1.1 200") {
                        let line = head.lines().next().unwrap_or_default().to_owned();
                        return Err(format!("{path}: {line}"));
                    }
                    length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok());
                    if length.is_none() {
                        return Err(format!("{path}: no content-length"));
                    }
                    head_end = Some(end + 4);
                } else if self.buf.len() > 16 * 1024 {
                    return Err("response head too long".into());
                }
            }
            if let (Some(start), Some(len)) = (head_end, length) {
                if self.buf.len() >= start + len {
                    let _ = self.buf.split_to(start);
                    return Ok(self.buf.split_to(len).freeze());
                }
            }
            self.buf.reserve(64 * 1024);
            let read = tokio::select! {
                read = self.socket.read_buf(&mut self.buf) => read,
                _ = stop.changed() => return Err("stopped".into()),
            };
            match read {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// What a playlist says about the parts: (part number, its segment, its index in it).
fn parts_of(playlist: &str) -> Vec<(u64, u64, u64)> {
    let mut sequence = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let mut index = 0;
    let mut parts = Vec::new();
    for line in playlist.lines() {
        if let Some(skipped) = line.strip_prefix("#EXT-X-SKIP:SKIPPED-SEGMENTS=") {
            sequence += skipped.parse::<u64>().unwrap_or(0);
        } else if line.starts_with("#EXT-X-PART:") {
            let number = line
                .split("URI=\"part")
                .nth(1)
                .and_then(|rest| rest.split('.').next())
                .and_then(|n| n.parse().ok());
            if let Some(number) = number {
                parts.push((number, sequence, index));
                index += 1;
            }
        } else if line.starts_with("#EXTINF:") {
            sequence += 1;
            index = 0;
        }
    }
    parts
}

/// The part number of the playlist's `EXT-X-PRELOAD-HINT`.
fn preload_hint(playlist: &str) -> Option<u64> {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:"))?
        .split("URI=\"part")
        .nth(1)?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The sample payloads of one `moof` + `mdat` fragment (or several back to back).
fn samples(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut sizes: Vec<usize> = Vec::new();
    while data.len() >= 8 {
        let size = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if size < 8 || size > data.len() {
            break;
        }
        let (kind, body) = (&data[4..8], &data[8..size]);
        match kind {
            b"moof" => sizes = trun_sizes(body),
            b"mdat" => {
                let mut at = 0;
                for len in sizes.drain(..) {
                    if let Some(sample) = body.get(at..at + len) {
                        out.push(sample);
                    }
                    at += len;
                }
            }
            _ => {}
        }
        data = &data[size..];
    }
    out
}

/// The sample sizes in a `moof`'s `traf`/`trun` (the layout weir writes: duration, size,
/// flags and composition offset per sample).
fn trun_sizes(mut moof: &[u8]) -> Vec<usize> {
    while moof.len() >= 8 {
        let size = u32::from_be_bytes([moof[0], moof[1], moof[2], moof[3]]) as usize;
        if size < 8 || size > moof.len() {
            break;
        }
        match &moof[4..8] {
            b"traf" => return trun_sizes(&moof[8..size]),
            b"trun" => {
                let body = &moof[8..size];
                let Some(&[_, f1, f2, f3, c0, c1, c2, c3]) = body.get(..8) else {
                    return Vec::new();
                };
                let flags = u32::from_be_bytes([0, f1, f2, f3]);
                let count = u32::from_be_bytes([c0, c1, c2, c3]) as usize;
                let mut at = 8;
                if flags & 0x1 != 0 {
                    at += 4;
                }
                if flags & 0x4 != 0 {
                    at += 4;
                }
                let per = 4 * [0x100, 0x200, 0x400, 0x800]
                    .iter()
                    .filter(|&&f| flags & f != 0)
                    .count();
                let size_at = if flags & 0x100 != 0 { 4 } else { 0 };
                return (0..count)
                    .filter_map(|i| {
                        let at = at + i * per + size_at;
                        body.get(at..at + 4)
                            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
                    })
                    .collect();
            }
            _ => {}
        }
        moof = &moof[size..];
    }
    Vec::new()
}

async fn follow(
    authority: &str,
    app: &str,
    stream: &str,
    shared: &Shared,
    started: Instant,
    result: &mut PlayerResult,
) -> Result<(), String> {
    let socket = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut connection = Connection {
        socket,
        authority: authority.to_owned(),
        buf: BytesMut::with_capacity(64 * 1024),
    };
    let joined_ns = shared.epoch.elapsed().as_nanos() as u64;
    let base = format!("/{app}/{stream}/v0");
    let mut playlist = connection
        .get(&format!("{base}/index.m3u8"), shared)
        .await?;
    // Start at the newest part, like a player joining at the live edge.
    let mut next_part = parts_of(&String::from_utf8_lossy(&playlist))
        .last()
        .map_or(0, |p| p.0);
    while !shared.stop.load(Ordering::Relaxed) {
        let text = String::from_utf8_lossy(&playlist).into_owned();
        let parts = parts_of(&text);
        let first_new = next_part;
        let mut wanted: Vec<u64> = parts
            .iter()
            .map(|p| p.0)
            .filter(|&n| n >= first_new)
            .collect();
        // Then the preload hint, asked for before it exists (the server holds the request
        // until it is finished), as hls.js does: the part arrives in one hop.
        if let Some(hint) = preload_hint(&text).filter(|&h| h >= first_new) {
            if !wanted.contains(&hint) {
                wanted.push(hint);
            }
        }
        for number in wanted {
            let data = connection
                .get(&format!("{base}/part{number}.m4s"), shared)
                .await?;
            let measuring = shared.measuring.load(Ordering::Relaxed);
            if measuring {
                result.bytes += data.len() as u64;
            }
            let now_ns = shared.epoch.elapsed().as_nanos() as u64;
            let parts_samples = samples(&data);
            if let Some(sent_ns) = parts_samples.last().and_then(|s| crate::stamp::read(s)) {
                if measuring && shared.latency && sent_ns >= joined_ns && now_ns >= sent_ns {
                    result
                        .part_end_latencies_ms
                        .push((now_ns - sent_ns) as f32 / 1e6);
                }
            }
            for sample in parts_samples {
                // The stamp sits in the last bytes of the sample as of the FLV payload.
                let frame = Frame {
                    payload: data.slice_ref(sample),
                    ..Frame::video(0, Bytes::from_static(&[0x27, 1, 0, 0, 0]))
                };
                result.video_frame(&frame, shared, started, measuring, (joined_ns, now_ns));
            }
            next_part = number + 1;
        }
        // Block until the part after the last one listed exists.
        let (msn, part) = match parts.last() {
            Some(&(_, msn, index)) => (msn, index + 1),
            None => (0, 0),
        };
        playlist = connection
            .get(
                &format!("{base}/index.m3u8?_HLS_msn={msn}&_HLS_part={part}"),
                shared,
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_numbered_by_segment() {
        let playlist = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:7\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part30.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part31.m4s\"\n#EXTINF:0.4,\nseg7.m4s\n\
            #EXT-X-PART:DURATION=0.2,URI=\"part32.m4s\",INDEPENDENT=YES\n\
            #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part33.m4s\"\n";
        assert_eq!(parts_of(playlist), [(30, 7, 0), (31, 7, 1), (32, 8, 0)]);
        assert_eq!(preload_hint(playlist), Some(33));
    }
}
