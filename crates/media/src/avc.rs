//! H.264 / AVC: the decoder configuration record (avcC, ISO 14496-15 5.3.3.1) and the sequence
//! parameter set (ITU-T H.264 7.3.2.1.1).

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

/// A failure to parse an avcC record or an SPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AvcError {
    /// The record or NAL unit ends early.
    #[error("truncated avc data")]
    Truncated,
    /// avcC configurationVersion is not 1.
    #[error("unsupported avcC version {0}")]
    UnsupportedVersion(u8),
    /// The NAL unit is not an SPS (type 7).
    #[error("not a sequence parameter set")]
    NotSps,
    /// An exp-Golomb value or a derived size is out of range.
    #[error("sps value out of range")]
    OutOfRange,
}

/// An AVCDecoderConfigurationRecord (the AVC sequence header body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcDecoderConfig {
    /// AVCProfileIndication (profile_idc).
    pub profile: u8,
    /// profile_compatibility (the constraint_set flags byte).
    pub compatibility: u8,
    /// AVCLevelIndication (level_idc).
    pub level: u8,
    /// Size in bytes of the NAL unit length prefix in coded frames (1, 2 or 4).
    pub nalu_length_size: u8,
    /// Sequence parameter sets, NAL header included.
    pub sps: Vec<Bytes>,
    /// Picture parameter sets, NAL header included.
    pub pps: Vec<Bytes>,
}

impl AvcDecoderConfig {
    /// Parses an avcC record; every count and length is checked against the input.
    pub fn parse(record: &[u8]) -> Result<AvcDecoderConfig, AvcError> {
        let [version, profile, compatibility, level, length_size, sps_count, rest @ ..] = record
        else {
            return Err(AvcError::Truncated);
        };
        if *version != 1 {
            return Err(AvcError::UnsupportedVersion(*version));
        }
        let mut rest = rest;
        let sps = parameter_sets(&mut rest, usize::from(sps_count & 0x1f))?;
        let (pps_count, tail) = rest.split_first().ok_or(AvcError::Truncated)?;
        rest = tail;
        let pps = parameter_sets(&mut rest, usize::from(*pps_count))?;
        Ok(AvcDecoderConfig {
            profile: *profile,
            compatibility: *compatibility,
            level: *level,
            nalu_length_size: (length_size & 0x03) + 1,
            sps,
            pps,
        })
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile, self.compatibility, self.level
        )
    }

    /// The first SPS, parsed.
    pub fn first_sps(&self) -> Result<SequenceParameterSet, AvcError> {
        let sps = self.sps.first().ok_or(AvcError::Truncated)?;
        SequenceParameterSet::parse(sps)
    }
}

fn parameter_sets(rest: &mut &[u8], count: usize) -> Result<Vec<Bytes>, AvcError> {
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let [hi, lo, tail @ ..] = *rest else {
            return Err(AvcError::Truncated);
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let set = tail.get(..len).ok_or(AvcError::Truncated)?;
        sets.push(Bytes::copy_from_slice(set));
        *rest = tail.get(len..).ok_or(AvcError::Truncated)?;
    }
    Ok(sets)
}

/// The parts of an H.264 sequence parameter set a server needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceParameterSet {
    /// profile_idc (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The constraint_set flags byte.
    pub constraint_flags: u8,
    /// level_idc (31 = level 3.1).
    pub level_idc: u8,
    /// chroma_format_idc (1 = 4:2:0).
    pub chroma_format_idc: u32,
    /// Luma bit depth.
    pub bit_depth: u32,
    /// Display width in pixels, after cropping.
    pub width: u32,
    /// Display height in pixels, after cropping.
    pub height: u32,
}

/// Profiles whose SPS carries chroma format and bit depth fields.
const HIGH_PROFILES: [u8; 12] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134];

