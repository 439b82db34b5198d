//! The TWAMP Server (RFC 5357 §3): the accept loop, which also greets new connections and
//! reads their Set-Up-Response without a thread; one thread per control connection once its
//! Set-Up-Response is in; and the reflector engine that serves every connection's test
//! sessions. Decisions live in the state
//! machine of `control::server` and the budgets of `control::server::limits`; this file only
//! executes them: reads, writes, binds sockets and hands sessions to the engine.
//!
//! What a peer cannot do here:
//! - hold a connection without finishing the handshake for longer than `-setup-timeout`, or
//!   hold more than `-max-handshakes` such connections (the oldest is dropped for a newcomer),
//!   or make the server start a thread for one;
//! - hold more than `-max-connections` established connections, or `-max-connections-per-client`
//!   from one client (an IPv4 address or IPv6 /64): past them it gets Modes 0 and a close;
//! - hold more test sessions than `-max-sessions`, `-max-sessions-per-client` and
//!   `-max-sessions-per-connection` allow (Accept 5), or the descriptors connections need;
//! - pin a thread: every read and write has a deadline, and shutdown closes every control
//!   socket, so SIGTERM ends the server within about a second whatever the peers do.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::channel::{ControlStream, Transport};
use crate::config::{ServerConfig, REFLECTOR_RCVBUF};
use crate::control::access::Access;
use crate::control::server::limits::{self, Budget, ClientKey, Over};
use crate::control::server::{self as decide, Action, Expect, Input, Message};
use crate::control::Error as ControlError;
use crate::error::{Error, Op, Result};
use crate::metrics::Refusal;
use crate::reflector::{self, Engine, Reflector, Registration};
use crate::time::{Clock, SystemClock};
use crate::wire::{
    Accept, AcceptSession, Command, ReflectOctetsRequest, RequestTwSession, ServerGreeting,
    ServerStart, SetUpResponse, Sid, StartAck, StartNSessions, StopNSessions, StopSessions,
};
use crate::{addr, net};

/// How often an idle control thread and the accept loop look at the shutdown flag.
const POLL: Duration = Duration::from_millis(250);

/// SO_RCVBUF and SO_SNDBUF of control connections (the kernel doubles them). Control
/// messages are at most 112 octets: small fixed buffers bound what one connection holds in the
/// kernel, how much a pipelining peer can queue for us to work through, and how much we queue
/// for a peer that never reads before our write blocks (and times out).
const CONTROL_BUFFER: usize = 16 * 1024;

/// How long shutdown waits for the connection threads once their sockets are closed.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(700);

/// Server-wide state shared by the connection threads.
pub struct Shared {
    pub config: ServerConfig,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Arc<AtomicBool>,
    /// Control connections open now (in the handshake or established).
    pub connections: AtomicUsize,
    conns: Mutex<Conns>,
    /// Test sessions held now (accepted or running), in all and per client.
    session_budget: Arc<Mutex<Budget>>,
    /// Sessions the reflector engine serves now.
    pub sessions: Arc<AtomicUsize>,
    /// Test packets reflected and dropped (by reason), over the server's life.
    pub totals: Arc<reflector::Counters>,
    /// Connections and sessions over the server's life, refusals by reason (`-metrics`).
    pub counters: crate::metrics::ServerCounters,
    /// When this server started: Server-Start's Start-Time.
    pub started: crate::time::Timestamp,
    engine: OnceLock<Engine>,
    next_id: AtomicU64,
    /// Log lines about refused and dropped connections, at most a few a second.
    noisy: Mutex<Throttle>,
    /// Control connections served, refused (access lists and limits), and test sessions
    /// started, over the server's life (the "stopped" and status lines).
    pub served: AtomicU64,
    pub refused: AtomicU64,
    pub sessions_started: AtomicU64,
    /// Who may connect, with which modes; SIGHUP may replace it.
    access: RwLock<Arc<Access>>,
}

/// Every control connection open now.
struct Conns {
    /// Per client, handshaking and established alike.
    clients: Budget,
    /// Connections that have not finished the handshake, oldest first.
    handshaking: VecDeque<(u64, ClientKey)>,
    established: usize,
    /// Every open connection's socket, so shutdown and eviction can close it under a
    /// blocked read or write, and whether it counts as established.
    open: HashMap<u64, Open>,
}

struct Open {
    stream: Arc<TcpStream>,
    established: bool,
}

impl Shared {
    pub fn new(
        config: ServerConfig,
        clock: Arc<dyn Clock>,
        shutdown: Arc<AtomicBool>,
    ) -> Arc<Self> {
        let started = clock.now();
        let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        let max_sessions = limits::session_budget(
            config.max_sessions,
            nofile,
            config.max_connections + config.max_handshakes,
        );
        if max_sessions < config.max_sessions {
            log::warn!(
                "-max-sessions {} lowered to {max_sessions}: the open file limit is {nofile} and \
                 {} descriptors stay for control connections",
                config.max_sessions,
                config.max_connections + config.max_handshakes
            );
        }
        let access = RwLock::new(Arc::new(config.access.clone()));
        Arc::new(Shared {
            conns: Mutex::new(Conns {
                clients: Budget::new(usize::MAX, config.max_connections_per_client),
                handshaking: VecDeque::new(),
                established: 0,
                open: HashMap::new(),
            }),
            session_budget: Arc::new(Mutex::new(Budget::new(
                max_sessions,
                config.max_sessions_per_client,
            ))),
            config,
            clock,
            shutdown,
            connections: AtomicUsize::new(0),
            sessions: Arc::new(AtomicUsize::new(0)),
            totals: Arc::new(reflector::Counters::default()),
            counters: crate::metrics::ServerCounters::default(),
            started,
            engine: OnceLock::new(),
            next_id: AtomicU64::new(1),
            noisy: Mutex::new(Throttle::default()),
            served: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            sessions_started: AtomicU64::new(0),
            access,
        })
    }

