//! `weir-bench soak`: publishers that stop and restart, RTMP, HTTP-FLV and HLS viewers
//! joining and leaving all the time, the server's RSS and open files sampled throughout.
//!
//! Passes when every viewer's timeline is continuous (RTMP viewers stay attached across a
//! publisher's restart and their timestamps go on; HTTP-FLV responses end with their
//! publisher, which is expected and counted), no viewer is cut or refused, HLS media
//! sequences never go back, RSS and open fds grow at most `max_growth_pct` from the end of
//! the warm-up to the end, and the open fds are back to where they were once everyone left.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinSet;
use weir_client::RtmpUrl;
use weir_media::flv_file::FlvTag;

use crate::hls_watch::{self, HlsWatched};
use crate::load;
use crate::player::Shared;
use crate::publisher::{self, PublishOptions};
use crate::sampler::{self, Growth, Sample, Sampler};
use crate::watch::{self as viewer, End, WatchOptions, Watched};

/// Problems kept per kind in the report.
const KEPT_PROBLEMS: usize = 20;

/// Options of a soak run.
#[derive(Clone, Debug, clap::Args)]
pub struct SoakOptions {
    /// Server URL up to the app; stream keys are soak-N.
    #[arg(long, default_value = "rtmp://127.0.0.1:1935/live")]
    pub url: String,
    /// The server's HTTP listener (`host:port`) for HTTP-FLV and HLS clients.
    #[arg(long)]
    pub http: Option<String>,
    /// FLV file the publishers loop.
    #[arg(long)]
    pub file: PathBuf,
    /// Length of the run, minutes.
    #[arg(long, default_value_t = 60.0)]
    pub minutes: f64,
    /// Publishers (streams soak-0 .. soak-{N-1}).
    #[arg(long, default_value_t = 20)]
    pub publishers: usize,
    /// Shortest time a publisher publishes before it stops and restarts, seconds.
    #[arg(long, default_value_t = 60)]
    pub restart_min_secs: u64,
    /// Longest such time, seconds.
    #[arg(long, default_value_t = 300)]
    pub restart_max_secs: u64,
    /// Longest pause between a publisher stopping and publishing again, ms.
    #[arg(long, default_value_t = 3000)]
    pub pause_max_ms: u64,
    /// RTMP viewers held at once (each joins a random stream, stays, leaves, joins again).
    #[arg(long, default_value_t = 500)]
    pub rtmp_viewers: usize,
    /// HTTP-FLV viewers held at once (needs --http).
    #[arg(long, default_value_t = 20)]
    pub flv_viewers: usize,
    /// HLS clients held at once, alternating fMP4 and MPEG-TS playlists (needs --http).
    #[arg(long, default_value_t = 20)]
    pub hls_clients: usize,
    /// Shortest stay of a viewer, seconds.
    #[arg(long, default_value_t = 10)]
    pub stay_min_secs: u64,
    /// Longest stay of a viewer, seconds.
    #[arg(long, default_value_t = 120)]
    pub stay_max_secs: u64,
    /// The server's pid, for its RSS and open files.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Seconds between samples of RSS and open files.
    #[arg(long, default_value_t = 5)]
    pub sample_secs: u64,
    /// Seconds of warm-up before growth is measured (default: a third of the run).
    #[arg(long)]
    pub warmup_secs: Option<u64>,
    /// Largest RSS and open-fd growth allowed after the warm-up, percent.
    #[arg(long, default_value_t = 5.0)]
    pub max_growth_pct: f64,
    /// Open fds allowed above the starting count once every client left.
    #[arg(long, default_value_t = 16)]
    pub fd_slack: u64,
    /// A forward timestamp step longer than this is a jump, ms.
    #[arg(long, default_value_t = 1033)]
    pub max_step_ms: u32,
    /// First timestamp of each publish, ms (wrapping).
    #[arg(long, default_value_t = 0)]
    pub start_ms: u32,
}

