//! Fan-out cost per frame per subscriber.
//!
//! Each iteration publishes one 12 KB video frame (a keyframe every 60th, as a 2 s GOP at
//! 30 fps) to a stream with N subscriptions.
//!
//! * `hub`: every subscription takes the frame with `try_recv` (hub cost only);
//! * `hub_rtmp`: every subscription also hands the frame to its own playing `ServerSession`
//!   (`send_media`) and drains that session's transmit queue with `io_slices`/`advance`, as the
//!   connection driver does before a vectored write (no socket).
//!
//! Throughput is N elements per iteration, so elements/s is frames delivered per second and its
//! inverse is the time per frame per subscriber.

use std::hint::black_box;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use weir::config::StreamsConfig;
use weir::hub::{Hub, Packet, Publisher, Subscription};
use weir_media::Frame;
use weir_rtmp::session::{
    ClientConfig, ClientSession, MediaType, ServerConfig, ServerEvent, ServerSession,
};

const KEY: &str = "live/bench";
const FRAME_BYTES: usize = 12 * 1024;
const GOP_FRAMES: u32 = 60;
/// Slices handed to one vectored write, as the connection driver does.
const MAX_IO_SLICES: usize = 512;
const SUBSCRIBERS: [usize; 3] = [1, 100, 1000];

/// The frames published in turn: index 0 a keyframe, the rest interframes.
fn frames() -> (Bytes, Bytes) {
    let mut key = vec![0x17, 0x01, 0, 0, 0];
    key.resize(FRAME_BYTES, 0x65);
    let mut inter = vec![0x27, 0x01, 0, 0, 0];
    inter.resize(FRAME_BYTES, 0x41);
    (Bytes::from(key), Bytes::from(inter))
}

/// A publisher that sends frame after frame with advancing timestamps.
struct Source {
    publisher: Publisher,
    keyframe: Bytes,
    interframe: Bytes,
    count: u32,
}

impl Source {
    fn send(&mut self) {
        let payload = if self.count.is_multiple_of(GOP_FRAMES) {
            self.keyframe.clone()
        } else {
            self.interframe.clone()
        };
        self.publisher
            .send(Frame::video(self.count.wrapping_mul(33), payload));
        self.count = self.count.wrapping_add(1);
    }
}

fn setup(hub: &Arc<Hub>, subscribers: usize) -> (Source, Vec<Subscription>) {
    let publisher = hub.publish(KEY).unwrap();
    let mut subscriptions: Vec<Subscription> =
        (0..subscribers).map(|_| hub.subscribe(KEY)).collect();
    for subscription in &mut subscriptions {
        // Drop the PublisherStarted notices and any snapshot.
        subscription.take_snapshot();
        while subscription.try_recv().is_ok() {}
    }
    let (keyframe, interframe) = frames();
    let source = Source {
        publisher,
        keyframe,
        interframe,
        count: 0,
    };
    (source, subscriptions)
}

/// A server session in playing state, driven there by an in-memory client; returns it with the
/// message stream id it plays on. Its transmit queue is empty.
fn playing_session() -> (ServerSession, u32) {
    let now = Instant::now();
    let mut client =
        ClientSession::new(ClientConfig::new("127.0.0.1:1935", "live"), now, [7; 1528]);
    let mut server = ServerSession::new(ServerConfig::default(), now, [9; 1528]);
    client.play(now, "bench");
    let mut stream_id = None;
    for _ in 0..100 {
        let mut moved = false;
        while let Some(bytes) = client.poll_transmit() {
            moved = true;
            server.handle_input(now, &bytes).unwrap();
            while let Some(event) = server.poll_event() {
                match event {
                    ServerEvent::ConnectRequested(_) => server.accept_connect().unwrap(),
                    ServerEvent::PlayRequested(request) => {
                        server.accept_play(request.stream_id).unwrap();
                        stream_id = Some(request.stream_id);
                    }
                    _ => {}
                }
            }
        }
        while let Some(bytes) = server.poll_transmit() {
            moved = true;
            client.handle_input(now, &bytes).unwrap();
        }
        while client.poll_event().is_some() {}
        if !moved {
            break;
        }
    }
    let stream_id = stream_id.expect("server accepted the play");
    assert_eq!(client.stream_id(), Some(stream_id));
    assert_eq!(server.pending_output(), 0);
    (server, stream_id)
}

/// Drains the session's queue as a vectored writer would; returns the bytes.
fn drain(session: &mut ServerSession) -> usize {
    let queue = session.transmit_queue();
    let mut total = 0;
    while !queue.is_empty() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(16);
        let n = queue.io_slices(&mut slices, MAX_IO_SLICES);
        black_box(&slices);
        drop(slices);
        queue.advance(n);
        total += n;
    }
    total
}

fn next_frame(subscription: &mut Subscription) -> Frame {
    match subscription.try_recv() {
        Ok(Packet::Frame(frame)) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for subscribers in SUBSCRIBERS {
        group.throughput(Throughput::Elements(subscribers as u64));

        let hub = Arc::new(Hub::new(StreamsConfig::default()));
        let (mut source, mut subscriptions) = setup(&hub, subscribers);
        group.bench_function(format!("hub/{subscribers}"), |b| {
            b.iter(|| {
                source.send();
                for subscription in &mut subscriptions {
                    black_box(next_frame(subscription));
                }
            });
        });
        drop((source, subscriptions));

        let hub = Arc::new(Hub::new(StreamsConfig::default()));
        let (mut source, subscriptions) = setup(&hub, subscribers);
        let mut viewers: Vec<(Subscription, ServerSession, u32)> = subscriptions
            .into_iter()
            .map(|subscription| {
                let (session, stream_id) = playing_session();
                (subscription, session, stream_id)
            })
            .collect();
        group.bench_function(format!("hub_rtmp/{subscribers}"), |b| {
            b.iter(|| {
                source.send();
                for (subscription, session, stream_id) in &mut viewers {
                    let frame = next_frame(subscription);
                    assert!(session.send_media(
                        *stream_id,
                        MediaType::Video,
                        frame.timestamp,
                        frame.payload
                    ));
                    black_box(drain(session));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
