//! `-daemon true`: the command returns at once, the pidfile names a live server that serves,
//! the log file gets its lines, and SIGTERM stops it.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::bin::{closed_port, run_bounded, run_client, Run};
use common::proc::alive;

/// No run here takes more than a few seconds; this only stops a hung one.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Kills the daemon whatever happens to the test.
struct Pid(u32);

impl Drop for Pid {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

/// `twamp -mode server -listen 127.0.0.1 -port PORT` with `extra`, run to the parent's exit.
fn server(port: u16, extra: &[&str]) -> Run {
    let port = port.to_string();
    let args = [
        &["-mode", "server", "-listen", "127.0.0.1", "-port", &port][..],
        extra,
    ]
    .concat();
    run_bounded(&args, RUN_LIMIT)
}

#[test]
fn daemon_detaches_writes_pidfile_and_logs() {
    let port = closed_port();
    let dir = std::env::temp_dir().join(format!("twamp-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("twamp.pid");
    let logfile = dir.join("twamp.log");
    let start = Instant::now();
    let st = server(
        port,
        &[
            "-daemon",
            "true",
            "-pidfile",
            pidfile.to_str().unwrap(),
            "-logfile",
            logfile.to_str().unwrap(),
        ],
    );
    assert!(
        st.success(),
        "the parent exits 0 once the daemon is started"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Pid(pid);
    assert!(alive(pid));

    let out = run_client(
        &format!("127.0.0.1:{port}"),
        &["-c", "3", "-i", "10ms", "-timeout", "200ms"],
        RUN_LIMIT,
    );
    assert!(out.success(), "{}", out.stderr);

    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "SIGTERM stops the daemon");
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(log.contains("listening on 127.0.0.1"), "{log}");
    assert!(
        log.contains("control connection closed by the client"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn address_in_use_is_reported_on_the_terminal_before_detaching() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = server(port, &["-daemon"]);
    assert_eq!(out.code, Some(8), "LOCAL exit code");
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
}

#[test]
fn an_unwritable_pidfile_fails_the_parent() {
    let port = closed_port();
    let out = server(
        port,
        &[
            "-daemon",
            "true",
            "-logfile",
            "/dev/null",
            "-pidfile",
            "/nonexistent-dir/twamp.pid",
        ],
    );
    assert_eq!(out.code, Some(8), "{}", out.stderr);
    // The daemon's reason, on the terminal: the path and the OS error text.
    assert!(
        out.stderr.contains("/nonexistent-dir/twamp.pid")
            && out
                .stderr
                .contains("No such file or directory (os error 2)"),
        "{}",
        out.stderr
    );
}
