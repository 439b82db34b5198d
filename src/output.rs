//! Result records and their formats: `-format text|json|csv|packets|twping`.
//!
//! A [`Record`] is one run: what was asked, what was measured (possibly partly), and the error
//! if the run failed. Every format renders a whole record into one `String` first, so that
//! `-output` appends it with a single `write(2)` on an `O_APPEND` descriptor: concurrent runs
//! into one file never interleave, and a failed run still leaves its record.
//!
//! JSON schema `twamp-result/1` (one object per line; documented in README.md and twamp(1)):
//! keys carry their units (`_ms`, `_percent`, `_octets`); absent figures are `null`.

use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{Failure, Measurement};
use crate::config::{ClientConfig, Format};
use crate::error::{exit, Error, Result};
use crate::stats::{self, DelayStats, Hops, Summary};
use crate::time::{ErrorEstimate, Timestamp};

/// The JSON schema version. Bump on any incompatible change.
pub const JSON_SCHEMA: &str = "twamp-result/1";

/// twping `-M`'s histogram bucket width in seconds: what twping 5.2.3 printed in the reference
/// capture (`twping-output/twping_open_M.txt`), although owping's `-b` documentation says 0.0001.
pub const BUCKET_WIDTH: f64 = 1e-6;

/// One run, as every format sees it.
pub struct Record {
    /// Start of the run, RFC 3339.
    pub started: String,
    pub host: String,
    pub port: u16,
    pub measurement: Option<Measurement>,
    pub summary: Option<Summary>,
    pub error: Option<(&'static str, String)>,
    pub exit_code: u8,
}

impl Record {
    pub fn measured(cfg: &ClientConfig, started: &str, m: &Measurement) -> Self {
        let summary = stats::summarize(&m.outcome.sent, &m.outcome.replies);
        let exit_code = if summary.received == 0 {
            exit::ALL_LOST
        } else {
            exit::OK
        };
        Record {
            started: started.into(),
            host: cfg.host.clone(),
            port: cfg.port,
            measurement: Some(m.clone()),
            summary: Some(summary),
            error: None,
            exit_code,
        }
    }

    /// A failed run: the error, and whatever was measured before it.
    pub fn failed(cfg: &ClientConfig, started: &str, f: &Failure) -> Self {
        let summary = f
            .partial
            .as_ref()
            .map(|m| stats::summarize(&m.outcome.sent, &m.outcome.replies));
        Record {
            started: started.into(),
            host: cfg.host.clone(),
            port: cfg.port,
            measurement: f.partial.as_deref().cloned(),
            summary,
            error: Some((f.error.kind(), f.error.to_string())),
            exit_code: f.error.exit_code(),
        }
    }

    pub fn ok(&self) -> bool {
        self.error.is_none() && self.exit_code == exit::OK
    }

