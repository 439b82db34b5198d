//! Prometheus metrics: a probe's [`Report`] and the Server's counters in the exposition format
//! (OpenMetrics text, through the `prometheus-client` crate; no hand-written encoding).
//!
//! Conventions (<https://prometheus.io/docs/practices/naming/>): base units (seconds, ratios
//! 0–1), `_total` only on counters that grow over a process's life (the Server's); the figures
//! of one probe are gauges, since each scrape is a new measurement. Labels: `dscp` (the code
//! point as a number) on every figure of a test session, `direction` (`forward`: to the
//! reflector, `backward`: back to us, `round_trip`) where a figure has one.
//!
//! Invariants:
//! - one-way delays (`twamp_one_way_delay_*`) appear only when both clocks say they are
//!   synchronised and no sample is negative ([`Summary::one_way_valid`]); otherwise only
//!   `twamp_clock_synchronized 0` and `twamp_one_way_delay_negative_samples` say why. A
//!   negative one-way delay is never exported as a delay.
//! - a figure that was not measured (no samples) is absent, never 0.
//!
//! Pure: no sockets, no clock. The HTTP side is in `exporter`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use crate::report::{Report, SessionReport};
use crate::stats::{DelayStats, DelayVariation, Summary};
use crate::wire::Accept;

/// The content type of what [`Metrics::encode`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`text_004`]: the Prometheus text format, for a scraper that does not
/// ask for OpenMetrics (`curl`, `promtool check metrics`, older Prometheus).
pub const CONTENT_TYPE_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an HTTP `Accept` header asks for OpenMetrics. Prometheus sends
/// `application/openmetrics-text;version=1.0.0,...;q=0.5,text/plain;version=0.0.4;q=0.4,...`;
/// a client that sends none (curl) gets the older text format, as client_golang does.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|t| {
            let mut parts = t.split(';').map(str::trim);
            let is_om = parts
                .next()
                .is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text"));
            // `q=0` means "not acceptable" (RFC 9110 §12.4.2).
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            is_om && !refused
        })
    })
}

/// OpenMetrics text (what [`Metrics::encode`] writes) as the Prometheus text format 0.0.4:
/// a counter family is named with its `_total` in `# HELP` and `# TYPE` there, and `# UNIT`
/// and `# EOF` do not exist. Sample lines are the same in both formats and pass unchanged.
pub fn text_004(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l.starts_with("# UNIT ") || l == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let (name, tail) = l.strip_prefix(p)?.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(l));
        out.push('\n');
    }
    out
}

/// Label pairs of one sample.
type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Upper bounds of `twamp_rtt_seconds`' buckets: 50 µs doubling to about 1.6 s.
fn rtt_buckets() -> Histogram {
    Histogram::new(exponential_buckets(50e-6, 2.0, 16))
}

