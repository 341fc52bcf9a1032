//! Bad input: every malformed or hostile connection gets a log line and a closed connection
//! in bounded time, while a real stream published at the same time keeps flowing to a real
//! player.
//!
//! `attacks_do_not_disturb_a_live_stream` starts one server, publishes the fixture with
//! Debian's FFmpeg to `live/good`, plays it with FFmpeg, and runs every attack in parallel
//! during playback. Each attack asserts (1) how the server reacted (closed within a bound, or
//! stayed usable where the protocol says so), (2) the "rtmp connection closed" log line for
//! its own `peer=127.0.0.1:<port>` and its `reason=`. The player's recording must then be
//! complete and gap-free. `default_limits_bound_huge_messages` covers messages near the
//! 0xFFFFFF length limit with the default limits.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::task::JoinSet;
use weir::{Config, Server};
use weir_rtmp::amf0::Value;
use weir_rtmp::chunk::ChunkMessage;
use weir_rtmp::command::{Command, Status};
use weir_rtmp::message::{Message, TYPE_AUDIO, TYPE_VIDEO};

use common::bad_bytes::{
    avc_keyframe, avc_sequence_header, deeply_nested_connect, partial_message, put_basic_header,
    put_fmt0_header, random_bytes,
};
use common::fixtures::{HEIGHT, WIDTH};
use common::logs::Logs;
use common::raw_client::{is_unpublish_notice, Closed, RawClient};
use common::verdict::{
    close_from_client, collect, connected, expect_closed, print_table, spawn_case, Expected,
    Outcome, HANDSHAKE_TIMEOUT, LOG_WAIT, PROMPT_CLOSE,
};
use common::{ffmpeg_play_to_flv, ffmpeg_publish, fixture, rtmp_url, Expect, Ffmpeg, FixtureKind};

/// `max_message_size` of the server in the live-stream test.
const SMALL_MAX_MESSAGE: u32 = 1 << 20;
/// Seconds of media the player of `live/good` records (the fixture lasts 6 s).
const PLAY_SECONDS: f64 = 4.5;

// ---- the cases -------------------------------------------------------------------------

async fn pre_handshake(
    name: &'static str,
    addr: SocketAddr,
    logs: Logs,
    bytes: Vec<u8>,
    expected: Expected,
) -> Result<Outcome, String> {
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    let _ = client.send_raw(&bytes).await;
    let since = Instant::now();
    expect_closed(name, client, &logs, mark, since, expected).await
}

async fn garbage_after_handshake(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "4 KiB random bytes after the handshake";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let _ = client.send_raw(&random_bytes(7, 4096)).await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["chunk stream:", "message:", "command:", "protocol:"]),
    )
    .await
}

async fn truncated_handshake_then_close(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "C0 + half of C1, then FIN";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    let mut bytes = vec![0x03];
    bytes.extend(random_bytes(11, 768));
    let _ = client.send_raw(&bytes).await;
    let _ = client.shutdown_write().await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["peer closed the connection"]),
    )
    .await
}

async fn handshake_never_finished(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "C0+C1, reads S0+S1+S2, never sends C2";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    let mut bytes = vec![0x03];
    bytes.extend(random_bytes(13, 1536));
    let _ = client.send_raw(&bytes).await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Timeout("timed out: handshake"),
    )
    .await
}

async fn no_connect_after_handshake(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "handshake, then no connect";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Timeout("timed out: connect"),
    )
    .await
}

async fn set_chunk_size_rejected(
    name: &'static str,
    addr: SocketAddr,
    logs: Logs,
    size: u32,
    reason: &'static [&'static str],
) -> Result<Outcome, String> {
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let _ = client.send_set_chunk_size(size).await;
    let since = Instant::now();
    expect_closed(name, client, &logs, mark, since, Expected::Prompt(reason)).await
}

