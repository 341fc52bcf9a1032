//! Who may publish: secret stream keys (`[apps.NAME] publish = "keys"`). Debian's FFmpeg
//! publishes with a key and the stream appears under its public name, where FFmpeg plays it;
//! a wrong key and the public name itself are refused before any media enters the hub, the
//! key never shows in the log, and an open app on the same server keeps working.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::time::Duration;

use common::fixtures::{HEIGHT, WIDTH};
use common::{
    ffmpeg_play_to_flv, ffmpeg_publish, fixture, Expect, Ffmpeg, FixtureKind, TestDir, WeirServer,
};
use weir::config::{AppRules, PublishRule, StreamKeyEntry};

const KEY: &str = "sk_test_alice_4f1b9c";

#[test]
fn a_secret_key_publishes_under_its_public_name_and_nothing_else_does() {
    let dir = TestDir::new("auth-keys");
    let mut config = weir::Config::default();
    config.rtmp.addr = "127.0.0.1:0".parse().unwrap();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            publish: PublishRule::Keys,
            keys: vec![StreamKeyEntry {
                hash: weir::auth::hash_key(KEY),
                stream: "alice".to_owned(),
            }],
            ..AppRules::default()
        },
    );
    let weir = WeirServer::start_with(config, dir.path());

    // Refused: a wrong key, and the public name used as a key.
    for name in ["sk_wrong", "alice"] {
        let url = weir.url(name);
        let mut refused = ffmpeg_publish(
            Ffmpeg::Debian,
            &url,
            fixture(FixtureKind::H264Baseline),
            false,
            dir.path(),
        );
        let status = refused.child().wait_timeout(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| !s.success()),
            "publishing {name} was not refused: {status:?}"
        );
        assert!(weir.published_keys().is_empty(), "{name} reached the hub");
    }
    let log = weir.log_text();
    assert!(
        log.contains("publish rejected: unknown stream key (apps.live.publish = \"keys\""),
        "{log}"
    );
    assert!(log.contains("live/(key withheld)"), "{log}");

    // The key publishes as live/alice; a player of live/alice gets the stream.
    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &weir.url(KEY),
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(Duration::from_secs(15));
    weir.wait_published(&["live/alice"], Duration::from_secs(10));
    assert_eq!(weir.published_keys(), ["live/alice"]);
    let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &weir.url("alice"), 2.0, dir.path());
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.8),
        "key play",
    );
    publisher.wait_finished(Duration::from_secs(20));

    // The key itself is never written to the log.
    assert!(
        !weir.log_text().contains(KEY),
        "the key leaked into the log"
    );
    weir.shutdown();
}

/// `weir hash-key` prints the hash the config takes, and a new key when given none.
#[test]
fn hash_key_prints_what_the_config_takes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["hash-key", KEY])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&weir::auth::hash_key(KEY)), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("hash-key")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("sk_"))
        .expect("a new key");
    assert!(text.contains(&weir::auth::hash_key(key)), "{text}");
    // What it prints is a config weir accepts.
    let snippet = &text[text.find("[apps.live]").unwrap()..];
    let config = weir::Config::from_toml(snippet).unwrap();
    assert!(config.validate().is_ok());
}
