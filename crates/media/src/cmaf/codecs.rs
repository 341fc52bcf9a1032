//! RFC 6381 codec strings (`CODECS` in an HLS multivariant playlist, `codecs` in a DASH
//! Representation) from the configuration records a publisher sends.

use crate::aac::AudioSpecificConfig;
use crate::av1::Vp9Config;
use crate::avc::AvcDecoderConfig;
use crate::flv::Codec;

/// The codec string of a track with `config` (the E-RTMP sequence start body); `None` when
/// the record cannot be read or the codec has no fMP4 mapping here.
pub fn codec_string(codec: Codec, config: &[u8]) -> Option<String> {
    Some(match codec {
        Codec::Avc => AvcDecoderConfig::parse(config).ok()?.codec_string(),
        Codec::Hevc => hevc(config)?,
        Codec::Av1 => av1(config)?,
        Codec::Vp9 => {
            let vp9 = Vp9Config::parse(config).ok()?;
            format!(
                "vp09.{:02}.{:02}.{:02}",
                vp9.profile, vp9.level, vp9.bit_depth
            )
        }
        Codec::Aac => {
            let asc = AudioSpecificConfig::parse(config).ok()?;
            format!("mp4a.40.{}", asc.object_type)
        }
        Codec::Opus => "opus".to_owned(),
        Codec::Flac => "fLaC".to_owned(),
        Codec::Ac3 => "ac-3".to_owned(),
        Codec::Eac3 => "ec-3".to_owned(),
        Codec::Mp3 => "mp4a.40.34".to_owned(),
        _ => return None,
    })
}

/// `hvc1.{profile space}{profile}.{compatibility, bit-reversed hex}.{L|H}{level}.{constraints}`
/// (ISO/IEC 14496-15 Annex E), straight from the `hvcC` header bytes.
fn hevc(record: &[u8]) -> Option<String> {
    let header = record.get(..13)?;
    let space = match header[1] >> 6 {
        0 => "",
        1 => "A",
        2 => "B",
        _ => "C",
    };
    let tier = if header[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = header[1] & 0x1f;
    let compatibility =
        u32::from_be_bytes([header[2], header[3], header[4], header[5]]).reverse_bits();
    let mut out = format!(
        "hvc1.{space}{profile}.{compatibility:X}.{tier}{}",
        header[12]
    );
    // The six constraint bytes, trailing zero bytes left out.
    let constraints = &header[6..12];
    let used = constraints
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |i| i + 1);
    for byte in &constraints[..used] {
        out.push_str(&format!(".{byte:X}"));
    }
    Some(out)
}

/// `av01.{profile}.{level:02}{tier}.{bit depth:02}` from an `av1C` record.
fn av1(record: &[u8]) -> Option<String> {
    let config = crate::av1::Av1Config::parse(record).ok()?;
    let tier = if record[2] & 0x80 != 0 { 'H' } else { 'M' };
    Some(format!(
        "av01.{}.{:02}{tier}.{:02}",
        config.profile, config.level_idx, config.bit_depth
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::hex;

    #[test]
    fn strings_for_each_codec() {
        // avcC: High profile, level 3.1.
        let avcc = hex("01 64 00 1f ff e1 00 04 67 64 00 1f 01 00 04 68 ee 3c 80");
        assert_eq!(codec_string(Codec::Avc, &avcc).unwrap(), "avc1.64001f");
        // hvcC header: Main profile, compatibility 0x60000000, constraints b0, level 4.1.
        let mut hvcc = hex("01 01 60 00 00 00 b0 00 00 00 00 00 7b f0 00 fc fd f8 f8 00 00 0f 00");
        assert_eq!(
            codec_string(Codec::Hevc, &hvcc).unwrap(),
            "hvc1.1.6.L123.B0"
        );
        hvcc[1] = 0x22; // Main 10, high tier
        hvcc[2] = 0x20;
        assert_eq!(
            codec_string(Codec::Hevc, &hvcc).unwrap(),
            "hvc1.2.4.H123.B0"
        );
        // av1C: Main profile, level idx 8, main tier, 8-bit.
        let av1c = hex("81 08 0c 00");
        assert_eq!(codec_string(Codec::Av1, &av1c).unwrap(), "av01.0.08M.08");
        // vpcC version 1: profile 0, level 31, 8-bit.
        let vpcc = hex("01 00 00 00 00 1f 80 02 02 02 00 00");
        assert_eq!(codec_string(Codec::Vp9, &vpcc).unwrap(), "vp09.00.31.08");
        assert_eq!(
            codec_string(Codec::Aac, &hex("11 90")).unwrap(),
            "mp4a.40.2"
        );
        assert_eq!(codec_string(Codec::Opus, &[]).unwrap(), "opus");
        assert!(codec_string(Codec::Avc, &[1, 2]).is_none());
    }
}
