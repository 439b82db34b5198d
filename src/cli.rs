//! The command line as the user typed it (clap derive), in the Go-flag style of tiny-twamp:
//! `-mode server`, `--mode server` and `-mode=server` all work. Nothing after `main` sees
//! [`Cli`]: `config` turns it into a validated configuration once.

use std::ffi::OsString;
use std::fmt::Display;
use std::str::FromStr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches, Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Server,
    Client,
    /// Draw records saved earlier (`-input`) as an SVG (`-plot`).
    Plot,
    /// Serve Prometheus probes (`/probe?target=…&module=…`) with `-exporter-config`'s modules.
    Exporter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LightFormatArg {
    Stamp,
    Twamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    Periodic,
    Poisson,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Human summary, ping-like.
    Text,
    /// One JSON object per run.
    Json,
    /// One CSV line per run.
    Csv,
    /// One line per test packet with every timestamp.
    Packets,
    /// twping's `-M` machine-readable summary.
    Twping,
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" | "on" => Ok(true),
        "false" | "f" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("'{s}' is not a boolean (true or false)")),
    }
}

/// A value parser for whole numbers from `lo` to `hi` whose error says so in words:
/// `'-1' is not a packet count (a whole number from 1 to 4294967295)`.
fn whole<T>(
    what: &'static str,
    lo: T,
    hi: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync + 'static,
{
    move |s: &str| {
        s.parse::<T>()
            .ok()
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(|| format!("'{s}' is not {what} (a whole number from {lo} to {hi})"))
    }
}

/// DSCP code points by name (RFC 2474 §4.2.2.1 CSn; RFC 2597 AFxy = 8x + 2y; RFC 3246 EF;
/// RFC 5865 VOICE-ADMIT; RFC 8622 LE), as twping `-D` and router CLIs take them.
pub fn parse_dscp(s: &str) -> Result<u8, String> {
    let bad = || {
        format!(
            "'{s}' is not a DSCP (a name such as EF, AF41, CS5, VA, LE, or a number from 0 to 63)"
        )
    };
    let up = s.trim().to_ascii_uppercase();
    let named = match up.as_str() {
        "EF" => Some(46),
        "VA" | "VOICE-ADMIT" => Some(44),
        "LE" => Some(1),
        "DF" | "DEFAULT" | "NONE" | "BE" => Some(0),
        _ => None,
    };
    if let Some(v) = named {
        return Ok(v);
    }
    if let Some(n) = up.strip_prefix("CS") {
        return n
            .parse::<u8>()
            .ok()
            .filter(|n| *n <= 7)
            .map(|n| n * 8)
            .ok_or_else(bad);
    }
    if let Some(xy) = up.strip_prefix("AF") {
        let d: Vec<u8> = xy.bytes().map(|b| b.wrapping_sub(b'0')).collect();
        return match d.as_slice() {
            [x @ 1..=4, y @ 1..=3] => Ok(8 * x + 2 * y),
            _ => Err(bad()),
        };
    }
    // Numbers as twping takes them: decimal, 0x hex, or 0-prefixed octal.
    let v = if let Some(h) = up.strip_prefix("0X") {
        u8::from_str_radix(h, 16).ok()
    } else if up.len() > 1 && up.starts_with('0') {
        u8::from_str_radix(&up[1..], 8).ok()
    } else {
        up.parse::<u8>().ok()
    };
    v.filter(|v| *v <= 63).ok_or_else(bad)
}

/// Checks a duration's syntax here, so its error names the flag as typed; `config` converts
/// the text (and checks what a duration may be for each flag).
fn duration(s: &str) -> Result<String, String> {
    crate::config::parse_duration(s).map(|_| s.to_string())
}

/// TWAMP (RFC 5357) server and client: round-trip and one-way delay, loss, jitter,
/// reordering and duplicates between two hosts.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "twamp",
    version,
    about,
    after_help = "Single-dash long flags work as in Go: -mode server, -server=HOST, -daemon true.\nSee twamp(1) for exit codes and the key file format."
)]
pub struct Cli {
    /// Run as the TWAMP server (Server and Session-Reflector) or the client (Control-Client and
    /// Session-Sender).
    #[arg(long, value_enum, value_name = "server|client|plot|exporter")]
    pub mode: ModeArg,

    // ---- client ----
    /// Client: the TWAMP server to measure, HOST[:PORT], an IPv4 or IPv6 literal, or [V6]:PORT.
    /// Repeat it to measure several servers in parallel (a mesh, as -targets).
    #[arg(long, value_name = "HOST[:PORT]", action = ArgAction::Append, help_heading = "Client")]
    pub server: Vec<String>,

