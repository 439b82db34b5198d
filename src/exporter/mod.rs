//! `-mode exporter`: Prometheus' multi-target exporter pattern (as blackbox_exporter), and the
//! Server's `-metrics` endpoint. HTTP through `tiny_http`, the exposition format through
//! `metrics` (`prometheus-client`).
//!
//! `GET /probe?target=HOST[:PORT]&module=NAME` runs one measurement with the module's settings
//! and answers with its metrics. Its bounds:
//! - **allowlist**: the target is resolved first and every address must be inside
//!   `[exporter] allow`; otherwise 403 and no packet is sent. The measurement then connects to
//!   the address that was checked (no second lookup that could answer differently).
//! - **deadline**: Prometheus' `X-Prometheus-Scrape-Timeout-Seconds` (else `default_timeout`)
//!   minus `timeout_margin`. At the deadline the run's stop flag is set and the scrape is
//!   answered at once with `probe_success 0`, whatever the run is still doing.
//! - **concurrency**: at most `max_probes` measurements at once (a slot is held until the
//!   measurement has really ended, not only until its scrape was answered); a scrape beyond
//!   that gets 503 at once, never a place in a queue.
//!
//! Query parameters other than `target` and `module` are refused (400), so nothing in a URL
//! can carry a key or change a bound.

pub mod config;

use std::net::{IpAddr, SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response, Server};

use crate::config::{ClientConfig, Logging};
use crate::error::{Error, Op, Result};
use crate::metrics::{self, Metrics};
use crate::time::SystemClock;

pub use config::ExporterConfig;

/// `-mode exporter`'s default `-listen`: loopback, so a bare start serves nobody else.
pub const DEFAULT_EXPORTER_LISTEN: &str = "127.0.0.1:9862";
/// The shortest deadline a probe is given, whatever the scrape timeout says.
const MIN_DEADLINE: Duration = Duration::from_millis(100);
const POLL: Duration = Duration::from_millis(250);

/// Binds an HTTP listener; done before daemonizing, so "address in use" reaches the terminal.
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| Error::io(Op::Bind, Some(addr), e))
}

fn http(listener: TcpListener) -> Result<Server> {
    let addr = listener.local_addr().ok();
    Server::from_listener(listener, None)
        .map_err(|e| Error::io(Op::Bind, addr, std::io::Error::other(e.to_string())))
}

fn header(name: &str, value: &str) -> Header {
    // Both are constants of ours; a bad one is a bug caught by any test.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("valid header constants")
}

fn text(status: u16, body: impl Into<String>) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body.into())
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

/// Whether the scraper asked for OpenMetrics (Prometheus does) or not (curl, promtool).
fn openmetrics(req: &Request) -> bool {
    let accept = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Accept"))
        .map(|h| h.value.as_str());
    metrics::wants_openmetrics(accept)
}

/// An exposition in the format the scraper asked for ([`openmetrics`]).
fn exposition(openmetrics: bool, body: String) -> Response<std::io::Cursor<Vec<u8>>> {
    if openmetrics {
        Response::from_string(body).with_header(header("Content-Type", metrics::CONTENT_TYPE))
    } else {
        Response::from_string(metrics::text_004(&body))
            .with_header(header("Content-Type", metrics::CONTENT_TYPE_004))
    }
}

fn answer(req: Request, resp: Response<std::io::Cursor<Vec<u8>>>) {
    if let Err(e) = req.respond(resp) {
        log::debug!("HTTP answer not delivered: {e}");
    }
}