/// A registry filled once and encoded once (one scrape).
pub struct Metrics {
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            registry: Registry::default(),
        }
    }

    /// A gauge family with these samples; nothing is registered without samples, so a figure
    /// not measured is absent rather than 0.
    pub fn gauge(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: Vec<(Labels, f64)>,
    ) {
        if samples.is_empty() {
            return;
        }
        // The encoder ends every HELP with a full stop of its own.
        let help = help.trim_end_matches('.');
        let family = Family::<Labels, FloatGauge>::default();
        for (labels, v) in samples {
            family.get_or_create(&labels).set(v);
        }
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, family),
            None => self.registry.register(name, help, family),
        }
    }

    /// A counter family (`name` without `_total`: the encoder appends it).
    pub fn counter(&mut self, name: &str, help: &str, samples: Vec<(Labels, u64)>) {
        let help = help.trim_end_matches('.');
        let family = Family::<Labels, Counter>::default();
        for (labels, v) in samples {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    /// The exposition text, ending in `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) = encode(&mut out, &self.registry) {
            log::error!("encoding metrics: {e}");
        }
        out
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `{dscp="46"}` and more.
fn sl(s: &SessionReport, more: &[(&str, &str)]) -> Labels {
    let mut l = vec![("dscp".to_string(), s.dscp.to_string())];
    l.extend(labels(more));
    l
}

/// What a probe scrape answers: `probe_success`, `probe_duration_seconds` and, when a
/// measurement ran, every figure of its sessions.
pub fn probe(report: Option<&Report>, success: bool, duration: Duration) -> String {
    let mut m = Metrics::new();
    m.gauge(
        "probe_success",
        "Whether the probe measured: connected, every packet sent in time, at least one reply.",
        None,
        vec![(vec![], if success { 1.0 } else { 0.0 })],
    );
    m.gauge(
        "probe_duration",
        "How long the probe took.",
        Some(Unit::Seconds),
        vec![(vec![], duration.as_secs_f64())],
    );
    if let Some(r) = report {
        session_metrics(&mut m, &r.sessions);
    }
    m.encode()
}

fn delay_samples(
    sessions: &[SessionReport],
    pick: impl Fn(&Summary) -> Option<&DelayStats>,
    field: fn(&DelayStats) -> Option<f64>,
    dir: Option<&str>,
) -> Vec<(Labels, f64)> {
    sessions
        .iter()
        .filter_map(|s| {
            let v = field(pick(&s.summary)?)?;
            let more: Vec<(&str, &str)> = dir.map(|d| ("direction", d)).into_iter().collect();
            Some((sl(s, &more), v))
        })
        .collect()
}

type Stat = (&'static str, &'static str, fn(&DelayStats) -> Option<f64>);

const DELAY_STATS: [Stat; 5] = [
    ("min", "smallest", |d| Some(d.min)),
    ("median", "median", |d| Some(d.median)),
    ("max", "largest", |d| Some(d.max)),
    ("mean", "mean", |d| Some(d.mean)),
    ("stddev", "standard deviation of the", |d| d.stddev),
];

fn variation<'a>(s: &'a Summary, dir: &str) -> &'a DelayVariation {
    match dir {
        "forward" => &s.forward_variation,
        "backward" => &s.backward_variation,
        _ => &s.rtt_variation,
    }
}

const DIRECTIONS: [&str; 3] = ["round_trip", "forward", "backward"];

