//! The exporter's configuration file (`-exporter-config PATH`), TOML:
//!
//! ```toml
//! [exporter]
//! allow = ["192.0.2.0/24", "2001:db8::/32", "127.0.0.1"]  # targets that may be probed
//! max_probes = 8            # probes at once; more scrapes get 503 at once
//! timeout_margin = "500ms"  # the probe ends this long before the scrape timeout
//! default_timeout = "10s"   # when the scrape has no X-Prometheus-Scrape-Timeout-Seconds
//!
//! [exporter.modules.default]
//! count = 10
//! interval = "20ms"
//! loss_timeout = "1s"
//! padding = 27
//! dscp = "EF"
//! port = 862
//! auth = "authenticated"           # as -auth; default: the strictest we hold a key for
//! keyfile = "/etc/twamp/probe.pfs" # twamp-server.pfs format; the secret stays in this file
//! user = "probe"
//! light = false                   # true: TWAMP-Light/STAMP straight to the reflector's port
//! # light_format = "stamp"         # with light: stamp (default) or twamp; ssid = N for STAMP
//! ```
//!
//! Everything lives under `[exporter]`; the exporter ignores whatever else the file holds (so a
//! later shared file is possible), while unknown keys inside `[exporter]` are errors. Secrets only come from key files named here: a scrape's URL names a module, never a
//! key.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::config::{self, KeyFile, SessionSpec, DEFAULT_CONTROL_PORT, MAX_COUNT, MIN_INTERVAL};
use crate::control::{self, SecurityMode};
use crate::error::{Error, Result};
use crate::sender::Schedule;

/// Probes at once unless the file says otherwise.
pub const DEFAULT_MAX_PROBES: usize = 4;
/// The probe must answer this long before Prometheus gives up on the scrape.
pub const DEFAULT_TIMEOUT_MARGIN: Duration = Duration::from_millis(500);
/// The scrape timeout assumed when the request does not say (Prometheus' default is 10 s).
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// Module defaults: a short train, so a probe fits in a scrape.
pub const DEFAULT_PROBE_COUNT: u32 = 10;
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_PROBE_LOSS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct File {
    exporter: Option<Section>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    allow: Vec<String>,
    max_probes: Option<usize>,
    timeout_margin: Option<String>,
    default_timeout: Option<String>,
    #[serde(default)]
    modules: BTreeMap<String, RawModule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModule {
    count: Option<u32>,
    interval: Option<String>,
    loss_timeout: Option<String>,
    connect_timeout: Option<String>,
    padding: Option<u32>,
    dscp: Option<toml::Value>,
    port: Option<u16>,
    auth: Option<String>,
    keyfile: Option<String>,
    user: Option<String>,
    #[serde(default)]
    light: bool,
    light_format: Option<String>,
    ssid: Option<u16>,
}

/// A network of the allowlist: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Net {
    /// `192.0.2.0/24`, `2001:db8::/32`, or a bare address (one host).
    pub fn parse(s: &str) -> std::result::Result<Net, String> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("'{s}' is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{s}': prefix length 0 to {max}"))?,
            None => max,
        };
        Ok(Net { addr, prefix })
    }

    /// Whether `ip` (IPv4-mapped IPv6 read as IPv4) is inside.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = crate::addr::unmap_ip(ip);
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => (
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(i)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), self.prefix),
            _ => return false,
        };
        let mask = if bits == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(bits))
        };
        a & mask == b & mask
    }
}

/// One named set of measurement settings (`module=NAME`).
pub struct Module {
    pub name: String,
    pub spec: SessionSpec,
    pub port: u16,
    pub connect_timeout: Duration,
    pub auth: Vec<SecurityMode>,
    pub user: Option<String>,
    pub secret: Option<Zeroizing<Vec<u8>>>,
    /// TWAMP-Light / STAMP instead of TWAMP-Control (`light = true`).
    pub light: Option<config::LightClient>,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("port", &self.port)
            .field("auth", &self.auth)
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("light", &self.light)
            .finish()
    }
}

/// `-mode exporter`: where to listen, the modules, the bounds.
#[derive(Debug)]
pub struct ExporterConfig {
    pub listen: std::net::SocketAddr,
    pub allow: Vec<Net>,
    pub max_probes: usize,
    pub timeout_margin: Duration,
    pub default_timeout: Duration,
    pub modules: BTreeMap<String, Module>,
    pub logging: config::Logging,
}

