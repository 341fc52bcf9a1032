//! AAC: the AudioSpecificConfig (ISO 14496-3 1.6.2.1), the AAC sequence header body.

use std::fmt;

use thiserror::Error;

/// A failure to parse an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AacError {
    /// The config ends early.
    #[error("truncated audio specific config")]
    Truncated,
    /// A reserved sampling frequency index (13 or 14).
    #[error("reserved sampling frequency index {0}")]
    ReservedSampleRate(u8),
}

/// Sample rates by sampling frequency index 0..=12.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Audio object type: SBR (HE-AAC).
const OBJECT_TYPE_SBR: u8 = 5;
/// Audio object type: PS (HE-AACv2).
const OBJECT_TYPE_PS: u8 = 29;

/// An AAC AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    /// The signalled audio object type (2 LC, 5 HE-AAC, 29 HE-AACv2, ...); escape 31 resolved.
    pub object_type: u8,
    /// The core codec's object type: for explicit SBR/PS signalling the underlying type (usually
    /// 2), otherwise equal to `object_type`.
    pub core_object_type: u8,
    /// The sampling frequency index (15 = explicit rate).
    pub sampling_frequency_index: u8,
    /// The core sample rate in Hz.
    pub sample_rate: u32,
    /// The SBR output sample rate in Hz, for explicit SBR/PS signalling.
    pub extension_sample_rate: Option<u32>,
    /// The channelConfiguration field (0 = defined in a program config element).
    pub channel_configuration: u8,
    /// The number of channels (0 if the channel configuration does not say).
    pub channels: u8,
}

impl AudioSpecificConfig {
    /// Parses an AudioSpecificConfig; trailing fields (GASpecificConfig, ...) are ignored.
    pub fn parse(config: &[u8]) -> Result<AudioSpecificConfig, AacError> {
        let mut r = Bits {
            data: config,
            bit: 0,
        };
        let object_type = r.object_type()?;
        let (sampling_frequency_index, sample_rate) = r.sample_rate()?;
        let channel_configuration = r.bits(4)? as u8;
        let mut core_object_type = object_type;
        let mut extension_sample_rate = None;
        if object_type == OBJECT_TYPE_SBR || object_type == OBJECT_TYPE_PS {
            extension_sample_rate = Some(r.sample_rate()?.1);
            core_object_type = r.object_type()?;
        }
        let channels = match channel_configuration {
            1..=6 => channel_configuration,
            7 | 12 | 14 => 8,
            11 => 7,
            13 => 24,
            _ => 0,
        };
        Ok(AudioSpecificConfig {
            object_type,
            core_object_type,
            sampling_frequency_index,
            sample_rate,
            extension_sample_rate,
            channel_configuration,
            channels,
        })
    }

    /// The RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub fn codec_string(&self) -> String {
        format!("mp4a.40.{}", self.object_type)
    }

    /// The sample rate a decoder outputs: the SBR rate if signalled, else the core rate.
    pub fn output_sample_rate(&self) -> u32 {
        self.extension_sample_rate.unwrap_or(self.sample_rate)
    }

    /// The object type's name, e.g. `AAC-LC`.
    pub fn object_type_name(&self) -> &'static str {
        match self.object_type {
            1 => "AAC Main",
            2 => "AAC-LC",
            3 => "AAC SSR",
            4 => "AAC LTP",
            OBJECT_TYPE_SBR => "HE-AAC",
            OBJECT_TYPE_PS => "HE-AACv2",
            23 => "AAC-LD",
            39 => "AAC-ELD",
            42 => "xHE-AAC",
            _ => "AAC",
        }
    }
}

impl fmt::Display for AudioSpecificConfig {
    /// E.g. `AAC-LC 44100 Hz stereo`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} Hz ",
            self.object_type_name(),
            self.output_sample_rate()
        )?;
        match self.channels {
            0 => f.write_str("unknown channels"),
            1 => f.write_str("mono"),
            2 => f.write_str("stereo"),
            6 => f.write_str("5.1"),
            8 => f.write_str("7.1"),
            n => write!(f, "{n} channels"),
        }
    }
}

