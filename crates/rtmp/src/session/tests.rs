//! In-memory client↔server session pairs, driven on simulated time: no sockets, no sleeps.

use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::command::{code, Command, StatusLevel};
use crate::message::{TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3};

/// A client and a server joined by two in-memory pipes.
struct Pair {
    now: Instant,
    client: ClientSession,
    server: ServerSession,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    /// Everything the client sent, for replay tests.
    client_bytes: Vec<u8>,
    accept_publish: bool,
    /// Leave publish and play requests unanswered.
    ignore_requests: bool,
}

impl Pair {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            now,
            client: ClientSession::new(ClientConfig::new("127.0.0.1:1935", "live"), now, [7; 1528]),
            server: ServerSession::new(ServerConfig::default(), now, [9; 1528]),
            server_events: Vec::new(),
            client_events: Vec::new(),
            client_bytes: Vec::new(),
            accept_publish: true,
            ignore_requests: false,
        }
    }

    /// Moves bytes both ways and answers server requests until nothing moves.
    fn run(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some(bytes) = self.client.poll_transmit() {
                moved = true;
                self.client_bytes.extend_from_slice(&bytes);
                self.server.handle_input(self.now, &bytes).unwrap();
                self.answer_server();
            }
            while let Some(bytes) = self.server.poll_transmit() {
                moved = true;
                self.client.handle_input(self.now, &bytes).unwrap();
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
            if !moved {
                return;
            }
        }
        panic!("pair never settled");
    }

    fn answer_server(&mut self) {
        while let Some(event) = self.server.poll_event() {
            match &event {
                ServerEvent::ConnectRequested(_) => self.server.accept_connect().unwrap(),
                ServerEvent::PublishRequested(_) | ServerEvent::PlayRequested(_)
                    if self.ignore_requests => {}
                ServerEvent::PublishRequested(req) if self.accept_publish => {
                    self.server.accept_publish(req.stream_id).unwrap()
                }
                ServerEvent::PublishRequested(req) => self
                    .server
                    .reject_publish(req.stream_id, PublishRejection::BadName, "in use")
                    .unwrap(),
                ServerEvent::PlayRequested(req) => self.server.accept_play(req.stream_id).unwrap(),
                _ => {}
            }
            self.server_events.push(event);
        }
    }

    fn statuses(&self) -> Vec<String> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Status { status, .. } => Some(status.code.clone()),
                _ => None,
            })
            .collect()
    }
}

fn metadata_body() -> Vec<u8> {
    let mut body = Vec::new();
    amf0::encode_all(
        &[
            Value::from("onMetaData"),
            Value::object([
                ("width", Value::from(640.0)),
                ("height", Value::from(360.0)),
            ]),
        ],
        &mut body,
    );
    body
}

#[test]
fn publish_flow_delivers_metadata_and_media() {
    let mut pair = Pair::new();
    pair.client.publish(pair.now, "key?token=abc");
    pair.run();
    assert!(pair
        .client_events
        .iter()
        .any(|e| matches!(e, ClientEvent::PublishStarted { .. })));
    let connect = pair.server_events.iter().find_map(|e| match e {
        ServerEvent::ConnectRequested(c) => Some(c.clone()),
        _ => None,
    });
    let connect = connect.expect("connect requested");
    assert_eq!(connect.app, "live");
    assert_eq!(
        connect.tc_url.as_deref(),
        Some("rtmp://127.0.0.1:1935/live")
    );
    let publish = pair.server_events.iter().find_map(|e| match e {
        ServerEvent::PublishRequested(p) => Some(p.clone()),
        _ => None,
    });
    let publish = publish.expect("publish requested");
    assert_eq!(publish.stream_name, "key");
    assert_eq!(publish.query.as_deref(), Some("token=abc"));
    assert_eq!(publish.publish_type, "live");

    pair.client.send_metadata(0, &metadata_body());
    let video = Bytes::from(vec![0x17; 10_000]);
    let audio = Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10]);
    for i in 0..10u32 {
        pair.client
            .send_media(MediaType::Video, 0xFF_FF00 + i * 40, video.clone());
        pair.client
            .send_media(MediaType::Audio, 0xFF_FF00 + i * 23, audio.clone());
    }
    pair.run();
    let metadata = pair.server_events.iter().find_map(|e| match e {
        ServerEvent::Metadata { payload, .. } => Some(payload.clone()),
        _ => None,
    });
    assert_eq!(metadata.as_deref(), Some(metadata_body().as_slice()));
    let media: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Media {
                media_type,
                timestamp,
                payload,
                ..
            } => Some((*media_type, *timestamp, payload.len())),
            _ => None,
        })
        .collect();
    assert_eq!(media.len(), 20);
    let videos: Vec<u32> = media
        .iter()
        .filter(|m| m.0 == MediaType::Video)
        .map(|m| m.1)
        .collect();
    assert_eq!(
        videos,
        (0..10).map(|i| 0xFF_FF00 + i * 40).collect::<Vec<_>>()
    );
    assert!(media
        .iter()
        .all(|m| m.2 == if m.0 == MediaType::Video { 10_000 } else { 4 }));

    pair.client.close_stream();
    pair.run();
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::PublishStopped { .. })));
}