    /// Client: number of test packets.
    #[arg(
        short = 'c',
        long = "count",
        value_name = "COUNT",
        value_parser = whole("a packet count", 1u32, u32::MAX),
        help_heading = "Client"
    )]
    pub count: Option<u32>,

    /// Client: interval between test packets (e.g. 100ms, 0.5s, 1s; a bare number is seconds).
    #[arg(short = 'i', long, value_name = "INTERVAL", value_parser = duration, help_heading = "Client")]
    pub interval: Option<String>,

    /// Client: how long to wait for late replies after the last packet before counting the rest
    /// as lost; also the reflector's Timeout after Stop-Sessions.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Client")]
    pub timeout: Option<String>,

    /// Client: padding octets after the test packet base (default: 27 open/mixed, 64
    /// authenticated/encrypted, so both directions carry equal sizes).
    #[arg(long, value_name = "OCTETS", value_parser = whole("a number of octets", 0u32, u32::MAX), help_heading = "Client")]
    pub padding: Option<u32>,

    /// Client: DSCP for the test packets both ways, also sent in the Type-P Descriptor: a name
    /// (EF, AF11…AF43, CS0…CS7, VA, LE, DF) or a number 0-63.
    #[arg(long, value_name = "DSCP", value_parser = parse_dscp, help_heading = "Client")]
    pub dscp: Option<u8>,

    /// Client: security modes acceptable, in order of preference (comma list of open,
    /// authenticated, encrypted, mixed). Default: the strictest the server offers that we hold
    /// a key for.
    #[arg(long, value_name = "MODES", help_heading = "Client")]
    pub auth: Option<String>,

    /// Client: identity (KeyID) for the authenticated, encrypted and mixed modes.
    #[arg(long, value_name = "ID", help_heading = "Client")]
    pub user: Option<String>,

    /// Client: largest Server-Greeting Count (PBKDF2 iterations) accepted.
    #[arg(long, value_name = "N", value_parser = whole("an iteration count", 0u32, u32::MAX), help_heading = "Client")]
    pub max_count: Option<u32>,

    /// Client: output format.
    #[arg(long, value_enum, value_name = "FORMAT", help_heading = "Client")]
    pub format: Option<FormatArg>,

    /// Client: append each result record, whole, to FILE (as well as printing it unless -q).
    #[arg(long, value_name = "FILE", help_heading = "Client")]
    pub output: Option<String>,

    /// Client: with -format csv, print the header line first.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub header: Option<bool>,

    /// Client: draw a histogram of round-trip times after the summary.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub histogram: Option<bool>,

    /// Client: TCP connect and control-message timeout.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Client")]
    pub connect_timeout: Option<String>,

    /// Client: the server, as -server (twping's positional testpeer).
    #[arg(value_name = "HOST[:PORT]")]
    pub target: Option<String>,

    /// Client: when packets are sent: periodic (every -i) or poisson (exponential gaps with
    /// mean -i, RFC 2330).
    #[arg(
        long,
        value_enum,
        value_name = "periodic|poisson",
        help_heading = "Client"
    )]
    pub schedule: Option<ScheduleArg>,

    /// Client: send for this long instead of -c packets (-c then caps the count).
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Client")]
    pub duration: Option<String>,

    /// Client: wait this long after Start-Ack before the first packet.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Client")]
    pub start_delay: Option<String>,

    /// Client: whole UDP payload of each test packet, octets (instead of -padding).
    #[arg(long, value_name = "OCTETS", value_parser = whole("a packet size", 1u32, 65_507), conflicts_with = "padding", help_heading = "Client")]
    pub size: Option<u32>,

    /// Client: set Don't Fragment on the test packets (IPv4 DF; IPv6 never fragments in the path).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub df: Option<bool>,

    /// Client: TTL / Hop Limit of the test packets (default 255, so hops can be counted).
    #[arg(long, value_name = "TTL", value_parser = whole("a TTL", 1u8, 255), help_heading = "Client")]
    pub ttl: Option<u8>,

    /// Client: local address for the control connection and the test packets (as twping's S option).
    #[arg(long, value_name = "ADDR", help_heading = "Client")]
    pub source: Option<String>,

    /// Client: send Sender and Receiver Address 0 in Request-TW-Session, for a path through
    /// NAT (RFC 5357 §3.5: the server then uses the control connection's addresses).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub zero_addresses: Option<bool>,

    /// Client and plot: draw the run (plot: the -input records) as one SVG picture into FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<String>,

    /// Plot: a file of records written earlier with -format packets or -format json (repeat
    /// for several; - reads standard input).
    #[arg(long, value_name = "FILE", action = ArgAction::Append)]
    pub input: Vec<String>,

    /// Client: test sessions run at the same time on one control connection, each summarised.
    #[arg(long, value_name = "N", value_parser = whole("a number of sessions", 1u32, 256), help_heading = "Client")]
    pub sessions: Option<u32>,

    /// Client: RFC 6038 Reflect Octets: the reflector returns the first N octets of each
    /// packet's padding, checked on return (if the server offers it).
    #[arg(long, value_name = "N", value_parser = whole("a number of octets", 1u16, u16::MAX), help_heading = "Client")]
    pub reflect_octets: Option<u16>,

    /// Client: RFC 6038 Symmetrical Size: the sender packet has the reflector's base, so
    /// -padding means the same both ways (if the server offers it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub symmetrical: Option<bool>,

    /// Client: RFC 7750 DSCP and ECN Monitoring: the reflector reports the DSCP/ECN it
    /// received, so re-marking on the way shows (if the server offers it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub dscp_ecn: Option<bool>,

    /// Client: RFC 5938 Individual Session Control: Start-N/Stop-N-Sessions, a session that
    /// ends early is stopped while the others go on (if the server offers it).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Client")]
    pub individual: Option<bool>,

    // ---- server ----
    /// Server: address to listen on (default [::], both IPv4 and IPv6).
    #[arg(long, value_name = "ADDR", help_heading = "Server")]
    pub listen: Option<String>,

    /// Server: detach and run in the background.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Server")]
    pub daemon: Option<bool>,

    /// Server: with -daemon, write the process id to PATH.
    #[arg(long, value_name = "PATH", help_heading = "Server")]
    pub pidfile: Option<String>,

    /// Server: REFWAIT, how long a Session-Reflector waits for test packets before ending the
    /// session (RFC 5357 §4.2).
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Server")]
    pub refwait: Option<String>,

    /// Server: SERVWAIT, how long an idle control connection is kept (RFC 5357 §3.1).
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Server")]
    pub servwait: Option<String>,

    /// UDP port range LO-HI for test packets. Server: the Session-Reflectors' ports; a
    /// requested port is granted only inside it, else the server picks one from it (default
    /// 18760-19960; 0: any port the OS picks). Client: our own test ports (default: any).
    #[arg(long, value_name = "LO-HI")]
    pub test_ports: Option<String>,

    /// Server: security modes offered (comma list of open, authenticated, encrypted, mixed).
    /// Default: open without -keyfile, all four with it.
    #[arg(long, value_name = "MODES", help_heading = "Server")]
    pub modes: Option<String>,

    /// Server: PBKDF2 iteration Count sent in the Server-Greeting (power of two, >= 1024).
    #[arg(long, value_name = "N", value_parser = whole("an iteration count", 0u32, u32::MAX), help_heading = "Server")]
    pub pbkdf2_count: Option<u32>,

    /// Server: control connections served at once; past it new ones get a greeting with
    /// Modes 0 and are closed.
    #[arg(long, value_name = "N", value_parser = whole("a number of connections", 0usize, usize::MAX), help_heading = "Server")]
    pub max_connections: Option<usize>,

    /// Server: control connections served at once from one client address.
    #[arg(long, value_name = "N", value_parser = whole("a number of connections", 0usize, usize::MAX), help_heading = "Server")]
    pub max_connections_per_client: Option<usize>,

    /// Server: connections that have not finished the handshake, held at once; when full, the
    /// oldest of the client holding the most is dropped for a newcomer (default 64).
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub max_handshakes: Option<usize>,

    /// Server: Set-Up-Response must arrive within this of the Server-Greeting (default 5s).
    #[arg(long, value_name = "DURATION", help_heading = "Server")]
    pub setup_timeout: Option<String>,

    /// Server: once a control message has begun, the rest must arrive within this, and every
    /// control write must complete within it (default 10s).
    #[arg(long, value_name = "DURATION", help_heading = "Server")]
    pub message_timeout: Option<String>,

    /// Server: test sessions held at once (accepted or running), in all (default 1024).
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub max_sessions: Option<usize>,

    /// Server: test sessions held at once on one control connection (default 64).
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub max_sessions_per_connection: Option<usize>,

    /// Server: test sessions held at once for one client, an IPv4 address or an IPv6 /64
    /// (default 256).
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub max_sessions_per_client: Option<usize>,

    /// Server: reflector engine threads, each serving many sessions (default 1).
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub engine_threads: Option<usize>,

    /// Server: read settings from this TOML file (every server flag, by its name with `_` for
    /// `-`); flags given too win over it.
    #[arg(long, value_name = "PATH", help_heading = "Server")]
    pub config: Option<String>,

    /// Server: only these networks may connect (comma list of CIDRs or addresses; repeat
    /// for more). Default: every network.
    #[arg(long, value_name = "CIDRS", action = ArgAction::Append, help_heading = "Server")]
    pub allow: Vec<String>,

    /// Server: these networks may never connect (wins over -allow); they get a
    /// Server-Greeting with Modes 0.
    #[arg(long, value_name = "CIDRS", action = ArgAction::Append, help_heading = "Server")]
    pub deny: Vec<String>,

    /// Server: open (unauthenticated) mode only for peers in these networks; the rest are
    /// offered only authenticated, encrypted and mixed mode. Default: open mode for all.
    #[arg(long, value_name = "CIDRS", action = ArgAction::Append, help_heading = "Server")]
    pub open_from: Vec<String>,

    /// Server: after binding, run as USER (and GROUP, else USER's group), supplementary
    /// groups cleared. Needs root; the server refuses to go on as root if it cannot drop.
    #[arg(long, value_name = "USER[:GROUP]", help_heading = "Server")]
    pub run_as: Option<String>,

    /// Server: log to syslog (facility daemon) as well, even in the foreground.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "Server")]
    pub syslog: Option<bool>,
    /// Server: extensions offered in the greeting: all (default), none, or a list of
    /// individual (RFC 5938), reflect-octets, symmetrical (RFC 6038), dscp-ecn (RFC 7750).
    #[arg(long, value_name = "LIST", help_heading = "Server")]
    pub extensions: Option<String>,

    // ---- both ----
    /// TCP port of TWAMP-Control (default 862).
    #[arg(long, value_name = "PORT", value_parser = whole("a port number", 1u16, u16::MAX))]
    pub port: Option<u16>,

    /// Use IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,

    /// Key file: one `identity hex-passphrase` per line, twampd's twamp-server.pfs format.
    /// The client may instead read the pass-phrase from $TWAMP_PASSPHRASE.
    #[arg(long, value_name = "PATH")]
    pub keyfile: Option<String>,

    /// Append log lines to PATH.
    #[arg(long, value_name = "PATH")]
    pub logfile: Option<String>,

    /// More log output (repeat for more).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Quiet: only errors; the client prints nothing on success.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    // ---- TWAMP-Light / STAMP ----
    /// Server: also reflect TWAMP-Light and STAMP test packets (no control connection) on UDP
    /// 862 (RFC 8762). Client: send TWAMP-Light/STAMP packets straight to the server's
    /// HOST[:PORT] (default port 862) instead of setting up a session over TWAMP-Control.
    /// (`-light=false` turns it off: a bare word after -light is the server, not a value.)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "TWAMP-Light / STAMP")]
    pub light: Option<bool>,

    /// Server: the UDP port of the TWAMP-Light/STAMP reflector (implies -light).
    #[arg(long, value_name = "PORT", value_parser = whole("a port number", 1u16, u16::MAX), help_heading = "TWAMP-Light / STAMP")]
    pub light_port: Option<u16>,

    /// Server: serve only TWAMP-Light/STAMP, no TWAMP-Control listener.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "TWAMP-Light / STAMP")]
    pub light_only: Option<bool>,

    /// Server: stateless reflector: copy each sender's Sequence Number instead of counting its
    /// own (RFC 8762 §4); the senders then cannot tell loss per direction.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL", help_heading = "TWAMP-Light / STAMP")]
    pub light_stateless: Option<bool>,

    /// Server: senders remembered at once (address, port, SSID); past it the longest silent is
    /// forgotten.
    #[arg(long, value_name = "N", value_parser = whole("a number of senders", 1usize, 1_000_000), help_heading = "TWAMP-Light / STAMP")]
    pub light_senders: Option<usize>,

    /// Server: a sender silent this long is forgotten.
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "TWAMP-Light / STAMP")]
    pub light_idle: Option<String>,

    /// STAMP authenticated mode (RFC 8762 §4.2.2, HMAC-SHA-256) with the pass-phrase of
    /// identity ID in -keyfile as the key (client: or $TWAMP_PASSPHRASE).
    #[arg(long, value_name = "ID", help_heading = "TWAMP-Light / STAMP")]
    pub light_key: Option<String>,

    /// Client: what to send: stamp (44-octet STAMP packets with an SSID, RFC 8762; a
    /// TWAMP-Light reflector answers them too) or twamp (14-octet TWAMP-Light packets, RFC
    /// 5357 Appendix I).
    #[arg(
        long,
        value_enum,
        value_name = "stamp|twamp",
        help_heading = "TWAMP-Light / STAMP"
    )]
    pub light_format: Option<LightFormatArg>,

    /// Client: the STAMP Session-Sender Identifier (RFC 8972 §3); with -sessions, one each from
    /// it up.
    #[arg(long, value_name = "N", value_parser = whole("an SSID", 0u16, u16::MAX), help_heading = "TWAMP-Light / STAMP")]
    pub ssid: Option<u16>,

    /// Client: STAMP TLVs to ask the reflector for (RFC 8972, RFC 9503), a comma list of
    /// location, timestamp, cos, direct, access, follow-up.
    #[arg(long, value_name = "LIST", help_heading = "TWAMP-Light / STAMP")]
    pub tlv: Option<String>,

    // ---- exporter, server metrics, mesh ----
    /// Exporter: the TOML file of probe modules, the target allow list and the bounds (its
    /// [exporter] table; see twamp(1)). Required with -mode exporter.
    #[arg(long, value_name = "PATH", help_heading = "Exporter")]
    pub exporter_config: Option<String>,

    /// Server: serve Prometheus metrics at http://ADDR:PORT/metrics (connections, sessions,
    /// packets reflected, drops and refusals by reason).
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Exporter")]
    pub metrics: Option<String>,

    /// Client: measure every target in FILE (one HOST[:PORT] per line, optional count=,
    /// interval=, dscp=, padding=, timeout=; # comments), one record per target.
    #[arg(long, value_name = "FILE", help_heading = "Exporter")]
    pub targets: Option<String>,

    /// Client: with several targets, how many are measured at once (default 8).
    #[arg(long, value_name = "N", value_parser = whole("a number of targets", 1usize, 256), help_heading = "Exporter")]
    pub parallel: Option<usize>,
}

