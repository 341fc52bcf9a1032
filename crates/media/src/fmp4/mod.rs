//! Fragmented MP4 (ISO/IEC 14496-12, CMAF): the init segment (`ftyp` + `moov` with one track
//! per rendition) and media segments (`moof` + `mdat`), sans-IO, for HLS and DASH.
//!
//! [`init_segment`] writes a `moov` whose sample entries carry the codec configuration the
//! publisher sent: `avc1`/`avcC`, `hvc1`/`hvcC`, `av01`/`av1C`, `vp09`/`vpcC`, `mp4a`/`esds`,
//! `Opus`/`dOps` (from the OpusHead), `fLaC`/`dfLa`, `ac-3`/`dac3` and `ec-3`/`dec3` (from a
//! sync frame's header: these codecs have no sequence start). [`media_segment`] writes one `moof` with a
//! `traf` per track run (`tfdt` version 1, `trun` version 1 with signed composition offsets,
//! default-base-is-moof) and the `mdat`; it returns chunks so sample data is shared with the
//! frames it came from (no copy). Timing (decode times, durations) is the caller's.
//!
//! E-AC-3 with dependent substreams (7.1) is described as its independent substream only.
//! Samples must not be empty: FFmpeg refuses a file with a zero-size sample.

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::Codec;

mod boxes;
mod entries;

use boxes::BoxWriter;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackType {
    /// A video track (`vide` handler).
    Video,
    /// An audio track (`soun` handler).
    Audio,
}

/// What the init segment says about one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// Track id in the file, from 1.
    pub track_id: u32,
    /// Audio or video.
    pub kind: TrackType,
    /// The codec.
    pub codec: Codec,
    /// Ticks per second of the track's times (90 000 for video, the sample rate for audio).
    pub timescale: u32,
    /// Picture size (video).
    pub width: u16,
    /// Picture size (video).
    pub height: u16,
    /// Sample rate in Hz (audio).
    pub sample_rate: u32,
    /// Channels (audio).
    pub channels: u16,
    /// The codec configuration as E-RTMP carries it in a sequence start: avcC, hvcC, av1C or
    /// vpcC record; AudioSpecificConfig; OpusHead; FLAC STREAMINFO; for AC-3 and E-AC-3 (no
    /// sequence start) a sync frame.
    pub config: Bytes,
}

impl TrackConfig {
    /// The track for a sequence header frame (its body is the configuration record) and
    /// what the track table says about it; `None` for data frames and codec-less frames.
    pub fn from_sequence_header(
        track_id: u32,
        frame: &crate::frame::Frame,
        details: &crate::track_info::CodecDetails,
    ) -> Option<TrackConfig> {
        let codec = frame.info.codec?;
        let (kind, timescale) = match frame.kind {
            crate::frame::MediaKind::Video => (TrackType::Video, 90_000),
            crate::frame::MediaKind::Audio => {
                (TrackType::Audio, details.sample_rate.unwrap_or(48_000))
            }
            crate::frame::MediaKind::Data => return None,
        };
        let size = |v: Option<u32>| v.and_then(|v| u16::try_from(v).ok()).unwrap_or(0);
        Some(TrackConfig {
            track_id,
            kind,
            codec,
            timescale,
            width: size(details.width),
            height: size(details.height),
            sample_rate: details.sample_rate.unwrap_or(0),
            channels: details.channels.map_or(2, u16::from),
            config: frame.body(),
        })
    }
}

/// Why an init segment cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fmp4Error {
    /// No sample entry for this codec (yet).
    #[error("no fMP4 sample entry for {0}")]
    Unsupported(Codec),
    /// The configuration record is not what the codec needs.
    #[error("bad codec configuration for {0}")]
    BadConfig(Codec),
}

/// One sample of a track run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The sample's bytes (length-prefixed NAL units, OBUs, an audio frame), shared.
    pub data: Bytes,
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Presentation minus decode time, in the track's timescale.
    pub composition_offset: i32,
    /// A sync sample (key frame; every audio sample).
    pub sync: bool,
}

