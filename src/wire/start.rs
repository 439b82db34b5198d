//! Server-Start (RFC 4656 §3.1, as used by RFC 5357 §3.1): 48 octets.
//!
//! In the authenticated and encrypted modes only the last 16 octets (Start-Time and MBZ) are
//! encrypted: the Server-IV has to travel in clear (RFC 4656 §3.1).

use super::{array, Accept, Field};
use crate::time::Timestamp;

mod field {
    use super::Field;
    pub const MBZ1: Field = 0..15;
    pub const ACCEPT: usize = 15;
    pub const SERVER_IV: Field = 16..32;
    pub const START_TIME: Field = 32..40;
    pub const MBZ2: Field = 40..48;
}

/// Server-Start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStart {
    pub accept: Accept,
    pub server_iv: [u8; 16],
    /// The time the Server started (RFC 4656 §3.1), NTP format.
    pub start_time: Timestamp,
}

impl ServerStart {
    pub const LEN: usize = field::MBZ2.end;
    /// Octets sent in clear before the encrypted block.
    pub const CLEAR_LEN: usize = field::SERVER_IV.end;

    pub fn parse(buf: &[u8; Self::LEN]) -> Self {
        let _ = field::MBZ1;
        ServerStart {
            accept: Accept::from(buf[field::ACCEPT]),
            server_iv: array(buf, field::SERVER_IV),
            start_time: Timestamp::from_bytes(array(buf, field::START_TIME)),
        }
    }

    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[field::ACCEPT] = u8::from(self.accept);
        buf[field::SERVER_IV].copy_from_slice(&self.server_iv);
        buf[field::START_TIME].copy_from_slice(&self.start_time.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static START: [u8; ServerStart::LEN] = [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,      // MBZ
        0x00,                                             // Accept = OK
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // Server-IV (zero in open mode)
        0xee, 0xad, 0x29, 0xf2, 0xee, 0xf2, 0xc7, 0x32,   // Start-Time
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ
    ];

    #[test]
    fn captured_server_start_round_trips() {
        let s = ServerStart::parse(&START);
        assert_eq!(s.accept, Accept::Ok);
        assert_eq!(s.start_time, Timestamp(0xeead_29f2_eef2_c732));
        let mut buf = [0xa5; ServerStart::LEN];
        s.emit(&mut buf);
        assert_eq!(buf, START);
    }

    #[test]
    fn accept_is_octet_15() {
        let mut b = START;
        b[15] = 4;
        assert_eq!(
            ServerStart::parse(&b).accept,
            Accept::PermanentResourceLimitation
        );
    }
}
