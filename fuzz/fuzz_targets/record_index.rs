//! Reads arbitrary bytes as a recorded fMP4 file (a file on disk may be cut short, damaged or
//! not ours): the index never panics, its fragments lie inside the file, in order and without
//! overlap, and a VOD playlist over it is written without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_media::record::index::index_bytes;
use weir_media::record::vod::{playlist, VodFile};

fuzz_target!(|data: &[u8]| {
    let Ok(index) = index_bytes(data) else {
        return;
    };
    let mut end = index.init_len;
    for fragment in &index.fragments {
        assert!(
            fragment.offset >= end,
            "{fragment:?} overlaps what precedes it"
        );
        end = fragment.offset + fragment.len;
        assert!(end <= data.len() as u64, "{fragment:?} ends past the file");
        assert!(fragment.duration >= 0.0);
    }
    let files = [VodFile {
        uri: "f.mp4",
        index: &index,
    }];
    let _ = playlist(&files, None, None, false);
    let _ = playlist(&files, Some(0), Some(u64::MAX / 2), true);
});
