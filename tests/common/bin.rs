//! Running the built binary from tests: one [`BIN`], a bounded run that captures its output
//! ([`run_bounded`], [`run_client`]), a child that is killed and reaped whatever happens to the test
//! ([`Proc`], [`Guard`]), and `twamp -mode server` on a free loopback port, waited for
//! ([`Server`]).
#![allow(dead_code)]

use std::fs::File;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_twamp");

/// How long a server may take to log that it listens.
pub const SERVER_START_LIMIT: Duration = Duration::from_secs(5);

/// One finished run of the binary.
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything about the run, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "twamp {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs the binary with `args` and no TWAMP_PASSPHRASE of ours leaking in; kills it and fails
/// the test if it runs longer than `limit`.
pub fn run_bounded<S: AsRef<str>>(args: &[S], limit: Duration) -> Run {
    let args: Vec<String> = args.iter().map(|s| s.as_ref().to_string()).collect();
    let mut child = Command::new(BIN)
        .args(&args)
        .env_remove("TWAMP_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on our own child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("twamp {} ran longer than {limit:?}", args.join(" "));
        }
        thread::sleep(Duration::from_millis(10));
    };
    Run {
        args,
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `-mode client -server SERVER` and then `extra`.
pub fn client_args(server: &str, extra: &[&str]) -> Vec<String> {
    ["-mode", "client", "-server", server]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// Runs the client against `server` with `extra` arguments, as [`run_bounded`].
pub fn run_client(server: &str, extra: &[&str], limit: Duration) -> Run {
    run_bounded(&client_args(server, extra), limit)
}

/// Kills and reaps the child when dropped (any program, e.g. tshark).
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback TCP port that nothing listens on: bound by us, then released.
pub fn closed_port() -> u16 {
    free_port(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A TCP port free on `ip` (bound by us, then released).
pub fn free_port(ip: IpAddr) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip} port 0: {e}"));
    l.local_addr().expect("local_addr").port()
}

/// A file under the target's scratch directory, removed on drop unless the test failed (so
/// a failure leaves the evidence).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("twamp-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Scratch(p)
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// The binary running as a child of ours, its stderr in a scratch file; SIGKILLed and reaped
/// on drop if still there.
pub struct Proc {
    child: Child,
    err: Scratch,
    reaped: Option<ExitStatus>,
}

impl Proc {
    /// Starts the binary with `args` (no TWAMP_PASSPHRASE of ours, stdin and stdout null);
    /// `name` names its stderr file.
    pub fn spawn<S: AsRef<str>>(args: &[S], name: &str) -> Proc {
        let err = Scratch::new(&format!("{name}.stderr"));
        let child = Command::new(BIN)
            .args(args.iter().map(AsRef::as_ref))
            .env_remove("TWAMP_PASSPHRASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&err.0).expect("create the stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Proc {
            child,
            err,
            reaped: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid() as i32), sig).expect("signal our own child");
    }

    /// Waits up to `limit` for the process to exit; None if it is still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.reaped {
                return Some(s);
            }
            if let Some(s) = self.child.try_wait().expect("try_wait on our own child") {
                self.reaped = Some(s);
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn kill_now(&mut self) {
        let _ = self.child.kill();
        if let Ok(s) = self.child.wait() {
            self.reaped = Some(s);
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.err.text()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            // SIGKILL also ends a stopped process.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `twamp -mode server` on a free port, listening; killed and reaped on drop (by its
/// [`Proc`]).
pub struct Server {
    pub proc: Proc,
    /// Where it listens: the address it was given, so a loopback address or `[::]`.
    pub addr: SocketAddr,
}

impl Server {
    /// On 127.0.0.1 with `extra` arguments.
    pub fn start(extra: &[&str]) -> Server {
        Server::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), extra)
    }

    /// On `ip` (`::` is the dual-stack listener) with `extra` arguments. Ready when it logs
    /// "listening on", which it does after listen(2): no probe connection disturbs what a
    /// test then measures of it. So the server must log at info (no `-q` in `extra`).
    pub fn start_on(ip: IpAddr, extra: &[&str]) -> Server {
        for _attempt in 0..5 {
            // The free port may be taken between our probe and the server's bind: then the
            // server exits, and we try another.
            let addr = SocketAddr::new(ip, free_port(ip));
            let mut args = vec![
                "-mode".to_string(),
                "server".to_string(),
                "-listen".to_string(),
                addr.to_string(),
            ];
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut proc = Proc::spawn(&args, &format!("server-{}", addr.port()));
            let end = Instant::now() + SERVER_START_LIMIT;
            while Instant::now() < end
                && proc.wait_for(Duration::ZERO).is_none()
                && !proc.stderr().contains("listening on")
            {
                thread::sleep(Duration::from_millis(20));
            }
            if proc.stderr().contains("listening on") && proc.wait_for(Duration::ZERO).is_none() {
                return Server { proc, addr };
            }
            let status = proc.wait_for(Duration::ZERO);
            eprintln!(
                "server on {addr} did not come up ({status:?}):\n{}",
                proc.stderr()
            );
        }
        panic!("could not start a server on {ip}");
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its log: everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.proc.stderr()
    }
}
