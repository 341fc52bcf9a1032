//! Chunk decoder: arbitrary bytes in arbitrary splits never panic, and the split never changes
//! the messages or the error.
//!
//! Input layout: byte 0 picks the initial chunk size, byte 1 the limits, byte 2 seeds the
//! split points; the rest is the chunk stream. Set Chunk Size and Abort messages are applied as
//! the session applies them.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use weir_rtmp::chunk::{ChunkDecoder, ChunkError, ChunkMessage, DecoderLimits};

fuzz_target!(|data: &[u8]| {
    let [size, limits, seed, stream @ ..] = data else {
        return;
    };
    let chunk_size = if *size < 200 {
        u32::from(*size) + 1
    } else {
        1 << (size - 200).min(30)
    };
    let limits = DecoderLimits {
        max_message_length: if limits & 0x80 != 0 { 0xFF_FFFF } else { 1000 },
        max_chunk_streams: usize::from(limits & 0x0F) + 1,
        max_pending_bytes: if limits & 0x40 != 0 { 32 << 20 } else { 500 },
    };
    let mut splits = Vec::new();
    let mut state = u32::from(*seed) | 1;
    let mut at = 0;
    while at < stream.len() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        at += 1 + (state >> 16) as usize % 64;
        splits.push(at.min(stream.len()));
    }
    let whole = run(stream, &[], chunk_size, limits.clone());
    let split = run(stream, &splits, chunk_size, limits);
    assert_eq!(whole, split);
});

fn run(
    bytes: &[u8],
    splits: &[usize],
    chunk_size: u32,
    limits: DecoderLimits,
) -> (Vec<ChunkMessage>, Option<ChunkError>) {
    let mut decoder = ChunkDecoder::new(limits);
    if let Err(err) = decoder.set_chunk_size(chunk_size) {
        return (Vec::new(), Some(err));
    }
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
                (1, Ok(size)) => {
                    if let Err(err) = decoder.set_chunk_size(size) {
                        return (messages, Some(err));
                    }
                }
                (2, Ok(csid)) => decoder.abort(csid),
                _ => {}
            }
            messages.push(message);
        }
    }
    (messages, None)
}
