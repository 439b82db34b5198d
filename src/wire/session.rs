//! Request-TW-Session and Accept-Session (RFC 5357 §3.5), with the Reflect Octets fields of
//! RFC 6038 §4.2 (after the Type-P Descriptor in Request-TW-Session) and §4.3 (after the SID in
//! Accept-Session), and the Type-P Descriptor's two forms (RFC 4656 §3.5).
//!
//! [`RequestTwSession`] keeps its fields as they were before RFC 6038; the two RFC 6038 fields of
//! the request are read and written by [`ReflectOctetsRequest`] over the same 112 octets, after
//! `RequestTwSession::emit` (which writes them as zero, as a peer without the mode sends them).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{array, Accept, Command, Error, Field, Result, Sid};
use crate::time::Timestamp;

mod field {
    use super::Field;
    pub const COMMAND: usize = 0;
    pub const IPVN: usize = 1; // MBZ (4 bits) | IPVN (4 bits)
    pub const CONF_SENDER: usize = 2;
    pub const CONF_RECEIVER: usize = 3;
    pub const SCHEDULE_SLOTS: Field = 4..8;
    pub const PACKETS: Field = 8..12;
    pub const SENDER_PORT: Field = 12..14;
    pub const RECEIVER_PORT: Field = 14..16;
    pub const SENDER_ADDRESS: Field = 16..32;
    pub const RECEIVER_ADDRESS: Field = 32..48;
    pub const SID: Field = 48..64;
    pub const PADDING_LENGTH: Field = 64..68;
    pub const START_TIME: Field = 68..76;
    pub const TIMEOUT: Field = 76..84;
    pub const TYPE_P: Field = 84..88;
    /// Octets to be reflected (RFC 6038 §4.2); MBZ without Reflect Octets mode.
    pub const OCTETS_TO_BE_REFLECTED: Field = 88..90;
    /// Length of padding to reflect (RFC 6038 §4.2); MBZ without Reflect Octets mode.
    pub const LENGTH_OF_PADDING_TO_REFLECT: Field = 90..92;
    pub const MBZ: Field = 92..96;
    pub const HMAC: Field = 96..112;
}

/// Request-TW-Session (RFC 5357 §3.5): the Control-Client asks for one test session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestTwSession {
    /// Conf-Sender: MUST be 0 in TWAMP (RFC 5357 §3.5). Kept so the Server can refuse.
    pub conf_sender: u8,
    /// Conf-Receiver: MUST be 0 in TWAMP.
    pub conf_receiver: u8,
    /// Number of Schedule Slots: unused by TWAMP, SHOULD be 0.
    pub schedule_slots: u32,
    /// Number of Packets: unused by TWAMP, SHOULD be 0.
    pub packets: u32,
    pub sender_port: u16,
    pub receiver_port: u16,
    /// Sender Address; the unspecified address means "the control connection's peer"
    /// (RFC 5357 §3.5). Its family is the request's IPVN.
    pub sender_address: IpAddr,
    pub receiver_address: IpAddr,
    /// SID: MUST be zero in the request; the Server makes it (RFC 5357 §3.5).
    pub sid: Sid,
    /// Padding Length: octets of padding the Session-Sender appends to each test packet.
    pub padding_length: u32,
    /// Start Time (NTP format).
    pub start_time: Timestamp,
    /// Timeout: how long the Session-Reflector keeps reflecting after Stop-Sessions, as an NTP
    /// interval (RFC 5357 §3.5).
    pub timeout: Timestamp,
    /// Type-P Descriptor: DSCP in the low 6 bits of the first octet per RFC 4656 §3.5
    /// (owamp writes `dscp << 24`); see [`TypeP`].
    pub type_p: u32,
}

impl RequestTwSession {
    pub const LEN: usize = field::HMAC.end;

