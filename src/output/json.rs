//! `-format json`: JSON Lines, schema `twamp-result/1` (documented in README.md and twamp(1)).
//!
//! One object per run. Keys carry their units (`_ms`, `_percent`, `_octets`); absent figures
//! are `null`. Numbers are rounded to the clock's resolution: milliseconds to six decimals
//! (1 ns, the kernel's timestamp resolution), so `0.008794` prints as that and not as
//! `0.008794000000000001`.
//!
//! `session` and `summary` are the first session's (as in every `twamp-result/1` record);
//! `sessions` lists every session, each with its own `session` and `summary`; `total` sums
//! them (null for a run of one session).

use serde_json::{json, Value};

use super::ms;
use crate::report::{Report, SessionReport};
use crate::stats::{self, DelayStats, Hops};

/// The JSON schema version. Bump on any incompatible change.
pub const JSON_SCHEMA: &str = "twamp-result/1";

pub fn render(r: &Report) -> String {
    let mut s = value(r).to_string();
    s.push('\n');
    s
}

/// Rounds to six decimals of the unit: 1 ns for milliseconds, 1e-6 for percentages.
fn round6(x: f64) -> Value {
    json!((x * 1e6).round() / 1e6)
}

/// Seconds as rounded milliseconds.
fn ms6(s: f64) -> Value {
    round6(ms(s))
}

fn opt_ms(s: Option<f64>) -> Value {
    s.map_or(Value::Null, ms6)
}

fn percent(ratio: f64) -> Value {
    round6(ratio * 100.0)
}

fn delay(d: &Option<DelayStats>) -> Value {
    match d {
        None => Value::Null,
        Some(d) => json!({
            "count": d.count,
            "min_ms": ms6(d.min),
            "median_ms": ms6(d.median),
            "mean_ms": ms6(d.mean),
            "p95_ms": ms6(d.p95),
            "p99_ms": ms6(d.p99),
            "max_ms": ms6(d.max),
            "stddev_ms": opt_ms(d.stddev),
        }),
    }
}

fn variation(v: &stats::DelayVariation) -> Value {
    json!({
        "ipdv_rfc3393": v.ipdv.as_ref().map(|i| json!({
            "count": i.count,
            "min_ms": ms6(i.min),
            "max_ms": ms6(i.max),
            "mean_abs_ms": ms6(i.mean_abs),
            "p95_abs_ms": ms6(i.p95_abs),
            "p99_abs_ms": ms6(i.p99_abs),
        })),
        "pdv_rfc5481": v.pdv.as_ref().map(|p| json!({
            "median_ms": ms6(p.median),
            "p95_ms": ms6(p.p95),
            "p99_ms": ms6(p.p99),
            "max_ms": ms6(p.max),
        })),
        "twping_p95_p50_ms": opt_ms(v.twping_jitter),
        "rfc3550_jitter_ms": opt_ms(v.rfc3550_jitter),
    })
}

fn hops(h: &Option<Hops>) -> Value {
    h.as_ref()
        .map_or(Value::Null, |h| json!({ "min": h.min, "max": h.max }))
}

fn reorder(r: &stats::Reordering) -> Value {
    json!({
        "packets": r.packets,
        "reordered": r.reordered,
        "reordered_percent": percent(r.reordered_ratio),
    })
}

fn session(r: &Report, m: &SessionReport) -> Value {
    json!({
        "sid": m.sid.to_string(),
        "mode": r.mode_name(),
        "ssid": m.ssid,
        "reflector_stateful": m.reflector_kind.map(|k| k.per_direction_loss()),
        "local": m.local.to_string(),
        "reflector": m.reflector.to_string(),
        "padding_octets": m.padding,
        "dscp": m.dscp,
        "count": m.count,
        "interval_ms": ms6(m.interval().as_secs_f64()),
        "timeout_ms": ms6(m.loss_timeout.as_secs_f64()),
        "interrupted": m.outcome.interrupted,
        "stray_datagrams": m.outcome.stray,
        "malformed_datagrams": m.outcome.malformed,
        "timestamp_problems": m.problems.iter().map(|p| json!({
            "kind": p.kind(),
            "message": p.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn summary(m: &SessionReport) -> Value {
    let s = &m.summary;
    // Unknown behind a reflector that copies our numbers: null, never a guess.
    let known = m.loss_direction_known();
    json!({
        "sent": s.sent,
        "received": s.received,
        "lost": s.lost,
        "loss_percent": percent(s.loss_ratio),
        "lost_forward": known.then_some(s.lost_forward),
        "lost_backward": known.then_some(s.lost_backward),
        "lost_unattributed": known.then_some(s.lost_unattributed),
        "duplicates": s.duplicates,
        "duplicates_forward": s.duplicates_forward,
        "duplicates_backward": s.duplicates_backward,
        "unexpected": s.unexpected,
        "reordering_rfc4737": {
            "forward": reorder(&s.reordering_forward),
            "backward": reorder(&s.reordering_backward),
            "round_trip": reorder(&s.reordering_round_trip),
        },
        "sync": s.sync,
        "one_way_valid": s.one_way_valid,
        "negative_forward": s.negative_forward,
        "negative_backward": s.negative_backward,
        "maxerr_ms": opt_ms(s.maxerr),
        "maxerr_forward_ms": opt_ms(s.maxerr_fwd),
        "maxerr_backward_ms": opt_ms(s.maxerr_bck),
        "rtt": delay(&s.rtt),
        "forward": delay(&s.forward),
        "backward": delay(&s.backward),
        "processing": delay(&s.processing),
        "rtt_variation": variation(&s.rtt_variation),
        "forward_variation": variation(&s.forward_variation),
        "backward_variation": variation(&s.backward_variation),
        "hops_forward": hops(&s.hops_forward),
        "hops_backward": hops(&s.hops_backward),
    })
}

/// The JSON object (schema `twamp-result/1`).
pub fn value(r: &Report) -> Value {
    let first = r.sessions.first();
    json!({
        "schema": JSON_SCHEMA,
        "time": r.started,
        "ok": r.ok(),
        "exit_code": r.exit_code(),
        "error": r.error.as_ref().map(|e| json!({ "kind": e.kind(), "message": e.to_string() })),
        "server": {
            "host": r.host,
            "port": r.port,
            "address": r.server.map(|a| a.ip().to_string()),
        },
        "session": first.map(|m| session(r, m)),
        "summary": first.map(summary),
        "sessions": r.sessions.iter().map(|m| json!({
            "session": session(r, m),
            "summary": summary(m),
        })).collect::<Vec<_>>(),
        "total": r.total().map(|t| json!({
            "sessions": t.sessions,
            "sent": t.sent,
            "received": t.received,
            "lost": t.lost,
            "loss_percent": percent(t.loss_ratio),
            "lost_forward": t.lost_forward,
            "lost_backward": t.lost_backward,
            "rtt": delay(&t.rtt),
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_to_the_nanosecond() {
        // Unrounded, seconds × 1000 prints the float's artefact.
        assert_eq!(json!(ms(8.794e-6)).to_string(), "0.008794000000000001");
        assert_eq!(ms6(8.794e-6).to_string(), "0.008794");
        assert_eq!(ms6(1.0).to_string(), "1000.0");
        assert_eq!(percent(1.0 / 3.0).to_string(), "33.333333");
    }
}
