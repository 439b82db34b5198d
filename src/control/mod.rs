//! TWAMP-Control decisions, with no sockets and no clock of their own (RFC 5357 §3).
//!
//! [`client`] chooses a mode, checks the greeting and builds requests; [`server`] is the
//! Server's side as a state machine (which message may come next, what to answer, which
//! sessions to bind, start and stop). The I/O drivers in `crate::client` and `crate::server`
//! call these and do only reading and writing.

pub mod access;
pub mod client;
pub mod server;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::crypto::TestSecurity;
use crate::wire::{Command, Modes, TestLayout};

/// Why the Server ends a control connection: the control layer's error (RFC 5357 §3).
///
/// Every string in it that the peer supplied (the KeyID) is already escaped with
/// [`printable`], so it can go into a log line as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Set-Up-Response Mode 0: the Control-Client declines (RFC 4656 §3.1).
    Declined,
    /// Set-Up-Response chose a mode the Server did not offer, or more than one.
    ModeNotOffered { chosen: Modes, offered: Modes },
    /// The KeyID names no identity in the key file (RFC 4656 §3.1).
    UnknownIdentity { id: String },
    /// The Token did not decrypt to our Challenge: another pass-phrase (RFC 4656 §3.1).
    WrongKey { id: String },
    /// Start-Sessions before any Request-TW-Session was accepted (RFC 5357 §3.7).
    StartWithoutSessions,
    /// Request-TW-Session while sessions run: RFC 5357 has no way to add a session to a
    /// started set (RFC 5938 has: with Individual Session Control it is allowed).
    RequestAfterStart,
    /// Start-Sessions or Stop-Sessions with Individual Session Control chosen (RFC 5938 §2:
    /// they "MUST NOT be used").
    NotWithIndividualControl(&'static str),
    /// A Start-N-Sessions or Stop-N-Sessions whose SID list cannot be read (Number of
    /// Sessions 0 or over `wire::command::MAX_SIDS`; RFC 5938 §3.2).
    BadSessionList(String),
    /// Start-Sessions while sessions run.
    StartWhileTesting,
    /// Command 1, OWAMP's Request-Session, is forbidden in TWAMP (RFC 5357 §3.5).
    ForbiddenCommand,
    /// A command number we do not implement (RFC 4656 §3.4: the Server closes).
    UnsupportedCommand(u8),
    /// Stop-Sessions' Number of Sessions differs from the sessions running (RFC 5357 §3.8).
    StopCountMismatch { requested: u32, running: u32 },
    /// No Set-Up-Response within the Set-Up deadline.
    SetUpTimeout { after: Duration },
    /// No control message and no test packet within SERVWAIT (RFC 5357 §3.1).
    Servwait {
        after: Duration,
        waiting_for: &'static str,
    },
    /// The peer kept sending requests we had to refuse.
    TooManyRefusals { refusals: u32 },
    /// The driver fed an input the state cannot take: a bug in the driver, not the peer.
    Unexpected {
        input: &'static str,
        state: &'static str,
    },
}

