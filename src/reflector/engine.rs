//! The reflector engine: a small fixed set of threads, each a blocking `epoll_wait` over the
//! sockets of many sessions, instead of a thread per session.
//!
//! Invariants:
//! - A session costs its socket and one table entry; the receive and transmit buffers belong
//!   to the engine thread (one `recvmmsg` batch of 16 slots and one transmit buffer, only
//!   the octets used resident), not to the session.
//! - What a socket's datagrams mean is its [`Handler`]'s business: a TWAMP session's
//!   [`Reflector`](super::Reflector) (one sender, checked against the control peer), or later a
//!   TWAMP-Light/STAMP reflector (one socket, many senders). The engine only reads, hands the
//!   datagram over with its kernel receive time and TTL, and sends the reply to the source.
//! - T2 is the kernel's receive time (SO_TIMESTAMPNS) and T3 is read by the handler as the last
//!   thing before the send, exactly as with a thread per session.
//! - Start, stop, REFWAIT and teardown are messages ([`Msg`]) on a channel, with an eventfd in
//!   the epoll set to wake the thread. Closing a connection frees all its sessions in one
//!   message, at once.
//! - REFWAIT and the connection's SERVWAIT activity count only datagrams the handler answers:
//!   a stranger's datagram (wrong peer), a short or bad-HMAC one keeps nothing alive.
//! - Timers (REFWAIT, the Timeout after Stop-Sessions) are checked in a sweep every
//!   [`SWEEP`]; the per-packet path reads no clock besides the handler's T3.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{Counters, DropReason, Received};
use crate::addr;
use crate::net::{self, BatchReceiver, Meta};
use crate::time::Clock;
use crate::wire::TestLayout;

/// How often an engine thread looks at its sessions' timers and the shutdown flag.
pub const SWEEP: Duration = Duration::from_millis(100);

/// Datagrams read from one socket before the thread turns to the next ready one, so one busy
/// session cannot starve the others.
const BUDGET: usize = 64;

/// SO_SNDBUF of served sockets.
const SNDBUF: usize = 1 << 20;

/// Epoll data of the wake-up eventfd; sessions use their table slot and generation.
const WAKE: u64 = u64::MAX;

