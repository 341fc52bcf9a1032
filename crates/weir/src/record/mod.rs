//! Recording (`[apps.NAME.record]`): every stream published in the app is written to files,
//! fragmented MP4 by default or FLV, by a recorder task per stream that reads the stream like
//! a viewer.
//!
//! The files come from the sans-IO recorders of weir-media (`weir_media::record`): a file
//! is always playable up to its last fragment, and every fragment is written and synced to
//! disk (`fdatasync`) at most `record.fragment_secs` after its first sample, so `kill -9` of
//! weir, of the encoder or a power cut loses at most that much. A file closes when the
//! publisher leaves; new files start at a key frame after `record.max_file_secs` or
//! `record.max_file_mb` and (fMP4) when a codec configuration changes or a track appears.
//! Paths come from `record.path`, with app and stream names made safe ([`template`]).
//!
//! The recorder reads the stream through its own viewer core with `LagPolicy::Skip`: a disk
//! slower than the stream loses frames up to the next key frame (with a log line), and never
//! slows the publisher or the viewers. A write error (disk full, permissions) stops the
//! recording of that publish with an error line and `weir_record_errors_total`; the stream
//! goes on. A closed file is announced in the log and to `apps.NAME.on_record_done`.
//!
//! Files older than `record.delete_after` are deleted by a sweep every minute
//! ([`retention`]). Recordings are listed and played back by time over HTTP ([`playback`]).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{error, info, warn};
use weir_media::record::flv::FlvRecorder;
use weir_media::record::{Fmp4Recorder, RecordConfig, RecordEvent};
use weir_media::Frame;

use crate::config::{RecordFormat, RecordRules, Unadvertised};
use crate::policy::{Client, Ended, Ending, StreamRequest};
use crate::registry::Protocol;
use crate::rtmp::Context;
use crate::stream_key::StreamKey;
use crate::viewer::{Accepts, Collected, LagPolicy, Viewer};

pub(crate) mod playback;
pub(crate) mod retention;
pub(crate) mod template;

/// The recordings running, by stream path.
#[derive(Debug, Default)]
pub(crate) struct Recordings {
    running: Mutex<HashMap<String, Arc<RecordingState>>>,
    /// Indexes of recorded files, for listing and playback.
    pub(crate) indexes: playback::IndexCache,
}

/// What one stream's recorder is doing (read by the API and playback).
#[derive(Debug, Default)]
pub(crate) struct RecordingState {
    /// The file being written.
    pub(crate) file: Mutex<Option<PathBuf>>,
    /// Bytes written this publish.
    pub(crate) bytes: AtomicU64,
    /// Files opened this publish.
    pub(crate) files: AtomicU64,
    /// The publisher left: the recorder is closing its file (a new publish gets a new one).
    pub(crate) ending: std::sync::atomic::AtomicBool,
}

impl Recordings {
    /// The recording of stream `path`, if one runs.
    pub(crate) fn of(&self, path: &str) -> Option<Arc<RecordingState>> {
        lock(&self.running).get(path).cloned()
    }

    /// The files being written now.
    pub(crate) fn open_files(&self) -> Vec<PathBuf> {
        lock(&self.running)
            .values()
            .filter_map(|s| lock(&s.file).clone())
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A publish of `key` started: starts its recorder if its app records.
pub(crate) fn publish_started(context: &Arc<Context>, key: &StreamKey) {
    let live = context.live();
    let Some(rules) = live.app_rules(key.app()) else {
        return;
    };
    let Some(format) = rules
        .record
        .format
        .filter(|_| rules.record.records(key.name()))
    else {
        return;
    };
    let record = rules.record.clone();
    let state = Arc::new(RecordingState::default());
    {
        let mut running = lock(&context.recordings.running);
        // A recorder still closing the previous publish's file does not take the new one.
        if running
            .get(key.path())
            .is_some_and(|r| !r.ending.load(Ordering::Relaxed))
        {
            return;
        }
        running.insert(key.path().to_owned(), Arc::clone(&state));
    }
    // Subscribed before the publisher's first frame: the file starts at its first key frame,
    // however short the publish.
    let subscription = context.hub.subscribe(key.path());
    let context = Arc::clone(context);
    let key = key.clone();
    tokio::spawn(async move {
        // Leaves the table however the task ends (a panic included), unless a newer recorder
        // of the stream took its place.
        let _entry = Entry {
            context: Arc::clone(&context),
            path: key.path().to_owned(),
            state: Arc::clone(&state),
        };
        run(&context, &key, format, &record, &state, subscription).await;
    });
}

/// A recorder's place in [`Recordings`], given up when the task ends.
struct Entry {
    context: Arc<Context>,
    path: String,
    state: Arc<RecordingState>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut running = lock(&self.context.recordings.running);
        if running
            .get(&self.path)
            .is_some_and(|s| Arc::ptr_eq(s, &self.state))
        {
            running.remove(&self.path);
        }
    }
}

/// Either recorder.
enum Recorder {
    Fmp4(Fmp4Recorder),
    Flv(FlvRecorder),
}

impl Recorder {
    fn push(&mut self, frame: &Frame, wall: u64, out: &mut Vec<RecordEvent>) {
        match self {
            Recorder::Fmp4(r) => r.push(frame, wall, out),
            Recorder::Flv(r) => r.push(frame, wall, out),
        }
    }

