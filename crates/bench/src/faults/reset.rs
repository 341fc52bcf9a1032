//! `reset`: many viewers leave at once with TCP resets (`SO_LINGER` 0).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::{check, collect, fds_down_to, outcome, started, Ctx, Outcome, Target, Viewers};
use crate::publisher::PublishOptions;
use crate::watch::{self as viewer, Live};

const CRITERION: &str = "every viewer played before the reset; after it the server's open fds \
    are back to their count before the viewers (+ slack) within 10 s, a new viewer gets its \
    first frame within 2 s, and a viewer that stayed has no gap over 1 s";

/// Options of the `reset` scenario.
#[derive(Clone, Debug, clap::Args)]
pub struct ResetOptions {
    /// Viewers reset at once.
    #[arg(long, default_value_t = 2000)]
    pub viewers: usize,
    /// Open fds allowed above the count before the viewers joined.
    #[arg(long, default_value_t = 10)]
    pub fd_slack: u64,
}

/// Runs `reset` on stream `fault-reset`.
pub async fn reset(target: &Target, options: &ResetOptions) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(target)?;
    let stream = "fault-reset";
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

    let live = Arc::new(Live::default());
    let (reset_tx, reset_rx) = watch::channel(false);
    let mut options_reset = ctx.watch_options(&live);
    options_reset.stop = reset_rx;
    options_reset.reset = true;
    let mut crowd = tokio::task::JoinSet::new();
    let url = ctx.base.with_stream(stream);
    for i in 0..options.viewers {
        let (url, o) = (url.clone(), options_reset.clone());
        crowd.spawn(async move { viewer::rtmp(&url, o).await });
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let all = started(&live, options.viewers, Duration::from_secs(60)).await;
    let playing = live.started.load(std::sync::atomic::Ordering::Relaxed);
    check(
        &mut failures,
        all,
        format!("{playing} of {} viewers played", options.viewers),
    );
    let with = ctx.sample();
    let reset_at = Instant::now();
    reset_tx.send_replace(true);
    let crowd = collect(crowd, Duration::from_secs(20)).await;
    let resets_sent = crowd.len();
    let want = before.map_or(0, |b| b.fds + options.fd_slack);
    let (settled, fds_after) = fds_down_to(&ctx, want, Duration::from_secs(10)).await;
    check(
        &mut failures,
        settled.is_some(),
        format!("open fds {fds_after} 10 s after the reset, want <= {want}"),
    );
    // A new viewer is served at once (from the GOP cache).
    let mut probe_options = ctx.watch_options(&Arc::new(Live::default()));
    probe_options.until = Some(tokio::time::Instant::now() + Duration::from_secs(3));
    let probe = viewer::rtmp(&url, probe_options).await;
    let probe_ms = probe.first_frame_ms;
    check(
        &mut failures,
        probe_ms.is_some_and(|ms| ms <= 2000),
        format!("a new viewer's first frame after {probe_ms:?} ms"),
    );
    ctx.stop();
    let control = Viewers::of(&collect(control, Duration::from_secs(10)).await);
    let _ = publisher.await;
    check(
        &mut failures,
        control.ended == 0 && control.discontinuous == 0 && control.max_gap_ms <= 1000,
        format!(
            "the staying viewer: {} ended, {} discontinuous, largest gap {} ms",
            control.ended, control.discontinuous, control.max_gap_ms
        ),
    );
    check(&mut failures, ctx.alive(), "the server died");
    let measured = format!(
        "{playing} viewers reset at once ({resets_sent} resets sent); open fds {} before the \
         viewers, {} with them, {fds_after} after ({} ms to settle); new viewer's first frame in \
         {} ms; staying viewer's largest gap {} ms",
        before.map_or(0, |b| b.fds),
        with.map_or(0, |w| w.fds),
        settled.map_or("-".into(), |d| d.as_millis().to_string()),
        probe_ms.map_or("-".into(), |ms| ms.to_string()),
        control.max_gap_ms,
    );
    let numbers = json!({
        "viewers": options.viewers, "playing": playing, "before": before, "with": with,
        "fds_after": fds_after, "settle_ms": settled.map(|d| d.as_millis() as u64),
        "probe_first_frame_ms": probe_ms, "control": control,
        "reset_to_settled_ms": reset_at.elapsed().as_millis() as u64,
    });
    Ok(outcome(
        "viewers reset at once",
        CRITERION,
        measured,
        failures,
        numbers,
    ))
}
