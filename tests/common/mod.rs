//! Shared test harness: an in-process server on loopback port 0, and a raw control client
//! built from the wire types, so tests can say exactly what goes on the wire.
#![allow(dead_code)]

pub mod bin;
pub mod capture;
pub mod logs;
pub mod proc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use twamp::config::ServerConfig;
use twamp::server::{self, Shared};
use twamp::time::SystemClock;
use twamp::wire;

/// The server's defaults, on `listen`, with short waits for tests and no per-client limit
/// on connections (every test connects from loopback).
pub fn server_config(listen: &str) -> ServerConfig {
    ServerConfig {
        listen: listen.parse().unwrap(),
        refwait: Duration::from_secs(30),
        servwait: Duration::from_secs(30),
        pbkdf2_count: 1024,
        max_connections: 1000,
        max_connections_per_client: 1000,
        message_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    }
}

/// A server running on its own thread; stopped and joined on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        let listener = server::bind(&config).expect("bind");
        let mut addr = listener.local_addr().unwrap();
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv6() {
                "::1".parse().unwrap()
            } else {
                "127.0.0.1".parse().unwrap()
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared::new(config, Arc::new(SystemClock::new()), stop.clone());
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            server::serve(listener, sh).expect("serve");
        });
        TestServer {
            addr,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn live_sessions(&self) -> usize {
        self.shared.sessions.load(Ordering::Relaxed)
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits up to `limit` for `cond`, polling every 20 ms.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// A Control-Client that speaks open mode from the wire types, one message at a time.
pub struct RawClient {
    pub stream: TcpStream,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawClient { stream }
    }

    pub fn read<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.stream.read_exact(&mut b)?;
        Ok(b)
    }

    pub fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)
    }

    /// Greeting → open Set-Up-Response → Server-Start.
    pub fn setup_open(&mut self) -> wire::ServerGreeting {
        let g = wire::ServerGreeting::parse(&self.read::<64>().expect("greeting"));
        let mut b = [0u8; wire::SetUpResponse::LEN];
        wire::SetUpResponse::open().emit(&mut b);
        self.write(&b).unwrap();
        let s = wire::ServerStart::parse(&self.read::<48>().expect("server-start"));
        assert_eq!(s.accept, wire::Accept::Ok);
        g
    }

    /// Sends a request from `sender` (our UDP socket) and returns Accept-Session.
    pub fn request(&mut self, sender: SocketAddr, padding: u32) -> wire::AcceptSession {
        let r = twamp::control::client::build_request(&twamp::control::client::SessionRequest {
            sender,
            receiver: SocketAddr::new(self.stream.peer_addr().unwrap().ip(), 0),
            padding,
            start_time: twamp::time::Timestamp(0),
            timeout: Duration::from_millis(200),
            dscp: 0,
        });
        let mut b = [0u8; wire::RequestTwSession::LEN];
        r.emit(&mut b);
        self.write(&b).unwrap();
        wire::AcceptSession::parse(&self.read::<48>().expect("accept-session"))
    }

    pub fn start(&mut self) -> wire::StartAck {
        let mut b = [0u8; 32];
        wire::StartSessions.emit(&mut b);
        self.write(&b).unwrap();
        wire::StartAck::parse(&self.read::<32>().expect("start-ack"))
    }

    pub fn stop(&mut self, n: u32) {
        let mut b = [0u8; 32];
        wire::StopSessions {
            accept: wire::Accept::Ok,
            number_of_sessions: n,
        }
        .emit(&mut b);
        self.write(&b).unwrap();
    }

    /// True when the server has closed the connection (read returns EOF or reset) within `limit`.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let mut b = [0u8; 64];
        let end = Instant::now() + limit;
        loop {
            match self.stream.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
            if Instant::now() >= end {
                return false;
            }
        }
    }
}

/// Sends one open-layout Session-Sender packet (41 octets: 27 of padding) with `seq` to `to`
/// and returns the parsed reflection, if one arrives before the socket's read timeout.
pub fn ping_open(
    sock: &std::net::UdpSocket,
    to: SocketAddr,
    seq: u32,
) -> Option<wire::ReflectorPacket> {
    use twamp::time::{ErrorEstimate, Timestamp};
    use twamp::wire::{SenderPacket, TestLayout};
    let mut b = [0u8; 41];
    SenderPacket {
        seq,
        timestamp: Timestamp::new(1, 0),
        error_estimate: ErrorEstimate(1),
    }
    .emit(&mut b, &TestLayout::OPEN.sender)
    .expect("41 octets hold the open sender base");
    sock.send_to(&b, to).ok()?;
    let mut r = [0u8; 2048];
    let (n, _) = sock.recv_from(&mut r).ok()?;
    wire::ReflectorPacket::parse(&r[..n], &TestLayout::OPEN.reflector).ok()
}
