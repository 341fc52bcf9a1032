//! Byte builders for bad-input tests: chunk headers written by hand (so they can say
//! anything), partial messages, deeply nested AMF0, seeded random garbage and minimal
//! FLV video tag bodies.

use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use weir_rtmp::amf0::{self, Value};
use weir_rtmp::message::TYPE_VIDEO;

/// Seeded random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

/// A chunk basic header for `fmt` and `csid` (1, 2 or 3 bytes).
pub fn put_basic_header(out: &mut BytesMut, fmt: u8, csid: u32) {
    match csid {
        2..=63 => out.put_u8(fmt << 6 | csid as u8),
        64..=319 => {
            out.put_u8(fmt << 6);
            out.put_u8((csid - 64) as u8);
        }
        _ => {
            out.put_u8(fmt << 6 | 1);
            out.put_u16_le((csid - 64) as u16);
        }
    }
}

/// A fmt 0 chunk header declaring a message of `length` bytes.
pub fn put_fmt0_header(out: &mut BytesMut, csid: u32, length: u32, type_id: u8, stream_id: u32) {
    put_basic_header(out, 0, csid);
    out.put_uint(0, 3);
    out.put_uint(u64::from(length), 3);
    out.put_u8(type_id);
    out.put_u32_le(stream_id);
}

/// The first `chunks` chunks of a `length`-byte message split at `chunk_size`.
pub fn partial_message(csid: u32, length: u32, chunk_size: usize, chunks: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(chunks * (chunk_size + 1) + 12);
    put_fmt0_header(&mut out, csid, length, TYPE_VIDEO, 1);
    for i in 0..chunks {
        if i > 0 {
            put_basic_header(&mut out, 3, csid);
        }
        out.put_bytes(0x17, chunk_size);
    }
    out
}

/// A connect command whose command object nests `depth` containers (objects or strict
/// arrays) inside each other.
pub fn deeply_nested_connect(depth: usize, strict_arrays: bool) -> Bytes {
    let mut out = Vec::with_capacity(depth * 7 + 32);
    amf0::encode(&Value::from("connect"), &mut out);
    amf0::encode(&Value::from(1.0), &mut out);
    for _ in 0..depth {
        if strict_arrays {
            out.push(0x0A);
            out.extend_from_slice(&1u32.to_be_bytes());
        } else {
            out.push(0x03);
            out.extend_from_slice(&[0x00, 0x01, b'a']);
        }
    }
    out.push(0x05);
    if !strict_arrays {
        for _ in 0..depth {
            out.extend_from_slice(&[0x00, 0x00, 0x09]);
        }
    }
    Bytes::from(out)
}

/// A minimal AVC sequence header (FLV video tag body).
pub fn avc_sequence_header() -> Bytes {
    let sps = [
        0x67, 0x42, 0xC0, 0x1E, 0xDA, 0x02, 0x80, 0xBF, 0xE5, 0x84, 0x00,
    ];
    let pps = [0x68, 0xCE, 0x3C, 0x80];
    let mut body = vec![
        0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x42, 0xC0, 0x1E, 0xFF, 0xE1,
    ];
    body.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    body.extend_from_slice(&sps);
    body.push(0x01);
    body.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    body.extend_from_slice(&pps);
    Bytes::from(body)
}

/// A keyframe FLV video tag body with one small IDR NAL unit.
pub fn avc_keyframe() -> Bytes {
    let nal = [0x65, 0x88, 0x84, 0x00, 0x33, 0xFF];
    let mut body = vec![0x17, 0x01, 0x00, 0x00, 0x00];
    body.extend_from_slice(&(nal.len() as u32).to_be_bytes());
    body.extend_from_slice(&nal);
    Bytes::from(body)
}
