//! The Control-Client (RFC 5357 §3) and the run that drives it.
//!
//! [`ControlClient`] is the TWAMP-Control side, a straight-line blocking exchange with every
//! decision taken by `control::client`: [`ControlClient::setup`] (greeting → Set-Up-Response →
//! Server-Start), [`ControlClient::request`] (Request-TW-Session → Accept-Session, one
//! [`TestSession`] each), [`ControlClient::start`] and [`ControlClient::stop`]. The test
//! sessions themselves are [`sender::Session`]s, run by [`sender::run`].
//!
//! [`run`] is one whole measurement: set up, request every configured session, start, test,
//! stop, and the [`Report`] of it, which is returned whether the run succeeded or not.

use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::addr;
use crate::channel::ControlStream;
use crate::config::{ClientConfig, Family, LightClient, SessionSpec};
use crate::control::client::{self as decide, SessionRequest};
use crate::control::SecurityMode;
use crate::crypto::{self, ControlCipher, SessionKeys, TestCipher, TestKeys};
use crate::error::{Error, Op, Result};
use crate::net;
use crate::report::{Report, SessionReport};
use crate::sender::{self, Plan, Progress, Sender};
use crate::time::Clock;
use crate::wire::{
    Accept, AcceptSession, RequestTwSession, ServerGreeting, ServerStart, SetUpResponse, Sid,
    StartAck, StartSessions, StopSessions,
};

/// Test sockets get this receive buffer: a burst of reflections must not overflow it.
const TEST_RCVBUF: usize = 1 << 20;

/// Resolves HOST and PORT, honouring -4 / -6. IPv6 first when both exist, like twping.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>> {
    let mut addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Resolve {
            host: host.to_string(),
            source: e,
        })?
        .filter(|a| match family {
            Family::Any => true,
            Family::V4 => a.is_ipv4(),
            Family::V6 => a.is_ipv6(),
        })
        .collect();
    // IPv6 first when a name has both, as twping does; the sort is stable.
    addrs.sort_by_key(|a| a.is_ipv4());
    if addrs.is_empty() {
        return Err(Error::Resolve {
            host: host.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address of the requested family",
            ),
        });
    }
    Ok(addrs)
}

fn connect(
    addrs: &[SocketAddr],
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    // With -source, only the server's addresses of the source's family can work.
    let usable = addrs
        .iter()
        .filter(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()));
    for a in usable {
        match net::tcp_connect(*a, source, timeout) {
            Ok(s) => return Ok((s, *a)),
            Err(e) => {
                last = Some(Error::Connect {
                    addr: *a,
                    source: e,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::Config(match source {
            Some(s) => format!("the server has no address of the same IP version as -source {s}"),
            None => "no address to connect to".into(),
        })
    }))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| Error::io(Op::Random, None, std::io::Error::other(e.to_string())))?;
    Ok(b)
}

/// A test socket on `ip` (a port of `ports` when given) marked as `spec` says: DSCP, TTL,
/// Don't Fragment. Returns it with its address.
fn test_socket(
    ip: IpAddr,
    ports: Option<(u16, u16)>,
    spec: &SessionSpec,
) -> Result<(UdpSocket, SocketAddr)> {
    let bind = SocketAddr::new(ip, 0);
    let socket = net::bind_test_port(ip, 0, ports, TEST_RCVBUF)
        .map_err(|e| Error::io(Op::Bind, Some(bind), e))?;
    let sockopt = |e| Error::io(Op::SetSockopt, Some(bind), e);
    if spec.dscp != 0 {
        net::set_dscp(&socket, spec.dscp).map_err(sockopt)?;
    }
    if spec.ttl != net::TEST_TTL as u8 {
        net::set_ttl(&socket, spec.ttl).map_err(sockopt)?;
    }
    if spec.df {
        net::set_df(&socket).map_err(sockopt)?;
    }
    let local = socket
        .local_addr()
        .map_err(|e| Error::io(Op::Getsockname, Some(bind), e))?;
    Ok((socket, local))
}

/// One accepted test session, not yet started.
pub struct TestSession {
    pub spec: SessionSpec,
    pub socket: UdpSocket,
    /// Our test socket's address and the reflector's.
    pub local: SocketAddr,
    pub reflector: SocketAddr,
    pub sid: Sid,
    /// Padding Length as requested (the spec's, or the mode's size difference).
    pub padding: u32,
    cipher: Option<TestCipher>,
    mode: SecurityMode,
}

