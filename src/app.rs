//! The two programs behind `-mode`: what `main` runs once the configuration is valid.

use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClientConfig, Format, Mode, ServerConfig};
use crate::error::exit;
use crate::output::{self, terminal};
use crate::sender::Progress;
use crate::time::SystemClock;
use crate::{client, daemon, exporter, logging, server};

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
        Mode::Exporter(cfg) => match run_exporter(cfg) {
            Ok(()) => exit::OK,
            Err(e) => {
                log::error!("{e}");
                eprintln!("twamp: {e}");
                e.exit_code()
            }
        },
        Mode::Mesh(cfg) => run_mesh(&cfg),
        Mode::Plot(cfg) => match run_plot(&cfg) {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("twamp: {e}");
                e.exit_code()
            }
        },
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
    let listener = server::bind_all(&cfg)?;
    let metrics = cfg.metrics.map(exporter::bind).transpose()?;
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
    server::run_with(cfg, listener, stop, |shared| {
        let Some(l) = metrics else { return Ok(()) };
        let sh = shared.clone();
        exporter::serve_metrics(l, shared.shutdown.clone(), move || sh.metrics_snapshot()).map(drop)
    })
}

/// `-mode exporter`: serves probes until SIGINT/SIGTERM.
fn run_exporter(cfg: exporter::ExporterConfig) -> crate::Result<()> {
    let listener = exporter::bind(cfg.listen)?;
    logging::init(&cfg.logging, true)?;
    exporter::serve(cfg, listener, shutdown_flag())
}

/// `-mode client` with several targets: one record per target (src/mesh.rs).
fn run_mesh(cfg: &crate::mesh::MeshConfig) -> u8 {
    if let Err(e) = logging::init(&cfg.targets[0].logging, true) {
        eprintln!("twamp: {e}");
        return e.exit_code();
    }
    let codes = crate::mesh::run(cfg, &shutdown_flag());
    crate::mesh::exit_code(&codes)
}

fn run_client(cfg: &ClientConfig) -> u8 {
    if let Err(e) = logging::init(&cfg.logging, true) {
        eprintln!("twamp: {e}");
        return e.exit_code();
    }
    let stop = shutdown_flag();
    let clock = SystemClock::new();
    // A progress line on stderr, only on a terminal and only for runs longer than a few seconds.
    let show = !cfg.quiet
        && std::io::stderr().is_terminal()
        && cfg.expected_duration() >= Duration::from_secs(3);
    let progress = |p: &Progress| {
        if show {
            eprint!("{}", terminal::progress_line(p));
        }
    };
    let report = client::run(cfg, &clock, &stop, progress);
    if show {
        eprint!("\r\x1b[K");
    }
    if let Some(e) = &report.error {
        // One line on stderr (and in -logfile), however quiet.
        log::error!("{e}");
    }
    // Nothing is lost: the record is written whether or not the run measured anything.
    let mut written = output::emit(cfg, &report);
    if let Some(path) = &cfg.plot {
        let drawn = draw_report(&report, path);
        if written.is_ok() {
            written = drawn;
        }
    }
    if let Err(e) = &written {
        eprintln!("twamp: {e}");
    }
    if cfg.histogram && !cfg.quiet {
        let h = terminal::rtt_histograms(&report, 20, 50);
        // Machine formats on stdout stay machine-readable: the drawing goes to the terminal.
        if cfg.format == Format::Text {
            let _ = output::sink::write_stdout(&h);
        } else {
            eprint!("{h}");
        }
    }
    report.exit_code_after_output(&written)
}

#[cfg(feature = "plot")]
fn draw_report(report: &crate::report::Report, path: &std::path::Path) -> crate::Result<()> {
    let svg = crate::plot::render_svg(&crate::plot::sessions_from_report(report))
        .map_err(|e| crate::Error::Config(format!("-plot: {e}")))?;
    output::sink::write_whole(path, &svg)
}

#[cfg(not(feature = "plot"))]
fn draw_report(_: &crate::report::Report, _: &std::path::Path) -> crate::Result<()> {
    Err(crate::Error::Config("built without plots".into()))
}

/// `-mode plot`: every input's records, one picture.
#[cfg(feature = "plot")]
fn run_plot(cfg: &crate::config::PlotConfig) -> crate::Result<()> {
    use std::io::Read;
    let mut sessions = Vec::new();
    for path in &cfg.inputs {
        let mut text = String::new();
        let read = if path.as_os_str() == "-" {
            std::io::stdin().read_to_string(&mut text).map(|_| ())
        } else {
            std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
        };
        read.map_err(|e| crate::Error::Config(format!("-input {}: {e}", path.display())))?;
        let mut got = crate::plot::sessions_from_saved(&text)
            .map_err(|e| crate::Error::Config(format!("-input {}: {e}", path.display())))?;
        sessions.append(&mut got);
    }
    let svg = crate::plot::render_svg(&sessions)
        .map_err(|e| crate::Error::Config(format!("-plot: {e}")))?;
    output::sink::write_whole(&cfg.output, &svg)
}

#[cfg(not(feature = "plot"))]
fn run_plot(_: &crate::config::PlotConfig) -> crate::Result<()> {
    Err(crate::Error::Config("built without plots".into()))
}
