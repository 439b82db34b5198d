//! The Session-Reflector (RFC 5357 §4.2): a pure [`Reflector`] that turns one received test
//! packet into its reflection, and [`spawn`], the blocking UDP loop around it.
//!
//! What the reflector never does: reflect a packet from an address other than the control
//! connection's peer (it would be an amplifier), reflect a packet whose HMAC fails, or die on a
//! datagram it does not like. Every dropped datagram is counted by reason.

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::addr;
use crate::crypto::TestCipher;
use crate::net::{self, Receiver};
use crate::time::{Clock, Timestamp};
use crate::wire::{ReflectorPacket, SenderPacket, Sid, TestLayout};

/// Why a datagram was not reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the sender packet base of the session's mode.
    Short { len: usize },
    /// Larger than our receive buffer (MSG_TRUNC).
    Oversized,
    /// From an address other than the control connection's peer.
    WrongPeer,
    /// HMAC check failed (authenticated and encrypted modes).
    BadHmac,
}

/// Per-session counters, readable while the session runs.
#[derive(Debug, Default)]
pub struct Counters {
    pub reflected: AtomicU64,
    pub short: AtomicU64,
    pub oversized: AtomicU64,
    pub wrong_peer: AtomicU64,
    pub bad_hmac: AtomicU64,
    /// Unix time in milliseconds of the last datagram received (any kind), for SERVWAIT.
    pub last_rx_ms: AtomicU64,
}

impl Counters {
    fn count(&self, r: DropReason) {
        let c = match r {
            DropReason::Short { .. } => &self.short,
            DropReason::Oversized => &self.oversized,
            DropReason::WrongPeer => &self.wrong_peer,
            DropReason::BadHmac => &self.bad_hmac,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.short.load(Ordering::Relaxed)
            + self.oversized.load(Ordering::Relaxed)
            + self.wrong_peer.load(Ordering::Relaxed)
            + self.bad_hmac.load(Ordering::Relaxed)
    }
}

/// One received datagram, as the socket layer saw it.
pub struct Received<'a> {
    /// The payload; decrypted in place in the secure modes.
    pub bytes: &'a mut [u8],
    pub from: IpAddr,
    /// TTL / Hop Limit, if the kernel told us.
    pub ttl: Option<u8>,
    /// Receive time (T2): the kernel's, or the clock's right after the read.
    pub at: Timestamp,
}

/// Session-Reflector state for one test session. No sockets.
pub struct Reflector {
    layout: TestLayout,
    cipher: Option<TestCipher>,
    peer: IpAddr,
    next_seq: u32,
}

impl Reflector {
    pub fn new(layout: TestLayout, cipher: Option<TestCipher>, peer: IpAddr) -> Self {
        Reflector {
            layout,
            cipher,
            peer: addr::unmap_ip(peer),
            next_seq: 0,
        }
    }

