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
            Some(_) if self.resync => {
                // A new source: the old per-kind history says nothing about it.
                self.last = [None, None];
                self.reanchor(timestamp)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    use MediaKind::{Audio, Data, Video};

    #[test]
    fn starts_at_zero_and_keeps_av_offset() {
        let mut r = TimestampRebaser::new();
        assert_eq!(r.rebase(Video, 5_000_000), 0);
        assert_eq!(r.rebase(Audio, 5_000_010), 10);
        assert_eq!(r.rebase(Video, 5_000_033), 33);
        assert_eq!(r.rebase(Audio, 5_000_031), 31);
        assert_eq!(r.rebase(Data, 0), 33);
        assert_eq!(r.rebase(Video, 5_000_066), 66);
    }

    #[test]
    fn early_audio_before_first_video_clamps_to_zero() {
        let mut r = TimestampRebaser::new();
        assert_eq!(r.rebase(Video, 1000), 0);
        assert_eq!(r.rebase(Audio, 990), 0);
        assert_eq!(r.rebase(Audio, 1013), 13);
    }

    #[test]
    fn continuous_across_24_bit_wrap() {
        let mut r = TimestampRebaser::new();
        assert_eq!(r.rebase(Video, 0x00ff_ff00), 0);
        assert_eq!(r.rebase(Video, 0x00ff_fff0), 0xf0);
        assert_eq!(r.rebase(Audio, 0x0000_0010), 0x110);
        assert_eq!(r.rebase(Video, 0x0000_0020), 0x120);
    }

    #[test]
    fn continuous_across_32_bit_wrap() {
        let mut r = TimestampRebaser::new();
        assert_eq!(r.rebase(Video, 0xffff_fff0), 0);
        assert_eq!(r.rebase(Audio, 0xffff_fffa), 10);
        assert_eq!(r.rebase(Video, 0x0000_0010), 0x20);
        assert_eq!(r.rebase(Audio, 0x0000_0012), 0x22);
    }

    #[test]
    fn publisher_restart_continues_after_last_output() {
        let mut r = TimestampRebaser::new();
        for i in 0..=1500 {
            r.rebase(Audio, 100_000 + i * 40 - 20);
            r.rebase(Video, 100_000 + i * 40);
        }
        // The first frame (audio at 99 980) maps to 0.
        assert_eq!(r.rebase(Video, 160_000), 60_020);
        // Restart at 0: a 160 s backwards jump.
        assert_eq!(r.rebase(Video, 0), 60_021);
        assert_eq!(r.rebase(Audio, 5), 60_026);
        assert_eq!(r.rebase(Video, 33), 60_054);
    }

    #[test]
    fn forward_jump_re_anchors() {
        let mut r = TimestampRebaser::new();
        r.rebase(Video, 0);
        r.rebase(Video, 40);
        assert_eq!(r.rebase(Video, 3_600_000), 41);
        assert_eq!(r.rebase(Video, 3_600_040), 81);
    }

    #[test]
    fn reset_source_re_anchors_even_without_a_jump() {
        let mut r = TimestampRebaser::new();
        r.rebase(Video, 1000);
        assert_eq!(r.rebase(Video, 3000), 2000);
        r.reset_source();
        assert_eq!(r.rebase(Video, 2500), 2001);
        assert_eq!(r.rebase(Audio, 2510), 2011);
        let mut fresh = TimestampRebaser::new();
        fresh.reset_source();
        assert_eq!(fresh.rebase(Audio, 777), 0);
    }

    #[test]
    fn audio_and_video_on_different_epochs_do_not_flip_flop() {
        let mut r = TimestampRebaser::new();
        assert_eq!(r.rebase(Video, 0), 0);
        // Audio starts 60 s ahead: a re-anchor once.
        assert_eq!(r.rebase(Audio, 60_000), 1);
        assert_eq!(r.rebase(Video, 40), 40);
        assert_eq!(r.rebase(Audio, 60_023), 24);
        assert_eq!(r.rebase(Video, 80), 80);
        assert_eq!(r.rebase(Audio, 60_046), 47);
    }
}
