//! Sample rate and channels of the E-RTMP audio codecs besides AAC: the Opus ID header
//! (RFC 7845 §5.1), FLAC STREAMINFO, and the frame headers of AC-3, E-AC-3 (ATSC A/52) and
//! MP3, which carry no configuration record of their own.

/// What an audio configuration or frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Sample rate in Hz (Opus: the encoder's input rate; it always decodes at 48 kHz).
    pub sample_rate: u32,
    /// Channels (LFE counted).
    pub channels: u8,
    /// Bits per sample, where the format has a fixed one (FLAC).
    pub bits_per_sample: Option<u8>,
}

/// An Opus ID header (`OpusHead`).
pub fn opus_head(head: &[u8]) -> Option<AudioFormat> {
    let rest = head.strip_prefix(b"OpusHead")?;
    let [_version, channels, _, _, r0, r1, r2, r3, ..] = *rest else {
        return None;
    };
    let rate = u32::from_le_bytes([r0, r1, r2, r3]);
    Some(AudioFormat {
        sample_rate: if rate == 0 { 48_000 } else { rate },
        channels,
        bits_per_sample: None,
    })
}

/// FLAC STREAMINFO: bare (as FFmpeg sends it), or after `fLaC` and the metadata block header
/// (as the E-RTMP spec describes it).
pub fn flac_stream_info(body: &[u8]) -> Option<AudioFormat> {
    let info = match body.strip_prefix(b"fLaC") {
        Some(rest) => rest.get(4..)?,
        None => body,
    };
    let bytes = info.get(10..13)?;
    let bits = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
    let sample_rate = bits >> 4;
    let channels = ((bits >> 1) & 0x07) as u8 + 1;
    let bps = (((bits & 1) << 4) as u8 | info.get(13)? >> 4) + 1;
    (sample_rate > 0).then_some(AudioFormat {
        sample_rate,
        channels,
        bits_per_sample: Some(bps),
    })
}

/// Channels of an AC-3 / E-AC-3 audio coding mode (acmod) plus the LFE.
fn ac3_channels(acmod: u8, lfe: bool) -> u8 {
    let main = [2, 1, 2, 3, 3, 4, 4, 5][usize::from(acmod & 7)];
    main + u8::from(lfe)
}

const AC3_RATES: [u32; 3] = [48_000, 44_100, 32_000];

/// An AC-3 or E-AC-3 sync frame's header (the stream type is told by `bsid`).
pub fn ac3_frame(frame: &[u8]) -> Option<AudioFormat> {
    if frame.get(..2)? != [0x0b, 0x77] {
        return None;
    }
    let bsid = frame.get(5)? >> 3;
    if bsid > 10 {
        // E-AC-3: strmtyp, substreamid, frmsiz (16 bits), then fscod.
        let b = *frame.get(4)?;
        let fscod = b >> 6;
        let sample_rate = if fscod == 3 {
            AC3_RATES[usize::from((b >> 4) & 3).min(2)] / 2
        } else {
            AC3_RATES[usize::from(fscod)]
        };
        let acmod = (b >> 1) & 7;
        return Some(AudioFormat {
            sample_rate,
            channels: ac3_channels(acmod, b & 1 != 0),
            bits_per_sample: None,
        });
    }
    // AC-3: crc1 (16), fscod (2) + frmsizecod (6), bsid (5) + bsmod (3), then acmod.
    let fscod = frame.get(4)? >> 6;
    let sample_rate = *AC3_RATES.get(usize::from(fscod))?;
    let (acmod, lfe) = ac3_acmod_lfeon(frame)?;
    Some(AudioFormat {
        sample_rate,
        channels: ac3_channels(acmod, lfe),
        bits_per_sample: None,
    })
}

/// An AC-3 frame's acmod and lfeon: after bsid/bsmod come acmod (3 bits), then cmixlev,
/// surmixlev and dsurmod (2 bits each) when the mode has them, then lfeon.
fn ac3_acmod_lfeon(frame: &[u8]) -> Option<(u8, bool)> {
    let b = u16::from_be_bytes([*frame.get(6)?, *frame.get(7)?]);
    let acmod = (b >> 13) as u8;
    let mut skip = 0;
    if acmod & 1 != 0 && acmod != 1 {
        skip += 2;
    }
    if acmod & 4 != 0 {
        skip += 2;
    }
    if acmod == 2 {
        skip += 2;
    }
    Some((acmod, (b >> (12 - skip)) & 1 != 0))
}

/// An MPEG audio (MP3) frame header.
pub fn mp3_frame(frame: &[u8]) -> Option<AudioFormat> {
    let [0xff, b1, b2, b3, ..] = *frame else {
        return None;
    };
    if b1 & 0xe0 != 0xe0 {
        return None;
    }
    let base = match (b2 >> 2) & 3 {
        0 => 44_100,
        1 => 48_000,
        2 => 32_000,
        _ => return None,
    };
    let sample_rate = match (b1 >> 3) & 3 {
        3 => base,     // MPEG-1
        2 => base / 2, // MPEG-2
        0 => base / 4, // MPEG-2.5
        _ => return None,
    };
    Some(AudioFormat {
        sample_rate,
        channels: if b3 >> 6 == 3 { 1 } else { 2 },
        bits_per_sample: None,
    })
}

