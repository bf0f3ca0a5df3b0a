//! Texts that end up in a Postgres B-tree index must fit one index row.
//!
//! A B-tree entry is limited to about a third of a page (2,704 bytes with
//! 8 KiB pages); a longer value makes the `INSERT` fail, and since such a
//! failure looks like any other database error, a consumer would retry the
//! same batch forever and wedge its partition. Every index over text that
//! comes from producers is therefore either bounded by validation (names,
//! see [`crate::model::Limits::check`]) or built with [`index_key`], which
//! keeps short texts as they are and replaces long ones by a readable
//! prefix plus a hash of the whole text: still unique per text, never
//! larger than [`MAX_INDEX_KEY_BYTES`].

use std::borrow::Cow;

use sha2::{Digest, Sha256};

/// The longest key [`index_key`] returns: far below the B-tree row limit,
/// with room for the other columns of a composite index.
pub const MAX_INDEX_KEY_BYTES: usize = 512;

/// Longest producer-supplied name (agent name, model, tool) validation may
/// admit: `agent_performance` has it in its primary key.
pub const MAX_INDEXED_NAME_BYTES: usize = 1024;

/// `text` itself when it fits [`MAX_INDEX_KEY_BYTES`], else its longest
/// prefix that leaves room for `…#` and the SHA-256 of the whole text in
/// hex. Deterministic, so the same long path always maps to the same key.
pub fn index_key(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_INDEX_KEY_BYTES {
        return Cow::Borrowed(text);
    }
    let digest = hex::encode(Sha256::digest(text.as_bytes()));
    let suffix = format!("…#{digest}");
    let mut end = MAX_INDEX_KEY_BYTES - suffix.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{suffix}", &text[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_kept_long_ones_are_bounded_and_distinct() {
        assert_eq!(index_key("src/a.rs"), "src/a.rs");
        let exact = "a".repeat(MAX_INDEX_KEY_BYTES);
        assert_eq!(index_key(&exact), exact.as_str());
        // Multi-byte characters around the cut: the result stays valid
        // UTF-8 and within the limit.
        for unit in ["é", "€", "𝄞", "x"] {
            let long = format!("src/{}", unit.repeat(4096));
            let key = index_key(&long);
            assert!(key.len() <= MAX_INDEX_KEY_BYTES, "{}", key.len());
            assert!(key.starts_with("src/"));
            assert_eq!(key, index_key(&long), "deterministic");
            let other = format!("{long}2");
            assert_ne!(key, index_key(&other), "same prefix, different text");
        }
    }
}
