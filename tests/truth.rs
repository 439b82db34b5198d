//! End-to-end truth tests: the reported counts must equal what was injected, exactly, per
//! direction, and the delays must exceed the injected delay by less than 1 ms.
//!
//! Wiring, all in this process and on 127.0.0.1 only:
//!
//! ```text
//! sender::run ──▶ relay (delay, drop, duplicate, reorder) ──▶ reflector::spawn
//!             ◀──                                         ◀──
//! ```
//!
//! The relay (tests/common/relay.rs) picks packets by the Sender Sequence Number they carry, so
//! what it does to each packet is known exactly, and both ends read the same system clock, so
//! one-way delays are exact here (no clock offset).
//!
//! Every run is bounded: COUNT × INTERVAL + LOSS_TIMEOUT (1.8 s) for the sender; the relay stops
//! when dropped (or after RELAY_LIFETIME at the latest) and the reflector is joined by a guard.

#[path = "common/relay.rs"]
mod relay;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay::{Impairment, Relay};
use twamp::reflector::{self, Context, Counters, Handle, Reflector};
use twamp::sender::{self, Outcome, Plan, Schedule, Sender};
use twamp::stats::{self, Summary};
use twamp::time::SystemClock;
use twamp::wire::{Sid, TestLayout};

const COUNT: u32 = 80;
const INTERVAL: Duration = Duration::from_millis(10);
const LOSS_TIMEOUT: Duration = Duration::from_secs(1);
const PADDING: usize = 27;
/// The relay stops on its own after this even if a test forgets it.
const RELAY_LIFETIME: Duration = Duration::from_secs(10);
/// A delay statistic may exceed the injected delay by less than this.
const TOLERANCE: f64 = 0.001;

/// The runs share the CPU with the relay's 100 µs polling loop; running them one at a time keeps
/// the sub-millisecond delay bound about this code rather than about the test scheduler.
static SERIAL: Mutex<()> = Mutex::new(());

fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// A running Session-Reflector, joined on drop (also when an assertion fails).
struct ReflectorGuard {
    handle: Option<Handle>,
    addr: SocketAddr,
    counters: Arc<Counters>,
}

impl ReflectorGuard {
    fn start() -> ReflectorGuard {
        let sock =
            twamp::net::udp_socket(SocketAddr::new(loopback(), 0), 0).expect("reflector socket");
        let addr = sock.local_addr().expect("reflector address");
        let ctx = Context {
            refwait: Duration::from_secs(10),
            clock: Arc::new(SystemClock::new()),
            shutdown: Arc::new(AtomicBool::new(false)),
            live: Arc::new(AtomicUsize::new(0)),
            totals: Arc::new(Counters::default()),
        };
        // The peer is 127.0.0.1: the relay sends from loopback.
        let r = Reflector::new(TestLayout::OPEN, None, loopback());
        let handle =
            reflector::spawn(sock, r, Sid([0x5a; 16]), 14 + 27, &ctx).expect("spawn reflector");
        let counters = handle.counters.clone();
        ReflectorGuard {
            handle: Some(handle),
            addr,
            counters,
        }
    }
}

impl Drop for ReflectorGuard {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.join();
        }
    }
}

/// What one run produced.
struct Run {
    outcome: Outcome,
    summary: Summary,
    /// Datagrams the reflector reflected (its own counter).
    reflected: u64,
    /// Datagrams the reflector dropped (wrong peer, short, ...).
    refused: u64,
}

fn set(seqs: &[u32]) -> BTreeSet<u32> {
    seqs.iter().copied().collect()
}

fn delay_only(delay: Duration) -> Impairment {
    Impairment {
        delay,
        ..Impairment::default()
    }
}

/// Runs one session of COUNT packets through a relay impairing `fwd` and `bck`.
fn run(fwd: Impairment, bck: Impairment) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let reflector = ReflectorGuard::start();
    let relay = Relay::start(reflector.addr, fwd, bck, RELAY_LIFETIME);
    let sock = twamp::net::udp_socket(SocketAddr::new(loopback(), 0), 1 << 20).expect("sender");
    let plan = Plan {
        count: COUNT,
        schedule: Schedule::Periodic { interval: INTERVAL },
        duration: None,
        loss_timeout: LOSS_TIMEOUT,
        padding: PADDING,
        layout: TestLayout::OPEN,
        cipher: None,
        light: None,
    };
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut sessions = [sender::Session::new(
        Sender::new(plan, relay.addr, started),
        sock,
    )];
    let result = sender::run(&mut sessions, &SystemClock::new(), &stop, |_| {}, || Ok(()));
    if let Err(e) = result {
        panic!("sender::run: {e}");
    }
    let [session] = sessions;
    let outcome = session.sender.into_outcome();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "the run took {took:?}, more than its schedule"
    );
    drop(relay);
    let reflected = reflector.counters.reflected.load(Ordering::Relaxed);
    let refused = reflector.counters.dropped();
    drop(reflector);
    let summary = stats::summarize(&outcome.sent, &outcome.replies);
    Run {
        outcome,
        summary,
        reflected,
        refused,
    }
}