    /// Renders the record in `format`. `header` adds the CSV header line.
    pub fn render(&self, format: Format, header: bool) -> String {
        match format {
            Format::Text => self.text(),
            Format::Json => {
                let mut s = self.json().to_string();
                s.push('\n');
                s
            }
            Format::Csv => {
                let mut s = String::new();
                if header {
                    s.push_str(&CSV_COLUMNS.join(","));
                    s.push('\n');
                }
                s.push_str(&self.csv());
                s
            }
            Format::Packets => self.packets(),
            Format::Twping => self.twping(),
        }
    }
}

/// Seconds → milliseconds, for display and `_ms` keys.
fn ms(s: f64) -> f64 {
    s * 1e3
}

fn opt_ms(s: Option<f64>) -> Value {
    s.map_or(Value::Null, |v| json!(ms(v)))
}

fn delay_json(d: &Option<DelayStats>) -> Value {
    match d {
        None => Value::Null,
        Some(d) => json!({
            "count": d.count,
            "min_ms": ms(d.min),
            "median_ms": ms(d.median),
            "mean_ms": ms(d.mean),
            "p95_ms": ms(d.p95),
            "p99_ms": ms(d.p99),
            "max_ms": ms(d.max),
            "stddev_ms": opt_ms(d.stddev),
        }),
    }
}

fn variation_json(v: &stats::DelayVariation) -> Value {
    json!({
        "ipdv_rfc3393": v.ipdv.as_ref().map(|i| json!({
            "count": i.count,
            "min_ms": ms(i.min),
            "max_ms": ms(i.max),
            "mean_abs_ms": ms(i.mean_abs),
            "p95_abs_ms": ms(i.p95_abs),
            "p99_abs_ms": ms(i.p99_abs),
        })),
        "pdv_rfc5481": v.pdv.as_ref().map(|p| json!({
            "median_ms": ms(p.median),
            "p95_ms": ms(p.p95),
            "p99_ms": ms(p.p99),
            "max_ms": ms(p.max),
        })),
        "twping_p95_p50_ms": opt_ms(v.twping_jitter),
        "rfc3550_jitter_ms": opt_ms(v.rfc3550_jitter),
    })
}

fn hops_json(h: &Option<Hops>) -> Value {
    h.as_ref()
        .map_or(Value::Null, |h| json!({ "min": h.min, "max": h.max }))
}

fn reorder_json(r: &stats::Reordering) -> Value {
    json!({ "packets": r.packets, "reordered": r.reordered, "reordered_percent": r.reordered_ratio * 100.0 })
}

impl Record {
    /// The JSON object (schema `twamp-result/1`).
    pub fn json(&self) -> Value {
        let session = self.measurement.as_ref().map(|m| {
            json!({
                "sid": m.sid.to_string(),
                "mode": m.mode.name(),
                "local": m.local.to_string(),
                "reflector": m.reflector.to_string(),
                "padding_octets": m.padding,
                "dscp": m.dscp,
                "count": m.count,
                "interval_ms": ms(m.interval.as_secs_f64()),
                "timeout_ms": ms(m.loss_timeout.as_secs_f64()),
                "interrupted": m.outcome.interrupted,
                "stray_datagrams": m.outcome.stray,
                "malformed_datagrams": m.outcome.malformed,
            })
        });
        let summary = self.summary.as_ref().map(|s| {
            json!({
                "sent": s.sent,
                "received": s.received,
                "lost": s.lost,
                "loss_percent": s.loss_ratio * 100.0,
                "lost_forward": s.lost_forward,
                "lost_backward": s.lost_backward,
                "lost_unattributed": s.lost_unattributed,
                "duplicates": s.duplicates,
                "duplicates_forward": s.duplicates_forward,
                "duplicates_backward": s.duplicates_backward,
                "unexpected": s.unexpected,
                "reordering_rfc4737": {
                    "forward": reorder_json(&s.reordering_forward),
                    "backward": reorder_json(&s.reordering_backward),
                    "round_trip": reorder_json(&s.reordering_round_trip),
                },
                "sync": s.sync,
                "one_way_valid": s.one_way_valid,
                "negative_forward": s.negative_forward,
                "negative_backward": s.negative_backward,
                "maxerr_ms": opt_ms(s.maxerr),
                "maxerr_forward_ms": opt_ms(s.maxerr_fwd),
                "maxerr_backward_ms": opt_ms(s.maxerr_bck),
                "rtt": delay_json(&s.rtt),
                "forward": delay_json(&s.forward),
                "backward": delay_json(&s.backward),
                "processing": delay_json(&s.processing),
                "rtt_variation": variation_json(&s.rtt_variation),
                "forward_variation": variation_json(&s.forward_variation),
                "backward_variation": variation_json(&s.backward_variation),
                "hops_forward": hops_json(&s.hops_forward),
                "hops_backward": hops_json(&s.hops_backward),
            })
        });
        json!({
            "schema": JSON_SCHEMA,
            "time": self.started,
            "ok": self.ok(),
            "exit_code": self.exit_code,
            "error": self.error.as_ref().map(|(kind, message)| json!({ "kind": kind, "message": message })),
            "server": {
                "host": self.host,
                "port": self.port,
                "address": self.measurement.as_ref().map(|m| m.server.ip().to_string()),
            },
            "session": session,
            "summary": summary,
        })
    }
}

/// CSV columns, in order (documented in README.md).
pub const CSV_COLUMNS: [&str; 36] = [
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
];

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(String::new, |x| format!("{:.6}", x))
}

