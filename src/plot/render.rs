//! Drawing [`PlotSession`]s into one SVG with plotters' SVG backend.
//!
//! plotters writes one flat list of elements per backend, with no groups. To give each kind of
//! mark its own `<g class="…">` (see the table in the module docs of [`super`]), every session
//! is drawn once per [`Layer`] onto a fresh backend of the same size, with the same areas and
//! the same chart ranges, so every layer maps data to the same pixels; each layer's elements are
//! then wrapped in their group. Only the [`Layer::Frame`] pass draws axes and text, so nothing
//! is drawn twice.
//!
//! Layout of one session, top to bottom: the title; round-trip delay over time (left) beside
//! its histogram (right); then forward and backward one-way delay over the same time axis
//! (left) beside a table of their percentiles (right), or, when there are no one-way delays, a
//! one-line note saying why.

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Error, PlotSession, Result, Samples};
use crate::stats::DelayStats;

/// Width of the picture, pixels.
const WIDTH: u32 = 1200;
/// Height of a session's title band.
const TITLE_H: u32 = 62;
/// Height of the round-trip row.
const RTT_H: u32 = 320;
/// Height of the one-way row when there are one-way delays, and of the note when not.
const ONE_WAY_H: u32 = 260;
const NOTE_H: u32 = 34;
/// Space below each session, so stacked sessions do not touch.
const GAP_H: u32 = 18;
/// Width of the left (time) column; the right column gets the rest.
const LEFT_W: u32 = 770;
/// Margin above each chart, where its legend line goes.
const LEGEND_H: u32 = 30;
/// Height of the lost-packet ticks on the time axis, pixels.
const LOST_TICK: i32 = 11;
/// The most histogram bars; fewer for few samples (√n).
const MAX_BINS: usize = 48;

const FONT: &str = "sans-serif";
/// Font size of legend lines (plotters' units: the SVG gets size / 1.24 pixels).
const LEGEND_FONT: f64 = 14.0;
const RTT_COLOR: RGBColor = RGBColor(31, 119, 180);
const LOST_COLOR: RGBColor = RGBColor(214, 39, 40);
const FORWARD_COLOR: RGBColor = RGBColor(230, 120, 0);
const BACKWARD_COLOR: RGBColor = RGBColor(44, 160, 44);
const TEXT_COLOR: RGBColor = RGBColor(30, 30, 30);
const NOTE_COLOR: RGBColor = RGBColor(90, 90, 90);
const GRID_COLOR: RGBColor = RGBColor(225, 225, 225);
/// min, median, P95, P99 markers on the histogram.
const PERCENTILE_COLORS: [RGBColor; 4] = [
    RGBColor(23, 150, 170),
    RGBColor(0, 0, 0),
    RGBColor(230, 120, 0),
    RGBColor(148, 60, 190),
];

/// Renders every session, stacked, into one self-contained SVG document.
pub fn render_svg(sessions: &[PlotSession]) -> Result<String> {
    let prepared: Vec<Prepared<'_>> = sessions.iter().map(Prepared::new).collect();
    let total: u32 = prepared.iter().map(|p| p.height).sum::<u32>().max(1);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{total}" viewBox="0 0 {WIDTH} {total}">"#
    );
    let _ = writeln!(
        out,
        "<title>twamp: delay over time and its distribution</title>"
    );
    let mut y = 0;
    for (i, p) in prepared.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<g class="session" id="session-{i}" transform="translate(0,{y})">"#
        );
        let _ = writeln!(out, "<title>{}</title>", escape(&p.title_line()));
        for layer in Layer::ALL {
            let body = draw_layer(p, layer)?;
            let _ = writeln!(out, r#"<g class="{}">"#, layer.class());
            out.push_str(&body);
            out.push_str("</g>\n");
        }
        out.push_str("</g>\n");
        y += p.height;
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// One kind of mark, drawn in its own pass and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layer {
    Frame,
    RttMedian,
    RttPoints,
    LostMarks,
    ForwardPoints,
    BackwardPoints,
    Distribution,
    Percentiles,
}

