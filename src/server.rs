//! The TWAMP Server (RFC 5357 §3): the accept loop, one thread per control connection, and the
//! Session-Reflectors each connection starts. Decisions live in `control::server`; this file
//! reads, writes and starts threads.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::channel::ControlStream;
use crate::config::{ServerConfig, REFLECTOR_RCVBUF};
use crate::control::server::{self as decide, Conn, Next};
use crate::control::SecurityMode;
use crate::crypto::{self, ControlCipher, SessionKeys, TestCipher, TestKeys};
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

/// A session accepted on this connection.
struct Pending {
    spec: decide::SessionSpec,
    socket: std::net::UdpSocket,
    sid: crate::wire::Sid,
    cipher: Option<TestCipher>,
}

/// One control connection, from Server-Greeting to close.
fn handle_connection(stream: TcpStream, peer: SocketAddr, sh: &Shared) -> Result<()> {
    let cfg = &sh.config;
    log::info!("{peer}: control connection accepted");
    let _ = stream.set_nodelay(true);
    let local_ip = addr::unmap_ip(
        stream
            .local_addr()
            .map_err(|e| Error::io(Op::Getsockname, Some(peer), e))?
            .ip(),
    );
    let mut ch = ControlStream::new(stream, Some(peer));

    // Server-Greeting (RFC 4656 §3.1).
    let greeting = ServerGreeting {
        modes: cfg.modes,
        challenge: random()?,
        salt: random()?,
        count: cfg.pbkdf2_count,
    };
    let mut buf = [0u8; ServerGreeting::LEN];
    greeting.emit(&mut buf);
    ch.write_clear(&buf, "Server-Greeting")?;

    // Set-Up-Response.
    if !wait_for_message(&ch, sh, None, "Set-Up-Response")? {
        return Ok(()); // shutting down
    }
    let mut buf = [0u8; SetUpResponse::LEN];
    ch.read_clear(
        &mut buf,
        Instant::now() + sh.config.message_timeout,
        "Set-Up-Response",
    )?;
    let setup = SetUpResponse::parse(&buf);
    let Some(mode) = SecurityMode::from_modes(setup.mode).filter(|m| cfg.modes.contains(m.bit()))
    else {
        // RFC 4656 §3.1: Mode 0 means the client declines; anything not offered is an error.
        // Either way the Server closes the connection.
        return Err(Error::Protocol(format!(
            "Set-Up-Response chose mode {} (offered {})",
            setup.mode, cfg.modes
        )));
    };

    // Authenticate the secure modes before saying anything more.
    let mut session_keys: Option<SessionKeys> = None;
    if mode.needs_key() {
        let id = setup.key_id_str();
        let keys = cfg.keys.get(&id).ok_or(()).and_then(|secret| {
            let k = crypto::derive_key(secret, &greeting.salt, greeting.count);
            crypto::decrypt_token(&k, &setup.token, &greeting.challenge).map_err(|_| ())
        });
        match keys {
            Ok(k) => session_keys = Some(k),
            Err(()) => {
                let known = cfg.keys.get(&id).is_some();
                let start = ServerStart {
                    accept: Accept::Failure,
                    server_iv: [0; 16],
                    start_time: sh.started,
                };
                let mut b = [0u8; ServerStart::LEN];
                start.emit(&mut b);
                let _ = ch.write_clear(&b, "Server-Start");
                return Err(Error::Auth(if known {
                    format!("identity '{id}' from {peer}: wrong key (Token did not decrypt to our Challenge)")
                } else {
                    format!("unknown identity '{id}' from {peer}")
                }));
            }
        }
    }

    // Server-Start: Server-IV in clear, Start-Time encrypted in the secure modes.
    let server_iv: [u8; 16] = if mode.needs_key() { random()? } else { [0; 16] };
    // RFC 4656 §3.1: Start-Time is "the time when the current instantiation of the Server
    // started operating" (twampd sends the same value on every connection).
    let start = ServerStart {
        accept: Accept::Ok,
        server_iv,
        start_time: sh.started,
    };
    let mut b = [0u8; ServerStart::LEN];
    start.emit(&mut b);
    if let Some(k) = &session_keys {
        ch.set_cipher(ControlCipher::new(k, server_iv, setup.client_iv));
    }
    ch.seal_unmacced(&mut b[ServerStart::CLEAR_LEN..], "Server-Start")?;
    ch.write_clear(&b, "Server-Start")?;
    log::info!(
        "{peer}: mode {mode}{}",
        if mode.needs_key() {
            format!(", identity '{}'", setup.key_id_str())
        } else {
            String::new()
        }
    );

    let mut conn = Conn::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut running: Vec<(reflector::Handle, Duration)> = Vec::new();
    let result = command_loop(
        &mut ch,
        sh,
        peer,
        local_ip,
        mode,
        session_keys.as_ref(),
        &mut conn,
        &mut pending,
        &mut running,
    );
    // However the connection ends, its reflectors end too: the test sessions belong to it.
    for (h, _) in running {
        h.join();
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn command_loop(
    ch: &mut ControlStream<TcpStream>,
    sh: &Shared,
    peer: SocketAddr,
    local_ip: IpAddr,
    mode: SecurityMode,
    keys: Option<&SessionKeys>,
    conn: &mut Conn,
    pending: &mut Vec<Pending>,
    running: &mut Vec<(reflector::Handle, Duration)>,
) -> Result<()> {
    loop {
        if !wait_for_message(ch, sh, Some(running), "a control command")? {
            return Ok(()); // shutdown
        }
        let mut msg = [0u8; RequestTwSession::LEN];
        match ch.recv_part(
            &mut msg[..16],
            Instant::now() + sh.config.message_timeout,
            "control command",
        ) {
            Ok(()) => {}
            // Closing between commands is how a Control-Client ends; not an error.
            Err(Error::Closed { .. }) => return Ok(()),
            Err(e) => return Err(e),
        }
        let cmd = Command::from(msg[0]);
        let next = conn.on_command(cmd).map_err(Error::Protocol)?;
        match next {
            Next::Request => {
                let deadline = Instant::now() + sh.config.message_timeout;
                ch.recv_part(&mut msg[16..], deadline, "Request-TW-Session")?;
                ch.verify(&msg, "Request-TW-Session")?;
                let answer = match RequestTwSession::parse(&msg) {
                    Err(e) => {
                        log::warn!("{peer}: refusing Request-TW-Session: {e}");
                        AcceptSession::refuse(Accept::NotSupported)
                    }
                    Ok(req) => match accept_session(&req, sh, peer, local_ip, mode, keys) {
                        Ok(p) => {
                            let a = AcceptSession {
                                accept: Accept::Ok,
                                port: p.socket.local_addr().map(|a| a.port()).unwrap_or(0),
                                sid: p.sid,
                                reflected_octets: 0,
                                server_octets: 0,
                            };
                            log::info!(
                                "{peer}: session {} accepted on port {} (requested {}, padding {})",
                                p.sid,
                                a.port,
                                req.receiver_port,
                                req.padding_length
                            );
                            pending.push(p);
                            conn.session_accepted();
                            a
                        }
                        Err(refusal) => {
                            log::warn!("{peer}: refusing Request-TW-Session: {}", refusal.reason);
                            AcceptSession::refuse(refusal.accept)
                        }
                    },
                };
                let mut out = [0u8; AcceptSession::LEN];
                answer.emit(&mut out);
                ch.send(&mut out, "Accept-Session")?;
            }
            Next::Start => {
                ch.recv_part(
                    &mut msg[16..32],
                    Instant::now() + sh.config.message_timeout,
                    "Start-Sessions",
                )?;
                ch.verify(&msg[..32], "Start-Sessions")?;
                for p in pending.drain(..) {
                    let r = Reflector::new(mode.test_layout(), p.cipher, p.spec.peer);
                    let ctx = reflector::Context {
                        refwait: sh.config.refwait,
                        clock: sh.clock.clone(),
                        shutdown: sh.shutdown.clone(),
                        live: sh.sessions.clone(),
                        totals: sh.totals.clone(),
                    };
                    let max_packet = mode.test_layout().sender.base + p.spec.padding as usize;
                    let h = reflector::spawn(p.socket, r, p.sid, max_packet, &ctx)
                        .map_err(|e| Error::io(Op::Spawn, Some(peer), e))?;
                    running.push((h, p.spec.timeout));
                }
                conn.sessions_started();
                let mut out = [0u8; StartAck::LEN];
                StartAck { accept: Accept::Ok }.emit(&mut out);
                ch.send(&mut out, "Start-Ack")?;
                log::info!("{peer}: {} session(s) started", conn.started());
            }
            Next::Stop => {
                ch.recv_part(
                    &mut msg[16..32],
                    Instant::now() + sh.config.message_timeout,
                    "Stop-Sessions",
                )?;
                ch.verify(&msg[..32], "Stop-Sessions")?;
                let mut m32 = [0u8; StopSessions::LEN];
                m32.copy_from_slice(&msg[..32]);
                let stop = StopSessions::parse(&m32);
                // RFC 5357 §3.8: a wrong count closes the connection and discards results.
                let n = conn.on_stop(&stop).map_err(Error::Protocol)?;
                pending.clear();
                // RFC 5357 §3.8: keep reflecting for each session's Timeout, then stop.
                for (h, timeout) in running.iter() {
                    h.stop_after(*timeout);
                }
                log::info!("{peer}: Stop-Sessions for {n} session(s)");
            }
        }
    }
}

fn accept_session(
    req: &RequestTwSession,
    sh: &Shared,
    peer: SocketAddr,
    local_ip: IpAddr,
    mode: SecurityMode,
    keys: Option<&SessionKeys>,
) -> std::result::Result<Pending, decide::Refusal> {
    let spec = decide::validate_request(req, mode, peer.ip())?;
    let socket = net::bind_test_port(
        local_ip,
        spec.requested_port,
        sh.config.test_ports,
        REFLECTOR_RCVBUF,
    )
    .map_err(|e| decide::Refusal {
        accept: Accept::TemporaryResourceLimitation,
        reason: format!("no test port free: {e}"),
    })?;
    if spec.dscp != 0 {
        if let Err(e) = net::set_dscp(&socket, spec.dscp) {
            log::warn!("{peer}: cannot set DSCP {}: {e}", spec.dscp);
        }
    }
    let rnd: [u8; 4] = random().map_err(|e| decide::Refusal {
        accept: Accept::InternalError,
        reason: e.to_string(),
    })?;
    let sid = decide::make_sid(local_ip, sh.clock.now(), rnd);
    let cipher = match (mode.test_security(), keys) {
        (Some(sec), Some(k)) => Some(TestCipher::new(&TestKeys::derive(k, &sid.0), sec)),
        _ => None,
    };
    Ok(Pending {
        spec,
        socket,
        sid,
        cipher,
    })
}

/// Waits for the next control message to begin. Returns `Ok(false)` on shutdown.
///
/// SERVWAIT (RFC 5357 §3.1): the Server MAY close a control connection when "no packet
/// associated with that connection has been received within SERVWAIT"; test packets to its
/// reflectors count, so a long test keeps its connection.
fn wait_for_message(
    ch: &ControlStream<TcpStream>,
    sh: &Shared,
    running: Option<&[(reflector::Handle, Duration)]>,
    what: &'static str,
) -> Result<bool> {
    let mut last = Instant::now();
    loop {
        if sh.shutdown.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if ch.wait_readable(POLL)? {
            return Ok(true);
        }
        if let Some(rs) = running {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            for (h, _) in rs {
                let seen = h.counters.last_rx_ms.load(Ordering::Relaxed);
                let ago = Duration::from_millis(now_ms.saturating_sub(seen));
                if let Some(t) = Instant::now().checked_sub(ago) {
                    last = last.max(t);
                }
            }
        }
        if last.elapsed() >= sh.config.servwait {
            return Err(Error::Timeout {
                waiting_for: what,
                addr: ch.peer(),
            });
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
