//! `cluster`: read messages from stdin (one per line), print one cluster
//! label per line, in order. Batch mode: all of stdin is read and clustered
//! with [`achilles_cluster::cluster_batch`] and the default [`Config`], so
//! labels depend only on the set of messages, not on their order. This is
//! the same code path `achilles cluster` uses.

use std::io::{self, Read, Write};

use achilles_cluster::{cluster_batch, Config};

fn main() -> io::Result<()> {
    let mut raw = Vec::new();
    io::stdin().lock().read_to_end(&mut raw)?;
    // Invalid UTF-8 is replaced rather than rejected: a label per line is
    // still owed, and replacement characters mask like any other text.
    let text = match std::str::from_utf8(&raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(&raw),
    };
    // `lines` splits on `\n`, drops a `\r` before it, and yields no empty
    // item after a final newline: exactly one label per input line.
    let lines: Vec<&str> = text.lines().collect();
    let ids = cluster_batch(&lines, &Config::default());
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut buf = [0u8; 17];
    buf[16] = b'\n';
    for id in ids {
        id.write_hex(&mut buf[..16]);
        out.write_all(&buf)?;
    }
    out.flush()
}