    /// Writes the reflection of `rx` into `out` and returns its length.
    ///
    /// RFC 5357 §4.2.1: the reflected packet carries the reflector's own sequence number, T3,
    /// T2, and the sender's sequence number, timestamp, error estimate and TTL. Its length is
    /// the sender's when the sender's padding allows (the reflector "SHOULD" shorten the
    /// padding by the base-size difference so both directions are equal), else the reflector
    /// base; the padding octets are the sender's own, truncated at the end (RFC 5357 §4.2.1
    /// "MAY re-use the packet padding"). The clock is read last, so T3 is as late as possible.
    ///
    /// `out` must hold at least `max(rx.len(), 112)` octets.
    pub fn reflect(
        &mut self,
        rx: Received<'_>,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        if addr::unmap_ip(rx.from) != self.peer {
            return Err(DropReason::WrongPeer);
        }
        let (s, r) = (self.layout.sender, self.layout.reflector);
        let len = rx.bytes.len();
        if len < s.base {
            return Err(DropReason::Short { len });
        }
        if let Some(c) = &self.cipher {
            c.open_sender(rx.bytes).map_err(|_| DropReason::BadHmac)?;
        }
        let sender = SenderPacket::parse(rx.bytes, &s).map_err(|_| DropReason::Short { len })?;
        let out_len = len.max(r.base);
        if out.len() < out_len {
            return Err(DropReason::Oversized);
        }
        let out = &mut out[..out_len];
        let mut pkt = ReflectorPacket {
            seq: self.next_seq,
            timestamp: Timestamp::default(),
            error_estimate: clock.error_estimate(),
            receive_timestamp: rx.at,
            sender_seq: sender.seq,
            sender_timestamp: sender.timestamp,
            sender_error_estimate: sender.error_estimate,
            sender_ttl: rx.ttl.unwrap_or(255),
        };
        pkt.emit(out, &r).map_err(|_| DropReason::Oversized)?;
        let pad = out_len - r.base;
        let avail = len - s.base;
        let reuse = pad.min(avail);
        out[r.base..r.base + reuse].copy_from_slice(&rx.bytes[s.base..s.base + reuse]);
        out[r.base + reuse..].fill(0);
        pkt.timestamp = clock.now();
        pkt.emit_timestamp(out, &r);
        if let Some(c) = &self.cipher {
            c.seal_reflected(out).map_err(|_| DropReason::Oversized)?;
        }
        self.next_seq = self.next_seq.wrapping_add(1);
        Ok(out_len)
    }
}

/// A running Session-Reflector thread.
pub struct Handle {
    pub sid: Sid,
    pub port: u16,
    pub counters: Arc<Counters>,
    /// When set, the reflector stops at this instant (Stop-Sessions plus the session Timeout).
    stop_at: Arc<Mutex<Option<Instant>>>,
    /// Set with `stop_at`, so the per-packet loop looks at the mutex only once a stop is asked.
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Handle {
    /// Stops reflecting `grace` from now (RFC 5357 §3.8: the reflector keeps reflecting for
    /// the session's Timeout after Stop-Sessions so late packets still come back).
    pub fn stop_after(&self, grace: Duration) {
        let mut s = self.stop_at.lock().unwrap_or_else(|p| p.into_inner());
        let at = Instant::now() + grace;
        *s = Some(s.map_or(at, |old| old.min(at)));
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Stops now and waits for the thread.
    pub fn join(mut self) {
        self.stop_after(Duration::ZERO);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("reflector {} (port {}) panicked", self.sid, self.port);
            }
        }
    }
}

/// How often a blocked reflector wakes up to look at its stop conditions.
const POLL: Duration = Duration::from_millis(200);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What every reflector of a server shares: the shutdown flag, the count of running reflector
/// threads, and server-wide totals of the per-session counters.
#[derive(Clone)]
pub struct Context {
    pub refwait: Duration,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Arc<AtomicBool>,
    /// Running reflector threads: incremented by `spawn`, decremented when a thread ends.
    pub live: Arc<std::sync::atomic::AtomicUsize>,
    pub totals: Arc<Counters>,
}

/// The smallest receive buffer a session gets: a full Ethernet-MTU datagram, so a sender whose
/// packets differ a little from the negotiated size is still served.
pub const MIN_BUFFER: usize = 1500;

