//! Publish and play requests the application answers late, or never: the session's deadline.

use std::time::{Duration, Instant};

use super::wire::Wire;
use super::*;
use crate::chunk::{ChunkMessage, DecoderLimits};
use crate::command::{code, StatusLevel};
use crate::message::TYPE_VIDEO;

/// Moves bytes between the two sessions until neither has anything to send; returns the
/// server's events.
fn pump(now: Instant, client: &mut ClientSession, server: &mut ServerSession) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    loop {
        let mut moved = false;
        while let Some(bytes) = client.poll_transmit() {
            moved = true;
            server.handle_input(now, &bytes).unwrap();
        }
        while let Some(event) = server.poll_event() {
            if matches!(event, ServerEvent::ConnectRequested(_)) {
                server.accept_connect().unwrap();
            }
            events.push(event);
        }
        while let Some(bytes) = server.poll_transmit() {
            moved = true;
            client.handle_input(now, &bytes).unwrap();
        }
        if !moved {
            return events;
        }
    }
}

fn pair(now: Instant) -> (ClientSession, ServerSession) {
    let config = ServerConfig {
        request_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let client = ClientSession::new(ClientConfig::new("127.0.0.1:1935", "live"), now, [7; 1528]);
    (client, ServerSession::new(config, now, [9; 1528]))
}

fn error_statuses(client: &mut ClientSession) -> Vec<String> {
    let mut codes = Vec::new();
    while let Some(event) = client.poll_event() {
        if let ClientEvent::Status { status, .. } = event {
            if status.level == StatusLevel::Error {
                codes.push(status.code);
            }
        }
    }
    codes
}

#[test]
fn unanswered_publish_is_denied_at_the_deadline_and_media_never_surfaces() {
    let start = Instant::now();
    let (mut client, mut server) = pair(start);
    client.publish(start, "key");
    let events = pump(start, &mut client, &mut server);
    let stream_id = match events.last() {
        Some(ServerEvent::PublishRequested(request)) => request.stream_id,
        other => panic!("expected a publish request, got {other:?}"),
    };
    assert_eq!(server.poll_timeout(), Some(start + Duration::from_secs(3)));
    // Media sent before any answer (an encoder that does not wait for Publish.Start) waits
    // in the session, not in events.
    let mut early = Wire::new(DecoderLimits::default());
    early.send(&ChunkMessage {
        chunk_stream_id: 6,
        timestamp: 0,
        type_id: TYPE_VIDEO,
        stream_id,
        payload: bytes::Bytes::from_static(&[0x17, 1, 0, 0, 0]),
    });
    let later = start + Duration::from_secs(2);
    server
        .handle_input(later, &early.take_output().unwrap())
        .unwrap();
    assert!(server.poll_event().is_none());
    server.handle_timeout(later).unwrap();
    assert!(
        server.poll_event().is_none(),
        "no expiry before the deadline"
    );
    let deadline = start + Duration::from_secs(3);
    server.handle_timeout(deadline).unwrap();
    let events: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert_eq!(events, vec![ServerEvent::RequestTimedOut { stream_id }]);
    // The late answer does nothing; the buffered media is dropped, not published.
    server.accept_publish(stream_id).unwrap();
    let after: Vec<_> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(after.is_empty(), "{after:?}");
    assert!(pump(deadline, &mut client, &mut server).is_empty());
    assert_eq!(error_statuses(&mut client), vec![code::PUBLISH_DENIED]);
}

#[test]
fn unanswered_play_fails_at_the_deadline_and_a_denied_play_fails_at_once() {
    let start = Instant::now();
    let (mut client, mut server) = pair(start);
    client.play(start, "key");
    let events = pump(start, &mut client, &mut server);
    let Some(ServerEvent::PlayRequested(request)) = events.last() else {
        panic!("expected a play request, got {events:?}");
    };
    let stream_id = request.stream_id;
    // A play keeps no idle deadline, but a pending one has its request deadline.
    assert_eq!(server.poll_timeout(), Some(start + Duration::from_secs(3)));
    server
        .handle_timeout(start + Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::RequestTimedOut { stream_id })
    );
    pump(start, &mut client, &mut server);
    assert_eq!(error_statuses(&mut client), vec![code::PLAY_FAILED]);

    let (mut client, mut server) = pair(start);
    client.play(start, "key");
    let events = pump(start, &mut client, &mut server);
    let Some(ServerEvent::PlayRequested(request)) = events.last() else {
        panic!("expected a play request, got {events:?}");
    };
    server.deny_play(request.stream_id, "not allowed").unwrap();
    pump(start, &mut client, &mut server);
    assert_eq!(error_statuses(&mut client), vec![code::PLAY_FAILED]);
    // A refused play leaves only the idle deadline of a connection doing nothing.
    assert_eq!(server.poll_timeout(), Some(start + Duration::from_secs(30)));
}

#[test]
fn a_request_raised_by_a_late_answer_gets_its_whole_deadline() {
    let start = Instant::now();
    let (mut client, mut server) = pair(start);
    client.publish(start, "first");
    let events = pump(start, &mut client, &mut server);
    let Some(ServerEvent::PublishRequested(first)) = events.last() else {
        panic!("expected a publish request, got {events:?}");
    };
    // A play on another message stream arrives while the publish waits: buffered.
    let mut early = Wire::new(DecoderLimits::default());
    let play = crate::command::Command::new(
        "play",
        0.0,
        crate::amf0::Value::Null,
        vec![crate::amf0::Value::from("second")],
    );
    early.send_command(first.stream_id + 1, &play);
    let t1 = start + Duration::from_secs(1);
    server
        .handle_input(t1, &early.take_output().unwrap())
        .unwrap();
    assert!(server.poll_event().is_none());
    // The publish is accepted late, 2.5 s in: the play it releases is raised now.
    let t2 = start + Duration::from_millis(2500);
    server.accept_publish(first.stream_id).unwrap();
    let Some(ServerEvent::PlayRequested(second)) = server.poll_event() else {
        panic!("expected the buffered play request");
    };
    // Its deadline is armed at the next timeout call (asked for at once), 3 s from then.
    assert!(server.poll_timeout().unwrap() <= t2);
    server.handle_timeout(t2).unwrap();
    assert_eq!(server.poll_timeout(), Some(t2 + Duration::from_secs(3)));
    server
        .handle_timeout(t2 + Duration::from_millis(2999))
        .unwrap();
    assert!(server.poll_event().is_none());
    server.handle_timeout(t2 + Duration::from_secs(3)).unwrap();
    assert_eq!(
        server.poll_event(),
        Some(ServerEvent::RequestTimedOut {
            stream_id: second.stream_id
        })
    );
}