impl SequenceParameterSet {
    /// Parses an SPS NAL unit (starting with its NAL header byte, type 7).
    pub fn parse(nal: &[u8]) -> Result<SequenceParameterSet, AvcError> {
        let (header, rest) = nal.split_first().ok_or(AvcError::Truncated)?;
        if header & 0x1f != 7 {
            return Err(AvcError::NotSps);
        }
        let rbsp = remove_emulation_prevention(rest);
        let mut r = BitReader::new(&rbsp);
        let profile_idc = r.bits(8)? as u8;
        let constraint_flags = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue()?; // seq_parameter_set_id
        let mut chroma_format_idc = 1;
        let mut separate_colour_plane = false;
        let mut bit_depth = 8;
        if HIGH_PROFILES.contains(&profile_idc) || profile_idc == 135 {
            chroma_format_idc = r.ue()?;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.bit()?;
            }
            bit_depth = r.ue()?.checked_add(8).ok_or(AvcError::OutOfRange)?;
            r.ue()?; // bit_depth_chroma_minus8
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue()?; // log2_max_frame_num_minus4
        match r.ue()? {
            0 => {
                r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bit()?; // delta_pic_order_always_zero_flag
                r.se()?; // offset_for_non_ref_pic
                r.se()?; // offset_for_top_to_bottom_field
                let cycle = r.ue()?;
                if cycle > 255 {
                    return Err(AvcError::OutOfRange);
                }
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            _ => {}
        }
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue()?.checked_add(1).ok_or(AvcError::OutOfRange)?;
        let height_map_units = r.ue()?.checked_add(1).ok_or(AvcError::OutOfRange)?;
        let frame_mbs_only = r.bit()?;
        if !frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0, 0, 0, 0);
        if r.bit()? {
            crop_left = r.ue()?;
            crop_right = r.ue()?;
            crop_top = r.ue()?;
            crop_bottom = r.ue()?;
        }
        let field_factor = if frame_mbs_only { 1 } else { 2 };
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (sub_width, sub_height) = match chroma_array_type {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (crop_x, crop_y) = if chroma_array_type == 0 {
            (1, field_factor)
        } else {
            (sub_width, sub_height * field_factor)
        };
        let full_width = width_mbs.checked_mul(16).ok_or(AvcError::OutOfRange)?;
        let full_height = height_map_units
            .checked_mul(16 * field_factor)
            .ok_or(AvcError::OutOfRange)?;
        let crop = |a: u32, b: u32, unit: u32| {
            a.checked_add(b)
                .and_then(|sum| sum.checked_mul(unit))
                .ok_or(AvcError::OutOfRange)
        };
        let width = full_width
            .checked_sub(crop(crop_left, crop_right, crop_x)?)
            .ok_or(AvcError::OutOfRange)?;
        let height = full_height
            .checked_sub(crop(crop_top, crop_bottom, crop_y)?)
            .ok_or(AvcError::OutOfRange)?;
        Ok(SequenceParameterSet {
            profile_idc,
            constraint_flags,
            level_idc,
            chroma_format_idc,
            bit_depth,
            width,
            height,
        })
    }

    /// The RFC 6381 codec string, e.g. `avc1.64001f`.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }

    /// The profile's name, e.g. `High`.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            66 if self.constraint_flags & 0x40 != 0 => "Constrained Baseline",
            66 => "Baseline",
            77 => "Main",
            88 => "Extended",
            100 => "High",
            110 => "High 10",
            122 => "High 4:2:2",
            244 => "High 4:4:4 Predictive",
            44 => "CAVLC 4:4:4 Intra",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for SequenceParameterSet {
    /// E.g. `H.264 High@3.1 1280x720`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "H.264 {}@{}.{} {}x{}",
            self.profile_name(),
            self.level_idc / 10,
            self.level_idc % 10,
            self.width,
            self.height
        )
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), AvcError> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            next = (last + i64::from(r.se()?)).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Turns a NAL unit payload into its RBSP: every `00 00 03` loses its `03`.
pub fn remove_emulation_prevention(ebsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ebsp.len());
    let mut zeros = 0;
    for &b in ebsp {
        if zeros >= 2 && b == 0x03 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// An MSB-first bit reader with exp-Golomb decoding.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, AvcError> {
        let byte = self.data.get(self.bit / 8).ok_or(AvcError::Truncated)?;
        let value = (byte >> (7 - self.bit % 8)) & 1;
        self.bit += 1;
        Ok(value == 1)
    }

    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, AvcError> {
        let mut value = 0u32;
        for _ in 0..n {
            value = (value << 1) | u32::from(self.bit()?);
        }
        Ok(value)
    }

