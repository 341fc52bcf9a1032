//! E-RTMP ReconnectRequest at shutdown: the `weir` binary gets SIGTERM while three players
//! wait on a stream. The ones whose connect set `capsEx` Reconnect are asked to reconnect
//! (to the configured tcUrl, a second weir) and still served until `rtmp.drain_timeout_secs`
//! runs out; one of them follows the request (connects to the second weir and plays there
//! before it leaves the first, as the spec's flow has it); the legacy player is closed at
//! once. Then weir exits cleanly.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::ChildGuard;
use common::{free_port, wait_for_port, TestDir, WeirServer};
use weir_client::{Client, ClientEvent, ClientOptions, RtmpUrl};
use weir_rtmp::caps::{CAPS_EX_MULTITRACK, CAPS_EX_RECONNECT};
use weir_rtmp::command::code;

/// Waits for the client's connection to end; returns when it did (None: still open at
/// `limit`). Events before are collected.
async fn wait_closed(
    client: &mut Client,
    limit: Duration,
    seen: &mut Vec<ClientEvent>,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        match client.next_event(left).await {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => return None,
            Err(_) => return Some(Instant::now()),
        }
    }
}

fn is_reconnect_request(event: &ClientEvent) -> bool {
    matches!(event, ClientEvent::Status { stream_id: 0, status }
        if status.code == code::CONNECT_RECONNECT_REQUEST)
}

#[test]
fn sigterm_asks_reconnect_capable_clients_to_reconnect_before_closing() {
    let dir = TestDir::new("reconnect");
    let standby = WeirServer::start(dir.path());
    let standby_tc_url = format!("rtmp://{}/live", standby.addr());
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.file("weir.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\naddr = \"127.0.0.1:0\"\n[api]\naddr = \"127.0.0.1:0\"\n[rtmp]\naddr = \"{addr}\"\ndrain_timeout_secs = 3\n\
             reconnect_tc_url = \"{standby_tc_url}\"\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weir"));
    cmd.arg("--config").arg(&config);
    let mut weir = ChildGuard::spawn("weir", cmd, dir.path());
    assert!(
        wait_for_port(addr, Duration::from_secs(10), || weir.is_running()),
        "weir did not start\n{}",
        weir.diagnostics()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = RtmpUrl::parse(&format!("rtmp://{addr}/live/waiting")).unwrap();
        let capable = ClientOptions {
            caps_ex: Some(CAPS_EX_RECONNECT | CAPS_EX_MULTITRACK),
            ..ClientOptions::default()
        };
        let legacy = ClientOptions {
            caps_ex: None,
            ..ClientOptions::default()
        };
        let mut a = Client::connect_with(&url, capable.clone())
            .await
            .expect("connect a");
        let mut b = Client::connect_with(&url, legacy).await.expect("connect b");
        let mut c = Client::connect_with(&url, capable.clone())
            .await
            .expect("connect c");
        a.play("waiting").await.expect("play a");
        b.play("waiting").await.expect("play b");
        c.play("waiting").await.expect("play c");

        let sent = Instant::now();
        weir.terminate();

        let mut b_events = Vec::new();
        let b_closed = wait_closed(&mut b, Duration::from_secs(5), &mut b_events)
            .await
            .expect("the legacy client is closed at once");
        assert!(
            !b_events.iter().any(is_reconnect_request),
            "a client without capsEx Reconnect got {b_events:?}"
        );
        assert!(
            b_closed - sent < Duration::from_secs(2),
            "legacy close took {:?}",
            b_closed - sent
        );

        // c follows the request: to the standby server, then it leaves the old one.
        let target = loop {
            match c.next_event(Duration::from_secs(5)).await {
                Ok(Some(ClientEvent::ReconnectRequest { tc_url, .. })) => {
                    break url
                        .reconnect_target(tc_url.as_deref())
                        .expect("resolvable tcUrl");
                }
                Ok(Some(_)) => continue,
                other => panic!("c got no ReconnectRequest: {other:?}"),
            }
        };
        assert_eq!(target.to_string(), format!("{standby_tc_url}/waiting"));
        let mut moved = Client::connect_with(&target, capable)
            .await
            .expect("connect to the standby");
        moved
            .play(&target.stream)
            .await
            .expect("play on the standby");
        let viewers = standby
            .hub()
            .stream_stats("live/waiting")
            .map_or(0, |s| s.viewer_count());
        assert_eq!(viewers, 1, "the moved player waits on the standby");
        // The old connection was still served while the new one was set up.
        assert!(
            c.next_event(Duration::from_millis(10)).await.is_ok(),
            "c's old connection closed before it moved"
        );
        c.close().await.expect("leave the draining server");

        let mut a_events = Vec::new();
        let a_closed = wait_closed(&mut a, Duration::from_secs(10), &mut a_events)
            .await
            .expect("the reconnect-capable client is closed after the drain");
        let request = a_events
            .iter()
            .find(|e| is_reconnect_request(e))
            .unwrap_or_else(|| panic!("no ReconnectRequest in {a_events:?}"));
        let ClientEvent::Status { status, .. } = request else {
            unreachable!()
        };
        assert_eq!(status.description, "server shutting down");
        // Served until the drain timeout (3 s), not closed with the others.
        let served = a_closed - sent;
        assert!(
            served >= Duration::from_millis(2500) && served < Duration::from_secs(8),
            "the capable client was served {served:?} after SIGTERM"
        );
        moved.close().await.expect("close on the standby");
    });
    let status = weir
        .wait_timeout(Duration::from_secs(15))
        .expect("weir exits after the drain");
    assert!(
        status.success(),
        "weir exit {status:?}\n{}",
        weir.diagnostics()
    );
    let log = weir.stderr() + &weir.stdout();
    assert!(
        log.contains("asked the client to reconnect") && log.contains(&standby_tc_url),
        "{log}"
    );
    standby.shutdown();
}

