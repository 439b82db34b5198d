//! Terminal extras: the progress line on stderr and the `-histogram` drawing. Neither is a
//! record: with a machine format on stdout the histogram goes to stderr (see `app`).

use std::fmt::Write as _;

use super::fmt_g;
use crate::report::Report;
use crate::sender::Progress;
use crate::stats;

/// One progress line for a terminal (starts with `\r`, no newline).
pub fn progress_line(p: &Progress) -> String {
    match p.waiting {
        None => format!("\r{}/{} sent, {} received", p.sent, p.planned, p.received),
        Some((late, left)) => format!(
            "\r{}/{} sent, {} received, waiting up to {:.1} s for {late} late repl{}",
            p.sent,
            p.planned,
            p.received,
            left.as_secs_f64(),
            if late == 1 { "y" } else { "ies" }
        ),
    }
}

/// Draws the round-trip times of every session: one line per bucket, bars scaled to `width`
/// columns, bucket width chosen so that at most `rows` buckets span min..max.
pub fn rtt_histograms(r: &Report, rows: usize, width: usize) -> String {
    let mut o = String::new();
    let many = r.sessions.len() > 1;
    for (i, m) in r.sessions.iter().enumerate() {
        if many {
            let _ = writeln!(o, "session {} ({}):", i + 1, m.sid);
        }
        let rtts: Vec<f64> = m.packets().iter().filter_map(|p| p.rtt).collect();
        o.push_str(&rtt_histogram(&rtts, rows, width));
    }
    o
}

fn rtt_histogram(rtts: &[f64], rows: usize, width: usize) -> String {
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
    let hist = stats::histogram(rtts, bw);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn progress_says_it_waits_for_late_replies() {
        let mut p = Progress {
            sent: 3,
            planned: 10,
            received: 2,
            waiting: None,
        };
        assert_eq!(progress_line(&p), "\r3/10 sent, 2 received");
        p.waiting = Some((4, Duration::from_millis(1500)));
        assert_eq!(
            progress_line(&p),
            "\r3/10 sent, 2 received, waiting up to 1.5 s for 4 late replies"
        );
    }
}