fn session_metrics(m: &mut Metrics, sessions: &[SessionReport]) {
    let per = |f: &dyn Fn(&SessionReport) -> Vec<(Labels, f64)>| -> Vec<(Labels, f64)> {
        sessions.iter().flat_map(f).collect()
    };
    let one = |f: fn(&Summary) -> f64| per(&|s| vec![(sl(s, &[]), f(&s.summary))]);
    m.gauge(
        "twamp_packets_sent",
        "Test packets sent (distinct sequence numbers).",
        None,
        one(|s| s.sent as f64),
    );
    m.gauge(
        "twamp_packets_received",
        "Test packets that came back at least once.",
        None,
        one(|s| s.received as f64),
    );
    m.gauge(
        "twamp_packets_lost",
        "Packets lost per direction (RFC 7680 one-way loss; forward includes losses after the \
         last reply, whose direction cannot be told).",
        None,
        per(&|s| {
            vec![
                (
                    sl(s, &[("direction", "forward")]),
                    s.summary.lost_forward as f64,
                ),
                (
                    sl(s, &[("direction", "backward")]),
                    s.summary.lost_backward as f64,
                ),
            ]
        }),
    );
    m.gauge(
        "twamp_loss_ratio",
        "Round-trip loss ratio, 0 to 1 (RFC 6673): lost / sent.",
        None,
        one(|s| s.loss_ratio),
    );
    m.gauge(
        "twamp_duplicates",
        "Duplicate replies (RFC 5560): forward, the reflector reflected twice; backward, one \
         reflection arrived twice.",
        None,
        per(&|s| {
            vec![
                (
                    sl(s, &[("direction", "forward")]),
                    s.summary.duplicates_forward as f64,
                ),
                (
                    sl(s, &[("direction", "backward")]),
                    s.summary.duplicates_backward as f64,
                ),
            ]
        }),
    );
    m.gauge(
        "twamp_reordered",
        "Reordered packets (RFC 4737 §3) in each direction.",
        None,
        per(&|s| {
            let sum = &s.summary;
            vec![
                (
                    sl(s, &[("direction", "round_trip")]),
                    sum.reordering_round_trip.reordered as f64,
                ),
                (
                    sl(s, &[("direction", "forward")]),
                    sum.reordering_forward.reordered as f64,
                ),
                (
                    sl(s, &[("direction", "backward")]),
                    sum.reordering_backward.reordered as f64,
                ),
            ]
        }),
    );
    for (stat, word, f) in DELAY_STATS {
        m.gauge(
            &format!("twamp_rtt_{stat}"),
            &format!("The {word} round-trip delay (RFC 2681), reflector processing excluded."),
            Some(Unit::Seconds),
            delay_samples(sessions, |s| s.rtt.as_ref(), f, None),
        );
    }
    rtt_histogram(m, sessions);
    m.gauge(
        "twamp_clock_synchronized",
        "1 when every timestamp of every sample says its clock is synchronised (RFC 4656 \
         §4.1.2 S bit) and no one-way delay is negative: only then are one-way delays exported.",
        None,
        one(|s| if s.one_way_valid { 1.0 } else { 0.0 }),
    );
    m.gauge(
        "twamp_clock_error_estimate",
        "Largest sum of the two timestamps' Error Estimates (RFC 4656 §4.1.2) per direction.",
        Some(Unit::Seconds),
        per(&|s| {
            let sum = &s.summary;
            [
                ("round_trip", sum.maxerr),
                ("forward", sum.maxerr_fwd),
                ("backward", sum.maxerr_bck),
            ]
            .into_iter()
            .filter_map(|(d, v)| Some((sl(s, &[("direction", d)]), v?)))
            .collect()
        }),
    );
    m.gauge(
        "twamp_one_way_delay_negative_samples",
        "Samples whose one-way delay came out negative: the clocks disagree; no one-way delay \
         is exported then.",
        None,
        per(&|s| {
            vec![
                (
                    sl(s, &[("direction", "forward")]),
                    s.summary.negative_forward as f64,
                ),
                (
                    sl(s, &[("direction", "backward")]),
                    s.summary.negative_backward as f64,
                ),
            ]
        }),
    );
    let valid: Vec<SessionReport> = sessions
        .iter()
        .filter(|s| s.summary.one_way_valid)
        .cloned()
        .collect();
    for (stat, word, f) in DELAY_STATS {
        let mut v = delay_samples(&valid, |s| s.forward.as_ref(), f, Some("forward"));
        v.extend(delay_samples(
            &valid,
            |s| s.backward.as_ref(),
            f,
            Some("backward"),
        ));
        m.gauge(
            &format!("twamp_one_way_delay_{stat}"),
            &format!(
                "The {word} one-way delay (RFC 7679); only with synchronised clocks \
                 (twamp_clock_synchronized 1)."
            ),
            Some(Unit::Seconds),
            v,
        );
    }
    let var = |pick: fn(&DelayVariation) -> Option<f64>| {
        per(&|s| {
            DIRECTIONS
                .iter()
                .filter_map(|d| Some((sl(s, &[("direction", d)]), pick(variation(&s.summary, d))?)))
                .collect()
        })
    };
    m.gauge(
        "twamp_ipdv_mean_abs",
        "Mean absolute inter-packet delay variation (RFC 3393, RFC 5481 §4.1).",
        Some(Unit::Seconds),
        var(|v| v.ipdv.as_ref().map(|i| i.mean_abs)),
    );
    m.gauge(
        "twamp_ipdv_p99_abs",
        "99th percentile of the absolute inter-packet delay variation (RFC 3393).",
        Some(Unit::Seconds),
        var(|v| v.ipdv.as_ref().map(|i| i.p99_abs)),
    );
    m.gauge(
        "twamp_pdv_p95",
        "95th percentile of the packet delay variation, delay minus the smallest (RFC 5481 §4.2).",
        Some(Unit::Seconds),
        var(|v| v.pdv.as_ref().map(|p| p.p95)),
    );
    m.gauge(
        "twamp_rfc3550_jitter",
        "Interarrival jitter (RFC 3550 §6.4.1).",
        Some(Unit::Seconds),
        var(|v| v.rfc3550_jitter),
    );
    let hops = |pick: fn(&crate::stats::Hops) -> u8| {
        per(&|s| {
            [
                ("forward", &s.summary.hops_forward),
                ("backward", &s.summary.hops_backward),
            ]
            .into_iter()
            .filter_map(|(d, h)| Some((sl(s, &[("direction", d)]), f64::from(pick(h.as_ref()?)))))
            .collect()
        })
    };
    m.gauge(
        "twamp_hops_min",
        "Fewest IP hops seen (255 − TTL).",
        None,
        hops(|h| h.min),
    );
    m.gauge(
        "twamp_hops_max",
        "Most IP hops seen (255 − TTL).",
        None,
        hops(|h| h.max),
    );
    m.gauge(
        "twamp_reflector_processing_mean",
        "Mean time a packet spent in the reflector (T3 − T2, RFC 5357 §4.2.1).",
        Some(Unit::Seconds),
        delay_samples(sessions, |s| s.processing.as_ref(), |d| Some(d.mean), None),
    );
    m.gauge(
        "twamp_reflector_processing_max",
        "Longest time a packet spent in the reflector (T3 − T2).",
        Some(Unit::Seconds),
        delay_samples(sessions, |s| s.processing.as_ref(), |d| Some(d.max), None),
    );
}

