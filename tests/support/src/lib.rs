//! Test support shared by every service's integration tests.
//!
//! Each test gets its own world on shared infrastructure: a fresh
//! database ([`TestDb`]), a unique topic prefix ([`unique_prefix`]) and
//! unique consumer groups, so tests run in parallel without seeing each
//! other. Tests that need to stop the broker start a [`PrivateBroker`].
//!
//! Nothing here skips a test when a service is missing: it panics with a
//! message saying what to start (`make test` starts everything).

mod broker;
mod db;
mod kafka;
pub mod otlp;
mod proxy;
pub mod sse;

pub use broker::PrivateBroker;
pub use db::TestDb;
pub use kafka::{read_topic, shared_brokers, TopicRecord};
pub use proxy::LossyProxy;

use std::future::Future;
use std::time::{Duration, Instant};

use achilles_core::config::Settings;
use secrecy::SecretString;

/// A topic prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Settings for a service under test: port 0 everywhere, the given
/// database, brokers and topic prefix, unique consumer groups, and quick
/// Kafka timeouts so group joins and failures take seconds, not minutes.
pub fn settings(db: &TestDb, brokers: &str, prefix: &str) -> Settings {
    let mut s = Settings::default();
    s.database.url = SecretString::from(db.url.clone());
    s.database.max_connections = 5;
    s.kafka.brokers = brokers.to_owned();
    s.kafka.topic_prefix = prefix.to_owned();
    s.kafka.partitions = 4;
    s.kafka.message_timeout_ms = 3_000;
    s.kafka.session_timeout_ms = 6_000;
    s.api.listen = "127.0.0.1:0".into();
    s.sink.metrics_listen = "127.0.0.1:0".into();
    s.sink.group_id = format!("{prefix}raw-sink");
    s.sink.gate_group_id = format!("{prefix}gate");
    // Frequent state checkpoints: tests watch `consumer_state`, and the
    // re-application from a checkpoint after a takeover gets exercised.
    s.consumer.checkpoint_interval_ms = 200;
    s.log.format = "pretty".into();
    s.log.filter = "warn".into();
    s
}

/// Polls `check` until it returns `Some`, or panics with `what` after
/// `timeout`. For conditions that become true asynchronously (a record
/// landing in Postgres).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a service binary (path from `env!("CARGO_BIN_EXE_...")`) against
/// the test's database, brokers and topic prefix, plus `extra` variables
/// (consumer groups, batch sizes). Logs go to the test's stderr.
pub fn spawn_service(binary: &str, s: &Settings, extra: &[(&str, &str)]) -> KillOnDrop {
    use secrecy::ExposeSecret;
    let mut cmd = std::process::Command::new(binary);
    cmd.env("DATABASE_URL", s.database.url.expose_secret())
        .env("ACHILLES_KAFKA__BROKERS", &s.kafka.brokers)
        .env("ACHILLES_KAFKA__TOPIC_PREFIX", &s.kafka.topic_prefix)
        .env("ACHILLES_LOG_FORMAT", "pretty")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    KillOnDrop(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn {binary}: {e}")),
    )
}

/// A child process killed (SIGKILL) when dropped, so a failing test never
/// leaves a service running that holds ports or consumer-group membership.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// SIGKILL now and reap; for tests that crash a service on purpose.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM (a graceful stop, as Kubernetes or `make down` sends), then
    /// waits up to `within` for the process to exit; returns whether it
    /// exited by itself (it is killed otherwise).
    pub fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.0.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + within;
        while sent && Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        false
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}
