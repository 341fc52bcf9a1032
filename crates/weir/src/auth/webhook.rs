//! Webhooks: `on_connect`, `on_publish` and `on_play` decide, `on_unpublish` and
//! `on_play_done` are told.
//!
//! Each call is a JSON `POST` (the fields are in [`body`]) with `apps.NAME.webhook_timeout_ms`
//! for the whole exchange. The reply is read by `weir_access::webhook::parse_reply`: any 2xx
//! allows (a JSON `{"stream": "…"}` renames the stream), anything else denies. A webhook that
//! cannot be reached, fails or is too slow refuses the client unless the app sets
//! `webhook_on_error = "allow"`. Decisions (not failures) are reused for
//! `apps.NAME.webhook_cache_secs` per (event, app, stream, query). The decision is a future
//! only the asking connection waits on; until it resolves that connection's session holds
//! everything the client sends (no media reaches the hub) and a player gets no byte of media.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::{debug, warn};
use weir_access::webhook::{parse_reply, Reply, MAX_REPLY};

use crate::config::{AppRules, WebhookFailure};
use crate::policy::{Client, Decision};

/// Decisions kept at most; past that, expired ones are dropped, then all.
const MAX_CACHED: usize = 10_000;

/// Which webhook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// `on_connect`: an RTMP `connect` to the app.
    Connect,
    /// `on_publish`.
    Publish,
    /// `on_play`.
    Play,
    /// `on_unpublish`: a publish ended.
    Unpublish,
    /// `on_play_done`: a play ended.
    PlayDone,
    /// `on_record_done`: a recording file was closed.
    RecordDone,
}

impl Event {
    /// The `action` field of the call, and the config key's suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Connect => "connect",
            Event::Publish => "publish",
            Event::Play => "play",
            Event::Unpublish => "unpublish",
            Event::PlayDone => "play_done",
            Event::RecordDone => "record_done",
        }
    }

    /// The URL configured for this event in `rules` (empty: none).
    pub fn url(self, rules: &AppRules) -> &str {
        match self {
            Event::Connect => &rules.on_connect,
            Event::Publish => &rules.on_publish,
            Event::Play => &rules.on_play,
            Event::Unpublish => &rules.on_unpublish,
            Event::PlayDone => &rules.on_play_done,
            Event::RecordDone => &rules.on_record_done,
        }
    }
}

/// What a call says about the client and the stream.
pub struct Call<'a> {
    /// The event.
    pub event: Event,
    /// Who.
    pub client: &'a Client,
    /// The application.
    pub app: &'a str,
    /// The stream name (absent for a connect).
    pub stream: Option<&'a str>,
    /// The query string that came with the name (or with the app, for a connect).
    pub query: Option<&'a str>,
    /// Extra fields (the end of a publish or play: duration, bytes, reason).
    pub extra: Option<Value>,
}

/// The JSON body of a call:
/// `{"action", "client_id", "addr", "ip", "protocol", "app", "stream", "query", "tc_url",
/// "server"}` plus, for `unpublish` / `play_done` / `record_done`, `"duration_secs"`,
/// `"bytes"`, `"reason"`, and for `record_done` `"file"`, `"start"` (RFC 3339) and `"format"`.
pub fn body(call: &Call<'_>) -> Value {
    let mut body = json!({
        "action": call.event.as_str(),
        "client_id": call.client.id,
        "addr": call.client.peer.to_string(),
        "ip": call.client.peer.ip().to_string(),
        "protocol": call.client.protocol.as_str(),
        "app": call.app,
        "stream": call.stream,
        "query": call.query,
        "tc_url": call.client.tc_url,
        "server": concat!("weir/", env!("CARGO_PKG_VERSION")),
    });
    if let (Some(Value::Object(extra)), Value::Object(fields)) = (&call.extra, &mut body) {
        fields.extend(extra.clone());
    }
    body
}

/// The webhook client and the decision cache, shared by every connection.
pub struct Hooks {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, Decision)>>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Self::new()
    }
}

impl Hooks {
    /// A client that keeps connections to the webhook servers open between calls, follows no
    /// redirect (a 3xx denies) and ignores proxy environment variables.
    pub fn new() -> Hooks {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("weir/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Hooks {
            http,
            cache: Mutex::new(HashMap::new()),
            metrics: std::sync::Arc::default(),
        }
    }

