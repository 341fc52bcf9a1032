//! RTMPS with certificates made in the test (rcgen): Debian's FFmpeg 5.1 and FFmpeg 9 publish
//! over `rtmps://`, each plays the other's stream back over `rtmps://` (and Debian's FFmpeg
//! over plain RTMP); a
//! client that checks the certificate against another authority fails the handshake; a
//! certificate replaced on disk is what the next connection gets while the publisher keeps
//! going; garbage and a stalled handshake are closed without holding anyone up.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;

use common::fixtures::{HEIGHT, WIDTH};
use common::tls::certificate;
use common::{ffmpeg_play_to_flv, ffmpeg_publish, fixture, process, tools};
use common::{Expect, Ffmpeg, FixtureKind, TestDir, WeirServer};

/// The SHA-256 fingerprint of the certificate a TLS server presents (openssl).
fn served_fingerprint(addr: std::net::SocketAddr, dir: &Path) -> String {
    served_fingerprint_for(addr, "localhost", dir)
}

/// The same, asking for `name` (SNI).
fn served_fingerprint_for(addr: std::net::SocketAddr, name: &str, dir: &Path) -> String {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "openssl s_client -connect {addr} -servername {name} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256"
    ));
    let (_, out, _) = process::run("openssl", cmd, dir, Duration::from_secs(20));
    out.trim().to_owned()
}

fn file_fingerprint(path: &Path, dir: &Path) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(path);
    let (_, out, _) = process::run("openssl", cmd, dir, Duration::from_secs(20));
    out.trim().to_owned()
}

