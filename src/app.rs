//! The two programs behind `-mode`: what `main` runs once the configuration is valid.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
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
        Mode::Server(cfg) => match run_server(*cfg) {
            Ok(()) => exit::OK,
            Err(e) => {
                log::error!("{e}");
                // Once on the terminal: the log line is there already when stderr is a sink.
                if !logging::to_stderr() {
                    eprintln!("twamp: {e}");
                }
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

/// The signals a server handles, each a flag its signal sets (async-signal-safe); the
/// watcher thread acts on them. SIGPIPE stays ignored, as Rust's runtime sets it.
struct Signals {
    /// Set by SIGTERM, SIGINT and SIGQUIT: the server's shutdown flag.
    stop: Arc<AtomicBool>,
    /// Which of them came, for the "stopped" line.
    stopping: Vec<(i32, Arc<AtomicBool>)>,
    hup: Arc<AtomicBool>,
    /// SIGUSR1 and SIGUSR2: log a status line.
    status: Vec<(i32, Arc<AtomicBool>)>,
    /// Signals whose default action would end the process silently: logged and ignored.
    ignored: Vec<(i32, Arc<AtomicBool>)>,
}

fn signal_name(sig: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(sig).map_or("signal", |s| s.as_str())
}

impl Signals {
    fn register() -> Signals {
        use signal_hook::consts::*;
        let flag = |sig: i32| {
            let f = Arc::new(AtomicBool::new(false));
            if let Err(e) = signal_hook::flag::register(sig, f.clone()) {
                log::warn!("cannot handle {}: {e}", signal_name(sig));
            }
            (sig, f)
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping: Vec<_> = [SIGTERM, SIGINT, SIGQUIT]
            .into_iter()
            .map(|sig| {
                if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
                    log::warn!("cannot handle {}: {e}", signal_name(sig));
                }
                flag(sig)
            })
            .collect();
        Signals {
            stop,
            stopping,
            hup: flag(SIGHUP).1,
            status: vec![flag(SIGUSR1), flag(SIGUSR2)],
            ignored: [
                SIGALRM,
                SIGVTALRM,
                SIGPROF,
                SIGIO,
                SIGXCPU,
                SIGXFSZ,
                libc::SIGPWR,
            ]
            .into_iter()
            .map(flag)
            .collect(),
        }
    }

    /// The first stopping signal that came, by name.
    fn stopped_by(&self) -> Option<&'static str> {
        self.stopping
            .iter()
            .find(|(_, f)| f.load(Ordering::Relaxed))
            .map(|(sig, _)| signal_name(*sig))
    }
}

/// How often the watcher looks at the signal flags.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// Acts on SIGHUP (reopen the log file, re-read the access lists and log level), SIGUSR1/2
/// (a status line) and the ignored signals, until the server stops.
fn watch_signals(signals: &Signals, shared: &server::Shared) {
    while !shared.shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(SIGNAL_POLL);
        if signals.hup.swap(false, Ordering::Relaxed) {
            on_hup(shared);
        }
        for (sig, f) in &signals.status {
            if f.swap(false, Ordering::Relaxed) {
                log::info!("{}: {}", signal_name(*sig), status_line(shared));
            }
        }
        for (sig, f) in &signals.ignored {
            if f.swap(false, Ordering::Relaxed) {
                log::warn!("{} received: ignored", signal_name(*sig));
            }
        }
    }
}

fn on_hup(shared: &server::Shared) {
    match logging::reopen() {
        Ok(Some(path)) => log::info!("SIGHUP: log file {} reopened", path.display()),
        Ok(None) => log::info!("SIGHUP: no log file to reopen"),
        Err(e) => log::error!("SIGHUP: {e}; still logging to the old file"),
    }
    match shared.config.reload_live() {
        None => {}
        Some(Ok(live)) => {
            logging::set_level(live.level);
            shared.set_access(live.access);
            log::info!(
                "SIGHUP: config file {} re-read: access lists and log level applied \
                 (other settings take effect at the next start)",
                shared
                    .config
                    .config_file
                    .as_deref()
                    .map_or_else(String::new, |p| p.display().to_string())
            );
        }
        Some(Err(e)) => log::error!("SIGHUP: {e}; the running configuration is kept"),
    }
}