impl Layer {
    /// Drawing order: later layers are on top.
    const ALL: [Layer; 8] = [
        Layer::Frame,
        Layer::Distribution,
        Layer::Percentiles,
        Layer::ForwardPoints,
        Layer::BackwardPoints,
        Layer::RttPoints,
        Layer::RttMedian,
        Layer::LostMarks,
    ];

    fn class(self) -> &'static str {
        match self {
            Layer::Frame => "frame",
            Layer::RttMedian => "rtt-median",
            Layer::RttPoints => "rtt-points",
            Layer::LostMarks => "lost-marks",
            Layer::ForwardPoints => "forward-points",
            Layer::BackwardPoints => "backward-points",
            Layer::Distribution => "distribution",
            Layer::Percentiles => "percentiles",
        }
    }
}

/// A session reduced to what is drawn: finite numbers only, times relative to the first
/// packet, delays in milliseconds.
struct Prepared<'a> {
    s: &'a PlotSession,
    /// Unix seconds of x = 0 (the first packet).
    t0: f64,
    /// x = seconds since `t0`.
    x_range: (f64, f64),
    rtt: Vec<(f64, f64)>,
    lost: Vec<f64>,
    forward: Vec<(f64, f64)>,
    backward: Vec<(f64, f64)>,
    /// Statistics in milliseconds.
    rtt_stats: Option<DelayStats>,
    forward_stats: Option<DelayStats>,
    backward_stats: Option<DelayStats>,
    rtt_y: (f64, f64),
    one_way_y: (f64, f64),
    /// Histogram of `rtt`: bin width and the count per bin, from `rtt_stats.min`.
    bin_width: f64,
    bins: Vec<u64>,
    hist_x: (f64, f64),
    has_one_way: bool,
    height: u32,
}

impl<'a> Prepared<'a> {
    fn new(s: &'a PlotSession) -> Self {
        let valid: Vec<_> = s
            .packets
            .iter()
            .filter(|p| p.send_time.is_finite())
            .collect();
        let t0 = valid
            .iter()
            .map(|p| p.send_time)
            .reduce(f64::min)
            .unwrap_or(0.0);
        let x = |t: f64| t - t0;
        let ms = |v: Option<f64>| v.map(|v| v * 1e3).filter(|v| v.is_finite());
        let rtt: Vec<(f64, f64)> = valid
            .iter()
            .filter_map(|p| ms(p.rtt).map(|d| (x(p.send_time), d)))
            .collect();
        let lost: Vec<f64> = valid
            .iter()
            .filter(|p| p.rtt.is_none())
            .map(|p| x(p.send_time))
            .collect();
        let forward: Vec<(f64, f64)> = valid
            .iter()
            .filter_map(|p| ms(p.forward).map(|d| (x(p.send_time), d)))
            .collect();
        let backward: Vec<(f64, f64)> = valid
            .iter()
            .filter_map(|p| ms(p.backward).map(|d| (x(p.send_time), d)))
            .collect();
        let ys = |v: &[(f64, f64)]| v.iter().map(|&(_, y)| y).collect::<Vec<_>>();
        let rtt_stats = DelayStats::from_values(&ys(&rtt));
        let forward_stats = DelayStats::from_values(&ys(&forward));
        let backward_stats = DelayStats::from_values(&ys(&backward));
        let x_max = valid
            .iter()
            .map(|p| x(p.send_time))
            .reduce(f64::max)
            .unwrap_or(0.0);
        let x_range = padded(0.0, x_max, 0.02, 0.02);
        // Extra room below the lowest point for the lost ticks on the time axis.
        let rtt_y = match &rtt_stats {
            Some(d) => padded(d.min, d.max, 0.12, 0.06),
            None => (0.0, 1.0),
        };
        let one_way_y = {
            let lo = [&forward_stats, &backward_stats]
                .iter()
                .filter_map(|d| d.as_ref().map(|d| d.min))
                .reduce(f64::min);
            let hi = [&forward_stats, &backward_stats]
                .iter()
                .filter_map(|d| d.as_ref().map(|d| d.max))
                .reduce(f64::max);
            match (lo, hi) {
                (Some(lo), Some(hi)) => padded(lo, hi, 0.06, 0.06),
                _ => (0.0, 1.0),
            }
        };
        let (bin_width, bins) = match &rtt_stats {
            Some(d) => histogram(&ys(&rtt), d.min, d.max),
            None => (1.0, Vec::new()),
        };
        let hist_x = match &rtt_stats {
            Some(d) => padded(d.min, d.min + bin_width * bins.len() as f64, 0.04, 0.04),
            None => (0.0, 1.0),
        };
        let has_one_way = !forward.is_empty() || !backward.is_empty();
        let height = TITLE_H + RTT_H + if has_one_way { ONE_WAY_H } else { NOTE_H } + GAP_H;
        Prepared {
            s,
            t0,
            x_range,
            rtt,
            lost,
            forward,
            backward,
            rtt_stats,
            forward_stats,
            backward_stats,
            rtt_y,
            one_way_y,
            bin_width,
            bins,
            hist_x,
            has_one_way,
            height,
        }
    }

