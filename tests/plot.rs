//! Tests of the pictures (`twamp::plot`): the SVG is XML, has one plot per session, one point
//! per received packet, a mark per lost packet at its send time, and units on its axes; saved
//! records render the same way. The last test runs a real session through the impairment relay
//! (tests/common/relay.rs) with known drops, on 127.0.0.1 only.
//!
//! The SVG is read with roxmltree, by the group classes documented in `src/plot/mod.rs`.
#![cfg(feature = "plot")]

#[path = "common/relay.rs"]
mod relay;

use std::collections::BTreeSet;
use std::time::Duration;

use roxmltree::{Document, Node};
use twamp::plot::{render_svg, sessions_from_saved, PlotPacket, PlotSession, PlotTitle, Samples};

// ---- reading the SVG --------------------------------------------------------------------------

fn parse(svg: &str) -> Document<'_> {
    match Document::parse(svg) {
        Ok(d) => d,
        Err(e) => panic!("the SVG is not XML: {e}"),
    }
}

fn has_class(n: &Node<'_, '_>, class: &str) -> bool {
    n.is_element()
        && n.attribute("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
}

fn sessions<'a, 'i>(doc: &'a Document<'i>) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.has_tag_name("g") && has_class(n, "session"))
        .collect()
}

/// The one group of `class` directly inside a session.
fn layer<'a, 'i>(session: Node<'a, 'i>, class: &str) -> Node<'a, 'i> {
    let found: Vec<_> = session.children().filter(|n| has_class(n, class)).collect();
    assert_eq!(found.len(), 1, "one <g class=\"{class}\"> per session");
    found[0]
}

fn elements<'a, 'i>(n: Node<'a, 'i>, tag: &str) -> Vec<Node<'a, 'i>> {
    n.descendants().filter(|d| d.has_tag_name(tag)).collect()
}

fn num(n: &Node<'_, '_>, attr: &str) -> f64 {
    n.attribute(attr)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("<{}> without a numeric {attr}", n.tag_name().name()))
}

/// The points of a `<polyline>`.
fn points(n: &Node<'_, '_>) -> Vec<(f64, f64)> {
    n.attribute("points")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|p| p.split_once(','))
        .filter_map(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
        .collect()
}

fn texts(n: Node<'_, '_>) -> Vec<String> {
    elements(n, "text")
        .iter()
        .map(|t| t.text().unwrap_or("").trim().to_string())
        .collect()
}

// ---- input ------------------------------------------------------------------------------------

/// 2026-11-23T09:14:16Z.
const START: f64 = 1_795_424_056.0;

/// A session of `count` packets sent at `send(i)` seconds after START, those in `lost` lost;
/// the others take 10 ms plus a little per packet, and have one-way delays when `one_way`.
fn session(
    count: u32,
    send: impl Fn(u32) -> f64,
    lost: &BTreeSet<u32>,
    one_way: bool,
) -> PlotSession {
    let packets: Vec<PlotPacket> = (0..count)
        .map(|i| {
            let rtt = (!lost.contains(&i)).then(|| 0.010 + 0.0001 * f64::from(i % 7));
            PlotPacket {
                send_time: START + send(i),
                rtt,
                forward: rtt.filter(|_| one_way).map(|r| r * 0.4),
                backward: rtt.filter(|_| one_way).map(|r| r * 0.6),
            }
        })
        .collect();
    PlotSession {
        title: PlotTitle {
            target: "192.0.2.7:862".into(),
            mode: Some("open".into()),
            dscp: Some(46),
            packet_octets: Some(41),
            start: Some("2026-11-23T09:14:16.000+00:00".into()),
            sent: u64::from(count),
            lost: lost.len() as u64,
            lost_forward: lost.len() as u64,
            lost_backward: 0,
        },
        samples: Samples::Packets,
        packets,
        one_way_note: (!one_way).then(|| "clocks not synchronised".to_string()),
    }
}

fn set(v: &[u32]) -> BTreeSet<u32> {
    v.iter().copied().collect()
}