fn dur(v: &Option<String>, default: Duration, what: &str) -> Result<Duration> {
    match v {
        Some(s) => config::parse_duration(s).map_err(|e| Error::Config(format!("{what}: {e}"))),
        None => Ok(default),
    }
}

impl ExporterConfig {
    /// Reads `[exporter]` of the TOML `text` (`path` for messages).
    pub fn parse(
        text: &str,
        path: &str,
        listen: std::net::SocketAddr,
        logging: config::Logging,
    ) -> Result<Self> {
        let bad = |e: String| Error::Config(format!("{path}: {e}"));
        let file: File = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let s = file
            .exporter
            .ok_or_else(|| bad("no [exporter] table".into()))?;
        let allow = s
            .allow
            .iter()
            .map(|n| Net::parse(n))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("allow: {e}")))?;
        if allow.is_empty() {
            log::warn!("{path}: no [exporter] allow list: every target will be refused");
        }
        let max_probes = match s.max_probes {
            Some(0) => return Err(bad("max_probes: must be at least 1".into())),
            Some(n) => n,
            None => DEFAULT_MAX_PROBES,
        };
        let mut modules = BTreeMap::new();
        for (name, raw) in s.modules {
            let m =
                module(&name, raw).map_err(|e| bad(format!("[exporter.modules.{name}] {e}")))?;
            modules.insert(name, m);
        }
        if modules.is_empty() {
            return Err(bad("no [exporter.modules.NAME] table".into()));
        }
        Ok(ExporterConfig {
            listen,
            allow,
            max_probes,
            timeout_margin: dur(&s.timeout_margin, DEFAULT_TIMEOUT_MARGIN, "timeout_margin")
                .map_err(|e| bad(e.to_string()))?,
            default_timeout: dur(
                &s.default_timeout,
                DEFAULT_SCRAPE_TIMEOUT,
                "default_timeout",
            )
            .map_err(|e| bad(e.to_string()))?,
            modules,
            logging,
        })
    }

    pub fn load(
        path: &str,
        listen: std::net::SocketAddr,
        logging: config::Logging,
    ) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("-exporter-config {path}: {e}")))?;
        Self::parse(&text, path, listen, logging)
    }

    /// Whether every one of `addrs` is inside the allowlist (an empty list allows nothing).
    pub fn allowed(&self, addrs: &[IpAddr]) -> bool {
        !addrs.is_empty()
            && addrs
                .iter()
                .all(|a| self.allow.iter().any(|n| n.contains(*a)))
    }
}