/// What handles the datagrams arriving on one socket.
pub trait Handler: Send {
    /// Writes the reply to `rx` into `out` and returns its length, or says why there is none.
    /// Only answered datagrams keep the socket's session alive (REFWAIT, SERVWAIT).
    fn on_datagram(
        &mut self,
        rx: Received<'_>,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason>;

    /// The largest datagram served; longer ones are dropped as oversized.
    fn max_datagram(&self) -> usize;

    /// The TOS the last reply should go out with, if not the socket's (a TWAMP-Light / STAMP
    /// reflector answers each sender with the DSCP it received, or the one a Class of Service
    /// TLV asks for). TWAMP sessions send with the DSCP of their Type-P Descriptor, set on the
    /// socket.
    fn reply_tos(&self) -> Option<u8> {
        None
    }

    /// As [`Handler::on_datagram`], with what else the kernel said: the source port and the
    /// TOS (a TWAMP-Light / STAMP reflector keys its senders by address and port and reports
    /// the DSCP it received), and the local port. A TWAMP session needs none of it.
    fn on_datagram_meta(
        &mut self,
        rx: Received<'_>,
        _meta: &net::Meta,
        _local_port: u16,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        self.on_datagram(rx, clock, out)
    }
}

/// Who a socket belongs to: one control connection (or one TWAMP-Light service). Stop and
/// close act on all of an owner's sockets at once.
pub type Owner = u64;

/// A socket to serve.
pub struct Registration {
    pub owner: Owner,
    /// For log lines: the SID, or a service name.
    pub name: String,
    pub socket: UdpSocket,
    pub handler: Box<dyn Handler>,
    /// REFWAIT: how long without a datagram from the sender before the session ends; `None`
    /// for a service that never ends on silence.
    pub refwait: Option<Duration>,
    /// How long to go on after [`Engine::stop`] (the session's Timeout, RFC 5357 §3.8).
    pub linger: Duration,
    pub counters: Arc<Counters>,
    /// Unix milliseconds of the latest datagram from the sender, shared with the control
    /// connection for SERVWAIT.
    pub activity: Option<Arc<AtomicU64>>,
    /// Held as long as the socket is served; dropping it gives the session's slot back.
    pub permit: Option<Box<dyn Send>>,
}

/// A message to an engine thread.
enum Msg {
    Add(Box<Registration>),
    /// Stop the owner's sockets after `grace`, or after each one's linger when `None`.
    Stop {
        owner: Owner,
        grace: Option<Duration>,
        /// Only the socket registered under this name (RFC 5938 Stop-N-Sessions), or all.
        name: Option<String>,
    },
    /// Drop the owner's sockets now.
    Close {
        owner: Owner,
    },
}

struct Worker {
    tx: mpsc::Sender<Msg>,
    wake: Arc<EventFd>,
    /// Sockets this thread serves now.
    load: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

/// A handle to the engine threads. Dropping it stops them and frees every socket.
pub struct Engine {
    workers: Vec<Worker>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
}

/// What the engine threads share with the server.
#[derive(Clone)]
pub struct Shared {
    pub clock: Arc<dyn Clock>,
    /// Set by the server on shutdown: the threads end within one [`SWEEP`].
    pub shutdown: Arc<AtomicBool>,
    /// Sockets served now, over all threads.
    pub live: Arc<AtomicUsize>,
    pub totals: Arc<Counters>,
}

impl Engine {
    /// Starts `threads` engine threads (at least one).
    pub fn start(threads: usize, shared: Shared) -> io::Result<Engine> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
            let wake = Arc::new(
                EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                    .map_err(io::Error::from)?,
            );
            epoll
                .add(&*wake, EpollEvent::new(EpollFlags::EPOLLIN, WAKE))
                .map_err(io::Error::from)?;
            let (tx, rx) = mpsc::channel();
            let load = Arc::new(AtomicUsize::new(0));
            let mut t = Thread {
                epoll,
                wake: wake.clone(),
                rx,
                table: Vec::new(),
                free: Vec::new(),
                shared: shared.clone(),
                stop: stop.clone(),
                load: load.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("engine-{i}"))
                .stack_size(128 * 1024)
                .spawn(move || t.run())?;
            workers.push(Worker {
                tx,
                wake,
                load,
                thread: Some(thread),
            });
        }
        Ok(Engine {
            workers,
            stop,
            live: shared.live,
        })
    }

    /// `false` when the thread is gone (it ended on shutdown, or a bug made it panic).
    fn send(&self, w: &Worker, m: Msg) -> bool {
        if w.tx.send(m).is_err() {
            return false;
        }
        let _ = w.wake.write(1);
        true
    }

    /// Serves a socket from now on, on the least loaded thread. The socket is made
    /// non-blocking here.
    pub fn add(&self, reg: Registration) -> io::Result<()> {
        reg.socket.set_nonblocking(true)?;
        // Room for bursts of replies as well as of requests (the receive side is sized at
        // bind time); kernel memory is used only while replies wait.
        let _ = socket2::SockRef::from(&reg.socket).set_send_buffer_size(SNDBUF);
        let w = self
            .workers
            .iter()
            .min_by_key(|w| w.load.load(Ordering::Relaxed))
            .ok_or_else(|| io::Error::other("no engine thread"))?;
        w.load.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_add(1, Ordering::Relaxed);
        if !self.send(w, Msg::Add(Box::new(reg))) {
            w.load.fetch_sub(1, Ordering::Relaxed);
            self.live.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::other("the reflector engine thread is gone"));
        }
        Ok(())
    }

    /// Stops the owner's sockets after `grace`, or after each one's linger when `None`.
    pub fn stop(&self, owner: Owner, grace: Option<Duration>) {
        for w in &self.workers {
            let _ = self.send(
                w,
                Msg::Stop {
                    owner,
                    grace,
                    name: None,
                },
            );
        }
    }

    /// Stops one of the owner's sockets, the one registered under `name`, after `grace` or its
    /// linger; the owner's others go on (RFC 5938 Stop-N-Sessions).
    pub fn stop_one(&self, owner: Owner, name: &str, grace: Option<Duration>) {
        for w in &self.workers {
            let _ = self.send(
                w,
                Msg::Stop {
                    owner,
                    grace,
                    name: Some(name.to_string()),
                },
            );
        }
    }

    /// Frees all of the owner's sockets now.
    pub fn close(&self, owner: Owner) {
        for w in &self.workers {
            let _ = self.send(w, Msg::Close { owner });
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in &self.workers {
            let _ = w.wake.write(1);
        }
        for w in &mut self.workers {
            if let Some(t) = w.thread.take() {
                if t.join().is_err() {
                    log::error!("an engine thread panicked");
                }
            }
        }
    }
}