/// 0x7FFFFFFF is legal (bit 31 clear): the server clamps it to 0xFFFFFF and goes on.
async fn set_chunk_size_enormous(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "Set Chunk Size 0x7FFFFFFF, then connect + createStream";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    client
        .send_set_chunk_size(0x7FFF_FFFF)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    // Our encoder clamps to 0xFFFFFF too, so both sides agree on chunk boundaries: a connect
    // followed by a 2000-byte command, each in one chunk, must both work.
    client
        .connect_app("live")
        .await
        .map_err(|e| format!("{name}: connect after the chunk size: {e}"))?;
    let stream_id = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: createStream after the chunk size: {e}"))?;
    let long = "x".repeat(2000);
    let tid = client.transaction();
    let call = Command::new(
        "longCall",
        tid,
        Value::Null,
        vec![Value::from(long.as_str())],
    );
    client
        .send_command(0, &call)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    client
        .expect_command(Duration::from_secs(3), "_error for a 2000-byte call", |c| {
            c.transaction_id == tid && c.name == "_error"
        })
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    close_from_client(
        name,
        client,
        &logs,
        mark,
        format!("accepted (clamped); connect, createStream ({stream_id}) and a 2 KB call work"),
    )
    .await
}

async fn message_over_limit(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "message header declaring 2 MiB (limit 1 MiB)";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = BytesMut::new();
    put_fmt0_header(&mut bytes, 4, 2 << 20, TYPE_VIDEO, 1);
    bytes.put_bytes(0, 128);
    let _ = client.send_raw(&bytes).await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["message length 2097152 exceeds limit 1048576"]),
    )
    .await
}

async fn many_chunk_streams(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "partial messages on chunk streams 3..5000";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut bytes = BytesMut::new();
    for csid in 3..5000 {
        bytes.extend_from_slice(&partial_message(csid, 256, 128, 1));
    }
    let _ = client.send_raw(&bytes).await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["too many chunk streams (limit 64)"]),
    )
    .await
}

async fn deeply_nested_amf(
    name: &'static str,
    addr: SocketAddr,
    logs: Logs,
    strict_arrays: bool,
) -> Result<Outcome, String> {
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let _ = client
        .send_command_body(0, deeply_nested_connect(10_000, strict_arrays))
        .await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["command: command is not valid amf0: nesting deeper than 32"]),
    )
    .await
}

async fn connect_object_is_a_number(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "connect whose command object is a number";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let connect = Command::new("connect", 1.0, Value::from(3.0), vec![]);
    let _ = client.send_command(0, &connect).await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["protocol: connect without a command object"]),
    )
    .await
}

async fn stream_command_with_wrong_name(
    name: &'static str,
    addr: SocketAddr,
    logs: Logs,
    command: &'static str,
    stream_name: Value,
    reason: &'static [&'static str],
) -> Result<Outcome, String> {
    let mark = logs.mark();
    let mut client = connected(addr).await.map_err(|e| format!("{name}: {e}"))?;
    let stream_id = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let bad = Command::new(command, 0.0, Value::Null, vec![stream_name]);
    let _ = client.send_command(stream_id, &bad).await;
    let since = Instant::now();
    expect_closed(name, client, &logs, mark, since, Expected::Prompt(reason)).await
}

async fn unknown_command(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "unknown command with a transaction id";
    let mark = logs.mark();
    let mut client = connected(addr).await.map_err(|e| format!("{name}: {e}"))?;
    let tid = client.transaction();
    let call = Command::new("doSomethingOdd", tid, Value::Null, vec![Value::from(1.0)]);
    client
        .send_command(0, &call)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let reply = client
        .expect_command(Duration::from_secs(3), "_error", |c| {
            c.transaction_id == tid
        })
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let code = Status::from_command(&reply).map(|s| s.code);
    if reply.name != "_error" || code.as_deref() != Some("NetConnection.Call.Failed") {
        return Err(format!(
            "{name}: expected _error NetConnection.Call.Failed, got {reply:?}"
        ));
    }
    let stream_id = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: createStream after the _error: {e}"))?;
    close_from_client(
        name,
        client,
        &logs,
        mark,
        format!("_error Call.Failed, stays open (createStream -> {stream_id})"),
    )
    .await
}

