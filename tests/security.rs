//! The security modes end to end (RFC 4656 §3.1–3.4, §4.1.2; RFC 5357 §3–4; RFC 5618): our
//! client against our server in every mode, the default mode choice, wrong and unknown keys,
//! tampered control messages and test packets, what a secure-only reflector refuses to reflect,
//! reflected sizes, secrets kept out of logs, and the Server-Greeting Count bound.
//!
//! Only 127.0.0.1 and ::1. Every wait is bounded (a few seconds at most) and every thread and
//! process started here is stopped before its test returns.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{server_config, wait_until, RawClient, TestServer};
use twamp::config::{ClientConfig, KeyFile, SessionSpec};
use twamp::control::SecurityMode;
use twamp::crypto::{self, ControlCipher, SessionKeys, TestCipher, TestKeys};
use twamp::error::{exit, Error};
use twamp::report::Report;
use twamp::sender::Schedule;
use twamp::time::{ErrorEstimate, SystemClock, Timestamp};
use twamp::wire::{
    Accept, AcceptSession, Modes, ReflectorPacket, RequestTwSession, SenderPacket, ServerGreeting,
    ServerStart, SetUpResponse, Sid, StartAck, StartSessions, StopSessions, TestLayout,
};

/// The capture key (README): identity `testuser`, this pass-phrase.
const USER: &str = "testuser";
const PASSPHRASE: &[u8] = b"twamp-test-secret-2024";
const PASSPHRASE_HEX: &str = "7477616d702d746573742d7365637265742d32303234";
/// Another pass-phrase, for the wrong-key cases.
const WRONG_PASSPHRASE: &[u8] = b"not-the-twamp-secret-99";

const ALL_MODES: [SecurityMode; 4] = [
    SecurityMode::Open,
    SecurityMode::Authenticated,
    SecurityMode::Encrypted,
    SecurityMode::Mixed,
];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("getrandom");
    b
}

fn key_file() -> KeyFile {
    KeyFile::parse(&format!("{USER} {PASSPHRASE_HEX}\n")).unwrap()
}

/// An in-process server on `listen` offering `modes`, with the capture key.
fn secure_server(listen: &str, modes: Modes) -> TestServer {
    let mut cfg = server_config(listen);
    cfg.modes = modes;
    cfg.keys = key_file();
    TestServer::start(cfg)
}

/// A client configuration for an in-process run: short and bounded.
fn client_config(
    server: SocketAddr,
    auth: &[SecurityMode],
    key: Option<(&str, &[u8])>,
    count: u32,
    interval: Duration,
) -> ClientConfig {
    ClientConfig {
        host: server.ip().to_string(),
        port: server.port(),
        connect_timeout: Duration::from_secs(3),
        sessions: vec![SessionSpec {
            count,
            schedule: Schedule::Periodic { interval },
            loss_timeout: Duration::from_millis(300),
            ..SessionSpec::default()
        }],
        auth: auth.to_vec(),
        user: key.map(|(u, _)| u.to_string()),
        secret: key.map(|(_, s)| zeroize::Zeroizing::new(s.to_vec())),
        quiet: true,
        ..ClientConfig::default()
    }
}

/// What a successful in-process run measured.
struct Measured {
    mode: SecurityMode,
    server: SocketAddr,
    outcome: twamp::sender::Outcome,
}

fn run_client(cfg: &ClientConfig) -> Result<Measured, Error> {
    let Report {
        error,
        mode,
        server,
        mut sessions,
        ..
    } = twamp::client::run(cfg, &SystemClock::new(), &AtomicBool::new(false), |_| {});
    match error {
        Some(e) => Err(e),
        None => Ok(Measured {
            mode: mode.expect("a measured run has a mode"),
            server: server.expect("a measured run has a server"),
            outcome: sessions.remove(0).outcome,
        }),
    }
}

/// The run's error, or a panic naming the mode it measured in.
fn expect_failure(r: Result<Measured, Error>) -> Error {
    match r {
        Ok(m) => panic!("the run succeeded in mode {}", m.mode),
        Err(e) => e,
    }
}

/// Reads until the peer closes. `Ok(())` when it closed (EOF or reset) having sent nothing;
/// `Err` says what happened instead (it sent octets, or was still open after `limit`).
fn closes_silently(stream: &mut TcpStream, limit: Duration) -> Result<(), String> {
    let end = Instant::now() + limit;
    let mut got = 0usize;
    let mut b = [0u8; 256];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} ({got} octets received)"
            ));
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut b) {
            Ok(0) if got == 0 => return Ok(()),
            Ok(0) => return Err(format!("closed, but only after sending {got} octets")),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && got == 0 => return Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("{e} after {got} octets")),
        }
    }
}

// --- a Control-Client for the secure modes, written from the crypto API and the wire types ---

