#![no_main]

//! Decodes one AMF3 value, re-encodes it, decodes that again and checks both decodes agree.

use libfuzzer_sys::fuzz_target;
use weir_fuzz::same3 as same;
use weir_rtmp::amf3::{self, Amf3Error};

fuzz_target!(|data: &[u8]| {
    let limits = amf3::Limits::default();
    let Ok(first) = amf3::decode(&mut &data[..], &limits) else {
        return;
    };
    let mut bytes = Vec::new();
    amf3::encode(&first, &mut bytes);
    let second = match amf3::decode(&mut &bytes[..], &limits) {
        Ok(second) => second,
        // Writing references out inline can cost more than the references did.
        Err(Amf3Error::TooManyValues(_) | Amf3Error::TooManyBytes(_)) => return,
        Err(Amf3Error::TooManyReferences(_)) => return,
        Err(error) => panic!("re-encoded value does not decode: {error}"),
    };
    assert!(same(&first, &second), "{first:?} != {second:?}");
    let mut again = Vec::new();
    amf3::encode(&second, &mut again);
    assert_eq!(bytes, again);
});