    /// Replaces the access lists (SIGHUP); connections already open keep their modes.
    pub fn set_access(&self, access: Access) {
        *self.access.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(access);
    }

    fn access(&self) -> Arc<Access> {
        self.access
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection in, or says which limit it would break. A full handshake
    /// budget drops its oldest connection for this one.
    fn admit(
        &self,
        id: u64,
        key: ClientKey,
        stream: &Arc<TcpStream>,
    ) -> std::result::Result<(), String> {
        let mut c = self.conns();
        if c.established >= self.config.max_connections {
            self.counters.refused(Refusal::MaxConnections);
            return Err(format!(
                "{} control connections established (-max-connections)",
                c.established
            ));
        }
        if let Err(Over::Client { held, .. }) = c.clients.take(key) {
            self.counters.refused(Refusal::MaxConnectionsPerClient);
            return Err(format!(
                "{held} control connections open from {key} (-max-connections-per-client)"
            ));
        }
        if c.handshaking.len() >= self.config.max_handshakes.max(1) {
            if let Some((old, from)) = evict(&mut c.handshaking) {
                self.counters.refused(Refusal::HandshakeEvicted);
                if let Some(o) = c.open.get(&old) {
                    let _ = o.stream.shutdown(std::net::Shutdown::Both);
                }
                self.note(|| {
                    format!(
                        "{} connections without a finished handshake (-max-handshakes): \
                         dropping the oldest of {from}",
                        self.config.max_handshakes
                    )
                });
            }
        }
        c.handshaking.push_back((id, key));
        c.open.insert(
            id,
            Open {
                stream: stream.clone(),
                established: false,
            },
        );
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.counters
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The handshake is over: the connection leaves the handshake budget. `false` when the
    /// established budget filled up meanwhile.
    fn promote(&self, id: u64) -> bool {
        let mut c = self.conns();
        let Some(i) = c.handshaking.iter().position(|&(x, _)| x == id) else {
            return false; // dropped for a newer one meanwhile
        };
        if c.established >= self.config.max_connections {
            return false;
        }
        c.handshaking.remove(i);
        c.established += 1;
        if let Some(o) = c.open.get_mut(&id) {
            o.established = true;
        }
        true
    }

    fn release(&self, id: u64, key: ClientKey) {
        let mut c = self.conns();
        let Some(o) = c.open.remove(&id) else {
            return;
        };
        if o.established {
            c.established -= 1;
        } else if let Some(i) = c.handshaking.iter().position(|&(x, _)| x == id) {
            c.handshaking.remove(i);
        }
        c.clients.give_back(key);
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Closes every control socket: blocked reads and writes return at once.
    fn close_all(&self) -> usize {
        let c = self.conns();
        for o in c.open.values() {
            let _ = o.stream.shutdown(std::net::Shutdown::Both);
        }
        c.open.len()
    }

    /// A warning about refused or dropped connections, throttled.
    fn note(&self, line: impl FnOnce() -> String) {
        let mut t = self.noisy.lock().unwrap_or_else(|p| p.into_inner());
        t.log(line);
    }

    /// Sessions held now (accepted or running), in all.
    pub fn sessions_held(&self) -> usize {
        self.session_budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .total()
    }

    /// Connections that have not finished the handshake.
    pub fn handshaking(&self) -> usize {
        self.conns().handshaking.len()
    }

    /// The figures of `-metrics`, read now.
    pub fn metrics_snapshot(&self) -> crate::metrics::ServerSnapshot {
        crate::metrics::ServerSnapshot::read(
            &self.counters,
            &self.totals,
            self.connections.load(Ordering::Relaxed),
            self.handshaking(),
            self.sessions_held(),
            self.sessions.load(Ordering::Relaxed),
        )
    }
}

/// Picks the connection to drop from a full handshake budget: the oldest of the client that
/// holds the most handshakes, so a flood from one client costs that client, not the others.
fn evict(handshaking: &mut VecDeque<(u64, ClientKey)>) -> Option<(u64, ClientKey)> {
    let mut counts: HashMap<ClientKey, usize> = HashMap::new();
    for (_, k) in handshaking.iter() {
        *counts.entry(*k).or_insert(0) += 1;
    }
    let most = counts.values().copied().max()?;
    // The oldest entry whose client holds `most`.
    let i = handshaking
        .iter()
        .position(|(_, k)| counts.get(k) == Some(&most))?;
    handshaking.remove(i)
}

/// At most [`Throttle::PER_WINDOW`] lines a second; the rest are counted and reported once
/// the second is over.
#[derive(Default)]
struct Throttle {
    window: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Throttle {
    const PER_WINDOW: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(1);

    fn log(&mut self, line: impl FnOnce() -> String) {
        let now = Instant::now();
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Self::WINDOW)
        {
            if self.suppressed > 0 {
                log::warn!("{} similar warnings suppressed", self.suppressed);
            }
            *self = Throttle {
                window: Some(now),
                logged: 0,
                suppressed: 0,
            };
        }
        if self.logged < Self::PER_WINDOW {
            self.logged += 1;
            log::warn!("{}", line());
        } else {
            self.suppressed += 1;
        }
    }
}

/// A session's slot in the session budget, given back when dropped (with the session).
struct SessionPermit {
    budget: Arc<Mutex<Budget>>,
    key: ClientKey,
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        self.budget
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .give_back(self.key);
    }
}

/// The control socket, shared with the connection registry (which may close it).
struct SharedStream(Arc<TcpStream>);

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

impl AsFd for SharedStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Transport for SharedStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> std::io::Result<()> {
        self.0.set_read_timeout(d)
    }
}

/// Refuses a connection the way RFC 4656 §3.1 provides: a Server-Greeting with Modes 0, then
/// close. Written without blocking: a peer that does not read gets only the close.
fn refuse(stream: TcpStream) {
    let mut b = [0u8; ServerGreeting::LEN];
    ServerGreeting {
        modes: crate::wire::Modes(0),
        challenge: [0; 16],
        salt: [0; 16],
        count: 1024,
    }
    .emit(&mut b);
    let _ = stream.set_nonblocking(true);
    let _ = std::io::Write::write(&mut &stream, &b);
}

/// Binds the control listener. Done before daemonizing so "address in use" reaches the terminal.
pub fn bind(config: &ServerConfig) -> Result<TcpListener> {
    let l = net::tcp_listener(config.listen, config.v6_only)
        .map_err(|e| Error::io(Op::Bind, Some(config.listen), e))?;
    // Accepted connections inherit the listener's buffer sizes, and the receive window is
    // fixed at the handshake: set them here (see CONTROL_BUFFER).
    let sock = socket2::SockRef::from(&l);
    let _ = sock.set_recv_buffer_size(CONTROL_BUFFER);
    let _ = sock.set_send_buffer_size(CONTROL_BUFFER);
    Ok(l)
}

/// What the server listens on: TWAMP-Control's TCP listener (none with `-light-only`) and the
/// TWAMP-Light / STAMP socket (with `-light`).
pub struct Listeners {
    pub control: Option<TcpListener>,
    pub light: Option<std::net::UdpSocket>,
}

/// Binds everything the configuration asks for, before daemonizing, so "address in use"
/// reaches the terminal.
pub fn bind_all(config: &ServerConfig) -> Result<Listeners> {
    let control = if config.light_only {
        None
    } else {
        Some(bind(config)?)
    };
    Ok(Listeners {
        control,
        light: bind_light(config)?,
    })
}

/// The TWAMP-Light / STAMP socket: the listen address, the light port, the received TOS
/// reported (STAMP's Class of Service TLV says what DSCP arrived).
fn bind_light(config: &ServerConfig) -> Result<Option<std::net::UdpSocket>> {
    let Some(l) = &config.light else {
        return Ok(None);
    };
    let at = SocketAddr::new(config.listen.ip(), l.port);
    let s = net::udp_socket(at, crate::config::REFLECTOR_RCVBUF)
        .map_err(|e| Error::io(Op::Bind, Some(at), e))?;
    net::set_recv_tos(&s).map_err(|e| Error::io(Op::SetSockopt, Some(at), e))?;
    Ok(Some(s))
}

/// Hands the TWAMP-Light / STAMP socket to the engine: it lives as long as the server.
fn start_light(shared: &Shared, socket: std::net::UdpSocket) -> Result<()> {
    let cfg = &shared.config;
    let Some(l) = &cfg.light else {
        return Ok(());
    };
    let key = match &l.key_id {
        Some(id) => Some(
            crate::light::LightKey::from_keyfile(&cfg.keys, id).ok_or_else(|| {
                Error::Config(format!("-light-key: identity '{id}' is not in -keyfile"))
            })?,
        ),
        None => None,
    };
    let mode = if key.is_some() {
        crate::wire::stamp::StampMode::Authenticated
    } else {
        crate::wire::stamp::StampMode::Unauthenticated
    };
    let reflector = crate::light::LightReflector::new(crate::light::LightConfig {
        seq_mode: if l.stateless {
            crate::light::SeqMode::Stateless
        } else {
            crate::light::SeqMode::Stateful
        },
        mode,
        key,
        idle: l.idle,
        max_senders: l.max_senders,
        ..crate::light::LightConfig::default()
    });
    let local = socket.local_addr().ok();
    let engine = shared
        .engine
        .get()
        .ok_or_else(|| Error::Config("the reflector engine is not running".into()))?;
    engine
        .add(reflector::Registration {
            owner: reflector::light::OWNER,
            name: "twamp-light".into(),
            socket,
            handler: Box::new(
                reflector::light::LightHandler::new(reflector)
                    .counting_senders(shared.counters.light_senders.clone()),
            ),
            refwait: None,
            linger: Duration::ZERO,
            counters: Arc::new(reflector::Counters::default()),
            activity: None,
            permit: None,
        })
        .map_err(|e| Error::io(Op::Spawn, local, e))?;
    log::info!(
        "TWAMP-Light/STAMP reflector on {} ({}, {}, up to {} senders)",
        local.map_or_else(|| "?".into(), |a| a.to_string()),
        if l.stateless { "stateless" } else { "stateful" },
        if l.key_id.is_some() {
            "authenticated"
        } else {
            "unauthenticated"
        },
        l.max_senders
    );
    Ok(())
}

/// Serves until `shared.shutdown` is set, then closes every control connection and returns
/// within about a second. The light socket, if configured, is bound here.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    let light = bind_light(&shared.config)?;
    serve_all(
        Listeners {
            control: Some(listener),
            light,
        },
        shared,
    )
}