impl TestSession {
    /// The Session-Sender for this session, its packet 0 due at `start`.
    pub fn into_session(self, start: Instant) -> (sender::Session, SessionReport) {
        let mut report = SessionReport::new(
            self.sid,
            self.local,
            self.reflector,
            self.padding,
            &self.spec,
        );
        report.octets = self.mode.test_layout().sender.base as u32 + self.padding;
        let plan = Plan {
            count: self.spec.count,
            schedule: self.spec.schedule,
            duration: self.spec.duration,
            loss_timeout: self.spec.loss_timeout,
            padding: self.padding as usize,
            layout: self.mode.test_layout(),
            cipher: self.cipher,
            light: None,
        };
        let s = sender::Session::new(Sender::new(plan, self.reflector, start), self.socket);
        (s, report)
    }
}

/// The Control-Client's side of one control connection.
pub struct ControlClient {
    ch: ControlStream<TcpStream>,
    server: SocketAddr,
    /// Our address on the control connection: test sockets bind to it.
    local_ip: IpAddr,
    mode: SecurityMode,
    keys: Option<SessionKeys>,
    /// How long each control reply may take.
    timeout: Duration,
    /// Local UDP ports for test sockets (`-test-ports`).
    test_ports: Option<(u16, u16)>,
    zero_addresses: bool,
    accepted: u32,
    started: u32,
}

impl ControlClient {
    /// Connects and runs greeting → Set-Up-Response → Server-Start (RFC 4656 §3.1).
    pub fn setup(cfg: &ClientConfig) -> Result<ControlClient> {
        let addrs = resolve(&cfg.host, cfg.port, cfg.family)?;
        let (stream, server) = connect(&addrs, cfg.source, cfg.connect_timeout)?;
        let _ = stream.set_nodelay(true);
        let local_ip = addr::unmap_ip(
            stream
                .local_addr()
                .map_err(|e| Error::io(Op::Getsockname, Some(server), e))?
                .ip(),
        );
        let mut ch = ControlStream::new(stream, Some(server));
        let timeout = cfg.connect_timeout;
        let deadline = || Instant::now() + timeout;

        // Server-Greeting.
        let mut b = [0u8; ServerGreeting::LEN];
        ch.read_clear(&mut b, deadline(), "Server-Greeting")?;
        let greeting = ServerGreeting::parse(&b);
        let mode = decide::choose_mode(&greeting, &cfg.auth, cfg.secret.is_some())?;
        log::info!("{server}: offers {}; using {mode}", greeting.modes);

        // Set-Up-Response; the secure modes check Count before PBKDF2 runs.
        let mut setup = SetUpResponse::open();
        setup.mode = mode.bit();
        let mut keys: Option<SessionKeys> = None;
        if mode.needs_key() {
            decide::check_count(greeting.count, cfg.max_count)?;
            let (Some(user), Some(secret)) = (&cfg.user, &cfg.secret) else {
                return Err(Error::Config("a secure mode needs -user and a key".into()));
            };
            setup.key_id = SetUpResponse::pack_key_id(user).ok_or_else(|| {
                Error::Config(format!("identity '{user}' is longer than 80 octets"))
            })?;
            let k = crypto::derive_key(secret, &greeting.salt, greeting.count);
            let session = SessionKeys {
                aes: random()?,
                hmac: random()?,
            };
            setup.token = crypto::encrypt_token(&k, &greeting.challenge, &session);
            setup.client_iv = random()?;
            keys = Some(session);
        }
        let mut b = [0u8; SetUpResponse::LEN];
        setup.emit(&mut b);
        ch.write_clear(&b, "Set-Up-Response")?;

        // Server-Start.
        let mut b = [0u8; ServerStart::LEN];
        ch.read_clear(&mut b[..ServerStart::CLEAR_LEN], deadline(), "Server-Start")?;
        let clear = ServerStart::parse(&b);
        if clear.accept != Accept::Ok {
            // RFC 4656 §3.1: a Server that cannot authenticate us answers Accept ≠ 0.
            return Err(if mode.needs_key() && clear.accept == Accept::Failure {
                Error::Auth(format!(
                    "server {server} rejected identity '{}' or its key",
                    cfg.user.as_deref().unwrap_or("")
                ))
            } else {
                Error::Refused {
                    message: "Server-Start",
                    accept: clear.accept,
                }
            });
        }
        if let Some(k) = &keys {
            ch.set_cipher(ControlCipher::new(k, setup.client_iv, clear.server_iv));
        }
        ch.read_unmacced(&mut b[ServerStart::CLEAR_LEN..], deadline(), "Server-Start")?;
        Ok(ControlClient {
            ch,
            server,
            local_ip,
            mode,
            keys,
            timeout,
            test_ports: cfg.test_ports,
            zero_addresses: cfg.zero_addresses,
            accepted: 0,
            started: 0,
        })
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    pub fn mode(&self) -> SecurityMode {
        self.mode
    }

    /// Request-TW-Session → Accept-Session for one session (RFC 5357 §3.5): binds its test
    /// socket, and sends to the port the Server names.
    pub fn request(&mut self, spec: &SessionSpec, clock: &dyn Clock) -> Result<TestSession> {
        let base = self.mode.test_layout().sender.base as u32;
        let padding = match (spec.size, spec.padding) {
            (Some(size), _) => size.checked_sub(base).ok_or_else(|| {
                Error::Config(format!(
                    "-size {size}: a {} mode test packet is at least {base} octets",
                    self.mode
                ))
            })?,
            (None, Some(p)) => p,
            (None, None) => self.mode.test_layout().size_difference() as u32,
        };
        let (socket, local) = test_socket(self.local_ip, self.test_ports, spec)?;
        // RFC 5357 §3.5: a zero Sender or Receiver Address means "the address of the control
        // connection", which survives NAT where our own address would not.
        let (sender_ip, receiver_ip) = if self.zero_addresses {
            let any = if local.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            };
            (any, any)
        } else {
            (local.ip(), self.server.ip())
        };
        let req = decide::build_request(&SessionRequest {
            sender: SocketAddr::new(sender_ip, local.port()),
            // Ask for the same port number as ours, as twping does; the server may pick another.
            receiver: SocketAddr::new(receiver_ip, local.port()),
            padding,
            start_time: clock.now().plus(spec.start_delay),
            timeout: spec.loss_timeout,
            dscp: spec.dscp,
        });
        let mut m = [0u8; RequestTwSession::LEN];
        req.emit(&mut m);
        self.ch.send(&mut m, "Request-TW-Session")?;
        let mut a = [0u8; AcceptSession::LEN];
        self.ch
            .recv(&mut a, Instant::now() + self.timeout, "Accept-Session")?;
        let (port, sid) = decide::check_accept_session(&AcceptSession::parse(&a))?;
        let reflector = SocketAddr::new(addr::unmap_ip(self.server.ip()), port);
        log::info!("session {sid}: reflector at {reflector}");
        let cipher = match (self.mode.test_security(), &self.keys) {
            (Some(sec), Some(k)) => Some(TestCipher::new(&TestKeys::derive(k, &sid.0), sec)),
            _ => None,
        };
        self.accepted += 1;
        Ok(TestSession {
            spec: spec.clone(),
            socket,
            local,
            reflector,
            sid,
            padding,
            cipher,
            mode: self.mode,
        })
    }

