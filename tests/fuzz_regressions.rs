//! Replays the fuzzers' inputs through the fuzzed code, on stable `cargo test`.
//!
//! `fuzz/src/lib.rs` holds the checks each cargo-fuzz target runs (never panic, round trips,
//! length bounds); it is included here unchanged, so a seed or a saved crash is replayed
//! through exactly what was fuzzed. Every file under `fuzz/seeds/<target>/` (made from the
//! captures in `../shared/vectors`) and `fuzz/regressions/<target>/` (minimised crashing inputs,
//! if any) is replayed; a few tests also check that the seeds still mean what they were made
//! for (captured packets still reflect, captured requests still parse), so the corpus stays
//! useful as the code changes. See fuzz/README.md.

#[path = "../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod fuzz_checks;

use std::path::{Path, PathBuf};

use twamp::control::SecurityMode;
use twamp::wire::{ReflectorPacket, RequestTwSession, SenderPacket, StartNSessions, TestLayout};

/// `(file name, bytes)` of every file in `fuzz/<kind>/<target>/`, sorted by name.
fn inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir: PathBuf = [env!("CARGO_MANIFEST_DIR"), "fuzz", kind, target]
        .iter()
        .collect();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                file_name(&p),
                std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
        })
        .collect();
    out.sort();
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `check` on every seed and saved regression of `target`; there must be seeds.
fn replay(target: &str, check: fn(&[u8])) {
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "no seeds in fuzz/seeds/{target}");
    for (name, bytes) in seeds.iter().chain(inputs("regressions", target).iter()) {
        let outcome = std::panic::catch_unwind(|| check(bytes));
        assert!(
            outcome.is_ok(),
            "{target}: input {name} ({} octets) failed",
            bytes.len()
        );
    }
}

#[test]
fn control_messages_inputs() {
    replay("control_messages", fuzz_checks::control_messages);
}

#[test]
fn control_n_messages_inputs() {
    replay("control_n_messages", fuzz_checks::control_n_messages);
}

/// The hand-made RFC 5938 seeds are whole messages of the kind their selector names.
#[test]
fn rfc5938_seeds_are_whole_messages() {
    let seeds = inputs("seeds", "control_n_messages");
    assert!(seeds.len() >= 4, "expected a seed per message");
    for (name, bytes) in seeds {
        let body = &bytes[1..];
        let first: &[u8; 16] = body[..16].try_into().expect("a first block");
        let len = StartNSessions::message_len(first).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(len, body.len(), "{name}");
        let command = [7u8, 8, 9, 10][usize::from(bytes[0] % 4)];
        assert_eq!(body[0], command, "{name}: selector and Command agree");
    }
}

#[test]
fn test_packets_inputs() {
    replay("test_packets", fuzz_checks::test_packets);
}

#[test]
fn reflector_inputs() {
    replay("reflector", |data| {
        fuzz_checks::reflector(data);
    });
}

#[test]
fn cli_values_inputs() {
    replay("cli_values", fuzz_checks::cli_values);
}

#[test]
fn stamp_inputs() {
    replay("stamp", |data| {
        fuzz_checks::stamp(data);
    });
}

/// The `stamp` seeds (TWAMP-Light, STAMP with TLVs, authenticated STAMP, IPv6, stateless) are
/// reflected both times, except the ones made to be dropped, whose names say so.
#[test]
fn stamp_seeds_are_reflected() {
    let seeds = inputs("seeds", "stamp");
    assert!(
        seeds.len() >= 8,
        "expected the stamp seeds, found {}",
        seeds.len()
    );
    for (name, bytes) in seeds {
        let want = if name.starts_with("drop-") { 0 } else { 2 };
        assert_eq!(fuzz_checks::stamp(&bytes), want, "{name}");
    }
}

#[test]
fn crypto_inputs() {
    replay("crypto", |data| {
        fuzz_checks::crypto(data);
    });
}

/// The captured Request-TW-Session plaintexts are IPv4 requests the Server accepts.
#[test]
fn captured_requests_still_parse_and_validate() {
    let mut n = 0;
    for (name, bytes) in inputs("seeds", "control_messages") {
        let plain = name.starts_with("open-") || name.contains("-plain-");
        if !(plain && name.contains("request-tw-session")) {
            continue;
        }
        let buf: [u8; RequestTwSession::LEN] = bytes[1..]
            .try_into()
            .expect("seed is selector + 112 octets");
        let req = RequestTwSession::parse(&buf).unwrap_or_else(|e| panic!("{name}: {e}"));
        for mode in SecurityMode::STRICTEST_FIRST {
            assert!(
                twamp::control::server::validate_request(&req, mode, fuzz_checks::PEER).is_ok(),
                "{name} in {mode}"
            );
        }
        n += 1;
    }
    assert!(
        n >= 3,
        "expected the open, auth and encr requests, found {n}"
    );
}

/// Every captured test packet is at least the open reflector base, so it parses in the open
/// layout both ways, and the 112-octet ones in the authenticated layout too.
#[test]
fn captured_test_packets_still_parse() {
    for (name, bytes) in inputs("seeds", "test_packets") {
        let layout = if bytes.len() >= 112 {
            TestLayout::AUTHENTICATED
        } else {
            TestLayout::OPEN
        };
        assert!(
            SenderPacket::parse(&bytes, &layout.sender).is_ok(),
            "{name}"
        );
        assert!(
            ReflectorPacket::parse(&bytes, &layout.reflector).is_ok(),
            "{name}"
        );
    }
}

/// Every reflector seed (captured sender packets in open, authenticated and encrypted mode,
/// under the capture's keys) is reflected both times, so the target starts from inputs that
/// reach the whole reflection path, decryption and HMAC included.
#[test]
fn reflector_seeds_are_reflected() {
    let seeds = inputs("seeds", "reflector");
    for mode in ["open-", "auth-", "encr-"] {
        assert!(
            seeds.iter().any(|(n, _)| n.starts_with(mode)),
            "no {mode} reflector seed"
        );
    }
    for (name, bytes) in seeds {
        assert_eq!(fuzz_checks::reflector(&bytes), 2, "{name}");
    }
}

/// The crypto seeds are the captured control streams and test packets of stream 0 of the
/// authenticated and encrypted captures: every message verifies, every packet opens.
#[test]
fn crypto_seeds_are_genuine() {
    let seeds = inputs("seeds", "crypto");
    assert!(
        seeds.len() >= 8,
        "expected 8 crypto seeds, found {}",
        seeds.len()
    );
    for (name, bytes) in seeds {
        let want = if name.contains("-control-server") {
            3 // Request-TW-Session, Start-Sessions, Stop-Sessions
        } else if name.contains("-control-client") {
            2 // Accept-Session (covering Server-Start's block), Start-Ack
        } else {
            1 // a sender packet opens as one, a reflected packet as the other
        };
        assert_eq!(fuzz_checks::crypto(&bytes), want, "{name}");
    }
}
