//! `kill9`: a publisher process killed with SIGKILL in the middle of a GOP.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{check, collect, outcome, started, Ctx, Outcome, Target, Viewers};
use crate::publisher::PublishOptions;
use crate::watch::Live;

const CRITERION: &str = "after SIGKILL of the publisher mid-GOP a republish is accepted and \
    every viewer gets the new publisher's frames within 5 s of the kill, stays connected, and its timeline is continuous \
    (no step back, no jump over 1 s)";

/// Options of the `kill9` scenario.
#[derive(Clone, Debug, clap::Args)]
pub struct Kill9Options {
    /// RTMP viewers of the stream.
    #[arg(long, default_value_t = 20)]
    pub viewers: usize,
    /// Seconds the republished stream is watched.
    #[arg(long, default_value_t = 6)]
    pub observe_secs: u64,
}

/// Runs `kill9`: `command` publishes `{url}/fault-kill9` in a process of its own (the
/// load tool's `publish` subcommand, or FFmpeg); it is killed with SIGKILL when the viewers'
/// last keyframe is 40 % of a GOP old, then the load tool republishes the same stream.
pub async fn kill9(
    target: &Target,
    options: &Kill9Options,
    mut command: Command,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(target)?;
    let stream = "fault-kill9";
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let live = Arc::new(Live::default());
    let mut failures = Vec::new();
    // Viewers wait for the stream to be published, so they may join before it is.
    let viewers = ctx.viewers(stream, options.viewers, &ctx.watch_options(&live));
    let all_started = started(&live, options.viewers, Duration::from_secs(30)).await;
    check(
        &mut failures,
        all_started,
        "not every viewer got a frame before the kill",
    );

    // Measure the GOP from two keyframes, then wait for 40 % of one past a keyframe.
    let key_at = || live.last_key_ms.load(Ordering::Relaxed);
    let first_key = key_at();
    let deadline = Instant::now() + Duration::from_secs(20);
    while key_at() == first_key && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let second_key = key_at();
    while key_at() == second_key && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gop_ms = key_at().saturating_sub(second_key).max(200);
    let aim = key_at() + gop_ms * 2 / 5;
    while (ctx.epoch.elapsed().as_millis() as u64) < aim {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let now_ms = ctx.epoch.elapsed().as_millis() as u64;
    let ms_after_key = now_ms.saturating_sub(key_at());
    child.kill()?; // SIGKILL
    let _ = child.wait();
    let killed = Instant::now();

    // Republish at once; retry while weir still holds the dead publisher.
    let republish = || {
        ctx.publish(
            stream,
            PublishOptions {
                run_for: Some(Duration::from_secs(options.observe_secs + 5)),
                ..PublishOptions::default()
            },
        )
    };
    let mut attempts = 1u32;
    let mut republisher = republish();
    let mut frames_again_ms = None;
    while killed.elapsed() < Duration::from_secs(10) {
        // Every viewer was told the publisher left and got a frame of the new one.
        if live.resumed.load(Ordering::Relaxed) >= options.viewers as u64 {
            frames_again_ms = Some(killed.elapsed().as_millis() as u64);
            break;
        }
        if republisher.is_finished() {
            attempts += 1;
            republisher = republish();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    check(
        &mut failures,
        frames_again_ms.is_some_and(|ms| ms <= 5000),
        format!("viewers had frames of the new publisher {frames_again_ms:?} ms after the kill (limit 5 s)"),
    );
    tokio::time::sleep(Duration::from_secs(options.observe_secs)).await;
    ctx.stop();
    let results = collect(viewers, Duration::from_secs(10)).await;
    if let Ok(result) = republisher.await {
        check(
            &mut failures,
            result.error.is_none(),
            format!("republisher: {}", result.error.unwrap_or_default()),
        );
    }
    let v = Viewers::of(&results);
    let continued = results
        .iter()
        .filter(|w| w.unpublished > 0 && w.frames_after_unpublish > 0)
        .count();
    check(
        &mut failures,
        v.ended == 0,
        format!("{} viewer(s) disconnected", v.ended),
    );
    check(
        &mut failures,
        v.discontinuous == 0,
        format!(
            "{} discontinuous timeline(s): {}",
            v.discontinuous,
            v.first_problem.clone().unwrap_or_default()
        ),
    );
    check(
        &mut failures,
        continued == options.viewers,
        format!(
            "{continued} of {} viewers got the new publisher's frames after UnpublishNotify",
            options.viewers
        ),
    );
    check(&mut failures, ctx.alive(), "the server died");
    let measured = format!(
        "killed {ms_after_key} ms into a {gop_ms} ms GOP; republish accepted at attempt \
         {attempts}, every viewer had the new publisher's frames {} ms after the kill; {continued}/{} viewers \
         continued on one timeline, {} discontinuous, {} disconnected",
        frames_again_ms.map_or("-".into(), |ms| ms.to_string()),
        options.viewers,
        v.discontinuous,
        v.ended
    );
    let numbers = json!({
        "gop_ms": gop_ms, "ms_after_keyframe": ms_after_key, "attempts": attempts,
        "frames_again_ms": frames_again_ms, "viewers": v,
        "continued": continued,
    });
    Ok(outcome(
        "kill-9 publisher",
        CRITERION,
        measured,
        failures,
        numbers,
    ))
}
