//! TWAMP-Test packets (RFC 5357 §4.1.2 and §4.2.1), in both layouts:
//!
//! - unauthenticated (also mixed mode, RFC 5618): Session-Sender 14 octets, Session-Reflector
//!   41 octets, then padding;
//! - authenticated and encrypted: Session-Sender 48 octets, Session-Reflector 112 octets
//!   (RFC 5357 erratum 5045 corrected 104 to 112), then padding. Fields sit on 16-octet block
//!   boundaries so the first block can be encrypted alone and timestamps written last.
//!
//! The extensions negotiated in the Modes field change only where the base ends, never where a
//! field sits, so they are more layout constants (see [`TestLayout::with_modes`]):
//!
//! - Symmetrical Size (RFC 6038 §5.1.4, Modes 64): the Session-Sender packet carries MBZ up to
//!   the reflector's base (41 open, 112 authenticated), so both directions have equal sizes and
//!   Padding Length counts only the octets after that;
//! - DSCP and ECN Monitoring (RFC 7750 §2.2.1, Modes 256): the reflected packet carries the
//!   S-DSCP-ECN octet right after Sender TTL (offset 41 open, 81 authenticated), then MBZ; the
//!   open base grows to 44, the authenticated one stays 112;
//! - Reflect Octets (RFC 6038 §5.1.2, §5.2.1, Modes 32) moves nothing: the first octets of the
//!   sender's padding are returned at the start of the reflected padding.
//!
//! `parse` reads the base fields of a packet at least `base` octets long; `emit` writes every
//! octet of the base (MBZ as zero) and leaves padding to the caller. Neither touches the HMAC
//! field of the authenticated layouts: `crypto::TestCipher` owns it.

use super::{array, Error, Modes, Result};
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

    /// Symmetrical Size, unauthenticated (RFC 6038 §5.1.4).
    pub const SYMMETRICAL_OPEN: TestLayout = TestLayout {
        sender: SenderLayout::SYMMETRICAL_OPEN,
        reflector: TestLayout::OPEN.reflector,
    };

    /// Symmetrical Size, authenticated and encrypted (RFC 6038 §5.1.5, with erratum 5045's 112).
    pub const SYMMETRICAL_AUTHENTICATED: TestLayout = TestLayout {
        sender: SenderLayout::SYMMETRICAL_AUTHENTICATED,
        reflector: TestLayout::AUTHENTICATED.reflector,
    };

    /// DSCP and ECN Monitoring, unauthenticated (RFC 7750 §2.2.1 Figure 2). In the
    /// authenticated and encrypted modes the layout is [`TestLayout::AUTHENTICATED`]: S-DSCP-ECN
    /// takes octet 81, which was MBZ (Figure 3).
    pub const DSCP_ECN_OPEN: TestLayout = TestLayout {
        sender: TestLayout::OPEN.sender,
        reflector: ReflectorLayout::DSCP_ECN_OPEN,
    };

    /// DSCP and ECN Monitoring with Symmetrical Size, unauthenticated (RFC 7750 §2.2.2
    /// Figure 4). The sender base is 42, two short of the reflector's 44: see
    /// [`SenderLayout::SYMMETRICAL_DSCP_ECN_OPEN`].
    pub const SYMMETRICAL_DSCP_ECN_OPEN: TestLayout = TestLayout {
        sender: SenderLayout::SYMMETRICAL_DSCP_ECN_OPEN,
        reflector: ReflectorLayout::DSCP_ECN_OPEN,
    };

    /// This layout ([`TestLayout::OPEN`] or [`TestLayout::AUTHENTICATED`], by security mode)
    /// with the test-packet extensions among `modes` applied: Symmetrical Size (64) and DSCP
    /// and ECN Monitoring (256). Other bits, Reflect Octets (32) included, change no layout.
    /// `modes` is what both sides agreed on: the Set-Up-Response Mode, never the greeting.
    pub fn with_modes(self, modes: Modes) -> TestLayout {
        let mut out = self;
        let open_reflector = self.reflector.base == self.reflector.sender_ttl + 1;
        let dscp_ecn = modes.contains(Modes::DSCP_ECN_MONITORING);
        if dscp_ecn && open_reflector {
            // RFC 7750 Figure 2: Sender TTL, S-DSCP-ECN, MBZ (2 octets), then the padding.
            out.reflector.base = self.reflector.sender_ttl + 4;
        }
        if modes.contains(Modes::SYMMETRICAL_SIZE) {
            out.sender.base = if dscp_ecn && open_reflector {
                // RFC 7750 Figure 4: 28 MBZ after the 14 octets (not the 30 that Figure 2
                // would need); followed as drawn, so a sender interoperates with the RFC.
                self.reflector.base + 1
            } else {
                out.reflector.base
            };
        }
        out
    }

    /// Octets the reflector base exceeds the sender base: the reflector SHOULD shorten the
    /// sender's padding by this much so both directions carry equal sizes (RFC 5357 §4.2.1).
    /// Zero with Symmetrical Size (RFC 6038 §5.2.2), except the RFC 7750 Figure 4 case (2).
    pub fn size_difference(&self) -> usize {
        self.reflector.base.saturating_sub(self.sender.base)
    }
}

