//! Start-Sessions, Start-Ack and Stop-Sessions (RFC 5357 §3.7, §3.8): 32 octets each, the last
//! 16 an HMAC. TWAMP has no Stop-Ack (that is RFC 5938's Stop-N-Ack).

use super::{array, Accept, Command, Field};

mod field {
    use super::Field;
    pub const COMMAND: usize = 0;
    pub const ACCEPT: usize = 1;
    pub const NUMBER_OF_SESSIONS: Field = 4..8;
    pub const HMAC: Field = 16..32;
}

/// Start-Sessions (RFC 5357 §3.7): Command 2, 15 MBZ, HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StartSessions;

impl StartSessions {
    pub const LEN: usize = field::HMAC.end;

    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[field::COMMAND] = u8::from(Command::StartSessions);
    }
}

/// Start-Ack (RFC 5357 §3.7): Accept, 15 MBZ, HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartAck {
    pub accept: Accept,
}

impl StartAck {
    pub const LEN: usize = field::HMAC.end;

    pub fn parse(buf: &[u8; Self::LEN]) -> Self {
        StartAck {
            accept: Accept::from(buf[0]),
        }
    }

    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[0] = u8::from(self.accept);
    }
}

/// Stop-Sessions (RFC 5357 §3.8): Command 3, Accept, MBZ(2), Number of Sessions, MBZ(8), HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopSessions {
    pub accept: Accept,
    /// MUST equal the number of sessions started and not yet stopped; otherwise the Server
    /// closes the connection (RFC 5357 §3.8).
    pub number_of_sessions: u32,
}

impl StopSessions {
    pub const LEN: usize = field::HMAC.end;

    pub fn parse(buf: &[u8; Self::LEN]) -> Self {
        StopSessions {
            accept: Accept::from(buf[field::ACCEPT]),
            number_of_sessions: u32::from_be_bytes(array(buf, field::NUMBER_OF_SESSIONS)),
        }
    }

    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[field::COMMAND] = u8::from(Command::StopSessions);
        buf[field::ACCEPT] = u8::from(self.accept);
        buf[field::NUMBER_OF_SESSIONS].copy_from_slice(&self.number_of_sessions.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_sessions_is_command_2_then_zeros() {
        let mut buf = [0xa5; StartSessions::LEN];
        StartSessions.emit(&mut buf);
        let mut want = [0u8; 32];
        want[0] = 2;
        assert_eq!(buf, want);
    }

    #[test]
    fn start_ack_round_trip() {
        let captured = [0u8; 32]; // owamp_open: Accept = 0, all zero
        assert_eq!(StartAck::parse(&captured).accept, Accept::Ok);
        let mut buf = [0xa5; 32];
        StartAck { accept: Accept::Ok }.emit(&mut buf);
        assert_eq!(buf, captured);
    }

    #[rustfmt::skip]
    static STOP: [u8; StopSessions::LEN] = [
        0x03,                                             // Command = Stop-Sessions
        0x00,                                             // Accept = OK
        0x00, 0x00,                                       // MBZ
        0x00, 0x00, 0x00, 0x01,                           // Number of Sessions = 1
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    #[test]
    fn stop_sessions_is_32_octets_and_round_trips() {
        let s = StopSessions::parse(&STOP);
        assert_eq!(
            s,
            StopSessions {
                accept: Accept::Ok,
                number_of_sessions: 1
            }
        );
        let mut buf = [0xa5; StopSessions::LEN];
        s.emit(&mut buf);
        assert_eq!(buf, STOP);
    }
}