#[test]
fn play_flow_receives_status_and_media() {
    let mut pair = Pair::new();
    pair.client.play(pair.now, "key");
    pair.run();
    let statuses = pair.statuses();
    assert_eq!(
        statuses,
        vec![code::PLAY_RESET.to_owned(), code::PLAY_START.to_owned()]
    );
    let stream_id = pair.client.stream_id().unwrap();
    assert!(pair.server.send_media(
        stream_id,
        MediaType::Video,
        33,
        Bytes::from_static(&[0x17, 0x01, 0, 0, 0, 1, 2, 3])
    ));
    pair.server.notify_unpublish(stream_id);
    pair.run();
    assert!(pair.client_events.iter().any(|e| matches!(
        e,
        ClientEvent::Media { media_type: MediaType::Video, timestamp: 33, payload, .. } if payload.len() == 8
    )));
    assert!(pair
        .statuses()
        .contains(&code::PLAY_UNPUBLISH_NOTIFY.to_owned()));
}

#[test]
fn rejected_publish_reports_bad_name_and_keeps_connection() {
    let mut pair = Pair::new();
    pair.accept_publish = false;
    pair.client.publish(pair.now, "taken");
    pair.run();
    let status = pair.client_events.iter().find_map(|e| match e {
        ClientEvent::Status { status, .. } => Some(status.clone()),
        _ => None,
    });
    let status = status.unwrap();
    assert_eq!(status.code, code::PUBLISH_BAD_NAME);
    assert_eq!(status.level, StatusLevel::Error);
    assert!(!pair.server.is_closing());
}

#[test]
fn unknown_command_gets_error_with_its_transaction_id() {
    let mut pair = Pair::new();
    pair.client.play(pair.now, "x");
    pair.run();
    let command = Command::new("nonsense", 42.0, Value::Null, vec![Value::from(1.0)]);
    let mut encoder = crate::chunk::ChunkEncoder::new();
    encoder.set_chunk_size(4096);
    let mut bytes = bytes::BytesMut::new();
    encoder.encode(
        &crate::chunk::ChunkMessage {
            chunk_stream_id: 30,
            timestamp: 0,
            type_id: TYPE_COMMAND_AMF0,
            stream_id: 0,
            payload: command.encode(),
        },
        &mut bytes,
    );
    pair.server.handle_input(pair.now, &bytes).unwrap();
    let reply = pair.server.poll_transmit().unwrap();
    pair.client.handle_input(pair.now, &reply).unwrap();
    let status = std::iter::from_fn(|| pair.client.poll_event()).find_map(|e| match e {
        ClientEvent::Status { status, .. } => Some(status),
        _ => None,
    });
    assert_eq!(status.unwrap().code, code::CALL_FAILED);
    assert!(!pair.server.is_closing());
}

#[test]
fn amf3_command_message_is_understood() {
    let mut pair = Pair::new();
    pair.client.play(pair.now, "x");
    pair.run();
    let mut body = vec![0x00];
    body.extend_from_slice(&Command::new("createStream", 9.0, Value::Null, vec![]).encode());
    let mut encoder = crate::chunk::ChunkEncoder::new();
    encoder.set_chunk_size(4096);
    let mut bytes = bytes::BytesMut::new();
    encoder.encode(
        &crate::chunk::ChunkMessage {
            chunk_stream_id: 3,
            timestamp: 0,
            type_id: TYPE_COMMAND_AMF3,
            stream_id: 0,
            payload: Bytes::from(body),
        },
        &mut bytes,
    );
    pair.server.handle_input(pair.now, &bytes).unwrap();
    let reply = pair.server.poll_transmit().unwrap();
    let mut decoder = crate::chunk::ChunkDecoder::new(Default::default());
    decoder.set_chunk_size(4096).unwrap();
    let mut reply = bytes::BytesMut::from(&reply[..]);
    let message = decoder.decode(&mut reply).unwrap().unwrap();
    let result = Command::decode(&message.payload, &amf0::Limits::default()).unwrap();
    assert_eq!(result.name, "_result");
    assert_eq!(result.transaction_id, 9.0);
    assert_eq!(result.number_argument(0), Some(2.0));
}