/// One served socket.
struct Entry {
    reg: Registration,
    /// Generation of the slot, so a stale epoll event never reaches a reused slot.
    generation: u32,
    /// Whether the local socket is IPv6 (dual-stack): replies to IPv4 go v4-mapped.
    v6: bool,
    port: u16,
    /// When the sender was last heard from (the wake-up time of the batch: coarse, cheap).
    last: Instant,
    stop_at: Option<Instant>,
    /// When the engine took the session: its duration in the end line.
    started: Instant,
}

/// Why an entry left the table.
enum End {
    Refwait(Duration),
    Stopped,
    Closed,
    Shutdown,
}

struct Thread {
    epoll: Epoll,
    wake: Arc<EventFd>,
    rx: mpsc::Receiver<Msg>,
    table: Vec<Option<Entry>>,
    free: Vec<usize>,
    shared: Shared,
    stop: Arc<AtomicBool>,
    load: Arc<AtomicUsize>,
}

fn token(slot: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | slot as u64
}

impl Thread {
    fn run(&mut self) {
        // The receive buffers (one batch) and the one transmit buffer of this thread. A
        // reflection is at most max(received, reflector base).
        let mut batch = BatchReceiver::new();
        let mut tx = vec![0u8; net::MAX_DATAGRAM + TestLayout::AUTHENTICATED.reflector.base];
        let mut events = [EpollEvent::empty(); 64];
        let mut next_sweep = Instant::now() + SWEEP;
        let mut generation: u32 = 0;
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            let timeout = EpollTimeout::try_from(wait.max(Duration::from_millis(1)))
                .unwrap_or(EpollTimeout::NONE);
            let n = match self.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => {
                    log::error!("engine: epoll_wait: {e}");
                    std::thread::sleep(SWEEP);
                    0
                }
            };
            let now = Instant::now();
            for ev in &events[..n] {
                let data = ev.data();
                if data == WAKE {
                    let _ = self.wake.read();
                    self.messages(now, &mut generation);
                    continue;
                }
                let (slot, g) = ((data & 0xffff_ffff) as usize, (data >> 32) as u32);
                if let Some(Some(e)) = self.table.get_mut(slot) {
                    if e.generation == g {
                        serve(e, now, &self.shared, &mut batch, &mut tx);
                    }
                }
            }
            if self.stop.load(Ordering::Relaxed) || self.shared.shutdown.load(Ordering::Relaxed) {
                break;
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP;
            }
            if !self.table.is_empty() && self.free.len() == self.table.len() {
                // The last session left: give the table back, so a burst of sessions leaves
                // no live allocation high in the heap that keeps the allocator from trimming.
                self.table = Vec::new();
                self.free = Vec::new();
                crate::daemon::trim_heap();
            }
        }
        for slot in 0..self.table.len() {
            self.remove(slot, End::Shutdown);
        }
    }

    fn messages(&mut self, now: Instant, generation: &mut u32) {
        while let Ok(m) = self.rx.try_recv() {
            match m {
                Msg::Add(reg) => self.add(*reg, now, generation),
                Msg::Stop { owner, grace, name } => {
                    for e in self.table.iter_mut().flatten() {
                        if e.reg.owner == owner && name.as_ref().is_none_or(|n| *n == e.reg.name) {
                            let at = now + grace.unwrap_or(e.reg.linger);
                            e.stop_at = Some(e.stop_at.map_or(at, |old| old.min(at)));
                        }
                    }
                }
                Msg::Close { owner } => {
                    let mut freed = 0;
                    for slot in 0..self.table.len() {
                        if self.table[slot]
                            .as_ref()
                            .is_some_and(|e| e.reg.owner == owner)
                        {
                            self.remove(slot, End::Closed);
                            freed += 1;
                        }
                    }
                    if freed > 0 {
                        log::debug!("engine: {freed} session(s) of connection {owner} freed");
                    }
                }
            }
        }
    }

    fn add(&mut self, reg: Registration, now: Instant, generation: &mut u32) {
        *generation = generation.wrapping_add(1);
        let slot = self.free.pop().unwrap_or_else(|| {
            self.table.push(None);
            self.table.len() - 1
        });
        let local = reg.socket.local_addr().ok();
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, token(slot, *generation));
        if let Err(e) = self.epoll.add(&reg.socket, ev) {
            log::error!("engine: cannot watch the socket of {}: {e}", reg.name);
            self.free.push(slot);
            self.load.fetch_sub(1, Ordering::Relaxed);
            self.shared.live.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        self.table[slot] = Some(Entry {
            reg,
            generation: *generation,
            v6: local.is_some_and(|a| a.is_ipv6()),
            port: local.map_or(0, |a| a.port()),
            last: now,
            stop_at: None,
            started: now,
        });
    }

    fn sweep(&mut self, now: Instant) {
        for slot in 0..self.table.len() {
            let end = match &self.table[slot] {
                Some(e) if e.stop_at.is_some_and(|t| now >= t) => End::Stopped,
                Some(e) => match e.reg.refwait {
                    Some(r) if now.duration_since(e.last) >= r => End::Refwait(r),
                    _ => continue,
                },
                None => continue,
            };
            self.remove(slot, end);
        }
    }

    fn remove(&mut self, slot: usize, why: End) {
        let Some(e) = self.table.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let _ = self.epoll.delete(&e.reg.socket);
        self.free.push(slot);
        self.load.fetch_sub(1, Ordering::Relaxed);
        self.shared.live.fetch_sub(1, Ordering::Relaxed);
        // The session's one info line: how it ended, its port, what it reflected and dropped
        // (by reason), and how long it ran.
        let how = match why {
            End::Refwait(r) => format!("no test packet for {r:?} (REFWAIT)"),
            End::Stopped => "Stop-Sessions".to_string(),
            End::Closed if e.stop_at.is_some() => {
                "Stop-Sessions (control connection closed during the Timeout)".to_string()
            }
            End::Closed => {
                "connection lost (control connection closed without Stop-Sessions)".to_string()
            }
            End::Shutdown => "server stopping".to_string(),
        };
        log::info!(
            "session {}: ended by {how}; port {}: {}, {:.1?}",
            e.reg.name,
            e.port,
            counts(&e.reg.counters),
            e.started.elapsed()
        );
        // Dropping the entry closes the socket and gives the permit back.
    }
}

