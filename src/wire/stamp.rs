//! STAMP test packets (RFC 8762 §4.2, §4.3) with the Session-Sender Identifier of RFC 8972 §3.
//!
//! | packet | unauthenticated | authenticated |
//! |---|---|---|
//! | Session-Sender | 44 octets (RFC 8762 §4.2.1, RFC 8972 §3 Figure 1) | 112 (§4.2.2, Figure 2) |
//! | Session-Reflector | 44 octets (RFC 8762 §4.3.1, RFC 8972 §3 Figure 3) | 112 (§4.3.2, Figure 4) |
//!
//! The TLV area (RFC 8972 §4, [`super::tlv`]) starts right after the base. Both bases of a mode
//! have the same length, so a reflected packet is as long as the one received.
//!
//! `parse` reads the base of a buffer at least [`StampMode::base`] octets long and never
//! panics; `emit` writes every octet of the base: MBZ and, in authenticated mode, the HMAC
//! field as zero (the HMAC belongs to the security layer, `light::LightKey`, like in
//! [`super::test`]). Octets after the base are left alone. MBZ fields are not checked on input
//! (RFC 8762 §4.2.1: "MUST be ignored on receipt"); [`SessionSenderPacket::mbz_is_zero`] lets
//! the reflector tell a STAMP sender from a TWAMP-Light one.
//!
//! The interworking with TWAMP-Light (RFC 8762 §4.6): the first 41 octets of the unauthenticated
//! STAMP reflected layout are the TWAMP reflected layout (RFC 5357 §4.2.1), except that octets
//! 14..16 (TWAMP: MBZ) carry the SSID; the STAMP sender layout is the TWAMP one whose padding
//! starts with the SSID and 28 MBZ octets.

use super::{array, Result};
use crate::time::{ErrorEstimate, Timestamp};

/// Length of the HMAC field at the end of an authenticated base (RFC 8762 §4.4).
pub const HMAC_LEN: usize = 16;

/// The STAMP authentication mode (RFC 8762 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StampMode {
    Unauthenticated,
    Authenticated,
}

/// Offsets of the Session-Sender fields.
#[derive(Debug, Clone, Copy)]
struct SenderLayout {
    seq: usize,
    timestamp: usize,
    error_estimate: usize,
    ssid: usize,
    base: usize,
}

/// Offsets of the Session-Reflector fields.
#[derive(Debug, Clone, Copy)]
struct ReflectorLayout {
    seq: usize,
    timestamp: usize,
    error_estimate: usize,
    ssid: usize,
    receive_timestamp: usize,
    sender_seq: usize,
    sender_timestamp: usize,
    sender_error_estimate: usize,
    sender_ttl: usize,
    base: usize,
}

impl StampMode {
    /// Octets of the base packet, sender and reflector alike: 44 or 112.
    pub fn base(self) -> usize {
        match self {
            StampMode::Unauthenticated => 44,
            StampMode::Authenticated => 112,
        }
    }

    /// Where the HMAC field sits; it covers the octets before it ("the first six blocks (96
    /// octets)", RFC 8762 §4.4). `None` in unauthenticated mode.
    pub fn hmac_at(self) -> Option<usize> {
        match self {
            StampMode::Unauthenticated => None,
            StampMode::Authenticated => Some(96),
        }
    }

    fn sender(self) -> SenderLayout {
        match self {
            // 0 seq | 4 timestamp | 12 error | 14 SSID | 16..44 MBZ
            StampMode::Unauthenticated => SenderLayout {
                seq: 0,
                timestamp: 4,
                error_estimate: 12,
                ssid: 14,
                base: 44,
            },
            // 0 seq | 4..16 MBZ | 16 timestamp | 24 error | 26 SSID | 28..96 MBZ | 96..112 HMAC
            StampMode::Authenticated => SenderLayout {
                seq: 0,
                timestamp: 16,
                error_estimate: 24,
                ssid: 26,
                base: 112,
            },
        }
    }

