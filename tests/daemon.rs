//! `-daemon true`: the command returns at once, the pidfile names a live server that serves,
//! the log file gets its lines, and SIGTERM stops it.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_twamp");

/// Kills the daemon whatever happens to the test.
struct Pid(i32);

impl Drop for Pid {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn daemon_detaches_writes_pidfile_and_logs() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("twamp-daemon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("twamp.pid");
    let logfile = dir.join("twamp.log");
    let start = Instant::now();
    let st = Command::new(BIN)
        .args([
            "-mode",
            "server",
            "-daemon",
            "true",
            "-listen",
            "127.0.0.1",
            "-port",
            &port.to_string(),
        ])
        .arg("-pidfile")
        .arg(&pidfile)
        .arg("-logfile")
        .arg(&logfile)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "the parent exits 0 once the daemon is started"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Pid(pid);
    assert!(alive(pid));

    let out = Command::new(BIN)
        .args([
            "-mode",
            "client",
            "-server",
            &format!("127.0.0.1:{port}"),
            "-c",
            "3",
            "-i",
            "10ms",
            "-timeout",
            "200ms",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while alive(pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pid), "SIGTERM stops the daemon");
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(log.contains("listening on 127.0.0.1"), "{log}");
    assert!(log.contains("control connection accepted"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn address_in_use_is_reported_on_the_terminal_before_detaching() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let out = Command::new(BIN)
        .args([
            "-mode",
            "server",
            "-daemon",
            "-listen",
            "127.0.0.1",
            "-port",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(8), "LOCAL exit code");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_unwritable_pidfile_fails_the_parent() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args([
            "-mode",
            "server",
            "-daemon",
            "true",
            "-listen",
            "127.0.0.1",
            "-port",
            &port.to_string(),
        ])
        .args(["-pidfile", "/nonexistent-dir/twamp.pid"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
