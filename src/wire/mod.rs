//! TWAMP wire formats: bytes ⇄ plain structs, with no I/O, no crypto and no policy beyond "is
//! this well-formed".
//!
//! | message | RFC | octets | module |
//! |---|---|---|---|
//! | Server-Greeting | RFC 4656 §3.1, RFC 5357 §3.1 | 64 | [`greeting`] |
//! | Set-Up-Response | RFC 4656 §3.1 | 164 | [`setup`] |
//! | Server-Start | RFC 4656 §3.1 | 48 | [`start`] |
//! | Request-TW-Session | RFC 5357 §3.5, RFC 6038 §4.2 | 112 | [`session`] |
//! | Accept-Session | RFC 5357 §3.5, RFC 6038 §4.3 | 48 | [`session`] |
//! | Start-Sessions, Start-Ack | RFC 5357 §3.7 | 32 | [`command`] |
//! | Stop-Sessions | RFC 5357 §3.8 | 32 | [`command`] |
//! | Start-N-Sessions, Start-N-Ack, Stop-N-Sessions, Stop-N-Ack | RFC 5938 §3.2–3.5 | 32 + 16 per SID | [`command`] |
//! | TWAMP-Test packets | RFC 5357 §4.1.2, §4.2.1 | 14 / 41 open, 48 / 112 auth | [`test`] |
//! | STAMP test packets, SSID | RFC 8762 §4.2, §4.3; RFC 8972 §3 | 44 open, 112 auth | [`stamp`] |
//! | STAMP TLVs | RFC 8972 §4, RFC 9503 §3–4 | 4 + Length | [`tlv`] |
//! | Symmetrical Size sender packets | RFC 6038 §5.1.4 | 41 open, 112 auth | [`test`] |
//! | Reflected packets with S-DSCP-ECN | RFC 7750 §2.2.1 | 44 open, 112 auth | [`test`] |
//!
//! `docs/rfc-extensions.md` summarises the RFC 5938, 6038 and 7750 layouts and rules.
//!
//! Conventions (after smoltcp's `wire`):
//! - Each control message has `LEN`, `parse(&[u8; LEN])` and `emit(&mut [u8; LEN])`. The I/O layer
//!   reads exactly `LEN` octets, so a length error cannot reach `parse`.
//! - `parse` never panics, on any bytes. `emit` writes every octet of the buffer.
//! - The trailing HMAC field of a control message is written as zero by `emit` and ignored by
//!   `parse`: it belongs to the security layer (`crypto::ControlCipher::seal` fills it in, and
//!   `verify` checks it). In unauthenticated mode it stays zero, as RFC 4656 §3.4 requires.
//!
//! Validation policy: MBZ and Unused fields are written as zero and not checked on input
//! (RFC 4656 §3: "MBZ ... MUST be set to zero by senders and MUST be ignored by receivers").
//! Values that name things (Modes, Accept, Command) keep unknown values so that the control
//! layer, not the parser, decides what they mean.

pub mod command;
pub mod greeting;
pub mod session;
pub mod setup;
pub mod stamp;
pub mod start;
pub mod test;
pub mod tlv;

pub use command::{
    StartAck, StartNAck, StartNSessions, StartSessions, StopNAck, StopNSessions, StopSessions,
};
pub use greeting::ServerGreeting;
pub use session::{AcceptSession, ReflectOctetsRequest, RequestTwSession, TypeP};
pub use setup::SetUpResponse;
pub use start::ServerStart;
pub use test::{
    ReflectorLayout, ReflectorPacket, SenderDscpEcn, SenderLayout, SenderPacket, TestLayout,
};

use std::fmt;

/// A named byte range of a message.
pub(crate) type Field = core::ops::Range<usize>;

/// Copies one field out. Panics only if a field table is wrong (a bug caught by the tests),
/// never on peer data: callers pass buffers of the message's fixed length.
pub(crate) fn array<const N: usize>(buf: &[u8], field: Field) -> [u8; N] {
    buf[field]
        .try_into()
        .expect("field table ranges match the array length")
}

/// Length of the HMAC field at the end of control messages (RFC 4656 §3.2).
pub const HMAC_LEN: usize = 16;