impl SenderLayout {
    /// Symmetrical Size, unauthenticated (RFC 6038 §5.1.4): Sequence Number, Timestamp, Error
    /// Estimate as in the base format, then 27 MBZ octets, so the base equals the reflector's 41
    /// and the padding starts at 41.
    pub const SYMMETRICAL_OPEN: SenderLayout = SenderLayout {
        seq: 0,
        timestamp: 4,
        error_estimate: 12,
        // 14..41 MBZ
        base: 41,
    };

    /// Symmetrical Size, authenticated and encrypted: the 48-octet base format (HMAC at 32..48
    /// unchanged), then MBZ up to the reflector's 112. RFC 6038 §5.1.5 draws no authenticated
    /// figure and says the padding follows "the 56 MBZ octets", counted from the 104-octet
    /// reflector base that RFC 5357 erratum 5045 corrected to 112 (RFC 6038 erratum 6408 fixes
    /// the same figures in its §5.1.3); with 112 the MBZ are 64 octets (48..112).
    pub const SYMMETRICAL_AUTHENTICATED: SenderLayout = SenderLayout {
        seq: 0,
        timestamp: 16,
        error_estimate: 24,
        // 4..16 MBZ | 26..32 MBZ | 32..48 HMAC | 48..112 MBZ
        base: 112,
    };

    /// Symmetrical Size with DSCP and ECN Monitoring, unauthenticated, as RFC 7750 §2.2.2
    /// Figure 4 draws it: 28 MBZ octets after the 14, base 42. The text beside it says the
    /// reflected packet grows "by 4 octets" and Figure 2 makes it 44, so the RFC is not
    /// self-consistent; as drawn, a Session-Reflector needs Padding Length >= 2 to answer with
    /// a packet as long as the sender's (RFC 6038 §5.2.2).
    pub const SYMMETRICAL_DSCP_ECN_OPEN: SenderLayout = SenderLayout {
        seq: 0,
        timestamp: 4,
        error_estimate: 12,
        // 14..42 MBZ
        base: 42,
    };
}

impl ReflectorLayout {
    /// DSCP and ECN Monitoring, unauthenticated (RFC 7750 §2.2.1 Figure 2): the open layout
    /// with S-DSCP-ECN at 41 and MBZ at 42..44; the padding starts at 44.
    pub const DSCP_ECN_OPEN: ReflectorLayout = ReflectorLayout {
        base: 44,
        ..TestLayout::OPEN.reflector
    };

