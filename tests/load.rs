//! Load: 200 concurrent clients, one session each at 100 packets/s for 10 s, against the
//! `twamp` server binary on loopback. Overall loss must stay at or under 0.1 %, the server must
//! run one thread per control connection (the reflector engine serves every session), and once the clients are done
//! its threads, file descriptors and memory must come back to their idle level.
//!
//! The server runs as a child process so /proc/<pid> describes it alone. The clients run
//! in-process, one thread each, through `twamp::client::run`: 200 × 100 pps is 20 000 sends and
//! 20 000 receives a second, which two cores handle on loopback without loss (see the figures
//! this test prints); 200 child processes would only add 200 process start-ups and 200 copies
//! of the runtime to the same two cores.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use twamp::client;
use twamp::config::{ClientConfig, Family, Format, Logging, SessionSpec};
use twamp::control::SecurityMode;
use twamp::sender::Schedule;
use twamp::time::SystemClock;

use common::proc::{sample as proc_sample, Sample};

const CLIENTS: usize = 200;
const COUNT: u32 = 1000;
const INTERVAL: Duration = Duration::from_millis(10);
const LOSS_TIMEOUT: Duration = Duration::from_secs(2);
/// Loss allowed over all 200 × 1000 packets: 0.1 %.
const MAX_LOSS: f64 = 0.001;
/// How long the server may take to give back its threads and descriptors after the last
/// client is done. Each control thread ends on the client's close and stops its reflector
/// (polled every 200 ms): well under a second in practice.
const SETTLE: Duration = Duration::from_secs(10);
/// Resident memory the server may keep after a wave, over its idle level. Nothing of ours
/// stays (threads and descriptors are back to idle), but glibc keeps, per /proc/<pid>/smaps:
/// - the main heap it grew (~2 MiB);
/// - exited threads' stacks cached for reuse: up to 40 MiB of address space, i.e. ~160 of the
///   server's 256 KiB stacks, only their touched pages resident (~2.5 MiB);
/// - freed chunks in its per-thread arenas (at most 8 per core), which glibc trims only from
///   the top, so what the sessions freed may stay resident. Each reflector's two packet
///   buffers are sized from the negotiated packet (src/reflector.rs `spawn`): for the
///   41-octet open-mode packets here that is `reflector::MIN_BUFFER`, 1500 octets each, so
///   all `CLIENTS` sessions' buffers are about 0.6 MiB, next to the control thread's and the
///   reflector's other small allocations.
///
/// 40 MiB was set when each reflector held two 64 KiB buffers (up to 25 MiB left in the
/// arenas) and is kept as a ceiling well over 2 + 2.5 MiB and the arenas. A leaked thread or
/// socket breaks the exact thread and descriptor checks at once.
const RSS_MARGIN_KIB: u64 = 40 * 1024;
/// Packets per client in the second wave.
const SECOND_COUNT: u32 = 100;

/// The server binary, killed and reaped however the test ends.
struct Server {
    srv: common::bin::Server,
    port: u16,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let args = [&["-refwait", "1s", "-servwait", "5s"][..], extra].concat();
        let srv = common::bin::Server::start(&args);
        let port = srv.port();
        Server { srv, port }
    }

    fn pid(&self) -> u32 {
        self.srv.pid()
    }

    fn log_text(&self) -> String {
        self.srv.log()
    }

    fn sample(&self) -> Sample {
        proc_sample(self.pid()).expect("the server is running")
    }
}

fn client_config(port: u16, count: u32) -> ClientConfig {
    ClientConfig {
        host: "127.0.0.1".into(),
        port,
        family: Family::V4,
        connect_timeout: Duration::from_secs(10),
        sessions: vec![SessionSpec {
            count,
            schedule: Schedule::Periodic { interval: INTERVAL },
            loss_timeout: LOSS_TIMEOUT,
            ..SessionSpec::default()
        }],
        auth: vec![SecurityMode::Open],
        format: Format::Json,
        quiet: true,
        logging: Logging {
            level: log::LevelFilter::Off,
            file: None,
        },
        ..ClientConfig::default()
    }
}

/// What one wave of clients measured.
struct Wave {
    sent: u64,
    lost: u64,
    failures: Vec<String>,
    /// (lost, client index) of the client that lost most.
    worst: (u64, usize),
    took: Duration,
}