/// What the viewers of one protocol saw.
#[derive(Debug, Default, Serialize)]
pub struct ViewerTally {
    /// Sessions (connections) made.
    pub sessions: u64,
    /// Sessions whose play was accepted.
    pub playing: u64,
    /// Video frames received.
    pub frames: u64,
    /// Sessions with a step backwards or a jump.
    pub discontinuous: u64,
    /// Largest forward timestamp step, ms.
    pub largest_step_ms: u32,
    /// Sessions that saw their publisher leave (RTMP `UnpublishNotify`).
    pub saw_unpublish: u64,
    /// Of those, sessions that received frames of the next publisher.
    pub continued_across_restart: u64,
    /// Sessions the server closed because their publisher left (HTTP-FLV).
    pub closed_with_publisher: u64,
    /// Requests answered 404 while their stream was not published (HTTP-FLV).
    pub not_found: u64,
    /// Sessions the server closed otherwise, or that failed.
    pub unexpected_ends: u64,
    /// The first problems, described.
    pub problems: Vec<String>,
}

impl ViewerTally {
    fn problem(&mut self, what: String) {
        if self.problems.len() < KEPT_PROBLEMS {
            self.problems.push(what);
        }
    }
}

/// What the HLS clients saw.
#[derive(Debug, Default, Serialize)]
pub struct HlsTally {
    /// Client sessions.
    pub sessions: u64,
    /// Playlist requests.
    pub polls: u64,
    /// Playlists answered 404 (stream not published).
    pub not_found: u64,
    /// Segments fetched.
    pub segments: u64,
    /// Times a media sequence went back.
    pub sequence_backwards: u64,
    /// Other failures.
    pub errors: u64,
    /// The first problems, described.
    pub problems: Vec<String>,
}

/// What the publishers did.
#[derive(Debug, Default, Serialize)]
pub struct PublisherTally {
    /// Publishes accepted.
    pub publishes: u64,
    /// Publishes refused or failed before they started (retried a second later).
    pub refused: u64,
    /// Publishes that failed after they started.
    pub failed: u64,
    /// The first problems, described.
    pub problems: Vec<String>,
}

/// The soak report.
#[derive(Debug, Default, Serialize)]
pub struct SoakReport {
    /// Whether every criterion held.
    pub pass: bool,
    /// The criteria that failed.
    pub failures: Vec<String>,
    /// Length of the run, seconds.
    pub seconds: f64,
    /// Warm-up, seconds.
    pub warmup_s: f64,
    /// Publishers.
    pub publishers: PublisherTally,
    /// RTMP viewers.
    pub rtmp: ViewerTally,
    /// HTTP-FLV viewers.
    pub flv: ViewerTally,
    /// HLS clients.
    pub hls: HlsTally,
    /// Open fds and RSS before any client connected.
    pub baseline: Option<Sample>,
    /// Open fds and RSS once every client left.
    pub after: Option<Sample>,
    /// Growth from the end of the warm-up to the end of the run.
    pub growth: Option<Growth>,
    /// Every sample.
    pub samples: Vec<Sample>,
}

/// State the tasks of a run share.
struct Run {
    base: RtmpUrl,
    options: SoakOptions,
    tags: Arc<Vec<FlvTag>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    end: tokio::time::Instant,
    epoch: Instant,
    /// Per stream: publishes ended so far (an HTTP-FLV response ending while this changed
    /// ended with its publisher).
    generations: Vec<AtomicU64>,
    report: Mutex<SoakReport>,
}

impl Run {
    fn report(&self) -> std::sync::MutexGuard<'_, SoakReport> {
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> bool {
        tokio::time::Instant::now() < self.end && !*self.stop.borrow()
    }

    fn stream(&self, i: usize) -> String {
        format!("soak-{i}")
    }
}

