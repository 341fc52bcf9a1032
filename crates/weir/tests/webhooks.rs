//! Webhooks (`on_connect`, `on_publish`, `on_play`, `on_unpublish`, `on_play_done`,
//! `on_record_done`) against a
//! webhook server in the test (axum on 127.0.0.1) that records every call's JSON.
//!
//! Allowed and renamed: FFmpeg publishes a secret key the webhook renames, FFmpeg plays the
//! public name with a token. Refused: the webhook denies, answers too late, cannot be
//! reached; each refused publisher (our byte-level client, which sends media right behind its
//! `publish`) gets `NetStream.Publish.BadName` and a closed connection and none of its media
//! reaches a player waiting on that stream; each refused player gets `Play.Failed` (RTMP) or
//! 403 (HTTP) and zero media bytes; an authorised stream on the same server keeps flowing
//! meanwhile. The log names the rule each time.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use weir::config::{AppRules, PlayRule, PublishRule, RecordFormat, RecordRules, WebhookFailure};

use common::access::{http_get, play_and_count, publish_eagerly};
use common::fixtures::{small_fixture, SMALL_HEIGHT, SMALL_WIDTH};
use common::raw_client::RawClient;
use common::{ffmpeg_play_to_flv, ffmpeg_publish, fixture, Expect, Ffmpeg, FixtureKind, TestDir};

/// Every call the webhook server got: (path, JSON body).
type Calls = Arc<Mutex<Vec<(String, Value)>>>;

/// The webhook server: decides by the stream name and the query.
struct Hooks {
    addr: SocketAddr,
    calls: Calls,
    _runtime: tokio::runtime::Runtime,
}

impl Hooks {
    fn start() -> Hooks {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let calls = Calls::default();
        let app = Router::new()
            .route("/{event}", post(decide))
            .with_state(Arc::clone(&calls));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Hooks {
            addr,
            calls,
            _runtime: runtime,
        }
    }

    fn url(&self, event: &str) -> String {
        format!("http://{}/{event}", self.addr)
    }

