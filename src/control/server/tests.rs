//! The whole Server exchange driven without sockets: scripted inputs, checked actions.

use super::*;
use std::net::Ipv4Addr;
use std::time::Instant;

const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
const SECRETS: Secrets = Secrets {
    challenge: [0xc1; 16],
    salt: [0x5a; 16],
    server_iv: [0x1f; 16],
};
/// "twamp-test-secret-2024" in hex, for identity `testuser`.
const KEYS: &str = "testuser 7477616d702d746573742d7365637265742d32303234\n";
const PASSPHRASE: &[u8] = b"twamp-test-secret-2024";

fn settings(modes: Modes) -> Settings {
    Settings {
        modes,
        extensions: Modes(0),
        pbkdf2_count: 1024,
        setup_timeout: Duration::from_secs(5),
        servwait: Duration::from_secs(900),
        max_sessions: 4,
    }
}

fn keys() -> KeyFile {
    KeyFile::parse(KEYS).unwrap()
}

fn server(keys: &KeyFile, modes: Modes) -> Server<'_> {
    Server::new(settings(modes), keys, SECRETS, Timestamp(42), PEER, LOCAL)
}

fn open_setup() -> Input {
    Input::SetUpResponse(SetUpResponse::open())
}

/// A Control-Client's Set-Up-Response for `mode`, `id` and `passphrase` (RFC 4656 §3.1).
fn secure_setup(mode: Modes, id: &[u8], passphrase: &[u8]) -> Input {
    let k = crypto::derive_key(passphrase, &SECRETS.salt, 1024);
    let session = SessionKeys {
        aes: [3; 16],
        hmac: [4; 32],
    };
    let mut key_id = [0u8; 80];
    key_id[..id.len()].copy_from_slice(id);
    Input::SetUpResponse(SetUpResponse {
        mode,
        key_id,
        token: crypto::encrypt_token(&k, &SECRETS.challenge, &session),
        client_iv: [9; 16],
    })
}

fn request(padding: u32) -> RequestTwSession {
    crate::control::client::build_request(&crate::control::client::SessionRequest {
        sender: std::net::SocketAddr::new(PEER, 20000),
        receiver: std::net::SocketAddr::new(LOCAL, 0),
        padding,
        start_time: Timestamp(0),
        timeout: Duration::from_secs(2),
        dscp: 0,
    })
}

fn request_input(req: RequestTwSession) -> Input {
    Input::RequestTwSession {
        request: Ok(req),
        reflect: ReflectOctetsRequest::default(),
        now: Timestamp::new(100, 0),
        random: [1, 2, 3, 4],
    }
}

/// The error a `Close` carries, if the actions end with one.
fn closed_with(actions: &[Action]) -> Option<Option<&Error>> {
    match actions.last() {
        Some(Action::Close(e)) => Some(e.as_ref()),
        _ => None,
    }
}

fn sent(actions: &[Action]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Drives one Request-TW-Session to its Accept-Session; returns the Accept code.
fn ask(s: &mut Server<'_>, req: RequestTwSession, port: Result<u16, Refusal>) -> Vec<Action> {
    assert_eq!(s.expect(), Expect::Command);
    assert!(s
        .handle(Input::Command(Command::RequestTwSession))
        .is_empty());
    assert_eq!(
        s.expect(),
        Expect::Rest {
            command: Command::RequestTwSession,
            len: 112,
            what: "Request-TW-Session"
        }
    );
    let a = s.handle(request_input(req));
    if !matches!(a.first(), Some(Action::Bind(_))) {
        return a;
    }
    assert_eq!(s.expect(), Expect::Bound);
    s.handle(Input::Bound(port))
}

fn accept_of(actions: &[Action]) -> Accept {
    match sent(actions).last() {
        Some(Message::AcceptSession(a)) => a.accept,
        other => panic!("no Accept-Session: {other:?}"),
    }
}

fn established(keys: &KeyFile) -> Server<'_> {
    let mut s = server(keys, Modes::UNAUTHENTICATED);
    s.greet();
    s.handle(open_setup());
    s
}

