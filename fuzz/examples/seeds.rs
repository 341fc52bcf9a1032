//! Writes the named seeds of the `command`, `server_session` and `record_index` fuzz targets.
//!
//! Regenerate (deterministic: fixed randomness, simulated time) from `fuzz/`:
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-fuzz cargo run --example seeds
//! ```
//!
//! Session seeds are the bytes a [`ClientSession`] sends to an in-memory [`ServerSession`]
//! (handshake, connect, createStream, publish or play), followed by hand-built messages that
//! reach deeper states, behind the target's 4 control bytes. Each seed is replayed into a fresh
//! server and its events are printed, so a seed that stops reaching its state shows up.

use std::fs;
use std::path::Path;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use weir_rtmp::amf0::{self, Value};
use weir_rtmp::chunk::{ChunkEncoder, ChunkMessage};
use weir_rtmp::command::{self, code, Command, StatusLevel};
use weir_rtmp::message::{
    self, UserControl, TYPE_AGGREGATE, TYPE_AUDIO, TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3,
    TYPE_DATA_AMF0, TYPE_DATA_AMF3, TYPE_VIDEO,
};
use weir_rtmp::session::{
    ClientConfig, ClientSession, MediaType, ServerConfig, ServerEvent, ServerSession,
};

/// Same S1 block as the fuzz target.
const SERVER_RANDOM: [u8; 1528] = [0x5A; 1528];
/// Control bytes: whole input at once, accept everything, few application actions.
const PLAIN: [u8; 4] = [0x00, 0xFF, 0x20, 0x00];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    write_command_seeds(&root.join("command"));
    write_session_seeds(&root.join("server_session"));
    write_record_seeds(&root.join("record_index"));
}

