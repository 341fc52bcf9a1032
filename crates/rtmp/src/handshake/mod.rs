//! The RTMP handshake (spec section 5.2): C0/C1/C2 from the client, S0/S1/S2 from the server.
//!
//! Two styles are in use. The *simple* one is the spec's: C1/S1 carry a time, four zero bytes and
//! 1528 random bytes, and C2/S2 echo the peer's packet. The *complex* ("digest") one, introduced
//! by Flash Player 9, hides an HMAC-SHA256 digest in C1/S1 and signs C2/S2 with a key derived from
//! the peer's digest; FFmpeg sends it and, when playing, checks the server's answer.
//!
//! [`ServerHandshake`] answers both: it detects a digest C1 the way nginx-rtmp does (digest block
//! at 772, then at 8) and falls back to a simple answer when no digest is found, so no client is
//! ever turned away for its C1. [`ClientHandshake`] is the other side, for relays and tests.
//!
//! Both are sans-IO: bytes go in through `handle_input`, bytes to send come out of
//! `poll_transmit`. Randomness and the epoch are supplied by the caller.
//! RTMPE (C0 = 6, the encrypted variant) is not supported and is rejected like any version but 3.

mod client;
mod digest;
mod server;

use bytes::{Buf, BytesMut};

pub use client::ClientHandshake;
pub use server::ServerHandshake;

/// The RTMP version byte sent in C0/S0 and the only one accepted.
pub const RTMP_VERSION: u8 = 0x03;

/// Size of C1/S1 and C2/S2 in bytes.
pub const HANDSHAKE_SIZE: usize = 1536;

/// Size of the random part of C1/S1 (everything after the time and version fields).
pub const HANDSHAKE_RANDOM_SIZE: usize = HANDSHAKE_SIZE - 8;

/// How a handshake was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeStyle {
    /// The spec's handshake: zero version in C1/S1, C2/S2 echo the peer's packet.
    Simple,
    /// The Flash Player 9 handshake with HMAC-SHA256 digests, in the client's schema.
    Digest {
        /// Where the client put its digest (the server answers in the same layout).
        schema: DigestSchema,
    },
}

/// Layout of a digest C1/S1: which of the two 764-byte blocks holds the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestSchema {
    /// Schema 1: key block at offset 8, digest block at offset 772.
    KeyFirst,
    /// Schema 0: digest block at offset 8, key block at offset 772 (FFmpeg, nginx-rtmp).
    DigestFirst,
}

/// Why a handshake failed. Every failure is fatal to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's C0/S0 asked for a version other than 3 (6 is RTMPE, which is unsupported).
    #[error("unsupported rtmp version {0:#04x}")]
    UnsupportedVersion(u8),
}

/// Checks the C0/S0 byte at the front of `input` and consumes it.
///
/// Returns `Ok(false)` when `input` is empty.
fn read_version(input: &mut BytesMut) -> Result<bool, HandshakeError> {
    match input.first() {
        None => Ok(false),
        Some(&RTMP_VERSION) => {
            input.advance(1);
            Ok(true)
        }
        Some(&other) => Err(HandshakeError::UnsupportedVersion(other)),
    }
}

/// A C1/S1 or C2/S2 being collected from input that may arrive in any number of pieces.
struct PacketBuf {
    bytes: Box<[u8; HANDSHAKE_SIZE]>,
    len: usize,
}

impl PacketBuf {
    fn new() -> Self {
        Self {
            bytes: Box::new([0; HANDSHAKE_SIZE]),
            len: 0,
        }
    }

    /// Moves bytes from the front of `input` until the packet is complete, and says whether it is.
    fn fill(&mut self, input: &mut BytesMut) -> bool {
        let wanted = (HANDSHAKE_SIZE - self.len).min(input.len());
        let taken = input.split_to(wanted);
        self.bytes[self.len..self.len + wanted].copy_from_slice(&taken);
        self.len += wanted;
        self.len == HANDSHAKE_SIZE
    }

    /// The whole packet; meaningful once [`PacketBuf::fill`] returned true.
    fn packet(&self) -> &[u8; HANDSHAKE_SIZE] {
        &self.bytes
    }
}

/// Builds a C1/S1: time, version, random.
fn hello_packet(
    epoch: u32,
    version: [u8; 4],
    random: &[u8; HANDSHAKE_RANDOM_SIZE],
) -> Box<[u8; HANDSHAKE_SIZE]> {
    let mut packet = Box::new([0; HANDSHAKE_SIZE]);
    packet[..4].copy_from_slice(&epoch.to_be_bytes());
    packet[4..8].copy_from_slice(&version);
    packet[8..].copy_from_slice(random);
    packet
}

