//! The stateful engine: assigns stable cluster ids online, re-merges on
//! demand, and persists its state so a restarted process answers the same.
//!
//! # Model
//!
//! The state is a set of clusters, each a *pattern* (a template possibly
//! generalised with `<*>`) plus the templates assigned to it. A cluster's id
//! is the FNV-1a hash of its pattern, so ids do not depend on insertion order
//! or process. Clusters are either **frozen** (produced by the last
//! [`Clusterer::rebuild`] or restored from a snapshot) or **provisional**
//! (templates first seen since then).
//!
//! [`Clusterer::observe`] masks the message and then:
//! 1. a known template answers with its cluster;
//! 2. otherwise the most specific *frozen* pattern covering the template
//!    (same rule as the merge stage's subsumption) adopts it;
//! 3. otherwise the template becomes a provisional cluster of its own, whose
//!    id is the hash of the template itself.
//!
//! Provisional clusters never adopt other templates, so between two rebuilds
//! `observe` is a pure function of (frozen state, message): arrival order
//! does not matter, and any two processes holding the same frozen state
//! return the same ids. [`Clusterer::rebuild`] re-runs the batch merge over
//! all templates seen; its result depends only on that *set*, so two
//! processes that saw the same templates in any order converge to identical
//! states. Rebuilding can rename clusters (a pattern generalises, two
//! clusters merge); it returns the renames so callers can record aliases.
//!
//! The trade-off: ids are stable by construction, at the price that merges
//! only happen at rebuild points chosen by the caller (e.g. every checkpoint
//! or every N new templates), not continuously as in Drain-like online
//! miners whose results depend on arrival order.

use std::fmt;

use crate::hash::{fnv1a64, FastMap};
use crate::mask::Masker;
use crate::merge::merge;
use crate::pattern::{pattern_covers, specificity, CoverIndex};
use crate::rules::can_subsume;
use crate::{ClusterId, Config};

struct Cluster {
    pattern: Box<str>,
    id: ClusterId,
    frozen: bool,
}

/// Online clusterer with stable ids; see the module docs for semantics.
pub struct Clusterer {
    cfg: Config,
    masker: Masker,
    buf: String,
    /// Distinct templates, by index, and their lookup table.
    templates: Vec<Box<str>>,
    template_index: FastMap<Box<str>, u32>,
    /// Cluster of each template.
    template_cluster: Vec<u32>,
    clusters: Vec<Cluster>,
    cluster_index: FastMap<ClusterId, u32>,
    /// Frozen clusters that may adopt templates (see `rules::can_subsume`).
    adopters: CoverIndex,
    pending: usize,
}

/// A snapshot could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError(pub String);

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid clusterer state: {}", self.0)
    }
}

impl std::error::Error for StateError {}

const STATE_HEADER: &str = "achilles-cluster-state v1";

