//! A tshark capture on the loopback interface, started and stopped by a test, and its frames
//! read back field by field. `.ci/run` installs tshark; without it a test using this fails
//! and says so (TWAMP_SKIP_TSHARK=1 skips such tests knowingly).
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::bin::Guard;

/// Whether tshark tests should be skipped (the variable set) — otherwise tshark must exist.
pub fn skip() -> bool {
    if std::env::var_os("TWAMP_SKIP_TSHARK").is_some() {
        eprintln!("skipped: TWAMP_SKIP_TSHARK is set");
        return true;
    }
    let ok = Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "tshark is not installed: run `bash .ci/run`, which installs it"
    );
    false
}

/// A running capture into a pcapng file; stopped (and the file finished) by [`Capture::stop`].
pub struct Capture {
    child: Option<Guard>,
    pub pcap: PathBuf,
    dir: PathBuf,
}

impl Capture {
    /// Starts capturing on `lo` with the BPF `filter`; returns once tshark captures.
    pub fn start(name: &str, filter: &str) -> Capture {
        let dir = std::env::temp_dir().join(format!("twamp-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let pcap = dir.join("run.pcapng");
        let mut child = Command::new("tshark")
            .args(["-i", "lo", "-f", filter, "-w"])
            .arg(&pcap)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tshark");
        // Wait until tshark says it is capturing (its stderr), at most 20 s.
        let mut err = child.stderr.take().expect("stderr is piped");
        let start = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while start.elapsed() < Duration::from_secs(20)
            && !String::from_utf8_lossy(&seen).contains("Capturing on")
        {
            match err.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
        let child = Guard(child);
        assert!(
            String::from_utf8_lossy(&seen).contains("Capturing on"),
            "tshark did not start: {}",
            String::from_utf8_lossy(&seen)
        );
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        // "Capturing on" comes a little before the capture really starts, later still on a
        // loaded machine: send marker datagrams (to the discard port; the filters take UDP)
        // until the file grows, at most 20 s.
        let marker = std::net::UdpSocket::bind("127.0.0.1:0").expect("marker socket");
        let size = || std::fs::metadata(&pcap).map_or(0, |m| m.len());
        let before = size();
        let start = Instant::now();
        while size() <= before && start.elapsed() < Duration::from_secs(20) {
            let _ = marker.send_to(b"twamp capture marker", "127.0.0.1:9");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(size() > before, "tshark wrote nothing in 20 s");
        // Once one frame is on disk, the ring is live.
        std::thread::sleep(Duration::from_millis(200));
        Capture {
            child: Some(child),
            pcap,
            dir,
        }
    }

    /// Stops tshark with SIGINT, so it finishes the file; waits at most 10 s.
    pub fn stop(&mut self) {
        std::thread::sleep(Duration::from_millis(1000));
        if let Some(mut g) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &g.0.id().to_string()])
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10)
                && g.0.try_wait().ok().flatten().is_none()
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// `tshark -r` on the capture with `args`; its stdout.
    pub fn read(&self, args: &[&str]) -> String {
        read(&self.pcap, args)
    }

    /// One row per frame matching `filter`, with the `fields` in order (empty when absent).
    pub fn fields(&self, decode_as: &[String], filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        let mut args: Vec<String> = Vec::new();
        for d in decode_as {
            args.push("-d".into());
            args.push(d.clone());
        }
        args.extend(["-Y".into(), filter.into(), "-T".into(), "fields".into()]);
        for f in fields {
            args.push("-e".into());
            args.push((*f).into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.read(&args)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub fn read(pcap: &Path, args: &[&str]) -> String {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(args)
        .output()
        .expect("run tshark -r");
    assert!(
        o.status.success(),
        "tshark -r: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
