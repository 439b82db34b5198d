//! The two programs behind `-mode`: what `main` runs once the configuration is valid.

use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClientConfig, Mode, ServerConfig};
use crate::error::exit;
use crate::output::{self, Record};
use crate::time::SystemClock;
use crate::{client, daemon, logging, server};

/// Runs the configured mode; returns the process exit code.
pub fn run(mode: Mode) -> u8 {
    match mode {
        Mode::Server(cfg) => match run_server(cfg) {
            Ok(()) => exit::OK,
            Err(e) => {
                log::error!("{e}");
                eprintln!("twamp: {e}");
                e.exit_code()
            }
        },
        Mode::Client(cfg) => run_client(&cfg),
    }
}

/// SIGINT and SIGTERM set the returned flag; loops watch it.
fn shutdown_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            log::warn!("cannot handle signal {sig}: {e}");
        }
    }
    flag
}

fn run_server(cfg: ServerConfig) -> crate::Result<()> {
    // Bind first: "address in use" must reach the terminal, before any fork.
    let listener = server::bind(&cfg)?;
    let ready = if cfg.daemon {
        let ready = daemon::detach(cfg.pidfile.as_deref())?;
        // In the daemon: logging and threads only now (fork keeps only the calling thread).
        logging::init(&cfg.logging, false)?;
        Some(ready)
    } else {
        logging::init(&cfg.logging, true)?;
        None
    };
    let stop = shutdown_flag();
    if let Some(r) = ready {
        r.signal();
    }
    server::run(cfg, listener, stop)
}

fn run_client(cfg: &ClientConfig) -> u8 {
    if let Err(e) = logging::init(&cfg.logging, true) {
        eprintln!("twamp: {e}");
        return e.exit_code();
    }
    let stop = shutdown_flag();
    let clock = SystemClock::new();
    let started = logging::now_rfc3339();
    // A progress line on stderr, only on a terminal and only for runs longer than a few seconds.
    let expected = cfg.interval * cfg.count + cfg.loss_timeout;
    let show = !cfg.quiet && std::io::stderr().is_terminal() && expected >= Duration::from_secs(3);
    let progress = |o: &crate::sender::Outcome| {
        if show {
            eprint!("{}", output::progress_line(o, cfg.count));
        }
    };
    let result = client::run(cfg, &clock, &stop, progress);
    if show {
        eprint!("\r\x1b[K");
    }
    let record = match &result {
        Ok(m) => Record::measured(cfg, &started, m),
        Err(f) => Record::failed(cfg, &started, f),
    };
    if let Err(f) = &result {
        // One line on stderr (and in -logfile), however quiet.
        log::error!("{}", f.error);
    }
    // Nothing is lost: the record is written whether or not the run measured anything.
    if let Err(e) = output::emit(cfg, &record) {
        eprintln!("twamp: {e}");
        return if record.exit_code == exit::OK {
            exit::LOCAL
        } else {
            record.exit_code
        };
    }
    if cfg.histogram && !cfg.quiet {
        if let Some(m) = &record.measurement {
            print!("{}", output::rtt_histogram(m, 20, 50));
        }
    }
    record.exit_code
}