/// clap's command for [`Cli`], built (so `-h`/`-help` and `-V`/`-version` are in it), with
/// every flag that takes a value taking the next word even when it starts with '-', as Go's
/// flag package does: `-c -1` is then "-c: '-1' is not a packet count", not an unexpected
/// argument '-1'. Flags whose value is optional (`-daemon [BOOL]`) keep clap's rule, so
/// `-daemon -v` stays two flags.
fn command() -> Command {
    let mut cmd = Cli::command().mut_args(|a| {
        // Not the positional HOST: it would swallow every flag after it.
        let takes = takes_value(&a) && !a.is_positional();
        a.allow_hyphen_values(takes)
    });
    cmd.build();
    cmd
}

/// Whether `arg` always takes a value (`-c N`), as opposed to a switch (`-4`, `-v`) or an
/// optional value (`-daemon [BOOL]`).
fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values() && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

fn find_long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(name))
}

fn find_short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

/// Whether a single-dash word is a Go-style long flag rather than clustered short flags
/// (`-vv`, `-c10`, `-4`). Unknown words are treated as long flags too, so a typo is reported as
/// the one flag `-bogus` rather than as a bundle of short flags.
fn is_go_long(name: &str, cmd: &Command) -> bool {
    if find_long(cmd, name).is_some() {
        return true;
    }
    let shorts_only = name.chars().all(|c| matches!(c, 'v' | 'q' | '4' | '6'));
    let short_with_value = matches!(name.as_bytes()[0], b'c' | b'i')
        && name[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c.is_ascii_alphabetic() && name.len() <= 6)
        && name[1..].starts_with(|c: char| c.is_ascii_digit());
    !(shorts_only || short_with_value || name.starts_with(|c: char| c.is_ascii_digit()))
}

