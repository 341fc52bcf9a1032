//! Byte-level access checks: a publisher that sends media right behind its `publish` (so a
//! refusal that came late would let media through), and a player that counts every media byte
//! it receives.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use weir_rtmp::chunk::ChunkMessage;
use weir_rtmp::command::Status;
use weir_rtmp::message::Message;

use super::raw_client::RawClient;

/// A byte-level publisher of `app/name` that sends a video sequence header and key frames
/// right behind its `publish`, without waiting for the answer; gives the client and the
/// status code and description the server answered.
pub async fn publish_eagerly(
    addr: SocketAddr,
    app: &str,
    name: &str,
) -> (RawClient, String, String) {
    let mut client = RawClient::connect(addr).await;
    client.handshake().await.unwrap();
    client.connect_app(app).await.unwrap();
    let stream_id = client.create_stream().await.unwrap();
    let publish = weir_rtmp::command::Command::new(
        "publish",
        0.0,
        weir_rtmp::amf0::Value::Null,
        vec![
            weir_rtmp::amf0::Value::from(name),
            weir_rtmp::amf0::Value::from("live"),
        ],
    );
    client.send_command(stream_id, &publish).await.unwrap();
    for (i, payload) in [
        super::bad_bytes::avc_sequence_header(),
        super::bad_bytes::avc_keyframe(),
        super::bad_bytes::avc_keyframe(),
    ]
    .into_iter()
    .enumerate()
    {
        // A quick refusal may close the connection while these are on their way.
        let sent = client
            .send_message(&ChunkMessage {
                chunk_stream_id: 6,
                timestamp: i as u32 * 40,
                type_id: 9,
                stream_id,
                payload,
            })
            .await;
        if sent.is_err() {
            break;
        }
    }
    let (code, description) = next_status(&mut client, Duration::from_secs(8)).await;
    (client, code, description)
}

/// The next `onStatus` (code, description), skipping everything else.
pub async fn next_status(client: &mut RawClient, timeout: Duration) -> (String, String) {
    let command = client
        .expect_command(timeout, "onStatus", |c| c.name == "onStatus")
        .await
        .unwrap();
    let status = Status::from_command(&command).unwrap();
    (status.code.to_string(), status.description.to_string())
}

/// A byte-level client that has asked to play `app/name` (without waiting for Play.Start).
async fn start_play(addr: SocketAddr, app: &str, name: &str) -> RawClient {
    let mut client = RawClient::connect(addr).await;
    client.handshake().await.unwrap();
    client.connect_app(app).await.unwrap();
    let stream_id = client.create_stream().await.unwrap();
    let play = weir_rtmp::command::Command::new(
        "play",
        0.0,
        weir_rtmp::amf0::Value::Null,
        vec![weir_rtmp::amf0::Value::from(name)],
    );
    client.send_command(stream_id, &play).await.unwrap();
    client
}

/// A byte-level player of `app/name`: plays (without waiting for Play.Start) and counts the
/// audio and video messages and their bytes for `window`; gives the statuses seen too.
pub async fn play_and_count(
    addr: SocketAddr,
    app: &str,
    name: &str,
    window: Duration,
) -> (usize, usize, Vec<String>) {
    let mut client = start_play(addr, app, name).await;
    count_media(&mut client, window).await
}

/// A byte-level player of `app/name` that plays until `stop` fires (or `limit`): gives the
/// media messages and the status codes, like [`play_and_count`].
pub async fn play_until_stopped(
    addr: SocketAddr,
    app: &str,
    name: &str,
    stop: tokio::sync::oneshot::Receiver<()>,
    limit: Duration,
) -> (usize, Vec<String>) {
    let mut client = start_play(addr, app, name).await;
    let deadline = Instant::now() + limit;
    let (mut messages, mut statuses) = (0, Vec::new());
    let mut stop = stop;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = tokio::select! {
            _ = &mut stop => break,
            message = client.read_message(left) => message,
        };
        let Ok(message) = message else {
            break;
        };
        if matches!(message.type_id, 8 | 9) {
            messages += 1;
        } else if let Some(status) = status_of(&message) {
            statuses.push(status);
        }
    }
    (messages, statuses)
}

/// The `onStatus` in `message` as "code: description", if it is one.
fn status_of(message: &ChunkMessage) -> Option<String> {
    let Ok(Message::Command(body)) = Message::parse(message) else {
        return None;
    };
    let command =
        weir_rtmp::command::Command::decode(&body, &weir_rtmp::amf0::Limits::default()).ok()?;
    let status = Status::from_command(&command)?;
    Some(format!("{}: {}", status.code, status.description))
}

/// A byte-level player of `app/name` that stays across a republish: counts the media messages
/// before the publisher leaves (`UnpublishNotify`) and after the next one starts
/// (`PublishNotify`), and ends once `after` messages came from the next publisher (or at
/// `limit`, with what it has). Gives (before, after, statuses).
pub async fn play_across_republish(
    addr: SocketAddr,
    app: &str,
    name: &str,
    after: usize,
    limit: Duration,
) -> (usize, usize, Vec<String>) {
    let mut client = start_play(addr, app, name).await;
    let deadline = Instant::now() + limit;
    let (mut counts, mut statuses) = ([0usize; 2], Vec::new());
    let mut phase = 0; // 0: first publisher, 1: between, 2: the next publisher
    while counts[1] < after {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(message) = client.read_message(left).await else {
            break;
        };
        if matches!(message.type_id, 8 | 9) {
            match phase {
                0 => counts[0] += 1,
                2 => counts[1] += 1,
                _ => {}
            }
        } else if let Some(status) = status_of(&message) {
            if status.starts_with("NetStream.Play.UnpublishNotify") && phase == 0 {
                phase = 1;
            } else if status.starts_with("NetStream.Play.PublishNotify") && phase == 1 {
                phase = 2;
            }
            statuses.push(status);
        }
    }
    (counts[0], counts[1], statuses)
}

/// Media messages and bytes `client` receives within `window`, and the status codes.
pub async fn count_media(client: &mut RawClient, window: Duration) -> (usize, usize, Vec<String>) {
    let deadline = Instant::now() + window;
    let (mut messages, mut bytes, mut statuses) = (0, 0, Vec::new());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Ok(message) = client.read_message(left).await else {
            break;
        };
        if matches!(message.type_id, 8 | 9) {
            messages += 1;
            bytes += message.payload.len();
        } else if let Some(status) = status_of(&message) {
            statuses.push(status);
        }
    }
    (messages, bytes, statuses)
}

/// Status line and body of an HTTP/1.0 GET: read until the server closes, for at most 10 s
/// (a first playlist waits for a segment; a live FLV body never ends).
pub fn http_get(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    write!(socket, "GET {path} HTTP/1.0\r\nHost: t\r\n\r\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut data = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let split = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&data[..split]).to_string();
    (
        head.lines().next().unwrap_or_default().to_owned(),
        data[split..].to_vec(),
    )
}

/// Status line and body of an HTTP/1.0 POST of `body` (JSON).
pub fn http_post(addr: SocketAddr, path: &str, body: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    write!(
        socket,
        "POST {path} HTTP/1.0\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut data = Vec::new();
    let _ = socket.read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        rest.as_bytes().to_vec(),
    )
}