/// Recordings of a synthetic H.264 + AAC stream made by weir's recorder: whole, and cut
/// inside its last fragment.
fn write_record_seeds(dir: &Path) {
    use weir_media::record::{Fmp4Recorder, RecordConfig, RecordEvent};
    use weir_media::Frame;
    let mut recorder = Fmp4Recorder::new(RecordConfig {
        fragment_ms: 500,
        ..RecordConfig::default()
    });
    let mut events = Vec::new();
    recorder.push(&Frame::video(0, avc_sequence_header()), 0, &mut events);
    recorder.push(
        &Frame::audio(0, Bytes::from_static(&[0xaf, 0, 0x11, 0x90])),
        0,
        &mut events,
    );
    for i in 0..60u32 {
        let ts = i * 40;
        let key = i % 15 == 0;
        let video = [
            if key { 0x17 } else { 0x27 },
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            2,
            if key { 0x65 } else { 0x41 },
            0xaa,
        ];
        recorder.push(
            &Frame::audio(ts, Bytes::from_static(&[0xaf, 1, 0x21, 0x10])),
            u64::from(ts),
            &mut events,
        );
        recorder.push(
            &Frame::video(ts, Bytes::copy_from_slice(&video)),
            u64::from(ts),
            &mut events,
        );
    }
    recorder.finish(&mut events);
    let mut file = Vec::new();
    for event in events {
        match event {
            RecordEvent::Open { init, .. } => file.extend_from_slice(&init),
            RecordEvent::Fragment { chunks, .. } => {
                chunks.iter().for_each(|c| file.extend_from_slice(c))
            }
            RecordEvent::Close { .. } => {}
        }
    }
    write(dir, "h264-aac", &file);
    write(dir, "h264-aac-cut", &file[..file.len() - 7]);
    println!("record_index: {} bytes", file.len());
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn write_command_seeds(dir: &Path) {
    let obs_connect = Value::object([
        ("app", Value::from("live")),
        ("type", Value::from("nonprivate")),
        ("flashVer", Value::from("FMLE/3.0 (compatible; FMSc/1.0)")),
        ("swfUrl", Value::from("rtmp://127.0.0.1:1935/live")),
        ("tcUrl", Value::from("rtmp://127.0.0.1:1935/live")),
    ]);
    let ffmpeg_connect = Value::object([
        ("app", Value::from("live?token=abc")),
        ("flashVer", Value::from("LNX 9,0,124,2")),
        ("tcUrl", Value::from("rtmp://127.0.0.1:1935/live?token=abc")),
        ("fpad", Value::from(false)),
        ("capabilities", Value::from(15.0)),
        ("audioCodecs", Value::from(4071.0)),
        ("videoCodecs", Value::from(252.0)),
        ("videoFunction", Value::from(1.0)),
        (
            "fourCcList",
            Value::StrictArray(vec![
                Value::from("av01"),
                Value::from("hvc1"),
                Value::from("vp09"),
            ]),
        ),
    ]);
    let amf3_connect = Value::object([
        ("app", Value::from("live")),
        ("objectEncoding", Value::from(3.0)),
        (
            "extra",
            Value::Avmplus(weir_rtmp::amf3::Value::Array {
                associative: vec![("k".into(), weir_rtmp::amf3::Value::Integer(7))],
                dense: vec![weir_rtmp::amf3::Value::String("v".into())],
            }),
        ),
    ]);
    let connect_reply = command::result(
        1.0,
        Value::object([
            ("fmsVer", Value::from("FMS/3,0,1,123")),
            ("capabilities", Value::from(31.0)),
        ]),
        vec![Value::object([
            ("level", Value::from("status")),
            ("code", Value::from(code::CONNECT_SUCCESS)),
            ("description", Value::from("Connection succeeded.")),
            ("objectEncoding", Value::from(0.0)),
        ])],
    );
    let commands = [
        (
            "connect-obs.bin",
            Command::new("connect", 1.0, obs_connect, vec![]),
        ),
        (
            "connect-ffmpeg-enhanced.bin",
            Command::new("connect", 1.0, ffmpeg_connect, vec![]),
        ),
        (
            "connect-amf3-object-encoding.bin",
            Command::new("connect", 1.0, amf3_connect.clone(), vec![]),
        ),
        (
            "publish-live-with-query.bin",
            Command::new(
                "publish",
                5.0,
                Value::Null,
                vec![Value::from("key?token=1"), Value::from("live")],
            ),
        ),
        (
            "play-start-duration-reset.bin",
            Command::new(
                "play",
                6.0,
                Value::Null,
                vec![
                    Value::from("stream"),
                    Value::from(-2000.0),
                    Value::from(-1.0),
                    Value::from(true),
                ],
            ),
        ),
        ("result-connect.bin", connect_reply),
        (
            "onstatus-publish-start.bin",
            command::on_status(StatusLevel::Status, code::PUBLISH_START, "Start publishing"),
        ),
        (
            "error-call-failed.bin",
            command::error(9.0, code::CALL_FAILED, "unknown command"),
        ),
        (
            "create-stream.bin",
            Command::new("createStream", 4.0, Value::Null, vec![]),
        ),
        (
            "delete-stream.bin",
            Command::new("deleteStream", 0.0, Value::Null, vec![Value::from(1.0)]),
        ),
        (
            "pause-with-time.bin",
            Command::new(
                "pause",
                0.0,
                Value::Null,
                vec![Value::from(true), Value::from(1234.0)],
            ),
        ),
        (
            "unknown-command-nan-transaction.bin",
            Command::new(
                "someVendorCall",
                f64::NAN,
                Value::Undefined,
                vec![Value::EcmaArray(vec![("x".into(), Value::from(1.0))])],
            ),
        ),
    ];
    for (name, command) in &commands {
        write(dir, name, &command.encode());
    }
    // An AMF3 command message body: format byte 0, then AMF0.
    let mut amf3_body = vec![0x00];
    amf3_body.extend_from_slice(&Command::new("connect", 1.0, amf3_connect, vec![]).encode());
    write(dir, "amf3-message-connect.bin", &amf3_body);
    // Only a name: transaction id and command object are missing.
    let mut short = Vec::new();
    amf0::encode(&Value::from("onBWDone"), &mut short);
    write(dir, "short-name-only.bin", &short);
}

/// A client and a server joined in memory; records everything the client sent.
struct Pair {
    now: Instant,
    client: ClientSession,
    server: ServerSession,
    client_bytes: Vec<u8>,
}

impl Pair {
    fn new(config: ClientConfig) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: ClientSession::new(config, now, [7; 1528]),
            server: ServerSession::new(ServerConfig::default(), now, SERVER_RANDOM),
            client_bytes: Vec::new(),
        }
    }

    fn run(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                moved = true;
                self.client_bytes.extend_from_slice(&bytes);
                self.server
                    .handle_input(self.now, &bytes)
                    .expect("server input");
                while let Some(event) = self.server.poll_event() {
                    accept(&mut self.server, &event);
                }
            }
            while let Some(bytes) = self.server.poll_transmit() {
                moved = true;
                self.client
                    .handle_input(self.now, &bytes)
                    .expect("client input");
            }
            while self.client.poll_event().is_some() {}
            if !moved {
                return;
            }
        }
        panic!("pair never settled");
    }
}

