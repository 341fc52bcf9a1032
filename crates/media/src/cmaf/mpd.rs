//! The DASH MPD over the same CMAF renditions as HLS (ISO/IEC 23009-1, live profile):
//! `type="dynamic"`, one AdaptationSet per kind with a Representation per track, a
//! `SegmentTemplate` with `$Number$` and a `SegmentTimeline` per Representation, a Period per
//! publisher (a discontinuity starts a new one), `availabilityStartTime`,
//! `suggestedPresentationDelay` and a `UTCTiming` element carrying the server's clock.

use std::fmt::Write as _;

use super::{Packager, Rendition};
use crate::frame::MediaKind;
use crate::hls::iso8601;

/// Where a Period starts: the leader's first segment of a publisher, in media time, and the
/// wall clock minus media time then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PeriodAnchor {
    /// The discontinuity sequence of its segments.
    pub id: u64,
    /// Media time (ms) of its first segment.
    pub media_ms: u64,
    /// Wall clock minus media time (ms).
    pub wall_offset_ms: i64,
}

fn duration(secs: f64) -> String {
    format!("PT{secs:.3}S")
}

impl Packager {
    /// The MPD at wall clock `now_ms`; `None` until the multivariant playlist could be written
    /// (every track has a segment) or without a wall clock.
    pub fn mpd(&self, now_ms: u64) -> Option<String> {
        self.multivariant()?;
        let ast = self.periods.front()?;
        let ast_ms = ast.wall_offset_ms + ast.media_ms as i64;
        let config = self.config();
        let target = f64::from(config.target_duration_secs);
        let window: f64 = self
            .leader()
            .map(|l| {
                let segments = self.renditions()[l].segments();
                segments
                    .iter()
                    .rev()
                    .take(config.window)
                    .map(|s| s.duration)
                    .sum()
            })
            .unwrap_or(target);
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" minimumUpdatePeriod=\"{}\" minBufferTime=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\" maxSegmentDuration=\"{}\">",
            iso8601(ast_ms.max(0) as u64),
            iso8601(now_ms),
            duration(target / 2.0),
            duration(target),
            duration(window),
            duration(3.0 * target),
            duration(target + 0.49),
        );
        let ready: Vec<&Rendition> = self.ready_renditions().collect();
        for period in &self.periods {
            let listed = |r: &Rendition| {
                let segments = r.segments();
                segments
                    .iter()
                    .skip(segments.len().saturating_sub(config.window))
                    .filter(|s| s.discontinuity_sequence == period.id)
                    .count()
            };
            if ready.iter().all(|r| listed(r) == 0) {
                continue;
            }
            let start_ms = period.wall_offset_ms + period.media_ms as i64 - ast_ms;
            let _ = writeln!(
                out,
                "  <Period id=\"{}\" start=\"{}\">",
                period.id,
                duration(start_ms.max(0) as f64 / 1000.0)
            );
            for (kind, content) in [(MediaKind::Video, "video"), (MediaKind::Audio, "audio")] {
                let members: Vec<&&Rendition> = ready
                    .iter()
                    .filter(|r| r.kind() == kind && listed(r) > 0)
                    .collect();
                if members.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "    <AdaptationSet id=\"{}\" contentType=\"{content}\" mimeType=\"{content}/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\">",
                    u8::from(kind == MediaKind::Audio)
                );
                for r in members {
                    representation(&mut out, r, period, config.window);
                }
                out.push_str("    </AdaptationSet>\n");
            }
            out.push_str("  </Period>\n");
        }
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>\n</MPD>",
            iso8601(now_ms)
        );
        Some(out)
    }
}

/// One Representation with its template and timeline (the segments of `period` in the
/// playlist window).
fn representation(out: &mut String, r: &Rendition, period: &PeriodAnchor, window: usize) {
    let segments = r.segments();
    let listed: Vec<_> = segments
        .iter()
        .skip(segments.len().saturating_sub(window))
        .filter(|s| s.discontinuity_sequence == period.id)
        .collect();
    let Some(first) = listed.first() else {
        return;
    };
    let (bandwidth, _) = r.bandwidth();
    let _ = write!(
        out,
        "      <Representation id=\"{}\" bandwidth=\"{bandwidth}\" codecs=\"{}\"",
        r.name(),
        r.codec_string().unwrap_or_default()
    );
    let details = r.details();
    if r.kind() == MediaKind::Video {
        if let (Some(w), Some(h)) = (details.width, details.height) {
            let _ = write!(out, " width=\"{w}\" height=\"{h}\"");
        }
        if let Some(fps) = r.frame_rate() {
            let _ = write!(out, " frameRate=\"{}\"", fps.round() as u32);
        }
    } else {
        let _ = write!(out, " audioSamplingRate=\"{}\"", r.timescale());
    }
    out.push_str(">\n");
    if r.kind() == MediaKind::Audio {
        let _ = writeln!(
            out,
            "        <AudioChannelConfiguration schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>",
            details.channels.unwrap_or(2)
        );
    }
    let scale = u64::from(r.timescale());
    let offset = period.media_ms * scale / 1000;
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"{scale}\" presentationTimeOffset=\"{offset}\" startNumber=\"{}\" initialization=\"{}/init{}.mp4\" media=\"{}/seg$Number$.m4s\">\n          <SegmentTimeline>",
        first.sequence,
        r.name(),
        first.init_id,
        r.name()
    );
    let mut next_t = None;
    let mut i = 0;
    while i < listed.len() {
        let segment = listed[i];
        let mut repeat = 0;
        while listed.get(i + repeat + 1).is_some_and(|n| {
            let before = listed[i + repeat];
            n.duration_ticks == segment.duration_ticks
                && n.start_ticks == before.start_ticks + before.duration_ticks
        }) {
            repeat += 1;
        }
        let _ = write!(out, "            <S");
        if next_t != Some(segment.start_ticks) {
            let _ = write!(out, " t=\"{}\"", segment.start_ticks);
        }
        let _ = write!(out, " d=\"{}\"", segment.duration_ticks);
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        out.push_str("/>\n");
        let end = listed[i + repeat];
        next_t = Some(end.start_ticks + end.duration_ticks);
        i += repeat + 1;
    }
    out.push_str(
        "          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n",
    );
}
