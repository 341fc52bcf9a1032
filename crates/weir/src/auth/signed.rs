//! Signed, expiring URLs: `?expires=UNIX&sig=HEX` on a publish or play.
//!
//! `sig` is the lowercase hex HMAC-SHA256, keyed with one of `[auth] secrets`, of
//!
//! ```text
//! {action}\n{app}\n{stream}\n{expires}
//! ```
//!
//! where `action` is `publish` or `play`, `app` and `stream` are the names in the URL (before
//! any renaming) and `expires` the Unix time (seconds) after which the URL is refused. Every
//! configured secret is tried (rotation: add the new secret first, drop the old one once the
//! URLs signed with it have expired); the comparison takes the same time wherever the bytes
//! differ. `weir sign` prints such a query; a web backend computes the same in a few lines.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a signed URL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Publishing the stream.
    Publish,
    /// Playing the stream.
    Play,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
        }
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `expires` or `sig` in the query.
    #[error("this stream needs a signed URL (?expires=…&sig=…; see `weir sign`)")]
    Missing,
    /// `expires` or `sig` is not a number / hex.
    #[error("the signed URL is malformed (expires must be a Unix time, sig 64 hex digits)")]
    Malformed,
    /// The URL expired.
    #[error("the signed URL has expired")]
    Expired,
    /// No configured secret gives this signature.
    #[error("the URL's signature does not match")]
    Mismatch,
}

/// The hex signature of (`action`, `app`, `stream`, `expires`) with `secret`.
pub fn sign(secret: &str, action: Action, app: &str, stream: &str, expires: u64) -> String {
    let digest = mac(secret, action, app, stream, expires);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(secret: &str, action: Action, app: &str, stream: &str, expires: u64) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(format!("{}\n{app}\n{stream}\n{expires}", action.as_str()).as_bytes());
    mac.finalize().into_bytes().into()
}

/// The query string to append for (`action`, `app`, `stream`) until `expires`.
pub fn signed_query(secret: &str, action: Action, app: &str, stream: &str, expires: u64) -> String {
    format!(
        "expires={expires}&sig={}",
        sign(secret, action, app, stream, expires)
    )
}

/// Checks the `expires` and `sig` of `query` for (`action`, `app`, `stream`) at `now`
/// (Unix seconds) against every secret.
pub fn check(
    secrets: &[String],
    query: Option<&str>,
    action: Action,
    app: &str,
    stream: &str,
    now: u64,
) -> Result<(), SignatureError> {
    let (mut expires, mut sig) = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("expires", v)) => expires = Some(v),
            Some(("sig", v)) => sig = Some(v),
            _ => {}
        }
    }
    let (Some(expires), Some(sig)) = (expires, sig) else {
        return Err(SignatureError::Missing);
    };
    let expires: u64 = expires.parse().map_err(|_| SignatureError::Malformed)?;
    let sig = parse_hex(sig).ok_or(SignatureError::Malformed)?;
    let mut matched = false;
    for secret in secrets {
        let expected = mac(secret, action, app, stream, expires);
        let differ = expected
            .iter()
            .zip(&sig)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        matched |= differ == 0;
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    if now > expires {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRETS: [&str; 2] = ["new-secret", "old-secret"];

    fn secrets() -> Vec<String> {
        SECRETS.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_known_vector() {
        // Python: hmac.new(b"k", b"play\nlive\nalice\n1800000000", hashlib.sha256).hexdigest()
        assert_eq!(
            sign("k", Action::Play, "live", "alice", 1_800_000_000),
            "484ffed70ec7bdd125249e4faceef06e9f8054115dbe3a7d6ad2e9fe4dbc35d6"
        );
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let s = secrets();
        let q = signed_query("old-secret", Action::Play, "live", "alice", 1000);
        assert_eq!(
            check(&s, Some(&q), Action::Play, "live", "alice", 999),
            Ok(())
        );
        assert_eq!(
            check(&s, Some(&q), Action::Play, "live", "alice", 1001),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            check(&s, Some(&q), Action::Publish, "live", "alice", 999),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&s, Some(&q), Action::Play, "live", "bob", 999),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(&s, None, Action::Play, "live", "alice", 0),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check(&s, Some("expires=x&sig=00"), Action::Play, "live", "a", 0),
            Err(SignatureError::Malformed)
        );
        let other = vec!["third".to_owned()];
        assert_eq!(
            check(&other, Some(&q), Action::Play, "live", "alice", 999),
            Err(SignatureError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn a_signature_checks_only_for_what_it_signed(
            app in "[a-z]{1,8}", stream in "[a-z0-9_]{1,12}", other in "[a-z0-9_]{1,12}",
            expires in 1u64..4_000_000_000, flip in 0usize..64,
        ) {
            let s = secrets();
            let q = signed_query("new-secret", Action::Publish, &app, &stream, expires);
            prop_assert_eq!(check(&s, Some(&q), Action::Publish, &app, &stream, expires), Ok(()));
            if other != stream {
                prop_assert_eq!(check(&s, Some(&q), Action::Publish, &app, &other, 0), Err(SignatureError::Mismatch));
            }
            // Any one changed hex digit of the signature is refused.
            let sig = sign("new-secret", Action::Publish, &app, &stream, expires);
            let mut bad: Vec<char> = sig.chars().collect();
            bad[flip] = if bad[flip] == '0' { '1' } else { '0' };
            let bad: String = bad.into_iter().collect();
            let q = format!("expires={expires}&sig={bad}");
            prop_assert_eq!(check(&s, Some(&q), Action::Publish, &app, &stream, 0), Err(SignatureError::Mismatch));
        }
    }
}