fn rtt_histogram(m: &mut Metrics, sessions: &[SessionReport]) {
    let family = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(rtt_buckets);
    let mut any = false;
    for s in sessions {
        let h = family.get_or_create(&sl(s, &[]));
        for rtt in s.packets().into_iter().filter_map(|p| p.rtt) {
            h.observe(rtt);
            any = true;
        }
    }
    if any {
        m.registry.register_with_unit(
            "twamp_rtt",
            "Round-trip delays of this probe's packets",
            Unit::Seconds,
            family,
        );
    }
}

/// Why the Server refused a connection or a session (`reason` of
/// `twamp_server_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `-max-connections` established connections.
    MaxConnections,
    /// `-max-connections-per-client`.
    MaxConnectionsPerClient,
    /// A handshaking connection dropped for a newer one (`-max-handshakes`).
    HandshakeEvicted,
    /// A Request-TW-Session answered with this non-zero Accept (RFC 4656 §3.3).
    Session(Accept),
}

impl Refusal {
    const NAMES: [&'static str; 9] = [
        "max_connections",
        "max_connections_per_client",
        "handshake_evicted",
        "session_failure",
        "session_internal_error",
        "session_not_supported",
        "session_permanent_resource_limitation",
        "session_temporary_resource_limitation",
        "session_other",
    ];

    fn index(self) -> usize {
        match self {
            Refusal::MaxConnections => 0,
            Refusal::MaxConnectionsPerClient => 1,
            Refusal::HandshakeEvicted => 2,
            Refusal::Session(Accept::Failure) => 3,
            Refusal::Session(Accept::InternalError) => 4,
            Refusal::Session(Accept::NotSupported) => 5,
            Refusal::Session(Accept::PermanentResourceLimitation) => 6,
            Refusal::Session(Accept::TemporaryResourceLimitation) => 7,
            Refusal::Session(_) => 8,
        }
    }
}

/// Server-wide counters that the reflector's [`crate::reflector::Counters`] do not keep, held in
/// the Server's shared state and bumped where the event happens.
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Control connections accepted (admitted), over the server's life.
    pub connections_total: AtomicU64,
    /// Test sessions accepted (Accept-Session with Accept 0).
    pub sessions_total: AtomicU64,
    refusals: [AtomicU64; Refusal::NAMES.len()],
    /// TWAMP-Light/STAMP senders the light reflector remembers, as of its latest datagram
    /// (kept by `reflector::light::LightHandler`); 0 without `-light`.
    pub light_senders: Arc<AtomicUsize>,
}

