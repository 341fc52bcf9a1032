//! The load tool behind `weir-bench`: publishes a file in real time and opens many players
//! in one process, then reports what the players got and what the server spent.
//!
//! Scenarios:
//! * fan-out: `--publishers 1 --players N`: N players on one stream;
//! * ingest: `--publishers M --players M`: M streams, one player each;
//! * idle: `--idle N`: N players waiting on a stream nobody publishes, to measure memory;
//! * ingest only: `--publishers M --players 0`: the server CPU of receiving M streams;
//! * endurance: [`soak`] (publishers restarting, viewers churning, RSS and open files
//!   sampled) and [`faults`] (kill -9 of a publisher, mass resets, a connection flood,
//!   stopped viewers, an overloading publisher), each with its pass/fail criterion.
//!
//! Its publishers use [`weir_client::Client`]; its players run the sans-IO
//! [`weir_rtmp::session::ClientSession`] directly over their sockets, so one process holds
//! thousands of them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod faults;
mod filler;
pub mod hls_watch;
mod http_player;
mod llhls_player;
pub mod player;
pub mod procstat;
pub mod publisher;
pub mod sampler;
pub mod segments;
pub mod soak;
mod stamp;
pub mod stats;
pub mod timeline;
pub mod watch;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use weir_client::RtmpUrl;
use weir_media::flv_file::{FlvReader, FlvTag};
use weir_media::MediaKind;

use crate::player::{PlayerResult, Shared};
use crate::publisher::PublisherResult;
use crate::stats::Summary;

/// Options of one load run.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchOptions {
    /// Server URL up to the app, e.g. rtmp://127.0.0.1:1935/live; stream keys are bench-N.
    #[arg(long, default_value = "rtmp://127.0.0.1:1935/live")]
    pub url: String,
    /// FLV file to publish (looped, paced in real time).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Publishers (streams bench-0 .. bench-{M-1}).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Players, spread evenly over the streams.
    #[arg(long, default_value_t = 100)]
    pub players: usize,
    /// Idle players that wait on an unpublished stream (memory scenario).
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// Seconds of measurement after everyone has joined and warmed up.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds between the publishers starting and the players joining.
    #[arg(long, default_value_t = 3)]
    pub lead: u64,
    /// Seconds after the last player joined before measuring starts.
    #[arg(long, default_value_t = 3)]
    pub warmup: u64,
    /// Players connecting at once while ramping up.
    #[arg(long, default_value_t = 200)]
    pub connect_batch: usize,
    /// The server's pid, to report its CPU time and memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// A label for the report (e.g. "weir" or "nginx-rtmp").
    #[arg(long, default_value = "")]
    pub label: String,
    /// Players play HTTP-FLV from this `host:port` (`/{app}/bench-N.flv`) instead of RTMP;
    /// publishers still use `--url`.
    #[arg(long)]
    pub play_http: Option<String>,
    /// Players follow Low-Latency HLS from this `host:port` instead of RTMP
    /// (`/{app}/bench-N/v0/index.m3u8` with blocking reloads, every part fetched); publishers
    /// still use `--url`.
    #[arg(long, conflicts_with = "play_http")]
    pub play_llhls: Option<String>,
    /// Fraction of the source frame rate a player must keep to count as held.
    #[arg(long, default_value_t = 0.95)]
    pub held_fraction: f64,
    /// First timestamp of each publish, ms; later ones wrap at 2^32 (e.g. 4294960000 crosses
    /// the 49.7-day wrap 7.3 s in).
    #[arg(long, default_value_t = 0)]
    pub start_ms: u32,
}