impl Wave {
    fn loss(&self) -> f64 {
        if self.sent == 0 {
            1.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }
}

/// Runs `CLIENTS` sessions of `count` packets at once, each on its own thread.
fn wave(port: u16, count: u32) -> Wave {
    let stop = Arc::new(AtomicBool::new(false));
    // All clients connect together: the server sees 200 connections in the same instant.
    let gate = Arc::new(Barrier::new(CLIENTS));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, gate) = (stop.clone(), gate.clone());
            let cfg = client_config(port, count);
            thread::Builder::new()
                .name(format!("client-{i}"))
                .spawn(move || {
                    gate.wait();
                    let clock = SystemClock::new();
                    client::run(&cfg, &clock, &stop, |_| {})
                })
                .expect("spawn a client thread")
        })
        .collect();
    let mut w = Wave {
        sent: 0,
        lost: 0,
        failures: Vec::new(),
        worst: (0, 0),
        took: Duration::ZERO,
    };
    for (i, c) in clients.into_iter().enumerate() {
        let r = c.join().expect("client thread panicked");
        match &r.error {
            None => {
                for s in r.sessions.iter().map(|s| &s.summary) {
                    w.sent += s.sent;
                    w.lost += s.lost;
                    w.worst = w.worst.max((s.lost, i));
                }
            }
            Some(e) => w.failures.push(format!("client {i}: {e} ({})", e.kind())),
        }
    }
    w.took = started.elapsed();
    w
}