fn accept(server: &mut ServerSession, event: &ServerEvent) {
    match event {
        ServerEvent::ConnectRequested(_) => server.accept_connect().expect("accept connect"),
        ServerEvent::PublishRequested(r) => server.accept_publish(r.stream_id).expect("publish"),
        ServerEvent::PlayRequested(r) => server.accept_play(r.stream_id).expect("play"),
        _ => {}
    }
}

/// Hand-built messages sent after what a [`ClientSession`] sent, with its chunk size.
struct Extra {
    encoder: ChunkEncoder,
    out: BytesMut,
}

impl Extra {
    fn new() -> Self {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(4096);
        Self {
            encoder,
            out: BytesMut::new(),
        }
    }

    fn message(&mut self, chunk_stream_id: u32, type_id: u8, stream_id: u32, payload: Bytes) {
        self.encoder.encode(
            &ChunkMessage {
                chunk_stream_id,
                timestamp: 0,
                type_id,
                stream_id,
                payload,
            },
            &mut self.out,
        );
    }

    fn control(&mut self, message: ChunkMessage) {
        self.encoder.encode(&message, &mut self.out);
    }

    fn command(&mut self, stream_id: u32, name: &str, tid: f64, arguments: Vec<Value>) {
        let command = Command::new(name, tid, Value::Null, arguments);
        self.message(3, TYPE_COMMAND_AMF0, stream_id, command.encode());
    }
}

fn avc_sequence_header() -> Bytes {
    Bytes::from_static(&[
        0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x0B, 0x67, 0x64,
        0x00, 0x1F, 0xAC, 0xD9, 0x40, 0x50, 0x05, 0xBB, 0x01, 0x01, 0x00, 0x04, 0x68, 0xEB, 0xE3,
        0xCB,
    ])
}

fn metadata() -> Vec<u8> {
    let mut body = Vec::new();
    amf0::encode_all(
        &[
            Value::from("onMetaData"),
            Value::EcmaArray(vec![
                ("width".into(), Value::from(1280.0)),
                ("height".into(), Value::from(720.0)),
                ("videocodecid".into(), Value::from(7.0)),
                ("audiocodecid".into(), Value::from(10.0)),
            ]),
        ],
        &mut body,
    );
    body
}

/// Publishes `key` and sends metadata, an AVC sequence header, AAC and a few frames, some
/// larger than a chunk.
fn publish_h264(config: ClientConfig, key: &str) -> Pair {
    let mut pair = Pair::new(config);
    pair.client.publish(pair.now, key);
    pair.run();
    pair.client.send_metadata(0, &metadata());
    pair.client
        .send_media(MediaType::Video, 0, avc_sequence_header());
    pair.client.send_media(
        MediaType::Audio,
        0,
        Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10]),
    );
    for i in 0..6u32 {
        let key_frame = i % 3 == 0;
        let mut frame = vec![if key_frame { 0x17 } else { 0x27 }, 0x01, 0x00, 0x00, 0x21];
        frame.extend(std::iter::repeat_n(
            i as u8,
            if key_frame { 9000 } else { 700 },
        ));
        pair.client
            .send_media(MediaType::Video, i * 33, Bytes::from(frame));
        pair.client.send_media(
            MediaType::Audio,
            i * 23,
            Bytes::from(vec![0xAF, 0x01, 0x21, 0x10, 0x04, 0x60]),
        );
    }
    pair.run();
    pair
}

