//! Labelled coding sessions for scoring induced-error attribution, and the
//! scorer.
//!
//! [`generate`] builds realistic sessions from a seed: an agent works on a
//! small Rust, Python, TypeScript or C project, edits files, runs builds,
//! tests and the program; some edits break the code, a human sometimes
//! edits too, the network flakes, the model is rate limited. Failure output
//! is **recorded from real tools** run on this machine on broken snippets
//! (`fixtures/`: rustc/cargo 1.95, CPython 3.11 and pytest 9, tsc 5 and
//! Node 20, gcc 12), with the project root substituted.
//!
//! # Truth rules
//!
//! The truth comes from the *story* the generator tells, never from reading
//! the output the way the processor does. A careful engineer watching the
//! session would label it the same way:
//!
//! 1. **An induced error** is a failing event that reports a bug the
//!    *agent* introduced with an edit; that edit is its cause. A check
//!    fails when a bug it exercises is present (compile errors fail
//!    builds, tests and runs of compiled languages; a wrong value fails
//!    tests; a crash fails running the program). Every failing event that
//!    reports the bug — the build, a re-run without changes, an `error`
//!    event the agent runtime emits for it — is induced by the same edit.
//! 2. **Not induced:** failures of the environment (network, registry,
//!    rate limits, timeouts), even when a stack names a project file;
//!    failures of bugs a *human* introduced; failures that report nothing.
//! 3. **The cause is the breaking edit.** Clean edits of the same file
//!    before it, edits of other files (even ones a warning or a progress
//!    line names), and files with the same base name elsewhere are not.
//!    A repair that breaks the file differently is the cause of the new
//!    failures.
//! 4. **Only readable stories are told.** The reader must be able to tie
//!    the failure to the broken file: the output names it (as the error's
//!    location, a stack frame or a note), or names a failing test whose
//!    subject it is by the project's naming (`tests/test_models.py` ↔
//!    `models.py`). Stories that would be ambiguous to a careful reader are
//!    not generated: no other file the output names at the error was edited
//!    since that check last passed, and nobody edits the broken file
//!    between the breaking edit and its first failure.
//! 5. **The fix** of an induced error is the first *passing* check after
//!    the repairing edit that exercises the bug (rule 1); `ls`, `git
//!    status` or a passing check that does not exercise it are not fixes.
//!    An error never repaired in the session has no fix.
//!
//! [`score`] compares the rows a system produced (confidence >= 0.5 are
//! claims) with the truth: precision and recall of (cause, effect) pairs,
//! break/fix accuracy, the mean absolute error of induced errors per
//! session, and false positives and misses by reason.

pub mod fixtures;
pub mod generate;
pub mod score;

pub use generate::{generate, EvalEvent, Session, TruePair};
pub use score::{score, Predicted, Report};
