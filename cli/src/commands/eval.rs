//! `achilles eval attribution`: how well the stream processor's engine
//! attributes failures to the edits that induced them, on the labelled
//! sessions of `achilles-eval` (real compiler, test and runtime output;
//! truth rules in shared/eval/src/lib.rs).
//!
//! Offline and deterministic: the sessions come from `--seed`, the engine
//! runs in-process with the processor's configuration (`[processor]`
//! window settings), no broker or database needed. `--json` prints the
//! figures `make bench` publishes (`correlation_precision`,
//! `correlation_recall`, `break_fix_accuracy`, `induced_mae`) with the
//! breakdown of false positives and misses by reason.

use clap::{Args, Subcommand};

use achilles_processor::engine::EngineConfig;

use crate::client::CliError;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Score induced-error attribution on generated, labelled sessions.
    Attribution(AttributionArgs),
}

#[derive(Args)]
pub struct AttributionArgs {
    /// Number of sessions to generate (languages rotate: Rust, Python,
    /// TypeScript, C).
    #[arg(long, default_value_t = 120)]
    pub sessions: usize,
    /// Seed of the generator; the same seed gives the same sessions.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(c: EvalCommand) -> Result<(), CliError> {
    let EvalCommand::Attribution(a) = c;
    let settings = achilles_core::config::Settings::load()
        .map_err(|e| CliError::Input(format!("configuration: {e}")))?;
    let cfg = EngineConfig::from_settings(&settings.processor);
    let sessions = achilles_eval::generate(a.seed, a.sessions);
    let report = achilles_processor::evaluate::evaluate(&sessions, &cfg)
        .map_err(|e| CliError::Other(e.to_string()))?;
    if a.json {
        let mut v = report.to_json();
        v["seed"] = a.seed.into();
        println!("{v}");
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
