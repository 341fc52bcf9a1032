//! `flood`: connections at several times `rtmp.max_connections` for a while.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{check, collect, outcome, started, Ctx, Outcome, Target, Viewers};
use crate::publisher::PublishOptions;
use crate::watch::{self as viewer, Live};

const CRITERION: &str = "the server refuses connections beyond rtmp.max_connections and never \
    holds more than it; the admitted stream's viewer has no gap over 1 s and stays continuous; \
    the publisher is never more than 1 s behind; a new viewer gets its first frame within 1 s \
    of the flood's end";

/// Options of the `flood` scenario.
#[derive(Clone, Debug, clap::Args)]
pub struct FloodOptions {
    /// The server's `rtmp.max_connections`.
    #[arg(long)]
    pub max_connections: usize,
    /// Connections attempted at once, as a multiple of `max_connections`.
    #[arg(long, default_value_t = 5)]
    pub factor: usize,
    /// Seconds the flood lasts.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
}

/// Connection counts of the flood.
#[derive(Default)]
struct Counts {
    attempts: AtomicU64,
    refused: AtomicU64,
    admitted: AtomicU64,
    held_now: AtomicU64,
    held_max: AtomicU64,
}

/// Runs `flood` around stream `fault-flood`.
pub async fn flood(target: &Target, options: &FloodOptions) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(target)?;
    let stream = "fault-flood";
    let mut failures = Vec::new();
    let publisher = ctx.publish(stream, PublishOptions::default());
    let live = Arc::new(Live::default());
    let control = ctx.viewers(stream, 1, &ctx.watch_options(&live));
    check(
        &mut failures,
        started(&live, 1, Duration::from_secs(15)).await,
        "the admitted stream did not start",
    );
    let counts = Arc::new(Counts::default());
    let addr = format!("{}:{}", ctx.base.host, ctx.base.port);
    let end = tokio::time::Instant::now() + Duration::from_secs(options.secs);
    let mut flooders = tokio::task::JoinSet::new();
    for _ in 0..options.max_connections * options.factor {
        flooders.spawn(flooder(addr.clone(), end, Arc::clone(&counts)));
    }
    while flooders.join_next().await.is_some() {}
    // Every flood socket is closed now: a new viewer must be served within a second.
    let ended = Instant::now();
    let mut again_ms = None;
    let url = ctx.base.with_stream(stream);
    while ended.elapsed() < Duration::from_secs(5) {
        let probe_at = ended.elapsed().as_millis() as u64;
        let mut o = ctx.watch_options(&Arc::new(Live::default()));
        o.until = Some(tokio::time::Instant::now() + Duration::from_secs(2));
        o.connect_timeout = Duration::from_secs(2);
        let probe = viewer::rtmp(&url, o).await;
        if let Some(first) = probe.first_frame_ms {
            again_ms = Some(probe_at + first);
            break;
        }
    }
    ctx.stop();
    let control = Viewers::of(&collect(control, Duration::from_secs(10)).await);
    let publisher = publisher.await?;
    let c = |n: &AtomicU64| n.load(Ordering::Relaxed);
    let (attempts, refused, admitted, held_max) = (
        c(&counts.attempts),
        c(&counts.refused),
        c(&counts.admitted),
        c(&counts.held_max),
    );
    check(&mut failures, refused > 0, "no connection was refused");
    check(
        &mut failures,
        held_max as usize <= options.max_connections,
        format!(
            "{held_max} flood connections held at once, max_connections {}",
            options.max_connections
        ),
    );
    check(
        &mut failures,
        control.ended == 0 && control.discontinuous == 0 && control.max_gap_ms <= 1000,
        format!(
            "admitted viewer: {} ended, {} discontinuous, largest gap {} ms",
            control.ended, control.discontinuous, control.max_gap_ms
        ),
    );
    check(
        &mut failures,
        publisher.error.is_none() && publisher.max_behind_ms <= 1000.0,
        format!(
            "publisher: {:?}, {:.0} ms behind",
            publisher.error, publisher.max_behind_ms
        ),
    );
    check(
        &mut failures,
        again_ms.is_some_and(|ms| ms <= 1000),
        format!("a new viewer served {again_ms:?} ms after the flood"),
    );
    check(&mut failures, ctx.alive(), "the server died");
    let measured = format!(
        "{} connections at once for {} s against max_connections {}: {attempts} attempts, \
         {refused} refused, {admitted} admitted (at most {held_max} held at once); admitted \
         viewer's largest gap {} ms; publisher {:.0} ms behind at worst; new viewer served {} ms \
         after the flood",
        options.max_connections * options.factor,
        options.secs,
        options.max_connections,
        control.max_gap_ms,
        publisher.max_behind_ms,
        again_ms.map_or("-".into(), |ms| ms.to_string()),
    );
    let numbers = json!({
        "max_connections": options.max_connections, "concurrent": options.max_connections * options.factor,
        "secs": options.secs, "attempts": attempts, "refused": refused, "admitted": admitted,
        "held_max": held_max, "control": control, "publisher_max_behind_ms": publisher.max_behind_ms,
        "served_again_ms": again_ms,
    });
    Ok(outcome(
        "connection flood",
        CRITERION,
        measured,
        failures,
        numbers,
    ))
}

/// Connects again and again until `end`: a connection the server answers (its handshake
/// reply) is held until the server closes it or the flood ends; one it closes at once is
/// refused.
async fn flooder(addr: String, end: tokio::time::Instant, counts: Arc<Counts>) {
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    while tokio::time::Instant::now() < end {
        counts.attempts.fetch_add(1, Ordering::Relaxed);
        let Ok(Ok(mut socket)) = tokio::time::timeout_at(end, TcpStream::connect(&addr)).await
        else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let _ = socket.write_all(&c0c1).await;
        let mut buf = [0u8; 4096];
        match tokio::time::timeout_at(end, socket.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                counts.admitted.fetch_add(1, Ordering::Relaxed);
                let now = counts.held_now.fetch_add(1, Ordering::Relaxed) + 1;
                counts.held_max.fetch_max(now, Ordering::Relaxed);
                // Held until the server closes it (handshake timeout) or the flood ends.
                loop {
                    match tokio::time::timeout_at(end, socket.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => continue,
                        _ => break,
                    }
                }
                counts.held_now.fetch_sub(1, Ordering::Relaxed);
            }
            Ok(_) => {
                counts.refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => {}
        }
    }
}
