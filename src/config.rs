//! Validated configuration, made once from the command line ([`Mode::from_cli`]). Defaults are
//! named constants here; README.md and man/twamp.1 quote them.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::cli::{Cli, FormatArg, LightFormatArg, ModeArg, ScheduleArg};
use crate::control::access::{self, Access};
use crate::control::{self, SecurityMode};
use crate::error::{Error, Result};
use crate::sender::Schedule;
use crate::wire::Modes;

/// TWAMP-Control's well-known TCP port (RFC 5357 §3.1; RFC 8545).
pub const DEFAULT_CONTROL_PORT: u16 = 862;
pub const DEFAULT_COUNT: u32 = 100;
/// The most test packets one session may send. Results are kept per packet (about 100 octets
/// each while measuring, a few hundred while summarising), so the count bounds the memory a
/// run can take: a million packets is under 300 MiB. Larger counts are a usage error.
pub const MAX_COUNT: u32 = 1_000_000;
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
pub const DEFAULT_LOSS_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// REFWAIT and SERVWAIT defaults (RFC 5357 §3.1, §4.2: 900 seconds).
pub const DEFAULT_REFWAIT: Duration = Duration::from_secs(900);
pub const DEFAULT_SERVWAIT: Duration = Duration::from_secs(900);
/// twampd's default PBKDF2 Count (`_OWP_DEFAULT_PBKDF2_COUNT`), kept for interop.
pub const DEFAULT_PBKDF2_COUNT: u32 = 2048;
/// Smallest interval we schedule; shorter would only measure our own scheduler.
pub const MIN_INTERVAL: Duration = Duration::from_micros(100);
/// Control connections that have finished the handshake (Server-Start sent), in all and from
/// one client (an IPv4 address or an IPv6 /64). Past either the Server answers with a
/// Server-Greeting whose Modes is 0 (RFC 4656 §3.1: the Server does not wish to communicate)
/// and closes. Juniper's TWAMP server defaults to 64 per client.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// Connections still in the handshake (greeting sent, no valid Set-Up-Response yet) have a
/// budget of their own; when it is full the oldest of them (of the client holding the most)
/// is dropped for the newcomer, so a flood of silent connections cannot lock anyone out.
pub const DEFAULT_MAX_HANDSHAKES: usize = 64;
/// Set-Up-Response must arrive within this of the Server-Greeting (not SERVWAIT).
pub const DEFAULT_SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Once a control message has begun, the rest must arrive within this (slowloris); every
/// control write must complete within it too.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Test sessions (accepted or running) in all, per control connection, and per client (an
/// IPv4 address or an IPv6 /64). A refused Request-TW-Session gets Accept 5 (temporary
/// resource limitation, RFC 4656 §3.3).
pub const DEFAULT_MAX_SESSIONS: usize = 1024;
pub const DEFAULT_MAX_SESSIONS_PER_CONNECTION: usize = 64;
pub const DEFAULT_MAX_SESSIONS_PER_CLIENT: usize = 256;
/// Reflector engine threads: each waits on many sessions' sockets at once.
pub const DEFAULT_ENGINE_THREADS: usize = 1;
/// UDP ports for Session-Reflectors: twampd's shipped example range (`testports`), above the
/// privileged ports and below Linux's ephemeral range. A requested Receiver Port is granted
/// only inside it.
pub const DEFAULT_TEST_PORTS: (u16, u16) = (18760, 19960);
/// Receive buffer for reflector sockets: absorbs bursts. Linux's default (about 200 KiB) holds
/// some 2 ms of 100-octet datagrams at 100,000 packets/s; 1 MiB holds about 10 ms.
pub const REFLECTOR_RCVBUF: usize = 1 << 20;

/// Log verbosity from -v / -q.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logging {
    pub level: log::LevelFilter,
    pub file: Option<PathBuf>,
}

#[derive(Debug)]
pub enum Mode {
    Server(Box<ServerConfig>),
    Client(Box<ClientConfig>),
    Plot(PlotConfig),
    /// `-mode exporter` (src/exporter/).
    Exporter(crate::exporter::ExporterConfig),
    /// `-mode client` with several targets (src/mesh.rs).
    Mesh(crate::mesh::MeshConfig),
}

/// `-mode plot`: saved records in, one SVG out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotConfig {
    /// Files of records (`-` is standard input).
    pub inputs: Vec<PathBuf>,
    pub output: PathBuf,
}

impl PlotConfig {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        plot_available()?;
        if !cli.server.is_empty() || cli.target.is_some() || cli.listen.is_some() {
            return Err(Error::Config(
                "-mode plot draws saved records: give them with -input, not a server".into(),
            ));
        }
        if cli.input.is_empty() {
            return Err(Error::Config(
                "-mode plot needs -input FILE (records written with -format packets or json)"
                    .into(),
            ));
        }
        let output = cli
            .plot
            .as_ref()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Config("-mode plot needs -plot FILE.svg".into()))?;
        Ok(PlotConfig {
            inputs: cli.input.iter().map(PathBuf::from).collect(),
            output,
        })
    }
}

/// Whether this build can draw (`-plot`, `-mode plot`): the cargo feature `plot`.
fn plot_available() -> Result<()> {
    if cfg!(feature = "plot") {
        Ok(())
    } else {
        Err(Error::Config(
            "this twamp was built without plots (cargo feature `plot`)".into(),
        ))
    }
}

/// Identities and pass-phrases, twampd's `twamp-server.pfs` format (one `identity
/// hex-passphrase` per line, `#` comments). Pass-phrases are zeroized when dropped.
#[derive(Default)]
pub struct KeyFile {
    keys: HashMap<String, Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Identities are not secret; pass-phrases are and never print.
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyFile")
            .field("identities", &ids)
            .finish_non_exhaustive()
    }
}

impl KeyFile {
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let mut keys = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(id), Some(hex), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!(
                    "line {}: expected 'identity hex-passphrase'",
                    i + 1
                ));
            };
            if id.len() > 80 {
                return Err(format!("line {}: identity longer than 80 octets", i + 1));
            }
            let secret =
                decode_hex(hex).ok_or_else(|| format!("line {}: pass-phrase is not hex", i + 1))?;
            keys.insert(id.to_string(), secret);
        }
        Ok(KeyFile { keys })
    }

    pub fn load(path: &str) -> Result<Self> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("cannot read key file {path}: {e}")))?,
        );
        KeyFile::parse(&text).map_err(|e| Error::Config(format!("key file {path}: {e}")))
    }

    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.keys.get(id).map(|k| k.as_slice())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The only identity, when there is exactly one (the client's default `-user`).
    pub fn single_identity(&self) -> Option<&str> {
        (self.keys.len() == 1)
            .then(|| self.keys.keys().next().map(String::as_str))
            .flatten()
    }
}

