//! Send-time stamps carried in the last bytes of video payloads, so a player in the same
//! process can tell how long a frame spent between the publisher and itself.
//!
//! The last 12 bytes of a stamped payload are `b"wbch"` and the send time in nanoseconds since
//! the load tool's epoch (u64, big-endian). The server does not decode video, so the damage to
//! the last slice of each picture does not matter.

use bytes::{Bytes, BytesMut};

const MAGIC: &[u8; 4] = b"wbch";
/// Bytes a stamp occupies.
pub const LEN: usize = 12;

/// A copy of `payload` whose last bytes carry `sent_ns`; `None` when the payload is too short
/// to stamp without touching its tag header (`header_len` bytes).
pub fn write(payload: &Bytes, header_len: usize, sent_ns: u64) -> Option<Bytes> {
    if payload.len() < header_len + LEN {
        return None;
    }
    let mut copy = BytesMut::from(&payload[..]);
    let at = copy.len() - LEN;
    copy[at..at + 4].copy_from_slice(MAGIC);
    copy[at + 4..].copy_from_slice(&sent_ns.to_be_bytes());
    Some(copy.freeze())
}

/// The stamp of a payload, if it carries one.
pub fn read(payload: &[u8]) -> Option<u64> {
    let tail = payload.get(payload.len().checked_sub(LEN)?..)?;
    if &tail[..4] != MAGIC {
        return None;
    }
    let mut ns = [0u8; 8];
    ns.copy_from_slice(&tail[4..]);
    Some(u64::from_be_bytes(ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let payload = Bytes::from(vec![0x17; 40]);
        let stamped = write(&payload, 5, 123_456_789).unwrap();
        assert_eq!(stamped.len(), 40);
        assert_eq!(read(&stamped), Some(123_456_789));
        assert_eq!(read(&payload), None);
        assert!(write(&Bytes::from_static(&[0x17; 10]), 5, 1).is_none());
    }
}
