//! Protocol control from the peer, on in-memory server sessions: Set Chunk Size mid-stream,
//! Abort, Window Acknowledgement Size and the acknowledgements it asks for (with the 2^32 wrap),
//! ping, aggregate messages and AMF3 data messages. Chunks are written by hand in hex where the
//! exact chunk layout matters.

use bytes::Bytes;

use super::golden_tests::{reply, string, unhex, utf8, Raw};
use super::*;

const CONTROL_CSID: u32 = 2;
const TYPE_ACKNOWLEDGEMENT: u8 = 0x03;
const TYPE_USER_CONTROL: u8 = 0x04;
const TYPE_WINDOW_ACK_SIZE: u8 = 0x05;
const TYPE_AUDIO: u8 = 0x08;
const TYPE_DATA_AMF3: u8 = 0x0f;
const TYPE_AGGREGATE: u8 = 0x16;

/// `len` bytes counting up from `start`.
fn pattern(start: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| start.wrapping_add(i as u8)).collect()
}

fn media(media_type: MediaType, timestamp: u32, payload: &[u8]) -> ServerEvent {
    ServerEvent::Media {
        stream_id: 1,
        media_type,
        timestamp,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// A 300-byte video message whose first chunk (128 bytes) is followed by a Set Chunk Size of
/// 256, so its second chunk carries the remaining 172 bytes; then a 200-byte video message in
/// one chunk (fmt 1, timestamp delta 40).
fn chunk_size_change_bytes(first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut bytes = unhex("0a 000000 00012c 09 01000000"); // fmt 0, csid 10, 300 bytes, msid 1
    bytes.extend_from_slice(&first[..128]);
    bytes.extend(unhex("02 000000 000004 01 00000000 00000100")); // Set Chunk Size 256
    bytes.extend(unhex("ca")); // fmt 3, csid 10
    bytes.extend_from_slice(&first[128..]);
    bytes.extend(unhex("4a 000028 0000c8 09")); // fmt 1, csid 10, +40 ms, 200 bytes
    bytes.extend_from_slice(second);
    bytes
}

#[test]
fn set_chunk_size_applies_to_the_very_next_chunk() {
    let first = pattern(0x17, 300);
    let second = pattern(0x27, 200);
    let bytes = chunk_size_change_bytes(&first, &second);
    let expected = vec![
        media(MediaType::Video, 0, &first),
        media(MediaType::Video, 40, &second),
    ];

    let mut raw = Raw::publishing();
    raw.feed(&bytes);
    assert_eq!(raw.events(), expected);
    assert_eq!(raw.replies(), vec![]);

    // The same bytes one at a time.
    let mut raw = Raw::publishing();
    for byte in &bytes {
        raw.feed(std::slice::from_ref(byte));
    }
    assert_eq!(raw.events(), expected);
}

#[test]
fn set_chunk_size_before_connect_applies_to_connect() {
    // OBS sends Set Chunk Size 4096 before connect; connect then arrives as one big chunk.
    let mut raw = Raw::handshaken();
    raw.feed(&unhex("02 000000 000004 01 00000000 00001000"));
    let object = Value::object([
        ("app", Value::from("live")),
        ("tcUrl", Value::from("rtmp://localhost/live")),
        ("padding", Value::from("x".repeat(300).as_str())),
    ]);
    let body = crate::command::Command::new("connect", 1.0, object, vec![]).encode();
    let mut bytes = unhex("03 000000");
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    bytes.extend(unhex("14 00000000"));
    bytes.extend_from_slice(&body);
    raw.feed(&bytes);
    let events = raw.events();
    assert!(
        matches!(&events[..], [ServerEvent::ConnectRequested(c)] if c.app == "live"),
        "{events:?}"
    );
}

#[test]
fn abort_drops_the_partial_message() {
    let mut raw = Raw::publishing();
    let mut bytes = unhex("0a 000000 00012c 09 01000000"); // 300-byte video, first chunk only
    bytes.extend(pattern(0x17, 128));
    bytes.extend(unhex("02 000000 000004 02 00000000 0000000a")); // Abort csid 10
    bytes.extend(unhex("0a 000050 000005 08 01000000 af01deadbe")); // 5-byte audio at 80 ms
    raw.feed(&bytes);
    assert_eq!(
        raw.events(),
        vec![media(MediaType::Audio, 80, &unhex("af01deadbe"))]
    );
    // The chunk stream keeps working afterwards.
    raw.feed(&unhex("8a 000014 af01cafe00")); // fmt 2: +20 ms, same length and type
    assert_eq!(
        raw.events(),
        vec![media(MediaType::Audio, 100, &unhex("af01cafe00"))]
    );
}

/// Sends Window Ack Size 1000, then audio messages; checks that an Acknowledgement comes exactly
/// when 1000 bytes have arrived since the last one, carrying the bytes received so far (mod
/// 2^32). `received` and `acknowledged` are the server's counters before the first message.
/// Returns the sequence numbers seen.
fn check_acknowledgements(raw: &mut Raw, mut received: u64, acknowledged: u64) -> Vec<u32> {
    let mut last_ack = acknowledged;
    let mut acks = Vec::new();
    let before = raw.sent;
    raw.send(CONTROL_CSID, TYPE_WINDOW_ACK_SIZE, 0, 0, &unhex("000003e8"));
    received += raw.sent - before;
    for i in 0..40u32 {
        let expected = if received - last_ack >= 1000 {
            last_ack = received;
            let sequence = received as u32; // wraps at 2^32
            acks.push(sequence);
            vec![reply(
                TYPE_ACKNOWLEDGEMENT,
                0,
                CONTROL_CSID,
                &format!("{sequence:08x}"),
            )]
        } else {
            vec![]
        };
        assert_eq!(raw.replies(), expected, "after message {i}");
        assert_eq!(raw.server.bytes_received(), received);
        let before = raw.sent;
        raw.send(6, TYPE_AUDIO, 1, i * 23, &pattern(0xaf, 150));
        received += raw.sent - before;
    }
    assert_eq!(raw.events().len(), 40);
    acks
}

#[test]
fn window_ack_size_makes_the_server_acknowledge_cumulative_bytes() {
    let mut raw = Raw::publishing();
    let sent = raw.sent;
    let acks = check_acknowledgements(&mut raw, sent, 0);
    // The first one at once (the handshake alone is over 1000 bytes), then every ~1000 bytes.
    assert!(acks.len() >= 5, "{acks:?}");
    // Cumulative from the first byte: the 3073 handshake bytes are included.
    assert!(acks[0] > 3073, "{acks:?}");
    assert!(acks.windows(2).all(|w| w[1] - w[0] >= 1000), "{acks:?}");
}

#[test]
fn acknowledgement_sequence_number_wraps_at_2_pow_32() {
    let mut raw = Raw::publishing();
    let start = u64::from(u32::MAX) - 99;
    raw.server.start_byte_count_at(start);
    let acks = check_acknowledgements(&mut raw, start, start);
    assert!(acks.len() >= 5, "{acks:?}");
    // Every acknowledgement came after the wrap, so all are small numbers.
    assert!(acks.iter().all(|&a| a < 10_000), "{acks:?}");
    assert!(raw.server.bytes_received() > u64::from(u32::MAX));
}

#[test]
fn peer_acknowledgement_is_recorded() {
    let (mut raw, _) = Raw::connected(None);
    raw.feed(&unhex("02 000000 000004 03 00000000 fffffff0"));
    assert_eq!(raw.server.peer_acknowledged(), 0xffff_fff0);
    assert_eq!(raw.replies(), vec![]);
}

#[test]
fn ping_request_gets_ping_response_with_the_same_value() {
    let (mut raw, _) = Raw::connected(None);
    raw.send(
        CONTROL_CSID,
        TYPE_USER_CONTROL,
        0,
        0,
        &unhex("0006 deadbeef"),
    );
    assert_eq!(
        raw.replies(),
        vec![reply(TYPE_USER_CONTROL, 0, CONTROL_CSID, "0007 deadbeef")]
    );
    // A player is probed the same way.
    let mut raw = Raw::playing();
    raw.send(
        CONTROL_CSID,
        TYPE_USER_CONTROL,
        0,
        0,
        &unhex("0006 00000001"),
    );
    assert_eq!(
        raw.replies(),
        vec![reply(TYPE_USER_CONTROL, 0, CONTROL_CSID, "0007 00000001")]
    );
    assert_eq!(raw.events(), vec![]);
}

#[test]
fn aggregate_message_is_split_into_media_with_aggregate_timestamps() {
    let mut raw = Raw::publishing();
    // Sub-message timestamps 0x00fffff0, 0x01000018, 0x01000040 (the last two need the
    // extended byte); the aggregate's own timestamp is 1000.
    let body = unhex(
        "09 000005 fffff0 00 000000 1701000000 00000010
         08 000004 000018 01 000000 af012110   0000000f
         09 000003 000040 01 000000 270100     0000000e",
    );
    raw.send(4, TYPE_AGGREGATE, 1, 1000, &body);
    assert_eq!(
        raw.events(),
        vec![
            media(MediaType::Video, 1000, &unhex("1701000000")),
            media(MediaType::Audio, 1040, &unhex("af012110")),
            media(MediaType::Video, 1080, &unhex("270100")),
        ]
    );
}

#[test]
fn amf3_data_message_carries_metadata() {
    // OBS-style ECMA array with an advisory count of 20, and one AMF3 value behind 0x11.
    let properties = format!(
        "{} 00 4084000000000000 {} 11 06 07 6f6273 000009", // width 640, encoder "obs" (AMF3)
        utf8("width"),
        utf8("encoder"),
    );
    let set_data_frame = format!(
        "00 {} {} 08 00000014 {}",
        string("@setDataFrame"),
        string("onMetaData"),
        properties
    );
    let mut raw = Raw::publishing();
    raw.send(4, TYPE_DATA_AMF3, 1, 0, &unhex(&set_data_frame));
    // Re-encoded without @setDataFrame; the ECMA count becomes the real one.
    let expected = format!("{} 08 00000002 {}", string("onMetaData"), properties);
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Metadata {
            stream_id: 1,
            timestamp: 0,
            payload: Bytes::from(unhex(&expected)),
        }]
    );

    // A bare onMetaData passes through as it came, minus the format byte.
    let bare = format!("{} 08 00000014 {}", string("onMetaData"), properties);
    raw.send(4, TYPE_DATA_AMF3, 1, 33, &unhex(&format!("00 {bare}")));
    assert_eq!(
        raw.events(),
        vec![ServerEvent::Metadata {
            stream_id: 1,
            timestamp: 33,
            payload: Bytes::from(unhex(&bare)),
        }]
    );
    assert_eq!(raw.replies(), vec![]);
}