/// What was wrong with a message or packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The input was shorter than the message.
    Truncated { need: usize, got: usize },
    /// A field holds a value the RFC does not allow.
    BadField { field: &'static str, value: u32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { need, got } => write!(f, "truncated: need {need} octets, got {got}"),
            Error::BadField { field, value } => write!(f, "invalid {field} value {value}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The Modes bit field (RFC 4656 §3.1; IANA TWAMP-Modes registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Modes(pub u32);

impl Modes {
    /// Unauthenticated (RFC 4656).
    pub const UNAUTHENTICATED: Modes = Modes(1);
    /// Authenticated (RFC 4656).
    pub const AUTHENTICATED: Modes = Modes(2);
    /// Encrypted (RFC 4656).
    pub const ENCRYPTED: Modes = Modes(4);
    /// Unauthenticated TEST, encrypted CONTROL (RFC 5618).
    pub const MIXED: Modes = Modes(8);
    /// Individual session control (RFC 5938).
    pub const INDIVIDUAL_SESSION_CONTROL: Modes = Modes(16);
    /// Reflect octets (RFC 6038).
    pub const REFLECT_OCTETS: Modes = Modes(32);
    /// Symmetrical size (RFC 6038).
    pub const SYMMETRICAL_SIZE: Modes = Modes(64);
    /// DSCP and ECN monitoring (RFC 7750 §3: bit position 8).
    pub const DSCP_ECN_MONITORING: Modes = Modes(256);
    /// The four security modes; exactly one of them is chosen in Set-Up-Response.
    pub const SECURITY: Modes = Modes(1 | 2 | 4 | 8);

    pub fn contains(self, other: Modes) -> bool {
        other.0 != 0 && self.0 & other.0 == other.0
    }

    pub fn union(self, other: Modes) -> Modes {
        Modes(self.0 | other.0)
    }

    pub fn intersection(self, other: Modes) -> Modes {
        Modes(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The security-mode part of this value.
    pub fn security(self) -> Modes {
        self.intersection(Self::SECURITY)
    }
}

impl fmt::Display for Modes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::UNAUTHENTICATED, "open"),
            (Self::AUTHENTICATED, "authenticated"),
            (Self::ENCRYPTED, "encrypted"),
            (Self::MIXED, "mixed"),
            (
                Self::INDIVIDUAL_SESSION_CONTROL,
                "individual-session-control",
            ),
            (Self::REFLECT_OCTETS, "reflect-octets"),
            (Self::SYMMETRICAL_SIZE, "symmetrical-size"),
            (Self::DSCP_ECN_MONITORING, "dscp-ecn-monitoring"),
        ];
        let mut first = true;
        let mut rest = self.0;
        for (m, name) in names {
            if self.contains(m) {
                write!(f, "{}{name}", if first { "" } else { "," })?;
                first = false;
                rest &= !m.0;
            }
        }
        if rest != 0 || first {
            write!(f, "{}0x{rest:x}", if first { "" } else { "," })?;
        }
        Ok(())
    }
}

/// The Accept field (RFC 4656 §3.3, RFC 5357 §3.3). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Accept {
    Ok,
    Failure,
    InternalError,
    NotSupported,
    PermanentResourceLimitation,
    TemporaryResourceLimitation,
    Unknown(u8),
}

impl From<u8> for Accept {
    fn from(v: u8) -> Self {
        match v {
            0 => Accept::Ok,
            1 => Accept::Failure,
            2 => Accept::InternalError,
            3 => Accept::NotSupported,
            4 => Accept::PermanentResourceLimitation,
            5 => Accept::TemporaryResourceLimitation,
            other => Accept::Unknown(other),
        }
    }
}

impl From<Accept> for u8 {
    fn from(a: Accept) -> u8 {
        match a {
            Accept::Ok => 0,
            Accept::Failure => 1,
            Accept::InternalError => 2,
            Accept::NotSupported => 3,
            Accept::PermanentResourceLimitation => 4,
            Accept::TemporaryResourceLimitation => 5,
            Accept::Unknown(v) => v,
        }
    }
}

impl fmt::Display for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Accept::Ok => "OK",
            Accept::Failure => "failure, reason unspecified",
            Accept::InternalError => "internal error",
            Accept::NotSupported => "some aspect of the request is not supported",
            Accept::PermanentResourceLimitation => {
                "cannot perform the request due to permanent resource limitations"
            }
            Accept::TemporaryResourceLimitation => {
                "cannot perform the request due to temporary resource limitations"
            }
            Accept::Unknown(_) => "unknown Accept code",
        };
        write!(f, "{text} (Accept={})", u8::from(*self))
    }
}

