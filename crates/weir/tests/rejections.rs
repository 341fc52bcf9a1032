//! Every refusal of the access rules on one server, as a table: the case, the client, the
//! status it got and the media bytes it (or, for a refused publisher, a viewer waiting on the
//! name it tried) received, and the log line naming the rule. Refused parties see zero media
//! bytes; an authorised stream on the same server keeps flowing throughout. The byte-level
//! clients here are ours; the same refusals with FFmpeg are in auth.rs, webhooks.rs,
//! proxies.rs and rtmps.rs.
//!
//! The table is printed (`cargo test --test rejections -- --nocapture`) and written to
//! `rejections.md` in the test directory.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::access::{http_get, play_and_count, publish_eagerly};
use common::raw_client::RawClient;
use common::TestDir;
use weir::auth::signed::{signed_query, Action};
use weir::config::{AppRules, PlayRule, PublishRule, StreamKeyEntry};

const SECRET: &str = "rejections-secret";

/// One row of the table.
struct Row {
    case: &'static str,
    client: &'static str,
    status: String,
    media_bytes: usize,
    log: &'static str,
}

/// A webhook server that refuses everything (403 with a reason), or answers after 5 s.
fn hook_server(runtime: &tokio::runtime::Runtime) -> SocketAddr {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/deny",
            post(|| async {
                (
                    axum::http::StatusCode::FORBIDDEN,
                    r#"{"reason":"not today"}"#,
                )
            }),
        )
        .route(
            "/hang",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                ""
            }),
        );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Media bytes in an HTTP-FLV body: everything after the 13-byte FLV header, if there is one.
fn flv_media_bytes(body: &[u8]) -> usize {
    if body.starts_with(b"FLV") {
        body.len().saturating_sub(13)
    } else {
        0
    }
}

