//! TWAMP-Test packets (RFC 5357 §4.1.2 and §4.2.1), in both layouts:
//!
//! - unauthenticated (also mixed mode, RFC 5618): Session-Sender 14 octets, Session-Reflector
//!   41 octets, then padding;
//! - authenticated and encrypted: Session-Sender 48 octets, Session-Reflector 112 octets
//!   (RFC 5357 erratum 5045 corrected 104 to 112), then padding. Fields sit on 16-octet block
//!   boundaries so the first block can be encrypted alone and timestamps written last.
//!
//! `parse` reads the base fields of a packet at least `base` octets long; `emit` writes every
//! octet of the base (MBZ as zero) and leaves padding to the caller. Neither touches the HMAC
//! field of the authenticated layouts: `crypto::TestCipher` owns it.

use super::{array, Error, Result};
use crate::time::{ErrorEstimate, Timestamp};

/// Where the fields sit, by security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestLayout {
    pub sender: SenderLayout,
    pub reflector: ReflectorLayout,
}

/// Offsets of the Session-Sender packet fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderLayout {
    pub seq: usize,
    pub timestamp: usize,
    pub error_estimate: usize,
    /// Octets before the padding.
    pub base: usize,
}

/// Offsets of the Session-Reflector packet fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReflectorLayout {
    pub seq: usize,
    pub timestamp: usize,
    pub error_estimate: usize,
    pub receive_timestamp: usize,
    pub sender_seq: usize,
    pub sender_timestamp: usize,
    pub sender_error_estimate: usize,
    pub sender_ttl: usize,
    pub base: usize,
}

impl TestLayout {
    /// RFC 5357 §4.1.2 (sender) and §4.2.1 (reflector), unauthenticated.
    pub const OPEN: TestLayout = TestLayout {
        sender: SenderLayout {
            seq: 0,
            timestamp: 4,
            error_estimate: 12,
            base: 14,
        },
        reflector: ReflectorLayout {
            seq: 0,
            timestamp: 4,
            error_estimate: 12,
            // 14..16 MBZ
            receive_timestamp: 16,
            sender_seq: 24,
            sender_timestamp: 28,
            sender_error_estimate: 36,
            // 38..40 MBZ
            sender_ttl: 40,
            base: 41,
        },
    };

    /// Authenticated and encrypted layouts (RFC 5357 §4.1.2, §4.2.1 with erratum 5045; owamp
    /// `endpoint.c` agrees): every field starts a 16-octet block or follows one in it.
    pub const AUTHENTICATED: TestLayout = TestLayout {
        // 0 seq | 4..16 MBZ | 16 timestamp | 24 error | 26..32 MBZ | 32..48 HMAC
        sender: SenderLayout {
            seq: 0,
            timestamp: 16,
            error_estimate: 24,
            base: 48,
        },
        reflector: ReflectorLayout {
            seq: 0,
            timestamp: 16,
            error_estimate: 24,
            receive_timestamp: 32,
            sender_seq: 48,
            sender_timestamp: 64,
            sender_error_estimate: 72,
            sender_ttl: 80,
            // 81..96 MBZ | 96..112 HMAC
            base: 112,
        },
    };

