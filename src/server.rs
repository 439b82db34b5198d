//! The TWAMP Server (RFC 5357 §3): the accept loop, one thread per control connection, and the
//! Session-Reflectors each connection starts. Decisions live in the state machine of
//! `control::server`; this file only executes its actions: reads, writes, binds sockets and
//! starts and stops reflectors.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::collections::VecDeque;

use crate::channel::ControlStream;
use crate::config::{ServerConfig, REFLECTOR_RCVBUF};
use crate::control::server::{self as decide, Action, Expect, Input, Message};
use crate::control::{Error as ControlError, SecurityMode};
use crate::error::{Error, Op, Result};
use crate::reflector::{self, Reflector};
use crate::time::{Clock, SystemClock};
use crate::wire::{
    Accept, AcceptSession, Command, RequestTwSession, ServerGreeting, ServerStart, SetUpResponse,
    StartAck, StopSessions,
};
use crate::{addr, net};

/// How often an idle control thread looks at SERVWAIT and the shutdown flag.
const POLL: Duration = Duration::from_millis(250);

/// Server-wide state shared by the connection threads.
pub struct Shared {
    pub config: ServerConfig,
    pub clock: Arc<dyn Clock>,
    pub shutdown: Arc<AtomicBool>,
    /// Control connections open now.
    pub connections: AtomicUsize,
    /// Control connections open now, per client address.
    per_client: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
    /// Session-Reflector threads running now.
    pub sessions: Arc<AtomicUsize>,
    /// Test packets reflected and dropped (by reason), over the server's life.
    pub totals: Arc<reflector::Counters>,
    /// When this server started: Server-Start's Start-Time.
    pub started: crate::time::Timestamp,
}

impl Shared {
    pub fn new(
        config: ServerConfig,
        clock: Arc<dyn Clock>,
        shutdown: Arc<AtomicBool>,
    ) -> Arc<Self> {
        let started = clock.now();
        Arc::new(Shared {
            config,
            clock,
            shutdown,
            connections: AtomicUsize::new(0),
            per_client: std::sync::Mutex::new(std::collections::HashMap::new()),
            sessions: Arc::new(AtomicUsize::new(0)),
            totals: Arc::new(reflector::Counters::default()),
            started,
        })
    }
}

impl Shared {
    /// Counts a new connection in, or says which limit it would break.
    fn admit(&self, ip: IpAddr) -> std::result::Result<(), String> {
        let mut per = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let total = self.connections.load(Ordering::Relaxed);
        if total >= self.config.max_connections {
            return Err(format!(
                "{total} control connections open (-max-connections)"
            ));
        }
        let mine = per.entry(ip).or_insert(0);
        if *mine >= self.config.max_connections_per_client {
            return Err(format!(
                "{mine} control connections open from {ip} (-max-connections-per-client)"
            ));
        }
        *mine += 1;
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn release(&self, ip: IpAddr) {
        let mut per = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&ip);
            }
        }
        self.connections.fetch_sub(1, Ordering::Relaxed);
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
    net::tcp_listener(config.listen, config.v6_only)
        .map_err(|e| Error::io(Op::Bind, Some(config.listen), e))
}

/// Serves until `shared.shutdown` is set. Joins every connection thread before returning.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> Result<()> {
    let local = listener.local_addr().ok();
    log::info!(
        "TWAMP server listening on {} (modes {}, REFWAIT {:?}, SERVWAIT {:?})",
        local.map_or_else(|| "?".into(), |a| a.to_string()),
        shared.config.modes,
        shared.config.refwait,
        shared.config.servwait
    );
    let mut threads: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !shared.shutdown.load(Ordering::Relaxed) {
        threads.retain(|t| !t.is_finished());
        if !net::wait_readable(&listener, POLL).unwrap_or(false) {
            continue;
        }
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: log, breathe, go on serving the others.
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let peer = addr::unmap(peer);
        if let Err(why) = shared.admit(peer.ip()) {
            log::warn!("{peer}: refused: {why}");
            refuse(stream);
            continue;
        }
        let sh = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("control:{peer}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                match handle_connection(stream, peer, &sh) {
                    Ok(()) => log::info!("{peer}: control connection closed"),
                    Err(e) => log::warn!("{peer}: control connection closed: {e}"),
                }
                sh.release(peer.ip());
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                shared.release(peer.ip());
                log::error!("{peer}: cannot start a thread: {e}");
            }
        }
    }
    threads.retain(|t| !t.is_finished());
    log::info!(
        "shutting down: waiting for {} control connection(s)",
        threads.len()
    );
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| Error::io(Op::Random, None, std::io::Error::other(e.to_string())))?;
    Ok(b)
}

/// A session accepted on this connection and not started yet: its socket and reflector.
struct Pending {
    bind: decide::Bind,
    socket: std::net::UdpSocket,
}

/// The test sessions of one control connection: bound, then running.
#[derive(Default)]
struct Sessions {
    pending: Vec<Pending>,
    running: Vec<(reflector::Handle, Duration)>,
}

impl Sessions {
    /// Test-packet activity for SERVWAIT: the latest receive time of any running session.
    fn last_rx(&self) -> Option<Instant> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.running
            .iter()
            .map(|(h, _)| h.counters.last_rx_ms.load(Ordering::Relaxed))
            .max()
            .and_then(|seen| {
                Instant::now().checked_sub(Duration::from_millis(now_ms.saturating_sub(seen)))
            })
    }
}