impl Record {
    /// One CSV line (with its newline), columns as [`CSV_COLUMNS`].
    pub fn csv(&self) -> String {
        let s = self.summary.as_ref();
        let m = self.measurement.as_ref();
        let d = |f: fn(&Summary) -> &Option<DelayStats>, g: fn(&DelayStats) -> f64| {
            num(s.and_then(|s| f(s).as_ref()).map(|d| ms(g(d))))
        };
        let count = |f: fn(&Summary) -> u64| s.map_or_else(String::new, |s| f(s).to_string());
        let fields: Vec<String> = vec![
            self.started.clone(),
            self.host.clone(),
            m.map_or_else(String::new, |m| m.server.ip().to_string()),
            self.port.to_string(),
            self.ok().to_string(),
            self.exit_code.to_string(),
            self.error
                .as_ref()
                .map_or_else(String::new, |e| e.0.to_string()),
            m.map_or_else(String::new, |m| m.mode.name().to_string()),
            count(|s| s.sent),
            count(|s| s.received),
            count(|s| s.lost),
            num(s.map(|s| s.loss_ratio * 100.0)),
            count(|s| s.lost_forward),
            count(|s| s.lost_backward),
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
            self.error
                .as_ref()
                .map_or_else(String::new, |e| e.1.clone()),
        ];
        debug_assert_eq!(fields.len(), CSV_COLUMNS.len());
        let mut line = fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",");
        line.push('\n');
        line
    }
}

fn hops_text(h: &Hops) -> String {
    if h.min == h.max {
        h.min.to_string()
    } else {
        format!("{}-{}", h.min, h.max)
    }
}

/// C's `%g` (six significant digits, trailing zeros dropped), as twping prints numbers.
pub fn fmt_g(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x.is_infinite() {
            "inf".into()
        } else {
            "0".into()
        };
    }
    let exp = x.abs().log10().floor() as i32;
    // Rounding to six digits can carry into the next power of ten (999999.5 → 1e+06).
    let exp = {
        let rounded: f64 = format!("{:.5e}", x)
            .split('e')
            .nth(1)
            .and_then(|e| e.parse().ok())
            .unwrap_or(exp as f64);
        rounded as i32
    };
    let strip = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..6).contains(&exp) {
        let s = format!("{:.5e}", x);
        let (mant, e) = s.split_once('e').unwrap_or((&s, "0"));
        let e: i32 = e.parse().unwrap_or(0);
        format!(
            "{}e{}{:02}",
            strip(mant.to_string()),
            if e < 0 { '-' } else { '+' },
            e.abs()
        )
    } else {
        let decimals = (5 - exp).max(0) as usize;
        strip(format!("{:.*}", decimals, x))
    }
}

impl Record {
    /// Human summary, ping-like.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let target = match &self.measurement {
            Some(m) => format!("{} ({}), reflector {}", self.host, m.server, m.reflector),
            None => format!("{}:{}", self.host, self.port),
        };
        let _ = writeln!(o, "--- twamp statistics for {target} ---");
        if let Some(m) = &self.measurement {
            let _ = writeln!(
                o,
                "mode {}, SID {}, {} packets of {} octets every {}",
                m.mode,
                m.sid,
                m.count,
                m.mode.test_layout().sender.base as u32 + m.padding,
                fmt_duration(m.interval)
            );
        }
        if let Some(s) = &self.summary {
            let _ = writeln!(
                o,
                "{} sent, {} received, {} lost ({:.1}%: {} forward, {} backward), {} duplicates ({} forward, {} backward)",
                s.sent,
                s.received,
                s.lost,
                s.loss_ratio * 100.0,
                s.lost_forward,
                s.lost_backward,
                s.duplicates,
                s.duplicates_forward,
                s.duplicates_backward
            );
            let r = &s.reordering_round_trip;
            if r.reordered > 0
                || s.reordering_forward.reordered > 0
                || s.reordering_backward.reordered > 0
            {
                let _ = writeln!(
                    o,
                    "reordered (RFC 4737): {} forward, {} backward, {} round trip ({:.1}%)",
                    s.reordering_forward.reordered,
                    s.reordering_backward.reordered,
                    r.reordered,
                    r.reordered_ratio * 100.0
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
            let flag = if s.one_way_valid {
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
        }
        if let Some((kind, msg)) = &self.error {
            let _ = writeln!(o, "FAILED ({kind}): {msg}");
        }
        o
    }
}

/// Milliseconds with three decimals from seconds.
fn f3(s: f64) -> String {
    format!("{:.3}", ms(s))
}

fn fmt_duration(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{} s", fmt_g(d.as_secs_f64()))
    } else {
        format!("{} ms", fmt_g(d.as_secs_f64() * 1e3))
    }
}

/// twping `-R`'s error value: `%g` of the estimate in seconds.
fn err_g(e: ErrorEstimate) -> String {
    fmt_g(e.seconds())
}