/// A publisher that turns to garbage mid-stream is closed; its viewer is told.
async fn publisher_sends_garbage(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "publisher sends random bytes mid-stream";
    let mark = logs.mark();
    let mut publisher = connected(addr).await.map_err(|e| format!("{name}: {e}"))?;
    let stream_id = publisher
        .create_stream()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    publisher
        .publish(stream_id, "victim")
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let media = |timestamp, type_id, payload| ChunkMessage {
        chunk_stream_id: if type_id == TYPE_AUDIO { 6 } else { 7 },
        timestamp,
        type_id,
        stream_id,
        payload,
    };
    for msg in [
        media(0, TYPE_VIDEO, avc_sequence_header()),
        media(0, TYPE_AUDIO, Bytes::from_static(&[0xAF, 0x00, 0x12, 0x10])),
        media(0, TYPE_VIDEO, avc_keyframe()),
    ] {
        publisher
            .send_message(&msg)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
    }

    let mut viewer = connected(addr)
        .await
        .map_err(|e| format!("{name}: viewer: {e}"))?;
    let view_id = viewer
        .create_stream()
        .await
        .map_err(|e| format!("{name}: viewer: {e}"))?;
    viewer
        .play(view_id, "victim")
        .await
        .map_err(|e| format!("{name}: viewer: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = viewer
            .read_message(left)
            .await
            .map_err(|e| format!("{name}: viewer got no video before the garbage: {e}"))?;
        if msg.type_id == TYPE_VIDEO {
            break;
        }
    }

    let _ = publisher.send_raw(&random_bytes(23, 4096)).await;
    let since = Instant::now();
    let outcome = expect_closed(
        name,
        publisher,
        &logs,
        mark,
        since,
        Expected::Prompt(&["chunk stream:", "message:", "command:", "protocol:"]),
    )
    .await?;

    let mut seen = Vec::new();
    let deadline = since + PROMPT_CLOSE;
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = viewer.read_message(left).await.map_err(|e| {
            format!("{name}: viewer was not told the publisher left (saw {seen:?}): {e}")
        })?;
        if let Some(notice) = Message::parse(&msg)
            .ok()
            .as_ref()
            .and_then(is_unpublish_notice)
        {
            seen.push(notice);
        }
    }
    Ok(Outcome {
        reaction: format!("{}; viewer got {}", outcome.reaction, seen.join(" + ")),
        ..outcome
    })
}

// ---- running them ----------------------------------------------------------------------

