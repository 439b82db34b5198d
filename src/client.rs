//! The Control-Client and Session-Sender driver (RFC 5357 §3, §4.1): a straight-line blocking
//! exchange (greeting → set-up → start → request → accept → start sessions → test → stop), with
//! every decision taken by `control::client`.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::channel::ControlStream;
use crate::config::{ClientConfig, Family};
use crate::control::client::{self as decide, SessionRequest};
use crate::control::SecurityMode;
use crate::crypto::{self, ControlCipher, SessionKeys, TestCipher, TestKeys};
use crate::error::{Error, Op, Result};
use crate::sender::{self, Outcome, Plan};
use crate::time::Clock;
use crate::wire::{
    Accept, AcceptSession, RequestTwSession, ServerGreeting, ServerStart, SetUpResponse, Sid,
    StartAck, StartSessions, StopSessions,
};
use crate::{addr, net};

/// Everything a report needs about one run.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub server: SocketAddr,
    /// Our test socket and the reflector's.
    pub local: SocketAddr,
    pub reflector: SocketAddr,
    pub sid: Sid,
    pub mode: SecurityMode,
    pub padding: u32,
    pub dscp: u8,
    pub count: u32,
    pub interval: Duration,
    pub loss_timeout: Duration,
    pub outcome: Outcome,
}

/// Resolves HOST and PORT, honouring -4 / -6. IPv6 first when both exist, like twping.
pub fn resolve(host: &str, port: u16, family: Family) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
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
    let mut addrs = addrs;
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

fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, timeout) {
            Ok(s) => return Ok((s, *a)),
            Err(e) => {
                last = Some(Error::Connect {
                    addr: *a,
                    source: e,
                })
            }
        }
    }
    Err(last.unwrap_or(Error::Config("no address to connect to".into())))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| Error::io(Op::Random, None, std::io::Error::other(e.to_string())))?;
    Ok(b)
}