impl Record {
    /// One line per test packet, in twping `-R`'s 16 fields:
    /// `SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL`
    /// (timestamps as 64-bit NTP integers; a lost packet has zeros where the reply would be).
    pub fn packets(&self) -> String {
        let mut o = String::new();
        if let Some(m) = &self.measurement {
            for p in stats::per_packet(&m.outcome.sent, &m.outcome.replies) {
                let s = u8::from(p.t1_err.synchronized());
                match &p.reply {
                    Some(r) => {
                        let _ = writeln!(
                            o,
                            "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                            p.seq,
                            p.t1.0,
                            s,
                            err_g(p.t1_err),
                            r.t2.0,
                            u8::from(r.t2_err.synchronized()),
                            err_g(r.t2_err),
                            r.sender_ttl,
                            r.reflector_seq,
                            r.t3.0,
                            u8::from(r.t3_err.synchronized()),
                            err_g(r.t3_err),
                            r.t4.0,
                            u8::from(r.t4_err.synchronized()),
                            err_g(r.t4_err),
                            r.ttl.map_or(255, |t| t)
                        );
                    }
                    None => {
                        let _ = writeln!(
                            o,
                            "{} {} {} {} 0 0 0 0 0 0 0 0 0 0 0 0",
                            p.seq,
                            p.t1.0,
                            s,
                            err_g(p.t1_err)
                        );
                    }
                }
            }
        }
        if let Some((kind, msg)) = &self.error {
            let _ = writeln!(o, "# FAILED ({kind}): {msg}");
        }
        o
    }

