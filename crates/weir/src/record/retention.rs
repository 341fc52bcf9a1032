//! `record.delete_after`: once a minute (and at start), recordings older than their app's
//! limit are deleted, by modification time. Only files the app's `record.path` template
//! matches are touched, never a file being written, and directories left empty by a
//! deletion below the template's fixed directory are removed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::template::StreamFiles;
use crate::rtmp::Context;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(60);

/// Runs the sweep until the server stops.
pub(crate) async fn run(context: Arc<Context>) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let rules: Vec<(String, Duration)> = context
            .live()
            .apps
            .values()
            .filter(|r| r.record.format.is_some())
            .filter_map(|r| Some((r.record.path.clone(), r.record.delete_after()?)))
            .collect();
        if rules.is_empty() {
            continue;
        }
        let open: Vec<PathBuf> = context.recordings.open_files();
        let metrics = Arc::clone(context.hub.metrics());
        let deleted = tokio::task::spawn_blocking(move || {
            rules
                .iter()
                .map(|(template, age)| sweep(template, *age, &open))
                .sum::<u64>()
        })
        .await
        .unwrap_or(0);
        metrics.record_deleted.inc_by(deleted);
    }
}

/// Deletes the files of `template` older than `age`; returns how many.
pub(crate) fn sweep(template: &str, age: Duration, open: &[PathBuf]) -> u64 {
    let files = StreamFiles::all(template);
    let Some(limit) = SystemTime::now().checked_sub(age) else {
        return 0;
    };
    let mut deleted = 0;
    for relative in files.list() {
        let path = files.base.join(&relative);
        if open.contains(&path) {
            continue;
        }
        let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
            continue;
        };
        if modified >= limit {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                deleted += 1;
                info!(file = %path.display(), "deleted a recording older than record.delete_after");
                remove_empty_parents(&path, &files.base);
            }
            Err(err) => warn!(file = %path.display(), "cannot delete an old recording: {err}"),
        }
    }
    deleted
}

/// Removes the directories `path` was in while they are empty, up to (not including) `base`.
fn remove_empty_parents(path: &Path, base: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(base) && *d != base) {
        if std::fs::remove_dir(d).is_err() {
            return;
        }
        dir = d.parent();
    }
}