/// `Server::drain` (the trigger the API will expose) asks a capable player to reconnect and
/// closes a legacy one, while the server keeps running.
#[tokio::test]
async fn drain_asks_capable_clients_to_reconnect_and_closes_the_rest() {
    let mut config = common::loopback_config();
    config.rtmp.reconnect_tc_url = "/backup".into();
    let server = weir::Server::start(config).await.unwrap();
    let url = RtmpUrl::parse(&format!("rtmp://{}/live/s", server.rtmp_addr())).unwrap();
    let capable = ClientOptions {
        caps_ex: Some(CAPS_EX_RECONNECT),
        ..ClientOptions::default()
    };
    let legacy = ClientOptions {
        caps_ex: None,
        ..ClientOptions::default()
    };
    let mut a = Client::connect_with(&url, capable).await.unwrap();
    let mut b = Client::connect_with(&url, legacy).await.unwrap();
    a.play("s").await.unwrap();
    b.play("s").await.unwrap();
    server.drain("maintenance");
    let request = loop {
        match a.next_event(Duration::from_secs(5)).await {
            Ok(Some(ClientEvent::ReconnectRequest {
                tc_url,
                description,
            })) => break (tc_url, description),
            Ok(Some(_)) => continue,
            other => panic!("no ReconnectRequest: {other:?}"),
        }
    };
    assert_eq!(
        request,
        (Some("/backup".to_owned()), "maintenance".to_owned())
    );
    assert_eq!(
        url.reconnect_target(request.0.as_deref())
            .unwrap()
            .to_string(),
        format!("rtmp://{}/backup/s", server.rtmp_addr())
    );
    let mut seen = Vec::new();
    assert!(
        wait_closed(&mut b, Duration::from_secs(5), &mut seen)
            .await
            .is_some(),
        "the legacy player is closed"
    );
    a.close().await.unwrap();
    server.shutdown().await;
}