    /// The calls to `/{event}` so far.
    fn calls(&self, event: &str) -> Vec<Value> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(path, _)| path == event)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Waits up to 5 s for a call to `/{event}` about `stream`.
    fn wait_call(&self, event: &str, stream: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(call) = self
                .calls(event)
                .into_iter()
                .find(|c| c["stream"] == stream)
            {
                return call;
            }
            assert!(Instant::now() < deadline, "no {event} call for {stream}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The webhook's rules: publish `sk_good` → renamed `alice`; `denied` → 403 with a reason;
/// `slow` → 403 after 0.6 s; `hang` → no answer for 10 s; anything else allowed. Play needs
/// `token=ok` in the query. Connect refuses a query with `block`.
async fn decide(
    State(calls): State<Calls>,
    Path(event): Path<String>,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    calls.lock().unwrap().push((event.clone(), body.clone()));
    let stream = body["stream"].as_str().unwrap_or_default().to_owned();
    let query = body["query"].as_str().unwrap_or_default().to_owned();
    let refuse = |reason: &str| {
        (
            StatusCode::FORBIDDEN,
            json!({ "reason": reason }).to_string(),
        )
    };
    match event.as_str() {
        "connect" if query.contains("block") => refuse("this app is closed"),
        "publish" => match stream.as_str() {
            "sk_good" => (StatusCode::OK, json!({ "stream": "alice" }).to_string()),
            "denied" => refuse("not on the schedule"),
            "slow" => {
                tokio::time::sleep(Duration::from_millis(600)).await;
                refuse("thought about it")
            }
            "hang" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                (StatusCode::OK, String::new())
            }
            _ => (StatusCode::OK, String::new()),
        },
        "play" if !query.contains("token=ok") => refuse("bad token"),
        _ => (StatusCode::OK, String::new()),
    }
}

/// An app decided by `hooks`.
fn hooked(hooks: &Hooks) -> AppRules {
    AppRules {
        publish: PublishRule::Webhook,
        play: PlayRule::Webhook,
        on_connect: hooks.url("connect"),
        on_publish: hooks.url("publish"),
        on_play: hooks.url("play"),
        on_unpublish: hooks.url("unpublish"),
        on_play_done: hooks.url("play_done"),
        webhook_timeout_ms: 2000, // "slow" (0.6 s) answers within it on a loaded machine too
        ..AppRules::default()
    }
}

#[test]
fn webhooks_decide_rename_and_refuse_before_any_media() {
    let dir = TestDir::new("webhooks");
    let hooks = Hooks::start();
    let mut config = common::loopback_config();
    let mut live = hooked(&hooks);
    // Recorded too: each closed file is told to on_record_done.
    live.on_record_done = hooks.url("record_done");
    live.record = RecordRules {
        format: Some(RecordFormat::Fmp4),
        path: format!("{}/rec/{{stream}}/{{start}}.{{ext}}", dir.path().display()),
        ..RecordRules::default()
    };
    config.apps.insert("live".to_owned(), live);
    config.apps.insert(
        "dead".to_owned(),
        AppRules {
            publish: PublishRule::Webhook,
            on_publish: format!("http://127.0.0.1:{}/publish", common::free_port()),
            ..AppRules::default()
        },
    );
    config.apps.insert(
        "lenient".to_owned(),
        AppRules {
            publish: PublishRule::Webhook,
            on_publish: format!("http://127.0.0.1:{}/publish", common::free_port()),
            webhook_on_error: WebhookFailure::Allow,
            ..AppRules::default()
        },
    );
    config.apps.insert(
        "cached".to_owned(),
        AppRules {
            play: PlayRule::Webhook,
            on_play: hooks.url("play"),
            webhook_cache_secs: 60,
            ..AppRules::default()
        },
    );
    let weir = common::WeirServer::start_with(config, dir.path());
    let addr = weir.addr();
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // FFmpeg publishes a key (the 9 s stream); the webhook renames it. The calls carry what
    // the README says.
    let key_url = weir.url("sk_good");
    let mut publisher = ffmpeg_publish(Ffmpeg::Debian, &key_url, small_fixture(), true, dir.path());
    publisher.wait_started(Duration::from_secs(15));
    weir.wait_published(&["live/alice"], Duration::from_secs(10));
    let call = hooks.wait_call("publish", "sk_good");
    assert_eq!(call["action"], "publish");
    assert_eq!(call["app"], "live");
    assert_eq!(call["protocol"], "rtmp");
    assert_eq!(call["ip"], "127.0.0.1");
    assert!(
        call["client_id"].as_u64().is_some_and(|id| id > 0),
        "{call}"
    );
    assert!(
        call["tc_url"].as_str().is_some_and(|t| t.contains("/live")),
        "{call}"
    );
    let connect = hooks.calls("connect");
    assert!(
        connect
            .iter()
            .any(|c| c["action"] == "connect" && c["stream"].is_null()),
        "{connect:?}"
    );

    // While a byte-level viewer measures that live/alice keeps flowing, three publishers are
    // refused: denied, slow then denied, no answer in time. A viewer waits on each of those
    // names; neither it nor the hub sees any of the refused media.
    let steady = runtime.spawn(play_and_count(
        addr,
        "live",
        "alice?token=ok",
        Duration::from_secs(4),
    ));
    let refusals: Vec<_> = [
        (
            "denied",
            "not on the schedule (refused by apps.live.on_publish, HTTP 403)",
        ),
        (
            "slow",
            "thought about it (refused by apps.live.on_publish, HTTP 403)",
        ),
        ("hang", "no answer within 2000 ms (webhook_timeout_ms)"),
    ]
    .into_iter()
    .map(|(name, reason)| {
        runtime.spawn(async move {
            let watcher = tokio::spawn(play_and_count(
                addr,
                "live",
                format!("{name}?token=ok").leak(),
                Duration::from_secs(3),
            ));
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            let (mut client, code, description) = publish_eagerly(addr, "live", name).await;
            let answered_in = started.elapsed();
            let closed = client.wait_closed(Duration::from_secs(3)).await.is_ok();
            let (media, bytes, statuses) = watcher.await.unwrap();
            (
                name,
                reason,
                code,
                description,
                answered_in,
                closed,
                media,
                bytes,
                statuses,
            )
        })
    })
    .collect();
    // Meanwhile FFmpeg plays the public name with a token.
    let report = ffmpeg_play_to_flv(
        Ffmpeg::Debian,
        &format!("{}?token=ok", weir.url("alice")),
        2.0,
        dir.path(),
    );
    report.assert_matches(
        &Expect::h264_aac(SMALL_WIDTH, SMALL_HEIGHT).min_seconds(1.8),
        "renamed stream, played with a token",
    );
    let play = hooks.wait_call("play", "alice");
    assert_eq!(play["query"], "token=ok");
    for refusal in refusals {
        let (name, reason, code, description, answered_in, closed, media, bytes, statuses) =
            runtime.block_on(refusal).unwrap();
        assert_eq!(code, "NetStream.Publish.BadName", "{name}: {description}");
        assert!(description.contains(reason), "{name}: {description}");
        assert!(
            answered_in < Duration::from_secs(3),
            "{name}: answered after {answered_in:?}"
        );
        assert!(closed, "{name}: the connection stayed open");
        assert_eq!(
            (media, bytes),
            (0, 0),
            "{name}: media reached a viewer ({statuses:?})"
        );
        assert!(!weir.published_keys().contains(&format!("live/{name}")));
    }
    let (media, bytes, _) = runtime.block_on(steady).unwrap();
    assert!(
        media > 100 && bytes > 20_000,
        "the authorised stream stalled while others were refused: {media} messages, {bytes} bytes"
    );

    // FFmpeg as the refused party: a publish the webhook denies, a play without the token.
    let mut refused = ffmpeg_publish(
        Ffmpeg::Debian,
        &weir.url("denied"),
        fixture(FixtureKind::H264Baseline),
        false,
        dir.path(),
    );
    let status = refused.child().wait_timeout(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "FFmpeg published past a denying webhook: {status:?}"
    );
    let mut cmd = std::process::Command::new(common::tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-i"])
        .arg(weir.url("alice"))
        .args(["-t", "1", "-c", "copy", "-f", "flv", "-y"])
        .arg(dir.path().join("refused.flv"));
    let (status, _, _) =
        common::process::run("ffmpeg-refused", cmd, dir.path(), Duration::from_secs(20));
    assert!(!status.success(), "FFmpeg played without the token");
    let size = std::fs::metadata(dir.path().join("refused.flv")).map_or(0, |m| m.len());
    assert!(
        size < 100,
        "{size} bytes of media written by a refused FFmpeg"
    );

    // Unreachable webhook: refused (fail closed) for FFmpeg; let in where the app says so.
    let mut refused = ffmpeg_publish(
        Ffmpeg::Debian,
        &weir.url("cam").replace("/live/", "/dead/"),
        fixture(FixtureKind::H264Baseline),
        false,
        dir.path(),
    );
    let status = refused.child().wait_timeout(Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| !s.success()),
        "publishing past a dead webhook: {status:?}"
    );
    assert!(!weir.published_keys().contains(&"dead/cam".to_owned()));
    let (_client, code, description) = runtime.block_on(publish_eagerly(addr, "lenient", "cam"));
    assert_eq!(code, "NetStream.Publish.Start", "{description}");

    // Refused players: no token. HTTP-FLV gets a 403 without a byte of FLV; HLS a 403, and
    // with the token HLS carries it into every URL (first: the 9 s stream must still be on);
    // RTMP gets Play.Failed and no media.
    let http = weir.http_addr();
    let (status, body) = http_get(http, "/live/alice.flv");
    assert!(status.contains(" 403"), "{status}");
    assert!(
        !body.starts_with(b"FLV") && String::from_utf8_lossy(&body).contains("bad token"),
        "{body:?}"
    );
    let (status, _) = http_get(http, "/live/alice/index.m3u8");
    assert!(status.contains(" 403"), "{status}");
    let (status, body) = http_get(http, "/live/alice/index.m3u8?token=ok");
    assert!(status.contains(" 200"), "{status}");
    let playlist = String::from_utf8_lossy(&body).to_string();
    let uris: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        !uris.is_empty() && uris.iter().all(|u| u.ends_with("?token=ok")),
        "{playlist}"
    );
    let (status, body) = http_get(http, &format!("/live/alice/{}", uris[0]));
    assert!(status.contains(" 200"), "{status}");
    assert!(
        String::from_utf8_lossy(&body).contains(".m4s?token=ok"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (media, bytes, statuses) = runtime.block_on(play_and_count(
        addr,
        "live",
        "alice",
        Duration::from_secs(2),
    ));
    assert_eq!((media, bytes), (0, 0), "{statuses:?}");
    assert!(
        statuses
            .iter()
            .any(|s| s.starts_with("NetStream.Play.Failed")),
        "{statuses:?}"
    );

    // A connect the webhook refuses: NetConnection.Connect.Rejected.
    runtime.block_on(async {
        let mut client = RawClient::connect(addr).await;
        client.handshake().await.unwrap();
        let err = client.connect_app("live?block=1").await.unwrap_err();
        assert!(
            err.contains("NetConnection.Connect.Rejected") && err.contains("this app is closed"),
            "{err}"
        );
    });

    // A cached decision: two plays, one call.
    let before = hooks.calls("play").len();
    for _ in 0..2 {
        runtime.block_on(play_and_count(
            addr,
            "cached",
            "x?token=ok",
            Duration::from_millis(300),
        ));
    }
    assert_eq!(
        hooks.calls("play").len(),
        before + 1,
        "the decision was not reused"
    );

    // Ends are told: the publisher's and the FFmpeg player's.
    publisher.wait_finished(Duration::from_secs(20));
    let ended = hooks.wait_call("unpublish", "alice");
    assert!(
        ended["bytes"].as_u64().is_some_and(|b| b > 100_000),
        "{ended}"
    );
    assert!(
        ended["duration_secs"].as_f64().is_some_and(|d| d > 1.0),
        "{ended}"
    );
    let done = hooks.wait_call("play_done", "alice");
    assert!(done["bytes"].as_u64().is_some_and(|b| b > 10_000), "{done}");
    let recorded = hooks.wait_call("record_done", "alice");
    let file = recorded["file"].as_str().unwrap_or_default();
    assert!(
        file.contains("/rec/alice/") && std::path::Path::new(file).is_file(),
        "{recorded}"
    );
    assert_eq!(recorded["format"], "fmp4", "{recorded}");
    assert_eq!(recorded["reason"], "the publisher left", "{recorded}");
    assert!(
        recorded["duration_secs"].as_f64().is_some_and(|d| d > 1.0)
            && recorded["bytes"].as_u64().is_some_and(|b| b > 100_000)
            && recorded["start"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{recorded}"
    );

    let log = weir.log_text();
    for line in [
        "publish rejected: not on the schedule (refused by apps.live.on_publish, HTTP 403)",
        "the apps.dead.on_publish webhook failed",
        "apps.dead.webhook_on_error = \"deny\"",
        "let in (apps.lenient.webhook_on_error = \"allow\")",
        "play rejected: bad token (refused by apps.live.on_play, HTTP 403)",
        "connect rejected: this app is closed (refused by apps.live.on_connect, HTTP 403)",
    ] {
        assert!(log.contains(line), "no log line with {line:?}");
    }
    weir.shutdown();
}
