//! Reads arbitrary bytes as a webhook's reply: the first two bytes pick the HTTP status, the
//! rest is the body. Only a 2xx allows, a rename is always a servable name, and a refusal's
//! text is short and free of control characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_access::webhook::{parse_reply, valid_name, Reply, MAX_REASON};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]) % 1000, rest),
        _ => (200, data),
    };
    match parse_reply(status, body) {
        Reply::Allow { rename } => {
            assert!((200..300).contains(&status));
            if let Some(name) = rename {
                assert!(valid_name(&name));
            }
        }
        Reply::Deny { reason } => {
            if let Some(reason) = reason {
                assert!(reason.chars().count() <= MAX_REASON);
                assert!(!reason.chars().any(char::is_control));
            }
        }
    }
});