/// Serves the Server's `/metrics` from `snapshot` until `stop`; runs on its own thread.
pub fn serve_metrics(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    snapshot: impl Fn() -> metrics::ServerSnapshot + Send + 'static,
) -> Result<std::thread::JoinHandle<()>> {
    let local = listener.local_addr().ok();
    let server = http(listener)?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            log::info!(
                "metrics on http://{}/metrics",
                local.map_or_else(|| "?".into(), |a| a.to_string())
            );
            while !stop.load(Ordering::Relaxed) {
                let req = match server.recv_timeout(POLL) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        log::warn!("metrics: {e}");
                        continue;
                    }
                };
                let path = req.url().split('?').next().unwrap_or("");
                let resp = match path {
                    "/metrics" => exposition(openmetrics(&req), metrics::server(&snapshot())),
                    _ => text(404, "twamp server: metrics are at /metrics\n"),
                };
                answer(req, resp);
            }
        })
        .map_err(|e| Error::io(Op::Spawn, None, e))
}

/// Percent-decodes a query component (`+` is a space).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A probe request: `target` and `module`, nothing else.
#[derive(Debug, PartialEq, Eq)]
pub struct ProbeQuery {
    pub target: String,
    pub module: Option<String>,
}

/// Parses `/probe`'s query string.
pub fn parse_query(q: &str) -> std::result::Result<ProbeQuery, String> {
    let (mut target, mut module) = (None, None);
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v).ok_or_else(|| format!("'{k}': bad percent-encoding"))?;
        let slot = match k {
            "target" => &mut target,
            "module" => &mut module,
            other => {
                return Err(format!(
                    "unknown parameter '{other}' (only target and module; settings and keys \
                     live in the exporter's configuration file)"
                ))
            }
        };
        if slot.replace(v).is_some() {
            return Err(format!("'{k}' given twice"));
        }
    }
    let target = target
        .filter(|t| !t.is_empty())
        .ok_or("target parameter missing")?;
    Ok(ProbeQuery { target, module })
}

/// The exporter's own counters (its `/metrics`).
#[derive(Default)]
struct Stats {
    ok: AtomicU64,
    failed: AtomicU64,
    refused_allowlist: AtomicU64,
    refused_busy: AtomicU64,
    bad_request: AtomicU64,
}

struct State {
    cfg: ExporterConfig,
    running: AtomicUsize,
    stats: Stats,
    clock: SystemClock,
}

/// A slot of `max_probes`, given back when dropped.
struct Slot(Arc<State>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

impl State {
    fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        let max = self.cfg.max_probes;
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

/// Serves `/probe` and `/metrics` until `stop` is set.
pub fn serve(cfg: ExporterConfig, listener: TcpListener, stop: Arc<AtomicBool>) -> Result<()> {
    let local = listener.local_addr().ok();
    let server = http(listener)?;
    log::info!(
        "TWAMP exporter on http://{}/probe ({} module(s), {} network(s) allowed, at most {} probe(s) at once)",
        local.map_or_else(|| "?".into(), |a| a.to_string()),
        cfg.modules.len(),
        cfg.allow.len(),
        cfg.max_probes
    );
    let state = Arc::new(State {
        cfg,
        running: AtomicUsize::new(0),
        stats: Stats::default(),
        clock: SystemClock::new(),
    });
    while !stop.load(Ordering::Relaxed) {
        let req = match server.recv_timeout(POLL) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                log::warn!("exporter: {e}");
                continue;
            }
        };
        let url = req.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        match path {
            "/probe" => {
                // Refused here, before a thread exists: beyond the cap nothing waits.
                let Some(slot) = state.take_slot() else {
                    state.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                    answer(
                        req,
                        text(
                            503,
                            format!(
                                "{} probes running (max_probes): try again later\n",
                                state.cfg.max_probes
                            ),
                        ),
                    );
                    continue;
                };
                let query = query.to_string();
                let st = state.clone();
                let spawned = std::thread::Builder::new()
                    .name("probe".into())
                    .spawn(move || probe(&st, req, &query, slot));
                if let Err(e) = spawned {
                    log::error!("cannot start a probe thread: {e}");
                }
            }
            "/metrics" => {
                let resp = exposition(openmetrics(&req), own_metrics(&state));
                answer(req, resp)
            }
            "/" => answer(
                req,
                text(
                    200,
                    "twamp exporter: /probe?target=HOST[:PORT]&module=NAME, /metrics\n",
                ),
            ),
            _ => answer(req, text(404, "not found\n")),
        }
    }
    Ok(())
}