    fn runs(&self) -> bool {
        matches!(self.s.samples, Samples::Runs { .. })
    }

    /// Title line 1: what was measured, and when.
    fn title_line(&self) -> String {
        let t = &self.s.title;
        let mut parts = vec![if t.target.is_empty() {
            "(target not recorded)".to_string()
        } else {
            t.target.clone()
        }];
        if let Some(m) = &t.mode {
            parts.push(format!("mode {m}"));
        }
        if let Some(d) = t.dscp {
            parts.push(format!("DSCP {d}"));
        }
        if let Some(n) = t.packet_octets {
            parts.push(format!("{n} octets"));
        }
        if let Some(start) = &t.start {
            parts.push(format!("started {start}"));
        }
        parts.join("  ·  ")
    }

    /// Title line 2: how many, and the loss per direction.
    fn loss_line(&self) -> String {
        let t = &self.s.title;
        let percent = if t.sent == 0 {
            0.0
        } else {
            t.lost as f64 * 100.0 / t.sent as f64
        };
        let loss = format!(
            "{} lost ({percent:.1}%): {} forward, {} backward",
            t.lost, t.lost_forward, t.lost_backward
        );
        if self.runs() {
            format!(
                "{} runs, {} failed or lost every packet  ·  {} packets sent, {loss}",
                self.rtt.len() + self.lost.len(),
                self.lost.len(),
                t.sent
            )
        } else {
            format!(
                "{} sent, {} received, {loss}",
                t.sent,
                t.sent.saturating_sub(t.lost)
            )
        }
    }

    /// The time axis' description, with its unit.
    fn time_desc(&self) -> String {
        match self.s.samples {
            Samples::Packets => "time since the first packet (s)".into(),
            Samples::Runs { utc_offset_secs } => {
                format!("time of the run (UTC{})", offset_text(utc_offset_secs))
            }
        }
    }

    /// Ticks for a wall-clock axis: (x, label) on round minutes or hours in the records' UTC
    /// offset, at most nine. `None` for a packet session (plotters' ticks serve).
    fn clock_ticks(&self) -> Option<Vec<(f64, String)>> {
        let Samples::Runs { utc_offset_secs } = self.s.samples else {
            return None;
        };
        const STEPS: [f64; 14] = [
            60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10_800.0, 21_600.0, 43_200.0,
            86_400.0, 172_800.0, 604_800.0,
        ];
        let (lo, hi) = self.x_range;
        let span = hi - lo;
        let step = STEPS
            .iter()
            .copied()
            .find(|s| span / s <= 8.0)
            .unwrap_or(span / 8.0);
        if !step.is_finite() || step <= 0.0 {
            return Some(Vec::new());
        }
        // Local time of x = lo, then the first multiple of `step` at or after it (multiples of
        // a day fall on local midnight, since local time is UTC shifted by the offset).
        let local = self.t0 + lo + f64::from(utc_offset_secs);
        let first = (local / step).ceil() * step - (self.t0 + f64::from(utc_offset_secs));
        Some(
            (0..=9)
                .map(|k| first + step * f64::from(k))
                .take_while(|&x| x <= hi)
                .map(|x| (x, self.time_label(x)))
                .collect(),
        )
    }