fn play(key: &str) -> Pair {
    let mut pair = Pair::new(ClientConfig::new("127.0.0.1:1935", "live"));
    pair.client.play(pair.now, key);
    pair.run();
    pair
}

fn seed(control: [u8; 4], bytes: &[u8]) -> Vec<u8> {
    [&control[..], bytes].concat()
}

fn aggregate() -> Bytes {
    let mut body = BytesMut::new();
    let parts: [(u8, &[u8]); 3] = [
        (TYPE_VIDEO, &[0x27, 0x01, 0x00, 0x00, 0x00, 0xAA]),
        (TYPE_AUDIO, &[0xAF, 0x01, 0x21]),
        (
            TYPE_DATA_AMF0,
            &[
                0x02, 0x00, 0x0A, b'o', b'n', b'M', b'e', b't', b'a', b'D', b'a', b't', b'a', 0x05,
            ],
        ),
    ];
    for (i, (type_id, payload)) in parts.iter().enumerate() {
        body.put_u8(*type_id);
        body.put_uint(payload.len() as u64, 3);
        body.put_uint(100 + i as u64 * 10, 3);
        body.put_u8(0);
        body.put_uint(1, 3);
        body.put_slice(payload);
        body.put_u32(11 + payload.len() as u32);
    }
    body.freeze()
}