fn own_metrics(state: &State) -> String {
    let s = &state.stats;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut m = Metrics::new();
    metrics::build_info(&mut m, "twamp_exporter");
    m.counter(
        "twamp_exporter_probes",
        "Probes run, by result.",
        vec![
            (vec![("result".into(), "success".into())], ld(&s.ok)),
            (vec![("result".into(), "failure".into())], ld(&s.failed)),
        ],
    );
    m.counter(
        "twamp_exporter_probes_refused",
        "Probe requests refused before measuring, by reason.",
        vec![
            (
                vec![("reason".into(), "allowlist".into())],
                ld(&s.refused_allowlist),
            ),
            (
                vec![("reason".into(), "max_probes".into())],
                ld(&s.refused_busy),
            ),
            (
                vec![("reason".into(), "bad_request".into())],
                ld(&s.bad_request),
            ),
        ],
    );
    m.gauge(
        "twamp_exporter_probes_running",
        "Measurements running now.",
        None,
        vec![(vec![], state.running.load(Ordering::Relaxed) as f64)],
    );
    m.encode()
}

/// The scrape's deadline: its timeout header (else the default) minus the margin.
pub fn deadline_for(header: Option<&str>, default: Duration, margin: Duration) -> Duration {
    let timeout = header
        .and_then(|h| h.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
        .map_or(default, Duration::from_secs_f64);
    timeout.saturating_sub(margin).max(MIN_DEADLINE)
}

/// Resolves `host:port` to every address it has. Literals need no lookup.
fn resolve(host: &str, port: u16) -> std::result::Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|e| format!("cannot resolve '{host}': {e}"))
}

/// What the measuring thread hands back.
enum Outcome {
    /// Not in the allow list: nothing was sent.
    Refused(String),
    /// The name did not resolve.
    Unresolved(String),
    Measured(crate::report::Report),
}

