//! Webhook destinations and signatures, shared by the API (which registers
//! endpoints) and the agent (which delivers to them).
//!
//! **SSRF.** A webhook makes our servers send requests to an address a
//! tenant chose. Left unchecked, that reaches whatever our network can:
//! the cloud metadata service (credentials), Postgres, the broker, admin
//! ports on localhost. So a destination must resolve only to public
//! addresses unless the operator allowed more (`push.webhook_allow_private`,
//! `push.webhook_allowed_cidrs`). The check runs at registration *and* at
//! every delivery, on the addresses the delivery then connects to
//! ([`resolve_checked`]): a name that resolved to a public address when it
//! was registered may point at 127.0.0.1 today (DNS rebinding).
//!
//! **Signatures.** `Achilles-Signature: v1=<hex HMAC-SHA256(secret,
//! "<timestamp>.<body>")>` with `Achilles-Timestamp: <unix seconds>`; the
//! timestamp inside the MAC lets a receiver refuse replays of old
//! deliveries. The recipe for receivers is in docs/push.md.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;
use url::Url;

use crate::config::PushSettings;

/// Longest destination URL accepted.
pub const MAX_URL_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("not a valid URL: {0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    /// The destination is (or resolves to) an address the policy refuses.
    #[error(
        "{host} resolves to {addr}, a {class} address; refused (see push.webhook_allow_private)"
    )]
    Refused {
        host: String,
        addr: IpAddr,
        class: &'static str,
    },
    #[error("cannot resolve {host}: {reason}")]
    Unresolvable { host: String, reason: String },
}

/// Parses a destination: `http` or `https`, a host, no credentials.
pub fn parse_destination(raw: &str) -> Result<Url, DestinationError> {
    if raw.len() > MAX_URL_BYTES {
        return Err(DestinationError::Unsupported(format!(
            "the URL is longer than {MAX_URL_BYTES} bytes"
        )));
    }
    let url = Url::parse(raw).map_err(|e| DestinationError::Invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DestinationError::Unsupported(format!(
            "scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DestinationError::Unsupported("the URL has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DestinationError::Unsupported(
            "credentials in the URL are not accepted; the signature authenticates deliveries"
                .into(),
        ));
    }
    Ok(url)
}

/// Which addresses deliveries may go to.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    pub allow_private: bool,
    pub allowed: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn from_settings(p: &PushSettings) -> Result<Self, String> {
        let allowed = p
            .webhook_allowed_cidrs
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("push.webhook_allowed_cidrs: {s:?} is not a CIDR"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            allow_private: p.webhook_allow_private,
            allowed,
        })
    }

    /// `Err(class)` when `ip` must not be contacted.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        match classify(ip) {
            None => Ok(()),
            Some(_) if self.allow_private => Ok(()),
            Some(_) if self.allowed.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(class) => Err(class),
        }
    }
}

