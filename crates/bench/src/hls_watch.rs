//! A checking HLS client for the endurance scenarios: reloads a media playlist about once a
//! second and fetches its newest segment, and checks that the media sequence never goes back
//! and that every listed segment it asks for is there.

use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// Largest response read, bytes.
const MAX_RESPONSE: usize = 64 << 20;

/// What one HLS client saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HlsWatched {
    /// Playlist requests made.
    pub polls: u64,
    /// Playlists answered 200.
    pub playlists: u64,
    /// Playlists answered 404 (stream not published).
    pub not_found: u64,
    /// Segments fetched with 200 and a body.
    pub segments: u64,
    /// Times the media sequence went back.
    pub sequence_backwards: u64,
    /// Other failures (status, unreadable playlist, missing segment, connection errors).
    pub errors: u64,
    /// The first problem, described.
    pub first_problem: Option<String>,
    /// The last media sequence seen.
    pub last_sequence: Option<u64>,
}

impl HlsWatched {
    fn problem(&mut self, what: String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(what);
        }
    }
}

/// Follows the media playlist at `http://{authority}{path}` every `interval` until `until`
/// or `stop`.
pub async fn follow(
    authority: &str,
    path: &str,
    interval: Duration,
    until: tokio::time::Instant,
    mut stop: watch::Receiver<bool>,
) -> HlsWatched {
    let mut seen = HlsWatched::default();
    let base = path.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned();
    let mut last_segment = String::new();
    while tokio::time::Instant::now() < until && !*stop.borrow() {
        seen.polls += 1;
        match get(authority, path).await {
            Ok((200, body)) => {
                seen.playlists += 1;
                let text = String::from_utf8_lossy(&body);
                match read_playlist(&text) {
                    Some((sequence, newest)) => {
                        if seen.last_sequence.is_some_and(|last| sequence < last) {
                            seen.sequence_backwards += 1;
                            let last = seen.last_sequence.unwrap_or_default();
                            seen.problem(format!("media sequence {last} -> {sequence}"));
                        }
                        seen.last_sequence = Some(sequence);
                        if let Some(uri) = newest.filter(|uri| *uri != last_segment) {
                            fetch_segment(authority, &base, &uri, &mut seen).await;
                            last_segment = uri;
                        }
                    }
                    None => {
                        seen.errors += 1;
                        seen.problem(format!("unreadable playlist: {:.80}", text));
                    }
                }
            }
            Ok((404, _)) => seen.not_found += 1,
            Ok((status, _)) => {
                seen.errors += 1;
                seen.problem(format!("{path}: HTTP {status}"));
            }
            Err(err) => {
                seen.errors += 1;
                seen.problem(format!("{path}: {err}"));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    }
    seen
}

async fn fetch_segment(authority: &str, base: &str, uri: &str, seen: &mut HlsWatched) {
    let path = if uri.starts_with('/') {
        uri.to_owned()
    } else {
        format!("{base}/{uri}")
    };
    match get(authority, &path).await {
        Ok((200, body)) if !body.is_empty() => seen.segments += 1,
        Ok((status, body)) => {
            seen.errors += 1;
            seen.problem(format!("{path}: HTTP {status}, {} bytes", body.len()));
        }
        Err(err) => {
            seen.errors += 1;
            seen.problem(format!("{path}: {err}"));
        }
    }
}

/// `EXT-X-MEDIA-SEQUENCE` and the newest full segment's URI of a media playlist.
pub fn read_playlist(text: &str) -> Option<(u64, Option<String>)> {
    if !text.starts_with("#EXTM3U") {
        return None;
    }
    let mut sequence = None;
    let mut newest = None;
    let mut after_extinf = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            sequence = v.trim().parse().ok();
        } else if line.starts_with("#EXTINF:") {
            after_extinf = true;
        } else if after_extinf && !line.starts_with('#') && !line.is_empty() {
            newest = Some(line.to_owned());
            after_extinf = false;
        }
    }
    Some((sequence?, newest))
}

/// One `GET` over HTTP/1.0 (the server closes after the body): status and body.
pub async fn get(authority: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let exchange = async {
        let mut socket = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n");
        socket
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut response = Vec::new();
        let mut limited = (&mut socket).take(MAX_RESPONSE as u64);
        limited
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok::<_, String>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .map_err(|_| "timed out".to_owned())??;
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no response head")?;
    let status = std::str::from_utf8(&response[..end])
        .ok()
        .and_then(|head| head.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or("no status code")?;
    Ok((status, response[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sequence_and_newest_segment() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:41\n\
                    #EXTINF:2.000,\nseg41.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"part5.m4s\"\n\
                    #EXTINF:2.000,\nseg42.m4s\n#EXT-X-PART:DURATION=0.2,URI=\"part9.m4s\"\n\
                    #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part10.m4s\"\n";
        assert_eq!(
            read_playlist(text),
            Some((41, Some("seg42.m4s".to_owned())))
        );
        assert_eq!(read_playlist("#EXTM3U\n"), None);
        assert_eq!(read_playlist("<html>"), None);
    }
}
