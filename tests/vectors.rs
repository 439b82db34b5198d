//! Every open-mode control message and test packet captured from perfSONAR twping ↔ twampd
//! (`../shared/vectors/owamp_open.hexdump.txt`): parse the captured bytes, emit from the parsed
//! values, and compare byte for byte. Random fields (Challenge, Salt, padding) are carried
//! through the parsed values, so nothing is masked.

use std::collections::BTreeMap;

use twamp::wire::{
    AcceptSession, RequestTwSession, ServerGreeting, ServerStart, SetUpResponse, StartAck,
    StopSessions, TestLayout,
};
use twamp::wire::{ReflectorPacket, SenderPacket};

/// One section of the hexdump: its heading and its bytes.
struct Section {
    title: String,
    /// For a test packet, the UDP source port; `None` for a control message.
    src_port: Option<u16>,
    bytes: Vec<u8>,
}

impl Section {
    fn is_test(&self) -> bool {
        self.src_port.is_some()
    }
}

fn vectors_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors")
}

/// Splits the hexdump file into `###` control sections and `frame` test-packet sections.
fn load(name: &str) -> Vec<Section> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (CI lays ../shared beside the repo)",
            path.display()
        )
    });
    let mut out: Vec<Section> = Vec::new();
    let mut direction = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix("### ") {
            direction = h.to_string();
            out.push(Section {
                title: h.to_string(),
                src_port: None,
                bytes: Vec::new(),
            });
        } else if t.starts_with("frame ") {
            // "### UDP 20097 -> 19203: ..." names the ports of the frames below it.
            let src_port = direction
                .strip_prefix("UDP ")
                .and_then(|r| r.split_whitespace().next())
                .and_then(|p| p.parse().ok());
            out.push(Section {
                title: format!("{direction} | {t}"),
                src_port,
                bytes: Vec::new(),
            });
        } else if t.len() > 6
            && t.as_bytes()[4] == b' '
            && t[..4].chars().all(|c| c.is_ascii_hexdigit())
        {
            let sec = out.last_mut().expect("hex line after a heading");
            for w in t[6..].split_whitespace() {
                if w.len() != 2 || !w.chars().all(|c| c.is_ascii_hexdigit()) {
                    break;
                }
                sec.bytes.push(u8::from_str_radix(w, 16).unwrap());
            }
        }
    }
    out.retain(|s| !s.bytes.is_empty());
    out
}

fn arr<const N: usize>(s: &Section) -> [u8; N] {
    s.bytes
        .as_slice()
        .try_into()
        .unwrap_or_else(|_| panic!("{}: {} octets, want {N}", s.title, s.bytes.len()))
}

#[test]
fn every_open_mode_control_message_round_trips() {
    let sections = load("owamp_open.hexdump.txt");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sections {
        if s.is_test() {
            continue;
        }
        let name = s.title.split_whitespace().nth(1).unwrap_or("");
        macro_rules! round_trip {
            ($ty:ty, $parse:expr) => {{
                let b: [u8; <$ty>::LEN] = arr(s);
                let m = $parse(&b);
                let mut out = [0xa5u8; <$ty>::LEN];
                m.emit(&mut out);
                assert_eq!(out, b, "{}", s.title);
            }};
        }
        match name {
            "Server-Greeting" => round_trip!(ServerGreeting, ServerGreeting::parse),
            "Set-Up-Response" => round_trip!(SetUpResponse, SetUpResponse::parse),
            "Server-Start" => round_trip!(ServerStart, ServerStart::parse),
            "Request-TW-Session" => round_trip!(RequestTwSession, |b| RequestTwSession::parse(b)
                .expect("valid request")),
            "Accept-Session" => round_trip!(AcceptSession, AcceptSession::parse),
            "Start-Sessions" => {
                let b: [u8; 32] = arr(s);
                let mut out = [0xa5u8; 32];
                twamp::wire::StartSessions.emit(&mut out);
                assert_eq!(out, b, "{}", s.title);
            }
            "Start-Ack" => round_trip!(StartAck, StartAck::parse),
            "Stop-Sessions" => round_trip!(StopSessions, StopSessions::parse),
            other => panic!("unexpected section {other}"),
        }
        *seen.entry(name).or_default() += 1;
    }
    // Three control connections, each with the full exchange.
    for name in [
        "Server-Greeting",
        "Set-Up-Response",
        "Server-Start",
        "Request-TW-Session",
        "Accept-Session",
        "Start-Sessions",
        "Start-Ack",
        "Stop-Sessions",
    ] {
        assert_eq!(seen.get(name), Some(&3), "{name}: {seen:?}");
    }
}

#[test]
fn every_open_mode_test_packet_round_trips() {
    let sections = load("owamp_open.hexdump.txt");
    let layout = TestLayout::OPEN;
    let (mut senders, mut reflections) = (0, 0);
    for s in sections.iter().filter(|s| s.is_test()) {
        let b = &s.bytes;
        assert_eq!(b.len(), 41, "{}", s.title);
        // Direction from the ports: twping's side is 200xx, twampd's test ports 18760–19960.
        let from_sender = s.src_port.is_some_and(|p| p >= 20000);
        let mut out = vec![0xa5u8; b.len()];
        if from_sender {
            let p = SenderPacket::parse(b, &layout.sender).unwrap();
            p.emit(&mut out, &layout.sender).unwrap();
            out[14..].copy_from_slice(&b[14..]); // twping's padding is random: carried over
            senders += 1;
        } else {
            let p = ReflectorPacket::parse(b, &layout.reflector).unwrap();
            assert_eq!(p.sender_ttl, 255, "loopback: no hops");
            p.emit(&mut out, &layout.reflector).unwrap();
            reflections += 1;
        }
        assert_eq!(&out, b, "{}", s.title);
    }
    assert_eq!((senders, reflections), (9, 9));
}

#[test]
fn reflected_packets_echo_the_sender_packets() {
    // Pair each captured reflection with the sender packet it answers: same sequence number,
    // same timestamp, T1 ≤ T2 ≤ T3 on one host.
    let sections = load("owamp_open.hexdump.txt");
    let layout = TestLayout::OPEN;
    let from_sender = |s: &&Section| s.src_port.is_some_and(|p| p >= 20000);
    let senders: Vec<&Section> = sections
        .iter()
        .filter(|s| s.is_test())
        .filter(from_sender)
        .collect();
    let reflections: Vec<&Section> = sections
        .iter()
        .filter(|s| s.is_test() && !from_sender(s))
        .collect();
    let mut matched = 0;
    for r in reflections
        .iter()
        .map(|s| ReflectorPacket::parse(&s.bytes, &layout.reflector).unwrap())
    {
        let sender = senders
            .iter()
            .filter_map(|s| SenderPacket::parse(&s.bytes, &layout.sender).ok())
            .find(|p| p.timestamp == r.sender_timestamp)
            .expect("the sender packet of each reflection is in the capture");
        assert_eq!(sender.seq, r.sender_seq);
        assert!(r.sender_timestamp <= r.receive_timestamp && r.receive_timestamp <= r.timestamp);
        matched += 1;
    }
    assert_eq!(matched, 9);
}
