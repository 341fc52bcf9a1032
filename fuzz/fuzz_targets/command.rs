//! Commands: arbitrary bytes decode as an AMF0 command body (type 20) and as an AMF3 command
//! message body (type 17, format byte first) without panicking; a decoded command re-encodes
//! to bytes that decode to the same command (doubles compared by bits, so NaN survives), and
//! encoding that again gives the same bytes.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_fuzz::{same_command, KEY_GROWTH_INPUT};
use weir_rtmp::amf0::{self, Amf0Error};
use weir_rtmp::amf3::Amf3Error;
use weir_rtmp::chunk::ChunkMessage;
use weir_rtmp::command::{Command, CommandError, Status};
use weir_rtmp::message::{Message, TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3};

fuzz_target!(|data: &[u8]| {
    let limits = amf0::Limits::default();
    round_trip(data, &limits);
    for type_id in [TYPE_COMMAND_AMF0, TYPE_COMMAND_AMF3] {
        let chunk = ChunkMessage {
            chunk_stream_id: 3,
            timestamp: 0,
            type_id,
            stream_id: 1,
            payload: Bytes::copy_from_slice(data),
        };
        let Ok(Message::Command(body)) = Message::parse(&chunk) else {
            panic!("type {type_id} is not parsed as a command");
        };
        let expected = if type_id == TYPE_COMMAND_AMF3 && !data.is_empty() {
            &data[1..]
        } else {
            data
        };
        assert_eq!(&body[..], expected);
        round_trip(&body, &limits);
    }
    // Tight limits must fail cleanly, never panic.
    let tight = amf0::Limits {
        max_depth: 2,
        max_string_length: 16,
        max_entries: 4,
        max_values: 8,
    };
    let _ = Command::decode(data, &tight);
});

fn round_trip(body: &[u8], limits: &amf0::Limits) {
    let first = match Command::decode(body, limits) {
        Ok(command) => command,
        Err(CommandError::Amf(_) | CommandError::Empty | CommandError::NameNotString) => return,
    };
    let _ = Status::from_command(&first);
    for index in 0..3 {
        let _ = first.string_argument(index);
        let _ = first.number_argument(index);
        let _ = first.bool_argument(index);
    }
    let bytes = first.encode();
    let second = match Command::decode(&bytes, limits) {
        Ok(second) => second,
        // Writing AMF3 references out inline can cost more than the references did.
        Err(CommandError::Amf(
            Amf0Error::TooManyValues(_)
            | Amf0Error::Amf3(
                Amf3Error::TooManyValues(_)
                | Amf3Error::TooManyBytes(_)
                | Amf3Error::TooManyReferences(_),
            ),
        )) => return,
        Err(error) => panic!("re-encoded command does not decode: {error}\n{first:?}"),
    };
    if body.len() < KEY_GROWTH_INPUT {
        assert!(same_command(&first, &second), "{first:?} != {second:?}");
    }
    assert_eq!(bytes, second.encode());
}
