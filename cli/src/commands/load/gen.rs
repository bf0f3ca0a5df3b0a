//! Synthetic but realistic coding-agent sessions for the load generator.
//!
//! The mix follows what an agent session looks like in practice: LLM calls
//! and tool calls dominate, edits are followed by builds and tests, a good
//! share of commands fail with real-looking compiler or test output, and
//! errors carry stack traces. Events weigh 300-800 bytes as JSON, like the
//! real thing. Variable parts (line numbers, counts, ids) vary so the error
//! clustering downstream sees templates with parameters, not one string.
//!
//! Bodies are written straight into a `String`: building `serde_json::Value`
//! trees would spend on the client the very cores the services need.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use uuid::Uuid;

/// A tiny deterministic PRNG (SplitMix64): reproducible runs from `--seed`
/// without another dependency; statistical quality is irrelevant here.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

const FILES: &[&str] = &[
    "services/api/src/routes/ingest.rs",
    "services/api/src/state.rs",
    "shared/core/src/model/submission.rs",
    "shared/core/src/wire/codec.rs",
    "services/raw-sink/src/landing.rs",
    "src/components/SessionTable.tsx",
    "src/lib/http/client.ts",
    "app/models/user.py",
    "app/services/billing.py",
    "tests/test_billing.py",
];

const TOOLS: &[&str] = &[
    "read_file",
    "grep",
    "list_dir",
    "str_replace",
    "run_terminal",
    "web_search",
];
const ACTIONS: &[&str] = &["plan", "reflect", "summarize_context", "select_next_step"];
const MODELS: &[(&str, &str, f64, f64)] = &[
    ("anthropic", "claude-sonnet-4", 3.0e-6, 15.0e-6),
    ("openai", "gpt-4.1", 2.0e-6, 8.0e-6),
    ("anthropic", "claude-haiku-3.5", 0.8e-6, 4.0e-6),
];
const USER_TEXTS: &[&str] = &[
    "The billing tests fail on CI but pass locally, can you look at the timezone handling?",
    "Please add pagination to the sessions endpoint and keep the cursor opaque.",
    "That change broke the build; revert the signature change and try again more carefully.",
];
const FAILED_COMMANDS: &[(&str, &str)] = &[
    ("cargo build --release", "error[E0502]: cannot borrow `state` as mutable because it is also borrowed as immutable\n  --> {file}:{line}:9\n   |\n{line} |     let cfg = state.settings();\n   |               ----- immutable borrow occurs here\n{line2} |     state.reload()?;\n   |     ^^^^^^^^^^^^^^ mutable borrow occurs here\n\nerror: could not compile `achilles-api` (lib) due to 1 previous error"),
    ("npm test -- --runInBand", "FAIL src/lib/http/client.test.ts\n  ● client › retries on 503\n\n    expect(received).toBe(expected)\n\n    Expected: 3\n    Received: {n}\n\n      at Object.<anonymous> ({file}:{line}:21)\n\nTests: 1 failed, {m} passed, {total} total"),
    ("pytest -x tests/test_billing.py", "tests/test_billing.py::test_invoice_rounding FAILED\n\n    def test_invoice_rounding():\n>       assert invoice.total == Decimal(\"{n}.10\")\nE       AssertionError: assert Decimal('{n}.09') == Decimal('{n}.10')\n\n{file}:{line}: AssertionError\n1 failed, {m} passed in 2.{n}s"),
];
const OK_COMMANDS: &[(&str, &str)] = &[
    ("cargo check --workspace", "    Checking achilles-core v0.1.0\n    Checking achilles-api v0.1.0\n    Finished `dev` profile [unoptimized + debuginfo] target(s) in {n}.{m}s"),
    ("git diff --stat", " {file} | {n} ++++++++----\n 1 file changed, {m} insertions(+), {n} deletions(-)"),
    ("ls -la src", "total {n}\ndrwxr-xr-x  5 dev dev 4096 Nov 21 10:00 .\n-rw-r--r--  1 dev dev {m} Nov 21 10:00 lib.rs\n-rw-r--r--  1 dev dev {line} Nov 21 10:00 main.rs"),
];
const ERRORS: &[(&str, &str, &str)] = &[
    ("TypeError", "TypeError: Cannot read properties of undefined (reading 'sessionId') at line {line}", "TypeError: Cannot read properties of undefined (reading 'sessionId')\n    at SessionTable.render ({file}:{line}:17)\n    at renderWithHooks (react-dom.development.js:{n}:18)\n    at updateFunctionComponent (react-dom.development.js:{m}:20)"),
    ("E0308", "mismatched types: expected `u64`, found `i64` in {file} at line {line}", "error[E0308]: mismatched types\n --> {file}:{line}:30\n  |\n{line} |     let n: u64 = row.get(\"count\");\n  |            ---   ^^^^^^^^^^^^^^^^ expected `u64`, found `i64`"),
    ("KeyError", "KeyError: 'customer_{n}' while computing invoice totals", "Traceback (most recent call last):\n  File \"{file}\", line {line}, in compute_totals\n    rate = rates[customer_id]\n  File \"app/services/pricing.py\", line {m}, in __getitem__\n    raise KeyError(key)\nKeyError: 'customer_{n}'"),
];