fn command(s: &mut Server<'_>, c: Command, input: Input) -> Vec<Action> {
    let first = s.handle(Input::Command(c));
    if !first.is_empty() {
        return first;
    }
    s.handle(input)
}

#[test]
fn open_mode_whole_exchange() {
    let k = keys();
    let mut s = server(&k, Modes::UNAUTHENTICATED);
    assert_eq!(s.state(), &State::ExpectSetUp);
    assert_eq!(s.wait(), Duration::from_secs(5), "the Set-Up deadline");
    let g = s.greet();
    match &g[..] {
        [Action::Send(Message::Greeting(g))] => {
            assert_eq!(g.modes, Modes::UNAUTHENTICATED);
            assert_eq!(g.challenge, SECRETS.challenge);
            assert_eq!(g.count, 1024);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.expect(), Expect::SetUpResponse);

    let a = s.handle(open_setup());
    match sent(&a)[..] {
        [Message::ServerStart(st)] => {
            assert_eq!(st.accept, Accept::Ok);
            assert_eq!(st.server_iv, [0; 16], "no IV in open mode");
            assert_eq!(st.start_time, Timestamp(42));
        }
        ref other => panic!("{other:?}"),
    }
    assert!(!a.iter().any(|x| matches!(x, Action::Encrypt(_))));
    assert!(s.established());
    assert_eq!(s.wait(), Duration::from_secs(900), "SERVWAIT from now on");

    // Two sessions.
    for port in [18800, 18801] {
        let a = ask(&mut s, request(27), Ok(port));
        match sent(&a)[..] {
            [Message::AcceptSession(acc)] => {
                assert_eq!(acc.accept, Accept::Ok);
                assert_eq!(acc.port, port);
                assert_eq!(
                    &acc.sid.0[..4],
                    &[198, 51, 100, 1],
                    "SID carries our address"
                );
            }
            ref other => panic!("{other:?}"),
        }
    }
    let a = command(&mut s, Command::StartSessions, Input::StartSessions);
    assert!(
        matches!(a[0], Action::Start),
        "sessions start before Start-Ack"
    );
    assert!(matches!(
        sent(&a)[..],
        [Message::StartAck(StartAck { accept: Accept::Ok })]
    ));
    match s.state() {
        State::Testing { running } => assert_eq!(running.len(), 2),
        other => panic!("{other:?}"),
    }
    let a = command(
        &mut s,
        Command::StopSessions,
        Input::StopSessions(StopSessions {
            accept: Accept::Ok,
            number_of_sessions: 2,
        }),
    );
    assert!(matches!(a[0], Action::Stop));
    assert_eq!(
        s.state(),
        &State::ExpectCommands {
            sessions: Vec::new()
        },
        "the connection can be used again"
    );
    assert_eq!(accept_of(&ask(&mut s, request(27), Ok(18802))), Accept::Ok);
    let a = s.handle(Input::PeerClosed);
    assert!(matches!(closed_with(&a), Some(None)), "a clean close");
    assert_eq!(s.expect(), Expect::Nothing);
}

#[test]
fn bind_asks_for_what_the_reflector_needs() {
    let k = keys();
    let mut s = established(&k);
    s.handle(Input::Command(Command::RequestTwSession));
    let a = s.handle(request_input(request(100)));
    match &a[..] {
        [Action::Bind(b)] => {
            assert_eq!(b.sender_len, 14 + 100, "negotiated Session-Sender size");
            assert_eq!(b.layout, TestLayout::OPEN);
            assert!(b.cipher.is_none());
            assert_eq!(b.spec.peer, PEER, "only the control peer is reflected to");
            assert_eq!(b.spec.timeout, Duration::from_secs(2));
        }
        other => panic!("{other:?}"),
    }
    // Until Bound arrives nothing else is taken.
    let a = s.handle(Input::StartSessions);
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::Unexpected { .. }))
    ));
}

