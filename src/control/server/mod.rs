//! The Server's side of TWAMP-Control (RFC 5357 §3) as a state machine, pure: no sockets, no
//! clock and no randomness of its own (the driver passes them in).
//!
//! States are named rustls-style after what they wait for:
//!
//! ```text
//!             Set-Up-Response                  Start-Sessions
//! ExpectSetUp ───────────────▶ ExpectCommands ───────────────▶ Testing
//!      │                        │ ▲   ▲   Request-TW-Session:    │
//!      │                        │ │   └── Bind → Bound → Accept  │
//!      │                        │ └──────── Stop-Sessions ◀──────┘
//!      └── error, deadline, shutdown, close ──▶ Done ◀───────────┘
//! ```
//!
//! The driver (`crate::server`) reads what [`Server::expect`] names, feeds it to
//! [`Server::handle`] as an [`Input`] and executes the returned [`Action`]s in order: sending
//! messages, binding a test socket, starting and stopping the connection's sessions, logging
//! and closing. Every decision (mode, authentication, command order, counts, limits, when to
//! give up on a peer) is made here and unit-tested without sockets.

pub mod limits;
mod request;

pub use request::*;

use std::net::IpAddr;
use std::time::Duration;

use super::{printable, Error, SecurityMode};
use crate::config::{KeyFile, ServerConfig};
use crate::crypto::{self, ControlCipher, SessionKeys, TestCipher, TestKeys};
use crate::time::Timestamp;
use crate::wire::{
    self, Accept, AcceptSession, Command, Modes, RequestTwSession, ServerGreeting, ServerStart,
    SetUpResponse, Sid, StartAck, StopSessions, TestLayout,
};

/// Refused Request-TW-Sessions one connection may send before the Server closes it: a client
/// that is refused for a limit stops asking; one that keeps asking is probing or flooding.
pub const MAX_REFUSALS: u32 = 16;

/// Refusals logged in full per connection; the rest are counted and summarised at close, so a
/// flood of refusable requests cannot fill the log.
pub const LOGGED_REFUSALS: u32 = 3;

/// A pass-phrase for identities the key file does not hold. Deriving a key from it and
/// decrypting the Token with that key costs what a known identity with a wrong key costs, so
/// the time of the answer does not tell which identities exist.
const DECOY_PASSPHRASE: &[u8] = b"twamp-decoy-pass-phrase-not-a-key";

/// What the machine needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Modes offered in the Server-Greeting.
    pub modes: Modes,
    pub pbkdf2_count: u32,
    /// Set-Up-Response must arrive within this.
    pub setup_timeout: Duration,
    /// SERVWAIT (RFC 5357 §3.1).
    pub servwait: Duration,
    /// Sessions accepted or running on one connection.
    pub max_sessions: usize,
}

impl From<&ServerConfig> for Settings {
    fn from(c: &ServerConfig) -> Self {
        Settings {
            modes: c.modes,
            pbkdf2_count: c.pbkdf2_count,
            setup_timeout: c.setup_timeout,
            servwait: c.servwait,
            max_sessions: c.max_sessions_per_connection,
        }
    }
}

/// The random values of one connection, drawn by the driver (RFC 4656 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    pub challenge: [u8; 16],
    pub salt: [u8; 16],
    /// Used only in the modes with a key.
    pub server_iv: [u8; 16],
}

/// A session accepted on this connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub sid: Sid,
    pub port: u16,
    /// How long the reflector goes on after Stop-Sessions (RFC 5357 §3.8).
    pub timeout: Duration,
}

/// What the connection waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Server-Greeting sent: Set-Up-Response (RFC 4656 §3.1).
    ExpectSetUp,
    /// Server-Start sent: Request-TW-Session, Start-Sessions, or Stop-Sessions for none.
    /// `sessions` were accepted and are not started yet.
    ExpectCommands { sessions: Vec<Session> },
    /// Start-Ack sent: Stop-Sessions for `running`.
    Testing { running: Vec<Session> },
    /// Closed; nothing more is read.
    Done,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::ExpectSetUp => "ExpectSetUp",
            State::ExpectCommands { .. } => "ExpectCommands",
            State::Testing { .. } => "Testing",
            State::Done => "Done",
        }
    }
}

