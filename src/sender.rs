//! The Session-Sender (RFC 5357 §4.1).
//!
//! [`Sender`] is the sans-IO core of one test session: its [`Schedule`] says when each packet
//! is due, [`Sender::emit`] builds the next packet (T1 read last, immediately before the send),
//! and [`Sender::on_datagram`] checks one received datagram and turns it into a
//! [`stats::Reply`](crate::stats::Reply). No sockets and no clock of its own: tests drive it with
//! a `FakeClock` and made-up instants.
//!
//! [`run`] is the thin loop around any number of senders, one UDP socket each: it waits with
//! ppoll until the next packet is due or a reflection arrives. T4 is the kernel's receive time
//! (SO_TIMESTAMPNS). A TWAMP-Light sender is the same `Sender` without a control connection.
//!
//! Memory: a session keeps one [`Sent`] per packet sent and one [`Reply`] per reflection
//! received, allocated as the packets exist, never up front for the whole count.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::addr;
use crate::crypto::TestCipher;
use crate::error::{Error, Op, Result};
use crate::light::sender::LightSender;
use crate::net::{self, Receiver};
use crate::stats::{Reply, Sent};
use crate::time::{Clock, Timestamp};
use crate::wire::{ReflectorPacket, SenderPacket, TestLayout};

/// When each test packet is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every `interval`, from offset 0 (RFC 3432 periodic streams).
    Periodic { interval: Duration },
    /// Exponentially distributed gaps with mean `mean` (a Poisson stream, RFC 2330 §11.1.1;
    /// twping's `-i 0.1e`), from offset 0.
    Poisson { mean: Duration },
}

impl Schedule {
    /// The mean gap between packets.
    pub fn mean_interval(&self) -> Duration {
        match *self {
            Schedule::Periodic { interval } => interval,
            Schedule::Poisson { mean } => mean,
        }
    }

    /// How long a session of `count` packets sends for, on average (the offset of its last
    /// packet).
    pub fn span(&self, count: u32) -> Duration {
        self.mean_interval().saturating_mul(count.saturating_sub(1))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Schedule::Periodic { .. } => "periodic",
            Schedule::Poisson { .. } => "poisson",
        }
    }
}

/// The planned send offsets of a [`Schedule`], one packet after the other.
#[derive(Debug, Clone)]
pub struct Offsets {
    schedule: Schedule,
    rng: fastrand::Rng,
    /// The offset of the packet due next.
    next: Duration,
    /// Packets whose offsets were handed out.
    k: u32,
}

impl Offsets {
    pub fn new(schedule: Schedule, seed: u64) -> Self {
        Offsets {
            schedule,
            rng: fastrand::Rng::with_seed(seed),
            next: Duration::ZERO,
            k: 0,
        }
    }

    /// The offset of the packet due next.
    pub fn peek(&self) -> Duration {
        self.next
    }

    /// Moves on to the next packet.
    pub fn advance(&mut self) {
        self.k += 1;
        self.next = match self.schedule {
            // From k, not by adding: no drift from rounding however long the run.
            Schedule::Periodic { interval } => interval.saturating_mul(self.k),
            Schedule::Poisson { mean } => {
                // Inverse transform: −ln(U) · mean is exponential for U uniform in (0, 1].
                let u = 1.0 - self.rng.f64();
                let gap = (-u.ln() * mean.as_secs_f64()).min(3600.0);
                self.next.saturating_add(Duration::from_secs_f64(gap))
            }
        };
    }
}

/// What to send in one test session.
pub struct Plan {
    /// The most packets to send.
    pub count: u32,
    pub schedule: Schedule,
    /// Send only packets planned within this long from the start (`-duration`); `None`: all
    /// `count`.
    pub duration: Option<Duration>,
    /// How long to wait for late replies after the last packet.
    pub loss_timeout: Duration,
    /// Padding octets after the sender base.
    pub padding: usize,
    pub layout: TestLayout,
    pub cipher: Option<TestCipher>,
    /// A TWAMP-Light / STAMP session (no control connection): its packets are built and read
    /// by this instead of `layout` and `cipher`.
    pub light: Option<LightSender>,
}

