//! MPEG-2 Transport Stream (ISO/IEC 13818-1) for HLS, sans-IO: PAT and PMT with CRC-32,
//! PES packets with PTS/DTS, 188-byte packets with continuity counters, PCR on the video PID
//! and random-access flags on key frames.
//!
//! Video: H.264 and HEVC. FLV carries them as length-prefixed NAL units; TS wants Annex B, so
//! each access unit is rewritten with start codes, an access unit delimiter first, and the
//! parameter sets from the configuration record before every key frame (a segment can then
//! start at any key frame). Audio: AAC (an ADTS header per frame, from the
//! AudioSpecificConfig), MP3 (frames as they are), AC-3 and E-AC-3 (sync frames as they are,
//! private_stream_1, stream types 0x81 / 0x87 with an `AC-3` / `EAC3` registration descriptor).

use bytes::{BufMut, Bytes, BytesMut};

use crate::flv::Codec;

mod annexb;
mod crc;

/// Bytes in a TS packet.
pub const PACKET_LEN: usize = 188;
/// The PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// The PID of the video elementary stream.
pub const VIDEO_PID: u16 = 0x100;
/// The PID of the audio elementary stream.
pub const AUDIO_PID: u16 = 0x101;

/// One elementary stream of the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsStream {
    /// H.264, HEVC (video); AAC, MP3 (audio).
    pub codec: Codec,
    /// The configuration record: avcC, hvcC or AudioSpecificConfig (empty for MP3).
    pub config: Bytes,
}

/// Why a stream cannot be muxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// Not a codec HLS carries in MPEG-TS here.
    #[error("{0} cannot be carried in MPEG-TS by weir")]
    Unsupported(Codec),
    /// The configuration record does not parse.
    #[error("bad configuration record for {0}")]
    BadConfig(Codec),
}

/// Writes one program's transport stream; see the module docs.
#[derive(Debug)]
pub struct TsMuxer {
    video: Option<(TsStream, annexb::ParameterSets)>,
    audio: Option<(TsStream, Option<[u8; 2]>)>,
    /// Continuity counters: PAT, PMT, video, audio.
    counters: [u8; 4],
}

impl TsMuxer {
    /// A muxer for a program with these streams.
    pub fn new(video: Option<TsStream>, audio: Option<TsStream>) -> Result<TsMuxer, TsError> {
        let video = match video {
            None => None,
            Some(stream) => {
                let sets = match stream.codec {
                    Codec::Avc => annexb::avc_parameter_sets(&stream.config),
                    Codec::Hevc => annexb::hevc_parameter_sets(&stream.config),
                    other => return Err(TsError::Unsupported(other)),
                }
                .ok_or(TsError::BadConfig(stream.codec))?;
                Some((stream, sets))
            }
        };
        let audio = match audio {
            None => None,
            Some(stream) => {
                let adts = match stream.codec {
                    Codec::Aac => {
                        let asc = stream
                            .config
                            .get(..2)
                            .ok_or(TsError::BadConfig(Codec::Aac))?;
                        Some([asc[0], asc[1]])
                    }
                    Codec::Mp3 | Codec::Ac3 | Codec::Eac3 => None,
                    other => return Err(TsError::Unsupported(other)),
                };
                Some((stream, adts))
            }
        };
        Ok(TsMuxer {
            video,
            audio,
            counters: [0; 4],
        })
    }

    /// PAT and PMT (write them at the start of every segment).
    pub fn tables(&mut self, out: &mut BytesMut) {
        // PAT: program 1 on PMT_PID.
        let mut pat = BytesMut::new();
        pat.put_u16(1); // transport_stream_id
        pat.put_u8(0xc1); // version 0, current
        pat.put_u8(0);
        pat.put_u8(0);
        pat.put_u16(1); // program_number
        pat.put_u16(0xe000 | PMT_PID);
        self.section(0x0000, 0x00, &pat, out);
        let mut pmt = BytesMut::new();
        pmt.put_u16(1); // program_number
        pmt.put_u8(0xc1);
        pmt.put_u8(0);
        pmt.put_u8(0);
        let pcr_pid = if self.video.is_some() {
            VIDEO_PID
        } else {
            AUDIO_PID
        };
        pmt.put_u16(0xe000 | pcr_pid);
        pmt.put_u16(0xf000); // program_info_length 0
        if let Some((stream, _)) = &self.video {
            let stream_type = if stream.codec == Codec::Hevc {
                0x24
            } else {
                0x1b
            };
            pmt.put_u8(stream_type);
            pmt.put_u16(0xe000 | VIDEO_PID);
            pmt.put_u16(0xf000);
        }
        if let Some((stream, _)) = &self.audio {
            // AC-3 and E-AC-3 the ATSC way (A/52 Annex A): stream types 0x81 / 0x87 with a
            // registration descriptor, as Apple's HLS expects.
            let (stream_type, registration): (u8, Option<&[u8; 4]>) = match stream.codec {
                Codec::Aac => (0x0f, None),
                Codec::Ac3 => (0x81, Some(b"AC-3")),
                Codec::Eac3 => (0x87, Some(b"EAC3")),
                _ => (0x03, None),
            };
            pmt.put_u8(stream_type);
            pmt.put_u16(0xe000 | AUDIO_PID);
            match registration {
                Some(id) => {
                    pmt.put_u16(0xf000 | 6);
                    pmt.put_u8(0x05); // registration_descriptor
                    pmt.put_u8(4);
                    pmt.put_slice(id);
                }
                None => pmt.put_u16(0xf000),
            }
        }
        self.section(PMT_PID, 0x02, &pmt, out);
    }