/// `12 reflected, 3 dropped (2 wrong peer, 1 bad HMAC)`.
fn counts(c: &Counters) -> String {
    let reasons = [
        (c.short.load(Ordering::Relaxed), "short"),
        (c.undersized.load(Ordering::Relaxed), "undersized"),
        (c.oversized.load(Ordering::Relaxed), "oversized"),
        (c.wrong_peer.load(Ordering::Relaxed), "wrong peer"),
        (c.bad_hmac.load(Ordering::Relaxed), "bad HMAC"),
    ];
    let by: Vec<String> = reasons
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    let mut out = format!(
        "{} reflected, {} dropped",
        c.reflected.load(Ordering::Relaxed),
        c.dropped()
    );
    if !by.is_empty() {
        out.push_str(&format!(" ({})", by.join(", ")));
    }
    out
}

/// Reads what is queued on one ready socket (up to [`BUDGET`] datagrams, [`net::BATCH`] per
/// `recvmmsg`) and answers each datagram in turn: T3 is read just before its own send.
fn serve(e: &mut Entry, now: Instant, shared: &Shared, batch: &mut BatchReceiver, tx: &mut [u8]) {
    let max = e.reg.handler.max_datagram();
    let mut read = 0;
    while read < BUDGET {
        // One octet more than the largest datagram served, so a longer one shows as longer
        // (or truncated) and is dropped as oversized.
        let n = match batch.recv(&e.reg.socket, e.v6, max + 1) {
            Ok(n) => n,
            Err(err) => {
                // ICMP errors (ECONNREFUSED) from an earlier send surface here; they are not
                // fatal for the session.
                log::debug!("session {}: recv on port {}: {err}", e.reg.name, e.port);
                return;
            }
        };
        read += n.max(1);
        for i in 0..n {
            let Some((bytes, meta)) = batch.datagram(i) else {
                continue; // no source address: nothing to answer
            };
            answer(e, now, shared, bytes, meta, max, tx);
        }
        if n < net::BATCH {
            return; // drained
        }
    }
}

