//! Per-session state held in memory for the partitions this instance owns.
//!
//! An exactly-once consumer used to read every touched session's state
//! from Postgres at the start of each batch and write it back at the end.
//! Now the state lives here between batches and is only *written* with
//! each batch (the checkpoint, in the batch's transaction); it is read from
//! Postgres only when a session is first seen by this instance, after its
//! partition was (re)assigned, after it was evicted, or after a failed
//! transaction (whose in-memory changes are thrown away with it).
//!
//! Memory is bounded: at most `consumer.state_cache_sessions` sessions are
//! kept, least recently used first out, and a finished session (ended) is
//! dropped as soon as its end is committed. Dropping is free because
//! everything in here is already checkpointed.
//!
//! Each session also remembers the hashes of its recent events
//! ([`Recent`]), which is how a record published twice (a retried request
//! that reached another API replica, say) is applied once, without a row
//! per event in a "seen" table.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use achilles_core::hash::EventHash;
use achilles_core::model::TenantId;

/// One session as a stage sees it.
pub struct Session<S> {
    /// The session.
    pub id: Uuid,
    /// Its tenant (never changes).
    pub tenant: TenantId,
    /// The stage's state of it.
    pub state: S,
    /// Distinct events this consumer applied to the session.
    pub applied: i64,
    pub(crate) recent: Recent,
    pub(crate) partition: i32,
    last_used: u64,
}

impl<S> Session<S> {
    /// This session with another state (a snapshot of its own).
    pub(crate) fn copy_with(&self, state: S) -> Self {
        Self {
            id: self.id,
            tenant: self.tenant.clone(),
            state,
            applied: self.applied,
            recent: self.recent.clone(),
            partition: self.partition,
            last_used: self.last_used,
        }
    }

    pub(crate) fn new(
        id: Uuid,
        tenant: TenantId,
        state: S,
        applied: i64,
        recent: Recent,
        partition: i32,
    ) -> Self {
        Self {
            id,
            tenant,
            state,
            applied,
            recent,
            partition,
            last_used: 0,
        }
    }
}

/// The hashes (first 8 bytes) and event times of a session's recent
/// events. Entries older than `window` (event time) behind the newest event
/// are forgotten, and at most `max` are kept: a duplicate is recognised if
/// it arrives while its original is still remembered. Replays of the topic
/// need none of this (the stored positions skip them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    entries: Vec<(u64, i64)>,
    newest: i64,
}

fn prefix(h: &EventHash) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_be_bytes(b)
}

impl Recent {
    /// Whether the hash was seen.
    pub fn contains(&self, h: &EventHash) -> bool {
        let p = prefix(h);
        self.entries.iter().any(|(x, _)| *x == p)
    }

    /// Remembers a hash at event time `t` (µs), keeping `window_us` of event time and at most `max` hashes.
    pub fn add(&mut self, h: &EventHash, t: i64, window_us: i64, max: usize) {
        self.entries.push((prefix(h), t));
        if t > self.newest {
            self.newest = t;
            let horizon = self.newest.saturating_sub(window_us);
            self.entries.retain(|(_, at)| *at >= horizon);
        }
        if self.entries.len() > max {
            let over = self.entries.len() - max;
            self.entries.drain(..over);
        }
    }

    /// Hashes remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No hash remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// 16 bytes per entry: hash prefix, then event time (both big-endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * 16);
        for (h, t) in &self.entries {
            out.extend_from_slice(&h.to_be_bytes());
            out.extend_from_slice(&t.to_be_bytes());
        }
        out
    }

    /// Decodes the stored form; `None` if it is not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if !bytes.len().is_multiple_of(16) {
            return None;
        }
        let mut r = Recent::default();
        for c in bytes.chunks_exact(16) {
            let mut h = [0u8; 8];
            let mut t = [0u8; 8];
            h.copy_from_slice(&c[..8]);
            t.copy_from_slice(&c[8..]);
            let t = i64::from_be_bytes(t);
            r.entries.push((u64::from_be_bytes(h), t));
            r.newest = r.newest.max(t);
        }
        Some(r)
    }
}

/// The sessions one consumer holds.
pub(crate) struct Cache<S> {
    map: HashMap<Uuid, Session<S>>,
    /// Changed since their state was last written: they stay in memory
    /// until the next checkpoint writes them.
    dirty: HashSet<Uuid>,
    cap: usize,
    clock: u64,
}

