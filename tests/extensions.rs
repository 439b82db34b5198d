//! The TWAMP extensions of issue 11 client to server, and their fallback against a server that
//! does not offer them (our server with `-extensions none` stands in for perfSONAR twampd,
//! which greets with Modes 7): RFC 6038 Reflect Octets and Symmetrical Size, RFC 7750 DSCP and
//! ECN Monitoring (with a re-marking relay in between), RFC 5938 Individual Session Control.

mod common;
#[path = "common/relay.rs"]
mod relay;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::{server_config, TestServer};
use relay::{Impairment, Relay};
use serde_json::Value;
use twamp::client::ControlClient;
use twamp::config::{ClientConfig, ClientExtensions, ServerConfig, SessionSpec};
use twamp::report::SessionReport;
use twamp::sender::{self, Schedule};
use twamp::time::SystemClock;
use twamp::wire::{Modes, TestLayout};

fn server(extensions: Modes) -> TestServer {
    TestServer::start(ServerConfig {
        extensions,
        ..server_config("127.0.0.1:0")
    })
}

fn spec(count: u32) -> SessionSpec {
    SessionSpec {
        count,
        schedule: Schedule::Periodic {
            interval: Duration::from_millis(5),
        },
        // Generous: replies come back in microseconds, and a session ends once all are back;
        // only a loaded machine needs the time.
        loss_timeout: Duration::from_secs(1),
        ..SessionSpec::default()
    }
}

fn config(server: SocketAddr, sessions: Vec<SessionSpec>, x: ClientExtensions) -> ClientConfig {
    ClientConfig {
        host: server.ip().to_string(),
        port: server.port(),
        connect_timeout: Duration::from_secs(3),
        sessions,
        extensions: x,
        quiet: true,
        ..ClientConfig::default()
    }
}

fn run(cfg: &ClientConfig) -> twamp::report::Report {
    let r = twamp::client::run(cfg, &SystemClock::new(), &AtomicBool::new(false), |_| {});
    assert!(r.error.is_none(), "{:?}", r.error);
    r
}

fn json(r: &twamp::report::Report) -> Value {
    twamp::output::json::value(r)
}

fn all() -> ClientExtensions {
    ClientExtensions {
        reflect_octets: Some(8),
        symmetrical: true,
        dscp_ecn: true,
        individual: true,
    }
}

#[test]
fn only_offered_bits_are_chosen_and_the_rest_is_noted() {
    // Everything asked for, nothing offered (twampd's Modes 7 case): the run is plain RFC 5357
    // and says, per feature, what it went without.
    let srv = server(Modes(0));
    let r = run(&config(srv.addr, vec![spec(10), spec(10)], all()));
    let x = r.extensions.expect("set up");
    assert_eq!(x.offered, Modes::UNAUTHENTICATED, "the greeting");
    assert_eq!(x.used, Modes(0));
    assert_eq!(r.notes.len(), 4, "{:?}", r.notes);
    for (note, rfc) in r.notes.iter().zip(["6038", "6038", "7750", "5938"]) {
        assert!(
            note.contains(rfc) && note.contains("does not offer"),
            "{note}"
        );
    }
    for s in &r.sessions {
        assert_eq!((s.summary.sent, s.summary.received), (10, 10));
        assert_eq!(s.padding, 27, "the RFC 5357 default, nothing to reflect");
        assert!(s.reflect_octets.is_none() && s.dscp_ecn().is_none() && !s.stopped_early);
    }
    let text = twamp::output::text::render(&r);
    assert_eq!(
        text.matches("note: server does not offer").count(),
        4,
        "{text}"
    );
    assert!(!text.contains("extensions:"), "{text}");
    let j = json(&r);
    assert_eq!(j["notes"].as_array().unwrap().len(), 4);
    assert_eq!(j["extensions"]["used"], serde_json::json!([]));
    assert!(j["session"]["dscp_ecn"].is_null() && j["session"]["reflect_octets"].is_null());

    // Offered but not asked for: nothing changes either (the defaults ask for nothing).
    let srv = server(twamp::control::EXTENSIONS);
    let r = run(&config(
        srv.addr,
        vec![spec(5)],
        ClientExtensions::default(),
    ));
    let x = r.extensions.unwrap();
    assert_eq!(x.offered, Modes(1 | 16 | 32 | 64 | 256));
    assert_eq!(x.used, Modes(0));
    assert!(r.notes.is_empty());
    assert_eq!(r.sessions[0].padding, 27);
}