#[test]
fn commands_out_of_order_close_the_connection() {
    let k = keys();
    type Case = (&'static str, fn(&mut Server<'_>) -> Vec<Action>, Error);
    let cases: [Case; 6] = [
        (
            "Start with nothing accepted",
            |s| s.handle(Input::Command(Command::StartSessions)),
            Error::StartWithoutSessions,
        ),
        (
            "Request after Start",
            |s| {
                ask(s, request(27), Ok(1));
                command(s, Command::StartSessions, Input::StartSessions);
                s.handle(Input::Command(Command::RequestTwSession))
            },
            Error::RequestAfterStart,
        ),
        (
            "Start while testing",
            |s| {
                ask(s, request(27), Ok(1));
                command(s, Command::StartSessions, Input::StartSessions);
                s.handle(Input::Command(Command::StartSessions))
            },
            Error::StartWhileTesting,
        ),
        (
            "forbidden command 1",
            |s| s.handle(Input::Command(Command::Forbidden)),
            Error::ForbiddenCommand,
        ),
        (
            "experimentation command 6",
            |s| s.handle(Input::Command(Command::Experimentation)),
            Error::UnsupportedCommand(6),
        ),
        (
            "unknown command 9 (Stop-N-Sessions)",
            |s| s.handle(Input::Command(Command::Unknown(9))),
            Error::UnsupportedCommand(9),
        ),
    ];
    for (name, script, want) in cases {
        let mut s = established(&k);
        let a = script(&mut s);
        assert_eq!(closed_with(&a), Some(Some(&want)), "{name}");
        assert_eq!(s.state(), &State::Done, "{name}");
        assert_eq!(s.expect(), Expect::Nothing, "{name}");
        assert_eq!(crate::Error::from(want).exit_code(), 7, "{name}");
    }
}

#[test]
fn stop_count_must_match_the_running_sessions() {
    let k = keys();
    let mut s = established(&k);
    ask(&mut s, request(27), Ok(1));
    command(&mut s, Command::StartSessions, Input::StartSessions);
    let a = command(
        &mut s,
        Command::StopSessions,
        Input::StopSessions(StopSessions {
            accept: Accept::Ok,
            number_of_sessions: 2,
        }),
    );
    assert_eq!(
        closed_with(&a),
        Some(Some(&Error::StopCountMismatch {
            requested: 2,
            running: 1
        }))
    );
    assert!(
        !a.iter().any(|x| matches!(x, Action::Stop)),
        "nothing stopped gracefully"
    );

    // Stop-Sessions for 0 before Start discards the accepted sessions.
    let mut s = established(&k);
    ask(&mut s, request(27), Ok(1));
    let a = command(
        &mut s,
        Command::StopSessions,
        Input::StopSessions(StopSessions {
            accept: Accept::Ok,
            number_of_sessions: 0,
        }),
    );
    assert!(matches!(a[0], Action::Stop));
    let a = s.handle(Input::Command(Command::StartSessions));
    assert_eq!(
        closed_with(&a),
        Some(Some(&Error::StartWithoutSessions)),
        "the discarded sessions are gone"
    );
}

#[test]
fn deadlines() {
    let k = keys();
    let mut s = server(&k, Modes::UNAUTHENTICATED);
    s.greet();
    let a = s.handle(Input::Timeout);
    let e = Error::SetUpTimeout {
        after: Duration::from_secs(5),
    };
    assert_eq!(closed_with(&a), Some(Some(&e)));
    assert_eq!(crate::Error::from(e).exit_code(), 5);

    let mut s = established(&k);
    let a = s.handle(Input::Timeout);
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::Servwait { .. }))
    ));
    let mut s = established(&k);
    ask(&mut s, request(27), Ok(1));
    command(&mut s, Command::StartSessions, Input::StartSessions);
    let a = s.handle(Input::Timeout);
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::Servwait { .. }))
    ));
    // Shutdown closes cleanly from any state, and only once.
    for mut s in [server(&k, Modes::UNAUTHENTICATED), established(&k)] {
        let a = s.handle(Input::Shutdown);
        assert!(matches!(closed_with(&a), Some(None)));
        assert!(s.handle(Input::Shutdown).is_empty(), "closed once");
    }
}

