//! Which edit a failure is attributed to: the rules of docs/processing.md
//! ("Correlations"), as one function of the failure and the edits and
//! checks before it, so that any arrival order gives the same answer.
//!
//! For each file the failure names, the candidate cause is the **latest
//! edit of that file** before the failure (within the correlation window).
//! It is a claim only if the agent made it (a human's later edit breaks the
//! chain) and no passing check that would have shown the failure ran
//! between it and the failure (the edit was already verified).
//!
//! 1. Files at the error's **location** decide: their latest agent edits
//!    are the claims (`error_location`).
//! 2. Only when no location file was edited (or its edits were verified)
//!    do files **related** to the error (other frames, a `note:` at a
//!    definition, the failing test's file, paths in the message) make
//!    claims (`mention`).
//! 3. Failing that, the subject of a failing **test file**
//!    (`tests/test_billing.py` → the one edited `billing` file) is claimed
//!    (`test_subject`), when exactly one edited file fits.
//! 4. Everything else that matched (context mentions, verified edits,
//!    mentions beside a location) is a *candidate*: confidence below 0.5,
//!    never counted. Failures of the environment (network, rate limits,
//!    timeouts) make candidates only, and failures naming no file nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checks::{self, Check};
use super::names::{Named, Role};
use super::paths;
use super::EngineConfig;

/// How a failure points at an edited file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    /// The file is where the tool reports the error.
    ErrorLocation,
    /// The file is named in the error's context (no location file edited).
    Mention,
    /// The file is the subject of the failing test file.
    TestSubject,
    /// The file is named beside the error (warnings, progress lines).
    Context,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ErrorLocation => "error_location",
            Self::Mention => "mention",
            Self::TestSubject => "test_subject",
            Self::Context => "context",
        }
    }

    pub const ALL: [Self; 4] = [
        Self::ErrorLocation,
        Self::Mention,
        Self::TestSubject,
        Self::Context,
    ];
}

/// Confidence at or above which a row is a claim that verdicts count.
pub const CLAIM: f64 = 0.5;
/// Confidence of candidates (never counted).
const CANDIDATE: f64 = 0.3;
/// Confidence of candidates from failures of the environment.
const ENVIRONMENTAL: f64 = 0.2;
/// Claims and candidates kept per failure.
pub const MAX_PER_FAILURE: usize = 8;

/// Confidence of a claim: by how the failure points at the file, decaying
/// linearly with the gap to a floor that stays a claim.
pub fn confidence(kind: MatchKind, gap_us: i64, window_us: i64) -> f64 {
    let (top, floor) = match kind {
        MatchKind::ErrorLocation => (0.9, 0.7),
        MatchKind::Mention => (0.75, 0.6),
        MatchKind::TestSubject => (0.65, 0.55),
        MatchKind::Context => return CANDIDATE,
    };
    let g = (gap_us as f64 / window_us.max(1) as f64).clamp(0.0, 1.0);
    ((top - (top - floor) * g) * 1000.0).round() / 1000.0
}

/// One edit as the state keeps it (grouped by file).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EditRef {
    pub id: Uuid,
    pub t: i64,
    /// Made by a human (or the system), not the agent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub human: bool,
}

/// A passing check.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SuccessRef {
    pub id: Uuid,
    pub t: i64,
    pub check: Check,
    pub command: String,
}

/// What a stored failure knows for attribution.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FailureFacts {
    pub id: Uuid,
    pub t: i64,
    #[serde(default)]
    pub names: Vec<Named>,
    #[serde(default)]
    pub check: Option<(Check, String)>,
    #[serde(default)]
    pub environmental: bool,
    /// An error event: read together with the failing check just before
    /// it, if any (see `SessionState::with_run`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnostic: bool,
}

/// One row the failure yields: `cause` edited `path`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claim {
    pub cause: Uuid,
    pub path: String,
    pub cause_t: i64,
    pub kind: MatchKind,
    pub confidence: f64,
}

/// Edits by file (normalised, resolved path), each list sorted by time.
pub type Edits = BTreeMap<String, Vec<EditRef>>;

/// Does a name of a failure point at `path`? A bare name (a linker's
/// `parser.c`) only when exactly one edited file has that base name.
pub fn name_matches(n: &Named, path: &str, edits: &Edits) -> bool {
    if paths::same_file(path, &n.path) {
        return true;
    }
    let base = paths::base_name(&n.path);
    n.bare
        && paths::base_name(path) == base
        && edits.keys().filter(|p| paths::base_name(p) == base).count() == 1
}

struct Latest<'a> {
    path: &'a str,
    edit: &'a EditRef,
}

