//! The Session-Reflector (RFC 5357 §4.2): a pure [`Reflector`] that turns one received test
//! packet into its reflection, and the [`engine`] that serves many sessions' sockets from a
//! few threads.
//!
//! What the reflector never does: reflect a packet from an address other than the control
//! connection's peer (it would be an amplifier), reflect a datagram shorter than the session's
//! negotiated size (14 octets in must not make 41 out), reflect a packet whose HMAC fails, or
//! die on a datagram it does not like. Every dropped datagram is counted by reason.

pub mod engine;

use std::net::{IpAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::addr;
use crate::crypto::TestCipher;
use crate::net;
use crate::time::{Clock, Timestamp};
use crate::wire::{ReflectorPacket, SenderPacket, Sid, TestLayout};

pub use engine::{Engine, Handler, Owner, Registration};

pub mod light;

/// Why a datagram was not reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the sender packet base of the session's mode.
    Short { len: usize },
    /// At least the base, but shorter than the Session-Sender packet size negotiated in
    /// Request-TW-Session (base + Padding Length). Reflecting it would send more than arrived.
    Undersized { len: usize, want: usize },
    /// Larger than our receive buffer (MSG_TRUNC).
    Oversized,
    /// From an address other than the control connection's peer.
    WrongPeer,
    /// HMAC check failed (authenticated and encrypted modes).
    BadHmac,
    /// The packet asked for no reply (a STAMP Return Path TLV, RFC 9503).
    NoReply,
}

/// Per-session counters, readable while the session runs.
#[derive(Debug, Default)]
pub struct Counters {
    pub reflected: AtomicU64,
    pub short: AtomicU64,
    pub undersized: AtomicU64,
    pub oversized: AtomicU64,
    pub wrong_peer: AtomicU64,
    pub bad_hmac: AtomicU64,
    pub no_reply: AtomicU64,
}