/// Sender numbers that never came back, from the per-packet view.
fn lost_seqs(o: &Outcome) -> BTreeSet<u32> {
    stats::per_packet(&o.sent, &o.replies)
        .iter()
        .filter(|p| p.reply.is_none())
        .map(|p| p.seq)
        .collect()
}

/// Sender numbers with replies beyond the first.
fn duplicated_seqs(o: &Outcome) -> BTreeSet<u32> {
    stats::per_packet(&o.sent, &o.replies)
        .iter()
        .filter(|p| p.dup_count > 0)
        .map(|p| p.seq)
        .collect()
}

fn ms(s: f64) -> String {
    format!("{:.3} ms", s * 1e3)
}

/// min ≥ injected and median − injected < 1 ms, for one delay statistic.
fn check_delay(name: &str, d: &Option<stats::DelayStats>, injected: Duration, received: u64) {
    let d = d
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no delay statistics"));
    let inj = injected.as_secs_f64();
    assert_eq!(d.count, received, "{name}: one sample per received packet");
    assert!(
        d.min >= inj,
        "{name}: min {} is below the injected {} (timestamps wrong?)",
        ms(d.min),
        ms(inj)
    );
    assert!(
        d.median - inj < TOLERANCE,
        "{name}: median {} exceeds the injected {} by {} (≥ 1 ms)",
        ms(d.median),
        ms(inj),
        ms(d.median - inj)
    );
    eprintln!(
        "{name}: injected {}, min {} (+{}), median {} (+{}), max {}",
        ms(inj),
        ms(d.min),
        ms(d.min - inj),
        ms(d.median),
        ms(d.median - inj),
        ms(d.max)
    );
}

fn check_clean_transport(r: &Run) {
    assert_eq!(
        r.outcome.stray, 0,
        "datagrams from elsewhere than the relay"
    );
    assert_eq!(r.outcome.malformed, 0, "malformed reflections");
    assert!(!r.outcome.interrupted);
    assert_eq!(
        r.refused, 0,
        "the reflector refused datagrams from the relay"
    );
    assert_eq!(r.summary.unexpected, 0);
    assert_eq!(r.summary.t1_mismatch, 0);
    assert_eq!(r.summary.negative_forward, 0);
    assert_eq!(r.summary.negative_backward, 0);
}

#[test]
fn injected_loss_duplicates_reordering_and_delay_are_reported_exactly() {
    let delay = Duration::from_millis(5);
    let hold = Duration::from_millis(15);
    let fwd = Impairment {
        delay,
        drop: set(&[3, 17]),
        duplicate: set(&[11]),
        reorder: set(&[30]),
        reorder_by: hold,
    };
    let bck = Impairment {
        delay,
        drop: set(&[8, 25]),
        duplicate: set(&[20]),
        reorder: set(&[40]),
        reorder_by: hold,
    };
    let r = run(fwd, bck);
    let s = &r.summary;
    check_clean_transport(&r);

    // What the reflector saw: 80 − 2 forward drops + 1 forward duplicate.
    assert_eq!(r.reflected, 79, "reflections");

    assert_eq!(s.sent, 80);
    assert_eq!(s.received, 76);
    assert_eq!(s.lost, 4);
    assert_eq!(lost_seqs(&r.outcome), set(&[3, 8, 17, 25]));
    assert_eq!(s.lost_forward, 2, "forward drops {{3, 17}}");
    assert_eq!(s.lost_backward, 2, "backward drops {{8, 25}}");
    assert_eq!(s.lost_unattributed, 0, "no loss at the tail");
    assert!((s.loss_ratio - 4.0 / 80.0).abs() < 1e-12);

    assert_eq!(s.duplicates_forward, 1, "forward duplicate {{11}}");
    assert_eq!(s.duplicates_backward, 1, "backward duplicate {{20}}");
    assert_eq!(s.duplicates, 2);
    assert_eq!(duplicated_seqs(&r.outcome), set(&[11, 20]));

    // Forward: the reflector received sender 31 before 30 (30 held 15 ms, 31 sent 10 ms after
    // it): 30 is the one reordered packet. 76 distinct packets reached the reflector and came
    // back.
    assert_eq!(s.reordering_forward.reordered, 1, "forward reorder {{30}}");
    assert_eq!(s.reordering_forward.packets, 76);
    // Backward: the reflection of sender 40 (reflector number 39: 3 and 17 never got a number,
    // 11 got two) came back after that of 41 (reflector number 40): 39 is reordered. 77
    // distinct reflections came back (79 − 2 backward drops; the backward duplicate of 20 is
    // left out).
    assert_eq!(
        s.reordering_backward.reordered, 1,
        "backward reorder {{40}}"
    );
    assert_eq!(s.reordering_backward.packets, 77);
    // Round trip, by hand: sender numbers in our arrival order are
    //   …, 29, 31, 30, 32, …, 39, 41, 40, 42, …
    // The forward hold of 30 survives the way back (both directions add the same 5 ms), and
    // the backward hold of 40 happens after the reflector, so the round-trip stream sees both:
    // 30 arrives when NextExp is 32 and 40 when NextExp is 42. Duplicates (11, 20) are left
    // out. So 2 of 76 packets are reordered.
    assert_eq!(
        s.reordering_round_trip.reordered, 2,
        "round trip: 30 and 40"
    );
    assert_eq!(s.reordering_round_trip.packets, 76);

    // Delays: one clock, so one-way delays are exact.
    check_delay("forward", &s.forward, delay, s.received);
    check_delay("backward", &s.backward, delay, s.received);
    check_delay("rtt", &s.rtt, delay * 2, s.received);
    // The held packets show up as the maxima: ≥ 5 + 15 ms one way.
    let hold_total = (delay + hold).as_secs_f64();
    assert!(s.forward.as_ref().unwrap().max >= hold_total);
    assert!(s.backward.as_ref().unwrap().max >= hold_total);
    assert!(s.rtt.as_ref().unwrap().max >= hold_total + delay.as_secs_f64());
}

