//! Kafka topics: a closed enum mapped to physical names in exactly one place.
//!
//! Physical names are `{prefix}{base}`; the prefix (empty by default) lets
//! several deployments, or every integration test, share one cluster without
//! seeing each other's records. Each topic names the schema file that
//! describes its values; a test keeps this table and `schemas/` in sync.

use std::fmt;

/// A logical topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Direct-to-Kafka producers write here (JSON or Avro); the intake gate
    /// authenticates and validates each record, then republishes it to
    /// [`Topic::Events`] or parks it in [`Topic::DeadLetter`].
    Intake,
    /// Canonical, validated records (session start, event, session end),
    /// keyed by session id so one session's records stay in order.
    Events,
    /// Records that failed for good, with the reason in headers and value.
    DeadLetter,
    /// One record per session whose end the stream processor has folded in
    /// (all derived rows committed); the monitoring agent's trigger.
    SessionEnded,
    /// Insights raised, escalated or resolved by the monitoring agent, for
    /// alerting and webhooks.
    Insights,
}

impl Topic {
    pub const ALL: [Topic; 5] = [
        Topic::Intake,
        Topic::Events,
        Topic::DeadLetter,
        Topic::SessionEnded,
        Topic::Insights,
    ];

    /// The name without prefix. The `.v1` suffix changes only for an
    /// incompatible schema change, which then gets a new topic.
    pub fn base_name(self) -> &'static str {
        match self {
            Self::Intake => "achilles.intake.v1",
            Self::Events => "achilles.events.v1",
            Self::DeadLetter => "achilles.deadletter.v1",
            Self::SessionEnded => "achilles.session-ended.v1",
            Self::Insights => "achilles.insights.v1",
        }
    }

    /// The file in `schemas/` that describes this topic's record values.
    pub fn schema_file(self) -> &'static str {
        match self {
            Self::Intake => "intake.v1.schema.json",
            Self::Events => "envelope.v1.avsc",
            Self::DeadLetter => "dead-letter.v1.avsc",
            Self::SessionEnded => "session-ended.v1.avsc",
            Self::Insights => "insight.v1.avsc",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base_name())
    }
}

/// Resolves logical topics to physical names for one deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn name(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.base_name())
    }

    /// The logical topic behind a physical name, if it is one of ours.
    pub fn resolve(&self, physical: &str) -> Option<Topic> {
        let base = physical.strip_prefix(&self.prefix)?;
        Topic::ALL.into_iter().find(|t| t.base_name() == base)
    }

    pub fn all_names(&self) -> Vec<String> {
        Topic::ALL.iter().map(|t| self.name(*t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::path::PathBuf;

    fn schemas_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
    }

    #[test]
    fn prefix_round_trips() {
        let t = Topics::new("test-42.");
        for topic in Topic::ALL {
            assert_eq!(t.resolve(&t.name(topic)), Some(topic));
        }
        assert_eq!(t.resolve("achilles.events.v1"), None);
    }

    /// Every topic has a schema file, and every schema file at the top of
    /// `schemas/` belongs to a topic or is a named part of one.
    #[test]
    fn topics_and_schema_files_stay_in_sync() {
        let dir = schemas_dir();
        let on_disk: HashSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let declared: HashSet<String> = Topic::ALL
            .iter()
            .map(|t| t.schema_file().to_owned())
            .collect();
        assert_eq!(
            on_disk, declared,
            "schemas/ and Topic::schema_file disagree"
        );
    }

    #[test]
    fn names_are_unique_and_kafka_legal() {
        let names: HashSet<_> = Topic::ALL.iter().map(|t| t.base_name()).collect();
        assert_eq!(names.len(), Topic::ALL.len());
        for n in names {
            assert!(n.len() <= 249);
            assert!(n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
        }
    }
}
