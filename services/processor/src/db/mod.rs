//! The processor's SQL: it owns the error clusters, the correlations and
//! the summary columns of `sessions`.

pub mod clusters;
pub mod derived;