/// Resolves, checks the allow list, measures: on the probe's own thread, so that a slow name
/// lookup is bounded by the deadline too.
fn measure(
    state: &State,
    module: &config::Module,
    target: &str,
    budget: Duration,
    stop: &AtomicBool,
) -> Outcome {
    let (host, port) = match crate::config::split_host_port(target, module.port) {
        Ok(x) => x,
        Err(e) => return Outcome::Unresolved(format!("target: {e}")),
    };
    // The allow list is checked on every address the name has, before anything is sent.
    let addrs = match resolve(&host, port) {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return Outcome::Unresolved(format!("'{host}' has no address")),
        Err(e) => return Outcome::Unresolved(e),
    };
    let ips: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
    if !state.cfg.allowed(&ips) {
        return Outcome::Refused(format!(
            "target {target} ({}) is not inside the exporter's allow list",
            ips.iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let to = addrs[0];
    let client = ClientConfig {
        // The checked address itself, as a literal: no second lookup.
        host: to.ip().to_string(),
        port: to.port(),
        // The measurement's own waits end with the scrape, so its slot comes back soon after.
        connect_timeout: module.connect_timeout.min(budget),
        sessions: vec![module.spec.clone()],
        auth: module.auth.clone(),
        user: module.user.clone(),
        secret: module.secret.clone(),
        light: module.light.clone(),
        quiet: true,
        logging: Logging {
            level: log::LevelFilter::Warn,
            file: None,
        },
        ..ClientConfig::default()
    };
    Outcome::Measured(crate::client::run(&client, &state.clock, stop, |_| {}))
}

fn probe(state: &Arc<State>, req: Request, query: &str, slot: Slot) {
    let started = Instant::now();
    let om = openmetrics(&req);
    let cfg = &state.cfg;
    let bad = |req: Request, status: u16, why: String, counter: &AtomicU64| {
        counter.fetch_add(1, Ordering::Relaxed);
        log::info!("probe refused: {why}");
        answer(req, text(status, format!("{why}\n")));
    };
    let q = match parse_query(query) {
        Ok(q) => q,
        Err(e) => return bad(req, 400, e, &state.stats.bad_request),
    };
    let name = q.module.clone().unwrap_or_else(|| "default".into());
    if !cfg.modules.contains_key(&name) {
        let known: Vec<&str> = cfg.modules.keys().map(String::as_str).collect();
        return bad(
            req,
            400,
            format!("unknown module '{name}' (configured: {})", known.join(", ")),
            &state.stats.bad_request,
        );
    }
    let timeout_header = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-Prometheus-Scrape-Timeout-Seconds"))
        .map(|h| h.value.as_str().to_string());
    let budget = deadline_for(
        timeout_header.as_deref(),
        cfg.default_timeout,
        cfg.timeout_margin,
    );
    let deadline = started + budget;
    let module = &cfg.modules[&name];
    let expected = module.spec.schedule.span(module.spec.count) + module.spec.loss_timeout;
    if expected > budget {
        log::warn!(
            "probe {} (module {name}): needs about {expected:?}, the scrape allows {budget:?}: it will be cut short",
            q.target
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let (st, stop2, target) = (state.clone(), stop.clone(), q.target.clone());
    let worker = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let outcome = measure(&st, &st.cfg.modules[&name], &target, budget, &stop2);
            let _ = tx.send(outcome);
            // The slot goes back only now: a run cut short by its deadline still counts
            // against max_probes until it has really ended.
            drop(slot);
        });
    if let Err(e) = worker {
        log::error!("cannot start a probe: {e}");
        state.stats.failed.fetch_add(1, Ordering::Relaxed);
        return answer(
            req,
            exposition(om, metrics::probe(None, false, started.elapsed())),
        );
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let (report, success) = match rx.recv_timeout(left) {
        Ok(Outcome::Refused(why)) => return bad(req, 403, why, &state.stats.refused_allowlist),
        Ok(Outcome::Unresolved(why)) => {
            log::info!("probe {}: {why}", q.target);
            (None, false)
        }
        Ok(Outcome::Measured(r)) => {
            let ok = r.ok() && !stop.load(Ordering::Relaxed);
            if let Some(e) = &r.error {
                log::info!("probe {}: {e}", q.target);
            }
            (Some(r), ok)
        }
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            log::info!(
                "probe {}: not done within {budget:?} (scrape timeout minus margin)",
                q.target
            );
            (None, false)
        }
    };
    let counter = if success {
        &state.stats.ok
    } else {
        &state.stats.failed
    };
    counter.fetch_add(1, Ordering::Relaxed);
    answer(
        req,
        exposition(
            om,
            metrics::probe(report.as_ref(), success, started.elapsed()),
        ),
    );
}

/// `-mode exporter`: binds, then serves until SIGINT/SIGTERM.
pub fn run(cfg: ExporterConfig, stop: Arc<AtomicBool>) -> Result<()> {
    let listener = bind(cfg.listen)?;
    serve(cfg, listener, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(
            parse_query("target=127.0.0.1%3A862&module=fast").unwrap(),
            ProbeQuery {
                target: "127.0.0.1:862".into(),
                module: Some("fast".into())
            }
        );
        assert_eq!(parse_query("target=h").unwrap().module, None);
        for bad in [
            "",
            "module=x",
            "target=a&target=b",
            "target=a&key=secret",
            "target=%zz",
        ] {
            assert!(parse_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deadlines_stay_below_the_scrape_timeout() {
        let (d, m) = (Duration::from_secs(10), Duration::from_millis(500));
        assert_eq!(deadline_for(Some("2.5"), d, m), Duration::from_secs(2));
        assert_eq!(deadline_for(None, d, m), Duration::from_millis(9500));
        assert_eq!(
            deadline_for(Some("nonsense"), d, m),
            Duration::from_millis(9500)
        );
        assert_eq!(deadline_for(Some("0.2"), d, m), MIN_DEADLINE);
    }
}