/// How long a reply may wait for room in the socket's send buffer. The sockets are
/// non-blocking for reading; a blocking reflector would wait here too, and dropping the reply
/// instead would count as loss the path never had.
const SEND_WAIT: Duration = Duration::from_millis(5);

/// Sends one reply, with the socket's TOS or with `tos` for this datagram only.
fn send(sock: &UdpSocket, buf: &[u8], to: SocketAddr, tos: Option<u8>) -> io::Result<usize> {
    let once = || match tos {
        None => sock.send_to(buf, to),
        Some(tos) => net::send_with_tos(sock, buf, to, tos),
    };
    match once() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLOUT)];
            let wait = PollTimeout::try_from(SEND_WAIT).unwrap_or(PollTimeout::ZERO);
            let _ = poll(&mut fds, wait);
            once()
        }
        other => other,
    }
}

fn answer(
    e: &mut Entry,
    now: Instant,
    shared: &Shared,
    bytes: &mut [u8],
    meta: Meta,
    max: usize,
    tx: &mut [u8],
) {
    let c = &e.reg.counters;
    if meta.truncated || meta.len > max {
        // An oversized datagram keeps nothing alive.
        c.count(DropReason::Oversized);
        shared.totals.count(DropReason::Oversized);
        return;
    }
    let received = Received {
        bytes,
        from: meta.from.ip(),
        ttl: meta.ttl,
        tos: meta.tos,
        at: meta.at,
    };
    match e
        .reg
        .handler
        .on_datagram_meta(received, &meta, e.port, shared.clock.as_ref(), tx)
    {
        Ok(n) => {
            e.last = now;
            if let Some(a) = &e.reg.activity {
                a.store(meta.at.unix_millis(), Ordering::Relaxed);
            }
            let to = addr::destination(meta.from, e.v6);
            match send(&e.reg.socket, &tx[..n], to, e.reg.handler.reply_tos()) {
                Ok(_) => {
                    c.reflected.fetch_add(1, Ordering::Relaxed);
                    shared.totals.reflected.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => log::debug!("session {}: send to {}: {err}", e.reg.name, meta.from),
            }
        }
        Err(r) => {
            // Only a datagram the handler accepts keeps the session alive: a source address
            // is easy to forge, a valid packet (with its HMAC in the secure modes) is not.
            c.count(r);
            shared.totals.count(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reflector::Reflector;
    use crate::time::SystemClock;
    use std::net::{IpAddr, Ipv4Addr};

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn shared() -> Shared {
        Shared {
            clock: Arc::new(SystemClock::new()),
            shutdown: Arc::new(AtomicBool::new(false)),
            live: Arc::new(AtomicUsize::new(0)),
            totals: Arc::new(Counters::default()),
        }
    }

    fn socket() -> UdpSocket {
        net::udp_socket(SocketAddr::new(LO, 0), 0).unwrap()
    }

    fn session(owner: Owner, socket: UdpSocket, refwait: Duration) -> Registration {
        Registration {
            owner,
            name: format!("test-{owner}"),
            socket,
            handler: Box::new(Reflector::new(TestLayout::OPEN, None, LO).expecting(41)),
            refwait: Some(refwait),
            linger: Duration::ZERO,
            counters: Arc::new(Counters::default()),
            activity: None,
            permit: None,
        }
    }

    fn ping(client: &UdpSocket, to: SocketAddr) -> bool {
        let _ = client.send_to(&[0u8; 41], to);
        let mut b = [0u8; 128];
        client.recv_from(&mut b).is_ok_and(|(n, _)| n == 41)
    }

    fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        f()
    }

    #[test]
    fn one_thread_serves_many_sessions_and_a_close_frees_them_at_once() {
        let sh = shared();
        let engine = Engine::start(1, sh.clone()).unwrap();
        let client = socket();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut addrs = Vec::new();
        for i in 0..60 {
            let s = socket();
            addrs.push(s.local_addr().unwrap());
            engine
                .add(session(1 + i % 2, s, Duration::from_secs(30)))
                .unwrap();
        }
        assert_eq!(sh.live.load(Ordering::Relaxed), 60);
        assert!(
            addrs.iter().all(|a| ping(&client, *a)),
            "every session reflects"
        );
        engine.close(1);
        assert!(
            wait_for(Duration::from_millis(500), || sh
                .live
                .load(Ordering::Relaxed)
                == 30),
            "owner 1's 30 sessions freed in one message"
        );
        // Owner 2's sessions go on; owner 1's sockets are closed.
        assert!(ping(&client, addrs[1]));
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        assert!(!ping(&client, addrs[0]));
        drop(engine);
        assert_eq!(
            sh.live.load(Ordering::Relaxed),
            0,
            "dropping the engine frees all"
        );
    }

    #[test]
    fn refwait_counts_only_the_senders_datagrams() {
        let sh = shared();
        let engine = Engine::start(1, sh.clone()).unwrap();
        let s = socket();
        let to = s.local_addr().unwrap();
        engine
            .add(session(1, s, Duration::from_millis(300)))
            .unwrap();
        // A stranger (127.0.0.2) keeps sending: nothing is reflected and REFWAIT still runs.
        let stranger = net::udp_socket("127.0.0.2:0".parse().unwrap(), 0).unwrap();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(1500) && sh.live.load(Ordering::Relaxed) > 0 {
            let _ = stranger.send_to(&[0u8; 41], to);
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(sh.live.load(Ordering::Relaxed), 0, "REFWAIT ended it");
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(sh.totals.wrong_peer.load(Ordering::Relaxed) > 0);
        assert_eq!(sh.totals.reflected.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn stop_lets_a_session_linger_then_ends_it() {
        let sh = shared();
        let engine = Engine::start(2, sh.clone()).unwrap();
        let client = socket();
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let s = socket();
        let to = s.local_addr().unwrap();
        let mut reg = session(7, s, Duration::from_secs(30));
        reg.linger = Duration::from_millis(300);
        engine.add(reg).unwrap();
        engine.stop(7, None);
        assert!(ping(&client, to), "still reflecting during the linger");
        assert!(wait_for(Duration::from_secs(2), || sh
            .live
            .load(Ordering::Relaxed)
            == 0));
    }

    /// The shape TWAMP-Light/STAMP needs: one socket, many senders, any handler.
    struct Echo;
    impl Handler for Echo {
        fn on_datagram(
            &mut self,
            rx: Received<'_>,
            _clock: &dyn Clock,
            out: &mut [u8],
        ) -> Result<usize, DropReason> {
            out[..rx.bytes.len()].copy_from_slice(rx.bytes);
            Ok(rx.bytes.len())
        }
        fn max_datagram(&self) -> usize {
            1500
        }
    }

    #[test]
    fn a_socket_with_many_senders_and_its_own_handler() {
        let sh = shared();
        let engine = Engine::start(1, sh.clone()).unwrap();
        let s = socket();
        let to = s.local_addr().unwrap();
        engine
            .add(Registration {
                owner: 99,
                name: "light".into(),
                socket: s,
                handler: Box::new(Echo),
                refwait: None,
                linger: Duration::ZERO,
                counters: Arc::new(Counters::default()),
                activity: None,
                permit: None,
            })
            .unwrap();
        for src in ["127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0"] {
            let c = net::udp_socket(src.parse().unwrap(), 0).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            c.send_to(b"hello", to).unwrap();
            let mut b = [0u8; 16];
            let (n, from) = c.recv_from(&mut b).unwrap();
            assert_eq!((&b[..n], from), (&b"hello"[..], to), "{src}");
        }
    }
}
