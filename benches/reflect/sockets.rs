//! Sections 2 and 3 of the benchmark: the server binary over loopback sockets against a
//! minimal blocking UDP echo, and the server's resident memory with 0, 100 and 2,000 sessions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use twamp::control::client::{build_request, SessionRequest};
use twamp::time::{ErrorEstimate, Timestamp};
use twamp::wire::{
    Accept, AcceptSession, RequestTwSession, SenderPacket, ServerStart, SetUpResponse, StartAck,
    StartSessions, TestLayout,
};

/// The server under test: this build's, or `TWAMP_BENCH_SERVER` (another build of the same
/// source, e.g. the small-device build of the README).
fn server_binary() -> String {
    std::env::var("TWAMP_BENCH_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_twamp").to_string())
}
/// The reflector's receive buffer (config::REFLECTOR_RCVBUF); the echo gets the same.
const RCVBUF: usize = 1 << 20;
/// Loss allowed at a rate: 0.1 %.
const MAX_LOSS: f64 = 0.001;
const PACKET: usize = 41;

/// The minimal blocking UDP echo, run as `reflect --echo` in a process of its own: prints its
/// port, then answers every datagram with itself until killed.
pub fn echo() {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind the echo");
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(RCVBUF);
    println!("{}", s.local_addr().expect("echo address").port());
    let _ = std::io::stdout().flush();
    let mut b = [0u8; 2048];
    loop {
        if let Ok((n, from)) = s.recv_from(&mut b) {
            let _ = s.send_to(&b[..n], from);
        }
    }
}

/// A child process, killed and reaped on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// CPU time of every thread of the process so far, in ns (schedstat: ns on the CPU).
    fn cpu_ns(&self) -> u64 {
        let dir = format!("/proc/{}/task", self.pid());
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                    .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0)
    }

    fn status(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix(field))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        self.status("VmRSS:")
    }

    /// Proportional set size and anonymous memory (KiB), from smaps_rollup: VmRSS counts the
    /// shared pages of libc and of the binary in full.
    fn pss_anon_kib(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", self.pid()))
            .unwrap_or_default();
        let field = |name: &str| {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        (field("Pss:"), field("Anonymous:"))
    }

    fn memory(&self) -> String {
        let (pss, anon) = self.pss_anon_kib();
        format!(
            "VmRSS {} KiB (Pss {pss} KiB, anonymous {anon} KiB)",
            self.rss_kib()
        )
    }
}

fn start_echo() -> (Proc, SocketAddr) {
    let exe = std::env::current_exe().expect("the bench binary");
    let mut child = Command::new(exe)
        .arg("--echo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the echo");
    let mut line = String::new();
    let out = child.stdout.take().expect("piped");
    BufReader::new(out).read_line(&mut line).expect("echo port");
    let port: u16 = line.trim().parse().expect("a port");
    (Proc(child), SocketAddr::from(([127, 0, 0, 1], port)))
}

