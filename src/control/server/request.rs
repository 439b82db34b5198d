//! Request-TW-Session on the Server (RFC 5357 §3.5), pure: whether a request can be served,
//! and the SID of an accepted one.

use std::net::IpAddr;
use std::time::Duration;

use super::SecurityMode;
use crate::time::Timestamp;
use crate::wire::{Accept, ReflectOctetsRequest, RequestTwSession, Sid, TestLayout};

/// The largest UDP payload over IPv4 (65535 − 8 − 20); test packets must fit in it.
pub const MAX_TEST_PACKET: u32 = 65_507;

/// The longest Timeout (reflecting after Stop-Sessions) we honour; longer requests are
/// clamped rather than refused.
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(900);

/// A refusal of one Request-TW-Session: the Accept code to send and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub accept: Accept,
    pub reason: String,
}

/// A request the Server can serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSpec {
    /// The only address test packets are accepted from: the control connection's peer. The
    /// Sender Address field is informational (NAT rewrites it); reflecting to a third party
    /// would make the reflector an amplifier.
    pub peer: IpAddr,
    /// The reflector port asked for (0: any).
    pub requested_port: u16,
    pub padding: u32,
    /// How long to keep reflecting after Stop-Sessions (clamped to `MAX_SESSION_TIMEOUT`).
    pub timeout: Duration,
    /// DSCP from the Type-P Descriptor.
    pub dscp: u8,
    pub start_time: Timestamp,
    /// RFC 6038 Octets to be reflected, returned in Accept-Session (0 without the mode).
    pub octets_to_be_reflected: u16,
    /// RFC 6038 Length of padding to reflect (0 without the mode).
    pub padding_to_reflect: u16,
}

/// Validates Request-TW-Session (RFC 5357 §3.5).
pub fn validate_request(
    req: &RequestTwSession,
    mode: SecurityMode,
    peer: IpAddr,
) -> Result<SessionSpec, Refusal> {
    let refuse = |accept, reason: String| Err(Refusal { accept, reason });
    // RFC 5357 §3.5: "Conf-Sender and Conf-Receiver MUST be set to 0 ... the Server MUST
    // interpret any non-zero value ... as an unsupported request".
    if req.conf_sender != 0 || req.conf_receiver != 0 {
        return refuse(
            Accept::NotSupported,
            format!(
                "Conf-Sender {} / Conf-Receiver {} must be 0",
                req.conf_sender, req.conf_receiver
            ),
        );
    }
    let base = mode.test_layout().sender.base as u32;
    if req.padding_length > MAX_TEST_PACKET - base {
        return refuse(
            Accept::NotSupported,
            format!(
                "Padding Length {} makes test packets over {MAX_TEST_PACKET} octets",
                req.padding_length
            ),
        );
    }
    // Type-P Descriptor (RFC 4656 §3.5 as used by RFC 5357): the first two bits 00 mean a DSCP
    // in the low six bits of the first octet; anything else (01: DSCP+ECN, RFC 7750) we do not
    // support yet, nor any bit in the other octets.
    let type_p = req.type_p;
    if type_p & 0x00ff_ffff != 0 || type_p >> 30 != 0 {
        return refuse(
            Accept::NotSupported,
            format!("Type-P Descriptor 0x{type_p:08x} not supported"),
        );
    }
    Ok(SessionSpec {
        peer,
        requested_port: req.receiver_port,
        padding: req.padding_length,
        timeout: req.timeout.as_duration().min(MAX_SESSION_TIMEOUT),
        dscp: ((type_p >> 24) & 0x3f) as u8,
        start_time: req.start_time,
        octets_to_be_reflected: 0,
        padding_to_reflect: 0,
    })
}

/// Checks a request against the test-packet extensions chosen for the connection: `layout`
/// is the security mode's layout with them applied, `reflect` the RFC 6038 fields when Reflect
/// Octets was chosen.
///
/// - The packets must still fit in a datagram with the (possibly longer) Symmetrical Size base.
/// - RFC 6038 §4.3: when the padding leaves too few octets for the reflector to return Length
///   of padding to reflect octets in a packet as long as the sender's (after the RFC 5357
///   §4.2.1 truncation by the base-size difference), "the Server MUST respond with Accept
///   3". §4.2's "Padding Length SHALL be greater than Length of padding to reflect" is read as
///   "at least": the difference is what the reflector truncates, and with Symmetrical Size
///   (difference 0) reflecting the whole padding is what the sender asked for.
pub fn validate_extensions(
    req: &RequestTwSession,
    reflect: Option<ReflectOctetsRequest>,
    layout: &TestLayout,
) -> Result<(), Refusal> {
    let base = layout.sender.base as u32;
    if req.padding_length > MAX_TEST_PACKET.saturating_sub(base) {
        return Err(Refusal {
            accept: Accept::NotSupported,
            reason: format!(
                "Padding Length {} makes test packets over {MAX_TEST_PACKET} octets",
                req.padding_length
            ),
        });
    }
    if let Some(r) = reflect {
        let need = layout.size_difference() as u32 + u32::from(r.length_of_padding_to_reflect);
        if r.length_of_padding_to_reflect > 0 && req.padding_length < need {
            return Err(Refusal {
                accept: Accept::NotSupported,
                reason: format!(
                    "Padding Length {} leaves no room to reflect {} octets in equal-size \
                     packets (needs {need}; RFC 6038 §4.3)",
                    req.padding_length, r.length_of_padding_to_reflect
                ),
            });
        }
    }
    Ok(())
}

