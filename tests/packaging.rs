//! Packaging (issue 10), the slow checks in one file, each bounded: the systemd unit passes
//! `systemd-analyze verify`, and `cargo deb` packs the binary already built (never builds)
//! into a package that `dpkg -i` installs, whose binary then serves a measurement and whose
//! man page `man twamp` opens. The package is purged again at the end.
//!
//! `.ci/run` installs what these need (systemd, man-db, cargo-deb); outside CI a missing tool
//! or a non-root user skips the check with a message saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::{run_client, Guard, Scratch, BIN};

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/twamp.service");

/// One finished command.
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program` with `args`, killed if it runs longer than `limit`.
fn run(program: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(o)) => Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("{program}: {e}"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{program} {args:?} ran longer than {limit:?}");
        }
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// In CI a missing prerequisite is a failure; elsewhere a skip that says why.
fn require(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} (.ci/run should have installed it)"
        );
        eprintln!("skipping: {what}");
    }
    ok
}

/// `systemd-analyze verify` on `unit`: it must exit 0 and warn about nothing in the unit.
fn verify(unit: &Path) {
    let out = run(
        "systemd-analyze",
        &["verify", "--man=no", unit.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    let name = unit.file_name().unwrap().to_str().unwrap();
    let complaints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(name) || l.contains("Unknown") || l.contains("invalid"))
        .collect();
    assert!(
        out.code == Some(0) && complaints.is_empty(),
        "systemd-analyze verify {}: {:?}\n{}{}",
        unit.display(),
        out.code,
        out.stdout,
        out.stderr
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if !require(have("systemd-analyze"), "systemd-analyze is not installed") {
        return;
    }
    // verify checks that ExecStart's program exists: point it at the binary just built.
    let dir = Scratch::new("unit");
    std::fs::create_dir_all(&dir.0).unwrap();
    let unit = dir.0.join("twamp.service");
    let text = std::fs::read_to_string(UNIT).unwrap();
    for needed in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(text.contains(needed), "the unit lacks {needed}");
    }
    std::fs::write(&unit, text.replace("/usr/bin/twamp", BIN)).unwrap();
    verify(&unit);
    let _ = std::fs::remove_dir_all(&dir.0);
}

/// The target directory and the profile the binary under test was built in
/// (`<target>/<profile>/twamp`), so `cargo deb --no-build` packs exactly it.
fn built() -> (PathBuf, &'static str) {
    let bin = Path::new(BIN);
    let profile_dir = bin.parent().unwrap();
    let profile = if profile_dir.file_name().is_some_and(|n| n == "release") {
        "release"
    } else {
        "dev"
    };
    (profile_dir.parent().unwrap().to_path_buf(), profile)
}

/// Purges the package whatever happens to the test.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "twamp"])
            .stdout(Stdio::null())
            .status();
    }
}

#[test]
fn cargo_deb_builds_a_package_that_installs_serves_and_opens_its_man_page() {
    let root = nix::unistd::geteuid().is_root();
    if !require(root && have("dpkg"), "dpkg -i needs root and dpkg")
        || !require(
            have("cargo-deb"),
            "cargo-deb is not installed (cargo install cargo-deb)",
        )
        || !require(have("man"), "man is not installed (man-db)")
    {
        return;
    }
    let started = Instant::now();
    let out_dir = Scratch::new("deb");
    std::fs::create_dir_all(&out_dir.0).unwrap();
    let (target, profile) = built();
    let out = run(
        "cargo",
        &[
            "deb",
            "--no-build",
            "--fast",
            "--profile",
            profile,
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "--output",
            out_dir.0.to_str().unwrap(),
        ],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
        Duration::from_secs(300),
    );
    assert_eq!(
        out.code,
        Some(0),
        "cargo deb:\n{}{}",
        out.stdout,
        out.stderr
    );
    let deb = std::fs::read_dir(&out_dir.0)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb in the output directory");

    let contents = run(
        "dpkg",
        &["-c", deb.to_str().unwrap()],
        &[],
        Duration::from_secs(30),
    );
    for path in [
        "./usr/bin/twamp",
        "./usr/share/man/man1/twamp.1",
        "./usr/lib/systemd/system/twamp.service",
        "./etc/twamp/twamp.toml",
        "./etc/logrotate.d/twamp",
    ] {
        assert!(
            contents.stdout.contains(path),
            "{path} not in the package:\n{}",
            contents.stdout
        );
    }

    let _installed = Installed;
    let out = run(
        "dpkg",
        &["-i", deb.to_str().unwrap()],
        &[],
        Duration::from_secs(120),
    );
    assert_eq!(out.code, Some(0), "dpkg -i:\n{}{}", out.stdout, out.stderr);

    // The installed binary serves a measurement on loopback.
    let port = common::bin::closed_port().to_string();
    let log = Scratch::new("installed.log");
    let server = Guard(
        Command::new("/usr/bin/twamp")
            .args(["-mode", "server", "-listen", "127.0.0.1", "-port", &port])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log.0).unwrap())
            .spawn()
            .expect("start /usr/bin/twamp"),
    );
    assert!(
        common::wait_until(Duration::from_secs(5), || log
            .text()
            .contains("listening on")),
        "{}",
        log.text()
    );
    let client = run_client(
        &format!("127.0.0.1:{port}"),
        &["-c", "5", "-i", "10ms", "-timeout", "300ms"],
        Duration::from_secs(30),
    );
    assert!(client.success(), "{}\n{}", client.describe(), log.text());
    assert!(client.stdout.contains("5 sent"), "{}", client.describe());
    drop(server);

    // `man twamp` opens the installed page.
    let man = run(
        "man",
        &["twamp"],
        &[("MANPAGER", "cat"), ("PAGER", "cat"), ("MANWIDTH", "80")],
        Duration::from_secs(30),
    );
    assert_eq!(man.code, Some(0), "man twamp:\n{}", man.stderr);
    assert!(
        man.stdout.contains("TWAMP") && man.stdout.contains("-run-as"),
        "{}",
        man.stdout
    );

    // The unit as installed, with the installed binary.
    verify(Path::new("/usr/lib/systemd/system/twamp.service"));
    eprintln!(
        "packaging: built, installed, served and read in {:.1?}",
        started.elapsed()
    );
}