/// The `dac3` box payload (ETSI TS 102 366 F.4) from an AC-3 sync frame: fscod, bsid, bsmod,
/// acmod, lfeon and the bit rate code, 3 bytes. `None` if `frame` is not an AC-3 frame.
pub fn dac3(frame: &[u8]) -> Option<[u8; 3]> {
    if frame.get(..2)? != [0x0b, 0x77] {
        return None;
    }
    let fscod = u32::from(frame.get(4)? >> 6);
    let frmsizecod = u32::from(frame.get(4)? & 0x3f);
    let bsid = u32::from(frame.get(5)? >> 3);
    if bsid > 10 {
        return None;
    }
    let bsmod = u32::from(frame.get(5)? & 7);
    let (acmod, lfe) = ac3_acmod_lfeon(frame)?;
    let (acmod, lfeon) = (u32::from(acmod), u32::from(lfe));
    let bits =
        fscod << 22 | bsid << 17 | bsmod << 14 | acmod << 11 | lfeon << 10 | (frmsizecod >> 1) << 5;
    let [_, a, b, c] = bits.to_be_bytes();
    Some([a, b, c])
}

/// The `dec3` box payload (ETSI TS 102 366 F.6) from an E-AC-3 sync frame with one
/// independent substream: data rate (kbit/s), fscod, bsid, acmod, lfeon, 5 bytes. `None` if
/// `frame` is not an E-AC-3 frame.
pub fn dec3(frame: &[u8]) -> Option<[u8; 5]> {
    if frame.get(..2)? != [0x0b, 0x77] {
        return None;
    }
    let bsid = frame.get(5)? >> 3;
    if bsid <= 10 {
        return None;
    }
    let words = (u32::from(frame.get(2)? & 7) << 8 | u32::from(*frame.get(3)?)) + 1;
    let b = *frame.get(4)?;
    let fscod = b >> 6;
    let (sample_rate, blocks) = if fscod == 3 {
        (AC3_RATES[usize::from((b >> 4) & 3).min(2)] / 2, 6)
    } else {
        (
            AC3_RATES[usize::from(fscod)],
            [1, 2, 3, 6][usize::from((b >> 4) & 3)],
        )
    };
    let acmod = (b >> 1) & 7;
    let lfeon = b & 1;
    // bits per frame × frames per second
    let data_rate = (words * 16 * sample_rate / (256 * blocks) / 1000) as u16;
    let first = (data_rate.min(0x1fff) << 3).to_be_bytes(); // num_ind_sub = 0: one substream
    Some([
        first[0],
        first[1],
        fscod << 6 | (bsid & 0x1f) << 1,
        acmod << 1 | lfeon, // asvc 0, bsmod 0
        0,                  // num_dep_sub 0
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::hex;

    fn format(sample_rate: u32, channels: u8) -> Option<AudioFormat> {
        Some(AudioFormat {
            sample_rate,
            channels,
            bits_per_sample: None,
        })
    }

    /// Headers FFmpeg 9 sent for a 48 kHz tone (libopus, flac stereo, ac3, eac3, libmp3lame).
    #[test]
    fn ffmpeg_headers() {
        assert_eq!(
            opus_head(&hex("4f707573486561640101380180bb0000000000")),
            format(48_000, 1)
        );
        let flac = flac_stream_info(&hex("0400040000000000 10980bb802f000000000")).unwrap();
        assert_eq!(
            (flac.sample_rate, flac.channels, flac.bits_per_sample),
            (48_000, 2, Some(16))
        );
        let mut spec_form = b"fLaC\x80\x00\x00\x22".to_vec();
        spec_form.extend(hex("0400040000000000 10980bb802f000000000"));
        assert_eq!(flac_stream_info(&spec_form), Some(flac));
        assert_eq!(ac3_frame(&hex("0b77480d0c402f842bc1")), format(48_000, 1));
        assert_eq!(ac3_frame(&hex("0b7700bf3287c0002106")), format(48_000, 1));
        assert_eq!(mp3_frame(&hex("fffb54c4")), format(48_000, 1));
    }

    #[test]
    fn other_layouts() {
        // AC-3 3/2 with LFE (acmod 7: cmixlev, surmixlev, then lfeon).
        assert_eq!(ac3_frame(&hex("0b77 0000 00 40 e5 00")), format(48_000, 6));
        // dac3 of the 48 kHz mono frame: fscod 0, bsid 8, bsmod 0, acmod 1, lfeon 0,
        // frmsizecod 0x0d (bit_rate_code 6 = 80 kbit/s).
        assert_eq!(dac3(&hex("0b77480d0c402f842bc1")), Some([0x10, 0x08, 0xc0]));
        assert_eq!(dac3(&hex("0b7700bf3287c0002106")), None);
        // dec3 of the E-AC-3 frame: 192 words, 48 kHz, 6 blocks -> 96 kbit/s; bsid 16, acmod 1.
        assert_eq!(
            dec3(&hex("0b7700bf3287c0002106")),
            Some([0x03, 0x00, 0x20, 0x02, 0])
        );
        assert_eq!(dec3(&hex("0b77480d0c402f842bc1")), None);
        // AC-3 stereo (acmod 2: dsurmod, then lfeon) at 44.1 kHz.
        assert_eq!(ac3_frame(&hex("0b77 0000 40 40 40 00")), format(44_100, 2));
        // MP3 stereo MPEG-1 44.1 kHz.
        assert_eq!(mp3_frame(&hex("fffb9064")), format(44_100, 2));
    }

    #[test]
    fn garbage_gives_nothing() {
        for bad in ["", "00", "4f707573", "0b77", "fffb", "ff0b", "0b7700"] {
            let b = hex(bad);
            assert_eq!(opus_head(&b), None);
            assert_eq!(ac3_frame(&b), None);
            assert_eq!(mp3_frame(&b), None);
            assert_eq!(flac_stream_info(&b), None);
        }
    }
}
