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
//! With Individual Session Control chosen (RFC 5938, Modes 16) the connection goes from
//! Set-Up-Response to [`State::Individual`] instead and stays there: Request-TW-Session,
//! Start-N-Sessions and Stop-N-Sessions may come in any order, each naming its sessions by SID,
//! and Start-Sessions / Stop-Sessions are refused (RFC 5938 §2: they "MUST NOT be used").
//!
//! The other extensions (RFC 6038 Reflect Octets and Symmetrical Size, RFC 7750 DSCP and ECN
//! Monitoring) change no state: they are chosen in Set-Up-Response, shape each session's
//! [`Bind`] (its layout, the padding it must carry) and Accept-Session's Reflected octets.
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
    self, Accept, AcceptSession, Command, Modes, ReflectOctetsRequest, RequestTwSession,
    ServerGreeting, ServerStart, SetUpResponse, Sid, StartAck, StartNAck, StartNSessions, StopNAck,
    StopNSessions, StopSessions, TestLayout,
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
    /// Security modes offered in the Server-Greeting.
    pub modes: Modes,
    /// Extension bits offered beside them (a subset of [`super::EXTENSIONS`]).
    pub extensions: Modes,
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
            extensions: c.extensions,
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
    /// Individual Session Control (RFC 5938): `accepted` are not started yet, `running` were
    /// started by Start-N-Sessions and not stopped by Stop-N-Sessions. Any command but
    /// Start-Sessions and Stop-Sessions may come.
    Individual {
        accepted: Vec<Session>,
        running: Vec<Session>,
    },
    /// Closed; nothing more is read.
    Done,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::ExpectSetUp => "ExpectSetUp",
            State::ExpectCommands { .. } => "ExpectCommands",
            State::Testing { .. } => "Testing",
            State::Individual { .. } => "Individual",
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
    /// The rest of a Start-N-Sessions or Stop-N-Sessions (RFC 5938 §3.2, §3.4), whose length
    /// the first block (already read) gives: `StartNSessions::message_len`. Then
    /// [`Input::StartNSessions`] or [`Input::StopNSessions`].
    RestN {
        command: Command,
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
        /// Octets 88..92 (RFC 6038 §4.2); read only when Reflect Octets was chosen.
        reflect: ReflectOctetsRequest,
        now: Timestamp,
        random: [u8; 4],
    },
    /// The outcome of [`Action::Bind`]: the port bound, or why there is no socket.
    Bound(Result<u16, Refusal>),
    StartSessions,
    StopSessions(StopSessions),
    /// A whole Start-N-Sessions (HMAC checked), or why its SID list cannot be read.
    StartNSessions(Result<StartNSessions, wire::Error>),
    /// A whole Stop-N-Sessions (HMAC checked), or why its SID list cannot be read.
    StopNSessions(Result<StopNSessions, wire::Error>),
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
            Input::StartNSessions(_) => "Start-N-Sessions",
            Input::StopNSessions(_) => "Stop-N-Sessions",
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
    /// RFC 5938 §3.3: one per Accept value among the SIDs of a Start-N-Sessions.
    StartNAck(StartNAck),
    /// RFC 5938 §3.5: one per Accept value among the SIDs of a Stop-N-Sessions.
    StopNAck(StopNAck),
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
    /// DSCP and ECN Monitoring (RFC 7750): the reflector copies the received TOS / Traffic
    /// Class into S-DSCP-ECN, so the socket must report it (`net::set_recv_tos`).
    pub dscp_ecn: bool,
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
    /// Start these bound sessions (RFC 5938 Start-N-Sessions), before their Start-N-Ack.
    StartN(Vec<Sid>),
    /// Stop these sessions after each one's Timeout if running, discard them if only accepted
    /// (RFC 5938 Stop-N-Sessions); the others go on.
    StopN(Vec<Sid>),
    Log(log::Level, String),
    /// Close the connection and free all its sessions now; `Some` is why, for the log.
    Close(Option<Error>),
}

