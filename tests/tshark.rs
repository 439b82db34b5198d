//! Our bytes on the wire, as Wireshark's TWAMP dissector reads them: a capture of our client
//! against our server on loopback must decode as TWAMP-Control and TWAMP-Test with no
//! malformed frame. `.ci/run` installs tshark; without it this test fails and says so (set
//! TWAMP_SKIP_TSHARK=1 to skip it knowingly on a machine without it).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::{run_client, Guard as Kill, Server};

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn wireshark_decodes_our_control_and_test_packets() {
    if std::env::var_os("TWAMP_SKIP_TSHARK").is_some() {
        eprintln!("skipped: TWAMP_SKIP_TSHARK is set");
        return;
    }
    assert!(
        tshark_available(),
        "tshark is not installed: run `bash .ci/run`, which installs it"
    );
    let dir = std::env::temp_dir().join(format!("twamp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("run.pcapng");

    let server = Server::start(&[]);
    let port = server.port();
    let mut cap = Command::new("tshark")
        .args(["-i", "lo", "-f", &format!("tcp port {port} or udp"), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until tshark says it is capturing (its stderr), at most 20 s.
    {
        use std::io::Read;
        let mut err = cap.stderr.take().unwrap();
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
        assert!(
            String::from_utf8_lossy(&seen).contains("Capturing on"),
            "tshark did not start: {}",
            String::from_utf8_lossy(&seen)
        );
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        // "Capturing on" comes a little before the capture really starts.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let cap = Kill(cap);
    let out = run_client(
        &format!("127.0.0.1:{port}"),
        &["-c", "5", "-i", "20ms", "-timeout", "300ms", "-q"],
        Duration::from_secs(30),
    );
    assert!(out.success(), "client: {}", out.stderr);
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT lets tshark finish the file.
    let _ = Command::new("kill")
        .args(["-INT", &cap.0.id().to_string()])
        .status();
    let start = Instant::now();
    let mut cap = cap;
    while start.elapsed() < Duration::from_secs(10) && cap.0.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(50));
    }

    let decode = |extra: &[&str]| {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args(["-d", &format!("tcp.port=={port},twamp.control")])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tshark -r: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let summary = decode(&[]);
    assert!(
        !summary.contains("Malformed"),
        "malformed frames:\n{summary}"
    );
    for want in [
        "Server Greeting",
        "Setup Response",
        "Server Start, (OK)",
        "Request Session",
        "Accept Session, (OK)",
        "Start Sessions",
        "Start Sessions ACK, (OK)",
        "Stop Session",
    ] {
        assert!(summary.contains(want), "no '{want}' in:\n{summary}");
    }
    // Ten test packets: five each way, decoded field by field.
    let fields = decode(&[
        "-Y",
        "twamp.test",
        "-T",
        "fields",
        "-e",
        "twamp.test.seq_number",
        "-e",
        "twamp.test.sender_seq_number",
        "-e",
        "twamp.test.sender_ttl",
        "-e",
        "udp.srcport",
    ]);
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 10, "{fields}");
    // The dissector cannot tell a padded sender packet from a reflected one, so pick the
    // reflected ones by port: the first test packet is the Session-Sender's.
    let sender_port = rows[0][3];
    // Reflected packets carry a Sender TTL of 255 (we send with 255, loopback has no hops).
    let reflected: Vec<&Vec<&str>> = rows.iter().filter(|r| r[3] != sender_port).collect();
    assert_eq!(reflected.len(), 5, "{fields}");
    for (i, r) in reflected.iter().enumerate() {
        assert_eq!(r[0], i.to_string());
        assert_eq!(r[1], i.to_string());
        assert_eq!(r[2], "255");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
