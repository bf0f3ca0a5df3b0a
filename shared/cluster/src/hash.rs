//! Hand-written hashing: a stable 64-bit FNV-1a for cluster identities, and a
//! fast non-cryptographic hasher for the in-memory template tables.
//!
//! Why two hashes: cluster ids are persisted and compared across processes and
//! releases, so they must come from a fully specified, version-independent
//! function (FNV-1a 64, <http://www.isthe.com/chongo/tech/comp/fnv/>). The hash
//! maps, on the other hand, only live inside one process and sit on the hot
//! path (one lookup per message), so they use a cheaper word-at-a-time mixer;
//! `std`'s default SipHash would cost a large share of the per-message budget.

use std::hash::{BuildHasherDefault, Hasher};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64-bit, over the UTF-8 bytes of `s`. Part of the persisted format:
/// changing it changes every cluster id.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in s.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Word-at-a-time multiplicative hasher (FxHash-like, with a final avalanche
/// so that hashbrown's use of the top bits stays well distributed).
/// Not stable across versions and not DoS-resistant; only used for
/// process-local maps keyed by templates we produced ourselves.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    h: u64,
}

const K: u64 = 0x517c_c1b7_2722_0a95;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.add(u64::from_le_bytes(a));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut a = [0u8; 8];
            a[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(a) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3 fmix64: spreads entropy into the high bits.
        let mut x = self.h;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// `BuildHasher` for `HashMap`s keyed by templates.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// A `HashMap` using [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, FastBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn fnv_matches_reference_vectors() {
        // Reference values from the FNV specification test suite.
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fast_hasher_distinguishes_lengths_and_content() {
        let b = FastBuild::default();
        let h = |s: &str| b.hash_one(s);
        assert_ne!(h("abc"), h("abd"));
        assert_ne!(h("abc"), h("abc\0"));
        assert_ne!(h("12345678"), h("123456789"));
        assert_eq!(h("same text"), h("same text"));
    }
}