    /// Octets the reflector base exceeds the sender base: the reflector SHOULD shorten the
    /// sender's padding by this much so both directions carry equal sizes (RFC 5357 §4.2.1).
    pub fn size_difference(&self) -> usize {
        self.reflector.base - self.sender.base
    }
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

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Session-Sender test packet (RFC 5357 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderPacket {
    pub seq: u32,
    pub timestamp: Timestamp,
    pub error_estimate: ErrorEstimate,
}

impl SenderPacket {
    /// Reads the base fields; fails on a packet shorter than the layout's base. Never panics.
    pub fn parse(buf: &[u8], layout: &SenderLayout) -> Result<Self> {
        check(buf, layout.base)?;
        Ok(SenderPacket {
            seq: u32::from_be_bytes(array(buf, layout.seq..layout.seq + 4)),
            timestamp: Timestamp::from_bytes(array(buf, layout.timestamp..layout.timestamp + 8)),
            error_estimate: ErrorEstimate::from_bytes(array(
                buf,
                layout.error_estimate..layout.error_estimate + 2,
            )),
        })
    }

    /// Writes the base: zeroes it, then the fields. Padding after the base is left alone.
    pub fn emit(&self, buf: &mut [u8], layout: &SenderLayout) -> Result<()> {
        check(buf, layout.base)?;
        buf[..layout.base].fill(0);
        put(buf, layout.seq, &self.seq.to_be_bytes());
        self.emit_timestamp(buf, layout);
        Ok(())
    }

    /// Rewrites only the Timestamp and Error Estimate, so the send time can be taken last.
    pub fn emit_timestamp(&self, buf: &mut [u8], layout: &SenderLayout) {
        put(buf, layout.timestamp, &self.timestamp.to_bytes());
        put(buf, layout.error_estimate, &self.error_estimate.to_bytes());
    }
}

/// Session-Reflector test packet (RFC 5357 §4.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReflectorPacket {
    /// The reflector's own Sequence Number, counting the packets it reflected in this session.
    pub seq: u32,
    /// Timestamp: the reflector's transmit time (T3).
    pub timestamp: Timestamp,
    pub error_estimate: ErrorEstimate,
    /// Receive Timestamp: when the reflector received the sender's packet (T2).
    pub receive_timestamp: Timestamp,
    pub sender_seq: u32,
    /// Sender Timestamp (T1), copied from the sender's packet.
    pub sender_timestamp: Timestamp,
    pub sender_error_estimate: ErrorEstimate,
    /// Sender TTL: the TTL or Hop Limit of the received packet; 255 where it cannot be read
    /// (RFC 5357 §4.2.1).
    pub sender_ttl: u8,
}

impl ReflectorPacket {
    pub fn parse(buf: &[u8], layout: &ReflectorLayout) -> Result<Self> {
        check(buf, layout.base)?;
        let ts = |at: usize| Timestamp::from_bytes(array(buf, at..at + 8));
        let ee = |at: usize| ErrorEstimate::from_bytes(array(buf, at..at + 2));
        Ok(ReflectorPacket {
            seq: u32::from_be_bytes(array(buf, layout.seq..layout.seq + 4)),
            timestamp: ts(layout.timestamp),
            error_estimate: ee(layout.error_estimate),
            receive_timestamp: ts(layout.receive_timestamp),
            sender_seq: u32::from_be_bytes(array(buf, layout.sender_seq..layout.sender_seq + 4)),
            sender_timestamp: ts(layout.sender_timestamp),
            sender_error_estimate: ee(layout.sender_error_estimate),
            sender_ttl: buf[layout.sender_ttl],
        })
    }

    /// Writes the base (MBZ zeroed); padding after it is left alone.
    pub fn emit(&self, buf: &mut [u8], layout: &ReflectorLayout) -> Result<()> {
        check(buf, layout.base)?;
        buf[..layout.base].fill(0);
        put(buf, layout.seq, &self.seq.to_be_bytes());
        put(
            buf,
            layout.receive_timestamp,
            &self.receive_timestamp.to_bytes(),
        );
        put(buf, layout.sender_seq, &self.sender_seq.to_be_bytes());
        put(
            buf,
            layout.sender_timestamp,
            &self.sender_timestamp.to_bytes(),
        );
        put(
            buf,
            layout.sender_error_estimate,
            &self.sender_error_estimate.to_bytes(),
        );
        buf[layout.sender_ttl] = self.sender_ttl;
        self.emit_timestamp(buf, layout);
        Ok(())
    }

