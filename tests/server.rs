//! The Server's control behaviour over loopback: the whole exchange, SERVWAIT, REFWAIT, the
//! Stop-Sessions count, command order, and that one bad connection leaves the others alone.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{server_config, wait_until, RawClient, TestServer};
use twamp::time::Timestamp;
use twamp::wire::{self, Accept, Modes, ReflectorPacket};

fn udp() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_ttl(200).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

fn ping(sock: &UdpSocket, port: u16, seq: u32) -> Option<ReflectorPacket> {
    common::ping_open(sock, ([127, 0, 0, 1], port).into(), seq)
}

#[test]
fn greeting_offers_open_mode_with_a_valid_count() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut c = RawClient::connect(srv.addr);
    let g = c.setup_open();
    assert_eq!(g.modes.security(), Modes::UNAUTHENTICATED);
    assert!(g.count >= 1024 && g.count.is_power_of_two());
    assert_ne!(g.challenge, [0; 16]);
}

#[test]
fn full_exchange_reflects_and_stops() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut c = RawClient::connect(srv.addr);
    c.setup_open();
    let sock = udp();
    let a = c.request(sock.local_addr().unwrap(), 27);
    assert_eq!(a.accept, Accept::Ok);
    assert_ne!(a.port, 0);
    assert_ne!(a.sid, wire::Sid::default());
    // Nothing is reflected before Start-Sessions (the reflector thread is not running).
    assert_eq!(c.start().accept, Accept::Ok);
    for seq in 0..5 {
        let p = ping(&sock, a.port, seq).expect("reflection");
        assert_eq!(p.sender_seq, seq);
        assert_eq!(p.seq, seq);
        assert_eq!(
            p.sender_ttl, 200,
            "Sender TTL is the TTL the reflector received"
        );
    }
    c.stop(1);
    assert!(
        wait_until(Duration::from_secs(3), || srv.live_sessions() == 0),
        "reflector ends after Timeout"
    );
}

#[test]
fn servwait_closes_an_idle_control_connection() {
    let mut cfg = server_config("127.0.0.1:0");
    cfg.servwait = Duration::from_millis(600);
    let srv = TestServer::start(cfg);
    let mut c = RawClient::connect(srv.addr);
    let _greeting = c.read::<64>().unwrap();
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "idle connection closed after SERVWAIT"
    );
}

#[test]
fn refwait_ends_a_silent_session() {
    let mut cfg = server_config("127.0.0.1:0");
    cfg.refwait = Duration::from_millis(500);
    let srv = TestServer::start(cfg);
    let mut c = RawClient::connect(srv.addr);
    c.setup_open();
    let sock = udp();
    let a = c.request(sock.local_addr().unwrap(), 27);
    c.start();
    assert!(ping(&sock, a.port, 0).is_some());
    assert_eq!(srv.live_sessions(), 1);
    assert!(
        wait_until(Duration::from_secs(5), || srv.live_sessions() == 0),
        "REFWAIT ended the reflector"
    );
}

#[test]
fn wrong_stop_count_closes_the_connection() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut c = RawClient::connect(srv.addr);
    c.setup_open();
    let sock = udp();
    c.request(sock.local_addr().unwrap(), 27);
    c.start();
    c.stop(2);
    assert!(c.closed_within(Duration::from_secs(5)));
    assert!(wait_until(Duration::from_secs(3), || srv.live_sessions() == 0));
}

#[test]
fn out_of_order_and_unknown_commands_close_only_that_connection() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut good = RawClient::connect(srv.addr);
    good.setup_open();
    let sock = udp();
    let a = good.request(sock.local_addr().unwrap(), 27);
    good.start();

    for first in [2u8, 1, 4, 6, 9, 0xff] {
        let mut bad = RawClient::connect(srv.addr);
        bad.setup_open();
        let mut m = [0u8; 32];
        m[0] = first; // Start-Sessions before any request, forbidden and unknown commands
        bad.write(&m).unwrap();
        assert!(bad.closed_within(Duration::from_secs(5)), "command {first}");
    }
    // The well-behaved session never noticed.
    assert!(ping(&sock, a.port, 0).is_some());
    good.stop(1);
}

#[test]
fn conf_sender_nonzero_is_refused_with_accept_3() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut c = RawClient::connect(srv.addr);
    c.setup_open();
    let mut b = [0u8; wire::RequestTwSession::LEN];
    let r = twamp::control::client::build_request(&twamp::control::client::SessionRequest {
        sender: "127.0.0.1:1".parse().unwrap(),
        receiver: "127.0.0.1:0".parse().unwrap(),
        padding: 0,
        start_time: Timestamp(0),
        timeout: Duration::from_secs(1),
        dscp: 0,
    });
    wire::RequestTwSession {
        conf_sender: 1,
        ..r
    }
    .emit(&mut b);
    c.write(&b).unwrap();
    let a = wire::AcceptSession::parse(&c.read::<48>().unwrap());
    assert_eq!(a.accept, Accept::NotSupported);
    // The connection stays usable: a good request is accepted next.
    let sock = udp();
    assert_eq!(c.request(sock.local_addr().unwrap(), 27).accept, Accept::Ok);
}

#[test]
fn a_mode_not_offered_closes_the_connection() {
    let srv = TestServer::start(server_config("127.0.0.1:0"));
    let mut c = RawClient::connect(srv.addr);
    c.read::<64>().unwrap();
    let mut b = [0u8; wire::SetUpResponse::LEN];
    wire::SetUpResponse {
        mode: Modes::ENCRYPTED,
        ..wire::SetUpResponse::open()
    }
    .emit(&mut b);
    c.write(&b).unwrap();
    assert!(c.closed_within(Duration::from_secs(5)));
}

#[test]
fn dual_stack_listener_serves_v4_and_v6() {
    let srv = TestServer::start(server_config("[::]:0"));
    let port = srv.addr.port();
    for host in ["127.0.0.1", "::1"] {
        let addr = std::net::SocketAddr::new(host.parse().unwrap(), port);
        let mut c = RawClient::connect(addr);
        let g = c.setup_open();
        assert_eq!(g.modes.security(), Modes::UNAUTHENTICATED, "{host}");
    }
}