#[test]
fn modes_not_offered_or_declined_close() {
    let k = keys();
    for (mode, want) in [
        (Modes(0), Error::Declined),
        (
            Modes::ENCRYPTED,
            Error::ModeNotOffered {
                chosen: Modes::ENCRYPTED,
                offered: Modes::UNAUTHENTICATED,
            },
        ),
        (
            Modes(3),
            Error::ModeNotOffered {
                chosen: Modes(3),
                offered: Modes::UNAUTHENTICATED,
            },
        ),
    ] {
        let mut s = server(&k, Modes::UNAUTHENTICATED);
        s.greet();
        let a = s.handle(Input::SetUpResponse(SetUpResponse {
            mode,
            ..SetUpResponse::open()
        }));
        assert!(sent(&a).is_empty(), "{mode}: no Server-Start");
        assert_eq!(closed_with(&a), Some(Some(&want)), "{mode}");
    }
}

#[test]
fn authentication() {
    let k = keys();
    // The right key: the cipher goes on before Server-Start, which carries our IV.
    let mut s = server(&k, Modes::SECURITY);
    s.greet();
    let a = s.handle(secure_setup(Modes::ENCRYPTED, b"testuser", PASSPHRASE));
    assert!(matches!(a[0], Action::Encrypt(_)), "{a:?}");
    match sent(&a)[..] {
        [Message::ServerStart(st)] => {
            assert_eq!(st.accept, Accept::Ok);
            assert_eq!(st.server_iv, SECRETS.server_iv);
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(s.mode(), SecurityMode::Encrypted);
    // Sessions of an encrypted connection get a test cipher.
    s.handle(Input::Command(Command::RequestTwSession));
    match &s.handle(request_input(request(64)))[..] {
        [Action::Bind(b)] => {
            assert!(b.cipher.is_some());
            assert_eq!(b.sender_len, 48 + 64);
        }
        other => panic!("{other:?}"),
    }

    for (id, pass, want) in [
        (
            &b"testuser"[..],
            &b"wrong"[..],
            Error::WrongKey {
                id: "testuser".into(),
            },
        ),
        (
            b"stranger",
            PASSPHRASE,
            Error::UnknownIdentity {
                id: "stranger".into(),
            },
        ),
        (
            b"evil\n[ERROR] forged",
            PASSPHRASE,
            Error::UnknownIdentity {
                id: "evil\\x0a[ERROR] forged".into(),
            },
        ),
    ] {
        let mut s = server(&k, Modes::SECURITY);
        s.greet();
        let a = s.handle(secure_setup(Modes::AUTHENTICATED, id, pass));
        match sent(&a)[..] {
            [Message::ServerStart(st)] => assert_eq!(st.accept, Accept::Failure),
            ref other => panic!("{other:?}"),
        }
        assert!(!a.iter().any(|x| matches!(x, Action::Encrypt(_))));
        assert_eq!(closed_with(&a), Some(Some(&want)));
        assert!(!want.to_string().contains('\n'), "{want}");
        assert_eq!(crate::Error::from(want).exit_code(), 6);
    }
}

/// RFC 4656 §3.1 gives the Server a Token to decrypt with the identity's key; an unknown
/// identity must cost the same PBKDF2 and decryption, or timing enumerates identities.
#[test]
fn an_unknown_identity_costs_what_a_wrong_key_costs() {
    let k = keys();
    let time = |id: &[u8]| {
        let mut runs: Vec<Duration> = (0..5)
            .map(|_| {
                let mut st = settings(Modes::SECURITY);
                st.pbkdf2_count = 1 << 14;
                let mut s = Server::new(st, &k, SECRETS, Timestamp(1), PEER, LOCAL);
                let setup = secure_setup(Modes::AUTHENTICATED, id, b"not the pass-phrase");
                let t = Instant::now();
                let a = s.handle(setup);
                let took = t.elapsed();
                assert!(matches!(closed_with(&a), Some(Some(e)) if e.is_auth()));
                took
            })
            .collect();
        runs.sort();
        runs[2].as_secs_f64()
    };
    let (known, unknown) = (time(b"testuser"), time(b"nobody"));
    let ratio = unknown / known;
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown identity {unknown:.6}s vs wrong key {known:.6}s"
    );
}

#[test]
fn refusals_are_answered_counted_and_end_a_persistent_peer() {
    let k = keys();
    let mut s = established(&k);
    // A request TWAMP forbids: Accept 3, the connection goes on.
    let bad = RequestTwSession {
        conf_sender: 1,
        ..request(27)
    };
    let a = ask(&mut s, bad.clone(), Ok(1));
    assert_eq!(accept_of(&a), Accept::NotSupported);
    assert!(a
        .iter()
        .any(|x| matches!(x, Action::Log(log::Level::Warn, _))));
    // A malformed one (bad IPVN) likewise.
    s.handle(Input::Command(Command::RequestTwSession));
    let a = s.handle(Input::RequestTwSession {
        request: Err(wire::Error::BadField {
            field: "IPVN",
            value: 7,
        }),
        reflect: ReflectOctetsRequest::default(),
        now: Timestamp(0),
        random: [0; 4],
    });
    assert_eq!(accept_of(&a), Accept::NotSupported);
    // No socket: Accept 5 (temporary resource limitation, RFC 4656 §3.3).
    let a = ask(
        &mut s,
        request(27),
        Err(Refusal {
            accept: Accept::TemporaryResourceLimitation,
            reason: "sessions in all: 1024 (-max-sessions)".into(),
        }),
    );
    assert_eq!(accept_of(&a), Accept::TemporaryResourceLimitation);
    assert!(s.established(), "refusals alone do not close");
    // Only the first LOGGED_REFUSALS are logged; at MAX_REFUSALS the Server closes.
    let mut logged = 3;
    for i in 4..=MAX_REFUSALS {
        let a = ask(&mut s, bad.clone(), Ok(1));
        assert_eq!(accept_of(&a), Accept::NotSupported);
        logged += a
            .iter()
            .filter(|x| matches!(x, Action::Log(log::Level::Warn, l) if l.starts_with("refusing")))
            .count();
        if i < MAX_REFUSALS {
            assert!(closed_with(&a).is_none(), "refusal {i}");
        } else {
            assert_eq!(
                closed_with(&a),
                Some(Some(&Error::TooManyRefusals {
                    refusals: MAX_REFUSALS
                }))
            );
            assert!(a.iter().any(|x| matches!(
                x,
                Action::Log(log::Level::Warn, l) if l.starts_with(&format!("{} more", MAX_REFUSALS - LOGGED_REFUSALS))
            )));
        }
    }
    assert_eq!(logged, LOGGED_REFUSALS as usize);
}

#[test]
fn sessions_per_connection_are_limited() {
    let k = keys();
    let mut s = established(&k);
    for port in 1..=4 {
        assert_eq!(accept_of(&ask(&mut s, request(27), Ok(port))), Accept::Ok);
    }
    let a = ask(&mut s, request(27), Ok(5));
    assert_eq!(accept_of(&a), Accept::TemporaryResourceLimitation);
    assert!(
        !a.iter().any(|x| matches!(x, Action::Bind(_))),
        "no socket bound"
    );
}

#[test]
fn inputs_a_state_cannot_take_close_as_internal_errors() {
    let k = keys();
    let mut s = established(&k);
    let a = s.handle(open_setup());
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::Unexpected { .. }))
    ));
    let mut s = server(&k, Modes::UNAUTHENTICATED);
    let a = s.handle(Input::Command(Command::RequestTwSession));
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::Unexpected { .. }))
    ));
}

