//! The reply of a decision webhook (`on_connect`, `on_publish`, `on_play`).
//!
//! The rule the README documents: any 2xx status allows, anything else denies. A 2xx reply may
//! rename the stream with a JSON object body `{"stream": "alice"}` (a secret key becomes the
//! public name viewers watch); any other 2xx body (empty, `OK`, `0`, JSON without `stream`)
//! just allows. A refusal may say why, with `{"reason": "…"}` (or `"error"` / `"message"`) or
//! a plain-text body; that text goes to the client's error status and to the log, cleaned of
//! control characters and cut to [`MAX_REASON`] characters. A rename to a name weir cannot
//! serve is a refusal, never a stream under a surprising name.

use serde_json::Value;

/// The most of a reply body weir reads; the rest is not looked at (the caller stops reading
/// there).
pub const MAX_REPLY: usize = 64 * 1024;

/// The longest refusal text passed on, in characters.
pub const MAX_REASON: usize = 200;

/// The longest stream name a webhook may rename to, in bytes.
pub const MAX_NAME: usize = 200;

/// What the webhook decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Go ahead, under `rename` if the webhook gave a new stream name.
    Allow {
        /// The stream name to use instead of the one asked for.
        rename: Option<String>,
    },
    /// Refuse, with the webhook's own words if it gave any.
    Deny {
        /// What the webhook said (cleaned), or why weir refused its reply.
        reason: Option<String>,
    },
}

/// Reads a webhook's reply: its HTTP `status` and (at most [`MAX_REPLY`] bytes of) its `body`.
pub fn parse_reply(status: u16, body: &[u8]) -> Reply {
    let body = &body[..body.len().min(MAX_REPLY)];
    let json = serde_json::from_slice::<Value>(body).ok();
    if (200..300).contains(&status) {
        let rename = json
            .as_ref()
            .and_then(|v| v.get("stream"))
            .map(|name| name.as_str().filter(|n| valid_name(n)));
        return match rename {
            None => Reply::Allow { rename: None },
            Some(Some(name)) => Reply::Allow {
                rename: Some(name.to_owned()),
            },
            Some(None) => Reply::Deny {
                reason: Some(
                    "the webhook renamed the stream to a name weir cannot serve \
                     (1 to 200 of A-Z a-z 0-9 . _ - ~ + = @ : , ! $ * ( ) ; no . or .. alone)"
                        .to_owned(),
                ),
            },
        };
    }
    let said = match &json {
        Some(value) => ["reason", "error", "message"]
            .iter()
            .find_map(|field| value.get(*field).and_then(Value::as_str))
            .map(str::to_owned),
        None => std::str::from_utf8(body)
            .ok()
            .and_then(|text| text.lines().find(|l| !l.trim().is_empty()))
            .map(str::to_owned),
    };
    Reply::Deny {
        reason: said.map(|s| clean(&s)).filter(|s| !s.is_empty()),
    }
}

/// A stream name a webhook may give: safe in a URL path segment, a log line and a file name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name != "."
        && name != ".."
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'.' | b'_'
                        | b'-'
                        | b'~'
                        | b'+'
                        | b'='
                        | b'@'
                        | b':'
                        | b','
                        | b'!'
                        | b'$'
                        | b'*'
                        | b'('
                        | b')'
                )
        })
}

/// `text` without control characters, trimmed, at most [`MAX_REASON`] characters.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_REASON)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn allow(rename: Option<&str>) -> Reply {
        Reply::Allow {
            rename: rename.map(str::to_owned),
        }
    }

    fn deny(reason: Option<&str>) -> Reply {
        Reply::Deny {
            reason: reason.map(str::to_owned),
        }
    }

    #[test]
    fn success_allows_and_may_rename() {
        assert_eq!(parse_reply(200, b""), allow(None));
        assert_eq!(parse_reply(204, b""), allow(None));
        assert_eq!(parse_reply(200, b"OK"), allow(None));
        assert_eq!(parse_reply(200, b"0"), allow(None));
        assert_eq!(parse_reply(200, br#"{"code":0}"#), allow(None));
        assert_eq!(
            parse_reply(200, br#"{"stream":"alice"}"#),
            allow(Some("alice"))
        );
        assert_eq!(
            parse_reply(201, br#" {"stream": "cam-2.hd", "x": [1]} "#),
            allow(Some("cam-2.hd"))
        );
    }

    #[test]
    fn a_bad_rename_refuses() {
        for body in [
            br#"{"stream":""}"#.as_slice(),
            br#"{"stream":"a/b"}"#,
            br#"{"stream":".."}"#,
            br#"{"stream":"a b"}"#,
            br#"{"stream":"a?x=1"}"#,
            br#"{"stream":5}"#,
            br#"{"stream":null}"#,
        ] {
            let Reply::Deny { reason: Some(why) } = parse_reply(200, body) else {
                panic!("{:?} allowed", String::from_utf8_lossy(body));
            };
            assert!(why.contains("renamed"), "{why}");
        }
        let long = format!(r#"{{"stream":"{}"}}"#, "a".repeat(MAX_NAME + 1));
        assert!(matches!(
            parse_reply(200, long.as_bytes()),
            Reply::Deny { .. }
        ));
    }

    #[test]
    fn anything_else_denies_with_the_hooks_words() {
        assert_eq!(parse_reply(403, b""), deny(None));
        assert_eq!(parse_reply(302, b""), deny(None));
        assert_eq!(parse_reply(500, b"   \n"), deny(None));
        assert_eq!(
            parse_reply(403, br#"{"reason":"token expired"}"#),
            deny(Some("token expired"))
        );
        assert_eq!(
            parse_reply(401, br#"{"error":"no such user"}"#),
            deny(Some("no such user"))
        );
        assert_eq!(
            parse_reply(403, b"\nbanned\tuser\r\nsecond line"),
            deny(Some("banned user"))
        );
        // A success body on an error status does not allow.
        assert_eq!(parse_reply(404, br#"{"stream":"alice"}"#), deny(None));
        let Reply::Deny { reason: Some(long) } = parse_reply(403, "x".repeat(5000).as_bytes())
        else {
            panic!("long reason");
        };
        assert_eq!(long.chars().count(), MAX_REASON);
    }

    proptest! {
        #[test]
        fn never_panics_and_only_2xx_allows(status in 0u16..1000, body in proptest::collection::vec(any::<u8>(), 0..300)) {
            match parse_reply(status, &body) {
                Reply::Allow { rename } => {
                    prop_assert!((200..300).contains(&status));
                    if let Some(name) = rename {
                        prop_assert!(valid_name(&name));
                    }
                }
                Reply::Deny { reason } => {
                    if let Some(reason) = reason {
                        prop_assert!(reason.chars().count() <= MAX_REASON);
                        prop_assert!(!reason.chars().any(char::is_control));
                    }
                }
            }
        }

        #[test]
        fn valid_names_round_trip(name in "[A-Za-z0-9._~+=@:,!$*()-]{1,50}") {
            let body = serde_json::json!({ "stream": name }).to_string();
            let expected = if valid_name(&name) {
                allow(Some(&name))
            } else {
                parse_reply(200, body.as_bytes())
            };
            prop_assert_eq!(parse_reply(200, body.as_bytes()), expected);
        }
    }
}