    /// Counts calls in `metrics` (the server's) from now on.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Hooks {
        self.metrics = metrics;
        self
    }

    /// Counts a call's outcome and duration.
    fn observe(&self, event: Event, outcome: &str, took: Duration) {
        use crate::metrics::{labels, Metrics};
        Metrics::count(
            &self.metrics.webhook_calls,
            &[("event", event.as_str()), ("outcome", outcome)],
        );
        self.metrics
            .webhook_seconds
            .get_or_create(&labels(&[("event", event.as_str())]))
            .observe(took.as_secs_f64());
    }

    /// The cache key of a call.
    fn cache_key(call: &Call<'_>) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            call.event.as_str(),
            call.app,
            call.stream.unwrap_or(""),
            call.query.unwrap_or("")
        )
    }

    /// A decision reused from an earlier call, if `rules` cache them and one is fresh.
    pub fn cached(&self, rules: &AppRules, call: &Call<'_>) -> Option<Decision> {
        if rules.webhook_cache_secs == 0 {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (until, decision) = cache.get(&Self::cache_key(call))?;
        (Instant::now() < *until).then(|| decision.clone())
    }

    fn remember(&self, key: String, decision: &Decision, secs: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            let now = Instant::now();
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(
            key,
            (Instant::now() + Duration::from_secs(secs), decision.clone()),
        );
    }

    /// The webhook's decision on `call`, as a future (the caller checked [`Hooks::cached`]).
    /// `section` names the app's config section in refusals.
    pub fn decide(
        self: &std::sync::Arc<Self>,
        rules: &AppRules,
        section: &str,
        call: &Call<'_>,
    ) -> impl std::future::Future<Output = Decision> + Send + 'static {
        let hooks = std::sync::Arc::clone(self);
        let event = call.event;
        let url = event.url(rules).to_owned();
        let timeout = Duration::from_millis(rules.webhook_timeout_ms);
        let on_error = rules.webhook_on_error;
        let cache_secs = rules.webhook_cache_secs;
        let key = Self::cache_key(call);
        let body = body(call);
        let rule = format!("apps.{section}.on_{}", event.as_str());
        let section = section.to_owned();
        async move {
            let started = Instant::now();
            let result = hooks.post(&url, &body, timeout).await;
            let took_ms = started.elapsed().as_millis();
            let outcome = match &result {
                Ok((status, _)) if (200..300).contains(status) => "allow",
                Ok(_) => "deny",
                Err(_) => "error",
            };
            hooks.observe(event, outcome, started.elapsed());
            let decision = match result {
                Ok((status, reply)) => {
                    debug!(%url, status, took_ms, "webhook answered");
                    match parse_reply(status, &reply) {
                        Reply::Allow { rename: None } => Decision::Allow,
                        Reply::Allow { rename: Some(name) } => Decision::AllowAs(name),
                        Reply::Deny { reason } => Decision::Deny(match reason {
                            Some(said) => format!("{said} (refused by {rule}, HTTP {status})"),
                            None => format!("refused by {rule} (HTTP {status})"),
                        }),
                    }
                }
                Err(why) => {
                    let failure = format!("the {rule} webhook failed: {why}");
                    return match on_error {
                        WebhookFailure::Deny => Decision::Deny(format!(
                            "{failure} (apps.{section}.webhook_on_error = \"deny\")"
                        )),
                        WebhookFailure::Allow => {
                            warn!(
                                "{failure}; let in (apps.{section}.webhook_on_error = \"allow\")"
                            );
                            Decision::Allow
                        }
                    };
                }
            };
            if cache_secs > 0 {
                hooks.remember(key, &decision, cache_secs);
            }
            decision
        }
    }

    /// Tells the webhook of `call` in the background; a failure is logged.
    pub fn notify(self: &std::sync::Arc<Self>, rules: &AppRules, call: &Call<'_>) {
        let url = call.event.url(rules).to_owned();
        if url.is_empty() {
            return;
        }
        let hooks = std::sync::Arc::clone(self);
        let timeout = Duration::from_millis(rules.webhook_timeout_ms);
        let body = body(call);
        let event = call.event.as_str();
        let kind = call.event;
        tokio::spawn(async move {
            let started = Instant::now();
            let result = hooks.post(&url, &body, timeout).await;
            let outcome = match &result {
                Ok((status, _)) if (200..300).contains(status) => "allow",
                Ok(_) => "deny",
                Err(_) => "error",
            };
            hooks.observe(kind, outcome, started.elapsed());
            match result {
                Ok((status, _)) if (200..300).contains(&status) => {}
                Ok((status, _)) => warn!(%url, status, "the on_{event} webhook answered an error"),
                Err(why) => warn!(%url, "the on_{event} webhook failed: {why}"),
            }
        });
    }

    /// POSTs `body` to `url`; the status and at most `MAX_REPLY` bytes of the reply, all
    /// within `timeout`.
    async fn post(
        &self,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<(u16, Vec<u8>), String> {
        let exchange = async {
            let mut response = self
                .http
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string())
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let status = response.status().as_u16();
            let mut reply = Vec::new();
            while reply.len() < MAX_REPLY {
                match response.chunk().await.map_err(|e| describe(&e))? {
                    Some(chunk) => reply.extend_from_slice(&chunk),
                    None => break,
                }
            }
            reply.truncate(MAX_REPLY);
            Ok((status, reply))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {} ms (webhook_timeout_ms)",
                timeout.as_millis()
            )),
        }
    }
}

/// A reqwest error with its causes (reqwest's own text is just "error sending request").
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
