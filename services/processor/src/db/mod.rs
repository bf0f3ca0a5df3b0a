//! The processor's SQL: it owns the error clusters, the correlations and
//! the summary columns of `sessions`, and reads idle sessions for the
//! reaper.

pub mod clusters;
pub mod derived;
pub mod reaper;