/// Runs a soak and returns its report (`pass` says whether it passed).
pub async fn run(options: SoakOptions) -> anyhow::Result<SoakReport> {
    let base = RtmpUrl::parse(&options.url)?;
    let tags = Arc::new(load(&options.file)?);
    anyhow::ensure!(options.publishers > 0, "--publishers must be at least 1");
    anyhow::ensure!(
        options.restart_min_secs <= options.restart_max_secs
            && options.stay_min_secs <= options.stay_max_secs,
        "a minimum above its maximum"
    );
    let seconds = options.minutes * 60.0;
    let warmup = options
        .warmup_secs
        .map_or(seconds / 3.0, |s| s as f64)
        .min(seconds);
    let (stop_tx, stop) = watch::channel(false);
    let shared = Arc::new(Shared {
        measuring: false.into(),
        stop: false.into(),
        stop_signal: watch::channel(false).0,
        epoch: Instant::now(),
        latency: false,
    });
    let pid = options.server_pid;
    let baseline = pid.and_then(|pid| sampler::sample(pid, Instant::now()));
    let sampler = pid.map(|pid| Sampler::start(pid, Duration::from_secs(options.sample_secs)));
    let run = Arc::new(Run {
        generations: (0..options.publishers).map(|_| AtomicU64::new(0)).collect(),
        base,
        tags,
        shared: Arc::clone(&shared),
        stop,
        end: tokio::time::Instant::now() + Duration::from_secs_f64(seconds),
        epoch: Instant::now(),
        report: Mutex::new(SoakReport {
            seconds,
            warmup_s: warmup,
            baseline,
            ..SoakReport::default()
        }),
        options,
    });

    let mut tasks = JoinSet::new();
    for i in 0..run.options.publishers {
        tasks.spawn(publish_loop(Arc::clone(&run), i));
    }
    // Viewers join over the first few seconds, after the publishers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ramp = Duration::from_secs_f64((seconds / 10.0).min(10.0));
    let o = &run.options;
    let total = o.rtmp_viewers + o.flv_viewers + o.hls_clients;
    for slot in 0..total {
        let delay = ramp.mul_f64(slot as f64 / total.max(1) as f64);
        let run = Arc::clone(&run);
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            let o = &run.options;
            if slot < o.rtmp_viewers {
                rtmp_loop(&run).await;
            } else if slot < o.rtmp_viewers + o.flv_viewers {
                flv_loop(&run).await;
            } else {
                hls_loop(&run, slot % 2 == 0).await;
            }
        });
    }
    tokio::time::sleep_until(run.end).await;
    shared.stop.store(true, Ordering::Relaxed);
    stop_tx.send_replace(true);
    let drain = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(joined)) = tokio::time::timeout_at(drain, tasks.join_next()).await {
        joined?;
    }
    let stuck = tasks.len();
    tasks.abort_all();

    let samples = sampler.map(Sampler::stop).unwrap_or_default();
    let after = match pid {
        Some(pid) => settle_fds(pid, baseline.map(|b| b.fds + run.options.fd_slack)).await,
        None => None,
    };
    let mut report = std::mem::take(&mut *run.report());
    report.growth = Growth::over(&samples, warmup);
    report.samples = samples;
    report.after = after;
    if stuck > 0 {
        report
            .failures
            .push(format!("{stuck} client task(s) did not stop"));
    }
    judge(&mut report, &run.options);
    Ok(report)
}