    /// twping `-M`'s machine-readable summary (`SUMMARY 3.00`), same keys in the same order, so
    /// scripts and exporters written for twping work unchanged. Times are in seconds; START_TIME,
    /// END_TIME and LOSS_TIMEOUT are 64-bit NTP integers, as twping prints them.
    pub fn twping(&self) -> String {
        let mut o = String::new();
        let kv = |o: &mut String, k: &str, v: String| {
            let _ = writeln!(o, "{k}\t{v}");
        };
        kv(&mut o, "SUMMARY", "3.00".into());
        let (Some(m), Some(s)) = (&self.measurement, &self.summary) else {
            kv(&mut o, "TO_HOST", self.host.clone());
            kv(&mut o, "SESSION_FINISHED", "0".into());
            if let Some((kind, msg)) = &self.error {
                kv(&mut o, "ERROR", format!("{kind}: {msg}"));
            }
            return o;
        };
        let start = m.outcome.sent.first().map_or(0, |p| p.t1.0);
        let end = m
            .outcome
            .replies
            .iter()
            .map(|r| r.t4)
            .chain(m.outcome.sent.iter().map(|p| p.t1))
            .max()
            .map_or(0, |t| t.0);
        kv(&mut o, "SID", m.sid.to_string());
        kv(&mut o, "FROM_HOST", m.local.ip().to_string());
        kv(&mut o, "FROM_ADDR", m.local.ip().to_string());
        kv(&mut o, "FROM_PORT", m.local.port().to_string());
        kv(&mut o, "TO_HOST", self.host.clone());
        kv(&mut o, "TO_ADDR", m.reflector.ip().to_string());
        kv(&mut o, "TO_PORT", m.reflector.port().to_string());
        kv(&mut o, "START_TIME", start.to_string());
        kv(&mut o, "END_TIME", end.to_string());
        kv(&mut o, "DSCP", format!("0x{:02x}", m.dscp));
        kv(
            &mut o,
            "LOSS_TIMEOUT",
            Timestamp::from_duration(m.loss_timeout).0.to_string(),
        );
        kv(&mut o, "PACKET_PADDING", m.padding.to_string());
        kv(&mut o, "SESSION_PACKET_COUNT", m.count.to_string());
        kv(&mut o, "SAMPLE_PACKET_COUNT", s.sent.to_string());
        kv(&mut o, "BUCKET_WIDTH", fmt_g(BUCKET_WIDTH));
        kv(
            &mut o,
            "SESSION_FINISHED",
            u8::from(self.error.is_none() && !m.outcome.interrupted).to_string(),
        );
        kv(&mut o, "SENT", s.sent.to_string());
        kv(&mut o, "SYNC", u8::from(s.sync).to_string());
        let g = |v: Option<f64>| v.map_or_else(|| "nan".to_string(), fmt_g);
        kv(&mut o, "MAXERR", g(s.maxerr));
        kv(&mut o, "MAXERR_FWD", g(s.maxerr_fwd));
        kv(&mut o, "MAXERR_BCK", g(s.maxerr_bck));
        kv(&mut o, "DUPS_FWD", s.duplicates_forward.to_string());
        kv(&mut o, "DUPS_BCK", s.duplicates_backward.to_string());
        kv(&mut o, "LOST", s.lost.to_string());
        let pick = |d: &Option<DelayStats>, f: fn(&DelayStats) -> f64| g(d.as_ref().map(f));
        kv(&mut o, "MIN", pick(&s.rtt, |d| d.min));
        kv(&mut o, "MIN_FWD", pick(&s.forward, |d| d.min));
        kv(&mut o, "MIN_BCK", pick(&s.backward, |d| d.min));
        kv(&mut o, "MIN_PROC", pick(&s.processing, |d| d.min));
        kv(&mut o, "MEDIAN", pick(&s.rtt, |d| d.median));
        kv(&mut o, "MEDIAN_FWD", pick(&s.forward, |d| d.median));
        kv(&mut o, "MEDIAN_BCK", pick(&s.backward, |d| d.median));
        kv(&mut o, "MAX", pick(&s.rtt, |d| d.max));
        kv(&mut o, "MAX_FWD", pick(&s.forward, |d| d.max));
        kv(&mut o, "MAX_BCK", pick(&s.backward, |d| d.max));
        kv(&mut o, "MAX_PROC", pick(&s.processing, |d| d.max));
        kv(&mut o, "PDV", g(s.rtt_variation.twping_jitter));
        kv(&mut o, "PDV_FWD", g(s.forward_variation.twping_jitter));
        kv(&mut o, "PDV_BCK", g(s.backward_variation.twping_jitter));
        // Buckets: index = floor(delay / BUCKET_WIDTH), counts for rtt, forward, backward.
        let per = stats::per_packet(&m.outcome.sent, &m.outcome.replies);
        let col = |f: fn(&stats::PacketResult) -> Option<f64>| -> Vec<f64> {
            per.iter().filter_map(f).collect()
        };
        let (rtt, fwd, bck) = (col(|p| p.rtt), col(|p| p.fwd), col(|p| p.bck));
        let mut buckets: std::collections::BTreeMap<i64, [u64; 3]> =
            std::collections::BTreeMap::new();
        for (i, v) in [&rtt, &fwd, &bck].iter().enumerate() {
            for (b, n) in stats::histogram(v, BUCKET_WIDTH) {
                buckets.entry(b).or_default()[i] += n;
            }
        }
        let _ = writeln!(o, "<BUCKETS>");
        for (b, [r, f, k]) in &buckets {
            let _ = writeln!(o, "\t{b}\t{r}\t{f}\t{k}");
        }
        let _ = writeln!(o, "</BUCKETS>");
        // TTL as received (255 − hops), as twping prints it.
        let ttl = |h: &Option<Hops>, max: bool| {
            h.as_ref().map_or("nan".to_string(), |h| {
                (255 - if max { h.min } else { h.max }).to_string()
            })
        };
        kv(&mut o, "MINTTL_FWD", ttl(&s.hops_forward, false));
        kv(&mut o, "MAXTTL_FWD", ttl(&s.hops_forward, true));
        kv(&mut o, "MINTTL_BCK", ttl(&s.hops_backward, false));
        kv(&mut o, "MAXTTL_BCK", ttl(&s.hops_backward, true));
        let mut ttls: std::collections::BTreeMap<u8, [u64; 2]> = std::collections::BTreeMap::new();
        for (i, h) in [&s.hops_forward, &s.hops_backward].iter().enumerate() {
            if let Some(h) = h {
                for &(hops, n) in &h.counts {
                    ttls.entry(255 - hops).or_default()[i] += n;
                }
            }
        }
        let _ = writeln!(o, "<TTLBUCKETS>");
        for (t, [f, b]) in &ttls {
            let _ = writeln!(o, "\t{t}\t{f}\t{b}");
        }
        let _ = writeln!(o, "</TTLBUCKETS>");
        if let Some((kind, msg)) = &self.error {
            kv(&mut o, "ERROR", format!("{kind}: {msg}"));
        }
        o
    }
}