    /// Start-Sessions → Start-Ack (RFC 5357 §3.7). Nothing is sent before Start-Ack.
    pub fn start(&mut self) -> Result<()> {
        let mut s = [0u8; StartSessions::LEN];
        StartSessions.emit(&mut s);
        self.ch.send(&mut s, "Start-Sessions")?;
        let mut s = [0u8; StartAck::LEN];
        self.ch
            .recv(&mut s, Instant::now() + self.timeout, "Start-Ack")?;
        let ack = StartAck::parse(&s);
        if ack.accept != Accept::Ok {
            return Err(Error::Refused {
                message: "Start-Sessions",
                accept: ack.accept,
            });
        }
        self.started += self.accepted;
        self.accepted = 0;
        Ok(())
    }

    /// Stop-Sessions with the number of sessions started (RFC 5357 §3.8: it MUST match).
    pub fn stop(&mut self) -> Result<()> {
        let mut s = [0u8; StopSessions::LEN];
        StopSessions {
            accept: Accept::Ok,
            number_of_sessions: self.started,
        }
        .emit(&mut s);
        self.ch.send(&mut s, "Stop-Sessions")?;
        self.started = 0;
        Ok(())
    }

    /// The Server says nothing during a test; anything readable on the control connection is
    /// its close (it died or gave up).
    pub fn check_open(&mut self) -> Result<()> {
        if self.ch.wait_readable(Duration::ZERO)? {
            return Err(Error::Closed {
                waiting_for: "the end of the test session",
                addr: Some(self.server),
            });
        }
        Ok(())
    }
}

/// Runs one measurement against the configured server: every session in `cfg.sessions` on one
/// control connection. The report says what was measured, and the error if the run failed.
pub fn run(
    cfg: &ClientConfig,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: impl FnMut(&Progress),
) -> Report {
    let mut report = Report::new(cfg);
    let measured = match &cfg.light {
        Some(light) => measure_light(cfg, light, clock, stop, progress, &mut report),
        None => measure(cfg, clock, stop, progress, &mut report),
    };
    if let Err(e) = measured {
        report.fail(e);
    }
    report
}

