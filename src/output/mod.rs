//! Rendering a [`Report`]: `-format text|json|csv|packets|twping`, one file per format, plus
//! the sink that writes records ([`sink`]) and the terminal extras ([`terminal`]).
//!
//! Every format renders a whole report into one `String` first, so that `-output` appends it
//! with a single `write(2)` on an `O_APPEND` descriptor: concurrent runs into one file never
//! interleave, and a failed run still leaves its record. Nothing here measures or decides an
//! exit code: the report has done both.

pub mod csv;
pub mod json;
pub mod packets;
pub mod sink;
pub mod terminal;
pub mod text;
pub mod twping;

use std::time::Duration;

use crate::config::Format;
use crate::report::Report;
use crate::stats::Hops;
use crate::time::ErrorEstimate;

pub use csv::CSV_COLUMNS;
pub use json::JSON_SCHEMA;
pub use sink::{append_whole, emit};
pub use twping::BUCKET_WIDTH;

/// Renders the report in `format`. `header` adds the CSV header line.
pub fn render(report: &Report, format: Format, header: bool) -> String {
    match format {
        Format::Text => text::render(report),
        Format::Json => json::render(report),
        Format::Csv => csv::render(report, header),
        Format::Packets => packets::render(report),
        Format::Twping => twping::render(report),
    }
}

/// Seconds → milliseconds, for display and `_ms` keys.
fn ms(s: f64) -> f64 {
    s * 1e3
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

fn hops_text(h: &Hops) -> String {
    if h.min == h.max {
        h.min.to_string()
    } else {
        format!("{}-{}", h.min, h.max)
    }
}

/// twping `-R`'s error value: `%g` of the estimate in seconds.
fn err_g(e: ErrorEstimate) -> String {
    fmt_g(e.seconds())
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
    // Rounding to six digits can carry into the next power of ten (999999.5 → 1e+06), so the
    // exponent is the one `{:e}` chose after rounding.
    let exp: i32 = format!("{x:.5e}")
        .split('e')
        .nth(1)
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| x.abs().log10().floor() as i32);
    let strip = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if !(-4..6).contains(&exp) {
        let s = format!("{x:.5e}");
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
}
