//! Golden bytes for every reply the server session sends.
//!
//! A raw client (our own chunk encoder, no [`ClientSession`]) drives a [`ServerSession`]; the
//! server's output is decoded chunk by chunk and each message's (type id, message stream id,
//! chunk stream id, payload) is compared with hex written by hand. The AMF0 in the expected
//! payloads is spelled out with the rules of the spec (string `02` + UI16 length, number `00` +
//! f64 big-endian, object `03` … `00 00 09`), never produced by the crate's encoder, so a change
//! in the encoder shows up here.

use std::time::Instant;

use bytes::BytesMut;

use super::*;
use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkMessage, DecoderLimits};
use crate::command::Command;
use crate::message::TYPE_COMMAND_AMF0;

/// One message the server sent, as the test compares it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Reply {
    pub(super) type_id: u8,
    pub(super) stream_id: u32,
    pub(super) chunk_stream_id: u32,
    /// Lowercase hex, no spaces.
    pub(super) payload: String,
}

/// The expected reply; `payload` is hex, whitespace ignored.
pub(super) fn reply(type_id: u8, stream_id: u32, chunk_stream_id: u32, payload: &str) -> Reply {
    Reply {
        type_id,
        stream_id,
        chunk_stream_id,
        payload: squeeze(payload),
    }
}

/// Hex without whitespace, lowercase.
pub(super) fn squeeze(hex: &str) -> String {
    hex.split_whitespace().collect::<String>().to_lowercase()
}