/// Makes a SID (RFC 4656 §3.5): the receiver's IPv4 address (for IPv6, the four octets of a
/// fold of the address), the timestamp, and four random octets. Never all zero: the address
/// part of 0.0.0.0 or ::, the only case a zero could come from, is replaced by 1.
pub fn make_sid(receiver: IpAddr, now: Timestamp, random: [u8; 4]) -> Sid {
    let addr: [u8; 4] = match crate::addr::unmap_ip(receiver) {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            let mut h = [0u8; 4];
            for (i, b) in o.iter().enumerate() {
                h[i % 4] ^= b;
            }
            h
        }
    };
    let addr = if addr == [0; 4] { [0, 0, 0, 1] } else { addr };
    let mut sid = [0u8; 16];
    sid[..4].copy_from_slice(&addr);
    sid[4..12].copy_from_slice(&now.to_bytes());
    sid[12..].copy_from_slice(&random);
    Sid(sid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn request() -> RequestTwSession {
        RequestTwSession {
            conf_sender: 0,
            conf_receiver: 0,
            schedule_slots: 0,
            packets: 0,
            sender_port: 20000,
            receiver_port: 20001,
            sender_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            receiver_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            sid: Sid::default(),
            padding_length: 27,
            start_time: Timestamp(1),
            timeout: Timestamp::new(2, 0),
            type_p: 46 << 24,
        }
    }

    const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn a_good_request_is_accepted() {
        let s = validate_request(&request(), SecurityMode::Open, PEER).unwrap();
        assert_eq!(s.requested_port, 20001);
        assert_eq!(s.dscp, 46);
        assert_eq!(s.timeout, Duration::from_secs(2));
    }

    #[test]
    fn conf_sender_and_receiver_must_be_zero() {
        for (s, r) in [(1, 0), (0, 1), (1, 1)] {
            let req = RequestTwSession {
                conf_sender: s,
                conf_receiver: r,
                ..request()
            };
            assert_eq!(
                validate_request(&req, SecurityMode::Open, PEER)
                    .unwrap_err()
                    .accept,
                Accept::NotSupported
            );
        }
    }

    #[test]
    fn huge_padding_is_refused() {
        let req = RequestTwSession {
            padding_length: u32::MAX,
            ..request()
        };
        assert_eq!(
            validate_request(&req, SecurityMode::Open, PEER)
                .unwrap_err()
                .accept,
            Accept::NotSupported
        );
        let req = RequestTwSession {
            padding_length: MAX_TEST_PACKET - 14,
            ..request()
        };
        assert!(validate_request(&req, SecurityMode::Open, PEER).is_ok());
        assert!(validate_request(&req, SecurityMode::Encrypted, PEER).is_err());
    }

    #[test]
    fn reflect_octets_need_room_in_equal_sizes() {
        let reflect = |n| {
            Some(ReflectOctetsRequest {
                octets_to_be_reflected: 0xbeef,
                length_of_padding_to_reflect: n,
            })
        };
        let req = |padding| RequestTwSession {
            padding_length: padding,
            ..request()
        };
        // Open mode: the reflector truncates 27 octets, so 27 + n are needed.
        assert!(validate_extensions(&req(27 + 8), reflect(8), &TestLayout::OPEN).is_ok());
        let r = validate_extensions(&req(27 + 7), reflect(8), &TestLayout::OPEN).unwrap_err();
        assert_eq!(r.accept, Accept::NotSupported, "{}", r.reason);
        // Symmetrical Size truncates nothing: the whole padding may be reflected.
        assert!(validate_extensions(&req(8), reflect(8), &TestLayout::SYMMETRICAL_OPEN).is_ok());
        assert!(validate_extensions(&req(7), reflect(8), &TestLayout::SYMMETRICAL_OPEN).is_err());
        // Nothing to reflect, or the mode not chosen: no constraint.
        assert!(validate_extensions(&req(0), reflect(0), &TestLayout::OPEN).is_ok());
        assert!(validate_extensions(&req(0), None, &TestLayout::OPEN).is_ok());
        // The Symmetrical Size base counts toward the largest packet.
        let huge = req(MAX_TEST_PACKET - 14);
        assert!(validate_extensions(&huge, None, &TestLayout::OPEN).is_ok());
        assert!(validate_extensions(&huge, None, &TestLayout::SYMMETRICAL_OPEN).is_err());
    }

    #[test]
    fn long_timeouts_are_clamped() {
        let req = RequestTwSession {
            timeout: Timestamp::new(u32::MAX, 0),
            ..request()
        };
        assert_eq!(
            validate_request(&req, SecurityMode::Open, PEER)
                .unwrap()
                .timeout,
            MAX_SESSION_TIMEOUT
        );
    }

    #[test]
    fn sid_layout_and_never_zero() {
        let sid = make_sid(PEER, Timestamp(0x1122_3344_5566_7788), [9, 8, 7, 6]);
        assert_eq!(
            sid.0,
            [127, 0, 0, 1, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 9, 8, 7, 6]
        );
        let zero = make_sid(IpAddr::V4(Ipv4Addr::UNSPECIFIED), Timestamp(0), [0; 4]);
        assert_ne!(zero, Sid::default());
        let v6 = make_sid("2001:db8::1".parse().unwrap(), Timestamp(1), [0; 4]);
        assert_ne!(v6.0[..4], [0; 4]);
    }
}