/// As [`serve`], on what [`bind_all`] bound.
pub fn serve_all(listeners: Listeners, shared: Arc<Shared>) -> Result<()> {
    crate::daemon::one_arena();
    let cfg = &shared.config;
    let ctx = reflector::Context {
        refwait: cfg.refwait,
        clock: shared.clock.clone(),
        shutdown: shared.shutdown.clone(),
        live: shared.sessions.clone(),
        totals: shared.totals.clone(),
    };
    let engine = Engine::start(cfg.engine_threads, ctx.engine())
        .map_err(|e| Error::io(Op::Spawn, None, e))?;
    let threads_n = engine.threads();
    let _ = shared.engine.set(engine);
    if let Some(s) = listeners.light {
        start_light(&shared, s)?;
    }
    let Some(listener) = listeners.control else {
        // -light-only: nothing to accept; the engine serves until shutdown.
        while !shared.shutdown.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
        }
        return Ok(());
    };
    let local = listener.local_addr().ok();
    log::info!(
        "TWAMP server listening on {} (modes {}, REFWAIT {:?}, SERVWAIT {:?}, {threads_n} engine thread(s), test ports {})",
        local.map_or_else(|| "?".into(), |a| a.to_string()),
        cfg.modes,
        cfg.refwait,
        cfg.servwait,
        cfg.test_ports
            .map_or_else(|| "any".to_string(), |(lo, hi)| format!("{lo}-{hi}"))
    );
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    let mut handshakes: Vec<Handshake> = Vec::new();
    while !shared.shutdown.load(Ordering::Relaxed) {
        threads.retain(|t| !t.is_finished());
        let (listener_ready, ready) = wait_for_handshakes(&listener, &handshakes);
        // Connections waiting for their Set-Up-Response: read what came, spawn a thread for
        // each whole one, drop the closed and the late.
        let now = Instant::now();
        let mut i = 0;
        while i < handshakes.len() {
            let outcome = if ready.get(i).copied().unwrap_or(false) {
                handshakes[i].read(&shared.config)
            } else {
                Progress::Waiting
            };
            let outcome = match outcome {
                Progress::Waiting if now >= handshakes[i].deadline => {
                    Progress::Failed(handshakes[i].late(&shared.config))
                }
                o => o,
            };
            match outcome {
                Progress::Waiting => i += 1,
                Progress::Failed(e) => {
                    let h = handshakes.swap_remove(i);
                    shared.note(|| format!("{}: control connection closed: {e}", h.peer));
                    shared.release(h.id, h.key);
                }
                Progress::Done => {
                    let h = handshakes.swap_remove(i);
                    if let Some(t) = spawn_connection(&shared, h) {
                        threads.push(t);
                    }
                }
            }
        }
        if !listener_ready {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: note, breathe, go on serving the others.
                shared.note(|| format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = addr::unmap(peer);
        // Access lists first: a refused network costs one greeting and one (throttled) line.
        let modes = match shared.access().modes_for(peer.ip(), cfg.modes) {
            Ok(m) => m,
            Err(why) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                shared.note(|| format!("{peer}: refused: {why} (Server-Greeting Modes 0)"));
                refuse(stream);
                continue;
            }
        };
        let key = ClientKey::of(peer.ip());
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(stream);
        if let Err(why) = shared.admit(id, key, &stream) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            shared.note(|| format!("{peer}: refused: {why}"));
            if let Ok(s) = Arc::try_unwrap(stream) {
                refuse(s);
            }
            continue;
        }
        shared.served.fetch_add(1, Ordering::Relaxed);
        match Handshake::greet(id, key, peer, modes, stream, &shared) {
            Ok(h) => {
                log::debug!("{peer}: control connection accepted");
                handshakes.push(h);
            }
            Err(e) => {
                shared.note(|| format!("{peer}: control connection closed: {e}"));
                shared.release(id, key);
            }
        }
    }
    for h in handshakes {
        shared.release(h.id, h.key);
    }
    let n = shared.close_all();
    log::info!("shutting down: closing {n} control connection(s)");
    let end = Instant::now() + SHUTDOWN_GRACE;
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    for t in threads.into_iter().filter(|t| t.is_finished()) {
        let _ = t.join();
    }
    Ok(())
}