/// Whether `word` reads as a negative number (`-1`, `-0.5s`) rather than short flags (`-4`).
fn is_negative_number(word: &str, cmd: &Command) -> bool {
    word.strip_prefix('-').is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit())
            && !rest.chars().all(|c| find_short(cmd, c).is_some())
    })
}

/// The argument list as clap gets it, and the flags as the user typed them (for messages).
struct Argv {
    /// Go-style long flags rewritten to clap's `--name`; everything else as typed.
    args: Vec<OsString>,
    /// Each flag as typed, without any `=value` (`-count`, `-c`, `--count`, `-bogus`), and
    /// the id of the argument it names, if it names one.
    flags: Vec<(String, Option<String>)>,
}

impl Argv {
    /// Rewrites `-mode`, `-mode=server` into `--mode`, `--mode=server`. Short flags (`-c`,
    /// `-i`, `-4`, `-vv`, `-c10`) are left alone, and so is the word after a flag that takes a
    /// value, whatever it looks like (`-user -bob`, `-c -1`).
    fn new(args: impl IntoIterator<Item = OsString>, cmd: &Command) -> Argv {
        let mut argv = Argv {
            args: Vec::new(),
            flags: Vec::new(),
        };
        let mut value_next = false;
        let mut optional_next = false;
        let mut flags_done = false;
        for (i, a) in args.into_iter().enumerate() {
            let is_value = std::mem::take(&mut value_next);
            let maybe_value = std::mem::take(&mut optional_next);
            let s = match a.to_str() {
                Some(s) if i > 0 && !is_value && !flags_done => s,
                _ => {
                    argv.args.push(a);
                    continue;
                }
            };
            if maybe_value && is_negative_number(s, cmd) {
                // `-daemon -1`: a value for the optional-value flag just before, not a flag;
                // joined as `--daemon=-1` so that clap says what is wrong with it.
                if let Some(prev) = argv.args.last_mut() {
                    prev.push("=");
                    prev.push(s);
                }
                continue;
            }
            flags_done = s == "--";
            let (flag, attached) = match s.split_once('=') {
                Some((flag, _)) => (flag, true),
                None => (s, false),
            };
            let id = |arg: Option<&Arg>| arg.map(|a| a.get_id().to_string());
            let mut after = |arg: Option<&Arg>| {
                value_next = !attached && arg.is_some_and(takes_value);
                optional_next = !attached && arg.is_some_and(|a| a.get_action().takes_values());
            };
            if let Some(long) = flag.strip_prefix("--").filter(|l| !l.is_empty()) {
                let arg = find_long(cmd, long);
                after(arg);
                argv.flags.push((flag.to_string(), id(arg)));
            } else if let Some(name) = flag.strip_prefix('-').filter(|n| !n.is_empty()) {
                if name.len() > 1 && is_go_long(name, cmd) {
                    let arg = find_long(cmd, name);
                    after(arg);
                    argv.flags.push((flag.to_string(), id(arg)));
                    argv.args.push(OsString::from(format!("-{s}")));
                    continue;
                }
                // A cluster of short flags; the first that takes a value ends it, with the
                // value attached (`-c10`) or in the next word (`-c`).
                for (at, c) in name.char_indices() {
                    let Some(arg) = find_short(cmd, c) else { break };
                    argv.flags.push((format!("-{c}"), id(Some(arg))));
                    if takes_value(arg) {
                        value_next = !attached && at + c.len_utf8() == name.len();
                        break;
                    }
                }
            }
            argv.args.push(a);
        }
        argv
    }