    /// Fails only on an IPVN other than 4 or 6 (RFC 5357 §3.5). Never panics. The RFC 6038
    /// fields are not read here: see [`ReflectOctetsRequest::parse`].
    pub fn parse(buf: &[u8; Self::LEN]) -> Result<Self> {
        let _ = (field::COMMAND, field::MBZ);
        let ipvn = buf[field::IPVN] & 0x0f;
        let addr = |f: Field| -> Result<IpAddr> {
            let raw: [u8; 16] = array(buf, f);
            match ipvn {
                4 => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
                6 => Ok(IpAddr::V6(Ipv6Addr::from(raw))),
                other => Err(Error::BadField {
                    field: "IPVN",
                    value: u32::from(other),
                }),
            }
        };
        Ok(RequestTwSession {
            conf_sender: buf[field::CONF_SENDER],
            conf_receiver: buf[field::CONF_RECEIVER],
            schedule_slots: u32::from_be_bytes(array(buf, field::SCHEDULE_SLOTS)),
            packets: u32::from_be_bytes(array(buf, field::PACKETS)),
            sender_port: u16::from_be_bytes(array(buf, field::SENDER_PORT)),
            receiver_port: u16::from_be_bytes(array(buf, field::RECEIVER_PORT)),
            sender_address: addr(field::SENDER_ADDRESS)?,
            receiver_address: addr(field::RECEIVER_ADDRESS)?,
            sid: Sid(array(buf, field::SID)),
            padding_length: u32::from_be_bytes(array(buf, field::PADDING_LENGTH)),
            start_time: Timestamp::from_bytes(array(buf, field::START_TIME)),
            timeout: Timestamp::from_bytes(array(buf, field::TIMEOUT)),
            type_p: u32::from_be_bytes(array(buf, field::TYPE_P)),
        })
    }

    /// IPVN written is the sender address's family; a receiver address of the other family is
    /// written as unspecified of the sender's (the request cannot carry mixed families). The
    /// RFC 6038 fields are written as zero; [`ReflectOctetsRequest::emit`] fills them in after.
    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[field::COMMAND] = u8::from(Command::RequestTwSession);
        buf[field::IPVN] = if self.ipvn() == 6 { 6 } else { 4 };
        buf[field::CONF_SENDER] = self.conf_sender;
        buf[field::CONF_RECEIVER] = self.conf_receiver;
        buf[field::SCHEDULE_SLOTS].copy_from_slice(&self.schedule_slots.to_be_bytes());
        buf[field::PACKETS].copy_from_slice(&self.packets.to_be_bytes());
        buf[field::SENDER_PORT].copy_from_slice(&self.sender_port.to_be_bytes());
        buf[field::RECEIVER_PORT].copy_from_slice(&self.receiver_port.to_be_bytes());
        let v6 = self.ipvn() == 6;
        for (f, a) in [
            (field::SENDER_ADDRESS, self.sender_address),
            (field::RECEIVER_ADDRESS, self.receiver_address),
        ] {
            match (a, v6) {
                (IpAddr::V4(a), false) => buf[f.start..f.start + 4].copy_from_slice(&a.octets()),
                (IpAddr::V6(a), true) => buf[f].copy_from_slice(&a.octets()),
                _ => {} // family mismatch: left unspecified
            }
        }
        buf[field::SID].copy_from_slice(&self.sid.0);
        buf[field::PADDING_LENGTH].copy_from_slice(&self.padding_length.to_be_bytes());
        buf[field::START_TIME].copy_from_slice(&self.start_time.to_bytes());
        buf[field::TIMEOUT].copy_from_slice(&self.timeout.to_bytes());
        buf[field::TYPE_P].copy_from_slice(&self.type_p.to_be_bytes());
    }

    /// The IP version of the request's addresses.
    pub fn ipvn(&self) -> u8 {
        if self.sender_address.is_ipv6() {
            6
        } else {
            4
        }
    }
}

