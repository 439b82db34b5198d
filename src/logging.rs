//! Log set-up: simplelog to the terminal (stderr) in the foreground, and appended to
//! `-logfile` when given. Log lines carry simplelog's RFC 3339 time stamp, in local time when
//! the offset can be determined (the `time` crate refuses once a process has several threads)
//! and in UTC otherwise. Result records are dated by [`now_rfc3339`], with chrono.

use std::fs::OpenOptions;

use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, SharedLogger, TermLogger, TerminalMode, WriteLogger,
};

use crate::config::Logging;
use crate::error::{Error, Result};

/// Starts logging. `terminal` is false for a daemon (its stderr is /dev/null).
pub fn init(cfg: &Logging, terminal: bool) -> Result<()> {
    let config = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_time_offset_to_local()
        .unwrap_or_else(|b| b)
        .set_thread_level(log::LevelFilter::Debug)
        .set_target_level(log::LevelFilter::Off)
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
    if terminal {
        loggers.push(TermLogger::new(
            cfg.level,
            config.clone(),
            TerminalMode::Stderr,
            ColorChoice::Never,
        ));
    }
    if let Some(path) = &cfg.file {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Output {
                path: path.display().to_string(),
                source: e,
            })?;
        // The file always gets at least info: it is where a daemon's history lives.
        loggers.push(WriteLogger::new(
            cfg.level.max(log::LevelFilter::Info),
            config,
            f,
        ));
    }
    // A second init (tests run many servers in one process) keeps the first logger.
    let _ = CombinedLogger::init(loggers);
    Ok(())
}

/// An RFC 3339 time stamp for result records.
pub fn now_rfc3339() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}
