//! Hostile peers against a running server: each case gets the RFC's answer or a closed
//! connection, while a well-behaved session on the same server keeps reflecting every packet.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::logs::{capture_logs, logged};
use common::{server_config, wait_until, RawClient, TestServer};
use twamp::time::{ErrorEstimate, Timestamp};
use twamp::wire::{self, Accept, ReflectorPacket, SenderPacket, TestLayout};

/// A well-behaved open-mode session: control set up, one session started.
struct Good {
    _ctl: RawClient,
    sock: UdpSocket,
    port: u16,
    next: u32,
}

impl Good {
    fn start(srv: &TestServer) -> Good {
        let mut ctl = RawClient::connect(srv.addr);
        ctl.setup_open();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let a = ctl.request(sock.local_addr().unwrap(), 27);
        assert_eq!(a.accept, Accept::Ok);
        assert_eq!(ctl.start().accept, Accept::Ok);
        Good {
            _ctl: ctl,
            sock,
            port: a.port,
            next: 0,
        }
    }

    /// Sends `n` packets and counts the reflections.
    fn measure(&mut self, n: u32) -> u32 {
        let mut got = 0;
        for _ in 0..n {
            let mut b = [0u8; 41];
            SenderPacket {
                seq: self.next,
                timestamp: Timestamp::new(1, 0),
                error_estimate: ErrorEstimate(1),
            }
            .emit(&mut b, &TestLayout::OPEN.sender)
            .unwrap();
            self.sock.send_to(&b, ("127.0.0.1", self.port)).unwrap();
            let mut r = [0u8; 256];
            if let Ok((len, _)) = self.sock.recv_from(&mut r) {
                if ReflectorPacket::parse(&r[..len], &TestLayout::OPEN.reflector)
                    .is_ok_and(|p| p.sender_seq == self.next)
                {
                    got += 1;
                }
            }
            self.next += 1;
        }
        got
    }
}

fn hostile_server() -> TestServer {
    let mut cfg = server_config("127.0.0.1:0");
    cfg.message_timeout = Duration::from_millis(800);
    cfg.servwait = Duration::from_secs(3);
    TestServer::start(cfg)
}

