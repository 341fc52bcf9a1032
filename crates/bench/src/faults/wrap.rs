//! `wrap`: publishers whose timestamps start just below 2^31 and 2^32 ms (24.8 and 49.7
//! days of uptime) play through the wrap on every output: RTMP, HTTP-FLV, HLS fMP4 (LL-HLS
//! playlists) and HLS MPEG-TS.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{check, outcome, Ctx, Outcome, Target, Viewers};
use crate::hls_watch::get;
use crate::publisher::PublishOptions;
use crate::segments::{fmp4_decode_time, ts_first_video_pts};
use crate::watch::{self as viewer, Live};

const CRITERION: &str = "for publishers starting 8 s below 2^31 and 2^32 ms: every RTMP and \
    HTTP-FLV viewer's timeline (from the start, and joining 0.3 s after the wrap) is continuous (no step back, no jump over 1 s) with no \
    wall-clock gap over 1 s and frames throughout; every HLS segment (fMP4 and MPEG-TS) lasts \
    more than 0 and at most its target duration, sequence numbers follow each other, and each \
    segment's first decode time is the previous one's plus its duration (within 100 ms); the \
    DASH MPD has one Period and gapless SegmentTimelines";

/// Options of the `wrap` scenario.
#[derive(Clone, Debug, clap::Args)]
pub struct WrapOptions {
    /// Seconds of stream before the wrap.
    #[arg(long, default_value_t = 8)]
    pub lead_secs: u32,
    /// Seconds each publisher runs.
    #[arg(long, default_value_t = 30)]
    pub secs: u64,
    /// The server's HTTP listener (`host:port`) for HTTP-FLV and HLS.
    #[arg(long)]
    pub http: String,
}

/// One HLS segment as fetched.
#[derive(Clone, Debug, Serialize)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// `EXTINF`, seconds.
    pub duration: f64,
    /// First decode time, in the container's timescale (`None`: unreadable).
    pub decode: Option<u64>,
    /// An `EXT-X-DISCONTINUITY` precedes it.
    pub discontinuity: bool,
}

/// What an HLS follower saw of one rendition.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SegmentLog {
    /// The playlist's path.
    pub path: String,
    /// `EXT-X-TARGETDURATION`.
    pub target: u64,
    /// Every segment fetched, in order.
    pub segments: Vec<Segment>,
    /// Problems found.
    pub problems: Vec<String>,
}

