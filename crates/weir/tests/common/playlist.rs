//! Our own HLS media playlist validator (RFC 8216), run on live playlists: what each reload
//! must say, and what it must keep from the one before.

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
                let n = sequence.map_or(p.media_sequence, |s: u64| s + 1);
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
        let dates: Vec<i64> = p.segments.iter().filter_map(|s| s.4).collect();
        if dates.windows(2).any(|w| w[1] < w[0]) {
            return Err("program date-times go back".into());
        }
        Ok(p)
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
