//! The crate's error type, and the one place errors become exit codes.

use std::{fmt, io, net::SocketAddr};

use crate::wire::{self, Accept, Modes};

/// Documented exit codes (README.md, man/twamp.1 EXIT STATUS).
pub mod exit {
    /// The measurement ran and at least one reply came back; or the server shut down cleanly.
    pub const OK: u8 = 0;
    /// The measurement ran but every test packet was lost.
    pub const ALL_LOST: u8 = 1;
    /// Bad command line or configuration (clap uses 2 too).
    pub const USAGE: u8 = 2;
    /// The server could not be resolved or reached, or the connection broke.
    pub const NETWORK: u8 = 3;
    /// The server refused: no common mode, or an Accept code other than 0.
    pub const REFUSED: u8 = 4;
    /// The server stopped answering on the control connection.
    pub const TIMEOUT: u8 = 5;
    /// Authentication failed (wrong key or identity, bad HMAC).
    pub const AUTH: u8 = 6;
    /// The peer sent a malformed or out-of-order message.
    pub const PROTOCOL: u8 = 7;
    /// A local failure: binding a socket, writing the output file, daemonizing.
    pub const LOCAL: u8 = 8;
}

/// The operation behind an [`Error::Io`]. Whether it is ours (exit 8) or the network's (exit 3)
/// is decided here, once, instead of by matching strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Binding a socket (control listener or test port).
    Bind,
    /// Setting a socket option (timeouts, DSCP).
    SetSockopt,
    /// Reading a socket's own address.
    Getsockname,
    /// Reading from a socket.
    Recv,
    /// Writing to a socket.
    Send,
    /// Waiting for a socket to become readable.
    Poll,
    /// The system's random number generator (challenges, IVs, keys, SIDs).
    Random,
    /// Starting a thread.
    Spawn,
    /// Forking into the background.
    Daemonize,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Bind => "bind",
            Op::SetSockopt => "setsockopt",
            Op::Getsockname => "getsockname",
            Op::Recv => "recv",
            Op::Send => "send",
            Op::Poll => "poll",
            Op::Random => "getrandom",
            Op::Spawn => "spawn thread",
            Op::Daemonize => "daemon",
        }
    }

    /// A failure of this machine rather than of the path to the peer.
    pub fn is_local(self) -> bool {
        match self {
            Op::Bind | Op::SetSockopt | Op::Random | Op::Spawn | Op::Daemonize => true,
            Op::Getsockname | Op::Recv | Op::Send | Op::Poll => false,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug)]
pub enum Error {
    /// Bad configuration, caught before any I/O.
    Config(String),
    /// A host name did not resolve.
    Resolve { host: String, source: io::Error },
    /// The TCP connection to the Server failed.
    Connect { addr: SocketAddr, source: io::Error },
    /// A system call failed; `op` says which, and decides the exit code.
    Io {
        op: Op,
        addr: Option<SocketAddr>,
        source: io::Error,
    },
    /// Nothing arrived in time while waiting for `waiting_for`.
    Timeout {
        waiting_for: &'static str,
        addr: Option<SocketAddr>,
    },
    /// The peer closed the connection while we waited for `waiting_for`.
    Closed {
        waiting_for: &'static str,
        addr: Option<SocketAddr>,
    },
    /// The peer sent something we could not parse.
    Wire {
        message: &'static str,
        source: wire::Error,
    },
    /// The peer answered but refused (Accept ≠ 0).
    Refused {
        message: &'static str,
        accept: Accept,
    },
    /// The Server offers no mode we are willing and able to use.
    NoCommonMode { offered: Modes, wanted: Modes },
    /// The Server-Greeting's Count is not acceptable (RFC 4656 §3.1, RFC 5357 §3.1).
    BadCount { count: u32, max: u32 },
    /// An HMAC or Token check failed, or the identity is unknown.
    Auth(String),
    /// The peer broke the protocol (message order, counts).
    Protocol(String),
    /// Writing results failed.
    Output { path: String, source: io::Error },
    /// The Server's control layer ended a connection (typed: see [`crate::control::Error`]).
    Control(crate::control::Error),
}

