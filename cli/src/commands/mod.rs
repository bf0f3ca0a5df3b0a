//! One module per subcommand.

pub mod cluster;
pub mod events;
pub mod load;
pub mod migrate;
pub mod send;
pub mod session;
