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
//! `allow_publish`/`deny_publish`/`allow_play`/`deny_play` (CIDR lists) are checked first: a
//! denied address is refused, and with an allow list only its addresses pass.
//!
//! Webhooks ([`webhook`]): `on_connect` decides connects; `on_publish` / `on_play` are asked
//! after the app's rule allowed (`publish = "webhook"` / `play = "webhook"`: the webhook alone
//! decides) and may rename the stream; `on_unpublish` / `on_play_done` are told when a publish
//! or play ends.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::config::{AppRules, PlayRule, PublishRule};
use crate::policy::{
    Answer, ConnectRequest, Decision, Ended, Ending, OpenPolicy, Policy, StreamRequest,
};

pub mod cidr;
pub mod signed;
pub mod webhook;

use std::sync::Arc;
use webhook::{Call, Event, Hooks};

use cidr::Cidr;

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
    /// (allow, deny) for publishing, then for playing.
    publish_ips: (Vec<Cidr>, Vec<Cidr>),
    play_ips: (Vec<Cidr>, Vec<Cidr>),
}

/// The parsed entries of a CIDR list (the config validated them).
fn cidrs(list: &[String]) -> Vec<Cidr> {
    list.iter().filter_map(|c| Cidr::parse(c)).collect()
}

/// The IP rule's refusal of `ip`, if any: a deny entry that matches, or an allow list it is
/// not in.
fn refused_ip(
    ip: std::net::IpAddr,
    (allow, deny): &(Vec<Cidr>, Vec<Cidr>),
    section: &str,
    action: &str,
) -> Option<Decision> {
    if let Some(hit) = deny.iter().find(|c| c.contains(ip)) {
        return Some(Decision::Deny(format!(
            "address {ip} is refused ({hit} in apps.{section}.deny_{action})"
        )));
    }
    if !allow.is_empty() && !allow.iter().any(|c| c.contains(ip)) {
        return Some(Decision::Deny(format!(
            "address {ip} is not allowed (not in apps.{section}.allow_{action})"
        )));
    }
    None
}

