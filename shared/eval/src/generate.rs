//! The session generator: seeded, so every run builds the same sessions.
//! The truth is recorded as the story unfolds (see the crate docs).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::fixtures::{Bug, Check, Flake, Language, Shape, Story, LANGUAGES};

/// One event of a generated session.
#[derive(Clone, Debug)]
pub struct EvalEvent {
    pub id: Uuid,
    /// Milliseconds after the session's start.
    pub offset_ms: i64,
    pub actor: &'static str,
    pub kind: &'static str,
    pub data: Value,
    /// What the event is in the story (failures: why they failed).
    pub tag: String,
}

/// A true induced error: `cause` (event index) induced `effect`, and
/// `fixed_by` closed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruePair {
    pub cause: usize,
    pub effect: usize,
    pub fixed_by: Option<usize>,
    pub label: &'static str,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: Uuid,
    pub language: &'static str,
    /// The session start's metadata (`cwd` in some sessions).
    pub metadata: Value,
    pub events: Vec<EvalEvent>,
    pub truth: Vec<TruePair>,
}

impl Session {
    /// The event as a producer submits it (`occurred_at` supplied by the
    /// caller, who decides the session's real start time).
    pub fn submission(&self, i: usize, occurred_at: &str) -> Value {
        let e = &self.events[i];
        json!({
            "id": e.id.to_string(), "session_id": self.id.to_string(),
            "occurred_at": occurred_at, "kind": e.kind, "actor": e.actor, "data": e.data,
        })
    }

    pub fn start_submission(&self, started_at: &str) -> Value {
        json!({"id": self.id.to_string(), "agent_name": "eval-agent", "source": "cli",
               "started_at": started_at, "metadata": self.metadata})
    }

    pub fn duration_ms(&self) -> i64 {
        self.events.last().map_or(0, |e| e.offset_ms)
    }
}

fn pass_key(check: Check, command: &'static str) -> (Check, &'static str) {
    (check, if check == Check::Run { command } else { "" })
}

/// `count` sessions from `seed`, cycling through the languages.
pub fn generate(seed: u64, count: usize) -> Vec<Session> {
    (0..count)
        .map(|i| {
            let lang = &LANGUAGES[i % LANGUAGES.len()];
            Gen::new(seed, i as u64, lang).run()
        })
        .collect()
}

/// SplitMix64: small, seeded, good enough for picking stories.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        uuid::Builder::from_random_bytes(b).into_uuid()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum PathStyle {
    Relative,
    DotRelative,
    Absolute,
}

/// A bug in the code right now.
struct Active {
    bug: &'static Bug,
    story: &'static Story,
    /// The agent edit that introduced it; `None` when a human did.
    cause: Option<usize>,
    /// True pairs recorded for it.
    pairs: Vec<usize>,
}

/// A repaired bug waiting for the check that shows the repair.
struct Repaired {
    pairs: Vec<usize>,
    exposed_by: &'static [Check],
    /// The command that failed: the agent re-runs it to see the repair.
    bug: &'static Bug,
}

struct Gen {
    rng: Rng,
    lang: &'static Language,
    root: String,
    style: PathStyle,
    t: i64,
    events: Vec<EvalEvent>,
    truth: Vec<TruePair>,
    active: Option<Active>,
    repaired: Vec<Repaired>,
    /// When each check last passed (runs by command: running one program
    /// says nothing about another).
    last_pass: BTreeMap<(Check, &'static str), i64>,
    last_edit: BTreeMap<&'static str, i64>,
    cwd_known: bool,
    id: Uuid,
}

const ROOTS: &[&str] = &[
    "/home/dev/shop",
    "/workspace/project",
    "/Users/ana/code/store",
    "/srv/build/repo",
];

impl Gen {
    fn new(seed: u64, index: u64, lang: &'static Language) -> Self {
        let mut rng = Rng(seed ^ index.wrapping_mul(0xA24B_AED4_963E_E407));
        let root = (*rng.pick(ROOTS)).to_owned();
        let style = match rng.below(10) {
            0..=4 => PathStyle::Relative,
            5 => PathStyle::DotRelative,
            _ => PathStyle::Absolute,
        };
        Self {
            id: rng.uuid(),
            cwd_known: rng.chance(0.65),
            rng,
            lang,
            root,
            style,
            t: 0,
            events: Vec::new(),
            truth: Vec::new(),
            active: None,
            repaired: Vec::new(),
            last_pass: BTreeMap::new(),
            last_edit: BTreeMap::new(),
        }
    }

    fn run(mut self) -> Session {
        let rounds = self.rng.range(4, 8);
        for _ in 0..rounds {
            self.round();
        }
        self.checks(&[Check::Build, Check::Test]);
        let metadata = if self.cwd_known {
            json!({"cwd": self.root, "branch": "main"})
        } else {
            json!({"branch": "main"})
        };
        Session {
            id: self.id,
            language: self.lang.name,
            metadata,
            events: self.events,
            truth: self.truth,
        }
    }