/// Bytes from hex, whitespace ignored.
pub(super) fn unhex(hex: &str) -> Vec<u8> {
    let digits = squeeze(hex);
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Hex of bytes, lowercase, no spaces.
pub(super) fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// AMF0, by hand.

/// UI16 length + UTF-8: an object key, or a string body.
pub(super) fn utf8(text: &str) -> String {
    format!("{:04x}{}", text.len(), to_hex(text.as_bytes()))
}

/// String marker 0x02 + UI16 length + UTF-8.
pub(super) fn string(text: &str) -> String {
    format!("02{}", utf8(text))
}

/// Object marker 0x03, `key value` pairs, end marker 00 00 09.
pub(super) fn object(properties: &[(&str, String)]) -> String {
    let body: String = properties
        .iter()
        .map(|(key, value)| format!("{}{}", utf8(key), squeeze(value)))
        .collect();
    format!("03{body}000009")
}

/// Null marker.
const NULL: &str = "05";
/// Undefined marker.
const UNDEFINED: &str = "06";
/// Boolean true.
const TRUE: &str = "01 01";
/// Numbers: marker 0x00 + IEEE-754 double, big-endian.
const NUM_0: &str = "00 00 00 00 00 00 00 00 00";
const NUM_1: &str = "00 3f f0 00 00 00 00 00 00";
const NUM_2: &str = "00 40 00 00 00 00 00 00 00";
const NUM_3: &str = "00 40 08 00 00 00 00 00 00";
const NUM_4: &str = "00 40 10 00 00 00 00 00 00";
const NUM_5: &str = "00 40 14 00 00 00 00 00 00";
const NUM_6: &str = "00 40 18 00 00 00 00 00 00";
const NUM_42: &str = "00 40 45 00 00 00 00 00 00";

/// `{level, code, description}`.
fn status(level: &str, code: &str, description: &str) -> String {
    object(&[
        ("level", string(level)),
        ("code", string(code)),
        ("description", string(description)),
    ])
}

/// `onStatus(0, null, {level, code, description})`.
fn on_status(level: &str, code: &str, description: &str) -> String {
    format!(
        "{}{}{}{}",
        string("onStatus"),
        squeeze(NUM_0),
        NULL,
        status(level, code, description)
    )
}

/// `_result(transaction id, null, undefined)`: the empty answer.
fn empty_result(transaction_id: &str) -> String {
    format!(
        "{}{}{NULL}{UNDEFINED}",
        string("_result"),
        squeeze(transaction_id)
    )
}

/// Message type ids and chunk streams, spelled out.
const SET_CHUNK_SIZE: u8 = 0x01;
const USER_CONTROL: u8 = 0x04;
const WINDOW_ACK_SIZE: u8 = 0x05;
const SET_PEER_BANDWIDTH: u8 = 0x06;
const DATA_AMF0: u8 = 0x12;
const COMMAND_AMF0: u8 = 0x14;
const CONTROL_CSID: u32 = 2;
const COMMAND_CSID: u32 = 3;
const DATA_CSID: u32 = 5;

/// A server session driven by hand-made client bytes.
pub(super) struct Raw {
    pub(super) now: Instant,
    pub(super) server: ServerSession,
    /// Client → server chunking (chunk size 128 unless a test changes it).
    encoder: ChunkEncoder,
    /// Server → client: decodes the server's output.
    decoder: ChunkDecoder,
    /// Bytes fed to the server so far, handshake included: the test's own count.
    pub(super) sent: u64,
}

impl Raw {
    /// A server past the handshake (simple C1), waiting for connect.
    pub(super) fn handshaken() -> Self {
        let now = Instant::now();
        let mut raw = Self {
            now,
            server: ServerSession::new(ServerConfig::default(), now, [9; 1528]),
            encoder: ChunkEncoder::new(),
            decoder: ChunkDecoder::new(DecoderLimits::default()),
            sent: 0,
        };
        let mut c0c1 = vec![0u8; 1537];
        c0c1[0] = 0x03;
        raw.feed(&c0c1);
        let s0s1s2 = raw.server.poll_transmit().expect("S0+S1+S2");
        assert_eq!(s0s1s2.len(), 1 + 1536 + 1536);
        assert_eq!(s0s1s2[0], 0x03);
        raw.feed(&[0u8; 1536]);
        assert_eq!(raw.server.poll_transmit(), None);
        raw
    }

    /// A connected server; returns it with the replies to connect.
    pub(super) fn connected(object_encoding: Option<f64>) -> (Self, Vec<Reply>) {
        let mut raw = Self::handshaken();
        let mut properties = vec![
            ("app", Value::from("live")),
            ("type", Value::from("nonprivate")),
            ("flashVer", Value::from("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("tcUrl", Value::from("rtmp://localhost/live")),
        ];
        if let Some(encoding) = object_encoding {
            properties.push(("objectEncoding", Value::from(encoding)));
        }
        let connect = Command::new("connect", 1.0, Value::object(properties), vec![]);
        raw.send(COMMAND_CSID, TYPE_COMMAND_AMF0, 0, 0, &connect.encode());
        let events = raw.events();
        assert!(
            matches!(events[..], [ServerEvent::ConnectRequested(_)]),
            "{events:?}"
        );
        assert_eq!(raw.replies(), vec![], "nothing is sent before the answer");
        raw.server.accept_connect().unwrap();
        let replies = raw.replies();
        (raw, replies)
    }

    /// A connected server with message stream 1 created.
    pub(super) fn with_stream() -> Self {
        let (mut raw, _) = Self::connected(None);
        raw.command(0, "createStream", 2.0, vec![]);
        assert_eq!(raw.replies().len(), 1);
        raw
    }

    /// A server whose client publishes `key` on message stream 1.
    pub(super) fn publishing() -> Self {
        let mut raw = Self::with_stream();
        raw.command(
            1,
            "publish",
            3.0,
            vec![Value::from("key"), Value::from("live")],
        );
        assert!(matches!(
            raw.events()[..],
            [ServerEvent::PublishRequested(_)]
        ));
        raw.server.accept_publish(1).unwrap();
        assert_eq!(raw.replies().len(), 2);
        raw
    }

    /// A server whose client plays `key` on message stream 1.
    pub(super) fn playing() -> Self {
        let mut raw = Self::with_stream();
        raw.command(1, "play", 3.0, vec![Value::from("key")]);
        assert!(matches!(raw.events()[..], [ServerEvent::PlayRequested(_)]));
        raw.server.accept_play(1).unwrap();
        // StreamBegin, Play.Reset, Play.Start, |RtmpSampleAccess.
        assert_eq!(raw.replies().len(), 4);
        raw
    }

    /// Feeds raw bytes to the server.
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        self.server.handle_input(self.now, bytes).unwrap();
        self.sent += bytes.len() as u64;
    }

    /// Chunks one message with the client's encoder and feeds it; returns the bytes it took.
    pub(super) fn send(
        &mut self,
        chunk_stream_id: u32,
        type_id: u8,
        stream_id: u32,
        timestamp: u32,
        payload: &[u8],
    ) -> usize {
        let mut out = BytesMut::new();
        self.encoder.encode(
            &ChunkMessage {
                chunk_stream_id,
                timestamp,
                type_id,
                stream_id,
                payload: Bytes::copy_from_slice(payload),
            },
            &mut out,
        );
        self.feed(&out);
        out.len()
    }

    /// Sends an AMF0 command with a null command object.
    pub(super) fn command(&mut self, stream_id: u32, name: &str, tid: f64, args: Vec<Value>) {
        let body = Command::new(name, tid, Value::Null, args).encode();
        self.send(COMMAND_CSID, TYPE_COMMAND_AMF0, stream_id, 0, &body);
    }

    /// Events the server reported.
    pub(super) fn events(&mut self) -> Vec<ServerEvent> {
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Everything the server sent since the last call, decoded chunk by chunk (applying its
    /// Set Chunk Size as a client would).
    pub(super) fn replies(&mut self) -> Vec<Reply> {
        let mut input = BytesMut::new();
        while let Some(bytes) = self.server.poll_transmit() {
            input.extend_from_slice(&bytes);
        }
        let mut replies = Vec::new();
        while let Some(message) = self.decoder.decode(&mut input).unwrap() {
            if message.type_id == SET_CHUNK_SIZE {
                let size = <[u8; 4]>::try_from(&message.payload[..]).unwrap();
                self.decoder
                    .set_chunk_size(u32::from_be_bytes(size))
                    .unwrap();
            }
            replies.push(Reply {
                type_id: message.type_id,
                stream_id: message.stream_id,
                chunk_stream_id: message.chunk_stream_id,
                payload: to_hex(&message.payload),
            });
        }
        assert!(input.is_empty(), "server output ends in a partial chunk");
        replies
    }
}

/// Window Ack Size, Set Peer Bandwidth and Set Chunk Size, before every connect `_result`.
fn connect_controls() -> Vec<Reply> {
    vec![
        // 2 500 000 = 0x002625a0.
        reply(WINDOW_ACK_SIZE, 0, CONTROL_CSID, "00 26 25 a0"),
        // ... limit type 2 (dynamic).
        reply(SET_PEER_BANDWIDTH, 0, CONTROL_CSID, "00 26 25 a0 02"),
        reply(SET_CHUNK_SIZE, 0, CONTROL_CSID, "00 00 10 00"),
    ]
}

#[test]
fn connect_sequence_echoes_object_encoding_3() {
    let (_, replies) = Raw::connected(Some(3.0));
    let result = "
        02 00 07 5f 72 65 73 75 6c 74                        # _result
        00 3f f0 00 00 00 00 00 00                           # 1
        03
          00 06 66 6d 73 56 65 72                            # fmsVer
          02 00 0d 46 4d 53 2f 33 2c 30 2c 31 2c 31 32 33    # FMS/3,0,1,123
          00 0c 63 61 70 61 62 69 6c 69 74 69 65 73          # capabilities
          00 40 3f 00 00 00 00 00 00                         # 31
          00 04 6d 6f 64 65                                  # mode
          00 3f f0 00 00 00 00 00 00                         # 1
          00 12 76 69 64 65 6f 46 6f 75 72 43 63 49 6e 66 6f 4d 61 70 03# videoFourCcInfoMap
            00 04 61 76 63 31 00 40 10 00 00 00 00 00 00      # avc1: CanForward
            00 04 68 76 63 31 00 40 10 00 00 00 00 00 00      # hvc1: CanForward
            00 04 61 76 30 31 00 40 10 00 00 00 00 00 00      # av01: CanForward
            00 04 76 70 30 39 00 40 10 00 00 00 00 00 00      # vp09: CanForward
            00 04 76 70 30 38 00 40 10 00 00 00 00 00 00      # vp08: CanForward
            00 04 76 76 63 31 00 40 10 00 00 00 00 00 00      # vvc1: CanForward
          00 00 09                                            #
          00 12 61 75 64 69 6f 46 6f 75 72 43 63 49 6e 66 6f 4d 61 70 03# audioFourCcInfoMap
            00 04 6d 70 34 61 00 40 10 00 00 00 00 00 00      # mp4a: CanForward
            00 04 2e 6d 70 33 00 40 10 00 00 00 00 00 00      # .mp3: CanForward
            00 04 4f 70 75 73 00 40 10 00 00 00 00 00 00      # Opus: CanForward
            00 04 66 4c 61 43 00 40 10 00 00 00 00 00 00      # fLaC: CanForward
            00 04 61 63 2d 33 00 40 10 00 00 00 00 00 00      # ac-3: CanForward
            00 04 65 63 2d 33 00 40 10 00 00 00 00 00 00      # ec-3: CanForward
          00 00 09                                            #
          00 06 63 61 70 73 45 78                             # capsEx
          00 40 2e 00 00 00 00 00 00                          # Reconnect | Multitrack | ModEx | TimestampNanoOffset
        00 00 09
        03
          00 05 6c 65 76 65 6c                               # level
          02 00 06 73 74 61 74 75 73                         # status
          00 04 63 6f 64 65                                  # code
          02 00 1d 4e 65 74 43 6f 6e 6e 65 63 74 69 6f 6e   # NetConnection
                   2e 43 6f 6e 6e 65 63 74                   # .Connect
                   2e 53 75 63 63 65 73 73                   # .Success
          00 0b 64 65 73 63 72 69 70 74 69 6f 6e             # description
          02 00 15 43 6f 6e 6e 65 63 74 69 6f 6e 20          # Connection
                   73 75 63 63 65 65 64 65 64 2e             # succeeded.
          00 0e 6f 62 6a 65 63 74 45 6e 63 6f 64 69 6e 67    # objectEncoding
          00 40 08 00 00 00 00 00 00                         # 3
        00 00 09";
    let result: String = result
        .lines()
        .map(|line| squeeze(line.split('#').next().unwrap_or_default()))
        .collect();
    let mut expected = connect_controls();
    expected.push(reply(COMMAND_AMF0, 0, COMMAND_CSID, &result));
    assert_eq!(replies, expected);
}

/// An AMF0 object of FourCC keys, each with the flag CanForward (4.0).
fn fourcc_map(fourccs: &[&str]) -> String {
    let entries: Vec<(&str, String)> = fourccs
        .iter()
        .map(|f| (*f, "00 40 10 00 00 00 00 00 00".to_owned()))
        .collect();
    object(&entries)
}

#[test]
fn connect_without_object_encoding_answers_0() {
    let (_, replies) = Raw::connected(None);
    let result = format!(
        "{}{NUM_1}{}{}",
        string("_result"),
        object(&[
            ("fmsVer", string("FMS/3,0,1,123")),
            ("capabilities", "00 40 3f 00 00 00 00 00 00".into()),
            ("mode", NUM_1.into()),
            (
                "videoFourCcInfoMap",
                fourcc_map(&["avc1", "hvc1", "av01", "vp09", "vp08", "vvc1"])
            ),
            (
                "audioFourCcInfoMap",
                fourcc_map(&["mp4a", ".mp3", "Opus", "fLaC", "ac-3", "ec-3"])
            ),
            // 15 = Reconnect | Multitrack | ModEx | TimestampNanoOffset.
            ("capsEx", "00 40 2e 00 00 00 00 00 00".into()),
        ]),
        object(&[
            ("level", string("status")),
            ("code", string("NetConnection.Connect.Success")),
            ("description", string("Connection succeeded.")),
            ("objectEncoding", NUM_0.into()),
        ]),
    );
    let mut expected = connect_controls();
    expected.push(reply(COMMAND_AMF0, 0, COMMAND_CSID, &result));
    assert_eq!(replies, expected);
}

#[test]
fn rejected_connect_gets_error_then_closes() {
    let mut raw = Raw::handshaken();
    let object = Value::object([("app", Value::from("live"))]);
    let connect = Command::new("connect", 1.0, object, vec![]);
    raw.send(COMMAND_CSID, TYPE_COMMAND_AMF0, 0, 0, &connect.encode());
    raw.events();
    raw.server.reject_connect("bad token");
    let error = format!(
        "{}{NUM_1}{NULL}{}",
        string("_error"),
        status("error", "NetConnection.Connect.Rejected", "bad token")
    );
    assert_eq!(
        raw.replies(),
        vec![reply(COMMAND_AMF0, 0, COMMAND_CSID, &error)]
    );
    assert!(raw.server.is_closing());
}

#[test]
fn obs_publish_sequence() {
    let (mut raw, _) = Raw::connected(None);
    // OBS sends these three back-to-back without waiting.
    raw.command(0, "releaseStream", 2.0, vec![Value::from("key")]);
    raw.command(0, "FCPublish", 3.0, vec![Value::from("key")]);
    raw.command(0, "createStream", 4.0, vec![]);
    let on_fc_publish = format!(
        "{}{NUM_0}{NULL}{}",
        string("onFCPublish"),
        status("status", "NetStream.Publish.Start", "key")
    );
    assert_eq!(
        raw.replies(),
        vec![
            reply(COMMAND_AMF0, 0, COMMAND_CSID, &empty_result(NUM_2)),
            reply(COMMAND_AMF0, 0, COMMAND_CSID, &empty_result(NUM_3)),
            reply(COMMAND_AMF0, 0, COMMAND_CSID, &on_fc_publish),
            // _result(4, null, 1): stream id 1.
            reply(
                COMMAND_AMF0,
                0,
                COMMAND_CSID,
                &format!("{}{NUM_4}{NULL}{NUM_1}", string("_result"))
            ),
        ]
    );

    raw.command(
        1,
        "publish",
        5.0,
        vec![Value::from("key"), Value::from("live")],
    );
    assert_eq!(
        raw.replies(),
        vec![],
        "nothing before the application answers"
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PublishRequested(PublishRequest {
            stream_id: 1,
            stream_name: "key".into(),
            query: None,
            publish_type: "live".into(),
        })]
    );
    raw.server.accept_publish(1).unwrap();
    assert_eq!(
        raw.replies(),
        vec![
            // StreamBegin(1).
            reply(USER_CONTROL, 0, CONTROL_CSID, "00 00 00 00 00 01"),
            reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status("status", "NetStream.Publish.Start", "Start publishing")
            ),
        ]
    );

    // Stop: FCUnpublish answers _result, then Unpublish.Success on the stream.
    raw.command(0, "FCUnpublish", 6.0, vec![Value::from("key")]);
    assert_eq!(
        raw.replies(),
        vec![
            reply(COMMAND_AMF0, 0, COMMAND_CSID, &empty_result(NUM_6)),
            reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status(
                    "status",
                    "NetStream.Unpublish.Success",
                    "Stopped publishing."
                )
            ),
        ]
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PublishStopped { stream_id: 1 }]
    );
    // deleteStream of a stream that already stopped: no second status.
    raw.command(0, "deleteStream", 0.0, vec![Value::from(1.0)]);
    assert_eq!(raw.replies(), vec![]);
    assert_eq!(raw.events(), vec![]);
}