#[test]
fn handshake_timeout_on_simulated_time() {
    let start = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), start, [0; 1528]);
    server.handle_input(start, &[0x03, 0, 0]).unwrap();
    let deadline = server.poll_timeout().unwrap();
    assert_eq!(deadline, start + Duration::from_secs(10));
    server
        .handle_timeout(start + Duration::from_secs(9))
        .unwrap();
    let err = server.handle_timeout(deadline).unwrap_err();
    assert!(matches!(err, SessionError::Timeout("handshake")));
}

#[test]
fn idle_publisher_times_out_but_player_does_not() {
    let mut pair = Pair::new();
    pair.client.publish(pair.now, "k");
    pair.run();
    let later = pair.now + Duration::from_secs(31);
    assert!(matches!(
        pair.server.handle_timeout(later),
        Err(SessionError::Timeout(_))
    ));

    let mut pair = Pair::new();
    pair.client.play(pair.now, "k");
    pair.run();
    assert_eq!(pair.server.poll_timeout(), None);
    pair.server
        .handle_timeout(pair.now + Duration::from_secs(3600))
        .unwrap();
}

#[test]
fn wrong_version_byte_is_a_handshake_error() {
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), now, [0; 1528]);
    let err = server.handle_input(now, &[0x07; 1537]).unwrap_err();
    assert!(matches!(err, SessionError::Handshake(_)));
}

#[test]
fn command_before_connect_is_a_protocol_error() {
    let mut pair = Pair::new();
    // Complete only the handshake by hand: feed C0C1, answer with the server's S0S1S2.
    let c0c1 = pair.client.poll_transmit().unwrap();
    pair.server.handle_input(pair.now, &c0c1).unwrap();
    let s = pair.server.poll_transmit().unwrap();
    pair.client.handle_input(pair.now, &s).unwrap();
    let c2_and_connect = pair.client.poll_transmit().unwrap();
    // Drop the connect: keep only C2, then send a createStream.
    pair.server
        .handle_input(pair.now, &c2_and_connect[..1536])
        .unwrap();
    let mut encoder = crate::chunk::ChunkEncoder::new();
    let mut bytes = bytes::BytesMut::new();
    encoder.encode(
        &crate::chunk::ChunkMessage {
            chunk_stream_id: 3,
            timestamp: 0,
            type_id: TYPE_COMMAND_AMF0,
            stream_id: 0,
            payload: Command::new("createStream", 2.0, Value::Null, vec![]).encode(),
        },
        &mut bytes,
    );
    let err = pair.server.handle_input(pair.now, &bytes).unwrap_err();
    assert!(matches!(err, SessionError::Protocol(_)));
}

#[test]
fn stream_names_lose_query_and_slashes() {
    assert_eq!(
        split_stream_name("key?token=1&x=2"),
        ("key".to_owned(), Some("token=1&x=2".to_owned()))
    );
    assert_eq!(split_stream_name("/key/"), ("key".to_owned(), None));
    assert_eq!(split_stream_name(""), (String::new(), None));
}

/// Replays the bytes a client sent, split at `cuts`, into a fresh server; returns its events.
fn replay(bytes: &[u8], cuts: &[usize]) -> Vec<ServerEvent> {
    let now = Instant::now();
    let mut server = ServerSession::new(ServerConfig::default(), now, [9; 1528]);
    let mut events = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    for end in points {
        server.handle_input(now, &bytes[start..end]).unwrap();
        start = end;
        while let Some(event) = server.poll_event() {
            match &event {
                ServerEvent::ConnectRequested(_) => server.accept_connect().unwrap(),
                ServerEvent::PublishRequested(r) => server.accept_publish(r.stream_id).unwrap(),
                _ => {}
            }
            events.push(event);
        }
    }
    events
}

#[test]
fn client_connect_times_out_on_simulated_time() {
    let start = Instant::now();
    let config = ClientConfig::new("127.0.0.1:1935", "live");
    let mut client = ClientSession::new(config, start, [7; 1528]);
    assert!(client.poll_transmit().is_some(), "C0+C1 queued at once");
    assert_eq!(client.poll_timeout(), Some(start + Duration::from_secs(10)));
    client
        .handle_timeout(start + Duration::from_secs(9))
        .unwrap();
    let err = client
        .handle_timeout(start + Duration::from_secs(10))
        .unwrap_err();
    assert!(matches!(err, SessionError::Timeout("connect")), "{err}");
}