    /// A time-axis label: seconds for packets, wall-clock time for runs.
    fn time_label(&self, x: f64) -> String {
        match self.s.samples {
            Samples::Packets => trim_number(x, self.x_range.1 - self.x_range.0),
            Samples::Runs { utc_offset_secs } => {
                let secs = (self.t0 + x).round();
                let span = self.x_range.1 - self.x_range.0;
                // An offset chrono cannot represent (beyond ±24 h) falls back to UTC.
                let offset =
                    FixedOffset::east_opt(utc_offset_secs).or_else(|| FixedOffset::east_opt(0));
                if !secs.is_finite() {
                    return String::new();
                }
                match (DateTime::from_timestamp(secs as i64, 0), offset) {
                    (Some(t), Some(offset)) => {
                        let t = t.with_timezone(&offset);
                        // Beyond two days the hour alone is ambiguous.
                        let fmt = if span > 2.0 * 86_400.0 {
                            "%m-%d %H:%M"
                        } else if span < 120.0 {
                            "%H:%M:%S"
                        } else {
                            "%H:%M"
                        };
                        t.format(fmt).to_string()
                    }
                    _ => String::new(),
                }
            }
        }
    }
}

/// `+01:00`-style offset.
fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.unsigned_abs() / 60;
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `(lo, hi)` widened by the given fractions of its span below and above; a span of zero gets
/// a width of its own, so that no axis is degenerate.
fn padded(lo: f64, hi: f64, below: f64, above: f64) -> (f64, f64) {
    let span = hi - lo;
    if !span.is_finite() || span <= 0.0 {
        let half = (lo.abs() * 0.05).max(0.01);
        return (lo - half, lo + half);
    }
    (lo - span * below, hi + span * above)
}

/// Bins `values` (all within `min..=max`) into at most [`MAX_BINS`] bins of equal width.
fn histogram(values: &[f64], min: f64, max: f64) -> (f64, Vec<u64>) {
    let n = ((values.len() as f64).sqrt().ceil() as usize).clamp(1, MAX_BINS);
    let span = max - min;
    let width = if span > 0.0 {
        span / n as f64
    } else {
        (min.abs() * 0.01).max(0.001)
    };
    let mut bins = vec![0u64; n];
    for v in values {
        let i = ((v - min) / width).floor();
        // The maximum lands exactly on the upper edge: it belongs to the last bin.
        let i = if i.is_finite() && i >= 0.0 {
            (i as usize).min(n - 1)
        } else {
            0
        };
        if let Some(b) = bins.get_mut(i) {
            *b += 1;
        }
    }
    (width, bins)
}

/// A number with as many decimals as ticks over a span of `span` need to differ (plotters puts
/// about ten ticks on an axis, so a step is about a tenth of the span).
fn trim_number(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() {
        (1.0 - span.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        2
    };
    format!("{v:.decimals$}")
}

/// Milliseconds for a legend or table: about four significant digits.
fn fmt_ms(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// XML text escaping for what this file writes itself (plotters escapes its own text).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn draw_err(e: impl std::fmt::Display) -> Error {
    Error::Draw(e.to_string())
}

/// The elements of one layer of one session, without plotters' `<svg>` wrapper.
fn draw_layer(p: &Prepared<'_>, layer: Layer) -> Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, p.height)).into_drawing_area();
        draw(p, layer, &root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(inner(&buf).to_string())
}

/// What plotters wrote between its `<svg …>` and `</svg>`.
fn inner(svg: &str) -> &str {
    let body = svg
        .find("<svg")
        .and_then(|i| svg[i..].find('>').map(|j| i + j + 1))
        .map_or(svg, |k| &svg[k..]);
    let body = body.trim_start_matches('\n');
    body.trim_end()
        .strip_suffix("</svg>")
        .map_or(body, |b| b.trim_end_matches('\n'))
}

type Area<'b> = DrawingArea<SVGBackend<'b>, Shift>;
type Chart<'x, 'b> = ChartContext<'x, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn text_style(size: f64, color: RGBColor) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color)
}

fn build_chart<'x, 'b>(area: &'x Area<'b>, x: (f64, f64), y: (f64, f64)) -> Result<Chart<'x, 'b>> {
    ChartBuilder::on(area)
        .margin_top(LEGEND_H)
        .margin_left(8)
        .margin_right(24)
        .margin_bottom(6)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x.0..x.1, y.0..y.1)
        .map_err(draw_err)
}