#[test]
fn ffmpeg_publishes_and_plays_over_rtmps() {
    let dir = TestDir::new("rtmps");
    let (cert, key) = certificate(dir.path(), "server");
    let mut config = common::loopback_config();
    config.rtmps.cert_file = cert.display().to_string();
    config.rtmps.key_file = key.display().to_string();
    config.rtmp.handshake_timeout_secs = 2;
    let weir = WeirServer::start_with(config, dir.path());
    let tls = weir.rtmps_addr().expect("rtmps listener");
    let tls_url = |key: &str| format!("rtmps://{tls}/live/{key}");
    assert_eq!(
        served_fingerprint(tls, dir.path()),
        file_fingerprint(&cert, dir.path())
    );

    // A stalled handshake and garbage: closed, while everything else goes on.
    let mut stalled = TcpStream::connect(tls).unwrap();
    let stalled_at = Instant::now();
    let mut garbage = TcpStream::connect(tls).unwrap();
    garbage
        .write_all(b"\x16\x03\x01\x00\x05hello, this is not TLS")
        .unwrap();

    let mut publisher = ffmpeg_publish(
        Ffmpeg::Debian,
        &tls_url("tls"),
        fixture(FixtureKind::H264Baseline),
        true,
        dir.path(),
    );
    publisher.wait_started(Duration::from_secs(15));
    // FFmpeg 9 publishes over RTMPS too, checking the certificate (its own authority here).
    let cert_arg = cert.display().to_string();
    let mut recent_publisher = common::clients::ffmpeg_publish_with(
        Ffmpeg::Recent,
        &tls_url("tls9"),
        fixture(FixtureKind::H264Baseline),
        true,
        &["-tls_verify", "1", "-ca_file", &cert_arg],
        dir.path(),
    );
    recent_publisher.wait_started(Duration::from_secs(15));
    weir.wait_published(&["live/tls", "live/tls9"], Duration::from_secs(10));

    // The certificate is renewed on disk: the next connection gets the new one, the
    // publisher's connection goes on.
    std::thread::sleep(Duration::from_millis(1100)); // a new modification time
    let (new_cert, new_key) = certificate(dir.path(), "renewed");
    std::fs::copy(&new_key, &key).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    assert_eq!(
        served_fingerprint(tls, dir.path()),
        file_fingerprint(&new_cert, dir.path()),
        "the renewed certificate is served"
    );
    assert!(weir.log_text().contains("rtmps certificate reloaded"));

    // FFmpeg 9 plays over RTMPS, checking the renewed certificate (it is its own authority
    // here); Debian's FFmpeg plays over plain RTMP: the same stream.
    let played = dir.path().join("over-tls.flv");
    let (over_tls, over_tcp, debian_over_tls) = std::thread::scope(|s| {
        let over_tcp =
            s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &weir.url("tls"), 2.0, dir.path()));
        let debian_over_tls =
            s.spawn(|| ffmpeg_play_to_flv(Ffmpeg::Debian, &tls_url("tls9"), 2.0, dir.path()));
        let mut cmd = Command::new(tools::ffmpeg_recent());
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-tls_verify", "1", "-ca_file"])
            .arg(&new_cert)
            .args(["-i", &tls_url("tls"), "-map", "0:v", "-map", "0:a"])
            .args(["-c", "copy", "-t", "2", "-f", "flv", "-y"])
            .arg(&played);
        let (status, _, err) = process::run(
            "ffmpeg9-rtmps-play",
            cmd,
            dir.path(),
            Duration::from_secs(30),
        );
        assert!(status.success(), "ffmpeg 9 over rtmps: {err}");
        (
            common::probe_file(&played, dir.path()),
            over_tcp.join().unwrap(),
            debian_over_tls.join().unwrap(),
        )
    });
    let expect = Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.5);
    over_tls.assert_matches(&expect, "ffmpeg 9 over rtmps");
    over_tcp.assert_matches(&expect, "ffmpeg 5.1 over rtmp");
    debian_over_tls.assert_matches(
        &expect,
        "ffmpeg 5.1 over rtmps, published by ffmpeg 9 over rtmps",
    );

    // A client that checks the certificate against another authority refuses it.
    let (other_ca, _) = certificate(dir.path(), "other");
    let mut cmd = Command::new(tools::ffmpeg());
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-tls_verify", "1", "-ca_file"])
        .arg(&other_ca)
        .args(["-i", &tls_url("tls"), "-t", "1", "-f", "null", "-"]);
    let (status, _, err) =
        process::run("ffmpeg-wrong-ca", cmd, dir.path(), Duration::from_secs(20));
    assert!(!status.success(), "a wrong authority was accepted: {err}");

    publisher.wait_finished(Duration::from_secs(20));
    recent_publisher.wait_finished(Duration::from_secs(20));

    // The garbage client was refused at once (an alert or a close); the stalled one is
    // closed at the handshake timeout.
    garbage
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = garbage.read_to_end(&mut rest);
    assert!(
        rest.len() < 64,
        "answered garbage with {} bytes",
        rest.len()
    );
    stalled
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let read = stalled.read(&mut [0u8; 1]);
    assert!(
        matches!(read, Ok(0))
            || matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "the stalled handshake is still open {:?} after it began: {read:?}",
        stalled_at.elapsed()
    );
    let log = weir.log_text();
    assert!(
        log.contains("transport timed out") && log.contains("transport failed"),
        "{log}"
    );
    weir.shutdown();
}

/// weir-client over `rtmps://`: it publishes to weir when it trusts weir's certificate, and
/// refuses a server its trust does not cover (the public authorities do not know a
/// self-signed certificate).
#[test]
fn weir_client_publishes_over_rtmps_and_checks_the_certificate() {
    use weir_client::{Client, ClientOptions, RtmpUrl, TlsTrust};
    let dir = TestDir::new("rtmps-client");
    let (cert, key) = certificate(dir.path(), "server");
    let mut config = common::loopback_config();
    config.rtmps.cert_file = cert.display().to_string();
    config.rtmps.key_file = key.display().to_string();
    let weir = WeirServer::start_with(config, dir.path());
    let url = RtmpUrl::parse(&format!(
        "rtmps://{}/live/client",
        weir.rtmps_addr().unwrap()
    ))
    .unwrap();
    let pem = std::fs::read(&cert).unwrap();
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let trusting = ClientOptions {
            tls: Some(TlsTrust::only(vec![der])),
            ..ClientOptions::default()
        };
        let mut client = Client::connect_with(&url, trusting)
            .await
            .expect("connect over tls");
        client.publish("client").await.expect("publish over tls");
        assert_eq!(weir.published_keys(), ["live/client"]);
        let Err(err) = Client::connect_with(&url, ClientOptions::default()).await else {
            panic!("a self-signed certificate passed the public authorities");
        };
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );
    });
    weir.shutdown();
}