/// One control connection, from Server-Greeting to close: reads what the state machine
/// expects, feeds it in, and executes the actions it returns.
fn handle_connection(stream: TcpStream, peer: SocketAddr, sh: &Shared) -> Result<()> {
    let cfg = &sh.config;
    log::info!("{peer}: control connection accepted");
    let _ = stream.set_nodelay(true);
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
    let mut ch = ControlStream::new(stream, Some(peer));
    let secrets = decide::Secrets {
        challenge: random()?,
        salt: random()?,
        server_iv: random()?,
    };
    let mut machine = decide::Server::new(
        decide::Settings::from(cfg),
        &cfg.keys,
        secrets,
        sh.started,
        peer.ip(),
        local_ip,
    );
    let mut sessions = Sessions::default();
    let result = drive(&mut ch, sh, peer, local_ip, &mut machine, &mut sessions);
    // However the connection ends, its reflectors end too: the test sessions belong to it.
    for (h, _) in sessions.running {
        h.join();
    }
    result
}

fn drive(
    ch: &mut ControlStream<TcpStream>,
    sh: &Shared,
    peer: SocketAddr,
    local_ip: IpAddr,
    machine: &mut decide::Server<'_>,
    sessions: &mut Sessions,
) -> Result<()> {
    let mut actions: VecDeque<Action> = machine.greet().into();
    let mut msg = [0u8; RequestTwSession::LEN];
    loop {
        while let Some(action) = actions.pop_front() {
            match action {
                Action::Send(m) => send(ch, m)?,
                Action::Encrypt(c) => ch.set_cipher(c),
                Action::Bind(b) => {
                    let bound = bind_session(b, sh, peer, local_ip, sessions);
                    actions.extend(machine.handle(Input::Bound(bound)));
                }
                Action::Start => start(sh, peer, machine.mode(), sessions)?,
                Action::Stop => {
                    sessions.pending.clear();
                    // RFC 5357 §3.8: keep reflecting for each session's Timeout, then stop.
                    for (h, timeout) in &sessions.running {
                        h.stop_after(*timeout);
                    }
                }
                Action::Log(level, line) => log::log!(level, "{peer}: {line}"),
                Action::Close(why) => return why.map_or(Ok(()), |e| Err(e.into())),
            }
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
                match wait_for_message(ch, sh, deadline, None)? {
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
                match wait_for_message(ch, sh, deadline, Some(sessions))? {
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
            Expect::Rest { command, len, what } => {
                let by = Instant::now() + sh.config.message_timeout;
                ch.recv_part(&mut msg[16..len], by, what)?;
                ch.verify(&msg[..len], what)?;
                match command {
                    Command::RequestTwSession => Input::RequestTwSession {
                        request: RequestTwSession::parse(&msg),
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
fn send(ch: &mut ControlStream<TcpStream>, m: Message) -> Result<()> {
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
    }
}

/// Binds the test socket of an accepted request.
fn bind_session(
    b: decide::Bind,
    sh: &Shared,
    peer: SocketAddr,
    local_ip: IpAddr,
    sessions: &mut Sessions,
) -> std::result::Result<u16, decide::Refusal> {
    let socket = net::bind_test_port(
        local_ip,
        b.spec.requested_port,
        sh.config.test_ports,
        REFLECTOR_RCVBUF,
    )
    .map_err(|e| decide::Refusal {
        accept: Accept::TemporaryResourceLimitation,
        reason: format!("no test port free: {e}"),
    })?;
    if b.spec.dscp != 0 {
        if let Err(e) = net::set_dscp(&socket, b.spec.dscp) {
            log::warn!("{peer}: cannot set DSCP {}: {e}", b.spec.dscp);
        }
    }
    let port = socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| decide::Refusal {
            accept: Accept::InternalError,
            reason: format!("getsockname: {e}"),
        })?;
    sessions.pending.push(Pending { bind: b, socket });
    Ok(port)
}

/// Starts the reflectors of every bound session.
fn start(sh: &Shared, peer: SocketAddr, mode: SecurityMode, sessions: &mut Sessions) -> Result<()> {
    for p in sessions.pending.drain(..) {
        let r = Reflector::new(mode.test_layout(), p.bind.cipher, p.bind.spec.peer);
        let ctx = reflector::Context {
            refwait: sh.config.refwait,
            clock: sh.clock.clone(),
            shutdown: sh.shutdown.clone(),
            live: sh.sessions.clone(),
            totals: sh.totals.clone(),
        };
        let h = reflector::spawn(p.socket, r, p.bind.sid, p.bind.sender_len, &ctx)
            .map_err(|e| Error::io(Op::Spawn, Some(peer), e))?;
        sessions.running.push((h, p.bind.spec.timeout));
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
/// associated with that connection has been received within SERVWAIT"; test packets to its
/// reflectors count (when `sessions` is given), so a long test keeps its connection.
fn wait_for_message(
    ch: &ControlStream<TcpStream>,
    sh: &Shared,
    mut deadline: Instant,
    sessions: Option<&Sessions>,
) -> Result<Wait> {
    let started = Instant::now();
    let window = deadline.saturating_duration_since(started);
    loop {
        if sh.shutdown.load(Ordering::Relaxed) {
            return Ok(Wait::Shutdown);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if ch.wait_readable(left.min(POLL))? {
            return Ok(Wait::Ready);
        }
        if let Some(t) = sessions.and_then(Sessions::last_rx) {
            deadline = deadline.max(t + window);
        }
        if Instant::now() >= deadline {
            return Ok(Wait::Timeout);
        }
    }
}

/// Builds the shared state and serves; the entry point for `-mode server`.
pub fn run(config: ServerConfig, listener: TcpListener, shutdown: Arc<AtomicBool>) -> Result<()> {
    match net::raise_fd_limit() {
        Ok(n) => log::debug!("open file limit {n}"),
        Err(e) => log::warn!("cannot raise the open file limit: {e}"),
    }
    serve(
        listener,
        Shared::new(config, Arc::new(SystemClock::new()), shutdown),
    )
}