    /// Offset of the S-DSCP-ECN octet (RFC 7750 §2.2.1): right after Sender TTL, 41 open and
    /// 81 authenticated. Meaningful only when DSCP and ECN Monitoring was agreed; otherwise the
    /// octet is padding (open) or MBZ (authenticated).
    pub fn sender_dscp_ecn(&self) -> usize {
        self.sender_ttl + 1
    }
}

/// Sender DSCP and ECN (S-DSCP-ECN) of a reflected packet (RFC 7750 §2.2.1 Figure 1): the DSCP
/// (S-DSCP, six bits) and ECN (S-ECN, two bits) of the Session-Sender packet as the
/// Session-Reflector received it. It has the layout of the IPv4 TOS / IPv6 Traffic Class octet,
/// so a reflector stores the received octet as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SenderDscpEcn(pub u8);

impl SenderDscpEcn {
    /// From a DSCP (0..=63) and an ECN codepoint (0..=3); higher bits are dropped.
    pub fn new(dscp: u8, ecn: u8) -> Self {
        SenderDscpEcn(((dscp & 0x3f) << 2) | (ecn & 0x03))
    }

    /// From the received TOS / Traffic Class octet (`dscp << 2 | ecn`).
    pub fn from_tos(tos: u8) -> Self {
        SenderDscpEcn(tos)
    }

    /// S-DSCP: the DSCP the Session-Reflector received.
    pub fn dscp(self) -> u8 {
        self.0 >> 2
    }

    /// S-ECN: the ECN codepoint the Session-Reflector received (0 Not-ECT, 1 ECT(1), 2 ECT(0),
    /// 3 CE; RFC 3168).
    pub fn ecn(self) -> u8 {
        self.0 & 0x03
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

    /// The Packet Padding (to be reflected) of a Session-Sender packet in Reflect Octets mode
    /// (RFC 6038 §5.1.2): the first `length` octets after the base, `length` being the
    /// request's Length of padding to reflect. When the Server sent non-zero Server octets,
    /// they are its first two octets. Fails on a packet too short to hold them.
    pub fn padding_to_reflect<'a>(
        buf: &'a [u8],
        layout: &SenderLayout,
        length: u16,
    ) -> Result<&'a [u8]> {
        let end = layout.base + usize::from(length);
        check(buf, end)?;
        Ok(&buf[layout.base..end])
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

    /// Reads S-DSCP-ECN (RFC 7750 §2.2.1). Pass the layout agreed with DSCP and ECN
    /// Monitoring ([`TestLayout::DSCP_ECN_OPEN`] or [`TestLayout::AUTHENTICATED`]); fails on a
    /// packet shorter than its base. A separate accessor, so [`ReflectorPacket`] and its users
    /// stay as they are when the mode is off.
    pub fn parse_sender_dscp_ecn(buf: &[u8], layout: &ReflectorLayout) -> Result<SenderDscpEcn> {
        let at = layout.sender_dscp_ecn();
        check(buf, layout.base.max(at + 1))?;
        Ok(SenderDscpEcn(buf[at]))
    }

    /// Writes S-DSCP-ECN; call it after [`ReflectorPacket::emit`], which writes the octet as
    /// zero (MBZ, as a reflector without the mode sends it).
    pub fn emit_sender_dscp_ecn(
        buf: &mut [u8],
        layout: &ReflectorLayout,
        value: SenderDscpEcn,
    ) -> Result<()> {
        let at = layout.sender_dscp_ecn();
        check(buf, layout.base.max(at + 1))?;
        buf[at] = value.0;
        Ok(())
    }

