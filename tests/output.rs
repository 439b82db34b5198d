//! Black-box tests of the client's result records (`-format json|csv|twping|packets`, `-output`,
//! `-q`, `-histogram`), against the built binary running as a server on 127.0.0.1.
//!
//! Every process is bounded: client runs are killed after RUN_LIMIT, servers are killed by a
//! guard when the test ends (also when it fails). Nothing leaves 127.0.0.1.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::Value;

/// No run here takes more than a couple of seconds; this only stops a hung one.
const RUN_LIMIT: Duration = Duration::from_secs(20);
/// src/error.rs `mod exit`.
const OK: i32 = 0;
const NETWORK: i32 = 3;

// ---- processes ---------------------------------------------------------------------------

/// A scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "twamp-output-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `twamp -mode server` on 127.0.0.1:<free port>; killed and reaped on drop.
struct Server {
    srv: common::bin::Server,
    addr: String,
}

impl Server {
    fn start() -> Server {
        let srv = common::bin::Server::start(&["-refwait", "10s"]);
        let addr = srv.addr.to_string();
        Server { srv, addr }
    }

    fn log(&self) -> String {
        self.srv.log()
    }
}

use common::bin::closed_port;

use common::bin::Run;

/// Runs the binary as a client of `server` with `extra` arguments; killed after RUN_LIMIT.
fn client(server: &str, extra: &[&str]) -> Run {
    let args = [&["-connect-timeout", "2s"][..], extra].concat();
    common::bin::run_client(server, &args, RUN_LIMIT)
}

/// A short successful measurement: 20 packets 5 ms apart, 300 ms for late replies.
const SHORT: [&str; 6] = ["-c", "20", "-i", "5ms", "-timeout", "300ms"];

fn short_run(server: &Server, extra: &[&str]) -> Run {
    let mut args: Vec<&str> = SHORT.to_vec();
    args.extend_from_slice(extra);
    let r = client(&server.addr, &args);
    assert_eq!(
        r.code,
        Some(OK),
        "{}\n--- server log ---\n{}",
        r.describe(),
        server.log()
    );
    r
}

// ---- JSON --------------------------------------------------------------------------------

/// Every key `Record::json()` writes (schema twamp-result/1), as paths.
const DELAY_KEYS: [&str; 8] = [
    "count",
    "min_ms",
    "median_ms",
    "mean_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "stddev_ms",
];
const IPDV_KEYS: [&str; 6] = [
    "count",
    "min_ms",
    "max_ms",
    "mean_abs_ms",
    "p95_abs_ms",
    "p99_abs_ms",
];
const PDV_KEYS: [&str; 4] = ["median_ms", "p95_ms", "p99_ms", "max_ms"];

fn documented_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "schema",
        "time",
        "ok",
        "exit_code",
        "error",
        "server",
        "server/host",
        "server/port",
        "server/address",
        "session",
        "summary",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for k in [
        "sid",
        "mode",
        "local",
        "reflector",
        "padding_octets",
        "dscp",
        "count",
        "interval_ms",
        "timeout_ms",
        "interrupted",
        "stray_datagrams",
        "malformed_datagrams",
    ] {
        keys.push(format!("session/{k}"));
    }
    for k in [
        "sent",
        "received",
        "lost",
        "loss_percent",
        "lost_forward",
        "lost_backward",
        "lost_unattributed",
        "duplicates",
        "duplicates_forward",
        "duplicates_backward",
        "unexpected",
        "reordering_rfc4737",
        "sync",
        "one_way_valid",
        "negative_forward",
        "negative_backward",
        "maxerr_ms",
        "maxerr_forward_ms",
        "maxerr_backward_ms",
        "hops_forward/min",
        "hops_forward/max",
        "hops_backward/min",
        "hops_backward/max",
    ] {
        keys.push(format!("summary/{k}"));
    }
    for stream in ["forward", "backward", "round_trip"] {
        for k in ["packets", "reordered", "reordered_percent"] {
            keys.push(format!("summary/reordering_rfc4737/{stream}/{k}"));
        }
    }
    for d in ["rtt", "forward", "backward", "processing"] {
        for k in DELAY_KEYS {
            keys.push(format!("summary/{d}/{k}"));
        }
    }
    for v in ["rtt_variation", "forward_variation", "backward_variation"] {
        for k in IPDV_KEYS {
            keys.push(format!("summary/{v}/ipdv_rfc3393/{k}"));
        }
        for k in PDV_KEYS {
            keys.push(format!("summary/{v}/pdv_rfc5481/{k}"));
        }
        keys.push(format!("summary/{v}/twping_p95_p50_ms"));
        keys.push(format!("summary/{v}/rfc3550_jitter_ms"));
    }
    keys
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').try_fold(v, |v, k| v.as_object()?.get(k))
}