/// Draws a histogram of round-trip times: one line per bucket, bars scaled to `width` columns.
/// Bucket width is chosen so that at most `rows` buckets span min..max.
pub fn rtt_histogram(m: &Measurement, rows: usize, width: usize) -> String {
    let per = stats::per_packet(&m.outcome.sent, &m.outcome.replies);
    let rtts: Vec<f64> = per.iter().filter_map(|p| p.rtt).collect();
    let (Some(min), Some(max)) = (
        rtts.iter().copied().reduce(f64::min),
        rtts.iter().copied().reduce(f64::max),
    ) else {
        return String::from("no round-trip times to draw\n");
    };
    let rows = rows.max(1);
    // A "nice" bucket width: 1, 2 or 5 × 10^k seconds, at least 1 µs.
    let raw = ((max - min) / rows as f64).max(1e-6);
    let mag = 10f64.powf(raw.log10().floor());
    let bw = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|f| f * mag)
        .find(|w| *w >= raw)
        .unwrap_or(10.0 * mag);
    let hist = stats::histogram(&rtts, bw);
    let peak = hist.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    let mut o = String::new();
    let _ = writeln!(
        o,
        "round-trip time histogram ({} samples, {} ms buckets)",
        rtts.len(),
        fmt_g(bw * 1e3)
    );
    for (b, n) in hist {
        let lo = b as f64 * bw * 1e3;
        let bar = ((n as f64 / peak as f64) * width as f64).ceil() as usize;
        let _ = writeln!(
            o,
            "{:>10.3} ms | {:<width$} {}",
            lo,
            "#".repeat(bar.min(width)),
            n
        );
    }
    o
}

/// Appends `text` to `path` in one write on an O_APPEND descriptor, so concurrent runs never
/// interleave their records. `header`, if given, is written first when the file is empty; an
/// exclusive lock (flock) makes "empty?" and the write one step, so two runs starting on a new
/// file do not both write it.
pub fn append_whole(
    path: &std::path::Path,
    text: &str,
    header: Option<&str>,
) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.lock()?;
    let mut whole = String::new();
    if let Some(h) = header {
        if f.metadata()?.len() == 0 {
            whole.push_str(h);
        }
    }
    whole.push_str(text);
    let text = whole;
    let n = f.write(text.as_bytes())?;
    if n != text.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            format!("short write: {n} of {} octets", text.len()),
        ));
    }
    Ok(())
}

/// Writes the record where the configuration says: the `-output` file (appended whole) and
/// stdout (unless `-q`). A CSV header goes to the file only when the file is new and `-header`
/// asked for one.
pub fn emit(cfg: &ClientConfig, r: &Record) -> Result<()> {
    if let Some(path) = &cfg.output {
        let header = (cfg.header && cfg.format == Format::Csv)
            .then(|| format!("{}\n", CSV_COLUMNS.join(",")));
        append_whole(path, &r.render(cfg.format, false), header.as_deref()).map_err(|e| {
            Error::Output {
                path: path.display().to_string(),
                source: e,
            }
        })?;
    }
    if !cfg.quiet {
        let text = r.render(cfg.format, cfg.header);
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is the reader's choice, not our failure.
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                return Err(Error::Output {
                    path: "stdout".into(),
                    source: e,
                })
            }
        }
    }
    Ok(())
}

/// A one-line progress report for a terminal.
pub fn progress_line(o: &crate::sender::Outcome, count: u32) -> String {
    let got: std::collections::HashSet<u32> = o.replies.iter().map(|r| r.sender_seq).collect();
    format!("\r{}/{} sent, {} received", o.sent.len(), count, got.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_g_matches_c() {
        for (x, want) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.0001, "0.0001"),
            (1e-06, "1e-06"),
            (9.31323e-10, "9.31323e-10"),
            (2.328306436538696e-10, "2.32831e-10"),
            (0.000109, "0.000109"),
            (0.00142193, "0.00142193"),
            (123456.7, "123457"),
            (1234567.0, "1.23457e+06"),
            (-0.5, "-0.5"),
            (5.72205e-06, "5.72205e-06"),
        ] {
            assert_eq!(fmt_g(x), want, "{x}");
        }
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn appends_are_single_whole_writes() {
        let dir = std::env::temp_dir().join(format!("twamp-append-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("out.txt");
        append_whole(&p, "one\n", Some("h\n")).unwrap();
        append_whole(&p, "two\n", Some("h\n")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "h\none\ntwo\n",
            "header only into an empty file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
