//! Stream health findings in the log: every few seconds each stream's findings are read, and
//! a finding is logged when it appears and again at most every [`REPEAT`] while it lasts
//! ("live/alice: keyframe every 8.0 s; set the encoder's keyframe interval to 2 s …"), so an
//! operator reading only the log learns what is wrong without a line per frame.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};
use weir_media::health::Severity;

use crate::hub::Hub;

/// How often the findings are read.
const EVERY: Duration = Duration::from_secs(2);
/// How often a finding that lasts is logged again.
const REPEAT: Duration = Duration::from_secs(60);
/// Most (stream, code) pairs remembered; past that the memory is cleared.
const MAX_REMEMBERED: usize = 10_000;

/// Logs findings until `stop` turns true.
pub(crate) async fn run(hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let mut logged: HashMap<(String, &'static str), Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = Instant::now();
        let mut present = HashSet::new();
        for stats in hub.stats() {
            for finding in &stats.health {
                let key = (stats.path.clone(), finding.code);
                present.insert(key.clone());
                if logged
                    .get(&key)
                    .is_some_and(|at| now.duration_since(*at) < REPEAT)
                {
                    continue;
                }
                match finding.severity {
                    Severity::Info => info!(stream = %stats.path, code = finding.code,
                        "{}: {}", stats.path, finding.message),
                    _ => warn!(stream = %stats.path, code = finding.code,
                        severity = finding.severity.as_str(), "{}: {}", stats.path, finding.message),
                }
                logged.insert(key, now);
            }
        }
        // A finding that went away is logged afresh when it comes back.
        logged.retain(|key, _| present.contains(key));
        if logged.len() > MAX_REMEMBERED {
            logged.clear();
        }
    }
}
