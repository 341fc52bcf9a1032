//! Helpers shared by the unit tests.

/// Bytes from hex written with spaces and line breaks anywhere (`"17 00 0000 00"`).
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