    fn finish(&mut self, out: &mut Vec<RecordEvent>) {
        match self {
            Recorder::Fmp4(r) => r.finish(out),
            Recorder::Flv(r) => r.finish(out),
        }
    }
}

/// Records `key` until its publisher leaves or the disk fails.
async fn run(
    context: &Arc<Context>,
    key: &StreamKey,
    format: RecordFormat,
    rules: &RecordRules,
    state: &Arc<RecordingState>,
    subscription: crate::hub::Subscription,
) {
    let config = RecordConfig {
        fragment_ms: rules.fragment_secs * 1000,
        max_file_ms: rules.max_file_secs * 1000,
        max_file_bytes: rules.max_file_mb << 20,
    };
    let (mut recorder, accepts) = match format {
        RecordFormat::Fmp4 => (
            Recorder::Fmp4(Fmp4Recorder::new(config)),
            Accepts::everything(),
        ),
        RecordFormat::Flv => (
            Recorder::Flv(FlvRecorder::new(config)),
            Accepts::legacy(Unadvertised::Send),
        ),
    };
    let mut viewer = Viewer::new(subscription, LagPolicy::Skip, now()).with_accepts(accepts);
    let mut sink = Collected::default();
    viewer.start(&mut sink);
    let mut writer = Some(Writer {
        template: rules.path.clone(),
        key: key.clone(),
        format,
        open: None,
        closed: Vec::new(),
        failed: None,
        state: Arc::clone(state),
    });
    let metrics = Arc::clone(context.hub.metrics());
    let mut events = Vec::new();
    let mut skipped = 0;
    loop {
        let wall = wall_ms();
        for frame in sink.frames.drain(..) {
            recorder.push(&frame, wall, &mut events);
        }
        if let Recorder::Fmp4(r) = &mut recorder {
            for track in r.take_unsupported() {
                warn!(stream = %key, "the recording leaves this track out: {track}");
            }
        }
        let left = sink.left;
        if left {
            state.ending.store(true, Ordering::Relaxed);
            recorder.finish(&mut events);
        }
        if !events.is_empty() {
            let Some(mut w) = writer.take() else { return };
            let batch = std::mem::take(&mut events);
            let written: u64 = batch
                .iter()
                .map(|e| match e {
                    RecordEvent::Open { init, .. } => init.len() as u64,
                    RecordEvent::Fragment { chunks, .. } => {
                        chunks.iter().map(|c| c.len() as u64).sum()
                    }
                    RecordEvent::Close { .. } => 0,
                })
                .sum();
            w = match tokio::task::spawn_blocking(move || {
                w.apply(batch);
                w
            })
            .await
            {
                Ok(w) => w,
                Err(err) => {
                    error!(stream = %key, "the recording stopped: its writer failed: {err}");
                    return;
                }
            };
            metrics.record_bytes.inc_by(written);
            for closed in std::mem::take(&mut w.closed) {
                closed_file(context, key, format, closed);
            }
            if let Some(why) = w.failed.take() {
                metrics.record_errors.inc();
                error!(stream = %key,
                    "the recording stopped: {why}; the stream goes on unrecorded until its next publish (check the directory's permissions and free space)");
                if let Some(open) = w.open.take() {
                    closed_file(
                        context,
                        key,
                        format,
                        Closed {
                            reason: format!("write error: {why}"),
                            ..open.closed()
                        },
                    );
                }
                return;
            }
            writer = Some(w);
        }
        if left {
            // A new publisher that arrived before this recorder saw the old one leave is
            // recorded here (into a new file) unless a new recorder already took the stream.
            let mut running = lock(&context.recordings.running);
            let ours = running
                .get(key.path())
                .is_some_and(|s| Arc::ptr_eq(s, state));
            let republished = context
                .hub
                .stream_stats(key.path())
                .is_some_and(|s| s.published);
            if !(ours && republished) {
                if ours {
                    running.remove(key.path());
                }
                return;
            }
            state.ending.store(false, Ordering::Relaxed);
            sink.left = false;
        }
        let received = viewer.recv().await;
        let _ = viewer.handle_recv(received, &mut sink, now());
        let now_skipped = viewer.core().frames_skipped();
        if now_skipped > skipped {
            warn!(stream = %key, lost = now_skipped - skipped,
                "the recording lost frames: the disk is slower than the stream (skipping to the next key frame)");
            skipped = now_skipped;
        }
    }
}

/// A file that was closed.
#[derive(Debug)]
struct Closed {
    path: PathBuf,
    start_wall_ms: u64,
    file_ms: u64,
    bytes: u64,
    reason: String,
}

/// Logs a closed file and tells `on_record_done`.
fn closed_file(context: &Context, key: &StreamKey, format: RecordFormat, closed: Closed) {
    let path = closed.path.display().to_string();
    info!(stream = %key, file = %path, duration_secs = closed.file_ms as f64 / 1000.0,
        bytes = closed.bytes, "recording file closed: {}", closed.reason);
    context.hub.metrics().record_files.inc();
    context.policy().ended(&Ended {
        what: Ending::RecordDone {
            file: path,
            start: weir_media::hls::iso8601(closed.start_wall_ms),
            format: match format {
                RecordFormat::Fmp4 => "fmp4",
                RecordFormat::Flv => "flv",
            },
        },
        request: StreamRequest {
            client: Client {
                id: 0,
                peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                protocol: Protocol::Rtmp,
                tc_url: None,
            },
            key: key.clone(),
        },
        duration: Duration::from_millis(closed.file_ms),
        bytes: closed.bytes,
        reason: closed.reason,
    });
}

/// The file being written.
struct OpenFile {
    path: PathBuf,
    file: std::fs::File,
    start_wall_ms: u64,
    file_ms: u64,
    bytes: u64,
}

impl OpenFile {
    fn closed(&self) -> Closed {
        Closed {
            path: self.path.clone(),
            start_wall_ms: self.start_wall_ms,
            file_ms: self.file_ms,
            bytes: self.bytes,
            reason: String::new(),
        }
    }
}

/// Applies recorder events to the file system (on a blocking thread).
struct Writer {
    template: String,
    key: StreamKey,
    format: RecordFormat,
    open: Option<OpenFile>,
    closed: Vec<Closed>,
    failed: Option<String>,
    state: Arc<RecordingState>,
}

impl Writer {
    fn apply(&mut self, events: Vec<RecordEvent>) {
        for event in events {
            if self.failed.is_some() {
                return;
            }
            let result = match event {
                RecordEvent::Open {
                    init,
                    start_wall_ms,
                    rotated,
                    tracks,
                } => {
                    if let Some(open) = self.open.take() {
                        let reason = match rotated {
                            Some(why) => format!("a new file started: {why}"),
                            None => "a new file started".into(),
                        };
                        self.closed.push(Closed {
                            reason,
                            ..open.closed()
                        });
                    }
                    self.create(&init, start_wall_ms, &tracks)
                }
                RecordEvent::Fragment { chunks, file_ms } => self.append(&chunks, file_ms),
                RecordEvent::Close { file_ms } => {
                    if let Some(mut open) = self.open.take() {
                        open.file_ms = file_ms;
                        self.closed.push(Closed {
                            reason: "the publisher left".into(),
                            ..open.closed()
                        });
                    }
                    *lock(&self.state.file) = None;
                    Ok(())
                }
            };
            if let Err(why) = result {
                self.failed = Some(why);
            }
        }
    }