/// Every fractional number sits under a key that names its unit; collects offenders.
fn unitless_numbers(v: &Value, path: &str, bad: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if v.is_f64() && !(k.ends_with("_ms") || k.ends_with("_percent")) {
                    bad.push(format!("{path}/{k}"));
                }
                unitless_numbers(v, &format!("{path}/{k}"), bad);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| unitless_numbers(v, path, bad)),
        _ => {}
    }
}

#[test]
fn unit_rule_catches_a_bare_number() {
    let v = serde_json::json!({"a": {"rtt": 1.5, "x_ms": 2.5, "n": 3, "l": [{"y": 0.5}]}});
    let mut bad = Vec::new();
    unitless_numbers(&v, "", &mut bad);
    bad.sort();
    assert_eq!(bad, ["/a/l/y", "/a/rtt"]);
}

fn parse_json_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

#[test]
fn json_record_has_the_documented_schema() {
    let server = Server::start();
    let r = short_run(&server, &["-format", "json"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON object per run\n{}", r.describe());
    let j = parse_json_line(lines[0]);

    assert_eq!(j["schema"], "twamp-result/1");
    assert_eq!(j["schema"], twamp::output::JSON_SCHEMA);
    assert_eq!(j["ok"], true, "{}", r.describe());
    assert_eq!(j["exit_code"], 0);
    assert!(j["error"].is_null());
    assert_eq!(j["server"]["host"], "127.0.0.1");
    assert_eq!(j["server"]["address"], "127.0.0.1");
    assert_eq!(j["session"]["mode"], "open");
    assert_eq!(j["session"]["count"], 20);
    assert_eq!(j["session"]["padding_octets"], 27);
    assert_eq!(j["session"]["interval_ms"].as_f64(), Some(5.0));
    assert_eq!(j["session"]["timeout_ms"].as_f64(), Some(300.0));
    assert_eq!(j["session"]["interrupted"], false);

    let s = &j["summary"];
    assert_eq!(s["sent"], 20);
    assert_eq!(s["received"], 20);
    assert_eq!(s["lost"], 0);
    assert_eq!(s["loss_percent"].as_f64(), Some(0.0));
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["reordering_rfc4737"]["round_trip"]["packets"], 20);
    let rtt = |k: &str| {
        s["rtt"][k]
            .as_f64()
            .unwrap_or_else(|| panic!("rtt.{k}: {}", s["rtt"]))
    };
    assert!(rtt("min_ms") > 0.0);
    assert!(rtt("min_ms") <= rtt("median_ms"), "{}", s["rtt"]);
    assert!(rtt("median_ms") <= rtt("max_ms"), "{}", s["rtt"]);
    assert!(rtt("min_ms") <= rtt("mean_ms") && rtt("mean_ms") <= rtt("max_ms"));
    assert!(rtt("median_ms") <= rtt("p95_ms") && rtt("p95_ms") <= rtt("p99_ms"));
    assert!(rtt("p99_ms") <= rtt("max_ms"));
    assert!(rtt("max_ms") < 300.0, "loopback: {}", s["rtt"]);
    assert_eq!(s["rtt"]["count"], 20);
    // Hops on loopback are 0 (TTL 255 both ways).
    assert_eq!(s["hops_forward"]["min"], 0);
    assert_eq!(s["hops_forward"]["max"], 0);

    let missing: Vec<String> = documented_keys()
        .into_iter()
        .filter(|k| at(&j, k).is_none())
        .collect();
    assert!(missing.is_empty(), "keys missing: {missing:?}\n{j:#}");
    // A loopback run with 20 replies has every figure: none of the delay keys is null.
    for d in ["rtt", "forward", "backward", "processing"] {
        for k in DELAY_KEYS {
            let path = format!("summary/{d}/{k}");
            assert!(
                at(&j, &path).is_some_and(Value::is_number),
                "{path} is not a number"
            );
        }
    }
    let mut bad = Vec::new();
    unitless_numbers(&j, "", &mut bad);
    assert!(
        bad.is_empty(),
        "fractional values without a unit in the key: {bad:?}"
    );
}

// ---- CSV ---------------------------------------------------------------------------------

/// Splits one CSV record (RFC 4180: fields may be quoted; `""` inside quotes is a quote).
fn csv_split(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let (mut quoted, mut field_start) = (false, true);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    quoted = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field_start => quoted = true,
            ',' => {
                fields.push(std::mem::take(&mut field));
                field_start = true;
                continue;
            }
            '"' => panic!("quote inside an unquoted field: {line:?}"),
            c => field.push(c),
        }
        field_start = false;
    }
    assert!(!quoted, "unterminated quoted field: {line:?}");
    fields.push(field);
    fields
}

