//! Pictures of a run: round-trip and one-way delay over time and the delay distribution, as
//! one self-contained SVG (issue 14).
//!
//! The input is this module's own small model, [`PlotSession`]: one per test session (or one
//! per target for a file of saved runs), each with a title and its packets in send order. The
//! client turns its results into it; [`sessions_from_saved`] reads it back from what `twamp`
//! wrote earlier with `-format packets` or `-format json`. [`render_svg`] draws it with
//! plotters' SVG backend: no system libraries and no font files (text is left to the viewer;
//! plotters' built-in estimate of text widths is enough for the layout).
//!
//! # What the SVG holds
//!
//! One `<g class="session">` per session, stacked vertically. Inside it, each kind of mark is
//! its own group, so that tests and scripts can count and locate them:
//!
//! | group class | what |
//! |---|---|
//! | `frame` | background, title, axes with their units, legends, the note on one-way delay |
//! | `rtt-points` | one `<circle>` per received packet (per run with an RTT, for saved runs) |
//! | `rtt-median` | the median round-trip delay as a horizontal line |
//! | `lost-marks` | one vertical tick (`<polyline>`) on the time axis per lost packet or failed run, at its send time |
//! | `forward-points`, `backward-points` | one `<circle>` per one-way delay, when present |
//! | `distribution` | the histogram of round-trip delays (`<rect>` bars) |
//! | `percentiles` | min, median, P95 and P99 of the round-trip delay, as lines with labels |
//!
//! # Invariants
//!
//! - Nothing here panics on any input: non-finite numbers are left out, an empty session draws
//!   its title and a note, and malformed saved records are an [`Error`] naming the line.
//! - Delays are in seconds in the model and in milliseconds on the axes; times are in seconds.
//! - Percentiles and the median are [`crate::stats`]'s (nearest rank; mean of the two middle
//!   values), so the picture agrees with every other output format.

mod render;
mod report;
mod saved;

use std::fmt;

pub use render::render_svg;
pub use report::sessions_from_report;
pub use saved::sessions_from_saved;

/// One plot: a test session, or a series of saved runs against one target.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSession {
    pub title: PlotTitle,
    /// What each point is, and so how the time axis reads.
    pub samples: Samples,
    /// In send order (for [`Samples::Runs`], in time order).
    pub packets: Vec<PlotPacket>,
    /// Why forward and backward delays are absent, e.g. "clocks not synchronised". Shown in
    /// place of the one-way plot when no packet has a one-way delay; a generic note is shown
    /// when this is `None`.
    pub one_way_note: Option<String>,
}

/// What the session's title says. Absent fields are left out of the title.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlotTitle {
    /// The server as the user named it, e.g. `twamp.example.net:862`.
    pub target: String,
    /// Security mode name (`open`, `authenticated`, `encrypted`, `mixed`).
    pub mode: Option<String>,
    /// DSCP of the test packets (RFC 2474).
    pub dscp: Option<u8>,
    /// Session-Sender test packet size in octets, padding included.
    pub packet_octets: Option<u32>,
    /// Start of the run (of the first run, for saved runs), RFC 3339.
    pub start: Option<String>,
    /// Test packets sent and lost (over all runs, for saved runs).
    pub sent: u64,
    pub lost: u64,
    /// Loss per direction, as [`crate::stats::Summary`] attributes it.
    pub lost_forward: u64,
    pub lost_backward: u64,
}

/// What one [`PlotPacket`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Samples {
    /// One point per test packet. The time axis shows seconds since the first packet.
    Packets,
    /// One point per saved run: its median delays, or a lost mark for a run that failed or lost
    /// every packet. The time axis shows wall-clock time at this UTC offset (seconds east), the
    /// offset the records were written with.
    Runs { utc_offset_secs: i32 },
}

/// One test packet (or one saved run, see [`Samples::Runs`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlotPacket {
    /// Send time, Unix seconds.
    pub send_time: f64,
    /// Round-trip delay in seconds; `None` when lost.
    pub rtt: Option<f64>,
    /// Forward one-way delay in seconds; only when both clocks are synchronised.
    pub forward: Option<f64>,
    /// Backward one-way delay in seconds; only when both clocks are synchronised.
    pub backward: Option<f64>,
}

/// Errors of this module.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Line `line` (counted from 1) of saved records could not be read.
    Malformed { line: usize, reason: String },
    /// The saved records hold no test packets and no runs.
    NoRecords,
    /// plotters reported an error while drawing (not expected: the SVG is drawn in memory).
    Draw(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed { line, reason } => write!(f, "line {line}: {reason}"),
            Error::NoRecords => f.write_str("no test packets or runs to plot"),
            Error::Draw(e) => write!(f, "cannot draw the plot: {e}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