#[test]
fn no_impairment_loses_nothing_and_adds_only_the_delay() {
    let delay = Duration::from_millis(3);
    let r = run(delay_only(delay), delay_only(delay));
    let s = &r.summary;
    check_clean_transport(&r);
    assert_eq!(r.reflected, u64::from(COUNT));
    assert_eq!((s.sent, s.received, s.lost), (80, 80, 0));
    assert_eq!(
        (s.lost_forward, s.lost_backward, s.lost_unattributed),
        (0, 0, 0)
    );
    assert_eq!((s.duplicates_forward, s.duplicates_backward), (0, 0));
    assert_eq!(s.reordering_forward.reordered, 0);
    assert_eq!(s.reordering_backward.reordered, 0);
    assert_eq!(s.reordering_round_trip.reordered, 0);
    check_delay("forward", &s.forward, delay, 80);
    check_delay("backward", &s.backward, delay, 80);
    check_delay("rtt", &s.rtt, delay * 2, 80);
}

/// Knuth's MMIX LCG: a fixed, dependency-free sequence.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(n)) as u32
    }
}

#[test]
fn seeded_drops_are_attributed_to_their_direction_exactly() {
    // Disjoint sets, none in the last 8 packets: a loss after the last reply that came back
    // cannot be attributed (lost_unattributed), which is not what this test is about.
    let mut rng = Lcg(0x7ea1_2357);
    let (mut fwd_drop, mut bck_drop) = (BTreeSet::new(), BTreeSet::new());
    while fwd_drop.len() < 7 {
        fwd_drop.insert(rng.below(COUNT - 8));
    }
    while bck_drop.len() < 5 {
        let s = rng.below(COUNT - 8);
        if !fwd_drop.contains(&s) {
            bck_drop.insert(s);
        }
    }
    let delay = Duration::from_millis(2);
    let fwd = Impairment {
        drop: fwd_drop.clone(),
        ..delay_only(delay)
    };
    let bck = Impairment {
        drop: bck_drop.clone(),
        ..delay_only(delay)
    };
    let r = run(fwd, bck);
    let s = &r.summary;
    check_clean_transport(&r);
    let context = format!("forward drops {fwd_drop:?}, backward drops {bck_drop:?}");
    assert_eq!(r.reflected, 80 - 7, "{context}");
    assert_eq!(s.sent, 80, "{context}");
    assert_eq!(s.lost, 12, "{context}");
    assert_eq!(s.lost_forward, 7, "{context}");
    assert_eq!(s.lost_backward, 5, "{context}");
    assert_eq!(s.lost_unattributed, 0, "{context}");
    let all: BTreeSet<u32> = fwd_drop.union(&bck_drop).copied().collect();
    assert_eq!(lost_seqs(&r.outcome), all, "{context}");
    assert_eq!(s.duplicates, 0, "{context}");
    assert_eq!(s.reordering_round_trip.reordered, 0, "{context}");
    check_delay("forward", &s.forward, delay, 68);
    check_delay("backward", &s.backward, delay, 68);
    check_delay("rtt", &s.rtt, delay * 2, 68);
}