/// A connection in the handshake: greeted, its Set-Up-Response read by the accept loop as it
/// arrives. It has no thread until the whole message is in, so connections that never send
/// one cost a descriptor and a few hundred octets, not a thread.
struct Handshake {
    id: u64,
    key: ClientKey,
    peer: SocketAddr,
    /// The modes the access lists leave this peer's network (RFC 4656 §3.1 Modes).
    modes: crate::wire::Modes,
    stream: Arc<TcpStream>,
    secrets: decide::Secrets,
    setup: [u8; SetUpResponse::LEN],
    got: usize,
    /// The Set-Up deadline; once the message has begun, also the message deadline.
    deadline: Instant,
}

enum Progress {
    Waiting,
    Done,
    Failed(Error),
}

impl Handshake {
    /// Sends the Server-Greeting (RFC 4656 §3.1) without blocking: 64 octets always fit in a
    /// new connection's send buffer.
    fn greet(
        id: u64,
        key: ClientKey,
        peer: SocketAddr,
        modes: crate::wire::Modes,
        stream: Arc<TcpStream>,
        sh: &Shared,
    ) -> Result<Handshake> {
        let secrets = decide::Secrets {
            challenge: random()?,
            salt: random()?,
            server_iv: random()?,
        };
        let mut b = [0u8; ServerGreeting::LEN];
        let settings = decide::Settings {
            modes,
            ..decide::Settings::from(&sh.config)
        };
        decide::greeting(&settings, &secrets).emit(&mut b);
        stream
            .set_nonblocking(true)
            .map_err(|e| Error::io(Op::SetSockopt, Some(peer), e))?;
        match (&*stream).write(&b) {
            Ok(n) if n == b.len() => {}
            Ok(_) => {
                return Err(Error::Closed {
                    waiting_for: "room for the Server-Greeting",
                    addr: Some(peer),
                })
            }
            Err(e) => return Err(Error::io(Op::Send, Some(peer), e)),
        }
        Ok(Handshake {
            id,
            key,
            peer,
            modes,
            stream,
            secrets,
            setup: [0; SetUpResponse::LEN],
            got: 0,
            deadline: Instant::now() + sh.config.setup_timeout,
        })
    }

