//! A mesh from one command: `-mode client -targets FILE` (or `-server` given more than once)
//! measures every target with `client::run`, at most `-parallel` at once, and writes one
//! record per target, appended whole as it finishes, in the chosen `-format`.
//!
//! A target file has one target per line: `HOST[:PORT]` followed by optional settings
//! `count=N interval=DURATION dscp=DSCP padding=OCTETS timeout=DURATION`; `#` starts a
//! comment. Per-target settings override the command line's, and each target's configuration
//! is validated as if typed with `-server`, so a target line cannot do what a command line
//! cannot.
//!
//! A failed target gets its failure record (the report with its error) and the others go on.
//! Exit status ([`exit_code`]): 0 when every target measured; otherwise the code of the first
//! failed target in the order given (1 = every packet lost, 3 = unreachable, …, as for one
//! target; README.md "Exit codes").

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::cli::Cli;
use crate::config::{ClientConfig, Format};
use crate::error::{exit, Error, Result};
use crate::output::{self, csv, sink};
use crate::report::Report;
use crate::time::SystemClock;

/// Targets measured at once unless `-parallel` says otherwise.
pub const DEFAULT_PARALLEL: usize = 8;
pub const MAX_PARALLEL: usize = 256;

/// One line of a target file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetLine {
    /// `HOST[:PORT]` as written.
    pub server: String,
    /// `(key, value)` settings in the order written.
    pub settings: Vec<(String, String)>,
}

const KEYS: [&str; 5] = ["count", "interval", "dscp", "padding", "timeout"];

/// Parses a target file; errors name the line.
pub fn parse_targets(text: &str) -> std::result::Result<Vec<TargetLine>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(server) = words.next() else { continue };
        let mut settings = Vec::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .filter(|(k, v)| KEYS.contains(k) && !v.is_empty())
                .ok_or_else(|| {
                    format!(
                        "line {}: '{w}' is not a setting ({}=VALUE)",
                        i + 1,
                        KEYS.join("|")
                    )
                })?;
            settings.push((k.to_string(), v.to_string()));
        }
        out.push(TargetLine {
            server: server.to_string(),
            settings,
        });
    }
    Ok(out)
}

/// Whether the command line asks for a mesh rather than one measurement.
pub fn wanted(cli: &Cli) -> bool {
    cli.targets.is_some() || cli.server.len() > 1
}

/// Every target's validated configuration, in the order given.
pub struct MeshConfig {
    pub targets: Vec<ClientConfig>,
    pub parallel: usize,
}

impl std::fmt::Debug for MeshConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshConfig")
            .field("targets", &self.targets.len())
            .field("parallel", &self.parallel)
            .finish()
    }
}

/// Applies one target's settings to a copy of the command line.
fn target_cli(base: &Cli, t: &TargetLine) -> std::result::Result<Cli, String> {
    let mut c = base.clone();
    c.server = vec![t.server.clone()];
    c.target = None;
    c.targets = None;
    for (k, v) in &t.settings {
        let bad = |e: String| format!("{}: {k}={v}: {e}", t.server);
        match k.as_str() {
            "count" => c.count = Some(v.parse().map_err(|_| bad("not a packet count".into()))?),
            "interval" => c.interval = Some(v.clone()),
            "timeout" => c.timeout = Some(v.clone()),
            "dscp" => c.dscp = Some(crate::cli::parse_dscp(v).map_err(bad)?),
            "padding" => {
                c.padding = Some(
                    v.parse()
                        .map_err(|_| bad("not a number of octets".into()))?,
                )
            }
            _ => return Err(bad("unknown setting".into())),
        }
    }
    Ok(c)
}

impl MeshConfig {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        for (flag, set) in [
            ("-plot", cli.plot.is_some()),
            ("-histogram", cli.histogram == Some(true)),
        ] {
            if set {
                return Err(Error::Config(format!(
                    "{flag} draws one measurement: not with several targets"
                )));
            }
        }
        let mut lines: Vec<TargetLine> = cli
            .server
            .iter()
            .chain(&cli.target)
            .map(|s| TargetLine {
                server: s.clone(),
                settings: Vec::new(),
            })
            .collect();
        if let Some(path) = &cli.targets {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("-targets {path}: {e}")))?;
            lines.extend(
                parse_targets(&text).map_err(|e| Error::Config(format!("-targets {path}: {e}")))?,
            );
        }
        if lines.is_empty() {
            return Err(Error::Config("-targets: the file names no target".into()));
        }
        let parallel = match cli.parallel {
            Some(n @ 1..=MAX_PARALLEL) => n,
            Some(n) => {
                return Err(Error::Config(format!(
                    "-parallel {n}: must be 1 to {MAX_PARALLEL}"
                )))
            }
            None => DEFAULT_PARALLEL,
        };
        let targets = lines
            .iter()
            .map(|t| {
                let c = target_cli(cli, t).map_err(|e| Error::Config(format!("-targets: {e}")))?;
                ClientConfig::from_cli(&c)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MeshConfig { targets, parallel })
    }
}

