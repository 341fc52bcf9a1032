//! The client side of the handshake: sends C0+C1, reads S0+S1, answers C2, then reads S2.

use bytes::{BufMut, Bytes, BytesMut};

use super::digest::{
    find_digest, imprint_digest, signature, DIGEST_SIZE, FMS_KEY, FMS_PARTIAL_KEY_LEN, FP_KEY,
    FP_PARTIAL_KEY_LEN,
};
use super::{
    hello_packet, read_version, signed_body, DigestSchema, HandshakeError, PacketBuf,
    HANDSHAKE_RANDOM_SIZE, HANDSHAKE_SIZE, RTMP_VERSION,
};

/// Version written in a digest-style C1: 9.0.124.2, the Flash Player 9 version FFmpeg sends.
const CLIENT_VERSION: [u8; 4] = [0x09, 0x00, 0x7c, 0x02];

/// Client side of the handshake.
///
/// Sends a simple or a digest (schema 0, like FFmpeg) C1. When the server answers in digest
/// style (non-zero S1 version), the S1 digest and the S2 signature are checked, but a mismatch
/// is not fatal, like librtmp: the outcome is reported by
/// [`ClientHandshake::server_verified`]. An S0 other than 3 fails with
/// [`HandshakeError::UnsupportedVersion`].
pub struct ClientHandshake {
    state: ClientState,
    random: Box<[u8; HANDSHAKE_RANDOM_SIZE]>,
    c1_digest: Option<[u8; DIGEST_SIZE]>,
    server_verified: Option<bool>,
    transmit: BytesMut,
}

enum ClientState {
    AwaitS0,
    AwaitS1(PacketBuf),
    /// `c1_digest` is set when the S2 signature is to be checked against it.
    AwaitS2 {
        s2: PacketBuf,
        c1_digest: Option<[u8; DIGEST_SIZE]>,
    },
    Done,
    Failed(HandshakeError),
}

impl ClientHandshake {
    /// A client handshake with C0+C1 ready to send.
    ///
    /// `random` fills C1's random part (a digest-style C2 reuses its last 1504 bytes); `epoch`
    /// goes in C1's time field. `digest = true` sends a complex C1 (schema 0, version
    /// 9.0.124.2, like FFmpeg), `false` a simple one.
    pub fn new(random: [u8; HANDSHAKE_RANDOM_SIZE], epoch: u32, digest: bool) -> Self {
        let version = if digest { CLIENT_VERSION } else { [0; 4] };
        let mut c1 = hello_packet(epoch, version, &random);
        let c1_digest = digest.then(|| {
            imprint_digest(
                &mut c1,
                DigestSchema::DigestFirst,
                &FP_KEY[..FP_PARTIAL_KEY_LEN],
            )
        });
        let mut transmit = BytesMut::with_capacity(1 + HANDSHAKE_SIZE);
        transmit.put_u8(RTMP_VERSION);
        transmit.put_slice(&c1[..]);
        Self {
            state: ClientState::AwaitS0,
            random: Box::new(random),
            c1_digest,
            server_verified: None,
            transmit,
        }
    }

    /// Consumes handshake bytes from the front of `input`, and nothing after S2.
    ///
    /// Queues C2 once S0+S1 have arrived. Returns `Ok(true)` once S2 has been consumed,
    /// `Ok(false)` while more input is needed. After an error, every call returns the same error.
    pub fn handle_input(&mut self, input: &mut BytesMut) -> Result<bool, HandshakeError> {
        loop {
            match &mut self.state {
                ClientState::AwaitS0 => match read_version(input) {
                    Ok(true) => self.state = ClientState::AwaitS1(PacketBuf::new()),
                    Ok(false) => return Ok(false),
                    Err(err) => {
                        self.state = ClientState::Failed(err.clone());
                        return Err(err);
                    }
                },
                ClientState::AwaitS1(s1) => {
                    if !s1.fill(input) {
                        return Ok(false);
                    }
                    let (c1_digest, verified) = answer(
                        s1.packet(),
                        self.c1_digest,
                        &self.random,
                        &mut self.transmit,
                    );
                    self.server_verified = verified;
                    self.state = ClientState::AwaitS2 {
                        s2: PacketBuf::new(),
                        c1_digest,
                    };
                }
                ClientState::AwaitS2 { s2, c1_digest } => {
                    if !s2.fill(input) {
                        return Ok(false);
                    }
                    if let Some(c1_digest) = c1_digest {
                        let (body, sig) = s2.packet().split_at(HANDSHAKE_SIZE - DIGEST_SIZE);
                        let expected = signature(&FMS_KEY, c1_digest, body);
                        self.server_verified = Some(sig == expected);
                    }
                    self.state = ClientState::Done;
                }
                ClientState::Done => return Ok(true),
                ClientState::Failed(err) => return Err(err.clone()),
            }
        }
    }

