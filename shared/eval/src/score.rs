//! Scoring predicted rows against the truth.
//!
//! * **precision / recall** of (cause, effect) pairs over the rows with
//!   confidence >= 0.5 (claims); lower rows are candidates and not scored.
//! * **break/fix accuracy**: of the true pairs that were claimed and where
//!   the truth or the prediction has a fix, the share whose fixing event is
//!   exactly the true one (a fix claimed for an unfixed error is wrong too).
//! * **induced MAE**: mean over sessions of |claimed induced errors − true
//!   induced errors|, an induced error being a distinct effect.
//! * false positives and misses **by reason**, from the story: what the
//!   wrongly blamed failure really was, or how the wrong edit relates to
//!   the true cause; for misses, the story label.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::generate::Session;

/// Confidence at or above which a row is a claim.
pub const CLAIM: f64 = 0.5;

/// One row a system produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Predicted {
    pub cause: Uuid,
    pub effect: Uuid,
    pub confidence: f64,
    pub fixed_by: Option<Uuid>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub sessions: usize,
    pub events: usize,
    pub true_pairs: usize,
    pub claimed_pairs: usize,
    pub candidate_rows: usize,
    pub true_positives: usize,
    pub false_positives: usize,
    pub misses: usize,
    pub precision: f64,
    pub recall: f64,
    pub fixes_scored: usize,
    pub fixes_exact: usize,
    pub break_fix_accuracy: f64,
    pub true_induced_per_session: f64,
    pub induced_mae: f64,
    pub false_positives_by_reason: BTreeMap<String, usize>,
    pub misses_by_reason: BTreeMap<String, usize>,
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

fn path_of(s: &Session, i: usize) -> &str {
    s.events[i].data["path"].as_str().unwrap_or("")
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The story's word for a tag: `bug:long_log:rust_e0425` → `bug:rust_e0425`.
fn kind_of(tag: &str) -> String {
    tag.replace("long_log:", "")
}

/// Why a claimed pair is wrong.
fn fp_reason(s: &Session, cause: usize, effect: usize) -> String {
    let true_causes: Vec<usize> = s
        .truth
        .iter()
        .filter(|p| p.effect == effect)
        .map(|p| p.cause)
        .collect();
    if true_causes.is_empty() {
        return format!("not_induced:{}", kind_of(&s.events[effect].tag));
    }
    let path = path_of(s, cause);
    if true_causes.iter().any(|&c| path_of(s, c) == path) {
        return "earlier_edit_of_the_file".into();
    }
    if true_causes
        .iter()
        .any(|&c| base(path_of(s, c)) == base(path))
    {
        return "same_base_name_other_directory".into();
    }
    format!("other_file:{}", s.events[cause].tag)
}

/// Scores `predicted` rows (by session id) against the sessions' truth.
pub fn score(sessions: &[Session], predicted: &HashMap<Uuid, Vec<Predicted>>) -> Report {
    let mut r = Report {
        sessions: sessions.len(),
        ..Default::default()
    };
    let mut abs_err = 0usize;
    let mut true_induced = 0usize;
    for s in sessions {
        r.events += s.events.len();
        let index: HashMap<Uuid, usize> = s
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id, i))
            .collect();
        let rows = predicted.get(&s.id).map(Vec::as_slice).unwrap_or(&[]);
        let mut claims: BTreeMap<(usize, usize), Option<Uuid>> = BTreeMap::new();
        for p in rows {
            let (Some(&c), Some(&e)) = (index.get(&p.cause), index.get(&p.effect)) else {
                continue;
            };
            if p.confidence >= CLAIM {
                claims.insert((c, e), p.fixed_by);
            } else {
                r.candidate_rows += 1;
            }
        }
        let truth: BTreeMap<(usize, usize), &crate::TruePair> =
            s.truth.iter().map(|p| ((p.cause, p.effect), p)).collect();
        r.true_pairs += truth.len();
        r.claimed_pairs += claims.len();
        for (&(c, e), fixed_by) in &claims {
            match truth.get(&(c, e)) {
                Some(t) => {
                    r.true_positives += 1;
                    let want = t.fixed_by.map(|i| s.events[i].id);
                    if want.is_some() || fixed_by.is_some() {
                        r.fixes_scored += 1;
                        r.fixes_exact += usize::from(want == *fixed_by);
                    }
                }
                None => {
                    r.false_positives += 1;
                    *r.false_positives_by_reason
                        .entry(fp_reason(s, c, e))
                        .or_default() += 1;
                }
            }
        }
        for (&(c, e), t) in &truth {
            if !claims.contains_key(&(c, e)) {
                r.misses += 1;
                let long = if s.events[e].tag.contains("long_log") {
                    ":long_log"
                } else {
                    ""
                };
                let diag = if s.events[e].kind == "error" {
                    ":error_event"
                } else {
                    ""
                };
                *r.misses_by_reason
                    .entry(format!("{}{long}{diag}", t.label))
                    .or_default() += 1;
            }
        }
        let claimed: BTreeSet<usize> = claims.keys().map(|k| k.1).collect();
        let actual: BTreeSet<usize> = truth.keys().map(|k| k.1).collect();
        abs_err += claimed.len().abs_diff(actual.len());
        true_induced += actual.len();
    }
    r.precision = ratio(r.true_positives, r.claimed_pairs);
    r.recall = ratio(r.true_positives, r.true_pairs);
    r.break_fix_accuracy = ratio(r.fixes_exact, r.fixes_scored);
    let n = r.sessions.max(1) as f64;
    r.induced_mae = abs_err as f64 / n;
    r.true_induced_per_session = true_induced as f64 / n;
    r
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