#[test]
fn reflect_octets_come_back_intact() {
    let srv = server(twamp::control::EXTENSIONS);
    let x = ClientExtensions {
        reflect_octets: Some(8),
        ..ClientExtensions::default()
    };
    let r = run(&config(srv.addr, vec![spec(20)], x));
    assert_eq!(r.extensions.unwrap().used, Modes::REFLECT_OCTETS);
    let s = &r.sessions[0];
    assert_eq!(s.padding, 27 + 8, "room for 8 octets after the truncation");
    let ro = s.reflect_octets.expect("negotiated");
    assert!(
        ro.echoed(),
        "Accept-Session copies Octets to be reflected: {ro:?}"
    );
    assert_ne!(ro.octets_to_be_reflected, 0);
    assert_eq!(s.summary.received, 20);
    assert_eq!(s.outcome.reflected_padding.intact, 20);
    assert_eq!(s.outcome.reflected_padding.altered, 0);
    let j = json(&r);
    assert_eq!(j["session"]["reflect_octets"]["intact"], 20);
    assert_eq!(j["session"]["reflect_octets"]["echoed"], true);
    assert!(twamp::output::text::render(&r).contains("intact in 20 of 20 reflections"));

    // Too little padding for it is the user's error, said before anything is sent.
    let mut bad = config(srv.addr, vec![spec(5)], x);
    bad.sessions[0].padding = Some(30);
    let r = twamp::client::run(&bad, &SystemClock::new(), &AtomicBool::new(false), |_| {});
    let e = r.error.expect("refused locally").to_string();
    assert!(e.contains("-reflect-octets 8") && e.contains("35"), "{e}");

    // Against a server without it: no octets reflected, a note, the run goes on.
    let srv = server(Modes(16 | 64 | 256));
    let r = run(&config(srv.addr, vec![spec(5)], x));
    assert!(r.sessions[0].reflect_octets.is_none());
    assert_eq!(r.sessions[0].summary.received, 5);
    assert!(r.notes[0].contains("Reflect Octets"), "{:?}", r.notes);
}

/// Sets up, requests one session of `spec`, and returns the session with the client.
fn one_session(
    srv: &TestServer,
    spec: &SessionSpec,
    x: ClientExtensions,
) -> (ControlClient, twamp::client::TestSession) {
    let cfg = config(srv.addr, vec![spec.clone()], x);
    let mut cc = ControlClient::setup(&cfg).expect("setup");
    let ts = cc.request(spec, &SystemClock::new()).expect("request");
    (cc, ts)
}

/// Starts `ts`, runs it to the end and stops: what a client run does, with a hand on the
/// session (a test may send it through a relay first).
fn measure(mut cc: ControlClient, ts: twamp::client::TestSession) -> SessionReport {
    cc.start().expect("start");
    let (session, mut report) = ts.into_session(Instant::now());
    let mut sessions = [session];
    sender::run(
        &mut sessions,
        &SystemClock::new(),
        &AtomicBool::new(false),
        |_| {},
        || Ok(()),
    )
    .expect("run");
    let [s] = sessions;
    report.finish(s.sender.into_outcome());
    cc.stop().expect("stop");
    report
}

#[test]
fn symmetrical_size_gives_the_sender_the_reflector_base() {
    let srv = server(twamp::control::EXTENSIONS);
    let x = ClientExtensions {
        symmetrical: true,
        ..ClientExtensions::default()
    };
    let spec = SessionSpec {
        padding: Some(100),
        ..spec(10)
    };
    let (cc, ts) = one_session(&srv, &spec, x);
    assert_eq!(cc.extensions(), Modes::SYMMETRICAL_SIZE);
    assert_eq!(ts.layout, TestLayout::SYMMETRICAL_OPEN);
    assert_eq!(ts.layout.size_difference(), 0, "equal sizes, no truncation");
    // The reflector accepts 41 + 100 octets (its negotiated size) and answers every one.
    let r = measure(cc, ts);
    assert_eq!(r.summary.received, 10);

    // Default padding with Symmetrical Size is none: 41 octets both ways, as without it.
    let (cc, ts) = one_session(&srv, &self::spec(3), x);
    assert_eq!(ts.padding, 0);
    assert_eq!(measure(cc, ts).summary.received, 3);

    // Fallback: the RFC 5357 layout, the padding as asked, and a note.
    let srv = server(Modes(0));
    let r = run(&config(srv.addr, vec![spec], x));
    assert_eq!(r.sessions[0].summary.received, 10);
    assert_eq!(r.sessions[0].padding, 100);
    assert!(r.notes[0].contains("Symmetrical Size"), "{:?}", r.notes);
}

fn dscp_spec(dscp: u8, count: u32) -> SessionSpec {
    SessionSpec {
        dscp,
        ..spec(count)
    }
}

const DSCP_ECN: ClientExtensions = ClientExtensions {
    reflect_octets: None,
    symmetrical: false,
    dscp_ecn: true,
    individual: false,
};

