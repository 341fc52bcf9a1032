//! Filler for video frames: a publisher that must carry more bits than its file (the
//! overload fault, 50 Mbit/s into a 3 Mbit/s stream) appends an H.264 filler-data NAL unit
//! (type 12, RFC 6184 / ITU-T H.264 7.3.2.7) to each AVC frame, so the stream stays a valid
//! one for every output that parses NAL units (HLS-TS rewrites them to Annex B).

use bytes::{BufMut, Bytes, BytesMut};

/// NAL unit header of filler data (forbidden bit 0, nal_ref_idc 0, type 12).
const FILLER_NAL: u8 = 0x0c;

/// `payload` with about `extra` more bytes: a 4-byte-length filler NAL unit (0xff bytes, then
/// the RBSP stop bit 0x80) after the frame's own NAL units when it is a legacy AVC NALU
/// frame, zero bytes otherwise. `extra` under 6 bytes, or 0, leaves the payload as it is.
pub fn pad(payload: &Bytes, extra: usize) -> Bytes {
    if extra < 6 {
        return payload.clone();
    }
    let mut out = BytesMut::with_capacity(payload.len() + extra);
    out.extend_from_slice(payload);
    let is_avc_nalu = payload.len() >= 5 && payload[0] & 0x0f == 7 && payload[1] == 1;
    if is_avc_nalu {
        let nal_len = extra - 4;
        out.put_u32(nal_len as u32);
        out.put_u8(FILLER_NAL);
        out.put_bytes(0xff, nal_len - 2);
        out.put_u8(0x80);
    } else {
        out.put_bytes(0, extra);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_avc_frames_with_a_filler_nal() {
        let frame = Bytes::from_static(&[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]);
        let padded = pad(&frame, 10);
        assert_eq!(padded.len(), 20);
        assert_eq!(&padded[..10], &frame[..]);
        assert_eq!(&padded[10..14], &[0, 0, 0, 6]);
        assert_eq!(padded[14], FILLER_NAL);
        assert_eq!(&padded[15..19], &[0xff; 4]);
        assert_eq!(padded[19], 0x80);
        assert_eq!(pad(&frame, 3), frame);
        let hevc = Bytes::from_static(&[0x1c, 1, 0, 0, 0]);
        assert_eq!(&pad(&hevc, 8)[5..], &[0; 8]);
    }
}
