//! Reading one histogram out of a service's Prometheus `/metrics` page.
//!
//! Used to cross-check freshness measured from Postgres timestamps with the
//! services' own `achilles_freshness_seconds{stage=...}`: the difference of
//! two scrapes (before and after a run) is the distribution of that run.
//! Bucket counts only bound a quantile from above ("at most 250 ms"), so
//! these figures are reported next to the exact ones, never instead.

use std::time::Duration;

use serde::Serialize;

/// Cumulative bucket counts keyed by upper bound (`+Inf` as infinity).
#[derive(Clone, Debug, Default)]
pub struct Buckets(Vec<(f64, f64)>);

/// Quantiles as bucket upper bounds, in milliseconds (`None` = above the
/// largest finite bucket).
#[derive(Clone, Debug, Serialize)]
pub struct BucketQuantiles {
    pub p50_le: Option<f64>,
    pub p95_le: Option<f64>,
    pub p99_le: Option<f64>,
    pub count: u64,
}

/// The text of a `/metrics` page, `None` if it does not answer within
/// 10 s (a busy single-threaded service can be slow to answer).
async fn page(url: &str) -> Option<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .ok()?;
    let r = http.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// Fetches `url` and extracts `metric` buckets whose labels contain
/// `label` (e.g. `stage="landed"`). `None` if nothing answers there.
pub async fn scrape(url: &str, metric: &str, label: &str) -> Option<Buckets> {
    Some(parse(&page(url).await?, metric, label))
}

/// Does a process listen on `url`'s host and port? A TCP connect, not an
/// HTTP request: a service too busy to answer still counts as running.
pub async fn listening(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let connect = tokio::net::TcpStream::connect(hostport);
    matches!(
        tokio::time::timeout(Duration::from_secs(2), connect).await,
        Ok(Ok(_))
    )
}

/// Sum of all series of a gauge, e.g. `achilles_consumer_lag_records`.
/// `None` if the page does not answer or has no such series.
pub async fn gauge_sum(url: &str, metric: &str) -> Option<f64> {
    let text = page(url).await?;
    let prefix = format!("{metric}{{");
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&prefix) || l.starts_with(&format!("{metric} ")))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Waits until every consumer behind `urls` that is running reports zero
/// lag, so a measurement does not start on top of an earlier backlog.
/// `Ok(waited)`, or `Err` with what was still busy at the timeout.
pub async fn settle(urls: &[&str], timeout: Duration) -> Result<Duration, String> {
    let start = std::time::Instant::now();
    loop {
        let mut busy = Vec::new();
        for url in urls {
            if !listening(url).await {
                continue;
            }
            match gauge_sum(url, "achilles_consumer_lag_records").await {
                Some(lag) if lag > 0.0 => busy.push(format!("{url}: lag {lag}")),
                Some(_) => {}
                // No lag series yet (nothing consumed) is idle; no answer
                // at all from a listening service means it is too busy.
                None if page(url).await.is_some() => {}
                None => busy.push(format!("{url}: no answer")),
            }
        }
        if busy.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(busy.join(", "));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn parse(text: &str, metric: &str, label: &str) -> Buckets {
    let prefix = format!("{metric}_bucket{{");
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        if !labels.contains(label) {
            continue;
        }
        let le = labels
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("le=\""))
            .and_then(|v| v.strip_suffix('"'));
        let le = match le {
            Some("+Inf") => f64::INFINITY,
            Some(v) => match v.parse() {
                Ok(x) => x,
                Err(_) => continue,
            },
            None => continue,
        };
        if let Ok(count) = value.trim().parse::<f64>() {
            out.push((le, count));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Buckets(out)
}

impl Buckets {
    /// Observations in all (the `+Inf` bucket, the largest cumulative count).
    pub fn total(&self) -> f64 {
        self.0.iter().map(|(_, n)| *n).fold(0.0, f64::max)
    }

    /// `after - before`, bucket by bucket (a missing "before" counts as 0,
    /// e.g. when the metric had no samples yet).
    pub fn since(&self, before: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(le, n)| {
                    let old = before
                        .0
                        .iter()
                        .find(|(l, _)| l == le)
                        .map_or(0.0, |(_, c)| *c);
                    (*le, (n - old).max(0.0))
                })
                .collect(),
        )
    }

    pub fn quantiles(&self) -> Option<BucketQuantiles> {
        let total = self.0.last().map_or(0.0, |(_, n)| *n);
        if total < 1.0 {
            return None;
        }
        let q = |p: f64| {
            self.0
                .iter()
                .find(|(_, n)| *n >= p * total)
                .and_then(|(le, _)| le.is_finite().then_some(le * 1_000.0))
        };
        Some(BucketQuantiles {
            p50_le: q(0.50),
            p95_le: q(0.95),
            p99_le: q(0.99),
            count: total as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn difference_of_two_scrapes_gives_bucket_quantiles() {
        let m = "achilles_freshness_seconds";
        let before = parse(
            "achilles_freshness_seconds_bucket{stage=\"landed\",le=\"0.1\"} 10\n\
             achilles_freshness_seconds_bucket{stage=\"landed\",le=\"0.25\"} 10\n\
             achilles_freshness_seconds_bucket{stage=\"landed\",le=\"+Inf\"} 10\n",
            m,
            "stage=\"landed\"",
        );
        let after = parse(
            "# HELP x\n\
             achilles_freshness_seconds_bucket{stage=\"derived\",le=\"0.1\"} 999\n\
             achilles_freshness_seconds_bucket{stage=\"landed\",le=\"0.1\"} 100\n\
             achilles_freshness_seconds_bucket{stage=\"landed\",le=\"0.25\"} 109\n\
             achilles_freshness_seconds_bucket{stage=\"landed\",le=\"+Inf\"} 110\n",
            m,
            "stage=\"landed\"",
        );
        let q = after.since(&before).quantiles().expect("samples");
        assert_eq!(q.count, 100);
        assert_eq!(q.p50_le, Some(100.0));
        assert_eq!(q.p95_le, Some(250.0));
        assert_eq!(q.p99_le, Some(250.0));
        assert!(Buckets::default().quantiles().is_none());
    }
}
