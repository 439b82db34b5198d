//! `cargo bench --bench schedule`: how well the Session-Sender keeps its schedule.
//!
//! - The Poisson schedule's mean over 2,000 gaps against the mean asked for (target: within 5%).
//! - Send lateness (the moment each packet left minus its planned time, as `sender::run`
//!   records it) at 1,000 and 10,000 packets/s on loopback, p50 and p99, beside the same
//!   figures for a baseline measured in the same run: a plain loop that sleeps with
//!   `thread::sleep` until each planned time, as a simple sender would. The target is p99 ≤
//!   50 µs at 10,000 packets/s; it is printed, never asserted (these machines are shared and
//!   noisy). `TWAMP_BENCH_SMOKE=1` runs a short version (CI).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use twamp::sender::{self, Offsets, Plan, Schedule, Sender};
use twamp::time::SystemClock;
use twamp::wire::TestLayout;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Our sender at `rate` packets/s for `count` packets to a socket that never answers.
fn ours(rate: u32, count: u32) -> Vec<u64> {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    let to = sink.local_addr().expect("sink address");
    let sock = twamp::net::udp_socket("127.0.0.1:0".parse().expect("address"), 1 << 20)
        .expect("sender socket");
    let plan = Plan {
        count,
        schedule: Schedule::Periodic {
            interval: Duration::from_secs(1) / rate,
        },
        duration: None,
        loss_timeout: Duration::from_millis(20),
        padding: 27,
        layout: TestLayout::OPEN,
        cipher: None,
        light: None,
    };
    let mut s = [sender::Session::new(
        Sender::new(plan, to, Instant::now() + Duration::from_millis(5)),
        sock,
    )];
    let stop = AtomicBool::new(false);
    sender::run(&mut s, &SystemClock::new(), &stop, |_| {}, || Ok(())).expect("run");
    let [s] = s;
    let mut late: Vec<u64> = s
        .sender
        .into_outcome()
        .late_ns
        .iter()
        .map(|&n| u64::from(n))
        .collect();
    late.sort_unstable();
    drop(sink);
    late
}

/// The baseline: sleep until each planned time, then send.
fn naive(rate: u32, count: u32) -> Vec<u64> {
    let sink = UdpSocket::bind("127.0.0.1:0").expect("sink");
    let to: SocketAddr = sink.local_addr().expect("sink address");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("socket");
    let interval = Duration::from_secs(1) / rate;
    let start = Instant::now() + Duration::from_millis(5);
    let buf = [0u8; 41];
    let mut late = Vec::with_capacity(count as usize);
    for k in 0..count {
        let due = start + interval * k;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let sent = Instant::now();
        let _ = sock.send_to(&buf, to);
        late.push(sent.saturating_duration_since(due).as_nanos() as u64);
    }
    late.sort_unstable();
    late
}

fn main() {
    let smoke = std::env::var_os("TWAMP_BENCH_SMOKE").is_some();

    let mean = Duration::from_millis(10);
    let mut o = Offsets::new(Schedule::Poisson { mean }, 0x5eed);
    let gaps = 2_000u32;
    for _ in 0..gaps {
        o.advance();
    }
    let got = o.peek().as_secs_f64() / f64::from(gaps);
    println!(
        "poisson: mean of {gaps} gaps {:.3} ms for 10 ms asked: {:+.2}% (target within 5%)",
        got * 1e3,
        (got / mean.as_secs_f64() - 1.0) * 100.0
    );

    for rate in [1_000u32, 10_000] {
        let count = if smoke { rate / 10 } else { rate * 2 };
        let a = ours(rate, count);
        let b = naive(rate, count);
        let (a50, a99) = (percentile(&a, 50.0), percentile(&a, 99.0));
        let (b50, b99) = (percentile(&b, 50.0), percentile(&b, 99.0));
        println!(
            "{rate} packets/s, {count} packets: lateness p50 {:.1} us, p99 {:.1} us; \
             baseline (sleep loop) p50 {:.1} us, p99 {:.1} us; p99 ratio {:.2}",
            a50 as f64 / 1e3,
            a99 as f64 / 1e3,
            b50 as f64 / 1e3,
            b99 as f64 / 1e3,
            a99 as f64 / b99.max(1) as f64
        );
        if rate == 10_000 {
            println!(
                "target p99 <= 50 us at 10,000 packets/s: {}",
                if a99 <= 50_000 { "met" } else { "NOT met" }
            );
        }
    }
}