/// What the driver reads next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 164 octets in clear, within [`Server::wait`].
    SetUpResponse,
    /// The first 16-octet block of a command, within [`Server::wait`]; then
    /// [`Input::Command`] with its command number.
    Command,
    /// The rest of the command announced by [`Input::Command`]: `len` octets in all (the
    /// first block included), within the message deadline.
    Rest {
        command: Command,
        len: usize,
        what: &'static str,
    },
    /// An [`Input::Bound`]: the driver is binding the socket [`Action::Bind`] asked for.
    Bound,
    /// Nothing: the connection is closed.
    Nothing,
}

/// What happened, for [`Server::handle`].
#[derive(Debug)]
pub enum Input {
    SetUpResponse(SetUpResponse),
    /// The command number in a command's first block.
    Command(Command),
    /// A whole Request-TW-Session (HMAC checked), with what the SID needs: the time and four
    /// random octets (RFC 4656 §3.5).
    RequestTwSession {
        request: Result<RequestTwSession, wire::Error>,
        now: Timestamp,
        random: [u8; 4],
    },
    /// The outcome of [`Action::Bind`]: the port bound, or why there is no socket.
    Bound(Result<u16, Refusal>),
    StartSessions,
    StopSessions(StopSessions),
    /// Nothing arrived within [`Server::wait`] (and, while testing, no test packet either).
    Timeout,
    /// The peer closed the connection between messages.
    PeerClosed,
    /// The server is shutting down.
    Shutdown,
}

impl Input {
    fn name(&self) -> &'static str {
        match self {
            Input::SetUpResponse(_) => "Set-Up-Response",
            Input::Command(_) => "a command",
            Input::RequestTwSession { .. } => "Request-TW-Session",
            Input::Bound(_) => "Bound",
            Input::StartSessions => "Start-Sessions",
            Input::StopSessions(_) => "Stop-Sessions",
            Input::Timeout => "Timeout",
            Input::PeerClosed => "PeerClosed",
            Input::Shutdown => "Shutdown",
        }
    }
}

/// A message for the driver to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// In clear.
    Greeting(ServerGreeting),
    /// The first 32 octets in clear, the last 16 sealed when the cipher is on (RFC 4656 §3.1).
    ServerStart(ServerStart),
    /// Sealed (encrypted, with HMAC) when the cipher is on.
    AcceptSession(AcceptSession),
    StartAck(StartAck),
}

/// A test socket to bind for an accepted request, and what its reflector needs.
#[derive(Debug)]
pub struct Bind {
    pub sid: Sid,
    pub spec: SessionSpec,
    pub layout: TestLayout,
    pub cipher: Option<TestCipher>,
    /// The Session-Sender packet size negotiated: base + Padding Length. Shorter datagrams
    /// are dropped (never reflected at full size).
    pub sender_len: usize,
}

/// What the driver does, in order.
#[derive(Debug)]
pub enum Action {
    Send(Message),
    /// Turn on the control cipher; everything after Server-Start's clear part uses it.
    Encrypt(ControlCipher),
    /// Bind a test socket (within the test-port range and the server-wide limits) and answer
    /// with [`Input::Bound`].
    Bind(Bind),
    /// Start every session bound on this connection (RFC 5357 §3.7), before Start-Ack.
    Start,
    /// Stop the running sessions after each one's Timeout, and discard the ones accepted but
    /// never started (RFC 5357 §3.8).
    Stop,
    Log(log::Level, String),
    /// Close the connection and free all its sessions now; `Some` is why, for the log.
    Close(Option<Error>),
}

/// The Server-Greeting of a connection with these secrets (RFC 4656 §3.1): what
/// [`Server::greet`] sends. The driver may send it before the machine exists (it waits for
/// Set-Up-Response without a thread), then build the machine with the same secrets.
pub fn greeting(settings: &Settings, secrets: &Secrets) -> ServerGreeting {
    ServerGreeting {
        modes: settings.modes,
        challenge: secrets.challenge,
        salt: secrets.salt,
        count: settings.pbkdf2_count,
    }
}

/// One control connection, Server side.
#[derive(Debug)]
pub struct Server<'k> {
    settings: Settings,
    keys: &'k KeyFile,
    secrets: Secrets,
    /// Server-Start's Start-Time: when this server started (RFC 4656 §3.1).
    started: Timestamp,
    peer: IpAddr,
    /// The address the control connection arrived on: the SID's address part.
    local: IpAddr,
    mode: SecurityMode,
    session_keys: Option<SessionKeys>,
    state: State,
    /// The command announced by [`Input::Command`], whose rest the driver is reading.
    announced: Option<Command>,
    /// The request whose socket the driver is binding.
    binding: Option<(Sid, SessionSpec)>,
    refusals: u32,
}

