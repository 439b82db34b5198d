//! TWAMP-Light and STAMP end to end on loopback: our sender (`-mode client -light`) against our
//! reflector (`-mode server -light`), stateful and stateless, IPv4 and IPv6, many senders at
//! once, DSCP and sizes on the wire, never a reply larger than its request, and the loss split
//! only when the reflector counts its own sequence numbers.

mod common;
#[path = "common/relay.rs"]
mod relay;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::bin::{free_port, run_client, Server};
use common::capture::{self, Capture};
use relay::{Impairment, Relay};
use serde_json::Value;

/// A server on the dual-stack listener with its light reflector on a free UDP port.
fn light_server(extra: &[&str]) -> (Server, u16) {
    let port = free_udp_port();
    let mut args = vec!["-light-port".to_string(), port.to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start_on("::".parse().unwrap(), &args);
    assert!(
        server.log().contains("TWAMP-Light/STAMP reflector on"),
        "{}",
        server.log()
    );
    (server, port)
}

fn free_udp_port() -> u16 {
    // A TCP port free on loopback is as good a guess as any; the server fails loudly if not.
    free_port(IpAddr::from([127, 0, 0, 1]))
}

fn json(target: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "-light", "-c", "20", "-i", "5ms", "-timeout", "300ms", "-format", "json",
    ];
    args.extend_from_slice(extra);
    let r = run_client(target, &args, Duration::from_secs(30));
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()))
}

#[test]
fn stamp_and_twamp_light_over_ipv4_and_ipv6() {
    let (_server, port) = light_server(&[]);
    for host in ["127.0.0.1", "[::1]"] {
        for (format, mode, octets) in [("stamp", "stamp", 44), ("twamp", "twamp-light", 41)] {
            let j = json(&format!("{host}:{port}"), &["-light-format", format]);
            assert_eq!(j["ok"], true, "{host} {format}: {j}");
            assert_eq!(j["session"]["mode"], mode);
            assert_eq!(j["summary"]["received"], 20, "{host} {format}: {j}");
            assert_eq!(j["summary"]["lost"], 0);
            assert_eq!(
                j["summary"]["hops_forward"]["min"], 0,
                "Sender TTL reflected"
            );
            assert!(j["summary"]["rtt"]["min_ms"].as_f64().unwrap() > 0.0);
            let _ = octets;
        }
    }
    // The SSID goes out and comes back (RFC 8972 §3).
    let j = json(&format!("127.0.0.1:{port}"), &["-ssid", "4242"]);
    assert_eq!(j["session"]["ssid"], 4242);
    assert_eq!(j["summary"]["received"], 20);
}

