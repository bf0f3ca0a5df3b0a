//! Error types shared by every boundary, and the one decision each error must
//! make: may the work be retried, or does the record belong in the
//! dead-letter topic?
//!
//! Validation errors are data, not failures: they are collected (every
//! problem with a submission, not just the first) and reported to the
//! producer with a stable machine-readable `code` and the `field` at fault.

use std::fmt;

use serde::Serialize;
use utoipa::ToSchema;

/// What to do with a record whose processing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Transient (broker or database unreachable): keep the offset, back off
    /// and try the same record again. Never skip it.
    Retry,
    /// The record itself is bad and will fail the same way forever: park it
    /// in the dead-letter topic with the reason and move on.
    DeadLetter,
}

/// Implemented by every error a consumer can hit, so the consumer loop has
/// one place that decides between retrying and dead-lettering.
pub trait Classify {
    fn disposition(&self) -> Disposition;
    /// A short, stable, low-cardinality code, used as a metric label and a
    /// dead-letter header.
    fn reason_code(&self) -> &'static str;
}

/// One thing wrong with a submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ValidationError {
    /// Dotted path of the offending field, e.g. `data.exit_code`.
    pub field: String,
    /// Stable machine-readable code, e.g. `too_large`, `missing_field`.
    pub code: &'static str,
    /// Human-readable explanation naming the limit or expected form.
    pub message: String,
}

/// Every stable validation code. Keeping the set closed lets it be a metric
/// label without risking cardinality blow-ups.
pub mod codes {
    pub const MISSING_FIELD: &str = "missing_field";
    pub const INVALID_JSON: &str = "invalid_json";
    pub const INVALID_DATA: &str = "invalid_data";
    pub const UNKNOWN_KIND: &str = "unknown_kind";
    pub const INVALID_VALUE: &str = "invalid_value";
    pub const INVALID_ID: &str = "invalid_id";
    pub const INVALID_TIMESTAMP: &str = "invalid_timestamp";
    pub const TIMESTAMP_OUT_OF_RANGE: &str = "timestamp_out_of_range";
    pub const TOO_LARGE: &str = "too_large";
    pub const EMPTY: &str = "empty";
    pub const CONTAINS_NUL: &str = "contains_nul";
    pub const HASH_MISMATCH: &str = "hash_mismatch";
    pub const OUT_OF_RANGE: &str = "out_of_range";

    pub const ALL: &[&str] = &[
        MISSING_FIELD,
        INVALID_JSON,
        INVALID_DATA,
        UNKNOWN_KIND,
        INVALID_VALUE,
        INVALID_ID,
        INVALID_TIMESTAMP,
        TIMESTAMP_OUT_OF_RANGE,
        TOO_LARGE,
        EMPTY,
        CONTAINS_NUL,
        HASH_MISMATCH,
        OUT_OF_RANGE,
    ];
}

impl ValidationError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.code)
    }
}

/// All problems found in one submission; never empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    pub fn single(field: impl Into<String>, code: &'static str, msg: impl Into<String>) -> Self {
        Self(vec![ValidationError::new(field, code, msg)])
    }

    /// The code of the first problem: what metrics and dead-letter headers
    /// report when a single label is needed.
    pub fn primary_code(&self) -> &'static str {
        self.0.first().map_or(codes::INVALID_DATA, |e| e.code)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            e.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl Classify for ValidationErrors {
    fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }
    fn reason_code(&self) -> &'static str {
        self.primary_code()
    }
}

/// The largest integer a count or duration may take: 2^53 - 1, exact in
/// every JSON implementation and far inside Avro's and Postgres's `i64`.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Accumulates validation problems while a submission is parsed, so the
/// producer hears about all of them at once.
pub(crate) struct Checker {
    errors: Vec<ValidationError>,
}

impl Checker {
    pub fn new() -> Self {
        Self { errors: Vec::new() }
    }

    pub fn push(&mut self, field: impl Into<String>, code: &'static str, msg: impl Into<String>) {
        self.errors.push(ValidationError::new(field, code, msg));
    }

    /// A required text: non-empty, within `max` bytes, no NUL (which
    /// Postgres cannot store in `text` or `jsonb`).
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.push(field, codes::EMPTY, "must not be empty");
        }
        self.opt_text(field, Some(value), max);
    }

    /// An optional text: when present, within `max` bytes and free of NUL.
    /// An empty optional text is allowed: it means "known to be empty".
    pub fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        let Some(value) = value else { return };
        if value.len() > max {
            self.push(
                field,
                codes::TOO_LARGE,
                format!("is {} bytes; the limit is {max} bytes", value.len()),
            );
        }
        if value.contains('\0') {
            self.push(
                field,
                codes::CONTAINS_NUL,
                "must not contain NUL characters",
            );
        }
    }

    /// A count or duration: at most [`MAX_SAFE_INTEGER`], which every
    /// consumer of our data represents exactly (JSON readers in JavaScript,
    /// Avro `long`, Postgres `bigint`) and which leaves sums of a session's
    /// values far from overflowing.
    pub fn count(&mut self, field: &str, value: Option<u64>) {
        if let Some(v) = value.filter(|v| *v > MAX_SAFE_INTEGER) {
            self.push(
                field,
                codes::OUT_OF_RANGE,
                format!("{v} is larger than the limit {MAX_SAFE_INTEGER} (2^53 - 1)"),
            );
        }
    }

    pub fn len(&self) -> usize {
        self.errors.len()
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn into_errors(self) -> Vec<ValidationError> {
        self.errors
    }

    pub fn extend(&mut self, errors: Vec<ValidationError>) {
        self.errors.extend(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_collects_every_problem() {
        let mut c = Checker::new();
        c.text("a", "", 10);
        c.opt_text("b", Some("x\0y"), 10);
        c.opt_text("c", Some("0123456789ab"), 10);
        let errs = ValidationErrors(c.into_errors());
        let got: Vec<_> = errs.0.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(
            got,
            vec![
                ("a", codes::EMPTY),
                ("b", codes::CONTAINS_NUL),
                ("c", codes::TOO_LARGE)
            ]
        );
        assert!(errs.to_string().contains("12 bytes; the limit is 10"));
    }

    #[test]
    fn validation_is_dead_letter_not_retry() {
        let e = ValidationErrors::single("x", codes::EMPTY, "must not be empty");
        assert_eq!(e.disposition(), Disposition::DeadLetter);
        assert_eq!(e.reason_code(), "empty");
    }
}
