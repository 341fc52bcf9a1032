//! The configured access rules (`[apps.NAME]`): the [`Policy`] the server runs with.
//!
//! Per application (apps not listed use `[apps.default]`, and without that the zero-config
//! rules): `publish = "open"` lets anyone publish any name (today's behaviour), `publish =
//! "keys"` takes only the secret stream keys listed in `keys`, each stored as its SHA-256 hash
//! (`weir hash-key` prints one) and mapped to the public name viewers watch: OBS publishes
//! `rtmp://HOST/live` with key `sk_…`, viewers play `live/alice`. `play = "open"` lets anyone
//! watch. The key is compared by hash, in constant time; the log names the rule that refused a
//! client, never the key. `publish = "signed"` / `play = "signed"` take only signed, unexpired
//! URLs ([`signed`]: `?expires=UNIX&sig=HEX`, HMAC-SHA256 with one of `[auth] secrets`).
//!
//! Not yet (issue 9): webhooks, IP rules, limits, takeover.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::config::{AppRules, PlayRule, PublishRule};
use crate::policy::{Answer, ConnectRequest, Decision, OpenPolicy, Policy, StreamRequest};

pub mod signed;

use signed::Action;

/// The prefix of a stored key hash.
const HASH_PREFIX: &str = "sha256:";

/// `sha256:` and the hex SHA-256 of `key`: what `keys = [{ hash = … }]` holds.
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The 32 bytes of a stored hash (`sha256:` + 64 hex digits), if well formed.
pub fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix(HASH_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random stream key: `sk_` and 32 base-32 characters (160 bits).
pub fn new_key() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    let mut key = String::from("sk_");
    key.extend(bytes.iter().map(|b| ALPHABET[usize::from(b % 32)] as char));
    key
}

/// Equal in time that does not depend on where the bytes differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// One application's rules, with the key hashes decoded.
#[derive(Debug, Clone)]
struct App {
    rules: AppRules,
    keys: Vec<([u8; 32], String)>,
}

/// The rules of `[apps]`; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ConfigPolicy {
    apps: BTreeMap<String, App>,
    secrets: Vec<String>,
}

impl ConfigPolicy {
    /// The policy for `apps` with the signing `secrets` (validated by the config: every hash
    /// is well formed, signed apps have a secret).
    pub fn new(apps: &BTreeMap<String, AppRules>, secrets: &[String]) -> ConfigPolicy {
        let apps = apps
            .iter()
            .map(|(name, rules)| {
                let keys = rules
                    .keys
                    .iter()
                    .filter_map(|k| Some((parse_hash(&k.hash)?, k.stream.clone())))
                    .collect();
                (
                    name.clone(),
                    App {
                        rules: rules.clone(),
                        keys,
                    },
                )
            })
            .collect();
        ConfigPolicy {
            apps,
            secrets: secrets.iter().filter(|s| !s.is_empty()).cloned().collect(),
        }
    }

    /// A signed-URL check of `request` for `action`, as a decision naming the rule.
    fn signed(&self, request: &StreamRequest, action: Action, rule: &str) -> Answer {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let key = &request.key;
        match signed::check(
            &self.secrets,
            key.query(),
            action,
            key.app(),
            key.name(),
            now,
        ) {
            Ok(()) => Decision::Allow.into(),
            Err(why) => Decision::Deny(format!("{why} ({rule} = \"signed\")")).into(),
        }
    }

    /// The rules `app` runs under and where they come from.
    fn app<'a>(&'a self, app: &'a str) -> Option<(&'a App, &'a str)> {
        match self.apps.get(app) {
            Some(rules) => Some((rules, app)),
            None => self.apps.get("default").map(|r| (r, "default")),
        }
    }
}

impl Policy for ConfigPolicy {
    fn connect(&self, request: &ConnectRequest) -> Answer {
        OpenPolicy.connect(request)
    }

    fn publish(&self, request: &StreamRequest) -> Answer {
        let Some((app, section)) = self.app(request.key.app()) else {
            return Decision::Allow.into();
        };
        match app.rules.publish {
            PublishRule::Open => Decision::Allow.into(),
            PublishRule::Signed => {
                self.signed(request, Action::Publish, &format!("apps.{section}.publish"))
            }
            PublishRule::Keys => {
                let digest: [u8; 32] = Sha256::digest(request.key.name().as_bytes()).into();
                // Every entry is compared, whichever matches.
                let mut found = None;
                for (hash, stream) in &app.keys {
                    if same(hash, &digest) {
                        found = Some(stream);
                    }
                }
                match found {
                    Some(stream) => Decision::AllowAs(stream.clone()).into(),
                    None => Decision::Deny(format!(
                        "unknown stream key (apps.{section}.publish = \"keys\"; publish with a key from apps.{section}.keys)"
                    ))
                    .into(),
                }
            }
        }
    }

    fn play(&self, request: &StreamRequest) -> Answer {
        match self.app(request.key.app()) {
            Some((app, section)) if app.rules.play == PlayRule::Signed => {
                self.signed(request, Action::Play, &format!("apps.{section}.play"))
            }
            _ => Decision::Allow.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StreamKeyEntry;
    use crate::policy::Client;
    use crate::registry::Protocol;
    use crate::stream_key::StreamKey;

    fn request(app: &str, name: &str) -> StreamRequest {
        StreamRequest {
            client: Client {
                id: 1,
                peer: "127.0.0.1:5000".parse().unwrap(),
                protocol: Protocol::Rtmp,
            },
            key: StreamKey::new(app, name, None),
        }
    }

    fn decided(answer: Answer) -> Decision {
        match answer {
            Answer::Ready(decision) => decision,
            Answer::Pending(_) => panic!("pending"),
        }
    }

    #[test]
    fn hashes_read_back_and_keys_are_random() {
        let hash = hash_key("sk_test");
        assert!(hash.starts_with("sha256:") && hash.len() == 71);
        assert_eq!(
            parse_hash(&hash).unwrap(),
            <[u8; 32]>::from(Sha256::digest(b"sk_test"))
        );
        assert!(parse_hash("sha256:zz").is_none() && parse_hash("md5:00").is_none());
        let (a, b) = (new_key(), new_key());
        assert!(a.starts_with("sk_") && a.len() == 35 && a != b);
    }

    #[test]
    fn keys_map_to_public_names_and_others_are_refused() {
        let mut apps = BTreeMap::new();
        apps.insert(
            "live".to_owned(),
            AppRules {
                publish: PublishRule::Keys,
                keys: vec![StreamKeyEntry {
                    hash: hash_key("sk_alice"),
                    stream: "alice".to_owned(),
                }],
                ..AppRules::default()
            },
        );
        let policy = ConfigPolicy::new(&apps, &[]);
        assert_eq!(
            decided(policy.publish(&request("live", "sk_alice"))),
            Decision::AllowAs("alice".to_owned())
        );
        // The public name is no key, and neither is anything else.
        for name in ["alice", "sk_alicf", ""] {
            let Decision::Deny(why) = decided(policy.publish(&request("live", name))) else {
                panic!("{name} allowed");
            };
            assert!(
                why.contains("apps.live.publish") && !why.contains("sk_"),
                "{why}"
            );
        }
        // Other apps: no [apps.default] here, so the zero-config rules.
        assert_eq!(
            decided(policy.publish(&request("other", "x"))),
            Decision::Allow
        );
        assert_eq!(
            decided(policy.play(&request("live", "alice"))),
            Decision::Allow
        );
    }
}
