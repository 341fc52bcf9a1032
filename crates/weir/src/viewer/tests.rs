//! The viewer core without sockets: packets in, frames out.

use std::sync::Arc;

use super::*;
use crate::config::StreamsConfig;
use crate::hub::Hub;
use crate::test_frames::{aac_header, audio, avc_header, interframe, keyframe, metadata};

/// Records what the core delivers.
#[derive(Default)]
struct Recorder {
    /// (kind, is config, viewer timestamp)
    frames: Vec<(MediaKind, bool, u32)>,
    left: usize,
    started: usize,
    capacity: Option<usize>,
}

impl ViewerSink for Recorder {
    fn frame(&mut self, frame: &Frame, timestamp: u32) {
        self.frames.push((frame.kind, is_config(frame), timestamp));
    }
    fn publisher_left(&mut self) {
        self.left += 1;
    }
    fn publisher_started(&mut self) {
        self.started += 1;
    }
    fn is_full(&self) -> bool {
        self.capacity.is_some_and(|c| self.frames.len() >= c)
    }
}

fn core() -> ViewerCore {
    ViewerCore::new(
        LagPolicy::SkipThenDisconnect(Duration::from_secs(5)),
        Instant::now(),
    )
}

#[test]
fn waiting_viewer_holds_only_the_latest_config_of_each_kind() {
    let mut core = core();
    let mut sink = Recorder::default();
    core.skip_to_keyframe();
    for ts in 0..10_000 {
        for frame in [metadata(ts), avc_header(ts), aac_header(ts)] {
            core.handle_packet(Packet::Frame(frame), &mut sink);
        }
    }
    assert_eq!(core.pending_config.len(), 3);
    assert!(core.pending_config.iter().all(|f| f.timestamp == 9_999));
    // Audio does not end the wait once the stream is known to have video.
    core.handle_packet(Packet::Frame(audio(10_000)), &mut sink);
    assert!(core.need_keyframe);
    core.handle_packet(Packet::Frame(keyframe(10_001)), &mut sink);
    assert!(!core.need_keyframe);
    assert!(core.pending_config.is_empty());
    // The held config goes out stamped with the keyframe's time, before it.
    let kinds: Vec<_> = sink.frames.iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(
        kinds,
        vec![
            (MediaKind::Data, true),
            (MediaKind::Video, true),
            (MediaKind::Audio, true),
            (MediaKind::Video, false)
        ]
    );
    assert!(sink.frames.windows(2).all(|w| w[0].2 == w[1].2));
}

#[test]
fn snapshot_starts_at_zero_with_config_stamped_at_the_first_frame() {
    let mut core = core();
    let mut sink = Recorder::default();
    let snapshot = vec![
        metadata(0),
        avc_header(0),
        aac_header(0),
        keyframe(50_000),
        audio(50_010),
        interframe(50_033),
    ];
    core.start(snapshot, &mut sink);
    let stamps: Vec<u32> = sink.frames.iter().map(|f| f.2).collect();
    assert_eq!(stamps, vec![0, 0, 0, 0, 10, 33]);
    core.handle_packet(Packet::Frame(interframe(50_066)), &mut sink);
    assert_eq!(sink.frames.last().map(|f| f.2), Some(66));
    assert_eq!(core.frames_sent(), 7);
}

#[test]
fn snapshot_without_keyframe_waits_for_one() {
    let mut core = core();
    let mut sink = Recorder::default();
    core.start(vec![metadata(0), avc_header(0), interframe(10)], &mut sink);
    assert!(sink.frames.is_empty());
    assert!(core.is_waiting_for_keyframe());
    core.handle_packet(Packet::Frame(interframe(40)), &mut sink);
    core.handle_packet(Packet::Frame(keyframe(80)), &mut sink);
    assert_eq!(sink.frames.len(), 3, "metadata, header, keyframe");
    assert_eq!(core.frames_skipped(), 1);
}

#[test]
fn loss_skips_to_the_next_keyframe_and_the_disconnect_policy_refuses_any_gap() {
    let mut core = core();
    let mut sink = Recorder::default();
    core.start(vec![avc_header(0), keyframe(0)], &mut sink);
    core.handle_loss(7).unwrap();
    core.handle_packet(Packet::Frame(interframe(33)), &mut sink);
    core.handle_packet(Packet::Frame(audio(40)), &mut sink);
    assert_eq!(sink.frames.len(), 2, "inter frame and audio skipped");
    core.handle_packet(Packet::Frame(keyframe(66)), &mut sink);
    assert_eq!(sink.frames.len(), 3);
    assert_eq!(core.frames_skipped(), 9);

    let mut strict = ViewerCore::new(LagPolicy::Disconnect, Instant::now());
    assert_eq!(strict.handle_loss(3), Err(Lagging::Lost(3)));
}