fn decode_hex(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 2));
    for pair in s.as_bytes().chunks(2) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out.push((hi * 16 + lo) as u8);
    }
    Some(out)
}

/// The Server's configuration. `Default` is what `-mode server` runs with no flags, so tests
/// change only the fields they care about (`ServerConfig { refwait, ..Default::default() }`).
#[derive(Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub v6_only: bool,
    pub refwait: Duration,
    pub servwait: Duration,
    /// UDP ports for Session-Reflectors, LO-HI; `None` (`-test-ports 0`): ports the OS picks
    /// (its ephemeral range), and a requested port is never granted.
    pub test_ports: Option<(u16, u16)>,
    /// Security modes offered in the Server-Greeting.
    pub modes: Modes,
    /// Extension bits offered beside them (`-extensions`; default all that are implemented:
    /// RFC 5938, RFC 6038, RFC 7750).
    pub extensions: Modes,
    pub keys: KeyFile,
    pub pbkdf2_count: u32,
    pub daemon: bool,
    pub pidfile: Option<PathBuf>,
    pub logging: Logging,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_handshakes: usize,
    pub setup_timeout: Duration,
    pub message_timeout: Duration,
    pub max_sessions: usize,
    pub max_sessions_per_connection: usize,
    pub max_sessions_per_client: usize,
    pub engine_threads: usize,
    /// The TWAMP-Light / STAMP reflector (`-light`), if on.
    pub light: Option<LightService>,
    /// Serve only the light reflector, no TWAMP-Control listener (`-light-only`).
    pub light_only: bool,
    /// Who may connect, and with which modes (`-allow`, `-deny`, `-open-from`).
    pub access: Access,
    /// The user and group to run as once the sockets are bound (`-run-as`).
    pub run_as: Option<RunAs>,
    /// The configuration file read (`-config`), and the command line it was read with, so
    /// SIGHUP can read it again.
    pub config_file: Option<PathBuf>,
    pub source: Option<Box<Cli>>,
    /// Log to syslog even in the foreground (`-syslog`).
    pub syslog: bool,
    /// `-metrics`: where to serve Prometheus metrics (none by default).
    pub metrics: Option<SocketAddr>,
}

/// `-run-as USER[:GROUP]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

impl RunAs {
    /// Looks USER (and GROUP, else USER's primary group) up in the system's databases.
    pub fn resolve(spec: &str) -> std::result::Result<RunAs, String> {
        use nix::unistd::{Group, User};
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if user.is_empty() || group.is_some_and(str::is_empty) {
            return Err(format!("'{spec}' is not USER or USER:GROUP"));
        }
        let u = User::from_name(user)
            .map_err(|e| format!("cannot look up user '{user}': {e}"))?
            .ok_or_else(|| format!("no user '{user}'"))?;
        let g = match group {
            Some(name) => Group::from_name(name)
                .map_err(|e| format!("cannot look up group '{name}': {e}"))?
                .ok_or_else(|| format!("no group '{name}'"))?,
            None => Group::from_gid(u.gid)
                .ok()
                .flatten()
                .unwrap_or_else(|| Group {
                    name: u.gid.to_string(),
                    passwd: Default::default(),
                    gid: u.gid,
                    mem: Vec::new(),
                }),
        };
        Ok(RunAs {
            user: u.name,
            uid: u.uid.as_raw(),
            group: g.name,
            gid: g.gid.as_raw(),
        })
    }
}

/// What SIGHUP changes in a running server: the settings that are safe to change live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSettings {
    pub access: Access,
    pub level: log::LevelFilter,
}

impl ServerConfig {
    /// Reads the configuration file again, with the same flags winning over it (SIGHUP), and
    /// returns what may change while serving: the access lists and the log level. Sockets,
    /// keys, limits and the user stay as they are until the next start (the key file may no
    /// longer be readable once root is dropped). `None` without `-config`.
    pub fn reload_live(&self) -> Option<Result<LiveSettings>> {
        let (path, given) = (self.config_file.as_ref()?, self.source.as_deref()?);
        Some(crate::config_file::apply(given, path).and_then(|cli| {
            Ok(LiveSettings {
                access: access_of(&cli)?,
                level: logging(&cli, log::LevelFilter::Info).level,
            })
        }))
    }
}

fn access_of(cli: &Cli) -> Result<Access> {
    Ok(Access {
        allow: networks(&cli.allow, "allow")?,
        deny: networks(&cli.deny, "deny")?,
        open_from: if cli.open_from.is_empty() {
            None
        } else {
            Some(networks(&cli.open_from, "open-from")?)
        },
    })
}

/// The server's TWAMP-Light / STAMP reflector (RFC 5357 Appendix I, RFC 8762).
#[derive(Debug, Clone)]
pub struct LightService {
    /// UDP port: 862 by default (RFC 8762 §4.1).
    pub port: u16,
    /// Copy the senders' Sequence Numbers instead of counting (RFC 8762 §4).
    pub stateless: bool,
    /// Senders remembered at once.
    pub max_senders: usize,
    /// A sender silent this long is forgotten.
    pub idle: Duration,
    /// The identity whose pass-phrase keys STAMP authenticated mode.
    pub key_id: Option<String>,
}

/// A TWAMP-Light / STAMP Session-Sender's settings (`-light` on the client).
#[derive(Debug, Clone)]
pub struct LightClient {
    pub format: crate::light::sender::Format,
    /// SSID of the first session (RFC 8972 §3); the next sessions count up from it.
    pub ssid: u16,
    pub tlvs: Vec<crate::light::sender::TlvRequest>,
}

