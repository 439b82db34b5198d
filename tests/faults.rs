//! Faults mid-session, with the real binaries: a client killed or frozen, the server killed or
//! stopped with SIGTERM. The survivor must notice within a bounded time, give back what the
//! session held, and (the client) say what happened and keep what it measured.
//!
//! Only 127.0.0.1; every child is killed and reaped by its guard however the test ends.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use common::bin::{Proc, Scratch};

/// Exit codes from src/error.rs `mod exit`.
const OK: i32 = 0;
const NETWORK: i32 = 3;

/// The server's REFWAIT and SERVWAIT in these tests.
const REFWAIT: Duration = Duration::from_secs(1);
const SERVWAIT: Duration = Duration::from_secs(5);

/// Threads and open descriptors of `pid`, from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    threads: u64,
    fds: u64,
}

fn usage(pid: u32) -> Usage {
    let s = common::proc::sample(pid).expect("/proc of a running process");
    Usage {
        threads: s.threads,
        fds: s.fds,
    }
}

/// Polls `cond` every 10 ms for up to `limit`; returns how long it took, or None.
fn within(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The server binary on a free loopback port, started and listening.
struct Server {
    proc: Proc,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let common::bin::Server { proc, addr } = common::bin::Server::start(&[
            "-refwait",
            &format!("{}s", REFWAIT.as_secs()),
            "-servwait",
            &format!("{}s", SERVWAIT.as_secs()),
        ]);
        // Let it finish starting before anyone reads its idle figures.
        thread::sleep(Duration::from_millis(200));
        Server {
            proc,
            port: addr.port(),
        }
    }

    fn usage(&self) -> Usage {
        usage(self.proc.pid())
    }

    fn log(&self) -> String {
        self.proc.stderr()
    }

    /// Waits until a session is running: one control thread over `idle` (the reflector
    /// engine's thread is there when idle), and the control and test sockets.
    fn wait_for_session(&self, idle: Usage, client: &Proc) {
        let running = within(Duration::from_secs(5), || {
            let u = self.usage();
            u.threads > idle.threads && u.fds >= idle.fds + 2
        });
        assert!(
            running.is_some(),
            "no session started; server: {:?}, idle {idle:?}\n--- server log ---\n{}\n--- client stderr ---\n{}",
            self.usage(),
            self.log(),
            client.stderr()
        );
    }
}

fn client_args(port: u16, count: u32, extra: &[&str]) -> Vec<String> {
    let count = count.to_string();
    let args = [
        &["-c", &count, "-i", "10ms", "-connect-timeout", "2s"][..],
        extra,
    ]
    .concat();
    common::bin::client_args(&format!("127.0.0.1:{port}"), &args)
}

#[test]
fn client_killed_mid_session_frees_the_session() {
    let srv = Server::start();
    let idle = srv.usage();
    let started = Instant::now();
    let mut client = Proc::spawn(&client_args(srv.port, 1000, &["-q"]), "killed-client");
    srv.wait_for_session(idle, &client);
    let busy = srv.usage();
    thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));

    client.kill_now();
    let killed = Instant::now();
    // The kernel closes the dead client's control connection: the server sees the close, ends
    // the connection and stops its reflector (REFWAIT would end it anyway).
    let limit = REFWAIT + Duration::from_secs(2);
    let freed = within(limit, || srv.usage() == idle);
    eprintln!(
        "faults: client SIGKILLed after {:.1?}; server idle {idle:?}, busy {busy:?}, \
         back to idle {freed:.1?} after the kill",
        killed - started
    );
    assert!(
        freed.is_some(),
        "server still at {:?} (idle {idle:?}) {limit:?} after the client died\n--- server log ---\n{}",
        srv.usage(),
        srv.log()
    );
    assert!(
        srv.log().contains("control connection closed"),
        "{}",
        srv.log()
    );
}

#[test]
fn client_frozen_mid_session_is_dropped_after_refwait_and_servwait() {
    // SIGSTOP: the client's control connection stays open but no test packet comes. The
    // reflector must stop after REFWAIT, and the control connection must be closed after
    // SERVWAIT without traffic (RFC 5357 §3.1, §4.2).
    let srv = Server::start();
    let idle = srv.usage();
    let client = Proc::spawn(&client_args(srv.port, 1000, &["-q"]), "frozen-client");
    srv.wait_for_session(idle, &client);
    thread::sleep(Duration::from_millis(500));
    let busy = srv.usage();
    client.signal(Signal::SIGSTOP);
    let frozen = Instant::now();

    let margin = Duration::from_secs(2);
    let reflector_gone = within(REFWAIT + margin, || srv.usage().threads <= idle.threads + 1);
    let control_gone = within(SERVWAIT + margin, || srv.usage() == idle);
    let control_gone = control_gone.map(|_| frozen.elapsed());
    eprintln!(
        "faults: client SIGSTOPped; server idle {idle:?}, busy {busy:?}; reflector gone \
         {reflector_gone:.1?}, connection gone {control_gone:.1?} after the freeze \
         (REFWAIT {REFWAIT:?}, SERVWAIT {SERVWAIT:?})"
    );
    assert!(
        reflector_gone.is_some(),
        "reflector still running {:?} after the client froze: {:?}\n{}",
        REFWAIT + margin,
        srv.usage(),
        srv.log()
    );
    assert!(
        srv.log().contains("(REFWAIT)"),
        "the reflector stops for REFWAIT:\n{}",
        srv.log()
    );
    assert!(
        control_gone.is_some(),
        "control connection still open {:?} after the client froze: {:?}\n{}",
        SERVWAIT + margin,
        srv.usage(),
        srv.log()
    );
    // Drop SIGKILLs the stopped client.
}