impl<'k> Server<'k> {
    pub fn new(
        settings: Settings,
        keys: &'k KeyFile,
        secrets: Secrets,
        started: Timestamp,
        peer: IpAddr,
        local: IpAddr,
    ) -> Self {
        Server {
            settings,
            keys,
            secrets,
            started,
            peer: crate::addr::unmap_ip(peer),
            local: crate::addr::unmap_ip(local),
            mode: SecurityMode::Open,
            session_keys: None,
            state: State::ExpectSetUp,
            announced: None,
            binding: None,
            refusals: 0,
        }
    }

    /// The Server-Greeting (RFC 4656 §3.1): the first thing to send.
    pub fn greet(&self) -> Vec<Action> {
        vec![Action::Send(Message::Greeting(self.greeting()))]
    }

    fn greeting(&self) -> ServerGreeting {
        greeting(&self.settings, &self.secrets)
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// The mode chosen in Set-Up-Response (open until then).
    pub fn mode(&self) -> SecurityMode {
        self.mode
    }

    /// Whether the handshake is over (Server-Start sent with Accept 0).
    pub fn established(&self) -> bool {
        matches!(
            self.state,
            State::ExpectCommands { .. } | State::Testing { .. }
        )
    }

    pub fn expect(&self) -> Expect {
        if self.binding.is_some() {
            return Expect::Bound;
        }
        if let Some(command) = self.announced {
            let (len, what) = match command {
                Command::RequestTwSession => (RequestTwSession::LEN, "Request-TW-Session"),
                Command::StartSessions => (wire::StartSessions::LEN, "Start-Sessions"),
                _ => (StopSessions::LEN, "Stop-Sessions"),
            };
            return Expect::Rest { command, len, what };
        }
        match self.state {
            State::ExpectSetUp => Expect::SetUpResponse,
            State::ExpectCommands { .. } | State::Testing { .. } => Expect::Command,
            State::Done => Expect::Nothing,
        }
    }

    /// How long the driver waits for the next message to begin before feeding
    /// [`Input::Timeout`]: the Set-Up deadline, then SERVWAIT.
    pub fn wait(&self) -> Duration {
        match self.state {
            State::ExpectSetUp => self.settings.setup_timeout,
            _ => self.settings.servwait,
        }
    }

    /// Takes one input and says what to do.
    pub fn handle(&mut self, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if let Err(e) = self.step(input, &mut out) {
            self.close(Some(e), &mut out);
        }
        out
    }

    fn close(&mut self, why: Option<Error>, out: &mut Vec<Action>) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.announced = None;
        self.binding = None;
        let unlogged = self.refusals.saturating_sub(LOGGED_REFUSALS);
        if unlogged > 0 {
            out.push(Action::Log(
                log::Level::Warn,
                format!("{unlogged} more refused Request-TW-Session not logged"),
            ));
        }
        out.push(Action::Close(why));
    }

    fn step(&mut self, input: Input, out: &mut Vec<Action>) -> Result<(), Error> {
        let unexpected = |input: &Input, state: &State| Error::Unexpected {
            input: input.name(),
            state: state.name(),
        };
        // The ends of a connection, whatever the state.
        match input {
            Input::Shutdown | Input::PeerClosed => {
                self.close(None, out);
                return Ok(());
            }
            Input::Timeout => {
                return Err(match self.state {
                    State::ExpectSetUp => Error::SetUpTimeout {
                        after: self.settings.setup_timeout,
                    },
                    _ => Error::Servwait {
                        after: self.settings.servwait,
                        waiting_for: "a control command",
                    },
                })
            }
            _ => {}
        }
        if self.binding.is_some() {
            return match input {
                Input::Bound(b) => self.on_bound(b, out),
                other => Err(unexpected(&other, &self.state)),
            };
        }
        if let Some(announced) = self.announced.take() {
            return match (announced, input) {
                (
                    Command::RequestTwSession,
                    Input::RequestTwSession {
                        request,
                        now,
                        random,
                    },
                ) => self.on_request(request, now, random, out),
                (Command::StartSessions, Input::StartSessions) => self.on_start(out),
                (Command::StopSessions, Input::StopSessions(stop)) => self.on_stop(stop, out),
                (_, other) => Err(unexpected(&other, &self.state)),
            };
        }
        match (&self.state, input) {
            (State::ExpectSetUp, Input::SetUpResponse(setup)) => self.on_setup(&setup, out),
            (State::ExpectCommands { .. } | State::Testing { .. }, Input::Command(c)) => {
                self.on_command(c)
            }
            (state, other) => Err(unexpected(&other, state)),
        }
    }