/// The rows failure `f` yields, given the session's edits and checks.
pub fn attribute(
    f: &FailureFacts,
    edits: &Edits,
    successes: &[SuccessRef],
    cfg: &EngineConfig,
) -> Vec<Claim> {
    if f.names.is_empty() {
        return Vec::new();
    }
    // The latest edit of each file at or before the failure, in the window.
    let latest: Vec<Latest<'_>> = edits
        .iter()
        .filter_map(|(path, list)| {
            let edit = list
                .iter()
                .rev()
                .find(|e| e.t <= f.t && f.t - e.t <= cfg.window_us)?;
            Some(Latest { path, edit })
        })
        .collect();
    // A failure of unknown kind (an error event) cannot say which checks
    // would have shown it: no edit counts as verified for it.
    let verified = |e: &EditRef| {
        f.check.is_some()
            && successes.iter().any(|s| {
                s.t > e.t
                    && s.t < f.t
                    && checks::covers(
                        (s.check, &s.command),
                        f.check.as_ref().map(|(c, cmd)| (*c, cmd.as_str())),
                    )
            })
    };
    let hits = |role: Role| -> Vec<&Latest<'_>> {
        latest
            .iter()
            .filter(|l| {
                f.names
                    .iter()
                    .any(|n| n.role == role && name_matches(n, l.path, edits))
            })
            .collect()
    };
    let mut out: Vec<Claim> = Vec::new();
    let push = |out: &mut Vec<Claim>, l: &Latest<'_>, kind: MatchKind, claim: bool| {
        if l.edit.human || out.iter().any(|c| c.cause == l.edit.id) {
            return;
        }
        let gap = f.t - l.edit.t;
        out.push(Claim {
            cause: l.edit.id,
            path: l.path.to_owned(),
            cause_t: l.edit.t,
            kind,
            confidence: if claim {
                confidence(kind, gap, cfg.window_us)
            } else {
                CANDIDATE
            },
        });
    };
    let locations = hits(Role::Location);
    let related = hits(Role::Related);
    let decisive = |l: &Latest<'_>| l.edit.human || !verified(l.edit);
    if locations.iter().any(|l| decisive(l)) {
        for l in locations.iter().filter(|l| decisive(l)) {
            push(&mut out, l, MatchKind::ErrorLocation, true);
        }
    } else if related.iter().any(|l| decisive(l)) {
        for l in related.iter().filter(|l| decisive(l)) {
            push(&mut out, l, MatchKind::Mention, true);
        }
    } else if let Some(l) = test_subject(f, &latest, &verified) {
        push(&mut out, l, MatchKind::TestSubject, true);
    }
    for l in &locations {
        push(&mut out, l, MatchKind::ErrorLocation, false);
    }
    for l in &related {
        push(&mut out, l, MatchKind::Mention, false);
    }
    for l in hits(Role::Context) {
        push(&mut out, l, MatchKind::Context, false);
    }
    if f.environmental {
        for c in &mut out {
            c.confidence = c.confidence.min(ENVIRONMENTAL);
        }
    }
    out.truncate(MAX_PER_FAILURE);
    out
}

/// The one edited file a failing test file is about, if exactly one fits
/// (a base-name fit beats a directory fit).
fn test_subject<'a, 'b>(
    f: &FailureFacts,
    latest: &'b [Latest<'a>],
    verified: &dyn Fn(&EditRef) -> bool,
) -> Option<&'b Latest<'a>> {
    let subjects: Vec<&str> = f
        .names
        .iter()
        .filter(|n| n.role != Role::Context)
        .filter_map(|n| paths::test_subject(&n.path))
        .collect();
    if subjects.is_empty() {
        return None;
    }
    let score = |l: &Latest<'_>| {
        subjects
            .iter()
            .map(|s| paths::subject_match(l.path, s))
            .max()
            .unwrap_or(0)
    };
    let fits: Vec<(&Latest<'_>, u8)> = latest
        .iter()
        .filter(|l| l.edit.human || !verified(l.edit))
        .map(|l| (l, score(l)))
        .filter(|(_, s)| *s > 0)
        .collect();
    let best = fits.iter().map(|(_, s)| *s).max()?;
    let mut top = fits.into_iter().filter(|(_, s)| *s == best);
    match (top.next(), top.next()) {
        (Some((l, _)), None) => Some(l),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_decays_but_claims_stay_claims() {
        let w = 1_800_000_000;
        assert_eq!(confidence(MatchKind::ErrorLocation, 0, w), 0.9);
        assert_eq!(confidence(MatchKind::ErrorLocation, w, w), 0.7);
        assert_eq!(confidence(MatchKind::Mention, w, w), 0.6);
        assert_eq!(confidence(MatchKind::TestSubject, w, w), 0.55);
        assert!(confidence(MatchKind::Context, 0, w) < CLAIM);
    }
}
