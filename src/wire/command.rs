//! Start-Sessions, Start-Ack and Stop-Sessions (RFC 5357 §3.7, §3.8): 32 octets each, the last
//! 16 an HMAC. TWAMP has no Stop-Ack (that is RFC 5938's Stop-N-Ack).
//!
//! With Individual Session Control (RFC 5938, Modes 16) those three MUST NOT be used; instead
//! Start-N-Sessions (7), Start-N-Ack (8), Stop-N-Sessions (9) and Stop-N-Ack (10), which name
//! sessions by SID. They are variable-length: a 16-octet first block ending in Number of
//! Sessions, then that many 16-octet SIDs, then the HMAC block. The I/O layer reads (and in the
//! secure modes decrypts) the first block, asks `message_len` how long the message is, reads
//! the rest, and then calls `parse` on the whole message.

use super::{array, Accept, Command, Error, Field, Result, Sid, HMAC_LEN};

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

/// The most SIDs one RFC 5938 message may carry here. RFC 5938 sets no limit (Number of
/// Sessions is 32 bits); this bounds what a peer can make us read and allocate (16 KiB) and is
/// far above what servers allow per connection (tens of sessions).
pub const MAX_SIDS: usize = 1024;

/// The layout shared by the four RFC 5938 messages (§3.2–3.5).
mod n_field {
    use super::Field;
    pub const COMMAND: usize = 0;
    /// Start-N-Ack and Stop-N-Ack only; MBZ in Start-N-Sessions and Stop-N-Sessions.
    pub const ACCEPT: usize = 1;
    // 1..12 MBZ (2..12 in the acks)
    pub const NUMBER_OF_SESSIONS: Field = 12..16;
    pub const FIRST_SID: usize = 16;
    pub const SID_LEN: usize = 16;
}

/// Octets of an RFC 5938 message carrying `n` SIDs: first block, SIDs, HMAC.
fn n_len(n: usize) -> usize {
    n_field::FIRST_SID + n * n_field::SID_LEN + HMAC_LEN
}

fn check(buf: &[u8], need: usize) -> Result<()> {
    if buf.len() < need {
        return Err(Error::Truncated {
            need,
            got: buf.len(),
        });
    }
    Ok(())
}

/// Number of Sessions from a first block, refused above [`MAX_SIDS`].
fn n_count(first_block: &[u8]) -> Result<usize> {
    let n = u32::from_be_bytes(array(first_block, n_field::NUMBER_OF_SESSIONS));
    match usize::try_from(n) {
        Ok(n) if n <= MAX_SIDS => Ok(n),
        _ => Err(Error::BadField {
            field: "Number of Sessions",
            value: n,
        }),
    }
}

/// Reads the SID list of an RFC 5938 message. Never panics.
fn n_parse(buf: &[u8]) -> Result<Vec<Sid>> {
    check(buf, n_field::FIRST_SID)?;
    let n = n_count(&buf[..n_field::FIRST_SID])?;
    check(buf, n_len(n))?;
    Ok(
        buf[n_field::FIRST_SID..n_field::FIRST_SID + n * n_field::SID_LEN]
            .chunks_exact(n_field::SID_LEN)
            .map(|c| Sid(c.try_into().expect("chunks_exact gives SID_LEN octets")))
            .collect(),
    )
}

/// Writes a whole RFC 5938 message (MBZ and HMAC as zero) and returns its length.
fn n_emit(buf: &mut [u8], command: Command, accept: Option<Accept>, sids: &[Sid]) -> Result<usize> {
    if sids.len() > MAX_SIDS {
        return Err(Error::BadField {
            field: "Number of Sessions",
            value: u32::try_from(sids.len()).unwrap_or(u32::MAX),
        });
    }
    let len = n_len(sids.len());
    check(buf, len)?;
    let out = &mut buf[..len];
    out.fill(0);
    out[n_field::COMMAND] = u8::from(command);
    if let Some(a) = accept {
        out[n_field::ACCEPT] = u8::from(a);
    }
    let n = u32::try_from(sids.len()).expect("bounded by MAX_SIDS");
    out[n_field::NUMBER_OF_SESSIONS].copy_from_slice(&n.to_be_bytes());
    for (i, sid) in sids.iter().enumerate() {
        let at = n_field::FIRST_SID + i * n_field::SID_LEN;
        out[at..at + n_field::SID_LEN].copy_from_slice(&sid.0);
    }
    Ok(len)
}

