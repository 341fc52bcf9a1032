//! E-RTMP capability negotiation (Enhanced RTMP v2, "Enhancing NetConnection connect Command").
//!
//! A client may say in its `connect` command object which codecs it can take (`fourCcList`,
//! v1; `videoFourCcInfoMap` / `audioFourCcInfoMap`, v2, with a `"*"` wildcard), which E-RTMP
//! features it understands (`capsEx`) and `videoFunction` flags. [`Capabilities::from_connect`]
//! reads them, tolerating every malformed shape (a wrong type counts as not said). Nothing is
//! required: OBS and stock FFmpeg send none of it. [`server_announcement`] is what weir states
//! in its `_result`.

use crate::amf0::Value;

/// `capsEx` bit: the client handles `NetConnection.Connect.ReconnectRequest`.
pub const CAPS_EX_RECONNECT: u32 = 0x01;
/// `capsEx` bit: the client reads and writes E-RTMP Multitrack messages.
pub const CAPS_EX_MULTITRACK: u32 = 0x02;
/// `capsEx` bit: the client parses ModEx prefixes.
pub const CAPS_EX_MOD_EX: u32 = 0x04;
/// `capsEx` bit: the client handles TimestampOffsetNano.
pub const CAPS_EX_TIMESTAMP_NANO_OFFSET: u32 = 0x08;

/// FourCC info flag: can decode.
pub const FOURCC_CAN_DECODE: u32 = 0x01;
/// FourCC info flag: can encode.
pub const FOURCC_CAN_ENCODE: u32 = 0x02;
/// FourCC info flag: can forward (relays, recorders, servers).
pub const FOURCC_CAN_FORWARD: u32 = 0x04;

/// The video FourCCs of the E-RTMP v2 spec, as weir forwards them.
pub const VIDEO_FOURCCS: [&str; 6] = ["avc1", "hvc1", "av01", "vp09", "vp08", "vvc1"];
/// The audio FourCCs of the E-RTMP v2 spec.
pub const AUDIO_FOURCCS: [&str; 6] = ["mp4a", ".mp3", "Opus", "fLaC", "ac-3", "ec-3"];

/// What a peer can take of one media kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FourCcSet {
    /// Anything (`"*"`).
    Any,
    /// These FourCCs, as big-endian `u32`s.
    Listed(Vec<u32>),
}

impl FourCcSet {
    /// Whether `fourcc` is in the set.
    pub fn contains(&self, fourcc: u32) -> bool {
        match self {
            FourCcSet::Any => true,
            FourCcSet::Listed(list) => list.contains(&fourcc),
        }
    }
}

/// What a client said about itself in `connect`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// `capsEx` bits (0 when absent).
    pub caps_ex: u32,
    /// Video codecs it can take; `None` when it said nothing about video codecs.
    pub video: Option<FourCcSet>,
    /// Audio codecs it can take; `None` when it said nothing about audio codecs.
    pub audio: Option<FourCcSet>,
    /// `videoFunction` bits (0 when absent).
    pub video_function: u32,
}

impl Capabilities {
    /// Reads the capability fields of a `connect` command object.
    ///
    /// The v2 InfoMaps, where present, define their kind (a FourCC counts when it may be
    /// decoded or forwarded); otherwise the v1 `fourCcList` applies to both kinds.
    pub fn from_connect(object: &Value) -> Capabilities {
        let number = |key: &str| {
            object
                .property(key)
                .and_then(Value::as_number)
                .filter(|n| n.is_finite() && *n >= 0.0)
                .map_or(0, |n| n.min(f64::from(u32::MAX)) as u32)
        };
        let list = object.property("fourCcList").and_then(fourcc_list);
        Capabilities {
            caps_ex: number("capsEx"),
            video: object
                .property("videoFourCcInfoMap")
                .and_then(info_map)
                .or_else(|| list.clone()),
            audio: object
                .property("audioFourCcInfoMap")
                .and_then(info_map)
                .or(list),
            video_function: number("videoFunction"),
        }
    }