impl From<crate::control::Error> for Error {
    fn from(e: crate::control::Error) -> Self {
        Error::Control(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(op: Op, addr: Option<SocketAddr>, source: io::Error) -> Self {
        Error::Io { op, addr, source }
    }

    /// The exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit::USAGE,
            Error::Resolve { .. } | Error::Connect { .. } | Error::Closed { .. } => exit::NETWORK,
            Error::Io { op, .. } if op.is_local() => exit::LOCAL,
            Error::Io { .. } => exit::NETWORK,
            Error::Timeout { .. } => exit::TIMEOUT,
            Error::Refused { .. } | Error::NoCommonMode { .. } | Error::BadCount { .. } => {
                exit::REFUSED
            }
            Error::Auth(_) => exit::AUTH,
            Error::Wire { .. } | Error::Protocol(_) => exit::PROTOCOL,
            Error::Output { .. } => exit::LOCAL,
            Error::Control(e) if e.is_auth() => exit::AUTH,
            Error::Control(e) if e.is_timeout() => exit::TIMEOUT,
            Error::Control(_) => exit::PROTOCOL,
        }
    }

    /// A short machine-readable name for result records (`error` key in JSON/CSV).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Resolve { .. } => "resolve",
            Error::Connect { .. } => "connect",
            Error::Io { .. } => "io",
            Error::Timeout { .. } => "timeout",
            Error::Closed { .. } => "closed",
            Error::Wire { .. } => "malformed",
            Error::Refused { .. } => "refused",
            Error::NoCommonMode { .. } => "no-common-mode",
            Error::BadCount { .. } => "bad-count",
            Error::Auth(_) => "auth",
            Error::Protocol(_) => "protocol",
            Error::Output { .. } => "output",
            Error::Control(e) => e.kind(),
        }
    }
}

fn at(addr: &Option<SocketAddr>) -> String {
    addr.map(|a| format!(" {a}")).unwrap_or_default()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "{msg}"),
            Error::Resolve { host, source } => write!(f, "cannot resolve {host}: {source}"),
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Io { op, addr, source } => write!(f, "{op}{}: {source}", at(addr)),
            Error::Timeout { waiting_for, addr } => write!(f, "timed out waiting for {waiting_for} from{}", at(addr)),
            Error::Closed { waiting_for, addr } => {
                write!(f, "connection closed by{} while waiting for {waiting_for}", at(addr))
            }
            Error::Wire { message, source } => write!(f, "malformed {message}: {source}"),
            Error::Refused { message, accept } => write!(f, "server refused ({message}): {accept}"),
            Error::NoCommonMode { offered, wanted } => {
                write!(f, "no common mode: server offers {offered}, we accept {wanted}")
            }
            Error::BadCount { count, max } => write!(
                f,
                "server greeting Count {count} refused: must be a power of two from 1024 to {max} (RFC 4656 §3.1)"
            ),
            Error::Auth(msg) => write!(f, "authentication failed: {msg}"),
            Error::Protocol(msg) => write!(f, "protocol error: {msg}"),
            Error::Output { path, source } => write!(f, "cannot write {path}: {source}"),
            Error::Control(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Resolve { source, .. }
            | Error::Connect { source, .. }
            | Error::Io { source, .. }
            | Error::Output { source, .. } => Some(source),
            Error::Wire { source, .. } => Some(source),
            Error::Control(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_exit_codes_follow_the_operation() {
        let e = |op| Error::io(op, None, io::Error::other("x")).exit_code();
        for op in [
            Op::Bind,
            Op::SetSockopt,
            Op::Random,
            Op::Spawn,
            Op::Daemonize,
        ] {
            assert_eq!(e(op), exit::LOCAL, "{op}");
        }
        for op in [Op::Getsockname, Op::Recv, Op::Send, Op::Poll] {
            assert_eq!(e(op), exit::NETWORK, "{op}");
        }
    }
}