    /// Set-Up-Response (RFC 4656 §3.1): the mode, and in the secure modes the identity and the
    /// session keys in the Token.
    fn on_setup(&mut self, setup: &SetUpResponse, out: &mut Vec<Action>) -> Result<(), Error> {
        if setup.mode.security().is_empty() {
            // RFC 4656 §3.1: Mode 0 means the client declines; the Server closes.
            return Err(Error::Declined);
        }
        let Some(mode) =
            SecurityMode::from_modes(setup.mode).filter(|m| self.settings.modes.contains(m.bit()))
        else {
            return Err(Error::ModeNotOffered {
                chosen: setup.mode,
                offered: self.settings.modes,
            });
        };
        self.mode = mode;
        let mut identity = None;
        if mode.needs_key() {
            let raw = &setup.key_id[..setup
                .key_id
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(setup.key_id.len())];
            let id = printable(raw);
            let secret = self.keys.get(&setup.key_id_str());
            // The same work for an unknown identity as for a known one: PBKDF2 and a Token
            // decryption, so the answer's timing tells nothing (no identity oracle).
            let k = crypto::derive_key(
                secret.unwrap_or(DECOY_PASSPHRASE),
                &self.secrets.salt,
                self.settings.pbkdf2_count,
            );
            let keys = crypto::decrypt_token(&k, &setup.token, &self.secrets.challenge);
            match (secret, keys) {
                (Some(_), Ok(keys)) => {
                    out.push(Action::Encrypt(ControlCipher::new(
                        &keys,
                        self.secrets.server_iv,
                        setup.client_iv,
                    )));
                    self.session_keys = Some(keys);
                }
                (known, _) => {
                    // RFC 4656 §3.1: Accept non-zero in Server-Start, then close.
                    out.push(Action::Send(Message::ServerStart(ServerStart {
                        accept: Accept::Failure,
                        server_iv: [0; 16],
                        start_time: self.started,
                    })));
                    return Err(if known.is_some() {
                        Error::WrongKey { id }
                    } else {
                        Error::UnknownIdentity { id }
                    });
                }
            }
            identity = Some(id);
        }
        out.push(Action::Send(Message::ServerStart(ServerStart {
            accept: Accept::Ok,
            server_iv: if mode.needs_key() {
                self.secrets.server_iv
            } else {
                [0; 16]
            },
            start_time: self.started,
        })));
        out.push(Action::Log(
            log::Level::Info,
            match identity {
                Some(id) => format!("mode {mode}, identity '{id}'"),
                None => format!("mode {mode}"),
            },
        ));
        self.state = State::ExpectCommands {
            sessions: Vec::new(),
        };
        Ok(())
    }

    /// A command's first block: may it come now? (RFC 5357 §3.4–3.8; an unexpected command is
    /// a protocol error and the Server closes.)
    fn on_command(&mut self, c: Command) -> Result<(), Error> {
        match (&self.state, c) {
            (State::ExpectCommands { .. }, Command::RequestTwSession) => {}
            (State::ExpectCommands { sessions }, Command::StartSessions) => {
                if sessions.is_empty() {
                    return Err(Error::StartWithoutSessions);
                }
            }
            (_, Command::StopSessions) => {}
            (State::Testing { .. }, Command::RequestTwSession) => {
                return Err(Error::RequestAfterStart)
            }
            (State::Testing { .. }, Command::StartSessions) => {
                return Err(Error::StartWhileTesting)
            }
            (_, other) => return Err(Error::from(other)),
        }
        self.announced = Some(c);
        Ok(())
    }

    fn refuse(
        &mut self,
        accept: Accept,
        reason: String,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        self.refusals += 1;
        if self.refusals <= LOGGED_REFUSALS {
            out.push(Action::Log(
                log::Level::Warn,
                format!("refusing Request-TW-Session ({accept}): {reason}"),
            ));
        }
        out.push(Action::Send(Message::AcceptSession(AcceptSession::refuse(
            accept,
        ))));
        if self.refusals >= MAX_REFUSALS {
            return Err(Error::TooManyRefusals {
                refusals: self.refusals,
            });
        }
        Ok(())
    }