/// The two Reflect Octets fields of Request-TW-Session (RFC 6038 §4.2), which follow the
/// Type-P Descriptor at octets 88..92. Both are zero (MBZ) when Reflect Octets mode was not
/// chosen in Set-Up-Response.
///
/// What the fields oblige (RFC 6038 §4.2, §4.3, §5.1.2; checked by the control layer, not here):
/// the Server copies Octets to be reflected into Accept-Session's Reflected Octets; the
/// Session-Sender puts Length of padding to reflect octets at the start of its padding and the
/// Session-Reflector returns them; Padding Length SHALL be greater than Length of padding to
/// reflect (plus 27 open / 56 authenticated when the reflector truncates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReflectOctetsRequest {
    /// Octets to be reflected: two octets the Server MUST return in Accept-Session's Reflected
    /// Octets. Read big-endian, like the Accept-Session field it is copied into.
    pub octets_to_be_reflected: u16,
    /// Length of padding to reflect, in octets: how much of the start of each Session-Sender
    /// packet's padding the Session-Reflector returns.
    pub length_of_padding_to_reflect: u16,
}

impl ReflectOctetsRequest {
    /// Reads octets 88..92 of a Request-TW-Session. Never panics; any value is accepted.
    pub fn parse(buf: &[u8; RequestTwSession::LEN]) -> Self {
        ReflectOctetsRequest {
            octets_to_be_reflected: u16::from_be_bytes(array(buf, field::OCTETS_TO_BE_REFLECTED)),
            length_of_padding_to_reflect: u16::from_be_bytes(array(
                buf,
                field::LENGTH_OF_PADDING_TO_REFLECT,
            )),
        }
    }

    /// Writes octets 88..92 only; call it after [`RequestTwSession::emit`], which zeroes them.
    pub fn emit(&self, buf: &mut [u8; RequestTwSession::LEN]) {
        buf[field::OCTETS_TO_BE_REFLECTED]
            .copy_from_slice(&self.octets_to_be_reflected.to_be_bytes());
        buf[field::LENGTH_OF_PADDING_TO_REFLECT]
            .copy_from_slice(&self.length_of_padding_to_reflect.to_be_bytes());
    }
}

/// The Type-P Descriptor of Request-TW-Session (RFC 4656 §3.5), by its two format bits (the
/// most significant bits of the first octet). RFC 5357 §3.5 lets TWAMP use only the DSCP form;
/// RFC 7750 adds no form: ECN is never requested here, it is only reported back in the
/// reflected packet's S-DSCP-ECN field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeP {
    /// Format `00`: the next six bits are the DSCP (RFC 2474); the other 24 bits are zero.
    /// All zeros is best effort (DSCP 0).
    Dscp(u8),
    /// Format `01`: the next 16 bits are a PHB ID (RFC 2836); the last 14 bits are zero.
    PhbId(u16),
    /// Format `10` or `11`, or a known format with other bits set: kept so it round-trips.
    Other(u32),
}

impl From<u32> for TypeP {
    fn from(v: u32) -> Self {
        match v >> 30 {
            0b00 if v & 0x00ff_ffff == 0 => TypeP::Dscp((v >> 24) as u8 & 0x3f),
            0b01 if v & 0x3fff == 0 => TypeP::PhbId((v >> 14) as u16),
            _ => TypeP::Other(v),
        }
    }
}

impl From<TypeP> for u32 {
    /// A `Dscp` above 63 keeps only its low six bits (it cannot come from `From<u32>`).
    fn from(t: TypeP) -> u32 {
        match t {
            TypeP::Dscp(d) => u32::from(d & 0x3f) << 24,
            TypeP::PhbId(p) => 0x4000_0000 | (u32::from(p) << 14),
            TypeP::Other(v) => v,
        }
    }
}

mod accept_field {
    use super::Field;
    pub const ACCEPT: usize = 0;
    pub const MBZ1: usize = 1;
    pub const PORT: Field = 2..4;
    pub const SID: Field = 4..20;
    pub const REFLECTED_OCTETS: Field = 20..22;
    pub const SERVER_OCTETS: Field = 22..24;
    pub const MBZ2: Field = 24..32;
    pub const HMAC: Field = 32..48;
}