/// Runs every attack on `addr` in parallel; returns the outcomes and the failures.
async fn run_attacks(addr: SocketAddr, logs: &Logs) -> (Vec<Outcome>, Vec<String>) {
    let mut set = JoinSet::new();
    let l = || logs.clone();

    let mut random = random_bytes(3, 4096);
    random[0] = 0xA5;
    spawn_case(
        &mut set,
        pre_handshake(
            "4 KiB random bytes before the handshake",
            addr,
            l(),
            random,
            Expected::Prompt(&["handshake: unsupported rtmp version 0xa5"]),
        ),
    );
    let mut c0_then_random = vec![0x03];
    c0_then_random.extend(random_bytes(5, 8192));
    spawn_case(
        &mut set,
        pre_handshake(
            "C0=0x03 then 8 KiB random (C1, C2, chunks)",
            addr,
            l(),
            c0_then_random,
            Expected::Prompt(&["chunk stream:", "message:", "command:", "protocol:"]),
        ),
    );
    spawn_case(
        &mut set,
        pre_handshake(
            "HTTP request (GET / HTTP/1.1)",
            addr,
            l(),
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8\r\n\r\n".to_vec(),
            Expected::Prompt(&["handshake: unsupported rtmp version 0x47"]),
        ),
    );
    let versions: [(&'static str, u8, &'static [&'static str]); 3] = [
        (
            "version byte 0x06 (RTMPE) + C1",
            0x06,
            &["handshake: unsupported rtmp version 0x06"],
        ),
        (
            "version byte 0x00 + C1",
            0x00,
            &["handshake: unsupported rtmp version 0x00"],
        ),
        (
            "version byte 0x47 + C1",
            0x47,
            &["handshake: unsupported rtmp version 0x47"],
        ),
    ];
    for (name, version, reasons) in versions {
        let mut bytes = vec![version];
        bytes.extend(random_bytes(17, 1536));
        spawn_case(
            &mut set,
            pre_handshake(name, addr, l(), bytes, Expected::Prompt(reasons)),
        );
    }
    spawn_case(&mut set, garbage_after_handshake(addr, l()));
    spawn_case(&mut set, truncated_handshake_then_close(addr, l()));
    let mut half = vec![0x03];
    half.extend(random_bytes(19, 768));
    spawn_case(
        &mut set,
        pre_handshake(
            "C0 + half of C1, then silence",
            addr,
            l(),
            half,
            Expected::Timeout("timed out: handshake"),
        ),
    );
    spawn_case(&mut set, handshake_never_finished(addr, l()));
    spawn_case(
        &mut set,
        pre_handshake(
            "TCP connect, then nothing",
            addr,
            l(),
            Vec::new(),
            Expected::Timeout("timed out: handshake"),
        ),
    );
    spawn_case(&mut set, no_connect_after_handshake(addr, l()));
    spawn_case(
        &mut set,
        set_chunk_size_rejected(
            "Set Chunk Size 0",
            addr,
            l(),
            0,
            &["chunk stream: chunk size 0 is invalid"],
        ),
    );
    spawn_case(
        &mut set,
        set_chunk_size_rejected(
            "Set Chunk Size 0x80000000",
            addr,
            l(),
            0x8000_0000,
            &["chunk stream: chunk size 2147483648 is invalid"],
        ),
    );
    spawn_case(&mut set, set_chunk_size_enormous(addr, l()));
    spawn_case(&mut set, message_over_limit(addr, l()));
    spawn_case(&mut set, many_chunk_streams(addr, l()));
    spawn_case(
        &mut set,
        deeply_nested_amf("connect with objects nested 10000 deep", addr, l(), false),
    );
    spawn_case(
        &mut set,
        deeply_nested_amf(
            "connect with strict arrays nested 10000 deep",
            addr,
            l(),
            true,
        ),
    );
    spawn_case(&mut set, connect_object_is_a_number(addr, l()));
    spawn_case(
        &mut set,
        stream_command_with_wrong_name(
            "publish whose stream name is a number",
            addr,
            l(),
            "publish",
            Value::from(42.0),
            &["protocol: publish without a stream name string"],
        ),
    );
    spawn_case(
        &mut set,
        stream_command_with_wrong_name(
            "play whose stream name is a boolean",
            addr,
            l(),
            "play",
            Value::from(true),
            &["protocol: play without a stream name string"],
        ),
    );
    spawn_case(&mut set, unknown_command(addr, l()));
    spawn_case(&mut set, publisher_sends_garbage(addr, l()));

    collect(set).await
}

fn config(max_message_size: u32) -> Config {
    let mut config = Config::default();
    config.rtmp.addr = "127.0.0.1:0".parse().expect("loopback address");
    config.http.addr = "127.0.0.1:0".parse().expect("loopback address");
    config.api.addr = "127.0.0.1:0".parse().expect("loopback address");
    config.rtmp.handshake_timeout_secs = HANDSHAKE_TIMEOUT.as_secs();
    config.rtmp.max_message_size = max_message_size;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_do_not_disturb_a_live_stream() {
    let logs = Logs::capture();
    let dir = common::TestDir::new("bad-input");
    let server = Server::start(config(SMALL_MAX_MESSAGE))
        .await
        .expect("start server");
    let addr = server.rtmp_addr();
    let url = rtmp_url(addr, "live", "good");
    let start_mark = logs.mark();

    let (publish_url, log_dir) = (url.clone(), dir.path().to_owned());
    let mut publisher = tokio::task::spawn_blocking(move || {
        let mut publisher = ffmpeg_publish(
            Ffmpeg::Debian,
            &publish_url,
            fixture(FixtureKind::H264Baseline),
            true,
            &log_dir,
        );
        publisher.wait_started(Duration::from_secs(10));
        publisher
    })
    .await
    .expect("publisher task");

    let (play_url, log_dir) = (url.clone(), dir.path().to_owned());
    let player = tokio::task::spawn_blocking(move || {
        let report = ffmpeg_play_to_flv(Ffmpeg::Debian, &play_url, PLAY_SECONDS, &log_dir);
        (report, Instant::now())
    });
    let joined = logs
        .wait_for_line(
            start_mark,
            &["play started", "stream=live/good"],
            Duration::from_secs(10),
        )
        .await;
    assert!(
        joined.is_some(),
        "the ffmpeg player never started playing live/good; log:\n{}",
        logs.text()
    );

    let attacks_started = Instant::now();
    let (outcomes, failures) = run_attacks(addr, &logs).await;
    let attacks_ended = Instant::now();
    print_table("bad input, one server with a live stream", &outcomes);

    let (report, player_ended) = player.await.expect("player task");
    let publisher_status = tokio::task::spawn_blocking(move || {
        publisher.wait_finished(Duration::from_secs(20));
    })
    .await;
    server.shutdown().await;

    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed:\n  - {}",
        failures.len(),
        failures.len() + outcomes.len(),
        failures.join("\n  - ")
    );
    assert!(
        attacks_ended < player_ended,
        "the attacks ({:?}) outlasted the player, so it did not witness all of them",
        attacks_ended - attacks_started
    );
    report.assert_matches(
        &Expect::h264_aac(WIDTH, HEIGHT).min_seconds(PLAY_SECONDS - 0.3),
        "player of live/good during the attacks",
    );
    assert!(
        publisher_status.is_ok(),
        "the ffmpeg publisher of live/good did not finish cleanly"
    );
    let good_ended: Vec<String> = logs
        .lines_since(start_mark)
        .into_iter()
        .filter(|l| l.contains("publish ended") && l.contains("live/good"))
        .collect();
    assert!(
        good_ended.len() == 1 && good_ended[0].contains("publisher stopped"),
        "live/good must end once, by its publisher: {good_ended:?}"
    );
}

/// Messages near the 0xFFFFFF length limit with the default limits: a whole one is taken
/// and dropped, a trickled one does not hold the connection, and partial ones are capped by
/// the decoder's pending-bytes limit (32 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limits_bound_huge_messages() {
    let logs = Logs::capture();
    let server = Server::start(config(Config::default().rtmp.max_message_size))
        .await
        .expect("start server");
    let addr = server.rtmp_addr();
    let mut set = JoinSet::new();
    spawn_case(&mut set, whole_huge_message(addr, logs.clone()));
    spawn_case(&mut set, trickled_huge_message(addr, logs.clone()));
    spawn_case(&mut set, huge_message_then_silence(addr, logs.clone()));
    spawn_case(&mut set, huge_partial_messages(addr, logs.clone()));
    let (outcomes, failures) = collect(set).await;
    print_table("huge messages, default limits", &outcomes);
    server.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} of {} huge-message cases failed:\n  - {}",
        failures.len(),
        failures.len() + outcomes.len(),
        failures.join("\n  - ")
    );
}