/// What came back, and what was sent, in one test session.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub sent: Vec<Sent>,
    /// Reflections in arrival order.
    pub replies: Vec<Reply>,
    /// Datagrams from an address other than the reflector's.
    pub stray: u64,
    /// Datagrams from the reflector that were too short or failed their HMAC.
    pub malformed: u64,
    /// Wall-clock time of the first send.
    pub first_send: Option<SystemTime>,
    /// Wall-clock time of the last send.
    pub last_send: Option<SystemTime>,
    /// Set when the run was interrupted (SIGINT/SIGTERM) before the plan was done.
    pub interrupted: bool,
    /// How late each packet left against its planned time, in nanoseconds (capped at
    /// `u32::MAX`, about 4.3 s), in send order.
    pub late_ns: Vec<u32>,
}

/// Why a received datagram did not become a [`Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discard {
    /// From an address other than the session's reflector.
    Stray,
    /// Cut by the kernel, shorter than the reflected base, failing its HMAC, or unparsable.
    Malformed,
}

/// One received datagram, as the socket layer saw it.
pub struct Datagram<'a> {
    /// The payload; decrypted in place in the secure modes.
    pub bytes: &'a mut [u8],
    pub from: SocketAddr,
    /// Our receive time (T4): the kernel's, or the clock's right after the read.
    pub at: Timestamp,
    /// TTL / Hop Limit of the reflected packet, when the kernel told us.
    pub ttl: Option<u8>,
    /// The datagram was larger than the buffer (MSG_TRUNC).
    pub truncated: bool,
}

/// The Session-Sender of one test session. No sockets.
pub struct Sender {
    plan: Plan,
    /// The reflector: replies are taken from this address only.
    reflector: SocketAddr,
    start: Instant,
    offsets: Offsets,
    /// The packet being built: header rewritten per packet, padding made once.
    packet: Vec<u8>,
    next: u32,
    /// When the last packet went out: the start of the wait for late replies.
    done_sending_at: Option<Instant>,
    /// One bit per sent sequence number: has a reply come back?
    answered: Vec<u64>,
    answered_count: u32,
    /// When the last outstanding reply came in after everything was sent.
    all_back_at: Option<Instant>,
    /// The longest T4 − T1 seen: how long a late duplicate may still take.
    max_rtt: Duration,
    outcome: Outcome,
}

/// The shortest wait for late duplicates once every packet is back.
const LINGER_MIN: Duration = Duration::from_millis(10);

impl Sender {
    /// A sender whose packet 0 is due at `start`.
    pub fn new(plan: Plan, reflector: SocketAddr, start: Instant) -> Self {
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Self::with_seed(plan, reflector, start, u64::from_le_bytes(seed))
    }

