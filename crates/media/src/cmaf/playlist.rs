//! HLS playlists over the renditions: the multivariant playlist (one variant per video track,
//! alternate audio per audio track) and each rendition's media playlist with the Low-Latency
//! HLS tags, the delivery directives (`_HLS_msn`, `_HLS_part`, `_HLS_skip`) and the decision
//! whether a blocking request is answered now, later, or refused.

use std::fmt::Write as _;

use super::{Packager, Rendition};
use crate::frame::MediaKind;
use crate::hls::{iso8601, sequence_tags};

/// A playlist request's delivery directives (RFC 8216bis §6.2.5).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistQuery {
    /// `_HLS_msn`: wait for this media sequence number.
    pub msn: Option<u64>,
    /// `_HLS_part`: ... and this part of it.
    pub part: Option<u64>,
    /// `_HLS_skip=YES` (or `v2`): a delta update.
    pub skip: bool,
}

/// What to do with a playlist request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// Answer it.
    Ready,
    /// Hold it until the playlist has what it asks for.
    Wait,
    /// Refuse it at once (400), with the reason.
    BadRequest(&'static str),
}

impl PlaylistQuery {
    /// Reads the directives of a URL query; other parameters are left alone.
    pub fn parse(query: &str) -> Result<PlaylistQuery, &'static str> {
        let mut out = PlaylistQuery::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "_HLS_msn" => {
                    out.msn = Some(value.parse().map_err(|_| "_HLS_msn is not a number")?)
                }
                "_HLS_part" => {
                    out.part = Some(value.parse().map_err(|_| "_HLS_part is not a number")?)
                }
                "_HLS_skip" => out.skip = matches!(value, "YES" | "v2"),
                _ => {}
            }
        }
        if out.part.is_some() && out.msn.is_none() {
            return Err("_HLS_part without _HLS_msn");
        }
        Ok(out)
    }
}

impl Rendition {
    /// Whether a request with `query` is answered now, held, or refused: refused when it asks
    /// for a segment more than two past the last one, or for a part more than the Advance
    /// Part Limit past the last one (RFC 8216bis §6.2.5.2).
    pub fn blocking(&self, query: &PlaylistQuery) -> Blocking {
        let Some(msn) = query.msn else {
            return Blocking::Ready;
        };
        let edge = self.edge();
        if msn > edge.next_sequence + 2 {
            return Blocking::BadRequest("_HLS_msn is more than two segments past the live edge");
        }
        if msn < edge.next_sequence {
            return Blocking::Ready;
        }
        let Some(part) = query.part else {
            return Blocking::Wait;
        };
        let target = self.config().part_target_ms();
        let advance_limit = if target < 1000 {
            3000 / u64::from(target.max(1))
        } else {
            3
        };
        if msn == edge.next_sequence {
            let built = edge.parts_built as u64;
            if part > built + advance_limit {
                return Blocking::BadRequest(
                    "_HLS_part is past the Advance Part Limit of the live edge",
                );
            }
            if part < built {
                return Blocking::Ready;
            }
        }
        Blocking::Wait
    }

    /// The media playlist: the last `window` segments, the parts of the recent ones and of the
    /// segment in progress, the preload hint and a rendition report for each of `others`.
    /// `skip` asks for a delta update (older segments replaced by `EXT-X-SKIP`).
    pub fn playlist(&self, skip: bool, others: &[&Rendition]) -> String {
        self.render(skip, others, self.config().part_ms > 0)
    }

    /// The media playlist without the Low-Latency tags (no parts, no blocking reload): for a
    /// copy on disk that a plain web server or CDN serves.
    pub fn plain_playlist(&self) -> String {
        self.render(false, &[], false)
    }

    fn render(&self, skip: bool, others: &[&Rendition], low_latency: bool) -> String {
        let config = self.config();
        let target = config.target_duration_secs;
        let segments = self.segments();
        let listed: Vec<_> = segments
            .iter()
            .skip(segments.len().saturating_sub(config.window))
            .collect();
        let mut out = String::from("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if low_latency { 9 } else { 7 });
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
        let skip_until = f64::from(6 * target);
        let part_target = f64::from(config.part_target_ms()) / 1000.0;
        if low_latency {
            let _ = writeln!(
                out,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={skip_until:.1},PART-HOLD-BACK={:.3}",
                3.0 * part_target
            );
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target:.3}");
        }
        sequence_tags(
            &mut out,
            listed
                .first()
                .map_or(self.edge().next_sequence, |s| s.sequence),
            listed
                .first()
                .map_or(0, |s| s.discontinuity_sequence - u64::from(s.discontinuity)),
        );
        // Segments that start more than CAN-SKIP-UNTIL before the end may be skipped, and
        // parts are listed for those within three target durations of it.
        let building = self.building();
        let mut from_end: Vec<f64> = Vec::with_capacity(listed.len());
        let mut after = 0.0;
        for segment in listed.iter().rev() {
            after += segment.duration;
            from_end.push(after);
        }
        from_end.reverse();
        let skipped = if skip && low_latency {
            from_end.iter().take_while(|&&d| d > skip_until).count()
        } else {
            0
        };
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        let mut map = None;
        for (i, segment) in listed.iter().enumerate().skip(skipped) {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map != Some(segment.init_id) {
                map = Some(segment.init_id);
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"init{}.mp4\"", segment.init_id);
            }
            if let Some(ms) = segment.program_date_ms {
                let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(ms));
            }
            let ends_within = from_end[i] - segment.duration < f64::from(3 * target);
            if low_latency && ends_within {
                write_parts(&mut out, &segment.parts);
            }
            let _ = writeln!(
                out,
                "#EXTINF:{:.5},\nseg{}.m4s",
                segment.duration, segment.sequence
            );
        }
        if low_latency {
            if let Some(building) = building.filter(|b| !b.parts.is_empty()) {
                if building.discontinuity {
                    out.push_str("#EXT-X-DISCONTINUITY\n");
                }
                let init = self.init_id();
                if map != Some(init) {
                    let _ = writeln!(out, "#EXT-X-MAP:URI=\"init{init}.mp4\"");
                }
                if let Some(ms) = building.program_date_ms {
                    let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", iso8601(ms));
                }
                write_parts(&mut out, &building.parts);
            }
            let _ = writeln!(
                out,
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"part{}.m4s\"",
                self.next_part()
            );
            for other in others {
                let (msn, part) = match other.last_part() {
                    Some((msn, part)) => (msn, part),
                    None => continue,
                };
                let _ = writeln!(
                    out,
                    "#EXT-X-RENDITION-REPORT:URI=\"../{}/index.m3u8\",LAST-MSN={msn},LAST-PART={part}",
                    other.name()
                );
            }
        }
        out
    }

    /// The id of the latest init segment (the one the segment in progress uses).
    fn init_id(&self) -> u32 {
        self.latest_init_id()
    }
}

