//! The server's configuration file (`-config PATH`): TOML, one key per server flag, named as
//! the flag with `_` for `-` (`max_sessions = 64` is `-max-sessions 64`). Flags given on the
//! command line win over the file. An unknown key, or a value of the wrong type, is an error
//! that names the key and its line. `contrib/twamp.toml` is an example with every key.
//!
//! The file only fills in what the command line left out; `config` then validates the
//! result exactly as it validates flags, so a value means the same in both places.

use std::path::Path;

use serde::Deserialize;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// A duration as text (`"900s"`, `"100ms"`) or a number of seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Text {
    Str(String),
    Int(u64),
    Float(f64),
}

impl Text {
    fn text(self) -> String {
        match self {
            Text::Str(s) => s,
            Text::Int(n) => n.to_string(),
            Text::Float(f) => f.to_string(),
        }
    }
}

/// One network, or a list of them (`"10.0.0.0/8"` or `["10.0.0.0/8", "2001:db8::/32"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Networks {
    One(String),
    Many(Vec<String>),
}

impl Networks {
    fn list(self) -> Vec<String> {
        match self {
            Networks::One(s) => vec![s],
            Networks::Many(v) => v,
        }
    }
}

/// Every server flag, as a key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    port: Option<u16>,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
    keyfile: Option<String>,
    logfile: Option<String>,
    verbose: Option<u8>,
    quiet: Option<bool>,
    daemon: Option<bool>,
    pidfile: Option<String>,
    refwait: Option<Text>,
    servwait: Option<Text>,
    test_ports: Option<Text>,
    modes: Option<String>,
    pbkdf2_count: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
    max_handshakes: Option<usize>,
    setup_timeout: Option<Text>,
    message_timeout: Option<Text>,
    max_sessions: Option<usize>,
    max_sessions_per_connection: Option<usize>,
    max_sessions_per_client: Option<usize>,
    engine_threads: Option<usize>,
    allow: Option<Networks>,
    deny: Option<Networks>,
    open_from: Option<Networks>,
    run_as: Option<String>,
    syslog: Option<bool>,
    light: Option<bool>,
    light_port: Option<u16>,
    light_only: Option<bool>,
    light_stateless: Option<bool>,
    light_senders: Option<usize>,
    light_idle: Option<Text>,
    light_key: Option<String>,
    extensions: Option<String>,
    metrics: Option<String>,
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse(text: &str) -> std::result::Result<File, String> {
    toml::from_str::<File>(text).map_err(|e| {
        let msg = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => format!("line {}: {msg}", line_of(text, span.start)),
            None => msg,
        }
    })
}

fn or<T>(flag: &mut Option<T>, file: Option<T>) {
    if flag.is_none() {
        *flag = file;
    }
}

fn list(flag: &mut Vec<String>, file: Option<Networks>) {
    if flag.is_empty() {
        if let Some(n) = file {
            *flag = n.list();
        }
    }
}

/// Fills in every setting the command line left out from the file's text.
fn merge(cli: &mut Cli, f: File) {
    or(&mut cli.listen, f.listen);
    or(&mut cli.port, f.port);
    if !cli.ipv4 && !cli.ipv6 {
        cli.ipv4 = f.ipv4.unwrap_or(false);
        cli.ipv6 = f.ipv6.unwrap_or(false) && !cli.ipv4;
    }
    or(&mut cli.keyfile, f.keyfile);
    or(&mut cli.logfile, f.logfile);
    if cli.verbose == 0 && !cli.quiet {
        cli.verbose = f.verbose.unwrap_or(0);
        cli.quiet = f.quiet.unwrap_or(false);
    }
    or(&mut cli.daemon, f.daemon);
    or(&mut cli.pidfile, f.pidfile);
    or(&mut cli.refwait, f.refwait.map(Text::text));
    or(&mut cli.servwait, f.servwait.map(Text::text));
    or(&mut cli.test_ports, f.test_ports.map(Text::text));
    or(&mut cli.modes, f.modes);
    or(&mut cli.pbkdf2_count, f.pbkdf2_count);
    or(&mut cli.max_connections, f.max_connections);
    or(
        &mut cli.max_connections_per_client,
        f.max_connections_per_client,
    );
    or(&mut cli.max_handshakes, f.max_handshakes);
    or(&mut cli.setup_timeout, f.setup_timeout.map(Text::text));
    or(&mut cli.message_timeout, f.message_timeout.map(Text::text));
    or(&mut cli.max_sessions, f.max_sessions);
    or(
        &mut cli.max_sessions_per_connection,
        f.max_sessions_per_connection,
    );
    or(&mut cli.max_sessions_per_client, f.max_sessions_per_client);
    or(&mut cli.engine_threads, f.engine_threads);
    list(&mut cli.allow, f.allow);
    list(&mut cli.deny, f.deny);
    list(&mut cli.open_from, f.open_from);
    or(&mut cli.run_as, f.run_as);
    or(&mut cli.syslog, f.syslog);
    or(&mut cli.light, f.light);
    or(&mut cli.light_port, f.light_port);
    or(&mut cli.light_only, f.light_only);
    or(&mut cli.light_stateless, f.light_stateless);
    or(&mut cli.light_senders, f.light_senders);
    or(&mut cli.light_idle, f.light_idle.map(Text::text));
    or(&mut cli.light_key, f.light_key);
    or(&mut cli.extensions, f.extensions);
    or(&mut cli.metrics, f.metrics);
}

/// The command line with the file's settings filled in where no flag was given.
pub fn apply(cli: &Cli, path: &Path) -> Result<Cli> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("-config: cannot read {}: {e}", path.display())))?;
    let file =
        parse(&text).map_err(|e| Error::Config(format!("config file {}: {e}", path.display())))?;
    let mut out = cli.clone();
    merge(&mut out, file);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["twamp", "-mode", "server"];
        v.extend_from_slice(args);
        Cli::try_from_args(v).unwrap()
    }

    #[test]
    fn an_unknown_key_names_the_key_and_its_line() {
        let e = parse("port = 8620\n\n# a comment\nmax_sesions = 3\n").unwrap_err();
        assert!(e.starts_with("line 4: "), "{e}");
        assert!(e.contains("max_sesions"), "{e}");
        let e = parse("port = \"x\"\n").unwrap_err();
        assert!(e.starts_with("line 1: "), "{e}");
    }

    #[test]
    fn the_file_fills_in_and_flags_win() {
        let f = parse(
            "port = 8620\nrefwait = \"30s\"\nservwait = 60\nallow = \"10.0.0.0/8\"\n\
             deny = [\"10.9.0.0/16\", \"10.8.0.1\"]\nverbose = 2\nipv6 = true\n",
        )
        .unwrap();
        let mut c = cli(&["-port", "9000", "-4"]);
        merge(&mut c, f);
        assert_eq!(c.port, Some(9000), "the flag wins");
        assert_eq!(c.refwait.as_deref(), Some("30s"));
        assert_eq!(c.servwait.as_deref(), Some("60"));
        assert_eq!(c.allow, vec!["10.0.0.0/8"]);
        assert_eq!(c.deny, vec!["10.9.0.0/16", "10.8.0.1"]);
        assert_eq!(c.verbose, 2);
        assert!(c.ipv4 && !c.ipv6, "-4 wins over the file's ipv6");
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../contrib/twamp.toml");
        parse(text).unwrap();
    }
}