    fn reflector(self) -> ReflectorLayout {
        match self {
            // 0 seq | 4 T3 | 12 error | 14 SSID | 16 T2 | 24 sender seq | 28 T1 |
            // 36 sender error | 38..40 MBZ | 40 TTL | 41..44 MBZ
            StampMode::Unauthenticated => ReflectorLayout {
                seq: 0,
                timestamp: 4,
                error_estimate: 12,
                ssid: 14,
                receive_timestamp: 16,
                sender_seq: 24,
                sender_timestamp: 28,
                sender_error_estimate: 36,
                sender_ttl: 40,
                base: 44,
            },
            // 0 seq | 4..16 MBZ | 16 T3 | 24 error | 26 SSID | 28..32 MBZ | 32 T2 |
            // 40..48 MBZ | 48 sender seq | 52..64 MBZ | 64 T1 | 72 sender error |
            // 74..80 MBZ | 80 TTL | 81..96 MBZ | 96..112 HMAC
            StampMode::Authenticated => ReflectorLayout {
                seq: 0,
                timestamp: 16,
                error_estimate: 24,
                ssid: 26,
                receive_timestamp: 32,
                sender_seq: 48,
                sender_timestamp: 64,
                sender_error_estimate: 72,
                sender_ttl: 80,
                base: 112,
            },
        }
    }
}

fn check(buf: &[u8], need: usize) -> Result<()> {
    if buf.len() < need {
        return Err(super::Error::Truncated {
            need,
            got: buf.len(),
        });
    }
    Ok(())
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(array(buf, at..at + 4))
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(array(buf, at..at + 2))
}

fn ts_at(buf: &[u8], at: usize) -> Timestamp {
    Timestamp::from_bytes(array(buf, at..at + 8))
}

fn ee_at(buf: &[u8], at: usize) -> ErrorEstimate {
    ErrorEstimate::from_bytes(array(buf, at..at + 2))
}

/// STAMP Session-Sender test packet (RFC 8762 §4.2, RFC 8972 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionSenderPacket {
    /// Sequence Number: from 0, one more per packet of the session (RFC 8762 §4.2.1).
    pub seq: u32,
    /// Timestamp (T1).
    pub timestamp: Timestamp,
    pub error_estimate: ErrorEstimate,
    /// STAMP Session Identifier (RFC 8972 §3): non-zero when used; 0 means "not used".
    pub ssid: u16,
}

impl SessionSenderPacket {
    /// Reads the base. Never panics; shorter than [`StampMode::base`] is `Truncated`.
    pub fn parse(buf: &[u8], mode: StampMode) -> Result<Self> {
        let l = mode.sender();
        check(buf, l.base)?;
        Ok(SessionSenderPacket {
            seq: u32_at(buf, l.seq),
            timestamp: ts_at(buf, l.timestamp),
            error_estimate: ee_at(buf, l.error_estimate),
            ssid: u16_at(buf, l.ssid),
        })
    }

    /// Writes the whole base: zeroes it (MBZ, and the HMAC field), then the fields.
    pub fn emit(&self, buf: &mut [u8], mode: StampMode) -> Result<()> {
        let l = mode.sender();
        check(buf, l.base)?;
        buf[..l.base].fill(0);
        put(buf, l.seq, &self.seq.to_be_bytes());
        put(buf, l.ssid, &self.ssid.to_be_bytes());
        self.emit_timestamp(buf, mode);
        Ok(())
    }

    /// Rewrites only the Timestamp and Error Estimate, so T1 can be taken last.
    ///
    /// # Panics
    /// If `buf` is shorter than the base; call after a successful [`Self::emit`].
    pub fn emit_timestamp(&self, buf: &mut [u8], mode: StampMode) {
        let l = mode.sender();
        put(buf, l.timestamp, &self.timestamp.to_bytes());
        put(buf, l.error_estimate, &self.error_estimate.to_bytes());
    }

    /// Whether every MBZ octet of an unauthenticated base is zero, as a STAMP Session-Sender
    /// "MUST" send them (RFC 8762 §4.2.1). False for a buffer shorter than the base.
    pub fn mbz_is_zero(buf: &[u8]) -> bool {
        buf.get(16..44).is_some_and(|m| m.iter().all(|&b| b == 0))
    }
}

/// STAMP Session-Reflector test packet (RFC 8762 §4.3, RFC 8972 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SessionReflectorPacket {
    /// Sequence Number: the reflector's own count (stateful) or the sender's (stateless),
    /// RFC 8762 §4.3.1.
    pub seq: u32,
    /// Timestamp: the reflector's transmit time (T3).
    pub timestamp: Timestamp,
    /// Error Estimate, for both T3 and T2 (RFC 8762 §4.3.1).
    pub error_estimate: ErrorEstimate,
    /// SSID, copied from the sender's packet (RFC 8972 §3).
    pub ssid: u16,
    /// Receive Timestamp (T2).
    pub receive_timestamp: Timestamp,
    /// Session-Sender Sequence Number.
    pub sender_seq: u32,
    /// Session-Sender Timestamp (T1).
    pub sender_timestamp: Timestamp,
    pub sender_error_estimate: ErrorEstimate,
    /// Session-Sender TTL: the received TTL or Hop Limit (255 when unknown, as in RFC 5357
    /// §4.2.1).
    pub sender_ttl: u8,
}