    /// Request-TW-Session (RFC 5357 §3.5): refuse it with an Accept code, or ask the driver to
    /// bind its socket.
    fn on_request(
        &mut self,
        request: Result<RequestTwSession, wire::Error>,
        now: Timestamp,
        random: [u8; 4],
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let State::ExpectCommands { sessions } = &self.state else {
            return Err(Error::RequestAfterStart);
        };
        let held = sessions.len();
        let req = match request {
            Ok(r) => r,
            Err(e) => return self.refuse(Accept::NotSupported, e.to_string(), out),
        };
        let spec = match validate_request(&req, self.mode, self.peer) {
            Ok(s) => s,
            Err(r) => return self.refuse(r.accept, r.reason, out),
        };
        if held >= self.settings.max_sessions {
            return self.refuse(
                Accept::TemporaryResourceLimitation,
                format!("{held} sessions on this connection (-max-sessions-per-connection)"),
                out,
            );
        }
        let sid = make_sid(self.local, now, random);
        let layout = self.mode.test_layout();
        let cipher = match (self.mode.test_security(), &self.session_keys) {
            (Some(sec), Some(k)) => Some(TestCipher::new(&TestKeys::derive(k, &sid.0), sec)),
            _ => None,
        };
        let sender_len = layout.sender.base + spec.padding as usize;
        self.binding = Some((sid, spec.clone()));
        out.push(Action::Bind(Bind {
            sid,
            spec,
            layout,
            cipher,
            sender_len,
        }));
        Ok(())
    }

    fn on_bound(
        &mut self,
        bound: Result<u16, Refusal>,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let Some((sid, spec)) = self.binding.take() else {
            return Err(Error::Unexpected {
                input: "Bound",
                state: self.state.name(),
            });
        };
        let port = match bound {
            Ok(p) => p,
            Err(r) => return self.refuse(r.accept, r.reason, out),
        };
        let State::ExpectCommands { sessions } = &mut self.state else {
            return Err(Error::RequestAfterStart);
        };
        sessions.push(Session {
            sid,
            port,
            timeout: spec.timeout,
        });
        out.push(Action::Log(
            log::Level::Info,
            format!(
                "session {sid} accepted on port {port} (requested {}, padding {})",
                spec.requested_port, spec.padding
            ),
        ));
        out.push(Action::Send(Message::AcceptSession(AcceptSession {
            accept: Accept::Ok,
            port,
            sid,
            reflected_octets: 0,
            server_octets: 0,
        })));
        Ok(())
    }

    /// Start-Sessions (RFC 5357 §3.7): start every accepted session, then Start-Ack.
    fn on_start(&mut self, out: &mut Vec<Action>) -> Result<(), Error> {
        let sessions = match std::mem::replace(&mut self.state, State::Done) {
            State::ExpectCommands { sessions } if !sessions.is_empty() => sessions,
            State::ExpectCommands { .. } => return Err(Error::StartWithoutSessions),
            _ => return Err(Error::StartWhileTesting),
        };
        out.push(Action::Start);
        out.push(Action::Send(Message::StartAck(StartAck {
            accept: Accept::Ok,
        })));
        out.push(Action::Log(
            log::Level::Info,
            format!("{} session(s) started", sessions.len()),
        ));
        self.state = State::Testing { running: sessions };
        Ok(())
    }

    /// Stop-Sessions (RFC 5357 §3.8): Number of Sessions MUST equal the sessions started and
    /// not yet stopped; otherwise the Server closes the connection and discards the results.
    /// Sessions accepted but never started are discarded. The connection can then be used
    /// again.
    fn on_stop(&mut self, stop: StopSessions, out: &mut Vec<Action>) -> Result<(), Error> {
        let running = match &self.state {
            State::Testing { running } => running.len() as u32,
            _ => 0,
        };
        if stop.number_of_sessions != running {
            return Err(Error::StopCountMismatch {
                requested: stop.number_of_sessions,
                running,
            });
        }
        out.push(Action::Stop);
        out.push(Action::Log(
            log::Level::Info,
            format!("Stop-Sessions for {running} session(s)"),
        ));
        self.state = State::ExpectCommands {
            sessions: Vec::new(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests;