/// `http.tls`: the HTTP listener serves HTTPS with the RTMPS certificate: curl checks it and
/// gets the HLS playlist, Debian's FFmpeg plays HTTP-FLV over it.
#[test]
fn the_http_listener_serves_https_with_the_same_certificate() {
    let dir = TestDir::new("https");
    let (cert, key) = certificate(dir.path(), "server");
    let mut config = common::loopback_config();
    config.rtmps.cert_file = cert.display().to_string();
    config.rtmps.key_file = key.display().to_string();
    config.http.tls = true;
    let weir = WeirServer::start_with(config, dir.path());
    let mut publisher = weir.publish_fixture("secure", dir.path());
    let base = format!("https://{}", weir.http_addr());
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "15", "--cacert"])
        .arg(&cert)
        .arg(format!("{base}/live/secure/index.m3u8"));
    let (status, out, err) = process::run("curl", cmd, dir.path(), Duration::from_secs(20));
    assert!(
        status.success() && out.contains("#EXT-X-STREAM-INF"),
        "{out}{err}"
    );
    // Plain HTTP on the HTTPS port gets nothing useful.
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5"]).arg(format!(
        "http://{}/live/secure/index.m3u8",
        weir.http_addr()
    ));
    let (_, out, _) = process::run("curl-plain", cmd, dir.path(), Duration::from_secs(10));
    assert!(!out.contains("#EXTM3U"), "{out}");
    let report = ffmpeg_play_to_flv(
        Ffmpeg::Debian,
        &format!("{base}/live/secure.flv"),
        1.5,
        dir.path(),
    );
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(1.3),
        "http-flv over https",
    );
    publisher.wait_finished(Duration::from_secs(20));
    weir.shutdown();
}

/// `rtmps.certificates`: a second certificate for another name on the same port is what a
/// client asking for that name (SNI) gets; other names get the default one.
#[test]
fn a_second_certificate_is_served_by_name() {
    let dir = TestDir::new("rtmps-sni");
    let (cert, key) = certificate(dir.path(), "default");
    let rcgen::CertifiedKey {
        cert: other,
        key_pair,
    } = rcgen::generate_simple_self_signed(vec!["media.example".to_owned()]).unwrap();
    let (other_cert, other_key) = (dir.path().join("other.pem"), dir.path().join("other.key"));
    std::fs::write(&other_cert, other.pem()).unwrap();
    std::fs::write(&other_key, key_pair.serialize_pem()).unwrap();
    let mut config = common::loopback_config();
    config.rtmps.cert_file = cert.display().to_string();
    config.rtmps.key_file = key.display().to_string();
    config.rtmps.certificates = vec![weir::config::CertificatePair {
        cert_file: other_cert.display().to_string(),
        key_file: other_key.display().to_string(),
    }];
    let weir = WeirServer::start_with(config, dir.path());
    let tls = weir.rtmps_addr().expect("rtmps listener");
    let (default_print, other_print) = (
        file_fingerprint(&cert, dir.path()),
        file_fingerprint(&other_cert, dir.path()),
    );
    assert_ne!(default_print, other_print);
    assert_eq!(
        served_fingerprint_for(tls, "media.example", dir.path()),
        other_print
    );
    assert_eq!(
        served_fingerprint_for(tls, "localhost", dir.path()),
        default_print
    );
    assert_eq!(
        served_fingerprint_for(tls, "unknown.example", dir.path()),
        default_print
    );
    weir.shutdown();
}