    /// Writes the Packet Padding (from Session-Sender) of a reflected packet in Reflect Octets
    /// mode (RFC 6038 §5.2.1): `octets` (from [`SenderPacket::padding_to_reflect`]) right after
    /// the base. Octets after them are left alone. Fails if they do not fit.
    pub fn emit_reflected_padding(
        buf: &mut [u8],
        layout: &ReflectorLayout,
        octets: &[u8],
    ) -> Result<()> {
        let end = layout.base + octets.len();
        check(buf, end)?;
        buf[layout.base..end].copy_from_slice(octets);
        Ok(())
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

    #[test]
    fn extension_layouts_from_modes() {
        let sym = Modes::SYMMETRICAL_SIZE;
        let mon = Modes::DSCP_ECN_MONITORING;
        // (security layout, agreed modes, expected layout, sender base, reflector base)
        let table = [
            (TestLayout::OPEN, Modes(1), TestLayout::OPEN, 14, 41),
            (TestLayout::OPEN, Modes(1 | 32), TestLayout::OPEN, 14, 41), // Reflect Octets
            (TestLayout::OPEN, sym, TestLayout::SYMMETRICAL_OPEN, 41, 41),
            (TestLayout::OPEN, mon, TestLayout::DSCP_ECN_OPEN, 14, 44),
            (
                TestLayout::OPEN,
                sym.union(mon),
                TestLayout::SYMMETRICAL_DSCP_ECN_OPEN,
                42,
                44,
            ),
            (
                TestLayout::AUTHENTICATED,
                Modes(2),
                TestLayout::AUTHENTICATED,
                48,
                112,
            ),
            (
                TestLayout::AUTHENTICATED,
                sym,
                TestLayout::SYMMETRICAL_AUTHENTICATED,
                112,
                112,
            ),
            (
                TestLayout::AUTHENTICATED,
                mon,
                TestLayout::AUTHENTICATED,
                48,
                112,
            ),
            (
                TestLayout::AUTHENTICATED,
                sym.union(mon),
                TestLayout::SYMMETRICAL_AUTHENTICATED,
                112,
                112,
            ),
        ];
        for (base, modes, want, s, r) in table {
            let got = base.with_modes(modes);
            assert_eq!(got, want, "{modes}");
            assert_eq!((got.sender.base, got.reflector.base), (s, r), "{modes}");
            // Extensions move no field.
            assert_eq!(got.sender.timestamp, base.sender.timestamp);
            assert_eq!(got.reflector.sender_ttl, base.reflector.sender_ttl);
        }
        assert_eq!(TestLayout::SYMMETRICAL_OPEN.size_difference(), 0);
        assert_eq!(TestLayout::SYMMETRICAL_AUTHENTICATED.size_difference(), 0);
        assert_eq!(TestLayout::DSCP_ECN_OPEN.size_difference(), 30);
        assert_eq!(TestLayout::SYMMETRICAL_DSCP_ECN_OPEN.size_difference(), 2);
        assert_eq!(TestLayout::OPEN.reflector.sender_dscp_ecn(), 41);
        assert_eq!(TestLayout::AUTHENTICATED.reflector.sender_dscp_ecn(), 81);
    }

    fn sample_sender() -> SenderPacket {
        SenderPacket {
            seq: 0x0102_0304,
            timestamp: Timestamp(0x1111_1111_2222_2222),
            error_estimate: ErrorEstimate(0x3333),
        }
    }

    #[test]
    fn symmetrical_sender_packet_open() {
        let l = SenderLayout::SYMMETRICAL_OPEN;
        #[rustfmt::skip]
        let want: [u8; 41] = [
            0x01, 0x02, 0x03, 0x04,                         // Sequence Number
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Timestamp
            0x33, 0x33,                                     // Error Estimate
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                // MBZ (27 octets)
        ];
        let mut buf = [0xa5u8; 41 + 5];
        sample_sender().emit(&mut buf, &l).unwrap();
        assert_eq!(buf[..41], want);
        assert!(buf[41..].iter().all(|&b| b == 0xa5), "padding left alone");
        assert_eq!(SenderPacket::parse(&buf, &l), Ok(sample_sender()));
        for n in 0..41 {
            assert_eq!(
                SenderPacket::parse(&buf[..n], &l),
                Err(Error::Truncated { need: 41, got: n })
            );
            assert!(sample_sender().emit(&mut vec![0; n], &l).is_err());
        }
    }

    #[test]
    fn symmetrical_sender_packet_authenticated() {
        let l = SenderLayout::SYMMETRICAL_AUTHENTICATED;
        let mut buf = [0xa5u8; 112 + 3];
        sample_sender().emit(&mut buf, &l).unwrap();
        #[rustfmt::skip]
        let head: [u8; 32] = [
            0x01, 0x02, 0x03, 0x04,                         // Sequence Number
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             // MBZ (12 octets)
            0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22, // Timestamp
            0x33, 0x33,                                     // Error Estimate
            0, 0, 0, 0, 0, 0,                               // MBZ (6 octets)
        ];
        assert_eq!(buf[..32], head);
        // 32..48 HMAC (written zero here; crypto::TestCipher fills it), 48..112 MBZ.
        assert!(buf[32..112].iter().all(|&b| b == 0));
        assert!(buf[112..].iter().all(|&b| b == 0xa5));
        assert_eq!(SenderPacket::parse(&buf, &l), Ok(sample_sender()));
        for n in [0, 47, 48, 111] {
            assert_eq!(
                SenderPacket::parse(&buf[..n], &l),
                Err(Error::Truncated { need: 112, got: n })
            );
        }
    }

    #[test]
    fn symmetrical_dscp_ecn_sender_packet_open() {
        let l = SenderLayout::SYMMETRICAL_DSCP_ECN_OPEN;
        let mut buf = [0xa5u8; 44];
        sample_sender().emit(&mut buf, &l).unwrap();
        assert!(buf[14..42].iter().all(|&b| b == 0), "MBZ (28 octets)");
        assert_eq!(buf[42..], [0xa5, 0xa5]);
        assert!(SenderPacket::parse(&buf[..41], &l).is_err());
        assert_eq!(SenderPacket::parse(&buf[..42], &l), Ok(sample_sender()));
    }

    fn sample_reflector() -> ReflectorPacket {
        ReflectorPacket {
            seq: 0x0102_0304,
            timestamp: Timestamp(0x1111_1111_2222_2222),
            error_estimate: ErrorEstimate(0x3333),
            receive_timestamp: Timestamp(0x4444_4444_5555_5555),
            sender_seq: 0x6666_6666,
            sender_timestamp: Timestamp(0x7777_7777_8888_8888),
            sender_error_estimate: ErrorEstimate(0x9999),
            sender_ttl: 0xaa,
        }
    }

    #[test]
    fn dscp_ecn_reflector_packet_open() {
        let l = ReflectorLayout::DSCP_ECN_OPEN;
        let mut b = [0xa5u8; 44 + 4];
        sample_reflector().emit(&mut b, &l).unwrap();
        // EF with ECT(0): TOS 0xba.
        let v = SenderDscpEcn::new(46, 2);
        ReflectorPacket::emit_sender_dscp_ecn(&mut b, &l, v).unwrap();
        #[rustfmt::skip]
        let want: [u8; 44] = [
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
            0xba,                                           // S-DSCP-ECN: DSCP 46, ECN 2
            0x00, 0x00,                                     // MBZ
        ];
        assert_eq!(b[..44], want);
        assert!(b[44..].iter().all(|&x| x == 0xa5), "padding left alone");
        assert_eq!(ReflectorPacket::parse(&b, &l), Ok(sample_reflector()));
        let got = ReflectorPacket::parse_sender_dscp_ecn(&b, &l).unwrap();
        assert_eq!((got, got.dscp(), got.ecn()), (v, 46, 2));
        for n in 0..44 {
            assert_eq!(
                ReflectorPacket::parse(&b[..n], &l),
                Err(Error::Truncated { need: 44, got: n })
            );
            assert_eq!(
                ReflectorPacket::parse_sender_dscp_ecn(&b[..n], &l),
                Err(Error::Truncated { need: 44, got: n })
            );
            assert!(ReflectorPacket::emit_sender_dscp_ecn(&mut vec![0; n], &l, v).is_err());
        }
        // A reflector without the mode sends the octet as MBZ (open: the first padding octet
        // would be there instead, so only read it when the mode was agreed).
        let mut plain = [0xa5u8; 44];
        sample_reflector().emit(&mut plain, &l).unwrap();
        assert_eq!(
            ReflectorPacket::parse_sender_dscp_ecn(&plain, &l),
            Ok(SenderDscpEcn(0))
        );
    }

    #[test]
    fn dscp_ecn_reflector_packet_authenticated() {
        let l = TestLayout::AUTHENTICATED.reflector;
        let mut a = [0xa5u8; 112];
        sample_reflector().emit(&mut a, &l).unwrap();
        ReflectorPacket::emit_sender_dscp_ecn(&mut a, &l, SenderDscpEcn::from_tos(0x2b)).unwrap();
        assert_eq!(a[80], 0xaa, "Sender TTL");
        assert_eq!(a[81], 0x2b, "S-DSCP-ECN: AF11 (10) with CE (3)");
        assert!(
            a[82..112].iter().all(|&x| x == 0),
            "MBZ (14 octets) and HMAC"
        );
        let got = ReflectorPacket::parse_sender_dscp_ecn(&a, &l).unwrap();
        assert_eq!((got.dscp(), got.ecn()), (10, 3));
        assert_eq!(ReflectorPacket::parse(&a, &l), Ok(sample_reflector()));
        assert!(ReflectorPacket::parse_sender_dscp_ecn(&a[..111], &l).is_err());
    }

    #[test]
    fn sender_dscp_ecn_bits() {
        // RFC 7750 Figure 1: S-DSCP in the six high bits, S-ECN in the two low ones.
        for (dscp, ecn, octet) in [(0, 0, 0x00), (46, 0, 0xb8), (63, 3, 0xff), (8, 1, 0x21)] {
            let v = SenderDscpEcn::new(dscp, ecn);
            assert_eq!(v, SenderDscpEcn(octet));
            assert_eq!(SenderDscpEcn::from_tos(octet), v);
            assert_eq!((v.dscp(), v.ecn()), (dscp, ecn));
        }
        assert_eq!(SenderDscpEcn::new(0xff, 0xff), SenderDscpEcn(0xff));
    }

    #[test]
    fn reflect_octets_padding_round_trip() {
        // RFC 6038 §5.1.2: Server octets 0x1234 first, then the rest of the padding to reflect.
        let l = TestLayout::OPEN;
        let mut sent = vec![0u8; 14 + 40];
        sample_sender().emit(&mut sent, &l.sender).unwrap();
        sent[14..16].copy_from_slice(&[0x12, 0x34]);
        for (i, b) in sent[16..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let pad = SenderPacket::padding_to_reflect(&sent, &l.sender, 8).unwrap();
        assert_eq!(pad, [0x12, 0x34, 0, 1, 2, 3, 4, 5]);
        assert_eq!(
            SenderPacket::padding_to_reflect(&sent, &l.sender, 41),
            Err(Error::Truncated { need: 55, got: 54 })
        );
        let mut out = vec![0xa5u8; 41 + 10];
        sample_reflector().emit(&mut out, &l.reflector).unwrap();
        ReflectorPacket::emit_reflected_padding(&mut out, &l.reflector, pad).unwrap();
        assert_eq!(
            out[41..49],
            *pad,
            "Packet Padding (from Session-Sender) follows Sender TTL"
        );
        assert_eq!(out[49..], [0xa5, 0xa5]);
        assert!(
            ReflectorPacket::emit_reflected_padding(&mut out[..48], &l.reflector, pad).is_err()
        );
        // With DSCP and ECN Monitoring the padding starts after the MBZ, at 44.
        let m = ReflectorLayout::DSCP_ECN_OPEN;
        let mut out = vec![0u8; 52];
        ReflectorPacket::emit_reflected_padding(&mut out, &m, pad).unwrap();
        assert_eq!(out[44..52], *pad);
    }
}