/// Samples the server every 100 ms and keeps the highest figures, until dropped.
struct Monitor {
    done: Arc<AtomicBool>,
    peak: Arc<Mutex<Sample>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Monitor {
    fn start(pid: u32, from: Sample) -> Monitor {
        let done = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(from));
        let (d, p) = (done.clone(), peak.clone());
        let thread = thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                if let Some(s) = proc_sample(pid) {
                    let mut p = p.lock().unwrap();
                    p.threads = p.threads.max(s.threads);
                    p.fds = p.fds.max(s.fds);
                    p.rss_kib = p.rss_kib.max(s.rss_kib);
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        Monitor {
            done,
            peak,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Sample {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        *self.peak.lock().unwrap()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Waits (at most `SETTLE`) until the server is back to `idle` threads and descriptors, and
/// its RSS within the margin. RSS may lag the thread count a little: glibc gives back an exited
/// thread's stack only once its handle is dropped, which the accept loop does every 250 ms.
fn settle(srv: &Server, idle: Sample) -> Settled {
    let start = Instant::now();
    let mut s = srv.sample();
    let mut idle_at = None;
    loop {
        if s.threads == idle.threads && s.fds == idle.fds {
            idle_at.get_or_insert((start.elapsed(), s.rss_kib));
            if s.rss_kib <= idle.rss_kib + RSS_MARGIN_KIB {
                break;
            }
        }
        if start.elapsed() >= SETTLE {
            break;
        }
        thread::sleep(Duration::from_millis(50));
        s = srv.sample();
    }
    Settled {
        at: s,
        took: start.elapsed(),
        idle_at,
    }
}

struct Settled {
    /// The last sample.
    at: Sample,
    took: Duration,
    /// When threads and descriptors were first back to idle, and the RSS then.
    idle_at: Option<(Duration, u64)>,
}

impl Settled {
    fn describe(&self) -> String {
        match self.idle_at {
            Some((t, rss)) => format!(
                "threads and fds back to idle {t:.1?} after the last client (RSS then {rss} KiB), \
                 last sample at {:.1?}",
                self.took
            ),
            None => format!("threads and fds NOT back to idle after {:.1?}", self.took),
        }
    }
}

fn check_wave(name: &str, w: &Wave, count: u32, srv: &Server) {
    eprintln!(
        "load: {name}: {CLIENTS} clients × {count} packets every {INTERVAL:?}, done in {:.1?}: \
         {} sent, {} lost ({:.4} %), most by one client: {} (#{})",
        w.took,
        w.sent,
        w.lost,
        w.loss() * 100.0,
        w.worst.0,
        w.worst.1
    );
    assert!(
        w.failures.is_empty(),
        "{name}: {} of {CLIENTS} clients failed:\n{}\n--- server log (tail) ---\n{}",
        w.failures.len(),
        w.failures.join("\n"),
        tail(&srv.log_text(), 40)
    );
    assert_eq!(
        w.sent,
        CLIENTS as u64 * u64::from(count),
        "{name}: every packet sent"
    );
    assert!(
        w.loss() <= MAX_LOSS,
        "{name}: loss {}/{} = {:.4} % is over {:.1} %",
        w.lost,
        w.sent,
        w.loss() * 100.0,
        MAX_LOSS * 100.0
    );
}

#[test]
fn two_hundred_concurrent_sessions_lose_nothing_and_leave_nothing_behind() {
    let limit = twamp::net::raise_fd_limit().expect("raise the open file limit");
    assert!(
        limit >= 2 * CLIENTS as u64 + 64,
        "open file limit {limit} is too low for {CLIENTS} clients"
    );
    // 200 connections from one address: over the default per-client limit (64).
    // They all connect in the same instant: more handshakes at once than the default budget.
    let srv = Server::start(&[
        "-max-connections-per-client",
        "1000",
        "-max-handshakes",
        "1000",
    ]);
    // Let the process finish starting (logger, signal handlers) before taking the idle level.
    thread::sleep(Duration::from_millis(300));
    let idle = srv.sample();
    eprintln!("load: server idle: {idle:?}");

    // Wave 1: the load of the issue, 200 × 1000 packets at 100 pps.
    let monitor = Monitor::start(srv.pid(), idle);
    let w1 = wave(srv.port, COUNT);
    let peak = monitor.finish();
    let st = settle(&srv, idle);
    let after = st.at;
    eprintln!(
        "load: server threads idle/peak/after {}/{}/{}, fds {}/{}/{}, \
         RSS KiB {}/{}/{} (after − idle = {} KiB); {}",
        idle.threads,
        peak.threads,
        after.threads,
        idle.fds,
        peak.fds,
        after.fds,
        idle.rss_kib,
        peak.rss_kib,
        after.rss_kib,
        after.rss_kib as i64 - idle.rss_kib as i64,
        st.describe()
    );
    check_wave("wave 1", &w1, COUNT, &srv);
    // All sessions overlap (each lasts 12 s, all start within the first second or so), so the
    // server ran a control thread for each of them at once, and no thread per session: the
    // reflector engine's thread is part of the idle figure.
    let (least, most) = (
        idle.threads + CLIENTS as u64 * 95 / 100,
        idle.threads + CLIENTS as u64,
    );
    assert!(
        (least..=most).contains(&peak.threads),
        "server peaked at {} threads, expected {least}..={most} (one per control connection)",
        peak.threads
    );
    assert_eq!(
        (after.threads, after.fds),
        (idle.threads, idle.fds),
        "server threads and descriptors (after vs idle) did not come back within {SETTLE:?}"
    );
    assert!(
        after.rss_kib <= idle.rss_kib + RSS_MARGIN_KIB,
        "server RSS {} KiB after the load, idle was {} KiB (margin {RSS_MARGIN_KIB} KiB)",
        after.rss_kib,
        idle.rss_kib
    );

    // Wave 2, shorter, on a server whose allocator is now warm (reused chunks are dirty, so
    // calloc touches them): what it keeps stays within the same bound, it does not accumulate.
    let w2 = wave(srv.port, SECOND_COUNT);
    let st = settle(&srv, idle);
    let after2 = st.at;
    eprintln!(
        "load: after wave 2: {after2:?} (after − idle = {} KiB); {}",
        after2.rss_kib as i64 - idle.rss_kib as i64,
        st.describe()
    );
    check_wave("wave 2", &w2, SECOND_COUNT, &srv);
    assert_eq!(
        (after2.threads, after2.fds),
        (idle.threads, idle.fds),
        "server threads and descriptors (after wave 2 vs idle)"
    );
    assert!(
        after2.rss_kib <= idle.rss_kib + RSS_MARGIN_KIB,
        "server RSS {} KiB after a second wave, idle was {} KiB (margin {RSS_MARGIN_KIB} KiB)",
        after2.rss_kib,
        idle.rss_kib
    );
    // The connection's own line ("PEER: control connection closed ..."), not the sessions' end lines.
    let closed = srv
        .log_text()
        .matches(": control connection closed")
        .count();
    assert_eq!(closed, 2 * CLIENTS, "every control connection was closed");
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
