//! The test-session knobs as they appear on the wire (issue "Configurable test sessions"),
//! read back with Wireshark's dissector from one capture on loopback: DSCP / Traffic Class for
//! several code points on IPv4 and IPv6 both ways, packet sizes both ways, TTL and DF, local
//! ports within -test-ports, zero addresses in Request-TW-Session, and the source address.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::bin::{run_client, Server};
use common::capture::{self, Capture};
use serde_json::Value;

/// One client run, and the test ports it used (from its JSON record).
struct Run {
    name: &'static str,
    local: SocketAddr,
    reflector: SocketAddr,
}

fn measure(name: &'static str, server: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "-c", "4", "-i", "10ms", "-timeout", "300ms", "-format", "json",
    ];
    args.extend_from_slice(extra);
    let r = run_client(server, &args, Duration::from_secs(30));
    assert!(r.success(), "{name}: {}", r.describe());
    let j: Value = serde_json::from_str(r.stdout.trim()).expect("a JSON record");
    assert_eq!(j["summary"]["received"], 4, "{name}: {j}");
    let addr = |k: &str| -> SocketAddr {
        j["session"][k]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name}: session.{k} in {j}"))
    };
    Run {
        name,
        local: addr("local"),
        reflector: addr("reflector"),
    }
}

/// The test packets of `run`, as (forward?, dscp, udp payload length, ttl or hop limit, df,
/// source address) rows.
type Row = (bool, u8, u32, u32, bool, IpAddr);

fn packets(cap: &Capture, run: &Run) -> Vec<Row> {
    let filter = format!(
        "udp.port == {} && udp.port == {}",
        run.local.port(),
        run.reflector.port()
    );
    let rows = cap.fields(
        &[],
        &filter,
        &[
            "udp.srcport",
            "ip.dsfield.dscp",
            "ipv6.tclass",
            "udp.length",
            "ip.ttl",
            "ipv6.hlim",
            "ip.flags.df",
            "ip.src",
            "ipv6.src",
        ],
    );
    rows.iter()
        .map(|r| {
            let f = |i: usize| r.get(i).map_or("", String::as_str);
            let src_field = if f(7).is_empty() { f(8) } else { f(7) };
            // From our test socket (address and port: the reflector may use the same port
            // number on another address).
            let forward = f(0) == run.local.port().to_string()
                && src_field.parse::<IpAddr>().ok() == Some(run.local.ip());
            let dscp = if f(1).is_empty() {
                // ipv6.tclass prints as hex (0x000000b8).
                u8::from_str_radix(f(2).trim_start_matches("0x"), 16).unwrap_or(0) >> 2
            } else {
                f(1).parse().unwrap_or(255)
            };
            let len = f(3).parse::<u32>().unwrap_or(0).saturating_sub(8);
            let ttl = if f(4).is_empty() { f(5) } else { f(4) };
            let df = matches!(f(6), "1" | "True" | "true");
            let src = if f(7).is_empty() { f(8) } else { f(7) };
            (
                forward,
                dscp,
                len,
                ttl.parse().unwrap_or(0),
                df,
                src.parse()
                    .unwrap_or_else(|_| panic!("{}: source {src:?}", run.name)),
            )
        })
        .collect()
}

/// Each direction has 4 packets and every packet satisfies `check`.
fn each_way(cap: &Capture, run: &Run, check: impl Fn(&Row) -> Result<(), String>) {
    let rows = packets(cap, run);
    let fwd = rows.iter().filter(|r| r.0).count();
    assert_eq!((fwd, rows.len() - fwd), (4, 4), "{}: {rows:?}", run.name);
    for r in &rows {
        if let Err(e) = check(r) {
            panic!("{}: {e}: {r:?}", run.name);
        }
    }
}

fn want<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} is {got:?}, want {want:?}"))
    }
}

#[test]
fn knobs_show_on_the_wire() {
    if capture::skip() {
        return;
    }
    let server = Server::start_on("::".parse().unwrap(), &[]);
    let port = server.port();
    let v4 = format!("127.0.0.1:{port}");
    let v6 = format!("[::1]:{port}");
    let mut cap = Capture::start("knobs", &format!("tcp port {port} or udp"));
    let ef = measure("EF over IPv4", &v4, &["-dscp", "EF"]);
    let af41 = measure("AF41 over IPv6", &v6, &["-dscp", "AF41"]);
    let cs1 = measure(
        "CS1, padding 100",
        &v4,
        &["-dscp", "CS1", "-padding", "100"],
    );
    let size = measure("size 200 over IPv6", &v6, &["-size", "200", "-dscp", "46"]);
    let ttl = measure("TTL 64 and DF", &v4, &["-ttl", "64", "-df"]);
    let nat = measure(
        "ports, zero addresses, source",
        &v4,
        &[
            "-test-ports",
            "40100-40110",
            "-zero-addresses",
            "-source",
            "127.0.0.2",
        ],
    );
    cap.stop();

    each_way(&cap, &ef, |r| {
        want("DSCP", r.1, 46)?;
        want("payload", r.2, 41)
    });
    each_way(&cap, &af41, |r| {
        want("DSCP", r.1, 34)?;
        want("payload", r.2, 41)
    });
    // Padding 100: 114 octets out; the reflector shortens its padding by 27, so 114 back.
    each_way(&cap, &cs1, |r| {
        want("DSCP", r.1, 8)?;
        want("payload", r.2, 114)
    });
    each_way(&cap, &size, |r| {
        want("DSCP", r.1, 46)?;
        want("payload", r.2, 200)
    });
    // Our TTL goes forward; the reflector answers with 255. (Linux sets DF on small UDP
    // datagrams anyway, path MTU discovery being on by default, so DF on the wire tells little;
    // net.rs's unit test checks that -df turns local fragmentation off.)
    each_way(&cap, &ttl, |r| {
        if r.0 {
            want("forward TTL", r.3, 64)?;
            want("forward DF", r.4, true)
        } else {
            want("backward TTL", r.3, 255)
        }
    });
    assert!(
        (40100..=40110).contains(&nat.local.port()),
        "local port {} outside -test-ports",
        nat.local
    );
    let source: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(nat.local.ip(), source);
    each_way(&cap, &nat, |r| {
        if r.0 {
            want("forward source", r.5, source)
        } else {
            Ok(())
        }
    });
    // Request-TW-Session of that run: zero Sender and Receiver Address, from 127.0.0.2.
    let decode = format!("tcp.port=={port},twamp.control");
    let requests = cap.fields(
        &[decode],
        "twamp.control.command == 5",
        &[
            "ip.src",
            "twamp.control.sender_ipv4",
            "twamp.control.receiver_ipv4",
            "twamp.control.sender_port",
        ],
    );
    let nat_req: Vec<&Vec<String>> = requests
        .iter()
        .filter(|r| r.get(3).map(String::as_str) == Some(&nat.local.port().to_string()))
        .collect();
    assert_eq!(nat_req.len(), 1, "{requests:?}");
    assert_eq!(
        nat_req[0][0], "127.0.0.2",
        "control from the source address"
    );
    assert_eq!(nat_req[0][1], "0.0.0.0", "zero Sender Address");
    assert_eq!(nat_req[0][2], "0.0.0.0", "zero Receiver Address");
    // And the other runs carry real addresses.
    let ef_req = requests
        .iter()
        .find(|r| r.get(3).map(String::as_str) == Some(&ef.local.port().to_string()))
        .expect("the EF run's request");
    assert_eq!(ef_req[1], "127.0.0.1");
}