    /// Unsigned exp-Golomb, up to 32 bits.
    pub(crate) fn ue(&mut self) -> Result<u32, AvcError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(AvcError::OutOfRange);
            }
        }
        let suffix = self.bits(zeros)?;
        let value = (1u64 << zeros) - 1 + u64::from(suffix);
        u32::try_from(value).map_err(|_| AvcError::OutOfRange)
    }

    /// Signed exp-Golomb.
    fn se(&mut self) -> Result<i32, AvcError> {
        let k = i64::from(self.ue()?);
        let value = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        i32::try_from(value).map_err(|_| AvcError::OutOfRange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::hex;

    /// avcC from `ffmpeg -f lavfi -i testsrc=size=1280x720:rate=30 -pix_fmt yuv420p
    /// -c:v libx264 -profile:v high -level 3.1 -f flv` (x264, High@3.1).
    const AVCC_720P_HIGH: &str = "01 64 00 1f ff e1 001a \
        6764001facd9405005bb0110000003001000000303c0f1831960 \
        01 0006 68ebe3cb22c0";
    /// SPS from the same command at 1920x1080 with `-profile:v main` (1088 rows cropped to 1080).
    const SPS_1080P_MAIN: &str = "674d4028eca03c0113f2e022000003000200000300781e30632c";

    #[test]
    fn parses_real_avcc() {
        let config = AvcDecoderConfig::parse(&hex(AVCC_720P_HIGH)).unwrap();
        assert_eq!(
            (config.profile, config.compatibility, config.level),
            (0x64, 0, 0x1f)
        );
        assert_eq!(config.nalu_length_size, 4);
        assert_eq!(config.sps.len(), 1);
        assert_eq!(config.pps.len(), 1);
        assert_eq!(config.pps[0].as_ref(), hex("68ebe3cb22c0").as_slice());
        assert_eq!(config.codec_string(), "avc1.64001f");
        let sps = config.first_sps().unwrap();
        assert_eq!((sps.width, sps.height), (1280, 720));
        assert_eq!((sps.chroma_format_idc, sps.bit_depth), (1, 8));
        assert_eq!(sps.codec_string(), "avc1.64001f");
        assert_eq!(sps.to_string(), "H.264 High@3.1 1280x720");
    }

    #[test]
    fn sps_with_cropping_and_emulation_prevention() {
        let sps = SequenceParameterSet::parse(&hex(SPS_1080P_MAIN)).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(sps.to_string(), "H.264 Main@4.0 1920x1080");
        assert_eq!(sps.codec_string(), "avc1.4d4028");
    }

    #[test]
    fn removes_emulation_prevention_bytes() {
        assert_eq!(
            remove_emulation_prevention(&hex("00 00 03 01 00 00 03 00 03")),
            hex("00 00 01 00 00 00 03")
        );
    }

    #[test]
    fn avcc_rejects_bad_version_and_counts() {
        assert_eq!(
            AvcDecoderConfig::parse(&hex("02 64 00 1f ff e1")),
            Err(AvcError::UnsupportedVersion(2))
        );
        // Two SPS announced, one present.
        assert_eq!(
            AvcDecoderConfig::parse(&hex("01 64 00 1f ff e2 0001 67")),
            Err(AvcError::Truncated)
        );
        // SPS length beyond the record.
        assert_eq!(
            AvcDecoderConfig::parse(&hex("01 64 00 1f ff e1 00ff 67")),
            Err(AvcError::Truncated)
        );
        assert_eq!(
            SequenceParameterSet::parse(&hex("68 ee")),
            Err(AvcError::NotSps)
        );
    }

    #[test]
    fn truncated_at_every_offset_never_panics() {
        let avcc = hex(AVCC_720P_HIGH);
        for len in 0..avcc.len() {
            assert!(AvcDecoderConfig::parse(&avcc[..len]).is_err(), "{len}");
        }
        let sps = hex(SPS_1080P_MAIN);
        for len in 0..sps.len() {
            let _ = SequenceParameterSet::parse(&sps[..len]);
        }
        assert!(SequenceParameterSet::parse(&sps[..8]).is_err());
    }

    #[test]
    fn huge_exp_golomb_is_out_of_range() {
        // profile 66, then 32 zero bits: no exp-Golomb value fits.
        assert_eq!(
            SequenceParameterSet::parse(&hex("67 42 00 1e 00 00 00 00 80")),
            Err(AvcError::OutOfRange)
        );
    }
}