/// Parses `-tlv`: the TLVs a STAMP Session-Sender asks for (RFC 8972 §4, RFC 9503).
pub fn parse_tlvs(s: &str) -> std::result::Result<Vec<crate::light::sender::TlvRequest>, String> {
    use crate::light::sender::TlvRequest as T;
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.to_ascii_lowercase().as_str() {
            "location" => Ok(T::Location),
            "timestamp" => Ok(T::TimestampInformation),
            "cos" => Ok(T::ClassOfService { dscp1: 0 }),
            "direct" => Ok(T::DirectMeasurement),
            "access" => Ok(T::AccessReport {
                access_id: 1,
                return_code: 1,
            }),
            "follow-up" => Ok(T::FollowUpTelemetry),
            other => Err(format!(
                "unknown TLV '{other}' (location, timestamp, cos, direct, access, follow-up)"
            )),
        })
        .collect()
}

/// The TWAMP-Light / STAMP defaults: the well-known port (RFC 8762 §4.1, RFC 8545), and
/// bounds on what senders can make the reflector remember.
pub const DEFAULT_LIGHT_PORT: u16 = 862;
pub const DEFAULT_LIGHT_SENDERS: usize = crate::light::DEFAULT_MAX_SENDERS;
pub const DEFAULT_LIGHT_IDLE: Duration = crate::light::DEFAULT_IDLE;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::new(IpAddr::from([0u16; 8]), DEFAULT_CONTROL_PORT),
            v6_only: false,
            refwait: DEFAULT_REFWAIT,
            servwait: DEFAULT_SERVWAIT,
            test_ports: Some(DEFAULT_TEST_PORTS),
            modes: Modes::UNAUTHENTICATED,
            extensions: control::EXTENSIONS,
            keys: KeyFile::default(),
            pbkdf2_count: DEFAULT_PBKDF2_COUNT,
            daemon: false,
            pidfile: None,
            logging: Logging {
                level: log::LevelFilter::Info,
                file: None,
            },
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_handshakes: DEFAULT_MAX_HANDSHAKES,
            setup_timeout: DEFAULT_SETUP_TIMEOUT,
            message_timeout: DEFAULT_MESSAGE_TIMEOUT,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_connection: DEFAULT_MAX_SESSIONS_PER_CONNECTION,
            max_sessions_per_client: DEFAULT_MAX_SESSIONS_PER_CLIENT,
            engine_threads: DEFAULT_ENGINE_THREADS,
            light: None,
            light_only: false,
            access: Access::default(),
            run_as: None,
            config_file: None,
            source: None,
            syslog: false,
            metrics: None,
        }
    }
}

/// IP version restriction (-4 / -6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
    Packets,
    Twping,
}

/// One test session as the Control-Client asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpec {
    /// The most packets to send.
    pub count: u32,
    pub schedule: Schedule,
    /// Send for this long instead of `count` packets (`-duration`).
    pub duration: Option<Duration>,
    /// Wait this long after Start-Ack before the first packet (twping `-z`).
    pub start_delay: Duration,
    /// How long to wait for late replies after the last packet; also the reflector's Timeout
    /// after Stop-Sessions (RFC 5357 §3.5).
    pub loss_timeout: Duration,
    /// None: the size difference of the chosen mode (27 or 64).
    pub padding: Option<u32>,
    /// The whole UDP payload instead of `padding` (`-size`): padding = size − the mode's
    /// sender base, worked out once the mode is known.
    pub size: Option<u32>,
    /// DSCP of the test packets both ways (RFC 2474), also in the Type-P Descriptor.
    pub dscp: u8,
    /// TTL / Hop Limit of our test packets (255: hops can be counted as 255 − TTL).
    pub ttl: u8,
    /// Don't Fragment on our test packets.
    pub df: bool,
}

impl Default for SessionSpec {
    fn default() -> Self {
        SessionSpec {
            count: DEFAULT_COUNT,
            schedule: Schedule::Periodic {
                interval: DEFAULT_INTERVAL,
            },
            duration: None,
            start_delay: Duration::ZERO,
            loss_timeout: DEFAULT_LOSS_TIMEOUT,
            padding: None,
            size: None,
            dscp: 0,
            ttl: crate::net::TEST_TTL as u8,
            df: false,
        }
    }
}

/// What the Control-Client asks for beyond RFC 5357; each is used only if the Server offers it,
/// and the report notes each one asked for and not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientExtensions {
    /// RFC 6038 Reflect Octets with this Length of padding to reflect (`-reflect-octets N`).
    pub reflect_octets: Option<u16>,
    /// RFC 6038 Symmetrical Size (`-symmetrical`).
    pub symmetrical: bool,
    /// RFC 7750 DSCP and ECN Monitoring (`-dscp-ecn`).
    pub dscp_ecn: bool,
    /// RFC 5938 Individual Session Control (`-individual`): a session that ends early is
    /// stopped while the others go on. Off by default like the others: it replaces
    /// Start-Sessions and Stop-Sessions on the wire, which tools such as Wireshark 4.0 do not
    /// decode.
    pub individual: bool,
}

impl ClientExtensions {
    /// The Modes bits asked for.
    pub fn modes(&self) -> Modes {
        let mut m = Modes(0);
        for (on, bit) in [
            (self.individual, Modes::INDIVIDUAL_SESSION_CONTROL),
            (self.reflect_octets.is_some(), Modes::REFLECT_OCTETS),
            (self.symmetrical, Modes::SYMMETRICAL_SIZE),
            (self.dscp_ecn, Modes::DSCP_ECN_MONITORING),
        ] {
            if on {
                m = m.union(bit);
            }
        }
        m
    }
}

pub struct ClientConfig {
    /// The host as typed (for resolving and for reports).
    pub host: String,
    pub port: u16,
    pub family: Family,
    /// TCP connect and control-reply timeout.
    pub connect_timeout: Duration,
    /// The test sessions to run on one control connection, at the same time (one by default).
    pub sessions: Vec<SessionSpec>,
    /// Local address for the control connection and the test sockets (`-source`).
    pub source: Option<IpAddr>,
    /// Local UDP ports for the test sockets (`-test-ports`).
    pub test_ports: Option<(u16, u16)>,
    /// Zero Sender and Receiver Address in Request-TW-Session (NAT; twping `-Z`).
    pub zero_addresses: bool,
    /// TWAMP-Light / STAMP instead of TWAMP (`-light`): no control connection.
    pub light: Option<LightClient>,
    /// RFC 5938 / 6038 / 7750 features to ask for.
    pub extensions: ClientExtensions,
    pub auth: Vec<SecurityMode>,
    pub user: Option<String>,
    pub secret: Option<Zeroizing<Vec<u8>>>,
    pub max_count: u32,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub header: bool,
    /// Draw a histogram of round-trip times after the summary.
    pub histogram: bool,
    /// Draw the run as an SVG into this file (`-plot`).
    pub plot: Option<PathBuf>,
    pub quiet: bool,
    pub logging: Logging,
}