/// TWAMP-Light / STAMP (RFC 5357 Appendix I, RFC 8762): test packets straight to the
/// reflector, no control connection; one socket and one SSID per session.
fn measure_light(
    cfg: &ClientConfig,
    light: &LightClient,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: impl FnMut(&Progress),
    report: &mut Report,
) -> Result<()> {
    use crate::light::sender::{Format, LightSender, SenderConfig};
    use crate::wire::stamp::StampMode;
    let addrs = resolve(&cfg.host, cfg.port, cfg.family)?;
    let to = *addrs
        .iter()
        .find(|a| cfg.source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .ok_or_else(|| {
            Error::Config("the server has no address of the same IP version as -source".into())
        })?;
    report.server = Some(to);
    report.light = Some(match light.format {
        Format::TwampLight => "twamp-light",
        Format::Stamp(StampMode::Unauthenticated) => "stamp",
        Format::Stamp(StampMode::Authenticated) => "stamp-authenticated",
    });
    let key = match (light.format, &cfg.secret) {
        (Format::Stamp(StampMode::Authenticated), Some(k)) => Some(crate::light::LightKey::new(k)),
        (Format::Stamp(StampMode::Authenticated), None) => {
            return Err(Error::Config(
                "-light-key: no pass-phrase for it (-keyfile, or $TWAMP_PASSPHRASE)".into(),
            ))
        }
        _ => None,
    };
    let local_ip = cfg.source.unwrap_or(if to.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    });
    let start = Instant::now();
    let mut sessions = Vec::with_capacity(cfg.sessions.len());
    for (i, spec) in cfg.sessions.iter().enumerate() {
        let base = match light.format {
            Format::TwampLight => crate::wire::TestLayout::OPEN.sender.base,
            Format::Stamp(m) => m.base(),
        } as u32;
        // TWAMP-Light pads to the 41-octet reflected base by default, so neither direction is
        // larger (a reflector that never amplifies drops a bare 14-octet packet); STAMP's
        // 44-octet bases are equal already.
        let padding = spec.padding.unwrap_or(match light.format {
            Format::TwampLight => 27,
            Format::Stamp(_) => 0,
        });
        let packet_len = spec.size.unwrap_or(base + padding) as usize;
        let ssid = match light.format {
            Format::TwampLight => 0,
            Format::Stamp(_) => light.ssid.wrapping_add(i as u16),
        };
        let sender = LightSender::new(SenderConfig {
            format: light.format,
            ssid,
            tlvs: light.tlvs.clone(),
            packet_len,
            key: key.clone(),
        })
        .map_err(|e| Error::Config(format!("-light: cannot build the test packets: {e:?}")))?;
        let (socket, local) = test_socket(local_ip, cfg.test_ports, spec)?;
        let mut r = SessionReport::new(Sid([0; 16]), local, to, padding, spec);
        r.light = true;
        r.octets = sender.packet_len() as u32;
        r.ssid = matches!(light.format, Format::Stamp(_)).then_some(ssid);
        let plan = Plan {
            count: spec.count,
            schedule: spec.schedule,
            duration: spec.duration,
            loss_timeout: spec.loss_timeout,
            padding: 0,
            layout: crate::wire::TestLayout::OPEN,
            cipher: None,
            light: Some(sender),
        };
        sessions.push(sender::Session::new(
            Sender::new(plan, to, start + spec.start_delay),
            socket,
        ));
        report.sessions.push(r);
    }
    // No control connection to watch: the schedule and the loss timeout end the run.
    let result = sender::run(&mut sessions, clock, stop, progress, || Ok(()));
    for (r, s) in report.sessions.iter_mut().zip(sessions) {
        drop(s.socket);
        r.finish(s.sender.into_outcome());
    }
    result
}

fn measure(
    cfg: &ClientConfig,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: impl FnMut(&Progress),
    report: &mut Report,
) -> Result<()> {
    let mut cc = ControlClient::setup(cfg)?;
    report.server = Some(cc.server());
    report.mode = Some(cc.mode());
    let mut accepted = Vec::with_capacity(cfg.sessions.len());
    for spec in &cfg.sessions {
        accepted.push(cc.request(spec, clock)?);
    }
    cc.start()?;
    let start = Instant::now();
    let (mut sessions, reports): (Vec<_>, Vec<_>) = accepted
        .into_iter()
        .map(|t| {
            let delay = t.spec.start_delay;
            t.into_session(start + delay)
        })
        .unzip();
    report.sessions = reports;
    let result = sender::run(&mut sessions, clock, stop, progress, || cc.check_open());
    // What was measured stays in the report, whatever happens next.
    for (r, s) in report.sessions.iter_mut().zip(sessions) {
        drop(s.socket);
        r.finish(s.sender.into_outcome());
    }
    result?;
    cc.stop()
}