    /// Rewrites only the transmit Timestamp and Error Estimate (taken as late as possible).
    pub fn emit_timestamp(&self, buf: &mut [u8], layout: &ReflectorLayout) {
        put(buf, layout.timestamp, &self.timestamp.to_bytes());
        put(buf, layout.error_estimate, &self.error_estimate.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::testutil::hex;

    // owamp_open, UDP 20097 -> 19203, frame 14: twping's 14-octet base + 27 octets of random
    // padding.
    const SENDER_HEX: &str = "
        0000  00 00 00 00 ee ad 29 fc 42 07 3d e1 00 01 df 96
        0010  94 d3 9c 64 0d 07 a1 30 8d 3c 2d 51 6c 96 61 e8
        0020  b3 f2 21 48 15 8b 90 2d 7c";

    #[test]
    fn layouts_match_the_rfc_sizes() {
        assert_eq!(TestLayout::OPEN.sender.base, 14);
        assert_eq!(TestLayout::OPEN.reflector.base, 41);
        assert_eq!(TestLayout::OPEN.size_difference(), 27);
        assert_eq!(TestLayout::AUTHENTICATED.sender.base, 48);
        assert_eq!(TestLayout::AUTHENTICATED.reflector.base, 112);
        assert_eq!(TestLayout::AUTHENTICATED.size_difference(), 64);
    }

    #[test]
    fn sender_packet_round_trip() {
        let bytes = hex(SENDER_HEX);
        assert_eq!(bytes.len(), 41);
        let p = SenderPacket::parse(&bytes, &TestLayout::OPEN.sender).unwrap();
        assert_eq!(p.seq, 0);
        assert_eq!(p.error_estimate, ErrorEstimate(1));
        assert_eq!(p.timestamp, Timestamp(0xeead_29fc_4207_3de1));
        let mut out = vec![0xa5; 41];
        p.emit(&mut out, &TestLayout::OPEN.sender).unwrap();
        assert_eq!(out[..14], bytes[..14]);
        assert!(
            out[14..].iter().all(|&b| b == 0xa5),
            "emit leaves the padding alone"
        );
    }

    #[test]
    fn short_packets_are_errors() {
        for n in 0..14 {
            assert_eq!(
                SenderPacket::parse(&vec![0; n], &TestLayout::OPEN.sender),
                Err(Error::Truncated { need: 14, got: n })
            );
        }
        assert!(ReflectorPacket::parse(&[0; 40], &TestLayout::OPEN.reflector).is_err());
        assert!(ReflectorPacket::parse(&[0; 111], &TestLayout::AUTHENTICATED.reflector).is_err());
        assert!(ReflectorPacket::emit(
            &ReflectorPacket::default(),
            &mut [0; 40],
            &TestLayout::OPEN.reflector
        )
        .is_err());
    }

    #[test]
    fn reflector_packet_offsets() {
        let p = ReflectorPacket {
            seq: 0x0102_0304,
            timestamp: Timestamp(0x1111_1111_2222_2222),
            error_estimate: ErrorEstimate(0x3333),
            receive_timestamp: Timestamp(0x4444_4444_5555_5555),
            sender_seq: 0x6666_6666,
            sender_timestamp: Timestamp(0x7777_7777_8888_8888),
            sender_error_estimate: ErrorEstimate(0x9999),
            sender_ttl: 0xaa,
        };
        let mut b = [0xa5u8; 41];
        p.emit(&mut b, &TestLayout::OPEN.reflector).unwrap();
        #[rustfmt::skip]
        let want: [u8; 41] = [
            0x01, 0x02, 0x03, 0x04,                         // Sequence Number
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Timestamp (T3)
            0x33, 0x33,                                     // Error Estimate
            0x00, 0x00,                                     // MBZ
            0x44, 0x44, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, // Receive Timestamp (T2)
            0x66, 0x66, 0x66, 0x66,                         // Sender Sequence Number
            0x77, 0x77, 0x77, 0x77, 0x88, 0x88, 0x88, 0x88, // Sender Timestamp (T1)
            0x99, 0x99,                                     // Sender Error Estimate
            0x00, 0x00,                                     // MBZ
            0xaa,                                           // Sender TTL
        ];
        assert_eq!(b, want);
        assert_eq!(
            ReflectorPacket::parse(&b, &TestLayout::OPEN.reflector).unwrap(),
            p
        );

        let mut a = [0xa5u8; 112];
        p.emit(&mut a, &TestLayout::AUTHENTICATED.reflector)
            .unwrap();
        assert_eq!(
            ReflectorPacket::parse(&a, &TestLayout::AUTHENTICATED.reflector).unwrap(),
            p
        );
        assert_eq!(a[80], 0xaa);
        assert!(a[81..112].iter().all(|&x| x == 0));
    }
}