    /// One video access unit: `data` is the FLV body (length-prefixed NAL units with 4-byte
    /// lengths), times in 90 kHz ticks.
    pub fn video(&mut self, data: &[u8], dts: u64, pts: u64, keyframe: bool, out: &mut BytesMut) {
        let Some((stream, sets)) = &self.video else {
            return;
        };
        let es = annexb::access_unit(stream.codec, sets, data, keyframe);
        let pes = pes_header(0xe0, Some(pts), Some(dts).filter(|d| *d != pts), 0);
        self.packetize(VIDEO_PID, 2, &pes, &es, Some(dts), keyframe, out);
    }

    /// One audio frame (raw AAC, or MP3, AC-3 or E-AC-3 frames as they are) at `pts` (90 kHz). An AAC frame too long
    /// for the ADTS length field (over 8184 bytes; real frames are under 2 KiB) is dropped.
    pub fn audio(&mut self, data: &[u8], pts: u64, out: &mut BytesMut) {
        let Some((_, adts)) = &self.audio else {
            return;
        };
        if adts.is_some() && data.len() + 7 > MAX_ADTS_FRAME {
            return;
        }
        let mut es = Vec::with_capacity(data.len() + 7);
        if let Some(asc) = adts {
            es.extend_from_slice(&adts_header(*asc, data.len()));
        }
        es.extend_from_slice(data);
        // AC-3 / E-AC-3 travel as private_stream_1.
        let stream_id = match &self.audio {
            Some((stream, _)) if matches!(stream.codec, Codec::Ac3 | Codec::Eac3) => 0xbd,
            _ => 0xc0,
        };
        let pes = pes_header(stream_id, Some(pts), None, es.len());
        let pcr = if self.video.is_none() {
            Some(pts)
        } else {
            None
        };
        self.packetize(AUDIO_PID, 3, &pes, &es, pcr, false, out);
    }

