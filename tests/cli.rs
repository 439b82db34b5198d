//! Black-box tests of the built `twamp` binary (ripgrep style): the command line, exit codes and
//! that the documentation (man/twamp.1, README.md) names every flag `--help` shows.
//!
//! No network other than 127.0.0.1, and every run is bounded: client runs use
//! `-connect-timeout 2s` and a watchdog kills any child that outlives [`RUN_LIMIT`].

mod common;

use common::bin::{closed_port, Run};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const MAN_PAGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/man/twamp.1");
const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

/// Exit codes from src/error.rs `mod exit`, as documented.
const USAGE: i32 = 2;
const NETWORK: i32 = 3;

/// No run here should take more than a few seconds; this only stops a hung test.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// Runs the binary with `args`; killed after RUN_LIMIT.
fn twamp(args: &[&str]) -> Run {
    common::bin::run_bounded(args, RUN_LIMIT)
}

/// Runs the binary with `args`, which must be a usage error that mentions `needle`: exit 2,
/// and no result record.
fn usage_error<S: AsRef<str>>(args: &[S], needle: &str) -> Run {
    let r = common::bin::run_bounded(args, RUN_LIMIT);
    assert_eq!(r.code, Some(USAGE), "{}", r.describe());
    assert!(
        r.stderr.contains(needle),
        "stderr should mention {needle:?}\n{}",
        r.describe()
    );
    assert!(
        r.stdout.is_empty(),
        "a usage error writes no result record\n{}",
        r.describe()
    );
    r
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Long (`--name`) and short (`-c`) flags in clap's help text, as bare names (`name`, `c`).
fn help_flags(help: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let chars: Vec<char> = help.chars().collect();
    for i in 0..chars.len() {
        if chars[i] != '-' || (i > 0 && (is_name_char(chars[i - 1]) || chars[i - 1] == '-')) {
            continue;
        }
        if chars.get(i + 1) == Some(&'-') {
            // --name
            let name: String = chars[i + 2..]
                .iter()
                .take_while(|c| is_name_char(**c))
                .collect();
            if name.len() > 1 {
                flags.insert(name);
            }
        } else if let Some(&c) = chars.get(i + 1) {
            // -c, but not -mode (prose in the help's footer) or 0-63 (caught above).
            let after = chars.get(i + 2).copied().unwrap_or(' ');
            if c.is_ascii_alphanumeric() && !is_name_char(after) {
                flags.insert(c.to_string());
            }
        }
    }
    flags
}

/// Whether `doc` holds `prefix` + `name` as a whole flag (not the start of a longer one).
/// `hyphen` is how the document writes a hyphen inside a name (`-`, or roff's `\-`).
fn mentions(doc: &str, prefix: &str, name: &str, hyphens: &[&str]) -> bool {
    hyphens.iter().any(|h| {
        let needle = format!("{prefix}{}", name.replace('-', h));
        doc.match_indices(&needle).any(|(at, _)| {
            let before = doc[..at].chars().next_back();
            let rest = &doc[at + needle.len()..];
            let after_ok = !rest.starts_with(is_name_char) && !rest.starts_with("\\-");
            let before_ok = !matches!(before, Some(c) if c.is_ascii_alphanumeric());
            after_ok && before_ok
        })
    })
}

#[test]
fn every_help_flag_is_in_the_man_page() {
    let help = twamp(&["--help"]);
    assert_eq!(help.code, Some(0), "{}", help.describe());
    let flags = help_flags(&help.stdout);
    for expected in [
        "mode",
        "server",
        "connect-timeout",
        "c",
        "i",
        "4",
        "6",
        "v",
        "q",
        "h",
        "V",
    ] {
        assert!(
            flags.contains(expected),
            "flag extraction missed -{expected}: got {flags:?}"
        );
    }

    let man = std::fs::read_to_string(MAN_PAGE).expect("read man/twamp.1");
    let readme = std::fs::read_to_string(README).expect("read README.md");
    // The man page writes flags Go-style with one roff minus: \-mode, \-connect\-timeout.
    let missing_man: Vec<String> = flags
        .iter()
        .filter(|f| !mentions(&man, "\\-", f, &["\\-", "-"]))
        .map(|f| format!("-{f}"))
        .collect();
    let missing_readme: Vec<String> = flags
        .iter()
        .filter(|f| !mentions(&readme, "-", f, &["-"]))
        .map(|f| format!("-{f}"))
        .collect();
    assert!(
        missing_man.is_empty() && missing_readme.is_empty(),
        "flags in `twamp --help` but not documented\n  man/twamp.1: {missing_man:?}\n  README.md: {missing_readme:?}"
    );
}

#[test]
fn man_page_options_exist_in_help() {
    // The other direction: each .TP entry under OPTIONS names a flag --help knows.
    let help = twamp(&["--help"]);
    let flags = help_flags(&help.stdout);
    let man = std::fs::read_to_string(MAN_PAGE).expect("read man/twamp.1");
    let options = man
        .split("\n.SH OPTIONS")
        .nth(1)
        .expect("man page has OPTIONS");
    let options = options.split("\n.SH ").next().unwrap_or(options);
    let lines: Vec<&str> = options.lines().collect();
    let mut stale = Vec::new();
    for w in lines.windows(2).filter(|w| w[0] == ".TP") {
        let Some(rest) = w[1].split_once("\\-").map(|(_, r)| r) else {
            continue;
        };
        let name: String = rest
            .replace("\\-", "-")
            .chars()
            .take_while(|c| is_name_char(*c))
            .collect();
        if !flags.contains(&name) {
            stale.push(format!("-{name}"));
        }
    }
    assert!(
        stale.is_empty(),
        "man/twamp.1 OPTIONS documents flags --help lacks: {stale:?}"
    );
}

#[test]
fn bad_arguments_exit_2() {
    let port = closed_port().to_string();
    let server = format!("127.0.0.1:{port}");
    let cases: &[(&[&str], &str)] = &[
        (
            &["-mode", "client", "-server", &server, "-bogus"],
            "unexpected argument",
        ),
        (
            &["--mode", "client", "--server", &server, "--no-such-flag"],
            "no-such-flag",
        ),
        (&[], "--mode"),
        (&["-server", &server], "--mode"),
        (&["-mode", "sideways"], "sideways"),
        (&["-mode", "client"], "-server"),
        (
            &["-mode", "client", "-server", &server, "-i", "10parsecs"],
            "parsecs",
        ),
        (
            &["-mode", "client", "-server", &server, "-dscp", "99"],
            "dscp",
        ),
        (
            &["-mode", "client", "-server", &server, "-c", "many"],
            "many",
        ),
        (
            &[
                "-mode",
                "client",
                "-server",
                "[::1",
                "-connect-timeout",
                "2s",
            ],
            "]",
        ),
        (&["-mode", "server", "-daemon", "maybe"], "maybe"),
        (&["-mode", "server", "-server", &server], "-server"),
    ];
    for (args, needle) in cases {
        usage_error(args, needle);
    }
}

#[test]
fn usage_errors_name_the_flag_as_typed_in_plain_words() {
    // Issue 8: `-c -1` said "unexpected argument '-1'", `-bogus` came back as `--bogus`, and
    // range errors printed Rust's `0..=65535`.
    let port = closed_port().to_string();
    let server = format!("127.0.0.1:{port}");
    let client = ["-mode", "client", "-server", &server];
    let cases: &[(&[&str], &str)] = &[
        (
            &["-c", "-1"],
            "-c: '-1' is not a packet count (a whole number from 1 to 4294967295)",
        ),
        (
            &["-padding", "-1"],
            "-padding: '-1' is not a number of octets (a whole number from 0 to",
        ),
        (&["-i", "-1s"], "-i: '-1s' is not a duration"),
        (&["-interval=-1s"], "-interval: '-1s' is not a duration"),
        (&["-bogus"], "unexpected argument '-bogus' found"),
        (
            &["-conect-timeout", "2s"],
            "tip: a similar argument exists: '-connect-timeout'",
        ),
        (
            &["-dscp", "64"],
            "-dscp: '64' is not a DSCP (a name such as EF, AF41, CS5, VA, LE, or a number from 0 to 63)",
        ),
        (
            &["-port", "70000"],
            "-port: '70000' is not a port number (a whole number from 1 to 65535)",
        ),
        (
            &["-max-count", "-1"],
            "-max-count: '-1' is not an iteration count",
        ),
        (
            &["-header", "maybe"],
            "-header: 'maybe' is not a boolean (true or false)",
        ),
        (
            &["-format", "yaml"],
            "-format: 'yaml' is not text, json, csv, packets or twping",
        ),
        (
            &["-padding", "70000"],
            "-padding 70000: too large for a UDP datagram (at most",
        ),
    ];
    let server_cases: &[(&[&str], &str)] = &[
        (
            &["-daemon", "maybe"],
            "-daemon: 'maybe' is not a boolean (true or false)",
        ),
        (
            &["-max-connections", "-3"],
            "-max-connections: '-3' is not a number of connections",
        ),
        (&["-refwait", "-1s"], "-refwait: '-1s' is not a duration"),
        (
            &["-pbkdf2-count", "1000"],
            "-pbkdf2-count 1000: must be a power of two, 1024 or more",
        ),
        (
            &["-test-ports", "0-10"],
            "-test-ports: '0-10' is not a port range",
        ),
    ];
    let with = |prefix: &[&str], extra: &[&str]| -> Vec<String> {
        prefix.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let all = cases.iter().map(|(a, n)| (with(&client, a), *n)).chain(
        server_cases
            .iter()
            .map(|(a, n)| (with(&["-mode", "server", "-listen", "127.0.0.1:0"], a), *n)),
    );
    for (args, needle) in all {
        let r = usage_error(&args, needle);
        // The flag as typed (single-dash here), no Rust syntax, and a value is no stray
        // argument.
        let first = r.stderr.lines().next().unwrap_or_default();
        let unknown_flag = args.iter().any(|a| a == "-bogus" || a == "-conect-timeout");
        let wrong = first.contains("'--")
            || r.stderr.contains("..=")
            || (!unknown_flag && r.stderr.contains("unexpected argument"));
        assert!(!wrong, "{}", r.describe());
    }
}

#[test]
fn go_style_flags_are_accepted() {
    // Parsing succeeds in every spelling, so the run gets as far as connecting: refused → 3.
    let port = closed_port().to_string();
    let server = format!("127.0.0.1:{port}");
    let eq = |flag: &str, v: &str| format!("{flag}={v}");
    let client_cases: Vec<Vec<String>> = vec![
        vec![
            eq("-mode", "client"),
            eq("-server", &server),
            eq("-c", "1"),
            "-connect-timeout".into(),
            "2s".into(),
        ],
        [
            "--mode",
            "client",
            "--server",
            &server,
            "--count",
            "1",
            "--connect-timeout",
            "2s",
        ]
        .map(String::from)
        .to_vec(),
        vec![
            eq("--mode", "client"),
            eq("--server", &server),
            eq("-count", "1"),
            eq("-connect-timeout", "2s"),
        ],
        [
            "-mode",
            "client",
            "-server",
            "127.0.0.1",
            "-port",
            &port,
            "-c",
            "1",
            "-i",
            "0.5s",
            "-4",
            "-vv",
        ]
        .into_iter()
        .chain([
            "-header",
            "false",
            "-format=csv",
            "-timeout",
            "1s",
            "-connect-timeout",
            "2s",
        ])
        .map(String::from)
        .collect(),
        [
            "-mode",
            "client",
            "-server",
            &server,
            "-header",
            "-dscp",
            "46",
            "-padding",
            "100",
            "-connect-timeout",
            "2s",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for args in &client_cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = twamp(&args);
        assert_eq!(r.code, Some(NETWORK), "{}", r.describe());
    }

    // Server spellings of the boolean -daemon: parsing succeeds and the configuration check
    // that follows (a bad PBKDF2 Count) is what stops the run, before anything is bound.
    for daemon in [
        &["-daemon"][..],
        &["-daemon", "false"],
        &["-daemon=false"],
        &["--daemon", "true"],
        &["-daemon", "-v"],
    ] {
        let mut args = vec!["-mode", "server", "-listen", "127.0.0.1:0"];
        args.extend_from_slice(daemon);
        args.extend_from_slice(&["-pbkdf2-count", "1000"]);
        let r = twamp(&args);
        assert_eq!(r.code, Some(USAGE), "{}", r.describe());
        assert!(
            r.stderr.contains("pbkdf2-count"),
            "config error, not a parse error\n{}",
            r.describe()
        );
        assert!(
            !r.stderr.contains("unexpected argument"),
            "{}",
            r.describe()
        );
    }
}

#[test]
fn unreachable_server_exit_code() {
    let addr = format!("127.0.0.1:{}", closed_port());
    let args = [
        "-mode",
        "client",
        "-server",
        &addr,
        "-c",
        "1",
        "-connect-timeout",
        "2s",
    ];
    let started = Instant::now();
    let r = twamp(&args);
    assert_eq!(r.code, Some(NETWORK), "{}", r.describe());
    assert!(
        r.stderr.contains(&addr),
        "stderr should name {addr}\n{}",
        r.describe()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refused connection is immediate"
    );

    // -q keeps stdout empty but still says on stderr what went wrong.
    let args = [
        "-mode",
        "client",
        "-server",
        &addr,
        "-c",
        "1",
        "-connect-timeout",
        "2s",
        "-q",
    ];
    let r = twamp(&args);
    assert_eq!(r.code, Some(NETWORK), "{}", r.describe());
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(r.stderr.contains(&addr), "{}", r.describe());
}

#[test]
fn version_and_help_exit_0() {
    let version = format!("twamp {}", env!("CARGO_PKG_VERSION"));
    for args in [&["--version"][..], &["-version"], &["-V"]] {
        let r = twamp(args);
        assert_eq!(r.code, Some(0), "{}", r.describe());
        assert!(
            r.stdout.contains(&version),
            "expected {version:?}\n{}",
            r.describe()
        );
    }
    for args in [&["--help"][..], &["-help"], &["-h"]] {
        let r = twamp(args);
        assert_eq!(r.code, Some(0), "{}", r.describe());
        assert!(
            r.stdout.contains("Usage:") && r.stdout.contains("--mode"),
            "{}",
            r.describe()
        );
    }
}