/// Runs one measurement against the configured server.
pub fn run(
    cfg: &ClientConfig,
    clock: &dyn Clock,
    stop: &AtomicBool,
    progress: impl FnMut(&Outcome),
) -> std::result::Result<Measurement, Failure> {
    let addrs = resolve(&cfg.host, cfg.port, cfg.family)?;
    let (stream, server) = connect(&addrs, cfg.connect_timeout)?;
    let _ = stream.set_nodelay(true);
    let local_ip = addr::unmap_ip(
        stream
            .local_addr()
            .map_err(|e| Error::io(Op::Getsockname, Some(server), e))?
            .ip(),
    );
    let mut ch = ControlStream::new(stream, Some(server));
    let deadline = || Instant::now() + cfg.connect_timeout;

    // Server-Greeting.
    let mut b = [0u8; ServerGreeting::LEN];
    ch.read_clear(&mut b, deadline(), "Server-Greeting")?;
    let greeting = ServerGreeting::parse(&b);
    let mode = decide::choose_mode(&greeting, &cfg.auth, cfg.secret.is_some())?;
    log::info!("{server}: offers {}; using {mode}", greeting.modes);

    // Set-Up-Response; the secure modes derive keys first and check Count before PBKDF2 runs.
    let mut setup = SetUpResponse::open();
    setup.mode = mode.bit();
    let mut keys: Option<SessionKeys> = None;
    if mode.needs_key() {
        decide::check_count(greeting.count, cfg.max_count)?;
        let (Some(user), Some(secret)) = (&cfg.user, &cfg.secret) else {
            return Err(Error::Config("a secure mode needs -user and a key".into()).into());
        };
        setup.key_id = SetUpResponse::pack_key_id(user)
            .ok_or_else(|| Error::Config(format!("identity '{user}' is longer than 80 octets")))?;
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
        return Err(Failure::from(
            if mode.needs_key() && clear.accept == Accept::Failure {
                Error::Auth(format!(
                    "server {server} rejected identity '{}' or its key",
                    cfg.user.as_deref().unwrap_or("")
                ))
            } else {
                Error::Refused {
                    message: "Server-Start",
                    accept: clear.accept,
                }
            },
        ));
    }
    if let Some(k) = &keys {
        ch.set_cipher(ControlCipher::new(k, setup.client_iv, clear.server_iv));
    }
    ch.read_unmacced(&mut b[ServerStart::CLEAR_LEN..], deadline(), "Server-Start")?;

    // Request-TW-Session → Accept-Session.
    let bind = SocketAddr::new(local_ip, 0);
    let sock = net::udp_socket(bind, 1 << 20).map_err(|e| Error::io(Op::Bind, Some(bind), e))?;
    if cfg.dscp != 0 {
        net::set_dscp(&sock, cfg.dscp).map_err(|e| Error::io(Op::SetSockopt, Some(bind), e))?;
    }
    let local = sock
        .local_addr()
        .map_err(|e| Error::io(Op::Getsockname, Some(bind), e))?;
    let padding = cfg
        .padding
        .unwrap_or(mode.test_layout().size_difference() as u32);
    let req = decide::build_request(&SessionRequest {
        sender: local,
        // Ask for the same port number as ours, as twping does; the server may pick another.
        receiver: SocketAddr::new(server.ip(), local.port()),
        padding,
        start_time: clock.now(),
        timeout: cfg.loss_timeout,
        dscp: cfg.dscp,
    });
    let mut m = [0u8; RequestTwSession::LEN];
    req.emit(&mut m);
    ch.send(&mut m, "Request-TW-Session")?;
    let mut a = [0u8; AcceptSession::LEN];
    ch.recv(&mut a, deadline(), "Accept-Session")?;
    let (port, sid) = decide::check_accept_session(&AcceptSession::parse(&a))?;
    let reflector = SocketAddr::new(addr::unmap_ip(server.ip()), port);
    log::info!("session {sid}: reflector at {reflector}");

    // Start-Sessions → Start-Ack. Nothing is sent before Start-Ack.
    let mut s = [0u8; StartSessions::LEN];
    StartSessions.emit(&mut s);
    ch.send(&mut s, "Start-Sessions")?;
    let mut s = [0u8; StartAck::LEN];
    ch.recv(&mut s, deadline(), "Start-Ack")?;
    let ack = StartAck::parse(&s);
    if ack.accept != Accept::Ok {
        return Err(Error::Refused {
            message: "Start-Sessions",
            accept: ack.accept,
        }
        .into());
    }

    let plan = Plan {
        count: cfg.count,
        interval: cfg.interval,
        loss_timeout: cfg.loss_timeout,
        padding: padding as usize,
        layout: mode.test_layout(),
        cipher: match (mode.test_security(), &keys) {
            (Some(sec), Some(k)) => Some(TestCipher::new(&TestKeys::derive(k, &sid.0), sec)),
            _ => None,
        },
    };
    // The Server says nothing during the test; anything readable on the control connection
    // now is its close (it died or gave up), which ends the run with what was measured.
    let watch = || -> Result<()> {
        if ch.wait_readable(Duration::ZERO)? {
            return Err(Error::Closed {
                waiting_for: "the end of the test session",
                addr: Some(server),
            });
        }
        Ok(())
    };
    let mut m = Measurement {
        server,
        local,
        reflector,
        sid,
        mode,
        padding,
        dscp: cfg.dscp,
        count: cfg.count,
        interval: cfg.interval,
        loss_timeout: cfg.loss_timeout,
        outcome: Outcome::default(),
    };
    let (outcome, result) = sender::run(&sock, reflector, &plan, clock, stop, progress, watch);
    m.outcome = outcome;
    if let Err(error) = result {
        return Err(Failure {
            error,
            partial: Some(Box::new(m)),
        });
    }

    drop(sock);

    // Stop-Sessions with the number of sessions we started (RFC 5357 §3.8).
    let mut s = [0u8; StopSessions::LEN];
    StopSessions {
        accept: Accept::Ok,
        number_of_sessions: 1,
    }
    .emit(&mut s);
    if let Err(error) = ch.send(&mut s, "Stop-Sessions") {
        return Err(Failure {
            error,
            partial: Some(Box::new(m)),
        });
    }
    Ok(m)
}

/// A run that failed, with whatever it measured before it did.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub partial: Option<Box<Measurement>>,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure {
            error,
            partial: None,
        }
    }
}