// ---- RFC 5938, RFC 6038, RFC 7750 ----

fn extended(keys: &KeyFile, offered: Modes, chosen: Modes) -> (Server<'_>, Vec<Action>) {
    let mut st = settings(Modes::UNAUTHENTICATED);
    st.extensions = offered;
    let mut s = Server::new(st, keys, SECRETS, Timestamp(42), PEER, LOCAL);
    s.greet();
    let mut setup = SetUpResponse::open();
    setup.mode = Modes::UNAUTHENTICATED.union(chosen);
    let a = s.handle(Input::SetUpResponse(setup));
    (s, a)
}

fn sid_of(actions: &[Action]) -> Sid {
    match sent(actions).last() {
        Some(Message::AcceptSession(a)) if a.accept == Accept::Ok => a.sid,
        other => panic!("not accepted: {other:?}"),
    }
}

fn ask_reflect(s: &mut Server<'_>, padding: u32, reflect: ReflectOctetsRequest) -> Vec<Action> {
    s.handle(Input::Command(Command::RequestTwSession));
    let a = s.handle(Input::RequestTwSession {
        request: Ok(request(padding)),
        reflect,
        now: Timestamp::new(100, 0),
        random: [1, 2, 3, 4],
    });
    if !matches!(a.first(), Some(Action::Bind(_))) {
        return a;
    }
    let mut out = a;
    out.extend(s.handle(Input::Bound(Ok(18900))));
    out
}