/// Starts the reflector loop for one session on its own thread.
///
/// The loop ends when told to ([`Handle::stop_after`]), when `shutdown` is set, or after
/// `refwait` without a test packet (RFC 5357 §4.2: REFWAIT).
///
/// `max_packet` is the negotiated Session-Sender packet size (base + Padding Length). The
/// buffers are sized from it, not from the 64 KiB UDP maximum: a session costs a few KiB, and
/// a datagram larger than `max(max_packet, MIN_BUFFER)` is cut by the kernel (MSG_TRUNC),
/// counted as oversized and dropped.
pub fn spawn(
    socket: UdpSocket,
    mut reflector: Reflector,
    sid: Sid,
    max_packet: usize,
    ctx: &Context,
) -> std::io::Result<Handle> {
    let Context {
        refwait,
        clock,
        shutdown,
        live,
        totals,
    } = ctx.clone();
    let port = socket.local_addr()?.port();
    let counters = Arc::new(Counters::default());
    counters.last_rx_ms.store(now_ms(), Ordering::Relaxed);
    let stop_at = Arc::new(Mutex::new(None::<Instant>));
    socket.set_read_timeout(Some(POLL))?;
    let stopping = Arc::new(AtomicBool::new(false));
    let (c2, s2, stopping2) = (counters.clone(), stop_at.clone(), stopping.clone());
    live.fetch_add(1, Ordering::Relaxed);
    let live2 = live.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("reflector:{port}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let cap = max_packet.clamp(MIN_BUFFER, net::MAX_DATAGRAM);
            let mut rx = vec![0u8; cap];
            // The reflection of a packet shorter than the reflector base is the base.
            let mut tx = vec![0u8; cap.max(TestLayout::AUTHENTICATED.reflector.base)];
            let mut receiver = Receiver::new();
            let mut last_packet = Instant::now();
            let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
            loop {
                if shutdown.load(Ordering::Relaxed) {
                    break;
                }
                if stopping2.load(Ordering::Relaxed) {
                    let deadline = *s2.lock().unwrap_or_else(|p| p.into_inner());
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                }
                let meta = match receiver.recv(&socket, &mut rx) {
                    Ok(Some(m)) => m,
                    // Read timeout: the only time REFWAIT can have run out.
                    Ok(None) => {
                        if last_packet.elapsed() >= refwait {
                            log::info!("session {sid}: no test packet for {refwait:?} (REFWAIT), stopping reflector on port {port}");
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        // ICMP errors (ECONNREFUSED) from an earlier send surface here; they
                        // are not fatal for the session.
                        log::debug!("session {sid}: recv on port {port}: {e}");
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                };
                last_packet = Instant::now();
                // The receive time is wall-clock already: no second clock read for SERVWAIT.
                c2.last_rx_ms.store(meta.at.unix_millis(), Ordering::Relaxed);
                if meta.truncated {
                    c2.count(DropReason::Oversized);
                    totals.count(DropReason::Oversized);
                    continue;
                }
                let received = Received { bytes: &mut rx[..meta.len], from: meta.from.ip(), ttl: meta.ttl, at: meta.at };
                match reflector.reflect(received, clock.as_ref(), &mut tx) {
                    Ok(n) => match socket.send_to(&tx[..n], addr::destination(meta.from, v6)) {
                        Ok(_) => {
                            c2.reflected.fetch_add(1, Ordering::Relaxed);
                            totals.reflected.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => log::debug!("session {sid}: send to {}: {e}", meta.from),
                    },
                    Err(r) => {
                        c2.count(r);
                        totals.count(r);
                        log::debug!("session {sid}: dropped datagram from {}: {r:?}", meta.from);
                    }
                }
            }
            log::info!(
                "session {sid}: reflector on port {port} done: {} reflected, {} dropped",
                c2.reflected.load(Ordering::Relaxed),
                c2.dropped()
            );
            live2.fetch_sub(1, Ordering::Relaxed);
        });
    let thread = match spawned {
        Ok(t) => t,
        Err(e) => {
            live.fetch_sub(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    Ok(Handle {
        sid,
        port,
        counters,
        stop_at,
        stopping,
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{ErrorEstimate, FakeClock};
    use std::net::Ipv4Addr;

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn sender_packet(seq: u32, padding: usize) -> Vec<u8> {
        let mut b = vec![0u8; 14 + padding];
        SenderPacket {
            seq,
            timestamp: Timestamp::new(100, 0),
            error_estimate: ErrorEstimate(0x0001),
        }
        .emit(&mut b, &TestLayout::OPEN.sender)
        .unwrap();
        for (i, p) in b[14..].iter_mut().enumerate() {
            *p = (i as u8).wrapping_add(1);
        }
        b
    }

    #[test]
    fn reflects_every_field_and_counts_its_own_sequence() {
        let clock = FakeClock::at(Timestamp::new(100, 0x8000_0000));
        let mut r = Reflector::new(TestLayout::OPEN, None, PEER);
        let mut out = vec![0u8; 2048];
        for (i, seq) in [7u32, 9, 8].into_iter().enumerate() {
            let mut rx = sender_packet(seq, 27);
            let n = r
                .reflect(
                    Received {
                        bytes: &mut rx,
                        from: PEER,
                        ttl: Some(64),
                        at: Timestamp::new(100, 0x4000_0000),
                    },
                    &clock,
                    &mut out,
                )
                .unwrap();
            assert_eq!(n, 41, "27 octets of padding make both directions 41 octets");
            let p = ReflectorPacket::parse(&out[..n], &TestLayout::OPEN.reflector).unwrap();
            assert_eq!(p.seq, i as u32, "the reflector's own counter");
            assert_eq!(p.sender_seq, seq);
            assert_eq!(
                p.timestamp,
                Timestamp::new(100, 0x8000_0000),
                "T3 from the clock"
            );
            assert_eq!(
                p.receive_timestamp,
                Timestamp::new(100, 0x4000_0000),
                "T2 from the socket"
            );
            assert_eq!(p.sender_timestamp, Timestamp::new(100, 0));
            assert_eq!(p.sender_error_estimate, ErrorEstimate(1));
            assert_eq!(p.error_estimate, ErrorEstimate(1));
            assert_eq!(p.sender_ttl, 64);
        }
    }

    #[test]
    fn reflected_length_follows_rfc5357_4_2_1() {
        let clock = FakeClock::at(Timestamp(1));
        let mut r = Reflector::new(TestLayout::OPEN, None, PEER);
        let mut out = vec![0u8; 4096];
        for (padding, want) in [
            (0usize, 41usize),
            (10, 41),
            (27, 41),
            (100, 114),
            (1000, 1014),
        ] {
            let mut rx = sender_packet(0, padding);
            let n = r
                .reflect(
                    Received {
                        bytes: &mut rx,
                        from: PEER,
                        ttl: None,
                        at: Timestamp(1),
                    },
                    &clock,
                    &mut out,
                )
                .unwrap();
            assert_eq!(n, want, "padding {padding}");
            // Padding is the sender's own, truncated at the end.
            let reused = n - 41;
            assert_eq!(&out[41..n], &rx[14..14 + reused]);
        }
    }

    #[test]
    fn unknown_ttl_is_255() {
        let clock = FakeClock::at(Timestamp(1));
        let mut r = Reflector::new(TestLayout::OPEN, None, PEER);
        let mut out = vec![0u8; 256];
        let mut rx = sender_packet(0, 27);
        r.reflect(
            Received {
                bytes: &mut rx,
                from: PEER,
                ttl: None,
                at: Timestamp(1),
            },
            &clock,
            &mut out,
        )
        .unwrap();
        assert_eq!(out[40], 255);
    }

    #[test]
    fn drops_short_and_foreign_datagrams_without_advancing() {
        let clock = FakeClock::at(Timestamp(1));
        let mut r = Reflector::new(TestLayout::OPEN, None, PEER);
        let mut out = vec![0u8; 256];
        for n in 0..14 {
            let mut rx = vec![0u8; n];
            assert_eq!(
                r.reflect(
                    Received {
                        bytes: &mut rx,
                        from: PEER,
                        ttl: None,
                        at: Timestamp(1)
                    },
                    &clock,
                    &mut out
                ),
                Err(DropReason::Short { len: n })
            );
        }
        let mut rx = sender_packet(0, 27);
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(
            r.reflect(
                Received {
                    bytes: &mut rx,
                    from: other,
                    ttl: None,
                    at: Timestamp(1)
                },
                &clock,
                &mut out
            ),
            Err(DropReason::WrongPeer)
        );
        // The mapped form of the peer is the peer.
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        r.reflect(
            Received {
                bytes: &mut rx,
                from: mapped,
                ttl: None,
                at: Timestamp(1),
            },
            &clock,
            &mut out,
        )
        .unwrap();
        let p = ReflectorPacket::parse(&out, &TestLayout::OPEN.reflector).unwrap();
        assert_eq!(p.seq, 0, "dropped datagrams do not use up sequence numbers");
    }
}