/// Greeting read, Set-Up-Response sent, Server-Start's 48 octets read (not yet decrypted).
struct SetUp {
    stream: TcpStream,
    start: [u8; ServerStart::LEN],
    keys: SessionKeys,
    client_iv: [u8; 16],
}

/// Opens a control connection and authenticates as `id` with `pass` in `mode`.
fn set_up(addr: SocketAddr, mode: SecurityMode, id: &str, pass: &[u8]) -> SetUp {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut g = [0u8; ServerGreeting::LEN];
    stream.read_exact(&mut g).expect("Server-Greeting");
    let greeting = ServerGreeting::parse(&g);
    assert!(greeting.modes.contains(mode.bit()), "{mode} not offered");
    let k = crypto::derive_key(pass, &greeting.salt, greeting.count);
    let keys = SessionKeys {
        aes: random(),
        hmac: random(),
    };
    let client_iv = random();
    let setup = SetUpResponse {
        mode: mode.bit(),
        key_id: SetUpResponse::pack_key_id(id).unwrap(),
        token: crypto::encrypt_token(&k, &greeting.challenge, &keys),
        client_iv,
    };
    let mut b = [0u8; SetUpResponse::LEN];
    setup.emit(&mut b);
    stream.write_all(&b).unwrap();
    let mut start = [0u8; ServerStart::LEN];
    stream.read_exact(&mut start).expect("Server-Start");
    SetUp {
        stream,
        start,
        keys,
        client_iv,
    }
}

impl SetUp {
    fn accept(&self) -> Accept {
        ServerStart::parse(&self.start).accept
    }

    /// Turns the security layer on: Server-Start's last block opens the server's chain and is
    /// covered by the server's next HMAC.
    fn secure(self) -> Secure {
        assert_eq!(self.accept(), Accept::Ok, "Server-Start refused");
        let clear = ServerStart::parse(&self.start);
        let mut cipher = ControlCipher::new(&self.keys, self.client_iv, clear.server_iv);
        let mut last = [0u8; 16];
        last.copy_from_slice(&self.start[ServerStart::CLEAR_LEN..]);
        cipher.decrypt(&mut last).unwrap();
        cipher.feed_recv(&last);
        Secure {
            stream: self.stream,
            cipher,
            keys: self.keys,
        }
    }
}

/// A secure control connection past Server-Start.
struct Secure {
    stream: TcpStream,
    cipher: ControlCipher,
    keys: SessionKeys,
}

impl Secure {
    fn connect(addr: SocketAddr, mode: SecurityMode) -> Secure {
        set_up(addr, mode, USER, PASSPHRASE).secure()
    }

    /// Encrypts and HMACs `msg` in place, flips `flip` = (octet, mask) of the ciphertext if
    /// given, and sends it.
    fn send(&mut self, msg: &mut [u8], flip: Option<(usize, u8)>) {
        self.cipher.seal(msg).unwrap();
        if let Some((at, mask)) = flip {
            msg[at] ^= mask;
        }
        self.stream.write_all(msg).unwrap();
    }

    /// Reads, decrypts and verifies one message; panics on a bad HMAC.
    fn recv<const N: usize>(&mut self, what: &str) -> [u8; N] {
        let mut b = [0u8; N];
        self.stream
            .read_exact(&mut b)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        self.cipher.decrypt(&mut b).unwrap();
        self.cipher
            .verify(&b)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        b
    }

    fn request_bytes(&self, sender: SocketAddr, padding: u32) -> [u8; RequestTwSession::LEN] {
        let r = twamp::control::client::build_request(&twamp::control::client::SessionRequest {
            sender,
            receiver: SocketAddr::new(self.stream.peer_addr().unwrap().ip(), 0),
            padding,
            start_time: Timestamp(0),
            timeout: Duration::from_millis(200),
            dscp: 0,
        });
        let mut b = [0u8; RequestTwSession::LEN];
        r.emit(&mut b);
        b
    }

    fn request(&mut self, sender: SocketAddr, padding: u32) -> AcceptSession {
        let mut b = self.request_bytes(sender, padding);
        self.send(&mut b, None);
        AcceptSession::parse(&self.recv::<{ AcceptSession::LEN }>("Accept-Session"))
    }

    fn start(&mut self) -> StartAck {
        let mut b = [0u8; StartSessions::LEN];
        StartSessions.emit(&mut b);
        self.send(&mut b, None);
        StartAck::parse(&self.recv::<{ StartAck::LEN }>("Start-Ack"))
    }

    fn stop(&mut self, n: u32) {
        let mut b = [0u8; StopSessions::LEN];
        StopSessions {
            accept: Accept::Ok,
            number_of_sessions: n,
        }
        .emit(&mut b);
        self.send(&mut b, None);
    }
}

// --- one started test session, in any mode ---

enum Control {
    Open(RawClient),
    Secure(Box<Secure>),
}

/// A test session accepted and started on `srv`, with its own UDP socket on 127.0.0.1.
struct Session {
    ctl: Control,
    sock: UdpSocket,
    port: u16,
    layout: TestLayout,
    cipher: Option<TestCipher>,
}