#[test]
fn the_greeting_offers_the_extensions_and_set_up_may_choose_only_those() {
    let k = keys();
    let mut st = settings(Modes::UNAUTHENTICATED);
    st.extensions = crate::control::EXTENSIONS;
    let s = Server::new(st, &k, SECRETS, Timestamp(42), PEER, LOCAL);
    match &s.greet()[..] {
        [Action::Send(Message::Greeting(g))] => assert_eq!(g.modes, Modes(1 | 16 | 32 | 64 | 256)),
        other => panic!("{other:?}"),
    }
    // Chosen and offered: established with them.
    let (s, a) = extended(&k, Modes(32 | 256), Modes(256));
    assert!(s.established(), "{a:?}");
    assert_eq!(s.extensions(), Modes::DSCP_ECN_MONITORING);
    // A bit not offered: the two sides would disagree about the packets, so the Server closes.
    let (s, a) = extended(&k, Modes(32), Modes(64));
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::ModeNotOffered { .. }))
    ));
    assert!(!s.established());
    // Bits we do not know (IKEv2, PTP) are ignored as RFC 4656 §3.1 says.
    let (s, _) = extended(&k, Modes(0), Modes(128 | 512));
    assert!(s.established());
    assert_eq!(s.extensions(), Modes(0));
}