#[test]
fn csv_splitter_follows_rfc_4180() {
    assert_eq!(
        csv_split(r#"a,"b,c","say ""hi""",,"",e"#),
        ["a", "b,c", r#"say "hi""#, "", "", "e"]
    );
    assert_eq!(csv_split(""), [""]);
    assert_eq!(csv_split(","), ["", ""]);
}

fn column(name: &str) -> usize {
    twamp::output::CSV_COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no CSV column {name}"))
}

#[test]
fn csv_with_header() {
    let server = Server::start();
    let r = short_run(&server, &["-format", "csv", "-header"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "header and one record\n{}", r.describe());
    assert_eq!(lines[0], twamp::output::CSV_COLUMNS.join(","));
    let header = csv_split(lines[0]);
    let fields = csv_split(lines[1]);
    assert_eq!(fields.len(), header.len(), "{}", lines[1]);
    assert_eq!(fields.len(), twamp::output::CSV_COLUMNS.len());
    let f = |name: &str| fields[column(name)].as_str();
    assert_eq!(f("sent"), "20");
    assert_eq!(f("received"), "20");
    assert_eq!(f("lost"), "0");
    assert_eq!(f("ok"), "true");
    assert_eq!(f("exit_code"), "0");
    assert_eq!(f("error"), "");
    assert_eq!(f("mode"), "open");
    assert_eq!(f("host"), "127.0.0.1");
    let num = |name: &str| -> f64 {
        f(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {:?} is not a number", f(name)))
    };
    assert!(num("rtt_min_ms") <= num("rtt_median_ms"));
    assert!(num("rtt_median_ms") <= num("rtt_max_ms"));
    assert_eq!(f("sid").len(), 32, "SID in hex");
}

#[test]
fn csv_columns_are_the_documented_ones() {
    // README.md lists the columns after "Columns:", comma-separated, in backquotes.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let listed = flat
        .split_once("Columns: `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(cols, _)| cols)
        .expect("README.md lists the CSV columns");
    assert_eq!(listed, twamp::output::CSV_COLUMNS.join(", "));
}

// ---- twping -M ---------------------------------------------------------------------------

/// The keys of `twping -M` in twping's order (perfSONAR owamp 5.2.3, open mode; see
/// shared vectors twping-output/twping_open_M.txt). `<BUCKETS>` and `<TTLBUCKETS>` enclose
/// TAB-indented rows.
const TWPING_M_KEYS: &[&str] = &[
    "SUMMARY",
    "SID",
    "FROM_HOST",
    "FROM_ADDR",
    "FROM_PORT",
    "TO_HOST",
    "TO_ADDR",
    "TO_PORT",
    "START_TIME",
    "END_TIME",
    "DSCP",
    "LOSS_TIMEOUT",
    "PACKET_PADDING",
    "SESSION_PACKET_COUNT",
    "SAMPLE_PACKET_COUNT",
    "BUCKET_WIDTH",
    "SESSION_FINISHED",
    "SENT",
    "SYNC",
    "MAXERR",
    "MAXERR_FWD",
    "MAXERR_BCK",
    "DUPS_FWD",
    "DUPS_BCK",
    "LOST",
    "MIN",
    "MIN_FWD",
    "MIN_BCK",
    "MIN_PROC",
    "MEDIAN",
    "MEDIAN_FWD",
    "MEDIAN_BCK",
    "MAX",
    "MAX_FWD",
    "MAX_BCK",
    "MAX_PROC",
    "PDV",
    "PDV_FWD",
    "PDV_BCK",
    "<BUCKETS>",
    "</BUCKETS>",
    "MINTTL_FWD",
    "MAXTTL_FWD",
    "MINTTL_BCK",
    "MAXTTL_BCK",
    "<TTLBUCKETS>",
    "</TTLBUCKETS>",
];

/// Keys whose twping value is a decimal or `%g` number.
/// (DSCP is hex, `0x00`, in twping: checked on its own.)
const TWPING_NUMERIC: &[&str] = &[
    "SUMMARY",
    "FROM_PORT",
    "TO_PORT",
    "START_TIME",
    "END_TIME",
    "LOSS_TIMEOUT",
    "PACKET_PADDING",
    "SESSION_PACKET_COUNT",
    "SAMPLE_PACKET_COUNT",
    "BUCKET_WIDTH",
    "SESSION_FINISHED",
    "SENT",
    "SYNC",
    "MAXERR",
    "MAXERR_FWD",
    "MAXERR_BCK",
    "DUPS_FWD",
    "DUPS_BCK",
    "LOST",
    "MIN",
    "MIN_FWD",
    "MIN_BCK",
    "MIN_PROC",
    "MEDIAN",
    "MEDIAN_FWD",
    "MEDIAN_BCK",
    "MAX",
    "MAX_FWD",
    "MAX_BCK",
    "MAX_PROC",
    "PDV",
    "PDV_FWD",
    "PDV_BCK",
    "MINTTL_FWD",
    "MAXTTL_FWD",
    "MINTTL_BCK",
    "MAXTTL_BCK",
];

/// twping -M output as (key, value) in order, and the rows inside each <…> block.
#[allow(clippy::type_complexity)]
fn parse_twping_m(text: &str) -> (Vec<(String, String)>, Vec<Vec<String>>, Vec<Vec<String>>) {
    let (mut kv, mut buckets, mut ttls) = (Vec::new(), Vec::new(), Vec::new());
    let mut block: Option<&str> = None;
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(row) = line.strip_prefix('\t') {
            let cells: Vec<String> = row.split('\t').map(str::to_string).collect();
            match block {
                Some("<BUCKETS>") => buckets.push(cells),
                Some("<TTLBUCKETS>") => ttls.push(cells),
                _ => panic!("indented row outside a block: {line:?}"),
            }
            continue;
        }
        let (k, v) = line.split_once('\t').unwrap_or((line, ""));
        match k {
            "<BUCKETS>" => block = Some("<BUCKETS>"),
            "<TTLBUCKETS>" => block = Some("<TTLBUCKETS>"),
            "</BUCKETS>" | "</TTLBUCKETS>" => block = None,
            _ => {}
        }
        kv.push((k.to_string(), v.to_string()));
    }
    (kv, buckets, ttls)
}

/// An excerpt of twping's own `-M` output (twping_open_M.txt), to check the parser and the
/// value rules on the reference itself.
const TWPING_M_SAMPLE: &str = "SUMMARY\t3.00\nSID\t7f000001eead2a00d57a46171e238446\n\
FROM_HOST\tlocalhost\nFROM_ADDR\t127.0.0.1\nFROM_PORT\t20067\nTO_HOST\t127.0.0.1\n\
TO_ADDR\t127.0.0.1\nTO_PORT\t18896\nSTART_TIME\t17198448739791427303\n\
END_TIME\t17198448743656897864\nDSCP\t0x00\nLOSS_TIMEOUT\t8590518708\nPACKET_PADDING\t27\n\
SESSION_PACKET_COUNT\t10\nSAMPLE_PACKET_COUNT\t10\nBUCKET_WIDTH\t1e-06\nSESSION_FINISHED\t1\n\
SENT\t10\nSYNC\t1\nMAXERR\t9.31323e-10\nMAXERR_FWD\t4.65661e-10\nMAXERR_BCK\t4.65661e-10\n\
DUPS_FWD\t0\nDUPS_BCK\t0\nLOST\t0\nMIN\t9.10759e-05\nMIN_FWD\t6.91414e-05\nMIN_BCK\t2.19345e-05\n\
MIN_PROC\t5.72205e-06\nMEDIAN\t0.000109\nMEDIAN_FWD\t8.6e-05\nMEDIAN_BCK\t2.3e-05\n\
MAX\t0.00142193\nMAX_FWD\t0.00139475\nMAX_BCK\t9.20296e-05\nMAX_PROC\t1.09673e-05\n\
PDV\t0.001313\nPDV_FWD\t0.001309\nPDV_BCK\t7e-05\n<BUCKETS>\n\t22\t0\t0\t3\n\t92\t1\t0\t0\n\
</BUCKETS>\nMINTTL_FWD\t255\nMAXTTL_FWD\t255\nMINTTL_BCK\t255\nMAXTTL_BCK\t255\n\
<TTLBUCKETS>\n\t255\t10\t10\n</TTLBUCKETS>\n\n";

/// Key order, numeric values and block rows of a `-M` text; returns the key → value pairs.
fn check_twping_m(text: &str) -> Vec<(String, String)> {
    let (kv, buckets, ttls) = parse_twping_m(text);
    let keys: Vec<&str> = kv.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, TWPING_M_KEYS, "keys in twping -M order\n{text}");
    for (k, v) in &kv {
        if TWPING_NUMERIC.contains(&k.as_str()) {
            let x: f64 = v
                .parse()
                .unwrap_or_else(|_| panic!("{k} = {v:?} is not a number"));
            assert!(x.is_finite(), "{k} = {v:?}");
        }
    }
    let dscp = &kv.iter().find(|(k, _)| k == "DSCP").unwrap().1;
    let hex = dscp
        .strip_prefix("0x")
        .unwrap_or_else(|| panic!("DSCP {dscp:?}"));
    assert!(
        hex.len() == 2 && u8::from_str_radix(hex, 16).is_ok(),
        "DSCP {dscp:?}"
    );
    for row in &buckets {
        assert_eq!(row.len(), 4, "bucket row {row:?}");
        assert!(row[0].parse::<i64>().is_ok(), "bucket index {row:?}");
        assert!(row[1..].iter().all(|c| c.parse::<u64>().is_ok()), "{row:?}");
    }
    for row in &ttls {
        assert_eq!(row.len(), 3, "TTL bucket row {row:?}");
        assert!(row.iter().all(|c| c.parse::<u64>().is_ok()), "{row:?}");
    }
    kv
}

#[test]
fn twping_m_reference_sample_passes_the_checks() {
    let kv = check_twping_m(TWPING_M_SAMPLE);
    assert_eq!(kv[0], ("SUMMARY".to_string(), "3.00".to_string()));
}

#[test]
fn twping_format_matches_twping_m() {
    let server = Server::start();
    let r = short_run(&server, &["-format", "twping"]);
    let kv = check_twping_m(&r.stdout);
    let get = |k: &str| -> &str { &kv.iter().find(|(key, _)| key == k).unwrap().1 };
    let num = |k: &str| -> f64 { get(k).parse().unwrap() };
    assert_eq!(get("SUMMARY"), "3.00");
    assert_eq!(get("SENT"), "20");
    assert_eq!(get("LOST"), "0");
    assert_eq!(get("SESSION_PACKET_COUNT"), "20");
    assert_eq!(get("SAMPLE_PACKET_COUNT"), "20");
    assert_eq!(get("PACKET_PADDING"), "27");
    assert_eq!(get("SESSION_FINISHED"), "1");
    assert_eq!(get("TO_HOST"), "127.0.0.1");
    assert_eq!(get("TO_ADDR"), "127.0.0.1");
    assert_eq!(get("FROM_ADDR"), "127.0.0.1");
    assert_eq!(get("DSCP"), "0x00");
    assert_eq!(get("SID").len(), 32);
    // Times in seconds, and START_TIME ≤ END_TIME as NTP integers.
    assert!(num("MIN") <= num("MEDIAN") && num("MEDIAN") <= num("MAX"));
    assert!(num("MIN") > 0.0 && num("MAX") < 0.3, "seconds, not ms");
    let start: u64 = get("START_TIME").parse().unwrap();
    let end: u64 = get("END_TIME").parse().unwrap();
    assert!(start <= end);
    // LOSS_TIMEOUT: 300 ms as a 64-bit NTP integer (0.3 × 2^32).
    let lt: u64 = get("LOSS_TIMEOUT").parse().unwrap();
    assert!(
        (lt as f64 / 4_294_967_296.0 - 0.3).abs() < 1e-6,
        "LOSS_TIMEOUT {lt}"
    );
    // Every packet is in each bucket column once, and in the TTL buckets once per direction.
    let (_, buckets, ttls) = parse_twping_m(&r.stdout);
    for col in 1..=3 {
        let n: u64 = buckets.iter().map(|b| b[col].parse::<u64>().unwrap()).sum();
        assert_eq!(n, 20, "bucket column {col}\n{}", r.stdout);
    }
    for col in 1..=2 {
        let n: u64 = ttls.iter().map(|b| b[col].parse::<u64>().unwrap()).sum();
        assert_eq!(n, 20, "TTL bucket column {col}\n{}", r.stdout);
    }
}

// ---- twping -R ---------------------------------------------------------------------------

/// Two lines of twping's own `-R` output (twping_open_R.txt).
const TWPING_R_SAMPLE: &str = "\
0 17198448757105638768 0 2.32831e-10 17198448757106300193 0 2.32831e-10 255 0 17198448757106377503 0 2.32831e-10 17198448757106755460 0 2.32831e-10 255
1 17198448757518063003 0 2.32831e-10 17198448757518398010 0 2.32831e-10 255 1 17198448757518432370 0 2.32831e-10 17198448757518548334 0 2.32831e-10 255
";

/// `SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL`:
/// checks one line's shape and returns (SSEQ, RSEQ, [STIME, SRTIME, RSTIME, RTIME]).
fn check_r_line(line: &str) -> (u32, u32, [u64; 4]) {
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 16, "16 space-separated fields: {line:?}");
    let int = |i: usize| -> u64 {
        f[i].parse()
            .unwrap_or_else(|_| panic!("field {i} {:?} is not an integer: {line:?}", f[i]))
    };
    for i in [2, 5, 10, 13] {
        assert!(matches!(f[i], "0" | "1"), "sync flag {i}: {line:?}");
    }
    for i in [3, 6, 11, 14] {
        let e: f64 = f[i]
            .parse()
            .unwrap_or_else(|_| panic!("error estimate {i} {:?}: {line:?}", f[i]));
        assert!(e.is_finite() && e > 0.0, "{line:?}");
    }
    for i in [7, 15] {
        assert!(int(i) <= 255, "TTL {i}: {line:?}");
    }
    (
        int(0) as u32,
        int(8) as u32,
        [int(1), int(4), int(9), int(12)],
    )
}

#[test]
fn packets_format_is_twping_r_shaped() {
    for line in TWPING_R_SAMPLE.lines() {
        check_r_line(line);
    }
    let server = Server::start();
    let r = short_run(&server, &["-format", "packets"]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 20, "{}", r.describe());
    for (i, line) in lines.iter().enumerate() {
        let (sseq, rseq, t) = check_r_line(line);
        assert_eq!(sseq, i as u32, "sender seqs 0..19 in order");
        assert_eq!(
            rseq, i as u32,
            "nothing lost or reordered on loopback: {line}"
        );
        // One clock on loopback: T1 ≤ T2 ≤ T3 ≤ T4.
        assert!(
            t.windows(2).all(|w| w[0] <= w[1]),
            "timestamps out of order: {line}"
        );
        assert!(line.ends_with(" 255"), "TTL 255 on loopback: {line}");
    }
}

// ---- failure records -----------------------------------------------------------------------

#[test]
fn failed_run_writes_its_record_json() {
    let dir = TempDir::new("fail-json");
    let out = dir.file("out.jsonl");
    let addr = format!("127.0.0.1:{}", closed_port());
    let r = client(
        &addr,
        &["-format", "json", "-output", out.to_str().unwrap(), "-q"],
    );
    assert_eq!(r.code, Some(NETWORK), "{}", r.describe());
    assert!(
        r.stdout.is_empty(),
        "-q: nothing on stdout\n{}",
        r.describe()
    );
    let text = std::fs::read_to_string(&out).expect("the record file exists");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(text.ends_with('\n'));
    let j = parse_json_line(lines[0]);
    assert_eq!(j["schema"], "twamp-result/1");
    assert_eq!(j["ok"], false);
    assert_eq!(j["exit_code"], 3);
    assert_eq!(j["error"]["kind"], "connect");
    assert!(
        j["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&addr)),
        "{j}"
    );
    assert_eq!(j["server"]["host"], "127.0.0.1");
    assert!(j["summary"].is_null() && j["session"].is_null(), "{j}");
}

#[test]
fn failed_run_writes_its_record_csv() {
    let dir = TempDir::new("fail-csv");
    let out = dir.file("out.csv");
    let addr = format!("127.0.0.1:{}", closed_port());
    let r = client(
        &addr,
        &["-format", "csv", "-output", out.to_str().unwrap(), "-q"],
    );
    assert_eq!(r.code, Some(NETWORK), "{}", r.describe());
    assert!(r.stdout.is_empty(), "{}", r.describe());
    let text = std::fs::read_to_string(&out).expect("the record file exists");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let fields = csv_split(lines[0]);
    assert_eq!(fields.len(), twamp::output::CSV_COLUMNS.len(), "{text}");
    let f = |name: &str| fields[column(name)].as_str();
    assert_eq!(f("ok"), "false");
    assert_eq!(f("exit_code"), "3");
    assert_eq!(f("error"), "connect");
    assert!(f("error_message").contains(&addr), "{text}");
    assert_eq!(f("sent"), "");
}

// ---- concurrent appends --------------------------------------------------------------------

#[test]
fn concurrent_runs_append_whole_records() {
    let server = Server::start();
    let dir = TempDir::new("concurrent");
    let out = dir.file("all.jsonl");
    let out_s = out.to_str().unwrap().to_string();
    let closed = format!("127.0.0.1:{}", closed_port());
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (addr, out) = (server.addr.clone(), out_s.clone());
        runs.push(thread::spawn(move || {
            let r = client(
                &addr,
                &[
                    "-c", "50", "-i", "2ms", "-timeout", "300ms", "-format", "json", "-output",
                    &out, "-q",
                ],
            );
            (true, r)
        }));
    }
    for _ in 0..20 {
        let (addr, out) = (closed.clone(), out_s.clone());
        runs.push(thread::spawn(move || {
            let r = client(&addr, &["-format", "json", "-output", &out, "-q"]);
            (false, r)
        }));
    }
    for h in runs {
        let (good, r) = h.join().expect("client thread");
        let want = if good { OK } else { NETWORK };
        assert_eq!(r.code, Some(want), "{}\n{}", r.describe(), server.log());
        assert!(r.stdout.is_empty(), "{}", r.describe());
    }
    let text = std::fs::read_to_string(&out).expect("records");
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 22, "{text}");
    let (mut ok, mut failed) = (0, 0);
    for line in &lines {
        let j = parse_json_line(line);
        assert_eq!(j["schema"], "twamp-result/1", "{line}");
        if j["ok"] == true {
            ok += 1;
            assert_eq!(j["summary"]["sent"], 50, "{line}");
            assert_eq!(j["summary"]["received"], 50, "{line}");
        } else {
            failed += 1;
            assert_eq!(j["error"]["kind"], "connect", "{line}");
        }
    }
    assert_eq!((ok, failed), (2, 20));
    // Two different sessions.
    let sids: BTreeSet<String> = lines
        .iter()
        .map(|l| parse_json_line(l))
        .filter(|j| j["ok"] == true)
        .map(|j| j["session"]["sid"].to_string())
        .collect();
    assert_eq!(sids.len(), 2);
}

// ---- -q and -histogram -------------------------------------------------------------------

#[test]
fn quiet_success_prints_nothing() {
    let server = Server::start();
    let r = short_run(&server, &["-q"]);
    assert!(r.stdout.is_empty(), "{}", r.describe());
}

#[test]
fn histogram_is_drawn() {
    let server = Server::start();
    let r = short_run(&server, &["-histogram"]);
    assert!(
        r.stdout.contains("round-trip time histogram"),
        "{}",
        r.describe()
    );
    assert!(
        r.stdout.contains("20 sent, 20 received"),
        "{}",
        r.describe()
    );
    // Bars: the bucket counts add up to the 20 samples.
    let total: u64 = r
        .stdout
        .lines()
        .filter(|l| l.contains(" ms | "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 20, "{}", r.stdout);
}