    /// Whether the client reads Multitrack messages.
    pub fn multitrack(&self) -> bool {
        self.caps_ex & CAPS_EX_MULTITRACK != 0
    }

    /// Whether the client handles ReconnectRequest.
    pub fn reconnect(&self) -> bool {
        self.caps_ex & CAPS_EX_RECONNECT != 0
    }

    /// Whether the client advertised any codec at all.
    pub fn advertised_codecs(&self) -> bool {
        self.video.is_some() || self.audio.is_some()
    }

    /// What a client sends in `connect` to say it takes everything weir forwards: every
    /// FourCC of the spec and the given `capsEx` bits.
    pub fn connect_fields(caps_ex: u32) -> Vec<(String, Value)> {
        let all: Vec<Value> = VIDEO_FOURCCS
            .iter()
            .chain(AUDIO_FOURCCS.iter())
            .map(|f| Value::from(*f))
            .collect();
        let map = |list: &[&str]| {
            Value::object(list.iter().map(|f| {
                (
                    *f,
                    Value::from(f64::from(FOURCC_CAN_DECODE | FOURCC_CAN_FORWARD)),
                )
            }))
        };
        vec![
            ("fourCcList".into(), Value::StrictArray(all)),
            ("videoFourCcInfoMap".into(), map(&VIDEO_FOURCCS)),
            ("audioFourCcInfoMap".into(), map(&AUDIO_FOURCCS)),
            ("capsEx".into(), Value::from(f64::from(caps_ex))),
        ]
    }
}

/// What weir states in the `_result` of a connect: every FourCC of the spec with CanForward,
/// and the `capsEx` bits it supports.
pub fn server_announcement(caps_ex: u32) -> Vec<(String, Value)> {
    let map = |list: &[&str]| {
        Value::object(
            list.iter()
                .map(|f| (*f, Value::from(f64::from(FOURCC_CAN_FORWARD)))),
        )
    };
    vec![
        ("videoFourCcInfoMap".into(), map(&VIDEO_FOURCCS)),
        ("audioFourCcInfoMap".into(), map(&AUDIO_FOURCCS)),
        ("capsEx".into(), Value::from(f64::from(caps_ex))),
    ]
}

