//! AMF0 decode and command round trip on bodies real encoders send. One element is one message
//! body, so elements/s is messages/s.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir_rtmp::amf0::{self, Limits, Value};
use weir_rtmp::command::Command;

/// The `connect` FFmpeg sends when it plays `rtmp://127.0.0.1:1935/live/key`
/// (libavformat/rtmpproto.c `gen_connect`, player form).
fn ffmpeg_connect() -> Vec<u8> {
    let object = Value::object([
        ("app", Value::from("live")),
        ("flashVer", Value::from("LNX 9,0,124,2")),
        ("tcUrl", Value::from("rtmp://127.0.0.1:1935/live")),
        ("fpad", Value::from(false)),
        ("capabilities", Value::from(15.0)),
        ("audioCodecs", Value::from(4071.0)),
        ("videoCodecs", Value::from(252.0)),
        ("videoFunction", Value::from(1.0)),
    ]);
    let mut body = Vec::new();
    amf0::encode_all(
        &[Value::from("connect"), Value::from(1.0), object],
        &mut body,
    );
    body
}

/// The `@setDataFrame onMetaData` OBS sends: an ECMA array of its 20 keys.
fn obs_metadata() -> Vec<u8> {
    let number = |n: f64| Value::from(n);
    let entries: Vec<(String, Value)> = [
        ("duration", number(0.0)),
        ("fileSize", number(0.0)),
        ("width", number(1280.0)),
        ("height", number(720.0)),
        ("videocodecid", number(7.0)),
        ("videodatarate", number(2500.0)),
        ("framerate", number(30.0)),
        ("audiocodecid", number(10.0)),
        ("audiodatarate", number(160.0)),
        ("audiosamplerate", number(48000.0)),
        ("audiosamplesize", number(16.0)),
        ("audiochannels", number(2.0)),
        ("stereo", Value::from(true)),
        ("2.1", Value::from(false)),
        ("3.1", Value::from(false)),
        ("4.0", Value::from(false)),
        ("4.1", Value::from(false)),
        ("5.1", Value::from(false)),
        ("7.1", Value::from(false)),
        (
            "encoder",
            Value::from("obs-output module (libobs version 30.1.2)"),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    assert_eq!(entries.len(), 20);
    let mut body = Vec::new();
    amf0::encode_all(
        &[
            Value::from("@setDataFrame"),
            Value::from("onMetaData"),
            Value::EcmaArray(entries),
        ],
        &mut body,
    );
    body
}

fn amf(c: &mut Criterion) {
    let limits = Limits::default();
    let connect = ffmpeg_connect();
    let metadata = obs_metadata();

    let mut group = c.benchmark_group("amf0");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_ffmpeg_connect", |b| {
        b.iter(|| {
            let values = amf0::decode_all(black_box(&connect), &limits).unwrap();
            assert_eq!(values.len(), 3);
            values
        });
    });
    group.bench_function("decode_obs_metadata", |b| {
        b.iter(|| {
            let values = amf0::decode_all(black_box(&metadata), &limits).unwrap();
            assert_eq!(values.len(), 3);
            values
        });
    });
    group.bench_function("command_roundtrip_connect", |b| {
        b.iter(|| {
            let command = Command::decode(black_box(&connect), &limits).unwrap();
            let encoded = command.encode();
            assert_eq!(encoded.len(), connect.len());
            encoded
        });
    });
    group.finish();
}

criterion_group!(benches, amf);
criterion_main!(benches);
