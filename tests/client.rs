//! The client as a user runs it: several sessions on one control connection, how long a run
//! waits, and the defects users hit (issue "Reshape the client…"): each test here failed
//! before its fix.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::bin::{run_bounded, run_client, BIN};
use common::{server_config, TestServer};
use serde_json::Value;
use twamp::config::{ClientConfig, SessionSpec};
use twamp::sender::Schedule;
use twamp::time::SystemClock;

fn spec(count: u32, interval_ms: u64, padding: Option<u32>) -> SessionSpec {
    SessionSpec {
        count,
        schedule: Schedule::Periodic {
            interval: Duration::from_millis(interval_ms),
        },
        loss_timeout: Duration::from_millis(500),
        padding,
        ..SessionSpec::default()
    }
}

fn config(server: SocketAddr, sessions: Vec<SessionSpec>) -> ClientConfig {
    ClientConfig {
        host: server.ip().to_string(),
        port: server.port(),
        connect_timeout: Duration::from_secs(3),
        sessions,
        quiet: true,
        ..ClientConfig::default()
    }
}

#[test]
fn two_sessions_on_one_control_connection_are_both_measured() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let cfg = config(srv.addr, vec![spec(30, 5, None), spec(20, 7, Some(100))]);
    let r = twamp::client::run(&cfg, &SystemClock::new(), &AtomicBool::new(false), |_| {});
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.sessions.len(), 2);
    let (a, b) = (&r.sessions[0], &r.sessions[1]);
    assert_ne!(a.sid, b.sid, "each session has its own SID");
    assert_ne!(
        a.reflector.port(),
        b.reflector.port(),
        "and its own reflector"
    );
    assert_eq!((a.summary.sent, a.summary.received), (30, 30));
    assert_eq!((b.summary.sent, b.summary.received), (20, 20));
    assert_eq!(a.padding, 27);
    assert_eq!(b.padding, 100);
    assert_eq!(r.exit_code(), 0);
    // The server saw one connection and Stop-Sessions for both: it goes back to idle.
    assert!(common::wait_until(Duration::from_secs(5), || srv
        .live_sessions()
        == 0
        && srv.connections() == 0));
}

#[test]
fn eight_sessions_are_measured_reported_and_stopped_together() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let r = run_bounded(
        &[
            "-mode",
            "client",
            &server_arg(&srv),
            "-sessions",
            "8",
            "-c",
            "15",
            "-i",
            "4ms",
            "-timeout",
            "300ms",
            "-format",
            "json",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    let sessions = v["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 8);
    let mut sids = std::collections::BTreeSet::new();
    for s in sessions {
        assert_eq!(s["summary"]["received"], 15, "{s}");
        sids.insert(s["session"]["sid"].as_str().unwrap().to_string());
    }
    assert_eq!(sids.len(), 8, "eight SIDs");
    assert_eq!(v["total"]["sessions"], 8);
    assert_eq!(v["total"]["sent"], 120);
    assert_eq!(v["total"]["received"], 120);
    assert_eq!(v["total"]["rtt"]["count"], 120);
    // Stop-Sessions for all eight was accepted: the server ends every session and the
    // connection (a wrong count would have closed it with an error).
    assert!(common::wait_until(Duration::from_secs(5), || srv
        .live_sessions()
        == 0
        && srv.connections() == 0));
    // The text format summarises each and the total.
    let t = run_bounded(
        &[
            "-mode",
            "client",
            &server_arg(&srv),
            "-sessions",
            "3",
            "-c",
            "5",
            "-i",
            "4ms",
            "-timeout",
            "300ms",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(t.code, Some(0), "{}", t.describe());
    assert!(t.stdout.contains("session 3 of 3:"), "{}", t.stdout);
    assert!(
        t.stdout
            .contains("total over 3 sessions: 15 sent, 15 received"),
        "{}",
        t.stdout
    );
}

#[test]
fn a_run_stops_waiting_once_every_reply_is_back() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut s = spec(1, 10, None);
    s.loss_timeout = Duration::from_secs(2);
    let cfg = config(srv.addr, vec![s]);
    let started = Instant::now();
    let r = twamp::client::run(&cfg, &SystemClock::new(), &AtomicBool::new(false), |_| {});
    let took = started.elapsed();
    assert_eq!(r.exit_code(), 0, "{:?}", r.error);
    assert_eq!(r.sessions[0].summary.received, 1);
    // Before the fix every run waited the whole 2 s loss timeout after its last packet.
    assert!(
        took < Duration::from_millis(1500),
        "-c 1 with every reply back took {took:?}"
    );
}

fn server_arg(srv: &TestServer) -> String {
    srv.addr.to_string()
}

#[test]
fn json_with_histogram_keeps_stdout_json() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let r = run_client(
        &server_arg(&srv),
        &[
            "-c",
            "10",
            "-i",
            "5ms",
            "-timeout",
            "300ms",
            "-format",
            "json",
            "-histogram",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "stdout is the one JSON record\n{}",
        r.describe()
    );
    let v: Value = serde_json::from_str(lines[0]).expect("stdout parses as JSON");
    assert_eq!(v["summary"]["received"], 10);
    assert!(
        r.stderr.contains("round-trip time histogram"),
        "the histogram goes to stderr\n{}",
        r.describe()
    );
}

#[test]
fn text_records_carry_their_start_time() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let r = run_client(
        &server_arg(&srv),
        &["-c", "3", "-i", "5ms", "-timeout", "300ms"],
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let first = r.stdout.lines().next().unwrap_or("");
    let started = first
        .split("started ")
        .nth(1)
        .and_then(|s| s.strip_suffix(" ---"))
        .unwrap_or_else(|| panic!("no start time in {first:?}"));
    chrono::DateTime::parse_from_rfc3339(started)
        .unwrap_or_else(|e| panic!("{started:?} is not RFC 3339: {e}"));
}

/// Every number in `v`, with its path.
fn numbers(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Number(n) => out.push((path.to_string(), n.to_string())),
        Value::Object(m) => m
            .iter()
            .for_each(|(k, v)| numbers(v, &format!("{path}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| numbers(v, &format!("{path}/{i}"), out)),
        _ => {}
    }
}

#[test]
fn json_numbers_are_rounded_to_the_clock_resolution() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let r = run_client(
        &server_arg(&srv),
        &[
            "-c", "20", "-i", "3ms", "-timeout", "300ms", "-format", "json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(r.code, Some(0), "{}", r.describe());
    let v: Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    let mut all = Vec::new();
    numbers(&v, "", &mut all);
    let long: Vec<_> = all
        .iter()
        .filter(|(_, n)| n.split_once('.').is_some_and(|(_, frac)| frac.len() > 6))
        .collect();
    assert!(long.is_empty(), "more than 6 decimals: {long:?}");
}

#[test]
fn a_count_too_large_to_keep_is_a_usage_error_before_any_allocation() {
    let r = run_bounded(
        &[
            "-mode",
            "client",
            "-server",
            "127.0.0.1",
            "-c",
            "4000000000",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(r.code, Some(2), "{}", r.describe());
    assert!(r.stderr.contains("-c 4000000000"), "{}", r.describe());
}

#[test]
fn a_passphrase_without_user_is_an_error_not_open_mode() {
    let out = Command::new(BIN)
        .args(["-mode", "client", "-server", "127.0.0.1:9", "-c", "1"])
        .env("TWAMP_PASSPHRASE", "secret")
        .stdin(Stdio::null())
        .output()
        .expect("run twamp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("TWAMP_PASSPHRASE") && stderr.contains("-user"),
        "{stderr}"
    );
}