/// The random part of a digest-style C2/S2 (1504 bytes).
///
/// The caller supplies one block of randomness; the second packet reuses its tail, which is
/// harmless because the handshake's randomness protects nothing.
fn signed_body(random: &[u8; HANDSHAKE_RANDOM_SIZE]) -> &[u8] {
    &random[HANDSHAKE_RANDOM_SIZE - (HANDSHAKE_SIZE - digest::DIGEST_SIZE)..]
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;

    /// The 32 bytes both Adobe keys end with, written out independently of `digest.rs`.
    const KEY_TAIL: &str = "f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae";

    pub(super) fn hex(text: &str) -> Vec<u8> {
        let text: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        text.chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    pub(super) fn fp_key() -> Vec<u8> {
        [b"Genuine Adobe Flash Player 001".to_vec(), hex(KEY_TAIL)].concat()
    }

    pub(super) fn fms_key() -> Vec<u8> {
        [
            b"Genuine Adobe Flash Media Server 001".to_vec(),
            hex(KEY_TAIL),
        ]
        .concat()
    }

    pub(super) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Deterministic "random" bytes: `i * step + start`.
    pub(super) fn pattern(step: usize, start: usize) -> [u8; HANDSHAKE_RANDOM_SIZE] {
        std::array::from_fn(|i| (i * step + start) as u8)
    }

    /// Digest offset computed from first principles: block base, sum of its first 4 bytes.
    pub(super) fn offset(packet: &[u8], block: usize) -> usize {
        packet[block..block + 4]
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()
            % 728
            + block
            + 4
    }

    /// Writes a digest into a C1/S1 (without C0/S0) at the block base given, under `key`.
    pub(super) fn sign(packet: &mut [u8], block: usize, key: &[u8]) -> [u8; 32] {
        let at = offset(packet, block);
        let digest = hmac(key, &[&packet[..at], &packet[at + 32..]].concat());
        packet[at..at + 32].copy_from_slice(&digest);
        digest
    }

    /// Reads the digest at the block base given if it is valid under `key`.
    pub(super) fn valid_digest(packet: &[u8], block: usize, key: &[u8]) -> Option<[u8; 32]> {
        let at = offset(packet, block);
        let digest = hmac(key, &[&packet[..at], &packet[at + 32..]].concat());
        (packet[at..at + 32] == digest).then_some(digest)
    }

    /// Runs a client and a server against each other in memory; returns both when done.
    fn run_pair(digest: bool) -> (ClientHandshake, ServerHandshake) {
        let mut client = ClientHandshake::new(pattern(37, 11), 0, digest);
        let mut server = ServerHandshake::new(pattern(13, 5), 0x1234);
        let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
        for _ in 0..4 {
            if let Some(bytes) = client.poll_transmit() {
                to_server.extend_from_slice(&bytes);
            }
            server.handle_input(&mut to_server).unwrap();
            if let Some(bytes) = server.poll_transmit() {
                to_client.extend_from_slice(&bytes);
            }
            client.handle_input(&mut to_client).unwrap();
        }
        assert!(client.is_done() && server.is_done());
        assert!(to_server.is_empty() && to_client.is_empty());
        (client, server)
    }

    #[test]
    fn client_and_server_agree_on_simple() {
        let (client, server) = run_pair(false);
        assert_eq!(server.style(), Some(HandshakeStyle::Simple));
        assert_eq!(client.server_verified(), None);
    }

    #[test]
    fn client_and_server_agree_on_digest() {
        let (client, server) = run_pair(true);
        let schema = DigestSchema::DigestFirst;
        assert_eq!(server.style(), Some(HandshakeStyle::Digest { schema }));
        assert_eq!(client.server_verified(), Some(true));
    }

    #[test]
    fn error_messages_are_short_and_lowercase() {
        assert_eq!(
            HandshakeError::UnsupportedVersion(0x06).to_string(),
            "unsupported rtmp version 0x06"
        );
    }

    #[test]
    fn packet_buf_collects_pieces() {
        let mut buf = PacketBuf::new();
        let mut input = BytesMut::from(&[7u8; 1000][..]);
        assert!(!buf.fill(&mut input));
        assert!(input.is_empty());
        input.extend_from_slice(&[8u8; 600]);
        assert!(buf.fill(&mut input));
        assert_eq!(input.len(), 64);
        assert_eq!(buf.packet()[999..1001], [7, 8]);
    }
}