impl<S> Cache<S> {
    pub fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            dirty: HashSet::new(),
            cap: cap.max(1),
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.map.contains_key(id)
    }

    pub fn get(&self, id: &Uuid) -> Option<&Session<S>> {
        self.map.get(id)
    }

    /// The session, marked as used now.
    pub fn get_mut(&mut self, id: &Uuid) -> Option<&mut Session<S>> {
        self.clock += 1;
        let now = self.clock;
        let s = self.map.get_mut(id)?;
        s.last_used = now;
        Some(s)
    }

    /// Puts a session back as it was (undoing a failed transaction).
    pub fn restore(&mut self, s: Session<S>) {
        self.map.insert(s.id, s);
    }

    pub fn insert(&mut self, mut s: Session<S>) {
        self.clock += 1;
        s.last_used = self.clock;
        self.map.insert(s.id, s);
    }

    pub fn remove(&mut self, id: &Uuid) {
        self.map.remove(id);
        self.dirty.remove(id);
    }

    pub fn mark_dirty(&mut self, id: Uuid) {
        self.dirty.insert(id);
    }

    pub fn is_dirty(&self, id: &Uuid) -> bool {
        self.dirty.contains(id)
    }

    /// Forgets every session of a partition (revoked, or written by
    /// another instance meanwhile).
    pub fn forget_partition(&mut self, partition: i32) {
        self.map.retain(|_, s| s.partition != partition);
        let map = &self.map;
        self.dirty.retain(|id| map.contains_key(id));
    }

    /// Drops the least recently used *clean* sessions once over the cap,
    /// down to 90% of it, so eviction runs once per many inserts. Dirty
    /// ones wait for the next checkpoint (which runs early when too many
    /// are dirty).
    pub fn evict(&mut self) {
        if self.map.len() <= self.cap {
            return;
        }
        let keep = self.cap - self.cap / 10;
        let mut ages: Vec<u64> = self
            .map
            .values()
            .filter(|s| !self.dirty.contains(&s.id))
            .map(|s| s.last_used)
            .collect();
        let cut = self.map.len().saturating_sub(keep).min(ages.len());
        if cut == 0 {
            return;
        }
        let (_, nth, _) = ages.select_nth_unstable(cut - 1);
        let threshold = *nth;
        let dirty = &self.dirty;
        self.map
            .retain(|id, s| dirty.contains(id) || s.last_used > threshold);
    }

    pub fn all(&self) -> impl Iterator<Item = &Session<S>> {
        self.map.values()
    }

    /// The sessions with unwritten changes.
    pub fn dirty(&self) -> impl Iterator<Item = &Session<S>> {
        self.dirty.iter().filter_map(|id| self.map.get(id))
    }

    pub fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// After a checkpoint wrote them.
    pub fn mark_clean(&mut self) {
        self.dirty.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u64) -> EventHash {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        EventHash::from_bytes(b)
    }

    #[test]
    fn recent_forgets_by_event_time_and_count_and_round_trips() {
        let mut r = Recent::default();
        for i in 0..10u64 {
            r.add(&hash(i), i as i64 * 1_000_000, 5_000_000, 100);
        }
        // Window of 5 s behind the newest (9 s): 4..=9 are kept.
        assert!(!r.contains(&hash(3)));
        assert!(r.contains(&hash(4)) && r.contains(&hash(9)));
        assert_eq!(Recent::decode(&r.encode()), Some(r.clone()));
        for i in 10..20u64 {
            r.add(&hash(i), 9_000_000, 5_000_000, 8);
        }
        assert_eq!(r.len(), 8, "at most max entries");
        assert!(r.contains(&hash(19)) && !r.contains(&hash(11)));
        assert_eq!(Recent::decode(&[1, 2, 3]), None);
    }

    /// A million sessions seen, a bounded number held.
    #[test]
    fn memory_stays_bounded_with_a_million_sessions() {
        let mut c: Cache<()> = Cache::new(10_000);
        let tenant = TenantId::parse("acme").unwrap();
        let hot = Uuid::from_u128(u128::MAX);
        c.insert(Session::new(
            hot,
            tenant.clone(),
            (),
            0,
            Recent::default(),
            0,
        ));
        for i in 0..1_000_000u128 {
            c.insert(Session::new(
                Uuid::from_u128(i),
                tenant.clone(),
                (),
                0,
                Recent::default(),
                (i % 8) as i32,
            ));
            if i % 1000 == 0 {
                // The hot session keeps being used.
                assert!(c.get_mut(&hot).is_some(), "hot session evicted at {i}");
            }
            c.evict();
            assert!(c.len() <= 10_000);
        }
        c.forget_partition(3);
        assert!(c.map.values().all(|s| s.partition != 3));
    }
}