/// Accept-Session (RFC 5357 §3.5, RFC 6038 §4.3): the Server's answer, with the UDP port the
/// Session-Reflector really listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptSession {
    pub accept: Accept,
    /// The reflector's port; the Control-Client MUST send test packets there even when it
    /// differs from the requested one.
    pub port: u16,
    pub sid: Sid,
    /// Reflected octets (RFC 6038 §4.3, octets 20..22): the request's Octets to be reflected,
    /// copied back; 0 (MBZ) without Reflect Octets mode.
    pub reflected_octets: u16,
    /// Server octets (RFC 6038 §4.3, octets 22..24): zero, or two octets the Session-Sender
    /// MUST put first in the padding to be reflected (§5.1.2); 0 (MBZ) without the mode.
    pub server_octets: u16,
}

impl AcceptSession {
    pub const LEN: usize = accept_field::HMAC.end;

    pub fn parse(buf: &[u8; Self::LEN]) -> Self {
        let _ = (accept_field::MBZ1, accept_field::MBZ2);
        AcceptSession {
            accept: Accept::from(buf[accept_field::ACCEPT]),
            port: u16::from_be_bytes(array(buf, accept_field::PORT)),
            sid: Sid(array(buf, accept_field::SID)),
            reflected_octets: u16::from_be_bytes(array(buf, accept_field::REFLECTED_OCTETS)),
            server_octets: u16::from_be_bytes(array(buf, accept_field::SERVER_OCTETS)),
        }
    }

    pub fn emit(&self, buf: &mut [u8; Self::LEN]) {
        buf.fill(0);
        buf[accept_field::ACCEPT] = u8::from(self.accept);
        buf[accept_field::PORT].copy_from_slice(&self.port.to_be_bytes());
        buf[accept_field::SID].copy_from_slice(&self.sid.0);
        buf[accept_field::REFLECTED_OCTETS].copy_from_slice(&self.reflected_octets.to_be_bytes());
        buf[accept_field::SERVER_OCTETS].copy_from_slice(&self.server_octets.to_be_bytes());
    }