/// Checks that the lost marks of `s` stand on its time axis at the send times of `lost`,
/// taking the pixel scale from the received packets' points (drawn in send order).
fn assert_lost_marked_at_send_times(s: Node<'_, '_>, send_times: &[f64], lost: &BTreeSet<u32>) {
    let received: Vec<f64> = send_times
        .iter()
        .enumerate()
        .filter(|(i, _)| !lost.contains(&(*i as u32)))
        .map(|(_, &t)| t)
        .collect();
    let circles = elements(layer(s, "rtt-points"), "circle");
    assert_eq!(circles.len(), received.len());
    let cx: Vec<f64> = circles.iter().map(|c| num(c, "cx")).collect();
    let (first, last) = (0, received.len() - 1);
    let scale = (cx[last] - cx[first]) / (received[last] - received[first]);
    let pixel = |t: f64| cx[first] + (t - received[first]) * scale;
    // Every received point sits where the scale says (plotters rounds to whole pixels).
    for (t, x) in received.iter().zip(&cx) {
        assert!(
            (pixel(*t) - x).abs() <= 1.0,
            "point at {t} s drawn at x={x}"
        );
    }
    let lowest_point = circles
        .iter()
        .map(|c| num(c, "cy"))
        .fold(f64::MIN, f64::max);
    let marks = elements(layer(s, "lost-marks"), "polyline");
    assert_eq!(marks.len(), lost.len(), "one mark per lost packet");
    for (mark, &seq) in marks.iter().zip(lost) {
        let p = points(mark);
        assert_eq!(p.len(), 2, "a tick is one segment");
        let t = send_times[seq as usize];
        assert!(
            (p[0].0 - pixel(t)).abs() <= 1.0 && p[0].0 == p[1].0,
            "packet {seq} sent at {t} s: mark at x={}, expected {:.1}",
            p[0].0,
            pixel(t)
        );
        // On the time axis: below every point, rising from the bottom of the plot.
        assert!(p[0].1 > lowest_point && p[1].1 < p[0].1, "mark {p:?}");
    }
}

// ---- tests ------------------------------------------------------------------------------------

#[test]
fn svg_is_xml_with_one_plot_per_session() {
    let input = [
        session(40, |i| f64::from(i) * 0.1, &set(&[3]), true),
        session(10, f64::from, &set(&[]), false),
        session(25, |i| f64::from(i) * 0.5, &set(&[0, 24]), true),
    ];
    let svg = render_svg(&input).unwrap();
    let doc = parse(&svg);
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert_eq!(
        doc.root_element().tag_name().namespace(),
        Some("http://www.w3.org/2000/svg")
    );
    let s = sessions(&doc);
    assert_eq!(s.len(), 3);
    for (node, want) in s.iter().zip(&input) {
        for class in [
            "frame",
            "rtt-points",
            "rtt-median",
            "lost-marks",
            "forward-points",
            "backward-points",
            "distribution",
            "percentiles",
        ] {
            layer(*node, class);
        }
        let received = want.packets.iter().filter(|p| p.rtt.is_some()).count();
        assert_eq!(
            elements(layer(*node, "rtt-points"), "circle").len(),
            received
        );
    }
    // Stacked, not drawn over each other.
    let offsets: Vec<&str> = s.iter().filter_map(|n| n.attribute("transform")).collect();
    assert_eq!(offsets.len(), 3);
    assert_eq!(offsets.iter().collect::<BTreeSet<_>>().len(), 3);
}

#[test]
fn one_point_per_received_packet_and_a_mark_per_lost_one() {
    let lost = set(&[3, 10, 11, 12, 40]);
    let svg = render_svg(&[session(50, |i| f64::from(i) * 0.02, &lost, true)]).unwrap();
    let doc = parse(&svg);
    let s = sessions(&doc)[0];
    assert_eq!(elements(layer(s, "rtt-points"), "circle").len(), 45);
    assert_eq!(elements(layer(s, "lost-marks"), "polyline").len(), 5);
    assert_eq!(elements(layer(s, "forward-points"), "circle").len(), 45);
    assert_eq!(elements(layer(s, "backward-points"), "circle").len(), 45);
    assert_eq!(elements(layer(s, "rtt-median"), "polyline").len(), 1);
    // Histogram bars hold every received packet; their heights are counts, so at least one bar.
    assert!(!elements(layer(s, "distribution"), "rect").is_empty());
}