impl Default for ClientConfig {
    /// One default session against `localhost:862` in the strictest mode the server offers.
    fn default() -> Self {
        ClientConfig {
            host: "localhost".into(),
            port: DEFAULT_CONTROL_PORT,
            family: Family::Any,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            sessions: vec![SessionSpec::default()],
            source: None,
            test_ports: None,
            zero_addresses: false,
            light: None,
            extensions: ClientExtensions::default(),
            auth: SecurityMode::STRICTEST_FIRST.to_vec(),
            user: None,
            secret: None,
            max_count: control::client::DEFAULT_MAX_COUNT,
            format: Format::Text,
            output: None,
            header: false,
            histogram: false,
            plot: None,
            quiet: false,
            logging: Logging {
                level: log::LevelFilter::Warn,
                file: None,
            },
        }
    }
}

impl ClientConfig {
    /// How long the run is expected to take without control overhead: the longest session's
    /// sending time plus its loss timeout.
    pub fn expected_duration(&self) -> Duration {
        self.sessions
            .iter()
            .map(|s| {
                let sending = s.duration.unwrap_or_else(|| s.schedule.span(s.count));
                s.start_delay + sending + s.loss_timeout
            })
            .max()
            .unwrap_or_default()
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("sessions", &self.sessions)
            .field("auth", &self.auth)
            .field("user", &self.user)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Parses `10ms`, `0.5s`, `1s`, `2m`, `250us`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 100ms, 0.5s, 2)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" => 1.0,
        "ms" => 1e-3,
        "us" | "µs" => 1e-6,
        "ns" => 1e-9,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{s}' (ns, us, ms, s, m, h)"
            ))
        }
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("'{s}' is too long (at most 1000000000 seconds)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `LO-HI`.
pub fn parse_port_range(s: &str) -> std::result::Result<(u16, u16), String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("'{s}' is not a port range LO-HI"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("'{p}' is not a port number (1 to 65535)"))
    };
    let (lo, hi) = (port(lo)?, port(hi)?);
    if lo == 0 || lo > hi {
        return Err(format!(
            "'{s}' is not a port range (LO-HI, LO from 1 to HI)"
        ));
    }
    Ok((lo, hi))
}

/// Splits `HOST[:PORT]`, `[V6]:PORT`, `[V6]` or a bare IPv6 literal.
pub fn split_host_port(s: &str, default_port: u16) -> std::result::Result<(String, u16), String> {
    let bad_port = |p: &str| format!("bad port '{p}' in '{s}'");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in '{s}'"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad_port(p))?,
            None if after.is_empty() => default_port,
            None => return Err(format!("unexpected '{after}' after ']' in '{s}'")),
        };
        return Ok((host.to_string(), port));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), default_port));
    }
    match s.rsplit_once(':') {
        Some((host, p)) if !host.contains(':') => {
            Ok((host.to_string(), p.parse().map_err(|_| bad_port(p))?))
        }
        Some(_) => Err(format!(
            "'{s}': write IPv6 addresses with a port as [ADDR]:PORT"
        )),
        None => Ok((s.to_string(), default_port)),
    }
}

fn dur(opt: &Option<String>, default: Duration, name: &str) -> Result<Duration> {
    match opt {
        Some(s) => parse_duration(s).map_err(|e| Error::Config(format!("-{name}: {e}"))),
        None => Ok(default),
    }
}

fn logging(cli: &Cli, default: log::LevelFilter) -> Logging {
    use log::LevelFilter::*;
    let levels = [Off, Error, Warn, Info, Debug, Trace];
    let base = levels.iter().position(|l| *l == default).unwrap_or(3);
    let idx = if cli.quiet {
        1
    } else {
        (base + cli.verbose as usize).min(5)
    };
    Logging {
        level: levels[idx],
        file: cli.logfile.as_ref().map(PathBuf::from),
    }
}

fn networks(words: &[String], name: &str) -> Result<Vec<ipnet::IpNet>> {
    access::parse_networks(words).map_err(|e| Error::Config(format!("-{name}: {e}")))
}

fn nonzero(d: Duration, name: &str) -> Result<Duration> {
    if d.is_zero() {
        return Err(Error::Config(format!("-{name}: must be more than 0")));
    }
    Ok(d)
}