#[test]
fn server_killed_mid_session_ends_the_client_with_a_network_error_and_keeps_the_partial() {
    let mut srv = Server::start();
    let idle = srv.usage();
    let out = Scratch::new("killed-server.json");
    let path = out.0.to_str().unwrap().to_string();
    let count = 500;
    let started = Instant::now();
    let mut client = Proc::spawn(
        &client_args(
            srv.port,
            count,
            &["-format", "json", "-output", &path, "-q"],
        ),
        "orphaned-client",
    );
    srv.wait_for_session(idle, &client);
    thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));

    srv.proc.kill_now();
    let killed = Instant::now();
    // Left alone the client would run 5 s of packets plus 2 s of loss timeout: it must see
    // the closed control connection and stop well before.
    let status = client.wait_for(Duration::from_secs(3));
    let took = killed.elapsed();
    let stderr = client.stderr();
    eprintln!(
        "faults: server SIGKILLed {:.1?} into the session; client exited {took:.1?} later with \
         {status:?}; stderr: {}",
        killed - started,
        stderr.trim()
    );
    let Some(status) = status else {
        panic!("client still running 3 s after the server died; stderr:\n{stderr}");
    };
    assert_eq!(
        status.code(),
        Some(NETWORK),
        "exit code NETWORK; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("connection closed by 127.0.0.1:"),
        "stderr names the closed connection:\n{stderr}"
    );

    let text = out.text();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "one JSON record in the output file:\n{text}"
    );
    let r: serde_json::Value = serde_json::from_str(lines[0]).expect("the record is JSON");
    assert_eq!(r["ok"], false, "{r:#}");
    assert_eq!(r["exit_code"], NETWORK, "{r:#}");
    assert_eq!(r["error"]["kind"], "closed", "{r:#}");
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("connection closed")),
        "{r:#}"
    );
    let sent = r["summary"]["sent"].as_u64().expect("a summary with sent");
    let received = r["summary"]["received"].as_u64().expect("received");
    eprintln!("faults: partial record: sent {sent}, received {received}");
    assert!(
        sent > 0 && sent < u64::from(count),
        "the partial measurement is kept, and stops early: sent {sent} of {count}\n{r:#}"
    );
    assert!(received > 0, "replies before the kill are kept\n{r:#}");
}

#[test]
fn server_sigterm_with_a_session_running_exits_cleanly_and_the_client_errors() {
    let mut srv = Server::start();
    let idle = srv.usage();
    let mut client = Proc::spawn(&client_args(srv.port, 1000, &["-q"]), "sigterm-client");
    srv.wait_for_session(idle, &client);
    thread::sleep(Duration::from_millis(500));

    srv.proc.signal(Signal::SIGTERM);
    let termed = Instant::now();
    let server_status = srv.proc.wait_for(Duration::from_secs(5));
    let server_took = termed.elapsed();
    let client_status = client.wait_for(Duration::from_secs(5));
    let client_took = termed.elapsed();
    eprintln!(
        "faults: SIGTERM: server exited {server_took:.1?} later with {server_status:?}; client \
         {client_took:.1?} later with {client_status:?}; client stderr: {}",
        client.stderr().trim()
    );
    let Some(server_status) = server_status else {
        panic!(
            "server still running 5 s after SIGTERM\n--- server log ---\n{}",
            srv.log()
        );
    };
    assert_eq!(
        server_status.code(),
        Some(OK),
        "server exit code\n{}",
        srv.log()
    );
    assert!(
        srv.log().contains("shutting down"),
        "server log:\n{}",
        srv.log()
    );
    let Some(client_status) = client_status else {
        panic!(
            "client still running 5 s after the server's SIGTERM; stderr:\n{}",
            client.stderr()
        );
    };
    assert_eq!(
        client_status.code(),
        Some(NETWORK),
        "the client reports the closed connection; stderr:\n{}",
        client.stderr()
    );
    assert!(
        client.stderr().contains("connection closed"),
        "{}",
        client.stderr()
    );
}
