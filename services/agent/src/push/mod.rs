//! Live push of insights: the [`recorder`] turns the insights topic into the
//! append-only `insight_transitions` log (which the API streams as
//! Server-Sent Events) and into webhook deliveries, which the [`delivery`]
//! worker signs and posts, retrying with backoff until delivered or dead.
//! docs/push.md describes both ends, including how receivers verify.

pub mod delivery;
pub mod recorder;