#[test]
fn delete_stream_while_publishing_reports_unpublish_success() {
    let mut raw = Raw::publishing();
    raw.command(0, "deleteStream", 0.0, vec![Value::from(1.0)]);
    assert_eq!(
        raw.replies(),
        vec![reply(
            COMMAND_AMF0,
            1,
            COMMAND_CSID,
            &on_status(
                "status",
                "NetStream.Unpublish.Success",
                "Stopped publishing."
            )
        )]
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PublishStopped { stream_id: 1 }]
    );
}

#[test]
fn rejected_publish_gets_error_status() {
    for (why, code) in [
        (PublishRejection::BadName, "NetStream.Publish.BadName"),
        (PublishRejection::Denied, "NetStream.Publish.Denied"),
    ] {
        let mut raw = Raw::with_stream();
        raw.command(1, "publish", 3.0, vec![Value::from("key")]);
        raw.events();
        raw.server.reject_publish(1, why, "in use").unwrap();
        assert_eq!(
            raw.replies(),
            vec![reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status("error", code, "in use")
            )]
        );
        assert!(!raw.server.is_closing());
    }
}

#[test]
fn ffplay_play_sequence() {
    let mut raw = Raw::with_stream();
    // getStreamLength(3, null, "key") on the created stream: _result(3, null, 0).
    raw.command(1, "getStreamLength", 3.0, vec![Value::from("key")]);
    assert_eq!(
        raw.replies(),
        vec![reply(
            COMMAND_AMF0,
            1,
            COMMAND_CSID,
            &format!("{}{NUM_3}{NULL}{NUM_0}", string("_result"))
        )]
    );

    raw.command(
        1,
        "play",
        4.0,
        vec![Value::from("key"), Value::from(-2.0), Value::from(-1.0)],
    );
    assert_eq!(raw.replies(), vec![]);
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayRequested(PlayRequest {
            stream_id: 1,
            stream_name: "key".into(),
            query: None,
            start: -2.0,
            duration: -1.0,
            reset: true,
        })]
    );
    raw.server.accept_play(1).unwrap();
    assert_eq!(
        raw.replies(),
        vec![
            reply(USER_CONTROL, 0, CONTROL_CSID, "00 00 00 00 00 01"),
            reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status(
                    "status",
                    "NetStream.Play.Reset",
                    "Playing and resetting stream."
                )
            ),
            reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status("status", "NetStream.Play.Start", "Started playing stream.")
            ),
            reply(
                DATA_AMF0,
                1,
                DATA_CSID,
                &format!("{}{TRUE}{TRUE}", string("|RtmpSampleAccess"))
            ),
            // No NetStream.Data.Start data message: FFmpeg would show it as a data stream.
        ]
    );
}

