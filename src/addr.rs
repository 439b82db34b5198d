//! Address mapping, pure: no sockets.
//!
//! One dual-stack `[::]` socket (IPV6_V6ONLY off) serves IPv4 and IPv6; IPv4 peers then appear
//! as v4-mapped IPv6 addresses (RFC 4291 §2.5.5.2). Logs, comparisons, SIDs and limits work on
//! the unmapped form; only `send_to` on an IPv6 socket needs the mapped one back.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Turns a v4-mapped IPv6 address into IPv4; leaves others alone.
pub fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// The IP with v4-mapped addresses turned into IPv4.
pub fn unmap_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address to hand `send_to` for `to`: an IPv4 destination is v4-mapped when the socket
/// is IPv6 (dual-stack). Loops compute `socket_is_v6` once, not per packet.
pub fn destination(to: SocketAddr, socket_is_v6: bool) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) if socket_is_v6 => {
            SocketAddr::V6(SocketAddrV6::new(v4.ip().to_ipv6_mapped(), v4.port(), 0, 0))
        }
        _ => to,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn unmap_turns_mapped_into_v4() {
        let m: SocketAddr = "[::ffff:127.0.0.1]:862".parse().unwrap();
        assert_eq!(unmap(m), "127.0.0.1:862".parse::<SocketAddr>().unwrap());
        let v6: SocketAddr = "[::1]:862".parse().unwrap();
        assert_eq!(unmap(v6), v6);
        assert_eq!(
            unmap_ip("::ffff:10.0.0.1".parse().unwrap()),
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
    }

    #[test]
    fn destination_maps_v4_only_for_v6_sockets() {
        let v4: SocketAddr = "192.0.2.1:862".parse().unwrap();
        assert_eq!(destination(v4, false), v4);
        assert_eq!(
            destination(v4, true),
            "[::ffff:192.0.2.1]:862".parse::<SocketAddr>().unwrap()
        );
        let v6: SocketAddr = "[2001:db8::1]:862".parse().unwrap();
        assert_eq!(destination(v6, true), v6);
    }
}
