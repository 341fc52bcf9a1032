//! `hls.dir`: a copy of a stream's HLS and DASH files on disk, for a CDN origin or a plain web
//! server, next to the in-memory serving.
//!
//! Under `{hls.dir}/{app}/{stream}/`: `index.m3u8` (multivariant), `index.mpd`, per rendition
//! `v0/index.m3u8`, `v0/init{N}.mp4`, `v0/seg{N}.m4s`, and `ts/index.m3u8`, `ts/seg{N}.ts`.
//! The media playlists on disk are plain HLS (no parts, no blocking reload: a static server
//! cannot hold requests). Segments are written once, when finished; playlists are replaced
//! atomically (written aside, then renamed); a segment's file is removed when the packager
//! drops it from memory (RFC 8216's window plus as many again). Files stay when the packager
//! stops. Stream names that are not plain file names (`..`, slashes, control characters) are
//! not written, with a log line. Disk errors are logged once per stream and never stop the
//! stream or the in-memory HLS.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tracing::warn;
use weir_media::cmaf::Packager;
use weir_media::hls::Segmenter;

/// One file operation, planned under the packager's lock and done off the runtime.
pub(super) enum Op {
    /// Writes a new file.
    Write(PathBuf, Vec<Bytes>),
    /// Replaces a file atomically.
    Replace(PathBuf, Bytes),
    /// Removes a file.
    Remove(PathBuf),
}

/// What has been written of one stream.
pub(super) struct DirWriter {
    base: PathBuf,
    /// Per rendition (`v0`, `ts`): the lowest and the next sequence number on disk.
    segments: HashMap<String, (u64, u64)>,
    inits: HashSet<(String, u32)>,
    failed: bool,
}

/// Whether `name` can be a directory name under the HLS root as it is.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
}

impl DirWriter {
    /// A writer for stream `path` (`app/name`) under `root`; `None` (with a log line) if the
    /// path cannot be a directory there.
    pub(super) fn new(root: &Path, path: &str) -> Option<DirWriter> {
        let (app, name) = path.split_once('/')?;
        if !plain_name(app) || !plain_name(name) {
            warn!(stream = %path, "hls.dir: not writing this stream: its name is not a plain file name (letters, digits, - _ . ~)");
            return None;
        }
        Some(DirWriter {
            base: root.join(app).join(name),
            segments: HashMap::new(),
            inits: HashSet::new(),
            failed: false,
        })
    }

    /// What to write after the CMAF packager moved on.
    pub(super) fn plan_cmaf(&mut self, packager: &Packager, now_ms: u64) -> Vec<Op> {
        let mut ops = Vec::new();
        let mut changed = false;
        for r in packager.ready_renditions() {
            let dir = self.base.join(r.name());
            let segments = r.segments();
            let (Some(first), Some(last)) = (segments.front(), segments.back()) else {
                continue;
            };
            let (low, next) = self
                .segments
                .get(r.name())
                .copied()
                .unwrap_or((first.sequence, first.sequence));
            for segment in segments.iter().filter(|s| s.sequence >= next) {
                let init = (r.name().to_owned(), segment.init_id);
                if !self.inits.contains(&init) {
                    if let Some(data) = r.init_segment_by_id(segment.init_id) {
                        ops.push(Op::Write(
                            dir.join(format!("init{}.mp4", segment.init_id)),
                            vec![data],
                        ));
                        self.inits.insert(init);
                    }
                }
                ops.push(Op::Write(
                    dir.join(format!("seg{}.m4s", segment.sequence)),
                    segment.chunks.clone(),
                ));
                changed = true;
            }
            for gone in low..first.sequence {
                ops.push(Op::Remove(dir.join(format!("seg{gone}.m4s"))));
            }
            if last.sequence + 1 > next {
                ops.push(Op::Replace(
                    dir.join("index.m3u8"),
                    Bytes::from(r.plain_playlist()),
                ));
            }
            self.segments
                .insert(r.name().to_owned(), (first.sequence, last.sequence + 1));
        }
        if changed {
            if let Some(text) = packager.multivariant() {
                ops.push(Op::Replace(self.base.join("index.m3u8"), Bytes::from(text)));
            }
            if let Some(text) = packager.mpd(now_ms) {
                ops.push(Op::Replace(self.base.join("index.mpd"), Bytes::from(text)));
            }
        }
        ops
    }

    /// What to write after the TS segmenter moved on.
    pub(super) fn plan_ts(&mut self, segmenter: &Segmenter) -> Vec<Op> {
        let mut ops = Vec::new();
        let dir = self.base.join("ts");
        let count = segmenter.segment_count();
        // The oldest segment still held, searched from the oldest one written (not from 0:
        // a day-long stream has tens of thousands behind it).
        let from = self.segments.get("ts").map_or(0, |(low, _)| *low);
        let Some(first) = (from..count).find(|&n| segmenter.segment(n).is_some()) else {
            return ops;
        };
        let (low, next) = self.segments.get("ts").copied().unwrap_or((first, first));
        for n in next.max(first)..count {
            if let Some(segment) = segmenter.segment(n) {
                ops.push(Op::Write(
                    dir.join(format!("seg{n}.ts")),
                    vec![segment.data.clone()],
                ));
            }
        }
        for gone in low..first {
            ops.push(Op::Remove(dir.join(format!("seg{gone}.ts"))));
        }
        if count > next {
            ops.push(Op::Replace(
                dir.join("index.m3u8"),
                Bytes::from(segmenter.playlist()),
            ));
        }
        self.segments.insert("ts".to_owned(), (first, count));
        ops
    }

    /// Does `ops` (blocking file IO, off the async workers); the first failure is logged.
    pub(super) async fn apply(&mut self, ops: Vec<Op>, stream: &str) {
        if ops.is_empty() {
            return;
        }
        let result = tokio::task::spawn_blocking(move || {
            for op in ops {
                run(op)?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        let err = match result {
            Ok(Ok(())) => return,
            Ok(Err(err)) => err.to_string(),
            Err(err) => err.to_string(),
        };
        if !std::mem::replace(&mut self.failed, true) {
            warn!(stream = %stream, dir = %self.base.display(),
                "hls.dir: cannot write the HLS copy ({err}); HLS keeps being served from memory");
        }
    }
}

fn run(op: Op) -> std::io::Result<()> {
    match op {
        Op::Write(path, chunks) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, chunks.concat())
        }
        Op::Replace(path, data) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut aside = path.clone().into_os_string();
            aside.push(".tmp");
            std::fs::write(&aside, &data)?;
            std::fs::rename(&aside, &path)
        }
        Op::Remove(path) => match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_become_directories() {
        let root = Path::new("/srv/hls");
        assert!(DirWriter::new(root, "live/cam-1_a.b~").is_some());
        for bad in [
            "live/..",
            "../x",
            "live/.",
            "live/a\\b",
            "live/a b",
            "live/",
            "x",
            "live/a\nb",
        ] {
            assert!(DirWriter::new(root, bad).is_none(), "{bad:?}");
        }
    }
}
