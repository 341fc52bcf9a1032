//! Our own HLS media playlist validator (RFC 8216, and the Low-Latency HLS rules of
//! RFC 8216bis: parts against PART-TARGET, hold-backs, skips, preload hints), run on live
//! playlists: what each reload must say, and what it must keep from the one before.

use std::collections::BTreeMap;

/// One parsed media playlist.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaPlaylist {
    /// `EXT-X-TARGETDURATION`.
    pub target: u64,
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// (sequence, duration, uri, discontinuity sequence number, program date ms)
    pub segments: Vec<(u64, f64, String, u64, Option<i64>)>,
    /// `EXT-X-MAP` URIs seen.
    pub maps: Vec<String>,
    /// `EXT-X-PART-INF:PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    /// `EXT-X-SERVER-CONTROL`: CAN-BLOCK-RELOAD, PART-HOLD-BACK, CAN-SKIP-UNTIL.
    pub can_block_reload: bool,
    /// `PART-HOLD-BACK`, seconds.
    pub part_hold_back: Option<f64>,
    /// `CAN-SKIP-UNTIL`, seconds.
    pub can_skip_until: Option<f64>,
    /// (segment sequence, duration, uri, independent); parts after the last segment belong to
    /// the one in progress (the last sequence + 1).
    pub parts: Vec<(u64, f64, String, bool)>,
    /// `EXT-X-SKIP:SKIPPED-SEGMENTS`.
    pub skipped: u64,
    /// `EXT-X-PRELOAD-HINT` URI.
    pub preload_hint: Option<String>,
    /// `EXT-X-RENDITION-REPORT` lines (attributes).
    pub reports: Vec<String>,
}

