//! Server-wide budgets, pure: how many control connections and test sessions may be held, in
//! all and per client, so one hostile peer cannot take what everyone else needs.
//!
//! A client is an IPv4 address or an IPv6 /64 ([`ClientKey`]): a host that owns a /64 can use
//! any of its 2^64 addresses, so counting addresses would count nothing.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::addr::unmap_ip;

/// Whom a budget counts: an IPv4 address, or the /64 an IPv6 address is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4([u8; 4]),
    /// The first 64 bits of the address.
    V6Prefix(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match unmap_ip(ip) {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientKey::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            ClientKey::V6Prefix(p) => {
                let a = std::net::Ipv6Addr::from(u128::from(*p) << 64);
                write!(f, "{a}/64")
            }
        }
    }
}

/// Which limit a request would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The total (`held` of `limit`).
    Total { held: usize, limit: usize },
    /// This client's share.
    Client { held: usize, limit: usize },
}

/// A count in all and per client, with a limit for each.
#[derive(Debug, Clone)]
pub struct Budget {
    total: usize,
    per: HashMap<ClientKey, usize>,
    limit_total: usize,
    limit_per: usize,
}

impl Budget {
    pub fn new(limit_total: usize, limit_per: usize) -> Self {
        Budget {
            total: 0,
            per: HashMap::new(),
            limit_total,
            limit_per,
        }
    }

    /// Takes one for `key`, or says which limit it would break (and takes nothing).
    pub fn take(&mut self, key: ClientKey) -> Result<(), Over> {
        let mine = self.per.get(&key).copied().unwrap_or(0);
        if mine >= self.limit_per {
            return Err(Over::Client {
                held: mine,
                limit: self.limit_per,
            });
        }
        if self.total >= self.limit_total {
            return Err(Over::Total {
                held: self.total,
                limit: self.limit_total,
            });
        }
        *self.per.entry(key).or_insert(0) += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives one back. Giving back what was never taken changes nothing.
    pub fn give_back(&mut self, key: ClientKey) {
        if let Some(n) = self.per.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.per.remove(&key);
            }
            self.total -= 1;
        }
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn of(&self, key: ClientKey) -> usize {
        self.per.get(&key).copied().unwrap_or(0)
    }

    /// Clients counted now (the map's size stays bounded by what is held).
    pub fn clients(&self) -> usize {
        self.per.len()
    }
}

/// The descriptors the server keeps back for accepting and serving control connections: the
/// session budget is what is left of the open-file limit after them, so sessions can never
/// take the descriptors a new control connection needs.
pub fn session_budget(max_sessions: usize, nofile: u64, connections: usize) -> usize {
    // The listener, the engine's epoll and eventfd, stdio, the log file, and some slack.
    const RESERVE: u64 = 64;
    let left = nofile.saturating_sub(connections as u64 + RESERVE);
    max_sessions.min(usize::try_from(left).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = ClientKey::of("2001:db8:1:2::1".parse().unwrap());
        let b = ClientKey::of("2001:db8:1:2:ffff::9".parse().unwrap());
        let c = ClientKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b, "same /64");
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let v4 = ClientKey::of("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(
            v4,
            ClientKey::V4([192, 0, 2, 1]),
            "v4-mapped is the IPv4 client"
        );
        assert_eq!(v4.to_string(), "192.0.2.1");
    }

    #[test]
    fn budgets_count_in_all_and_per_client() {
        let mut b = Budget::new(3, 2);
        let (x, y) = (ClientKey::V4([1, 1, 1, 1]), ClientKey::V4([2, 2, 2, 2]));
        assert_eq!(b.take(x), Ok(()));
        assert_eq!(b.take(x), Ok(()));
        assert_eq!(b.take(x), Err(Over::Client { held: 2, limit: 2 }));
        assert_eq!(b.take(y), Ok(()));
        assert_eq!(b.take(y), Err(Over::Total { held: 3, limit: 3 }));
        assert_eq!((b.total(), b.of(x), b.of(y)), (3, 2, 1));
        b.give_back(x);
        b.give_back(x);
        b.give_back(x); // never taken: no change
        assert_eq!((b.total(), b.clients()), (1, 1));
        assert_eq!(b.take(y), Ok(()));
    }

    #[test]
    fn sessions_never_take_the_descriptors_of_connections() {
        assert_eq!(session_budget(1024, 1_048_576, 288), 1024);
        assert_eq!(session_budget(1024, 1024, 288), 1024 - 288 - 64);
        assert_eq!(session_budget(1024, 100, 288), 0);
    }
}
