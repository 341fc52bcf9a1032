//! The first decode time of an HLS segment, read straight from its bytes: `tfdt` of the
//! first `moof` of an fMP4 segment, the first PTS (90 kHz) of the first video PES of an
//! MPEG-TS segment. Enough to check that consecutive segments follow each other.

/// MPEG-TS packet size.
const TS_PACKET: usize = 188;

/// `baseMediaDecodeTime` of the first `tfdt` box (inside `moof/traf`) of an fMP4 segment.
pub fn fmp4_decode_time(segment: &[u8]) -> Option<u64> {
    let moof = child(segment, b"moof")?;
    let traf = child(moof, b"traf")?;
    let tfdt = child(traf, b"tfdt")?;
    let version = *tfdt.first()?;
    let time = tfdt.get(4..)?;
    if version == 1 {
        Some(u64::from_be_bytes(time.get(..8)?.try_into().ok()?))
    } else {
        Some(u64::from(u32::from_be_bytes(
            time.get(..4)?.try_into().ok()?,
        )))
    }
}

/// The body of the first top-level box of type `kind` in `data`.
fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().ok()?) as usize;
        let (header, size) = match size {
            1 => {
                let large = data.get(at + 8..at + 16)?;
                (16, u64::from_be_bytes(large.try_into().ok()?) as usize)
            }
            0 => (8, data.len() - at),
            size => (8, size),
        };
        if size < header || at + size > data.len() {
            return None;
        }
        if &data[at + 4..at + 8] == kind {
            return Some(&data[at + header..at + size]);
        }
        at += size;
    }
    None
}

/// The PTS of the first video PES (stream id 0xE0-0xEF) of an MPEG-TS segment, 90 kHz.
pub fn ts_first_video_pts(segment: &[u8]) -> Option<u64> {
    for packet in segment.chunks_exact(TS_PACKET) {
        if packet[0] != 0x47 || packet[1] & 0x40 == 0 {
            continue;
        }
        let adaptation = (packet[3] >> 4) & 0x3;
        let mut at = 4usize;
        if adaptation & 0x2 != 0 {
            at += 1 + usize::from(packet[4]);
        }
        if adaptation & 0x1 == 0 {
            continue;
        }
        let pes = packet.get(at..)?;
        if pes.len() < 14 || pes[..3] != [0, 0, 1] || pes[3] & 0xf0 != 0xe0 {
            continue;
        }
        if pes[7] & 0x80 == 0 {
            return None;
        }
        let p = &pes[9..14];
        let pts = (u64::from(p[0] >> 1) & 0x7) << 30
            | u64::from(p[1]) << 22
            | u64::from(p[2] >> 1) << 15
            | u64::from(p[3]) << 7
            | u64::from(p[4] >> 1);
        return Some(pts);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_tfdt_of_the_first_moof() {
        let mut tfdt = vec![1, 0, 0, 0];
        tfdt.extend_from_slice(&0x1_0000_0005u64.to_be_bytes());
        let mfhd = boxed(b"mfhd", &[0; 8]);
        let traf = boxed(
            b"traf",
            &[boxed(b"tfhd", &[0; 8]), boxed(b"tfdt", &tfdt)].concat(),
        );
        let moof = boxed(b"moof", &[mfhd, traf].concat());
        let segment = [boxed(b"styp", b"msdh"), moof, boxed(b"mdat", &[1, 2, 3])].concat();
        assert_eq!(fmp4_decode_time(&segment), Some(0x1_0000_0005));
        let v0 = boxed(
            b"moof",
            &boxed(b"traf", &boxed(b"tfdt", &[0, 0, 0, 0, 0, 0, 0x01, 0x2c])),
        );
        assert_eq!(fmp4_decode_time(&v0), Some(300));
        assert_eq!(fmp4_decode_time(&segment[..20]), None);
        assert_eq!(fmp4_decode_time(b"junk"), None);
    }

    #[test]
    fn reads_the_first_video_pts() {
        let pts: u64 = (1 << 32) + 12_345;
        let mut packet = vec![0x47, 0x41, 0x00, 0x10];
        packet.extend_from_slice(&[0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5]);
        packet.extend_from_slice(&[
            0x21 | ((pts >> 29) & 0x0e) as u8,
            (pts >> 22) as u8,
            (((pts >> 14) & 0xfe) | 1) as u8,
            (pts >> 7) as u8,
            (((pts << 1) & 0xfe) | 1) as u8,
        ]);
        packet.resize(TS_PACKET, 0xff);
        let mut pat = vec![0x47, 0x40, 0x00, 0x10];
        pat.resize(TS_PACKET, 0xff);
        let segment = [pat, packet].concat();
        assert_eq!(ts_first_video_pts(&segment), Some(pts));
        assert_eq!(ts_first_video_pts(&segment[..TS_PACKET]), None);
    }
}