fn module(name: &str, m: RawModule) -> std::result::Result<Module, String> {
    if !m.light && (m.light_format.is_some() || m.ssid.is_some()) {
        return Err("light_format and ssid go with light = true".into());
    }
    let count = m.count.unwrap_or(DEFAULT_PROBE_COUNT);
    if count == 0 || count > MAX_COUNT {
        return Err(format!("count {count}: 1 to {MAX_COUNT}"));
    }
    let interval = match &m.interval {
        Some(s) => config::parse_duration(s).map_err(|e| format!("interval: {e}"))?,
        None => DEFAULT_PROBE_INTERVAL,
    };
    if interval < MIN_INTERVAL {
        return Err(format!("interval: the shortest is {MIN_INTERVAL:?}"));
    }
    let loss_timeout = match &m.loss_timeout {
        Some(s) => config::parse_duration(s).map_err(|e| format!("loss_timeout: {e}"))?,
        None => DEFAULT_PROBE_LOSS_TIMEOUT,
    };
    let connect_timeout = match &m.connect_timeout {
        Some(s) => config::parse_duration(s).map_err(|e| format!("connect_timeout: {e}"))?,
        None => config::DEFAULT_CONNECT_TIMEOUT,
    };
    let dscp = match &m.dscp {
        None => 0,
        Some(toml::Value::Integer(n)) => crate::cli::parse_dscp(&n.to_string())?,
        Some(toml::Value::String(s)) => crate::cli::parse_dscp(s)?,
        Some(other) => {
            return Err(format!(
                "dscp: a {} is not a DSCP (a number or a name such as EF)",
                other.type_str()
            ))
        }
    };
    let mut user = m.user.clone();
    let secret = match &m.keyfile {
        Some(p) => {
            let keys = KeyFile::load(p).map_err(|e| e.to_string())?;
            if user.is_none() {
                user = keys.single_identity().map(str::to_string);
            }
            let u = user
                .as_deref()
                .ok_or("keyfile holds several identities: choose one with user")?;
            Some(Zeroizing::new(
                keys.get(u)
                    .ok_or_else(|| format!("identity '{u}' not in key file {p}"))?
                    .to_vec(),
            ))
        }
        None => None,
    };
    let auth = match &m.auth {
        Some(list) => control::parse_mode_list(list).map_err(|e| format!("auth: {e}"))?,
        None => SecurityMode::STRICTEST_FIRST.to_vec(),
    };
    if !m.light && secret.is_none() && auth.iter().all(|a| a.needs_key()) {
        return Err("auth: these modes need a keyfile".into());
    }
    let light = if m.light {
        use crate::light::sender::Format;
        use crate::wire::stamp::StampMode;
        let format = match (m.light_format.as_deref(), &secret) {
            (Some("twamp"), Some(_)) => return Err(
                "TWAMP-Light has no authenticated mode: light_format = \"stamp\" with a keyfile"
                    .into(),
            ),
            (Some("twamp"), None) => Format::TwampLight,
            (None | Some("stamp"), Some(_)) => Format::Stamp(StampMode::Authenticated),
            (None | Some("stamp"), None) => Format::Stamp(StampMode::Unauthenticated),
            (Some(other), _) => return Err(format!("light_format '{other}': stamp or twamp")),
        };
        if format == Format::TwampLight && m.ssid.is_some() {
            return Err("ssid is STAMP's: not with light_format = \"twamp\"".into());
        }
        Some(config::LightClient {
            format,
            ssid: m.ssid.unwrap_or(1),
            tlvs: Vec::new(),
        })
    } else {
        None
    };
    Ok(Module {
        name: name.to_string(),
        spec: SessionSpec {
            count,
            schedule: Schedule::Periodic { interval },
            loss_timeout,
            padding: m.padding,
            dscp,
            ..SessionSpec::default()
        },
        port: m.port.unwrap_or(DEFAULT_CONTROL_PORT),
        connect_timeout,
        auth,
        user,
        secret,
        light,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logging() -> config::Logging {
        config::Logging {
            level: log::LevelFilter::Info,
            file: None,
        }
    }

    #[test]
    fn networks() {
        let n = Net::parse("192.0.2.0/24").unwrap();
        assert!(n.contains("192.0.2.200".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()), "v4-mapped");
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let h = Net::parse("::1").unwrap();
        assert_eq!(h.prefix, 128);
        assert!(h.contains("::1".parse().unwrap()));
        assert!(Net::parse("0.0.0.0/0")
            .unwrap()
            .contains("203.0.113.9".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x/8", "::/129", ""] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_file() {
        let text = r#"
            [server]
            ignored = true
            [exporter]
            allow = ["127.0.0.0/8"]
            max_probes = 2
            [exporter.modules.fast]
            count = 5
            interval = "10ms"
            dscp = "EF"
            [exporter.modules.plain]
            [exporter.modules.stamp]
            light = true
            ssid = 7
        "#;
        let c = ExporterConfig::parse(text, "t.toml", "127.0.0.1:0".parse().unwrap(), logging())
            .unwrap();
        assert_eq!(c.max_probes, 2);
        let fast = &c.modules["fast"];
        assert_eq!((fast.spec.count, fast.spec.dscp), (5, 46));
        assert_eq!(c.modules["plain"].spec.count, DEFAULT_PROBE_COUNT);
        assert!(c.modules["plain"].light.is_none());
        assert_eq!(c.modules["stamp"].light.as_ref().map(|l| l.ssid), Some(7));
        assert!(c.allowed(&["127.0.0.1".parse().unwrap()]));
        assert!(!c.allowed(&["127.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()]));
        assert!(!c.allowed(&[]));
        for bad in [
            "[exporter]\nallow=[]\nbogus=1\n[exporter.modules.a]\n",
            "[exporter]\n[exporter.modules.a]\nlight = true\nlight_format = \"owamp\"\n",
            "[exporter]\n[exporter.modules.a]\nssid = 3\n",
            "[exporter]\n[exporter.modules.a]\nauth = \"encrypted\"\n",
            "[exporter]\n",
            "[other]\n",
        ] {
            assert!(
                ExporterConfig::parse(bad, "t", "127.0.0.1:0".parse().unwrap(), logging()).is_err(),
                "{bad}"
            );
        }
    }
}
