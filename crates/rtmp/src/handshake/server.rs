//! The server side of the handshake: reads C0+C1, answers S0+S1+S2 at once, then skips C2.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::digest::{
    find_digest, imprint_digest, signature, FMS_KEY, FMS_PARTIAL_KEY_LEN, FP_KEY,
    FP_PARTIAL_KEY_LEN,
};
use super::{
    hello_packet, read_version, signed_body, HandshakeError, HandshakeStyle, PacketBuf,
    HANDSHAKE_RANDOM_SIZE, HANDSHAKE_SIZE, RTMP_VERSION,
};

/// Version written in a digest-style S1 (4.0.0.1). FFmpeg checks the S1 digest only when the
/// first byte is at least 3, and the digest we write is valid.
const SERVER_VERSION: [u8; 4] = [0x04, 0x00, 0x00, 0x01];

/// Server side of the handshake.
///
/// Accepts both styles: a C1 with a zero version, or with a version but no valid digest, gets a
/// simple answer; a C1 with a valid Flash Player digest (either schema) gets a digest answer in
/// the same schema. C0 must be 3: RTMPE (6) and everything else is rejected with
/// [`HandshakeError::UnsupportedVersion`] as soon as the first byte arrives. C2 is consumed but
/// not checked, like nginx-rtmp.
pub struct ServerHandshake {
    state: ServerState,
    random: Box<[u8; HANDSHAKE_RANDOM_SIZE]>,
    epoch: u32,
    style: Option<HandshakeStyle>,
    transmit: BytesMut,
}

enum ServerState {
    AwaitC0,
    AwaitC1(PacketBuf),
    AwaitC2 { remaining: usize },
    Done,
    Failed(HandshakeError),
}

impl ServerHandshake {
    /// A server handshake waiting for C0.
    ///
    /// `random` fills S1's random part (the caller supplies randomness so tests are
    /// deterministic; a digest-style S2 reuses its last 1504 bytes); `epoch` goes in S1's time
    /// field.
    pub fn new(random: [u8; HANDSHAKE_RANDOM_SIZE], epoch: u32) -> Self {
        Self {
            state: ServerState::AwaitC0,
            random: Box::new(random),
            epoch,
            style: None,
            transmit: BytesMut::new(),
        }
    }

    /// Consumes handshake bytes from the front of `input`, and nothing after C2: bytes pipelined
    /// behind C2 (typically Set Chunk Size and `connect`) stay in `input`.
    ///
    /// Queues S0+S1+S2 as soon as C0+C1 are complete, without waiting for C2. Returns `Ok(true)`
    /// once C2 has been consumed, `Ok(false)` while more input is needed. After an error, every
    /// call returns the same error.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<bool, HandshakeError> {
        loop {
            match &mut self.state {
                ServerState::AwaitC0 => match read_version(input) {
                    Ok(true) => self.state = ServerState::AwaitC1(PacketBuf::new()),
                    Ok(false) => return Ok(false),
                    Err(err) => {
                        self.state = ServerState::Failed(err.clone());
                        return Err(err);
                    }
                },
                ServerState::AwaitC1(c1) => {
                    if !c1.fill(input) {
                        return Ok(false);
                    }
                    let style = respond(c1.packet(), &self.random, self.epoch, &mut self.transmit);
                    self.style = Some(style);
                    self.state = ServerState::AwaitC2 {
                        remaining: HANDSHAKE_SIZE,
                    };
                }
                ServerState::AwaitC2 { remaining } => {
                    let skipped = (*remaining).min(input.len());
                    input.advance(skipped);
                    *remaining -= skipped;
                    if *remaining > 0 {
                        return Ok(false);
                    }
                    self.state = ServerState::Done;
                }
                ServerState::Done => return Ok(true),
                ServerState::Failed(err) => return Err(err.clone()),
            }
        }
    }

    /// Bytes to send, if any: S0+S1+S2 as one buffer, once C1 has arrived.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    /// Whether C2 has been consumed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done)
    }

    /// The style detected from C1 (`None` until C1 arrived).
    pub fn style(&self) -> Option<HandshakeStyle> {
        self.style
    }
}