fn at_least_one(v: Option<usize>, default: usize, name: &str) -> Result<usize> {
    match v {
        Some(0) => Err(Error::Config(format!("-{name}: must be at least 1"))),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

impl Mode {
    pub fn from_cli(cli: &Cli) -> Result<Mode> {
        match cli.mode {
            ModeArg::Server => {
                new_flags_in_place(cli)?;
                ServerConfig::from_cli(cli).map(|c| Mode::Server(Box::new(c)))
            }
            ModeArg::Client if crate::mesh::wanted(cli) => {
                new_flags_in_place(cli)?;
                crate::mesh::MeshConfig::from_cli(cli).map(Mode::Mesh)
            }
            ModeArg::Client => {
                new_flags_in_place(cli)?;
                ClientConfig::from_cli(cli).map(|c| Mode::Client(Box::new(c)))
            }
            ModeArg::Plot => {
                new_flags_in_place(cli)?;
                PlotConfig::from_cli(cli).map(Mode::Plot)
            }
            ModeArg::Exporter => exporter_config(cli).map(Mode::Exporter),
        }
    }
}

/// The exporter and mesh flags (the "Exporter" help section) belong to one mode each.
fn new_flags_in_place(cli: &Cli) -> Result<()> {
    let mode = match cli.mode {
        ModeArg::Server => "server",
        ModeArg::Client => "client",
        ModeArg::Plot => "plot",
        ModeArg::Exporter => "exporter",
    };
    reject(
        mode,
        &[
            ("-exporter-config", cli.exporter_config.is_some()),
            (
                "-metrics",
                cli.metrics.is_some() && cli.mode != ModeArg::Server,
            ),
            (
                "-targets",
                cli.targets.is_some() && cli.mode != ModeArg::Client,
            ),
            (
                "-parallel",
                cli.parallel.is_some() && cli.mode != ModeArg::Client,
            ),
        ],
    )
}

/// `-mode exporter`: `-listen ADDR:PORT` and `-exporter-config PATH`; no measurement flags.
fn exporter_config(cli: &Cli) -> Result<crate::exporter::ExporterConfig> {
    reject(
        "exporter",
        &[
            ("-server", !cli.server.is_empty()),
            ("a positional HOST", cli.target.is_some()),
            ("-c", cli.count.is_some()),
            ("-i", cli.interval.is_some()),
            ("-dscp", cli.dscp.is_some()),
            ("-padding", cli.padding.is_some()),
            (
                "-keyfile (name key files in the modules)",
                cli.keyfile.is_some(),
            ),
            ("-daemon", cli.daemon.is_some()),
            ("-metrics", cli.metrics.is_some()),
            ("-targets", cli.targets.is_some()),
            ("-parallel", cli.parallel.is_some()),
            ("-light (light = true in a module)", cli.light.is_some()),
        ],
    )?;
    let listen = cli
        .listen
        .as_deref()
        .unwrap_or(crate::exporter::DEFAULT_EXPORTER_LISTEN);
    let listen: SocketAddr = listen.parse().map_err(|_| {
        Error::Config(format!(
            "-listen: '{listen}' is not ADDR:PORT (e.g. 127.0.0.1:9862, [::]:9862)"
        ))
    })?;
    let path = cli.exporter_config.as_deref().ok_or_else(|| {
        Error::Config(
            "-mode exporter needs -exporter-config PATH (modules and the target allow list)".into(),
        )
    })?;
    crate::exporter::ExporterConfig::load(path, listen, logging(cli, log::LevelFilter::Info))
}

/// `-metrics ADDR:PORT` of the server.
fn metrics_addr(cli: &Cli) -> Result<Option<SocketAddr>> {
    cli.metrics
        .as_deref()
        .map(|a| {
            a.parse().map_err(|_| {
                Error::Config(format!(
                    "-metrics: '{a}' is not ADDR:PORT (e.g. 127.0.0.1:9863)"
                ))
            })
        })
        .transpose()
}

/// Flags that belong to the other mode are an error, not silently ignored.
fn reject(mode: &str, flags: &[(&str, bool)]) -> Result<()> {
    let wrong: Vec<&str> = flags
        .iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| *n)
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{} not valid with -mode {mode}",
        wrong.join(", ")
    )))
}