/// One session's event stream.
///
/// Event time advances by about `gap` per event (jittered), like an agent
/// that spends seconds on each LLM call or command, and each session is
/// back-dated so that its planned last event lands near "now". Sending a
/// whole session in seconds with wall-clock timestamps would squeeze what
/// is really half an hour of work into one instant, and every event-time
/// window of the processor (correlations, lateness) would see an
/// unrealistically dense session.
pub struct SessionGen {
    rng: Rng,
    seq: u64,
    last: DateTime<Utc>,
    gap_us: i64,
    /// Event-time span of one session: planned events × gap.
    span: chrono::Duration,
    run_id: String,
}

impl SessionGen {
    /// `gap_ms` of event time between events; `planned` events per session.
    pub fn new(seed: u64, gap_ms: u64, planned: u64) -> Self {
        let mut rng = Rng::new(seed);
        let run_id = format!("r-{:08x}", rng.next_u64() as u32);
        // Validation accepts events up to 7 days old; stay well inside.
        let span_ms = planned.saturating_mul(gap_ms).min(6 * 24 * 3_600_000);
        let span = chrono::Duration::milliseconds(span_ms as i64);
        Self {
            rng,
            seq: 0,
            last: Utc::now() - span,
            gap_us: (gap_ms as i64).saturating_mul(1_000),
            span,
            run_id,
        }
    }

    /// A `POST /v1/sessions/start` body for `id`; rewinds the event clock
    /// to the new session's (back-dated) start.
    pub fn start_body(&mut self, id: Uuid) -> String {
        self.last = Utc::now() - self.span;
        let started = self.last.to_rfc3339_opts(SecondsFormat::Micros, true);
        let (_, model, _, _) = *self.rng.pick(MODELS);
        format!(
            r#"{{"id":"{id}","agent_name":"achilles-bench","agent_model":"{model}","source":"cli","started_at":"{started}","metadata":{{"bench":true,"repo":"github.com/acme/billing","branch":"fix/invoice-rounding"}}}}"#
        )
    }