    /// The flag as the user typed it, for an argument as clap shows it in an error
    /// (`--count <COUNT>`, `-4`, `--bogus`).
    fn typed(&self, cmd: &Command, shown: &str) -> String {
        let word = shown.split(' ').next().unwrap_or(shown);
        let word = word.split('=').next().unwrap_or(word);
        let arg = match word.strip_prefix("--") {
            Some(long) => find_long(cmd, long),
            None => word
                .strip_prefix('-')
                .and_then(|s| s.chars().next())
                .and_then(|c| find_short(cmd, c)),
        };
        let Some(arg) = arg else {
            // Not a flag of ours: echo the word the user typed (`-bogus`, not `--bogus`).
            return self
                .flags
                .iter()
                .find(|(typed, _)| format!("-{typed}") == word || typed == word)
                .map_or_else(|| word.to_string(), |(typed, _)| typed.clone());
        };
        self.flags
            .iter()
            .find(|(_, id)| id.as_deref() == Some(arg.get_id().as_str()))
            .map_or_else(|| go_style(arg), |(typed, _)| typed.clone())
    }

    /// Rewrites clap's error so it names each flag as the user typed it and says what a value
    /// must be in words. Help and version requests, and kinds not rewritten, pass through.
    fn explain(&self, e: clap::Error, cmd: &mut Command) -> clap::Error {
        let text = |k: ContextKind| match e.get(k) {
            Some(ContextValue::String(s)) => Some(s.clone()),
            Some(ContextValue::Strings(v)) => v.first().cloned(),
            _ => None,
        };
        let arg = text(ContextKind::InvalidArg);
        let flag = arg.as_deref().map(|a| self.typed(cmd, a));
        let value = text(ContextKind::InvalidValue);
        let value_name = |flag: &str| {
            let arg = arg.as_deref().unwrap_or("");
            match arg.split_once(' ') {
                Some((_, v)) => format!("{flag} {}", v.trim_matches(['<', '>', '[', ']'])),
                None => flag.to_string(),
            }
        };
        let tip = |kind: &str, k: ContextKind| {
            text(k).map_or_else(String::new, |s| {
                let s = if kind == "argument" {
                    self.typed(cmd, &s)
                } else {
                    s
                };
                format!("\n\n  tip: a similar {kind} exists: '{s}'")
            })
        };
        let message = match (e.kind(), flag.as_deref(), value.as_deref()) {
            (ErrorKind::ValueValidation, Some(flag), Some(value)) => {
                match std::error::Error::source(&e) {
                    Some(why) => format!("{flag}: {why}"),
                    None => format!("{flag}: '{value}' is not valid"),
                }
            }
            (ErrorKind::InvalidValue, Some(flag), Some("") | None) => {
                format!("{flag} needs a value: {}", value_name(flag))
            }
            (ErrorKind::InvalidValue, Some(flag), Some(value)) => {
                let valid = match e.get(ContextKind::ValidValue) {
                    Some(ContextValue::Strings(v)) => one_of(v),
                    _ => "valid".to_string(),
                };
                format!(
                    "{flag}: '{value}' is not {valid}{}",
                    tip("value", ContextKind::SuggestedValue)
                )
            }
            (ErrorKind::UnknownArgument, Some(flag), _) => format!(
                "unexpected argument '{flag}' found{}",
                tip("argument", ContextKind::SuggestedArg)
            ),
            (ErrorKind::ArgumentConflict, Some(flag), _) => {
                match text(ContextKind::PriorArg).map(|p| self.typed(cmd, &p)) {
                    Some(prior) if prior != flag => format!("{flag} cannot be used with {prior}"),
                    _ => format!("{flag} given more than once"),
                }
            }
            (ErrorKind::MissingRequiredArgument, Some(flag), _) => {
                format!("{flag} is required: {}", value_name(flag))
            }
            _ => return e,
        };
        clap::Error::raw(e.kind(), message).format(cmd)
    }
}

