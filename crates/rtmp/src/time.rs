//! Wrapping 32-bit RTMP timestamps (spec section 4: serial number arithmetic, RFC 1982).

/// Signed distance from `earlier` to `later` in milliseconds, assuming the two are within
/// 2^31 - 1 ms of each other (the spec's rule for adjacent timestamps).
pub fn distance(earlier: u32, later: u32) -> i32 {
    later.wrapping_sub(earlier) as i32
}

/// Whether `a` comes strictly before `b` in serial number arithmetic.
pub fn is_before(a: u32, b: u32) -> bool {
    distance(a, b) > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_crosses_wrap() {
        assert_eq!(distance(0xFFFF_FFF0, 0x10), 0x20);
        assert_eq!(distance(0x10, 0xFFFF_FFF0), -0x20);
        assert!(is_before(0xFFFF_FFFF, 0));
        assert!(!is_before(5, 5));
    }
}