#[test]
fn lag_policies_disconnect_only_when_asked() {
    let start = Instant::now();
    let later = start + Duration::from_secs(6);
    let viewer = ViewerCore::new(LagPolicy::SkipThenDisconnect(Duration::from_secs(5)), start);
    assert_eq!(
        viewer.check_lag(later),
        Err(Lagging::Behind(Duration::from_secs(6)))
    );
    assert!(viewer.check_lag(start + Duration::from_secs(5)).is_ok());
    let mut caught_up =
        ViewerCore::new(LagPolicy::SkipThenDisconnect(Duration::from_secs(5)), start);
    caught_up.caught_up(start + Duration::from_secs(4));
    assert!(caught_up.check_lag(later).is_ok());
    let mut recorder = ViewerCore::new(LagPolicy::Skip, start);
    assert!(recorder
        .check_lag(start + Duration::from_secs(3600))
        .is_ok());
    assert!(recorder.handle_loss(100).is_ok());
    assert!(recorder.is_waiting_for_keyframe());
}

#[test]
fn publisher_change_is_announced_and_the_timeline_continues() {
    let mut core = core();
    let mut sink = Recorder::default();
    core.start(vec![avc_header(0), keyframe(0)], &mut sink);
    core.handle_packet(Packet::Frame(interframe(1000)), &mut sink);
    core.handle_packet(Packet::PublisherLeft, &mut sink);
    core.handle_packet(Packet::PublisherStarted, &mut sink);
    assert_eq!((sink.left, sink.started), (1, 1));
    // The new publisher starts its clock at 0, with an inter frame first: skipped.
    core.handle_packet(Packet::Frame(avc_header(0)), &mut sink);
    core.handle_packet(Packet::Frame(interframe(0)), &mut sink);
    core.handle_packet(Packet::Frame(keyframe(33)), &mut sink);
    let stamps: Vec<u32> = sink.frames.iter().map(|f| f.2).collect();
    assert_eq!(stamps.len(), 5);
    assert!(
        stamps.windows(2).all(|w| w[1] >= w[0]),
        "timeline never goes back: {stamps:?}"
    );
}

#[test]
fn audio_only_stream_resumes_on_audio() {
    let mut core = core();
    let mut sink = Recorder::default();
    core.start(vec![aac_header(0), audio(0)], &mut sink);
    core.handle_loss(1).unwrap();
    core.handle_packet(Packet::Frame(audio(23)), &mut sink);
    assert_eq!(sink.frames.len(), 3);
}

#[tokio::test]
async fn viewer_drains_the_queue_until_the_sink_is_full() {
    let hub = Arc::new(Hub::new(StreamsConfig {
        max_added_latency_ms: 0,
        ..StreamsConfig::default()
    }));
    let publisher = hub.publish("live/a").unwrap();
    publisher.send(avc_header(0));
    publisher.send(keyframe(0));
    let now = Instant::now();
    let mut viewer = Viewer::new(
        hub.subscribe("live/a"),
        LagPolicy::SkipThenDisconnect(Duration::from_secs(5)),
        now,
    );
    let mut sink = Recorder {
        capacity: Some(4),
        ..Recorder::default()
    };
    viewer.start(&mut sink);
    for ts in 1..=5 {
        publisher.send(interframe(ts * 33));
    }
    let first = viewer.recv().await;
    viewer.handle_recv(first, &mut sink, now).unwrap();
    assert_eq!(sink.frames.len(), 4, "stopped when full");
    sink.capacity = None;
    let next = viewer.recv().await;
    viewer.handle_recv(next, &mut sink, now).unwrap();
    assert_eq!(sink.frames.len(), 7);
    assert_eq!(viewer.core().frames_sent(), 7);
}

/// A Multitrack message of video track `track`: OneTrack, H.264, key or inter frame.
fn track_frame(ts: u32, track: u8, key: bool) -> Frame {
    let first = if key { 0x96 } else { 0xa6 };
    let payload = [&[first, 0x01][..], b"avc1", &[track, 0, 0, 0, 0x09]].concat();
    Frame::video(ts, bytes::Bytes::from(payload))
}