/// Writes one record: to the `-output` file (appended whole; a CSV header only into an empty
/// file) and to stdout unless `-q`. The CSV header on stdout is written once, by [`run`].
fn emit(cfg: &ClientConfig, r: &Report) -> Result<()> {
    let record = output::render(r, cfg.format, false);
    if let Some(path) = &cfg.output {
        let header = (cfg.header && cfg.format == Format::Csv).then(csv::header);
        sink::append_whole(path, &record, header.as_deref()).map_err(|e| Error::Output {
            path: path.display().to_string(),
            source: e,
        })?;
    }
    if !cfg.quiet {
        sink::write_stdout(&record)?;
    }
    Ok(())
}

/// The mesh's exit status from each target's, in the order given: 0 when all are 0, else the
/// first non-zero.
pub fn exit_code(codes: &[u8]) -> u8 {
    codes
        .iter()
        .copied()
        .find(|c| *c != exit::OK)
        .unwrap_or(exit::OK)
}

/// Measures every target, at most `parallel` at once; returns each target's exit status in
/// the order given (its record already written).
pub fn run(cfg: &MeshConfig, stop: &AtomicBool) -> Vec<u8> {
    let first = &cfg.targets[0];
    if first.header && first.format == Format::Csv && !first.quiet {
        if let Err(e) = sink::write_stdout(&csv::header()) {
            eprintln!("twamp: {e}");
        }
    }
    let clock = SystemClock::new();
    let next = AtomicUsize::new(0);
    let codes = Mutex::new(vec![exit::OK; cfg.targets.len()]);
    let workers = cfg.parallel.min(cfg.targets.len());
    std::thread::scope(|s| {
        for w in 0..workers {
            let (next, codes, clock) = (&next, &codes, &clock);
            let spawned = std::thread::Builder::new()
                .name(format!("mesh:{w}"))
                .spawn_scoped(s, move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(t) = cfg.targets.get(i) else { break };
                    let code = if stop.load(Ordering::Relaxed) {
                        // Interrupted: the rest are not measured, and say so.
                        let mut r = Report::new(t);
                        r.fail(Error::Config("interrupted before this target".into()));
                        let _ = emit(t, &r);
                        r.exit_code()
                    } else {
                        let r = crate::client::run(t, clock, stop, |_| {});
                        if let Some(e) = &r.error {
                            log::error!("{}:{}: {e}", t.host, t.port);
                        }
                        let written = emit(t, &r);
                        if let Err(e) = &written {
                            eprintln!("twamp: {e}");
                        }
                        r.exit_code_after_output(&written)
                    };
                    codes.lock().unwrap_or_else(|p| p.into_inner())[i] = code;
                });
            if let Err(e) = spawned {
                log::error!("cannot start a mesh worker: {e}");
            }
        }
    });
    codes.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_files() {
        let t = parse_targets(
            "# a mesh\n\n192.0.2.1\n  host.example:8620 count=50 dscp=EF # fast\n[::1]:862 interval=10ms\n",
        )
        .unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].server, "192.0.2.1");
        assert_eq!(t[1].server, "host.example:8620");
        assert_eq!(
            t[1].settings,
            vec![("count".into(), "50".into()), ("dscp".into(), "EF".into())]
        );
        assert_eq!(t[2].settings, vec![("interval".into(), "10ms".into())]);
        for bad in ["h bogus=1", "h count", "h count="] {
            assert!(parse_targets(bad).unwrap_err().contains("line 1"), "{bad}");
        }
    }

    #[test]
    fn exit_code_is_the_first_failure() {
        assert_eq!(exit_code(&[0, 0, 0]), 0);
        assert_eq!(exit_code(&[0, 3, 1]), 3);
        assert_eq!(exit_code(&[1, 0, 3]), 1);
    }
}
