//! Log families the LogHub samples do not cover, generated here with known
//! truth: API gateways and web servers (request lines with routes, UUIDs,
//! query strings, status/size/time fields), logfmt services, schedulers,
//! databases, SSH daemons, container runtimes and JVM services. Every
//! template is filled with varied values (ids, names, sizes with units,
//! durations, timestamps, base64 and hex blobs), so the test fails if a kind
//! of value splits a template or a value-free difference merges two.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use achilles_cluster::{cluster_batch, eval::grouping_accuracy, Config};

/// xorshift64*: deterministic values without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn int(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.int(xs.len() as u64) as usize]
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n).map(|_| format!("{:x}", self.int(16))).collect()
    }
    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }
    fn ip(&mut self) -> String {
        format!("10.{}.{}.{}", self.int(256), self.int(256), self.int(256))
    }
    fn b64(&mut self) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let body: String = (0..20 + self.int(20))
            .map(|_| A[self.int(64) as usize] as char)
            .collect();
        format!("{body}{}", ["", "=", "=="][self.int(3) as usize])
    }
    fn ts(&mut self) -> String {
        format!(
            "2024-0{}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            1 + self.int(9),
            1 + self.int(28),
            self.int(24),
            self.int(60),
            self.int(60),
            self.int(1000)
        )
    }
}

const USERS: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
const TABLES: &[&str] = &[
    "orders", "users", "invoices", "payments", "sessions", "carts",
];
const PODS: &[&str] = &["web", "api", "worker", "cron", "gateway"];

