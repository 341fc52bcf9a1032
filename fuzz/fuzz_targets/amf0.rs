#![no_main]

//! Decodes AMF0 values, re-encodes them, decodes that again and checks both decodes agree.

use libfuzzer_sys::fuzz_target;
use weir_fuzz::{same_all, KEY_GROWTH_INPUT};
use weir_rtmp::amf0::{self, Amf0Error};
use weir_rtmp::amf3::Amf3Error;

fuzz_target!(|data: &[u8]| {
    let limits = amf0::Limits::default();
    let Ok(first) = amf0::decode_all(data, &limits) else {
        return;
    };
    let mut bytes = Vec::new();
    amf0::encode_all(&first, &mut bytes);
    let second = match amf0::decode_all(&bytes, &limits) {
        Ok(second) => second,
        // Writing AMF3 references out inline can cost more than the references did.
        Err(Amf0Error::TooManyValues(_)) => return,
        Err(Amf0Error::Amf3(
            Amf3Error::TooManyValues(_)
            | Amf3Error::TooManyBytes(_)
            | Amf3Error::TooManyReferences(_),
        )) => return,
        Err(error) => panic!("re-encoded values do not decode: {error}"),
    };
    if data.len() < KEY_GROWTH_INPUT {
        assert!(same_all(&first, &second), "{first:?} != {second:?}");
    }
    let mut again = Vec::new();
    amf0::encode_all(&second, &mut again);
    assert_eq!(bytes, again);
});