async fn whole_huge_message(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "one 0xFFFFFF-byte video message, then createStream";
    let mark = logs.mark();
    let mut client = connected(addr).await.map_err(|e| format!("{name}: {e}"))?;
    let stream_id = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    client
        .send_set_chunk_size(64 * 1024)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let huge = ChunkMessage {
        chunk_stream_id: 7,
        timestamp: 0,
        type_id: TYPE_VIDEO,
        stream_id,
        payload: Bytes::from(vec![0x27; 0xFF_FFFF]),
    };
    client
        .send_message(&huge)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let next = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: createStream after the huge message: {e}"))?;
    close_from_client(
        name,
        client,
        &logs,
        mark,
        format!("taken and dropped (not publishing); createStream -> {next}"),
    )
    .await
}

async fn trickled_huge_message(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "0xFFFFFF declared, 64 KiB trickled, then FIN";
    let mark = logs.mark();
    let mut client = connected(addr).await.map_err(|e| format!("{name}: {e}"))?;
    let stream_id = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let mut header = BytesMut::new();
    put_fmt0_header(&mut header, 7, 0xFF_FFFF, TYPE_VIDEO, stream_id);
    client
        .send_raw(&header)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    for i in 0..512 {
        let mut chunk = BytesMut::new();
        if i > 0 {
            put_basic_header(&mut chunk, 3, 7);
        }
        chunk.put_bytes(0x27, 128);
        client
            .send_raw(&chunk)
            .await
            .map_err(|e| format!("{name}: trickle write {i}: {e}"))?;
        if i % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The connection is still usable mid-message on another chunk stream.
    let stream_id = client
        .create_stream()
        .await
        .map_err(|e| format!("{name}: createStream mid-message: {e}"))?;
    close_from_client(
        name,
        client,
        &logs,
        mark,
        format!("held (createStream -> {stream_id} mid-message) until the client closed"),
    )
    .await
}

async fn huge_message_then_silence(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "0xFFFFFF declared before connect, then silence";
    let mark = logs.mark();
    let mut client = RawClient::connect(addr).await;
    client
        .handshake()
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    let bytes = partial_message(3, 0xFF_FFFF, 128, 4);
    let _ = client.send_raw(&bytes).await;
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Timeout("timed out: connect"),
    )
    .await
}

