//! Per-viewer timestamp rebasing: output starts near 0 and stays continuous across input wraps
//! and publisher restarts, with one offset shared by audio and video (A/V sync is kept).

use crate::frame::MediaKind;

/// An input jump larger than this (backwards or forwards), in ms, is a discontinuity.
pub const DISCONTINUITY_THRESHOLD_MS: i64 = 10_000;
/// Output step after a discontinuity, in ms.
pub const DISCONTINUITY_STEP_MS: i64 = 1;

/// The 2^24 ms point where some encoders wrap (the extended-timestamp cliff).
const WRAP_24: i64 = 1 << 24;

/// Maps one viewer's input timestamps onto a continuous output timeline.
///
/// Audio and video share one reference point: each frame's output is the reference output plus
/// the wrapping distance from the reference input. A distance beyond
/// [`DISCONTINUITY_THRESHOLD_MS`] re-anchors the timeline just after the highest output so far,
/// unless it is a 24-bit wrap (input went from near 2^24 to near 0), or this kind's own previous
/// timestamp is close (audio and video running on different epochs). Data frames take the
/// latest output and never move the timeline. Outputs before the first frame's time clamp to 0.
#[derive(Debug, Clone, Default)]
pub struct TimestampRebaser {
    /// Reference point (input, output) on the shared timeline.
    reference: Option<(u32, i64)>,
    /// Last (input, output) per kind: [audio, video].
    last: [Option<(u32, i64)>; 2],
    /// Highest output emitted so far.
    high_water: i64,
    /// Re-anchor on the next frame.
    resync: bool,
}

impl TimestampRebaser {
    /// A rebaser whose first frame maps to 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// Maps an input timestamp of `kind` to the output timeline.
    pub fn rebase(&mut self, kind: MediaKind, timestamp: u32) -> u32 {
        let slot = match kind {
            MediaKind::Audio => 0,
            MediaKind::Video => 1,
            MediaKind::Data => return clamp(self.high_water),
        };
        let out = match self.reference {
            None => {
                self.reference = Some((timestamp, 0));
                0
            }
            Some(_) if self.resync => self.reanchor(timestamp),
            Some((ref_in, ref_out)) => {
                let delta = distance(ref_in, timestamp);
                if delta.abs() <= DISCONTINUITY_THRESHOLD_MS {
                    self.reference = Some((timestamp, ref_out + delta));
                    ref_out + delta
                } else if let Some(delta) = wrap_24(ref_in, timestamp) {
                    self.reference = Some((timestamp, ref_out + delta));
                    ref_out + delta
                } else {
                    match self.last[slot] {
                        // This kind is continuous on its own: A/V epochs differ.
                        Some((last_in, last_out))
                            if distance(last_in, timestamp).abs() <= DISCONTINUITY_THRESHOLD_MS =>
                        {
                            last_out + distance(last_in, timestamp)
                        }
                        _ => self.reanchor(timestamp),
                    }
                }
            }
        };
        self.last[slot] = Some((timestamp, out));
        self.high_water = self.high_water.max(out);
        clamp(out)
    }

    /// The source changed (publisher restarted): the next frame continues just after the
    /// highest output so far.
    pub fn reset_source(&mut self) {
        if self.reference.is_some() {
            self.resync = true;
        }
    }

    fn reanchor(&mut self, timestamp: u32) -> i64 {
        let out = self.high_water + DISCONTINUITY_STEP_MS;
        self.reference = Some((timestamp, out));
        self.last = [None, None];
        self.resync = false;
        out
    }
}

/// Signed wrapping distance from `from` to `to` (serial number arithmetic).
fn distance(from: u32, to: u32) -> i64 {
    i64::from(to.wrapping_sub(from) as i32)
}

/// The forward distance when both values are 24-bit and the input wrapped at 2^24.
fn wrap_24(from: u32, to: u32) -> Option<i64> {
    let (from, to) = (i64::from(from), i64::from(to));
    if from >= WRAP_24 || to >= WRAP_24 {
        return None;
    }
    let delta = to + WRAP_24 - from;
    (0..=DISCONTINUITY_THRESHOLD_MS)
        .contains(&delta)
        .then_some(delta)
}

/// Output as an RTMP timestamp: negative clamps to 0, large values wrap at 2^32.
fn clamp(out: i64) -> u32 {
    if out < 0 {
        0
    } else {
        out as u32
    }
}
