//! The Internet checksum (RFC 1071), one's complement sum of 16-bit words.

/// Adds `data` to a running 32-bit one's complement accumulator.
///
/// Sums 32-bit little-endian words into 64 bits, folds to 16 bits and
/// swaps the two bytes at the end. The one's complement sum does not
/// depend on byte order (RFC 1071, 2(B)): summing swapped words gives the
/// swapped sum, so the words are loaded as they lie in memory, without a
/// byte swap each, and the compiler vectorises the loop with the
/// baseline x86-64 instructions (a big-endian load per word needs a
/// shuffle they do not have). 2^16 = 1 modulo 0xffff, so a 32-bit word
/// adds the same as its two 16-bit halves, and 2^32 more words than any
/// datagram holds fit before the accumulator could overflow. An odd
/// length pads with zero, as RFC 1071 does.
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    let mut acc = 0u64;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
    }
    match *words.remainder() {
        [a, b, c] => acc += u64::from(u32::from_le_bytes([a, b, c, 0])),
        [a, b] => acc += u64::from(u32::from_le_bytes([a, b, 0, 0])),
        [a] => acc += u64::from(a),
        _ => {}
    }
    // Fold 64 -> 32 -> 16 bits; end-around carries keep the sum modulo 0xffff.
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    let swapped = u32::from((acc as u16).swap_bytes());
    // Both below 2^17: the caller's sum, then at most 0xffff more.
    let total = (sum & 0xffff) + (sum >> 16) + swapped;
    (total & 0xffff) + (total >> 16)
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

    /// RFC 1071's definition, one 16-bit word at a time: the model the
    /// word-wide sum must agree with.
    fn model(mut sum: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
            sum = (sum & 0xffff) + (sum >> 16);
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
        sum
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_word_by_word_model(
            start in 0u32..0x2_0000,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..1600),
        ) {
            proptest::prop_assert_eq!(finish(accumulate(start, &data)), finish(model(start, &data)));
        }
    }

    #[test]
    fn extreme_inputs_agree_with_the_model() {
        for len in [0, 1, 2, 3, 4, 5, 7, 8, 1499, 1500, 65535] {
            for byte in [0x00, 0x01, 0x80, 0xff] {
                let data = alloc::vec![byte; len];
                for start in [0, 1, 0xffff, 0x1_fffe] {
                    assert_eq!(finish(accumulate(start, &data)), finish(model(start, &data)), "{len} x {byte:#x}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn pseudo_header_agrees_with_the_model(
            src in proptest::array::uniform4(proptest::num::u8::ANY),
            dst in proptest::array::uniform4(proptest::num::u8::ANY),
            proto in proptest::num::u8::ANY,
            len in proptest::num::u16::ANY,
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut header = alloc::vec::Vec::from(src);
            header.extend_from_slice(&dst);
            header.extend_from_slice(&[0, proto]);
            header.extend_from_slice(&len.to_be_bytes());
            let model_sum = model(model(0, &header), &data);
            let sum = accumulate(pseudo_header(src, dst, proto, len), &data);
            proptest::prop_assert_eq!(finish(sum), finish(model_sum));
        }
    }

    #[test]
    fn long_input_does_not_overflow() {
        let data = [0xffu8; 65535];
        let _ = checksum(&data);
    }
}