#[test]
fn authenticated_stamp_needs_the_key() {
    let dir = std::env::temp_dir().join(format!("twamp-light-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = dir.join("keys.pfs");
    // "stamp-secret" in hex, twampd's pfs format.
    std::fs::write(&keys, "probe 7374616d702d736563726574\nother 6f74686572\n").unwrap();
    let k = keys.to_str().unwrap();
    let (_server, port) = light_server(&["-keyfile", k, "-light-key", "probe"]);
    let target = format!("127.0.0.1:{port}");
    let good = json(&target, &["-keyfile", k, "-light-key", "probe"]);
    assert_eq!(good["session"]["mode"], "stamp-authenticated");
    assert_eq!(good["summary"]["received"], 20, "{good}");
    // The wrong key: every packet fails the reflector's HMAC check and is dropped.
    let bad = json(&target, &["-keyfile", k, "-light-key", "other"]);
    assert_eq!(bad["summary"]["received"], 0, "{bad}");
    assert_eq!(bad["exit_code"], 1);
    // Unauthenticated packets get nothing from an authenticated reflector.
    let open = json(&target, &[]);
    assert_eq!(open["summary"]["received"], 0, "{open}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fifty_senders_at_once() {
    let (server, port) = light_server(&[]);
    let j = json(&format!("127.0.0.1:{port}"), &["-sessions", "50"]);
    let sessions = j["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 50);
    let ssids: BTreeSet<u64> = sessions
        .iter()
        .map(|s| s["session"]["ssid"].as_u64().unwrap())
        .collect();
    assert_eq!(ssids.len(), 50, "one SSID per sender");
    for s in sessions {
        assert_eq!(s["summary"]["received"], 20, "{s}");
    }
    assert_eq!(j["total"]["received"], 1000);
    assert!(common::proc::alive(server.pid()));
}

/// The loss split through a relay dropping 2 forward and 1 backward: a stateful reflector's
/// own numbering shows it; a stateless one's does not, and we say so instead of guessing.
#[test]
fn loss_direction_only_from_a_stateful_reflector() {
    for (stateless, extra) in [(false, &[][..]), (true, &["-light-stateless"][..])] {
        let (_server, port) = light_server(extra);
        let fwd = Impairment {
            drop: [3, 7].into_iter().collect(),
            ..Impairment::default()
        };
        let bck = Impairment {
            drop: [12].into_iter().collect(),
            ..Impairment::default()
        };
        let relay = Relay::start(
            SocketAddr::new("127.0.0.1".parse().unwrap(), port),
            fwd,
            bck,
            Duration::from_secs(20),
        );
        let j = json(&relay.addr.to_string(), &[]);
        let s = &j["summary"];
        assert_eq!(s["lost"], 3, "stateless {stateless}: {j}");
        if stateless {
            assert!(s["lost_forward"].is_null(), "{j}");
            assert!(s["lost_backward"].is_null(), "{j}");
            assert_eq!(j["session"]["reflector_stateful"], false);
        } else {
            assert_eq!(s["lost_forward"], 2, "{j}");
            assert_eq!(s["lost_backward"], 1, "{j}");
            assert_eq!(j["session"]["reflector_stateful"], true);
        }
    }
}

#[test]
fn dscp_and_sizes_on_the_wire_and_no_reply_larger_than_its_request() {
    if capture::skip() {
        return;
    }
    let (_server, port) = light_server(&[]);
    let mut cap = Capture::start("light", &format!("udp port {port}"));
    for (size, dscp) in [("300", "AF21"), ("44", "EF"), ("1000", "CS1")] {
        let j = json(
            &format!("127.0.0.1:{port}"),
            &["-size", size, "-dscp", dscp],
        );
        assert_eq!(j["summary"]["received"], 20, "{j}");
    }
    let tw = json(
        &format!("[::1]:{port}"),
        &["-light-format", "twamp", "-dscp", "EF"],
    );
    assert_eq!(tw["summary"]["received"], 20, "{tw}");
    cap.stop();
    let rows = cap.fields(
        &[],
        &format!("udp.port == {port}"),
        &[
            "udp.srcport",
            "udp.dstport",
            "udp.length",
            "ip.dsfield.dscp",
            "ipv6.tclass",
        ],
    );
    // Each request's reply: same client port pair, the reply never longer.
    let mut sizes: std::collections::BTreeMap<(String, bool), Vec<(u32, u8)>> = Default::default();
    for r in &rows {
        let forward = r[1] == port.to_string();
        let client_port = if forward { r[0].clone() } else { r[1].clone() };
        let len = r[2].parse::<u32>().unwrap() - 8;
        let dscp = if r[3].is_empty() {
            u8::from_str_radix(r[4].trim_start_matches("0x"), 16).unwrap() >> 2
        } else {
            r[3].parse().unwrap()
        };
        sizes
            .entry((client_port, forward))
            .or_default()
            .push((len, dscp));
    }
    let mut seen = BTreeSet::new();
    for ((client, forward), v) in &sizes {
        if !forward {
            continue;
        }
        let back = &sizes[&(client.clone(), false)];
        assert_eq!(v.len(), 20, "{client}: {v:?}");
        assert_eq!(back.len(), 20, "{client}: replies {back:?}");
        let (len, dscp) = v[0];
        for (l, d) in back {
            assert!(*l <= len, "a {l}-octet reply to a {len}-octet request");
            assert_eq!(*l, len, "STAMP replies are as long as the request");
            assert_eq!(*d, dscp, "the reply carries the DSCP the request came with");
        }
        seen.insert((len, dscp));
    }
    let want: BTreeSet<(u32, u8)> = [(300, 18), (44, 46), (1000, 8), (41, 46)]
        .into_iter()
        .collect();
    assert_eq!(seen, want);
}
