//! The Internet checksum (RFC 1071), one's complement sum of 16-bit words.

/// Adds `data` to a running 32-bit one's complement accumulator.
pub fn accumulate(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Fold early so the accumulator never overflows, whatever the length.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

/// Folds the accumulator and returns the complemented 16-bit checksum.
pub fn finish(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of `data` alone. Over data that embeds a correct checksum the
/// result is zero.
pub fn checksum(data: &[u8]) -> u16 {
    finish(accumulate(0, data))
}

/// Sum of the IPv4 pseudo-header used by UDP and TCP checksums.
pub fn pseudo_header(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let mut sum = accumulate(0, &src);
    sum = accumulate(sum, &dst);
    sum += u32::from(proto);
    sum + u32::from(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(accumulate(0, &data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12, 0x34, 0x56]), checksum(&[0x12, 0x34, 0x56, 0x00]));
    }

    #[test]
    fn embedded_checksum_verifies_to_zero() {
        let mut data = [0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0, 0];
        let c = checksum(&data);
        data[6..8].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
    }

    #[test]
    fn long_input_does_not_overflow() {
        let data = [0xffu8; 65535];
        let _ = checksum(&data);
    }
}