impl Clusterer {
    /// An empty clusterer.
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            masker: Masker::new(),
            buf: String::new(),
            templates: Vec::new(),
            template_index: FastMap::default(),
            template_cluster: Vec::new(),
            clusters: Vec::new(),
            cluster_index: FastMap::default(),
            adopters: CoverIndex::default(),
            pending: 0,
        }
    }

    /// The same clusterer, masking with operator-defined `rules` after the
    /// built-in ones. Every process sharing a state must use the same rules.
    pub fn with_rules(mut self, rules: crate::MaskRules) -> Self {
        self.masker = Masker::with_rules(rules);
        self
    }

    /// Cluster id for `msg` (online; see the module docs).
    pub fn observe(&mut self, msg: &str) -> ClusterId {
        let t = self.intern(msg);
        self.clusters[self.template_cluster[t as usize] as usize].id
    }

    /// Pattern of cluster `id`, if this clusterer knows it.
    pub fn template(&self, id: ClusterId) -> Option<&str> {
        self.cluster_index
            .get(&id)
            .map(|&c| &*self.clusters[c as usize].pattern)
    }

    /// Number of clusters (frozen and provisional).
    pub fn num_clusters(&self) -> usize {
        self.clusters.len()
    }

    /// Number of distinct templates seen.
    pub fn num_templates(&self) -> usize {
        self.templates.len()
    }

    /// Provisional clusters: templates first seen since the last rebuild that
    /// no frozen pattern adopted. A caller can rebuild when this grows.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Masks `msg` and returns its template index, assigning new templates a
    /// cluster. Does not allocate for known templates.
    pub(crate) fn intern(&mut self, msg: &str) -> u32 {
        self.masker.mask_into(msg, &mut self.buf);
        if let Some(&t) = self.template_index.get(self.buf.as_str()) {
            return t;
        }
        let tpl: Box<str> = self.buf.as_str().into();
        let cluster = match self.find_frozen_cover(&tpl) {
            Some(c) => c,
            None => self.provisional_cluster(&tpl),
        };
        let t = self.templates.len() as u32;
        self.templates.push(tpl.clone());
        self.template_index.insert(tpl, t);
        self.template_cluster.push(cluster);
        t
    }

    /// Id of the cluster that template `t` belongs to.
    pub(crate) fn cluster_of(&self, t: u32) -> ClusterId {
        self.clusters[self.template_cluster[t as usize] as usize].id
    }

    fn provisional_cluster(&mut self, tpl: &str) -> u32 {
        let id = ClusterId(fnv1a64(tpl));
        if let Some(&c) = self.cluster_index.get(&id) {
            // A cluster whose pattern is exactly this template (one that may
            // not adopt others, e.g. all wildcards): same text, same cluster.
            return c;
        }
        let c = self.clusters.len() as u32;
        self.clusters.push(Cluster {
            pattern: tpl.into(),
            id,
            frozen: false,
        });
        self.cluster_index.insert(id, c);
        self.pending += 1;
        c
    }

    /// The most specific frozen pattern covering `tpl` (ties: smallest pattern).
    fn find_frozen_cover(&self, tpl: &str) -> Option<u32> {
        let toks: Vec<&str> = tpl.split(' ').collect();
        let mut best: Option<(usize, &str, u32)> = None;
        for c in self.adopters.candidates(&toks) {
            let pat = &*self.clusters[c as usize].pattern;
            let ptoks: Vec<&str> = pat.split(' ').collect();
            if !pattern_covers(&ptoks, &toks) {
                continue;
            }
            let spec = specificity(&ptoks);
            if best.is_none_or(|(s, p, _)| spec > s || (spec == s && pat < p)) {
                best = Some((spec, pat, c));
            }
        }
        best.map(|b| b.2)
    }

    /// Re-merge all templates seen (deterministic for the set of templates)
    /// and freeze the result. Returns the sorted, deduplicated `(old id, new
    /// id)` pairs of every template whose cluster changed; an old id can map
    /// to several new ids if its templates were split up.
    pub fn rebuild(&mut self) -> Vec<(ClusterId, ClusterId)> {
        let texts: Vec<&str> = self.templates.iter().map(|t| &**t).collect();
        let merged = merge(&texts, &self.cfg);
        let old: Vec<ClusterId> = (0..self.templates.len() as u32)
            .map(|t| self.cluster_of(t))
            .collect();
        self.clusters = merged
            .patterns
            .into_iter()
            .map(|p| Cluster {
                id: ClusterId(fnv1a64(&p)),
                pattern: p.into(),
                frozen: true,
            })
            .collect();
        self.template_cluster = merged.assign;
        self.reindex();
        let mut renames: Vec<(ClusterId, ClusterId)> = old
            .iter()
            .enumerate()
            .map(|(t, &o)| (o, self.cluster_of(t as u32)))
            .filter(|(o, n)| o != n)
            .collect();
        renames.sort_unstable();
        renames.dedup();
        renames
    }

    /// Rebuild the id and matcher indexes from `clusters`.
    fn reindex(&mut self) {
        self.cluster_index.clear();
        self.adopters.clear();
        for (i, c) in self.clusters.iter().enumerate() {
            self.cluster_index.insert(c.id, i as u32);
            let toks: Vec<&str> = c.pattern.split(' ').collect();
            if c.frozen && can_subsume(&toks) {
                self.adopters.insert(i as u32, &toks);
            }
        }
        self.pending = 0;
    }

    /// Serialise the state: a header line, then one line per cluster:
    /// `F` (frozen) or `P` (provisional), the pattern, and its templates,
    /// tab-separated. Templates never contain tabs or newlines (the masker
    /// normalises whitespace), so the format needs no escaping.
    ///
    /// The text is canonical (clusters and templates sorted), so processes
    /// holding the same state produce byte-identical snapshots.
    pub fn snapshot(&self) -> String {
        let mut members: Vec<Vec<&str>> = vec![Vec::new(); self.clusters.len()];
        for (t, &c) in self.template_cluster.iter().enumerate() {
            members[c as usize].push(&self.templates[t]);
        }
        let mut order: Vec<usize> = (0..self.clusters.len()).collect();
        order.sort_unstable_by_key(|&c| &self.clusters[c].pattern);
        let mut out = String::from(STATE_HEADER);
        out.push('\n');
        for c in order {
            let cl = &self.clusters[c];
            out.push_str(if cl.frozen { "F\t" } else { "P\t" });
            out.push_str(&cl.pattern);
            members[c].sort_unstable();
            for t in &members[c] {
                out.push('\t');
                out.push_str(t);
            }
            out.push('\n');
        }
        out
    }

    /// Restore a state written by [`Clusterer::snapshot`]. The restored
    /// clusterer answers every message exactly as the original did.
    pub fn restore(cfg: Config, state: &str) -> Result<Self, StateError> {
        let mut lines = state.lines();
        if lines.next() != Some(STATE_HEADER) {
            return Err(StateError(format!("missing header {STATE_HEADER:?}")));
        }
        let mut me = Self::new(cfg);
        for (n, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
            let mut fields = line.split('\t');
            let frozen = match fields.next() {
                Some("F") => true,
                Some("P") => false,
                _ => return Err(StateError(format!("line {}: expected F or P", n + 2))),
            };
            let pattern = fields
                .next()
                .ok_or_else(|| StateError(format!("line {}: no pattern", n + 2)))?;
            let c = me.clusters.len() as u32;
            let id = ClusterId(fnv1a64(pattern));
            if me.cluster_index.insert(id, c).is_some() {
                return Err(StateError(format!("line {}: duplicate pattern", n + 2)));
            }
            me.clusters.push(Cluster {
                pattern: pattern.into(),
                id,
                frozen,
            });
            for tpl in fields {
                let t = me.templates.len() as u32;
                if me.template_index.insert(tpl.into(), t).is_some() {
                    return Err(StateError(format!("line {}: duplicate template", n + 2)));
                }
                me.templates.push(tpl.into());
                me.template_cluster.push(c);
            }
        }
        let pending = me.clusters.iter().filter(|c| !c.frozen).count();
        me.reindex();
        me.pending = pending;
        Ok(me)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSGS: &[&str] = &[
        "session closed for user news",
        "session closed for user cyrus",
        "session closed for user test",
        "Received block blk_1 of size 67108864 from /10.0.0.1",
        "wpad:80 open through proxy proxy.example.com:5070 HTTPS",
        "10.0.0.9:443 open through proxy proxy.example.com:5070 HTTPS",
        "VM Paused (Lifecycle Event)",
        "VM Started (Lifecycle Event)",
    ];

    fn built(msgs: &[&str]) -> Clusterer {
        let mut c = Clusterer::new(Config::default());
        for m in msgs {
            c.observe(m);
        }
        c.rebuild();
        c
    }

    #[test]
    fn same_ids_for_any_arrival_order() {
        let mut a = built(MSGS);
        let mut rev = MSGS.to_vec();
        rev.reverse();
        let mut b = built(&rev);
        for m in MSGS {
            assert_eq!(a.observe(m), b.observe(m), "{m}");
        }
        // New messages too, in different orders: observe is a pure function
        // of the frozen state between rebuilds.
        let new = [
            "session closed for user root",
            "VM Stopped (Lifecycle Event)",
            "brand new message 7",
        ];
        let ia: Vec<ClusterId> = new.iter().map(|m| a.observe(m)).collect();
        let ib: Vec<ClusterId> = new.iter().rev().map(|m| b.observe(m)).collect();
        assert_eq!(ia, ib.into_iter().rev().collect::<Vec<_>>());
        assert_eq!(a.snapshot(), b.snapshot(), "states converge");
    }

    #[test]
    fn ids_are_stable_across_instances_and_runs() {
        let mut a = built(MSGS);
        let mut b = built(MSGS);
        let id = a.observe("session closed for user news");
        assert_eq!(id, b.observe("session closed for user news"));
        assert_eq!(a.template(id), Some("session closed for user <*>"));
        // Pinned: the id is the FNV-1a hash of the pattern, in every process.
        assert_eq!(id, ClusterId::of_pattern("session closed for user <*>"));
        assert_eq!(
            id.to_string(),
            format!("{:016x}", fnv1a64("session closed for user <*>"))
        );
    }

    #[test]
    fn frozen_patterns_adopt_new_templates_provisional_ones_do_not() {
        let mut c = built(MSGS);
        let merged = c.observe("session closed for user news");
        assert_eq!(c.observe("session closed for user root"), merged);
        assert_eq!(c.pending(), 0, "adopted, not provisional");
        let p1 = c.observe("disk quota exceeded for alice");
        let p2 = c.observe("disk quota exceeded for bob");
        assert_ne!(p1, p2, "no merge before the next rebuild");
        assert_eq!(p1, ClusterId::of_pattern("disk quota exceeded for alice"));
        assert_eq!(c.pending(), 2);
        c.observe("disk quota exceeded for carol");
        c.rebuild();
        assert_eq!(c.pending(), 0);
        let merged = c.observe("disk quota exceeded for alice");
        assert_eq!(c.template(merged), Some("disk quota exceeded for <*>"));
        assert_eq!(c.observe("disk quota exceeded for dave"), merged);
    }

    #[test]
    fn rebuild_reports_renames() {
        let mut c = Clusterer::new(Config::default());
        let before: Vec<ClusterId> = MSGS[..3].iter().map(|m| c.observe(m)).collect();
        assert_eq!(c.num_clusters(), 3);
        let renames = c.rebuild();
        let after = c.observe(MSGS[0]);
        assert_eq!(renames.len(), 3);
        assert!(before.iter().all(|b| renames.contains(&(*b, after))));
        assert!(c.rebuild().is_empty(), "a second rebuild changes nothing");
    }

    #[test]
    fn snapshot_restore_roundtrip() {
        let mut a = built(MSGS);
        a.observe("a provisional template 1");
        let snap = a.snapshot();
        let mut b = Clusterer::restore(Config::default(), &snap).expect("own snapshot parses");
        assert_eq!(b.snapshot(), snap);
        assert_eq!(b.pending(), a.pending());
        for m in MSGS.iter().chain(&[
            "session closed for user root",
            "a provisional template 2",
            "other thing",
        ]) {
            assert_eq!(a.observe(m), b.observe(m), "{m}");
        }
    }

    #[test]
    fn restore_rejects_bad_input() {
        assert!(Clusterer::restore(Config::default(), "").is_err());
        assert!(Clusterer::restore(Config::default(), "nope\n").is_err());
        let bad = format!("{STATE_HEADER}\nX\tpattern\n");
        assert!(Clusterer::restore(Config::default(), &bad).is_err());
        let dup = format!("{STATE_HEADER}\nF\ta <*>\ta 1\nF\ta <*>\ta 2\n");
        assert!(Clusterer::restore(Config::default(), &dup).is_err());
        let ok = format!("{STATE_HEADER}\nF\ta <*>\ta 1\n");
        assert!(Clusterer::restore(Config::default(), &ok).is_ok());
    }

    #[test]
    fn unknown_id_has_no_template() {
        let c = built(MSGS);
        assert_eq!(c.template(ClusterId(42)), None);
    }
}