impl Error {
    /// Authentication failures (exit 6 when they reach a process exit code).
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::UnknownIdentity { .. } | Error::WrongKey { .. })
    }

    /// Deadlines (exit 5).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::SetUpTimeout { .. } | Error::Servwait { .. })
    }

    /// A short machine-readable name, as `crate::Error::kind` gives.
    pub fn kind(&self) -> &'static str {
        if self.is_auth() {
            "auth"
        } else if self.is_timeout() {
            "timeout"
        } else {
            "protocol"
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Declined => write!(f, "Set-Up-Response chose mode 0: the client declines"),
            Error::ModeNotOffered { chosen, offered } => {
                write!(f, "Set-Up-Response chose mode {chosen} (offered {offered})")
            }
            Error::UnknownIdentity { id } => {
                write!(f, "authentication failed: unknown identity '{id}'")
            }
            Error::WrongKey { id } => write!(
                f,
                "authentication failed: identity '{id}': wrong key (Token did not decrypt to our Challenge)"
            ),
            Error::StartWithoutSessions => {
                write!(f, "Start-Sessions with no session accepted")
            }
            Error::RequestAfterStart => write!(
                f,
                "Request-TW-Session after Start-Sessions (not supported without RFC 5938)"
            ),
            Error::StartWhileTesting => write!(f, "Start-Sessions while sessions are running"),
            Error::NotWithIndividualControl(what) => write!(
                f,
                "{what} with Individual Session Control chosen (RFC 5938: MUST NOT be used)"
            ),
            Error::BadSessionList(why) => write!(f, "unreadable SID list: {why}"),
            Error::ForbiddenCommand => {
                write!(f, "command 1 (OWAMP Request-Session) is forbidden in TWAMP")
            }
            Error::UnsupportedCommand(n) => write!(f, "unsupported command {n}"),
            Error::StopCountMismatch { requested, running } => write!(
                f,
                "Stop-Sessions for {requested} sessions, but {running} are running"
            ),
            Error::SetUpTimeout { after } => {
                write!(f, "no Set-Up-Response within {after:?} (-setup-timeout)")
            }
            Error::Servwait { after, waiting_for } => write!(
                f,
                "nothing received for {after:?} (SERVWAIT) while waiting for {waiting_for}"
            ),
            Error::TooManyRefusals { refusals } => write!(
                f,
                "{refusals} Request-TW-Session refused on this connection: closing it"
            ),
            Error::Unexpected { input, state } => {
                write!(f, "internal error: {input} in state {state}")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Command> for Error {
    /// The error for a command number that no state accepts.
    fn from(c: Command) -> Self {
        match c {
            Command::Forbidden => Error::ForbiddenCommand,
            other => Error::UnsupportedCommand(u8::from(other)),
        }
    }
}

/// Escapes a peer-supplied string for a log line: printable ASCII stays (except `\` and
/// `'`, escaped so a quoted value cannot be closed early), everything else becomes `\xNN`.
/// A KeyID with a newline cannot forge a second log line.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The four security modes of Set-Up-Response (RFC 4656 §3.1, RFC 5618).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityMode {
    /// Unauthenticated (mode 1).
    Open,
    /// Mixed (mode 8): encrypted control, unauthenticated test packets (RFC 5618).
    Mixed,
    /// Authenticated (mode 2): encrypted control; test packets carry an HMAC and their first
    /// block is encrypted, timestamps stay in clear.
    Authenticated,
    /// Encrypted (mode 4): encrypted control and test packets.
    Encrypted,
}

impl SecurityMode {
    /// Strictest first: the default preference order of a Control-Client that holds a key.
    pub const STRICTEST_FIRST: [SecurityMode; 4] = [
        SecurityMode::Encrypted,
        SecurityMode::Authenticated,
        SecurityMode::Mixed,
        SecurityMode::Open,
    ];

    pub fn bit(self) -> Modes {
        match self {
            SecurityMode::Open => Modes::UNAUTHENTICATED,
            SecurityMode::Authenticated => Modes::AUTHENTICATED,
            SecurityMode::Encrypted => Modes::ENCRYPTED,
            SecurityMode::Mixed => Modes::MIXED,
        }
    }

    /// The one security mode in a Set-Up-Response Mode field; `None` when there is not
    /// exactly one (RFC 4656 §3.1: the client chooses one of the offered modes).
    pub fn from_modes(m: Modes) -> Option<Self> {
        match m.security().0 {
            1 => Some(SecurityMode::Open),
            2 => Some(SecurityMode::Authenticated),
            4 => Some(SecurityMode::Encrypted),
            8 => Some(SecurityMode::Mixed),
            _ => None,
        }
    }

    /// Whether the mode needs a shared secret (everything but open).
    pub fn needs_key(self) -> bool {
        self != SecurityMode::Open
    }

    /// The test-packet layout: mixed mode uses the unauthenticated one (RFC 5618 §2).
    pub fn test_layout(self) -> TestLayout {
        match self {
            SecurityMode::Open | SecurityMode::Mixed => TestLayout::OPEN,
            SecurityMode::Authenticated | SecurityMode::Encrypted => TestLayout::AUTHENTICATED,
        }
    }

    /// How test packets are protected, if at all.
    pub fn test_security(self) -> Option<TestSecurity> {
        match self {
            SecurityMode::Open | SecurityMode::Mixed => None,
            SecurityMode::Authenticated => Some(TestSecurity::Authenticated),
            SecurityMode::Encrypted => Some(TestSecurity::Encrypted),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityMode::Open => "open",
            SecurityMode::Authenticated => "authenticated",
            SecurityMode::Encrypted => "encrypted",
            SecurityMode::Mixed => "mixed",
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" | "o" | "unauthenticated" | "1" => Ok(SecurityMode::Open),
            "authenticated" | "auth" | "a" | "2" => Ok(SecurityMode::Authenticated),
            "encrypted" | "e" | "4" => Ok(SecurityMode::Encrypted),
            "mixed" | "m" | "8" => Ok(SecurityMode::Mixed),
            other => Err(format!(
                "unknown mode '{other}' (open, authenticated, encrypted, mixed)"
            )),
        }
    }
}

/// Parses a comma-separated list of modes, keeping its order (duplicates dropped). twping's
/// letters work too: `AEO` is authenticated, encrypted, open, in that order of preference.
pub fn parse_mode_list(s: &str) -> Result<Vec<SecurityMode>, String> {
    let t = s.trim();
    let letters = !t.contains(',') && t.len() > 1 && t.chars().all(|c| "AEOMaeom".contains(c));
    let parts: Vec<String> = if letters {
        t.chars().map(String::from).collect()
    } else {
        t.split(',').map(str::to_string).collect()
    };
    let mut out = Vec::new();
    for part in parts.iter().filter(|p| !p.trim().is_empty()) {
        let m: SecurityMode = part.parse()?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("empty mode list".into());
    }
    Ok(out)
}

/// The extension bits this implementation knows and can offer (docs/rfc-extensions.md):
/// Individual Session Control (16, RFC 5938), Reflect Octets (32) and Symmetrical Size (64,
/// RFC 6038), DSCP and ECN Monitoring (256, RFC 7750).
pub const EXTENSIONS: Modes = Modes(16 | 32 | 64 | 256);

/// The extensions by the names the command line uses, in Modes order.
pub const EXTENSION_NAMES: [(Modes, &str); 4] = [
    (Modes::INDIVIDUAL_SESSION_CONTROL, "individual"),
    (Modes::REFLECT_OCTETS, "reflect-octets"),
    (Modes::SYMMETRICAL_SIZE, "symmetrical"),
    (Modes::DSCP_ECN_MONITORING, "dscp-ecn"),
];

/// Parses `-extensions`: `all`, `none`, or a comma-separated list of `individual`,
/// `reflect-octets`, `symmetrical`, `dscp-ecn` (or their Modes values 16, 32, 64, 256).
pub fn parse_extension_list(s: &str) -> Result<Modes, String> {
    let mut out = Modes(0);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let p = part.to_ascii_lowercase();
        let bit = match p.as_str() {
            "all" => EXTENSIONS,
            "none" => Modes(0),
            "individual" | "individual-session-control" | "rfc5938" | "16" => {
                Modes::INDIVIDUAL_SESSION_CONTROL
            }
            "reflect-octets" | "32" => Modes::REFLECT_OCTETS,
            "symmetrical" | "symmetrical-size" | "64" => Modes::SYMMETRICAL_SIZE,
            "dscp-ecn" | "dscp-ecn-monitoring" | "rfc7750" | "256" => Modes::DSCP_ECN_MONITORING,
            _ => {
                return Err(format!(
                    "unknown extension '{part}' (all, none, individual, reflect-octets, \
                     symmetrical, dscp-ecn)"
                ))
            }
        };
        out = out.union(bit);
    }
    Ok(out)
}

