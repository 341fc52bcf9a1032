//! Parses arbitrary bytes as FLV audio and video tag headers, reads every track of them as an
//! E-RTMP Multitrack message, builds their single-track forms, builds frames, feeds a GOP cache
//! and a rebaser, and parses the codec configuration records.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_media::{
    AudioSpecificConfig, AudioTagHeader, AvcDecoderConfig, Frame, GopCache, GopLimits,
    SequenceParameterSet, SingleTrack, TimestampRebaser, TrackKind, Tracks, VideoTagHeader,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = VideoTagHeader::parse(data) {
        assert!(h.header_len <= data.len());
    }
    if let Ok(h) = AudioTagHeader::parse(data) {
        assert!(h.header_len <= data.len());
    }
    for kind in [TrackKind::Video, TrackKind::Audio] {
        if let Ok(tracks) = Tracks::parse(kind, data) {
            // Every track's body lies inside the message, and they never overlap.
            let total: usize = tracks.flatten().map(|t| t.body.len()).sum();
            assert!(total <= data.len());
        }
        if let SingleTrack::Rebuilt(single) = weir_media::single_track(kind, data) {
            // The single-track form is one track: it parses and is not multitrack.
            let tracks = Tracks::parse(kind, &single).expect("rebuilt form parses");
            assert!(!tracks.is_multitrack());
        }
    }
    let payload = Bytes::copy_from_slice(data);
    let mut frames = Vec::new();
    for frame in [
        Frame::video(0, payload.clone()),
        Frame::audio(10, payload.clone()),
        Frame::data(20, payload),
    ] {
        let (frame, copy) = frame.with_single_track_form();
        frames.extend(copy);
        frames.push(frame);
    }
    let mut gop = GopCache::new(GopLimits {
        max_bytes: 1 << 16,
        max_duration_ms: 1000,
    });
    let mut rebaser = TimestampRebaser::new();
    for frame in &frames {
        assert!(frame.info.header_len <= frame.payload.len());
        let _ = frame.body();
        gop.push(frame);
        let _ = rebaser.rebase(frame.kind, frame.timestamp);
    }
    let _ = gop.snapshot();
    if let Ok(config) = AvcDecoderConfig::parse(data) {
        let _ = config.first_sps();
    }
    let _ = SequenceParameterSet::parse(data);
    let _ = AudioSpecificConfig::parse(data);
});