/// TWAMP-Control command numbers (IANA TWAMP-Control Command Numbers; RFC 5357 §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// 1: OWAMP's Request-Session; forbidden in TWAMP.
    Forbidden,
    StartSessions,
    StopSessions,
    RequestTwSession,
    /// 6: experimentation.
    Experimentation,
    /// 7: Start-N-Sessions (RFC 5938 §3.2).
    StartNSessions,
    /// 8: Start-N-Ack (RFC 5938 §3.3); sent by the Server, unlike Start-Ack it has a number.
    StartNAck,
    /// 9: Stop-N-Sessions (RFC 5938 §3.4).
    StopNSessions,
    /// 10: Stop-N-Ack (RFC 5938 §3.5).
    StopNAck,
    /// Anything unassigned here (e.g. 11, Request-TW-Micro-Sessions, RFC 9533).
    Unknown(u8),
}

impl From<u8> for Command {
    fn from(v: u8) -> Self {
        match v {
            1 => Command::Forbidden,
            2 => Command::StartSessions,
            3 => Command::StopSessions,
            5 => Command::RequestTwSession,
            6 => Command::Experimentation,
            7 => Command::StartNSessions,
            8 => Command::StartNAck,
            9 => Command::StopNSessions,
            10 => Command::StopNAck,
            other => Command::Unknown(other),
        }
    }
}

impl From<Command> for u8 {
    fn from(c: Command) -> u8 {
        match c {
            Command::Forbidden => 1,
            Command::StartSessions => 2,
            Command::StopSessions => 3,
            Command::RequestTwSession => 5,
            Command::Experimentation => 6,
            Command::StartNSessions => 7,
            Command::StartNAck => 8,
            Command::StopNSessions => 9,
            Command::StopNAck => 10,
            Command::Unknown(v) => v,
        }
    }
}

/// Session identifier (RFC 4656 §3.5): the receiver's IPv4 address (or a hash of the IPv6
/// address), a timestamp, and four random octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Sid(pub [u8; 16]);

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Parses a hexdump body (`0000  00 11 ...  ascii`) or plain hex into bytes.
    pub fn hex(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for line in s.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace().peekable();
            // Skip a 4-digit offset column.
            if let Some(w) = words.peek() {
                if w.len() == 4
                    && line.len() > 6
                    && line.as_bytes()[4] == b' '
                    && line.as_bytes()[5] == b' '
                {
                    words.next();
                }
            }
            for w in words {
                if w.len() != 2 || !w.chars().all(|c| c.is_ascii_hexdigit()) {
                    break;
                }
                out.push(u8::from_str_radix(w, 16).expect("hex digits checked"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_round_trips_every_value() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(Accept::from(v)), v);
            assert_eq!(u8::from(Command::from(v)), v);
        }
        assert_eq!(Accept::from(3), Accept::NotSupported);
        assert_eq!(Command::from(5), Command::RequestTwSession);
        // RFC 5938 §6.4.
        assert_eq!(Command::from(7), Command::StartNSessions);
        assert_eq!(Command::from(8), Command::StartNAck);
        assert_eq!(Command::from(9), Command::StopNSessions);
        assert_eq!(Command::from(10), Command::StopNAck);
        assert_eq!(Command::from(11), Command::Unknown(11));
    }

    #[test]
    fn modes_bits_and_names() {
        let m = Modes(7);
        assert!(m.contains(Modes::UNAUTHENTICATED));
        assert!(m.contains(Modes::ENCRYPTED));
        assert!(!m.contains(Modes::MIXED));
        assert_eq!(m.to_string(), "open,authenticated,encrypted");
        assert_eq!(Modes(0).to_string(), "0x0");
        assert_eq!(Modes(0x1001).to_string(), "open,0x1000");
        // IANA TWAMP-Modes values of RFC 5938, 6038 and 7750.
        assert_eq!(Modes::INDIVIDUAL_SESSION_CONTROL, Modes(16));
        assert_eq!(Modes::REFLECT_OCTETS, Modes(32));
        assert_eq!(Modes::SYMMETRICAL_SIZE, Modes(64));
        assert_eq!(Modes::DSCP_ECN_MONITORING, Modes(256));
        assert_eq!(
            Modes(1 | 16 | 32 | 64 | 256).to_string(),
            "open,individual-session-control,reflect-octets,symmetrical-size,dscp-ecn-monitoring"
        );
    }
}
