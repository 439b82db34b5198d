//! `-format twping`: twping `-M`'s machine-readable summary (`SUMMARY 3.00`), same keys in the
//! same order, so scripts and exporters written for twping work unchanged. Times are in
//! seconds; START_TIME, END_TIME and LOSS_TIMEOUT are 64-bit NTP integers, as twping prints
//! them. One block per session.
//!
//! `SYNC` follows twping, not our `sync`: in a two-way session twping clears it only for a
//! lost packet whose local timestamp is unsynchronised (owamp `stats.c`,
//! `IterateSummarizeTWSession`), so against a server with an unsynchronised clock twping still
//! prints `SYNC 1`. `-format json` and `text` keep the honest figure (every timestamp's S bit).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::fmt_g;
use crate::report::{Report, SessionReport};
use crate::stats::{self, DelayStats, Hops, PacketResult};
use crate::time::Timestamp;

/// twping `-M`'s histogram bucket width in seconds: what twping 5.2.3 printed in the reference
/// capture (`twping-output/twping_open_M.txt`), although owping's `-b` documentation says 0.0001.
pub const BUCKET_WIDTH: f64 = 1e-6;

fn kv(o: &mut String, k: &str, v: impl std::fmt::Display) {
    let _ = writeln!(o, "{k}\t{v}");
}

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    if r.sessions.is_empty() {
        kv(&mut o, "SUMMARY", "3.00");
        kv(&mut o, "TO_HOST", &r.host);
        kv(&mut o, "SESSION_FINISHED", 0);
        if let Some(f) = &r.error {
            kv(&mut o, "ERROR", format!("{}: {f}", f.kind()));
        }
        return o;
    }
    for m in &r.sessions {
        session(&mut o, r, m);
    }
    o
}

/// twping's SYNC for a two-way session: 0 only if a lost packet's own timestamp lacks the S bit.
pub fn twping_sync(packets: &[PacketResult]) -> bool {
    !packets
        .iter()
        .any(|p| p.reply.is_none() && !p.t1_err.synchronized())
}

fn session(o: &mut String, r: &Report, m: &SessionReport) {
    let s = &m.summary;
    kv(o, "SUMMARY", "3.00");
    let start = m.outcome.sent.first().map_or(0, |p| p.t1.0);
    let end = m
        .outcome
        .replies
        .iter()
        .map(|r| r.t4)
        .chain(m.outcome.sent.iter().map(|p| p.t1))
        .max()
        .map_or(0, |t| t.0);
    kv(o, "SID", m.sid);
    kv(o, "FROM_HOST", m.local.ip());
    kv(o, "FROM_ADDR", m.local.ip());
    kv(o, "FROM_PORT", m.local.port());
    kv(o, "TO_HOST", &r.host);
    kv(o, "TO_ADDR", m.reflector.ip());
    kv(o, "TO_PORT", m.reflector.port());
    kv(o, "START_TIME", start);
    kv(o, "END_TIME", end);
    kv(o, "DSCP", format!("0x{:02x}", m.dscp));
    kv(
        o,
        "LOSS_TIMEOUT",
        Timestamp::from_duration(m.loss_timeout).0,
    );
    kv(o, "PACKET_PADDING", m.padding);
    kv(o, "SESSION_PACKET_COUNT", m.count);
    kv(o, "SAMPLE_PACKET_COUNT", s.sent);
    kv(o, "BUCKET_WIDTH", fmt_g(BUCKET_WIDTH));
    kv(
        o,
        "SESSION_FINISHED",
        u8::from(r.error.is_none() && !m.outcome.interrupted),
    );
    kv(o, "SENT", s.sent);
    let per = m.packets();
    kv(o, "SYNC", u8::from(twping_sync(&per)));
    let g = |v: Option<f64>| v.map_or_else(|| "nan".to_string(), fmt_g);
    kv(o, "MAXERR", g(s.maxerr));
    kv(o, "MAXERR_FWD", g(s.maxerr_fwd));
    kv(o, "MAXERR_BCK", g(s.maxerr_bck));
    kv(o, "DUPS_FWD", s.duplicates_forward);
    kv(o, "DUPS_BCK", s.duplicates_backward);
    kv(o, "LOST", s.lost);
    let pick = |d: &Option<DelayStats>, f: fn(&DelayStats) -> f64| g(d.as_ref().map(f));
    kv(o, "MIN", pick(&s.rtt, |d| d.min));
    kv(o, "MIN_FWD", pick(&s.forward, |d| d.min));
    kv(o, "MIN_BCK", pick(&s.backward, |d| d.min));
    kv(o, "MIN_PROC", pick(&s.processing, |d| d.min));
    kv(o, "MEDIAN", pick(&s.rtt, |d| d.median));
    kv(o, "MEDIAN_FWD", pick(&s.forward, |d| d.median));
    kv(o, "MEDIAN_BCK", pick(&s.backward, |d| d.median));
    kv(o, "MAX", pick(&s.rtt, |d| d.max));
    kv(o, "MAX_FWD", pick(&s.forward, |d| d.max));
    kv(o, "MAX_BCK", pick(&s.backward, |d| d.max));
    kv(o, "MAX_PROC", pick(&s.processing, |d| d.max));
    kv(o, "PDV", g(s.rtt_variation.twping_jitter));
    kv(o, "PDV_FWD", g(s.forward_variation.twping_jitter));
    kv(o, "PDV_BCK", g(s.backward_variation.twping_jitter));
    // Buckets: index = floor(delay / BUCKET_WIDTH), counts for rtt, forward, backward.
    let col =
        |f: fn(&PacketResult) -> Option<f64>| -> Vec<f64> { per.iter().filter_map(f).collect() };
    let (rtt, fwd, bck) = (col(|p| p.rtt), col(|p| p.fwd), col(|p| p.bck));
    let mut buckets: BTreeMap<i64, [u64; 3]> = BTreeMap::new();
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
    kv(o, "MINTTL_FWD", ttl(&s.hops_forward, false));
    kv(o, "MAXTTL_FWD", ttl(&s.hops_forward, true));
    kv(o, "MINTTL_BCK", ttl(&s.hops_backward, false));
    kv(o, "MAXTTL_BCK", ttl(&s.hops_backward, true));
    let mut ttls: BTreeMap<u8, [u64; 2]> = BTreeMap::new();
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
    if let Some(f) = &r.error {
        kv(o, "ERROR", format!("{}: {f}", f.kind()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Reply;
    use crate::time::ErrorEstimate;

    fn packet(lost: bool, sync: bool) -> PacketResult {
        let e = ErrorEstimate(if sync { 0x8001 } else { 0x0001 });
        let t = Timestamp::new(1, 0);
        PacketResult {
            seq: 0,
            t1: t,
            t1_err: e,
            reply: (!lost).then_some(Reply {
                sender_seq: 0,
                reflector_seq: 0,
                t1: t,
                t1_err: e,
                t2: t,
                t2_err: ErrorEstimate(0x0001),
                t3: t,
                t3_err: ErrorEstimate(0x0001),
                t4: t,
                t4_err: e,
                sender_ttl: 255,
                ttl: None,
            }),
            rtt: None,
            fwd: None,
            bck: None,
            proc: None,
            dup_count: 0,
        }
    }

    #[test]
    fn sync_is_cleared_only_by_unsynchronised_lost_packets_as_twping_does() {
        // Every reply unsynchronised, none lost: twping still says SYNC 1.
        assert!(twping_sync(&[packet(false, false), packet(false, false)]));
        assert!(twping_sync(&[packet(true, true)]));
        assert!(!twping_sync(&[packet(false, true), packet(true, false)]));
    }
}