    /// A refusal: everything but Accept zero.
    pub fn refuse(accept: Accept) -> Self {
        AcceptSession {
            accept,
            port: 0,
            sid: Sid::default(),
            reflected_octets: 0,
            server_octets: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// twping's request from owamp_open stream 0.
    #[rustfmt::skip]
    static REQUEST: [u8; RequestTwSession::LEN] = [
        0x05,                                             // Command = Request-TW-Session
        0x04,                                             // MBZ | IPVN = 4
        0x00, 0x00,                                       // Conf-Sender, Conf-Receiver
        0x00, 0x00, 0x00, 0x00,                           // Number of Schedule Slots
        0x00, 0x00, 0x00, 0x00,                           // Number of Packets
        0x4e, 0x81,                                       // Sender Port = 20097
        0x4e, 0x81,                                       // Receiver Port = 20097
        0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // Sender Address
        0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // Receiver Address
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // SID (zero in a request)
        0x00, 0x00, 0x00, 0x1b,                           // Padding Length = 27
        0xee, 0xad, 0x29, 0xfc, 0x28, 0x65, 0x40, 0xcd,   // Start Time
        0x00, 0x00, 0x00, 0x02, 0x00, 0x06, 0x6c, 0x2b,   // Timeout ≈ 2.0001 s
        0x00, 0x00, 0x00, 0x00,                           // Type-P Descriptor
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC (zero in open mode)
    ];

    /// twampd's answer (owamp_open stream 0): port 19203, SID 7f000001 eead29fb 286b3786 170a250f.
    #[rustfmt::skip]
    static ACCEPT: [u8; AcceptSession::LEN] = [
        0x00,                                             // Accept = OK
        0x00,                                             // MBZ
        0x4b, 0x03,                                       // Port = 19203
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfb,
        0x28, 0x6b, 0x37, 0x86, 0x17, 0x0a, 0x25, 0x0f,   // SID
        0x00, 0x00,                                       // Reflected Octets (RFC 6038)
        0x00, 0x00,                                       // Server Octets (RFC 6038)
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    #[test]
    fn parse_captured_request() {
        let r = RequestTwSession::parse(&REQUEST).unwrap();
        assert_eq!(r.sender_port, 20097);
        assert_eq!(r.receiver_port, 20097);
        assert_eq!(r.sender_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(r.padding_length, 27);
        assert_eq!(r.timeout.seconds(), 2);
        assert_eq!(r.sid, Sid::default());
        assert_eq!((r.conf_sender, r.conf_receiver, r.type_p), (0, 0, 0));
    }

    #[test]
    fn request_emit_overwrites_every_byte() {
        let mut buf = [0xa5; RequestTwSession::LEN];
        RequestTwSession::parse(&REQUEST).unwrap().emit(&mut buf);
        assert_eq!(buf, REQUEST);
    }

    #[test]
    fn request_ipv6_round_trip() {
        let mut r = RequestTwSession::parse(&REQUEST).unwrap();
        r.sender_address = "2001:db8::1".parse().unwrap();
        r.receiver_address = "2001:db8::2".parse().unwrap();
        let mut buf = [0; RequestTwSession::LEN];
        r.emit(&mut buf);
        assert_eq!(buf[1], 6);
        assert_eq!(RequestTwSession::parse(&buf).unwrap(), r);
    }

    #[test]
    fn request_bad_ipvn_is_an_error_not_a_panic() {
        for ipvn in [0u8, 5, 0x0f] {
            let mut b = REQUEST;
            b[1] = ipvn;
            assert_eq!(
                RequestTwSession::parse(&b),
                Err(Error::BadField {
                    field: "IPVN",
                    value: u32::from(ipvn)
                })
            );
        }
        // The high nibble is MBZ and ignored.
        let mut b = REQUEST;
        b[1] = 0xf4;
        assert!(RequestTwSession::parse(&b).is_ok());
    }

    #[test]
    fn accept_session_round_trips() {
        let a = AcceptSession::parse(&ACCEPT);
        assert_eq!(a.accept, Accept::Ok);
        assert_eq!(a.port, 19203);
        assert_eq!(a.sid.to_string(), "7f000001eead29fb286b3786170a250f");
        let mut buf = [0xa5; AcceptSession::LEN];
        a.emit(&mut buf);
        assert_eq!(buf, ACCEPT);
    }

    /// A Request-TW-Session in Reflect Octets mode (RFC 6038 §4.2): the captured request with
    /// Padding Length 64, Octets to be reflected 0xbeef and 32 octets of padding to reflect.
    #[rustfmt::skip]
    static REFLECT_REQUEST: [u8; RequestTwSession::LEN] = [
        0x05,                                             // Command = Request-TW-Session
        0x04,                                             // MBZ | IPVN = 4
        0x00, 0x00,                                       // Conf-Sender, Conf-Receiver
        0x00, 0x00, 0x00, 0x00,                           // Number of Schedule Slots
        0x00, 0x00, 0x00, 0x00,                           // Number of Packets
        0x4e, 0x81,                                       // Sender Port = 20097
        0x4e, 0x81,                                       // Receiver Port = 20097
        0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // Sender Address
        0x7f, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // Receiver Address
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // SID (zero in a request)
        0x00, 0x00, 0x00, 0x40,                           // Padding Length = 64
        0xee, 0xad, 0x29, 0xfc, 0x28, 0x65, 0x40, 0xcd,   // Start Time
        0x00, 0x00, 0x00, 0x02, 0x00, 0x06, 0x6c, 0x2b,   // Timeout
        0x2e, 0x00, 0x00, 0x00,                           // Type-P Descriptor: 00 | DSCP 46 (EF)
        0xbe, 0xef,                                       // Octets to be reflected
        0x00, 0x20,                                       // Length of padding to reflect = 32
        0, 0, 0, 0,                                       // MBZ
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    #[test]
    fn reflect_octets_request_offsets_and_round_trip() {
        let base = RequestTwSession::parse(&REFLECT_REQUEST).unwrap();
        assert_eq!(base.padding_length, 64);
        assert_eq!(TypeP::from(base.type_p), TypeP::Dscp(46));
        let ext = ReflectOctetsRequest::parse(&REFLECT_REQUEST);
        assert_eq!(
            ext,
            ReflectOctetsRequest {
                octets_to_be_reflected: 0xbeef,
                length_of_padding_to_reflect: 32,
            }
        );
        let mut buf = [0xa5; RequestTwSession::LEN];
        base.emit(&mut buf);
        assert_eq!(buf[88..96], [0; 8], "without the mode the fields are MBZ");
        assert_eq!(
            ReflectOctetsRequest::parse(&buf),
            ReflectOctetsRequest::default()
        );
        ext.emit(&mut buf);
        assert_eq!(buf, REFLECT_REQUEST);
    }

    #[test]
    fn captured_request_has_no_reflect_octets() {
        assert_eq!(
            ReflectOctetsRequest::parse(&REQUEST),
            ReflectOctetsRequest::default()
        );
    }

    /// Accept-Session in Reflect Octets mode (RFC 6038 §4.3).
    #[rustfmt::skip]
    static REFLECT_ACCEPT: [u8; AcceptSession::LEN] = [
        0x00,                                             // Accept = OK
        0x00,                                             // MBZ
        0x4b, 0x03,                                       // Port = 19203
        0x7f, 0x00, 0x00, 0x01, 0xee, 0xad, 0x29, 0xfb,
        0x28, 0x6b, 0x37, 0x86, 0x17, 0x0a, 0x25, 0x0f,   // SID
        0xbe, 0xef,                                       // Reflected octets
        0x12, 0x34,                                       // Server octets
        0, 0, 0, 0, 0, 0, 0, 0,                           // MBZ (8 octets)
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,   // HMAC
    ];

    #[test]
    fn accept_session_reflect_octets_offsets() {
        let a = AcceptSession::parse(&REFLECT_ACCEPT);
        assert_eq!((a.reflected_octets, a.server_octets), (0xbeef, 0x1234));
        assert_eq!((a.accept, a.port), (Accept::Ok, 19203));
        let mut buf = [0xa5; AcceptSession::LEN];
        a.emit(&mut buf);
        assert_eq!(buf, REFLECT_ACCEPT);
        let mut r = [0xa5; AcceptSession::LEN];
        AcceptSession::refuse(Accept::NotSupported).emit(&mut r);
        assert_eq!(r[0], 3);
        assert!(r[1..].iter().all(|&b| b == 0));
    }

    #[test]
    fn type_p_forms() {
        // (wire value, parsed), RFC 4656 §3.5.
        let table = [
            (0x0000_0000, TypeP::Dscp(0)),
            (0x2e00_0000, TypeP::Dscp(46)), // EF: owamp's `dscp << 24`
            (0x0a00_0000, TypeP::Dscp(10)), // AF11
            (0x3f00_0000, TypeP::Dscp(63)),
            (0x4000_0000, TypeP::PhbId(0)),
            (0x4000_4000, TypeP::PhbId(1)),
            (0x7fff_c000, TypeP::PhbId(0xffff)),
            (0x0000_002e, TypeP::Other(0x2e)), // DSCP in the wrong octet
            (0xb800_0000, TypeP::Other(0xb800_0000)), // a TOS octet: format 10
            (0x4000_0001, TypeP::Other(0x4000_0001)),
            (0x8000_0000, TypeP::Other(0x8000_0000)), // format 10
            (0xc000_0000, TypeP::Other(0xc000_0000)), // format 11
        ];
        for (wire, parsed) in table {
            assert_eq!(TypeP::from(wire), parsed, "{wire:#010x}");
            assert_eq!(u32::from(parsed), wire, "{parsed:?}");
        }
        assert_eq!(u32::from(TypeP::Dscp(0xff)), 0x3f00_0000);
        for v in [0u32, 1, 0x00ff_ffff, 0x3fff_ffff, 0x4000_3fff, u32::MAX] {
            assert_eq!(u32::from(TypeP::from(v)), v);
        }
    }
}