impl SessionReflectorPacket {
    /// Reads the base. Never panics; shorter than [`StampMode::base`] is `Truncated`.
    pub fn parse(buf: &[u8], mode: StampMode) -> Result<Self> {
        let l = mode.reflector();
        check(buf, l.base)?;
        Ok(SessionReflectorPacket {
            seq: u32_at(buf, l.seq),
            timestamp: ts_at(buf, l.timestamp),
            error_estimate: ee_at(buf, l.error_estimate),
            ssid: u16_at(buf, l.ssid),
            receive_timestamp: ts_at(buf, l.receive_timestamp),
            sender_seq: u32_at(buf, l.sender_seq),
            sender_timestamp: ts_at(buf, l.sender_timestamp),
            sender_error_estimate: ee_at(buf, l.sender_error_estimate),
            sender_ttl: buf[l.sender_ttl],
        })
    }

    /// Writes the whole base: zeroes it (MBZ, and the HMAC field), then the fields.
    pub fn emit(&self, buf: &mut [u8], mode: StampMode) -> Result<()> {
        let l = mode.reflector();
        check(buf, l.base)?;
        buf[..l.base].fill(0);
        put(buf, l.seq, &self.seq.to_be_bytes());
        put(buf, l.ssid, &self.ssid.to_be_bytes());
        put(buf, l.receive_timestamp, &self.receive_timestamp.to_bytes());
        put(buf, l.sender_seq, &self.sender_seq.to_be_bytes());
        put(buf, l.sender_timestamp, &self.sender_timestamp.to_bytes());
        put(
            buf,
            l.sender_error_estimate,
            &self.sender_error_estimate.to_bytes(),
        );
        buf[l.sender_ttl] = self.sender_ttl;
        self.emit_timestamp(buf, mode);
        Ok(())
    }