fn write_parts(out: &mut String, parts: &[super::PartInfo]) {
    for part in parts {
        let _ = write!(
            out,
            "#EXT-X-PART:DURATION={:.5},URI=\"part{}.m4s\"",
            part.duration, part.number
        );
        if part.independent {
            out.push_str(",INDEPENDENT=YES");
        }
        out.push('\n');
    }
}

impl Packager {
    /// The renditions a playlist or MPD can offer: packaged, with at least one segment.
    pub fn ready_renditions(&self) -> impl Iterator<Item = &Rendition> {
        self.renditions()
            .iter()
            .filter(|r| r.unsupported().is_none() && !r.segments().is_empty())
            .filter(|r| r.codec_string().is_some())
    }

    /// A rendition's media playlist, with reports for every other ready rendition.
    pub fn media_playlist(&self, name: &str, skip: bool) -> Option<String> {
        let rendition = self.rendition(name)?;
        let others: Vec<&Rendition> = self
            .ready_renditions()
            .filter(|r| r.name() != name)
            .collect();
        Some(rendition.playlist(skip, &others))
    }

    /// The multivariant playlist: a variant per video rendition (with the audio renditions as
    /// its alternate audio group), or one per audio rendition for an audio-only stream;
    /// `None` until every track has a segment (or the leading one has two: a track that has
    /// none by then is left out).
    pub fn multivariant(&self) -> Option<String> {
        let leader_segments = self
            .leader()
            .map_or(0, |l| self.renditions()[l].segments().len());
        let waiting = self
            .renditions()
            .iter()
            .any(|r| r.unsupported().is_none() && r.segments().is_empty());
        if leader_segments == 0 || (waiting && leader_segments < 2) {
            return None;
        }
        let ready: Vec<&Rendition> = self.ready_renditions().collect();
        let video: Vec<&&Rendition> = ready
            .iter()
            .filter(|r| r.kind() == MediaKind::Video)
            .collect();
        let audio: Vec<&&Rendition> = ready
            .iter()
            .filter(|r| r.kind() == MediaKind::Audio)
            .collect();
        if ready.is_empty() {
            return None;
        }
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:9\n");
        let audio_peak = audio.iter().map(|a| a.bandwidth().0).max().unwrap_or(0);
        let audio_average = audio.iter().map(|a| a.bandwidth().1).max().unwrap_or(0);
        let mut audio_codecs: Vec<String> = Vec::new();
        for a in &audio {
            if let Some(codec) = a.codec_string() {
                if !audio_codecs.contains(&codec) {
                    audio_codecs.push(codec);
                }
            }
        }
        if video.is_empty() {
            for a in &audio {
                let (peak, average) = a.bandwidth();
                let _ = writeln!(
                    out,
                    "#EXT-X-STREAM-INF:BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},CODECS=\"{}\"\n{}/index.m3u8",
                    a.codec_string().unwrap_or_default(),
                    a.name()
                );
            }
            return Some(out);
        }
        for (i, a) in audio.iter().enumerate() {
            let default = if i == 0 { "YES" } else { "NO" };
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio {}\",DEFAULT={default},AUTOSELECT=YES,URI=\"{}/index.m3u8\"",
                a.track_id(),
                a.name()
            );
        }
        for v in &video {
            let (peak, average) = v.bandwidth();
            let mut codecs = v.codec_string().unwrap_or_default();
            for codec in &audio_codecs {
                codecs.push(',');
                codecs.push_str(codec);
            }
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{codecs}\"",
                peak + audio_peak,
                average + audio_average
            );
            let details = v.details();
            if let (Some(w), Some(h)) = (details.width, details.height) {
                let _ = write!(out, ",RESOLUTION={w}x{h}");
            }
            if let Some(fps) = v.frame_rate() {
                let _ = write!(out, ",FRAME-RATE={fps:.3}");
            }
            if !audio.is_empty() {
                out.push_str(",AUDIO=\"audio\"");
            }
            let _ = writeln!(out, "\n{}/index.m3u8", v.name());
        }
        Some(out)
    }
}
