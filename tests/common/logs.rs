//! Log capture for in-process servers: this test binary's log records (info and above) go to
//! a list that tests search, so a test can assert the log line a behaviour must leave.
#![allow(dead_code)]

use std::sync::{Mutex, Once};
use std::time::Duration;

use super::wait_until;

struct Capture;

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((r.level(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

/// Sends this test binary's log records (info and above) to [`LINES`].
pub fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&CAPTURE).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// Waits up to `limit` for a captured line of level info or above containing every needle.
pub fn logged(limit: Duration, needles: &[&str]) -> Option<(log::Level, String)> {
    let mut found = None;
    wait_until(limit, || {
        let lines = LINES.lock().unwrap_or_else(|p| p.into_inner());
        found = lines
            .iter()
            .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
            .cloned();
        found.is_some()
    });
    found
}
