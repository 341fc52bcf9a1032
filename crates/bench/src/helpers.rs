//! The processes the fault scenarios start: a publisher to kill and viewers to stop.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_bench::player::Shared;
use weir_bench::publisher::{self, PublishOptions};
use weir_bench::watch::{self, End, Live, WatchOptions};
use weir_client::RtmpUrl;

/// Publishes `url` until killed (or `seconds`); fails when the publish fails.
pub async fn publish(
    url: &str,
    file: &Path,
    start_ms: u32,
    kbps: Option<u64>,
    seconds: Option<u64>,
) -> anyhow::Result<ExitCode> {
    let url = RtmpUrl::parse(url)?;
    let tags = Arc::new(weir_bench::load(file)?);
    let shared = Arc::new(Shared {
        measuring: false.into(),
        stop: false.into(),
        stop_signal: tokio::sync::watch::channel(false).0,
        epoch: Instant::now(),
        latency: false,
    });
    let options = PublishOptions {
        start_ms,
        kbps,
        run_for: seconds.map(Duration::from_secs),
    };
    let result = publisher::run_with(url, tags, shared, options).await;
    match result.error {
        Some(err) => anyhow::bail!("publish: {err}"),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Plays `url` with `count` viewers: prints `ready K` once all played (or after 60 s), then
/// on a line on stdin (or its end) `cut C of N` and exits.
pub async fn viewers(url: &str, count: usize) -> anyhow::Result<ExitCode> {
    let url = RtmpUrl::parse(url)?;
    let live = Arc::new(Live::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut options = WatchOptions::new(stop_rx, Instant::now());
    options.live = Some(Arc::clone(&live));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..count {
        let (url, options) = (url.clone(), options.clone());
        set.spawn(async move { watch::rtmp(&url, options).await });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while (live.started.load(Ordering::Relaxed) as usize) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("ready {}", live.started.load(Ordering::Relaxed));
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)
    })
    .await;
    // Viewers the server cut see the end of their stream at once; give them a moment.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send_replace(true);
    let mut cut = 0;
    while let Some(joined) = set.join_next().await {
        if joined.is_ok_and(|w| w.end == End::ServerClosed) {
            cut += 1;
        }
    }
    println!("cut {cut} of {count}");
    Ok(ExitCode::SUCCESS)
}
