//! Helpers shared by the fuzz targets and the seed generator (`examples/seeds.rs`).

use weir_rtmp::amf0::Value;
use weir_rtmp::amf3;
use weir_rtmp::command::Command;

/// Lossy UTF-8 decoding can grow a key past 0xFFFF bytes (which the encoder then cuts) only
/// from an input at least this long.
pub const KEY_GROWTH_INPUT: usize = 0xFFFF / 3 + 1;

/// Command equality that compares doubles by their bits (so NaN equals the same NaN).
pub fn same_command(a: &Command, b: &Command) -> bool {
    a.name == b.name
        && a.transaction_id.to_bits() == b.transaction_id.to_bits()
        && same(&a.object, &b.object)
        && same_all(&a.arguments, &b.arguments)
}

/// AMF0 equality that compares doubles by their bits (so NaN equals the same NaN) and accepts
/// a string longer than 0xFFFF bytes coming back as a long string.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.to_bits() == y.to_bits(),
        (
            Value::Date {
                millis: m1,
                time_zone: z1,
            },
            Value::Date {
                millis: m2,
                time_zone: z2,
            },
        ) => m1.to_bits() == m2.to_bits() && z1 == z2,
        (Value::String(x), Value::LongString(y)) => x.len() > 0xFFFF && x == y,
        (Value::Object(x), Value::Object(y)) | (Value::EcmaArray(x), Value::EcmaArray(y)) => {
            same_properties(x, y)
        }
        (Value::StrictArray(x), Value::StrictArray(y)) => same_all(x, y),
        (
            Value::TypedObject {
                class_name: c1,
                properties: p1,
            },
            Value::TypedObject {
                class_name: c2,
                properties: p2,
            },
        ) => c1 == c2 && same_properties(p1, p2),
        (Value::Avmplus(x), Value::Avmplus(y)) => same3(x, y),
        _ => a == b,
    }
}

/// [`same`] for sequences of values.
pub fn same_all(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

fn same_properties(a: &[(String, Value)], b: &[(String, Value)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && same(v1, v2))
}

/// [`same`] for AMF3 values.
pub fn same3(a: &amf3::Value, b: &amf3::Value) -> bool {
    use amf3::Value as V;
    let members = |a: &[(String, V)], b: &[(String, V)]| {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && same3(v1, v2))
    };
    match (a, b) {
        (V::Double(x), V::Double(y)) | (V::Date(x), V::Date(y)) => x.to_bits() == y.to_bits(),
        (
            V::Array {
                associative: a1,
                dense: d1,
            },
            V::Array {
                associative: a2,
                dense: d2,
            },
        ) => members(a1, a2) && d1.len() == d2.len() && d1.iter().zip(d2).all(|(x, y)| same3(x, y)),
        (
            V::Object {
                class_name: c1,
                sealed: s1,
                dynamic: y1,
            },
            V::Object {
                class_name: c2,
                sealed: s2,
                dynamic: y2,
            },
        ) => c1 == c2 && members(s1, s2) && members(y1, y2),
        _ => a == b,
    }
}
