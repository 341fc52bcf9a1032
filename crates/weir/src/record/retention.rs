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
        let live = context.live();
        let named: Vec<String> = live
            .apps
            .keys()
            .filter(|a| *a != "default")
            .cloned()
            .collect();
        // Each app sweeps its own files; `[apps.default]` every app's but the named ones'.
        let rules: Vec<Sweep> = live
            .apps
            .iter()
            .filter(|(_, r)| r.record.format.is_some())
            .filter_map(|(app, r)| {
                Some(Sweep {
                    template: r.record.path.clone(),
                    app: (app != "default").then(|| app.clone()),
                    skip: if app == "default" {
                        named.clone()
                    } else {
                        Vec::new()
                    },
                    age: r.record.delete_after()?,
                })
            })
            .collect();
        if rules.is_empty() {
            continue;
        }
        let open: Vec<PathBuf> = context.recordings.open_files();
        let metrics = Arc::clone(context.hub.metrics());
        let deleted =
            tokio::task::spawn_blocking(move || rules.iter().map(|r| sweep(r, &open)).sum::<u64>())
                .await
                .unwrap_or(0);
        metrics.record_deleted.inc_by(deleted);
    }
}

/// One app's retention.
pub(crate) struct Sweep {
    template: String,
    /// The app (`None` for `[apps.default]`: any app but those in `skip`).
    app: Option<String>,
    skip: Vec<String>,
    age: Duration,
}

/// Deletes the files of `sweep` older than its age; returns how many.
pub(crate) fn sweep(sweep: &Sweep, open: &[PathBuf]) -> u64 {
    let files = StreamFiles::all(&sweep.template, sweep.app.as_deref());
    let others: Vec<StreamFiles> = sweep
        .skip
        .iter()
        .map(|app| StreamFiles::all(&sweep.template, Some(app)))
        .collect();
    let Some(limit) = SystemTime::now().checked_sub(sweep.age) else {
        return 0;
    };
    let mut deleted = 0;
    for relative in files.list() {
        let path = files.base.join(&relative);
        let named_app = others.iter().any(|o| {
            path.strip_prefix(&o.base)
                .ok()
                .and_then(|r| r.to_str())
                .is_some_and(|r| o.matches(r))
        });
        if open.contains(&path) || named_app {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file at `dir/relative` last modified `age` ago.
    fn old_file(dir: &Path, relative: &str, age: Duration) -> PathBuf {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
        path
    }

    #[test]
    fn each_app_sweeps_only_its_own_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let template = format!(
            "{}/{{app}}/{{stream}}/{{start}}.{{ext}}",
            dir.path().display()
        );
        let day = Duration::from_secs(86_400);
        let live_old = old_file(dir.path(), "live/a/2020-01-01_00-00-00.mp4", 3 * day);
        let live_new = old_file(dir.path(), "live/a/2026-01-01_00-00-00.mp4", Duration::ZERO);
        let archive_old = old_file(dir.path(), "archive/a/2020-01-01_00-00-00.mp4", 3 * day);
        let other_old = old_file(dir.path(), "other/a/2020-01-01_00-00-00.flv", 3 * day);
        let not_ours = old_file(dir.path(), "live/a/notes.txt", 3 * day);
        let open = old_file(dir.path(), "live/b/2020-01-02_00-00-00.mp4", 3 * day);
        let live = Sweep {
            template: template.clone(),
            app: Some("live".into()),
            skip: Vec::new(),
            age: day,
        };
        assert_eq!(sweep(&live, std::slice::from_ref(&open)), 1);
        assert!(!live_old.exists());
        assert!(live_new.exists() && archive_old.exists() && not_ours.exists() && open.exists());
        // [apps.default] sweeps every app but the named ones.
        let default = Sweep {
            template,
            app: None,
            skip: vec!["live".into(), "archive".into()],
            age: day,
        };
        assert_eq!(sweep(&default, &[]), 1);
        assert!(!other_old.exists() && !other_old.parent().unwrap().exists());
        assert!(archive_old.exists() && open.exists());
    }
}
