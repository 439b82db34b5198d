//! Our bytes on the wire, as Wireshark's TWAMP dissector reads them: a capture of our client
//! against our server on loopback must decode as TWAMP-Control and TWAMP-Test with no
//! malformed frame. `.ci/run` installs tshark; without it this test fails and says so (set
//! TWAMP_SKIP_TSHARK=1 to skip it knowingly on a machine without it).

mod common;

use std::time::Duration;

use common::bin::{run_client, Server};
use common::capture::{self, Capture};

#[test]
fn wireshark_decodes_our_control_and_test_packets() {
    if capture::skip() {
        return;
    }
    let server = Server::start(&[]);
    let port = server.port();
    let mut cap = Capture::start("tshark", &format!("tcp port {port} or udp"));
    let out = run_client(
        &format!("127.0.0.1:{port}"),
        &["-c", "5", "-i", "20ms", "-timeout", "300ms", "-q"],
        Duration::from_secs(30),
    );
    assert!(out.success(), "client: {}", out.stderr);
    cap.stop();
    let decode_as = format!("tcp.port=={port},twamp.control");
    let decode = |extra: &[&str]| {
        let mut args = vec!["-d", decode_as.as_str()];
        args.extend_from_slice(extra);
        cap.read(&args)
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
}
