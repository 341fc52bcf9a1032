//! `weir-bench faults …`: the fault scenarios of the endurance suite, each against a running
//! weir given by its URLs and pid, each with its pass/fail criterion:
//!
//! * `kill9`: a publisher process killed with SIGKILL mid-GOP; a republish is accepted and
//!   every viewer continues on one timeline;
//! * `reset`: many viewers leave at once with TCP resets; the server keeps serving and its
//!   open files return to where they were;
//! * `flood`: connections at several times `rtmp.max_connections`; the excess is refused, an
//!   admitted stream keeps flowing, and a new viewer is served within a second after;
//! * `sigstop`: viewers whose processes are stopped (or, in-process, that stop reading); they
//!   are cut by the lag policy and the server's memory stays bounded;
//! * `overload`: a 50 Mbit/s publisher whose viewers read at a few Mbit/s; they are cut,
//!   the publisher is never held back and other streams are untouched;
//! * `wrap`: timestamps starting just below 2^31 and 2^32 ms play through the wrap on RTMP,
//!   HTTP-FLV and HLS (fMP4 and MPEG-TS).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use weir_client::RtmpUrl;
use weir_media::flv_file::FlvTag;

use crate::player::Shared;
use crate::publisher::{self, PublishOptions, PublisherResult};
use crate::sampler::{self, Sample};
use crate::watch::{self as viewer, Live, WatchOptions, Watched};
use crate::{load, procstat};

mod flood;
mod kill;
mod overload;
mod reset;
mod stop;
mod wrap;

pub use flood::{flood, FloodOptions};
pub use kill::{kill9, Kill9Options};
pub use overload::{overload, OverloadOptions};
pub use reset::{reset, ResetOptions};
pub use stop::{sigstop, StopOptions, ViewerProcesses};
pub use wrap::{judge_segments, wrap, Segment, SegmentLog, WrapOptions};

/// The server under test.
#[derive(Clone, Debug, clap::Args)]
pub struct Target {
    /// Server URL up to the app.
    #[arg(long, default_value = "rtmp://127.0.0.1:1935/live")]
    pub url: String,
    /// FLV file the publishers loop.
    #[arg(long)]
    pub file: PathBuf,
    /// The server's pid (RSS, open files, alive).
    #[arg(long)]
    pub server_pid: u32,
}

/// One scenario's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    /// The scenario.
    pub name: String,
    /// Whether the criterion held.
    pub pass: bool,
    /// The criterion, in words.
    pub criterion: String,
    /// What was measured, in words.
    pub measured: String,
    /// The parts of the criterion that failed.
    pub failures: Vec<String>,
    /// The numbers.
    pub numbers: serde_json::Value,
}

impl Outcome {
    /// `PASS name: measured` (or `FAIL`, with what failed), then the criterion.
    pub fn line(&self) -> String {
        let verdict = if self.pass { "PASS" } else { "FAIL" };
        let mut line = format!("{verdict} {}: {}", self.name, self.measured);
        if !self.failures.is_empty() {
            line.push_str(&format!(" [failed: {}]", self.failures.join("; ")));
        }
        line.push_str(&format!("\n     criterion: {}", self.criterion));
        line
    }
}

/// A scenario's shared state: the target, the stream file, a stop for its clients.
pub(crate) struct Ctx {
    pub base: RtmpUrl,
    pub tags: Arc<Vec<FlvTag>>,
    pub pid: u32,
    pub epoch: Instant,
    pub shared: Arc<Shared>,
    pub stop_tx: watch::Sender<bool>,
}

impl Ctx {
    pub fn new(target: &Target) -> anyhow::Result<Ctx> {
        Ok(Ctx {
            base: RtmpUrl::parse(&target.url)?,
            tags: Arc::new(load(&target.file)?),
            pid: target.server_pid,
            epoch: Instant::now(),
            shared: Arc::new(Shared {
                measuring: false.into(),
                stop: false.into(),
                stop_signal: watch::channel(false).0,
                epoch: Instant::now(),
                latency: false,
            }),
            stop_tx: watch::channel(false).0,
        })
    }

    /// Publishes `stream` in the background until [`Ctx::stop`] (or `options.run_for`).
    pub fn publish(&self, stream: &str, options: PublishOptions) -> JoinHandle<PublisherResult> {
        tokio::spawn(publisher::run_with(
            self.base.with_stream(stream),
            Arc::clone(&self.tags),
            Arc::clone(&self.shared),
            options,
        ))
    }