/// The JSON report.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The label given.
    pub label: String,
    /// Players asked for.
    pub players: usize,
    /// Publishers asked for.
    pub publishers: usize,
    /// Players that stayed connected and kept at least `held_fraction` of the frame rate.
    pub players_held: usize,
    /// Players whose connection ended early.
    pub disconnects: usize,
    /// Disconnect reasons with counts.
    pub disconnect_reasons: Vec<(String, usize)>,
    /// Source video frame rate.
    pub source_fps: f64,
    /// Measurement window, seconds.
    pub window_s: f64,
    /// Per-player video frame rate in the window.
    pub fps: Summary,
    /// Per-player bitrate in the window, kbit/s.
    pub kbps: Summary,
    /// Time from connect to first video frame, ms.
    pub time_to_first_frame_ms: Summary,
    /// Server-added latency of live frames, ms.
    pub latency_ms: Summary,
    /// LL-HLS: latency of the last frame of each part, ms (one frame interval of it is the
    /// part waiting for the frame that closes it).
    pub part_end_latency_ms: Summary,
    /// Bytes all players received in the window.
    pub bytes_delivered: u64,
    /// Server CPU seconds in the window.
    pub server_cpu_s: Option<f64>,
    /// Server CPU seconds per GB delivered.
    pub server_cpu_s_per_gb: Option<f64>,
    /// Server CPU use in the window, in cores.
    pub server_cores: Option<f64>,
    /// Server peak RSS, bytes.
    pub server_peak_rss: Option<u64>,
    /// Server RSS before the players joined and at the end, bytes.
    pub server_rss_before: Option<u64>,
    /// Server RSS at the end of the window, bytes.
    pub server_rss_after: Option<u64>,
    /// (after - before) / players, bytes.
    pub server_rss_per_player: Option<f64>,
    /// The load tool's own CPU seconds in the window.
    pub loadgen_cpu_s: Option<f64>,
    /// Publishers' worst delay behind real time, ms.
    pub publisher_max_behind_ms: f64,
    /// Publisher errors.
    pub publisher_errors: Vec<String>,
}

/// Runs one load scenario.
pub async fn run(options: BenchOptions) -> anyhow::Result<Report> {
    let base = RtmpUrl::parse(&options.url)?;
    let tags = match &options.file {
        Some(path) => load(path)?,
        None if options.idle > 0 && options.players == 0 => Vec::new(),
        None => anyhow::bail!("--file is required to publish"),
    };
    let source_fps = video_fps(&tags);
    let tags = Arc::new(tags);
    let shared = Arc::new(Shared {
        measuring: false.into(),
        stop: false.into(),
        stop_signal: tokio::sync::watch::channel(false).0,
        epoch: Instant::now(),
        latency: true,
    });
    let pid = options.server_pid;
    let mut report = Report {
        label: options.label.clone(),
        players: options.players + options.idle,
        publishers: options.publishers,
        source_fps,
        ..Report::default()
    };

    let mut publishers = JoinSet::new();
    // Publishers run unless only idle players were asked for (`--players 0` alone measures
    // the ingest by itself).
    if options.players > 0 || options.idle == 0 {
        for i in 0..options.publishers.max(1) {
            let url = base.with_stream(&format!("bench-{i}"));
            let publish = publisher::PublishOptions {
                start_ms: options.start_ms,
                ..publisher::PublishOptions::default()
            };
            publishers.spawn(publisher::run_with(
                url,
                Arc::clone(&tags),
                Arc::clone(&shared),
                publish,
            ));
        }
        tokio::time::sleep(Duration::from_secs(options.lead)).await;
    }

    report.server_rss_before = pid.and_then(procstat::rss_bytes);
    let mut players = JoinSet::new();
    let streams = options.publishers.max(1);
    let total = options.players + options.idle;
    for i in 0..total {
        let (stream, idle) = if i < options.players {
            (format!("bench-{}", i % streams), false)
        } else {
            ("bench-idle".to_owned(), true)
        };
        match (&options.play_http, &options.play_llhls) {
            (Some(authority), _) if !idle => {
                players.spawn(http_player::run(
                    authority.clone(),
                    base.app.clone(),
                    stream,
                    Arc::clone(&shared),
                ));
            }
            (_, Some(authority)) if !idle => {
                players.spawn(llhls_player::run(
                    authority.clone(),
                    base.app.clone(),
                    stream,
                    Arc::clone(&shared),
                ));
            }
            _ => {
                players.spawn(player::run(
                    base.with_stream(&stream),
                    Arc::clone(&shared),
                    idle,
                ));
            }
        }
        if (i + 1) % options.connect_batch.max(1) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(options.warmup)).await;

    let cpu_before = pid.and_then(procstat::cpu_seconds);
    let self_before = procstat::cpu_seconds(std::process::id());
    let window_start = Instant::now();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(options.duration)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let window = window_start.elapsed().as_secs_f64();
    let cpu_after = pid.and_then(procstat::cpu_seconds);
    let self_after = procstat::cpu_seconds(std::process::id());
    report.server_rss_after = pid.and_then(procstat::rss_bytes);
    report.server_peak_rss = pid.and_then(procstat::peak_rss_bytes);
    shared.stop.store(true, Ordering::Relaxed);
    shared.stop_signal.send_replace(true);

    // Players notice `stop` within their 500 ms read timeout; one blocked writing to a server
    // that stopped reading would otherwise hang the run, so it counts as a disconnect.
    let mut results = Vec::with_capacity(total);
    let drain_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(drain_deadline, players.join_next()).await {
            Ok(None) => break,
            Ok(Some(joined)) => results.push(joined?),
            Err(_) => {
                for _ in 0..players.len() {
                    results.push(PlayerResult {
                        disconnect: Some("blocked at the end of the run".into()),
                        ..PlayerResult::default()
                    });
                }
                players.abort_all();
                break;
            }
        }
    }
    // A publisher blocked on a server that stopped reading would otherwise hang the run.
    let drain_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(drain_deadline, publishers.join_next()).await {
            Ok(None) => break,
            Ok(Some(joined)) => {
                let result: PublisherResult = joined?;
                report.publisher_max_behind_ms =
                    report.publisher_max_behind_ms.max(result.max_behind_ms);
                if let Some(err) = result.error {
                    report.publisher_errors.push(err);
                }
            }
            Err(_) => {
                let stuck = publishers.len();
                publishers.abort_all();
                report.publisher_errors.push(format!(
                    "{stuck} publisher(s) blocked at the end of the run"
                ));
                break;
            }
        }
    }

    summarise(&mut report, &results, window, &options);
    if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
        let cpu = after - before;
        report.server_cpu_s = Some(cpu);
        report.server_cores = Some(cpu / window);
        if report.bytes_delivered > 0 {
            report.server_cpu_s_per_gb = Some(cpu / (report.bytes_delivered as f64 / 1e9));
        }
    }
    if let (Some(before), Some(after)) = (self_before, self_after) {
        report.loadgen_cpu_s = Some(after - before);
    }
    if let (Some(before), Some(after)) = (report.server_rss_before, report.server_rss_after) {
        if total > 0 {
            report.server_rss_per_player = Some((after as f64 - before as f64) / total as f64);
        }
    }
    Ok(report)
}

