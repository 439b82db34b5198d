//! Issue 13: the exporter (`-mode exporter`), the Server's `-metrics`, and the mesh, tested as
//! a user runs them: the built binary on loopback, a real Prometheus (Debian's `prometheus`,
//! installed by `.ci/run`) scraping both and read back through its HTTP API, `promtool` on
//! what both endpoints serve and on the example alerting rules. Without Prometheus these tests
//! fail and say so; TWAMP_SKIP_PROMETHEUS=1 skips the ones that need it knowingly.
//!
//! Every process a test starts is killed and reaped when the test ends (`Proc`, `Guard`), and
//! every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::bin::{closed_port, free_port, run_bounded, Guard, Proc, Scratch, Server};

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/prometheus/twamp-alerts.yml"
);

fn skip() -> bool {
    if std::env::var_os("TWAMP_SKIP_PROMETHEUS").is_some() {
        eprintln!("skipped: TWAMP_SKIP_PROMETHEUS is set");
        return true;
    }
    for tool in ["prometheus", "promtool"] {
        let ok = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "{tool} is not installed: run `bash .ci/run`, which installs Debian's prometheus"
        );
    }
    false
}

/// One HTTP/1.0 GET (the test's side only; the product uses tiny_http): status and body.
fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    try_get(addr, path, headers).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

fn try_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {resp:?}")))?;
    let body = resp
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    Ok((status, body))
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// `twamp -mode exporter` with `config` (the `[exporter]` TOML) on a free loopback port.
struct Exporter {
    proc: Proc,
    addr: SocketAddr,
    _config: Scratch,
}

impl Exporter {
    fn start(config: &str) -> Exporter {
        let file = Scratch::new("exporter.toml");
        std::fs::write(&file.0, config).unwrap();
        for _ in 0..5 {
            let addr = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
            let args = [
                "-mode",
                "exporter",
                "-listen",
                &addr.to_string(),
                "-exporter-config",
                file.0.to_str().unwrap(),
            ];
            let mut proc = Proc::spawn(&args, "exporter");
            let up = wait_until(Duration::from_secs(10), || {
                proc.stderr().contains("TWAMP exporter on")
                    || proc.wait_for(Duration::ZERO).is_some()
            });
            if up && proc.wait_for(Duration::ZERO).is_none() {
                return Exporter {
                    proc,
                    addr,
                    _config: file,
                };
            }
            eprintln!("exporter on {addr} did not come up:\n{}", proc.stderr());
        }
        panic!("could not start the exporter");
    }

    fn probe(&self, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
        get(
            self.addr,
            &format!("/probe?target={target}&module=default"),
            headers,
        )
    }
}

fn module(extra: &str) -> String {
    format!(
        "[exporter]\nallow = [\"127.0.0.0/8\", \"::1\"]\ntimeout_margin = \"200ms\"\n{extra}\n\
         [exporter.modules.default]\ncount = 5\ninterval = \"10ms\"\nloss_timeout = \"200ms\"\ndscp = \"AF41\"\n"
    )
}

/// The value of the first sample of `name` (with any labels) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// What Prometheus sends: OpenMetrics first, the text format as a fallback.
const PROMETHEUS_ACCEPT: (&str, &str) = (
    "Accept",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
);