    /// As [`Sender::new`], with the Poisson schedule's random seed given (for tests).
    pub fn with_seed(plan: Plan, reflector: SocketAddr, start: Instant, seed: u64) -> Self {
        let s = plan.layout.sender;
        let packet = match &plan.light {
            // Built whole per packet by the light sender (TLVs, Extra Padding).
            Some(l) => vec![0u8; l.packet_len()],
            None => {
                let mut packet = vec![0u8; s.base + plan.padding];
                // Padding is random, as twping's is, so no compression on the path can shrink
                // it (RFC 4656 §4.1.2 asks for pseudo-random padding). Made once; reused for
                // every packet.
                let _ = getrandom::fill(&mut packet[s.base..]);
                packet
            }
        };
        Sender {
            offsets: Offsets::new(plan.schedule, seed),
            plan,
            reflector: addr::unmap(reflector),
            start,
            packet,
            next: 0,
            done_sending_at: None,
            answered: Vec::new(),
            answered_count: 0,
            all_back_at: None,
            max_rtt: Duration::ZERO,
            outcome: Outcome::default(),
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn reflector(&self) -> SocketAddr {
        self.reflector
    }

    /// The length of every packet this sender emits.
    pub fn packet_len(&self) -> usize {
        self.packet.len()
    }

    /// When the next packet is due; `None` once every packet has been sent.
    pub fn next_due(&self) -> Option<Instant> {
        let offset = self.offsets.peek();
        let within = self.plan.duration.is_none_or(|d| offset < d);
        (self.next < self.plan.count && within).then(|| self.start + offset)
    }

    /// Packets the plan will send: `count`, or fewer when a duration ends it first (for a
    /// Poisson schedule, the expected number).
    pub fn planned(&self) -> u32 {
        match self.plan.duration {
            None => self.plan.count,
            Some(d) => {
                let mean = self.plan.schedule.mean_interval().as_secs_f64().max(1e-9);
                let n = (d.as_secs_f64() / mean).ceil().min(f64::from(u32::MAX)) as u32;
                n.clamp(1, self.plan.count)
            }
        }
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u32 {
        self.next
    }

    /// Packets sent whose reply has not come back.
    pub fn outstanding(&self) -> u32 {
        self.next - self.answered_count
    }

    /// Distinct packets that came back.
    pub fn answered(&self) -> u32 {
        self.answered_count
    }

    /// When the wait for late replies ends; `None` while packets remain to be sent.
    ///
    /// The wait is the loss timeout after the last send, cut short once every packet is back:
    /// then only late duplicates can still come, and we give them two of the longest round
    /// trips seen (at least 10 ms, at most the loss timeout), not the whole timeout.
    pub fn wait_until(&self) -> Option<Instant> {
        let timeout = self.done_sending_at? + self.plan.loss_timeout;
        let linger = (self.max_rtt * 2).clamp(LINGER_MIN, self.plan.loss_timeout.max(LINGER_MIN));
        Some(match self.all_back_at {
            Some(t) => timeout.min(t + linger),
            None => timeout,
        })
    }

    /// Whether the session is over at `now`: everything sent, and the wait for late replies
    /// over (see [`Sender::wait_until`]).
    pub fn is_done(&self, now: Instant) -> bool {
        self.wait_until().is_some_and(|until| now >= until)
    }

    /// Builds the next packet into `buf` and records it as sent; returns its length. The
    /// caller sends it right away: T1 is read as the last step before encryption.
    ///
    /// # Panics
    /// If `buf` is shorter than [`Sender::packet_len`], or every packet was sent already.
    pub fn emit(&mut self, now: Instant, clock: &dyn Clock, buf: &mut [u8]) -> Result<usize> {
        let due = self.next_due().expect("emit after the last packet");
        let len = self.packet.len();
        let out = &mut buf[..len];
        if let Some(l) = &self.plan.light {
            // S_TxC (RFC 8972 §4.5): packets sent before this one, plus one.
            l.emit(self.next, self.next.wrapping_add(1), out)
                .map_err(|e| Error::Protocol(e.to_string()))?;
            let t1 = clock.now();
            let error_estimate = clock.error_estimate();
            l.stamp(out, t1, error_estimate);
            self.record_sent(
                now,
                due,
                Sent {
                    seq: self.next,
                    t1,
                    t1_err: error_estimate,
                },
            );
            return Ok(len);
        }
        let s = self.plan.layout.sender;
        out.copy_from_slice(&self.packet);
        let mut p = SenderPacket {
            seq: self.next,
            timestamp: Timestamp::default(),
            error_estimate: clock.error_estimate(),
        };
        p.emit(out, &s)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        // T1 as late as possible: after the packet is built, right before the send.
        // (Encrypted mode must seal after the timestamp, so it reads the clock first.)
        p.timestamp = clock.now();
        p.emit_timestamp(out, &s);
        if let Some(c) = &self.plan.cipher {
            c.seal_sender(out)
                .map_err(|e| Error::Protocol(e.to_string()))?;
        }
        self.record_sent(
            now,
            due,
            Sent {
                seq: p.seq,
                t1: p.timestamp,
                t1_err: p.error_estimate,
            },
        );
        Ok(len)
    }

    fn record_sent(&mut self, now: Instant, due: Instant, sent: Sent) {
        self.outcome.sent.push(sent);
        let late = now.saturating_duration_since(due).as_nanos();
        self.outcome
            .late_ns
            .push(u32::try_from(late).unwrap_or(u32::MAX));
        if self.next == 0 {
            self.outcome.first_send = Some(SystemTime::now());
        }
        self.next += 1;
        self.offsets.advance();
        if self.next_due().is_none() {
            self.done_sending_at = Some(now);
            self.outcome.last_send = Some(SystemTime::now());
        }
    }

    /// Checks one received datagram; a reflection becomes a [`Reply`], recorded in the
    /// outcome. T4's Error Estimate is `clock`'s.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        d: Datagram<'_>,
        clock: &dyn Clock,
    ) -> std::result::Result<Reply, Discard> {
        if addr::unmap(d.from) != self.reflector {
            self.outcome.stray += 1;
            return Err(Discard::Stray);
        }
        match self.parse_reflection(d, clock) {
            Some(reply) => {
                self.mark_answered(reply.sender_seq);
                // T4 − T1 on our own clock (T1 as echoed; a lying reflector can only make us
                // linger longer, never past the loss timeout).
                let rtt = reply.t4.diff_nanos(reply.t1).clamp(0, i64::MAX) as u64;
                self.max_rtt = self.max_rtt.max(Duration::from_nanos(rtt));
                if self.done_sending_at.is_some() && self.outstanding() == 0 {
                    self.all_back_at.get_or_insert(now);
                }
                self.outcome.replies.push(reply);
                Ok(reply)
            }
            None => {
                self.outcome.malformed += 1;
                Err(Discard::Malformed)
            }
        }
    }

    fn parse_reflection(&self, d: Datagram<'_>, clock: &dyn Clock) -> Option<Reply> {
        if let Some(l) = &self.plan.light {
            if d.truncated {
                return None;
            }
            let p = l.parse_reply(d.bytes).ok()?;
            return Some(p.to_stats(d.at, clock.error_estimate(), d.ttl));
        }
        let r = self.plan.layout.reflector;
        if d.truncated || d.bytes.len() < r.base {
            return None;
        }
        if let Some(c) = &self.plan.cipher {
            c.open_reflected(d.bytes).ok()?;
        }
        let p = ReflectorPacket::parse(d.bytes, &r).ok()?;
        Some(Reply {
            sender_seq: p.sender_seq,
            reflector_seq: p.seq,
            t1: p.sender_timestamp,
            t1_err: p.sender_error_estimate,
            t2: p.receive_timestamp,
            t2_err: p.error_estimate,
            t3: p.timestamp,
            t3_err: p.error_estimate,
            t4: d.at,
            t4_err: clock.error_estimate(),
            sender_ttl: p.sender_ttl,
            ttl: d.ttl,
        })
    }

    fn mark_answered(&mut self, seq: u32) {
        // Only numbers we sent count; a reflector echoing others is counted by the stats.
        if seq >= self.next {
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.answered.len() <= word {
            self.answered.resize(word + 1, 0);
        }
        if self.answered[word] & (1 << bit) == 0 {
            self.answered[word] |= 1 << bit;
            self.answered_count += 1;
        }
    }

    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    pub fn into_outcome(self) -> Outcome {
        self.outcome
    }
}

/// A [`Sender`] with its socket: what [`run`] drives.
pub struct Session {
    pub sender: Sender,
    pub socket: UdpSocket,
    /// The reflector as `send_to` wants it on this socket (v4-mapped on a dual-stack socket).
    dest: SocketAddr,
}

impl Session {
    pub fn new(sender: Sender, socket: UdpSocket) -> Self {
        let v6 = socket.local_addr().is_ok_and(|a| a.is_ipv6());
        let dest = addr::destination(sender.reflector(), v6);
        Session {
            sender,
            socket,
            dest,
        }
    }
}

/// What a progress line needs, summed over the sessions of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub sent: u64,
    pub planned: u64,
    pub received: u64,
    /// Once everything is sent: how many replies are still out, and how long we wait at most.
    pub waiting: Option<(u64, Duration)>,
}

impl Progress {
    fn of(sessions: &[Session], now: Instant) -> Self {
        let mut p = Progress {
            sent: 0,
            planned: 0,
            received: 0,
            waiting: None,
        };
        let mut all_sent = true;
        let mut left = Duration::ZERO;
        let mut outstanding = 0u64;
        for s in sessions {
            let x = &s.sender;
            p.sent += u64::from(x.sent());
            p.planned += u64::from(x.planned().max(x.sent()));
            p.received += u64::from(x.answered());
            match x.wait_until() {
                Some(until) if !x.is_done(now) => {
                    outstanding += u64::from(x.outstanding());
                    left = left.max(until.saturating_duration_since(now));
                }
                Some(_) => {}
                None => all_sent = false,
            }
        }
        if all_sent && outstanding > 0 {
            p.waiting = Some((outstanding, left));
        }
        p
    }
}

/// How often `watch` and `progress` are called at most.
const WATCH_EVERY: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// The longest a wait lasts, so the stop flag is seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(200);
/// How long before a packet is due the loop stops sleeping and polls without blocking. A
/// ppoll wake-up comes tens of microseconds late even with the timer slack at 1 ns; twping
/// likewise does not sleep when the next send is under a millisecond away.
const SPIN_AHEAD: Duration = Duration::from_micros(100);

/// Runs every session's schedule on its socket until each is done (all sent, and all back or
/// its loss timeout over), `stop` is set, or `watch` fails.
///
/// `watch` is called every 100 ms; an error from it (the Server closed the control connection)
/// ends the run early. The sessions keep what they measured whatever the result.
pub fn run(
    sessions: &mut [Session],
    clock: &dyn Clock,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
    mut watch: impl FnMut() -> Result<()>,
) -> Result<()> {
    let mut tx = vec![
        0u8;
        sessions
            .iter()
            .map(|s| s.sender.packet_len())
            .max()
            .unwrap_or(0)
    ];
    let mut rx = vec![0u8; net::MAX_DATAGRAM];
    let mut receiver = Receiver::new();
    for s in sessions.iter() {
        // Reads after ppoll said readable do not block; the timeout is only a safety net.
        s.socket
            .set_read_timeout(Some(Duration::from_millis(1)))
            .map_err(|e| Error::io(Op::SetSockopt, Some(s.sender.reflector()), e))?;
    }
    // The kernel's default timer slack (50 µs) would make every wake-up that late.
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        log::debug!("cannot set the timer slack: {e}");
    }
    let mut last_progress = Instant::now();
    let mut last_watch = Instant::now();
    loop {
        if last_watch.elapsed() >= WATCH_EVERY {
            last_watch = Instant::now();
            watch()?;
        }
        if stop.load(Ordering::Relaxed) {
            for s in sessions.iter_mut() {
                s.sender.outcome.interrupted = s.sender.next_due().is_some();
            }
            return Ok(());
        }
        let now = Instant::now();
        // Send whatever is due, every session.
        let mut sent_any = false;
        for s in sessions.iter_mut() {
            if s.sender.next_due().is_some_and(|due| now >= due) {
                let seq = s.sender.sent();
                let n = s.sender.emit(now, clock, &mut tx)?;
                // A refused port (ICMP) or a full buffer loses this packet; it is counted as
                // lost, the run goes on.
                if let Err(e) = s.socket.send_to(&tx[..n], s.dest) {
                    log::debug!("send seq {seq} to {}: {e}", s.dest);
                }
                sent_any = true;
            }
        }
        if sent_any {
            continue;
        }
        if sessions.iter().all(|s| s.sender.is_done(now)) {
            return Ok(());
        }
        // Sleep until shortly before the next packet is due, or until the earliest wait for
        // late replies ends, whichever first; close to a send, only poll.
        let next_send = sessions.iter().filter_map(|s| s.sender.next_due()).min();
        let next_end = sessions
            .iter()
            .filter(|s| !s.sender.is_done(now) && s.sender.next_due().is_none())
            .filter_map(|s| s.sender.wait_until())
            .min();
        let to_send = next_send.map(|t| t.saturating_duration_since(now));
        let wait = match to_send {
            Some(d) if d <= SPIN_AHEAD => Duration::ZERO,
            _ => [
                to_send.map(|d| d - SPIN_AHEAD),
                next_end.map(|t| t.saturating_duration_since(now)),
                Some(MAX_WAIT),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(MAX_WAIT),
        };
        let ready = net::wait_readable_any(sessions.iter().map(|s| &s.socket), wait)
            .map_err(|e| Error::io(Op::Poll, None, e))?;
        for (s, is_ready) in sessions.iter_mut().zip(ready) {
            if is_ready {
                drain(s, clock, &mut receiver, &mut rx)?;
            }
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            progress(&Progress::of(sessions, Instant::now()));
            last_progress = Instant::now();
        }
    }
}

/// Reads everything queued on one session's socket.
fn drain(s: &mut Session, clock: &dyn Clock, rx: &mut Receiver, buf: &mut [u8]) -> Result<()> {
    loop {
        let meta = match rx.recv(&s.socket, buf) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            // ICMP port unreachable after an earlier send: the reflector is gone. The packets
            // count as lost; the control connection tells why.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
            Err(e) => return Err(Error::io(Op::Recv, Some(s.sender.reflector()), e)),
        };
        let d = Datagram {
            bytes: &mut buf[..meta.len],
            from: meta.from,
            at: meta.at,
            ttl: meta.ttl,
            truncated: meta.truncated,
        };
        let _ = s.sender.on_datagram(Instant::now(), d, clock);
        if !net::wait_readable(&s.socket, Duration::ZERO)
            .map_err(|e| Error::io(Op::Poll, Some(s.sender.reflector()), e))?
        {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{ErrorEstimate, FakeClock};

    const REFLECTOR: &str = "192.0.2.7:18760";

    fn plan(count: u32, interval_ms: u64) -> Plan {
        Plan {
            count,
            schedule: Schedule::Periodic {
                interval: Duration::from_millis(interval_ms),
            },
            duration: None,
            loss_timeout: Duration::from_secs(2),
            padding: 27,
            layout: TestLayout::OPEN,
            cipher: None,
            light: None,
        }
    }

    #[test]
    fn poisson_gaps_are_exponential_with_the_asked_mean() {
        let mean = Duration::from_millis(10);
        let mut o = Offsets::new(Schedule::Poisson { mean }, 42);
        let mut gaps = Vec::new();
        for _ in 0..20_000 {
            let before = o.peek();
            o.advance();
            gaps.push((o.peek() - before).as_secs_f64());
        }
        let n = gaps.len() as f64;
        let m = gaps.iter().sum::<f64>() / n;
        assert!((m - 0.010).abs() < 0.010 * 0.03, "mean gap {m}");
        // Exponential: the standard deviation equals the mean, and P(gap > mean) = 1/e.
        let sd = (gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        assert!((sd / m - 1.0).abs() < 0.05, "sd/mean {}", sd / m);
        let over = gaps.iter().filter(|g| **g > 0.010).count() as f64 / n;
        assert!((over - (-1f64).exp()).abs() < 0.02, "P(gap > mean) {over}");
        // The same seed gives the same stream; another seed another.
        let first = |seed| {
            let mut o = Offsets::new(Schedule::Poisson { mean }, seed);
            o.advance();
            o.peek()
        };
        assert_eq!(first(7), first(7));
        assert_ne!(first(7), first(8));
    }

    #[test]
    fn a_duration_ends_the_schedule_before_the_count() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let mut p = plan(1000, 10);
        p.duration = Some(Duration::from_millis(35));
        let mut s = Sender::new(p, REFLECTOR.parse().unwrap(), t0);
        assert_eq!(s.planned(), 4);
        let mut buf = [0u8; 64];
        while let Some(due) = s.next_due() {
            s.emit(due + Duration::from_micros(3), &clock, &mut buf)
                .unwrap();
        }
        assert_eq!(s.sent(), 4, "offsets 0, 10, 20, 30 ms fall within 35 ms");
        assert_eq!(
            s.outcome().late_ns,
            vec![3000; 4],
            "lateness against the plan"
        );
        assert!(s.wait_until().is_some());
    }

    /// The reflection of sender packet `sent` (as emitted), reflector number `rseq`.
    fn reflection(sent: &[u8], rseq: u32) -> Vec<u8> {
        let p = SenderPacket::parse(sent, &TestLayout::OPEN.sender).unwrap();
        let mut out = vec![0u8; 41];
        ReflectorPacket {
            seq: rseq,
            timestamp: Timestamp::new(200, 0),
            error_estimate: ErrorEstimate(0x8001),
            receive_timestamp: Timestamp::new(199, 0),
            sender_seq: p.seq,
            sender_timestamp: p.timestamp,
            sender_error_estimate: p.error_estimate,
            sender_ttl: 250,
        }
        .emit(&mut out, &TestLayout::OPEN.reflector)
        .unwrap();
        out
    }

    fn datagram<'a>(bytes: &'a mut [u8], from: &str) -> Datagram<'a> {
        Datagram {
            bytes,
            from: from.parse().unwrap(),
            at: Timestamp::new(201, 0),
            ttl: Some(60),
            truncated: false,
        }
    }

    #[test]
    fn periodic_schedule_and_t1_from_the_clock() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let mut s = Sender::new(plan(3, 10), REFLECTOR.parse().unwrap(), t0);
        let mut buf = [0xa5u8; 64];
        for k in 0..3u32 {
            let due = s.next_due().unwrap();
            assert_eq!(due, t0 + Duration::from_millis(10 * u64::from(k)));
            clock.advance(Duration::from_millis(10));
            assert_eq!(s.emit(due, &clock, &mut buf).unwrap(), 41);
            let p = SenderPacket::parse(&buf[..41], &TestLayout::OPEN.sender).unwrap();
            assert_eq!(p.seq, k);
            assert_eq!(p.timestamp, clock.now(), "T1 is the clock at emit");
            assert_eq!(s.outcome().sent[k as usize].t1, clock.now());
        }
        assert_eq!(s.next_due(), None);
        assert_eq!(s.outstanding(), 3);
        assert_eq!(
            s.wait_until(),
            Some(t0 + Duration::from_millis(20) + Duration::from_secs(2))
        );
        let later = t0 + Duration::from_millis(100);
        assert!(!s.is_done(later), "replies outstanding, timeout not over");
        assert!(s.is_done(t0 + Duration::from_secs(3)), "loss timeout over");
    }

