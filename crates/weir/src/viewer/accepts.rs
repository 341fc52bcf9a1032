//! What a viewer can take of a stream: the form of E-RTMP messages and the codecs.
//!
//! The hub holds every E-RTMP message a player without Multitrack support cannot read as it
//! is together with its single-track form ([`weir_media::Audience`]). A viewer that reads
//! Multitrack (RTMP `capsEx` Multitrack, recorders, relays) takes the originals; any other
//! takes the single-track forms, so it gets the default track only. Codecs beyond legacy FLV
//! (H.264, AAC, MP3 and older) go to a viewer that listed them in `connect`
//! (`fourCcList` or the InfoMaps); one that listed nothing gets them by default, as SRS and
//! FFmpeg expect (`playback.unadvertised_codecs`).

use weir_media::{Audience, Codec, Frame, MediaKind};
use weir_rtmp::caps::{Capabilities, FourCcSet};

use crate::config::Unadvertised;

/// What one viewer can take; see the module docs. Small for the common viewer that listed
/// nothing (it is kept per connection and per viewer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepts {
    /// Reads E-RTMP Multitrack messages: gets every track as the publisher sent it.
    multitrack: bool,
    /// What it gets of non-legacy codecs it did not list, when it listed none.
    unadvertised: Unadvertised,
    /// The codecs it listed, if it listed any.
    listed: Option<Box<Listed>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Listed {
    video: Option<FourCcSet>,
    audio: Option<FourCcSet>,
}

/// What a viewer does with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Send,
    /// Not its form: another form of the same message is in the stream (or it is another
    /// track's); nothing to report.
    OtherForm,
    /// Withheld: the viewer will not get this track (reported once per track).
    Withheld(WithheldReason),
}

/// Why a track does not reach a viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WithheldReason {
    /// A track other than the default one, and the viewer does not read Multitrack.
    #[error("the player does not read E-RTMP Multitrack (capsEx), it gets the default track only")]
    NotMultitrack,
    /// The viewer listed codecs, and not this one.
    #[error("the player did not list this codec in connect (fourCcList / FourCcInfoMap)")]
    NotListed,
    /// The viewer listed nothing and `playback.unadvertised_codecs` is `withhold`.
    #[error("the player listed no codecs and playback.unadvertised_codecs = \"withhold\"")]
    Unadvertised,
}

impl Accepts {
    /// A viewer that reads Multitrack or not, listed `video` and `audio` codecs (`None`:
    /// none of that kind) and gets `unadvertised` when it listed none at all.
    pub fn new(
        multitrack: bool,
        video: Option<FourCcSet>,
        audio: Option<FourCcSet>,
        unadvertised: Unadvertised,
    ) -> Accepts {
        let listed =
            (video.is_some() || audio.is_some()).then(|| Box::new(Listed { video, audio }));
        Accepts {
            multitrack,
            unadvertised,
            listed,
        }
    }

    /// Everything, every track: recorders, relays, tests.
    pub fn everything() -> Accepts {
        Accepts::new(
            true,
            Some(FourCcSet::Any),
            Some(FourCcSet::Any),
            Unadvertised::Send,
        )
    }

    /// A player of the legacy kind (listed nothing, no Multitrack).
    pub fn legacy(unadvertised: Unadvertised) -> Accepts {
        Accepts::new(false, None, None, unadvertised)
    }

    /// Whether the viewer reads Multitrack messages.
    pub fn multitrack(&self) -> bool {
        self.multitrack
    }

    /// What an RTMP player said in `connect`; `multitrack_allowed` is
    /// `playback.multitrack` (off: every player gets the default track only).
    pub fn from_capabilities(
        caps: &Capabilities,
        multitrack_allowed: bool,
        unadvertised: Unadvertised,
    ) -> Accepts {
        Accepts::new(
            multitrack_allowed && caps.multitrack(),
            caps.video.clone(),
            caps.audio.clone(),
            unadvertised,
        )
    }

