//! HEVC (H.265): the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1) and the
//! parts of its sequence parameter set (ITU-T H.265 §7.3.2.2) a server reports.

use crate::avc::{remove_emulation_prevention, AvcError, BitReader};

/// What an `hvcC` record and its SPS say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HevcConfig {
    /// general_profile_idc (1 Main, 2 Main 10, 3 Main Still Picture, 4 Range extensions).
    pub profile_idc: u8,
    /// general_tier_flag (false Main tier, true High tier).
    pub high_tier: bool,
    /// general_level_idc: 30 × the level (123 = level 4.1).
    pub level_idc: u8,
    /// chroma_format_idc (1 = 4:2:0).
    pub chroma_format_idc: u8,
    /// Luma bit depth.
    pub bit_depth: u8,
    /// Picture width after the conformance window, if the record holds an SPS.
    pub width: Option<u32>,
    /// Picture height after the conformance window, if the record holds an SPS.
    pub height: Option<u32>,
}

impl HevcConfig {
    /// Parses an `hvcC` record; the resolution comes from its first SPS, when it has one.
    pub fn parse(record: &[u8]) -> Result<HevcConfig, AvcError> {
        if record.len() < 23 {
            return Err(AvcError::Truncated);
        }
        if record[0] != 1 {
            return Err(AvcError::UnsupportedVersion(record[0]));
        }
        let mut config = HevcConfig {
            profile_idc: record[1] & 0x1f,
            high_tier: record[1] & 0x20 != 0,
            level_idc: record[12],
            chroma_format_idc: record[16] & 0x03,
            bit_depth: (record[17] & 0x07) + 8,
            width: None,
            height: None,
        };
        let arrays = record[22];
        let mut pos = 23;
        for _ in 0..arrays {
            let header = record.get(pos..pos + 3).ok_or(AvcError::Truncated)?;
            let nal_type = header[0] & 0x3f;
            let count = u16::from_be_bytes([header[1], header[2]]);
            pos += 3;
            for _ in 0..count {
                let len = record.get(pos..pos + 2).ok_or(AvcError::Truncated)?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let nal = record
                    .get(pos + 2..pos + 2 + len)
                    .ok_or(AvcError::Truncated)?;
                pos += 2 + len;
                if nal_type == 33 && config.width.is_none() {
                    if let Ok((width, height)) = sps_size(nal) {
                        config.width = Some(width);
                        config.height = Some(height);
                    }
                }
            }
        }
        Ok(config)
    }

    /// The profile's name.
    pub fn profile_name(&self) -> &'static str {
        match self.profile_idc {
            1 => "Main",
            2 => "Main 10",
            3 => "Main Still Picture",
            4 => "Rext",
            _ => "Unknown",
        }
    }

    /// The level as written in specs: `4.1`, `5`.
    pub fn level(&self) -> String {
        let tenths = u32::from(self.level_idc) / 3;
        if tenths % 10 == 0 {
            format!("{}", tenths / 10)
        } else {
            format!("{}.{}", tenths / 10, tenths % 10)
        }
    }
}

/// Width and height from an SPS NAL unit (with its 2-byte NAL header).
fn sps_size(nal: &[u8]) -> Result<(u32, u32), AvcError> {
    let rbsp = remove_emulation_prevention(nal.get(2..).ok_or(AvcError::Truncated)?);
    let mut r = BitReader::new(&rbsp);
    r.bits(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    r.bit()?; // sps_temporal_id_nesting_flag
              // profile_tier_level: general part (88 bits) and general_level_idc.
    r.bits(32)?;
    r.bits(32)?;
    r.bits(24)?;
    r.bits(8)?;
    let mut profile_present = [false; 8];
    let mut level_present = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        profile_present[i] = r.bit()?;
        level_present[i] = r.bit()?;
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.bits(2)?;
        }
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if profile_present[i] {
            r.bits(32)?;
            r.bits(32)?;
            r.bits(24)?;
        }
        if level_present[i] {
            r.bits(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc == 3 {
        r.bit()?; // separate_colour_plane_flag
    }
    let mut width = r.ue()?;
    let mut height = r.ue()?;
    if r.bit()? {
        // conformance_window_flag: offsets in chroma units.
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let crop_w = left.saturating_add(right).saturating_mul(sub_w);
        let crop_h = top.saturating_add(bottom).saturating_mul(sub_h);
        width = width.saturating_sub(crop_w);
        height = height.saturating_sub(crop_h);
    }
    if width == 0 || height == 0 || width > 65_536 || height > 65_536 {
        return Err(AvcError::OutOfRange);
    }
    Ok((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::hex;

    /// The hvcC libx265 wrote for FFmpeg 9's 320x240 RGB test pattern (Rext profile, 4:4:4,
    /// level 2), as weir received it in an E-RTMP sequence start (its SEI array left out).
    const X265_320X240: &str = "0104080000009e08000000003cf000fcfff8f800000f03200001001740010c01
        ffff0408000003009e0800000300003c959809210001002b4201010408000003009e0800000300003c9001
        4101e2cb2b349265780b702020004000000300400000064222000100084401c172860c4624";

    #[test]
    fn x265_record() {
        let config = HevcConfig::parse(&hex(X265_320X240)).unwrap();
        assert_eq!(
            (config.profile_idc, config.high_tier, config.level_idc),
            (4, false, 60)
        );
        assert_eq!((config.chroma_format_idc, config.bit_depth), (3, 8));
        assert_eq!((config.width, config.height), (Some(320), Some(240)));
        assert_eq!(
            (config.profile_name(), config.level()),
            ("Rext", "2".into())
        );
    }

    #[test]
    fn truncated_and_odd_records_fail_cleanly() {
        let full = hex(X265_320X240);
        for len in 0..23 {
            assert!(HevcConfig::parse(&full[..len]).is_err());
        }
        for len in 23..full.len() {
            // A cut inside the arrays is an error or a record without a size, never a panic.
            let _ = HevcConfig::parse(&full[..len]);
        }
        let mut v2 = full.clone();
        v2[0] = 2;
        assert_eq!(HevcConfig::parse(&v2), Err(AvcError::UnsupportedVersion(2)));
    }
}
