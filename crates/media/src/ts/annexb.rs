//! Length-prefixed NAL units (FLV, MP4) to Annex B byte streams (MPEG-TS).

use crate::flv::Codec;

/// The parameter sets to repeat before every key frame, each with its start code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ParameterSets {
    annexb: Vec<u8>,
    /// Bytes of the NAL length prefix (from the configuration record).
    length_size: usize,
}

const START: [u8; 4] = [0, 0, 0, 1];

/// SPS and PPS of an avcC record.
pub(super) fn avc_parameter_sets(record: &[u8]) -> Option<ParameterSets> {
    let length_size = usize::from(record.get(4)? & 0x03) + 1;
    let mut annexb = Vec::new();
    let mut pos = 5;
    for count_mask in [0x1f, 0xff] {
        let count = usize::from(record.get(pos)? & count_mask);
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                *record.get(pos)?,
                *record.get(pos + 1)?,
            ]));
            annexb.extend_from_slice(&START);
            annexb.extend_from_slice(record.get(pos + 2..pos + 2 + len)?);
            pos += 2 + len;
        }
    }
    Some(ParameterSets {
        annexb,
        length_size,
    })
}

/// VPS, SPS and PPS of an hvcC record.
pub(super) fn hevc_parameter_sets(record: &[u8]) -> Option<ParameterSets> {
    let length_size = usize::from(record.get(21)? & 0x03) + 1;
    let arrays = *record.get(22)?;
    let mut annexb = Vec::new();
    let mut pos = 23;
    for _ in 0..arrays {
        let nal_type = record.get(pos)? & 0x3f;
        let count = u16::from_be_bytes([*record.get(pos + 1)?, *record.get(pos + 2)?]);
        pos += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([
                *record.get(pos)?,
                *record.get(pos + 1)?,
            ]));
            let nal = record.get(pos + 2..pos + 2 + len)?;
            pos += 2 + len;
            if matches!(nal_type, 32..=34) {
                annexb.extend_from_slice(&START);
                annexb.extend_from_slice(nal);
            }
        }
    }
    Some(ParameterSets {
        annexb,
        length_size,
    })
}

/// One access unit in Annex B: an access unit delimiter, the parameter sets before a key
/// frame, then the NAL units (delimiters and parameter sets already in the data are dropped,
/// so they are not doubled). A length running past the end stops the conversion there.
pub(super) fn access_unit(
    codec: Codec,
    sets: &ParameterSets,
    data: &[u8],
    keyframe: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + sets.annexb.len() + 16);
    match codec {
        Codec::Hevc => out.extend_from_slice(&[0, 0, 0, 1, 0x46, 0x01, 0x50]),
        _ => out.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]),
    }
    if keyframe {
        out.extend_from_slice(&sets.annexb);
    }
    let n = sets.length_size;
    let mut pos = 0;
    while pos + n <= data.len() {
        let len = data[pos..pos + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let Some(nal) = data.get(pos + n..pos + n + len) else {
            break;
        };
        pos += n + len;
        let Some(&header) = nal.first() else {
            continue;
        };
        let skip = match codec {
            Codec::Hevc => matches!((header >> 1) & 0x3f, 32..=35),
            _ => matches!(header & 0x1f, 7..=9),
        };
        if !skip {
            out.extend_from_slice(&START);
            out.extend_from_slice(nal);
        }
    }
    out
}
