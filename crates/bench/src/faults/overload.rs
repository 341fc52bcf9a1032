//! `overload`: a publisher sending far more than its viewers can take (50 Mbit/s to viewers
//! on 4 Mbit/s links), beside a normal stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{check, collect, mib, outcome, started, Ctx, Outcome, Target, Viewers};
use crate::publisher::PublishOptions;
use crate::watch::Live;

const CRITERION: &str = "the heavy publisher is never more than 1 s behind real time and not \
    cut; every viewer reading at a few Mbit/s is cut by the lag policy (not left to grow \
    queues); viewers that read at full speed keep most of the frames; RSS stays within the \
    limit; the other stream's viewers have no gap over 1 s and continuous timelines";

/// Options of the `overload` scenario.
#[derive(Clone, Debug, clap::Args)]
pub struct OverloadOptions {
    /// The heavy publisher's bitrate, kbit/s.
    #[arg(long, default_value_t = 50_000)]
    pub kbps: u64,
    /// Viewers of the heavy stream reading at `--slow-kbps`.
    #[arg(long, default_value_t = 20)]
    pub slow_viewers: usize,
    /// Their read rate, kbit/s.
    #[arg(long, default_value_t = 4_000)]
    pub slow_kbps: u64,
    /// Viewers of the heavy stream reading at full speed.
    #[arg(long, default_value_t = 2)]
    pub fast_viewers: usize,
    /// Viewers of the normal stream beside it.
    #[arg(long, default_value_t = 10)]
    pub control_viewers: usize,
    /// Seconds the heavy stream runs.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// Largest RSS growth allowed over its level before the heavy stream, MiB.
    #[arg(long, default_value_t = 256)]
    pub rss_limit_mib: u64,
}

/// Runs `overload` with streams `fault-heavy` and `fault-normal`.
pub async fn overload(target: &Target, options: &OverloadOptions) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(target)?;
    let mut failures = Vec::new();
    let normal = ctx.publish("fault-normal", PublishOptions::default());
    let control_live = Arc::new(Live::default());
    let control = ctx.viewers(
        "fault-normal",
        options.control_viewers,
        &ctx.watch_options(&control_live),
    );
    check(
        &mut failures,
        started(
            &control_live,
            options.control_viewers,
            Duration::from_secs(20),
        )
        .await,
        "the normal stream's viewers did not start",
    );
    let before = ctx.sample();
    let heavy = ctx.publish(
        "fault-heavy",
        PublishOptions {
            kbps: Some(options.kbps),
            run_for: Some(Duration::from_secs(options.secs)),
            ..PublishOptions::default()
        },
    );
    let slow_live = Arc::new(Live::default());
    let mut slow_options = ctx.watch_options(&slow_live);
    slow_options.read_kbps = Some(options.slow_kbps);
    let slow = ctx.viewers("fault-heavy", options.slow_viewers, &slow_options);
    let fast_live = Arc::new(Live::default());
    let fast = ctx.viewers(
        "fault-heavy",
        options.fast_viewers,
        &ctx.watch_options(&fast_live),
    );
    let start = Instant::now();
    let mut peak_rss = before.map_or(0, |b| b.rss);
    while start.elapsed() < Duration::from_secs(options.secs) {
        if let Some(s) = ctx.sample() {
            peak_rss = peak_rss.max(s.rss);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let heavy = heavy.await?;
    let elapsed = start.elapsed().as_secs_f64();
    ctx.stop();
    let slow_results = collect(slow, Duration::from_secs(10)).await;
    let fast_results = collect(fast, Duration::from_secs(10)).await;
    let control = Viewers::of(&collect(control, Duration::from_secs(10)).await);
    let _ = normal.await;
    let slow = Viewers::of(&slow_results);
    let fast = Viewers::of(&fast_results);
    let heavy_mbps = heavy.bytes as f64 * 8.0 / 1e6 / elapsed;
    let fast_mbps: Vec<f64> = fast_results
        .iter()
        .map(|w| w.bytes as f64 * 8.0 / 1e6 / elapsed)
        .collect();
    let before_rss = before.map_or(0, |b| b.rss);
    let growth_mib = mib(peak_rss.saturating_sub(before_rss));
    check(
        &mut failures,
        heavy.error.is_none() && heavy.max_behind_ms <= 1000.0,
        format!(
            "heavy publisher: {:?}, {:.0} ms behind",
            heavy.error, heavy.max_behind_ms
        ),
    );
    check(
        &mut failures,
        slow.server_closed == options.slow_viewers,
        format!(
            "{} of {} slow viewers were cut",
            slow.server_closed, options.slow_viewers
        ),
    );
    check(
        &mut failures,
        fast.ended == 0 && fast_mbps.iter().all(|&m| m >= heavy_mbps * 0.8),
        format!("fast viewers: {} ended, {fast_mbps:.1?} Mbit/s", fast.ended),
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
            "normal stream's viewers: {} ended, {} discontinuous, largest gap {} ms",
            control.ended, control.discontinuous, control.max_gap_ms
        ),
    );
    check(&mut failures, ctx.alive(), "the server died");
    let measured = format!(
        "heavy publisher sent {heavy_mbps:.1} Mbit/s for {elapsed:.0} s, {:.0} ms behind at \
         worst; {}/{} viewers reading at {} kbit/s cut; fast viewers got {fast_mbps:.1?} Mbit/s; \
         RSS +{growth_mib:.1} MiB at peak; normal stream's largest gap {} ms",
        heavy.max_behind_ms,
        slow.server_closed,
        options.slow_viewers,
        options.slow_kbps,
        control.max_gap_ms,
    );
    let numbers = json!({
        "heavy_mbps": heavy_mbps, "heavy_max_behind_ms": heavy.max_behind_ms,
        "slow": slow, "fast": fast, "fast_mbps": fast_mbps, "control": control,
        "rss_before": before_rss, "rss_peak": peak_rss, "rss_growth_mib": growth_mib,
    });
    Ok(outcome(
        "50 Mbit/s publisher",
        CRITERION,
        measured,
        failures,
        numbers,
    ))
}
