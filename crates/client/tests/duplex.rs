//! The client task over an in-memory `tokio::io::duplex` transport, against weir-rtmp's
//! sans-IO server session, on paused (simulated) time: deadlines, a publisher that never
//! sends, a player's events.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use weir_client::{Client, ClientError, ClientEvent, ClientOptions, RtmpUrl};
use weir_rtmp::chunk::{ChunkDecoder, ChunkEncoder};
use weir_rtmp::message::{self, Message, UserControl};
use weir_rtmp::session::{MediaType, ServerConfig, ServerEvent, ServerSession};

/// Bytes of C0+C1+C2, after which the client's chunk stream starts.
const CLIENT_HANDSHAKE: usize = 1 + 1536 + 1536;

fn url() -> RtmpUrl {
    RtmpUrl::parse("rtmp://server.test/live/key").unwrap()
}

fn options() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

/// What the test asks the in-memory server to do.
enum Do {
    /// Send a ping request with this timestamp.
    Ping(u32),
    /// Send a video message on the playing stream.
    Video(u32, Bytes),
    /// Close the connection.
    Close,
}

/// What the in-memory server saw.
#[derive(Debug, Default)]
struct Seen {
    events: Vec<ServerEvent>,
    /// Every byte the client sent.
    bytes: Vec<u8>,
}

/// A weir-rtmp server session on the other end of `io`: accepts connect, publish and play,
/// and does what `orders` say. Returns what it saw when told to close or when the client
/// closes.
async fn serve(mut io: DuplexStream, mut orders: mpsc::Receiver<Do>) -> Seen {
    let mut session = ServerSession::new(
        ServerConfig::default(),
        Instant::now().into_std(),
        [9; 1528],
    );
    let mut seen = Seen::default();
    let mut playing = None;
    let mut buf = vec![0; 64 * 1024];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            io.write_all(&bytes).await.unwrap();
        }
        tokio::select! {
            read = io.read(&mut buf) => {
                let n = match read {
                    Ok(0) | Err(_) => return seen,
                    Ok(n) => n,
                };
                seen.bytes.extend_from_slice(&buf[..n]);
                session.handle_input(Instant::now().into_std(), &buf[..n]).unwrap();
                while let Some(event) = session.poll_event() {
                    match &event {
                        ServerEvent::ConnectRequested(_) => session.accept_connect().unwrap(),
                        ServerEvent::PublishRequested(r) => session.accept_publish(r.stream_id).unwrap(),
                        ServerEvent::PlayRequested(r) => {
                            session.accept_play(r.stream_id).unwrap();
                            playing = Some(r.stream_id);
                        }
                        _ => {}
                    }
                    seen.events.push(event);
                }
            }
            order = orders.recv() => match order {
                Some(Do::Ping(time)) => {
                    // A fresh encoder writes a full (type 0) header: valid at any message
                    // boundary, and the session's queue was just drained.
                    let mut out = BytesMut::new();
                    ChunkEncoder::new().encode(&message::user_control(UserControl::PingRequest(time)), &mut out);
                    io.write_all(&out).await.unwrap();
                }
                Some(Do::Video(timestamp, payload)) => {
                    assert!(session.send_media(playing.unwrap(), MediaType::Video, timestamp, payload));
                }
                Some(Do::Close) | None => return seen,
            },
        }
    }
}

/// The messages in the client's chunk stream (after its handshake).
fn client_messages(bytes: &[u8]) -> Vec<Message> {
    let mut decoder = ChunkDecoder::new(Default::default());
    let mut input = BytesMut::from(&bytes[CLIENT_HANDSHAKE..]);
    let mut messages = Vec::new();
    while let Some(chunk) = decoder.decode(&mut input).unwrap() {
        let message = Message::parse(&chunk).unwrap();
        if let Message::SetChunkSize(size) = message {
            decoder.set_chunk_size(size).unwrap();
        }
        messages.push(message);
    }
    messages
}

fn start_server() -> (
    DuplexStream,
    mpsc::Sender<Do>,
    tokio::task::JoinHandle<Seen>,
) {
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    let (orders, rx) = mpsc::channel(8);
    let server = tokio::spawn(serve(server_io, rx));
    (client_io, orders, server)
}

