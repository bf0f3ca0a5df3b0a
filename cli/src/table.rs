//! Plain-text tables for a person at a terminal: a header, aligned columns
//! (numbers to the right), long cells cut with `…`, and the formats the
//! answers commands share (percentages, money, durations, ages).

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Widest a cell may be before it is cut.
const MAX_CELL: usize = 60;

pub struct Table {
    headers: Vec<&'static str>,
    /// Right-aligned columns (numbers).
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named with a leading `>` are right-aligned (the `>` is not shown).
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.trim_start_matches('>')).collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| {
                    if c.chars().count() > MAX_CELL {
                        let cut: String = c.chars().take(MAX_CELL - 1).collect();
                        format!("{cut}…")
                    } else {
                        c
                    }
                })
                .collect(),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .chain([self.headers[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, w) in widths.iter().enumerate() {
                let c = cells.get(i).map(String::as_str).unwrap_or("");
                let pad = w.saturating_sub(c.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if self.right[i] {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    if i + 1 < widths.len() {
                        out.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let header: Vec<String> = self.headers.iter().map(|h| h.to_uppercase()).collect();
        let mut out = line(&header);
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

pub fn usd(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("${x:.4}"))
}

pub fn num(v: &Value, decimals: usize) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{x:.decimals$}"))
}

/// Milliseconds as `850ms`, `12.5s`, `4.2m`, `3.1h`.
pub fn duration_ms(v: &Value) -> String {
    let Some(ms) = v.as_f64() else {
        return "-".into();
    };
    if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else if ms < 3_600_000.0 {
        format!("{:.1}m", ms / 60_000.0)
    } else {
        format!("{:.1}h", ms / 3_600_000.0)
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM` (UTC).
pub fn when(v: &Value) -> String {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(
            || "-".into(),
            |t| t.with_timezone(&Utc).format("%Y-%m-%d %H:%M").to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_numbers_go_right() {
        let mut t = Table::new(&["agent", ">sessions"]);
        t.row(vec!["claude-code".into(), "12".into()]);
        t.row(vec!["aider".into(), "3".into()]);
        assert_eq!(
            t.render(),
            "AGENT        SESSIONS\nclaude-code        12\naider               3\n"
        );
        let mut t = Table::new(&["x"]);
        t.row(vec!["y".repeat(100)]);
        assert!(t.render().lines().nth(1).unwrap().ends_with('…'));
    }

    #[test]
    fn formats() {
        assert_eq!(pct(&json!(0.7)), "70.0%");
        assert_eq!(pct(&Value::Null), "-");
        assert_eq!(usd(&json!(0.123456)), "$0.1235");
        assert_eq!(duration_ms(&json!(60_000)), "1.0m");
        assert_eq!(duration_ms(&json!(850)), "850ms");
        assert_eq!(
            when(&json!("2026-11-21T10:00:00.5+01:00")),
            "2026-11-21 09:00"
        );
    }
}