    /// Creates the next file (never overwriting one: a name taken gets `-1`, `-2`, ...).
    fn create(&mut self, init: &[u8], start_wall_ms: u64, tracks: &str) -> Result<(), String> {
        let ext = match self.format {
            RecordFormat::Fmp4 => "mp4",
            RecordFormat::Flv => "flv",
        };
        let path = template::expand(
            &self.template,
            self.key.app(),
            self.key.name(),
            start_wall_ms,
            ext,
        );
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        }
        let mut candidate = path.clone();
        let mut n = 0;
        let mut file = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&candidate)
            {
                Ok(file) => break file,
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {
                    n += 1;
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rec");
                    let name = match path.extension().and_then(|e| e.to_str()) {
                        Some(ext) => format!("{stem}-{n}.{ext}"),
                        None => format!("{stem}-{n}"),
                    };
                    candidate = path.with_file_name(name);
                }
                Err(err) => return Err(format!("cannot create {}: {err}", candidate.display())),
            }
        };
        file.write_all(init)
            .and_then(|()| file.sync_data())
            .map_err(|err| format!("cannot write {}: {err}", candidate.display()))?;
        info!(stream = %self.key, file = %candidate.display(), "recording to a new file ({tracks})");
        self.state.files.fetch_add(1, Ordering::Relaxed);
        self.state
            .bytes
            .fetch_add(init.len() as u64, Ordering::Relaxed);
        *lock(&self.state.file) = Some(candidate.clone());
        self.open = Some(OpenFile {
            path: candidate,
            file,
            start_wall_ms,
            file_ms: 0,
            bytes: init.len() as u64,
        });
        Ok(())
    }

    /// Appends one fragment and syncs it to disk.
    fn append(&mut self, chunks: &[bytes::Bytes], file_ms: u64) -> Result<(), String> {
        let Some(open) = &mut self.open else {
            return Ok(());
        };
        let mut len = 0u64;
        let written = (|| {
            // One write for the fragment's many small chunks.
            let mut out = std::io::BufWriter::with_capacity(1 << 18, &open.file);
            for chunk in chunks {
                out.write_all(chunk)?;
                len += chunk.len() as u64;
            }
            out.flush()?;
            drop(out);
            open.file.sync_data()
        })();
        written.map_err(|err| format!("cannot write {}: {err}", open.path.display()))?;
        open.bytes += len;
        open.file_ms = file_ms;
        self.state.bytes.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }
}
