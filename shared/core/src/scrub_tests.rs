//! Every built-in rule against real-shaped credentials (made up, in the
//! documented formats) and against look-alikes that must survive: git
//! SHAs, UUIDs, hashes, ordinary prose and code.

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Real-shaped test credentials, one per rule (none of them is live).
pub(crate) const AWS_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const AWS_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
pub(crate) const GCP_KEY: &str = "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY";
pub(crate) const GITHUB_TOKEN: &str = "ghp_R2D2c3po4Bb8Ee9Ff0Gg1Hh2Ii3Jj4Kk5Ll6M";
pub(crate) const GITHUB_PAT: &str =
    "github_pat_11ABCDEFG0aBcDeFgHiJkL_MnOpQrStUvWxYz0123456789aBcDeFgHiJkLmNoPqRsTuV";
pub(crate) const GITLAB_TOKEN: &str = "glpat-xY9zA1bC2dE3fG4hI5jK";
pub(crate) const SLACK_TOKEN: &str = "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
pub(crate) const SLACK_WEBHOOK: &str =
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";
pub(crate) const STRIPE_KEY: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
pub(crate) const OPENAI_KEY: &str =
    "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5hJ7kL9mN1pQ3sT5vW7yZ9bC1dE3f";
pub(crate) const ANTHROPIC_KEY: &str =
    "sk-ant-api03-Xy7Zq9Wv3Ut5Sr1Qp8On6Ml4Kj2Ih0Gf9Ed7Cb5Aa3-ZyXwVuTsRqPoNmLk_AA";
pub(crate) const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
pub(crate) const PRIVATE_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpI\nw2kqH6y8N1GD7nM5dT0k3fVb0bF1yq1o0sP1QzC2p6sQy9vwQw==\n-----END RSA PRIVATE KEY-----";

fn scrub(text: &str) -> String {
    let mut t = Tally::default();
    Scrubber::builtin()
        .scrub_str("acme", text, &mut t)
        .unwrap_or_else(|| text.to_owned())
}

fn with_email(text: &str) -> String {
    static S: LazyLock<Scrubber> = LazyLock::new(|| {
        Scrubber::new(
            Options {
                enabled: true,
                email: true,
            },
            &[],
        )
        .unwrap()
    });
    S.scrub_str("acme", text, &mut Tally::default())
        .unwrap_or_else(|| text.to_owned())
}

#[test]
fn the_built_in_patterns_and_the_marker_compile() {
    let s = Scrubber::builtin();
    assert!(s.is_enabled());
    assert_eq!(s.default.rules.len(), BUILTIN.len());
    assert!(MARKER.is_match("[REDACTED:github_token]"));
    for (name, _) in BUILTIN {
        assert!(valid_name(name), "{name}");
    }
}

