//! HLS playlists over recorded fMP4 files, by byte range (no remux): each file's init
//! segment is an `EXT-X-MAP` range, each segment a run of whole fragments from one that
//! starts with a key frame, the files joined by `EXT-X-DISCONTINUITY`.

use std::fmt::Write as _;

use super::index::{FileIndex, Fragment};

/// A segment grows by whole fragments until it is at least this long (s) and the next
/// fragment starts with a key frame.
const SEGMENT_SECS: f64 = 2.0;

/// One recording to list.
#[derive(Debug, Clone, Copy)]
pub struct VodFile<'a> {
    /// The URI of the file, relative to the playlist (query included).
    pub uri: &'a str,
    /// Its index.
    pub index: &'a FileIndex,
}

/// A segment: a byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    offset: u64,
    len: u64,
    duration: f64,
    wall_ms: Option<u64>,
}

/// The playlist of the segments of `files` that overlap `[start_ms, end_ms)` (wall clock,
/// ms since the Unix epoch; `None` for open ends). `live` makes an `EVENT` playlist without
/// `EXT-X-ENDLIST` (a recording still growing, for a DVR window). `None` when no segment
/// falls in the range.
pub fn playlist(
    files: &[VodFile<'_>],
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    live: bool,
) -> Option<String> {
    let mut body = String::new();
    let mut longest = 1.0f64;
    let mut listed = 0usize;
    let last_file = files.len().checked_sub(1);
    for (index, file) in files.iter().enumerate() {
        if file.index.init_len == 0 {
            continue;
        }
        let fragments = &file.index.fragments;
        if (start_ms.is_some() || end_ms.is_some()) && fragments.iter().any(|f| f.wall_ms.is_none())
        {
            continue;
        }
        // The range starts at the last key frame at or before `start`.
        let from = match start_ms {
            Some(start) => fragments
                .iter()
                .rposition(|f| f.independent && f.wall_ms.is_some_and(|w| w <= start))
                .unwrap_or(0),
            None => 0,
        };
        let mut all = segments(&fragments[from..]);
        if live && last_file == Some(index) {
            // The file being written: its last segment may still grow by the next fragments,
            // and a listed segment must never change.
            all.pop();
        }
        let segments: Vec<Range> = all
            .into_iter()
            .filter(|s| {
                let wall = s.wall_ms.unwrap_or(0);
                let end = wall.saturating_add((s.duration * 1000.0) as u64);
                start_ms.is_none_or(|start| end > start) && end_ms.is_none_or(|e| wall < e)
            })
            .collect();
        if segments.is_empty() {
            continue;
        }
        if listed > 0 {
            body.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = writeln!(
            body,
            "#EXT-X-MAP:URI=\"{}\",BYTERANGE=\"{}@0\"",
            file.uri, file.index.init_len
        );
        if let Some(wall) = segments[0].wall_ms {
            let _ = writeln!(
                body,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                crate::hls::iso8601(wall)
            );
        }
        for s in &segments {
            longest = longest.max(s.duration);
            let _ = writeln!(
                body,
                "#EXTINF:{:.3},\n#EXT-X-BYTERANGE:{}@{}\n{}",
                s.duration, s.len, s.offset, file.uri
            );
            listed += 1;
        }
    }
    if listed == 0 {
        return None;
    }
    let mut out = String::with_capacity(body.len() + 200);
    out.push_str("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let _ = writeln!(
        out,
        "#EXT-X-TARGETDURATION:{}",
        longest.round().max(1.0) as u64
    );
    out.push_str("#EXT-X-MEDIA-SEQUENCE:0\n");
    out.push_str(if live {
        "#EXT-X-PLAYLIST-TYPE:EVENT\n"
    } else {
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
    });
    out.push_str(&body);
    if !live {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

/// Fragments grouped into segments that start with a key frame.
fn segments(fragments: &[Fragment]) -> Vec<Range> {
    let mut out: Vec<Range> = Vec::new();
    for fragment in fragments {
        let extend = out.last().is_some_and(|last| {
            let contiguous = last.offset.saturating_add(last.len) == fragment.offset;
            contiguous && (!fragment.independent || last.duration < SEGMENT_SECS - 0.05)
        });
        if extend {
            if let Some(last) = out.last_mut() {
                last.len += fragment.len;
                last.duration += fragment.duration;
            }
        } else if fragment.independent || !out.is_empty() {
            out.push(Range {
                offset: fragment.offset,
                len: fragment.len,
                duration: fragment.duration,
                wall_ms: fragment.wall_ms,
            });
        }
    }
    out
}
