//! `-format text`: a ping-like human summary, one block per session. The first line carries
//! the run's start time, so text appended from cron can be dated.

use std::fmt::Write as _;

use super::{f3, fmt_duration, hops_text};
use crate::report::{Report, SessionReport};
use crate::stats::Hops;

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let target = match r.server {
        Some(a) => format!("{} ({a})", r.host),
        None => format!("{}:{}", r.host, r.port),
    };
    let _ = writeln!(
        o,
        "--- twamp statistics for {target}, started {} ---",
        r.started
    );
    let n = r.sessions.len();
    for (i, s) in r.sessions.iter().enumerate() {
        if n > 1 {
            let _ = writeln!(o, "session {} of {n}:", i + 1);
        }
        session(&mut o, r, s);
    }
    if let Some(t) = r.total() {
        let split = if r.sessions.iter().all(|m| m.loss_direction_known()) || t.lost == 0 {
            format!("{} forward, {} backward", t.lost_forward, t.lost_backward)
        } else {
            "direction unknown".to_string()
        };
        let rtt = t.rtt.map_or(String::new(), |d| {
            format!(
                ", round-trip min/median/max = {}/{}/{} ms",
                f3(d.min),
                f3(d.median),
                f3(d.max)
            )
        });
        let _ = writeln!(
            o,
            "total over {} sessions: {} sent, {} received, {} lost ({:.1}%: {split}){rtt}",
            t.sessions,
            t.sent,
            t.received,
            t.lost,
            t.loss_ratio * 100.0,
        );
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "FAILED ({}): {e}", e.kind());
    }
    o
}