    /// Bytes to send, if any: C0+C1 right after [`ClientHandshake::new`], then C2.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    /// Whether S2 has been consumed.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done)
    }

    /// Whether the server's digest answer checked out: `None` while unknown or when the server
    /// answered in simple style, `Some(false)` when its S1 digest or S2 signature was wrong.
    pub fn server_verified(&self) -> Option<bool> {
        self.server_verified
    }
}

/// Queues C2 answering `s1` into `out`.
///
/// Returns the C1 digest when S2's signature is to be checked, and `Some(false)` when the server
/// answered in digest style with no valid S1 digest (C2 then echoes S1, as in a simple handshake).
fn answer(
    s1: &[u8; HANDSHAKE_SIZE],
    c1_digest: Option<[u8; DIGEST_SIZE]>,
    random: &[u8; HANDSHAKE_RANDOM_SIZE],
    out: &mut BytesMut,
) -> (Option<[u8; DIGEST_SIZE]>, Option<bool>) {
    let server_digest_style = s1.get(4..8) != Some(&[0; 4][..]);
    if c1_digest.is_none() || !server_digest_style {
        out.put_slice(s1);
        return (None, None);
    }
    match find_digest(s1, &FMS_KEY[..FMS_PARTIAL_KEY_LEN]) {
        None => {
            out.put_slice(s1);
            (None, Some(false))
        }
        Some((_, s1_digest)) => {
            let body = signed_body(random);
            out.put_slice(body);
            out.put_slice(&signature(&FP_KEY, &s1_digest, body));
            (c1_digest, None)
        }
    }
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("done", &self.is_done())
            .field("server_verified", &self.server_verified())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fms_key, fp_key, hex, hmac, offset, pattern, sign};
    use super::*;

    fn client(digest: bool) -> ClientHandshake {
        ClientHandshake::new(pattern(37, 11), 0, digest)
    }

    /// The digest our digest client puts in C1 (checked against golden bytes below).
    fn c1_digest(c1: &[u8]) -> [u8; 32] {
        let at = offset(c1, 8);
        c1[at..at + 32].try_into().unwrap()
    }

    /// A digest-style S1 (time 0x1234, random `pattern(13, 5)`) signed in the given block.
    fn digest_s1(version: &str, block: usize) -> (Vec<u8>, [u8; 32]) {
        let mut s1 = [hex("00001234"), hex(version), pattern(13, 5).to_vec()].concat();
        let digest = sign(&mut s1, block, &fms_key()[..36]);
        (s1, digest)
    }

    /// A digest-style S2 answering `c1`.
    fn digest_s2(c1: &[u8]) -> Vec<u8> {
        let body = pattern(3, 0)[..1504].to_vec();
        let sig = hmac(&hmac(&fms_key(), &c1_digest(c1)), &body);
        [body, sig.to_vec()].concat()
    }

    /// Feeds S0+S1+S2 (+ `trailing`) and returns C2 and what was left in the input.
    fn exchange(client: &mut ClientHandshake, s1: &[u8], s2: &[u8], trailing: &[u8]) -> Vec<u8> {
        let all = [&[RTMP_VERSION][..], s1, s2, trailing].concat();
        let mut input = BytesMut::from(&all[..]);
        assert_eq!(client.handle_input(&mut input), Ok(true));
        assert!(client.is_done());
        assert_eq!(input[..], trailing[..]);
        let c2 = client.poll_transmit().unwrap();
        assert_eq!(client.poll_transmit(), None);
        c2.to_vec()
    }

    /// Takes C0+C1 off a fresh client.
    fn take_c1(client: &mut ClientHandshake) -> Vec<u8> {
        let sent = client.poll_transmit().unwrap();
        assert_eq!(sent.len(), 1 + HANDSHAKE_SIZE);
        assert_eq!(sent[0], 0x03);
        assert_eq!(client.poll_transmit(), None);
        sent[1..].to_vec()
    }

    #[test]
    fn simple_c1_matches_golden() {
        let mut client = ClientHandshake::new(pattern(37, 11), 0x0a0b_0c0d, false);
        let c1 = take_c1(&mut client);
        assert_eq!(c1[..12], hex("0a0b0c0d 00000000 0b30557a"));
        assert_eq!(c1[8..], pattern(37, 11));
    }

    #[test]
    fn digest_c1_matches_golden() {
        let c1 = take_c1(&mut client(true));
        assert_eq!(c1[..8], hex("00000000 09007c02"));
        assert_eq!(offset(&c1, 8), 278);
        let golden = hex("0c773f6df59438c8067ab4f94c05e13c478d450fe06f8189d4ab51c853419aee");
        assert_eq!(c1[278..310], golden[..]);
        let mut resigned = c1.clone();
        sign(&mut resigned, 8, &fp_key()[..30]);
        assert_eq!(resigned, c1);
    }

    #[test]
    fn digest_server_is_verified_and_c2_is_signed() {
        let mut client = client(true);
        let c1 = take_c1(&mut client);
        let (s1, s1_digest) = digest_s1("04000001", 8);
        let c2 = exchange(&mut client, &s1, &digest_s2(&c1), b"\x02rest");
        assert_eq!(client.server_verified(), Some(true));
        assert_eq!(c2[..1504], pattern(37, 11)[24..]);
        assert_eq!(c2[1504..], hmac(&hmac(&fp_key(), &s1_digest), &c2[..1504]));
        let golden = hex("a3a57bd5d25a12b61d6ec88fdbac567ae67e8b1fb64f32ef95cfd8517241527c");
        assert_eq!(c2[1504..], golden[..]);
    }

    #[test]
    fn nginx_style_server_in_either_schema_is_verified() {
        for block in [8, 772] {
            let mut client = client(true);
            let c1 = take_c1(&mut client);
            let (s1, _) = digest_s1("0d0e0a0d", block);
            exchange(&mut client, &s1, &digest_s2(&c1), &[]);
            assert_eq!(client.server_verified(), Some(true), "block {block}");
        }
    }

    #[test]
    fn bad_s2_signature_is_reported_not_fatal() {
        let mut client = client(true);
        let c1 = take_c1(&mut client);
        let (s1, _) = digest_s1("04000001", 8);
        let mut s2 = digest_s2(&c1);
        s2[1535] ^= 1;
        exchange(&mut client, &s1, &s2, &[]);
        assert_eq!(client.server_verified(), Some(false));
    }

    #[test]
    fn server_version_without_digest_gets_an_echo() {
        let mut client = client(true);
        take_c1(&mut client);
        let s1 = [hex("00001234 04000001"), pattern(13, 5).to_vec()].concat();
        let c2 = exchange(&mut client, &s1, &[0; HANDSHAKE_SIZE], &[]);
        assert_eq!(c2, s1);
        assert_eq!(client.server_verified(), Some(false));
    }

    #[test]
    fn simple_server_gets_an_echo_and_no_verdict() {
        for digest in [false, true] {
            let mut client = client(digest);
            let c1 = take_c1(&mut client);
            let s1 = [hex("00001234 00000000"), pattern(13, 5).to_vec()].concat();
            let c2 = exchange(&mut client, &s1, &c1, &[]);
            assert_eq!(c2, s1);
            assert_eq!(client.server_verified(), None);
        }
        // A simple client never checks digests, whatever the server sends.
        let mut client = client(false);
        take_c1(&mut client);
        let (s1, _) = digest_s1("04000001", 8);
        assert_eq!(exchange(&mut client, &s1, &[0; HANDSHAKE_SIZE], &[]), s1);
        assert_eq!(client.server_verified(), None);
    }

    #[test]
    fn wrong_s0_is_rejected() {
        let mut client = client(true);
        let mut input = BytesMut::from(&[0x06, 0x00][..]);
        let err = HandshakeError::UnsupportedVersion(0x06);
        assert_eq!(client.handle_input(&mut input), Err(err.clone()));
        assert_eq!(client.handle_input(&mut input), Err(err));
        assert!(!client.is_done());
    }

    #[test]
    fn one_byte_at_a_time_leaves_trailing_bytes() {
        let mut client = client(true);
        let c1 = take_c1(&mut client);
        let (s1, _) = digest_s1("04000001", 772);
        let all = [&[RTMP_VERSION][..], &s1, &digest_s2(&c1), b"xy"].concat();
        let mut input = BytesMut::new();
        for (i, &byte) in all.iter().enumerate() {
            input.extend_from_slice(&[byte]);
            let done = client.handle_input(&mut input).unwrap();
            assert_eq!(done, i >= 2 * HANDSHAKE_SIZE, "at byte {i}");
            let sent = client.poll_transmit();
            assert_eq!(sent.is_some(), i == HANDSHAKE_SIZE, "at byte {i}");
        }
        assert_eq!(input[..], b"xy"[..]);
        assert_eq!(client.server_verified(), Some(true));
    }
}
