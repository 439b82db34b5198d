//! Control-Client decisions (RFC 5357 §3.1–3.8), pure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::SecurityMode;
use crate::addr::unmap_ip;
use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::wire::{Accept, AcceptSession, Modes, RequestTwSession, ServerGreeting, Sid};

/// RFC 4656 §3.1: Count "MUST be a power of 2" and "MUST be at least 1024"; RFC 5357 §3.1 lets
/// the Control-Client set a maximum (default 32768) so a rogue Server cannot make it burn CPU.
pub const MIN_COUNT: u32 = 1024;
pub const DEFAULT_MAX_COUNT: u32 = 32_768;

/// Checks the greeting's Count. Only matters for the modes that run PBKDF2.
pub fn check_count(count: u32, max: u32) -> Result<()> {
    if count < MIN_COUNT || !count.is_power_of_two() || count > max {
        return Err(Error::BadCount { count, max });
    }
    Ok(())
}

/// Picks the first mode in `preferences` that the Server offers and that we can use
/// (the secure modes need a key). A Modes of 0 is the Server's refusal (RFC 4656 §3.1).
pub fn choose_mode(
    greeting: &ServerGreeting,
    preferences: &[SecurityMode],
    have_key: bool,
) -> Result<SecurityMode> {
    let wanted = super::modes_of(preferences);
    if greeting.modes.security().is_empty() {
        return Err(Error::Refused {
            message: "Server-Greeting offers no mode",
            accept: Accept::Failure,
        });
    }
    preferences
        .iter()
        .copied()
        .find(|m| greeting.modes.contains(m.bit()) && (have_key || !m.needs_key()))
        .ok_or(Error::NoCommonMode {
            offered: greeting.modes,
            wanted: if have_key {
                wanted
            } else {
                wanted.intersection(Modes::UNAUTHENTICATED)
            },
        })
}

/// What the Session-Sender asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// Our test socket.
    pub sender: SocketAddr,
    /// The Server's address and the reflector port we ask for (0: any).
    pub receiver: SocketAddr,
    pub padding: u32,
    pub start_time: Timestamp,
    /// How long the reflector keeps reflecting after Stop-Sessions.
    pub timeout: Duration,
    /// RFC 2474 DSCP, 0..=63.
    pub dscp: u8,
}

/// Builds Request-TW-Session (RFC 5357 §3.5). Conf-Sender, Conf-Receiver, Number of Schedule
/// Slots, Number of Packets and SID are zero, as TWAMP requires.
pub fn build_request(r: &SessionRequest) -> RequestTwSession {
    let (s, mut recv) = (unmap_ip(r.sender.ip()), unmap_ip(r.receiver.ip()));
    // A request carries one address family (IPVN); a mismatch can only come from a mapped
    // address, already unmapped above, so fall back to unspecified rather than lie.
    if s.is_ipv4() != recv.is_ipv4() {
        recv = if s.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u16; 8])
        };
    }
    RequestTwSession {
        conf_sender: 0,
        conf_receiver: 0,
        schedule_slots: 0,
        packets: 0,
        sender_port: r.sender.port(),
        receiver_port: r.receiver.port(),
        sender_address: s,
        receiver_address: recv,
        sid: Sid::default(),
        padding_length: r.padding,
        start_time: r.start_time,
        timeout: Timestamp::from_duration(r.timeout),
        // RFC 4656 §3.5 Type-P Descriptor: DSCP in the low six bits of the first octet
        // (owamp writes `dscp << 24`).
        type_p: u32::from(r.dscp & 0x3f) << 24,
    }
}

/// Checks Accept-Session; the port to send to is the one it names, even when it differs from
/// the one requested (RFC 5357 §3.5).
pub fn check_accept_session(a: &AcceptSession) -> Result<(u16, Sid)> {
    if a.accept != Accept::Ok {
        return Err(Error::Refused {
            message: "Request-TW-Session",
            accept: a.accept,
        });
    }
    if a.port == 0 {
        return Err(Error::Protocol(
            "Accept-Session accepted with port 0".into(),
        ));
    }
    Ok((a.port, a.sid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(modes: u32) -> ServerGreeting {
        ServerGreeting {
            modes: Modes(modes),
            challenge: [0; 16],
            salt: [0; 16],
            count: 1024,
        }
    }

    #[test]
    fn count_must_be_a_power_of_two_in_range() {
        for ok in [1024, 2048, 32768] {
            assert!(check_count(ok, DEFAULT_MAX_COUNT).is_ok(), "{ok}");
        }
        for bad in [0, 1, 512, 1023, 1025, 3000, 65536, u32::MAX] {
            assert!(
                matches!(
                    check_count(bad, DEFAULT_MAX_COUNT),
                    Err(Error::BadCount { .. })
                ),
                "{bad}"
            );
        }
        assert!(check_count(65536, 65536).is_ok());
    }

    #[test]
    fn choose_mode_follows_preferences_and_keys() {
        let all = SecurityMode::STRICTEST_FIRST;
        assert_eq!(
            choose_mode(&greeting(7), &all, true).unwrap(),
            SecurityMode::Encrypted
        );
        assert_eq!(
            choose_mode(&greeting(7), &all, false).unwrap(),
            SecurityMode::Open
        );
        assert_eq!(
            choose_mode(&greeting(1 | 8), &all, true).unwrap(),
            SecurityMode::Mixed
        );
        assert!(matches!(
            choose_mode(&greeting(2), &all, false),
            Err(Error::NoCommonMode { .. })
        ));
        assert!(matches!(
            choose_mode(&greeting(0), &all, true),
            Err(Error::Refused { .. })
        ));
        assert!(matches!(
            choose_mode(&greeting(2), &[SecurityMode::Open], true),
            Err(Error::NoCommonMode { .. })
        ));
    }

    #[test]
    fn request_fields() {
        let r = build_request(&SessionRequest {
            sender: "[::ffff:127.0.0.1]:20000".parse().unwrap(),
            receiver: "127.0.0.1:20000".parse().unwrap(),
            padding: 27,
            start_time: Timestamp(5),
            timeout: Duration::from_secs(2),
            dscp: 46,
        });
        assert_eq!(r.ipvn(), 4);
        assert_eq!(r.sender_address, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.type_p, 46 << 24);
        assert_eq!(r.timeout, Timestamp::new(2, 0));
        assert_eq!(
            (r.conf_sender, r.conf_receiver, r.sid),
            (0, 0, Sid::default())
        );
    }

    #[test]
    fn accept_session_checks() {
        let ok = AcceptSession {
            accept: Accept::Ok,
            port: 19000,
            sid: Sid([1; 16]),
            reflected_octets: 0,
            server_octets: 0,
        };
        assert_eq!(check_accept_session(&ok).unwrap().0, 19000);
        let refused = AcceptSession::refuse(Accept::TemporaryResourceLimitation);
        let err = check_accept_session(&refused).unwrap_err();
        assert!(
            err.to_string().contains("temporary resource limitations"),
            "{err}"
        );
        assert!(check_accept_session(&AcceptSession { port: 0, ..ok }).is_err());
    }
}
