//! Server-Greeting (RFC 4656 §3.1, as used by RFC 5357 §3.1): 64 octets, the first message on a
//! control connection.

use super::{array, Field, Modes};

mod field {
    use super::Field;
    pub const UNUSED: Field = 0..12;
    pub const MODES: Field = 12..16;
    pub const CHALLENGE: Field = 16..32;
    pub const SALT: Field = 32..48;
    pub const COUNT: Field = 48..52;
    pub const MBZ: Field = 52..64;
}

/// Server-Greeting. A Modes value of 0 means the Server will not serve this client
/// (RFC 4656 §3.1: "If Modes is zero, the Server does not wish to communicate").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGreeting {
    pub modes: Modes,
    pub challenge: [u8; 16],
    pub salt: [u8; 16],
    /// PBKDF2 iteration count; RFC 4656 §3.1: a power of 2, at least 1024.
    pub count: u32,
}

impl ServerGreeting {
    pub const LEN: usize = field::MBZ.end;

    /// Never panics. Unused and MBZ are not checked (see the validation policy in `wire`).
    /// Whether Count is acceptable is the Control-Client's decision, not the parser's.
    pub fn parse(buf: &[u8; Self::LEN]) -> Self {
        let _ = field::UNUSED;
        ServerGreeting {
            modes: Modes(u32::from_be_bytes(array(buf, field::MODES))),
            challenge: array(buf, field::CHALLENGE),
            salt: array(buf, field::SALT),
            count: u32::from_be_bytes(array(buf, field::COUNT)),
        }
    }

    /// Writes all 64 octets, zeroing Unused and MBZ.
    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[field::MODES].copy_from_slice(&self.modes.0.to_be_bytes());
        buf[field::CHALLENGE].copy_from_slice(&self.challenge);
        buf[field::SALT].copy_from_slice(&self.salt);
        buf[field::COUNT].copy_from_slice(&self.count.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// twampd's greeting from the open-mode capture (owamp_open, stream 0).
    #[rustfmt::skip]
    static GREETING: [u8; ServerGreeting::LEN] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,               // Unused
        0x00, 0x00, 0x00, 0x07,                           // Modes = open|authenticated|encrypted
        0x25, 0xa4, 0x2c, 0xf8, 0x45, 0x67, 0xc0, 0x5b,
        0x61, 0xe4, 0x78, 0xc8, 0xe6, 0x96, 0xf9, 0xa2,   // Challenge
        0xf4, 0x91, 0xd1, 0x48, 0x32, 0xaa, 0x40, 0x23,
        0xb7, 0x68, 0x0d, 0x1e, 0x2b, 0x58, 0xa7, 0x6b,   // Salt
        0x00, 0x00, 0x08, 0x00,                           // Count = 2048
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,               // MBZ
    ];

    #[test]
    fn parse_captured_greeting() {
        let g = ServerGreeting::parse(&GREETING);
        assert_eq!(g.modes, Modes(7));
        assert_eq!(g.count, 2048);
        assert_eq!(g.challenge[0], 0x25);
        assert_eq!(g.salt[15], 0x6b);
    }

    #[test]
    fn emit_overwrites_every_byte() {
        let mut buf = [0xa5; ServerGreeting::LEN];
        ServerGreeting::parse(&GREETING).emit(&mut buf);
        assert_eq!(buf, GREETING);
    }
}
