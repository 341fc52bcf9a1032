//! The "complex" handshake's digests: where they sit in a C1/S1 and how they are computed.
//!
//! A digest C1/S1 splits its 1528 random bytes into two 764-byte blocks. The block holding the
//! digest starts with four bytes whose sum, modulo 728, places the 32-byte digest inside it.
//! The digest is HMAC-SHA256 over the 1536-byte packet without those 32 bytes, keyed with the
//! first 30 bytes of the Flash Player key (C1) or the first 36 of the Flash Media Server key (S1).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{DigestSchema, HANDSHAKE_SIZE};

/// Length of an HMAC-SHA256 digest.
pub(super) const DIGEST_SIZE: usize = 32;

/// "Genuine Adobe Flash Player 001" followed by the shared 32-byte constant.
pub(super) const FP_KEY: [u8; 62] = *b"Genuine Adobe Flash Player 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";

/// "Genuine Adobe Flash Media Server 001" followed by the shared 32-byte constant.
pub(super) const FMS_KEY: [u8; 68] = *b"Genuine Adobe Flash Media Server 001\
\xF0\xEE\xC2\x4A\x80\x68\xBE\xE8\x2E\x00\xD0\xD1\x02\x9E\x7E\x57\
\x6E\xEC\x5D\x2D\x29\x80\x6F\xAB\x93\xB8\xE6\x36\xCF\xEB\x31\xAE";

/// The part of the Flash Player key that signs a C1.
pub(super) const FP_PARTIAL_KEY_LEN: usize = 30;

/// The part of the Flash Media Server key that signs an S1.
pub(super) const FMS_PARTIAL_KEY_LEN: usize = 36;

/// How many positions the digest can take inside its block.
const DIGEST_POSITIONS: usize = 728;

impl DigestSchema {
    /// Offset of the 764-byte block that holds the digest.
    fn digest_block(self) -> usize {
        match self {
            Self::DigestFirst => 8,
            Self::KeyFirst => 772,
        }
    }

    /// Offset of the digest within a packet, read from the four bytes that open its block.
    pub(super) fn digest_offset(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        let base = self.digest_block();
        let sum: usize = packet[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        base + 4 + sum % DIGEST_POSITIONS
    }
}

/// HMAC-SHA256 of `parts` concatenated, under `key`.
pub(super) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_SIZE] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("hmac accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest a packet should carry at `offset`: HMAC over every byte but those 32.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_SIZE] {
    let (before, rest) = packet.split_at(offset);
    let after = rest.get(DIGEST_SIZE..).unwrap_or_default();
    hmac_sha256(key, &[before, after])
}

/// Writes the digest for `schema` into `packet` and returns it.
pub(super) fn imprint_digest(
    packet: &mut [u8; HANDSHAKE_SIZE],
    schema: DigestSchema,
    key: &[u8],
) -> [u8; DIGEST_SIZE] {
    let offset = schema.digest_offset(packet);
    let digest = packet_digest(packet, offset, key);
    packet[offset..offset + DIGEST_SIZE].copy_from_slice(&digest);
    digest
}

/// Looks for a valid digest under `key`, trying schema 1 (block at 772) and then schema 0 (block
/// at 8), like nginx-rtmp and FFmpeg. Returns the schema and the digest found.
pub(super) fn find_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    key: &[u8],
) -> Option<(DigestSchema, [u8; DIGEST_SIZE])> {
    [DigestSchema::KeyFirst, DigestSchema::DigestFirst]
        .into_iter()
        .find_map(|schema| {
            let offset = schema.digest_offset(packet);
            let found = packet.get(offset..offset + DIGEST_SIZE)?;
            let expected = packet_digest(packet, offset, key);
            (found == expected).then_some((schema, expected))
        })
}