/// A flag the user did not type, Go style: `-mode`, or `-4` when it has no long name.
fn go_style(arg: &Arg) -> String {
    match (arg.get_long(), arg.get_short()) {
        (Some(long), _) => format!("-{long}"),
        (None, Some(c)) => format!("-{c}"),
        (None, None) => arg.get_id().to_string(),
    }
}

/// `server or client`, `text, json, csv, packets or twping`.
fn one_of(values: &[String]) -> String {
    match values.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "valid".to_string(),
    }
}

/// Rewrites Go-style single-dash long flags (`-mode`, `-mode=server`) into clap's `--mode`.
/// Short flags (`-c`, `-i`, `-4`, `-v`, `-vv`), negative numbers and flag values are left
/// alone.
pub fn normalize_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    Argv::new(args, &command()).args
}

impl Cli {
    /// Parses the process arguments; on an error prints it with the usage and exits 2.
    pub fn from_env() -> Self {
        Cli::try_from_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program name first). Errors name each flag as it was typed.
    pub fn try_from_args<I: IntoIterator<Item = S>, S: Into<OsString>>(
        args: I,
    ) -> Result<Self, clap::Error> {
        let mut cmd = command();
        let argv = Argv::new(args.into_iter().map(Into::into), &cmd);
        cmd.try_get_matches_from_mut(&argv.args)
            .and_then(|mut m| Cli::from_arg_matches_mut(&mut m))
            .map_err(|e| argv.explain(e, &mut cmd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let mut v = vec!["twamp"];
        v.extend_from_slice(args);
        Cli::try_from_args(v).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn go_style_single_dash_long_flags() {
        for args in [
            &["-mode", "server"][..],
            &["--mode", "server"],
            &["-mode=server"],
            &["--mode=server"],
        ] {
            assert_eq!(parse(args).mode, ModeArg::Server, "{args:?}");
        }
    }

    #[test]
    fn daemon_takes_an_optional_bool() {
        assert_eq!(parse(&["-mode", "server", "-daemon"]).daemon, Some(true));
        assert_eq!(
            parse(&["-mode", "server", "-daemon", "true"]).daemon,
            Some(true)
        );
        assert_eq!(
            parse(&["-mode", "server", "-daemon=true"]).daemon,
            Some(true)
        );
        assert_eq!(
            parse(&["-mode", "server", "-daemon", "false"]).daemon,
            Some(false)
        );
        assert_eq!(
            parse(&["-mode", "server", "-daemon", "-v"]).daemon,
            Some(true)
        );
        assert_eq!(parse(&["-mode", "server"]).daemon, None);
    }

    #[test]
    fn short_flags_stay_short() {
        let c = parse(&[
            "-mode", "client", "-server", "::1", "-c", "5", "-i", "10ms", "-4", "-vv",
        ]);
        assert_eq!(c.count, Some(5));
        assert_eq!(c.interval.as_deref(), Some("10ms"));
        assert!(c.ipv4);
        assert_eq!(c.verbose, 2);
        assert_eq!(parse(&["-mode=client", "-c=7"]).count, Some(7));
        assert_eq!(parse(&["-mode=client", "-c10", "-i10ms"]).count, Some(10));
        assert_eq!(parse(&["-mode", "client", "-count", "9"]).count, Some(9));
    }

    fn error(args: &[&str]) -> String {
        let mut v = vec!["twamp"];
        v.extend_from_slice(args);
        match Cli::try_from_args(v) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unknown_flags_are_errors() {
        // Echoed as typed, not as the `--bogus` the Go-style rewrite hands clap.
        let e = error(&["-mode", "server", "-bogus"]);
        assert!(e.contains("unexpected argument '-bogus' found"), "{e}");
        assert!(!e.contains("--bogus"), "{e}");
        let e = error(&["-mode", "server", "-bogus=1"]);
        assert!(e.contains("'-bogus'"), "{e}");
        // The closest real flag, single-dash.
        let e = error(&["-mode", "client", "-servr", "x"]);
        assert!(e.contains("similar argument exists: '-server'"), "{e}");
        assert!(Cli::try_from_args(["twamp", "-mode", "client", "-dscp", "64"]).is_err());
        assert!(Cli::try_from_args(["twamp"]).is_err(), "-mode is required");
    }

    #[test]
    fn a_value_may_start_with_a_dash() {
        // Go's flag package takes the next word as the value whatever it looks like.
        let c = parse(&["-mode", "client", "-user", "-bob", "-server", "-x"]);
        assert_eq!(c.user.as_deref(), Some("-bob"));
        assert_eq!(c.server, vec!["-x".to_string()]);
        assert_eq!(
            parse(&["-mode", "client", "-output", "-"])
                .output
                .as_deref(),
            Some("-")
        );
        // ... so a negative number is the flag's (bad) value, named with the flag.
        for (args, needle) in [
            (&["-c", "-1"][..], "-c: '-1' is not a packet count"),
            (&["-count", "-1"], "-count: '-1' is not a packet count"),
            (&["-c=-1"], "-c: '-1'"),
            (
                &["-padding", "-1"],
                "-padding: '-1' is not a number of octets",
            ),
            (&["-i", "-1s"], "-i: '-1s' is not a duration"),
            (&["-timeout", "-1s"], "-timeout: '-1s' is not a duration"),
            (&["-dscp", "-1"], "-dscp: '-1' is not a DSCP"),
            (&["-port", "-1"], "-port: '-1' is not a port number"),
        ] {
            let mut v = vec!["-mode", "client"];
            v.extend_from_slice(args);
            let e = error(&v);
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains("unexpected argument"), "{args:?}: {e}");
        }
        // An optional value takes a negative number too, but not a short flag.
        let e = error(&["-mode", "server", "-daemon", "-1"]);
        assert!(e.contains("-daemon: '-1' is not a boolean"), "{e}");
        let s = parse(&["-mode", "server", "-daemon", "-4"]);
        assert_eq!((s.daemon, s.ipv4), (Some(true), true));
    }

    #[test]
    fn value_errors_name_the_flag_as_typed_in_plain_words() {
        for (args, needle) in [
            (
                &["-mode", "client", "-dscp", "64"][..],
                "-dscp: '64' is not a DSCP (a name such as EF, AF41, CS5, VA, LE, or a number from 0 to 63)",
            ),
            (&["-mode", "client", "--dscp=64"], "--dscp: '64'"),
            (
                &["-mode", "client", "-port", "70000"],
                "-port: '70000' is not a port number (a whole number from 1 to 65535)",
            ),
            (
                &["-mode", "client", "-c", "4294967296"],
                "-c: '4294967296' is not a packet count (a whole number from 1 to 4294967295)",
            ),
            (&["-mode", "client", "-c", "0"], "from 1 to"),
            (
                &["-mode", "client", "-max-count", "x"],
                "-max-count: 'x' is not an iteration count",
            ),
            (
                &["-mode", "client", "-interval", "1x"],
                "-interval: unknown unit 'x'",
            ),
            (
                &["-mode", "client", "-connect-timeout", "soon"],
                "-connect-timeout: 'soon' is not a duration",
            ),
            (
                &["-mode", "client", "-header", "maybe"],
                "-header: 'maybe' is not a boolean (true or false)",
            ),
            (
                &["-mode", "client", "-format", "yaml"],
                "-format: 'yaml' is not text, json, csv, packets or twping",
            ),
            (
                &["-mode", "client", "-format", "jsn"],
                "similar value exists: 'json'",
            ),
            (
                &["-mode", "sideways"],
                "-mode: 'sideways' is not server, client, plot or exporter",
            ),
            (&["-mode", "client", "-port"], "-port needs a value"),
            (
                &["-mode", "client", "-4", "-6"],
                "-4 cannot be used with -6",
            ),
            (
                &["-mode", "client", "-mode", "server"],
                "-mode given more than once",
            ),
            (&[], "-mode is required"),
            (
                &["-mode", "server", "-daemon", "maybe"],
                "-daemon: 'maybe' is not a boolean",
            ),
            (
                &["-mode", "server", "-refwait", "-5"],
                "-refwait: '-5' is not a duration",
            ),
            (
                &["-mode", "server", "-pbkdf2-count", "lots"],
                "-pbkdf2-count: 'lots' is not an iteration count",
            ),
            (
                &["-mode", "server", "-max-connections", "-3"],
                "-max-connections: '-3' is not a number of connections",
            ),
            (
                &["-mode", "server", "-max-connections-per-client", "x"],
                "-max-connections-per-client: 'x'",
            ),
        ] {
            let e = error(args);
            let first = e.lines().next().unwrap_or_default();
            assert!(e.contains(needle), "{args:?}: {e}");
            assert!(!e.contains("..="), "Rust range syntax in {args:?}: {e}");
            assert!(!first.contains("'--"), "clap's spelling in {args:?}: {e}");
        }
    }

    #[test]
    fn the_rewrite_is_idempotent_and_leaves_values_alone() {
        let args: Vec<OsString> = [
            "twamp", "-mode", "client", "-user", "-bob", "-c", "-1", "-x",
        ]
        .map(OsString::from)
        .to_vec();
        let once = normalize_args(args);
        let want = [
            "twamp", "--mode", "client", "--user", "-bob", "-c", "-1", "-x",
        ];
        assert_eq!(once, want.map(OsString::from).to_vec());
        assert_eq!(normalize_args(once.clone()), once);

        // Every pair of these words: the rewrite is idempotent (the fuzz target's property)
        // and parsing never panics.
        let words = [
            "-c",
            "-1",
            "-daemon",
            "-4",
            "--",
            "-mode",
            "-bogus",
            "-vv",
            "-c10",
            "-daemon=-1",
            "-user",
            "-i",
            "-",
            "--port",
            "-6c",
        ];
        for a in words {
            for b in words {
                let args = ["twamp", a, b].map(OsString::from).to_vec();
                let once = normalize_args(args.clone());
                assert_eq!(normalize_args(once.clone()), once, "{a} {b}");
                let _ = Cli::try_from_args(args).map_err(|e| e.to_string());
            }
        }
    }
}