impl Report {
    /// The figures, under the names `make bench` publishes.
    pub fn to_json(&self) -> Value {
        json!({
            "correlation_precision": round4(self.precision),
            "correlation_recall": round4(self.recall),
            "break_fix_accuracy": round4(self.break_fix_accuracy),
            "induced_mae": round4(self.induced_mae),
            "sessions": self.sessions,
            "events": self.events,
            "true_pairs": self.true_pairs,
            "claimed_pairs": self.claimed_pairs,
            "candidate_rows": self.candidate_rows,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "misses": self.misses,
            "fixes_scored": self.fixes_scored,
            "fixes_exact": self.fixes_exact,
            "true_induced_per_session": round4(self.true_induced_per_session),
            "false_positives_by_reason": self.false_positives_by_reason,
            "misses_by_reason": self.misses_by_reason,
        })
    }

    /// A human-readable summary, one figure per line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "sessions {}  events {}  true pairs {}  claimed {}  candidates {}\n\
             correlation_precision {:.4}\ncorrelation_recall {:.4}\n\
             break_fix_accuracy {:.4}  ({} of {} fixed pairs exact)\n\
             induced_mae {:.4}  (true induced errors per session {:.2})\n",
            self.sessions,
            self.events,
            self.true_pairs,
            self.claimed_pairs,
            self.candidate_rows,
            self.precision,
            self.recall,
            self.break_fix_accuracy,
            self.fixes_exact,
            self.fixes_scored,
            self.induced_mae,
            self.true_induced_per_session,
        );
        for (title, map) in [
            ("false positives", &self.false_positives_by_reason),
            ("misses", &self.misses_by_reason),
        ] {
            out.push_str(&format!("{title}: {}\n", map.values().sum::<usize>()));
            for (reason, n) in map {
                out.push_str(&format!("  {n:>4}  {reason}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::generate;

    #[test]
    fn the_truth_scores_perfectly_and_noise_does_not() {
        let sessions = generate(3, 8);
        let perfect: HashMap<Uuid, Vec<Predicted>> = sessions
            .iter()
            .map(|s| {
                let rows = s
                    .truth
                    .iter()
                    .map(|p| Predicted {
                        cause: s.events[p.cause].id,
                        effect: s.events[p.effect].id,
                        confidence: 0.9,
                        fixed_by: p.fixed_by.map(|i| s.events[i].id),
                    })
                    .collect();
                (s.id, rows)
            })
            .collect();
        let r = score(&sessions, &perfect);
        assert!(r.true_pairs > 0);
        assert_eq!((r.precision, r.recall, r.induced_mae), (1.0, 1.0, 0.0));
        assert_eq!(r.break_fix_accuracy, 1.0);

        // Every agent edit blamed for every later failure: recall stays,
        // precision collapses, and the reasons say why.
        let noisy: HashMap<Uuid, Vec<Predicted>> = sessions
            .iter()
            .map(|s| {
                let mut rows = Vec::new();
                for (c, ce) in s.events.iter().enumerate() {
                    for fe in s.events.iter().skip(c + 1) {
                        if ce.kind == "file_edit" && fe.tag.contains(':') {
                            rows.push(Predicted {
                                cause: ce.id,
                                effect: fe.id,
                                confidence: 0.6,
                                fixed_by: None,
                            });
                        }
                    }
                }
                (s.id, rows)
            })
            .collect();
        let r = score(&sessions, &noisy);
        assert_eq!(r.recall, 1.0);
        assert!(r.precision < 0.5, "{}", r.render());
        assert!(!r.false_positives_by_reason.is_empty());
        assert!(r.induced_mae > 0.0);
    }
}