/// The command-line names of the extension bits in `m`.
pub fn extension_names(m: Modes) -> Vec<&'static str> {
    EXTENSION_NAMES
        .iter()
        .filter(|(bit, _)| m.contains(*bit))
        .map(|(_, name)| *name)
        .collect()
}

/// The union of the modes' bits.
pub fn modes_of(list: &[SecurityMode]) -> Modes {
    list.iter().fold(Modes(0), |acc, m| acc.union(m.bit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bits_match_iana() {
        for (m, bit) in [
            (SecurityMode::Open, 1),
            (SecurityMode::Authenticated, 2),
            (SecurityMode::Encrypted, 4),
            (SecurityMode::Mixed, 8),
        ] {
            assert_eq!(m.bit(), Modes(bit));
            assert_eq!(SecurityMode::from_modes(Modes(bit)), Some(m));
        }
        assert_eq!(SecurityMode::from_modes(Modes(3)), None);
        assert_eq!(SecurityMode::from_modes(Modes(0)), None);
        // Extension bits beside one security mode are fine.
        assert_eq!(
            SecurityMode::from_modes(Modes(1 | 32)),
            Some(SecurityMode::Open)
        );
    }

    #[test]
    fn mixed_mode_tests_in_the_open_layout() {
        assert_eq!(SecurityMode::Mixed.test_layout(), TestLayout::OPEN);
        assert_eq!(SecurityMode::Mixed.test_security(), None);
        assert_eq!(
            SecurityMode::Authenticated.test_layout(),
            TestLayout::AUTHENTICATED
        );
    }

    #[test]
    fn peer_strings_cannot_forge_log_lines() {
        assert_eq!(printable(b"testuser"), "testuser");
        assert_eq!(
            printable(b"x\nFAKE [ERROR] y"),
            "x\\x0aFAKE [ERROR] y",
            "a newline is escaped"
        );
        assert_eq!(printable(b"a'b\\c\x1b[31m\xff"), "a\\'b\\\\c\\x1b[31m\\xff");
    }

    #[test]
    fn mode_lists() {
        assert_eq!(
            parse_mode_list("encrypted,open,e").unwrap(),
            vec![SecurityMode::Encrypted, SecurityMode::Open]
        );
        assert!(parse_mode_list("open,bogus").is_err());
        // twping's -A letters, in their order of preference.
        assert_eq!(
            parse_mode_list("AEO").unwrap(),
            vec![
                SecurityMode::Authenticated,
                SecurityMode::Encrypted,
                SecurityMode::Open
            ]
        );
        assert_eq!(
            parse_mode_list("eo").unwrap(),
            vec![SecurityMode::Encrypted, SecurityMode::Open]
        );
        assert!(parse_mode_list("AEX").is_err());
        assert!(parse_mode_list("").is_err());
        assert_eq!(
            modes_of(&[SecurityMode::Open, SecurityMode::Mixed]),
            Modes(9)
        );
    }

    #[test]
    fn extension_lists() {
        assert_eq!(
            parse_extension_list("all").unwrap(),
            Modes(16 | 32 | 64 | 256)
        );
        assert_eq!(parse_extension_list("none").unwrap(), Modes(0));
        assert_eq!(
            parse_extension_list("reflect-octets, dscp-ecn").unwrap(),
            Modes(32 | 256)
        );
        assert_eq!(parse_extension_list("16,64").unwrap(), Modes(16 | 64));
        assert!(parse_extension_list("ikev2").is_err());
        assert_eq!(
            extension_names(Modes(7 | 16 | 256)),
            vec!["individual", "dscp-ecn"]
        );
    }
}