type Family = fn(&mut Rng) -> (String, &'static str);

fn families() -> Vec<Family> {
    vec![
        |r| {
            let tenant = r.hex(32);
            let (m, route, truth) = match r.int(6) {
                0 => (
                    "GET",
                    "servers/detail".to_string(),
                    "api-get-servers-detail",
                ),
                1 => ("GET", format!("servers/{}", r.uuid()), "api-get-server"),
                2 => (
                    "DELETE",
                    format!("servers/{}", r.uuid()),
                    "api-delete-server",
                ),
                3 => ("POST", "servers".to_string(), "api-post-servers"),
                4 => (
                    "POST",
                    "os-server-external-events".to_string(),
                    "api-post-events",
                ),
                _ => (
                    "GET",
                    format!(
                        "servers/detail?all_tenants=True&changes-since={}&host=node-{}",
                        r.ts(),
                        r.int(9)
                    ),
                    "api-get-servers-changes",
                ),
            };
            let line = format!(
                "{} \"{m} /v2/{tenant}/{route} HTTP/1.1\" status: {} len: {} time: 0.{}",
                r.ip(),
                [200, 202, 204, 404][r.int(4) as usize],
                r.int(5000),
                r.int(10_000_000)
            );
            (line, truth)
        },
        |r| {
            let (path, truth) = match r.int(3) {
                0 => (
                    format!("/api/v1/users/{}/orders?page={}", r.int(99_999), r.int(50)),
                    "web-user-orders",
                ),
                1 => (format!("/api/v1/orders/{}", r.int(99_999)), "web-order"),
                _ => (format!("/static/js/app.{}.js", r.hex(8)), "web-static"),
            };
            let line = format!(
                "{} - {} [10/Oct/2024:13:{:02}:{:02} +0000] \"GET {path} HTTP/1.1\" {} {} \"-\" \"curl/7.{}.0\"",
                r.ip(),
                r.pick(&["-", "alice", "bob"]),
                r.int(60),
                r.int(60),
                [200, 304, 404, 500][r.int(4) as usize],
                r.int(100_000),
                r.int(90)
            );
            (line, truth)
        },
        |r| {
            let line = format!(
                "level=info ts={} caller=server.go:{} msg=\"request served\" path=/api/{} duration={}.{}ms bytes={}KiB",
                r.ts(),
                r.int(900),
                r.int(9999),
                r.int(900),
                r.int(999),
                r.int(64)
            );
            (line, "logfmt-served")
        },
        |r| {
            let line = format!(
                "level=error ts={} caller=db.go:{} msg=\"query failed\" err=\"context deadline exceeded\" retry={}",
                r.ts(),
                r.int(900),
                r.int(5)
            );
            (line, "logfmt-query-failed")
        },
        |r| {
            let line = format!(
                "Job job_{}_{:04} finished in {}.{}s with status SUCCEEDED",
                20240000 + r.int(9999),
                r.int(9999),
                r.int(600),
                r.int(10)
            );
            (line, "job-finished")
        },
        |r| {
            let line = format!(
                "Task attempt_{}_{:04}_m_{:06}_0 failed on host worker-{}.cluster.local: exit code {}",
                r.int(1 << 40),
                r.int(9999),
                r.int(999_999),
                r.int(64),
                r.int(256)
            );
            (line, "task-failed")
        },
        |r| {
            let line = format!(
                "duration: {}.{} ms  statement: SELECT * FROM {} WHERE id = {}",
                r.int(5000),
                r.int(1000),
                r.pick(TABLES),
                r.int(1_000_000)
            );
            (line, "db-slow-query")
        },
        |r| {
            let line = format!(
                "checkpoint complete: wrote {} buffers ({}.{}%); write={}.{} s, sync={}.{} s, total={}.{} s",
                r.int(10_000),
                r.int(100),
                r.int(10),
                r.int(300),
                r.int(1000),
                r.int(5),
                r.int(1000),
                r.int(300),
                r.int(1000)
            );
            (line, "db-checkpoint")
        },
        |r| {
            let line = format!(
                "Accepted publickey for {} from {} port {} ssh2: RSA SHA256:{}",
                r.pick(USERS),
                r.ip(),
                1024 + r.int(60_000),
                r.b64()
            );
            (line, "ssh-accepted")
        },
        |r| {
            let line = format!(
                "Failed password for invalid user {} from {} port {} ssh2",
                r.pick(USERS),
                r.ip(),
                1024 + r.int(60_000)
            );
            (line, "ssh-failed-invalid")
        },
        |r| {
            let pod = format!("{}-{}-{}", r.pick(PODS), r.hex(9), r.hex(5));
            let line = format!(
                "Started container {} in pod {pod} (uid {})",
                r.pick(PODS),
                r.uuid()
            );
            (line, "k8s-started")
        },
        |r| {
            let line = format!(
                "Pulled image \"registry.example.com/{}:v{}.{}\" in {}.{}s (image size {} bytes)",
                r.pick(PODS),
                r.int(9),
                r.int(20),
                r.int(60),
                r.int(1000),
                r.int(1 << 30)
            );
            (line, "k8s-pulled")
        },
        |r| {
            let line = format!(
                "[pool-{}-thread-{}] INFO c.e.s.OrderService - Order {} placed by {} for {}.{} EUR",
                r.int(9),
                r.int(64),
                r.int(1_000_000),
                r.pick(USERS),
                r.int(1000),
                r.int(100)
            );
            (line, "jvm-order-placed")
        },
        |r| {
            let line = format!(
                "Upload of blob sha256:{} complete: {}.{} MiB in {}.{}s ({}.{} MiB/s)",
                r.hex(64),
                r.int(900),
                r.int(10),
                r.int(60),
                r.int(10),
                r.int(100),
                r.int(10)
            );
            (line, "blob-upload")
        },
        |r| {
            let line = format!("token {} rejected for session {}", r.b64(), r.uuid());
            (line, "token-rejected")
        },
        |r| {
            let line = format!(
                "Cache miss for key user:{}:profile after {}us",
                r.int(1_000_000),
                r.int(900)
            );
            (line, "cache-miss")
        },
    ]
}

#[test]
fn unseen_log_families_group_by_template() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let fams = families();
    let mut msgs = Vec::new();
    let mut truth = Vec::new();
    for _ in 0..4000 {
        let f = fams[r.int(fams.len() as u64) as usize];
        let (m, t) = f(&mut r);
        msgs.push(m);
        truth.push(t);
    }
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    let labels = cluster_batch(&refs, &Config::default());
    let ga = grouping_accuracy(&truth, &labels);
    // Name the families that went wrong, to make a failure readable.
    let mut wrong: Vec<&str> = Vec::new();
    for t in truth.iter().copied() {
        let mine: Vec<_> = truth
            .iter()
            .zip(&labels)
            .filter(|(x, _)| **x == t)
            .map(|(_, l)| *l)
            .collect();
        let pure = labels
            .iter()
            .zip(&truth)
            .all(|(l, x)| *l != mine[0] || *x == t);
        let grouped = mine.iter().all(|l| *l == mine[0]) && pure;
        if !grouped && !wrong.contains(&t) {
            wrong.push(t);
        }
    }
    if std::env::var("FAMILIES_DEBUG").is_ok() {
        for (m, t) in msgs
            .iter()
            .zip(&truth)
            .filter(|(_, t)| wrong.contains(t))
            .take(40)
        {
            println!("{t}: {}", achilles_cluster::mask(m));
        }
    }
    assert!(ga >= 0.99, "GA {ga:.3}; wrong: {wrong:?}");
}
