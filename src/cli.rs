//! The command line as the user typed it (clap derive), in the Go-flag style of tiny-twamp:
//! `-mode server`, `--mode server` and `-mode=server` all work. Nothing after `main` sees
//! [`Cli`]: `config` turns it into a validated configuration once.

use std::ffi::OsString;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Server,
    Client,
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

/// TWAMP (RFC 5357) server and client: round-trip and one-way delay, loss, jitter,
/// reordering and duplicates between two hosts.
#[derive(Debug, Parser)]
#[command(
    name = "twamp",
    version,
    about,
    after_help = "Single-dash long flags work as in Go: -mode server, -server=HOST, -daemon true.\nSee twamp(1) for exit codes and the key file format."
)]
pub struct Cli {
    /// Run as the TWAMP server (Server and Session-Reflector) or the client (Control-Client and
    /// Session-Sender).
    #[arg(long, value_enum, value_name = "server|client")]
    pub mode: ModeArg,

    // ---- client ----
    /// Client: the TWAMP server to measure, HOST[:PORT], an IPv4 or IPv6 literal, or [V6]:PORT.
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Client")]
    pub server: Option<String>,

    /// Client: number of test packets.
    #[arg(
        short = 'c',
        long = "count",
        value_name = "COUNT",
        help_heading = "Client"
    )]
    pub count: Option<u32>,

    /// Client: interval between test packets (e.g. 100ms, 0.5s, 1s; a bare number is seconds).
    #[arg(short = 'i', long, value_name = "INTERVAL", help_heading = "Client")]
    pub interval: Option<String>,

    /// Client: how long to wait for late replies after the last packet before counting the rest
    /// as lost; also the reflector's Timeout after Stop-Sessions.
    #[arg(long, value_name = "DURATION", help_heading = "Client")]
    pub timeout: Option<String>,

    /// Client: padding octets after the test packet base (default: 27 open/mixed, 64
    /// authenticated/encrypted, so both directions carry equal sizes).
    #[arg(long, value_name = "OCTETS", help_heading = "Client")]
    pub padding: Option<u32>,

    /// Client: DSCP (0-63) for test packets, also sent in the Type-P Descriptor.
    #[arg(long, value_name = "DSCP", value_parser = clap::value_parser!(u8).range(0..=63), help_heading = "Client")]
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
    #[arg(long, value_name = "N", help_heading = "Client")]
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
    #[arg(long, value_name = "DURATION", help_heading = "Client")]
    pub connect_timeout: Option<String>,

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
    #[arg(long, value_name = "DURATION", help_heading = "Server")]
    pub refwait: Option<String>,

    /// Server: SERVWAIT, how long an idle control connection is kept (RFC 5357 §3.1).
    #[arg(long, value_name = "DURATION", help_heading = "Server")]
    pub servwait: Option<String>,

    /// Server: UDP port range LO-HI for Session-Reflectors; a requested port is granted only
    /// inside it, else the server picks one from it. 0: any port the OS picks (default
    /// 18760-19960).
    #[arg(long, value_name = "LO-HI", help_heading = "Server")]
    pub test_ports: Option<String>,

    /// Server: security modes offered (comma list of open, authenticated, encrypted, mixed).
    /// Default: open without -keyfile, all four with it.
    #[arg(long, value_name = "MODES", help_heading = "Server")]
    pub modes: Option<String>,

    /// Server: PBKDF2 iteration Count sent in the Server-Greeting (power of two, >= 1024).
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub pbkdf2_count: Option<u32>,

    /// Server: control connections served at once; past it new ones get a greeting with
    /// Modes 0 and are closed.
    #[arg(long, value_name = "N", help_heading = "Server")]
    pub max_connections: Option<usize>,

    /// Server: control connections served at once from one client address.
    #[arg(long, value_name = "N", help_heading = "Server")]
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

    // ---- both ----
    /// TCP port of TWAMP-Control (default 862).
    #[arg(long, value_name = "PORT")]
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
}

/// Long flag names, for the Go-style rewrite below.
fn long_flags() -> Vec<String> {
    let cmd = Cli::command();
    let mut v: Vec<String> = cmd
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    v.extend(["help".to_string(), "version".to_string()]);
    v
}

/// Whether a single-dash word is a Go-style long flag rather than clustered short flags
/// (`-vv`, `-c10`, `-4`). Unknown words are treated as long flags too, so a typo is reported as
/// `--bogus` rather than as a bundle of short flags.
fn is_go_long(name: &str, longs: &[String]) -> bool {
    if longs.iter().any(|l| l == name) {
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

/// Rewrites Go-style single-dash long flags (`-mode`, `-mode=server`) into clap's `--mode`.
/// Short flags (`-c`, `-i`, `-4`, `-v`, `-vv`) and negative numbers are left alone.
pub fn normalize_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let longs = long_flags();
    let mut out = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        if i > 0 {
            if let Some(s) = a.to_str() {
                if let Some(rest) = s.strip_prefix('-') {
                    let name = rest.split('=').next().unwrap_or("");
                    if !rest.starts_with('-') && name.len() > 1 && is_go_long(name, &longs) {
                        out.push(OsString::from(format!("-{s}")));
                        continue;
                    }
                }
            }
        }
        out.push(a);
    }
    out
}

impl Cli {
    /// Parses the process arguments; clap prints usage and exits 2 on errors.
    pub fn from_env() -> Self {
        Cli::parse_from(normalize_args(std::env::args_os()))
    }

    pub fn try_from_args<I: IntoIterator<Item = S>, S: Into<OsString>>(
        args: I,
    ) -> Result<Self, clap::Error> {
        Cli::try_parse_from(normalize_args(args.into_iter().map(Into::into)))
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

    #[test]
    fn unknown_flags_are_errors() {
        let e = Cli::try_from_args(["twamp", "-mode", "server", "-bogus"]).unwrap_err();
        assert!(e.to_string().contains("--bogus"), "{e}");
        assert!(Cli::try_from_args(["twamp", "-mode", "client", "-dscp", "64"]).is_err());
        assert!(Cli::try_from_args(["twamp"]).is_err(), "-mode is required");
    }
}