/// One legend line above a chart: (text, colour) pieces left to right from `at`.
fn legend(area: &Area<'_>, at: (i32, i32), pieces: &[(String, RGBColor)]) -> Result<()> {
    let mut x = at.0;
    for (text, color) in pieces {
        let style = text_style(LEGEND_FONT, *color).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw_text(text, &style, (x, at.1)).map_err(draw_err)?;
        // Without font metrics the width is a guess: plotters' own estimate counts octets
        // (three for "●"), so count characters at an average sans-serif advance instead.
        x += (text.chars().count() as f64 * LEGEND_FONT / 1.24 * 0.5) as i32 + 22;
    }
    Ok(())
}

fn draw(p: &Prepared<'_>, layer: Layer, root: &Area<'_>) -> Result<()> {
    let frame = layer == Layer::Frame;
    let (title, rest) = root.split_vertically(TITLE_H);
    let (rtt_row, rest) = rest.split_vertically(RTT_H);
    let (rtt_area, hist_area) = rtt_row.split_horizontally(LEFT_W);
    let one_way_h = if p.has_one_way { ONE_WAY_H } else { NOTE_H };
    let (one_way_row, _gap) = rest.split_vertically(one_way_h);
    let (one_way_area, table_area) = one_way_row.split_horizontally(LEFT_W);

    if frame {
        root.fill(&WHITE).map_err(draw_err)?;
        let bold = FontDesc::new(FontFamily::SansSerif, 19.0, FontStyle::Bold).color(&TEXT_COLOR);
        title
            .draw_text(&p.title_line(), &bold, (16, 10))
            .map_err(draw_err)?;
        title
            .draw_text(&p.loss_line(), &text_style(16.0, TEXT_COLOR), (16, 36))
            .map_err(draw_err)?;
    }

    draw_rtt(p, layer, &rtt_area)?;
    draw_histogram(p, layer, &hist_area)?;
    if p.has_one_way {
        draw_one_way(p, layer, &one_way_area)?;
        if frame {
            draw_table(p, &table_area)?;
        }
    } else if frame {
        let note =
            p.s.one_way_note
                .as_deref()
                .unwrap_or("no one-way delays in these records");
        let style = text_style(15.0, NOTE_COLOR).pos(Pos::new(HPos::Left, VPos::Center));
        one_way_row
            .draw_text(
                &format!("Forward and backward one-way delay not shown: {note}."),
                &style,
                (88, (NOTE_H / 2) as i32),
            )
            .map_err(draw_err)?;
    }
    Ok(())
}

/// Axes and grid of a chart over time. Packet times get plotters' own ticks (round seconds);
/// wall-clock times get ticks on round minutes or hours of the records' offset, which plotters'
/// decimal steps cannot give.
fn time_mesh(
    p: &Prepared<'_>,
    chart: &mut Chart<'_, '_>,
    area: &Area<'_>,
    y_desc: &str,
    y_labels: usize,
    span: f64,
) -> Result<()> {
    let time = |x: &f64| p.time_label(*x);
    let delay = |y: &f64| trim_number(*y, span);
    let ticks = p.clock_ticks();
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(p.time_desc())
        .y_desc(y_desc)
        .x_labels(9)
        .y_labels(y_labels)
        .x_label_formatter(&time)
        .y_label_formatter(&delay)
        .light_line_style(WHITE)
        .bold_line_style(GRID_COLOR)
        .label_style(text_style(13.0, TEXT_COLOR))
        .axis_desc_style(text_style(14.0, TEXT_COLOR));
    if ticks.is_some() {
        mesh.x_labels(0).disable_x_mesh();
    }
    mesh.draw().map_err(draw_err)?;
    let Some(ticks) = ticks else { return Ok(()) };
    let std::ops::Range {
        start: y_lo,
        end: y_hi,
    } = chart.y_range();
    // backend_coord gives pixels of the whole picture; `area` draws relative to its corner.
    let (ox, oy) = area.get_base_pixel();
    let style = text_style(13.0, TEXT_COLOR).pos(Pos::new(HPos::Center, VPos::Top));
    for (x, label) in ticks {
        let (px, bottom) = chart.backend_coord(&(x, y_lo));
        let (_, top) = chart.backend_coord(&(x, y_hi));
        let (px, bottom, top) = (px - ox, bottom - oy, top - oy);
        area.draw(&PathElement::new(vec![(px, top), (px, bottom)], GRID_COLOR))
            .map_err(draw_err)?;
        area.draw(&PathElement::new(
            vec![(px, bottom), (px, bottom + 5)],
            TEXT_COLOR,
        ))
        .map_err(draw_err)?;
        area.draw_text(&label, &style, (px, bottom + 8))
            .map_err(draw_err)?;
    }
    Ok(())
}

