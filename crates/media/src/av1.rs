//! AV1 and VP9 configuration: the AV1CodecConfigurationRecord (`av1C`) with the sequence
//! header OBU inside it, the VPCodecConfigurationRecord (`vpcC`) and a VP9 key frame's
//! uncompressed header (the frame size, which `vpcC` does not carry).

use crate::avc::{AvcError, BitReader};

/// What an `av1C` record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Av1Config {
    /// seq_profile (0 Main, 1 High, 2 Professional).
    pub profile: u8,
    /// seq_level_idx_0 (level = 2 + idx / 4 . idx % 4; 31 = no level).
    pub level_idx: u8,
    /// Bit depth: 8, 10 or 12.
    pub bit_depth: u8,
    /// Whether the stream is monochrome.
    pub monochrome: bool,
    /// max_frame_width from the sequence header OBU, if the record carries one.
    pub width: Option<u32>,
    /// max_frame_height from the sequence header OBU, if the record carries one.
    pub height: Option<u32>,
}

impl Av1Config {
    /// Parses an `av1C` record and the sequence header OBU in its configOBUs, if any.
    pub fn parse(record: &[u8]) -> Result<Av1Config, AvcError> {
        let [marker, b1, b2, _, ref obus @ ..] = *record else {
            return Err(AvcError::Truncated);
        };
        if marker != 0x81 {
            return Err(AvcError::UnsupportedVersion(marker));
        }
        let high_bitdepth = b2 & 0x40 != 0;
        let twelve_bit = b2 & 0x20 != 0;
        let mut config = Av1Config {
            profile: b1 >> 5,
            level_idx: b1 & 0x1f,
            bit_depth: match (high_bitdepth, twelve_bit) {
                (true, true) => 12,
                (true, false) => 10,
                _ => 8,
            },
            monochrome: b2 & 0x10 != 0,
            width: None,
            height: None,
        };
        if let Some(header) = sequence_header_obu(obus) {
            if let Ok((width, height)) = frame_size(header) {
                config.width = Some(width);
                config.height = Some(height);
            }
        }
        Ok(config)
    }

    /// The level as written in the spec: `3.1`; `None` for "no level" (31).
    pub fn level(&self) -> Option<String> {
        (self.level_idx < 24).then(|| format!("{}.{}", 2 + self.level_idx / 4, self.level_idx % 4))
    }

    /// The profile's name.
    pub fn profile_name(&self) -> &'static str {
        match self.profile {
            0 => "Main",
            1 => "High",
            2 => "Professional",
            _ => "Unknown",
        }
    }
}

/// The payload of the first sequence header OBU in a run of OBUs.
fn sequence_header_obu(mut obus: &[u8]) -> Option<&[u8]> {
    while let [header, rest @ ..] = obus {
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let rest = if has_extension { rest.get(1..)? } else { rest };
        let (size, rest) = if has_size {
            leb128(rest)?
        } else {
            (rest.len(), rest)
        };
        let payload = rest.get(..size)?;
        if obu_type == 1 {
            return Some(payload);
        }
        obus = &rest[size..];
    }
    None
}

fn leb128(bytes: &[u8]) -> Option<(usize, &[u8])> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, &bytes[i + 1..]));
        }
    }
    None
}

