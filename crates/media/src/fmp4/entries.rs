//! Sample entries: the codec-specific part of the init segment.

use bytes::BufMut;

use super::boxes::BoxWriter;
use super::{Fmp4Error, TrackConfig};
use crate::flv::Codec;

pub(super) fn sample_entry(w: &mut BoxWriter, track: &TrackConfig) -> Result<(), Fmp4Error> {
    let bad = || Fmp4Error::BadConfig(track.codec);
    let config = &track.config[..];
    match track.codec {
        Codec::Avc => visual(w, track, b"avc1", |w| w.leaf(b"avcC", config)),
        Codec::Hevc => visual(w, track, b"hvc1", |w| w.leaf(b"hvcC", config)),
        Codec::Av1 => visual(w, track, b"av01", |w| w.leaf(b"av1C", config)),
        // The E-RTMP vpcC body starts with the box's version and flags.
        Codec::Vp9 => visual(w, track, b"vp09", |w| w.leaf(b"vpcC", config)),
        Codec::Aac => {
            if config.len() < 2 {
                return Err(bad());
            }
            audio(w, track, b"mp4a", |w| esds(w, track.track_id, config));
        }
        Codec::Opus => {
            let dops = dops(config).ok_or_else(bad)?;
            audio(w, track, b"Opus", |w| w.leaf(b"dOps", &dops));
        }
        Codec::Flac => {
            let info = match config.strip_prefix(b"fLaC") {
                Some(rest) => rest.get(4..).ok_or_else(bad)?,
                None => config,
            };
            let info = info.get(..34).ok_or_else(bad)?;
            audio(w, track, b"fLaC", |w| {
                let at = w.full(b"dfLa", 0, 0);
                // The last metadata block (0x80), STREAMINFO (type 0), 34 bytes.
                w.buf.put_u32(0x8000_0000 | 34);
                w.buf.put_slice(info);
                w.end(at);
            });
        }
        // AC-3 and E-AC-3 have no sequence start: `config` is a sync frame, whose header
        // gives `dac3` / `dec3`.
        Codec::Ac3 => {
            let dac3 = crate::audio_config::dac3(config).ok_or_else(bad)?;
            audio(w, track, b"ac-3", |w| w.leaf(b"dac3", &dac3));
        }
        Codec::Eac3 => {
            let dec3 = crate::audio_config::dec3(config).ok_or_else(bad)?;
            audio(w, track, b"ec-3", |w| w.leaf(b"dec3", &dec3));
        }
        other => return Err(Fmp4Error::Unsupported(other)),
    }
    Ok(())
}

fn visual(
    w: &mut BoxWriter,
    track: &TrackConfig,
    kind: &[u8; 4],
    config: impl FnOnce(&mut BoxWriter),
) {
    let at = w.begin(kind);
    w.buf.put_slice(&[0; 6]);
    w.buf.put_u16(1); // data_reference_index
    w.buf.put_slice(&[0; 16]); // pre_defined, reserved
    w.buf.put_u16(track.width);
    w.buf.put_u16(track.height);
    w.buf.put_u32(0x0048_0000); // 72 dpi
    w.buf.put_u32(0x0048_0000);
    w.buf.put_u32(0);
    w.buf.put_u16(1); // frame_count
    w.buf.put_slice(&[0; 32]); // compressorname
    w.buf.put_u16(0x0018); // depth
    w.buf.put_i16(-1);
    config(w);
    w.end(at);
}

fn audio(
    w: &mut BoxWriter,
    track: &TrackConfig,
    kind: &[u8; 4],
    config: impl FnOnce(&mut BoxWriter),
) {
    let at = w.begin(kind);
    w.buf.put_slice(&[0; 6]);
    w.buf.put_u16(1); // data_reference_index
    w.buf.put_slice(&[0; 8]);
    w.buf.put_u16(track.channels);
    w.buf.put_u16(16); // samplesize
    w.buf.put_u32(0);
    w.buf.put_u32(track.sample_rate.min(0xffff) << 16);
    config(w);
    w.end(at);
}

/// `esds` with an MPEG-4 audio DecoderConfigDescriptor holding the AudioSpecificConfig.
fn esds(w: &mut BoxWriter, track_id: u32, asc: &[u8]) {
    let at = w.full(b"esds", 0, 0);
    let asc_len = asc.len().min(100);
    let decoder_specific = 2 + asc_len;
    let decoder_config = 2 + 13 + decoder_specific;
    let es = 2 + 3 + decoder_config + 3;
    w.buf.put_u8(0x03); // ES_Descriptor
    w.buf.put_u8((es - 2) as u8);
    w.buf.put_u16(track_id as u16);
    w.buf.put_u8(0);
    w.buf.put_u8(0x04); // DecoderConfigDescriptor
    w.buf.put_u8((decoder_config - 2) as u8);
    w.buf.put_u8(0x40); // MPEG-4 audio
    w.buf.put_u8(0x15); // audio stream
    w.buf.put_slice(&[0; 3]); // bufferSizeDB
    w.buf.put_u32(0); // maxBitrate
    w.buf.put_u32(0); // avgBitrate
    w.buf.put_u8(0x05); // DecoderSpecificInfo
    w.buf.put_u8(asc_len as u8);
    w.buf.put_slice(&asc[..asc_len]);
    w.buf.put_u8(0x06); // SLConfigDescriptor
    w.buf.put_u8(1);
    w.buf.put_u8(2);
    w.end(at);
}

/// The `dOps` payload from an OpusHead (RFC 7845 little-endian fields to big-endian).
fn dops(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"OpusHead")?;
    let [_version, channels, p0, p1, r0, r1, r2, r3, g0, g1, family, ref table @ ..] = *rest else {
        return None;
    };
    let mut out = vec![0, channels];
    out.extend_from_slice(&u16::from_le_bytes([p0, p1]).to_be_bytes());
    out.extend_from_slice(&u32::from_le_bytes([r0, r1, r2, r3]).to_be_bytes());
    out.extend_from_slice(&i16::from_le_bytes([g0, g1]).to_be_bytes());
    out.push(family);
    if family != 0 {
        // StreamCount, CoupledCount, ChannelMapping[channels].
        out.extend_from_slice(table.get(..2 + usize::from(channels))?);
    }
    Some(out)
}