fn draw_rtt(p: &Prepared<'_>, layer: Layer, area: &Area<'_>) -> Result<()> {
    let mut chart = build_chart(area, p.x_range, p.rtt_y)?;
    let (y_lo, _) = p.rtt_y;
    let span = p.rtt_y.1 - p.rtt_y.0;
    match layer {
        Layer::Frame => {
            let y_desc = if p.runs() {
                "median round-trip delay of the run (ms)"
            } else {
                "round-trip delay (ms)"
            };
            time_mesh(p, &mut chart, area, y_desc, 7, span)?;
            let (what, lost) = if p.runs() {
                ("median RTT of each run", "failed or all lost")
            } else {
                ("round-trip delay per packet", "lost")
            };
            let mut pieces = vec![(format!("● {what} ({})", p.rtt.len()), RTT_COLOR)];
            if let Some(d) = &p.rtt_stats {
                pieces.push((format!("— median {} ms", fmt_ms(d.median)), TEXT_COLOR));
            }
            pieces.push((
                format!("| {lost}: {} (ticks on the time axis)", p.lost.len()),
                LOST_COLOR,
            ));
            legend(area, (88, (LEGEND_H / 2) as i32), &pieces)?;
            if p.rtt.is_empty() {
                let style = text_style(16.0, NOTE_COLOR).pos(Pos::new(HPos::Center, VPos::Center));
                let (w, h) = area.dim_in_pixel();
                area.draw_text(
                    "no round-trip delays: nothing came back",
                    &style,
                    (w as i32 / 2, h as i32 / 2),
                )
                .map_err(draw_err)?;
            }
        }
        Layer::RttPoints => {
            chart
                .draw_series(
                    p.rtt
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 2, RTT_COLOR.mix(0.75).filled())),
                )
                .map_err(draw_err)?;
        }
        Layer::RttMedian => {
            if let Some(d) = &p.rtt_stats {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(p.x_range.0, d.median), (p.x_range.1, d.median)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(draw_err)?;
            }
        }
        Layer::LostMarks => {
            chart
                .draw_series(p.lost.iter().map(|&x| {
                    EmptyElement::at((x, y_lo))
                        + PathElement::new(
                            vec![(0, 0), (0, -LOST_TICK)],
                            LOST_COLOR.stroke_width(2),
                        )
                }))
                .map_err(draw_err)?;
        }
        _ => {}
    }
    Ok(())
}

fn draw_one_way(p: &Prepared<'_>, layer: Layer, area: &Area<'_>) -> Result<()> {
    let mut chart = build_chart(area, p.x_range, p.one_way_y)?;
    let span = p.one_way_y.1 - p.one_way_y.0;
    match layer {
        Layer::Frame => {
            let y_desc = if p.runs() {
                "median one-way delay (ms)"
            } else {
                "one-way delay (ms)"
            };
            time_mesh(p, &mut chart, area, y_desc, 6, span)?;
            let median = |d: &Option<DelayStats>| {
                d.as_ref().map_or("-".to_string(), |d| {
                    format!("median {} ms", fmt_ms(d.median))
                })
            };
            legend(
                area,
                (88, (LEGEND_H / 2) as i32),
                &[
                    (
                        format!(
                            "● forward ({}, {})",
                            p.forward.len(),
                            median(&p.forward_stats)
                        ),
                        FORWARD_COLOR,
                    ),
                    (
                        format!(
                            "● backward ({}, {})",
                            p.backward.len(),
                            median(&p.backward_stats)
                        ),
                        BACKWARD_COLOR,
                    ),
                ],
            )?;
        }
        Layer::ForwardPoints => {
            chart
                .draw_series(
                    p.forward
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 2, FORWARD_COLOR.mix(0.7).filled())),
                )
                .map_err(draw_err)?;
        }
        Layer::BackwardPoints => {
            chart
                .draw_series(
                    p.backward
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 2, BACKWARD_COLOR.mix(0.7).filled())),
                )
                .map_err(draw_err)?;
        }
        _ => {}
    }
    Ok(())
}