/// What the hub carries for one message: its single-track copy first, then the original.
fn hub_forms(frame: Frame) -> Vec<Frame> {
    let (original, copy) = frame.with_single_track_form();
    copy.into_iter().chain([original]).collect()
}

#[derive(Default)]
struct Tracked {
    /// (track, multitrack framing, keyframe)
    frames: Vec<(u8, bool, bool)>,
    withheld: Vec<(u8, WithheldReason)>,
}

impl ViewerSink for Tracked {
    fn frame(&mut self, frame: &Frame, _timestamp: u32) {
        if frame.kind == MediaKind::Video && frame.info.is_coded_frame {
            self.frames.push((
                frame.info.track_id,
                frame.info.multitrack,
                frame.info.is_keyframe,
            ));
        }
    }
    fn withheld(&mut self, frame: &Frame, reason: WithheldReason) {
        self.withheld.push((frame.info.track_id, reason));
    }
}

#[test]
fn a_multitrack_viewer_starts_each_rendition_at_its_own_keyframe() {
    let mut core = core();
    let mut sink = Tracked::default();
    core.start(Vec::new(), &mut sink);
    let messages = [
        track_frame(0, 0, true),
        track_frame(0, 1, false), // track 1 joined mid-GOP: skipped
        track_frame(40, 0, false),
        track_frame(40, 1, true),
        track_frame(80, 1, false),
    ];
    for message in messages {
        for frame in hub_forms(message) {
            core.handle_packet(Packet::Frame(frame), &mut sink);
        }
    }
    assert_eq!(
        sink.frames,
        vec![
            (0, true, true),
            (0, true, false),
            (1, true, true),
            (1, true, false)
        ]
    );
    // After a loss, track 1 waits for its next keyframe again.
    core.handle_loss(3).unwrap();
    for message in [track_frame(120, 0, true), track_frame(120, 1, false)] {
        for frame in hub_forms(message) {
            core.handle_packet(Packet::Frame(frame), &mut sink);
        }
    }
    assert_eq!(sink.frames.len(), 5, "{:?}", sink.frames);
}

#[test]
fn a_legacy_viewer_gets_the_default_track_unwrapped_and_hears_of_the_rest_once() {
    let mut core = core().with_accepts(Accepts::legacy(crate::config::Unadvertised::Send));
    let mut sink = Tracked::default();
    core.start(Vec::new(), &mut sink);
    for ts in 0..3 {
        for message in [
            track_frame(ts * 40, 0, ts == 0),
            track_frame(ts * 40, 1, ts == 0),
        ] {
            for frame in hub_forms(message) {
                core.handle_packet(Packet::Frame(frame), &mut sink);
            }
        }
    }
    // Track 0 in legacy framing only; track 1 withheld, reported once.
    assert_eq!(
        sink.frames,
        vec![(0, false, true), (0, false, false), (0, false, false)]
    );
    assert_eq!(sink.withheld, vec![(1, WithheldReason::NotMultitrack)]);
}

#[test]
fn merged_writes_end_on_a_shared_grid_within_the_budget() {
    let epoch = Instant::now();
    let merge = Duration::from_millis(200);
    for offset_ms in [0u64, 1, 7, 19, 20, 21, 199, 200, 1234, 99_999] {
        let now = epoch + Duration::from_millis(offset_ms) + Duration::from_micros(300);
        let until = super::merged_until(epoch, now, merge);
        assert!(
            until > now && until <= now + merge,
            "{offset_ms}: {until:?}"
        );
        assert!(
            until >= now + merge - merge / 10,
            "{offset_ms}: quiet too short"
        );
        let since = until.duration_since(epoch).as_nanos();
        assert_eq!(
            since % (merge / 10).as_nanos(),
            0,
            "{offset_ms}: off the grid"
        );
    }
    // Two viewers that wrote a few ms apart wake together.
    let a = super::merged_until(epoch, epoch + Duration::from_millis(3), merge);
    let b = super::merged_until(epoch, epoch + Duration::from_millis(9), merge);
    assert_eq!(a, b);
    // A clock before the epoch stays within the budget too.
    let early = epoch - Duration::from_millis(50);
    let until = super::merged_until(epoch, early, merge);
    assert!(until > early && until <= early + merge);
    let far_early = epoch - Duration::from_secs(5);
    assert_eq!(
        super::merged_until(epoch, far_early, merge),
        far_early + merge
    );
}
