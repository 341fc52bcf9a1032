//! Encoder ↔ decoder tests: timestamps across 0xFFFFFF and 2^32, random splits, random bytes.

use bytes::BytesMut;

/// Parses hex digits, ignoring whitespace.
pub(super) fn hex(s: &str) -> BytesMut {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let pairs = digits.chunks_exact(2);
    assert!(pairs.remainder().is_empty(), "odd number of hex digits");
    pairs
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect::<Vec<u8>>()[..]
        .into()
}

mod cross {
    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;
    use proptest::sample::Index;

    use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkError, ChunkMessage, DecoderLimits};

    /// Type id of Set Chunk Size, applied by [`run`] like a session would.
    const SET_CHUNK_SIZE: u8 = 1;
    /// Type id of Abort, applied by [`run`] like a session would.
    const ABORT: u8 = 2;

    /// Feeds `bytes` to a decoder in pieces ending at `splits` (sorted), applying Set Chunk Size
    /// and Abort messages as a session would. Returns the messages and the error, if any.
    fn run(
        bytes: &[u8],
        splits: &[usize],
        limits: DecoderLimits,
    ) -> (Vec<ChunkMessage>, Option<ChunkError>) {
        let mut decoder = ChunkDecoder::new(limits);
        let mut buf = BytesMut::new();
        let mut messages = Vec::new();
        let mut start = 0;
        for end in splits.iter().copied().chain([bytes.len()]) {
            buf.extend_from_slice(&bytes[start..end]);
            start = end;
            loop {
                let message = match decoder.decode(&mut buf) {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(err) => return (messages, Some(err)),
                };
                let value = <[u8; 4]>::try_from(&message.payload[..]).map(u32::from_be_bytes);
                match (message.type_id, value) {
                    (SET_CHUNK_SIZE, Ok(size)) => {
                        if let Err(err) = decoder.set_chunk_size(size) {
                            return (messages, Some(err));
                        }
                    }
                    (ABORT, Ok(csid)) => decoder.abort(csid),
                    _ => {}
                }
                messages.push(message);
            }
        }
        (messages, None)
    }

    fn payload(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    fn set_chunk_size_message(size: u32) -> ChunkMessage {
        ChunkMessage {
            chunk_stream_id: 2,
            timestamp: 0,
            type_id: SET_CHUNK_SIZE,
            stream_id: 0,
            payload: Bytes::copy_from_slice(&size.to_be_bytes()),
        }
    }

    /// Encodes `messages`, sending a Set Chunk Size first when `chunk_size` is given.
    fn encode(chunk_size: Option<u32>, messages: &[ChunkMessage]) -> (Vec<ChunkMessage>, BytesMut) {
        let mut encoder = ChunkEncoder::new();
        let mut sent = Vec::new();
        let mut out = BytesMut::new();
        if let Some(size) = chunk_size {
            let set = set_chunk_size_message(size);
            encoder.encode(&set, &mut out);
            encoder.set_chunk_size(size);
            sent.push(set);
        }
        for message in messages {
            encoder.encode(message, &mut out);
            sent.push(message.clone());
        }
        (sent, out)
    }

    #[test]
    fn timestamps_cross_24_bits_and_32_bits_with_multi_chunk_messages() {
        for base in [0xFF_FFFF - 200, u32::MAX - 200] {
            let mut messages = Vec::new();
            for i in 0..12u32 {
                let timestamp = base.wrapping_add(i * 40);
                messages.push(ChunkMessage {
                    chunk_stream_id: 6,
                    timestamp,
                    type_id: 9,
                    stream_id: 1,
                    payload: payload(300 + (i as usize % 2), i as u8),
                });
                messages.push(ChunkMessage {
                    chunk_stream_id: 4,
                    timestamp: timestamp.wrapping_add(20),
                    type_id: 8,
                    stream_id: 1,
                    payload: payload(10, 0xFF),
                });
            }
            let (sent, bytes) = encode(None, &messages);
            let whole = run(&bytes, &[], DecoderLimits::default());
            assert_eq!(whole, (sent.clone(), None));
            let every_byte: Vec<usize> = (1..bytes.len()).collect();
            assert_eq!(run(&bytes, &every_byte, DecoderLimits::default()), whole);
        }
    }

    #[test]
    fn chunk_size_change_between_messages() {
        let big = ChunkMessage {
            chunk_stream_id: 6,
            timestamp: 0,
            type_id: 9,
            stream_id: 1,
            payload: payload(10_000, 1),
        };
        let mut encoder = ChunkEncoder::new();
        let mut out = BytesMut::new();
        encoder.encode(&big, &mut out);
        encoder.encode(&set_chunk_size_message(4096), &mut out);
        encoder.set_chunk_size(4096);
        encoder.encode(&big, &mut out);
        // fmt 0 + 78 continuations of 128 bytes; Set Chunk Size; fmt 2 + 2 of 4096 bytes.
        assert_eq!(out.len(), (12 + 10_000 + 78) + (12 + 4) + (4 + 10_000 + 2));
        let (messages, err) = run(&out, &[], DecoderLimits::default());
        assert_eq!(err, None);
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[0], big);
        assert_eq!(messages[2], big);
    }

    #[derive(Clone, Debug)]
    enum Op {
        New {
            chunk_stream_id: u32,
            timestamp: u32,
            len: usize,
            type_id: u8,
            stream_id: u32,
        },
        /// Repeats the previous message with the same length and type, `times` times, each
        /// `delta` later: exercises fmt 2 and fmt 3.
        Follow { delta: u32, times: u32 },
    }

    fn op() -> impl Strategy<Value = Op> {
        let chunk_stream_id = prop_oneof![2u32..=10, 60u32..=70, 315u32..=325, 65_590u32..=65_599];
        let timestamp = prop_oneof![
            0u32..1000,
            0xFF_FF00u32..=0x100_0100,
            0xFFFF_FF00u32..=u32::MAX,
            any::<u32>(),
        ];
        let type_id = prop::sample::select(vec![3u8, 4, 5, 6, 8, 9, 15, 17, 18, 20, 22]);
        let delta = prop_oneof![
            Just(0u32),
            Just(33),
            0u32..100,
            0xFF_FFF0u32..=0x100_0010,
            any::<u32>(),
        ];
        prop_oneof![
            (chunk_stream_id, timestamp, 0usize..20_000, type_id, 0u32..3).prop_map(
                |(chunk_stream_id, timestamp, len, type_id, stream_id)| Op::New {
                    chunk_stream_id,
                    timestamp,
                    len,
                    type_id,
                    stream_id,
                }
            ),
            (delta, 1u32..4).prop_map(|(delta, times)| Op::Follow { delta, times }),
        ]
    }

    fn messages(ops: &[Op]) -> Vec<ChunkMessage> {
        let mut messages: Vec<ChunkMessage> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::New {
                    chunk_stream_id,
                    timestamp,
                    len,
                    type_id,
                    stream_id,
                } => messages.push(ChunkMessage {
                    chunk_stream_id,
                    timestamp,
                    type_id,
                    stream_id,
                    payload: payload(len, i as u8),
                }),
                Op::Follow { delta, times } => {
                    for n in 0..times {
                        let Some(last) = messages.last() else { break };
                        let next = ChunkMessage {
                            timestamp: last.timestamp.wrapping_add(delta),
                            payload: payload(last.payload.len(), (i as u32 + n) as u8),
                            ..last.clone()
                        };
                        messages.push(next);
                    }
                }
            }
        }
        messages
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_split_gives_the_same_messages(
            ops in prop::collection::vec(op(), 1..10),
            chunk_size in prop_oneof![1u32..=8, 9u32..=300, 301u32..=70_000],
            set_chunk_size in any::<bool>(),
            splits in prop::collection::vec(any::<Index>(), 0..30),
        ) {
            let messages = messages(&ops);
            let (sent, bytes) = encode(set_chunk_size.then_some(chunk_size), &messages);
            let mut splits: Vec<usize> = splits.iter().map(|s| s.index(bytes.len() + 1)).collect();
            splits.sort_unstable();
            let whole = run(&bytes, &[], DecoderLimits::default());
            prop_assert_eq!(&whole, &(sent, None));
            prop_assert_eq!(run(&bytes, &splits, DecoderLimits::default()), whole);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_split_does_not_matter(
            bytes in prop::collection::vec(any::<u8>(), 0..2000),
            splits in prop::collection::vec(any::<Index>(), 0..30),
            max_message_length in prop_oneof![Just(0xFF_FFFFu32), 0u32..300],
            max_chunk_streams in 0usize..8,
            max_pending_bytes in 0usize..600,
        ) {
            let limits = DecoderLimits { max_message_length, max_chunk_streams, max_pending_bytes };
            let mut splits: Vec<usize> = splits.iter().map(|s| s.index(bytes.len() + 1)).collect();
            splits.sort_unstable();
            let whole = run(&bytes, &[], limits.clone());
            prop_assert_eq!(run(&bytes, &splits, limits), whole);
        }
    }
}