    /// A PSI section (table id, payload, CRC) in one packet.
    fn section(&mut self, pid: u16, table_id: u8, body: &[u8], out: &mut BytesMut) {
        let mut section = Vec::with_capacity(body.len() + 8);
        section.push(table_id);
        let length = body.len() + 4; // + CRC
        section.push(0xb0 | ((length >> 8) as u8 & 0x0f));
        section.push(length as u8);
        section.extend_from_slice(body);
        let crc = crc::crc32(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        let index = if pid == 0 { 0 } else { 1 };
        let cc = self.next_counter(index);
        out.put_u8(0x47);
        out.put_u16(0x4000 | pid); // payload_unit_start
        out.put_u8(0x10 | cc);
        out.put_u8(0); // pointer_field
        out.put_slice(&section);
        let used = 5 + section.len();
        out.put_bytes(0xff, PACKET_LEN - used);
    }

    fn next_counter(&mut self, index: usize) -> u8 {
        let cc = self.counters[index];
        self.counters[index] = (cc + 1) & 0x0f;
        cc
    }

    /// Splits a PES packet (header + elementary data) into TS packets.
    #[allow(clippy::too_many_arguments)]
    fn packetize(
        &mut self,
        pid: u16,
        counter: usize,
        pes: &[u8],
        es: &[u8],
        pcr: Option<u64>,
        random_access: bool,
        out: &mut BytesMut,
    ) {
        let total = pes.len() + es.len();
        let mut written = 0;
        let mut first = true;
        while written < total {
            let cc = self.next_counter(counter);
            let mut adaptation = Vec::new();
            if first && (pcr.is_some() || random_access) {
                let mut flags = 0u8;
                if random_access {
                    flags |= 0x40;
                }
                adaptation.push(0); // flags, set below
                if let Some(pcr) = pcr {
                    flags |= 0x10;
                    // PCR base (33 bits) in 90 kHz, 6 reserved bits, extension 0.
                    let base = pcr & 0x1_ffff_ffff;
                    adaptation.extend_from_slice(&[
                        (base >> 25) as u8,
                        (base >> 17) as u8,
                        (base >> 9) as u8,
                        (base >> 1) as u8,
                        ((base & 1) << 7) as u8 | 0x7e,
                        0,
                    ]);
                }
                adaptation[0] = flags;
            }
            let header = 4;
            let room = PACKET_LEN
                - header
                - if adaptation.is_empty() {
                    0
                } else {
                    1 + adaptation.len()
                };
            let left = total - written;
            // The last packet's slack goes into adaptation-field stuffing.
            let (take, stuffing) = if left >= room {
                (room, 0)
            } else if adaptation.is_empty() {
                // A one-byte adaptation field (length 0) or length + flags + stuffing.
                let slack = room - left;
                (left, slack)
            } else {
                (left, room - left)
            };
            out.put_u8(0x47);
            let start = if first { 0x4000 } else { 0 };
            out.put_u16(start | pid);
            let has_adaptation = !adaptation.is_empty() || stuffing > 0;
            out.put_u8(if has_adaptation { 0x30 } else { 0x10 } | cc);
            if has_adaptation {
                if adaptation.is_empty() {
                    // stuffing bytes count: length byte itself takes one.
                    let length = stuffing - 1;
                    out.put_u8(length as u8);
                    if length > 0 {
                        out.put_u8(0); // flags
                        out.put_bytes(0xff, length - 1);
                    }
                } else {
                    out.put_u8((adaptation.len() + stuffing) as u8);
                    out.put_slice(&adaptation);
                    out.put_bytes(0xff, stuffing);
                }
            }
            // Payload: the rest of the PES header, then elementary data.
            let mut remaining = take;
            if written < pes.len() {
                let n = remaining.min(pes.len() - written);
                out.put_slice(&pes[written..written + n]);
                written += n;
                remaining -= n;
            }
            if remaining > 0 {
                let at = written - pes.len();
                out.put_slice(&es[at..at + remaining]);
                written += remaining;
            }
            first = false;
        }
    }
}

/// A PES header with PTS (and DTS when it differs); `es_len` 0 means unbounded (video).
fn pes_header(stream_id: u8, pts: Option<u64>, dts: Option<u64>, es_len: usize) -> Vec<u8> {
    let mut header = vec![0, 0, 1, stream_id, 0, 0, 0x80, 0, 0];
    let mut flags = 0u8;
    let mut fields = Vec::new();
    if let Some(pts) = pts {
        flags |= 0x80;
        let marker = if dts.is_some() { 0x30 } else { 0x20 };
        fields.extend_from_slice(&timestamp(marker, pts));
        if let Some(dts) = dts {
            flags |= 0x40;
            fields.extend_from_slice(&timestamp(0x10, dts));
        }
    }
    header[7] = flags;
    header[8] = fields.len() as u8;
    header.extend_from_slice(&fields);
    let length = header.len() - 6 + es_len;
    if es_len > 0 && length <= 0xffff {
        header[4..6].copy_from_slice(&(length as u16).to_be_bytes());
    }
    header
}

/// A 33-bit PES timestamp in its 5-byte form.
fn timestamp(marker: u8, ts: u64) -> [u8; 5] {
    let ts = ts & 0x1_ffff_ffff;
    [
        marker | ((ts >> 29) as u8 & 0x0e) | 1,
        (ts >> 22) as u8,
        ((ts >> 14) as u8 & 0xfe) | 1,
        (ts >> 7) as u8,
        ((ts << 1) as u8 & 0xfe) | 1,
    ]
}

/// Largest ADTS frame (13-bit length, header included).
const MAX_ADTS_FRAME: usize = 0x1fff;

/// The 7-byte ADTS header for a raw AAC frame of `len` bytes, from the AudioSpecificConfig's
/// first two bytes (object type, frequency index, channel configuration).
fn adts_header(asc: [u8; 2], len: usize) -> [u8; 7] {
    let object_type = (asc[0] >> 3).max(1);
    let profile = (object_type - 1).min(3);
    let frequency = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
    let channels = (asc[1] >> 3) & 0x0f;
    let frame_len = (len + 7) as u32;
    [
        0xff,
        0xf1, // MPEG-4, layer 0, no CRC
        (profile << 6) | (frequency << 2) | (channels >> 2),
        ((channels & 3) << 6) | ((frame_len >> 11) as u8 & 0x03),
        (frame_len >> 3) as u8,
        (((frame_len & 7) << 5) as u8) | 0x1f,
        0xfc,
    ]
}

#[cfg(test)]
mod tests;