#[test]
fn promtool_finds_no_problem_in_either_endpoint_nor_in_the_rules() {
    if skip() {
        return;
    }
    let metrics = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
    let server = Server::start(&["-test-ports", "0", "-metrics", &metrics.to_string()]);
    let exporter = Exporter::start(&module(""));
    let target = format!("127.0.0.1:{}", server.port());
    // Asked for OpenMetrics, as Prometheus asks: OpenMetrics, ending with # EOF.
    let (status, om) = exporter.probe(&target, &[PROMETHEUS_ACCEPT]);
    assert_eq!(status, 200, "{om}");
    assert_eq!(sample(&om, "probe_success"), Some(1.0), "{om}");
    assert!(
        om.ends_with("# EOF\n"),
        "OpenMetrics ends with # EOF:\n{om}"
    );
    // Asked for nothing, as curl | promtool: the text format 0.0.4, linted as served.
    let (status, probe) = exporter.probe(&target, &[]);
    assert_eq!(status, 200, "{probe}");
    assert_eq!(sample(&probe, "probe_success"), Some(1.0), "{probe}");
    assert!(!probe.contains("# EOF"), "text format 0.0.4:\n{probe}");
    let (ok, text) = promtool(&["check", "metrics"], &probe);
    assert!(
        ok && text.trim().is_empty(),
        "promtool on /probe:\n{text}\n{probe}"
    );
    let (status, om) = get(metrics, "/metrics", &[PROMETHEUS_ACCEPT]);
    assert_eq!(status, 200);
    assert!(om.ends_with("# EOF\n"), "{om}");
    let (status, server_metrics) = get(metrics, "/metrics", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        sample(&server_metrics, "twamp_server_packets_reflected_total"),
        Some(10.0),
        "two probes of 5 packets: {server_metrics}"
    );
    let (ok, text) = promtool(&["check", "metrics"], &server_metrics);
    assert!(
        ok && text.trim().is_empty(),
        "promtool on -metrics:\n{text}\n{server_metrics}"
    );
    let (status, own) = get(exporter.addr, "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(
        own.contains("twamp_exporter_probes_total{result=\"success\"} 2"),
        "{own}"
    );
    let (ok, text) = promtool(&["check", "metrics"], &own);
    assert!(
        ok && text.trim().is_empty(),
        "promtool on the exporter's /metrics:\n{text}\n{own}"
    );
    let (ok, text) = promtool(&["check", "rules", RULES], "");
    assert!(ok, "promtool check rules {RULES}:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Prometheus' HTTP API: the first value of an instant query, if the query has a result.
fn query(prom: SocketAddr, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = try_get(prom, &format!("/api/v1/query?query={enc}"), &[]).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn a_real_prometheus_scrapes_the_exporter_and_the_server() {
    if skip() {
        return;
    }
    let metrics = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
    let server = Server::start(&["-test-ports", "0", "-metrics", &metrics.to_string()]);
    let exporter = Exporter::start(&module(""));
    let dir = Scratch::new("prometheus");
    std::fs::create_dir_all(&dir.0).unwrap();
    // The scrape configuration README.md gives, with blackbox_exporter's relabelling: the
    // target list names TWAMP servers, the scrape goes to the exporter.
    let config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: twamp
    metrics_path: /probe
    params:
      module: [default]
    static_configs:
      - targets: ["127.0.0.1:{server}"]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: "{exporter}"
  - job_name: twamp_server
    static_configs:
      - targets: ["{metrics}"]
"#,
        server = server.port(),
        exporter = exporter.addr,
    );
    let config_path = dir.0.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let prom = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
    let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
    let prometheus = Guard(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let want = [
        "probe_success{job=\"twamp\"}",
        "twamp_rtt_median_seconds{job=\"twamp\"}",
        "twamp_rtt_seconds_count{job=\"twamp\"}",
        "twamp_packets_lost{job=\"twamp\",direction=\"forward\"}",
        "twamp_packets_lost{job=\"twamp\",direction=\"backward\"}",
        "twamp_loss_ratio{job=\"twamp\"}",
        "twamp_server_packets_reflected_total{job=\"twamp_server\"}",
        "twamp_server_sessions_accepted_total{job=\"twamp_server\"}",
        "up{job=\"twamp_server\"}",
    ];
    let mut got = Vec::new();
    let all = wait_until(Duration::from_secs(60), || {
        got = want.iter().map(|q| query(prom, q)).collect();
        got[0] == Some(1.0) && got.iter().all(Option::is_some) && got[6] > Some(0.0)
    });
    let plog = std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();
    assert!(
        all,
        "series read back from Prometheus: {:?}\nprometheus log:\n{plog}\nexporter:\n{}",
        want.iter().zip(&got).collect::<Vec<_>>(),
        exporter.proc.stderr()
    );
    let rtt = got[1].unwrap();
    assert!(rtt > 0.0 && rtt < 0.1, "a loopback RTT in seconds: {rtt}");
    assert_eq!(got[5], Some(0.0), "no loss on loopback");
    assert_eq!(got[8], Some(1.0), "the server's /metrics is up");
    // The relabelling made the TWAMP server the instance, as with blackbox_exporter.
    let (_, body) = get(prom, "/api/v1/series?match[]=probe_success", &[]);
    assert!(
        body.contains(&format!("\"instance\":\"127.0.0.1:{}\"", server.port())),
        "{body}"
    );
    drop(prometheus); // stopped (killed and reaped) before its data goes
    let _ = std::fs::remove_dir_all(&dir.0);
}

#[test]
fn a_target_outside_the_allow_list_is_refused_without_a_packet() {
    // The target: a listener of ours, so any connection attempt would show.
    let target = TcpListener::bind((LOOPBACK, 0)).unwrap();
    target.set_nonblocking(true).unwrap();
    let exporter = Exporter::start(
        "[exporter]\nallow = [\"192.0.2.0/24\"]\n[exporter.modules.default]\ncount = 2\n",
    );
    let t0 = Instant::now();
    let (status, body) = exporter.probe(&target.local_addr().unwrap().to_string(), &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("allow list"), "{body}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        matches!(target.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the refused target got a connection"
    );
    // Every address of a name must be allowed: with only 127.0.0.0/8, a name that also has
    // an IPv6 address (localhost, where ::1 is configured) is refused as a whole.
    let exporter = Exporter::start(
        "[exporter]\nallow = [\"127.0.0.0/8\"]\n[exporter.modules.default]\ncount = 2\n",
    );
    let port = target.local_addr().unwrap().port();
    let localhost: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port))
        .map(Iterator::collect)
        .unwrap_or_default();
    if localhost.iter().any(|a| a.is_ipv6()) {
        let (status, body) = exporter.probe(&format!("localhost:{port}"), &[]);
        assert_eq!(status, 403, "{body}");
        assert!(matches!(target.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    }
    // Nothing in the URL but target and module: no keys, no settings.
    let (status, body) = get(
        exporter.addr,
        &format!("/probe?target=127.0.0.1:{port}&module=default&keyfile=/etc/x"),
        &[],
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_probe_that_cannot_finish_answers_probe_success_0_in_time() {
    let server = Server::start(&["-test-ports", "0"]);
    // 100 packets 100 ms apart: 10 s, far beyond a 1.5 s scrape timeout.
    let exporter = Exporter::start(
        "[exporter]\nallow = [\"127.0.0.0/8\"]\ntimeout_margin = \"500ms\"\n\
         [exporter.modules.default]\ncount = 100\ninterval = \"100ms\"\n",
    );
    let t0 = Instant::now();
    let (status, body) = exporter.probe(
        &format!("127.0.0.1:{}", server.port()),
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1.5")],
    );
    let took = t0.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(sample(&body, "probe_success"), Some(0.0), "{body}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1500),
        "answered after {took:?}: the deadline is 1.5 s − 0.5 s, within the scrape timeout"
    );
}

#[test]
fn scrapes_beyond_the_cap_are_refused_not_queued() {
    let server = Server::start(&["-test-ports", "0"]);
    let exporter = Exporter::start(
        "[exporter]\nallow = [\"127.0.0.0/8\"]\nmax_probes = 1\ntimeout_margin = \"500ms\"\n\
         [exporter.modules.default]\ncount = 100\ninterval = \"100ms\"\n",
    );
    let target = format!("127.0.0.1:{}", server.port());
    let addr = exporter.addr;
    let t = target.clone();
    let first = std::thread::spawn(move || {
        get(
            addr,
            &format!("/probe?target={t}"),
            &[("X-Prometheus-Scrape-Timeout-Seconds", "4")],
        )
    });
    assert!(
        wait_until(Duration::from_secs(3), || {
            sample(
                &get(addr, "/metrics", &[]).1,
                "twamp_exporter_probes_running",
            ) == Some(1.0)
        }),
        "the first probe never started"
    );
    let t0 = Instant::now();
    let (status, body) = exporter.probe(&target, &[("X-Prometheus-Scrape-Timeout-Seconds", "4")]);
    assert_eq!(status, 503, "{body}");
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "refused at once, not queued"
    );
    let (status, body) = first.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        sample(&body, "probe_success"),
        Some(0.0),
        "cut at its deadline: {body}"
    );
    let (_, own) = get(addr, "/metrics", &[]);
    assert!(
        own.contains("twamp_exporter_probes_refused_total{reason=\"max_probes\"} 1"),
        "{own}"
    );
}

#[test]
fn a_mesh_of_five_with_one_down_writes_five_records_and_says_so() {
    let a = Server::start(&["-test-ports", "0"]);
    let b = Server::start(&["-test-ports", "0"]);
    let down = closed_port();
    let file = Scratch::new("targets");
    std::fs::write(
        &file.0,
        format!(
            "# five targets, one of them down\n\
             127.0.0.1:{a}\n\
             127.0.0.1:{b} count=4 dscp=EF\n\
             127.0.0.1:{down}   # nothing listens here\n\
             127.0.0.1:{a} interval=5ms\n\
             [::ffff:127.0.0.1]:{b} count=2\n",
            a = a.port(),
            b = b.port()
        ),
    )
    .unwrap();
    let out = Scratch::new("mesh.csv");
    let run = run_bounded(
        &[
            "-mode",
            "client",
            "-targets",
            file.0.to_str().unwrap(),
            "-parallel",
            "3",
            "-c",
            "3",
            "-i",
            "10ms",
            "-timeout",
            "200ms",
            "-format",
            "json",
            "-output",
            out.0.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(
        run.code,
        Some(3),
        "exit 3: a target was unreachable\n{}",
        run.describe()
    );
    let records: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(records.len(), 5, "{}", run.stdout);
    let failed: Vec<&serde_json::Value> =
        records.iter().filter(|r| !r["error"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{}", run.stdout);
    assert_eq!(failed[0]["server"]["port"], down);
    assert_eq!(
        records.iter().filter(|r| r["error"].is_null()).count(),
        4,
        "4 measured"
    );
    assert_eq!(
        std::fs::read_to_string(&out.0).unwrap(),
        run.stdout,
        "the -output file holds the same five records, each appended whole"
    );
    // Repeated -server is a mesh too; CSV: one header, one line per target.
    let run = run_bounded(
        &[
            "-mode",
            "client",
            "-server",
            &format!("127.0.0.1:{}", a.port()),
            "-server",
            &format!("127.0.0.1:{down}"),
            "-c",
            "2",
            "-i",
            "10ms",
            "-timeout",
            "200ms",
            "-format",
            "csv",
            "-header",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(3), "{}", run.describe());
    assert_eq!(
        run.stdout.lines().count(),
        3,
        "header + 2 records:\n{}",
        run.stdout
    );
}

#[test]
fn a_light_module_probes_a_stamp_reflector_and_the_server_counts_its_sender() {
    let metrics = SocketAddr::new(LOOPBACK, free_port(LOOPBACK));
    let light_port = {
        let s = std::net::UdpSocket::bind((LOOPBACK, 0)).unwrap();
        s.local_addr().unwrap().port()
    };
    let server = Server::start(&[
        "-test-ports",
        "0",
        "-light-port",
        &light_port.to_string(),
        "-metrics",
        &metrics.to_string(),
    ]);
    let exporter = Exporter::start(
        "[exporter]\nallow = [\"127.0.0.0/8\"]\n[exporter.modules.default]\nlight = true\n\
         count = 5\ninterval = \"10ms\"\nloss_timeout = \"200ms\"\n",
    );
    let (status, body) = exporter.probe(&format!("127.0.0.1:{light_port}"), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sample(&body, "probe_success"),
        Some(1.0),
        "{body}\n{}",
        server.log()
    );
    assert_eq!(sample(&body, "twamp_packets_received"), Some(5.0), "{body}");
    let (_, m) = get(metrics, "/metrics", &[]);
    assert_eq!(sample(&m, "twamp_server_light_senders"), Some(1.0), "{m}");
    assert_eq!(
        sample(&m, "twamp_server_packets_reflected_total"),
        Some(5.0),
        "{m}"
    );
}