fn session(o: &mut String, r: &Report, m: &SessionReport) {
    let mode = r.mode_name().unwrap_or("-");
    let id = match m.ssid {
        Some(ssid) => format!("SSID {ssid}"),
        None if m.light => "no SID".to_string(),
        None => format!("SID {}", m.sid),
    };
    let _ = writeln!(
        o,
        "mode {mode}, {id}, reflector {}, {} packets of {} octets every {}",
        m.reflector,
        m.sent_or_planned(),
        m.octets,
        fmt_duration(m.interval())
    );
    let s = &m.summary;
    let split = if m.loss_direction_known() || s.lost == 0 {
        format!("{} forward, {} backward", s.lost_forward, s.lost_backward)
    } else {
        "direction unknown: the reflector copies our sequence numbers".to_string()
    };
    let _ = writeln!(
        o,
        "{} sent, {} received, {} lost ({:.1}%: {split}), {} duplicates ({} forward, {} backward)",
        s.sent,
        s.received,
        s.lost,
        s.loss_ratio * 100.0,
        s.duplicates,
        s.duplicates_forward,
        s.duplicates_backward
    );
    let rt = &s.reordering_round_trip;
    if rt.reordered > 0 || s.reordering_forward.reordered > 0 || s.reordering_backward.reordered > 0
    {
        let _ = writeln!(
            o,
            "reordered (RFC 4737): {} forward, {} backward, {} round trip ({:.1}%)",
            s.reordering_forward.reordered,
            s.reordering_backward.reordered,
            rt.reordered,
            rt.reordered_ratio * 100.0
        );
    }
    if let Some(d) = &s.rtt {
        let _ = writeln!(
            o,
            "round-trip  min/median/mean/max = {}/{}/{}/{} ms, stddev {} ms, p95 {} ms, p99 {} ms",
            f3(d.min),
            f3(d.median),
            f3(d.mean),
            f3(d.max),
            d.stddev.map_or("-".into(), f3),
            f3(d.p95),
            f3(d.p99)
        );
    }
    // Why the one-way figures are not one-way delays, most serious first.
    let flag = if !m.problems.is_empty() {
        "  (reflector timestamps invalid, see below)".to_string()
    } else if s.one_way_valid {
        String::new()
    } else if !s.sync {
        "  (unsynchronised clocks: offset included)".to_string()
    } else {
        format!(
            "  (negative delays: {} forward, {} backward)",
            s.negative_forward, s.negative_backward
        )
    };
    for (name, d) in [("forward    ", &s.forward), ("backward   ", &s.backward)] {
        if let Some(d) = d {
            let _ = writeln!(
                o,
                "{name} min/median/mean/max = {}/{}/{}/{} ms{flag}",
                f3(d.min),
                f3(d.median),
                f3(d.mean),
                f3(d.max)
            );
        }
    }
    if let Some(d) = &s.processing {
        let _ = writeln!(
            o,
            "reflector processing min/median/max = {}/{}/{} ms",
            f3(d.min),
            f3(d.median),
            f3(d.max)
        );
    }
    let v = &s.rtt_variation;
    if v.ipdv.is_some() || v.rfc3550_jitter.is_some() {
        let _ = writeln!(
            o,
            "round-trip jitter: IPDV (RFC 3393) mean |ipdv| {} ms, max {} ms; RFC 3550 jitter {} ms; P95-P50 {} ms",
            v.ipdv.as_ref().map_or("-".into(), |i| f3(i.mean_abs)),
            v.ipdv.as_ref().map_or("-".into(), |i| f3(i.max.abs().max(i.min.abs()))),
            v.rfc3550_jitter.map_or("-".into(), f3),
            v.twping_jitter.map_or("-".into(), f3)
        );
    }
    let hops = |h: &Option<Hops>| h.as_ref().map_or("not reported".into(), hops_text);
    let _ = writeln!(
        o,
        "hops: {} forward, {} backward",
        hops(&s.hops_forward),
        hops(&s.hops_backward)
    );
    for p in &m.problems {
        let _ = writeln!(o, "reflector timestamps invalid: {p}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClientConfig, SessionSpec};
    use crate::sender::Outcome;
    use crate::stats::{Reply, Sent};
    use crate::time::{ErrorEstimate, Timestamp};
    use crate::wire::Sid;

    /// A session against a reflector whose T2 jumps ±700 ms and whose SID is zero (twamp-rs).
    fn garbled() -> Report {
        let mut r = Report::new(&ClientConfig::default());
        let mut s = SessionReport::new(
            Sid([0; 16]),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            27,
            &SessionSpec::default(),
        );
        let e = ErrorEstimate(0x0001);
        let at = |ms: i64| {
            Timestamp::from_unix_duration(std::time::Duration::from_millis((1_000_000 + ms) as u64))
        };
        let sent: Vec<Sent> = (0..4)
            .map(|i| Sent {
                seq: i,
                t1: at(100 * i64::from(i)),
                t1_err: e,
            })
            .collect();
        let replies = sent
            .iter()
            .map(|p| {
                let jump = if p.seq % 2 == 0 { 700 } else { -700 };
                let base = 100 * i64::from(p.seq);
                Reply {
                    sender_seq: p.seq,
                    reflector_seq: p.seq,
                    t1: p.t1,
                    t1_err: e,
                    t2: at(base + jump),
                    t2_err: e,
                    t3: at(base + jump),
                    t3_err: e,
                    t4: at(base + 1),
                    t4_err: e,
                    sender_ttl: 255,
                    ttl: Some(255),
                }
            })
            .collect();
        s.finish(Outcome {
            sent,
            replies,
            ..Outcome::default()
        });
        r.sessions.push(s);
        r
    }

    #[test]
    fn invalid_reflector_timestamps_are_named_not_called_unsynchronised() {
        let text = render(&garbled());
        assert!(!text.contains("unsynchronised clocks"), "{text}");
        assert!(
            text.contains("reflector timestamps invalid: the server sent an all-zero SID"),
            "{text}"
        );
        assert!(
            text.contains("reflector timestamps invalid: forward delays vary by 1400.000 ms"),
            "{text}"
        );
    }
}
