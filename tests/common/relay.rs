//! A UDP impairment relay for truth tests: this kernel has no netem, so the harness carries its
//! own. It sits between a Session-Sender and a Session-Reflector, adds a fixed delay each way,
//! and drops, duplicates or delays (reorders) chosen packets, chosen by the Sender Sequence
//! Number they carry (offset 0 in the sender's packet, offset 24 in the reflection, open layout).
//! It can also re-mark a direction: every datagram it forwards leaves with the DSCP given, as
//! behind a router that rewrites the TOS (RFC 7750 tests).
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What to do to one direction.
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    pub delay: Duration,
    pub drop: BTreeSet<u32>,
    pub duplicate: BTreeSet<u32>,
    /// Held back by `reorder_by` more than the others, so it arrives after its successor.
    pub reorder: BTreeSet<u32>,
    pub reorder_by: Duration,
    /// Re-mark: forward every datagram of this direction with this DSCP (the outgoing
    /// socket's, `net::set_dscp`), whatever it arrived with.
    pub dscp: Option<u8>,
}

pub struct Relay {
    /// Where the Session-Sender sends to.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Pending {
    due: Instant,
    order: u64,
    forward: bool,
    bytes: Vec<u8>,
}

impl PartialEq for Pending {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.order) == (o.due, o.order)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Pending {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(o.due, o.order))
    }
}

fn seq_at(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

impl Relay {
    /// Starts relaying to `reflector`. Runs until dropped (bounded: it also stops after
    /// `lifetime`).
    pub fn start(
        reflector: SocketAddr,
        fwd: Impairment,
        bck: Impairment,
        lifetime: Duration,
    ) -> Relay {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap(); // faces the sender
        let b = UdpSocket::bind("127.0.0.1:0").unwrap(); // faces the reflector
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        // Forward datagrams leave through `b`, backward ones through `a`.
        if let Some(d) = fwd.dscp {
            twamp::net::set_dscp(&b, d).expect("re-mark forward");
        }
        if let Some(d) = bck.dscp {
            twamp::net::set_dscp(&a, d).expect("re-mark backward");
        }
        let addr = a.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut queue: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
            let mut sender: Option<SocketAddr> = None;
            let mut order = 0u64;
            let mut buf = [0u8; 65_536];
            while !s2.load(Ordering::Relaxed) && started.elapsed() < lifetime {
                let mut idle = true;
                while let Ok((n, from)) = a.recv_from(&mut buf) {
                    idle = false;
                    sender = Some(from);
                    let seq = seq_at(&buf[..n], 0).unwrap_or(u32::MAX);
                    schedule(&mut queue, &mut order, &fwd, seq, true, &buf[..n]);
                }
                while let Ok((n, _)) = b.recv_from(&mut buf) {
                    idle = false;
                    let seq = seq_at(&buf[..n], 24).unwrap_or(u32::MAX);
                    schedule(&mut queue, &mut order, &bck, seq, false, &buf[..n]);
                }
                let now = Instant::now();
                while queue.peek().is_some_and(|Reverse(p)| p.due <= now) {
                    let Reverse(p) = queue.pop().unwrap();
                    if p.forward {
                        let _ = b.send_to(&p.bytes, reflector);
                    } else if let Some(s) = sender {
                        let _ = a.send_to(&p.bytes, s);
                    }
                }
                if idle {
                    // Sleep until the next release, at most 100 µs, so delays stay exact.
                    let next = queue
                        .peek()
                        .map(|Reverse(p)| p.due.saturating_duration_since(Instant::now()));
                    std::thread::sleep(
                        next.unwrap_or(Duration::from_micros(100))
                            .min(Duration::from_micros(100)),
                    );
                }
            }
        });
        Relay {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

fn schedule(
    q: &mut BinaryHeap<Reverse<Pending>>,
    order: &mut u64,
    imp: &Impairment,
    seq: u32,
    forward: bool,
    bytes: &[u8],
) {
    if imp.drop.contains(&seq) {
        return;
    }
    let mut due = Instant::now() + imp.delay;
    if imp.reorder.contains(&seq) {
        due += imp.reorder_by;
    }
    let copies = if imp.duplicate.contains(&seq) { 2 } else { 1 };
    for _ in 0..copies {
        *order += 1;
        q.push(Reverse(Pending {
            due,
            order: *order,
            forward,
            bytes: bytes.to_vec(),
        }));
    }
}
