//! TWAMP-Control decisions, with no sockets and no clock of their own (RFC 5357 §3).
//!
//! [`client`] chooses a mode, checks the greeting and builds requests; [`server`] validates
//! requests and keeps the order of commands. The I/O drivers in `crate::client` and
//! `crate::server` call these and do only reading and writing.

pub mod client;
pub mod server;

use std::fmt;
use std::str::FromStr;

use crate::crypto::TestSecurity;
use crate::wire::{Modes, TestLayout};

/// The four security modes of Set-Up-Response (RFC 4656 §3.1, RFC 5618).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityMode {
    /// Unauthenticated (mode 1).
    Open,
    /// Mixed (mode 8): encrypted control, unauthenticated test packets (RFC 5618).
    Mixed,
    /// Authenticated (mode 2): encrypted control; test packets carry an HMAC and their first
    /// block is encrypted, timestamps stay in clear.
    Authenticated,
    /// Encrypted (mode 4): encrypted control and test packets.
    Encrypted,
}

impl SecurityMode {
    /// Strictest first: the default preference order of a Control-Client that holds a key.
    pub const STRICTEST_FIRST: [SecurityMode; 4] = [
        SecurityMode::Encrypted,
        SecurityMode::Authenticated,
        SecurityMode::Mixed,
        SecurityMode::Open,
    ];

    pub fn bit(self) -> Modes {
        match self {
            SecurityMode::Open => Modes::UNAUTHENTICATED,
            SecurityMode::Authenticated => Modes::AUTHENTICATED,
            SecurityMode::Encrypted => Modes::ENCRYPTED,
            SecurityMode::Mixed => Modes::MIXED,
        }
    }

    /// The one security mode in a Set-Up-Response Mode field; `None` when there is not
    /// exactly one (RFC 4656 §3.1: the client chooses one of the offered modes).
    pub fn from_modes(m: Modes) -> Option<Self> {
        match m.security().0 {
            1 => Some(SecurityMode::Open),
            2 => Some(SecurityMode::Authenticated),
            4 => Some(SecurityMode::Encrypted),
            8 => Some(SecurityMode::Mixed),
            _ => None,
        }
    }

    /// Whether the mode needs a shared secret (everything but open).
    pub fn needs_key(self) -> bool {
        self != SecurityMode::Open
    }

    /// The test-packet layout: mixed mode uses the unauthenticated one (RFC 5618 §2).
    pub fn test_layout(self) -> TestLayout {
        match self {
            SecurityMode::Open | SecurityMode::Mixed => TestLayout::OPEN,
            SecurityMode::Authenticated | SecurityMode::Encrypted => TestLayout::AUTHENTICATED,
        }
    }

    /// How test packets are protected, if at all.
    pub fn test_security(self) -> Option<TestSecurity> {
        match self {
            SecurityMode::Open | SecurityMode::Mixed => None,
            SecurityMode::Authenticated => Some(TestSecurity::Authenticated),
            SecurityMode::Encrypted => Some(TestSecurity::Encrypted),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityMode::Open => "open",
            SecurityMode::Authenticated => "authenticated",
            SecurityMode::Encrypted => "encrypted",
            SecurityMode::Mixed => "mixed",
        }
    }
}

impl fmt::Display for SecurityMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" | "o" | "unauthenticated" | "1" => Ok(SecurityMode::Open),
            "authenticated" | "auth" | "a" | "2" => Ok(SecurityMode::Authenticated),
            "encrypted" | "e" | "4" => Ok(SecurityMode::Encrypted),
            "mixed" | "m" | "8" => Ok(SecurityMode::Mixed),
            other => Err(format!(
                "unknown mode '{other}' (open, authenticated, encrypted, mixed)"
            )),
        }
    }
}

/// Parses a comma-separated list of modes, keeping its order (duplicates dropped). twping's
/// letters work too: `AEO` is authenticated, encrypted, open, in that order of preference.
pub fn parse_mode_list(s: &str) -> Result<Vec<SecurityMode>, String> {
    let t = s.trim();
    let letters = !t.contains(',') && t.len() > 1 && t.chars().all(|c| "AEOMaeom".contains(c));
    let parts: Vec<String> = if letters {
        t.chars().map(String::from).collect()
    } else {
        t.split(',').map(str::to_string).collect()
    };
    let mut out = Vec::new();
    for part in parts.iter().filter(|p| !p.trim().is_empty()) {
        let m: SecurityMode = part.parse()?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("empty mode list".into());
    }
    Ok(out)
}

/// The union of the modes' bits.
pub fn modes_of(list: &[SecurityMode]) -> Modes {
    list.iter().fold(Modes(0), |acc, m| acc.union(m.bit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bits_match_iana() {
        for (m, bit) in [
            (SecurityMode::Open, 1),
            (SecurityMode::Authenticated, 2),
            (SecurityMode::Encrypted, 4),
            (SecurityMode::Mixed, 8),
        ] {
            assert_eq!(m.bit(), Modes(bit));
            assert_eq!(SecurityMode::from_modes(Modes(bit)), Some(m));
        }
        assert_eq!(SecurityMode::from_modes(Modes(3)), None);
        assert_eq!(SecurityMode::from_modes(Modes(0)), None);
        // Extension bits beside one security mode are fine.
        assert_eq!(
            SecurityMode::from_modes(Modes(1 | 32)),
            Some(SecurityMode::Open)
        );
    }

    #[test]
    fn mixed_mode_tests_in_the_open_layout() {
        assert_eq!(SecurityMode::Mixed.test_layout(), TestLayout::OPEN);
        assert_eq!(SecurityMode::Mixed.test_security(), None);
        assert_eq!(
            SecurityMode::Authenticated.test_layout(),
            TestLayout::AUTHENTICATED
        );
    }

    #[test]
    fn mode_lists() {
        assert_eq!(
            parse_mode_list("encrypted,open,e").unwrap(),
            vec![SecurityMode::Encrypted, SecurityMode::Open]
        );
        assert!(parse_mode_list("open,bogus").is_err());
        // twping's -A letters, in their order of preference.
        assert_eq!(
            parse_mode_list("AEO").unwrap(),
            vec![
                SecurityMode::Authenticated,
                SecurityMode::Encrypted,
                SecurityMode::Open
            ]
        );
        assert_eq!(
            parse_mode_list("eo").unwrap(),
            vec![SecurityMode::Encrypted, SecurityMode::Open]
        );
        assert!(parse_mode_list("AEX").is_err());
        assert!(parse_mode_list("").is_err());
        assert_eq!(
            modes_of(&[SecurityMode::Open, SecurityMode::Mixed]),
            Modes(9)
        );
    }
}