#[test]
fn rejected_play_gets_stream_not_found() {
    let mut raw = Raw::with_stream();
    raw.command(1, "play", 3.0, vec![Value::from("nope")]);
    raw.events();
    raw.server.reject_play(1, "no such stream").unwrap();
    assert_eq!(
        raw.replies(),
        vec![reply(
            COMMAND_AMF0,
            1,
            COMMAND_CSID,
            &on_status("error", "NetStream.Play.StreamNotFound", "no such stream")
        )]
    );
}

#[test]
fn publisher_leaving_and_returning_is_announced_to_players() {
    let mut raw = Raw::playing();
    raw.server.notify_unpublish(1);
    assert_eq!(
        raw.replies(),
        vec![
            // StreamEOF(1).
            reply(USER_CONTROL, 0, CONTROL_CSID, "00 01 00 00 00 01"),
            reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status(
                    "status",
                    "NetStream.Play.UnpublishNotify",
                    "The stream's publisher stopped."
                )
            ),
        ]
    );
    raw.server.notify_publish(1);
    assert_eq!(
        raw.replies(),
        vec![
            // StreamBegin(1).
            reply(USER_CONTROL, 0, CONTROL_CSID, "00 00 00 00 00 01"),
            reply(
                COMMAND_AMF0,
                1,
                COMMAND_CSID,
                &on_status(
                    "status",
                    "NetStream.Play.PublishNotify",
                    "The stream's publisher started."
                )
            ),
        ]
    );
    // Not playing: nothing to notify.
    raw.server.notify_publish(7);
    raw.server.notify_unpublish(7);
    assert_eq!(raw.replies(), vec![]);
}