impl Session {
    fn start(srv: &TestServer, mode: SecurityMode) -> Session {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let from = sock.local_addr().unwrap();
        let padding = mode.test_layout().size_difference() as u32;
        let (ctl, accept, cipher) = if mode == SecurityMode::Open {
            let mut c = RawClient::connect(srv.addr);
            c.setup_open();
            let a = c.request(from, padding);
            assert_eq!(c.start().accept, Accept::Ok);
            (Control::Open(c), a, None)
        } else {
            let mut c = Secure::connect(srv.addr, mode);
            let a = c.request(from, padding);
            assert_eq!(a.accept, Accept::Ok, "Accept-Session in {mode}");
            assert_eq!(c.start().accept, Accept::Ok, "Start-Ack in {mode}");
            let cipher = mode
                .test_security()
                .map(|sec| TestCipher::new(&TestKeys::derive(&c.keys, &a.sid.0), sec));
            (Control::Secure(Box::new(c)), a, cipher)
        };
        assert_eq!(accept.accept, Accept::Ok);
        Session {
            ctl,
            sock,
            port: accept.port,
            layout: mode.test_layout(),
            cipher,
        }
    }

    /// A Session-Sender packet with `padding` octets of padding, sealed when the mode says so.
    fn packet(&self, seq: u32, padding: usize) -> Vec<u8> {
        let mut b = vec![0u8; self.layout.sender.base + padding];
        SenderPacket {
            seq,
            timestamp: Timestamp::new(1, 0),
            error_estimate: ErrorEstimate(1),
        }
        .emit(&mut b, &self.layout.sender)
        .unwrap();
        for (i, p) in b[self.layout.sender.base..].iter_mut().enumerate() {
            *p = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        if let Some(c) = &self.cipher {
            c.seal_sender(&mut b).unwrap();
        }
        b
    }

    fn send(&self, bytes: &[u8]) {
        self.sock.send_to(bytes, ("127.0.0.1", self.port)).unwrap();
    }

    /// The next datagram on our socket within `wait`, as received (not opened).
    fn reply(&self, wait: Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut b = vec![0u8; 65_536];
        let (n, _) = self.sock.recv_from(&mut b).ok()?;
        b.truncate(n);
        Some(b)
    }

    /// Checks and decrypts a reflection; panics when its HMAC fails.
    fn open(&self, mut bytes: Vec<u8>) -> ReflectorPacket {
        if let Some(c) = &self.cipher {
            c.open_reflected(&mut bytes)
                .expect("the reflection's HMAC checks");
        }
        ReflectorPacket::parse(&bytes, &self.layout.reflector).expect("a reflected packet")
    }

    /// Sends a good packet and returns its reflection, opened.
    fn ping(&self, seq: u32) -> ReflectorPacket {
        self.send(&self.packet(seq, self.layout.size_difference()));
        let r = self
            .reply(Duration::from_secs(2))
            .unwrap_or_else(|| panic!("no reflection of seq {seq}"));
        self.open(r)
    }

    fn stop(&mut self) {
        match &mut self.ctl {
            Control::Open(c) => c.stop(1),
            Control::Secure(c) => c.stop(1),
        }
    }
}

use common::logs::{capture_logs, logged};

// ---------------------------------------------------------------------------------------------
// 1. Our client against our server in every mode, over IPv4 and IPv6
// ---------------------------------------------------------------------------------------------

#[test]
fn client_and_server_measure_without_loss_in_all_four_modes_over_ipv4_and_ipv6() {
    let srv = secure_server("[::]:0", Modes::SECURITY);
    let port = srv.addr.port();
    for host in ["127.0.0.1", "::1"] {
        let addr = SocketAddr::new(host.parse().unwrap(), port);
        for mode in ALL_MODES {
            let cfg = client_config(
                addr,
                &[mode],
                Some((USER, PASSPHRASE)),
                20,
                Duration::from_millis(5),
            );
            let m = run_client(&cfg).unwrap_or_else(|f| panic!("{mode} over {host}: {f}"));
            assert_eq!(m.mode, mode, "over {host}");
            assert_eq!(m.server.ip(), addr.ip(), "{mode}");
            assert_eq!(m.outcome.sent.len(), 20, "{mode} over {host}: sent");
            let mut seqs: Vec<u32> = m.outcome.replies.iter().map(|r| r.sender_seq).collect();
            seqs.sort_unstable();
            seqs.dedup();
            assert_eq!(
                seqs,
                (0..20).collect::<Vec<u32>>(),
                "{mode} over {host}: 0 lost"
            );
            assert_eq!(m.outcome.malformed, 0, "{mode} over {host}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The default mode choice (client -auth not given: strictest first)
// ---------------------------------------------------------------------------------------------

fn default_run(modes: Modes, key: Option<(&str, &[u8])>) -> Result<Measured, Error> {
    let srv = secure_server("127.0.0.1:0", modes);
    let cfg = client_config(
        srv.addr,
        &SecurityMode::STRICTEST_FIRST,
        key,
        2,
        Duration::from_millis(5),
    );
    run_client(&cfg)
}

#[test]
fn default_mode_with_a_key_is_encrypted_when_the_server_offers_all_four() {
    let m = default_run(Modes::SECURITY, Some((USER, PASSPHRASE))).unwrap();
    assert_eq!(m.mode, SecurityMode::Encrypted);
}

#[test]
fn default_mode_with_a_key_is_mixed_when_the_server_offers_open_and_mixed() {
    let m = default_run(
        Modes::UNAUTHENTICATED.union(Modes::MIXED),
        Some((USER, PASSPHRASE)),
    )
    .unwrap();
    assert_eq!(m.mode, SecurityMode::Mixed);
}

#[test]
fn default_mode_without_a_key_is_open() {
    let m = default_run(Modes::SECURITY, None).unwrap();
    assert_eq!(m.mode, SecurityMode::Open);
}

#[test]
fn client_without_a_key_is_refused_by_an_authenticated_and_encrypted_only_server_exit_4() {
    let err = expect_failure(default_run(
        Modes::AUTHENTICATED.union(Modes::ENCRYPTED),
        None,
    ));
    assert!(matches!(err, Error::NoCommonMode { .. }), "{err}");
    assert_eq!(err.exit_code(), exit::REFUSED);
    assert_eq!(exit::REFUSED, 4);
}

// ---------------------------------------------------------------------------------------------
// 3. and 4. Wrong key, unknown identity
// ---------------------------------------------------------------------------------------------

#[test]
fn wrong_key_fails_the_client_with_an_auth_error_exit_6() {
    let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
    for mode in [
        SecurityMode::Authenticated,
        SecurityMode::Encrypted,
        SecurityMode::Mixed,
    ] {
        let cfg = client_config(
            srv.addr,
            &[mode],
            Some((USER, WRONG_PASSPHRASE)),
            2,
            Duration::from_millis(5),
        );
        let err = expect_failure(run_client(&cfg));
        assert!(matches!(err, Error::Auth(_)), "{mode}: {err:?}");
        assert!(
            err.to_string().starts_with("authentication failed"),
            "{mode}: {err}"
        );
        assert_eq!(err.exit_code(), exit::AUTH, "{mode}");
        assert_eq!(exit::AUTH, 6);
    }
}

#[test]
fn wrong_key_server_answers_accept_failure_closes_and_logs_peer_and_identity() {
    capture_logs();
    let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
    let mut s = set_up(srv.addr, SecurityMode::Encrypted, USER, WRONG_PASSPHRASE);
    let peer = s.stream.local_addr().unwrap().to_string();
    assert_eq!(s.accept(), Accept::Failure, "Server-Start Accept");
    assert_ne!(u8::from(s.accept()), 0);
    closes_silently(&mut s.stream, Duration::from_secs(3)).expect("the server closes");
    let (level, line) = logged(
        Duration::from_secs(3),
        &[&peer, &format!("'{USER}'"), "wrong key"],
    )
    .unwrap_or_else(|| panic!("no log line naming {peer} and '{USER}'"));
    assert!(level <= log::Level::Info, "{level}: {line}");
    assert!(
        wait_until(Duration::from_secs(3), || srv.connections() == 0),
        "the refused connection is released"
    );
}

#[test]
fn unknown_identity_fails_the_client_with_an_auth_error_exit_6() {
    let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
    let cfg = client_config(
        srv.addr,
        &[SecurityMode::Authenticated],
        Some(("nobody-we-know", PASSPHRASE)),
        2,
        Duration::from_millis(5),
    );
    let err = expect_failure(run_client(&cfg));
    assert!(matches!(err, Error::Auth(_)), "{err:?}");
    assert!(
        err.to_string().starts_with("authentication failed"),
        "{err}"
    );
    assert_eq!(err.exit_code(), exit::AUTH);
}

#[test]
fn unknown_identity_is_refused_closed_and_logged_as_unknown_identity() {
    capture_logs();
    let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
    let id = "intruder-7f3a";
    let mut s = set_up(srv.addr, SecurityMode::Authenticated, id, PASSPHRASE);
    let peer = s.stream.local_addr().unwrap().to_string();
    assert_eq!(s.accept(), Accept::Failure, "Server-Start Accept");
    closes_silently(&mut s.stream, Duration::from_secs(3)).expect("the server closes");
    let (level, line) = logged(
        Duration::from_secs(3),
        &[&peer, &format!("unknown identity '{id}'")],
    )
    .unwrap_or_else(|| panic!("no 'unknown identity' line naming {peer}"));
    assert!(level <= log::Level::Info, "{level}: {line}");
}

// ---------------------------------------------------------------------------------------------
// 5. A tampered control message
// ---------------------------------------------------------------------------------------------

#[test]
fn tampered_request_tw_session_closes_the_connection_and_a_correct_one_is_accepted() {
    let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let from = sock.local_addr().unwrap();
    for mode in [
        SecurityMode::Authenticated,
        SecurityMode::Encrypted,
        SecurityMode::Mixed,
    ] {
        // Control: the same message, sealed and sent untouched, is accepted.
        let mut good = Secure::connect(srv.addr, mode);
        let a = good.request(from, 64);
        assert_eq!(a.accept, Accept::Ok, "{mode}: the untampered request");
        assert_ne!(a.port, 0);
        // One bit flipped in the ciphertext: in the body past the command block (the command
        // still decrypts to 5, the HMAC fails), in the middle, and in the HMAC block itself.
        for (at, mask) in [(16usize, 0x01u8), (70, 0x80), (111, 0x10)] {
            let mut c = Secure::connect(srv.addr, mode);
            let mut msg = c.request_bytes(from, 64);
            c.send(&mut msg, Some((at, mask)));
            closes_silently(&mut c.stream, Duration::from_secs(3)).unwrap_or_else(|e| {
                panic!("{mode}, bit 0x{mask:02x} of octet {at} flipped: {e} (no Accept-Session expected)")
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. A tampered test packet
// ---------------------------------------------------------------------------------------------

#[test]
fn tampered_test_packet_is_not_reflected_is_counted_and_the_session_goes_on() {
    for mode in [SecurityMode::Authenticated, SecurityMode::Encrypted] {
        let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
        let mut s = Session::start(&srv, mode);
        let covered = s.cipher.as_ref().unwrap().sender_covered();
        let p = s.ping(0);
        assert_eq!((p.sender_seq, p.seq), (0, 0), "{mode}: a good packet");

        // Octets the HMAC covers (block 0; blocks 0-1 in encrypted mode), then the HMAC itself.
        let mut flips: Vec<usize> = vec![0, 3, 9, 15];
        if covered == 32 {
            flips.extend([16, 23, 31]);
        }
        flips.extend([TestCipher::SENDER_HMAC, TestCipher::SENDER_HMAC + 15]);
        for (i, &at) in flips.iter().enumerate() {
            let before = srv.shared.totals.bad_hmac.load(Ordering::Relaxed);
            let mut pkt = s.packet(100 + i as u32, 64);
            pkt[at] ^= 1 << (i % 8);
            s.send(&pkt);
            assert!(
                s.reply(Duration::from_millis(300)).is_none(),
                "{mode}: octet {at} flipped, yet reflected"
            );
            assert!(
                wait_until(Duration::from_secs(1), || srv
                    .shared
                    .totals
                    .bad_hmac
                    .load(Ordering::Relaxed)
                    == before + 1),
                "{mode}: octet {at} flipped: bad_hmac {} (was {before})",
                srv.shared.totals.bad_hmac.load(Ordering::Relaxed)
            );
        }

        let p = s.ping(1);
        assert_eq!(p.sender_seq, 1, "{mode}: the session goes on");
        assert_eq!(
            p.seq, 1,
            "{mode}: dropped packets use no reflector sequence number"
        );
        // (The reflector counts after sending: the count may trail the reply a little.)
        assert!(
            wait_until(Duration::from_secs(1), || srv
                .shared
                .totals
                .reflected
                .load(Ordering::Relaxed)
                == 2),
            "{mode}: reflected {}",
            srv.shared.totals.reflected.load(Ordering::Relaxed)
        );
        s.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// 7. A secure-only server never reflects unauthenticated packets
// ---------------------------------------------------------------------------------------------

#[test]
fn secure_only_server_never_reflects_open_layout_or_random_datagrams() {
    for mode in [SecurityMode::Authenticated, SecurityMode::Encrypted] {
        let srv = secure_server("127.0.0.1:0", Modes::AUTHENTICATED.union(Modes::ENCRYPTED));
        let mut s = Session::start(&srv, mode);
        let base = TestLayout::AUTHENTICATED.sender.base;
        let mut datagrams: Vec<Vec<u8>> = Vec::new();
        // Open-layout Session-Sender packets: the usual 41 octets, and longer ones.
        for (seq, padding) in [(0u32, 27usize), (1, 27), (2, 64), (3, 200)] {
            let mut b = vec![0u8; 14 + padding];
            SenderPacket {
                seq,
                timestamp: Timestamp::new(1, 0),
                error_estimate: ErrorEstimate(1),
            }
            .emit(&mut b, &TestLayout::OPEN.sender)
            .unwrap();
            datagrams.push(b);
        }
        // Random octets of many sizes, below and above the 48-octet sender base.
        for n in [0usize, 1, 13, 14, 41, 47, 48, 49, 64, 112, 113, 500, 1472] {
            let mut b = vec![0u8; n];
            getrandom::fill(&mut b).unwrap();
            datagrams.push(b);
        }
        // The session negotiated base + the size difference (64): shorter datagrams are
        // dropped as undersized before any HMAC work.
        let negotiated = base + TestLayout::AUTHENTICATED.size_difference();
        let short = datagrams.iter().filter(|d| d.len() < base).count() as u64;
        let undersized = datagrams
            .iter()
            .filter(|d| (base..negotiated).contains(&d.len()))
            .count() as u64;
        let long = datagrams.len() as u64 - short - undersized;
        for d in &datagrams {
            s.send(d);
        }
        assert!(
            s.reply(Duration::from_millis(300)).is_none(),
            "{mode}: an unauthenticated datagram was reflected"
        );
        let t = &srv.shared.totals;
        assert!(
            wait_until(Duration::from_secs(2), || t.short.load(Ordering::Relaxed)
                == short
                && t.undersized.load(Ordering::Relaxed) == undersized
                && t.bad_hmac.load(Ordering::Relaxed) == long),
            "{mode}: short {} (want {short}), undersized {} (want {undersized}), bad_hmac {} (want {long})",
            t.short.load(Ordering::Relaxed),
            t.undersized.load(Ordering::Relaxed),
            t.bad_hmac.load(Ordering::Relaxed)
        );
        assert_eq!(t.reflected.load(Ordering::Relaxed), 0, "{mode}");
        // The port was the session's: a sealed packet to it is reflected.
        assert_eq!(s.ping(7).sender_seq, 7, "{mode}");
        s.stop();
    }
}

#[test]
fn secure_only_server_closes_an_open_mode_set_up_response() {
    let srv = secure_server("127.0.0.1:0", Modes::AUTHENTICATED.union(Modes::ENCRYPTED));
    let mut c = RawClient::connect(srv.addr);
    let g = ServerGreeting::parse(&c.read::<64>().unwrap());
    assert_eq!(g.modes.security(), Modes(2 | 4));
    let mut b = [0u8; SetUpResponse::LEN];
    SetUpResponse::open().emit(&mut b);
    c.write(&b).unwrap();
    closes_silently(&mut c.stream, Duration::from_secs(3)).expect("no Server-Start in open mode");
}

// ---------------------------------------------------------------------------------------------
// 8. Reflected sizes
// ---------------------------------------------------------------------------------------------

/// RFC 5357 §4.2.1: the reflector shortens the sender's padding by the base-size difference
/// (27 octets open, 64 authenticated/encrypted) so both directions are the same size. A sender
/// packet whose padding is smaller than that difference (e.g. a bare 14- or 48-octet packet)
/// cannot be answered at its own size: it gets the RFC minimum, the reflector base (41 or 112
/// octets), which is larger than what was received. That case is deliberately not asserted here.
#[test]
fn reflected_packet_is_never_larger_than_received_when_padding_covers_the_size_difference() {
    let srv = secure_server("127.0.0.1:0", Modes::SECURITY);
    for mode in ALL_MODES {
        let mut s = Session::start(&srv, mode);
        let diff = s.layout.size_difference();
        assert_eq!(diff, if s.cipher.is_some() { 64 } else { 27 }, "{mode}");
        for (seq, padding) in [diff, diff + 1, diff + 15, 300, 1400]
            .into_iter()
            .enumerate()
        {
            let pkt = s.packet(seq as u32, padding);
            s.send(&pkt);
            let r = s
                .reply(Duration::from_secs(2))
                .unwrap_or_else(|| panic!("{mode}: padding {padding} not reflected"));
            assert!(
                r.len() <= pkt.len(),
                "{mode}: padding {padding}: sent {} octets, reflected {}",
                pkt.len(),
                r.len()
            );
            assert_eq!(s.open(r).sender_seq, seq as u32, "{mode}");
        }
        s.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// 9. No secret in any log
// ---------------------------------------------------------------------------------------------

/// A TCP relay in front of the server that records both directions of every connection, so the
/// test learns each connection's Salt, Count and Token and can recompute the keys.
struct Tap {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Recorded>>>,
}

/// One relayed connection: (client → server, server → client) octets.
type Recorded = (Vec<u8>, Vec<u8>);

fn pump(mut from: TcpStream, mut to: TcpStream, stop: Arc<AtomicBool>) -> Vec<u8> {
    let mut rec = Vec::new();
    let mut b = [0u8; 4096];
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    loop {
        match from.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                rec.extend_from_slice(&b[..n]);
                if to.write_all(&b[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    rec
}

impl Tap {
    fn start(upstream: SocketAddr) -> Tap {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut conns = Vec::new();
            let started = Instant::now();
            while !st.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        let u = TcpStream::connect_timeout(&upstream, Duration::from_secs(3))
                            .expect("tap: connect to the server");
                        let (c2, u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
                        let (s1, s2) = (st.clone(), st.clone());
                        let up = std::thread::spawn(move || pump(c, u, s1));
                        let down = std::thread::spawn(move || pump(u2, c2, s2));
                        conns.push((up, down));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            conns
                .into_iter()
                .map(|(u, d)| (u.join().unwrap(), d.join().unwrap()))
                .collect()
        });
        Tap {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops relaying; returns (client → server, server → client) per connection, in order.
    fn finish(mut self) -> Vec<Recorded> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Key material of one recorded connection whose client used `client_pass`, the server
/// holding `server_pass`: K on both sides, the session keys in the Token, and the test keys of
/// the session when it was accepted.
fn secrets_of(c2s: &[u8], s2c: &[u8], client_pass: &[u8], server_pass: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    if c2s.len() < SetUpResponse::LEN || s2c.len() < ServerGreeting::LEN {
        return out;
    }
    let g = ServerGreeting::parse(s2c[..ServerGreeting::LEN].try_into().unwrap());
    let setup = SetUpResponse::parse(c2s[..SetUpResponse::LEN].try_into().unwrap());
    if setup.mode == Modes::UNAUTHENTICATED {
        return out;
    }
    let k = crypto::derive_key(client_pass, &g.salt, g.count);
    out.push(k.to_vec());
    out.push(crypto::derive_key(server_pass, &g.salt, g.count).to_vec());
    let Ok(keys) = crypto::decrypt_token(&k, &setup.token, &g.challenge) else {
        return out;
    };
    out.push(keys.aes.to_vec());
    out.push(keys.hmac.to_vec());
    let start_at = ServerGreeting::LEN;
    let accept_at = start_at + ServerStart::LEN;
    if s2c.len() < accept_at + AcceptSession::LEN || s2c[start_at + 15] != 0 {
        return out;
    }
    let mut server_iv = [0u8; 16];
    server_iv.copy_from_slice(&s2c[start_at + 16..start_at + 32]);
    let mut cipher = ControlCipher::new(&keys, setup.client_iv, server_iv);
    let mut last = [0u8; 16];
    last.copy_from_slice(&s2c[start_at + 32..accept_at]);
    cipher.decrypt(&mut last).unwrap();
    cipher.feed_recv(&last);
    let mut acc = [0u8; AcceptSession::LEN];
    acc.copy_from_slice(&s2c[accept_at..accept_at + AcceptSession::LEN]);
    cipher.decrypt(&mut acc).unwrap();
    cipher
        .verify(&acc)
        .expect("recorded Accept-Session decrypts");
    let sid: Sid = AcceptSession::parse(&acc).sid;
    let tk = TestKeys::derive(&keys, &sid.0);
    out.push(tk.aes().to_vec());
    out.push(tk.hmac().to_vec());
    out
}

/// The forms a secret could take in a log line.
fn forms(secret: &[u8]) -> Vec<String> {
    let h = hex(secret);
    vec![
        h.clone(),
        h.to_uppercase(),
        h[..16].to_string(),
        format!("{secret:?}"),
        format!("{:02x?}", secret),
    ]
}

fn assert_no_secret(text: &str, what: &str, secrets: &[Vec<u8>]) {
    for s in secrets {
        for f in forms(s) {
            assert!(
                !text.contains(&f),
                "{what} contains the secret {f}:\n{text}"
            );
        }
    }
    for p in [PASSPHRASE, WRONG_PASSPHRASE] {
        let plain = String::from_utf8_lossy(p);
        assert!(
            !text.contains(&*plain),
            "{what} contains the pass-phrase {plain}"
        );
    }
}

/// A directory of our own under the system temp dir, removed (with its files) on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// No client run here takes more than a few seconds; this only stops a hung one.
const RUN_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn no_secret_in_the_server_log_or_the_client_stderr_at_debug_level() {
    let dir = TempDir::new("twamp-security");
    let dir = &dir.0;
    let logfile = dir.join("server.log");
    let server_keys = dir.join("server.keys");
    let good_keys = dir.join("client-good.keys");
    let wrong_keys = dir.join("client-wrong.keys");
    let unknown_keys = dir.join("client-unknown.keys");
    std::fs::write(&server_keys, format!("{USER} {PASSPHRASE_HEX}\n")).unwrap();
    std::fs::write(&good_keys, format!("{USER} {PASSPHRASE_HEX}\n")).unwrap();
    std::fs::write(&wrong_keys, format!("{USER} {}\n", hex(WRONG_PASSPHRASE))).unwrap();
    std::fs::write(&unknown_keys, format!("stranger {PASSPHRASE_HEX}\n")).unwrap();

    let mut server = common::bin::Server::start(&[
        "-keyfile",
        server_keys.to_str().unwrap(),
        "-logfile",
        logfile.to_str().unwrap(),
        "-v",
        "-v",
    ]);
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&logfile)
            .is_ok_and(|l| l.contains("listening on"))),
        "the server did not start"
    );
    let upstream: SocketAddr = server.addr;
    let tap = Tap::start(upstream);

    // (mode, key file, client pass-phrase, expected exit code)
    let runs: [(&str, &std::path::Path, &[u8], i32); 6] = [
        ("open", &good_keys, PASSPHRASE, 0),
        ("authenticated", &good_keys, PASSPHRASE, 0),
        ("encrypted", &good_keys, PASSPHRASE, 0),
        ("mixed", &good_keys, PASSPHRASE, 0),
        ("encrypted", &wrong_keys, WRONG_PASSPHRASE, 6),
        ("authenticated", &unknown_keys, PASSPHRASE, 6),
    ];
    let mut stderrs = Vec::new();
    for (mode, keys, _, want) in &runs {
        let keyfile = keys.display().to_string();
        let run = common::bin::run_client(
            &tap.addr.to_string(),
            &[
                "-c",
                "3",
                "-i",
                "10ms",
                "-timeout",
                "200ms",
                "-connect-timeout",
                "3s",
                "-auth",
                mode,
                "-keyfile",
                &keyfile,
                "-v",
                "-v",
            ],
            RUN_LIMIT,
        );
        let (code, out, err) = (run.code, run.stdout, run.stderr);
        assert_eq!(
            code,
            Some(*want),
            "client -auth {mode} with {}:\n{out}\n{err}",
            keys.display()
        );
        stderrs.push((
            format!("client -auth {mode} ({})", keys.display()),
            err + &out,
        ));
    }
    let conns = tap.finish();
    assert_eq!(conns.len(), runs.len(), "one control connection per run");

    let mut secrets = Vec::new();
    for ((c2s, s2c), (mode, _, pass, want)) in conns.iter().zip(&runs) {
        let s = secrets_of(c2s, s2c, pass, PASSPHRASE);
        let expected = match (*mode, *want) {
            ("open", _) => 0,
            (_, 0) => 6, // K (twice, same value), session AES and HMAC keys, test AES and HMAC keys
            _ => 4,      // K of the client and of the server, the client's session keys
        };
        assert_eq!(s.len(), expected, "key material recovered for -auth {mode}");
        secrets.extend(s);
    }
    secrets.push(PASSPHRASE.to_vec());
    secrets.push(WRONG_PASSPHRASE.to_vec());

    // Stop the server (SIGTERM) and read everything it wrote.
    server.proc.signal(nix::sys::signal::Signal::SIGTERM);
    let _ = server.proc.wait_for(Duration::from_secs(5));
    let err = server.log();
    drop(server);
    let log = std::fs::read_to_string(&logfile).unwrap();
    // The logs are at debug level and did record the runs, including the refusals.
    assert!(log.contains("wrong key"), "{log}");
    assert!(log.contains("unknown identity 'stranger'"), "{log}");
    assert!(log.contains("mode encrypted, identity 'testuser'"), "{log}");
    assert!(log.contains("[DEBUG]") || log.contains("[TRACE]"), "{log}");
    assert_no_secret(&log, "the server log file", &secrets);
    assert_no_secret(&err, "the server's stderr", &secrets);
    for (what, text) in &stderrs {
        assert_no_secret(text, what, &secrets);
    }
}

// ---------------------------------------------------------------------------------------------
// 10. The Server-Greeting Count bound
// ---------------------------------------------------------------------------------------------

#[test]
fn greeting_count_outside_the_bounds_is_refused_with_exit_4_before_any_token() {
    for count in [1000u32, 1025, 65_536] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || -> Vec<u8> {
            let (mut c, _) = l.accept().unwrap();
            let mut g = [0u8; ServerGreeting::LEN];
            ServerGreeting {
                modes: Modes::AUTHENTICATED,
                challenge: random(),
                salt: random(),
                count,
            }
            .emit(&mut g);
            c.write_all(&g).unwrap();
            // Everything the client sends until it closes (or 5 s).
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let _ = c.read_to_end(&mut got);
            got
        });
        let cfg = client_config(
            addr,
            &SecurityMode::STRICTEST_FIRST,
            Some((USER, PASSPHRASE)),
            2,
            Duration::from_millis(5),
        );
        let started = Instant::now();
        let err = expect_failure(run_client(&cfg));
        assert!(started.elapsed() < Duration::from_secs(3), "Count {count}");
        assert_eq!(err.exit_code(), exit::REFUSED, "Count {count}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains("Count") && msg.contains(&count.to_string()),
            "Count {count}: {msg}"
        );
        let sent = server.join().unwrap();
        // Nothing at all, or at most a Set-Up-Response declining (Mode 0) with no Token.
        if !sent.is_empty() {
            assert!(
                sent.len() >= SetUpResponse::LEN,
                "Count {count}: {} stray octets",
                sent.len()
            );
            let s = SetUpResponse::parse(sent[..SetUpResponse::LEN].try_into().unwrap());
            assert_eq!(s.mode, Modes(0), "Count {count}: the client chose a mode");
            assert_eq!(s.token, [0u8; 64], "Count {count}: a Token was sent");
        }
    }
}