    fn push(&mut self, actor: &'static str, kind: &'static str, data: Value, tag: &str) -> usize {
        let id = self.rng.uuid();
        self.events.push(EvalEvent {
            id,
            offset_ms: self.t,
            actor,
            kind,
            data,
            tag: tag.to_owned(),
        });
        self.events.len() - 1
    }

    fn wait(&mut self, lo_s: i64, hi_s: i64) {
        self.t += self.rng.range(lo_s * 1000, hi_s * 1000);
    }

    fn path(&self, file: &str) -> String {
        match self.style {
            PathStyle::Relative => file.to_owned(),
            PathStyle::DotRelative => format!("./{file}"),
            PathStyle::Absolute => format!("{}/{file}", self.root),
        }
    }

    fn edit(&mut self, file: &'static str, actor: &'static str, tag: &str) -> usize {
        self.wait(2, 15);
        let data = json!({"path": self.path(file), "lines_added": self.rng.range(1, 40),
                          "lines_removed": self.rng.range(0, 12), "operation": "modify"});
        self.last_edit.insert(file, self.t);
        self.push(actor, "file_edit", data, tag)
    }

    fn think(&mut self) {
        self.wait(3, 20);
        if self.rng.chance(0.05) {
            let err = "anthropic: 429 Too Many Requests: rate_limit_error: This request would exceed the rate limit for your organization";
            self.push(
                "agent",
                "llm_call",
                json!({"provider": "anthropic", "model": "claude-sonnet", "input_tokens": 0,
                "output_tokens": 0, "status": "error", "error": err}),
                "rate_limit",
            );
            self.wait(5, 30);
        }
        let (i, o) = (self.rng.range(2_000, 40_000), self.rng.range(100, 2_000));
        let data = json!({"provider": "anthropic", "model": "claude-sonnet",
            "input_tokens": i, "output_tokens": o,
            "cost_usd": ((i as f64 * 3e-6 + o as f64 * 15e-6) * 1e6).round() / 1e6,
            "latency_ms": self.rng.range(800, 9_000), "status": "ok"});
        self.push("agent", "llm_call", data, "llm");
    }

    fn look(&mut self) {
        self.wait(1, 6);
        let file = *self.rng.pick(self.lang.files);
        match self.rng.below(5) {
            0 => {
                self.push(
                    "agent",
                    "tool_call",
                    json!({"tool": "read_file", "status": "ok", "duration_ms": 12}),
                    "read",
                );
            }
            1 if self.rng.chance(0.15) => {
                self.push(
                    "agent",
                    "tool_call",
                    json!({"tool": "web_search", "status": "timeout", "duration_ms": 30_000,
                    "error": "request timed out after 30s"}),
                    "tool_timeout",
                );
            }
            2 => {
                self.push(
                    "agent",
                    "command",
                    json!({"command": "git status --short", "exit_code": 0,
                    "duration_ms": 40, "output": format!(" M {file}\n")}),
                    "read",
                );
            }
            3 => {
                self.push(
                    "agent",
                    "command",
                    json!({"command": format!("cat {file}"), "exit_code": 0,
                    "duration_ms": 5, "output": "// ..."}),
                    "read",
                );
            }
            _ => {
                self.push(
                    "agent",
                    "command",
                    json!({"command": "ls -la", "exit_code": 0, "duration_ms": 4,
                    "output": "total 24\ndrwxr-xr-x  6 dev dev 4096 ."}),
                    "read",
                );
            }
        }
    }

    /// Files the agent may edit without making the active story ambiguous.
    fn free_files(&self) -> Vec<&'static str> {
        self.lang
            .files
            .iter()
            .copied()
            .filter(|f| match &self.active {
                Some(a) => *f != a.story.blame && !a.story.quiet.contains(f),
                None => true,
            })
            .collect()
    }

    /// A bug and story whose quiet files were not edited since the bug's
    /// check last passed.
    fn choose_bug(&mut self, blame: Option<&str>) -> Option<(&'static Bug, &'static Story)> {
        let mut options = Vec::new();
        for bug in self.lang.bugs {
            for story in bug.stories {
                if blame.is_some_and(|b| b != story.blame) {
                    continue;
                }
                let passed = self
                    .last_pass
                    .get(&pass_key(bug.check, bug.command))
                    .copied();
                let quiet = story.quiet.iter().all(|q| match self.last_edit.get(q) {
                    None => true,
                    Some(&e) => passed.is_some_and(|p| p > e),
                });
                if quiet {
                    options.push((bug, story));
                }
            }
        }
        (!options.is_empty()).then(|| *self.rng.pick(&options))
    }