/// max_frame_width/height from a sequence header OBU payload (AV1 spec §5.5.1).
fn frame_size(payload: &[u8]) -> Result<(u32, u32), AvcError> {
    let mut r = BitReader::new(payload);
    r.bits(3)?; // seq_profile
    r.bit()?; // still_picture
    let reduced = r.bit()?;
    if reduced {
        r.bits(5)?; // seq_level_idx[0]
    } else {
        let timing_info = r.bit()?;
        let mut decoder_model_info = false;
        let mut buffer_delay_length = 0;
        if timing_info {
            r.bits(32)?; // num_units_in_display_tick
            r.bits(32)?; // time_scale
            if r.bit()? {
                // equal_picture_interval: num_ticks_per_picture_minus_1, uvlc.
                let mut zeros = 0;
                while !r.bit()? {
                    zeros += 1;
                    if zeros >= 32 {
                        return Err(AvcError::OutOfRange);
                    }
                }
                r.bits(zeros)?;
            }
            decoder_model_info = r.bit()?;
            if decoder_model_info {
                buffer_delay_length = r.bits(5)? + 1;
                r.bits(32)?; // num_units_in_decoding_tick
                r.bits(5)?; // buffer_removal_time_length_minus_1
                r.bits(5)?; // frame_presentation_time_length_minus_1
            }
        }
        let initial_display_delay = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        for _ in 0..operating_points {
            r.bits(12)?; // operating_point_idc
            if r.bits(5)? > 7 {
                r.bit()?; // seq_tier
            }
            if decoder_model_info && r.bit()? {
                r.bits(buffer_delay_length)?; // decoder_buffer_delay
                r.bits(buffer_delay_length)?; // encoder_buffer_delay
                r.bit()?; // low_delay_mode_flag
            }
            if initial_display_delay && r.bit()? {
                r.bits(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? + 1;
    let height_bits = r.bits(4)? + 1;
    let width = r.bits(width_bits)? + 1;
    let height = r.bits(height_bits)? + 1;
    Ok((width, height))
}

/// What a VP9 `vpcC` record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp9Config {
    /// Profile 0..3.
    pub profile: u8,
    /// Level × 10 (31 = level 3.1; 0 = unspecified).
    pub level: u8,
    /// Bit depth.
    pub bit_depth: u8,
}

impl Vp9Config {
    /// Parses a `vpcC` record (version 1: version and flags, then the fields).
    pub fn parse(record: &[u8]) -> Result<Vp9Config, AvcError> {
        let [_, _, _, _, profile, level, depth, ..] = *record else {
            return Err(AvcError::Truncated);
        };
        Ok(Vp9Config {
            profile,
            level,
            bit_depth: depth >> 4,
        })
    }
}

/// The frame size of a VP9 key frame, from its uncompressed header (VP9 spec §6.2); `None`
/// for inter frames and anything unreadable.
pub fn vp9_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut r = BitReader::new(frame);
    let read = |r: &mut BitReader<'_>| -> Result<Option<(u32, u32)>, AvcError> {
        if r.bits(2)? != 2 {
            return Ok(None); // frame_marker
        }
        let profile = r.bits(1)? | (r.bits(1)? << 1);
        if profile == 3 {
            r.bit()?;
        }
        if r.bit()? {
            return Ok(None); // show_existing_frame
        }
        if r.bit()? {
            return Ok(None); // frame_type 1: not a key frame
        }
        r.bits(2)?; // show_frame, error_resilient_mode
        if r.bits(24)? != 0x49_83_42 {
            return Ok(None);
        }
        if profile >= 2 {
            r.bit()?; // ten_or_twelve_bit
        }
        let color_space = r.bits(3)?;
        if color_space != 7 {
            r.bit()?; // color_range
            if profile == 1 || profile == 3 {
                r.bits(3)?; // subsampling_x, subsampling_y, reserved_zero
            }
        } else if profile == 1 || profile == 3 {
            r.bit()?; // reserved_zero
        }
        let width = r.bits(16)? + 1;
        let height = r.bits(16)? + 1;
        Ok(Some((width, height)))
    };
    read(&mut r).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::hex;

    #[test]
    fn svt_av1_record() {
        // SVT-AV1's av1C for FFmpeg 9's 320x240 test pattern, as received by weir.
        let config = Av1Config::parse(&hex("81000c00 0a0b0200000521e7fde017c002")).unwrap();
        assert_eq!(
            (config.profile, config.level_idx, config.bit_depth),
            (0, 0, 8)
        );
        assert_eq!((config.width, config.height), (Some(320), Some(240)));
        assert_eq!(
            (config.profile_name(), config.level()),
            ("Main", Some("2.0".into()))
        );
        // Without configOBUs: no size.
        let bare = Av1Config::parse(&hex("81 29 4c 00")).unwrap();
        assert_eq!((bare.level_idx, bare.bit_depth, bare.width), (9, 10, None));
        assert!(Av1Config::parse(&hex("81 00")).is_err());
        assert!(Av1Config::parse(&hex("01 00 0c 00")).is_err());
    }

    #[test]
    fn vp9_record_and_key_frame() {
        // libvpx-vp9 (profile 1, 4:4:4 RGB): vpcC and the start of the first key frame.
        let config = Vp9Config::parse(&hex("01000000 01 14 87 02 02 00 0000")).unwrap();
        assert_eq!((config.profile, config.level, config.bit_depth), (1, 20, 8));
        let key = hex("a2498342e013f00ef60638241c184a000d904f");
        assert_eq!(vp9_keyframe_size(&key), Some((320, 240)));
        // An inter frame (frame_type 1) and garbage.
        assert_eq!(vp9_keyframe_size(&hex("86 00 40")), None);
        assert_eq!(vp9_keyframe_size(&hex("ff")), None);
        assert_eq!(vp9_keyframe_size(&[]), None);
    }

    mod prop {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #[test]
            fn never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = Av1Config::parse(&data);
                let _ = Vp9Config::parse(&data);
                let _ = vp9_keyframe_size(&data);
            }
        }
    }
}