#[test]
fn client_deadlines_follow_its_config() {
    let start = Instant::now();
    let mut config = ClientConfig::new("127.0.0.1:1935", "live");
    config.connect_timeout = Duration::from_millis(1500);
    let client = ClientSession::new(config, start, [7; 1528]);
    assert_eq!(
        client.poll_timeout(),
        Some(start + Duration::from_millis(1500))
    );
}

#[test]
fn unanswered_publish_times_out_after_connect() {
    let mut pair = Pair::new();
    pair.ignore_requests = true;
    pair.run();
    assert!(pair
        .client_events
        .iter()
        .any(|e| matches!(e, ClientEvent::Connected { caps_ex } if *caps_ex != 0)));
    // Connected and idle: only the idle deadline.
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now + Duration::from_secs(30))
    );
    let asked = pair.now + Duration::from_secs(5);
    pair.now = asked;
    pair.client.publish(asked, "k");
    pair.run();
    assert!(pair
        .server_events
        .iter()
        .any(|e| matches!(e, ServerEvent::PublishRequested(_))));
    assert_eq!(
        pair.client.poll_timeout(),
        Some(asked + Duration::from_secs(10))
    );
    pair.client
        .handle_timeout(asked + Duration::from_secs(9))
        .unwrap();
    let err = pair
        .client
        .handle_timeout(asked + Duration::from_secs(10))
        .unwrap_err();
    assert!(
        matches!(err, SessionError::Timeout("publish or play answer")),
        "{err}"
    );
}

#[test]
fn refused_publish_answers_the_request() {
    let mut pair = Pair::new();
    pair.accept_publish = false;
    pair.client.publish(pair.now, "taken");
    pair.run();
    assert!(!pair.client.is_publishing());
    // No request deadline left, only the idle one.
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now + Duration::from_secs(30))
    );
}

#[test]
fn silent_server_times_out_a_player_but_not_a_publisher() {
    let mut pair = Pair::new();
    pair.client.play(pair.now, "k");
    pair.run();
    let start = pair.now;
    assert_eq!(
        pair.client.poll_timeout(),
        Some(start + Duration::from_secs(30))
    );
    // Bytes from the server push the idle deadline back.
    pair.now = start + Duration::from_secs(20);
    let stream_id = pair.client.stream_id().unwrap();
    assert!(pair.server.send_media(
        stream_id,
        MediaType::Audio,
        0,
        Bytes::from_static(&[0xAF, 0x01, 0x21])
    ));
    pair.run();
    let deadline = start + Duration::from_secs(50);
    assert_eq!(pair.client.poll_timeout(), Some(deadline));
    pair.client
        .handle_timeout(deadline - Duration::from_millis(1))
        .unwrap();
    let err = pair.client.handle_timeout(deadline).unwrap_err();
    assert!(matches!(err, SessionError::Timeout("idle")), "{err}");

    let mut pair = Pair::new();
    pair.client.publish(pair.now, "k");
    pair.run();
    assert!(pair.client.is_publishing());
    assert_eq!(pair.client.poll_timeout(), None);
    pair.client
        .handle_timeout(pair.now + Duration::from_secs(3600))
        .unwrap();
}

#[test]
fn client_sends_only_while_publishing_and_wraps_metadata_once() {
    let mut pair = Pair::new();
    pair.run();
    assert!(!pair
        .client
        .send_media(MediaType::Video, 0, Bytes::from_static(&[0x17])));
    assert!(!pair.client.send_metadata(0, &metadata_body()));
    pair.client.publish(pair.now, "k");
    pair.run();
    let mut wrapped = Vec::new();
    amf0::encode(&Value::from("@setDataFrame"), &mut wrapped);
    wrapped.extend_from_slice(&metadata_body());
    assert!(pair.client.send_metadata(0, &wrapped));
    assert!(pair.client.send_metadata(40, &metadata_body()));
    pair.run();
    let metadata: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Metadata { payload, .. } => Some(payload.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(metadata.len(), 2);
    assert!(metadata.iter().all(|m| m[..] == metadata_body()[..]));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn server_events_do_not_depend_on_input_splits(cuts in proptest::collection::vec(0usize..200_000, 0..40)) {
        let mut pair = Pair::new();
        pair.client.publish(pair.now, "split");
        pair.run();
        pair.client.send_metadata(0, &metadata_body());
        for i in 0..20u32 {
            pair.client.send_media(MediaType::Video, i * 33, Bytes::from(vec![i as u8; 5000]));
            pair.client.send_media(MediaType::Audio, i * 21, Bytes::from(vec![0xAF; 300]));
        }
        pair.run();
        let whole = replay(&pair.client_bytes, &[]);
        prop_assert_eq!(whole.len(), pair.server_events.len());
        let split = replay(&pair.client_bytes, &cuts);
        prop_assert_eq!(split, whole);
    }
}