impl ServerCounters {
    pub fn refused(&self, why: Refusal) {
        self.refusals[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an Accept-Session as it is sent.
    pub fn accept_session(&self, accept: Accept) {
        match accept {
            Accept::Ok => {
                self.sessions_total.fetch_add(1, Ordering::Relaxed);
            }
            other => self.refused(Refusal::Session(other)),
        }
    }
}

/// What `/metrics` on the Server shows, read from its shared state at scrape time.
#[derive(Debug, Clone, Default)]
pub struct ServerSnapshot {
    pub connections: u64,
    pub handshaking: u64,
    pub connections_total: u64,
    pub sessions_active: u64,
    pub sessions_reflecting: u64,
    pub sessions_total: u64,
    pub reflected: u64,
    /// (reason, datagrams) for each drop reason of the reflector.
    pub dropped: Vec<(&'static str, u64)>,
    /// (reason, refusals).
    pub refusals: Vec<(&'static str, u64)>,
    pub light_senders: u64,
}

impl ServerSnapshot {
    /// Reads the counters; each is read on its own (the figures are not one atomic snapshot).
    pub fn read(
        c: &ServerCounters,
        r: &crate::reflector::Counters,
        connections: usize,
        handshaking: usize,
        sessions_active: usize,
        sessions_reflecting: usize,
    ) -> Self {
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ServerSnapshot {
            connections: connections as u64,
            handshaking: handshaking as u64,
            connections_total: ld(&c.connections_total),
            sessions_active: sessions_active as u64,
            sessions_reflecting: sessions_reflecting as u64,
            sessions_total: ld(&c.sessions_total),
            reflected: ld(&r.reflected),
            dropped: vec![
                ("short", ld(&r.short)),
                ("undersized", ld(&r.undersized)),
                ("oversized", ld(&r.oversized)),
                ("wrong_peer", ld(&r.wrong_peer)),
                ("bad_hmac", ld(&r.bad_hmac)),
                ("no_reply", ld(&r.no_reply)),
            ],
            refusals: Refusal::NAMES
                .iter()
                .zip(&c.refusals)
                .map(|(n, a)| (*n, ld(a)))
                .collect(),
            light_senders: c.light_senders.load(Ordering::Relaxed) as u64,
        }
    }
}

/// `twamp_build_info{version="…"} 1`, the usual info-as-gauge (OpenMetrics' `info` type is not
/// understood by every consumer).
pub fn build_info(m: &mut Metrics, prefix: &str) {
    m.gauge(
        &format!("{prefix}_build_info"),
        "The twamp build: always 1, the version in a label.",
        None,
        vec![(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
}

/// The Server's `/metrics`.
pub fn server(s: &ServerSnapshot) -> String {
    let mut m = Metrics::new();
    build_info(&mut m, "twamp_server");
    let g = |v: u64| vec![(vec![], v as f64)];
    m.gauge(
        "twamp_server_control_connections_open",
        "TWAMP-Control connections open now (in the handshake or established).",
        None,
        g(s.connections),
    );
    m.gauge(
        "twamp_server_handshaking_connections",
        "Control connections that have not finished the handshake.",
        None,
        g(s.handshaking),
    );
    m.counter(
        "twamp_server_control_connections_accepted",
        "TWAMP-Control connections admitted.",
        vec![(vec![], s.connections_total)],
    );
    m.gauge(
        "twamp_server_sessions_active",
        "Test sessions held now (accepted or running).",
        None,
        g(s.sessions_active),
    );
    m.gauge(
        "twamp_server_sessions_reflecting",
        "Test sessions the reflector engine serves now.",
        None,
        g(s.sessions_reflecting),
    );
    m.counter(
        "twamp_server_sessions_accepted",
        "Test sessions accepted (Accept-Session with Accept 0).",
        vec![(vec![], s.sessions_total)],
    );
    m.counter(
        "twamp_server_packets_reflected",
        "Test packets reflected.",
        vec![(vec![], s.reflected)],
    );
    m.counter(
        "twamp_server_datagrams_dropped",
        "Datagrams on test sockets not reflected, by reason.",
        s.dropped
            .iter()
            .map(|(r, v)| (labels(&[("reason", r)]), *v))
            .collect(),
    );
    m.counter(
        "twamp_server_refusals",
        "Connections and sessions refused, by reason (limits; non-zero Accept values).",
        s.refusals
            .iter()
            .map(|(r, v)| (labels(&[("reason", r)]), *v))
            .collect(),
    );
    m.gauge(
        "twamp_server_light_senders",
        "TWAMP-Light/STAMP senders the light reflector remembers (-light), as of its latest datagram.",
        None,
        g(s.light_senders),
    );
    m.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_decides_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(None), "curl sends none");
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain;version=0.0.4")));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text; q=0"
        )));
    }

    #[test]
    fn text_004_names_counters_with_total_and_drops_unit_and_eof() {
        let om = "# HELP twamp_x Packets.\n# TYPE twamp_x counter\ntwamp_x_total 5\n\
                  # HELP twamp_rtt_seconds RTT.\n# TYPE twamp_rtt_seconds gauge\n\
                  # UNIT twamp_rtt_seconds seconds\ntwamp_rtt_seconds 0.001\n# EOF\n";
        assert_eq!(
            text_004(om),
            "# HELP twamp_x_total Packets.\n# TYPE twamp_x_total counter\ntwamp_x_total 5\n\
             # HELP twamp_rtt_seconds RTT.\n# TYPE twamp_rtt_seconds gauge\n\
             twamp_rtt_seconds 0.001\n"
        );
    }

    #[test]
    fn server_metrics_have_units_totals_and_reasons() {
        let c = ServerCounters::default();
        c.refused(Refusal::MaxConnections);
        c.accept_session(Accept::Ok);
        c.accept_session(Accept::TemporaryResourceLimitation);
        let r = crate::reflector::Counters::default();
        r.reflected.fetch_add(7, Ordering::Relaxed);
        let text = server(&ServerSnapshot::read(&c, &r, 2, 1, 1, 1));
        for want in [
            "twamp_server_packets_reflected_total 7",
            "twamp_server_sessions_accepted_total 1",
            "twamp_server_refusals_total{reason=\"max_connections\"} 1",
            "twamp_server_refusals_total{reason=\"session_temporary_resource_limitation\"} 1",
            "twamp_server_datagrams_dropped_total{reason=\"bad_hmac\"} 0",
            "twamp_server_control_connections_open 2",
            "twamp_server_build_info{version=",
            "# EOF",
        ] {
            assert!(text.contains(want), "{want} missing in\n{text}");
        }
    }

    use crate::config::{ClientConfig, SessionSpec};
    use crate::sender::Outcome;
    use crate::stats::{Reply, Sent};
    use crate::time::{ErrorEstimate, Timestamp};
    use crate::wire::Sid;

    /// One packet: T1 = 100 s, T2 = T1 + `fwd_ms`, T3 = T2 + 0.1 ms, T4 = T3 + 1 ms, every
    /// Error Estimate with the S bit set or not.
    fn report(fwd_ms: i64, synced: bool) -> Report {
        let at = |ms: f64| {
            let t = 100.0 + ms / 1e3;
            Timestamp::new(t as u32, ((t.fract()) * 4_294_967_296.0) as u32)
        };
        let e = ErrorEstimate(if synced { 0x8001 } else { 0x0001 });
        let (t1, t2) = (at(0.0), at(fwd_ms as f64));
        let (t3, t4) = (at(fwd_ms as f64 + 0.1), at(fwd_ms as f64 + 1.1));
        let mut s = SessionReport::new(
            Sid([1; 16]),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            27,
            &SessionSpec {
                dscp: 46,
                ..SessionSpec::default()
            },
        );
        s.finish(Outcome {
            sent: vec![Sent {
                seq: 0,
                t1,
                t1_err: e,
            }],
            replies: vec![Reply {
                sender_seq: 0,
                reflector_seq: 0,
                t1,
                t1_err: e,
                t2,
                t2_err: e,
                t3,
                t3_err: e,
                t4,
                t4_err: e,
                sender_ttl: 250,
                ttl: Some(251),
            }],
            ..Outcome::default()
        });
        let mut r = Report::new(&ClientConfig::default());
        r.sessions.push(s);
        r
    }

    #[test]
    fn one_way_delays_only_with_synchronised_clocks_and_never_negative() {
        let text = probe(Some(&report(2, true)), true, Duration::from_secs(1));
        assert!(
            text.contains("twamp_clock_synchronized{dscp=\"46\"} 1"),
            "{text}"
        );
        let fwd = text
            .lines()
            .find(|l| l.starts_with("twamp_one_way_delay_median_seconds") && l.contains("forward"))
            .unwrap_or_else(|| panic!("no forward delay in\n{text}"));
        let v: f64 = fwd.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((v - 0.002).abs() < 1e-6, "{fwd}");
        assert!(
            text.contains("twamp_rtt_median_seconds{dscp=\"46\"} 0.003"),
            "{text}"
        );
        assert!(text.contains("twamp_hops_min{"), "{text}");

        // Unsynchronised: no one-way delay at all, and the gauge says why.
        let text = probe(Some(&report(2, false)), true, Duration::from_secs(1));
        assert!(!text.contains("twamp_one_way_delay_m"), "{text}");
        assert!(
            text.contains("twamp_clock_synchronized{dscp=\"46\"} 0"),
            "{text}"
        );

        // Synchronised but T2 < T1: the clocks disagree; never exported as a delay.
        let text = probe(Some(&report(-5, true)), true, Duration::from_secs(1));
        assert!(!text.contains("twamp_one_way_delay_m"), "{text}");
        assert!(
            text.contains("twamp_clock_synchronized{dscp=\"46\"} 0"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("twamp_one_way_delay_negative_samples")
                    && l.contains("forward")
                    && l.ends_with(" 1.0")),
            "{text}"
        );
    }

    #[test]
    fn an_unmeasured_probe_is_only_success_and_duration() {
        let text = probe(None, false, Duration::from_millis(1500));
        assert!(text.contains("probe_success 0"), "{text}");
        assert!(text.contains("probe_duration_seconds 1.5"), "{text}");
        assert!(!text.contains("twamp_"), "{text}");
    }
}