async fn huge_partial_messages(addr: SocketAddr, logs: Logs) -> Result<Outcome, String> {
    let name = "three nearly complete 0xFFFFFF messages";
    let mark = logs.mark();
    let mut client = connected(addr).await.map_err(|e| format!("{name}: {e}"))?;
    client
        .send_set_chunk_size(64 * 1024)
        .await
        .map_err(|e| format!("{name}: {e}"))?;
    // 0xFFFFFF = 256 chunks of 64 KiB minus one byte: send 255 chunks of each message.
    for csid in [4, 5, 6] {
        let bytes = partial_message(csid, 0xFF_FFFF, 64 * 1024, 255);
        if client.send_raw(&bytes).await.is_err() {
            break;
        }
    }
    let since = Instant::now();
    expect_closed(
        name,
        client,
        &logs,
        mark,
        since,
        Expected::Prompt(&["chunk stream: partial messages exceed 33554432 bytes"]),
    )
    .await
}

#[tokio::test]
async fn log_capture_sees_close_lines_only_for_their_peer() {
    // The helpers the cases rely on can fail: a port nobody used has no close line.
    let logs = Logs::capture();
    let mark = logs.mark();
    assert_eq!(
        logs.close_reason(mark, 1, Duration::from_millis(100)).await,
        None
    );
    let server = Server::start(config(SMALL_MAX_MESSAGE))
        .await
        .expect("start server");
    let mut client = RawClient::connect(server.rtmp_addr()).await;
    client.shutdown_write().await.expect("FIN");
    let (closed, _, _) = client
        .wait_closed(Duration::from_secs(3))
        .await
        .expect("closed after FIN");
    assert_eq!(closed, Closed::Eof);
    let reason = logs
        .close_reason(mark, client.port(), LOG_WAIT)
        .await
        .expect("close line for our port");
    assert_eq!(reason, "peer closed the connection");
    server.shutdown().await;
}