/// The Server-Greeting of a connection with these secrets (RFC 4656 §3.1): what
/// [`Server::greet`] sends. The driver may send it before the machine exists (it waits for
/// Set-Up-Response without a thread), then build the machine with the same secrets.
pub fn greeting(settings: &Settings, secrets: &Secrets) -> ServerGreeting {
    ServerGreeting {
        // RFC 5938 §3.7, RFC 6038 §4.4: the OR of every mode the Server is willing to use.
        modes: settings
            .modes
            .union(settings.extensions.intersection(super::EXTENSIONS)),
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
    /// Extension bits chosen in Set-Up-Response (a subset of those offered).
    extensions: Modes,
    session_keys: Option<SessionKeys>,
    state: State,
    /// The command announced by [`Input::Command`], whose rest the driver is reading.
    announced: Option<Command>,
    /// The request whose socket the driver is binding.
    binding: Option<(Sid, SessionSpec)>,
    refusals: u32,
    /// The mode the Control-Client chose and the identity it gave, once Set-Up-Response came
    /// (for the connection's log line, whatever the outcome).
    chosen: Option<(SecurityMode, Option<String>)>,
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
            extensions: Modes(0),
            session_keys: None,
            state: State::ExpectSetUp,
            announced: None,
            binding: None,
            refusals: 0,
            chosen: None,
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

    /// The mode chosen in Set-Up-Response and the identity given (None before it came).
    pub fn chosen(&self) -> Option<(SecurityMode, Option<&str>)> {
        self.chosen.as_ref().map(|(m, id)| (*m, id.as_deref()))
    }

    /// The extension bits chosen in Set-Up-Response (none until then).
    pub fn extensions(&self) -> Modes {
        self.extensions
    }

    fn individual(&self) -> bool {
        self.extensions.contains(Modes::INDIVIDUAL_SESSION_CONTROL)
    }

    /// Whether the handshake is over (Server-Start sent with Accept 0).
    pub fn established(&self) -> bool {
        matches!(
            self.state,
            State::ExpectCommands { .. } | State::Testing { .. } | State::Individual { .. }
        )
    }

    pub fn expect(&self) -> Expect {
        if self.binding.is_some() {
            return Expect::Bound;
        }
        if let Some(command) = self.announced {
            match command {
                Command::StartNSessions => {
                    return Expect::RestN {
                        command,
                        what: "Start-N-Sessions",
                    }
                }
                Command::StopNSessions => {
                    return Expect::RestN {
                        command,
                        what: "Stop-N-Sessions",
                    }
                }
                _ => {}
            }
            let (len, what) = match command {
                Command::RequestTwSession => (RequestTwSession::LEN, "Request-TW-Session"),
                Command::StartSessions => (wire::StartSessions::LEN, "Start-Sessions"),
                _ => (StopSessions::LEN, "Stop-Sessions"),
            };
            return Expect::Rest { command, len, what };
        }
        match self.state {
            State::ExpectSetUp => Expect::SetUpResponse,
            State::ExpectCommands { .. } | State::Testing { .. } | State::Individual { .. } => {
                Expect::Command
            }
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
                        reflect,
                        now,
                        random,
                    },
                ) => self.on_request(request, reflect, now, random, out),
                (Command::StartSessions, Input::StartSessions) => self.on_start(out),
                (Command::StopSessions, Input::StopSessions(stop)) => self.on_stop(stop, out),
                (Command::StartNSessions, Input::StartNSessions(m)) => self.on_start_n(m, out),
                (Command::StopNSessions, Input::StopNSessions(m)) => self.on_stop_n(m, out),
                (_, other) => Err(unexpected(&other, &self.state)),
            };
        }
        match (&self.state, input) {
            (State::ExpectSetUp, Input::SetUpResponse(setup)) => self.on_setup(&setup, out),
            (
                State::ExpectCommands { .. } | State::Testing { .. } | State::Individual { .. },
                Input::Command(c),
            ) => self.on_command(c),
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
        // Extension bits beside the security mode (RFC 5938 §3.1, RFC 6038 §4.1, RFC 7750
        // §2.1): only those offered may be chosen. Bits this implementation does not know are
        // ignored, as RFC 4656 §3.1 says of the unused ones.
        let extensions = setup.mode.intersection(super::EXTENSIONS);
        let offered = self.settings.extensions.intersection(super::EXTENSIONS);
        if extensions.0 & !offered.0 != 0 {
            return Err(Error::ModeNotOffered {
                chosen: setup.mode,
                offered: self.settings.modes.union(offered),
            });
        }
        self.mode = mode;
        self.chosen = Some((mode, None));
        self.extensions = extensions;
        let mut identity = None;
        if mode.needs_key() {
            let raw = &setup.key_id[..setup
                .key_id
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(setup.key_id.len())];
            let id = printable(raw);
            self.chosen = Some((mode, Some(id.clone())));
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
        let ext = if extensions.is_empty() {
            String::new()
        } else {
            format!(
                ", extensions {}",
                super::extension_names(extensions).join(",")
            )
        };
        out.push(Action::Log(
            log::Level::Info,
            match identity {
                Some(id) => format!("mode {mode}{ext}, identity '{id}'"),
                None => format!("mode {mode}{ext}"),
            },
        ));
        self.state = if self.individual() {
            State::Individual {
                accepted: Vec::new(),
                running: Vec::new(),
            }
        } else {
            State::ExpectCommands {
                sessions: Vec::new(),
            }
        };
        Ok(())
    }

    /// A command's first block: may it come now? (RFC 5357 §3.4–3.8; an unexpected command is
    /// a protocol error and the Server closes.)
    fn on_command(&mut self, c: Command) -> Result<(), Error> {
        match (&self.state, c) {
            // RFC 5938 §2: with Individual Session Control, Start-Sessions and Stop-Sessions
            // "MUST NOT be used"; Start-N-Sessions and Stop-N-Sessions only with it.
            (
                State::Individual { .. },
                Command::RequestTwSession | Command::StartNSessions | Command::StopNSessions,
            ) => {}
            (State::Individual { .. }, Command::StartSessions | Command::StopSessions) => {
                return Err(Error::NotWithIndividualControl(
                    if c == Command::StartSessions {
                        "Start-Sessions"
                    } else {
                        "Stop-Sessions"
                    },
                ))
            }
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
        reflect: ReflectOctetsRequest,
        now: Timestamp,
        random: [u8; 4],
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let held = match &self.state {
            State::ExpectCommands { sessions } => sessions.len(),
            // RFC 5938: sessions are started and stopped one by one, so a new one may be
            // requested while others run.
            State::Individual { accepted, running } => accepted.len() + running.len(),
            _ => return Err(Error::RequestAfterStart),
        };
        let req = match request {
            Ok(r) => r,
            Err(e) => return self.refuse(Accept::NotSupported, e.to_string(), out),
        };
        let mut spec = match validate_request(&req, self.mode, self.peer) {
            Ok(s) => s,
            Err(r) => return self.refuse(r.accept, r.reason, out),
        };
        let layout = self.mode.test_layout().with_modes(self.extensions);
        let reflect = self
            .extensions
            .contains(Modes::REFLECT_OCTETS)
            .then_some(reflect);
        if let Err(r) = validate_extensions(&req, reflect, &layout) {
            return self.refuse(r.accept, r.reason, out);
        }
        if let Some(r) = reflect {
            spec.octets_to_be_reflected = r.octets_to_be_reflected;
            spec.padding_to_reflect = r.length_of_padding_to_reflect;
        }
        if held >= self.settings.max_sessions {
            return self.refuse(
                Accept::TemporaryResourceLimitation,
                format!("{held} sessions on this connection (-max-sessions-per-connection)"),
                out,
            );
        }
        let sid = make_sid(self.local, now, random);
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
            dscp_ecn: self.extensions.contains(Modes::DSCP_ECN_MONITORING),
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
        let session = Session {
            sid,
            port,
            timeout: spec.timeout,
        };
        match &mut self.state {
            State::ExpectCommands { sessions } => sessions.push(session),
            State::Individual { accepted, .. } => accepted.push(session),
            _ => return Err(Error::RequestAfterStart),
        }
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
            // RFC 6038 §4.3: "the Server MUST return" the Octets to be reflected (zero
            // without the mode); Server octets zero: we want nothing carried back.
            reflected_octets: spec.octets_to_be_reflected,
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

impl Server<'_> {
    /// Start-N-Sessions (RFC 5938 §3.2): start the named sessions that were accepted and not
    /// started, then one Start-N-Ack per Accept value (§3.3): 0 for those started (or running
    /// already), 1 (Failure) for SIDs this connection does not hold to start.
    fn on_start_n(
        &mut self,
        m: Result<StartNSessions, wire::Error>,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        // A count of 0 or past MAX_SIDS: the SIDs cannot be read, so no answer can name them
        // (§3.2: the Server MUST NOT answer Accept 0); the Server closes.
        let m = m.map_err(|e| Error::BadSessionList(e.to_string()))?;
        let State::Individual { accepted, running } = &mut self.state else {
            return Err(Error::from(Command::StartNSessions));
        };
        let (mut ok, mut failed, mut started) = (Vec::new(), Vec::new(), Vec::new());
        for sid in m.sids {
            if ok.contains(&sid) || failed.contains(&sid) {
                continue;
            }
            if let Some(i) = accepted.iter().position(|s| s.sid == sid) {
                running.push(accepted.remove(i));
                started.push(sid);
                ok.push(sid);
            } else if running.iter().any(|s| s.sid == sid) {
                ok.push(sid);
            } else {
                failed.push(sid);
            }
        }
        if !started.is_empty() {
            out.push(Action::Log(
                log::Level::Info,
                format!(
                    "Start-N-Sessions: {} session(s) started, {} running",
                    started.len(),
                    running.len()
                ),
            ));
            out.push(Action::StartN(started));
        }
        Self::acks(ok, failed, out, |accept, sids| {
            Message::StartNAck(StartNAck { accept, sids })
        });
        Ok(())
    }

    /// Stop-N-Sessions (RFC 5938 §3.4): stop the named running sessions after their Timeout
    /// and discard the named accepted ones; the connection and the other sessions go on. One
    /// Stop-N-Ack per Accept value (§3.5): 0 for those stopped, 1 for SIDs not held.
    fn on_stop_n(
        &mut self,
        m: Result<StopNSessions, wire::Error>,
        out: &mut Vec<Action>,
    ) -> Result<(), Error> {
        let m = m.map_err(|e| Error::BadSessionList(e.to_string()))?;
        let State::Individual { accepted, running } = &mut self.state else {
            return Err(Error::from(Command::StopNSessions));
        };
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for sid in m.sids {
            if ok.contains(&sid) || failed.contains(&sid) {
                continue;
            }
            if let Some(i) = running.iter().position(|s| s.sid == sid) {
                running.remove(i);
                ok.push(sid);
            } else if let Some(i) = accepted.iter().position(|s| s.sid == sid) {
                accepted.remove(i);
                ok.push(sid);
            } else {
                failed.push(sid);
            }
        }
        if !ok.is_empty() {
            out.push(Action::Log(
                log::Level::Info,
                format!(
                    "Stop-N-Sessions: {} session(s) stopped, {} still running",
                    ok.len(),
                    running.len()
                ),
            ));
            out.push(Action::StopN(ok.clone()));
        }
        Self::acks(ok, failed, out, |accept, sids| {
            Message::StopNAck(StopNAck { accept, sids })
        });
        Ok(())
    }

    /// The acks of one N command: Accept 0 for `ok`, 1 for `failed`, each only if non-empty.
    fn acks(
        ok: Vec<Sid>,
        failed: Vec<Sid>,
        out: &mut Vec<Action>,
        make: impl Fn(Accept, Vec<Sid>) -> Message,
    ) {
        if !failed.is_empty() {
            out.push(Action::Log(
                log::Level::Warn,
                format!("{} SID(s) not held by this connection", failed.len()),
            ));
        }
        for (accept, sids) in [(Accept::Ok, ok), (Accept::Failure, failed)] {
            if !sids.is_empty() {
                out.push(Action::Send(make(accept, sids)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
