//! Access control by network (`-allow`, `-deny`, `-open-from`): who may connect, and which
//! security modes a peer's network may use, as twampd's limits file does with `assign net
//! CIDR class` and `allow_open_mode=off`. Pure: addresses in, a decision out.
//!
//! Invariants:
//! - `-deny` wins over `-allow`; an empty `-allow` allows every network.
//! - A peer that may not connect, or whose network leaves no security mode, is refused with
//!   a Server-Greeting whose Modes is 0 (RFC 4656 §3.1: "the server does not wish to
//!   communicate").
//! - Peers are compared as plain addresses: an IPv4-mapped IPv6 peer is its IPv4 address.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::wire::Modes;

/// Networks that may connect, may not, and may use open mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Empty: every network.
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    /// `None`: open mode for every network.
    pub open_from: Option<Vec<IpNet>>,
}

/// Why a peer is refused, for its log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotAllowed,
    /// Only open mode is offered and the peer's network may not use it.
    NoModeForNetwork,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Denied => "its network is in -deny",
            Refusal::NotAllowed => "its network is not in -allow",
            Refusal::NoModeForNetwork => {
                "open mode is not allowed from its network (-open-from) and no other mode is offered"
            }
        })
    }
}

/// Parses a list of networks: CIDRs (`192.0.2.0/24`, `2001:db8::/32`) or bare addresses (a
/// host), each word a comma list.
pub fn parse_networks<S: AsRef<str>>(words: &[S]) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for w in words {
        for item in w
            .as_ref()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("'{item}' is not a network (CIDR such as 192.0.2.0/24) or an address")
                })?;
            out.push(net.trunc());
        }
    }
    Ok(out)
}

fn any_contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

impl Access {
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.open_from.is_none()
    }

    /// The Modes of the Server-Greeting for `peer`: `offered` less what its network may not
    /// use; `Err` when it may not connect at all.
    pub fn modes_for(&self, peer: IpAddr, offered: Modes) -> Result<Modes, Refusal> {
        let peer = crate::addr::unmap_ip(peer);
        if any_contains(&self.deny, peer) {
            return Err(Refusal::Denied);
        }
        if !self.allow.is_empty() && !any_contains(&self.allow, peer) {
            return Err(Refusal::NotAllowed);
        }
        let modes = match &self.open_from {
            Some(nets) if !any_contains(nets, peer) => Modes(offered.0 & !Modes::UNAUTHENTICATED.0),
            _ => offered,
        };
        if modes.intersection(Modes::SECURITY).0 == 0 {
            return Err(Refusal::NoModeForNetwork);
        }
        Ok(modes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &str) -> Vec<IpNet> {
        parse_networks(&[s]).unwrap()
    }

    #[test]
    fn parses_cidrs_addresses_and_lists() {
        assert_eq!(
            nets("10.0.0.0/8, 192.0.2.7,2001:db8::/32"),
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
                "2001:db8::/32".parse().unwrap()
            ]
        );
        // Host bits are cleared: 10.1.2.3/8 is 10.0.0.0/8.
        assert_eq!(nets("10.1.2.3/8"), nets("10.0.0.0/8"));
        assert!(parse_networks(&["10.0.0.0/33"]).is_err());
        assert!(parse_networks(&["example.net"]).is_err());
    }

    #[test]
    fn deny_wins_allow_limits_open_from_strips_open_mode() {
        let all = Modes::SECURITY;
        let a = Access {
            allow: nets("127.0.0.0/8"),
            deny: nets("127.0.0.2"),
            open_from: Some(nets("127.0.0.1")),
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (peer, offered) → greeting modes
        let table = [
            ("127.0.0.1", all, Ok(all)),
            ("::ffff:127.0.0.1", all, Ok(all)),
            ("127.0.0.2", all, Err(Refusal::Denied)),
            ("192.0.2.1", all, Err(Refusal::NotAllowed)),
            ("127.0.0.3", all, Ok(Modes(2 | 4 | 8))),
            (
                "127.0.0.3",
                Modes::UNAUTHENTICATED,
                Err(Refusal::NoModeForNetwork),
            ),
            (
                "127.0.0.1",
                Modes::UNAUTHENTICATED,
                Ok(Modes::UNAUTHENTICATED),
            ),
        ];
        for (peer, offered, want) in table {
            assert_eq!(a.modes_for(ip(peer), offered), want, "{peer} {offered}");
        }
        assert!(Access::default().is_open());
        assert_eq!(Access::default().modes_for(ip("192.0.2.1"), all), Ok(all));
    }
}