#[test]
fn dscp_ecn_monitoring_reports_what_the_reflector_received() {
    let srv = server(twamp::control::EXTENSIONS);
    let r = run(&config(srv.addr, vec![dscp_spec(46, 15)], DSCP_ECN));
    assert_eq!(r.extensions.unwrap().used, Modes::DSCP_ECN_MONITORING);
    let s = &r.sessions[0];
    assert_eq!(
        s.padding, 30,
        "RFC 7750 open reflector base 44: 14 + 30 both ways"
    );
    let d = s.dscp_ecn().expect("monitored");
    assert_eq!(s.summary.received, 15);
    assert_eq!(d.dscp_received.get(&46), Some(&15), "{d:?}");
    assert_eq!(d.ecn_received.get(&0), Some(&15), "Not-ECT");
    assert_eq!(d.remarked, 0);
    let j = json(&r);
    assert_eq!(j["session"]["dscp_ecn"]["dscp_received"]["46"], 15);
    assert_eq!(j["session"]["dscp_ecn"]["remarked"], 0);

    // Fallback: nothing known of the forward DSCP, and the output says so.
    let srv = server(Modes(16 | 32 | 64));
    let r = run(&config(srv.addr, vec![dscp_spec(46, 5)], DSCP_ECN));
    assert!(r.sessions[0].dscp_ecn().is_none());
    assert_eq!(r.sessions[0].padding, 27);
    assert!(
        twamp::output::text::render(&r).contains("note: server does not offer RFC 7750"),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_remarking_network_shows_up() {
    // EF on the way out; a router in between rewrites it to AF11 (10) on the way there.
    let srv = server(twamp::control::EXTENSIONS);
    let (cc, mut ts) = one_session(&srv, &dscp_spec(46, 20), DSCP_ECN);
    let fwd = Impairment {
        dscp: Some(10),
        ..Impairment::default()
    };
    let relay = Relay::start(
        ts.reflector,
        fwd,
        Impairment::default(),
        Duration::from_secs(20),
    );
    ts.reflector = relay.addr;
    let r = measure(cc, ts);
    drop(relay);
    assert_eq!(r.summary.received, 20);
    let d = r.dscp_ecn().unwrap();
    assert_eq!(d.sent_dscp, 46);
    assert_eq!(d.dscp_received.get(&10), Some(&20), "{d:?}");
    assert_eq!(d.remarked, 20, "every packet re-marked on the way there");
    let mut text = String::new();
    let report = twamp::report::Report {
        sessions: vec![r],
        ..twamp::report::Report::new(&ClientConfig::default())
    };
    text.push_str(&twamp::output::text::render(&report));
    assert!(
        text.contains("sent 46, received 10 x20; re-marked 20 of 20"),
        "{text}"
    );
}

#[test]
fn individual_control_stops_one_session_while_the_others_go_on() {
    let srv = server(twamp::control::EXTENSIONS);
    let x = ClientExtensions {
        individual: true,
        ..ClientExtensions::default()
    };
    let mut spec = spec(1);
    spec.loss_timeout = Duration::from_millis(200); // the reflector's Timeout after a stop
    let cfg = config(srv.addr, vec![spec.clone(); 3], x);
    let mut cc = ControlClient::setup(&cfg).unwrap();
    assert!(cc.individual());
    let clock = SystemClock::new();
    let sessions: Vec<_> = (0..3).map(|_| cc.request(&spec, &clock).unwrap()).collect();
    cc.start().expect("Start-N-Sessions for all three");
    assert_eq!(cc.running().len(), 3);
    for t in &sessions {
        t.socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(common::ping_open(&t.socket, t.reflector, 0).is_some());
    }
    cc.stop_sessions(&[sessions[1].sid])
        .expect("Stop-N-Ack, Accept 0");
    assert_eq!(cc.running(), &[sessions[0].sid, sessions[2].sid]);
    // After its Timeout the stopped session is no longer reflected; the others still are.
    std::thread::sleep(Duration::from_millis(200 + 400));
    assert!(
        common::ping_open(&sessions[1].socket, sessions[1].reflector, 1).is_none(),
        "stopped early"
    );
    for i in [0, 2] {
        let t = &sessions[i];
        assert!(
            common::ping_open(&t.socket, t.reflector, 1).is_some(),
            "session {i} goes on"
        );
    }
    // A SID that is not running any more is refused (Accept 1), the connection stays.
    assert!(cc.stop_sessions(&[sessions[1].sid]).is_err());
    cc.stop().expect("Stop-N-Sessions for the other two");
    assert!(cc.running().is_empty());
    assert!(common::wait_until(Duration::from_secs(3), || srv
        .live_sessions()
        == 0));
}

#[test]
fn a_run_stops_the_short_session_early_and_measures_the_others_to_the_end() {
    let srv = server(twamp::control::EXTENSIONS);
    let x = ClientExtensions {
        individual: true,
        ..ClientExtensions::default()
    };
    let mut short = spec(5);
    short.loss_timeout = Duration::from_millis(300);
    let long = SessionSpec {
        count: 120,
        ..spec(0)
    };
    let r = run(&config(srv.addr, vec![short, long.clone(), long], x));
    assert_eq!(
        r.extensions.unwrap().used,
        Modes::INDIVIDUAL_SESSION_CONTROL
    );
    let got: Vec<(u64, u64, bool)> = r
        .sessions
        .iter()
        .map(|s| (s.summary.sent, s.summary.received, s.stopped_early))
        .collect();
    assert_eq!(
        got,
        vec![(5, 5, true), (120, 120, false), (120, 120, false)]
    );
    assert_eq!(json(&r)["sessions"][0]["session"]["stopped_early"], true);

    // Without RFC 5938: all measured, stopped together, and a note.
    let srv = server(Modes(32 | 64 | 256));
    let mut short = spec(5);
    short.loss_timeout = Duration::from_millis(100);
    let r = run(&config(srv.addr, vec![short, spec(30)], x));
    assert!(r.sessions.iter().all(|s| !s.stopped_early));
    assert_eq!(r.sessions[1].summary.received, 30);
    assert!(
        r.notes[0].contains("Individual Session Control"),
        "{:?}",
        r.notes
    );
}

#[test]
fn the_binary_negotiates_and_falls_back() {
    use common::bin::{run_client, Server};
    let limit = Duration::from_secs(30);
    let on = Server::start(&[]);
    let out = run_client(
        &format!("127.0.0.1:{}", on.port()),
        &[
            "-c",
            "5",
            "-i",
            "10ms",
            "-timeout",
            "300ms",
            "-dscp",
            "EF",
            "-dscp-ecn",
            "-reflect-octets",
            "4",
            "-individual",
            "-sessions",
            "2",
            "-format",
            "json",
        ],
        limit,
    );
    assert!(out.success(), "{}", out.describe());
    let j: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(
        j["extensions"]["used"],
        serde_json::json!(["individual", "reflect-octets", "dscp-ecn"])
    );
    assert_eq!(j["session"]["dscp_ecn"]["dscp_received"]["46"], 5);
    assert_eq!(j["session"]["reflect_octets"]["intact"], 5);
    assert_eq!(j["notes"], serde_json::json!([]));
    assert!(on
        .log()
        .contains("extensions individual,reflect-octets,dscp-ecn"));

    let off = Server::start(&["-extensions", "none"]);
    let out = run_client(
        &format!("127.0.0.1:{}", off.port()),
        &[
            "-c",
            "3",
            "-i",
            "10ms",
            "-timeout",
            "300ms",
            "-dscp-ecn",
            "-symmetrical",
        ],
        limit,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("note: server does not offer RFC 7750")
            && out
                .stdout
                .contains("note: server does not offer RFC 6038 Symmetrical"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("3 sent, 3 received"), "{}", out.stdout);
}

#[test]
fn every_extension_together_in_every_security_mode() {
    use twamp::config::KeyFile;
    use twamp::control::SecurityMode;
    // "twamp-test-secret-2024" for identity `testuser`.
    let keys = "testuser 7477616d702d746573742d7365637265742d32303234\n";
    let srv = TestServer::start(ServerConfig {
        modes: Modes::SECURITY,
        keys: KeyFile::parse(keys).unwrap(),
        ..server_config("127.0.0.1:0")
    });
    for mode in [
        SecurityMode::Open,
        SecurityMode::Mixed,
        SecurityMode::Authenticated,
        SecurityMode::Encrypted,
    ] {
        let mut cfg = config(
            srv.addr,
            vec![
                dscp_spec(34, 10),
                SessionSpec {
                    count: 60,
                    ..dscp_spec(34, 0)
                },
            ],
            all(),
        );
        cfg.auth = vec![mode];
        cfg.user = Some("testuser".into());
        cfg.secret = Some(zeroize::Zeroizing::new(b"twamp-test-secret-2024".to_vec()));
        let r = run(&cfg);
        assert_eq!(r.mode, Some(mode));
        assert_eq!(
            r.extensions.unwrap().used,
            twamp::control::EXTENSIONS,
            "{mode}"
        );
        // The first is done about 250 ms before the second: stopped on its own.
        let want = [(10, true), (60, false)];
        for (s, (count, early)) in r.sessions.iter().zip(want) {
            assert_eq!(s.summary.received, count, "{mode}");
            assert_eq!(s.stopped_early, early, "{mode}");
            assert_eq!(s.outcome.reflected_padding.intact, count, "{mode}");
            let d = s.dscp_ecn().unwrap();
            assert_eq!(
                (d.dscp_received.get(&34), d.remarked),
                (Some(&count), 0),
                "{mode}"
            );
        }
    }
}