impl Counters {
    pub fn count(&self, r: DropReason) {
        let c = match r {
            DropReason::Short { .. } => &self.short,
            DropReason::Undersized { .. } => &self.undersized,
            DropReason::Oversized => &self.oversized,
            DropReason::WrongPeer => &self.wrong_peer,
            DropReason::BadHmac => &self.bad_hmac,
            DropReason::NoReply => &self.no_reply,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.short.load(Ordering::Relaxed)
            + self.undersized.load(Ordering::Relaxed)
            + self.oversized.load(Ordering::Relaxed)
            + self.wrong_peer.load(Ordering::Relaxed)
            + self.bad_hmac.load(Ordering::Relaxed)
            + self.no_reply.load(Ordering::Relaxed)
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
    /// Boxed: its AES and HMAC state is ~500 octets, and open-mode sessions (most of them)
    /// should not carry that much empty space each.
    cipher: Option<Box<TestCipher>>,
    peer: IpAddr,
    next_seq: u32,
    /// The negotiated Session-Sender packet size; shorter datagrams are dropped.
    sender_len: usize,
}

impl Reflector {
    pub fn new(layout: TestLayout, cipher: Option<TestCipher>, peer: IpAddr) -> Self {
        Reflector {
            layout,
            cipher: cipher.map(Box::new),
            peer: addr::unmap_ip(peer),
            next_seq: 0,
            sender_len: layout.sender.base,
        }
    }

    /// Drops datagrams shorter than `sender_len`, the Session-Sender packet size negotiated
    /// in Request-TW-Session (base + Padding Length).
    pub fn expecting(mut self, sender_len: usize) -> Self {
        self.sender_len = sender_len.max(self.layout.sender.base);
        self
    }

    /// Writes the reflection of `rx` into `out` and returns its length.
    ///
    /// RFC 5357 §4.2.1: the reflected packet carries the reflector's own sequence number, T3,
    /// T2, and the sender's sequence number, timestamp, error estimate and TTL. Its length is
    /// the sender's when the sender's padding allows (the reflector "SHOULD" shorten the
    /// padding by the base-size difference so both directions are equal), else the reflector
    /// base (only when the Control-Client itself negotiated less padding than the difference:
    /// datagrams shorter than the negotiated size are dropped, not padded up); the padding octets are the sender's own, truncated at the end (RFC 5357 §4.2.1
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
        if len < self.sender_len {
            return Err(DropReason::Undersized {
                len,
                want: self.sender_len,
            });
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

/// The smallest datagram a session accepts as not oversized: a full Ethernet-MTU datagram,
/// so a sender whose packets differ a little from the negotiated size is still served.
pub const MIN_BUFFER: usize = 1500;

impl Handler for Reflector {
    fn on_datagram(
        &mut self,
        rx: Received<'_>,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        self.reflect(rx, clock, out)
    }

    /// Datagrams over `max(negotiated size, MIN_BUFFER)` are counted as oversized and dropped.
    fn max_datagram(&self) -> usize {
        self.sender_len.clamp(MIN_BUFFER, net::MAX_DATAGRAM)
    }
}

/// What every reflector of a server shares: the REFWAIT, the clock, the shutdown flag, the
/// count of sessions served, and server-wide totals of the per-session counters.
#[derive(Clone)]
pub struct Context {
    pub refwait: Duration,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Arc<AtomicBool>,
    /// Sessions served now.
    pub live: Arc<AtomicUsize>,
    pub totals: Arc<Counters>,
}

impl Context {
    /// What the engine threads need of it.
    pub fn engine(&self) -> engine::Shared {
        engine::Shared {
            clock: self.clock.clone(),
            shutdown: self.shutdown.clone(),
            live: self.live.clone(),
            totals: self.totals.clone(),
        }
    }
}

/// One session served on an engine of its own: for tests and tools that reflect a single
/// session without a control connection.
pub struct Handle {
    pub sid: Sid,
    pub port: u16,
    pub counters: Arc<Counters>,
    engine: Engine,
}

impl Handle {
    /// Stops reflecting `grace` from now (RFC 5357 §3.8: the reflector keeps reflecting for
    /// the session's Timeout after Stop-Sessions so late packets still come back).
    pub fn stop_after(&self, grace: Duration) {
        self.engine.stop(0, Some(grace));
    }

    /// Stops now and waits for the engine thread.
    pub fn join(self) {
        self.engine.close(0);
        drop(self.engine);
    }
}

/// Serves one session on an engine thread of its own.
///
/// The session ends when told to ([`Handle::stop_after`]), when `shutdown` is set, or after
/// `refwait` without a reflected packet (RFC 5357 §4.2: REFWAIT). `sender_len` is the
/// negotiated Session-Sender packet size (base + Padding Length).
pub fn spawn(
    socket: UdpSocket,
    reflector: Reflector,
    sid: Sid,
    sender_len: usize,
    ctx: &Context,
) -> std::io::Result<Handle> {
    let port = socket.local_addr()?.port();
    let counters = Arc::new(Counters::default());
    let engine = Engine::start(1, ctx.engine())?;
    engine.add(Registration {
        owner: 0,
        name: sid.to_string(),
        socket,
        handler: Box::new(reflector.expecting(sender_len)),
        refwait: Some(ctx.refwait),
        linger: Duration::ZERO,
        counters: counters.clone(),
        activity: None,
        permit: None,
    })?;
    Ok(Handle {
        sid,
        port,
        counters,
        engine,
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
    fn datagrams_under_the_negotiated_size_are_dropped_not_padded_up() {
        let clock = FakeClock::at(Timestamp(1));
        let mut r = Reflector::new(TestLayout::OPEN, None, PEER).expecting(14 + 27);
        let mut out = vec![0u8; 1024];
        for padding in [0usize, 1, 26] {
            let mut rx = sender_packet(0, padding);
            assert_eq!(
                r.reflect(
                    Received {
                        bytes: &mut rx,
                        from: PEER,
                        ttl: None,
                        at: Timestamp(1),
                    },
                    &clock,
                    &mut out
                ),
                Err(DropReason::Undersized {
                    len: 14 + padding,
                    want: 41
                }),
                "{} octets in would have made 41 out",
                14 + padding
            );
        }
        // The negotiated size and more are reflected, never larger than what arrived.
        for padding in [27usize, 28, 500] {
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
            assert_eq!(n, 14 + padding);
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
