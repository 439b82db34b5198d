//! The built binary as server and client on loopback: one dual-stack `[::]` listener, measured
//! from 127.0.0.1 and from ::1, 200 packets each, every summary figure present and plausible.

mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use serde_json::Value;

use common::bin::{run_client, Server};

/// No run here takes more than a few seconds; this only stops a hung one.
const RUN_LIMIT: Duration = Duration::from_secs(30);

fn start_dual_stack_server() -> (Server, u16) {
    // `[::]` accepts on both families once it listens.
    let srv = Server::start_on(Ipv6Addr::UNSPECIFIED.into(), &[]);
    let port = srv.port();
    (srv, port)
}

fn measure(server: &str) -> Value {
    let out = run_client(
        server,
        &[
            "-c", "200", "-i", "5ms", "-timeout", "500ms", "-format", "json",
        ],
        RUN_LIMIT,
    );
    assert_eq!(out.code, Some(0), "{server}: {}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{server}: {e}: {}", out.stdout))
}

fn f(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} missing or not a number: {cur}"))
}

fn check(v: &Value, family: &str) {
    assert_eq!(v["ok"], true, "{family}");
    assert_eq!(f(v, "summary.sent"), 200.0, "{family}");
    assert_eq!(f(v, "summary.received"), 200.0, "{family}");
    assert_eq!(f(v, "summary.lost"), 0.0, "{family}");
    assert_eq!(f(v, "summary.duplicates"), 0.0, "{family}");
    for d in ["rtt", "forward", "backward", "processing"] {
        let (min, med, mean, max) = (
            f(v, &format!("summary.{d}.min_ms")),
            f(v, &format!("summary.{d}.median_ms")),
            f(v, &format!("summary.{d}.mean_ms")),
            f(v, &format!("summary.{d}.max_ms")),
        );
        assert!(min <= med && med <= max, "{family} {d}: {min} {med} {max}");
        assert!(
            min <= mean && mean <= max,
            "{family} {d}: {min} {mean} {max}"
        );
        assert!(f(v, &format!("summary.{d}.p95_ms")) <= max);
        assert!(f(v, &format!("summary.{d}.stddev_ms")) >= 0.0);
    }
    // One host, one clock: one-way delays are real here, never negative.
    assert!(
        f(v, "summary.forward.min_ms") >= 0.0 && f(v, "summary.backward.min_ms") >= 0.0,
        "{family}"
    );
    // RTT = (T4 − T1) − (T3 − T2) = forward + backward, packet by packet, so the means agree.
    let sum = f(v, "summary.forward.mean_ms") + f(v, "summary.backward.mean_ms");
    assert!(
        (sum - f(v, "summary.rtt.mean_ms")).abs() < 1e-3,
        "{family}: {sum} vs rtt mean"
    );
    // Loopback: well under 50 ms, no hops.
    assert!(f(v, "summary.rtt.max_ms") < 50.0, "{family}");
    assert_eq!(f(v, "summary.hops_forward.min"), 0.0);
    assert_eq!(f(v, "summary.hops_backward.max"), 0.0);
    for k in [
        "ipdv_rfc3393.mean_abs_ms",
        "rfc3550_jitter_ms",
        "twping_p95_p50_ms",
    ] {
        assert!(
            f(v, &format!("summary.rtt_variation.{k}")) >= 0.0,
            "{family} {k}"
        );
    }
    // This machine's clock is not synchronised: the figures must say so.
    let synced = twamp::time::ClockState::read().synchronized;
    assert_eq!(
        v["summary"]["sync"], synced,
        "{family}: S bit must follow the kernel clock state"
    );
}

#[test]
fn one_dual_stack_listener_serves_ipv4_and_ipv6_without_loss() {
    let (_srv, port) = start_dual_stack_server();
    let v4 = measure(&format!("127.0.0.1:{port}"));
    check(&v4, "IPv4");
    assert_eq!(v4["server"]["address"], "127.0.0.1");
    let v6 = measure(&format!("[::1]:{port}"));
    check(&v6, "IPv6");
    assert_eq!(v6["server"]["address"], "::1");
}

#[test]
fn text_summary_has_every_figure() {
    let (_srv, port) = start_dual_stack_server();
    let out = run_client(
        &format!("127.0.0.1:{port}"),
        &["-c", "20", "-i", "5ms", "-timeout", "300ms"],
        RUN_LIMIT,
    );
    assert!(out.success());
    let text = &out.stdout;
    for want in [
        "20 sent, 20 received, 0 lost",
        "round-trip  min/median/mean/max",
        "forward     min/median/mean/max",
        "backward    min/median/mean/max",
        "reflector processing",
        "IPDV (RFC 3393)",
        "RFC 3550 jitter",
        "hops: 0 forward, 0 backward",
        "duplicates",
    ] {
        assert!(text.contains(want), "no '{want}' in:\n{text}");
    }
}