    /// Reads what has arrived of the Set-Up-Response.
    fn read(&mut self, cfg: &ServerConfig) -> Progress {
        loop {
            match (&*self.stream).read(&mut self.setup[self.got..]) {
                Ok(0) => {
                    return Progress::Failed(Error::Closed {
                        waiting_for: "Set-Up-Response",
                        addr: Some(self.peer),
                    })
                }
                Ok(n) => {
                    if self.got == 0 {
                        // Once begun, the rest within the message deadline (slowloris).
                        self.deadline = self.deadline.min(Instant::now() + cfg.message_timeout);
                    }
                    self.got += n;
                    if self.got == SetUpResponse::LEN {
                        return Progress::Done;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Progress::Waiting,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Progress::Failed(match e.kind() {
                        std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted => Error::Closed {
                            waiting_for: "Set-Up-Response",
                            addr: Some(self.peer),
                        },
                        _ => Error::io(Op::Recv, Some(self.peer), e),
                    })
                }
            }
        }
    }

    /// Why a connection past its deadline is closed.
    fn late(&self, cfg: &ServerConfig) -> Error {
        if self.got == 0 {
            Error::Control(ControlError::SetUpTimeout {
                after: cfg.setup_timeout,
            })
        } else {
            Error::Timeout {
                waiting_for: "Set-Up-Response",
                addr: Some(self.peer),
            }
        }
    }
}

/// Waits (at most POLL, or until the nearest handshake deadline) for the listener or a
/// handshaking connection to become readable. Returns whether the listener is, and which
/// handshakes are.
fn wait_for_handshakes(listener: &TcpListener, handshakes: &[Handshake]) -> (bool, Vec<bool>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let now = Instant::now();
    let wait = handshakes
        .iter()
        .map(|h| h.deadline.saturating_duration_since(now))
        .fold(POLL, Duration::min)
        .max(Duration::from_millis(1));
    let mut fds = Vec::with_capacity(handshakes.len() + 1);
    fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
    for h in handshakes {
        fds.push(PollFd::new(h.stream.as_fd(), PollFlags::POLLIN));
    }
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::ZERO);
    if poll(&mut fds, timeout).is_err() {
        return (false, vec![false; handshakes.len()]);
    }
    let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
    let listener_ready = fds.first().is_some_and(ready);
    (listener_ready, fds.iter().skip(1).map(ready).collect())
}

/// Gives a connection whose Set-Up-Response is in its own thread.
fn spawn_connection(shared: &Arc<Shared>, h: Handshake) -> Option<std::thread::JoinHandle<()>> {
    let (id, key, peer) = (h.id, h.key, h.peer);
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("control:{peer}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let began = Instant::now();
            let mut end = ConnEnd::default();
            let result = handle_connection(h, &sh, &mut end);
            // The connection's one info line: peer, mode, identity, sessions, outcome.
            let about = end.describe(began.elapsed());
            match result {
                Ok(()) if sh.shutdown.load(Ordering::Relaxed) => {
                    log::info!("{peer}: control connection closed: server stopping ({about})")
                }
                Ok(()) => log::info!("{peer}: control connection closed by the client ({about})"),
                Err(e) => log::warn!("{peer}: control connection closed: {e} ({about})"),
            }
            if let Some(engine) = sh.engine.get() {
                engine.close(id);
            }
            sh.release(id, key);
            crate::daemon::trim_heap();
        });
    match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            shared.release(id, key);
            log::error!("{peer}: cannot start a thread: {e}");
            None
        }
    }
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| Error::io(Op::Random, None, std::io::Error::other(e.to_string())))?;
    Ok(b)
}

/// What the end-of-connection line says besides the outcome.
#[derive(Default)]
struct ConnEnd {
    mode: Option<crate::control::SecurityMode>,
    identity: Option<String>,
    /// RFC 5938 / 6038 / 7750 extensions the client chose.
    extensions: crate::wire::Modes,
    sessions: usize,
}

impl ConnEnd {
    fn describe(&self, lasted: Duration) -> String {
        let ext = if self.extensions.is_empty() {
            String::new()
        } else {
            format!(
                ", extensions {}",
                crate::control::extension_names(self.extensions).join(",")
            )
        };
        format!(
            "mode {}, identity {}{ext}, {} session(s), {:.1?}",
            self.mode.map_or_else(|| "-".to_string(), |m| m.to_string()),
            self.identity
                .as_deref()
                .map_or_else(|| "-".to_string(), |i| format!("'{i}'")),
            self.sessions,
            lasted
        )
    }
}