impl ServerConfig {
    pub fn from_cli(given: &Cli) -> Result<Self> {
        let config_file = given.config.as_ref().map(PathBuf::from);
        if config_file.as_ref().is_some_and(|p| p.is_relative()) && given.daemon == Some(true) {
            return Err(Error::Config(
                "-config must be an absolute path with -daemon (the daemon runs in /, and SIGHUP reads it again)".into(),
            ));
        }
        let merged;
        let cli = match &config_file {
            Some(p) => {
                merged = crate::config_file::apply(given, p)?;
                &merged
            }
            None => given,
        };
        if !cli.server.is_empty() {
            return Err(Error::Config(
                "-server is a client flag; the server listens with -listen".into(),
            ));
        }
        reject(
            "server",
            &[
                ("-c", cli.count.is_some()),
                ("-i", cli.interval.is_some()),
                ("-timeout", cli.timeout.is_some()),
                ("-padding", cli.padding.is_some()),
                ("-dscp", cli.dscp.is_some()),
                ("-auth", cli.auth.is_some()),
                ("-user", cli.user.is_some()),
                ("-max-count", cli.max_count.is_some()),
                ("-format", cli.format.is_some()),
                ("-output", cli.output.is_some()),
                ("-header", cli.header.is_some()),
                ("-histogram", cli.histogram.is_some()),
                ("-connect-timeout", cli.connect_timeout.is_some()),
                ("a positional HOST", cli.target.is_some()),
                ("-schedule", cli.schedule.is_some()),
                ("-duration", cli.duration.is_some()),
                ("-start-delay", cli.start_delay.is_some()),
                ("-size", cli.size.is_some()),
                ("-df", cli.df.is_some()),
                ("-ttl", cli.ttl.is_some()),
                ("-source", cli.source.is_some()),
                ("-zero-addresses", cli.zero_addresses.is_some()),
                ("-sessions", cli.sessions.is_some()),
                ("-reflect-octets", cli.reflect_octets.is_some()),
                ("-symmetrical", cli.symmetrical.is_some()),
                ("-dscp-ecn", cli.dscp_ecn.is_some()),
                ("-individual", cli.individual.is_some()),
                ("-plot", cli.plot.is_some()),
                ("-input", !cli.input.is_empty()),
                ("-light-format", cli.light_format.is_some()),
                ("-ssid", cli.ssid.is_some()),
                ("-tlv", cli.tlv.is_some()),
            ],
        )?;
        if cli.pidfile.as_deref().is_some_and(|p| !p.starts_with('/')) {
            return Err(Error::Config(
                "-pidfile must be an absolute path (the daemon runs in /)".into(),
            ));
        }
        let port = cli.port.unwrap_or(DEFAULT_CONTROL_PORT);
        let (listen, v6_only) = match (&cli.listen, cli.ipv4, cli.ipv6) {
            (Some(a), _, _) => {
                let (host, p) =
                    split_host_port(a, port).map_err(|e| Error::Config(format!("-listen: {e}")))?;
                let ip: IpAddr = host.parse().map_err(|_| {
                    Error::Config(format!("-listen: '{host}' is not an IP address"))
                })?;
                (SocketAddr::new(ip, p), cli.ipv6)
            }
            (None, true, _) => (SocketAddr::new(IpAddr::from([0u8; 4]), port), false),
            (None, _, true) => (SocketAddr::new(IpAddr::from([0u16; 8]), port), true),
            (None, false, false) => (SocketAddr::new(IpAddr::from([0u16; 8]), port), false),
        };
        let keys = match &cli.keyfile {
            Some(p) => KeyFile::load(p)?,
            None => KeyFile::default(),
        };
        let modes = match &cli.modes {
            Some(list) => {
                let list = control::parse_mode_list(list)
                    .map_err(|e| Error::Config(format!("-modes: {e}")))?;
                if keys.is_empty() && list.iter().any(|m| m.needs_key()) {
                    return Err(Error::Config(
                        "-modes: authenticated, encrypted and mixed need -keyfile".into(),
                    ));
                }
                control::modes_of(&list)
            }
            None if keys.is_empty() => Modes::UNAUTHENTICATED,
            None => Modes::SECURITY,
        };
        let extensions = match &cli.extensions {
            Some(list) => control::parse_extension_list(list)
                .map_err(|e| Error::Config(format!("-extensions: {e}")))?,
            None => control::EXTENSIONS,
        };
        let pbkdf2_count = cli.pbkdf2_count.unwrap_or(DEFAULT_PBKDF2_COUNT);
        if pbkdf2_count < 1024 || !pbkdf2_count.is_power_of_two() {
            return Err(Error::Config(format!(
                "-pbkdf2-count {pbkdf2_count}: must be a power of two, 1024 or more"
            )));
        }
        let test_ports = match cli.test_ports.as_deref().map(str::trim) {
            Some("0") => None,
            Some(r) => {
                Some(parse_port_range(r).map_err(|e| Error::Config(format!("-test-ports: {e}")))?)
            }
            None => Some(DEFAULT_TEST_PORTS),
        };
        let light_only = cli.light_only.unwrap_or(false);
        let light_on = cli.light.unwrap_or(false) || cli.light_port.is_some() || light_only;
        let light = if light_on {
            if let Some(id) = &cli.light_key {
                if keys.get(id).is_none() {
                    return Err(Error::Config(format!(
                        "-light-key: identity '{id}' is not in -keyfile"
                    )));
                }
            }
            Some(LightService {
                port: cli.light_port.unwrap_or(DEFAULT_LIGHT_PORT),
                stateless: cli.light_stateless.unwrap_or(false),
                max_senders: cli.light_senders.unwrap_or(DEFAULT_LIGHT_SENDERS),
                idle: dur(&cli.light_idle, DEFAULT_LIGHT_IDLE, "light-idle")?,
                key_id: cli.light_key.clone(),
            })
        } else {
            let stray = [
                ("-light-stateless", cli.light_stateless.is_some()),
                ("-light-senders", cli.light_senders.is_some()),
                ("-light-idle", cli.light_idle.is_some()),
                ("-light-key", cli.light_key.is_some()),
            ];
            if let Some((f, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(Error::Config(format!("{f} goes with -light")));
            }
            None
        };
        let daemon = cli.daemon.unwrap_or(false);
        if daemon && cli.logfile.as_deref().is_some_and(|p| !p.starts_with('/')) {
            return Err(Error::Config(
                "-logfile must be an absolute path with -daemon (the daemon runs in /)".into(),
            ));
        }
        Ok(ServerConfig {
            listen,
            v6_only,
            refwait: dur(&cli.refwait, DEFAULT_REFWAIT, "refwait")?,
            servwait: dur(&cli.servwait, DEFAULT_SERVWAIT, "servwait")?,
            test_ports,
            modes,
            extensions,
            keys,
            pbkdf2_count,
            daemon,
            pidfile: cli.pidfile.as_ref().map(PathBuf::from),
            logging: logging(cli, log::LevelFilter::Info),
            max_connections: cli.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            max_connections_per_client: cli
                .max_connections_per_client
                .unwrap_or(DEFAULT_MAX_CONNECTIONS_PER_CLIENT),
            max_handshakes: at_least_one(
                cli.max_handshakes,
                DEFAULT_MAX_HANDSHAKES,
                "max-handshakes",
            )?,
            setup_timeout: nonzero(
                dur(&cli.setup_timeout, DEFAULT_SETUP_TIMEOUT, "setup-timeout")?,
                "setup-timeout",
            )?,
            message_timeout: nonzero(
                dur(
                    &cli.message_timeout,
                    DEFAULT_MESSAGE_TIMEOUT,
                    "message-timeout",
                )?,
                "message-timeout",
            )?,
            max_sessions: cli.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
            max_sessions_per_connection: cli
                .max_sessions_per_connection
                .unwrap_or(DEFAULT_MAX_SESSIONS_PER_CONNECTION),
            max_sessions_per_client: cli
                .max_sessions_per_client
                .unwrap_or(DEFAULT_MAX_SESSIONS_PER_CLIENT),
            engine_threads: match cli.engine_threads {
                Some(n @ 1..=64) => n,
                Some(n) => {
                    return Err(Error::Config(format!(
                        "-engine-threads {n}: must be 1 to 64"
                    )))
                }
                None => DEFAULT_ENGINE_THREADS,
            },
            light,
            light_only,
            access: access_of(cli)?,
            run_as: cli
                .run_as
                .as_deref()
                .map(RunAs::resolve)
                .transpose()
                .map_err(|e| Error::Config(format!("-run-as: {e}")))?,
            config_file,
            source: Some(Box::new(given.clone())),
            syslog: cli.syslog.unwrap_or(false),
            metrics: metrics_addr(cli)?,
        })
    }
}

impl ClientConfig {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        reject(
            "client",
            &[
                ("-listen", cli.listen.is_some()),
                ("-daemon", cli.daemon.is_some()),
                ("-pidfile", cli.pidfile.is_some()),
                ("-config", cli.config.is_some()),
                ("-allow", !cli.allow.is_empty()),
                ("-deny", !cli.deny.is_empty()),
                ("-open-from", !cli.open_from.is_empty()),
                ("-run-as", cli.run_as.is_some()),
                ("-syslog", cli.syslog.is_some()),
                ("-refwait", cli.refwait.is_some()),
                ("-servwait", cli.servwait.is_some()),
                ("-modes", cli.modes.is_some()),
                ("-extensions", cli.extensions.is_some()),
                ("-pbkdf2-count", cli.pbkdf2_count.is_some()),
                ("-max-connections", cli.max_connections.is_some()),
                (
                    "-max-connections-per-client",
                    cli.max_connections_per_client.is_some(),
                ),
                ("-input", !cli.input.is_empty()),
                ("-light-port", cli.light_port.is_some()),
                ("-light-only", cli.light_only.is_some()),
                ("-light-stateless", cli.light_stateless.is_some()),
                ("-light-senders", cli.light_senders.is_some()),
                ("-light-idle", cli.light_idle.is_some()),
            ],
        )?;
        let server = match (cli.server.as_slice(), &cli.target) {
            ([s], None) => s.as_str(),
            ([], Some(s)) => s.as_str(),
            (_, Some(t)) => {
                return Err(Error::Config(format!(
                    "the server is given twice: -server and '{t}'"
                )))
            }
            ([], None) => {
                return Err(Error::Config(
                    "-mode client needs -server HOST[:PORT] (or HOST[:PORT] alone)".into(),
                ))
            }
            ([..], None) => {
                return Err(Error::Config(
                    "several -server: measure them as a mesh (crate::mesh)".into(),
                ))
            }
        };
        let (host, port) = split_host_port(server, cli.port.unwrap_or(DEFAULT_CONTROL_PORT))
            .map_err(|e| Error::Config(format!("-server: {e}")))?;
        let family = match (cli.ipv4, cli.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        };
        let count = cli.count.unwrap_or(DEFAULT_COUNT);
        if count == 0 || count > MAX_COUNT {
            return Err(Error::Config(format!(
                "-c {count}: a session sends 1 to {MAX_COUNT} packets (results are kept per packet)"
            )));
        }
        let interval = dur(&cli.interval, DEFAULT_INTERVAL, "i")?;
        if interval < MIN_INTERVAL {
            return Err(Error::Config(format!(
                "-i: the shortest interval is {MIN_INTERVAL:?}"
            )));
        }
        let dscp = cli.dscp.unwrap_or(0); // clap keeps it within 0..=63
        if let Some(p) = cli.padding {
            if p > control::server::MAX_TEST_PACKET - 48 {
                return Err(Error::Config(format!(
                    "-padding {p}: too large for a UDP datagram (at most {})",
                    control::server::MAX_TEST_PACKET - 48
                )));
            }
        }
        // Secrets never come from the command line (they would show in ps): a key file, or
        // the environment.
        // -light-key names the STAMP key's identity the way -user names TWAMP's.
        let mut user = cli.user.clone().or_else(|| cli.light_key.clone());
        let secret =
            match &cli.keyfile {
                Some(p) => {
                    let keys = KeyFile::load(p)?;
                    if user.is_none() {
                        user = keys.single_identity().map(str::to_string);
                    }
                    match &user {
                        Some(u) => Some(Zeroizing::new(
                            keys.get(u)
                                .ok_or_else(|| {
                                    Error::Config(format!("identity '{u}' not in key file {p}"))
                                })?
                                .to_vec(),
                        )),
                        None => {
                            return Err(Error::Config(
                                "-keyfile holds several identities: choose one with -user".into(),
                            ))
                        }
                    }
                }
                // The environment's pass-phrase goes with -user. Without -user it would silently
                // measure in open mode, which is not what whoever set it asked for.
                None => match std::env::var("TWAMP_PASSPHRASE")
                    .ok()
                    .filter(|s| !s.is_empty())
                {
                    Some(p) if user.is_some() => Some(Zeroizing::new(p.into_bytes())),
                    Some(_) => return Err(Error::Config(
                        "TWAMP_PASSPHRASE is set but -user is not: name the identity with -user \
                         (or unset TWAMP_PASSPHRASE to measure in open mode)"
                            .into(),
                    )),
                    None => None,
                },
            };
        let auth = match &cli.auth {
            Some(list) => {
                control::parse_mode_list(list).map_err(|e| Error::Config(format!("-auth: {e}")))?
            }
            None => SecurityMode::STRICTEST_FIRST.to_vec(),
        };
        if cli.auth.is_some() && secret.is_none() && auth.iter().all(|m| m.needs_key()) {
            return Err(Error::Config(
                "-auth: these modes need a key (-keyfile, or TWAMP_PASSPHRASE with -user)".into(),
            ));
        }
        let format = match cli.format.unwrap_or(FormatArg::Text) {
            FormatArg::Text => Format::Text,
            FormatArg::Json => Format::Json,
            FormatArg::Csv => Format::Csv,
            FormatArg::Packets => Format::Packets,
            FormatArg::Twping => Format::Twping,
        };
        let schedule = match cli.schedule {
            None | Some(ScheduleArg::Periodic) => Schedule::Periodic { interval },
            Some(ScheduleArg::Poisson) => Schedule::Poisson { mean: interval },
        };
        let duration = match &cli.duration {
            Some(d) => {
                let d = parse_duration(d).map_err(|e| Error::Config(format!("-duration: {e}")))?;
                if d.is_zero() {
                    return Err(Error::Config("-duration: must be longer than 0".into()));
                }
                Some(d)
            }
            None => None,
        };
        // With -duration, -c caps the count (default: as many as the cap on memory allows).
        let count = match (duration, cli.count) {
            (Some(_), None) => MAX_COUNT,
            _ => count,
        };
        let source = match &cli.source {
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| Error::Config(format!("-source: '{a}' is not an IP address")))?,
            ),
            None => None,
        };
        let test_ports = match &cli.test_ports {
            Some(r) => {
                Some(parse_port_range(r).map_err(|e| Error::Config(format!("-test-ports: {e}")))?)
            }
            None => None,
        };
        let spec = SessionSpec {
            count,
            schedule,
            duration,
            start_delay: dur(&cli.start_delay, Duration::ZERO, "start-delay")?,
            loss_timeout: dur(&cli.timeout, DEFAULT_LOSS_TIMEOUT, "timeout")?,
            padding: cli.padding,
            size: cli.size,
            dscp,
            ttl: cli.ttl.unwrap_or(crate::net::TEST_TTL as u8),
            df: cli.df.unwrap_or(false),
        };
        let light = if cli.light.unwrap_or(false) {
            use crate::light::sender::Format;
            use crate::wire::stamp::StampMode;
            let format = match (cli.light_format, &cli.light_key) {
                (Some(LightFormatArg::Twamp), Some(_)) => return Err(Error::Config(
                    "-light-key: TWAMP-Light has no authenticated mode; use -light-format stamp"
                        .into(),
                )),
                (Some(LightFormatArg::Twamp), None) => Format::TwampLight,
                (_, Some(_)) => Format::Stamp(StampMode::Authenticated),
                (_, None) => Format::Stamp(StampMode::Unauthenticated),
            };
            let tlvs = match &cli.tlv {
                Some(t) => parse_tlvs(t).map_err(|e| Error::Config(format!("-tlv: {e}")))?,
                None => Vec::new(),
            };
            if format == Format::TwampLight && (cli.ssid.is_some() || !tlvs.is_empty()) {
                return Err(Error::Config(
                    "-ssid and -tlv are STAMP's: not with -light-format twamp".into(),
                ));
            }
            Some(LightClient {
                format,
                ssid: cli.ssid.unwrap_or(1),
                tlvs,
            })
        } else {
            let stray = [
                ("-light-format", cli.light_format.is_some()),
                ("-ssid", cli.ssid.is_some()),
                ("-tlv", cli.tlv.is_some()),
                ("-light-key", cli.light_key.is_some()),
            ];
            if let Some((f, _)) = stray.iter().find(|(_, set)| *set) {
                return Err(Error::Config(format!("{f} goes with -light")));
            }
            None
        };
        Ok(ClientConfig {
            host,
            port,
            family,
            sessions: vec![spec; cli.sessions.unwrap_or(1) as usize],
            light,
            source,
            test_ports,
            zero_addresses: cli.zero_addresses.unwrap_or(false),
            extensions: ClientExtensions {
                reflect_octets: cli.reflect_octets,
                symmetrical: cli.symmetrical.unwrap_or(false),
                dscp_ecn: cli.dscp_ecn.unwrap_or(false),
                individual: cli.individual.unwrap_or(false),
            },
            connect_timeout: dur(
                &cli.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
                "connect-timeout",
            )?,
            auth,
            user,
            secret,
            max_count: cli.max_count.unwrap_or(control::client::DEFAULT_MAX_COUNT),
            format,
            output: cli.output.as_ref().map(PathBuf::from),
            header: cli.header.unwrap_or(false),
            histogram: cli.histogram.unwrap_or(false),
            plot: match &cli.plot {
                Some(p) => {
                    plot_available()?;
                    Some(PathBuf::from(p))
                }
                None => None,
            },
            quiet: cli.quiet,
            logging: logging(cli, log::LevelFilter::Warn),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        for bad in ["", "ms", "1x", "-1s", "1e999", "nan"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_port_forms() {
        let ok = |s: &str| split_host_port(s, 862).unwrap();
        assert_eq!(ok("192.0.2.1"), ("192.0.2.1".into(), 862));
        assert_eq!(ok("192.0.2.1:8620"), ("192.0.2.1".into(), 8620));
        assert_eq!(ok("2001:db8::1"), ("2001:db8::1".into(), 862));
        assert_eq!(ok("[2001:db8::1]:9000"), ("2001:db8::1".into(), 9000));
        assert_eq!(ok("[::1]"), ("::1".into(), 862));
        assert_eq!(ok("host.example"), ("host.example".into(), 862));
        assert_eq!(ok("host.example:1"), ("host.example".into(), 1));
        for bad in ["[::1", "[::1]x", "h:99999", "h:x", "fe80::1:2:zz"] {
            assert!(split_host_port(bad, 862).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("18760-19960").unwrap(), (18760, 19960));
        for bad in ["0-10", "10-5", "x-1", "100"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn twampd_key_file_format() {
        let k = KeyFile::parse("# comment\ntestuser 7477616d702d746573742d7365637265742d32303234\n\nother 00ff # trailing\n").unwrap();
        assert_eq!(k.get("testuser").unwrap(), b"twamp-test-secret-2024");
        assert_eq!(k.get("other").unwrap(), &[0x00, 0xff]);
        assert!(k.get("nobody").is_none());
        assert!(!format!("{k:?}").contains("7477"), "no secret in Debug");
        assert!(KeyFile::parse("user zz").is_err());
        assert!(KeyFile::parse("user").is_err());
        assert!(KeyFile::parse("user 0a 0b").is_err());
    }

    fn client(args: &[&str]) -> Result<ClientConfig> {
        let mut v = vec!["twamp", "-mode", "client"];
        v.extend_from_slice(args);
        let cli = Cli::try_from_args(v).map_err(|e| Error::Config(e.to_string()))?;
        ClientConfig::from_cli(&cli)
    }

    #[test]
    fn session_knobs_reach_every_session() {
        let c = client(&[
            "192.0.2.1:8620",
            "-sessions",
            "3",
            "-schedule",
            "poisson",
            "-i",
            "10ms",
            "-dscp",
            "EF",
            "-size",
            "1400",
            "-ttl",
            "64",
            "-df",
            "-start-delay",
            "1s",
            "-duration",
            "5s",
            "-source",
            "192.0.2.9",
            "-test-ports",
            "9000-9010",
            "-zero-addresses",
        ])
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port),
            ("192.0.2.1", 8620),
            "positional HOST:PORT"
        );
        assert_eq!(c.sessions.len(), 3);
        for s in &c.sessions {
            assert_eq!(
                s.schedule,
                Schedule::Poisson {
                    mean: Duration::from_millis(10)
                }
            );
            assert_eq!((s.dscp, s.size, s.ttl, s.df), (46, Some(1400), 64, true));
            assert_eq!(s.start_delay, Duration::from_secs(1));
            assert_eq!(s.duration, Some(Duration::from_secs(5)));
            assert_eq!(
                s.count, MAX_COUNT,
                "-duration without -c: the count is only a cap"
            );
        }
        assert_eq!(c.source, Some("192.0.2.9".parse().unwrap()));
        assert_eq!(c.test_ports, Some((9000, 9010)));
        assert!(c.zero_addresses);
    }

    #[test]
    fn the_server_is_given_once() {
        assert!(client(&["-server", "a", "b"]).is_err());
        assert!(client(&[]).is_err());
        assert_eq!(client(&["b"]).unwrap().host, "b");
        assert!(
            client(&["-size", "100", "-padding", "3", "h"]).is_err(),
            "-size or -padding"
        );
    }

    #[test]
    fn dscp_names_and_numbers() {
        use crate::cli::parse_dscp;
        for (name, v) in [
            ("EF", 46),
            ("ef", 46),
            ("AF11", 10),
            ("AF12", 12),
            ("AF13", 14),
            ("AF21", 18),
            ("AF41", 34),
            ("AF43", 38),
            ("CS0", 0),
            ("CS1", 8),
            ("CS6", 48),
            ("CS7", 56),
            ("VA", 44),
            ("LE", 1),
            ("DF", 0),
            ("46", 46),
            ("0x2e", 46),
            ("056", 46),
            ("63", 63),
        ] {
            assert_eq!(parse_dscp(name), Ok(v), "{name}");
        }
        for bad in ["64", "AF44", "AF51", "CS8", "E F", "", "-1", "0x40"] {
            assert!(parse_dscp(bad).is_err(), "{bad}");
        }
    }
}
