//! Our Toeplitz hash against DPDK's own software one (`rte_softrss`) on random inputs.

use sluice::rss::{Toeplitz, DEFAULT_KEY, MAX_INPUT};

/// xorshift64*: reproducible inputs without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn matches_rte_softrss_on_random_inputs_and_keys() {
    let mut state = 0x5eed_1234_abcd_9876u64;
    for round in 0..20_000 {
        let mut key = DEFAULT_KEY;
        if round % 2 == 1 {
            for b in &mut key {
                *b = next(&mut state) as u8;
            }
        }
        // rte_softrss takes 32-bit words: inputs of 4 to 36 bytes, in whole words.
        let words = 1 + (next(&mut state) as usize % (MAX_INPUT / 4));
        let input: Vec<u8> = (0..words * 4).map(|_| next(&mut state) as u8).collect();
        let mut tuple: Vec<u32> = input
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // SAFETY: tuple holds `words` u32s and key 40 bytes, at least words * 4 + 4.
        let theirs =
            unsafe { dpdk_sys::sluice_softrss(tuple.as_mut_ptr(), words as u32, key.as_ptr()) };
        let ours = Toeplitz::new(&key).unwrap().hash(&input);
        assert_eq!(ours, theirs, "round {round}, input {input:02x?}");
    }
}