/// Waits up to 15 s for the server's open fds to come down to `want`; the last sample.
async fn settle_fds(pid: u32, want: Option<u64>) -> Option<Sample> {
    let start = Instant::now();
    loop {
        let now = sampler::sample(pid, start);
        let done = match (now, want) {
            (Some(s), Some(want)) => s.fds <= want,
            _ => true,
        };
        if done || start.elapsed() > Duration::from_secs(15) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn judge(report: &mut SoakReport, options: &SoakOptions) {
    let mut failures = std::mem::take(&mut report.failures);
    let p = &report.publishers;
    if p.publishes == 0 {
        failures.push("no publish was accepted".into());
    }
    if p.failed > 0 {
        failures.push(format!("{} publish(es) failed after starting", p.failed));
    }
    for (name, tally) in [("rtmp", &report.rtmp), ("http-flv", &report.flv)] {
        if tally.discontinuous > 0 {
            failures.push(format!(
                "{name}: {} session(s) with a discontinuous timeline",
                tally.discontinuous
            ));
        }
        if tally.unexpected_ends > 0 {
            failures.push(format!(
                "{name}: {} session(s) cut or failed",
                tally.unexpected_ends
            ));
        }
        if tally.sessions > 0 && tally.frames == 0 {
            failures.push(format!("{name}: no video frame received"));
        }
    }
    if report.hls.sequence_backwards > 0 {
        failures.push(format!(
            "hls: media sequence went back {} time(s)",
            report.hls.sequence_backwards
        ));
    }
    if report.hls.errors > 0 {
        failures.push(format!("hls: {} failed request(s)", report.hls.errors));
    }
    if report.hls.sessions > 0 && report.hls.segments == 0 {
        failures.push("hls: no segment fetched".into());
    }
    if options.server_pid.is_some() {
        match &report.growth {
            Some(g) => {
                if g.rss_pct > options.max_growth_pct {
                    failures.push(format!(
                        "RSS grew {:.1} % after the warm-up (limit {} %)",
                        g.rss_pct, options.max_growth_pct
                    ));
                }
                if g.fds_pct > options.max_growth_pct {
                    failures.push(format!(
                        "open fds grew {:.1} % after the warm-up (limit {} %)",
                        g.fds_pct, options.max_growth_pct
                    ));
                }
            }
            None => failures.push("too few samples after the warm-up".into()),
        }
        match (report.baseline, report.after) {
            (Some(before), Some(after)) if after.fds > before.fds + options.fd_slack => {
                failures.push(format!(
                    "open fds {} once everyone left, {} before (slack {})",
                    after.fds, before.fds, options.fd_slack
                ));
            }
            (Some(_), Some(_)) => {}
            _ => failures.push("the server is gone (no sample after the run)".into()),
        }
    }
    report.pass = failures.is_empty();
    report.failures = failures;
}

async fn publish_loop(run: Arc<Run>, i: usize) {
    let url = run.base.with_stream(&run.stream(i));
    let o = &run.options;
    while run.running() {
        let left = run
            .end
            .saturating_duration_since(tokio::time::Instant::now());
        let secs = rand::thread_rng().gen_range(o.restart_min_secs..=o.restart_max_secs);
        let options = PublishOptions {
            start_ms: o.start_ms,
            kbps: None,
            run_for: Some(Duration::from_secs(secs).min(left)),
        };
        let result = publisher::run_with(
            url.clone(),
            Arc::clone(&run.tags),
            Arc::clone(&run.shared),
            options,
        )
        .await;
        run.generations[i].fetch_add(1, Ordering::SeqCst);
        if !count_publish(&run, i, result.started, result.error) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let pause = rand::thread_rng().gen_range(100..=o.pause_max_ms.max(100));
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Counts one publish; whether it started.
fn count_publish(run: &Run, i: usize, started: bool, error: Option<String>) -> bool {
    let mut report = run.report();
    let p = &mut report.publishers;
    let problem = match (started, error) {
        (true, None) => None,
        (true, Some(err)) => {
            p.failed += 1;
            Some(format!("soak-{i}: {err}"))
        }
        (false, err) => {
            p.refused += 1;
            Some(format!("soak-{i} refused: {}", err.unwrap_or_default()))
        }
    };
    if started {
        p.publishes += 1;
    }
    if let Some(problem) = problem {
        if p.problems.len() < KEPT_PROBLEMS {
            p.problems.push(problem);
        }
    }
    started
}

/// A viewer's options for one stay.
fn stay(run: &Run) -> WatchOptions {
    let o = &run.options;
    let secs = rand::thread_rng().gen_range(o.stay_min_secs..=o.stay_max_secs);
    let until = (tokio::time::Instant::now() + Duration::from_secs(secs)).min(run.end);
    let mut options = WatchOptions::new(run.stop.clone(), run.epoch);
    options.until = Some(until);
    options.max_step_ms = o.max_step_ms;
    options
}

async fn pause_between_stays() {
    let ms = rand::thread_rng().gen_range(0..2000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn random_stream(run: &Run) -> usize {
    rand::thread_rng().gen_range(0..run.options.publishers)
}

async fn rtmp_loop(run: &Run) {
    while run.running() {
        let i = random_stream(run);
        let watched = viewer::rtmp(&run.base.with_stream(&run.stream(i)), stay(run)).await;
        {
            let mut report = run.report();
            let tally = &mut report.rtmp;
            count(tally, &watched, &run.stream(i));
            if watched.end != End::Left {
                tally.unexpected_ends += 1;
                tally.problem(format!("rtmp {}: ended: {:?}", run.stream(i), watched.end));
            }
        }
        pause_between_stays().await;
    }
}

async fn flv_loop(run: &Run) {
    let Some(authority) = run.options.http.clone() else {
        return;
    };
    while run.running() {
        let i = random_stream(run);
        let generation = run.generations[i].load(Ordering::SeqCst);
        let watched = viewer::flv(&authority, &run.base.app, &run.stream(i), stay(run)).await;
        if watched.end == End::ServerClosed {
            // The publisher's task counts its end just after closing.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let publisher_left = run.generations[i].load(Ordering::SeqCst) != generation;
        {
            let mut report = run.report();
            let tally = &mut report.flv;
            count(tally, &watched, &run.stream(i));
            match &watched.end {
                End::Left => {}
                End::ServerClosed if publisher_left => tally.closed_with_publisher += 1,
                End::Failed(why) if why.contains(" 404") => tally.not_found += 1,
                end => {
                    tally.unexpected_ends += 1;
                    tally.problem(format!("http-flv {}: ended: {end:?}", run.stream(i)));
                }
            }
        }
        pause_between_stays().await;
    }
}

fn count(tally: &mut ViewerTally, watched: &Watched, stream: &str) {
    tally.sessions += 1;
    tally.playing += u64::from(watched.playing);
    tally.frames += watched.timeline.frames;
    tally.largest_step_ms = tally.largest_step_ms.max(watched.timeline.largest_step_ms);
    if !watched.timeline.is_continuous() {
        tally.discontinuous += 1;
        let what = watched.timeline.first_problem.clone().unwrap_or_default();
        tally.problem(format!("{stream}: {what}"));
    }
    if watched.unpublished > 0 {
        tally.saw_unpublish += 1;
        if watched.frames_after_unpublish > 0 {
            tally.continued_across_restart += 1;
        }
    }
}

async fn hls_loop(run: &Run, fmp4: bool) {
    let Some(authority) = run.options.http.clone() else {
        return;
    };
    let flavour = if fmp4 { "v0" } else { "ts" };
    while run.running() {
        let i = random_stream(run);
        let path = format!("/{}/{}/{flavour}/index.m3u8", run.base.app, run.stream(i));
        let until = stay(run).until.unwrap_or(run.end);
        let seen = hls_watch::follow(
            &authority,
            &path,
            Duration::from_secs(1),
            until,
            run.stop.clone(),
        )
        .await;
        add_hls(&mut run.report().hls, &seen, &path);
        pause_between_stays().await;
    }
}

fn add_hls(tally: &mut HlsTally, seen: &HlsWatched, path: &str) {
    tally.sessions += 1;
    tally.polls += seen.polls;
    tally.not_found += seen.not_found;
    tally.segments += seen.segments;
    tally.sequence_backwards += seen.sequence_backwards;
    tally.errors += seen.errors;
    if let Some(problem) = &seen.first_problem {
        if tally.problems.len() < KEPT_PROBLEMS {
            tally.problems.push(format!("{path}: {problem}"));
        }
    }
}

/// A few lines for people: the verdict, the counts and the growth.
pub fn summary(report: &SoakReport) -> String {
    let mut out = String::new();
    let verdict = if report.pass { "PASS" } else { "FAIL" };
    out.push_str(&format!(
        "{verdict} soak: {:.0} s ({:.0} s warm-up)\n",
        report.seconds, report.warmup_s
    ));
    let p = &report.publishers;
    out.push_str(&format!(
        "  publishers: {} publishes, {} refused and retried, {} failed\n",
        p.publishes, p.refused, p.failed
    ));
    for (name, t) in [("rtmp", &report.rtmp), ("http-flv", &report.flv)] {
        out.push_str(&format!(
            "  {name}: {} sessions ({} playing), {} frames, {} discontinuous (largest step {} ms), \
             {} saw a publisher leave and {} of them continued, {} closed with their publisher, \
             {} not found, {} cut or failed\n",
            t.sessions,
            t.playing,
            t.frames,
            t.discontinuous,
            t.largest_step_ms,
            t.saw_unpublish,
            t.continued_across_restart,
            t.closed_with_publisher,
            t.not_found,
            t.unexpected_ends
        ));
    }
    let h = &report.hls;
    out.push_str(&format!(
        "  hls: {} sessions, {} playlist requests ({} not found), {} segments, {} sequence steps back, {} errors\n",
        h.sessions, h.polls, h.not_found, h.segments, h.sequence_backwards, h.errors
    ));
    if let Some(g) = &report.growth {
        out.push_str(&format!(
            "  after warm-up ({} samples): RSS {:.1} -> {:.1} MiB ({:+.1} %, max {:.1} MiB), open fds {} -> {} ({:+.1} %)\n",
            g.samples,
            mib(g.rss_start),
            mib(g.rss_end),
            g.rss_pct,
            mib(g.rss_max),
            g.fds_start,
            g.fds_end,
            g.fds_pct
        ));
    }
    if let (Some(before), Some(after)) = (report.baseline, report.after) {
        out.push_str(&format!(
            "  before/after the clients: RSS {:.1} / {:.1} MiB, open fds {} / {}\n",
            mib(before.rss),
            mib(after.rss),
            before.fds,
            after.fds
        ));
    }
    for failure in &report.failures {
        out.push_str(&format!("  failed: {failure}\n"));
    }
    for problem in report
        .rtmp
        .problems
        .iter()
        .chain(&report.flv.problems)
        .chain(&report.hls.problems)
        .chain(&report.publishers.problems)
        .take(10)
    {
        out.push_str(&format!("  problem: {problem}\n"));
    }
    out
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SoakOptions {
        SoakOptions {
            url: String::new(),
            http: None,
            file: PathBuf::new(),
            minutes: 1.0,
            publishers: 1,
            restart_min_secs: 1,
            restart_max_secs: 1,
            pause_max_ms: 100,
            rtmp_viewers: 1,
            flv_viewers: 0,
            hls_clients: 0,
            stay_min_secs: 1,
            stay_max_secs: 1,
            server_pid: Some(1),
            sample_secs: 1,
            warmup_secs: None,
            max_growth_pct: 5.0,
            fd_slack: 4,
            max_step_ms: 1033,
            start_ms: 0,
        }
    }

    #[test]
    fn judge_names_each_failed_criterion() {
        let sample = |fds| Sample {
            t_s: 0.0,
            rss: 100,
            fds,
        };
        let mut report = SoakReport {
            baseline: Some(sample(10)),
            after: Some(sample(20)),
            growth: Some(Growth {
                rss_pct: 7.0,
                ..Growth::default()
            }),
            ..SoakReport::default()
        };
        report.publishers.publishes = 3;
        report.rtmp.sessions = 2;
        report.rtmp.frames = 10;
        report.rtmp.discontinuous = 1;
        judge(&mut report, &options());
        assert!(!report.pass);
        assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
        assert!(report.failures[0].contains("discontinuous"));
        assert!(report.failures[1].starts_with("RSS grew 7.0 %"));
        assert!(report.failures[2].starts_with("open fds 20 once everyone left"));

        let mut good = SoakReport {
            baseline: Some(sample(10)),
            after: Some(sample(14)),
            growth: Some(Growth::default()),
            ..SoakReport::default()
        };
        good.publishers.publishes = 1;
        judge(&mut good, &options());
        assert!(good.pass, "{:?}", good.failures);
    }
}