    /// Whether the viewer gets `frame`.
    pub fn verdict(&self, frame: &Frame) -> Verdict {
        let info = &frame.info;
        match (info.audience, self.multitrack) {
            (Audience::Multitrack, false) => {
                // Its single-track form, if it has one, comes as another frame.
                return if info.multitrack && info.track_id != 0 {
                    Verdict::Withheld(WithheldReason::NotMultitrack)
                } else {
                    Verdict::OtherForm
                };
            }
            (Audience::SingleTrack, true) => return Verdict::OtherForm,
            _ => {}
        }
        let Some(codec) = info.codec.filter(|c| !is_legacy(*c)) else {
            return Verdict::Send;
        };
        let Some(listed) = &self.listed else {
            return match self.unadvertised {
                Unadvertised::Send => Verdict::Send,
                Unadvertised::Withhold => Verdict::Withheld(WithheldReason::Unadvertised),
            };
        };
        let set = match frame.kind {
            MediaKind::Video => &listed.video,
            MediaKind::Audio => &listed.audio,
            MediaKind::Data => return Verdict::Send,
        };
        // Listing codecs of the other kind only means this kind's legacy codecs are all it
        // said it takes.
        match (set, codec.fourcc()) {
            (Some(set), Some(fourcc)) if set.contains(fourcc) => Verdict::Send,
            _ => Verdict::Withheld(WithheldReason::NotListed),
        }
    }

    /// Whether `frame` is a codec the viewer gets only because it listed nothing (worth one
    /// log line).
    pub fn sends_unlisted(&self, frame: &Frame) -> bool {
        self.listed.is_none()
            && frame.kind != MediaKind::Data
            && frame.info.codec.is_some_and(|c| !is_legacy(c))
    }
}

/// Codecs every FLV player knows: legacy FLV codec ids and sound formats.
fn is_legacy(codec: Codec) -> bool {
    matches!(
        codec,
        Codec::Avc | Codec::Aac | Codec::Mp3 | Codec::OtherVideo(_) | Codec::OtherAudio(_)
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use weir_rtmp::caps::fourcc_value;

    use super::*;

    fn video(bytes: &'static [u8]) -> (Frame, Option<Frame>) {
        Frame::video(0, Bytes::from_static(bytes)).with_single_track_form()
    }

    #[test]
    fn legacy_players_get_the_default_track_in_single_track_form() {
        let legacy = Accepts::legacy(Unadvertised::Send);
        let multi = Accepts::everything();
        // Track 1 (OneTrack): withheld from legacy players, sent to multitrack ones.
        let (track1, copy) = video(b"\x96\x01avc1\x01\x00\x00\x00\x09");
        assert!(copy.is_none());
        assert_eq!(
            legacy.verdict(&track1),
            Verdict::Withheld(WithheldReason::NotMultitrack)
        );
        assert_eq!(multi.verdict(&track1), Verdict::Send);
        // Track 0 wrapped in Multitrack: each gets one form.
        let (original, copy) = video(b"\x96\x01avc1\x00\x00\x00\x00\x09");
        let copy = copy.unwrap();
        assert_eq!(
            (legacy.verdict(&original), legacy.verdict(&copy)),
            (Verdict::OtherForm, Verdict::Send)
        );
        assert_eq!(
            (multi.verdict(&original), multi.verdict(&copy)),
            (Verdict::Send, Verdict::OtherForm)
        );
        // Legacy H.264: everyone.
        let (plain, _) = video(&[0x17, 0x01, 0, 0, 0, 9]);
        assert_eq!(legacy.verdict(&plain), Verdict::Send);
        assert_eq!(multi.verdict(&plain), Verdict::Send);
    }

    #[test]
    fn codecs_follow_what_the_player_listed() {
        let (hevc, _) = video(b"\x91hvc1\x00\x00\x00\x09");
        let opus = Frame::audio(0, Bytes::from_static(b"\x91Opus\xfc"));
        // Listed nothing: sent by default, withheld by config.
        assert!(Accepts::legacy(Unadvertised::Send).sends_unlisted(&hevc));
        assert_eq!(
            Accepts::legacy(Unadvertised::Send).verdict(&hevc),
            Verdict::Send
        );
        assert_eq!(
            Accepts::legacy(Unadvertised::Withhold).verdict(&opus),
            Verdict::Withheld(WithheldReason::Unadvertised)
        );
        // FFmpeg 7 with -rtmp_enhanced_codecs hvc1: HEVC yes, Opus no, AAC always.
        let hvc1 = || Some(FourCcSet::Listed(vec![fourcc_value("hvc1").unwrap()]));
        let listed = Accepts::new(false, hvc1(), hvc1(), Unadvertised::Send);
        assert_eq!(listed.verdict(&hevc), Verdict::Send);
        assert_eq!(
            listed.verdict(&opus),
            Verdict::Withheld(WithheldReason::NotListed)
        );
        let aac = Frame::audio(0, Bytes::from_static(&[0xaf, 0x01, 0x21]));
        assert_eq!(listed.verdict(&aac), Verdict::Send);
        assert!(!listed.sends_unlisted(&hevc));
    }
}
