//! Clients behind proxies and connection rates: a trusted TCP balancer's PROXY header (v1 and
//! v2) names the client the RTMP rules see; a trusted HTTP proxy's `X-Forwarded-For` does the
//! same on HTTP, an untrusted one's is ignored; `rtmp.max_connection_rate_per_ip` refuses the
//! connections an address opens too fast.

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::raw_client::RawClient;
use common::TestDir;
use weir::config::AppRules;

/// A PROXY v2 header for a TCP/IPv4 client `src:port`.
fn proxy_v2(src: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&src);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&1935u16.to_be_bytes());
    header
}

/// Connects, sends `prefix`, then publishes `live/{name}`: the status code it gets (or the
/// error if the connection failed before).
async fn publish_behind(addr: SocketAddr, prefix: &[u8], name: &str) -> Result<String, String> {
    let mut client = RawClient::connect(addr).await;
    client.send_raw(prefix).await.map_err(|e| e.to_string())?;
    client.handshake().await?;
    client.connect_app("live").await?;
    let stream_id = client.create_stream().await?;
    let publish = weir_rtmp::command::Command::new(
        "publish",
        0.0,
        weir_rtmp::amf0::Value::Null,
        vec![
            weir_rtmp::amf0::Value::from(name),
            weir_rtmp::amf0::Value::from("live"),
        ],
    );
    client
        .send_command(stream_id, &publish)
        .await
        .map_err(|e| e.to_string())?;
    let status = client
        .expect_command(Duration::from_secs(5), "onStatus", |c| c.name == "onStatus")
        .await?;
    Ok(weir_rtmp::command::Status::from_command(&status)
        .map(|s| s.code.to_string())
        .unwrap_or_default())
}

/// Status line and body of `GET path` with extra header lines.
fn get(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    write!(socket, "GET {path} HTTP/1.0\r\nHost: t\r\n{headers}\r\n").unwrap();
    let mut data = Vec::new();
    let _ = socket.read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data).to_string();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn trusted_proxies_name_the_client_and_others_cannot() {
    let dir = TestDir::new("proxies");
    let mut config = common::loopback_config();
    config.proxy.trusted = vec!["127.0.0.1".to_owned()];
    config.rtmp.proxy_protocol = true;
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            deny_publish: vec!["203.0.113.0/24".to_owned()],
            deny_play: vec!["198.51.100.0/24".to_owned()],
            ..AppRules::default()
        },
    );
    let weir = common::WeirServer::start_with(config, dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let addr = weir.addr();

    // v1 and v2 headers naming a denied client: refused by the rule, which names the client.
    let refused = runtime
        .block_on(publish_behind(
            addr,
            b"PROXY TCP4 203.0.113.7 127.0.0.1 50000 1935\r\n",
            "a",
        ))
        .unwrap();
    assert!(refused.contains("NetStream.Publish.BadName"), "{refused}");
    let refused = runtime
        .block_on(publish_behind(
            addr,
            &proxy_v2([203, 0, 113, 8], 50001),
            "b",
        ))
        .unwrap();
    assert!(refused.contains("NetStream.Publish.BadName"), "{refused}");
    // An allowed client behind the balancer publishes.
    let allowed = runtime
        .block_on(publish_behind(
            addr,
            b"PROXY TCP4 192.0.2.50 127.0.0.1 50002 1935\r\n",
            "c",
        ))
        .unwrap();
    assert_eq!(allowed, "NetStream.Publish.Start");
    // A trusted peer without a header is not served (it would be taken for the balancer).
    let err = runtime
        .block_on(publish_behind(addr, b"", "d"))
        .unwrap_err();
    assert!(!err.is_empty());
    // The server's line may follow the client's error by a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !weir
        .log_text()
        .contains("expected a PROXY protocol header from this trusted proxy")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = weir.log_text();
    for line in [
        "address 203.0.113.7 is refused (203.0.113.0/24 in apps.live.deny_publish)",
        "address 203.0.113.8 is refused",
        "peer=192.0.2.50:50002",
        "expected a PROXY protocol header from this trusted proxy",
    ] {
        assert!(log.contains(line), "no log line with {line:?}\n{log}");
    }

    // HTTP: X-Forwarded-For from the trusted proxy names the client the play rules see.
    let http = weir.http_addr();
    let (status, body) = get(http, "/live/c.flv", "X-Forwarded-For: 198.51.100.9\r\n");
    assert!(
        status.contains(" 403") && body.contains("198.51.100.9"),
        "{status} {body}"
    );
    let (status, _) = get(
        http,
        "/live/c/index.m3u8",
        "X-Forwarded-For: 198.51.100.9, 127.0.0.1\r\n",
    );
    assert!(status.contains(" 403"), "{status}");
    // A forged entry left of an untrusted hop is not believed.
    let (status, _) = get(
        http,
        "/live/c/index.m3u8",
        "X-Forwarded-For: 198.51.100.9, 192.0.2.1\r\n",
    );
    assert!(!status.contains(" 403"), "{status}");
    weir.shutdown();

    // Without proxy.trusted the header is ignored: the request is the peer's own.
    let dir = TestDir::new("proxies-untrusted");
    let mut config = common::loopback_config();
    config.apps.insert(
        "live".to_owned(),
        AppRules {
            deny_play: vec!["198.51.100.0/24".to_owned()],
            ..AppRules::default()
        },
    );
    let weir = common::WeirServer::start_with(config, dir.path());
    let (status, _) = get(
        weir.http_addr(),
        "/live/c.flv",
        "X-Forwarded-For: 198.51.100.9\r\n",
    );
    assert!(status.contains(" 404"), "{status}");
    weir.shutdown();
}

#[test]
fn an_address_opening_connections_too_fast_is_refused() {
    let dir = TestDir::new("conn-rate");
    let mut config = common::loopback_config();
    config.rtmp.max_connection_rate_per_ip = 3;
    let weir = common::WeirServer::start_with(config, dir.path());
    let kept_open = |addr: SocketAddr| {
        let mut socket = TcpStream::connect(addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        match socket.read(&mut [0u8; 1]) {
            Ok(n) => n > 0,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        }
    };
    // A burst of three passes (RTMP and HTTP count together); the fourth is closed at once.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(weir.addr()).unwrap())
        .chain(std::iter::once(
            TcpStream::connect(weir.http_addr()).unwrap(),
        ))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !kept_open(weir.addr()),
        "a 4th connection within the second was kept"
    );
    // A second later the bucket has refilled.
    std::thread::sleep(Duration::from_millis(1100));
    assert!(kept_open(weir.addr()), "the rate did not recover");
    drop(held);
    assert!(weir
        .log_text()
        .contains("opens connections faster than 3 a second (rtmp.max_connection_rate_per_ip)"));
    weir.shutdown();
}
