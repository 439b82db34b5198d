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