fn start_server(extra: &[&str]) -> (Proc, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // Its log goes to a file, not the terminal: a line per ended session would cost the
    // server CPU inside the figures. The file is shown if the server does not start.
    let log = std::env::temp_dir().join(format!("twamp-bench-{}-{port}.log", std::process::id()));
    let child = Command::new(server_binary())
        .args(["-mode", "server", "-listen", "127.0.0.1", "-port"])
        .arg(port.to_string())
        .args(["-test-ports", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the server's log file"))
        .spawn()
        .expect("start the server");
    let mut child = Proc(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let end = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        let exited = child.0.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > end {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            panic!(
                "the server did not start ({exited:?}); its log {}:\n{text}",
                log.display()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&log);
    // That probe connection is closed; let the server settle before any figure is read.
    thread::sleep(Duration::from_millis(300));
    (child, addr)
}

/// An open-mode control connection.
struct Control(TcpStream);

impl Control {
    fn open(server: SocketAddr) -> Control {
        let mut s = TcpStream::connect(server).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut g = [0u8; 64];
        s.read_exact(&mut g).expect("greeting");
        let mut b = [0u8; SetUpResponse::LEN];
        SetUpResponse::open().emit(&mut b);
        s.write_all(&b).unwrap();
        let mut st = [0u8; ServerStart::LEN];
        s.read_exact(&mut st).expect("server-start");
        assert_eq!(ServerStart::parse(&st).accept, Accept::Ok);
        Control(s)
    }

    /// Requests a session for packets from `sender`; returns the reflector port.
    fn request(&mut self, sender: SocketAddr) -> u16 {
        let mut b = [0u8; RequestTwSession::LEN];
        build_request(&SessionRequest {
            sender,
            receiver: SocketAddr::from(([127, 0, 0, 1], 0)),
            padding: (PACKET - 14) as u32,
            start_time: Timestamp(0),
            timeout: Duration::from_millis(100),
            dscp: 0,
        })
        .emit(&mut b);
        self.0.write_all(&b).unwrap();
        let mut a = [0u8; AcceptSession::LEN];
        self.0.read_exact(&mut a).expect("accept-session");
        let a = AcceptSession::parse(&a);
        assert_eq!(a.accept, Accept::Ok, "a session refused");
        a.port
    }

    fn start(&mut self) {
        let mut b = [0u8; 32];
        StartSessions.emit(&mut b);
        self.0.write_all(&b).unwrap();
        let mut a = [0u8; 32];
        self.0.read_exact(&mut a).expect("start-ack");
        assert_eq!(StartAck::parse(&a).accept, Accept::Ok);
    }
}

fn packet(seq: u32) -> [u8; PACKET] {
    let mut b = [0u8; PACKET];
    SenderPacket {
        seq,
        timestamp: Timestamp::new(1, 0),
        error_estimate: ErrorEstimate(1),
    }
    .emit(&mut b, &TestLayout::OPEN.sender)
    .expect("41 octets hold the base");
    b
}

/// Sends `n` packets to `to` at `rate` per second (in 1 ms bursts) and counts the replies.
fn blast(sock: &UdpSocket, to: SocketAddr, rate: u64, n: u64) -> u64 {
    let got = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let rx = sock.try_clone().expect("clone the socket");
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let receiver = {
        let (got, done) = (got.clone(), done.clone());
        thread::spawn(move || {
            let mut b = [0u8; 2048];
            let mut quiet_since: Option<Instant> = None;
            loop {
                match rx.recv_from(&mut b) {
                    Ok(_) => {
                        got.fetch_add(1, Ordering::Relaxed);
                        quiet_since = None;
                    }
                    Err(_) if done.load(Ordering::Relaxed) => {
                        let q = *quiet_since.get_or_insert_with(Instant::now);
                        if q.elapsed() > Duration::from_millis(300) {
                            break;
                        }
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let start = Instant::now();
    let per_ms = (rate / 1000).max(1);
    let mut sent = 0u64;
    while sent < n {
        for _ in 0..per_ms.min(n - sent) {
            let _ = sock.send_to(&packet(sent as u32), to);
            sent += 1;
        }
        let due = start + Duration::from_nanos(sent * 1_000_000_000 / rate.max(1));
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = receiver.join();
    got.load(Ordering::Relaxed)
}

fn generator() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind the generator");
    let _ = socket2::SockRef::from(&s).set_recv_buffer_size(4 << 20);
    s
}

/// Whether `to` holds `rate` for `secs` with at most 0.1 % loss (best of two tries).
fn holds(sock: &UdpSocket, to: SocketAddr, rate: u64, secs: f64) -> bool {
    let n = ((rate as f64 * secs) as u64).max(2000);
    (0..2).any(|_| {
        let got = blast(sock, to, rate, n);
        1.0 - got as f64 / n as f64 <= MAX_LOSS
    })
}

/// The highest rate of `rates` each target holds, tried in turns at each rate so all see the
/// same machine (these are shared and noisy); stops once none holds a rate.
fn max_rates(sock: &UdpSocket, targets: &[SocketAddr], rates: &[u64], secs: f64) -> Vec<u64> {
    let mut best = vec![0; targets.len()];
    for &rate in rates {
        let held: Vec<bool> = targets
            .iter()
            .map(|&t| holds(sock, t, rate, secs))
            .collect();
        for (b, &h) in best.iter_mut().zip(&held) {
            if h {
                *b = rate;
            }
        }
        if !held.contains(&true) {
            break;
        }
    }
    best
}

/// CPU ns the process spends per 100,000 packets reflected at `rate`.
fn cpu_per_100k(p: &Proc, sock: &UdpSocket, to: SocketAddr, rate: u64, n: u64) -> f64 {
    let before = p.cpu_ns();
    let got = blast(sock, to, rate, n);
    let used = p.cpu_ns().saturating_sub(before);
    used as f64 * 100_000.0 / got.max(1) as f64
}

pub fn run(smoke: bool) {
    let (rates, secs, cpu_n, cpu_rate, rounds): (&[u64], f64, u64, u64, usize) = if smoke {
        (&[10_000, 20_000], 0.2, 20_000, 20_000, 1)
    } else {
        (
            &[
                20_000, 40_000, 60_000, 70_000, 80_000, 85_000, 90_000, 95_000, 100_000, 110_000,
                120_000, 150_000,
            ],
            1.0,
            300_000,
            40_000,
            3,
        )
    };

    println!("\nover loopback sockets: twamp server (engine) vs a minimal blocking UDP echo");
    let (echo, echo_addr) = start_echo();
    // The same server also runs the TWAMP-Light / STAMP reflector (RFC 5357 Appendix I,
    // RFC 8762) on a port of its own, on the same engine.
    let light_port = UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let (server, server_addr) = start_server(&["-light-port", &light_port.to_string()]);
    let light = SocketAddr::from(([127, 0, 0, 1], light_port));
    let sock = generator();
    let mut ctl = Control::open(server_addr);
    let port = ctl.request(sock.local_addr().expect("generator address"));
    ctl.start();
    let reflector = SocketAddr::from(([127, 0, 0, 1], port));
    // Warm both up.
    blast(&sock, echo_addr, 10_000, 2_000);
    blast(&sock, reflector, 10_000, 2_000);
    let warm = blast(&sock, light, 10_000, 2_000);
    assert!(warm > 0, "the light reflector answers nothing");

    // These machines are shared and noisy: the rate search runs `rounds` times and each
    // target's median is reported; the CPU figures are medians of `rounds` interleaved runs.
    let targets = [echo_addr, reflector, light];
    let mut found: Vec<Vec<u64>> = vec![Vec::new(); targets.len()];
    for _ in 0..rounds {
        for (f, r) in found
            .iter_mut()
            .zip(max_rates(&sock, &targets, rates, secs))
        {
            f.push(r);
        }
    }
    let median_u = |v: &mut Vec<u64>| {
        v.sort_unstable();
        v[v.len() / 2]
    };
    let searches: Vec<String> = found.iter().map(|f| format!("{f:?}")).collect();
    let (echo_rate, ours_rate, light_rate) = (
        median_u(&mut found[0]),
        median_u(&mut found[1]),
        median_u(&mut found[2]),
    );
    let (mut echo_cpu, mut ours_cpu, mut light_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        echo_cpu.push(cpu_per_100k(&echo, &sock, echo_addr, cpu_rate, cpu_n));
        ours_cpu.push(cpu_per_100k(&server, &sock, reflector, cpu_rate, cpu_n));
        light_cpu.push(cpu_per_100k(&server, &sock, light, cpu_rate, cpu_n));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (echo_cpu, ours_cpu) = (median(&mut echo_cpu), median(&mut ours_cpu));
    let light_cpu = median(&mut light_cpu);
    let rate_ratio = ours_rate as f64 / echo_rate.max(1) as f64;
    let light_ratio = light_rate as f64 / echo_rate.max(1) as f64;
    let cpu_ratio = ours_cpu / echo_cpu;
    println!(
        "highest rate with <= 0.1% loss (tried {rates:?}; searches: echo {}, twamp {}, light {}; medians follow)",
        searches[0], searches[1], searches[2]
    );
    println!("echo {echo_rate}/s, twamp {ours_rate}/s = {rate_ratio:.2} x echo (target >= 0.95)");
    println!(
        "TWAMP-Light reflector, same run: {light_rate}/s = {light_ratio:.2} x echo (target >= 0.95)"
    );
    println!(
        "CPU per 100,000 reflected packets at {cpu_rate}/s: echo {:.1} ms, twamp {:.1} ms = {cpu_ratio:.2} x echo (target <= 1.10)",
        echo_cpu / 1e6,
        ours_cpu / 1e6
    );
    println!(
        "CPU per 100,000 packets, TWAMP-Light reflector: {:.1} ms = {:.2} x echo",
        light_cpu / 1e6,
        light_cpu / echo_cpu
    );
    drop(ctl);
    drop(server);
    drop(echo);

    println!("\nserver resident memory (VmRSS) and threads");
    let extra = ["-max-sessions", "2048", "-max-sessions-per-client", "2048"];
    let (server, addr) = start_server(&extra);
    let idle = server.rss_kib();
    println!(
        "idle: {}, {} threads (target VmRSS <= 2048 KiB)",
        server.memory(),
        server.status("Threads:")
    );
    let counts: &[usize] = if smoke { &[100] } else { &[100, 2000] };
    for &n in counts {
        let sock = generator();
        sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let me = sock.local_addr().expect("generator address");
        let mut conns = Vec::new();
        let mut ports = Vec::new();
        for chunk in 0..n.div_ceil(50) {
            let mut c = Control::open(addr);
            for _ in 0..50.min(n - chunk * 50) {
                ports.push(c.request(me));
            }
            c.start();
            conns.push(c);
        }
        let mut b = [0u8; 2048];
        let mut answered = 0;
        for (i, p) in ports.iter().enumerate() {
            let _ = sock.send_to(&packet(i as u32), SocketAddr::from(([127, 0, 0, 1], *p)));
            if sock.recv_from(&mut b).is_ok() {
                answered += 1;
            }
        }
        thread::sleep(Duration::from_millis(200));
        let with = server.memory();
        let threads = server.status("Threads:");
        drop(conns);
        let end = Instant::now() + Duration::from_secs(5);
        while server.status("Threads:") > 2 && Instant::now() < end {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(300));
        let after = server.rss_kib();
        println!(
            "{n} sessions ({} connections, {answered} answered a packet): {with}, {threads} threads; after they end: VmRSS {after} KiB (idle + {} KiB){}",
            n.div_ceil(50),
            after.saturating_sub(idle),
            if n == 100 {
                " (targets: <= 4096 KiB with 100 sessions, back to idle after)"
            } else {
                ""
            }
        );
    }
    let bin = server_binary();
    let mib = |p: &std::path::Path| {
        std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / (1024.0 * 1024.0))
    };
    // The figure that matters on a device is the stripped one (strip(1), binutils).
    let stripped =
        std::env::temp_dir().join(format!("twamp-bench-{}.stripped", std::process::id()));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&bin)
        .status()
        .is_ok_and(|s| s.success());
    let after = if ok {
        format!("{:.2} MiB stripped (target <= 1.50)", mib(&stripped))
    } else {
        "strip(1) not found".to_string()
    };
    let _ = std::fs::remove_file(&stripped);
    println!(
        "\nserver binary {bin}: {:.2} MiB, {after}",
        mib(std::path::Path::new(&bin))
    );
}
