//! `sigstop`: viewers that stop reading: their processes stopped with SIGSTOP (the load
//! tool's `viewers` subcommand in child processes), or, in-process, viewers that stop
//! reading after their first frame. Either way the server sees sockets nobody reads.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

use super::{check, collect, mib, outcome, started, Ctx, Outcome, Target, Viewers};
use crate::publisher::PublishOptions;
use crate::watch::{self as viewer, End, Live};

const CRITERION: &str = "every stopped viewer is cut by the server (open fds back to their \
    count before the viewers + slack, and each viewer finds its connection closed) within \
    streams.max_viewer_lag_secs + rtmp.write_timeout_secs + 20 s; RSS stays within the limit \
    above its level before the viewers; a viewer that reads has no gap over 1 s";

/// Options of the `sigstop` scenario.
#[derive(Clone, Debug, clap::Args)]
pub struct StopOptions {
    /// Viewers stopped.
    #[arg(long, default_value_t = 500)]
    pub viewers: usize,
    /// The server's `streams.max_viewer_lag_secs`.
    #[arg(long, default_value_t = 5)]
    pub lag_secs: u64,
    /// The server's `rtmp.write_timeout_secs`.
    #[arg(long, default_value_t = 10)]
    pub write_timeout_secs: u64,
    /// Largest RSS growth allowed over its level before the viewers, MiB.
    #[arg(long, default_value_t = 256)]
    pub rss_limit_mib: u64,
    /// Open fds allowed above the count before the viewers joined.
    #[arg(long, default_value_t = 10)]
    pub fd_slack: u64,
    /// In-process stalled viewers' socket receive buffer, bytes (with the server's
    /// `rtmp.send_buffer_bytes`, how much the kernel holds before the server feels the stall).
    #[arg(long, default_value_t = 16_384)]
    pub recv_buffer: u32,
}

/// Child processes holding the stopped viewers: `command(n)` starts one that plays `n`
/// viewers of the stream, prints `ready K` once K of them got a frame, and on a line on
/// its stdin prints `cut C of N` (C: viewers whose connection the server had closed) and
/// exits: `weir-bench viewers --url URL/fault-stop --count n`.
pub struct ViewerProcesses {
    /// How many processes the viewers are spread over.
    pub processes: usize,
    /// The command of one process for `n` viewers.
    pub command: Box<dyn Fn(usize) -> Command + Send + Sync>,
}