#[test]
fn reflect_octets_are_returned_and_validated() {
    let k = keys();
    let (mut s, _) = extended(&k, crate::control::EXTENSIONS, Modes::REFLECT_OCTETS);
    let r = ReflectOctetsRequest {
        octets_to_be_reflected: 0xbeef,
        length_of_padding_to_reflect: 8,
    };
    let a = ask_reflect(&mut s, 27 + 8, r);
    match &a[0] {
        Action::Bind(b) => {
            assert_eq!(
                b.layout,
                TestLayout::OPEN,
                "Reflect Octets changes no layout"
            );
            assert_eq!(b.spec.padding_to_reflect, 8);
            assert!(!b.dscp_ecn);
        }
        other => panic!("{other:?}"),
    }
    match sent(&a).last() {
        Some(Message::AcceptSession(acc)) => {
            assert_eq!(acc.accept, Accept::Ok);
            assert_eq!(
                acc.reflected_octets, 0xbeef,
                "RFC 6038 §4.3: MUST return them"
            );
            assert_eq!(acc.server_octets, 0);
        }
        other => panic!("{other:?}"),
    }
    // Too little padding to reflect 8 octets in equal-size packets: Accept 3 (§4.3).
    let a = ask_reflect(&mut s, 27 + 7, r);
    assert_eq!(accept_of(&a), Accept::NotSupported);
    // Without the mode the octets 88..92 are not read: accepted, nothing echoed.
    let (mut s, _) = extended(&k, crate::control::EXTENSIONS, Modes(0));
    let a = ask_reflect(&mut s, 0, r);
    match sent(&a).last() {
        Some(Message::AcceptSession(acc)) => {
            assert_eq!(acc.accept, Accept::Ok);
            assert_eq!(acc.reflected_octets, 0);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn symmetrical_size_and_dscp_ecn_shape_the_bind() {
    let k = keys();
    let (mut s, _) = extended(&k, crate::control::EXTENSIONS, Modes(64 | 256));
    s.handle(Input::Command(Command::RequestTwSession));
    match &s.handle(request_input(request(10)))[..] {
        [Action::Bind(b)] => {
            assert_eq!(b.layout, TestLayout::SYMMETRICAL_DSCP_ECN_OPEN);
            assert_eq!(b.sender_len, 42 + 10, "the symmetrical sender base");
            assert!(b.dscp_ecn, "the socket must report the TOS");
        }
        other => panic!("{other:?}"),
    }
    let (mut s, _) = extended(&k, crate::control::EXTENSIONS, Modes(64));
    s.handle(Input::Command(Command::RequestTwSession));
    match &s.handle(request_input(request(0)))[..] {
        [Action::Bind(b)] => {
            assert_eq!(b.layout, TestLayout::SYMMETRICAL_OPEN);
            assert_eq!(b.sender_len, 41);
            assert!(!b.dscp_ecn, "no cmsg per packet without RFC 7750");
        }
        other => panic!("{other:?}"),
    }
}

/// One accepted session whose SID differs from the others' by its random part.
fn accept_nth(s: &mut Server<'_>, i: u8) -> Sid {
    s.handle(Input::Command(Command::RequestTwSession));
    let a = s.handle(Input::RequestTwSession {
        request: Ok(request(27)),
        reflect: ReflectOctetsRequest::default(),
        now: Timestamp::new(100, 0),
        random: [i, 2, 3, 4],
    });
    assert!(matches!(a.first(), Some(Action::Bind(_))), "{a:?}");
    sid_of(&s.handle(Input::Bound(Ok(18800 + u16::from(i)))))
}

fn start_n(s: &mut Server<'_>, sids: Vec<Sid>) -> Vec<Action> {
    assert!(s.handle(Input::Command(Command::StartNSessions)).is_empty());
    assert_eq!(
        s.expect(),
        Expect::RestN {
            command: Command::StartNSessions,
            what: "Start-N-Sessions"
        }
    );
    s.handle(Input::StartNSessions(Ok(StartNSessions { sids })))
}

fn stop_n(s: &mut Server<'_>, sids: Vec<Sid>) -> Vec<Action> {
    assert!(s.handle(Input::Command(Command::StopNSessions)).is_empty());
    s.handle(Input::StopNSessions(Ok(StopNSessions { sids })))
}

#[test]
fn individual_session_control_starts_and_stops_by_sid() {
    let k = keys();
    let (mut s, _) = extended(
        &k,
        crate::control::EXTENSIONS,
        Modes::INDIVIDUAL_SESSION_CONTROL,
    );
    assert!(matches!(s.state(), State::Individual { .. }));
    let sids: Vec<Sid> = (0..3).map(|i| accept_nth(&mut s, i)).collect();
    // Start all three; an unknown SID gets its own ack with Accept 1 (RFC 5938 §3.3).
    let stranger = Sid([0xee; 16]);
    let a = start_n(&mut s, vec![sids[0], sids[1], sids[2], stranger]);
    assert!(matches!(&a[1], Action::StartN(v) if v == &sids), "{a:?}");
    let acks = sent(&a);
    assert!(matches!(
        acks[..],
        [Message::StartNAck(StartNAck { accept: Accept::Ok, ref sids }),
         Message::StartNAck(StartNAck { accept: Accept::Failure, sids: ref bad })]
        if sids.len() == 3 && bad == &vec![stranger]
    ));
    // Stop one early: only it is stopped, the others run on and the connection stays.
    let a = stop_n(&mut s, vec![sids[1]]);
    assert!(
        matches!(&a[1], Action::StopN(v) if v == &vec![sids[1]]),
        "{a:?}"
    );
    assert!(matches!(
        sent(&a)[..],
        [Message::StopNAck(StopNAck { accept: Accept::Ok, ref sids })] if sids.len() == 1
    ));
    match s.state() {
        State::Individual { accepted, running } => {
            assert!(accepted.is_empty());
            assert_eq!(
                running.iter().map(|x| x.sid).collect::<Vec<_>>(),
                vec![sids[0], sids[2]]
            );
        }
        other => panic!("{other:?}"),
    }
    // A stopped SID cannot be stopped again: Accept 1, and nothing to stop.
    let a = stop_n(&mut s, vec![sids[1]]);
    assert!(!a.iter().any(|x| matches!(x, Action::StopN(_))));
    assert!(matches!(
        sent(&a)[..],
        [Message::StopNAck(StopNAck {
            accept: Accept::Failure,
            ..
        })]
    ));
    // A new session may be requested while others run, and started on its own.
    let new = accept_nth(&mut s, 10);
    let a = start_n(&mut s, vec![new]);
    assert!(matches!(&a[1], Action::StartN(v) if v == &vec![new]));
    // Starting a running one again is acknowledged without a second start.
    let a = start_n(&mut s, vec![sids[0]]);
    assert!(!a.iter().any(|x| matches!(x, Action::StartN(_))));
    assert!(matches!(
        sent(&a)[..],
        [Message::StartNAck(StartNAck {
            accept: Accept::Ok,
            ..
        })]
    ));
    let a = stop_n(&mut s, vec![sids[0], sids[2], new]);
    assert!(matches!(&a[1], Action::StopN(v) if v.len() == 3));
    assert!(
        s.established(),
        "Stop-N-Sessions does not close the connection"
    );
}

#[test]
fn individual_session_control_error_paths() {
    let k = keys();
    // With RFC 5938 chosen, Start-Sessions and Stop-Sessions MUST NOT be used.
    for c in [Command::StartSessions, Command::StopSessions] {
        let (mut s, _) = extended(
            &k,
            crate::control::EXTENSIONS,
            Modes::INDIVIDUAL_SESSION_CONTROL,
        );
        ask(&mut s, request(27), Ok(18800));
        let a = s.handle(Input::Command(c));
        assert!(
            matches!(
                closed_with(&a),
                Some(Some(Error::NotWithIndividualControl(_)))
            ),
            "{c:?}: {a:?}"
        );
    }
    // Without it, Start-N-Sessions and Stop-N-Sessions are unsupported commands.
    for c in [Command::StartNSessions, Command::StopNSessions] {
        let (mut s, _) = extended(&k, crate::control::EXTENSIONS, Modes(0));
        let a = s.handle(Input::Command(c));
        assert!(
            matches!(
                closed_with(&a),
                Some(Some(Error::UnsupportedCommand(7 | 9)))
            ),
            "{c:?}: {a:?}"
        );
    }
    // A SID list that cannot be read (Number of Sessions 0): no ack can name it; the Server
    // closes (RFC 5938 §3.2: it MUST NOT answer Accept 0).
    let (mut s, _) = extended(
        &k,
        crate::control::EXTENSIONS,
        Modes::INDIVIDUAL_SESSION_CONTROL,
    );
    ask(&mut s, request(27), Ok(18800));
    s.handle(Input::Command(Command::StartNSessions));
    let a = s.handle(Input::StartNSessions(Err(wire::Error::BadField {
        field: "Number of Sessions",
        value: 0,
    })));
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::BadSessionList(_)))
    ));
    assert!(sent(&a).is_empty(), "no ack at all");
    // The announced command and its rest must match.
    let (mut s, _) = extended(
        &k,
        crate::control::EXTENSIONS,
        Modes::INDIVIDUAL_SESSION_CONTROL,
    );
    s.handle(Input::Command(Command::StopNSessions));
    let a = s.handle(Input::StartNSessions(Ok(StartNSessions {
        sids: vec![Sid([1; 16])],
    })));
    assert!(matches!(
        closed_with(&a),
        Some(Some(Error::Unexpected { .. }))
    ));
}
