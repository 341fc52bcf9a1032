//! Parses arbitrary bytes as FLV audio and video tag headers, builds frames, feeds a GOP cache
//! and a rebaser, and parses the codec configuration records.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use weir_media::{
    AudioSpecificConfig, AudioTagHeader, AvcDecoderConfig, Frame, GopCache, GopLimits,
    SequenceParameterSet, TimestampRebaser, VideoTagHeader,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = VideoTagHeader::parse(data) {
        assert!(h.header_len <= data.len());
    }
    if let Ok(h) = AudioTagHeader::parse(data) {
        assert!(h.header_len <= data.len());
    }
    let payload = Bytes::copy_from_slice(data);
    let frames = [
        Frame::video(0, payload.clone()),
        Frame::audio(10, payload.clone()),
        Frame::data(20, payload),
    ];
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