    #[test]
    fn done_as_soon_as_every_reply_is_back() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let mut s = Sender::new(plan(2, 10), REFLECTOR.parse().unwrap(), t0);
        let mut sent = Vec::new();
        for _ in 0..2 {
            let mut buf = [0u8; 64];
            let n = s.emit(s.next_due().unwrap(), &clock, &mut buf).unwrap();
            sent.push(buf[..n].to_vec());
        }
        let now = t0 + Duration::from_millis(11);
        for (i, p) in sent.iter().enumerate() {
            assert!(!s.is_done(now));
            let mut r = reflection(p, i as u32);
            let reply = s
                .on_datagram(t0, datagram(&mut r, REFLECTOR), &clock)
                .unwrap();
            assert_eq!(reply.sender_seq, i as u32);
            assert_eq!(reply.reflector_seq, i as u32);
            assert_eq!(reply.t4, Timestamp::new(201, 0), "T4 from the socket");
            assert_eq!(reply.ttl, Some(60));
            assert_eq!(reply.sender_ttl, 250);
        }
        assert_eq!(s.outstanding(), 0);
        // Nothing outstanding: only a short linger for late duplicates, not the loss timeout.
        // (The made-up reflection's T4 is 101 s after T1, so the linger is at its cap.)
        assert!(!s.is_done(t0));
        assert!(s.is_done(t0 + Duration::from_secs(2)));
        // A duplicate is recorded but does not count twice.
        let mut r = reflection(&sent[0], 0);
        s.on_datagram(t0, datagram(&mut r, REFLECTOR), &clock)
            .unwrap();
        assert_eq!(s.answered(), 2);
        assert_eq!(s.outcome().replies.len(), 3);
    }

    #[test]
    fn the_linger_after_the_last_reply_is_two_round_trips() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let mut s = Sender::new(plan(1, 10), REFLECTOR.parse().unwrap(), t0);
        let mut buf = [0u8; 64];
        let n = s.emit(t0, &clock, &mut buf).unwrap();
        let mut r = reflection(&buf[..n], 0);
        let mut d = datagram(&mut r, REFLECTOR);
        d.at = Timestamp(
            Timestamp::new(100, 0).0 + Timestamp::from_duration(Duration::from_millis(20)).0,
        ); // T4 − T1 = 20 ms
        let back = t0 + Duration::from_millis(21);
        s.on_datagram(back, d, &clock).unwrap();
        assert_eq!(s.wait_until(), Some(back + Duration::from_millis(40)));
        assert!(!s.is_done(back + Duration::from_millis(39)));
        assert!(s.is_done(back + Duration::from_millis(40)));
    }

    #[test]
    fn strangers_short_and_bad_datagrams_are_discarded() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let mut s = Sender::new(plan(1, 10), REFLECTOR.parse().unwrap(), t0);
        let mut buf = [0u8; 64];
        let n = s.emit(t0, &clock, &mut buf).unwrap();
        let mut r = reflection(&buf[..n], 0);
        assert_eq!(
            s.on_datagram(t0, datagram(&mut r, "192.0.2.8:18760"), &clock),
            Err(Discard::Stray)
        );
        assert_eq!(
            s.on_datagram(t0, datagram(&mut r, "192.0.2.7:18761"), &clock),
            Err(Discard::Stray),
            "another port of the reflector's host is a stranger too"
        );
        for len in [0, 1, 14, 40] {
            let mut short = r[..len].to_vec();
            assert_eq!(
                s.on_datagram(t0, datagram(&mut short, REFLECTOR), &clock),
                Err(Discard::Malformed),
                "{len} octets"
            );
        }
        let mut cut = r.clone();
        let mut d = datagram(&mut cut, REFLECTOR);
        d.truncated = true;
        assert_eq!(s.on_datagram(t0, d, &clock), Err(Discard::Malformed));
        assert_eq!(s.outcome().stray, 2);
        assert_eq!(s.outcome().malformed, 5);
        assert_eq!(s.outstanding(), 1, "nothing above counted as a reply");
        // The v4-mapped form of the reflector is the reflector.
        s.on_datagram(t0, datagram(&mut r, "[::ffff:192.0.2.7]:18760"), &clock)
            .unwrap();
        assert_eq!(s.outstanding(), 0);
    }

    #[test]
    fn replies_for_numbers_never_sent_do_not_count_as_answers() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let mut s = Sender::new(plan(2, 10), REFLECTOR.parse().unwrap(), t0);
        let mut buf = [0u8; 64];
        let n = s.emit(t0, &clock, &mut buf).unwrap();
        let mut bogus = buf[..n].to_vec();
        bogus[..4].copy_from_slice(&7u32.to_be_bytes());
        let mut r = reflection(&bogus, 0);
        s.on_datagram(t0, datagram(&mut r, REFLECTOR), &clock)
            .unwrap();
        assert_eq!(s.answered(), 0);
        assert_eq!(s.outstanding(), 1);
    }

    #[test]
    fn memory_grows_with_packets_sent_not_with_the_count() {
        let s = Sender::new(
            plan(4_000_000_000, 10),
            REFLECTOR.parse().unwrap(),
            Instant::now(),
        );
        assert_eq!(s.outcome().sent.capacity(), 0);
        assert_eq!(s.outcome().replies.capacity(), 0);
        assert!(s.answered.capacity() == 0);
    }

    #[test]
    fn progress_says_when_it_waits_for_late_replies() {
        let t0 = Instant::now();
        let clock = FakeClock::at(Timestamp::new(100, 0));
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut s = Session::new(
            Sender::new(plan(2, 10), REFLECTOR.parse().unwrap(), t0),
            sock,
        );
        let mut buf = [0u8; 64];
        s.sender.emit(t0, &clock, &mut buf).unwrap();
        let p = Progress::of(std::slice::from_ref(&s), t0);
        assert_eq!((p.sent, p.planned, p.received, p.waiting), (1, 2, 0, None));
        let t1 = t0 + Duration::from_millis(10);
        s.sender.emit(t1, &clock, &mut buf).unwrap();
        let p = Progress::of(std::slice::from_ref(&s), t1 + Duration::from_millis(500));
        assert_eq!(p.waiting, Some((2, Duration::from_millis(1500))));
    }
}