fn summarise(report: &mut Report, results: &[PlayerResult], window: f64, options: &BenchOptions) {
    let mut fps = Vec::new();
    let mut kbps = Vec::new();
    let mut ttff = Vec::new();
    let mut latency = Vec::new();
    let mut part_end = Vec::new();
    let mut reasons: Vec<(String, usize)> = Vec::new();
    // Results arrive in completion order, so idle players are told apart by their flag.
    for result in results {
        report.bytes_delivered += result.bytes;
        if let Some(reason) = &result.disconnect {
            report.disconnects += 1;
            match reasons.iter_mut().find(|(r, _)| r == reason) {
                Some((_, count)) => *count += 1,
                None => reasons.push((reason.clone(), 1)),
            }
        }
        if result.idle {
            continue;
        }
        let player_fps = result.video_frames as f64 / window;
        fps.push(player_fps);
        kbps.push(result.bytes as f64 * 8.0 / 1e3 / window);
        if let Some(t) = result.time_to_first_frame {
            ttff.push(t.as_secs_f64() * 1e3);
        }
        latency.extend(result.latencies_ms.iter().map(|&ms| f64::from(ms)));
        part_end.extend(result.part_end_latencies_ms.iter().map(|&ms| f64::from(ms)));
        if result.disconnect.is_none() && player_fps >= options.held_fraction * report.source_fps {
            report.players_held += 1;
        }
    }
    report.disconnect_reasons = reasons;
    report.window_s = window;
    report.fps = Summary::of(&mut fps);
    report.kbps = Summary::of(&mut kbps);
    report.time_to_first_frame_ms = Summary::of(&mut ttff);
    report.latency_ms = Summary::of(&mut latency);
    report.part_end_latency_ms = Summary::of(&mut part_end);
}

/// Reads every tag of an FLV file.
pub fn load(path: &std::path::Path) -> anyhow::Result<Vec<FlvTag>> {
    let data = std::fs::read(path)
        .map_err(|err| anyhow::anyhow!("cannot read {}: {err}", path.display()))?;
    let reader = FlvReader::from_bytes(data.into())?;
    let tags = reader.collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!tags.is_empty(), "{} has no tags", path.display());
    Ok(tags)
}

/// Video frames per second of a file's tags.
pub fn video_fps(tags: &[FlvTag]) -> f64 {
    let video: Vec<u32> = tags
        .iter()
        .filter(|t| t.kind == MediaKind::Video)
        .map(|t| t.timestamp)
        .collect();
    match (video.first(), video.last()) {
        (Some(first), Some(last)) if last > first => {
            (video.len() - 1) as f64 / (f64::from(last - first) / 1e3)
        }
        _ => 0.0,
    }
}
