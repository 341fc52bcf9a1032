//! The admin listener against a live server with real publishers and players: every
//! endpoint of `/api/v1`, its OpenAPI document validated by openapi-spec-validator and every
//! response checked against it (jsonschema), bearer tokens, bad input, a kick and a drain
//! seen from the client side, and `/metrics` parsed by prometheus_client's OpenMetrics parser
//! before and after a publish, a play and a kick (counters never go down).

#[allow(unused_imports)] // the harness re-exports more than this file uses
mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::access::play_and_count;
use common::fixtures::{small_fixture, SMALL_HEIGHT, SMALL_WIDTH};
use common::raw_client::RawClient;
use common::{process, tools, TestDir, WeirServer};

const TOKEN: &str = "admin-token-for-tests";

/// One HTTP/1.0 exchange: status code and body.
fn call(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(
        socket,
        "{method} {path} HTTP/1.0\r\nHost: t\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A body the server refuses early may meet a closed socket.
    let _ = socket.write_all(body);
    let mut data = Vec::new();
    let _ = socket.read_to_end(&mut data);
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&data[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, data[split..].to_vec())
}

/// An authorised call whose JSON answer is returned (and saved for the schema check as
/// `<schema>-<n>.json` in `dir`).
struct Api<'a> {
    addr: SocketAddr,
    dir: &'a Path,
    saved: usize,
}

impl Api<'_> {
    fn auth() -> String {
        format!("Authorization: Bearer {TOKEN}\r\n")
    }

    fn json(&mut self, method: &str, path: &str, want: u16, schema: &str) -> Value {
        let (status, body) = call(self.addr, method, path, &Self::auth(), b"");
        assert_eq!(
            status,
            want,
            "{method} {path}: {}",
            String::from_utf8_lossy(&body)
        );
        let value: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e})"));
        self.saved += 1;
        std::fs::write(
            self.dir.join(format!("{schema}-{}.json", self.saved)),
            &body,
        )
        .unwrap();
        value
    }

    /// `/metrics`, parsed by prometheus_client.
    fn metrics(&self) -> BTreeMap<String, f64> {
        let (status, body) = call(self.addr, "GET", "/metrics", &Self::auth(), b"");
        assert_eq!(status, 200);
        let file = self.dir.join("metrics.txt");
        std::fs::write(&file, &body).unwrap();
        let out = python(&["metrics", &file.display().to_string()], self.dir);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("metrics: {e}\n{out}"))
    }
}

/// Runs `tests/api/check.py` with the tools venv's Python; its stdout.
fn python(args: &[&str], dir: &Path) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/check.py");
    let mut cmd = Command::new(tools::python());
    cmd.arg(script).args(args);
    let (status, out, err) = process::run("check.py", cmd, dir, Duration::from_secs(60));
    assert!(status.success(), "check.py {args:?}: {err}{out}");
    out
}

/// The value of a sample, 0 when absent.
fn sample(metrics: &BTreeMap<String, f64>, name: &str) -> f64 {
    metrics.get(name).copied().unwrap_or(0.0)
}

