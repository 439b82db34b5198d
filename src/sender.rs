//! The Session-Sender (RFC 5357 §4.1): sends test packets on schedule and collects the
//! reflections, on one blocking UDP socket. Timestamps: T1 is read immediately before each send;
//! T4 is the kernel's receive time (SO_TIMESTAMPNS).

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::addr;
use crate::crypto::TestCipher;
use crate::error::{Error, Op, Result};
use crate::net::{self, Receiver};
use crate::stats::{Reply, Sent};
use crate::time::Clock;
use crate::wire::{ReflectorPacket, SenderPacket, TestLayout};

/// What to send.
pub struct Plan {
    pub count: u32,
    pub interval: Duration,
    /// How long to wait for late replies after the last packet.
    pub loss_timeout: Duration,
    /// Padding octets after the sender base.
    pub padding: usize,
    pub layout: TestLayout,
    pub cipher: Option<TestCipher>,
}

/// What came back.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub sent: Vec<Sent>,
    /// Reflections in arrival order.
    pub replies: Vec<Reply>,
    /// Datagrams from an address other than the reflector's.
    pub stray: u64,
    /// Datagrams from the reflector that were too short or failed their HMAC.
    pub malformed: u64,
    /// Wall-clock time of the first send and of the end of the wait.
    pub first_send: Option<SystemTime>,
    pub last_send: Option<SystemTime>,
    /// Set when the run was interrupted (SIGINT/SIGTERM) before the plan was done.
    pub interrupted: bool,
}

/// Runs the schedule: `plan.count` packets every `plan.interval`, then waits `loss_timeout`.
///
/// `watch` is called every 100 ms; an error from it (the Server closed the control connection)
/// ends the run early. The packets measured so far come back whatever the result.
pub fn run(
    sock: &UdpSocket,
    to: SocketAddr,
    plan: &Plan,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: impl FnMut(&Outcome),
    watch: impl FnMut() -> Result<()>,
) -> (Outcome, Result<()>) {
    let mut out = Outcome {
        sent: Vec::with_capacity(plan.count as usize),
        replies: Vec::with_capacity(plan.count as usize),
        ..Outcome::default()
    };
    let result = run_into(&mut out, sock, to, plan, clock, stop, progress, watch);
    (out, result)
}

#[allow(clippy::too_many_arguments)]
fn run_into(
    out: &mut Outcome,
    sock: &UdpSocket,
    to: SocketAddr,
    plan: &Plan,
    clock: &dyn Clock,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Outcome),
    mut watch: impl FnMut() -> Result<()>,
) -> Result<()> {
    let (s, r) = (plan.layout.sender, plan.layout.reflector);

    let mut tx = vec![0u8; s.base + plan.padding];
    // Padding is random, as twping's is, so no compression on the path can shrink it
    // (RFC 4656 §4.1.2 asks for pseudo-random padding). Made once; reused for every packet.
    let _ = getrandom::fill(&mut tx[s.base..]);
    let mut rx = vec![0u8; net::MAX_DATAGRAM];
    let mut receiver = Receiver::new();
    // Reads after ppoll said readable do not block; the timeout is only a safety net.
    sock.set_read_timeout(Some(Duration::from_millis(1)))
        .map_err(|e| Error::io(Op::SetSockopt, Some(to), e))?;
    let to = addr::unmap(to);
    let dest = addr::destination(to, sock.local_addr().is_ok_and(|a| a.is_ipv6()));

    let start = Instant::now();
    let mut next = 0u32;
    let mut done_sending_at: Option<Instant> = None;
    let mut last_progress = Instant::now();
    let mut last_watch = Instant::now();
    loop {
        if last_watch.elapsed() >= Duration::from_millis(100) {
            last_watch = Instant::now();
            watch()?;
        }
        if stop.load(Ordering::Relaxed) {
            out.interrupted = next < plan.count;
            break;
        }
        let now = Instant::now();
        if next < plan.count {
            let due = start + plan.interval * next;
            if now >= due {
                let mut p = SenderPacket {
                    seq: next,
                    timestamp: clock.now(),
                    error_estimate: clock.error_estimate(),
                };
                p.emit(&mut tx, &s)
                    .map_err(|e| Error::Protocol(e.to_string()))?;
                // T1 as late as possible: after the packet is built, right before the send.
                // (Encrypted mode must seal after the timestamp, so it reads the clock first.)
                p.timestamp = clock.now();
                p.emit_timestamp(&mut tx, &s);
                if let Some(c) = &plan.cipher {
                    c.seal_sender(&mut tx)
                        .map_err(|e| Error::Protocol(e.to_string()))?;
                }
                match sock.send_to(&tx, dest) {
                    Ok(_) => {}
                    // A refused port (ICMP) or a full buffer loses this packet; it is counted
                    // as lost, the run goes on.
                    Err(e) => log::debug!("send seq {next} to {to}: {e}"),
                }
                out.sent.push(Sent {
                    seq: next,
                    t1: p.timestamp,
                    t1_err: p.error_estimate,
                });
                if next == 0 {
                    out.first_send = Some(SystemTime::now());
                }
                next += 1;
                if next == plan.count {
                    done_sending_at = Some(Instant::now());
                    out.last_send = Some(SystemTime::now());
                }
                continue;
            }
        }
        let until = match done_sending_at {
            Some(t) => t + plan.loss_timeout,
            None => start + plan.interval * next,
        };
        // The whole loss timeout is waited out even when every packet is back: late duplicates
        // are part of the measurement.
        if done_sending_at.is_some() && now >= until {
            break;
        }
        let wait = until
            .saturating_duration_since(now)
            .min(Duration::from_millis(200));
        if !net::wait_readable(sock, wait).map_err(|e| Error::io(Op::Poll, Some(to), e))? {
            continue;
        }
        // Drain everything that is queued.
        loop {
            let meta = match receiver.recv(sock, &mut rx) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                // ICMP port unreachable after an earlier send: the reflector is gone. The
                // packets count as lost; the control connection tells why.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
                Err(e) => return Err(Error::io(Op::Recv, Some(to), e)),
            };
            if meta.from != to {
                out.stray += 1;
                continue;
            }
            let bytes = &mut rx[..meta.len];
            if meta.truncated || bytes.len() < r.base {
                out.malformed += 1;
                continue;
            }
            if let Some(c) = &plan.cipher {
                if c.open_reflected(bytes).is_err() {
                    out.malformed += 1;
                    continue;
                }
            }
            let Ok(p) = ReflectorPacket::parse(bytes, &r) else {
                out.malformed += 1;
                continue;
            };
            out.replies.push(Reply {
                sender_seq: p.sender_seq,
                reflector_seq: p.seq,
                t1: p.sender_timestamp,
                t1_err: p.sender_error_estimate,
                t2: p.receive_timestamp,
                t2_err: p.error_estimate,
                t3: p.timestamp,
                t3_err: p.error_estimate,
                t4: meta.at,
                t4_err: clock.error_estimate(),
                sender_ttl: p.sender_ttl,
                ttl: meta.ttl,
            });
            if !net::wait_readable(sock, Duration::ZERO)
                .map_err(|e| Error::io(Op::Poll, Some(to), e))?
            {
                break;
            }
        }
        if last_progress.elapsed() >= Duration::from_millis(500) {
            progress(out);
            last_progress = Instant::now();
        }
    }
    Ok(())
}
