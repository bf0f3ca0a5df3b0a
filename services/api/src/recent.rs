//! Hashes of recently accepted events, so a retried request is answered
//! `duplicate` without a Postgres round trip.
//!
//! Why not ask Postgres: a unique-index probe per event on a table of
//! millions of random 64-character keys is a page miss per event, and under
//! `make bench` that lookup was the largest single cost in Postgres (26 ms
//! per batch of 100 at 20,000 events/s, 44% of the database's statement
//! time), paid on the request path. The answer was only ever best-effort
//! (an event still in Kafka is not stored yet) and downstream dedups on the
//! hash anyway, so a bounded memory of what this process accepted gives the
//! same guarantee for the case that matters — a client retrying a batch
//! after a timeout or a 503 — at a hash-set probe per event.
//!
//! Two generations bound memory without per-entry bookkeeping: inserts go
//! to `current`; when it is full it becomes `previous` and the old
//! `previous` is dropped. Any hash inserted within the last `capacity`
//! insertions is remembered.

use std::collections::HashSet;
use std::sync::Mutex;

use achilles_core::hash::EventHash;

pub struct RecentHashes {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: HashSet<[u8; 32]>,
    previous: HashSet<[u8; 32]>,
}

impl RecentHashes {
    /// Remembers at least the last `capacity` hashes (0 disables it).
    /// Memory is about 2 × 40 bytes × `capacity` at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            generations: Mutex::default(),
        }
    }

    /// Which of `hashes` were accepted recently, by index.
    pub fn seen(&self, hashes: &[&EventHash]) -> Vec<bool> {
        let g = self.lock();
        hashes
            .iter()
            .map(|h| g.current.contains(h.as_bytes()) || g.previous.contains(h.as_bytes()))
            .collect()
    }

    /// Records hashes the broker has acknowledged.
    pub fn remember<'a>(&self, hashes: impl IntoIterator<Item = &'a EventHash>) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.lock();
        for h in hashes {
            if g.current.len() >= self.capacity {
                let full = std::mem::take(&mut g.current);
                g.previous = full;
            }
            g.current.insert(*h.as_bytes());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock cannot leave the sets inconsistent
        // (each operation is a single insert or lookup), so a poisoned lock
        // is still safe to use.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u32) -> EventHash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        EventHash::from_bytes(b)
    }

    #[test]
    fn remembers_what_was_accepted() {
        let r = RecentHashes::new(10);
        r.remember([&h(1), &h(2)]);
        assert_eq!(r.seen(&[&h(1), &h(3), &h(2)]), vec![true, false, true]);
    }

    #[test]
    fn keeps_at_least_capacity_and_forgets_the_oldest() {
        let r = RecentHashes::new(4);
        let hs: Vec<_> = (0..12).map(h).collect();
        r.remember(&hs);
        // The last 4 (at least) are remembered.
        let last: Vec<_> = hs[8..].iter().collect();
        assert!(r.seen(&last).iter().all(|s| *s));
        // The first ones are gone: memory stays bounded.
        assert_eq!(r.seen(&[&hs[0], &hs[1]]), vec![false, false]);
    }

    #[test]
    fn zero_capacity_remembers_nothing() {
        let r = RecentHashes::new(0);
        r.remember([&h(1)]);
        assert_eq!(r.seen(&[&h(1)]), vec![false]);
    }
}
