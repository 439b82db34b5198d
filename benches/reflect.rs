//! `cargo bench --bench reflect`: the Session-Reflector's per-packet work, pure (no sockets),
//! as a ratio to a baseline measured in the same run: copying the same datagram and writing
//! two timestamps by hand, which is the least any reflector does. Ratios, not absolute times:
//! these machines are shared and noisy.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use twamp::crypto::{SessionKeys, TestCipher, TestKeys, TestSecurity};
use twamp::reflector::{Received, Reflector};
use twamp::time::{Clock, ErrorEstimate, SystemClock, Timestamp};
use twamp::wire::{SenderPacket, TestLayout};

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const ROUNDS: u32 = 200_000;

/// Median of five timed runs of `f` over ROUNDS iterations, in ns per iteration.
fn time(mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..ROUNDS {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(ROUNDS)
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
    let clock = SystemClock::new();
    let mut out = vec![0u8; 2048];

    // Baseline: copy the datagram into the reply and stamp it, with the same clock reads.
    let open = sender_packet(&TestLayout::OPEN, 27);
    let baseline = time(|| {
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
        let ns = time(|| {
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