    /// Rewrites only the transmit Timestamp (T3) and Error Estimate, taken as late as possible.
    ///
    /// # Panics
    /// If `buf` is shorter than the base; call after a successful [`Self::emit`].
    pub fn emit_timestamp(&self, buf: &mut [u8], mode: StampMode) {
        let l = mode.reflector();
        put(buf, l.timestamp, &self.timestamp.to_bytes());
        put(buf, l.error_estimate, &self.error_estimate.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Error;
    use crate::wire::{ReflectorPacket, TestLayout};

    fn sender() -> SessionSenderPacket {
        SessionSenderPacket {
            seq: 0x0102_0304,
            timestamp: Timestamp(0x1111_1111_2222_2222),
            error_estimate: ErrorEstimate(0x8001),
            ssid: 0xbeef,
        }
    }

    fn reflector() -> SessionReflectorPacket {
        SessionReflectorPacket {
            seq: 0x0a0b_0c0d,
            timestamp: Timestamp(0x3333_3333_4444_4444),
            error_estimate: ErrorEstimate(0x0002),
            ssid: 0xbeef,
            receive_timestamp: Timestamp(0x5555_5555_6666_6666),
            sender_seq: 0x0102_0304,
            sender_timestamp: Timestamp(0x1111_1111_2222_2222),
            sender_error_estimate: ErrorEstimate(0x8001),
            sender_ttl: 0x3f,
        }
    }

    #[rustfmt::skip]
    static SENDER_OPEN: [u8; 44] = [
        0x01, 0x02, 0x03, 0x04,                         // Sequence Number
        0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Timestamp (T1)
        0x80, 0x01,                                     // Error Estimate: S, multiplier 1
        0xbe, 0xef,                                     // SSID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       // MBZ (28)
    ];

    #[rustfmt::skip]
    static REFLECTOR_OPEN: [u8; 44] = [
        0x0a, 0x0b, 0x0c, 0x0d,                         // Sequence Number
        0x33, 0x33, 0x33, 0x33, 0x44, 0x44, 0x44, 0x44, // Timestamp (T3)
        0x00, 0x02,                                     // Error Estimate
        0xbe, 0xef,                                     // SSID
        0x55, 0x55, 0x55, 0x55, 0x66, 0x66, 0x66, 0x66, // Receive Timestamp (T2)
        0x01, 0x02, 0x03, 0x04,                         // Session-Sender Sequence Number
        0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Session-Sender Timestamp (T1)
        0x80, 0x01,                                     // Session-Sender Error Estimate
        0x00, 0x00,                                     // MBZ
        0x3f,                                           // Session-Sender TTL
        0x00, 0x00, 0x00,                               // MBZ
    ];

    #[rustfmt::skip]
    static SENDER_AUTH: [u8; 112] = [
        0x01, 0x02, 0x03, 0x04,                         // Sequence Number
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             // MBZ (12)
        0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Timestamp (T1)
        0x80, 0x01,                                     // Error Estimate
        0xbe, 0xef,                                     // SSID
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                        // MBZ (68)
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // HMAC (left to the security layer)
    ];

    #[rustfmt::skip]
    static REFLECTOR_AUTH: [u8; 112] = [
        0x0a, 0x0b, 0x0c, 0x0d,                         // Sequence Number
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             // MBZ (12)
        0x33, 0x33, 0x33, 0x33, 0x44, 0x44, 0x44, 0x44, // Timestamp (T3)
        0x00, 0x02,                                     // Error Estimate
        0xbe, 0xef,                                     // SSID
        0, 0, 0, 0,                                     // MBZ (4)
        0x55, 0x55, 0x55, 0x55, 0x66, 0x66, 0x66, 0x66, // Receive Timestamp (T2)
        0, 0, 0, 0, 0, 0, 0, 0,                         // MBZ (8)
        0x01, 0x02, 0x03, 0x04,                         // Session-Sender Sequence Number
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             // MBZ (12)
        0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Session-Sender Timestamp (T1)
        0x80, 0x01,                                     // Session-Sender Error Estimate
        0, 0, 0, 0, 0, 0,                               // MBZ (6)
        0x3f,                                           // Session-Sender TTL
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    // MBZ (15)
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // HMAC (left to the security layer)
    ];

    #[test]
    fn sender_vectors() {
        for (mode, want) in [
            (StampMode::Unauthenticated, &SENDER_OPEN[..]),
            (StampMode::Authenticated, &SENDER_AUTH[..]),
        ] {
            let mut buf = vec![0xa5u8; want.len() + 3];
            sender().emit(&mut buf, mode).unwrap();
            assert_eq!(&buf[..want.len()], want, "{mode:?}");
            assert_eq!(&buf[want.len()..], &[0xa5; 3], "TLV area untouched");
            assert_eq!(SessionSenderPacket::parse(want, mode).unwrap(), sender());
        }
        assert!(SessionSenderPacket::mbz_is_zero(&SENDER_OPEN));
        let mut dirty = SENDER_OPEN;
        dirty[43] = 1;
        assert!(!SessionSenderPacket::mbz_is_zero(&dirty));
        assert!(!SessionSenderPacket::mbz_is_zero(&SENDER_OPEN[..43]));
    }

    #[test]
    fn reflector_vectors() {
        for (mode, want) in [
            (StampMode::Unauthenticated, &REFLECTOR_OPEN[..]),
            (StampMode::Authenticated, &REFLECTOR_AUTH[..]),
        ] {
            let mut buf = vec![0xa5u8; want.len()];
            reflector().emit(&mut buf, mode).unwrap();
            assert_eq!(&buf[..], want, "{mode:?}");
            assert_eq!(
                SessionReflectorPacket::parse(want, mode).unwrap(),
                reflector()
            );
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for mode in [StampMode::Unauthenticated, StampMode::Authenticated] {
            let base = mode.base();
            for n in 0..base {
                let b = vec![0u8; n];
                let want = Err(Error::Truncated { need: base, got: n });
                assert_eq!(SessionSenderPacket::parse(&b, mode), want);
                assert_eq!(
                    SessionReflectorPacket::parse(&b, mode).map(|_| ()),
                    want.map(|_: SessionSenderPacket| ())
                );
                let mut b = vec![0u8; n];
                assert!(sender().emit(&mut b, mode).is_err());
                assert!(reflector().emit(&mut b, mode).is_err());
            }
        }
    }

    /// RFC 8762 §4.6: a TWAMP Session-Sender reads the STAMP reflected layout as the TWAMP one.
    #[test]
    fn stamp_reflected_reads_as_twamp_reflected() {
        let twamp = ReflectorPacket::parse(&REFLECTOR_OPEN, &TestLayout::OPEN.reflector).unwrap();
        let r = reflector();
        assert_eq!(twamp.seq, r.seq);
        assert_eq!(twamp.timestamp, r.timestamp);
        assert_eq!(twamp.receive_timestamp, r.receive_timestamp);
        assert_eq!(twamp.sender_seq, r.sender_seq);
        assert_eq!(twamp.sender_timestamp, r.sender_timestamp);
        assert_eq!(twamp.sender_error_estimate, r.sender_error_estimate);
        assert_eq!(twamp.sender_ttl, r.sender_ttl);
    }
}