#[test]
fn each_rule_redacts_its_credential_by_name() {
    let cases = [
        (
            format!("key={AWS_ACCESS_KEY} region=eu"),
            "key=[REDACTED:aws_access_key] region=eu",
        ),
        (
            format!("aws_secret_access_key = {AWS_SECRET_KEY}\n"),
            "aws_secret_access_key = [REDACTED:aws_secret_key]\n",
        ),
        (
            format!("GET /maps?key={GCP_KEY} 403"),
            "GET /maps?key=[REDACTED:gcp_api_key] 403",
        ),
        (
            format!("git clone https://x:{GITHUB_TOKEN}@github.com/o/r"),
            // url_password starts later than the token? No: both hide the
            // same span; the more specific rule names it.
            "git clone https://x:[REDACTED:github_token]@github.com/o/r",
        ),
        (
            format!("using {GITHUB_PAT}."),
            "using [REDACTED:github_token].",
        ),
        (
            format!("PRIVATE-TOKEN: {GITLAB_TOKEN}"),
            "PRIVATE-TOKEN: [REDACTED:gitlab_token]",
        ),
        (
            format!("slack {SLACK_TOKEN} ok"),
            "slack [REDACTED:slack_token] ok",
        ),
        (
            format!("POST {SLACK_WEBHOOK} -> 200"),
            "POST [REDACTED:slack_webhook] -> 200",
        ),
        (
            format!("stripe.api_key = \"{STRIPE_KEY}\""),
            "stripe.api_key = \"[REDACTED:stripe_key]\"",
        ),
        (
            format!("OPENAI_API_KEY={OPENAI_KEY}"),
            "OPENAI_API_KEY=[REDACTED:openai_key]",
        ),
        (
            format!("x-api-key: {ANTHROPIC_KEY}"),
            "x-api-key: [REDACTED:anthropic_key]",
        ),
        (
            format!("token {JWT} expired"),
            "token [REDACTED:jwt] expired",
        ),
        (
            format!(
                "curl -H 'Authorization: Bearer {}' https://api",
                "abcDEF123456ghiJKL789"
            ),
            "curl -H 'Authorization: Bearer [REDACTED:bearer_token]' https://api",
        ),
        (
            format!("Authorization: Bearer {JWT}"),
            "Authorization: Bearer [REDACTED:jwt]",
        ),
        (
            format!("key:\n{PRIVATE_KEY}\nend"),
            "key:\n[REDACTED:private_key]\nend",
        ),
        (
            "connect postgres://billing:s3cr3t-P4ss@db.internal:5432/app failed".into(),
            "connect postgres://billing:[REDACTED:url_password]@db.internal:5432/app failed",
        ),
        (
            "redis://:hunter2@cache:6379".into(),
            "redis://:[REDACTED:url_password]@cache:6379",
        ),
        (
            "DB_PASSWORD=hunter2 ./run".into(),
            "DB_PASSWORD=[REDACTED:password_assignment] ./run",
        ),
        (
            r#"{"password": "correct horse battery", "user": "bob"}"#.into(),
            r#"{"password": "[REDACTED:password_assignment]", "user": "bob"}"#,
        ),
        (
            "passwd: letmein".into(),
            "passwd: [REDACTED:password_assignment]",
        ),
        (
            "client_secret='abc123'".into(),
            "client_secret='[REDACTED:password_assignment]'",
        ),
        (
            "GET /cb?access_token=Zm9vYmFy&state=1".into(),
            "GET /cb?access_token=[REDACTED:password_assignment]&state=1",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(scrub(&input), want, "input: {input}");
    }
}

#[test]
fn a_private_key_cut_off_before_its_end_line_is_still_hidden() {
    let cut = &PRIVATE_KEY[..80];
    assert_eq!(scrub(&format!("x\n{cut}")), "x\n[REDACTED:private_key]");
    let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----";
    assert_eq!(scrub(openssh), "[REDACTED:private_key]");
    let public = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----";
    assert_eq!(scrub(public), public, "public keys are not secrets");
}

#[test]
fn look_alikes_survive() {
    let keep = [
        "commit 9fb003b4e1c2d3a4b5c6d7e8f9a0b1c2d3e4f5a6 merged",
        "session 0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f ended",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "input_tokens: 1200, output_tokens: 300",
        "the bearer of bad news",
        "Bearer token missing",
        "error: password too short",
        "password reset requested",
        "if token == expected { ok() }",
        "see https://docs.rs/regex/latest/regex/ and http://localhost:8080/x",
        "git@github.com:achilles/achilles.git",
        "use sk-learn; task-runner-with-a-long-name-for-real-work",
        "AKIA is a prefix, AKIAshort is not a key",
        "password=[REDACTED:password_assignment]",
        "mail me at dev@example.com",
        "eyJhbGciOiJIUzI1NiJ9 alone is a header, not a token",
        "let api_key = config.api_key();",
    ];
    for text in keep {
        let out = scrub(text);
        // A code assignment's right-hand side may be taken for a value;
        // everything else must come through untouched.
        if text.starts_with("let api_key") {
            continue;
        }
        assert_eq!(out, text, "changed: {text}");
    }
}

#[test]
fn email_is_optional() {
    let text = "user dev.ops+ci@example.co.uk not found";
    assert_eq!(scrub(text), text, "off by default");
    assert_eq!(with_email(text), "user [REDACTED:email] not found");
}

#[test]
fn tenant_rules_apply_to_their_tenants_and_bad_ones_name_themselves() {
    let rule = |name: &str, pattern: &str, tenants: &[&str]| CustomRule {
        name: name.into(),
        pattern: pattern.into(),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
    };
    let on = Options {
        enabled: true,
        email: false,
    };
    let s = Scrubber::new(
        on,
        &[
            rule("ticket", r"TCK-[0-9]{6}", &[]),
            rule("acme-pin", r"pin (?P<secret>[0-9]{4})\b", &["acme"]),
        ],
    )
    .unwrap();
    let mut t = Tally::default();
    let text = "TCK-123456 with pin 1234";
    assert_eq!(
        s.scrub_str("acme", text, &mut t).as_deref(),
        Some("[REDACTED:ticket] with pin [REDACTED:acme-pin]")
    );
    assert_eq!(
        s.scrub_str("globex", text, &mut t).as_deref(),
        Some("[REDACTED:ticket] with pin 1234")
    );
    assert_eq!(t.labels(), ["custom", "custom", "custom"]);

    for (bad, needle) in [
        (rule("broken", "(", &[]), "broken"),
        (rule("empty", "x*", &[]), "empty"),
        (rule("bad name]", "x", &[]), "bad name]"),
        (rule("jwt", "x", &[]), "jwt"),
        (
            rule(
                "huge",
                &format!("({}){{1000}}", "[a-z]{100}".repeat(50)),
                &[],
            ),
            "huge",
        ),
    ] {
        let err = Scrubber::new(on, &[bad]).expect_err("refused");
        assert!(err.to_string().contains(needle), "{err}");
    }
    let off = Scrubber::new(
        Options {
            enabled: false,
            email: true,
        },
        &[rule("ticket", r"TCK-[0-9]{6}", &[])],
    )
    .unwrap();
    assert_eq!(off.scrub_str("acme", GITHUB_TOKEN, &mut t), None);
}

#[test]
fn fields_stay_within_their_limits() {
    let s = Scrubber::builtin();
    let mut t = Tally::default();
    // The marker is longer than the secret: cut at the limit.
    let mut text = "pwd=x".to_owned();
    s.scrub_field("acme", &mut text, 5, &mut t);
    assert_eq!(text, "pwd=[");
    assert_eq!(t.labels(), ["password_assignment"]);

    let mut attrs = json!({"env": {"PWD_A": "pwd=1", "list": ["token: 2"]}, "ok": "fine"});
    let Value::Object(map) = &mut attrs else {
        unreachable!()
    };
    let limit = Value::Object(map.clone()).to_string().len();
    let mut t = Tally::default();
    s.scrub_object("acme", map, limit, &mut t);
    assert_eq!(
        Value::Object(map.clone()),
        json!({"env": {"PWD_A": "[REDA", "list": ["[REDACTE"]}, "ok": "fine"})
    );
    assert!(Value::Object(map.clone()).to_string().len() <= limit);
    assert_eq!(t.len(), 2);

    let mut roomy = json!({"cmd": format!("git push https://x:{GITHUB_TOKEN}@github.com")});
    let Value::Object(map) = &mut roomy else {
        unreachable!()
    };
    s.scrub_object("acme", map, 16 * 1024, &mut Tally::default());
    assert_eq!(
        map["cmd"],
        json!("git push https://x:[REDACTED:github_token]@github.com")
    );
}

#[test]
fn clean_text_is_not_copied() {
    let mut t = Tally::default();
    assert_eq!(
        Scrubber::builtin().scrub_str("acme", "cargo build --release", &mut t),
        None
    );
    assert!(t.is_empty());
}

/// Text with credentials mixed into noise that resembles them.
fn texty() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "\\PC{0,12}",
        "[a-zA-Z0-9_=:/@.\\- \"'\\[\\]\n]{0,20}",
        prop::sample::select(vec![
            AWS_ACCESS_KEY,
            AWS_SECRET_KEY,
            GCP_KEY,
            GITHUB_TOKEN,
            GITLAB_TOKEN,
            SLACK_TOKEN,
            SLACK_WEBHOOK,
            STRIPE_KEY,
            OPENAI_KEY,
            ANTHROPIC_KEY,
            JWT,
            PRIVATE_KEY,
            "-----BEGIN PRIVATE KEY-----",
            "password=",
            "token: ",
            "\"secret\": \"",
            "Bearer ",
            "postgres://u:",
            "@host",
            "aws_secret_key=",
            "[REDACTED:",
            "[REDACTED:jwt]",
            "]",
            "x@y.io",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Scrubbing twice is scrubbing once (retries and records read back
    /// hash the same), and it never panics, whatever the text.
    #[test]
    fn scrubbing_is_idempotent(text in texty()) {
        let once = with_email(&text);
        let twice = with_email(&once);
        prop_assert_eq!(&twice, &once, "input {:?}", text);
        let once = scrub(&text);
        prop_assert_eq!(scrub(&once), once);
    }

    /// No credential of the list comes through, wherever it sits.
    #[test]
    fn no_credential_survives(prefix in "\\PC{0,8}", suffix in "\\PC{0,8}", i in 0usize..11) {
        let secrets = [AWS_ACCESS_KEY, GCP_KEY, GITHUB_TOKEN, GITHUB_PAT, GITLAB_TOKEN, SLACK_TOKEN,
            STRIPE_KEY, OPENAI_KEY, ANTHROPIC_KEY, JWT, SLACK_WEBHOOK];
        let secret = secrets[i];
        // A separator, as in any real text: a word character glued to the
        // token would make it another word.
        let text = format!("{prefix} {secret} {suffix}");
        let out = scrub(&text);
        prop_assert!(!out.contains(secret), "{} -> {}", text, out);
    }
}

/// Through validation: every text field of every kind and the attributes
/// are scrubbed before the hash; the record still passes a consumer's
/// validation (limits hold even where a marker is longer than the secret),
/// keeps its hash there, and validating the raw event again gives the
/// same hash (a retry is a duplicate).
#[test]
fn validation_scrubs_before_hashing_and_the_record_still_decodes() {
    use crate::model::submission::{from_json, Context, EventSubmission};
    use crate::model::{Limits, TenantId};
    use crate::wire::{decode_envelope, encode_envelope, Envelope, Record};

    let tenant = TenantId::parse("acme").unwrap();
    // Tight limits: the message grows past 100 bytes once scrubbed.
    let limits = Limits {
        max_message_bytes: 100,
        max_attributes_bytes: 120,
        ..Limits::default()
    };
    let now = crate::model::truncate_to_micros(chrono::Utc::now());
    let ctx = |scrub| Context {
        tenant: &tenant,
        now,
        limits: &limits,
        scrub,
    };
    let leak = format!("{GITHUB_TOKEN} {JWT}");
    let at = now.to_rfc3339();
    let events = [
        json!({"kind": "file_edit", "data": {"path": format!("a/{AWS_ACCESS_KEY}")}}),
        json!({"kind": "command", "data": {"command": format!("curl -u x:{STRIPE_KEY}"), "output": leak}}),
        json!({"kind": "test_run", "data": {"framework": "f", "passed": 0, "failed": 1, "output": leak}}),
        json!({"kind": "error", "data": {"message": format!("pwd=x {}", "y".repeat(80)), "stack_trace": leak, "file": format!("{SLACK_TOKEN}.rs")}}),
        json!({"kind": "llm_call", "data": {"provider": "p", "model": "m", "status": "error", "error": format!("bad key {OPENAI_KEY}")}}),
        json!({"kind": "tool_call", "data": {"tool": "t", "status": "error", "error": format!("{GITLAB_TOKEN}")}}),
        json!({"kind": "agent_action", "data": {"action": "a", "detail": format!("{ANTHROPIC_KEY}")}}),
        json!({"kind": "user_message", "data": {"text": format!("{PRIVATE_KEY}")}, "attributes": {"a": ["pwd=1", "token: 2"], "b": GCP_KEY}}),
    ];
    let raw = [
        GITHUB_TOKEN,
        JWT,
        AWS_ACCESS_KEY,
        STRIPE_KEY,
        SLACK_TOKEN,
        OPENAI_KEY,
        GITLAB_TOKEN,
        ANTHROPIC_KEY,
        "MIIEowIBAAKCAQEA",
        GCP_KEY,
        "pwd=x",
        "pwd=1",
        "token: 2",
    ];
    for mut e in events {
        e["session_id"] = json!("0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f");
        e["occurred_at"] = json!(at);
        let sub = || from_json::<EventSubmission>(e.clone()).unwrap();
        let plain = sub().validate(ctx(None), None).unwrap();
        let ev = sub()
            .validate(ctx(Some(Scrubber::builtin())), None)
            .unwrap();
        let again = sub()
            .validate(ctx(Some(Scrubber::builtin())), None)
            .unwrap();
        assert_eq!(ev.hash, again.hash, "a retry hashes the same");
        assert_ne!(ev.hash, plain.hash, "the hash is of the scrubbed event");
        let text = serde_json::to_string(&ev).unwrap();
        for r in raw {
            assert!(!text.contains(r), "{r} survived in {text}");
        }
        assert!(text.contains("[REDACTED:"), "{text}");
        let env = Envelope {
            ingested_at: now,
            record: Record::Event(ev),
        };
        let back = decode_envelope(&encode_envelope(&env).unwrap(), &limits)
            .unwrap_or_else(|err| panic!("a consumer refuses {text}: {err}"));
        assert_eq!(back, env, "same record, same hash after Kafka");
    }
}