/// The value of `name=` in an attribute list (quotes removed).
pub fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    loop {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v, n),
                None => (after, ""),
            }
        };
        if key == name {
            return Some(value);
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

impl MediaPlaylist {
    /// Parses and checks one playlist on its own.
    pub fn parse(text: &str) -> Result<MediaPlaylist, String> {
        let mut lines = text.lines();
        if lines.next() != Some("#EXTM3U") {
            return Err("does not start with #EXTM3U".into());
        }
        let mut p = MediaPlaylist::default();
        let mut seen_target = false;
        let mut pending_duration = None;
        let mut pending_discontinuity = false;
        let mut pending_date = None;
        let mut discontinuities = 0u64;
        let mut sequence = None;
        let tag = |line: &str, name: &str| line.strip_prefix(name).map(str::to_owned);
        for line in lines {
            if let Some(v) = tag(line, "#EXT-X-TARGETDURATION:") {
                p.target = v.parse().map_err(|_| format!("bad target duration {v}"))?;
                seen_target = true;
            } else if let Some(v) = tag(line, "#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = v.parse().map_err(|_| format!("bad media sequence {v}"))?;
            } else if let Some(v) = tag(line, "#EXT-X-DISCONTINUITY-SEQUENCE:") {
                p.discontinuity_sequence = v
                    .parse()
                    .map_err(|_| format!("bad discontinuity sequence {v}"))?;
            } else if line == "#EXT-X-DISCONTINUITY" {
                pending_discontinuity = true;
            } else if let Some(v) = tag(line, "#EXT-X-MAP:URI=") {
                p.maps.push(v.trim_matches('"').to_owned());
            } else if let Some(v) = tag(line, "#EXT-X-PROGRAM-DATE-TIME:") {
                pending_date = Some(parse_date(&v).ok_or(format!("bad date {v}"))?);
            } else if let Some(v) = tag(line, "#EXT-X-SERVER-CONTROL:") {
                p.can_block_reload = attribute(&v, "CAN-BLOCK-RELOAD") == Some("YES");
                p.part_hold_back = attribute(&v, "PART-HOLD-BACK").and_then(|x| x.parse().ok());
                p.can_skip_until = attribute(&v, "CAN-SKIP-UNTIL").and_then(|x| x.parse().ok());
            } else if let Some(v) = tag(line, "#EXT-X-PART-INF:") {
                p.part_target = Some(
                    attribute(&v, "PART-TARGET")
                        .and_then(|x| x.parse().ok())
                        .ok_or(format!("bad {line}"))?,
                );
            } else if let Some(v) = tag(line, "#EXT-X-SKIP:") {
                p.skipped = attribute(&v, "SKIPPED-SEGMENTS")
                    .and_then(|x| x.parse().ok())
                    .ok_or(format!("bad {line}"))?;
                if !p.segments.is_empty() {
                    return Err("EXT-X-SKIP after a segment".into());
                }
            } else if let Some(v) = tag(line, "#EXT-X-PART:") {
                let duration: f64 = attribute(&v, "DURATION")
                    .and_then(|x| x.parse().ok())
                    .ok_or(format!("bad {line}"))?;
                let uri = attribute(&v, "URI").ok_or(format!("bad {line}"))?;
                let n = sequence.map_or(p.media_sequence + p.skipped, |s: u64| s + 1);
                let independent = attribute(&v, "INDEPENDENT") == Some("YES");
                p.parts.push((n, duration, uri.to_owned(), independent));
            } else if let Some(v) = tag(line, "#EXT-X-PRELOAD-HINT:") {
                p.preload_hint = attribute(&v, "URI").map(str::to_owned);
            } else if let Some(v) = tag(line, "#EXT-X-RENDITION-REPORT:") {
                p.reports.push(v);
            } else if let Some(v) = tag(line, "#EXTINF:") {
                let d = v.trim_end_matches(',').split(',').next().unwrap_or("");
                pending_duration = Some(d.parse::<f64>().map_err(|_| format!("bad EXTINF {v}"))?);
            } else if !line.starts_with('#') && !line.is_empty() {
                let duration = pending_duration
                    .take()
                    .ok_or(format!("{line} without EXTINF"))?;
                if pending_discontinuity {
                    discontinuities += 1;
                    pending_discontinuity = false;
                }
                let n = sequence.map_or(p.media_sequence + p.skipped, |s: u64| s + 1);
                sequence = Some(n);
                p.segments.push((
                    n,
                    duration,
                    line.to_owned(),
                    p.discontinuity_sequence + discontinuities,
                    pending_date.take(),
                ));
            }
        }
        if !seen_target {
            return Err("no EXT-X-TARGETDURATION".into());
        }
        for (n, duration, ..) in &p.segments {
            // RFC 8216 §4.3.3.1: EXTINF rounded to the nearest integer ≤ target.
            if duration.round() as u64 > p.target {
                return Err(format!(
                    "segment {n} lasts {duration}s, over the target {}",
                    p.target
                ));
            }
        }
        p.check_low_latency()?;
        let dates: Vec<i64> = p.segments.iter().filter_map(|s| s.4).collect();
        if dates.windows(2).any(|w| w[1] < w[0]) {
            return Err("program date-times go back".into());
        }
        Ok(p)
    }

    /// The Low-Latency rules: every part at most PART-TARGET, at least 85 % of it unless
    /// independent or the last of its segment; a finished segment's parts add up to its
    /// EXTINF; PART-HOLD-BACK at least twice PART-TARGET; CAN-SKIP-UNTIL at least six target
    /// durations; a skip only where skipping is offered; a preload hint where parts are.
    fn check_low_latency(&self) -> Result<(), String> {
        if self.skipped > 0 && self.can_skip_until.is_none() {
            return Err("EXT-X-SKIP without CAN-SKIP-UNTIL".into());
        }
        if let Some(until) = self.can_skip_until {
            if until < 6.0 * self.target as f64 {
                return Err(format!("CAN-SKIP-UNTIL {until} below six target durations"));
            }
        }
        if self.parts.is_empty() {
            return Ok(());
        }
        let target = self.part_target.ok_or("parts without EXT-X-PART-INF")?;
        let hold_back = self.part_hold_back.ok_or("parts without PART-HOLD-BACK")?;
        if hold_back < 2.0 * target {
            return Err(format!(
                "PART-HOLD-BACK {hold_back} below twice PART-TARGET {target}"
            ));
        }
        if self.preload_hint.is_none() {
            return Err("parts without EXT-X-PRELOAD-HINT".into());
        }
        for (i, (n, duration, uri, independent)) in self.parts.iter().enumerate() {
            if *duration > target + 1e-6 {
                return Err(format!(
                    "part {uri} lasts {duration}s, over PART-TARGET {target}"
                ));
            }
            // Short parts are allowed when independent, or when they end a finished segment.
            let last_of_segment = self.parts.get(i + 1).is_none_or(|next| next.0 != *n);
            let finished = self.segments.iter().any(|s| s.0 == *n);
            let may_be_short = *independent || (last_of_segment && finished);
            if *duration < 0.85 * target && !may_be_short {
                return Err(format!(
                    "part {uri} lasts {duration}s, under 85% of {target}"
                ));
            }
        }
        for (n, duration, ..) in &self.segments {
            let parts: Vec<f64> = self
                .parts
                .iter()
                .filter(|p| p.0 == *n)
                .map(|p| p.1)
                .collect();
            let sum: f64 = parts.iter().sum();
            if !parts.is_empty() && (sum - duration).abs() > 0.002 {
                return Err(format!(
                    "segment {n}: parts add up to {sum}s, EXTINF says {duration}s"
                ));
            }
        }
        Ok(())
    }

    /// Whether the playlist holds part `part` of segment `msn` or anything later (what a
    /// blocking request with `_HLS_msn`/`_HLS_part` must get).
    pub fn has_part(&self, msn: u64, part: Option<u64>) -> bool {
        if self
            .segments
            .iter()
            .any(|s| s.0 > msn || (s.0 == msn && part.is_none()))
        {
            return true;
        }
        let Some(part) = part else { return false };
        let of_msn = self.parts.iter().filter(|p| p.0 == msn).count() as u64;
        of_msn > part || self.parts.iter().any(|p| p.0 > msn)
    }

    /// Checks a reload against the playlist before it (RFC 8216 §6.2.1, §6.3.2).
    pub fn check_reload(&self, before: &MediaPlaylist) -> Result<(), String> {
        if self.target != before.target {
            return Err(format!(
                "target duration changed {} -> {}",
                before.target, self.target
            ));
        }
        if self.media_sequence < before.media_sequence {
            return Err("media sequence went back".into());
        }
        if self.discontinuity_sequence < before.discontinuity_sequence {
            return Err("discontinuity sequence went back".into());
        }
        let old: BTreeMap<u64, &(u64, f64, String, u64, Option<i64>)> =
            before.segments.iter().map(|s| (s.0, s)).collect();
        for segment in &self.segments {
            if let Some(was) = old.get(&segment.0) {
                if was.2 != segment.2 || (was.1 - segment.1).abs() > 1e-9 || was.3 != segment.3 {
                    return Err(format!("segment {} changed between reloads", segment.0));
                }
            }
        }
        Ok(())
    }
}

/// `2026-11-27T01:23:45.678Z` to ms since the epoch (UTC only).
fn parse_date(text: &str) -> Option<i64> {
    let (date, time) = text.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400_000 + h * 3_600_000 + min * 60_000 + (s * 1000.0).round() as i64)
}
