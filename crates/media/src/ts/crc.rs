//! CRC-32/MPEG-2 of PSI sections (polynomial 0x04C11DB7, no reflection, initial 0xFFFFFFFF).

/// The CRC-32 a PSI section ends with.
pub(super) fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_value() {
        // The CRC-32/MPEG-2 check value of "123456789".
        assert_eq!(super::crc32(b"123456789"), 0x0376_e6e7);
    }
}