#[test]
fn pause_and_unpause_are_notified() {
    let mut raw = Raw::playing();
    raw.command(
        1,
        "pause",
        0.0,
        vec![Value::from(true), Value::from(1000.0)],
    );
    assert_eq!(
        raw.replies(),
        vec![reply(
            COMMAND_AMF0,
            1,
            COMMAND_CSID,
            &on_status("status", "NetStream.Pause.Notify", "Paused stream.")
        )]
    );
    assert_eq!(
        raw.events(),
        vec![ServerEvent::PlayPaused {
            stream_id: 1,
            paused: true
        }]
    );
    raw.command(
        1,
        "pause",
        0.0,
        vec![Value::from(false), Value::from(1000.0)],
    );
    assert_eq!(
        raw.replies(),
        vec![reply(
            COMMAND_AMF0,
            1,
            COMMAND_CSID,
            &on_status("status", "NetStream.Unpause.Notify", "Unpaused stream.")
        )]
    );
}

#[test]
fn unknown_command_gets_call_failed_with_its_transaction_id() {
    let (mut raw, _) = Raw::connected(None);
    raw.command(0, "nonsense", 42.0, vec![Value::from(1.0)]);
    let error = format!(
        "{}{NUM_42}{NULL}{}",
        string("_error"),
        status(
            "error",
            "NetConnection.Call.Failed",
            "unknown command \"nonsense\""
        )
    );
    assert_eq!(
        raw.replies(),
        vec![reply(COMMAND_AMF0, 0, COMMAND_CSID, &error)]
    );
    // Transaction id 0 asks for no answer.
    raw.command(0, "nonsense", 0.0, vec![]);
    assert_eq!(raw.replies(), vec![]);
    assert!(!raw.server.is_closing());
}