/// A run of samples of one track in a media segment.
#[derive(Debug, Clone, Copy)]
pub struct TrackRun<'a> {
    /// The track id of the init segment.
    pub track_id: u32,
    /// Decode time of the first sample, in the track's timescale.
    pub base_decode_time: u64,
    /// The samples, in decode order.
    pub samples: &'a [Sample],
}

/// `ftyp` + `moov` for `tracks`.
pub fn init_segment(tracks: &[TrackConfig]) -> Result<Bytes, Fmp4Error> {
    let mut w = BoxWriter::new();
    let ftyp = w.begin(b"ftyp");
    w.buf.put_slice(b"iso6");
    w.buf.put_u32(0);
    for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
        w.buf.put_slice(brand);
    }
    w.end(ftyp);
    let moov = w.begin(b"moov");
    boxes::mvhd(
        &mut w,
        tracks.iter().map(|t| t.track_id).max().unwrap_or(0) + 1,
    );
    for track in tracks {
        boxes::trak(&mut w, track)?;
    }
    let mvex = w.begin(b"mvex");
    for track in tracks {
        let trex = w.full(b"trex", 0, 0);
        w.buf.put_u32(track.track_id);
        w.buf.put_u32(1); // default_sample_description_index
        w.buf.put_u32(0);
        w.buf.put_u32(0);
        w.buf.put_u32(0);
        w.end(trex);
    }
    w.end(mvex);
    w.end(moov);
    Ok(w.buf.freeze())
}

/// Sample flags: a sync sample depends on nothing; others depend on others and are not sync.
const SYNC_FLAGS: u32 = 0x0200_0000;
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// `moof` + `mdat` for `runs`, as chunks: the `moof` and the `mdat` header, then every
/// sample's data in order (shared with the caller's buffers).
pub fn media_segment(sequence: u32, runs: &[TrackRun<'_>]) -> Vec<Bytes> {
    let mut w = BoxWriter::new();
    let moof = w.begin(b"moof");
    let mfhd = w.full(b"mfhd", 0, 0);
    w.buf.put_u32(sequence);
    w.end(mfhd);
    // Where each trun's data_offset goes, and where its data starts in the mdat.
    let mut offsets = Vec::with_capacity(runs.len());
    let mut data_before = 0usize;
    for run in runs {
        let traf = w.begin(b"traf");
        // default-base-is-moof
        let tfhd = w.full(b"tfhd", 0, 0x02_0000);
        w.buf.put_u32(run.track_id);
        w.end(tfhd);
        let tfdt = w.full(b"tfdt", 1, 0);
        w.buf.put_u64(run.base_decode_time);
        w.end(tfdt);
        // data-offset, sample duration, size, flags and composition offset present.
        let trun = w.full(b"trun", 1, 0x0001 | 0x0100 | 0x0200 | 0x0400 | 0x0800);
        w.buf.put_u32(run.samples.len() as u32);
        offsets.push((w.buf.len(), data_before));
        w.buf.put_i32(0);
        for sample in run.samples {
            w.buf.put_u32(sample.duration);
            w.buf.put_u32(sample.data.len() as u32);
            w.buf.put_u32(if sample.sync {
                SYNC_FLAGS
            } else {
                NON_SYNC_FLAGS
            });
            w.buf.put_i32(sample.composition_offset);
            data_before += sample.data.len();
        }
        w.end(trun);
        w.end(traf);
    }
    w.end(moof);
    let moof_len = w.buf.len();
    for (at, before) in offsets {
        let offset = (moof_len + 8 + before) as i32;
        w.buf[at..at + 4].copy_from_slice(&offset.to_be_bytes());
    }
    let mut chunks = Vec::with_capacity(2 + runs.iter().map(|r| r.samples.len()).sum::<usize>());
    chunks.push(w.buf.freeze());
    let mut mdat = BytesMut::with_capacity(8);
    mdat.put_u32((8 + data_before) as u32);
    mdat.put_slice(b"mdat");
    chunks.push(mdat.freeze());
    for run in runs {
        chunks.extend(run.samples.iter().map(|s| s.data.clone()));
    }
    chunks
}

#[cfg(test)]
mod tests;