#[test]
fn malformed_control_input_closes_only_that_connection() {
    let srv = hostile_server();
    let mut good = Good::start(&srv);
    type Case = (&'static str, fn(&mut RawClient));
    let cases: [Case; 6] = [
        ("truncated Set-Up-Response then close", |c| {
            c.read::<64>().unwrap();
            c.write(&[0, 0, 0, 1, 0, 0]).unwrap();
            let _ = c.stream.shutdown(std::net::Shutdown::Write);
        }),
        ("truncated Set-Up-Response then silence", |c| {
            c.read::<64>().unwrap();
            c.write(&[0, 0, 0, 1]).unwrap();
        }),
        ("oversized garbage after Server-Start", |c| {
            c.setup_open();
            c.write(&[0xee; 4096]).unwrap();
        }),
        ("Set-Up-Response with mode 0 (client declines)", |c| {
            c.read::<64>().unwrap();
            c.write(&[0u8; wire::SetUpResponse::LEN]).unwrap();
        }),
        ("Request-TW-Session cut after the first block", |c| {
            c.setup_open();
            let mut m = [0u8; 16];
            m[0] = 5;
            m[1] = 4;
            c.write(&m).unwrap();
        }),
        ("Start-Sessions out of order", |c| {
            c.setup_open();
            let mut m = [0u8; 32];
            m[0] = 2;
            c.write(&m).unwrap();
        }),
    ];
    capture_logs();
    for (name, case) in cases {
        let mut c = RawClient::connect(srv.addr);
        let me = c.stream.local_addr().unwrap().to_string();
        case(&mut c);
        assert!(
            c.closed_within(Duration::from_secs(5)),
            "{name}: connection not closed"
        );
        // The Server says why, at warning level, naming the peer (a client that declines
        // with mode 0 ends the connection too; that is logged the same way).
        let line = logged(Duration::from_secs(3), &[&me, "control connection closed:"]);
        assert!(
            line.as_ref()
                .is_some_and(|(level, _)| *level == log::Level::Warn),
            "{name}: no warning naming {me}: {line:?}"
        );
        assert_eq!(good.measure(5), 5, "{name}: the good session lost packets");
    }
}

#[test]
fn bad_ipvn_and_huge_padding_are_refused_and_the_connection_goes_on() {
    let srv = hostile_server();
    let mut good = Good::start(&srv);
    let mut c = RawClient::connect(srv.addr);
    c.setup_open();
    let mut base = [0u8; wire::RequestTwSession::LEN];
    twamp::control::client::build_request(&twamp::control::client::SessionRequest {
        sender: "127.0.0.1:9".parse().unwrap(),
        receiver: "127.0.0.1:0".parse().unwrap(),
        padding: 27,
        start_time: Timestamp(0),
        timeout: Duration::from_secs(1),
        dscp: 0,
    })
    .emit(&mut base);
    let mut bad_ipvn = base;
    bad_ipvn[1] = 7;
    let mut huge_padding = base;
    huge_padding[64..68].copy_from_slice(&u32::MAX.to_be_bytes());
    let mut bad_type_p = base;
    bad_type_p[84..88].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    for (name, msg) in [
        ("IPVN 7", bad_ipvn),
        ("Padding Length 2^32-1", huge_padding),
        ("Type-P 0x40000000", bad_type_p),
    ] {
        c.write(&msg).unwrap();
        let a = wire::AcceptSession::parse(&c.read::<48>().unwrap());
        assert_eq!(a.accept, Accept::NotSupported, "{name}");
        assert_eq!(a.port, 0, "{name}");
    }
    assert_eq!(good.measure(5), 5);
}

#[test]
fn slowloris_is_cut_off_by_the_message_deadline() {
    let srv = hostile_server();
    let mut good = Good::start(&srv);
    let mut c = RawClient::connect(srv.addr);
    c.read::<64>().unwrap();
    let start = Instant::now();
    // One octet every 300 ms: the 164-octet Set-Up-Response would take 49 s.
    let mut closed = false;
    for _ in 0..40 {
        if c.stream.write_all(&[0]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if c.closed_within(Duration::from_millis(1)) {
            closed = true;
            break;
        }
    }
    assert!(closed, "a dribbling peer was not cut off");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(good.measure(5), 5);
}

#[test]
fn a_flood_of_held_connections_does_not_stop_service() {
    let _ = twamp::net::raise_fd_limit();
    let mut cfg = server_config("[::]:0");
    cfg.max_connections_per_client = 64;
    cfg.servwait = Duration::from_secs(20);
    // This case is about the per-client limit: no handshake deadline or budget in the way.
    cfg.setup_timeout = Duration::from_secs(20);
    cfg.max_handshakes = 1000;
    let srv = TestServer::start(cfg);
    let port = srv.addr.port();
    // 300 connections from 127.0.0.1, opened and held without a word.
    let v4: SocketAddr = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let held: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect_timeout(&v4, Duration::from_secs(2)).ok())
        .collect();
    assert!(held.len() >= 250, "only {} connected", held.len());
    assert!(
        wait_until(Duration::from_secs(5), || srv.connections() == 64),
        "{} served",
        srv.connections()
    );
    // The ones past the per-client limit were told Modes 0 and closed.
    let mut refused = 0;
    for s in &held {
        let mut s = s.try_clone().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut g = [0u8; 64];
        if std::io::Read::read_exact(&mut s, &mut g).is_ok()
            && wire::ServerGreeting::parse(&g).modes.is_empty()
        {
            refused += 1;
        }
    }
    assert_eq!(refused, held.len() - 64);
    // Meanwhile a client from ::1 measures without loss.
    let v6: SocketAddr = SocketAddr::new("::1".parse().unwrap(), port);
    let mut ctl = RawClient::connect(v6);
    ctl.setup_open();
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let a = ctl.request(sock.local_addr().unwrap(), 27);
    assert_eq!(ctl.start().accept, Accept::Ok);
    let reflector = SocketAddr::new("::1".parse().unwrap(), a.port);
    let got = (0..50u32)
        .filter(|&seq| common::ping_open(&sock, reflector, seq).is_some())
        .count();
    assert_eq!(got, 50);
    drop(held);
    assert!(
        wait_until(Duration::from_secs(10), || srv.connections() <= 1),
        "{} left",
        srv.connections()
    );
}

#[test]
fn stray_short_oversized_and_foreign_datagrams_are_dropped_and_counted() {
    let srv = hostile_server();
    let mut good = Good::start(&srv);
    let port = good.port;
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let from_peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    for n in [0usize, 1, 13] {
        from_peer
            .send_to(&vec![0u8; n], ("127.0.0.1", port))
            .unwrap();
    }
    // Far larger than the 41 octets negotiated: cut by the kernel, counted as oversized.
    let mut big = vec![0u8; 60_000];
    big[3] = 9;
    from_peer.send_to(&big, ("127.0.0.1", port)).unwrap();
    stranger.send_to(&[0u8; 41], ("127.0.0.1", port)).unwrap(); // another address: never reflected
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut r = [0u8; 64];
    assert!(
        stranger.recv_from(&mut r).is_err(),
        "a foreign datagram was reflected"
    );
    assert_eq!(good.measure(10), 10, "the session goes on");
    let t = &srv.shared.totals;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(t.short.load(Relaxed), 3, "0, 1 and 13 octets are short");
    assert_eq!(t.wrong_peer.load(Relaxed), 1, "the datagram from 127.0.0.2");
    assert_eq!(t.oversized.load(Relaxed), 1, "the 60000-octet datagram");
}
