//! Log set-up: one logger with up to three sinks.
//!
//! - **stderr**, in the foreground: an RFC 3339 local time stamp, the level and the thread.
//!   Under systemd (stderr is the journal: `$JOURNAL_STREAM` names it, or `$INVOCATION_ID` is
//!   set) lines carry no time stamp but sd-daemon's `<N>` priority prefix instead, which
//!   journald turns into the record's priority.
//! - **syslog** (`/dev/log`, facility daemon, RFC 3164 via the `syslog` crate): a daemon without
//!   `-logfile`, a foreground server whose stderr is `/dev/null` and no `-logfile`, or
//!   `-syslog true`. twampd logs to syslog by default; a daemon never logs to nowhere.
//! - **`-logfile`**: appended, at least `info`. [`reopen`] (SIGHUP) opens the path again, so a
//!   log file that logrotate moved away is followed by a new one.
//!
//! Result records are dated by [`now_rfc3339`], with chrono.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::config::Logging;
use crate::error::{Error, Result};

/// Where stderr goes, as far as logging cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// A terminal, a file or a pipe someone chose: log lines with time stamps.
    Plain,
    /// The systemd journal: `<N>` prefixes, no time stamps (journald adds its own).
    Journal,
    /// `/dev/null` (or closed): nobody reads it.
    Nowhere,
}

/// Which sinks a server or client logs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sinks {
    pub stderr: Option<Stderr>,
    pub syslog: bool,
    pub file: bool,
}

/// Chooses the sinks (pure, so the rules are tested beside it). `daemon`: stderr is
/// `/dev/null` by construction.
pub fn choose(daemon: bool, file: bool, force_syslog: bool, stderr: Stderr) -> Sinks {
    let stderr = if daemon { Stderr::Nowhere } else { stderr };
    let syslog = force_syslog || (!file && stderr == Stderr::Nowhere);
    Sinks {
        stderr: (stderr != Stderr::Nowhere).then_some(stderr),
        syslog,
        file,
    }
}

/// What this process's stderr is connected to.
pub fn stderr_kind() -> Stderr {
    let err = std::io::stderr();
    let Ok(fd) = err.as_fd().try_clone_to_owned() else {
        return Stderr::Nowhere;
    };
    let Ok(meta) = File::from(fd).metadata() else {
        return Stderr::Nowhere;
    };
    let journal = std::env::var("JOURNAL_STREAM").ok().is_some_and(|v| {
        v.split_once(':')
            .is_some_and(|(d, i)| d.parse() == Ok(meta.dev()) && i.parse() == Ok(meta.ino()))
    });
    // INVOCATION_ID alone: a unit whose stderr systemd set up (StandardError=journal is the
    // default); a terminal wins, for `systemd-run -t`.
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some() && !err.is_terminal();
    if journal || under_systemd {
        return Stderr::Journal;
    }
    let dev_null = std::fs::metadata("/dev/null")
        .is_ok_and(|n| n.rdev() == meta.rdev() && meta.file_type().is_char_device());
    if dev_null {
        Stderr::Nowhere
    } else {
        Stderr::Plain
    }
}

type Syslog = syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>;

struct Logger {
    /// The level given (-v/-q), as `log::LevelFilter as usize`.
    level: AtomicUsize,
    stderr: Option<Stderr>,
    syslog: Option<Mutex<Syslog>>,
    file: Option<(PathBuf, Mutex<File>)>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn open_log(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::Output {
            path: path.display().to_string(),
            source: e,
        })
}

fn level_from(n: usize) -> log::LevelFilter {
    use log::LevelFilter::*;
    [Off, Error, Warn, Info, Debug, Trace]
        .get(n)
        .copied()
        .unwrap_or(Trace)
}

impl Logger {
    fn level(&self) -> log::LevelFilter {
        level_from(self.level.load(Ordering::Relaxed))
    }

    /// The most verbose level any sink takes: the file always gets at least info.
    fn max(&self) -> log::LevelFilter {
        if self.file.is_some() {
            self.level().max(log::LevelFilter::Info)
        } else {
            self.level()
        }
    }
}

fn stamp() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