#[test]
fn the_admin_api_reports_kicks_drains_and_documents_itself() {
    let dir = TestDir::new("api");
    let responses = dir.path().join("responses");
    std::fs::create_dir_all(&responses).unwrap();
    let mut config = common::loopback_config();
    config.api.tokens = vec![weir::auth::hash_key(TOKEN)];
    let weir = WeirServer::start_with(config, dir.path());
    let addr = weir.addr();
    let admin = weir.api_addr();
    let mut api = Api {
        addr: admin,
        dir: &responses,
        saved: 0,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();

    // Tokens: none, a wrong one: 401 and nothing changes.
    for headers in ["", "Authorization: Bearer wrong\r\n"] {
        let (status, body) = call(admin, "GET", "/api/v1/streams", headers, b"");
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
        let (status, _) = call(admin, "POST", "/api/v1/drain", headers, b"");
        assert_eq!(status, 401);
    }
    let before = api.metrics();

    // A publisher (FFmpeg) and two players (our RTMP client, an HTTP-FLV reader).
    let mut publisher = weir.publish("cam", small_fixture(), dir.path());
    let rtmp_viewer = runtime.spawn(play_and_count(addr, "live", "cam", Duration::from_secs(30)));
    // The HTTP-FLV reader stays until told to stop (the client counts below must see it
    // however long the checks take on a loaded machine), bounded at 60 s.
    let (stop_flv, flv_stopped) = std::sync::mpsc::channel::<()>();
    let flv = std::thread::spawn({
        let http = weir.http_addr();
        move || {
            let mut socket = TcpStream::connect(http).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(4)))
                .unwrap();
            socket
                .write_all(b"GET /live/cam.flv HTTP/1.0\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut total = 0;
            let mut buf = [0u8; 16384];
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(60) && flv_stopped.try_recv().is_err() {
                match socket.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            total
        }
    });
    std::thread::sleep(Duration::from_millis(2500));
    // An HLS playlist (counted in the metrics) and the page's stream list (with health).
    let (status, _) = call(weir.http_addr(), "GET", "/live/cam/index.m3u8", "", b"");
    assert_eq!(status, 200);
    let (status, page) = call(weir.http_addr(), "GET", "/streams.json", "", b"");
    assert_eq!(status, 200);
    let page: Value = serde_json::from_slice(&page).unwrap();
    assert!(page[0]["health"].is_array(), "{page}");

    let server = api.json("GET", "/api/v1/server", 200, "ServerView");
    assert_eq!(server["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(server["config_source"], "built-in defaults");
    assert_eq!(server["listeners"]["api"], admin.to_string());
    assert!(server["uptime_secs"].as_f64().unwrap() > 1.0);

    let streams = api.json("GET", "/api/v1/streams", 200, "StreamsView");
    let cam = &streams["streams"][0];
    assert_eq!(
        (cam["app"].as_str(), cam["name"].as_str()),
        (Some("live"), Some("cam"))
    );
    let video = &cam["tracks"][0];
    assert_eq!(video["kind"], "video");
    assert_eq!(video["codec"], "H.264");
    assert_eq!(video["width"], SMALL_WIDTH);
    assert_eq!(video["height"], SMALL_HEIGHT);
    let fps = video["fps"].as_f64().unwrap_or_default();
    assert!((28.0..32.0).contains(&fps), "fps {fps}");
    assert!(video["bitrate_1s_bps"].as_u64().unwrap() > 0, "{video}");
    let audio = &cam["tracks"][1];
    assert_eq!(audio["codec"], "AAC");
    assert_eq!(audio["sample_rate"], 44_100);
    assert_eq!(audio["channels"], 2);
    assert!(cam["bitrate_1s_bps"].as_u64().unwrap() > 0);
    assert_eq!(cam["viewers"]["rtmp"], 1, "{cam}");
    assert_eq!(cam["viewers"]["http_flv"], 1, "{cam}");
    let publisher_id = cam["publisher"]["client_id"]
        .as_u64()
        .expect("publisher id");
    assert!(
        cam["publisher"]["client"]
            .as_str()
            .is_some_and(|c| c.contains("FMLE") || c.contains("Lavf")),
        "{cam}"
    );
    let one = api.json("GET", "/api/v1/streams/live/cam", 200, "StreamView");
    assert_eq!(one["name"], "cam");

    let clients = api.json("GET", "/api/v1/clients", 200, "ClientsView");
    assert_eq!(clients["total"], 3, "{clients}");
    assert!(
        clients["clients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == publisher_id
                && c["role"] == "publishing"
                && c["stream"] == "live/cam"),
        "{clients}"
    );
    let players = api.json(
        "GET",
        "/api/v1/clients?stream=live/cam&protocol=rtmp",
        200,
        "ClientsView",
    );
    let rtmp_players: Vec<&Value> = players["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "playing")
        .collect();
    assert_eq!(rtmp_players.len(), 1, "{players}");
    let viewer_id = rtmp_players[0]["id"].as_u64().unwrap();
    let page = api.json(
        "GET",
        "/api/v1/clients?offset=1&limit=1",
        200,
        "ClientsView",
    );
    assert_eq!(page["clients"].as_array().unwrap().len(), 1);
    assert_eq!(page["total"], 3);

    // Bad input: JSON errors with the right status, and nothing changes.
    api.json("GET", "/api/v1/streams/live/nope", 404, "ErrorView");
    api.json("DELETE", "/api/v1/clients/999999", 404, "ErrorView");
    api.json("DELETE", "/api/v1/clients/abc", 400, "ErrorView");
    api.json("GET", "/api/v1/clients?limit=many", 400, "ErrorView");
    api.json("GET", "/api/v1/nothing", 404, "ErrorView");
    // Started without a file: nothing to re-read.
    let refused = api.json("POST", "/api/v1/reload", 400, "ErrorView");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("without a config file"),
        "{refused}"
    );
    let (status, _) = call(admin, "POST", "/api/v1/drain", &Api::auth(), b"{not json");
    assert_eq!(status, 400);
    let huge = vec![b'x'; 200_000];
    let (status, _) = call(admin, "POST", "/api/v1/drain", &Api::auth(), &huge);
    assert_eq!(status, 413);
    let (status, _) = call(
        admin,
        "DELETE",
        &format!("/api/v1/clients/{viewer_id}"),
        "Authorization: Bearer wrong\r\n",
        b"",
    );
    assert_eq!(status, 401);
    assert_eq!(
        api.json("GET", "/api/v1/clients", 200, "ClientsView")["total"],
        3,
        "a refused call changed something"
    );

    // Kicks: the RTMP viewer, then the publisher; both seen from the client side.
    let kicked = api.json(
        "DELETE",
        &format!("/api/v1/clients/{viewer_id}"),
        200,
        "ClosedView",
    );
    assert_eq!(kicked["closed"], 1);
    let (viewer_media, _, _) = runtime.block_on(rtmp_viewer).unwrap();
    assert!(viewer_media > 0, "the viewer got nothing before the kick");
    stop_flv.send(()).unwrap();
    assert!(
        flv.join().unwrap() > 10_000,
        "the HTTP-FLV viewer got too little"
    );
    api.json("DELETE", "/api/v1/streams/live/cam", 200, "ClosedView");
    let status = publisher
        .child()
        .wait_timeout(Duration::from_secs(10))
        .expect("FFmpeg kept publishing after the kick");
    assert!(!status.success(), "FFmpeg did not notice the kick");
    assert!(!weir.published_keys().contains(&"live/cam".to_owned()));
    api.json("DELETE", "/api/v1/streams/live/cam", 404, "ErrorView");

    // Metrics: counters moved with the traffic and never went down.
    let after = api.metrics();
    for (name, value) in &before {
        if name.contains("_total") {
            assert!(
                sample(&after, name) >= *value,
                "{name} went down: {value} -> {}",
                sample(&after, name)
            );
        }
    }
    assert!(sample(&after, "weir_connections_accepted_total{protocol=rtmp}") >= 2.0);
    assert!(sample(&after, "weir_connections_accepted_total{protocol=http}") >= 1.0);
    assert!(sample(&after, "weir_ingest_bytes_total{}") > 50_000.0);
    assert!(sample(&after, "weir_egress_bytes_total{}") > 10_000.0);
    assert!(sample(&after, "weir_frames_in_total{kind=video}") > 30.0);
    assert!(sample(&after, "weir_hls_requests_total{kind=playlist,status=2xx}") >= 1.0);
    assert!(
        sample(&after, "weir_hls_segments_total{}") >= 1.0,
        "{after:?}"
    );
    assert!(
        sample(
            &after,
            "weir_disconnects_total{protocol=rtmp,reason=closed,role=player}"
        ) >= 1.0,
        "{after:?}"
    );
    assert!(
        sample(
            &after,
            "weir_disconnects_total{protocol=rtmp,reason=closed,role=publisher}"
        ) >= 1.0,
        "{after:?}"
    );

    // The OpenAPI document is valid and every saved response matches it.
    let spec = dir.path().join("openapi.json");
    let (status, body) = call(admin, "GET", "/api/v1/openapi.json", &Api::auth(), b"");
    assert_eq!(status, 200);
    std::fs::write(&spec, body).unwrap();
    python(&["spec", &spec.display().to_string()], dir.path());
    python(
        &[
            "responses",
            &spec.display().to_string(),
            &responses.display().to_string(),
        ],
        dir.path(),
    );

    // A drain: no new RTMP connection is accepted, a connected client is closed.
    let waiting = runtime.block_on(async {
        let mut client = RawClient::connect(addr).await;
        client.handshake().await.unwrap();
        client.connect_app("live").await.unwrap();
        client
    });
    let (status, body) = call(
        admin,
        "POST",
        "/api/v1/drain",
        &format!("{}Content-Type: application/json\r\n", Api::auth()),
        br#"{"reason": "deploy"}"#,
    );
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let mut waiting = waiting;
    let closed = runtime.block_on(waiting.wait_closed(Duration::from_secs(5)));
    assert!(
        closed.is_ok(),
        "a client stayed connected through the drain"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "the RTMP listener still accepts");
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = api.json("GET", "/api/v1/server", 200, "ServerView");
    assert_eq!(server["draining"], true);
    weir.shutdown();
}