/// A FourCC string as a big-endian `u32`; `None` unless exactly 4 bytes.
pub fn fourcc_value(text: &str) -> Option<u32> {
    let bytes: [u8; 4] = text.as_bytes().try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

fn fourcc_list(value: &Value) -> Option<FourCcSet> {
    let items: Vec<&str> = match value {
        Value::StrictArray(items) => items.iter().filter_map(Value::as_str).collect(),
        // Some clients send an ECMA array or a comma-separated string.
        Value::EcmaArray(entries) => entries.iter().filter_map(|(_, v)| v.as_str()).collect(),
        Value::String(text) => text.split(',').map(str::trim).collect(),
        _ => return None,
    };
    Some(collect(items.into_iter()))
}

fn info_map(value: &Value) -> Option<FourCcSet> {
    let entries = value.properties()?;
    let wanted = FOURCC_CAN_DECODE | FOURCC_CAN_FORWARD;
    let takes = |v: &Value| {
        v.as_number()
            .is_some_and(|n| n.is_finite() && n >= 0.0 && (n as u32) & wanted != 0)
    };
    // The wildcard overrides the per-codec flags.
    if let Some((_, v)) = entries.iter().find(|(k, _)| k == "*") {
        return Some(if takes(v) {
            FourCcSet::Any
        } else {
            FourCcSet::Listed(Vec::new())
        });
    }
    Some(collect(
        entries
            .iter()
            .filter(|(_, v)| takes(v))
            .map(|(k, _)| k.as_str()),
    ))
}

fn collect<'a>(items: impl Iterator<Item = &'a str>) -> FourCcSet {
    let mut list = Vec::new();
    for item in items {
        if item == "*" {
            return FourCcSet::Any;
        }
        list.extend(fourcc_value(item));
    }
    FourCcSet::Listed(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fourcc(s: &str) -> u32 {
        fourcc_value(s).unwrap()
    }

    #[test]
    fn nothing_said_is_nothing_assumed() {
        // What OBS and stock FFmpeg send.
        let obs = Value::object([
            ("app", Value::from("live")),
            ("flashVer", Value::from("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("videoFunction", Value::from(1.0)),
        ]);
        let caps = Capabilities::from_connect(&obs);
        assert_eq!(caps.video, None);
        assert_eq!(caps.audio, None);
        assert!(!caps.multitrack() && !caps.reconnect() && !caps.advertised_codecs());
        assert_eq!(caps.video_function, 1);
    }

    #[test]
    fn v1_fourcc_list_applies_to_both_kinds() {
        // FFmpeg's -rtmp_enhanced_codecs hvc1,av01,vp09.
        let ffmpeg = Value::object([(
            "fourCcList",
            Value::StrictArray(vec!["hvc1".into(), "av01".into(), "vp09".into()]),
        )]);
        let caps = Capabilities::from_connect(&ffmpeg);
        let video = caps.video.unwrap();
        assert!(video.contains(fourcc("hvc1")) && !video.contains(fourcc("Opus")));
        assert_eq!(caps.audio, Some(video));
        let any = Value::object([("fourCcList", Value::StrictArray(vec!["*".into()]))]);
        assert_eq!(Capabilities::from_connect(&any).video, Some(FourCcSet::Any));
    }

    #[test]
    fn v2_info_maps_caps_ex_and_the_wildcard() {
        let object = Value::object([
            ("fourCcList", Value::StrictArray(vec!["avc1".into()])),
            (
                "videoFourCcInfoMap",
                Value::object([
                    ("hvc1", Value::from(1.0)),
                    ("av01", Value::from(2.0)),
                    ("vp09", Value::from(4.0)),
                ]),
            ),
            (
                "audioFourCcInfoMap",
                Value::object([("*", Value::from(4.0)), ("Opus", Value::from(0.0))]),
            ),
            ("capsEx", Value::from(3.0)),
        ]);
        let caps = Capabilities::from_connect(&object);
        assert_eq!(
            caps.video,
            Some(FourCcSet::Listed(vec![fourcc("hvc1"), fourcc("vp09")]))
        );
        assert_eq!(caps.audio, Some(FourCcSet::Any));
        assert!(caps.multitrack() && caps.reconnect());
    }

    #[test]
    fn malformed_fields_count_as_not_said() {
        let object = Value::object([
            ("fourCcList", Value::from(7.0)),
            ("videoFourCcInfoMap", Value::from("hvc1")),
            ("capsEx", Value::from(-1.0)),
            ("videoFunction", Value::from(f64::NAN)),
        ]);
        assert_eq!(Capabilities::from_connect(&object), Capabilities::default());
        let odd = Value::object([(
            "fourCcList",
            Value::StrictArray(vec!["toolong".into(), 5.0.into(), "hvc1".into()]),
        )]);
        assert_eq!(
            Capabilities::from_connect(&odd).video,
            Some(FourCcSet::Listed(vec![fourcc("hvc1")]))
        );
        assert_eq!(
            Capabilities::from_connect(&Value::Null),
            Capabilities::default()
        );
    }

    #[test]
    fn what_a_client_sends_reads_back_as_everything() {
        let object = Value::Object(Capabilities::connect_fields(CAPS_EX_MULTITRACK));
        let caps = Capabilities::from_connect(&object);
        for f in VIDEO_FOURCCS {
            assert!(caps.video.as_ref().unwrap().contains(fourcc(f)));
        }
        for f in AUDIO_FOURCCS {
            assert!(caps.audio.as_ref().unwrap().contains(fourcc(f)));
        }
        assert!(caps.multitrack());
        let announced = Value::Object(server_announcement(CAPS_EX_MULTITRACK));
        assert_eq!(announced.property("capsEx").unwrap().as_number(), Some(2.0));
    }
}