/// A session accepted on this connection and not started yet: its socket, what its
/// reflector needs, and its slot in the session budget.
struct Pending {
    bind: decide::Bind,
    socket: std::net::UdpSocket,
    permit: SessionPermit,
}

/// One control connection as the driver sees it.
struct Conn<'a> {
    sh: &'a Shared,
    /// The engine's owner id of this connection's sessions.
    id: u64,
    peer: SocketAddr,
    key: ClientKey,
    local_ip: IpAddr,
    pending: Vec<Pending>,
    /// Unix milliseconds of the latest test packet reflected for this connection: SERVWAIT
    /// activity, written by the engine.
    activity: Arc<AtomicU64>,
    running: usize,
    /// Sessions started on this connection in all.
    started: usize,
}

impl Conn<'_> {
    /// When this connection's sessions last reflected a packet.
    fn last_test_packet(&self) -> Option<Instant> {
        if self.running == 0 {
            return None;
        }
        let seen = self.activity.load(Ordering::Relaxed);
        if seen == 0 {
            return None;
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Instant::now().checked_sub(Duration::from_millis(now_ms.saturating_sub(seen)))
    }
}

/// One control connection, from its Set-Up-Response to close: feeds what the state machine
/// expects and executes the actions it returns. The caller frees the connection's sessions
/// in the engine, however this ends.
fn handle_connection(h: Handshake, sh: &Shared, end: &mut ConnEnd) -> Result<()> {
    let cfg = &sh.config;
    let (stream, peer) = (h.stream, h.peer);
    stream
        .set_nonblocking(false)
        .map_err(|e| Error::io(Op::SetSockopt, Some(peer), e))?;
    let _ = stream.set_nodelay(true);
    // Its small buffers (CONTROL_BUFFER) came from the listener at accept: see `bind`.
    // Every write has a deadline: a peer that never reads cannot pin this thread.
    stream
        .set_write_timeout(Some(cfg.message_timeout))
        .map_err(|e| Error::io(Op::SetSockopt, Some(peer), e))?;
    let local_ip = addr::unmap_ip(
        stream
            .local_addr()
            .map_err(|e| Error::io(Op::Getsockname, Some(peer), e))?
            .ip(),
    );
    let mut ch = ControlStream::new(SharedStream(stream), Some(peer));
    // The modes the access lists leave this peer's network.
    let settings = decide::Settings {
        modes: h.modes,
        ..decide::Settings::from(cfg)
    };
    let mut machine = decide::Server::new(
        settings,
        &cfg.keys,
        h.secrets,
        sh.started,
        peer.ip(),
        local_ip,
    );
    let mut conn = Conn {
        sh,
        id: h.id,
        peer,
        key: h.key,
        local_ip,
        pending: Vec::new(),
        activity: Arc::new(AtomicU64::new(0)),
        running: 0,
        started: 0,
    };
    // The Server-Greeting went out from the accept loop; the machine starts from the
    // Set-Up-Response it read.
    let first = machine.handle(Input::SetUpResponse(SetUpResponse::parse(&h.setup)));
    let result = drive(&mut ch, &mut conn, &mut machine, first);
    if let Some((mode, identity)) = machine.chosen() {
        end.mode = Some(mode);
        end.identity = identity.map(str::to_string);
        end.extensions = machine.extensions();
    }
    end.sessions = conn.started;
    result
}