/// The four marked values of the distribution: (label, value in ms).
fn percentiles(d: &DelayStats) -> [(&'static str, f64); 4] {
    [
        ("min", d.min),
        ("median", d.median),
        ("P95", d.p95),
        ("P99", d.p99),
    ]
}

fn draw_histogram(p: &Prepared<'_>, layer: Layer, area: &Area<'_>) -> Result<()> {
    let peak = p.bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    // Headroom above the tallest bar for the four staggered percentile labels.
    let y = (0.0, peak / 0.68);
    let mut chart = build_chart(area, p.hist_x, y)?;
    let Some(d) = &p.rtt_stats else {
        if layer == Layer::Frame {
            chart
                .configure_mesh()
                .x_desc("round-trip delay (ms)")
                .y_desc("packets")
                .disable_mesh()
                .label_style(text_style(13.0, TEXT_COLOR))
                .axis_desc_style(text_style(14.0, TEXT_COLOR))
                .draw()
                .map_err(draw_err)?;
        }
        return Ok(());
    };
    match layer {
        Layer::Frame => {
            let span = p.hist_x.1 - p.hist_x.0;
            let delay = |x: &f64| trim_number(*x, span);
            let count = |c: &f64| format!("{c:.0}");
            let (x_desc, y_desc) = if p.runs() {
                ("median round-trip delay of the run (ms)", "runs")
            } else {
                ("round-trip delay (ms)", "packets")
            };
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .y_desc(y_desc)
                .x_labels(6)
                .y_labels(5)
                .x_label_formatter(&delay)
                .y_label_formatter(&count)
                .light_line_style(WHITE)
                .bold_line_style(GRID_COLOR)
                .label_style(text_style(13.0, TEXT_COLOR))
                .axis_desc_style(text_style(14.0, TEXT_COLOR))
                .draw()
                .map_err(draw_err)?;
            legend(
                area,
                (88, (LEGEND_H / 2) as i32),
                &[(
                    format!(
                        "distribution of {} values, bins of {} ms",
                        d.count,
                        fmt_ms(p.bin_width)
                    ),
                    TEXT_COLOR,
                )],
            )?;
        }
        Layer::Distribution => {
            chart
                .draw_series(
                    p.bins
                        .iter()
                        .enumerate()
                        .filter(|(_, &n)| n > 0)
                        .map(|(i, &n)| {
                            let lo = d.min + p.bin_width * i as f64;
                            Rectangle::new(
                                [(lo, 0.0), (lo + p.bin_width, n as f64)],
                                RTT_COLOR.mix(0.55).filled(),
                            )
                        }),
                )
                .map_err(draw_err)?;
        }
        Layer::Percentiles => {
            for (row, ((name, v), color)) in percentiles(d)
                .into_iter()
                .zip(PERCENTILE_COLORS)
                .enumerate()
            {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(v, 0.0), (v, y.1)],
                        color.stroke_width(2),
                    )))
                    .map_err(draw_err)?;
                // Labels go right of their line, each on its own row, so that close values
                // (min and median, P95 and P99) do not print over each other; a label that
                // would leave the chart on the right goes left of its line.
                let right_half = v > (p.hist_x.0 + p.hist_x.1) / 2.0;
                let (dx, anchor) = if right_half {
                    (-4, HPos::Right)
                } else {
                    (4, HPos::Left)
                };
                let style = text_style(13.0, color).pos(Pos::new(anchor, VPos::Top));
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((v, y.1))
                            + Text::new(
                                format!("{name} {} ms", fmt_ms(v)),
                                (dx, 3 + 16 * row as i32),
                                style,
                            ),
                    ))
                    .map_err(draw_err)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The percentile table beside the one-way plot: one row per delay, in ms.