/// Runs `wrap` with streams `wrap-31` and `wrap-32`.
pub async fn wrap(target: &Target, options: &WrapOptions) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(target)?;
    let fps = crate::video_fps(&ctx.tags);
    let mut failures = Vec::new();
    let lead_ms = options.lead_secs * 1000;
    let streams = [
        ("wrap-31", (1u32 << 31) - lead_ms),
        ("wrap-32", 0u32.wrapping_sub(lead_ms)),
    ];
    let mut publishers = Vec::new();
    for (stream, start_ms) in streams {
        publishers.push(ctx.publish(
            stream,
            PublishOptions {
                start_ms,
                run_for: Some(Duration::from_secs(options.secs)),
                ..PublishOptions::default()
            },
        ));
    }
    // HTTP-FLV answers 404 for a stream not yet published.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = Arc::new(Live::default());
    let mut watchers = tokio::task::JoinSet::new();
    let mut followers = tokio::task::JoinSet::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(options.secs.saturating_sub(2));
    for (stream, _) in streams {
        let mut o = ctx.watch_options(&live);
        o.until = Some(until);
        let url = ctx.base.with_stream(stream);
        let rtmp = o.clone();
        let label = format!("rtmp {stream}");
        watchers.spawn(async move { (label, viewer::rtmp(&url, rtmp).await) });
        let (http, app, name) = (
            options.http.clone(),
            ctx.base.app.clone(),
            stream.to_owned(),
        );
        let label = format!("http-flv {stream}");
        watchers.spawn(async move { (label, viewer::flv(&http, &app, &name, o).await) });
        for flavour in ["v0", "ts"] {
            let path = format!("/{}/{stream}/{flavour}/index.m3u8", ctx.base.app);
            let http = options.http.clone();
            followers.spawn(async move { follow(&http, path, until).await });
        }
    }
    // Late joiners 300 ms after the wrap: their GOP snapshot straddles it.
    tokio::time::sleep(Duration::from_millis(u64::from(lead_ms) - 700)).await;
    for (stream, _) in streams {
        let mut o = ctx.watch_options(&live);
        o.until = Some(until);
        let url = ctx.base.with_stream(stream);
        let rtmp = o.clone();
        let label = format!("rtmp {stream} joining after the wrap");
        watchers.spawn(async move { (label, viewer::rtmp(&url, rtmp).await) });
        let (http, app, name) = (
            options.http.clone(),
            ctx.base.app.clone(),
            stream.to_owned(),
        );
        let label = format!("http-flv {stream} joining after the wrap");
        watchers.spawn(async move { (label, viewer::flv(&http, &app, &name, o).await) });
    }
    let mut outputs = Vec::new();
    while let Some(joined) = watchers.join_next().await {
        let (protocol, watched) = joined?;
        outputs.push((protocol, watched));
    }
    let mut hls = Vec::new();
    while let Some(joined) = followers.join_next().await {
        let mut log = joined?;
        judge_segments(&mut log);
        hls.push(log);
    }
    // DASH, over the same segments: one Period, each SegmentTimeline without a gap.
    let mut dash = Vec::new();
    for (stream, _) in streams {
        let path = format!("/{}/{stream}/index.mpd", ctx.base.app);
        let problem = match get(&options.http, &path).await {
            Ok((200, body)) => judge_mpd(&String::from_utf8_lossy(&body)),
            Ok((status, _)) => Some(format!("HTTP {status}")),
            Err(err) => Some(err),
        };
        check(
            &mut failures,
            problem.is_none(),
            format!("{path}: {}", problem.clone().unwrap_or_default()),
        );
        dash.push(json!({"path": path, "problem": problem}));
    }
    ctx.stop();
    for publisher in publishers {
        let result = publisher.await?;
        check(
            &mut failures,
            result.error.is_none(),
            format!("publisher: {:?}", result.error),
        );
    }
    let full = ((options.secs as f64 - 5.0) * fps * 0.9) as u64;
    let late = ((options.secs as f64 - 4.0 - f64::from(options.lead_secs)) * fps * 0.9) as u64;
    let mut lines = Vec::new();
    for (protocol, watched) in &outputs {
        let v = Viewers::of(std::slice::from_ref(watched));
        let min_frames = if protocol.contains("after the wrap") {
            late
        } else {
            full
        };
        let ok = v.discontinuous == 0
            && v.ended == 0
            && v.max_gap_ms <= 1000
            && watched.timeline.frames >= min_frames;
        check(
            &mut failures,
            ok,
            format!(
                "{protocol}: {} frames (want >= {min_frames}), {} discontinuous ({}), ended {:?}, largest gap {} ms",
                watched.timeline.frames,
                v.discontinuous,
                v.first_problem.clone().unwrap_or_default(),
                watched.end,
                v.max_gap_ms
            ),
        );
        lines.push(format!(
            "{protocol} {} frames, largest step {} ms",
            watched.timeline.frames, watched.timeline.largest_step_ms
        ));
    }
    for log in &hls {
        check(
            &mut failures,
            log.problems.is_empty() && log.segments.len() >= 4,
            format!(
                "{}: {} segments, {}",
                log.path,
                log.segments.len(),
                log.problems.join("; ")
            ),
        );
        lines.push(format!("{} {} segments", log.path, log.segments.len()));
    }
    check(&mut failures, ctx.alive(), "the server died");
    lines.push(format!("{} DASH timelines", dash.len()));
    let measured = format!(
        "{} outputs through the 2^31 and 2^32 ms wraps: {}",
        outputs.len() + hls.len() + dash.len(),
        lines.join(", ")
    );
    let viewers: Vec<_> = outputs
        .iter()
        .map(|(p, w)| json!({"protocol": p, "timeline": w.timeline, "max_gap_ms": w.max_gap_ms}))
        .collect();
    let numbers = json!({ "viewers": viewers, "hls": hls, "dash": dash });
    Ok(outcome(
        "timestamp wrap",
        CRITERION,
        measured,
        failures,
        numbers,
    ))
}