/// An MSB-first bit reader.
struct Bits<'a> {
    data: &'a [u8],
    bit: usize,
}

impl Bits<'_> {
    fn bits(&mut self, n: u32) -> Result<u32, AacError> {
        let mut value = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.bit / 8).ok_or(AacError::Truncated)?;
            value = (value << 1) | u32::from((byte >> (7 - self.bit % 8)) & 1);
            self.bit += 1;
        }
        Ok(value)
    }

    /// audioObjectType with the escape value 31 (32 + 6 more bits).
    fn object_type(&mut self) -> Result<u8, AacError> {
        let object_type = self.bits(5)? as u8;
        if object_type == 31 {
            Ok(32 + self.bits(6)? as u8)
        } else {
            Ok(object_type)
        }
    }

    /// samplingFrequencyIndex with the explicit 24-bit rate for index 15.
    fn sample_rate(&mut self) -> Result<(u8, u32), AacError> {
        let index = self.bits(4)? as u8;
        match SAMPLE_RATES.get(usize::from(index)) {
            Some(rate) => Ok((index, *rate)),
            None if index == 15 => Ok((index, self.bits(24)?)),
            None => Err(AacError::ReservedSampleRate(index)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lc_44100_stereo() {
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (2, 44100, 2)
        );
        assert_eq!(asc.sampling_frequency_index, 4);
        assert_eq!(asc.codec_string(), "mp4a.40.2");
        assert_eq!(asc.to_string(), "AAC-LC 44100 Hz stereo");
    }

    #[test]
    fn lc_48000_mono_and_5_1() {
        assert_eq!(
            AudioSpecificConfig::parse(&[0x11, 0x88])
                .unwrap()
                .to_string(),
            "AAC-LC 48000 Hz mono"
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x11, 0xb0])
                .unwrap()
                .to_string(),
            "AAC-LC 48000 Hz 5.1"
        );
    }

    #[test]
    fn explicit_sample_rate_index_15() {
        // LC, index 15, rate 0x00bb80 (48000), channel config 2.
        // 00010 1111 000000001011101110000000 0010 000
        let asc = AudioSpecificConfig::parse(&[0x17, 0x80, 0x5d, 0xc0, 0x10]).unwrap();
        assert_eq!(
            (asc.sampling_frequency_index, asc.sample_rate, asc.channels),
            (15, 48000, 2)
        );
    }

    #[test]
    fn escape_object_type_31() {
        // 11111 000010 (32 + 2 = 34), index 3 (48000), channels 1.
        // 11111000 01000110 001xxxxx
        let asc = AudioSpecificConfig::parse(&[0xf8, 0x46, 0x20]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channels),
            (34, 48000, 1)
        );
    }

    #[test]
    fn explicit_he_aac() {
        // SBR (5), index 6 (24000), stereo, extension index 3 (48000), core LC (2).
        // 00101 0110 0010 0011 00010 000
        let asc = AudioSpecificConfig::parse(&[0x2b, 0x11, 0x88, 0x00]).unwrap();
        assert_eq!((asc.object_type, asc.core_object_type), (5, 2));
        assert_eq!(
            (asc.sample_rate, asc.extension_sample_rate),
            (24000, Some(48000))
        );
        assert_eq!(asc.codec_string(), "mp4a.40.5");
        assert_eq!(asc.to_string(), "HE-AAC 48000 Hz stereo");
    }

    #[test]
    fn reserved_and_truncated() {
        assert_eq!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(AacError::ReservedSampleRate(13))
        );
        assert_eq!(AudioSpecificConfig::parse(&[]), Err(AacError::Truncated));
        assert_eq!(
            AudioSpecificConfig::parse(&[0x12]),
            Err(AacError::Truncated)
        );
        assert_eq!(
            AudioSpecificConfig::parse(&[0x17, 0x80]),
            Err(AacError::Truncated)
        );
    }
}
