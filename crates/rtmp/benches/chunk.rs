//! Chunk codec throughput: decode and encode of realistic message mixes.
//!
//! * `mix_4096`: one second of a 3 Mbit/s 720p30 stream (30 video messages of 12 KB and 43 AAC
//!   messages of 372 bytes, interleaved by timestamp) at chunk size 4096;
//! * `mix_128`: the same at the default chunk size 128;
//! * `keyframe_4096`: one 200 KB video keyframe at chunk size 4096.
//!
//! Throughput is in wire bytes (chunk headers included).

use std::hint::black_box;
use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weir_rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkMessage, DecoderLimits, TransmitQueue};

/// Chunk stream ids as the server uses them for audio and video.
const AUDIO_CHUNK_STREAM: u32 = 4;
const VIDEO_CHUNK_STREAM: u32 = 6;
/// Slices handed to one vectored write, as the server's connection driver does.
const MAX_IO_SLICES: usize = 512;

/// A named message mix and the chunk size it is sent with.
struct Case {
    name: &'static str,
    chunk_size: u32,
    messages: Vec<ChunkMessage>,
}

fn media(chunk_stream_id: u32, type_id: u8, timestamp: u32, payload: &Bytes) -> ChunkMessage {
    ChunkMessage {
        chunk_stream_id,
        timestamp,
        type_id,
        stream_id: 1,
        payload: payload.clone(),
    }
}

/// One second of 720p30 at about 3 Mbit/s: 30 × 12 KB video, 43 × 372 B AAC, by timestamp.
fn one_second_mix() -> Vec<ChunkMessage> {
    let mut video = vec![0x27, 0x01, 0, 0, 0];
    video.resize(12 * 1024, 0x5A);
    let video = Bytes::from(video);
    let mut audio = vec![0xAF, 0x01];
    audio.resize(372, 0x21);
    let audio = Bytes::from(audio);
    let mut messages: Vec<ChunkMessage> = (0..30)
        .map(|i| media(VIDEO_CHUNK_STREAM, 9, i * 1000 / 30, &video))
        .chain((0..43).map(|i| media(AUDIO_CHUNK_STREAM, 8, i * 1024 * 1000 / 44_100, &audio)))
        .collect();
    messages.sort_by_key(|m| m.timestamp);
    messages
}

fn keyframe() -> Vec<ChunkMessage> {
    let mut payload = vec![0x17, 0x01, 0, 0, 0];
    payload.resize(200 * 1024, 0x65);
    vec![media(VIDEO_CHUNK_STREAM, 9, 0, &Bytes::from(payload))]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "mix_4096",
            chunk_size: 4096,
            messages: one_second_mix(),
        },
        Case {
            name: "mix_128",
            chunk_size: 128,
            messages: one_second_mix(),
        },
        Case {
            name: "keyframe_4096",
            chunk_size: 4096,
            messages: keyframe(),
        },
    ]
}

fn encoder(chunk_size: u32) -> ChunkEncoder {
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(chunk_size);
    encoder
}

fn encode_all(case: &Case) -> Bytes {
    let mut encoder = encoder(case.chunk_size);
    let mut out = BytesMut::new();
    for message in &case.messages {
        encoder.encode(message, &mut out);
    }
    out.freeze()
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_decode");
    for case in cases() {
        let wire = encode_all(&case);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(case.name, |b| {
            b.iter_batched(
                || {
                    let mut decoder = ChunkDecoder::new(DecoderLimits::default());
                    decoder.set_chunk_size(case.chunk_size).unwrap();
                    (decoder, BytesMut::from(&wire[..]))
                },
                |(mut decoder, mut input)| {
                    let mut count = 0;
                    while let Some(message) = decoder.decode(&mut input).unwrap() {
                        black_box(&message);
                        count += 1;
                    }
                    assert_eq!(count, case.messages.len());
                    decoder
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk_encode");
    for case in cases() {
        let wire_len = encode_all(&case).len();
        group.throughput(Throughput::Bytes(wire_len as u64));

        // Contiguous: every payload byte copied into one buffer (reused across iterations).
        let mut out = BytesMut::with_capacity(wire_len);
        group.bench_function(format!("{}/contiguous", case.name), |b| {
            b.iter(|| {
                out.clear();
                let mut encoder = encoder(case.chunk_size);
                for message in &case.messages {
                    encoder.encode(message, &mut out);
                }
                assert_eq!(out.len(), wire_len);
                black_box(&out);
            });
        });

        // Zero-copy: the server's path. Each message is queued, then written out as a vectored
        // write would take it (io_slices, then advance by the full length; no socket).
        let mut queue = TransmitQueue::new();
        group.bench_function(format!("{}/queue_io_slices", case.name), |b| {
            b.iter(|| {
                let mut encoder = encoder(case.chunk_size);
                let mut written = 0;
                for message in &case.messages {
                    encoder.encode_to_queue(message, &mut queue);
                    written += drain(&mut queue);
                }
                assert_eq!(written, wire_len);
            });
        });
    }
    group.finish();
}

/// Drains `queue` the way the connection driver does, without a socket; returns the bytes.
fn drain(queue: &mut TransmitQueue) -> usize {
    let mut total = 0;
    while !queue.is_empty() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(16);
        let n = queue.io_slices(&mut slices, MAX_IO_SLICES);
        black_box(&slices);
        drop(slices);
        queue.advance(n);
        total += n;
    }
    total
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