#[test]
fn lost_packets_are_marked_at_their_send_times() {
    // Uneven send times (a Poisson-like schedule), so a mark drawn at its index rather than at
    // its time would be caught.
    let send = |i: u32| {
        let i = f64::from(i);
        i * 0.05 + 0.03 * (i * 1.7).sin().abs() + if i > 30.0 { 2.0 } else { 0.0 }
    };
    let lost = set(&[2, 17, 18, 31, 59]);
    let svg = render_svg(&[session(60, send, &lost, false)]).unwrap();
    let doc = parse(&svg);
    let times: Vec<f64> = (0..60).map(send).collect();
    assert_lost_marked_at_send_times(sessions(&doc)[0], &times, &lost);
}

#[test]
fn axes_carry_units_and_the_title_says_what_was_measured() {
    let svg = render_svg(&[session(20, f64::from, &set(&[5]), true)]).unwrap();
    let doc = parse(&svg);
    let s = sessions(&doc)[0];
    let t = texts(layer(s, "frame"));
    for want in [
        "time since the first packet (s)",
        "round-trip delay (ms)",
        "one-way delay (ms)",
        "packets",
    ] {
        assert!(
            t.iter().any(|x| x == want),
            "no axis label {want:?} in {t:?}"
        );
    }
    let title = t.iter().find(|x| x.starts_with("192.0.2.7:862")).unwrap();
    for want in ["mode open", "DSCP 46", "41 octets", "2026-11-23T09:14:16"] {
        assert!(title.contains(want), "{title}");
    }
    assert!(
        t.iter()
            .any(|x| x.contains("1 lost (5.0%): 1 forward, 0 backward")),
        "{t:?}"
    );
    // Percentiles are marked by name and value.
    let p = texts(layer(s, "percentiles"));
    for name in ["min ", "median ", "P95 ", "P99 "] {
        assert!(
            p.iter().any(|x| x.starts_with(name) && x.ends_with(" ms")),
            "{p:?}"
        );
    }
}

#[test]
fn missing_one_way_delays_are_explained() {
    let svg = render_svg(&[session(20, f64::from, &set(&[]), false)]).unwrap();
    let doc = parse(&svg);
    let s = sessions(&doc)[0];
    assert!(elements(layer(s, "forward-points"), "circle").is_empty());
    assert!(texts(layer(s, "frame"))
        .iter()
        .any(|x| x.contains("one-way delay not shown: clocks not synchronised")));
}

#[test]
fn saved_packet_records_render_with_their_losses() {
    // -format packets lines (output.rs `packets()`): packet 1 lost, packets 0 and 2 received
    // with T2 = T1 + 0.4 ms, T3 = T2 + 0.1 ms, T4 = T3 + 0.5 ms, unsynchronised (S = 0).
    let t0: u64 = 3_972_931_200 << 32;
    let ms = |m: f64| t0 + (m * 4_294_967.296).round() as u64;
    let line = |seq: u32, rseq: u32, at: f64| {
        format!(
            "{seq} {} 0 2.32831e-10 {} 0 2.32831e-10 255 {rseq} {} 0 2.32831e-10 {} 0 2.32831e-10 255",
            ms(at),
            ms(at + 0.4),
            ms(at + 0.5),
            ms(at + 1.0)
        )
    };
    let text = format!(
        "{}\n{} {} 0 2.32831e-10 0 0 0 0 0 0 0 0 0 0 0 0\n{}\n",
        line(0, 0, 0.0),
        1,
        ms(10.0),
        line(2, 1, 20.0)
    );
    let saved = sessions_from_saved(&text).unwrap();
    let svg = render_svg(&saved).unwrap();
    let doc = parse(&svg);
    let s = sessions(&doc)[0];
    assert_eq!(elements(layer(s, "rtt-points"), "circle").len(), 2);
    assert_lost_marked_at_send_times(s, &[0.0, 0.010, 0.020], &set(&[1]));
}