fn draw_table(p: &Prepared<'_>, area: &Area<'_>) -> Result<()> {
    let head = text_style(14.0, TEXT_COLOR).pos(Pos::new(HPos::Right, VPos::Top));
    let first = text_style(14.0, TEXT_COLOR).pos(Pos::new(HPos::Left, VPos::Top));
    let columns = ["min", "median", "P95", "P99", "max"];
    let x0 = 24;
    let col_x = |i: usize| 170 + 56 * i as i32 + if i > 0 { 14 } else { 0 };
    let mut y = LEGEND_H as i32 + 12;
    area.draw_text("delay (ms)", &first, (x0, y))
        .map_err(draw_err)?;
    for (i, c) in columns.iter().enumerate() {
        area.draw_text(c, &head, (col_x(i), y)).map_err(draw_err)?;
    }
    for (name, color, d) in [
        ("round trip", RTT_COLOR, &p.rtt_stats),
        ("forward", FORWARD_COLOR, &p.forward_stats),
        ("backward", BACKWARD_COLOR, &p.backward_stats),
    ] {
        y += 26;
        let style = text_style(14.0, color).pos(Pos::new(HPos::Left, VPos::Top));
        area.draw_text(name, &style, (x0, y)).map_err(draw_err)?;
        let values = d
            .as_ref()
            .map(|d| [d.min, d.median, d.p95, d.p99, d.max].map(fmt_ms));
        for i in 0..columns.len() {
            let v = values.as_ref().and_then(|v| v.get(i)).map_or("-", |s| s);
            area.draw_text(v, &head, (col_x(i), y)).map_err(draw_err)?;
        }
    }
    y += 40;
    let note = text_style(13.0, NOTE_COLOR).pos(Pos::new(HPos::Left, VPos::Top));
    for line in [
        "round trip = (T4 − T1) − (T3 − T2); forward = T2 − T1;",
        "backward = T4 − T3 (RFC 5357 §4.1.2, §4.2.1).",
        "Percentiles are nearest-rank, as in every output format.",
    ] {
        area.draw_text(line, &note, (x0, y)).map_err(draw_err)?;
        y += 18;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{PlotPacket, PlotTitle};

    fn session(packets: Vec<PlotPacket>) -> PlotSession {
        PlotSession {
            title: PlotTitle {
                target: "a<b>&c".into(),
                ..PlotTitle::default()
            },
            samples: Samples::Packets,
            packets,
            one_way_note: None,
        }
    }

    #[test]
    fn degenerate_inputs_draw_without_panicking() {
        let p = |t: f64, rtt: Option<f64>| PlotPacket {
            send_time: t,
            rtt,
            forward: rtt,
            backward: None,
        };
        for packets in [
            vec![],
            vec![p(5.0, None)],
            vec![p(5.0, Some(0.01))],
            vec![p(5.0, Some(0.01)), p(5.0, Some(0.01))],
            vec![p(f64::NAN, Some(0.01)), p(1.0, Some(f64::INFINITY))],
            vec![p(-1e300, Some(-1.0)), p(1e300, Some(1e300))],
        ] {
            let svg = render_svg(&[session(packets.clone())]).unwrap();
            assert!(svg.contains("a&lt;b&gt;&amp;c"), "{packets:?}");
            assert!(!svg.contains("NaN"), "{packets:?}");
        }
    }

    #[test]
    fn histogram_puts_the_maximum_in_the_last_bin() {
        let (w, bins) = histogram(&[1.0, 2.0, 3.0, 4.0], 1.0, 4.0);
        assert_eq!(bins, [2, 2]);
        assert!((w - 1.5).abs() < 1e-12);
        let (_, bins) = histogram(&[7.0; 9], 7.0, 7.0);
        assert_eq!(bins, [9, 0, 0]);
    }

    #[test]
    fn offsets_and_numbers_print_as_labels() {
        assert_eq!(offset_text(3600), "+01:00");
        assert_eq!(offset_text(-(5 * 3600 + 30 * 60)), "-05:30");
        assert_eq!(trim_number(12.3456, 10.0), "12");
        assert_eq!(trim_number(12.3456, 8.7), "12.3");
        assert_eq!(trim_number(0.0521, 0.04), "0.052");
        assert_eq!(trim_number(1500.0, 3000.0), "1500");
        assert_eq!(fmt_ms(0.05212), "0.052");
        assert_eq!(fmt_ms(12.5), "12.50");
    }
}