#[test]
fn ignored_commands_get_an_empty_result() {
    let (mut raw, _) = Raw::connected(None);
    raw.command(0, "FCSubscribe", 5.0, vec![Value::from("key")]);
    raw.command(0, "_checkbw", 2.0, vec![]);
    assert_eq!(
        raw.replies(),
        vec![
            reply(COMMAND_AMF0, 0, COMMAND_CSID, &empty_result(NUM_5)),
            reply(COMMAND_AMF0, 0, COMMAND_CSID, &empty_result(NUM_2)),
        ]
    );
}

#[test]
fn hand_written_amf_helpers_match_the_spec_examples() {
    // The helpers above are part of the golden data: check them against literal bytes.
    assert_eq!(string("key"), "0200036b6579");
    assert_eq!(
        object(&[("a", NUM_1.into())]),
        "03000161003ff0000000000000000009"
    );
    assert_eq!(unhex("0a 0B"), vec![0x0a, 0x0b]);
}

#[test]
fn reconnect_request_goes_to_the_net_connection_with_its_tc_url() {
    let mut raw = Raw::playing();
    raw.server
        .request_reconnect(Some("rtmp://standby.example/live"), "server shutting down");
    let info = object(&[
        ("level", string("status")),
        ("code", string("NetConnection.Connect.ReconnectRequest")),
        ("description", string("server shutting down")),
        ("tcUrl", string("rtmp://standby.example/live")),
    ]);
    let expected = format!("{}{}{NULL}{info}", string("onStatus"), squeeze(NUM_0));
    assert_eq!(
        raw.replies(),
        vec![reply(COMMAND_AMF0, 0, COMMAND_CSID, &expected)]
    );
    // Without a tcUrl: the same server.
    raw.server.request_reconnect(None, "maintenance");
    let info = object(&[
        ("level", string("status")),
        ("code", string("NetConnection.Connect.ReconnectRequest")),
        ("description", string("maintenance")),
    ]);
    let expected = format!("{}{}{NULL}{info}", string("onStatus"), squeeze(NUM_0));
    assert_eq!(
        raw.replies(),
        vec![reply(COMMAND_AMF0, 0, COMMAND_CSID, &expected)]
    );
}