    /// Options for a viewer that runs until [`Ctx::stop`] and reports to `live`.
    pub fn watch_options(&self, live: &Arc<Live>) -> WatchOptions {
        let mut options = WatchOptions::new(self.stop_tx.subscribe(), self.epoch);
        options.live = Some(Arc::clone(live));
        options
    }

    /// `n` RTMP viewers of `stream` with `options`.
    pub fn viewers(&self, stream: &str, n: usize, options: &WatchOptions) -> JoinSet<Watched> {
        let mut set = JoinSet::new();
        let url = self.base.with_stream(stream);
        for _ in 0..n {
            let (url, options) = (url.clone(), options.clone());
            set.spawn(async move { viewer::rtmp(&url, options).await });
        }
        set
    }

    /// Stops every publisher and viewer of the scenario.
    pub fn stop(&self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.stop_tx.send_replace(true);
    }

    /// A sample of the server now.
    pub fn sample(&self) -> Option<Sample> {
        sampler::sample(self.pid, self.epoch)
    }

    pub fn alive(&self) -> bool {
        procstat::alive(self.pid)
    }
}

/// Waits until `live.started` reaches `n`; whether it did within `timeout`.
pub(crate) async fn started(live: &Live, n: usize, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while live.started.load(std::sync::atomic::Ordering::Relaxed) < n as u64 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Waits until the server's open fds are at most `want`: how long it took, or `None` when
/// they were not within `timeout` (with the last count).
pub(crate) async fn fds_down_to(
    ctx: &Ctx,
    want: u64,
    timeout: Duration,
) -> (Option<Duration>, u64) {
    let start = Instant::now();
    loop {
        let fds = procstat::fd_count(ctx.pid).unwrap_or(u64::MAX);
        if fds <= want {
            return (Some(start.elapsed()), fds);
        }
        if start.elapsed() > timeout {
            return (None, fds);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Collects every viewer's result (aborting those still running after `timeout`).
pub(crate) async fn collect(mut set: JoinSet<Watched>, timeout: Duration) -> Vec<Watched> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
        if let Ok(watched) = joined {
            out.push(watched);
        }
    }
    set.abort_all();
    out
}

/// Pushes `what` to `failures` unless `ok`.
pub(crate) fn check(failures: &mut Vec<String>, ok: bool, what: impl Into<String>) {
    if !ok {
        failures.push(what.into());
    }
}

/// Counts of viewer results for a verdict.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Viewers {
    pub count: usize,
    pub discontinuous: usize,
    pub ended: usize,
    pub server_closed: usize,
    pub max_gap_ms: u64,
    pub first_problem: Option<String>,
}

impl Viewers {
    pub fn of(results: &[Watched]) -> Viewers {
        let mut v = Viewers {
            count: results.len(),
            ..Viewers::default()
        };
        for w in results {
            if !w.timeline.is_continuous() {
                v.discontinuous += 1;
                if v.first_problem.is_none() {
                    v.first_problem = w.timeline.first_problem.clone();
                }
            }
            match &w.end {
                viewer::End::Left => {}
                viewer::End::ServerClosed => {
                    v.ended += 1;
                    v.server_closed += 1;
                }
                viewer::End::Failed(why) => {
                    v.ended += 1;
                    if v.first_problem.is_none() {
                        v.first_problem = Some(why.clone());
                    }
                }
            }
            v.max_gap_ms = v.max_gap_ms.max(w.max_gap_ms);
        }
        v
    }
}

fn outcome(
    name: &str,
    criterion: &str,
    measured: String,
    failures: Vec<String>,
    numbers: serde_json::Value,
) -> Outcome {
    Outcome {
        name: name.to_owned(),
        pass: failures.is_empty(),
        criterion: criterion.to_owned(),
        measured,
        failures,
        numbers,
    }
}

/// Bytes as MiB.
fn mib(bytes: u64) -> f64 {
    crate::soak::mib(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_line_says_pass_or_fail_and_why() {
        let pass = outcome("x", "c", "m".into(), Vec::new(), serde_json::Value::Null);
        assert_eq!(pass.line(), "PASS x: m\n     criterion: c");
        let fail = outcome("x", "c", "m".into(), vec!["a".into(), "b".into()], 1.into());
        assert!(!fail.pass);
        assert_eq!(fail.line(), "FAIL x: m [failed: a; b]\n     criterion: c");
    }
}
