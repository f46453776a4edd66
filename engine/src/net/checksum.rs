//! The Internet checksum (RFC 1071), its pseudo-headers, and incremental update (RFC 1624).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded),
/// not yet folded: add several with [`combine`], then [`finish`].
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // The common case, an IPv4 header without options: five words, no loop.
    if let Ok(h) = <&[u8; 20]>::try_from(data) {
        let word = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
        return fold64(word(0) + word(4) + word(8) + word(12) + word(16));
    }
    // Eight bytes at a time, read little-endian: the ones'-complement sum of
    // byte-swapped words is the byte-swapped sum (RFC 1071 §2(B)), swapped back at the end.
    // The carries out of 64 bits are worth 2^64 ≡ 1 (modulo 0xffff) each: added back in.
    let mut acc: u64 = 0;
    let mut carries: u64 = 0;
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let (next, carry) = acc.overflowing_add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        acc = next;
        carries += u64::from(carry);
    }
    let (next, carry) = acc.overflowing_add(tail_word(words.remainder()));
    let acc = fold64(next) as u64 + carries + u64::from(carry);
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    u32::from((acc as u16).swap_bytes())
}

/// The last 0 to 7 bytes of data as a word read little-endian, zero-padded at the end: each
/// byte keeps its place in a 16-bit word.
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    let (mut word, mut shift, mut rest) = (0u64, 0, rest);
    if let Some((four, more)) = rest.split_first_chunk::<4>() {
        (word, shift, rest) = (u64::from(u32::from_le_bytes(*four)), 32, more);
    }
    if let Some((two, more)) = rest.split_first_chunk::<2>() {
        word |= u64::from(u16::from_le_bytes(*two)) << shift;
        (shift, rest) = (shift + 16, more);
    }
    if let Some(&byte) = rest.first() {
        word |= u64::from(byte) << shift;
    }
    word
}

/// Folds a 64-bit ones'-complement accumulator to at most 17 bits, keeping the carries.
#[inline]
fn fold64(acc: u64) -> u32 {
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    let acc = (acc & 0xffff_ffff) + (acc >> 32);
    (acc as u32 & 0xffff) + (acc as u32 >> 16)
}

/// Whether a 20-byte IPv4 header sums to 0xffff (its checksum is right). As 2^16 ≡ 1 modulo
/// 0xffff, so are 2^32 and 2^64, and the ones'-complement sum is 0xffff exactly when the plain
/// sum of the header's words, of any width, is a non-zero multiple of 0xffff, whatever the byte
/// order the words are read in (RFC 1071 §2(B)). Two 8-byte words and a 4-byte one: three
/// loads, two adds with carry.
#[inline(always)]
pub fn verify_plain_header(h: &[u8; 20]) -> bool {
    // x is a multiple of the odd 0xffff exactly when x times its inverse modulo 2^64 is at most
    // u64::MAX / 0xffff (the quotient, if it divides); minus one, that also rejects x = 0.
    // One multiply, where `%` compiles to a wide multiply, a shift and a subtract.
    const INVERSE: u64 = inverse_mod_2_64(0xffff);
    let word64 = |at: usize| u64::from_ne_bytes(h[at..at + 8].try_into().expect("8 bytes"));
    let last = u64::from(u32::from_ne_bytes(h[16..].try_into().expect("4 bytes")));
    // The carries out of 64 bits are worth 2^64 ≡ 1 each: add them back in.
    let (acc, carry) = word64(0).overflowing_add(word64(8));
    let (acc, carry2) = acc.overflowing_add(last + u64::from(carry));
    let acc = acc + u64::from(carry2); // cannot carry again: acc is small after a carry
    acc.wrapping_mul(INVERSE).wrapping_sub(1) < u64::MAX / 0xffff
}

/// The inverse of odd `d` modulo 2^64, by Newton's iteration (each step doubles the bits).
const fn inverse_mod_2_64(d: u64) -> u64 {
    let mut x = d; // right to 3 bits: d * d ≡ 1 (mod 8) for odd d
    let mut step = 0;
    while step < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(x)));
        step += 1;
    }
    x
}

/// Adds partial sums.
pub fn combine(parts: &[u32]) -> u32 {
    parts.iter().map(|&p| u64::from(p)).sum::<u64>() as u32
}