/// The signature closing a digest-style S2 or C2: HMAC over its first 1504 bytes, keyed with
/// HMAC(`full_key`, the peer's C1/S1 digest).
pub(super) fn signature(
    full_key: &[u8],
    peer_digest: &[u8; DIGEST_SIZE],
    body: &[u8],
) -> [u8; DIGEST_SIZE] {
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[body])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fms_key, fp_key, hex, hmac, offset, pattern, valid_digest};
    use super::*;

    fn ffmpeg_c1() -> [u8; HANDSHAKE_SIZE] {
        let mut c1 = [0; HANDSHAKE_SIZE];
        c1[4..8].copy_from_slice(&hex("09007c02"));
        c1[8..].copy_from_slice(&pattern(37, 11));
        c1
    }

    #[test]
    fn keys_match_the_published_ones() {
        assert_eq!(FP_KEY[..], fp_key()[..]);
        assert_eq!(FMS_KEY[..], fms_key()[..]);
        assert_eq!(
            &FP_KEY[..FP_PARTIAL_KEY_LEN],
            b"Genuine Adobe Flash Player 001"
        );
        assert_eq!(
            &FMS_KEY[..FMS_PARTIAL_KEY_LEN],
            b"Genuine Adobe Flash Media Server 001"
        );
    }

    #[test]
    fn digest_offsets_follow_both_schemas() {
        let mut packet = [0; HANDSHAKE_SIZE];
        packet[8..12].copy_from_slice(&hex("ff ff ff ff"));
        packet[772..776].copy_from_slice(&hex("ff ff ff 01"));
        // 4 * 255 = 1020 = 728 + 292; 3 * 255 + 1 = 766 = 728 + 38.
        assert_eq!(
            DigestSchema::DigestFirst.digest_offset(&packet),
            8 + 4 + 292
        );
        assert_eq!(DigestSchema::KeyFirst.digest_offset(&packet), 772 + 4 + 38);
        assert_eq!(
            DigestSchema::KeyFirst.digest_offset(&[0xff; HANDSHAKE_SIZE]),
            1068
        );
        // The last position (sum % 728 == 727) ends the digest one byte before the packet's end.
        packet[772..776].copy_from_slice(&hex("ff ff d9 00"));
        assert_eq!(DigestSchema::KeyFirst.digest_offset(&packet), 1503);
        let digest = imprint_digest(&mut packet, DigestSchema::KeyFirst, &FP_KEY[..30]);
        assert_eq!(packet[1503..1535], digest);
        assert_eq!(packet[1535], 0);
    }

    #[test]
    fn imprinted_c1_digest_matches_golden() {
        let mut c1 = ffmpeg_c1();
        let digest = imprint_digest(&mut c1, DigestSchema::DigestFirst, &FP_KEY[..30]);
        // Computed with Python's hmac module.
        let golden = hex("0c773f6df59438c8067ab4f94c05e13c478d450fe06f8189d4ab51c853419aee");
        assert_eq!(offset(&c1, 8), 278);
        assert_eq!(digest[..], golden[..]);
        assert_eq!(c1[278..310], golden[..]);
        assert_eq!(valid_digest(&c1, 8, &fp_key()[..30]), Some(digest));
        assert_eq!(
            find_digest(&c1, &FP_KEY[..30]),
            Some((DigestSchema::DigestFirst, digest))
        );
    }

    #[test]
    fn find_digest_prefers_schema_one_and_rejects_garbage() {
        let mut c1 = ffmpeg_c1();
        assert_eq!(find_digest(&c1, &FP_KEY[..30]), None);
        let digest = imprint_digest(&mut c1, DigestSchema::KeyFirst, &FP_KEY[..30]);
        assert_eq!(
            find_digest(&c1, &FP_KEY[..30]),
            Some((DigestSchema::KeyFirst, digest))
        );
        assert_eq!(find_digest(&c1, &FMS_KEY[..36]), None);
    }

    #[test]
    fn signature_is_hmac_keyed_by_hmac_of_peer_digest() {
        let peer = [0x5a; DIGEST_SIZE];
        let body = [0xa5; 1504];
        let expected = hmac(&hmac(&fms_key(), &peer), &body);
        assert_eq!(signature(&FMS_KEY, &peer, &body), expected);
    }
}