    /// A `POST /v1/events/batch` body with `n` events for `session`.
    pub fn batch_body(&mut self, session: Uuid, n: usize) -> String {
        let mut out = String::with_capacity(64 + n * 600);
        let _ = write!(out, r#"{{"session_id":"{session}","events":["#);
        for i in 0..n {
            if i > 0 {
                out.push(',');
            }
            self.write_event(&mut out);
        }
        out.push_str("]}");
        out
    }

    /// Appends one event object. Event times strictly increase within a
    /// session and never pass the wall clock.
    pub fn write_event(&mut self, out: &mut String) {
        let now = Utc::now();
        // 0.2x to 1.8x the gap: agents alternate quick tool calls and slow
        // LLM calls or builds.
        let step =
            self.gap_us / 5 + (self.rng.next_u64() % (self.gap_us as u64 * 8 / 5 + 1)) as i64;
        let next = (self.last + chrono::Duration::microseconds(step)).min(now);
        self.last = next.max(self.last + chrono::Duration::microseconds(1));
        self.seq += 1;
        let at = self.last.to_rfc3339_opts(SecondsFormat::Micros, true);
        let file = *self.rng.pick(FILES);
        let line = self.rng.range(12, 480);
        let n = self.rng.range(2, 97);
        let m = self.rng.range(100, 999);
        let fill = |t: &str| {
            t.replace("{file}", file)
                .replace("{line2}", &(line + 1).to_string())
                .replace("{line}", &line.to_string())
                .replace("{n}", &n.to_string())
                .replace("{m}", &m.to_string())
                .replace("{total}", &(m + 1).to_string())
        };
        let roll = self.rng.range(0, 99);
        let _ = write!(out, r#"{{"occurred_at":"{at}","#);
        match roll {
            0..=19 => {
                let (provider, model, cin, cout) = *self.rng.pick(MODELS);
                let input = self.rng.range(800, 60_000);
                let output = self.rng.range(50, 4_000);
                let cost = input as f64 * cin + output as f64 * cout;
                let failed = self.rng.chance(3);
                let _ = write!(
                    out,
                    r#""kind":"llm_call","data":{{"provider":"{provider}","model":"{model}","input_tokens":{input},"output_tokens":{output},"cost_usd":{cost:.6},"latency_ms":{},"status":"{}"{}}}"#,
                    self.rng.range(400, 30_000),
                    if failed { "error" } else { "ok" },
                    if failed {
                        r#","error":"overloaded_error: upstream capacity exceeded, retry after 2s""#
                    } else {
                        ""
                    },
                );
            }
            20..=39 => {
                let tool = *self.rng.pick(TOOLS);
                let failed = self.rng.chance(5);
                let _ = write!(
                    out,
                    r#""kind":"tool_call","data":{{"tool":"{tool}","status":"{}","duration_ms":{}{}}}"#,
                    if failed { "error" } else { "ok" },
                    self.rng.range(2, 3_000),
                    if failed {
                        r#","error":"no such file or directory""#
                    } else {
                        ""
                    },
                );
            }
            40..=57 => {
                let _ = write!(
                    out,
                    r#""kind":"file_edit","data":{{"path":"{file}","lines_added":{n},"lines_removed":{},"operation":"modify"}}"#,
                    self.rng.range(0, 40),
                );
            }
            58..=72 => {
                let (command, output, code) = if self.rng.chance(35) {
                    let (c, o) = *self.rng.pick(FAILED_COMMANDS);
                    (c, o, if c.starts_with("cargo") { 101 } else { 1 })
                } else {
                    let (c, o) = *self.rng.pick(OK_COMMANDS);
                    (c, o, 0)
                };
                let _ = write!(
                    out,
                    r#""kind":"command","data":{{"command":"{command}","exit_code":{code},"duration_ms":{},"output":"#,
                    self.rng.range(40, 90_000)
                );
                push_json_str(out, &fill(output));
                out.push('}');
            }
            73..=80 => {
                let failed = if self.rng.chance(40) {
                    self.rng.range(1, 4)
                } else {
                    0
                };
                let _ = write!(
                    out,
                    r#""kind":"test_run","data":{{"framework":"pytest","passed":{m},"failed":{failed},"skipped":{},"duration_ms":{},"output":"#,
                    self.rng.range(0, 5),
                    self.rng.range(900, 120_000)
                );
                let text = if failed > 0 {
                    fill("FAILED tests/test_billing.py::test_invoice_rounding - AssertionError: assert Decimal('{n}.09') == Decimal('{n}.10')")
                } else {
                    fill("{m} passed in {n}.42s")
                };
                push_json_str(out, &text);
                out.push('}');
            }
            81..=87 => {
                let (kind, message, stack) = *self.rng.pick(ERRORS);
                out.push_str(r#""kind":"error","data":{"message":"#);
                push_json_str(out, &fill(message));
                let _ = write!(out, r#","error_type":"{kind}","stack_trace":"#);
                push_json_str(out, &fill(stack));
                let _ = write!(out, r#","file":"{file}","line":{line}}}"#);
            }
            88..=94 => {
                let action = *self.rng.pick(ACTIONS);
                let _ = write!(
                    out,
                    r#""kind":"agent_action","data":{{"action":"{action}","status":"ok","duration_ms":{},"detail":"step {n}: narrow the failing test to the rounding helper before editing {file}"}}"#,
                    self.rng.range(5, 2_000)
                );
            }
            _ => {
                let text = *self.rng.pick(USER_TEXTS);
                out.push_str(r#""kind":"user_message","data":{"text":"#);
                push_json_str(out, text);
                out.push('}');
            }
        }
        // Attributes make every event unique (seq) and bring the small
        // kinds up to a realistic size.
        let _ = write!(
            out,
            r#","attributes":{{"run_id":"{}","seq":{},"step":{},"tool_use_id":"toolu_{:016x}","host":"dev-laptop-07","cwd":"/home/dev/src/billing","git_sha":"{:08x}","agent_version":"1.4.2"}}}}"#,
            self.run_id,
            self.seq,
            self.seq / 4,
            self.rng.next_u64(),
            self.rng.next_u64() as u32
        );
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use achilles_core::model::submission::{from_json, Context, EventSubmission};
    use achilles_core::model::{Limits, SessionId, TenantId};

    /// Every generated event must pass the API's own validation, and the
    /// sizes must stay realistic.
    #[test]
    fn generated_events_are_valid_and_realistic() {
        let tenant = TenantId::parse("dev").expect("valid tenant");
        let limits = Limits::default();
        let session = SessionId::new_v7();
        let mut g = SessionGen::new(7, 2_000, 1_000);
        let mut total = 0usize;
        let n = 2_000;
        for _ in 0..n {
            let mut s = String::new();
            g.write_event(&mut s);
            total += s.len();
            let v: serde_json::Value = serde_json::from_str(&s).expect("generated JSON parses");
            let ctx = Context {
                tenant: &tenant,
                now: Utc::now(),
                limits: &limits,
                scrub: None,
            };
            from_json::<EventSubmission>(v)
                .and_then(|e| e.validate(ctx, Some(session)))
                .unwrap_or_else(|e| panic!("{s}: {e:?}"));
        }
        let avg = total / n;
        assert!((300..=800).contains(&avg), "average event size {avg} B");
    }
}