/// What the four RFC 5938 messages share: the sizes, and the length from the first block.
macro_rules! n_message_common {
    ($ty:ident) => {
        impl $ty {
            /// The first block, which ends with Number of Sessions.
            pub const FIRST_BLOCK_LEN: usize = n_field::FIRST_SID;
            /// A message without SIDs: first block and HMAC (RFC 5938 requires at least one
            /// SID; that rule is the control layer's, so such a message still parses).
            pub const MIN_LEN: usize = n_field::FIRST_SID + HMAC_LEN;
            /// The longest message accepted here, with [`MAX_SIDS`] SIDs.
            pub const MAX_LEN: usize = n_field::FIRST_SID + MAX_SIDS * n_field::SID_LEN + HMAC_LEN;

            /// The whole message's length, from its first block (16 + 16 × Number of
            /// Sessions + 16). Fails when Number of Sessions exceeds [`MAX_SIDS`]. Never panics.
            pub fn message_len(first_block: &[u8; n_field::FIRST_SID]) -> Result<usize> {
                n_count(first_block).map(n_len)
            }

            /// Octets [`Self::emit`] writes: 16 + 16 × SIDs + 16.
            pub fn wire_len(&self) -> usize {
                n_len(self.sids.len())
            }
        }
    };
}

/// Start-N-Sessions (RFC 5938 §3.2): Command 7, MBZ (11), Number of Sessions, the SIDs, HMAC.
/// The Control-Client starts the named sessions; the Server answers with one or more
/// [`StartNAck`]s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartNSessions {
    /// The sessions to start, as the Server named them in Accept-Session. RFC 5938 §3.2: at
    /// least one.
    pub sids: Vec<Sid>,
}

n_message_common!(StartNSessions);

impl StartNSessions {
    /// Reads a whole message (`message_len` octets; more are ignored). Fails on a shorter
    /// buffer or a Number of Sessions above [`MAX_SIDS`]; never panics. The Command octet is not
    /// checked (the dispatcher read it), nor MBZ.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        Ok(StartNSessions {
            sids: n_parse(buf)?,
        })
    }

    /// Writes all [`Self::wire_len`] octets (MBZ and HMAC zero) and returns that length; octets of
    /// `buf` after them are left alone. Fails if `buf` is shorter or there are more than
    /// [`MAX_SIDS`] SIDs.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        n_emit(buf, Command::StartNSessions, None, &self.sids)
    }
}

/// Start-N-Ack (RFC 5938 §3.3): Command 8, Accept, MBZ (10), Number of Sessions, the SIDs,
/// HMAC. The Server acknowledges some or all SIDs of a Start-N-Sessions with one Accept value;
/// SIDs with another outcome come in another Start-N-Ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartNAck {
    pub accept: Accept,
    /// The sessions this Accept applies to. RFC 5938 §3.3: at least one.
    pub sids: Vec<Sid>,
}

n_message_common!(StartNAck);

impl StartNAck {
    /// As [`StartNSessions::parse`], and Accept.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let sids = n_parse(buf)?;
        Ok(StartNAck {
            accept: Accept::from(buf[n_field::ACCEPT]),
            sids,
        })
    }

    /// As [`StartNSessions::emit`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        n_emit(buf, Command::StartNAck, Some(self.accept), &self.sids)
    }
}

/// Stop-N-Sessions (RFC 5938 §3.4): Command 9, MBZ (11), Number of Sessions, the SIDs, HMAC.
/// Unlike Stop-Sessions it carries no Accept, and the control connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StopNSessions {
    /// The sessions to stop. RFC 5938 §3.4: at least one.
    pub sids: Vec<Sid>,
}

n_message_common!(StopNSessions);

impl StopNSessions {
    /// As [`StartNSessions::parse`].
    pub fn parse(buf: &[u8]) -> Result<Self> {
        Ok(StopNSessions {
            sids: n_parse(buf)?,
        })
    }

    /// As [`StartNSessions::emit`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        n_emit(buf, Command::StopNSessions, None, &self.sids)
    }
}

/// Stop-N-Ack (RFC 5938 §3.5): Command 10, Accept, MBZ (10), Number of Sessions, the SIDs,
/// HMAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopNAck {
    pub accept: Accept,
    /// The sessions this Accept applies to. RFC 5938 §3.5: at least one.
    pub sids: Vec<Sid>,
}