#[test]
fn saved_json_runs_render_as_one_series_in_clock_time() {
    let record = |time: &str, median: Option<f64>| {
        let rtt = median.map_or("null".to_string(), |m| {
            format!(r#"{{"count":10,"median_ms":{m}}}"#)
        });
        format!(
            r#"{{"schema":"twamp-result/1","time":"{time}","ok":true,"exit_code":0,"error":null,"server":{{"host":"192.0.2.7","port":862,"address":"192.0.2.7"}},"session":{{"sid":"00","mode":"open","local":"192.0.2.1:1","reflector":"192.0.2.7:2","padding_octets":27,"dscp":0,"count":10,"interval_ms":10.0,"timeout_ms":200.0,"interrupted":false,"stray_datagrams":0,"malformed_datagrams":0}},"summary":{{"sent":10,"received":10,"lost":0,"lost_forward":0,"lost_backward":0,"sync":false,"rtt":{rtt}}}}}"#
        )
    };
    let text = [
        record("2026-11-23T22:00:00.000+01:00", Some(12.0)),
        record("2026-11-23T22:05:00.000+01:00", None),
        record("2026-11-23T22:10:00.000+01:00", Some(12.4)),
        record("2026-11-23T22:20:00.000+01:00", Some(30.1)),
    ]
    .join("\n");
    let saved = sessions_from_saved(&text).unwrap();
    let svg = render_svg(&saved).unwrap();
    let doc = parse(&svg);
    let s = sessions(&doc);
    assert_eq!(s.len(), 1);
    let t = texts(layer(s[0], "frame"));
    assert!(
        t.iter().any(|x| x == "time of the run (UTC+01:00)"),
        "{t:?}"
    );
    assert!(t.iter().any(|x| x == "22:10"), "clock-time labels: {t:?}");
    let minutes = [0.0, 300.0, 600.0, 1200.0];
    assert_lost_marked_at_send_times(s[0], &minutes, &set(&[1]));
}

/// A real session through the impairment relay: forward drops 5 and 17, backward drop 30, so
/// packets 5, 17 and 30 must be marked at their send times and the other 37 drawn as points.
#[test]
fn a_relayed_run_with_known_drops_is_drawn_as_it_happened() {
    use std::net::{IpAddr, SocketAddr};
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;
    use std::time::Duration;

    use relay::{Impairment, Relay};
    use std::time::Instant;
    use twamp::reflector::{self, Context, Counters, Reflector};
    use twamp::sender::{self, Plan, Schedule, Sender};
    use twamp::time::SystemClock;
    use twamp::wire::{Sid, TestLayout};

    let loopback = IpAddr::from([127, 0, 0, 1]);
    let sock = twamp::net::udp_socket(SocketAddr::new(loopback, 0), 0).unwrap();
    let reflector_addr = sock.local_addr().unwrap();
    let ctx = Context {
        refwait: Duration::from_secs(10),
        clock: Arc::new(SystemClock::new()),
        shutdown: Arc::new(AtomicBool::new(false)),
        live: Arc::new(AtomicUsize::new(0)),
        totals: Arc::new(Counters::default()),
    };
    let handle = reflector::spawn(
        sock,
        Reflector::new(TestLayout::OPEN, None, loopback),
        Sid([0x5b; 16]),
        14 + 27,
        &ctx,
    )
    .unwrap();
    let fwd = Impairment {
        delay: Duration::from_millis(2),
        drop: set(&[5, 17]),
        ..Impairment::default()
    };
    let bck = Impairment {
        delay: Duration::from_millis(3),
        drop: set(&[30]),
        ..Impairment::default()
    };
    let relay = Relay::start(reflector_addr, fwd, bck, Duration::from_secs(10));
    let sender_sock = twamp::net::udp_socket(SocketAddr::new(loopback, 0), 1 << 20).unwrap();
    let plan = Plan {
        count: 40,
        schedule: Schedule::Periodic {
            interval: Duration::from_millis(10),
        },
        duration: None,
        loss_timeout: Duration::from_millis(500),
        padding: 27,
        layout: TestLayout::OPEN,
        cipher: None,
        light: None,
    };
    let stop = AtomicBool::new(false);
    let mut running = [sender::Session::new(
        Sender::new(plan, relay.addr, Instant::now()),
        sender_sock,
    )];
    let result = sender::run(&mut running, &SystemClock::new(), &stop, |_| {}, || Ok(()));
    let [session] = running;
    let outcome = session.sender.into_outcome();
    drop(relay);
    handle.join();
    result.unwrap();

    // The lead's Report adapter does this; here straight from the per-packet results.
    let per = twamp::stats::per_packet(&outcome.sent, &outcome.replies);
    let unix = |t: twamp::time::Timestamp| {
        t.to_system_time()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let packets: Vec<PlotPacket> = per
        .iter()
        .map(|p| PlotPacket {
            send_time: unix(p.t1),
            rtt: p.rtt,
            forward: None,
            backward: None,
        })
        .collect();
    let send_times: Vec<f64> = packets
        .iter()
        .map(|p| p.send_time - packets[0].send_time)
        .collect();
    let input = PlotSession {
        title: PlotTitle {
            target: relay_target(),
            sent: 40,
            lost: 3,
            lost_forward: 2,
            lost_backward: 1,
            ..PlotTitle::default()
        },
        samples: Samples::Packets,
        packets,
        one_way_note: None,
    };
    let svg = render_svg(&[input]).unwrap();
    let doc = parse(&svg);
    assert_lost_marked_at_send_times(sessions(&doc)[0], &send_times, &set(&[5, 17, 30]));
}

fn relay_target() -> String {
    "127.0.0.1 (through the impairment relay)".into()
}

#[path = "common/bin.rs"]
mod bin;

/// The binary end to end: `-plot` on a two-session client run, then `-mode plot` on the JSON
/// records that run appended.
#[test]
fn the_client_draws_its_run_and_plot_mode_draws_saved_records() {
    let server = bin::Server::start(&[]);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("twamp-plot-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("run.svg");
    let jsonl = dir.join("runs.jsonl");
    let _ = std::fs::remove_file(&jsonl);
    let run = bin::run_client(
        &server.addr.to_string(),
        &[
            "-c",
            "12",
            "-i",
            "5ms",
            "-timeout",
            "300ms",
            "-sessions",
            "2",
            "-format",
            "json",
            "-q",
            "-output",
            jsonl.to_str().unwrap(),
            "-plot",
            svg.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(run.success(), "{}", run.describe());
    let text = std::fs::read_to_string(&svg).expect("the SVG was written");
    let doc = parse(&text);
    let s = sessions(&doc);
    assert_eq!(s.len(), 2, "one plot per session");
    for n in s {
        assert_eq!(
            elements(layer(n, "rtt-points"), "circle").len(),
            12,
            "one point per received packet"
        );
    }
    let out = dir.join("night.svg");
    let plot = bin::run_bounded(
        &[
            "-mode",
            "plot",
            "-input",
            jsonl.to_str().unwrap(),
            "-plot",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(plot.code, Some(0), "{}", plot.describe());
    let text = std::fs::read_to_string(&out).expect("the saved-records SVG was written");
    assert_eq!(sessions(&parse(&text)).len(), 1, "one series per target");
    let bad = bin::run_bounded(
        &[
            "-mode",
            "plot",
            "-input",
            "/nonexistent/x",
            "-plot",
            out.to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    assert_eq!(bad.code, Some(2), "{}", bad.describe());
    let _ = std::fs::remove_dir_all(&dir);
}