fn line(r: &log::Record<'_>) -> String {
    let t = std::thread::current();
    format!(
        "[{}] ({}) {}",
        r.level(),
        t.name().unwrap_or("main"),
        r.args()
    )
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= self.max()
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let level = r.level();
        let to_level = level <= self.level();
        if let (Some(kind), true) = (self.stderr, to_level) {
            let text = match kind {
                // sd-daemon(3) priorities: err 3, warning 4, info 6, debug 7.
                Stderr::Journal => {
                    let p = match level {
                        log::Level::Error => 3,
                        log::Level::Warn => 4,
                        log::Level::Info => 6,
                        _ => 7,
                    };
                    format!("<{p}>{}\n", line(r))
                }
                _ => format!("{} {}\n", stamp(), line(r)),
            };
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
        if let (Some(s), true) = (&self.syslog, to_level) {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            let msg = line(r);
            let _ = match level {
                log::Level::Error => s.err(msg),
                log::Level::Warn => s.warning(msg),
                log::Level::Info => s.info(msg),
                _ => s.debug(msg),
            };
        }
        if let Some((_, f)) = &self.file {
            if level <= self.level().max(log::LevelFilter::Info) {
                let text = format!("{} {}\n", stamp(), line(r));
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                let _ = f.write_all(text.as_bytes());
            }
        }
    }

    fn flush(&self) {
        if let Some((_, f)) = &self.file {
            let _ = f.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

/// Starts logging to the sinks [`choose`] picks. `daemon`: stderr is `/dev/null`;
/// `syslog`: to syslog as well (`-syslog`). A second init (tests run many servers in one
/// process) keeps the first logger.
pub fn init(cfg: &Logging, daemon: bool, syslog: bool) -> Result<()> {
    let sinks = choose(daemon, cfg.file.is_some(), syslog, stderr_kind());
    let syslog = if sinks.syslog {
        let f = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: "twamp".into(),
            pid: std::process::id(),
        };
        let s = syslog::unix(f).map_err(|e| {
            Error::Config(format!(
                "cannot log to syslog (/dev/log: {e}); give -logfile PATH"
            ))
        })?;
        Some(Mutex::new(s))
    } else {
        None
    };
    let file = match &cfg.file {
        Some(p) => Some((p.clone(), Mutex::new(open_log(p)?))),
        None => None,
    };
    let logger = Logger {
        level: AtomicUsize::new(cfg.level as usize),
        stderr: sinks.stderr,
        syslog,
        file,
    };
    let max = logger.max();
    if LOGGER.set(logger).is_ok() {
        if let Some(l) = LOGGER.get() {
            if log::set_logger(l).is_ok() {
                log::set_max_level(max);
            }
        }
    }
    Ok(())
}

/// Whether log lines go to stderr (so an error need not be printed there again).
pub fn to_stderr() -> bool {
    LOGGER.get().is_some_and(|l| l.stderr.is_some())
}

/// Opens `-logfile` again (SIGHUP, after logrotate moved it). Returns the path, or `None`
/// when there is no log file. On an error the old file stays in use.
pub fn reopen() -> Result<Option<PathBuf>> {
    let Some((path, f)) = LOGGER.get().and_then(|l| l.file.as_ref()) else {
        return Ok(None);
    };
    let new = open_log(path)?;
    let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
    let _ = f.flush();
    *f = new;
    Ok(Some(path.clone()))
}

/// Changes the level given with -v/-q (a re-read config file).
pub fn set_level(level: log::LevelFilter) {
    if let Some(l) = LOGGER.get() {
        l.level.store(level as usize, Ordering::Relaxed);
        log::set_max_level(l.max());
    }
}

/// An RFC 3339 time stamp for result records.
pub fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_by_situation() {
        let s = |stderr, syslog, file| Sinks {
            stderr,
            syslog,
            file,
        };
        // (daemon, -logfile, -syslog, stderr) → sinks
        let table = [
            (
                (false, false, false, Stderr::Plain),
                s(Some(Stderr::Plain), false, false),
            ),
            (
                (false, true, false, Stderr::Plain),
                s(Some(Stderr::Plain), false, true),
            ),
            (
                (false, false, false, Stderr::Journal),
                s(Some(Stderr::Journal), false, false),
            ),
            ((false, false, false, Stderr::Nowhere), s(None, true, false)),
            ((false, true, false, Stderr::Nowhere), s(None, false, true)),
            ((true, false, false, Stderr::Plain), s(None, true, false)),
            ((true, true, false, Stderr::Plain), s(None, false, true)),
            ((true, true, true, Stderr::Plain), s(None, true, true)),
            (
                (false, false, true, Stderr::Plain),
                s(Some(Stderr::Plain), true, false),
            ),
        ];
        for ((daemon, file, syslog, stderr), want) in table {
            assert_eq!(
                choose(daemon, file, syslog, stderr),
                want,
                "{daemon} {file} {syslog} {stderr:?}"
            );
        }
    }
}