n_message_common!(StopNAck);

impl StopNAck {
    /// As [`StartNSessions::parse`], and Accept.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let sids = n_parse(buf)?;
        Ok(StopNAck {
            accept: Accept::from(buf[n_field::ACCEPT]),
            sids,
        })
    }

    /// As [`StartNSessions::emit`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        n_emit(buf, Command::StopNAck, Some(self.accept), &self.sids)
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

    const SID_A: Sid = Sid([
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfb, 0x28, 0x6b, 0x37, 0x86, 0x17, 0x0a, 0x25,
        0x0f,
    ]);
    const SID_B: Sid = Sid([
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfc, 0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3,
        0xd4,
    ]);

    /// Start-N-Sessions for two sessions (RFC 5938 §3.2).
    #[rustfmt::skip]
    static START_N: [u8; 64] = [
        0x07,                                             // Command = Start-N-Sessions
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                  // MBZ (11 octets)
        0x00, 0x00, 0x00, 0x02,                           // Number of Sessions = 2
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfb,
        0x28, 0x6b, 0x37, 0x86, 0x17, 0x0a, 0x25, 0x0f,   // First SID
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfc,
        0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3, 0xd4,   // second SID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC (zero in open mode)
    ];

    /// Start-N-Ack refusing one session for now (RFC 5938 §3.3's example, Accept 5).
    #[rustfmt::skip]
    static START_N_ACK: [u8; 48] = [
        0x08,                                             // Command = Start-N-Ack
        0x05,                                             // Accept = temporary resource limitation
        0x00, 0x00,                                       // MBZ
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ (8 octets)
        0x00, 0x00, 0x00, 0x01,                           // Number of Sessions = 1
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfc,
        0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3, 0xd4,   // First SID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    /// Stop-N-Sessions for one session (RFC 5938 §3.4).
    #[rustfmt::skip]
    static STOP_N: [u8; 48] = [
        0x09,                                             // Command = Stop-N-Sessions
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                  // MBZ (11 octets)
        0x00, 0x00, 0x00, 0x01,                           // Number of Sessions = 1
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfb,
        0x28, 0x6b, 0x37, 0x86, 0x17, 0x0a, 0x25, 0x0f,   // First SID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    /// Stop-N-Ack for two sessions (RFC 5938 §3.5).
    #[rustfmt::skip]
    static STOP_N_ACK: [u8; 64] = [
        0x0a,                                             // Command = Stop-N-Ack
        0x00,                                             // Accept = OK
        0x00, 0x00,                                       // MBZ
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ (8 octets)
        0x00, 0x00, 0x00, 0x02,                           // Number of Sessions = 2
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfb,
        0x28, 0x6b, 0x37, 0x86, 0x17, 0x0a, 0x25, 0x0f,   // First SID
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfc,
        0x01, 0x02, 0x03, 0x04, 0xa1, 0xb2, 0xc3, 0xd4,   // second SID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    fn first_block(b: &[u8]) -> &[u8; 16] {
        b[..16].try_into().unwrap()
    }

    /// Parses `bytes`, checks the value, re-emits into a dirty buffer longer than the message,
    /// and checks every truncation. One function for the four types through closures.
    fn check_vector<T: PartialEq + std::fmt::Debug>(
        bytes: &[u8],
        want: &T,
        parse: impl Fn(&[u8]) -> Result<T>,
        emit: impl Fn(&T, &mut [u8]) -> Result<usize>,
        message_len: impl Fn(&[u8; 16]) -> Result<usize>,
    ) {
        assert_eq!(message_len(first_block(bytes)), Ok(bytes.len()));
        let got = parse(bytes).unwrap();
        assert_eq!(&got, want);
        let mut dirty = vec![0xa5; bytes.len() + 7];
        assert_eq!(emit(&got, &mut dirty), Ok(bytes.len()));
        assert_eq!(dirty[..bytes.len()], *bytes, "emit overwrites every octet");
        assert!(
            dirty[bytes.len()..].iter().all(|&b| b == 0xa5),
            "emit leaves what follows the message alone"
        );
        assert_eq!(
            parse(&dirty).as_ref(),
            Ok(want),
            "trailing octets are not read"
        );
        for n in 0..bytes.len() {
            let need = if n < 16 { 16 } else { bytes.len() };
            assert_eq!(
                parse(&bytes[..n]),
                Err(Error::Truncated { need, got: n }),
                "parse of {n} octets"
            );
            let mut short = vec![0xa5; n];
            assert_eq!(
                emit(&got, &mut short),
                Err(Error::Truncated {
                    need: bytes.len(),
                    got: n
                }),
                "emit into {n} octets"
            );
            assert!(
                short.iter().all(|&b| b == 0xa5),
                "a failed emit writes nothing"
            );
        }
    }

    #[test]
    fn start_n_sessions_vector() {
        let want = StartNSessions {
            sids: vec![SID_A, SID_B],
        };
        assert_eq!(want.wire_len(), 64);
        check_vector(
            &START_N,
            &want,
            StartNSessions::parse,
            StartNSessions::emit,
            StartNSessions::message_len,
        );
    }

    #[test]
    fn start_n_ack_vector() {
        let want = StartNAck {
            accept: Accept::TemporaryResourceLimitation,
            sids: vec![SID_B],
        };
        check_vector(
            &START_N_ACK,
            &want,
            StartNAck::parse,
            StartNAck::emit,
            StartNAck::message_len,
        );
    }

    #[test]
    fn stop_n_sessions_vector() {
        let want = StopNSessions { sids: vec![SID_A] };
        check_vector(
            &STOP_N,
            &want,
            StopNSessions::parse,
            StopNSessions::emit,
            StopNSessions::message_len,
        );
    }

    #[test]
    fn stop_n_ack_vector() {
        let want = StopNAck {
            accept: Accept::Ok,
            sids: vec![SID_A, SID_B],
        };
        check_vector(
            &STOP_N_ACK,
            &want,
            StopNAck::parse,
            StopNAck::emit,
            StopNAck::message_len,
        );
    }

    #[test]
    fn n_messages_without_sids_are_32_octets() {
        // RFC 5938 requires at least one SID; the wire layer still reads and writes the
        // message so the control layer can refuse it (a non-zero Accept) rather than choke.
        let mut buf = [0xa5u8; 32];
        assert_eq!(StopNSessions::default().emit(&mut buf), Ok(32));
        let mut want = [0u8; 32];
        want[0] = 9;
        assert_eq!(buf, want);
        assert_eq!(StopNSessions::message_len(first_block(&buf)), Ok(32));
        assert_eq!(StopNSessions::parse(&buf), Ok(StopNSessions::default()));
        assert_eq!(StartNSessions::MIN_LEN, 32);
        assert_eq!(StartNSessions::MAX_LEN, 32 + 16 * MAX_SIDS);
    }

    #[test]
    fn n_messages_bound_the_number_of_sessions() {
        for n in [MAX_SIDS as u32 + 1, 0x0001_0000, u32::MAX] {
            let mut b = [0u8; 32];
            b[0] = 7;
            b[12..16].copy_from_slice(&n.to_be_bytes());
            let err = Error::BadField {
                field: "Number of Sessions",
                value: n,
            };
            assert_eq!(StartNSessions::message_len(first_block(&b)), Err(err));
            assert_eq!(StartNSessions::parse(&b), Err(err));
            assert_eq!(StartNAck::parse(&b), Err(err));
            assert_eq!(StopNSessions::parse(&b), Err(err));
            assert_eq!(StopNAck::parse(&b), Err(err));
        }
        // The maximum itself is fine both ways.
        let max = StopNAck {
            accept: Accept::Ok,
            sids: vec![SID_A; MAX_SIDS],
        };
        let mut buf = vec![0u8; StopNAck::MAX_LEN];
        assert_eq!(max.emit(&mut buf), Ok(StopNAck::MAX_LEN));
        assert_eq!(StopNAck::parse(&buf), Ok(max));
        let over = StartNSessions {
            sids: vec![SID_A; MAX_SIDS + 1],
        };
        let mut big = vec![0u8; over.wire_len()];
        assert!(matches!(
            over.emit(&mut big),
            Err(Error::BadField {
                field: "Number of Sessions",
                ..
            })
        ));
    }

    #[test]
    fn n_acks_keep_unknown_accept_values() {
        let mut b = START_N_ACK;
        b[1] = 200;
        let a = StartNAck::parse(&b).unwrap();
        assert_eq!(a.accept, Accept::Unknown(200));
        let mut out = [0u8; 48];
        a.emit(&mut out).unwrap();
        assert_eq!(out, b);
    }
}