/// Folds a sum to 16 bits and complements it: the value for the checksum field.
#[inline]
pub fn finish(acc: u32) -> u16 {
    // Two folds take any u32 to 16 bits.
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// The checksum of `data` alone (an IPv4 header, an ICMPv4 message).
#[inline]
pub fn internet(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Sum of the IPv4 pseudo-header for a UDP/TCP checksum: the addresses as 32-bit words (their
/// 16-bit halves sum alike modulo 0xffff), no bytes gathered into buffers.
#[inline]
pub fn pseudo_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    fold64(
        u64::from(src.to_bits())
            + u64::from(dst.to_bits())
            + u64::from(protocol)
            + u64::from(length),
    )
}

/// Sum of the IPv6 pseudo-header for a UDP/TCP/ICMPv6 checksum, the addresses as 32-bit words.
#[inline]
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let words = |a: &Ipv6Addr| {
        let bits = a.to_bits();
        (0..4)
            .map(|i| u64::from((bits >> (32 * i)) as u32))
            .sum::<u64>()
    };
    fold64(words(src) + words(dst) + u64::from(length) + u64::from(next_header))
}

/// The checksum after one 16-bit word of the covered data changes from `old` to `new`
/// (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    finish(u32::from(!checksum) + u32::from(!old) + u32::from(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The IPv4 header of RFC 1071's usual worked example (checksum field zeroed): 0xb861.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn known_header_checksum() {
        assert_eq!(internet(&HEADER), 0xb861);
        let mut with = HEADER;
        with[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(internet(&with), 0, "a correct header sums to zero");
    }

    #[test]
    fn plain_header_check_agrees_with_the_sum() {
        let mut with = HEADER;
        with[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify_plain_header(&with));
        for byte in 0..20 {
            let mut bad = with;
            bad[byte] ^= 0x10;
            assert!(!verify_plain_header(&bad), "byte {byte} changed");
        }
        // Every value of the checksum field: right for exactly one, and for no all-zero header.
        let right = (0..=u16::MAX).filter(|c| {
            with[10..12].copy_from_slice(&c.to_be_bytes());
            verify_plain_header(&with)
        });
        assert_eq!(right.collect::<Vec<_>>(), [0xb861]);
        assert!(!verify_plain_header(&[0; 20]));
    }

    #[test]
    fn plain_header_check_agrees_with_the_sum_on_random_headers() {
        // Headers heavy in 0xff bytes too, so that the 64-bit adds carry.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let mut h = [0u8; 20];
            for b in &mut h {
                let r = next();
                *b = if round % 2 == 0 {
                    r as u8
                } else {
                    (r as u8) | 0xf0
                };
            }
            h[10..12].fill(0);
            let csum = internet(&h);
            h[10..12].copy_from_slice(&csum.to_be_bytes());
            assert!(verify_plain_header(&h), "{h:02x?}");
            let at = (next() % 20) as usize;
            h[at] = h[at].wrapping_add(1 + (next() % 255) as u8);
            assert_eq!(verify_plain_header(&h), internet(&h) == 0, "{h:02x?}");
        }
    }

    #[test]
    fn inverse_modulo_2_64() {
        assert_eq!(0xffffu64.wrapping_mul(inverse_mod_2_64(0xffff)), 1);
    }

    #[test]
    fn the_wide_sum_agrees_with_a_sum_of_16_bit_words() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..200 {
            for fill in [0x00, 0xff, 0x5a] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                        if fill == 0x5a {
                            (state >> 56) as u8
                        } else {
                            fill
                        }
                    })
                    .collect();
                let mut plain: u64 = data
                    .chunks(2)
                    .map(|w| u64::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
                    .sum();
                while plain > 0xffff {
                    plain = (plain & 0xffff) + (plain >> 16);
                }
                assert_eq!(
                    u64::from(finish(sum(&data))),
                    u64::from(!(plain as u16)),
                    "{data:02x?}"
                );
            }
        }
    }

    #[test]
    fn pseudo_headers_sum_as_their_bytes_do() {
        let (a, b) = (
            Ipv4Addr::new(192, 168, 255, 1),
            Ipv4Addr::new(10, 255, 0, 7),
        );
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&a.octets());
        bytes[4..8].copy_from_slice(&b.octets());
        bytes[9] = 17;
        bytes[10..].copy_from_slice(&0xfff3u16.to_be_bytes());
        assert_eq!(finish(pseudo_v4(a, b, 17, 0xfff3)), internet(&bytes));
        let (a, b): (Ipv6Addr, Ipv6Addr) = (
            "fe80::ffff:1".parse().unwrap(),
            "2001:db8::ffff".parse().unwrap(),
        );
        let mut bytes = [0u8; 40];
        bytes[..16].copy_from_slice(&a.octets());
        bytes[16..32].copy_from_slice(&b.octets());
        bytes[32..36].copy_from_slice(&0x0001_fff3u32.to_be_bytes());
        bytes[39] = 58;
        assert_eq!(finish(pseudo_v6(&a, &b, 58, 0x0001_fff3)), internet(&bytes));
    }

    #[test]
    fn odd_lengths_pad_with_zero() {
        assert_eq!(internet(&[0x01]), !0x0100);
        assert_eq!(internet(&[0x01, 0x02, 0x03]), !(0x0102 + 0x0300));
        assert_eq!(internet(&[]), 0xffff);
    }

    #[test]
    fn incremental_update_matches_recomputing() {
        let mut header = HEADER;
        header[10..12].copy_from_slice(&internet(&HEADER).to_be_bytes());
        for ttl in [0x40u8, 0x01, 0xff, 0x00] {
            let old = u16::from_be_bytes([header[8], header[9]]);
            let mut next = header;
            next[8] = ttl;
            let new = u16::from_be_bytes([next[8], next[9]]);
            let csum = update(u16::from_be_bytes([header[10], header[11]]), old, new);
            next[10..12].copy_from_slice(&[0, 0]);
            assert_eq!(csum, internet(&next), "ttl {ttl}");
        }
    }
}
