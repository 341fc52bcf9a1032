//! Box writing and the `moov` boxes that do not depend on the codec.

use bytes::{BufMut, BytesMut};

use super::{entries, Fmp4Error, TrackConfig, TrackType};

/// Writes boxes into one buffer; sizes are patched when a box ends.
pub(super) struct BoxWriter {
    pub(super) buf: BytesMut,
}

impl BoxWriter {
    pub(super) fn new() -> BoxWriter {
        BoxWriter {
            buf: BytesMut::with_capacity(1024),
        }
    }

    /// Starts a box; returns where it starts, for [`BoxWriter::end`].
    pub(super) fn begin(&mut self, kind: &[u8; 4]) -> usize {
        let at = self.buf.len();
        self.buf.put_u32(0);
        self.buf.put_slice(kind);
        at
    }

    /// Starts a full box (version and flags).
    pub(super) fn full(&mut self, kind: &[u8; 4], version: u8, flags: u32) -> usize {
        let at = self.begin(kind);
        self.buf
            .put_u32(u32::from(version) << 24 | (flags & 0x00ff_ffff));
        at
    }

    /// Ends the box started at `at`: writes its size.
    pub(super) fn end(&mut self, at: usize) {
        let size = (self.buf.len() - at) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
    }

    /// A box holding `payload` as it is.
    pub(super) fn leaf(&mut self, kind: &[u8; 4], payload: &[u8]) {
        let at = self.begin(kind);
        self.buf.put_slice(payload);
        self.end(at);
    }
}

/// The unity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

pub(super) fn mvhd(w: &mut BoxWriter, next_track_id: u32) {
    let at = w.full(b"mvhd", 0, 0);
    w.buf.put_u32(0); // creation_time
    w.buf.put_u32(0); // modification_time
    w.buf.put_u32(1000); // timescale
    w.buf.put_u32(0); // duration: unknown (fragmented)
    w.buf.put_u32(0x0001_0000); // rate 1.0
    w.buf.put_u16(0x0100); // volume 1.0
    w.buf.put_slice(&[0; 10]);
    for m in MATRIX {
        w.buf.put_u32(m);
    }
    w.buf.put_slice(&[0; 24]); // pre_defined
    w.buf.put_u32(next_track_id);
    w.end(at);
}

pub(super) fn trak(w: &mut BoxWriter, track: &TrackConfig) -> Result<(), Fmp4Error> {
    let trak = w.begin(b"trak");
    let tkhd = w.full(b"tkhd", 0, 0x3); // enabled, in movie
    w.buf.put_u32(0);
    w.buf.put_u32(0);
    w.buf.put_u32(track.track_id);
    w.buf.put_u32(0); // reserved
    w.buf.put_u32(0); // duration
    w.buf.put_slice(&[0; 8]);
    w.buf.put_u16(0); // layer
    w.buf.put_u16(0); // alternate_group
    w.buf.put_u16(if track.kind == TrackType::Audio {
        0x0100
    } else {
        0
    });
    w.buf.put_u16(0);
    for m in MATRIX {
        w.buf.put_u32(m);
    }
    w.buf.put_u32(u32::from(track.width) << 16);
    w.buf.put_u32(u32::from(track.height) << 16);
    w.end(tkhd);

    let mdia = w.begin(b"mdia");
    let mdhd = w.full(b"mdhd", 0, 0);
    w.buf.put_u32(0);
    w.buf.put_u32(0);
    w.buf.put_u32(track.timescale);
    w.buf.put_u32(0);
    w.buf.put_u16(0x55c4); // language "und"
    w.buf.put_u16(0);
    w.end(mdhd);
    let hdlr = w.full(b"hdlr", 0, 0);
    w.buf.put_u32(0);
    w.buf.put_slice(match track.kind {
        TrackType::Video => b"vide",
        TrackType::Audio => b"soun",
    });
    w.buf.put_slice(&[0; 12]);
    w.buf.put_slice(b"weir\0");
    w.end(hdlr);

    let minf = w.begin(b"minf");
    match track.kind {
        TrackType::Video => {
            let vmhd = w.full(b"vmhd", 0, 1);
            w.buf.put_slice(&[0; 8]);
            w.end(vmhd);
        }
        TrackType::Audio => {
            let smhd = w.full(b"smhd", 0, 0);
            w.buf.put_u32(0);
            w.end(smhd);
        }
    }
    let dinf = w.begin(b"dinf");
    let dref = w.full(b"dref", 0, 0);
    w.buf.put_u32(1);
    let url = w.full(b"url ", 0, 1); // self-contained
    w.end(url);
    w.end(dref);
    w.end(dinf);
    let stbl = w.begin(b"stbl");
    let stsd = w.full(b"stsd", 0, 0);
    w.buf.put_u32(1);
    entries::sample_entry(w, track)?;
    w.end(stsd);
    for kind in [b"stts", b"stsc", b"stco"] {
        let at = w.full(kind, 0, 0);
        w.buf.put_u32(0);
        w.end(at);
    }
    let stsz = w.full(b"stsz", 0, 0);
    w.buf.put_u32(0);
    w.buf.put_u32(0);
    w.end(stsz);
    w.end(stbl);
    w.end(minf);
    w.end(mdia);
    w.end(trak);
    Ok(())
}