/// Fetches every segment of the media playlist at `path` as it appears, until `until`.
async fn follow(authority: &str, path: String, until: tokio::time::Instant) -> SegmentLog {
    let mut log = SegmentLog {
        path: path.clone(),
        ..SegmentLog::default()
    };
    let base = path.rsplit_once('/').map_or("", |(dir, _)| dir).to_owned();
    let fmp4 = !path.contains("/ts/");
    let mut next: Option<u64> = None;
    while tokio::time::Instant::now() < until {
        if let Ok((200, body)) = get(authority, &path).await {
            let text = String::from_utf8_lossy(&body).into_owned();
            log.target = target_duration(&text).unwrap_or(log.target);
            for (sequence, duration, uri, discontinuity) in segments(&text) {
                if next.is_some_and(|n| sequence < n) {
                    continue;
                }
                if let Some(n) = next.filter(|&n| sequence > n) {
                    log.problems
                        .push(format!("segments {n}..{sequence} never listed"));
                }
                let decode = match get(authority, &format!("{base}/{uri}")).await {
                    Ok((200, data)) if fmp4 => fmp4_decode_time(&data),
                    Ok((200, data)) => ts_first_video_pts(&data),
                    _ => None,
                };
                log.segments.push(Segment {
                    sequence,
                    duration,
                    decode,
                    discontinuity,
                });
                next = Some(sequence + 1);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    log
}

/// Checks durations against the target and decode times against durations.
pub fn judge_segments(log: &mut SegmentLog) {
    let fmp4 = !log.path.contains("/ts/");
    let limit = log.target as f64 + 0.5;
    let mut problems = Vec::new();
    for s in &log.segments {
        if !(s.duration > 0.0 && s.duration <= limit) {
            problems.push(format!("segment {} lasts {} s", s.sequence, s.duration));
        }
        if s.decode.is_none() {
            problems.push(format!("segment {}: no decode time", s.sequence));
        }
    }
    // fMP4: ticks per second from the segments themselves (the track's timescale).
    let pairs: Vec<(&Segment, &Segment)> = log
        .segments
        .windows(2)
        .map(|w| (&w[0], &w[1]))
        .filter(|(a, b)| b.sequence == a.sequence + 1 && !b.discontinuity)
        .collect();
    let step = |a: &Segment, b: &Segment| -> Option<i64> {
        let (a, b) = (a.decode?, b.decode?);
        Some(if fmp4 {
            b as i64 - a as i64
        } else {
            // 33-bit PTS, wrapping.
            ((b.wrapping_sub(a)) & ((1 << 33) - 1)) as i64
        })
    };
    let mut rates: Vec<f64> = pairs
        .iter()
        .filter_map(|(a, b)| Some(step(a, b)? as f64 / a.duration))
        .collect();
    rates.sort_by(f64::total_cmp);
    let scale = if fmp4 {
        rates.get(rates.len() / 2).copied().unwrap_or(1000.0)
    } else {
        90_000.0
    };
    for (a, b) in pairs {
        if let Some(ticks) = step(a, b) {
            let secs = ticks as f64 / scale;
            if (secs - a.duration).abs() > 0.1 {
                problems.push(format!(
                    "segment {} -> {}: decode time moved {secs:.3} s, segment lasts {} s",
                    a.sequence, b.sequence, a.duration
                ));
            }
        }
    }
    problems.truncate(10);
    log.problems.extend(problems);
}

/// A problem with a live MPD of one publisher: more than one Period, or a SegmentTimeline
/// whose segments do not follow each other (an `S@t` after the first).
pub fn judge_mpd(mpd: &str) -> Option<String> {
    let periods = mpd.matches("<Period").count();
    if periods != 1 {
        return Some(format!("{periods} Periods"));
    }
    let timelines: Vec<&str> = mpd.split("<SegmentTimeline>").skip(1).collect();
    if timelines.is_empty() {
        return Some("no SegmentTimeline".into());
    }
    for timeline in timelines {
        let body = timeline
            .split("</SegmentTimeline>")
            .next()
            .unwrap_or_default();
        let explicit = body.matches("<S t=").count();
        if explicit != 1 || !body.trim_start().starts_with("<S t=") {
            return Some(format!(
                "a SegmentTimeline with {explicit} explicit start times"
            ));
        }
    }
    None
}

fn target_duration(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|v| v.trim().parse().ok())
}

/// (sequence, duration, uri, discontinuity before) of each full segment.
fn segments(text: &str) -> Vec<(u64, f64, String, bool)> {
    let mut out = Vec::new();
    let mut sequence = text
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut duration = None;
    let mut discontinuity = false;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("#EXTINF:") {
            duration = v.split(',').next().and_then(|d| d.parse::<f64>().ok());
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            if let Some(d) = duration.take() {
                out.push((sequence, d, line.to_owned(), discontinuity));
                sequence += 1;
                discontinuity = false;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(sequence: u64, duration: f64, decode: u64) -> Segment {
        Segment {
            sequence,
            duration,
            decode: Some(decode),
            discontinuity: false,
        }
    }

    #[test]
    fn segments_are_read_with_their_sequence_numbers() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
                    #EXTINF:2.000,\nseg7.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.5,\nseg8.ts\n";
        assert_eq!(target_duration(text), Some(2));
        assert_eq!(
            segments(text),
            [
                (7, 2.0, "seg7.ts".to_owned(), false),
                (8, 1.5, "seg8.ts".to_owned(), true)
            ]
        );
    }

    #[test]
    fn mpd_timelines_must_be_gapless() {
        let good = "<MPD><Period id=\"0\"><SegmentTimeline>\n<S t=\"0\" d=\"90\" r=\"3\"/>\n\
                    <S d=\"80\"/>\n</SegmentTimeline></Period></MPD>";
        assert_eq!(judge_mpd(good), None);
        let gap = good.replace("<S d=", "<S t=\"999\" d=");
        assert_eq!(
            judge_mpd(&gap).as_deref(),
            Some("a SegmentTimeline with 2 explicit start times")
        );
        let two = good.replace("</Period>", "</Period><Period id=\"1\"></Period>");
        assert_eq!(judge_mpd(&two).as_deref(), Some("2 Periods"));
    }

    #[test]
    fn decode_times_must_follow_durations() {
        let mut good = SegmentLog {
            path: "/live/s/ts/index.m3u8".into(),
            target: 2,
            segments: vec![
                seg(1, 2.0, (1 << 33) - 90_000),
                seg(2, 2.0, 90_000),
                seg(3, 2.0, 270_000),
            ],
            problems: Vec::new(),
        };
        judge_segments(&mut good);
        assert!(good.problems.is_empty(), "{:?}", good.problems);

        let mut jump = SegmentLog {
            path: "/live/s/v0/index.m3u8".into(),
            target: 2,
            segments: vec![
                seg(1, 2.0, 0),
                seg(2, 2.0, 180_000),
                seg(3, 2.0, 360_000),
                seg(4, 2.0, 900_000),
                seg(5, 3.0, 1_080_000),
            ],
            problems: Vec::new(),
        };
        judge_segments(&mut jump);
        assert_eq!(jump.problems.len(), 2, "{:?}", jump.problems);
        assert!(jump.problems[0].starts_with("segment 5 lasts 3"));
        assert!(jump.problems[1].starts_with("segment 3 -> 4: decode time moved 6.000 s"));
    }
}
