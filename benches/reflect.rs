//! `cargo bench --bench reflect`: the Session-Reflector against baselines measured in the same
//! run. Ratios, not absolute times: these machines are shared and noisy.
//!
//! 1. Per-packet work, pure (no sockets): `Reflector::reflect` against copying the datagram and
//!    writing two timestamps by hand, the least any reflector does.
//! 2. Over loopback sockets, the `twamp` server binary (its reflector engine) against a minimal
//!    blocking UDP echo (`recv_from`/`send_to`, the same receive buffer), each in a process of
//!    its own: the highest rate each holds with at most 0.1 % loss, and CPU time per 100,000
//!    reflected packets (summed over the process's threads from /proc/<pid>/task/*/schedstat).
//!    Targets (issue 9): rate ratio >= 0.95, CPU ratio <= 1.10.
//! 3. The server's resident memory idle, with 100 and with 2,000 sessions, and after each set
//!    of sessions ends.
//!
//! `TWAMP_BENCH_SMOKE=1` (or `-- --smoke`) runs a short version of all three for CI; so does
//! `cargo test --all-targets`, which runs this binary without `--bench`.
//! Only 127.0.0.1 is used; every child process is killed and reaped by its guard.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

#[path = "reflect/sockets.rs"]
mod sockets;

use twamp::crypto::{SessionKeys, TestCipher, TestKeys, TestSecurity};
use twamp::reflector::{Received, Reflector};
use twamp::time::{Clock, ErrorEstimate, SystemClock, Timestamp};
use twamp::wire::{SenderPacket, TestLayout};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ROUNDS: u32 = 200_000;

/// Median of five timed runs of `f` over `rounds` iterations, in ns per iteration.
fn time(rounds: u32, mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..rounds {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(rounds)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn sender_packet(layout: &TestLayout, padding: usize) -> Vec<u8> {
    let mut b = vec![0u8; layout.sender.base + padding];
    SenderPacket {
        seq: 1,
        timestamp: Timestamp::new(1, 0),
        error_estimate: ErrorEstimate(1),
    }
    .emit(&mut b, &layout.sender)
    .expect("buffer holds the base");
    b
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--echo") {
        return sockets::echo();
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` (CI) runs this binary without
    // it, and gets the smoke run.
    let smoke = std::env::var_os("TWAMP_BENCH_SMOKE").is_some()
        || args.iter().any(|a| a == "--smoke")
        || !args.iter().any(|a| a == "--bench");
    if smoke {
        println!("smoke mode: short runs, figures are rough");
    }
    pure(if smoke { ROUNDS / 20 } else { ROUNDS });
    sockets::run(smoke);
}

fn pure(rounds: u32) {
    let clock = SystemClock::new();
    let mut out = vec![0u8; 2048];

    // Baseline: copy the datagram into the reply and stamp it, with the same clock reads.
    let open = sender_packet(&TestLayout::OPEN, 27);
    let baseline = time(rounds, || {
        out[..open.len()].copy_from_slice(black_box(&open));
        let t = clock.now();
        out[4..12].copy_from_slice(&t.to_bytes());
        out[16..24].copy_from_slice(&t.to_bytes());
        out[12..14].copy_from_slice(&clock.error_estimate().to_bytes());
        black_box(&out);
    });
    println!("baseline (copy + 2 clock reads): {baseline:.1} ns/packet");

    let keys = SessionKeys {
        aes: [7; 16],
        hmac: [9; 32],
    };
    let test_keys = TestKeys::derive(&keys, &[3; 16]);
    let cases: [(&str, TestLayout, Option<TestSecurity>); 3] = [
        ("open", TestLayout::OPEN, None),
        (
            "authenticated",
            TestLayout::AUTHENTICATED,
            Some(TestSecurity::Authenticated),
        ),
        (
            "encrypted",
            TestLayout::AUTHENTICATED,
            Some(TestSecurity::Encrypted),
        ),
    ];
    for (name, layout, sec) in cases {
        let cipher = |s: Option<TestSecurity>| s.map(|s| TestCipher::new(&test_keys, s));
        let mut plain = sender_packet(&layout, layout.size_difference());
        if let Some(c) = cipher(sec) {
            c.seal_sender(&mut plain).expect("whole packet");
        }
        let mut r = Reflector::new(layout, cipher(sec), PEER);
        let mut rx = plain.clone();
        // What is timed must be a successful reflection, not a fast rejection.
        r.reflect(
            Received {
                bytes: &mut rx,
                from: PEER,
                ttl: Some(64),
                tos: None,
                at: Timestamp(1),
            },
            &clock,
            &mut out,
        )
        .expect("the sealed packet reflects");
        let ns = time(rounds, || {
            rx.copy_from_slice(&plain);
            let got = r.reflect(
                Received {
                    bytes: &mut rx,
                    from: PEER,
                    ttl: Some(64),
                    tos: None,
                    at: Timestamp(1),
                },
                &clock,
                &mut out,
            );
            black_box(got.is_ok());
        });
        println!(
            "reflect, {name:<13}: {ns:7.1} ns/packet = {:5.2} x baseline",
            ns / baseline
        );
    }
}