/// `None` for a public unicast address, else what it is.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d)
            // addresses reach the embedded IPv4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify_v4(v4);
            }
            let s = v6.segments();
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return classify_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            classify_v6(v6)
        }
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
        Some("cloud metadata")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() || (o[0] == 100 && (64..128).contains(&o[1])) {
        // RFC 1918 and the carrier-grade NAT range 100.64.0.0/10.
        Some("private")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation() || (o[0] == 198 && (o[1] & 0xfe) == 18) || o[..3] == [192, 0, 0]
    {
        // Documentation, benchmarking (198.18.0.0/15), IETF protocol assignments.
        Some("reserved")
    } else {
        None
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s0 = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if (s0 & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if ip.segments()[..4] == [0xfd00, 0x0ec2, 0, 0] {
        Some("cloud metadata")
    } else if (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfec0 {
        // Unique local (fc00::/7) and the deprecated site-local range.
        Some("private")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else if s0 == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("reserved")
    } else {
        None
    }
}

/// Checks a destination without resolving it: a literal address, or a
/// name that can only mean this machine (`localhost`). What registration
/// can know; the delivery checks the resolved addresses again.
pub fn check_literal(url: &Url, policy: &AddressPolicy) -> Result<(), DestinationError> {
    let host = url.host_str().unwrap_or_default();
    let literal = match url.host() {
        Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
        Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost"))
                .then_some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        None => None,
    };
    match literal {
        Some(addr) => policy
            .check(addr)
            .map_err(|class| DestinationError::Refused {
                host: host.to_owned(),
                addr,
                class,
            }),
        None => Ok(()),
    }
}

/// Resolves the destination's host and checks every address it resolves
/// to. The caller connects to exactly these addresses (not to a second
/// resolution), so what was checked is what is contacted.
pub async fn resolve_checked(
    url: &Url,
    policy: &AddressPolicy,
) -> Result<Vec<SocketAddr>, DestinationError> {
    let host = url.host_str().unwrap_or_default().to_owned();
    check_literal(url, policy)?;
    let port = url.port_or_known_default().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| DestinationError::Unresolvable {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(DestinationError::Unresolvable {
            host,
            reason: "no addresses".into(),
        });
    }
    // One refused address refuses the destination: which of them a
    // connection would use is not ours to predict.
    for a in &addrs {
        policy
            .check(a.ip())
            .map_err(|class| DestinationError::Refused {
                host: host.clone(),
                addr: a.ip(),
                class,
            })?;
    }
    Ok(addrs)
}

/// A new signing secret: `whsec_` and 64 hex digits from two random v4
/// UUIDs (244 random bits).
pub fn new_secret() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    format!("whsec_{}{}", a.simple(), b.simple())
}

/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature header in constant time (for receivers written in
/// Rust, and for our tests).
pub fn verify(secret: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(sig) = header.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Delay before retry number `attempt` (1-based): `base × 2^(attempt−1)`,
/// at most `max`.
pub fn backoff_ms(attempt: u32, base_ms: u64, max_ms: u64) -> u64 {
    let factor = 1u64
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u64::MAX);
    base_ms.saturating_mul(factor).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_metadata_are_classified() {
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "cloud metadata"),
            ("fc00::1", "private"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ] {
            assert_eq!(classify(ip(addr)), Some(class), "{addr}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert_eq!(classify(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn policy_allows_configured_ranges_only() {
        let strict = AddressPolicy::default();
        assert!(strict.check(ip("127.0.0.1")).is_err());
        assert!(strict.check(ip("8.8.8.8")).is_ok());
        let p = AddressPolicy::from_settings(&PushSettings {
            webhook_allowed_cidrs: "127.0.0.1/32, 10.1.0.0/16".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("127.0.0.2")).is_err());
        assert!(p.check(ip("10.1.9.9")).is_ok());
        assert!(p.check(ip("169.254.169.254")).is_err());
        assert!(AddressPolicy::from_settings(&PushSettings {
            webhook_allowed_cidrs: "nonsense".into(),
            ..Default::default()
        })
        .is_err());
    }

    #[test]
    fn destinations_are_parsed_strictly() {
        assert!(parse_destination("https://hooks.example.com/a?b=c").is_ok());
        assert!(parse_destination("ftp://example.com/").is_err());
        assert!(parse_destination("https://user:pw@example.com/").is_err());
        assert!(parse_destination("not a url").is_err());
        let p = AddressPolicy::default();
        for refused in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://localhost/",
            "http://169.254.169.254/latest/meta-data",
        ] {
            let url = parse_destination(refused).unwrap();
            assert!(
                matches!(
                    check_literal(&url, &p),
                    Err(DestinationError::Refused { .. })
                ),
                "{refused}"
            );
        }
    }

    #[tokio::test]
    async fn resolution_is_checked_too() {
        let url = parse_destination("http://localhost.:9/").unwrap();
        let err = resolve_checked(&url, &AddressPolicy::default())
            .await
            .unwrap_err();
        assert!(matches!(err, DestinationError::Refused { .. }), "{err}");
        let allow = AddressPolicy {
            allow_private: true,
            allowed: vec![],
        };
        let addrs = resolve_checked(&parse_destination("http://127.0.0.1:9/").unwrap(), &allow)
            .await
            .unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:9".parse().unwrap()]);
    }

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_") && secret.len() == 6 + 64);
        let sig = sign(&secret, 1_700_000_000, b"{\"a\":1}");
        assert!(verify(&secret, 1_700_000_000, b"{\"a\":1}", &sig));
        assert!(!verify(&secret, 1_700_000_001, b"{\"a\":1}", &sig));
        assert!(!verify(&secret, 1_700_000_000, b"{\"a\":2}", &sig));
        assert!(!verify("whsec_other", 1_700_000_000, b"{\"a\":1}", &sig));
        // A fixed vector, computed with Python's hmac module (docs/push.md
        // has the same recipe), so receivers in other languages agree.
        assert_eq!(
            sign("whsec_test", 1_700_000_000, b"{}"),
            "v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_ms(1, 1000, 60_000), 1000);
        assert_eq!(backoff_ms(2, 1000, 60_000), 2000);
        assert_eq!(backoff_ms(6, 1000, 60_000), 32_000);
        assert_eq!(backoff_ms(7, 1000, 60_000), 60_000);
        assert_eq!(backoff_ms(200, 1000, 60_000), 60_000);
    }
}