/// Writes S0+S1+S2 answering `c1` into `out` and returns the style chosen.
fn respond(
    c1: &[u8; HANDSHAKE_SIZE],
    random: &[u8; HANDSHAKE_RANDOM_SIZE],
    epoch: u32,
    out: &mut BytesMut,
) -> HandshakeStyle {
    let client_digest = match c1.get(4..8) {
        Some([0, 0, 0, 0]) | None => None,
        Some(_) => find_digest(c1, &FP_KEY[..FP_PARTIAL_KEY_LEN]),
    };
    out.reserve(1 + 2 * HANDSHAKE_SIZE);
    out.put_u8(RTMP_VERSION);
    match client_digest {
        None => {
            out.put_slice(&hello_packet(epoch, [0; 4], random)[..]);
            out.put_slice(c1);
            HandshakeStyle::Simple
        }
        Some((schema, c1_digest)) => {
            let mut s1 = hello_packet(epoch, SERVER_VERSION, random);
            imprint_digest(&mut s1, schema, &FMS_KEY[..FMS_PARTIAL_KEY_LEN]);
            out.put_slice(&s1[..]);
            let body = signed_body(random);
            out.put_slice(body);
            out.put_slice(&signature(&FMS_KEY, &c1_digest, body));
            HandshakeStyle::Digest { schema }
        }
    }
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("done", &self.is_done())
            .field("style", &self.style())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::tests::{fms_key, fp_key, hex, hmac, offset, pattern, sign, valid_digest};
    use super::super::DigestSchema;
    use super::*;

    /// Set Chunk Size (4096) as a client pipelines it behind C2.
    const SET_CHUNK_SIZE: &str = "02 000000 000004 01 00000000 00001000";

    fn simple_c1() -> Vec<u8> {
        [hex("00000000 00000000"), pattern(37, 11).to_vec()].concat()
    }

    /// A C1 like FFmpeg's: version 9.0.124.2, digest in schema 0. Returns it and its digest.
    fn ffmpeg_c1() -> (Vec<u8>, [u8; 32]) {
        let mut c1 = [hex("00000000 09007c02"), pattern(37, 11).to_vec()].concat();
        let digest = sign(&mut c1, 8, &fp_key()[..30]);
        (c1, digest)
    }

    /// A C1 with the digest in schema 1 (version 10.0.32.18). Returns it and its digest.
    fn schema1_c1() -> (Vec<u8>, [u8; 32]) {
        let mut c1 = [hex("00000000 0a002012"), pattern(7, 1).to_vec()].concat();
        let digest = sign(&mut c1, 772, &fp_key()[..30]);
        (c1, digest)
    }

    fn server() -> ServerHandshake {
        ServerHandshake::new(pattern(13, 5), 0x1234)
    }

    /// Feeds C0+C1 in one piece and returns S0+S1+S2 split up.
    fn answer(server: &mut ServerHandshake, c1: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
        let mut input = BytesMut::from(&[&[RTMP_VERSION][..], c1].concat()[..]);
        assert_eq!(server.handle_input(&mut input), Ok(false));
        assert!(input.is_empty());
        let out = server.poll_transmit().unwrap();
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert_eq!(server.poll_transmit(), None);
        (out[0], out[1..1537].to_vec(), out[1537..].to_vec())
    }

    #[test]
    fn simple_exchange_matches_golden() {
        let mut server = server();
        assert_eq!(server.poll_transmit(), None);
        assert_eq!(server.style(), None);
        let (s0, s1, s2) = answer(&mut server, &simple_c1());
        assert_eq!(s0, 0x03);
        assert_eq!(s1[..16], hex("00001234 00000000 05121f2c39465360"));
        assert_eq!(s1[8..], pattern(13, 5));
        assert_eq!(s2[..12], hex("00000000 00000000 0b30557a"));
        assert_eq!(s2, simple_c1());
        assert_eq!(server.style(), Some(HandshakeStyle::Simple));
        assert!(!server.is_done());
        let mut c2 = BytesMut::from(&s1[..]);
        assert_eq!(server.handle_input(&mut c2), Ok(true));
        assert!(server.is_done());
        assert_eq!(server.handle_input(&mut c2), Ok(true));
    }

    #[test]
    fn digest_exchange_schema0_matches_golden() {
        let (c1, c1_digest) = ffmpeg_c1();
        let mut server = server();
        let (s0, s1, s2) = answer(&mut server, &c1);
        let schema = DigestSchema::DigestFirst;
        assert_eq!(server.style(), Some(HandshakeStyle::Digest { schema }));
        assert_eq!(s0, 0x03);
        assert_eq!(s1[..8], hex("00001234 04000001"));
        // S1 digest: FMS key (36 bytes), schema 0; golden from Python's hmac module.
        let at = offset(&s1, 8);
        assert_eq!(at, 110);
        let golden = hex("0216d172c1932a283d36730df454b0b02d49e4ebd156e89ca8254aaa4a015a23");
        assert_eq!(s1[at..at + 32], golden[..]);
        assert!(valid_digest(&s1, 8, &fms_key()[..36]).is_some());
        assert_eq!(s1[8..at], pattern(13, 5)[..at - 8]);
        assert_eq!(s1[at + 32..], pattern(13, 5)[at + 24..]);
        // S2: 1504 random bytes signed with HMAC(FMS full key, C1 digest).
        assert_eq!(s2[..1504], pattern(13, 5)[24..]);
        let expected = hmac(&hmac(&fms_key(), &c1_digest), &s2[..1504]);
        assert_eq!(s2[1504..], expected);
        let golden = hex("959167d094adb00b159ecc432de96092601b6a963dbe096e1c4ef8a794b8ddc8");
        assert_eq!(s2[1504..], golden[..]);
    }

    #[test]
    fn digest_exchange_schema1_answers_in_schema1() {
        let (c1, c1_digest) = schema1_c1();
        let mut server = server();
        let (_, s1, s2) = answer(&mut server, &c1);
        let schema = DigestSchema::KeyFirst;
        assert_eq!(server.style(), Some(HandshakeStyle::Digest { schema }));
        assert_eq!(s1[..8], hex("00001234 04000001"));
        let at = offset(&s1, 772);
        assert_eq!(at, 962);
        let golden = hex("0341d1c074fae27f3fb76c18cb0b38440e97c7346834463670011927148dac38");
        assert_eq!(s1[at..at + 32], golden[..]);
        assert!(valid_digest(&s1, 8, &fms_key()[..36]).is_none());
        let expected = hmac(&hmac(&fms_key(), &c1_digest), &s2[..1504]);
        assert_eq!(s2[1504..], expected);
        let golden = hex("98248b59e49b77cf4f433f4b017be6b12eb83e85112d59263411d90be46a1064");
        assert_eq!(s2[1504..], golden[..]);
    }

    #[test]
    fn garbage_digest_falls_back_to_simple() {
        let c1 = [hex("00000000 09007c02"), pattern(37, 11).to_vec()].concat();
        let mut server = server();
        let (_, s1, s2) = answer(&mut server, &c1);
        assert_eq!(server.style(), Some(HandshakeStyle::Simple));
        assert_eq!(s1[4..8], [0; 4]);
        assert_eq!(s2, c1);
        // A C1 signed with the server's key is not a client digest either.
        let mut c1 = c1;
        sign(&mut c1, 8, &fms_key()[..36]);
        let mut server = self::server();
        answer(&mut server, &c1);
        assert_eq!(server.style(), Some(HandshakeStyle::Simple));
    }

    #[test]
    fn wrong_version_is_rejected_on_the_first_byte() {
        for version in [0x00, 0x02, 0x06, 0x08, 0xff] {
            let mut server = server();
            let mut input = BytesMut::from(&[version][..]);
            let err = HandshakeError::UnsupportedVersion(version);
            assert_eq!(server.handle_input(&mut input), Err(err.clone()));
            input.extend_from_slice(&simple_c1());
            assert_eq!(server.handle_input(&mut input), Err(err));
            assert_eq!(server.poll_transmit(), None);
            assert!(!server.is_done());
        }
    }

    #[test]
    fn bytes_pipelined_behind_c2_stay_in_input() {
        let (c1, _) = ffmpeg_c1();
        let trailing = hex(SET_CHUNK_SIZE);
        let all = [&[RTMP_VERSION][..], &c1, &[0xc2; HANDSHAKE_SIZE], &trailing].concat();
        let mut input = BytesMut::from(&all[..]);
        let mut server = server();
        assert_eq!(server.handle_input(&mut input), Ok(true));
        assert_eq!(input[..], trailing[..]);
        assert_eq!(server.poll_transmit().map(|b| b.len()), Some(3073));
        assert!(server.is_done());
    }

    #[test]
    fn one_byte_at_a_time() {
        let all = [&[RTMP_VERSION][..], &simple_c1(), &[0; HANDSHAKE_SIZE]].concat();
        let mut server = server();
        let mut input = BytesMut::new();
        for (i, &byte) in all.iter().enumerate() {
            input.extend_from_slice(&[byte]);
            let done = server.handle_input(&mut input).unwrap();
            assert!(input.is_empty());
            assert_eq!(done, i == all.len() - 1);
            let sent = server.poll_transmit();
            assert_eq!(sent.is_some(), i == HANDSHAKE_SIZE, "at byte {i}");
        }
    }

    /// Feeds `bytes` in pieces cut at `cuts`; returns everything sent and what was left.
    fn feed_split(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<u8>) {
        let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.push(bytes.len());
        let mut server = server();
        let (mut input, mut sent, mut start) = (BytesMut::new(), Vec::new(), 0);
        for cut in cuts {
            input.extend_from_slice(&bytes[start..cut]);
            start = cut;
            server.handle_input(&mut input).unwrap();
            sent.extend(server.poll_transmit().unwrap_or_default());
        }
        assert!(server.is_done());
        (sent, input.to_vec())
    }

    proptest! {
        #[test]
        fn random_splits_give_the_same_result(
            digest in any::<bool>(),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let c1 = if digest { ffmpeg_c1().0 } else { simple_c1() };
            let all = [&[RTMP_VERSION][..], &c1, &[0xc2; HANDSHAKE_SIZE], &hex(SET_CHUNK_SIZE)]
                .concat();
            let whole = feed_split(&all, &[]);
            prop_assert_eq!(whole.0.len(), 3073);
            prop_assert_eq!(&whole.1, &hex(SET_CHUNK_SIZE));
            prop_assert_eq!(feed_split(&all, &cuts), whole);
        }
    }
}