/// Runs `sigstop` on stream `fault-stop`: with `processes`, real SIGSTOPped processes;
/// without, in-process viewers that stop reading after their first frame.
pub async fn sigstop(
    target: &Target,
    options: &StopOptions,
    processes: Option<ViewerProcesses>,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(target)?;
    let stream = "fault-stop";
    let mut failures = Vec::new();
    let publisher = ctx.publish(stream, PublishOptions::default());
    let control_live = Arc::new(Live::default());
    let control = ctx.viewers(stream, 1, &ctx.watch_options(&control_live));
    check(
        &mut failures,
        started(&control_live, 1, Duration::from_secs(15)).await,
        "the stream did not start",
    );
    let before = ctx.sample();
    let mode = if processes.is_some() {
        "SIGSTOPped processes"
    } else {
        "in-process viewers that stopped reading"
    };
    let mut stopped = Stopped::start(
        &ctx,
        stream,
        options.viewers,
        options.recv_buffer,
        processes,
    )
    .await?;
    check(
        &mut failures,
        stopped.ready() == options.viewers,
        format!("{} of {} viewers played", stopped.ready(), options.viewers),
    );
    let with = ctx.sample();
    stopped.freeze();
    let frozen = Instant::now();
    let deadline = Duration::from_secs(options.lag_secs + options.write_timeout_secs + 20);
    let want = before.map_or(0, |b| b.fds + options.fd_slack);
    let mut peak_rss = with.map_or(0, |w| w.rss);
    let mut cut_after = None;
    let mut fds_now = 0;
    while frozen.elapsed() < deadline {
        if let Some(s) = ctx.sample() {
            peak_rss = peak_rss.max(s.rss);
            fds_now = s.fds;
            if s.fds <= want {
                cut_after = Some(frozen.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (cut, total) = stopped.report().await;
    ctx.stop();
    let control = Viewers::of(&collect(control, Duration::from_secs(10)).await);
    let _ = publisher.await;
    let before_rss = before.map_or(0, |b| b.rss);
    let growth_mib = mib(peak_rss.saturating_sub(before_rss));
    check(
        &mut failures,
        cut_after.is_some(),
        format!(
            "open fds {fds_now} {} s after the stop, want <= {want}",
            deadline.as_secs()
        ),
    );
    check(
        &mut failures,
        cut == options.viewers,
        format!("{cut} of {total} stopped viewers found their connection closed"),
    );
    check(
        &mut failures,
        growth_mib <= options.rss_limit_mib as f64,
        format!(
            "RSS grew {growth_mib:.1} MiB (limit {} MiB)",
            options.rss_limit_mib
        ),
    );
    check(
        &mut failures,
        control.ended == 0 && control.discontinuous == 0 && control.max_gap_ms <= 1000,
        format!(
            "the reading viewer: {} ended, {} discontinuous, largest gap {} ms",
            control.ended, control.discontinuous, control.max_gap_ms
        ),
    );
    check(&mut failures, ctx.alive(), "the server died");
    let measured = format!(
        "{} {mode}: cut after {} s (open fds {} before, {} with them, {fds_now} after); \
         {cut}/{total} found their connection closed; RSS {:.1} MiB before, {:.1} with them, \
         peak {:.1} (+{growth_mib:.1} MiB); reading viewer's largest gap {} ms",
        options.viewers,
        cut_after.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64())),
        before.map_or(0, |b| b.fds),
        with.map_or(0, |w| w.fds),
        mib(before_rss),
        mib(with.map_or(0, |w| w.rss)),
        mib(peak_rss),
        control.max_gap_ms,
    );
    let numbers = json!({
        "viewers": options.viewers, "mode": mode, "before": before, "with": with,
        "cut_after_s": cut_after.map(|d| d.as_secs_f64()), "fds_after": fds_now,
        "cut": cut, "peak_rss": peak_rss, "rss_growth_mib": growth_mib, "control": control,
    });
    Ok(outcome(
        "SIGSTOPped viewers",
        CRITERION,
        measured,
        failures,
        numbers,
    ))
}

/// The stopped viewers, in child processes or in this one.
enum Stopped {
    Processes(Vec<(tokio::process::Child, usize)>, usize),
    InProcess(
        tokio::task::JoinSet<viewer::Watched>,
        watch::Sender<bool>,
        usize,
    ),
}

impl Stopped {
    async fn start(
        ctx: &Ctx,
        stream: &str,
        n: usize,
        recv_buffer: u32,
        processes: Option<ViewerProcesses>,
    ) -> anyhow::Result<Self> {
        match processes {
            None => {
                let live = Arc::new(Live::default());
                let (stop_tx, stop_rx) = watch::channel(false);
                let mut o = ctx.watch_options(&live);
                o.stop = stop_rx;
                o.stall = true;
                o.recv_buffer = Some(recv_buffer);
                let set = ctx.viewers(stream, n, &o);
                started(&live, n, Duration::from_secs(60)).await;
                let ready = live.started.load(Ordering::Relaxed) as usize;
                Ok(Stopped::InProcess(set, stop_tx, ready))
            }
            Some(p) => {
                let mut children = Vec::new();
                let per = n.div_ceil(p.processes.max(1));
                let mut left = n;
                while left > 0 {
                    let count = per.min(left);
                    left -= count;
                    let mut cmd = tokio::process::Command::from((p.command)(count));
                    cmd.stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .kill_on_drop(true);
                    children.push((cmd.spawn()?, count));
                }
                let mut ready = 0;
                for (child, _) in &mut children {
                    if let Some(line) = line_of(child, Duration::from_secs(60)).await {
                        ready += line
                            .strip_prefix("ready ")
                            .and_then(|k| k.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                    }
                }
                Ok(Stopped::Processes(children, ready))
            }
        }
    }

    fn ready(&self) -> usize {
        match self {
            Stopped::Processes(_, ready) | Stopped::InProcess(_, _, ready) => *ready,
        }
    }

    /// SIGSTOP every process (in-process viewers stalled on their own).
    fn freeze(&mut self) {
        if let Stopped::Processes(children, _) = self {
            for (child, _) in children.iter() {
                signal(child, "-STOP");
            }
        }
    }

    /// SIGCONT, then how many viewers found their connection closed, of how many.
    async fn report(self) -> (usize, usize) {
        match self {
            Stopped::InProcess(set, stop_tx, _) => {
                stop_tx.send_replace(true);
                let results = collect(set, Duration::from_secs(20)).await;
                let cut = results
                    .iter()
                    .filter(|w| w.end == End::ServerClosed)
                    .count();
                (cut, results.len())
            }
            Stopped::Processes(mut children, _) => {
                let (mut cut, mut total) = (0, 0);
                for (child, count) in &mut children {
                    signal(child, "-CONT");
                    total += *count;
                    if let Some(stdin) = child.stdin.as_mut() {
                        let _ = stdin.write_all(b"report\n").await;
                    }
                    if let Some(line) = line_of(child, Duration::from_secs(20)).await {
                        cut += line
                            .strip_prefix("cut ")
                            .and_then(|rest| rest.split(' ').next())
                            .and_then(|c| c.parse::<usize>().ok())
                            .unwrap_or(0);
                    }
                    let _ = child.kill().await;
                }
                (cut, total)
            }
        }
    }
}

fn signal(child: &tokio::process::Child, which: &str) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .arg(which)
            .arg(pid.to_string())
            .status();
    }
}

/// The next line a child prints, within `timeout`.
async fn line_of(child: &mut tokio::process::Child, timeout: Duration) -> Option<String> {
    let stdout = child.stdout.as_mut()?;
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    match tokio::time::timeout(timeout, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => Some(line.trim().to_owned()),
        _ => None,
    }
}