fn status_line(shared: &server::Shared) -> String {
    let t = &shared.totals;
    format!(
        "{} control connection(s) open, {} session(s) running; since the start {} \
         connection(s), {} refused, {} session(s), {} packets reflected, {} dropped",
        shared.connections.load(Ordering::Relaxed),
        shared.sessions.load(Ordering::Relaxed),
        shared.served.load(Ordering::Relaxed),
        shared.refused.load(Ordering::Relaxed),
        shared.sessions_started.load(Ordering::Relaxed),
        t.reflected.load(Ordering::Relaxed),
        t.dropped(),
    )
}

/// Logging, the pid file and the privilege drop: what can still fail once detached.
fn start_server(cfg: &ServerConfig) -> crate::Result<Option<daemon::PidFile>> {
    logging::init(&cfg.logging, cfg.daemon, cfg.syslog)?;
    let pidfile = cfg
        .pidfile
        .as_deref()
        .map(daemon::PidFile::create)
        .transpose()?;
    if let Some(r) = &cfg.run_as {
        if let Err(e) = daemon::drop_privileges(r) {
            if let Some(p) = pidfile {
                p.remove();
            }
            return Err(e);
        }
    }
    Ok(pidfile)
}

fn run_server(cfg: ServerConfig) -> crate::Result<()> {
    // Bind first: "address in use" must reach the terminal, before any fork, and port 862
    // needs root or CAP_NET_BIND_SERVICE, which -run-as gives up.
    let listener = server::bind_all(&cfg)?;
    // In the daemon: logging and threads only now (fork keeps only the calling thread).
    let metrics = cfg.metrics.map(exporter::bind).transpose()?;
    let ready = if cfg.daemon {
        Some(daemon::detach()?)
    } else {
        None
    };
    let signals = Signals::register();
    let pidfile = match start_server(&cfg) {
        Ok(p) => p,
        Err(e) => {
            if let Some(r) = ready {
                r.fail(&e.to_string());
            }
            return Err(e);
        }
    };
    let began = std::time::Instant::now();
    let shared = server::prepare(cfg, signals.stop.clone());
    let watcher = {
        let sh = shared.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                watch_signals(&signals, &sh);
                signals
            })
            .map_err(|e| crate::Error::io(crate::error::Op::Spawn, None, e))?
    };
    if let Some(r) = ready {
        r.signal();
    }
    if let Some(l) = metrics {
        let sh = shared.clone();
        exporter::serve_metrics(l, shared.shutdown.clone(), move || sh.metrics_snapshot())?;
    }
    let served = server::serve_all(listener, shared.clone());
    // The engine ends its sessions within a sweep of the shutdown flag.
    let end = std::time::Instant::now() + Duration::from_secs(1);
    while shared.sessions.load(Ordering::Relaxed) > 0 && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let signals = watcher.join().ok();
    let by = signals
        .as_ref()
        .and_then(Signals::stopped_by)
        .unwrap_or("shutdown");
    log::info!(
        "stopped ({by}) after {:.1?}: {}",
        began.elapsed(),
        status_line(&shared)
    );
    if let Some(p) = pidfile {
        p.remove();
    }
    served
}

/// `-mode exporter`: serves probes until SIGINT/SIGTERM.
fn run_exporter(cfg: exporter::ExporterConfig) -> crate::Result<()> {
    let listener = exporter::bind(cfg.listen)?;
    logging::init(&cfg.logging, false, false)?;
    exporter::serve(cfg, listener, shutdown_flag())
}

/// `-mode client` with several targets: one record per target (src/mesh.rs).
fn run_mesh(cfg: &crate::mesh::MeshConfig) -> u8 {
    if let Err(e) = logging::init(&cfg.targets[0].logging, false, false) {
        eprintln!("twamp: {e}");
        return e.exit_code();
    }
    let codes = crate::mesh::run(cfg, &shutdown_flag());
    crate::mesh::exit_code(&codes)
}

fn run_client(cfg: &ClientConfig) -> u8 {
    if let Err(e) = logging::init(&cfg.logging, false, false) {
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