/// The rules of `[apps]`; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ConfigPolicy {
    apps: BTreeMap<String, App>,
    secrets: Vec<String>,
    hooks: Arc<Hooks>,
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
                        publish_ips: (cidrs(&rules.allow_publish), cidrs(&rules.deny_publish)),
                        play_ips: (cidrs(&rules.allow_play), cidrs(&rules.deny_play)),
                    },
                )
            })
            .collect();
        ConfigPolicy {
            apps,
            secrets: secrets.iter().filter(|s| !s.is_empty()).cloned().collect(),
            hooks: Arc::new(Hooks::new()),
        }
    }

    /// The same policy, counting its webhook calls in `metrics` (the server's).
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> ConfigPolicy {
        self.hooks = Arc::new(Hooks::new().with_metrics(metrics));
        self
    }

    /// `base` (the app's rule allowed), then the `event` webhook if the app has one: its
    /// decision, under the name the rule gave unless the webhook renames.
    fn then_webhook(
        &self,
        base: Decision,
        app: &App,
        section: &str,
        event: Event,
        request: &StreamRequest,
    ) -> Answer {
        if matches!(base, Decision::Deny(_)) || event.url(&app.rules).is_empty() {
            return base.into();
        }
        let renamed = match &base {
            Decision::AllowAs(name) => Some(name.clone()),
            _ => None,
        };
        let stream = renamed
            .clone()
            .unwrap_or_else(|| request.key.name().to_owned());
        let call = Call {
            event,
            client: &request.client,
            app: request.key.app(),
            stream: Some(&stream),
            query: request.key.query(),
            extra: None,
        };
        let keep_name = move |decision: Decision| match (decision, &renamed) {
            (Decision::Allow, Some(name)) => Decision::AllowAs(name.clone()),
            (decision, _) => decision,
        };
        if let Some(decision) = self.hooks.cached(&app.rules, &call) {
            return keep_name(decision).into();
        }
        let asked = self.hooks.decide(&app.rules, section, &call);
        Answer::later(async move { keep_name(asked.await) })
    }

    /// A signed-URL check of `request` for `action`, as a decision naming the rule.
    fn signed(&self, request: &StreamRequest, action: Action, rule: &str) -> Decision {
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
            Ok(()) => Decision::Allow,
            Err(why) => Decision::Deny(format!("{why} ({rule} = \"signed\")")),
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
        let open = OpenPolicy.connect(request);
        let Some((app, section)) = self.app(&request.app) else {
            return open;
        };
        if matches!(open, Answer::Ready(Decision::Deny(_))) || app.rules.on_connect.is_empty() {
            return open;
        }
        let call = Call {
            event: Event::Connect,
            client: &request.client,
            app: &request.app,
            stream: None,
            query: request.query.as_deref(),
            extra: None,
        };
        if let Some(decision) = self.hooks.cached(&app.rules, &call) {
            return decision.into();
        }
        Answer::later(self.hooks.decide(&app.rules, section, &call))
    }

    fn ended(&self, ended: &Ended) {
        let request = &ended.request;
        let Some((app, _)) = self.app(request.key.app()) else {
            return;
        };
        let (event, file) = match &ended.what {
            Ending::Publish => (Event::Unpublish, None),
            Ending::Play => (Event::PlayDone, None),
            Ending::RecordDone {
                file,
                start,
                format,
            } => (
                Event::RecordDone,
                Some(serde_json::json!({ "file": file, "start": start, "format": format })),
            ),
        };
        let call = Call {
            event,
            client: &request.client,
            app: request.key.app(),
            stream: Some(request.key.name()),
            query: request.key.query(),
            extra: Some({
                let mut extra = serde_json::json!({
                    "duration_secs": ended.duration.as_secs_f64(),
                    "bytes": ended.bytes,
                    "reason": ended.reason,
                });
                if let (Some(serde_json::Value::Object(file)), serde_json::Value::Object(all)) =
                    (file, &mut extra)
                {
                    all.extend(file);
                }
                extra
            }),
        };
        self.hooks.notify(&app.rules, &call);
    }

    fn publish(&self, request: &StreamRequest) -> Answer {
        let Some((app, section)) = self.app(request.key.app()) else {
            return Decision::Allow.into();
        };
        let ip = request.client.peer.ip();
        if let Some(refused) = refused_ip(ip, &app.publish_ips, section, "publish") {
            return refused.into();
        }
        let base = match app.rules.publish {
            PublishRule::Open | PublishRule::Webhook => Decision::Allow,
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
                    Some(stream) => Decision::AllowAs(stream.clone()),
                    None => Decision::Deny(format!(
                        "unknown stream key (apps.{section}.publish = \"keys\"; publish with a key from apps.{section}.keys)"
                    )),
                }
            }
        };
        self.then_webhook(base, app, section, Event::Publish, request)
    }

    fn play(&self, request: &StreamRequest) -> Answer {
        let Some((app, section)) = self.app(request.key.app()) else {
            return Decision::Allow.into();
        };
        let ip = request.client.peer.ip();
        if let Some(refused) = refused_ip(ip, &app.play_ips, section, "play") {
            return refused.into();
        }
        let base = match app.rules.play {
            PlayRule::Signed => self.signed(request, Action::Play, &format!("apps.{section}.play")),
            PlayRule::Open | PlayRule::Webhook => Decision::Allow,
        };
        self.then_webhook(base, app, section, Event::Play, request)
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
                tc_url: None,
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
    fn ip_rules_come_first() {
        let mut apps = BTreeMap::new();
        apps.insert(
            "live".to_owned(),
            AppRules {
                allow_publish: vec!["10.0.0.0/8".to_owned()],
                deny_play: vec!["127.0.0.1".to_owned(), "2001:db8::/32".to_owned()],
                ..AppRules::default()
            },
        );
        let policy = ConfigPolicy::new(&apps, &[]);
        let from = |ip: &str| {
            let mut r = request("live", "cam");
            r.client.peer = std::net::SocketAddr::new(ip.parse().unwrap(), 5000);
            r
        };
        assert_eq!(decided(policy.publish(&from("10.1.2.3"))), Decision::Allow);
        let Decision::Deny(why) = decided(policy.publish(&from("127.0.0.1"))) else {
            panic!("publish from outside allow_publish");
        };
        assert!(why.contains("apps.live.allow_publish"), "{why}");
        let Decision::Deny(why) = decided(policy.play(&from("2001:db8::9"))) else {
            panic!("play from a denied range");
        };
        assert!(
            why.contains("2001:db8::/32 in apps.live.deny_play"),
            "{why}"
        );
        assert_eq!(decided(policy.play(&from("10.1.2.3"))), Decision::Allow);
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
