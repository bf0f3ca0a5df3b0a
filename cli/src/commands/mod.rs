//! One module per subcommand.

pub mod answers;
pub mod cluster;
pub mod dlq;
pub mod eval;
pub mod events;
pub mod insights;
pub mod load;
pub mod migrate;
pub mod report;
pub mod retention;
pub mod send;
pub mod session;
pub mod webhooks;