    fn round(&mut self) {
        self.wait(5, 60);
        if self.rng.chance(0.08) {
            self.wait(120, 480); // a long pause: meeting, review, lunch
        }
        if self.rng.chance(0.3) {
            self.push(
                "human",
                "user_message",
                json!({"text": "please continue"}),
                "user",
            );
        }
        self.think();
        self.look();
        let mut sequence = self.sequence();
        // A bug always fails the round that introduced it (its check is in
        // that round's sequence), so an active bug here has failed.
        if self.active.is_some() {
            self.repair(&mut sequence);
        } else {
            self.work(&mut sequence);
        }
        self.checks(&sequence);
    }

    /// Which checks the agent runs this round.
    fn sequence(&mut self) -> Vec<Check> {
        use Check::*;
        match (self.lang.name, self.rng.below(3)) {
            ("python", 0) => vec![Run],
            ("python", 1) => vec![Test, Run],
            ("python", _) => vec![Test],
            ("c", _) => vec![Build, Test],
            (_, 0) => vec![Build, Run],
            (_, 1) => vec![Build],
            _ => vec![Build, Test],
        }
    }

    /// Clean edits, and perhaps a breaking one (by the agent or a human).
    fn work(&mut self, sequence: &mut Vec<Check>) {
        for _ in 0..self.rng.range(1, 3) {
            let f = *self.rng.pick(&self.free_files());
            self.edit(f, "agent", "clean_edit");
        }
        if self.rng.chance(0.55) {
            if let Some((bug, story)) = self.choose_bug(None) {
                if self.rng.chance(0.35) {
                    self.edit(story.blame, "agent", "clean_edit_before_break");
                    self.look();
                }
                let human = self.rng.chance(0.12);
                let e = self.edit(
                    story.blame,
                    if human { "human" } else { "agent" },
                    "breaking_edit",
                );
                self.active = Some(Active {
                    bug,
                    story,
                    cause: (!human).then_some(e),
                    pairs: Vec::new(),
                });
                if self.rng.chance(0.4) {
                    let f = *self.rng.pick(&self.free_files());
                    self.edit(f, "agent", "clean_edit_after_break");
                }
                if !sequence.contains(&bug.check) {
                    sequence.push(bug.check);
                }
                return;
            }
        }
        if self.rng.chance(0.12) {
            let f = *self.rng.pick(&self.free_files());
            self.edit(f, "human", "human_clean_edit");
        }
    }

    /// Repairs the active bug; sometimes the repair breaks the file anew.
    fn repair(&mut self, sequence: &mut Vec<Check>) {
        let Some(a) = self.active.take() else { return };
        self.look();
        let actor = if a.cause.is_none() && self.rng.chance(0.5) {
            "human"
        } else {
            "agent"
        };
        let e = self.edit(a.story.blame, actor, "repair_edit");
        self.repaired.push(Repaired {
            pairs: a.pairs,
            exposed_by: a.bug.exposed_by,
            bug: a.bug,
        });
        let mut check = a.bug.check;
        if actor == "agent" && self.rng.chance(0.2) {
            if let Some((bug, story)) = self.choose_bug(Some(a.story.blame)) {
                if bug.name != a.bug.name {
                    self.active = Some(Active {
                        bug,
                        story,
                        cause: Some(e),
                        pairs: Vec::new(),
                    });
                    check = bug.check;
                }
            }
        }
        // Usually the same check first; sometimes the others before it.
        sequence.retain(|c| *c != check);
        if self.rng.chance(0.75) {
            sequence.insert(0, check);
        } else {
            sequence.push(check);
        }
    }

    fn checks(&mut self, sequence: &[Check]) {
        for &check in sequence {
            self.wait(2, 20);
            if !self.check(check) {
                if self.rng.chance(0.25) {
                    self.wait(3, 30);
                    self.check(check);
                }
                return;
            }
        }
    }

