#![no_main]

//! Decodes one AMF3 value, re-encodes it, decodes that again and checks both decodes agree.

use libfuzzer_sys::fuzz_target;
use weir_rtmp::amf3::{self, Amf3Error, Value};

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

/// Equality that compares doubles by their bits, so NaN equals the same NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) | (Value::Date(x), Value::Date(y)) => {
            x.to_bits() == y.to_bits()
        }
        (
            Value::Array {
                associative: a1,
                dense: d1,
            },
            Value::Array {
                associative: a2,
                dense: d2,
            },
        ) => {
            same_members(a1, a2)
                && d1.len() == d2.len()
                && d1.iter().zip(d2).all(|(x, y)| same(x, y))
        }
        (
            Value::Object {
                class_name: c1,
                sealed: s1,
                dynamic: y1,
            },
            Value::Object {
                class_name: c2,
                sealed: s2,
                dynamic: y2,
            },
        ) => c1 == c2 && same_members(s1, s2) && same_members(y1, y2),
        _ => a == b,
    }
}

fn same_members(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
}