fn drive(
    ch: &mut ControlStream<SharedStream>,
    conn: &mut Conn<'_>,
    machine: &mut decide::Server<'_>,
    first: Vec<Action>,
) -> Result<()> {
    let sh = conn.sh;
    let peer = conn.peer;
    let mut actions: VecDeque<Action> = first.into();
    let mut msg = [0u8; RequestTwSession::LEN];
    let mut promoted = false;
    loop {
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Send(m) => {
                    if let Message::AcceptSession(a) = &m {
                        sh.counters.accept_session(a.accept);
                    }
                    send(ch, m)?
                }
                Action::Encrypt(c) => ch.set_cipher(c),
                Action::Bind(b) => {
                    let bound = bind_session(b, conn);
                    actions.extend(machine.handle(Input::Bound(bound)));
                }
                Action::Start => start(conn, None)?,
                Action::StartN(sids) => start(conn, Some(&sids))?,
                Action::StopN(sids) => {
                    // RFC 5938 §4.2: a stopped session is reflected for its Timeout, then
                    // ignored; one only accepted is discarded. The others go on.
                    let before = conn.pending.len();
                    conn.pending.retain(|p| !sids.contains(&p.bind.sid));
                    let running = sids.len() - (before - conn.pending.len());
                    if let Some(e) = sh.engine.get() {
                        for sid in &sids {
                            e.stop_one(conn.id, &session_name(sid, conn.peer), None);
                        }
                    }
                    conn.running = conn.running.saturating_sub(running);
                }
                Action::Stop => {
                    conn.pending.clear();
                    // RFC 5357 §3.8: keep reflecting for each session's Timeout, then stop.
                    if let Some(e) = sh.engine.get() {
                        e.stop(conn.id, None);
                    }
                    conn.running = 0;
                }
                // Each step at debug: the connection's info line is the one at its end
                // (warnings stay warnings).
                Action::Log(level, line) => {
                    let level = match level {
                        log::Level::Info => log::Level::Debug,
                        other => other,
                    };
                    log::log!(level, "{peer}: {line}")
                }
                Action::Close(why) => return why.map_or(Ok(()), |e| Err(e.into())),
            }
        }
        if !promoted && machine.established() {
            if !sh.promote(conn.id) {
                return Err(Error::Refused {
                    message: "-max-connections reached during the handshake",
                    accept: Accept::TemporaryResourceLimitation,
                });
            }
            promoted = true;
        }
        let input = match machine.expect() {
            Expect::Nothing => return Ok(()),
            Expect::Bound => {
                // Bind is answered as soon as it is executed; nothing to read meanwhile.
                return Err(Error::Control(ControlError::Unexpected {
                    input: "a read",
                    state: "binding",
                }));
            }
            Expect::SetUpResponse => {
                let deadline = Instant::now() + machine.wait();
                match wait_for_message(ch, conn, deadline)? {
                    Wait::Shutdown => Input::Shutdown,
                    Wait::Timeout => Input::Timeout,
                    Wait::Ready => {
                        // The whole message within the Set-Up deadline, and once it has begun
                        // within the message deadline (slowloris).
                        let by = deadline.min(Instant::now() + sh.config.message_timeout);
                        let mut b = [0u8; SetUpResponse::LEN];
                        ch.read_clear(&mut b, by, "Set-Up-Response")?;
                        Input::SetUpResponse(SetUpResponse::parse(&b))
                    }
                }
            }
            Expect::Command => {
                let deadline = Instant::now() + machine.wait();
                match wait_for_message(ch, conn, deadline)? {
                    Wait::Shutdown => Input::Shutdown,
                    Wait::Timeout => Input::Timeout,
                    Wait::Ready => {
                        let by = Instant::now() + sh.config.message_timeout;
                        match ch.recv_part(&mut msg[..16], by, "control command") {
                            Ok(()) => Input::Command(Command::from(msg[0])),
                            // Closing between commands is how a Control-Client ends.
                            Err(Error::Closed { .. }) => Input::PeerClosed,
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
            Expect::RestN { command, what } => {
                let mut first = [0u8; 16];
                first.copy_from_slice(&msg[..16]);
                let n_len = if command == Command::StartNSessions {
                    StartNSessions::message_len(&first)
                } else {
                    StopNSessions::message_len(&first)
                };
                let parsed = match n_len {
                    Err(e) => Err(e),
                    Ok(len) => {
                        let by = Instant::now() + sh.config.message_timeout;
                        let mut m = vec![0u8; len];
                        m[..16].copy_from_slice(&first);
                        ch.recv_part(&mut m[16..], by, what)?;
                        ch.verify(&m, what)?;
                        Ok(m)
                    }
                };
                if command == Command::StartNSessions {
                    Input::StartNSessions(parsed.and_then(|m| StartNSessions::parse(&m)))
                } else {
                    Input::StopNSessions(parsed.and_then(|m| StopNSessions::parse(&m)))
                }
            }
            Expect::Rest { command, len, what } => {
                let by = Instant::now() + sh.config.message_timeout;
                ch.recv_part(&mut msg[16..len], by, what)?;
                ch.verify(&msg[..len], what)?;
                match command {
                    Command::RequestTwSession => Input::RequestTwSession {
                        request: RequestTwSession::parse(&msg),
                        reflect: ReflectOctetsRequest::parse(&msg),
                        now: sh.clock.now(),
                        random: random()?,
                    },
                    Command::StartSessions => Input::StartSessions,
                    _ => {
                        let mut m32 = [0u8; StopSessions::LEN];
                        m32.copy_from_slice(&msg[..StopSessions::LEN]);
                        Input::StopSessions(StopSessions::parse(&m32))
                    }
                }
            }
        };
        actions.extend(machine.handle(input));
    }
}

/// Writes one message the state machine asked for.
fn send(ch: &mut ControlStream<SharedStream>, m: Message) -> Result<()> {
    match m {
        Message::Greeting(g) => {
            let mut b = [0u8; ServerGreeting::LEN];
            g.emit(&mut b);
            ch.write_clear(&b, "Server-Greeting")
        }
        Message::ServerStart(s) => {
            // Server-IV in clear, Start-Time sealed in the secure modes, in one write.
            let mut b = [0u8; ServerStart::LEN];
            s.emit(&mut b);
            ch.seal_unmacced(&mut b[ServerStart::CLEAR_LEN..], "Server-Start")?;
            ch.write_clear(&b, "Server-Start")
        }
        Message::AcceptSession(a) => {
            let mut b = [0u8; AcceptSession::LEN];
            a.emit(&mut b);
            ch.send(&mut b, "Accept-Session")
        }
        Message::StartAck(a) => {
            let mut b = [0u8; StartAck::LEN];
            a.emit(&mut b);
            ch.send(&mut b, "Start-Ack")
        }
        Message::StartNAck(a) => {
            let mut b = vec![0u8; a.wire_len()];
            a.emit(&mut b)
                .map_err(|e| Error::Protocol(format!("Start-N-Ack: {e}")))?;
            ch.send(&mut b, "Start-N-Ack")
        }
        Message::StopNAck(a) => {
            let mut b = vec![0u8; a.wire_len()];
            a.emit(&mut b)
                .map_err(|e| Error::Protocol(format!("Stop-N-Ack: {e}")))?;
            ch.send(&mut b, "Stop-N-Ack")
        }
    }
}

/// Binds the test socket of an accepted request, within the session budget and the
/// test-port range. A refusal is Accept 5: temporary resource limitation (RFC 4656 §3.3).
fn bind_session(b: decide::Bind, conn: &mut Conn<'_>) -> std::result::Result<u16, decide::Refusal> {
    let sh = conn.sh;
    let limited = |reason: String| decide::Refusal {
        accept: Accept::TemporaryResourceLimitation,
        reason,
    };
    if sh.engine.get().is_none() {
        return Err(limited("the reflector engine is not running".into()));
    }
    sh.session_budget
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take(conn.key)
        .map_err(|over| {
            limited(match over {
                Over::Total { held, .. } => format!("{held} sessions in all (-max-sessions)"),
                Over::Client { held, .. } => format!(
                    "{held} sessions for {} (-max-sessions-per-client)",
                    conn.key
                ),
            })
        })?;
    let permit = SessionPermit {
        budget: sh.session_budget.clone(),
        key: conn.key,
    };
    let socket = net::bind_test_port(
        conn.local_ip,
        b.spec.requested_port,
        sh.config.test_ports,
        REFLECTOR_RCVBUF,
    )
    .map_err(|e| limited(format!("no test port free: {e}")))?;
    if b.spec.dscp != 0 {
        if let Err(e) = net::set_dscp(&socket, b.spec.dscp) {
            log::warn!("{}: cannot set DSCP {}: {e}", conn.peer, b.spec.dscp);
        }
    }
    // RFC 7750: only sessions that report the received DSCP/ECN pay for its cmsg.
    if b.dscp_ecn {
        net::set_recv_tos(&socket).map_err(|e| decide::Refusal {
            accept: Accept::InternalError,
            reason: format!("cannot read the TOS of test packets (RFC 7750): {e}"),
        })?;
    }
    let port = socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| decide::Refusal {
            accept: Accept::InternalError,
            reason: format!("getsockname: {e}"),
        })?;
    conn.pending.push(Pending {
        bind: b,
        socket,
        permit,
    });
    Ok(port)
}

/// Hands every bound session to the reflector engine (RFC 5357 §3.7: before Start-Ack), or
/// only those of `sids` (RFC 5938 Start-N-Sessions: before Start-N-Ack).
fn start(conn: &mut Conn<'_>, sids: Option<&[Sid]>) -> Result<()> {
    let sh = conn.sh;
    let Some(engine) = sh.engine.get() else {
        return Err(Error::io(
            Op::Spawn,
            Some(conn.peer),
            std::io::Error::other("the reflector engine is not running"),
        ));
    };
    let (now, later): (Vec<Pending>, Vec<Pending>) = conn
        .pending
        .drain(..)
        .partition(|p| sids.is_none_or(|s| s.contains(&p.bind.sid)));
    conn.pending = later;
    for p in now {
        let b = p.bind;
        let mut r = Reflector::new(b.layout, b.cipher, b.spec.peer).expecting(b.sender_len);
        if b.dscp_ecn {
            r = r.monitoring_dscp_ecn();
        }
        engine
            .add(Registration {
                owner: conn.id,
                name: session_name(&b.sid, conn.peer),
                socket: p.socket,
                handler: Box::new(r),
                refwait: Some(sh.config.refwait),
                linger: b.spec.timeout,
                counters: Arc::new(reflector::Counters::default()),
                activity: Some(conn.activity.clone()),
                permit: Some(Box::new(p.permit)),
            })
            .map_err(|e| Error::io(Op::SetSockopt, Some(conn.peer), e))?;
        conn.running += 1;
        conn.started += 1;
        sh.sessions_started.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

enum Wait {
    Ready,
    Timeout,
    Shutdown,
}

/// Waits for the next control message to begin, until `deadline`.
///
/// SERVWAIT (RFC 5357 §3.1): the Server MAY close a control connection when "no packet
/// associated with that connection has been received within SERVWAIT"; test packets its
/// sessions reflected count, so a long test keeps its connection (a stranger's datagrams,
/// never reflected, do not).
fn wait_for_message(
    ch: &ControlStream<SharedStream>,
    conn: &Conn<'_>,
    mut deadline: Instant,
) -> Result<Wait> {
    let window = deadline.saturating_duration_since(Instant::now());
    loop {
        if conn.sh.shutdown.load(Ordering::Relaxed) {
            return Ok(Wait::Shutdown);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if ch.wait_readable(left.min(POLL))? {
            return Ok(Wait::Ready);
        }
        if let Some(t) = conn.last_test_packet() {
            deadline = deadline.max(t + window);
        }
        if Instant::now() >= deadline {
            return Ok(Wait::Timeout);
        }
    }
}

/// Raises the open file limit and builds the shared state.
pub fn prepare(config: ServerConfig, shutdown: Arc<AtomicBool>) -> Arc<Shared> {
    match net::raise_fd_limit() {
        Ok(n) => log::debug!("open file limit {n}"),
        Err(e) => log::warn!("cannot raise the open file limit: {e}"),
    }
    Shared::new(config, Arc::new(SystemClock::new()), shutdown)
}

/// Builds the shared state and serves.
pub fn run(config: ServerConfig, listeners: Listeners, shutdown: Arc<AtomicBool>) -> Result<()> {
    serve_all(listeners, prepare(config, shutdown))
}

/// A session's name in the engine: log lines, and how Stop-N-Sessions finds it.
fn session_name(sid: &crate::wire::Sid, peer: SocketAddr) -> String {
    format!("{sid} of {peer}")
}