#[tokio::test(start_paused = true)]
async fn connect_times_out_when_the_server_never_answers() {
    let (client_io, _silent_server) = tokio::io::duplex(64 * 1024);
    let started = Instant::now();
    let err = Client::connect_io(client_io, &url(), options())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout("connect")), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn silent_publisher_answers_pings_and_sees_the_close() {
    let (client_io, orders, server) = start_server();
    let mut client = Client::connect_io(client_io, &url(), options())
        .await
        .unwrap();
    client.publish("key").await.unwrap();
    // The publisher sends nothing and reads no events; far past the idle timeout (a
    // publisher is exempt), the server pings.
    tokio::time::sleep(Duration::from_secs(60)).await;
    orders.send(Do::Ping(0x1234)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    orders.send(Do::Close).await.unwrap();
    let seen = server.await.unwrap();
    assert!(seen
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::PublishRequested(r) if r.stream_name == "key")));
    let messages = client_messages(&seen.bytes);
    assert!(
        messages.contains(&Message::UserControl(UserControl::PingResponse(0x1234))),
        "no ping response in {messages:?}"
    );
    // The close reached the handle without it sending anything: the statuses the server
    // sent come first, then the end.
    let closed_at = Instant::now();
    loop {
        match client.next_event(Duration::from_secs(1)).await {
            Ok(Some(ClientEvent::Status { .. } | ClientEvent::UserControl(_))) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(err) => {
                assert!(matches!(err, ClientError::Closed), "{err}");
                break;
            }
        }
    }
    assert_eq!(closed_at.elapsed(), Duration::ZERO);
    let err = client
        .send_media(MediaType::Audio, 0, Bytes::from_static(&[0xAF, 0x01]))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Closed), "{err}");
}

#[tokio::test(start_paused = true)]
async fn publisher_frames_reach_the_server_whole() {
    let (client_io, _orders, server) = start_server();
    let mut client = Client::connect_io(client_io, &url(), options())
        .await
        .unwrap();
    client.publish("key").await.unwrap();
    let video = Bytes::from((0..20_000u32).map(|i| i as u8).collect::<Vec<_>>());
    for i in 0..50u32 {
        client
            .send_media(MediaType::Video, i * 40, video.clone())
            .await
            .unwrap();
    }
    client.close().await.unwrap();
    let seen = server.await.unwrap();
    let frames: Vec<_> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Media {
                timestamp, payload, ..
            } => Some((*timestamp, payload.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(frames.len(), 50);
    assert!(frames
        .iter()
        .enumerate()
        .all(|(i, (ts, payload))| *ts == i as u32 * 40 && *payload == video));
    assert!(seen
        .events
        .iter()
        .any(|e| matches!(e, ServerEvent::PublishStopped { .. })));
}

#[tokio::test(start_paused = true)]
async fn player_gets_media_then_times_out_when_the_server_goes_quiet() {
    let (client_io, orders, _server) = start_server();
    let mut client = Client::connect_io(client_io, &url(), options())
        .await
        .unwrap();
    client.play("key").await.unwrap();
    orders
        .send(Do::Video(40, Bytes::from_static(&[0x17, 1, 0, 0, 0, 9])))
        .await
        .unwrap();
    let media = loop {
        match client.next_event(Duration::from_secs(1)).await.unwrap() {
            Some(ClientEvent::Media {
                timestamp, payload, ..
            }) => break (timestamp, payload),
            Some(_) => {}
            None => panic!("no media"),
        }
    };
    assert_eq!(media, (40, Bytes::from_static(&[0x17, 1, 0, 0, 0, 9])));
    assert!(client.bytes_received() > 3073);
    let quiet_since = Instant::now();
    let err = loop {
        match client.next_event(Duration::from_secs(60)).await {
            Ok(Some(_)) => {}
            Ok(None) => panic!("no idle timeout"),
            Err(err) => break err,
        }
    };
    assert!(matches!(err, ClientError::Timeout("idle")), "{err}");
    assert_eq!(quiet_since.elapsed(), Duration::from_secs(5));
}