fn write_session_seeds(dir: &Path) {
    let ffmpeg = ClientConfig {
        flash_version: "LNX 9,0,124,2".into(),
        ..ClientConfig::new("127.0.0.1:1935", "live")
    };
    let obs = ClientConfig {
        flash_version: "FMLE/3.0 (compatible; FMSc/1.0)".into(),
        digest_handshake: false,
        ..ClientConfig::new("127.0.0.1:1935", "live?token=s3cret")
    };
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    let h264 = publish_h264(ffmpeg.clone(), "key").client_bytes;
    seeds.push(("publish-h264.bin", seed(PLAIN, &h264)));
    seeds.push((
        "publish-h264-bytewise.bin",
        seed([0x01, 0xFF, 0x20, 0x00], &h264),
    ));
    seeds.push((
        "publish-h264-mixed-splits-delayed-answers.bin",
        seed([0x07, 0xFF, 0x40, 0x12], &h264),
    ));
    seeds.push((
        "publish-h264-tight-limits.bin",
        seed([0x03, 0xFF, 0x20, 0x01], &h264),
    ));
    seeds.push((
        "publish-h264-rejected.bin",
        seed([0x00, 0xFD, 0x20, 0x00], &h264),
    ));
    seeds.push((
        "connect-rejected.bin",
        seed([0x00, 0xFE, 0x00, 0x00], &h264),
    ));

    let mut pair = publish_h264(obs, "obs-key?token=1");
    pair.client.close_stream();
    pair.run();
    seeds.push((
        "publish-obs-simple-handshake-then-unpublish.bin",
        seed(PLAIN, &pair.client_bytes),
    ));

    let mut garbage = h264.clone();
    let mut x = 0x1234_5678u32;
    garbage.extend((0..2000).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    seeds.push(("publish-then-garbage.bin", seed(PLAIN, &garbage)));

    let mut extra = Extra::new();
    extra.message(4, TYPE_AGGREGATE, 1, aggregate());
    extra.message(
        5,
        TYPE_DATA_AMF3,
        1,
        Bytes::from([&[0u8][..], &metadata()].concat()),
    );
    extra.control(message::set_chunk_size(128));
    extra.encoder.set_chunk_size(128);
    extra.control(message::user_control(UserControl::PingRequest(77)));
    extra.control(message::acknowledgement(5000));
    extra.control(message::window_ack_size(4096));
    extra.control(message::abort(6));
    extra.message(6, TYPE_AUDIO, 1, Bytes::from(vec![0xAF; 300]));
    extra.command(0, "FCUnpublish", 9.0, vec![Value::from("key")]);
    extra.command(
        1,
        "publish",
        10.0,
        vec![Value::from("again"), Value::from("record")],
    );
    extra.command(1, "closeStream", 0.0, vec![]);
    extra.command(0, "deleteStream", 11.0, vec![Value::from(1.0)]);
    seeds.push((
        "publish-aggregate-control-messages-unpublish.bin",
        seed(PLAIN, &[&h264[..], &extra.out].concat()),
    ));

    let play_bytes = play("stream").client_bytes;
    seeds.push(("play.bin", seed([0x00, 0xFF, 0x80, 0x00], &play_bytes)));
    let mut extra = Extra::new();
    extra.command(1, "pause", 0.0, vec![Value::from(true), Value::from(500.0)]);
    extra.command(
        1,
        "pause",
        0.0,
        vec![Value::from(false), Value::from(500.0)],
    );
    extra.command(1, "receiveAudio", 0.0, vec![Value::from(false)]);
    extra.command(1, "receiveVideo", 0.0, vec![Value::from(false)]);
    extra.command(
        1,
        "play",
        12.0,
        vec![Value::from("other?x=1"), Value::from(-1.0)],
    );
    extra.command(1, "getStreamLength", 13.0, vec![Value::from("other")]);
    extra.control(message::user_control(UserControl::SetBufferLength {
        stream_id: 1,
        millis: 3000,
    }));
    extra.command(0, "createStream", 14.0, vec![]);
    extra.command(2, "play", 15.0, vec![Value::from("third")]);
    extra.command(1, "closeStream", 0.0, vec![]);
    extra.command(0, "deleteStream", 0.0, vec![Value::from(2.0)]);
    seeds.push((
        "play-pause-receive-switch-close.bin",
        seed(
            [0x00, 0xFF, 0xC0, 0x00],
            &[&play_bytes[..], &extra.out].concat(),
        ),
    ));

    // A hardware encoder style publish: no createStream, publish straight on stream 1, with
    // AMF3 (type 17) commands and an unknown command.
    let handshake_and_connect = {
        let mut pair = Pair::new(ffmpeg);
        pair.run();
        pair.client_bytes
    };
    let mut extra = Extra::new();
    let mut body = vec![0x00];
    body.extend_from_slice(
        &Command::new("releaseStream", 2.0, Value::Null, vec![Value::from("hw")]).encode(),
    );
    extra.message(3, TYPE_COMMAND_AMF3, 0, Bytes::from(body));
    extra.command(0, "vendorHello", 3.0, vec![Value::from(1.0)]);
    extra.command(0, "FCPublish", 4.0, vec![Value::from("hw")]);
    extra.command(1, "publish", 5.0, vec![Value::from("hw")]);
    extra.message(7, TYPE_VIDEO, 1, avc_sequence_header());
    extra.message(5, TYPE_DATA_AMF0, 1, Bytes::from(metadata()));
    seeds.push((
        "publish-without-create-stream-amf3-commands.bin",
        seed(PLAIN, &[&handshake_and_connect[..], &extra.out].concat()),
    ));

    for (name, bytes) in &seeds {
        write(dir, name, bytes);
        println!("{name}: {} bytes, {}", bytes.len(), replay(&bytes[4..]));
    }
}

/// Feeds a seed's stream into a fresh server that accepts everything; summarizes its events.
fn replay(stream: &[u8]) -> String {
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), now, SERVER_RANDOM);
    let mut names: Vec<String> = Vec::new();
    let mut result = server.handle_input(now, stream);
    while let Some(event) = server.poll_event() {
        let answered = match &event {
            ServerEvent::ConnectRequested(_) => server.accept_connect(),
            ServerEvent::PublishRequested(r) => server.accept_publish(r.stream_id),
            ServerEvent::PlayRequested(r) => server.accept_play(r.stream_id),
            _ => Ok(()),
        };
        result = result.and(answered);
        let name = format!("{event:?}");
        let name = name
            .split([' ', '(', '{'])
            .next()
            .unwrap_or_default()
            .to_owned();
        match names.last_mut() {
            Some(last) if last.starts_with(&name) => last.push('+'),
            _ => names.push(name),
        }
    }
    format!("events [{}], end {:?}", names.join(" "), result.err())
}