    fn command_for(&self, check: Check) -> &'static str {
        match check {
            Check::Build => self.lang.build.unwrap_or(self.lang.test),
            Check::Test => self.lang.test,
            Check::Run => self.lang.run,
        }
    }

    /// Runs one check; false when it failed.
    fn check(&mut self, check: Check) -> bool {
        if self.lang.build.is_none() && check == Check::Build {
            return true;
        }
        let exposed = self
            .active
            .as_ref()
            .filter(|a| a.bug.exposed_by.contains(&check))
            .map(|a| (a.bug, a.cause));
        if let Some((bug, cause)) = exposed {
            let command = if bug.check == check {
                bug.command
            } else {
                self.command_for(check)
            };
            let long = self.rng.chance(0.2);
            let text = self.output(bug.text, long);
            let who = if cause.is_some() { "bug" } else { "human_bug" };
            let tag = format!("{who}:{}{}", if long { "long_log:" } else { "" }, bug.name);
            let f = self.failing(command, bug.shape, text, &tag);
            let mut effects = vec![f];
            if let (Some((file, line)), true) = (bug.location, self.rng.chance(0.3)) {
                self.wait(0, 1);
                let message = bug
                    .text
                    .lines()
                    .find(|l| l.contains("rror") || l.contains("panicked"))
                    .unwrap_or("error")
                    .trim()
                    .to_owned();
                let e = self.push(
                    "agent",
                    "error",
                    json!({"message": message, "file": self.path(file),
                    "line": line, "error_type": "diagnostic"}),
                    &format!("{who}:diagnostic:{}", bug.name),
                );
                effects.push(e);
            }
            if let Some(c) = cause {
                for effect in effects {
                    let label = self.active.as_ref().map_or("", |a| a.story.label);
                    self.truth.push(TruePair {
                        cause: c,
                        effect,
                        fixed_by: None,
                        label,
                    });
                    let k = self.truth.len() - 1;
                    if let Some(a) = self.active.as_mut() {
                        a.pairs.push(k);
                    }
                }
            }
            return false;
        }
        let flakes: Vec<&'static Flake> = self
            .lang
            .flakes
            .iter()
            .filter(|f| f.check.is_none_or(|c| c == check))
            .collect();
        if !flakes.is_empty() && self.rng.chance(0.08) {
            let flake = *self.rng.pick(&flakes);
            let text = self.output(flake.text, false);
            self.failing(
                flake.command,
                flake.shape,
                text,
                &format!("flake:{}", flake.name),
            );
            return false;
        }
        let rerun = self
            .repaired
            .iter()
            .find(|r| r.bug.check == check)
            .map(|r| r.bug.command);
        let command = rerun.unwrap_or_else(|| self.command_for(check));
        let (passed, duration) = (self.rng.range(5, 40), self.rng.range(300, 40_000));
        let s = if matches!(check, Check::Test)
            && self.lang.name == "python"
            && self.rng.chance(0.5)
        {
            let data = json!({"framework": "pytest", "passed": passed, "failed": 0, "skipped": 0,
                              "duration_ms": duration, "output": format!("{passed} passed")});
            self.push("agent", "test_run", data, "pass")
        } else {
            let data = json!({"command": command, "exit_code": 0, "duration_ms": duration, "output": "ok"});
            self.push("agent", "command", data, "pass")
        };
        self.last_pass.insert(pass_key(check, command), self.t);
        let truth = &mut self.truth;
        self.repaired.retain(|r| {
            if !r.exposed_by.contains(&check) {
                return true;
            }
            for &k in &r.pairs {
                truth[k].fixed_by = Some(s);
            }
            false
        });
        true
    }

    /// The recorded text for this project, optionally after > 4 KiB of
    /// build noise.
    fn output(&mut self, text: &str, long: bool) -> String {
        let venv = format!("{}/.venv", self.root);
        let body = text.replace("{root}", &self.root).replace("{venv}", &venv);
        if !long {
            return body;
        }
        let mut noise = String::new();
        let mut n = 0;
        while noise.len() < 4600 {
            n += 1;
            noise.push_str(&self.lang.noise.replace("{n}", &n.to_string()));
            noise.push('\n');
        }
        format!("{noise}{body}")
    }

    fn failing(&mut self, command: &str, shape: Shape, output: String, tag: &str) -> usize {
        let code = match self.lang.name {
            "rust" => 101,
            "typescript" => 2,
            _ => 1,
        };
        let (passed, duration) = (self.rng.range(1, 30), self.rng.range(200, 60_000));
        match shape {
            Shape::TestRun(framework) if self.rng.chance(0.5) => {
                let data = json!({"framework": framework, "passed": passed, "failed": 1,
                                  "skipped": 0, "duration_ms": duration, "output": output});
                self.push("agent", "test_run", data, tag)
            }
            _ => {
                let data = json!({"command": command, "exit_code": code,
                                  "duration_ms": duration, "output": output});
                self.push("agent", "command", data, tag)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_labelled() {
        let a = generate(7, 12);
        let b = generate(7, 12);
        assert_eq!(a.len(), 12);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.id, y.id);
            assert_eq!(x.events.len(), y.events.len());
            assert_eq!(x.truth, y.truth);
        }
        let pairs: usize = a.iter().map(|s| s.truth.len()).sum();
        assert!(pairs > 5, "{pairs} true pairs");
        for s in &a {
            for p in &s.truth {
                assert!(p.cause < p.effect);
                assert_eq!(s.events[p.cause].kind, "file_edit");
                assert_eq!(s.events[p.cause].actor, "agent");
                assert!(p.fixed_by.is_none_or(|f| f > p.effect));
            }
        }
    }
}