#[test]
fn every_refusal_gets_its_status_and_no_media() {
    let dir = TestDir::new("rejections");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hooks = hook_server(&runtime);
    let dead = common::free_port();
    let mut config = common::loopback_config();
    config.auth.secrets = vec![SECRET.to_owned()];
    let mut apps = vec![
        (
            "keys",
            AppRules {
                publish: PublishRule::Keys,
                keys: vec![StreamKeyEntry {
                    hash: weir::auth::hash_key("sk_right"),
                    stream: "k".to_owned(),
                }],
                ..AppRules::default()
            },
        ),
        (
            "signed",
            AppRules {
                publish: PublishRule::Signed,
                play: PlayRule::Signed,
                ..AppRules::default()
            },
        ),
        (
            "nopub",
            AppRules {
                deny_publish: vec!["127.0.0.0/8".to_owned()],
                ..AppRules::default()
            },
        ),
        (
            "noplay",
            AppRules {
                deny_play: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
                ..AppRules::default()
            },
        ),
        (
            "small",
            AppRules {
                max_publishers: 1,
                max_viewers_per_stream: 1,
                ..AppRules::default()
            },
        ),
    ];
    for (app, path) in [("hookdeny", "deny"), ("hookslow", "hang")] {
        apps.push((
            app,
            AppRules {
                publish: PublishRule::Webhook,
                play: PlayRule::Webhook,
                on_publish: format!("http://{hooks}/{path}"),
                on_play: format!("http://{hooks}/{path}"),
                webhook_timeout_ms: 800,
                ..AppRules::default()
            },
        ));
    }
    apps.push((
        "hookdead",
        AppRules {
            publish: PublishRule::Webhook,
            play: PlayRule::Webhook,
            on_publish: format!("http://127.0.0.1:{dead}/publish"),
            on_play: format!("http://127.0.0.1:{dead}/play"),
            ..AppRules::default()
        },
    ));
    apps.push((
        "hookconnect",
        AppRules {
            on_connect: format!("http://{hooks}/deny"),
            ..AppRules::default()
        },
    ));
    for (name, rules) in apps {
        config.apps.insert(name.to_owned(), rules);
    }
    let weir = common::WeirServer::start_with(config, dir.path());
    let addr = weir.addr();
    let http = weir.http_addr();

    // The authorised stream, and a byte-level viewer measuring it for the whole run.
    let mut steady = weir.publish_fixture("steady", dir.path());
    let steady_viewer = runtime.spawn(play_and_count(
        addr,
        "live",
        "steady",
        Duration::from_secs(5),
    ));
    // small/a is live with its one viewer, so small is at both limits.
    let (_small_publisher, code, _) = runtime.block_on(publish_eagerly(addr, "small", "a"));
    assert_eq!(code, "NetStream.Publish.Start");
    let mut small_viewer = runtime.block_on(async {
        let mut client = RawClient::connect(addr).await;
        client.handshake().await.unwrap();
        client.connect_app("small").await.unwrap();
        let stream_id = client.create_stream().await.unwrap();
        client.play(stream_id, "a").await.unwrap();
        client
    });

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = signed_query(SECRET, Action::Publish, "signed", "s", now - 10);
    let forged = signed_query("wrong secret", Action::Publish, "signed", "s", now + 600);
    let watch_signed = signed_query(SECRET, Action::Play, "signed", "s", now + 600);
    let expired_play = signed_query(SECRET, Action::Play, "signed", "s", now - 10);

    let mut rows = Vec::new();
    // Refused publishers: each sends media right behind its publish; a viewer waits on the
    // name it tried and counts what reaches it.
    let publishes: [(&str, &str, &str, String, String, &str); 8] = [
        (
            "wrong stream key",
            "keys",
            "sk_wrong",
            "sk_wrong".into(),
            String::new(),
            "unknown stream key (apps.keys.publish = \"keys\"",
        ),
        (
            "expired publish signature",
            "signed",
            "s",
            format!("s?{expired}"),
            format!("s?{watch_signed}"),
            "has expired (apps.signed.publish = \"signed\")",
        ),
        (
            "forged publish signature",
            "signed",
            "s",
            format!("s?{forged}"),
            format!("s?{watch_signed}"),
            "does not match (apps.signed.publish = \"signed\")",
        ),
        (
            "address in deny_publish",
            "nopub",
            "x",
            "x".into(),
            String::new(),
            "127.0.0.0/8 in apps.nopub.deny_publish",
        ),
        (
            "over max_publishers",
            "small",
            "b",
            "b".into(),
            String::new(),
            "apps.small.max_publishers",
        ),
        (
            "webhook denies",
            "hookdeny",
            "x",
            "x".into(),
            String::new(),
            "not today (refused by apps.hookdeny.on_publish, HTTP 403)",
        ),
        (
            "webhook times out",
            "hookslow",
            "x",
            "x".into(),
            String::new(),
            "no answer within 800 ms (webhook_timeout_ms)",
        ),
        (
            "webhook unreachable",
            "hookdead",
            "x",
            "x".into(),
            String::new(),
            "the apps.hookdead.on_publish webhook failed",
        ),
    ];
    for (case, app, watched, name, watch_as, log) in publishes {
        // Where the refused app's own rules refuse the watcher too, it watches with what
        // passes (a signed URL); the webhook apps' watchers are refused, which is checked
        // below, so the hub is asked instead.
        let watch = if watch_as.is_empty() {
            watched.to_owned()
        } else {
            watch_as
        };
        let watcher = runtime.spawn(play_and_count(
            addr,
            app,
            Box::leak(watch.into_boxed_str()),
            Duration::from_millis(2000),
        ));
        std::thread::sleep(Duration::from_millis(200));
        let started = Instant::now();
        let (mut client, code, description) = runtime.block_on(publish_eagerly(addr, app, &name));
        let closed = runtime
            .block_on(client.wait_closed(Duration::from_secs(3)))
            .is_ok();
        let (_, bytes, _) = runtime.block_on(watcher).unwrap();
        assert!(closed, "{case}: the connection stayed open");
        assert!(
            !weir.published_keys().contains(&format!("{app}/{watched}")),
            "{case}: reached the hub"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{case}: took {:?}",
            started.elapsed()
        );
        rows.push(Row {
            case,
            client: "weir test client, RTMP publish",
            status: format!("{code}: {description}, connection closed"),
            media_bytes: bytes,
            log,
        });
    }

    // Refused players over RTMP: the status, and every media byte counted.
    let plays: [(&str, &str, String, &str); 7] = [
        (
            "play without a signature",
            "signed",
            "s".into(),
            "needs a signed URL",
        ),
        (
            "expired play signature",
            "signed",
            format!("s?{expired_play}"),
            "has expired (apps.signed.play = \"signed\")",
        ),
        (
            "address in deny_play",
            "noplay",
            "x".into(),
            "127.0.0.0/8 in apps.noplay.deny_play",
        ),
        (
            "over max_viewers_per_stream",
            "small",
            "a".into(),
            "apps.small.max_viewers_per_stream",
        ),
        (
            "webhook denies play",
            "hookdeny",
            "x".into(),
            "refused by apps.hookdeny.on_play",
        ),
        (
            "webhook times out on play",
            "hookslow",
            "x".into(),
            "apps.hookslow.on_play webhook failed",
        ),
        (
            "webhook unreachable on play",
            "hookdead",
            "x".into(),
            "apps.hookdead.on_play webhook failed",
        ),
    ];
    for (case, app, name, log) in plays {
        let (media, bytes, statuses) = runtime.block_on(play_and_count(
            addr,
            app,
            Box::leak(name.into_boxed_str()),
            Duration::from_millis(1500),
        ));
        assert!(
            statuses
                .iter()
                .any(|s| s.starts_with("NetStream.Play.Failed")),
            "{case}: {statuses:?}"
        );
        assert_eq!(media, 0, "{case}");
        rows.push(Row {
            case,
            client: "weir test client, RTMP play",
            status: statuses.join(", "),
            media_bytes: bytes,
            log,
        });
    }

    // The same over HTTP: HTTP-FLV and HLS.
    let http_cases: [(&str, String, &str, &str); 6] = [
        (
            "HTTP-FLV without a signature",
            "/signed/s.flv".into(),
            " 403",
            "needs a signed URL",
        ),
        (
            "HTTP-FLV from a denied address",
            "/noplay/x.flv".into(),
            " 403",
            "apps.noplay.deny_play",
        ),
        (
            "HTTP-FLV over max_viewers_per_stream",
            "/small/a.flv".into(),
            " 503",
            "apps.small.max_viewers_per_stream",
        ),
        (
            "HTTP-FLV, webhook denies",
            "/hookdeny/x.flv".into(),
            " 403",
            "refused by apps.hookdeny.on_play",
        ),
        (
            "HLS without a signature",
            "/signed/s/index.m3u8".into(),
            " 403",
            "needs a signed URL",
        ),
        (
            "HLS, webhook unreachable",
            "/hookdead/x/index.m3u8".into(),
            " 403",
            "apps.hookdead.on_play webhook failed",
        ),
    ];
    for (case, path, want, log) in http_cases {
        let (status, body) = http_get(http, &path);
        assert!(status.contains(want), "{case}: {status}");
        assert!(!body.starts_with(b"FLV"), "{case}: an FLV stream began");
        rows.push(Row {
            case,
            client: "HTTP GET",
            status: format!("{status}: {}", String::from_utf8_lossy(&body).trim()),
            media_bytes: flv_media_bytes(&body),
            log,
        });
    }

    // A connect the on_connect webhook refuses.
    let refused = runtime.block_on(async {
        let mut client = RawClient::connect(addr).await;
        client.handshake().await.unwrap();
        client.connect_app("hookconnect").await.unwrap_err()
    });
    assert!(
        refused.contains("NetConnection.Connect.Rejected"),
        "{refused}"
    );
    rows.push(Row {
        case: "on_connect webhook denies",
        client: "weir test client, RTMP connect",
        status: "_error NetConnection.Connect.Rejected: not today (refused by apps.hookconnect.on_connect, HTTP 403)".into(),
        media_bytes: 0,
        log: "connect rejected: not today (refused by apps.hookconnect.on_connect, HTTP 403)",
    });

    let (small_media, _, _) = runtime.block_on(common::access::count_media(
        &mut small_viewer,
        Duration::from_millis(500),
    ));
    assert!(small_media > 0, "the viewer within the limit got nothing");
    let (steady_media, steady_bytes, _) = runtime.block_on(steady_viewer).unwrap();
    assert!(
        steady_media > 100,
        "the authorised stream stalled during the refusals: {steady_media} messages"
    );

    let log = weir.log_text();
    let mut table = String::from(
        "| case | client | status | media bytes to the refused party | log names the rule |\n|---|---|---|---|---|\n",
    );
    for row in &rows {
        assert_eq!(
            row.media_bytes, 0,
            "{}: media reached the refused party",
            row.case
        );
        assert!(
            log.contains(row.log),
            "{}: no log line with {:?}",
            row.case,
            row.log
        );
        table.push_str(&format!(
            "| {} | {} | {} | {} | `{}` |\n",
            row.case,
            row.client,
            row.status.replace('|', "/"),
            row.media_bytes,
            row.log
        ));
    }
    table.push_str(&format!(
        "\nMeanwhile the authorised stream live/steady: {steady_media} media messages, {steady_bytes} bytes to its viewer in 5 s.\n"
    ));
    println!("{table}");
    std::fs::write(dir.path().join("rejections.md"), &table).unwrap();
    steady.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}
