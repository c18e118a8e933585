//! Deterministic record keys: the same outbox idempotency key always yields the same
//! record key, so a retried `putRecord` overwrites (in fact no-ops on) the record the
//! first attempt wrote instead of adding a second post.
//!
//! The key is TID-shaped (atproto.com/specs/tid) because `app.bsky.feed.post` declares
//! `"key": "tid"`: 13 characters of base32-sortable, a zero top bit, 53 bits of
//! microseconds and a 10-bit clock id. The microseconds are the slot's second plus a hash
//! of the idempotency key, so keys sort by slot and two posts of one slot differ.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// The record key for the post with this idempotency key, scheduled at `at`.
pub fn derive(idempotency_key: &str, at: DateTime<Utc>) -> String {
    let h = Sha256::digest(idempotency_key.as_bytes());
    let h1 = u64::from_be_bytes(h[0..8].try_into().expect("8 bytes"));
    let h2 = u64::from_be_bytes(h[8..16].try_into().expect("8 bytes"));
    let secs = at.timestamp().max(0) as u64;
    let micros = (secs * 1_000_000 + h1 % 1_000_000) & ((1 << 53) - 1);
    let clock_id = h2 & 0x3FF;
    let key = encode((micros << 10) | clock_id);
    debug_assert!(is_tid(&key));
    key
}

fn encode(mut v: u64) -> String {
    let mut out = [0u8; 13];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(out.to_vec()).expect("ASCII")
}

/// TID syntax: 13 base32-sortable characters, the first of which keeps the top bit zero.
pub fn is_tid(s: &str) -> bool {
    s.len() == 13
        && s.bytes().all(|b| ALPHABET.contains(&b))
        && b"234567abcdefghij".contains(&s.as_bytes()[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn the_same_key_and_slot_give_the_same_record_key() {
        let a = derive("3f2a-slot-notice", at(1_800_000_000));
        let b = derive("3f2a-slot-notice", at(1_800_000_000));
        assert_eq!(a, b);
    }

    #[test]
    fn different_posts_of_one_slot_get_different_record_keys() {
        let a = derive("key-notice", at(1_800_000_000));
        let b = derive("key-second", at(1_800_000_000));
        assert_ne!(a, b);
    }

    #[test]
    fn record_keys_are_valid_tids_for_any_instant() {
        for (i, s) in [0, 1, 1_800_000_000, 4_102_444_800, -5]
            .into_iter()
            .enumerate()
        {
            let k = derive(&format!("key-{i}-ü-😀"), at(s));
            assert!(is_tid(&k), "{k} is not a TID");
        }
    }

    #[test]
    fn later_slots_sort_after_earlier_ones() {
        let early = derive("x", at(1_800_000_000));
        let late = derive("y", at(1_800_000_001));
        assert!(early < late);
    }
}
