//! `-format csv`: one line per session (RFC 4180 quoting), columns [`CSV_COLUMNS`]; a run
//! that failed before any session was accepted still writes one line, its session fields
//! empty. `-header` prints the header line first.

use super::{hops_text, ms};
use crate::report::{Report, SessionReport};
use crate::stats::{DelayStats, Summary};

/// CSV columns, in order (documented in README.md).
pub const CSV_COLUMNS: [&str; 37] = [
    "time",
    "host",
    "address",
    "port",
    "ok",
    "exit_code",
    "error",
    "mode",
    "sent",
    "received",
    "lost",
    "loss_percent",
    "lost_forward",
    "lost_backward",
    "duplicates_forward",
    "duplicates_backward",
    "reordered_forward",
    "reordered_backward",
    "rtt_min_ms",
    "rtt_median_ms",
    "rtt_mean_ms",
    "rtt_p95_ms",
    "rtt_p99_ms",
    "rtt_max_ms",
    "rtt_stddev_ms",
    "forward_median_ms",
    "backward_median_ms",
    "processing_median_ms",
    "sync",
    "ipdv_rtt_mean_abs_ms",
    "rfc3550_jitter_rtt_ms",
    "twping_jitter_rtt_ms",
    "hops_forward",
    "hops_backward",
    "sid",
    "error_message",
    "session",
];

/// The header line, with its newline.
pub fn header() -> String {
    format!("{}\n", CSV_COLUMNS.join(","))
}

pub fn render(r: &Report, with_header: bool) -> String {
    let mut out = if with_header { header() } else { String::new() };
    if r.sessions.is_empty() {
        out.push_str(&line(r, None, 0));
    }
    for (i, m) in r.sessions.iter().enumerate() {
        out.push_str(&line(r, Some(m), i + 1));
    }
    out
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{x:.6}"))
}

fn line(r: &Report, m: Option<&SessionReport>, index: usize) -> String {
    let s = m.map(|m| &m.summary);
    let d = |f: fn(&Summary) -> &Option<DelayStats>, g: fn(&DelayStats) -> f64| {
        num(s.and_then(|s| f(s).as_ref()).map(|d| ms(g(d))))
    };
    let count = |f: fn(&Summary) -> u64| s.map_or_else(String::new, |s| f(s).to_string());
    let fields: Vec<String> = vec![
        r.started.clone(),
        r.host.clone(),
        r.server.map_or_else(String::new, |a| a.ip().to_string()),
        r.port.to_string(),
        r.ok().to_string(),
        r.exit_code().to_string(),
        r.error
            .as_ref()
            .map_or_else(String::new, |e| e.kind().to_string()),
        r.mode_name().unwrap_or_default().to_string(),
        count(|s| s.sent),
        count(|s| s.received),
        count(|s| s.lost),
        num(s.map(|s| s.loss_ratio * 100.0)),
        m.filter(|m| m.loss_direction_known())
            .map_or_else(String::new, |m| m.summary.lost_forward.to_string()),
        m.filter(|m| m.loss_direction_known())
            .map_or_else(String::new, |m| m.summary.lost_backward.to_string()),
        count(|s| s.duplicates_forward),
        count(|s| s.duplicates_backward),
        count(|s| s.reordering_forward.reordered),
        count(|s| s.reordering_backward.reordered),
        d(|s| &s.rtt, |d| d.min),
        d(|s| &s.rtt, |d| d.median),
        d(|s| &s.rtt, |d| d.mean),
        d(|s| &s.rtt, |d| d.p95),
        d(|s| &s.rtt, |d| d.p99),
        d(|s| &s.rtt, |d| d.max),
        num(s
            .and_then(|s| s.rtt.as_ref())
            .and_then(|d| d.stddev)
            .map(ms)),
        d(|s| &s.forward, |d| d.median),
        d(|s| &s.backward, |d| d.median),
        d(|s| &s.processing, |d| d.median),
        s.map_or_else(String::new, |s| s.sync.to_string()),
        num(s
            .and_then(|s| s.rtt_variation.ipdv.as_ref())
            .map(|i| ms(i.mean_abs))),
        num(s.and_then(|s| s.rtt_variation.rfc3550_jitter).map(ms)),
        num(s.and_then(|s| s.rtt_variation.twping_jitter).map(ms)),
        s.and_then(|s| s.hops_forward.as_ref())
            .map_or_else(String::new, hops_text),
        s.and_then(|s| s.hops_backward.as_ref())
            .map_or_else(String::new, hops_text),
        m.map_or_else(String::new, |m| m.sid.to_string()),
        r.error.as_ref().map_or_else(String::new, |e| e.to_string()),
        if index == 0 {
            String::new()
        } else {
            index.to_string()
        },
    ];
    debug_assert_eq!(fields.len(), CSV_COLUMNS.len());
    let mut line = fields
        .iter()
        .map(|f| field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_what_needs_quoting() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
