//! The checks behind each fuzz target, one function per target.
//!
//! Each function takes the fuzzer's bytes, must never panic on any of them, and asserts the
//! properties listed in its doc (round trips, length bounds). A failed assertion is a finding.
//!
//! This file is compiled twice: as the `twamp-fuzz` library the targets in `fuzz_targets/` call,
//! and as a module of the parent crate's `tests/fuzz_regressions.rs` (through `#[path]`), so the
//! regression tests replay saved inputs through exactly the code that was fuzzed. It therefore
//! uses nothing but `std` and `twamp`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use twamp::control::{self, server, SecurityMode};
use twamp::crypto::{ControlCipher, SessionKeys, TestCipher, TestKeys, TestSecurity};
use twamp::reflector::{DropReason, Received, Reflector};
use twamp::time::{Clock, FakeClock, Timestamp};
use twamp::wire::{
    AcceptSession, Modes, ReflectOctetsRequest, ReflectorPacket, RequestTwSession, SenderPacket,
    ServerGreeting, ServerStart, SetUpResponse, StartAck, StartNAck, StartNSessions, StopNAck,
    StopNSessions, StopSessions, TestLayout, TypeP,
};

/// The control connection's peer in every target.
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// All four security modes, in the order the reflector target's mode bits name them.
pub const MODES: [SecurityMode; 4] = [
    SecurityMode::Open,
    SecurityMode::Mixed,
    SecurityMode::Authenticated,
    SecurityMode::Encrypted,
];

/// Zero-pads or truncates `data` to exactly `N` octets (the I/O layer always reads `LEN`).
fn fixed<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut b = [0u8; N];
    let n = data.len().min(N);
    b[..n].copy_from_slice(&data[..n]);
    b
}

/// parse → emit → parse for an infallible control-message parser: the two parsed values are
/// equal, emit writes every octet (a 0xa5-filled buffer and a zeroed one come out the same),
/// and emitting the re-parsed value gives the same bytes (emit's output is canonical).
macro_rules! round_trip {
    ($ty:ty, $data:expr) => {{
        let first = <$ty>::parse(&fixed::<{ <$ty>::LEN }>($data));
        let mut dirty = [0xa5u8; <$ty>::LEN];
        first.emit(&mut dirty);
        let mut clean = [0u8; <$ty>::LEN];
        first.emit(&mut clean);
        assert_eq!(
            dirty, clean,
            concat!(stringify!($ty), "::emit left octets unwritten")
        );
        let second = <$ty>::parse(&dirty);
        assert_eq!(
            first, second,
            concat!(
                stringify!($ty),
                ": parse -> emit -> parse changed the value"
            )
        );
        let mut again = [0u8; <$ty>::LEN];
        second.emit(&mut again);
        assert_eq!(
            dirty, again,
            concat!(stringify!($ty), ": emit is not canonical")
        );
        first
    }};
}

/// Target `control_messages`: the first octet picks the message (modulo 7), the rest is padded
/// or truncated to its fixed length. Every message round-trips; Request-TW-Session also goes
/// through `validate_request` in every security mode, and the client-side checks run on the
/// messages the Server sends.
pub fn control_messages(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => {
            let g = round_trip!(ServerGreeting, body);
            for have_key in [false, true] {
                if let Ok(m) =
                    control::client::choose_mode(&g, &SecurityMode::STRICTEST_FIRST, have_key)
                {
                    assert!(
                        g.modes.contains(m.bit()),
                        "chose {m} that the greeting does not offer"
                    );
                    assert!(have_key || !m.needs_key(), "chose {m} without a key");
                }
            }
            let _ = control::client::check_count(g.count, control::client::DEFAULT_MAX_COUNT);
        }
        1 => {
            let r = round_trip!(SetUpResponse, body);
            let _ = (
                SecurityMode::from_modes(r.mode),
                r.key_id_str(),
                format!("{r:?}"),
            );
        }
        2 => {
            round_trip!(ServerStart, body);
        }
        3 => request_tw_session(&fixed(body)),
        4 => {
            let a = round_trip!(AcceptSession, body);
            if let Ok((port, sid)) = control::client::check_accept_session(&a) {
                assert!(port != 0 && sid == a.sid);
            }
        }
        5 => {
            round_trip!(StartAck, body);
        }
        _ => {
            round_trip!(StopSessions, body);
        }
    }
}

fn request_tw_session(buf: &[u8; RequestTwSession::LEN]) {
    let req = match RequestTwSession::parse(buf) {
        Ok(r) => r,
        Err(e) => {
            let ipvn = buf[1] & 0x0f;
            assert!(ipvn != 4 && ipvn != 6, "IPVN {ipvn} refused: {e}");
            return;
        }
    };
    let mut dirty = [0xa5u8; RequestTwSession::LEN];
    req.emit(&mut dirty);
    let mut clean = [0u8; RequestTwSession::LEN];
    req.emit(&mut clean);
    assert_eq!(dirty, clean, "RequestTwSession::emit left octets unwritten");
    let again = RequestTwSession::parse(&dirty).expect("an emitted request parses");
    assert_eq!(
        req, again,
        "RequestTwSession: parse -> emit -> parse changed the value"
    );
    assert_eq!(
        req.sender_address.is_ipv6(),
        req.receiver_address.is_ipv6(),
        "one family per request"
    );
    // RFC 6038 fields: zero after the base emit, and they round-trip over it.
    let ext = ReflectOctetsRequest::parse(buf);
    assert_eq!(
        ReflectOctetsRequest::parse(&dirty),
        ReflectOctetsRequest::default()
    );
    ext.emit(&mut dirty);
    assert_eq!(ReflectOctetsRequest::parse(&dirty), ext);
    assert_eq!(RequestTwSession::parse(&dirty).as_ref(), Ok(&req));
    assert_eq!(u32::from(TypeP::from(req.type_p)), req.type_p);
    for mode in MODES {
        for peer in [PEER, IpAddr::V6(Ipv6Addr::LOCALHOST)] {
            match server::validate_request(&req, mode, peer) {
                Ok(spec) => {
                    let base = mode.test_layout().sender.base as u64;
                    assert!(u64::from(spec.padding) + base <= u64::from(server::MAX_TEST_PACKET));
                    assert!(spec.timeout <= server::MAX_SESSION_TIMEOUT);
                    assert!(spec.dscp <= 63);
                    assert_eq!(spec.peer, peer);
                    assert_eq!(spec.requested_port, req.receiver_port);
                }
                Err(refusal) => assert_ne!(
                    refusal.accept,
                    twamp::wire::Accept::Ok,
                    "a refusal with Accept OK"
                ),
            }
        }
    }
}

/// Target `test_packets`: Session-Sender and Session-Reflector packets in both layouts, on
/// inputs of any length. Shorter than the base is `Truncated`; otherwise parse → emit (into a
/// copy of the input) → parse gives the same value and leaves the padding alone.
pub fn test_packets(data: &[u8]) {
    for layout in [
        TestLayout::OPEN,
        TestLayout::AUTHENTICATED,
        TestLayout::SYMMETRICAL_OPEN,
        TestLayout::SYMMETRICAL_AUTHENTICATED,
        TestLayout::DSCP_ECN_OPEN,
        TestLayout::SYMMETRICAL_DSCP_ECN_OPEN,
    ] {
        let s = layout.sender;
        match SenderPacket::parse(data, &s) {
            Ok(p) => {
                assert!(data.len() >= s.base);
                let mut out = data.to_vec();
                p.emit(&mut out, &s)
                    .expect("emit into a buffer parse accepted");
                assert_eq!(
                    out[s.base..],
                    data[s.base..],
                    "SenderPacket::emit touched the padding"
                );
                assert_eq!(
                    SenderPacket::parse(&out, &s),
                    Ok(p),
                    "SenderPacket round trip"
                );
                let mut dirty = vec![0xa5; s.base];
                p.emit(&mut dirty, &s).expect("base-sized buffer");
                assert_eq!(
                    dirty[..],
                    out[..s.base],
                    "SenderPacket::emit is not canonical"
                );
            }
            Err(e) => {
                assert!(data.len() < s.base);
                assert_eq!(
                    e,
                    twamp::wire::Error::Truncated {
                        need: s.base,
                        got: data.len()
                    }
                );
            }
        }
        let r = layout.reflector;
        match ReflectorPacket::parse(data, &r) {
            Ok(p) => {
                assert!(data.len() >= r.base);
                let mut out = data.to_vec();
                p.emit(&mut out, &r)
                    .expect("emit into a buffer parse accepted");
                assert_eq!(
                    out[r.base..],
                    data[r.base..],
                    "ReflectorPacket::emit touched the padding"
                );
                assert_eq!(
                    ReflectorPacket::parse(&out, &r),
                    Ok(p),
                    "ReflectorPacket round trip"
                );
                let mut dirty = vec![0xa5; r.base];
                p.emit(&mut dirty, &r).expect("base-sized buffer");
                assert_eq!(
                    dirty[..],
                    out[..r.base],
                    "ReflectorPacket::emit is not canonical"
                );
            }
            Err(e) => {
                assert!(data.len() < r.base);
                assert_eq!(
                    e,
                    twamp::wire::Error::Truncated {
                        need: r.base,
                        got: data.len()
                    }
                );
            }
        }
        // Emitting into too short a buffer is an error, never a panic.
        let cut = data.len().min(s.base.saturating_sub(1));
        assert!(SenderPacket::default().emit(&mut vec![0; cut], &s).is_err());
        let cut = data.len().min(r.base.saturating_sub(1));
        assert!(ReflectorPacket::default()
            .emit(&mut vec![0; cut], &r)
            .is_err());
        // RFC 7750 S-DSCP-ECN: readable exactly when the packet holds the base and the octet
        // (in the plain open layout, 41 is past the base).
        let need = r.base.max(r.sender_dscp_ecn() + 1);
        match ReflectorPacket::parse_sender_dscp_ecn(data, &r) {
            Ok(v) => assert_eq!(v.0, data[r.sender_dscp_ecn()]),
            Err(_) => assert!(data.len() < need),
        }
    }
    // The layouts the Modes bits choose are among those checked above.
    for bits in 0..4u32 {
        let modes = Modes(((bits & 1) * 64) | ((bits >> 1) * 256));
        for base in [TestLayout::OPEN, TestLayout::AUTHENTICATED] {
            let l = base.with_modes(modes);
            assert!(l.sender.base <= l.reflector.base, "{modes}");
        }
    }
}

/// Target `control_n_messages`: the RFC 5938 messages. Octet 0 (mod 4) picks Start-N-Sessions,
/// Start-N-Ack, Stop-N-Sessions or Stop-N-Ack; the rest is the message, any length. `parse`
/// fails exactly when the input is shorter than the first block or than `message_len`, or
/// Number of Sessions exceeds `MAX_SIDS`; otherwise parse → emit (into a dirty buffer) →
/// parse is equal, emit writes `message_len` octets, canonically, and nothing after them.
pub fn control_n_messages(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => n_round_trip(
            body,
            StartNSessions::parse,
            StartNSessions::emit,
            StartNSessions::message_len,
        ),
        1 => n_round_trip(
            body,
            StartNAck::parse,
            StartNAck::emit,
            StartNAck::message_len,
        ),
        2 => n_round_trip(
            body,
            StopNSessions::parse,
            StopNSessions::emit,
            StopNSessions::message_len,
        ),
        _ => n_round_trip(body, StopNAck::parse, StopNAck::emit, StopNAck::message_len),
    }
}

fn n_round_trip<T: PartialEq + std::fmt::Debug>(
    body: &[u8],
    parse: fn(&[u8]) -> twamp::wire::Result<T>,
    emit: fn(&T, &mut [u8]) -> twamp::wire::Result<usize>,
    message_len: fn(&[u8; 16]) -> twamp::wire::Result<usize>,
) {
    let parsed = parse(body);
    let Some(first) = body.get(..16) else {
        assert!(
            parsed.is_err(),
            "parsed a message shorter than its first block"
        );
        return;
    };
    let first: &[u8; 16] = first.try_into().expect("16 octets");
    let len = match message_len(first) {
        Ok(len) => len,
        Err(e) => {
            assert_eq!(parsed.err(), Some(e), "message_len and parse disagree");
            return;
        }
    };
    assert!(len >= 32 && (len - 32) % 16 == 0, "message_len {len}");
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            assert!(body.len() < len, "refused a whole message: {e}");
            return;
        }
    };
    assert!(body.len() >= len);
    let mut dirty = vec![0xa5u8; len + 16];
    assert_eq!(emit(&value, &mut dirty), Ok(len), "emit length");
    assert!(
        dirty[len..].iter().all(|&b| b == 0xa5),
        "emit wrote past the message"
    );
    let mut clean = vec![0u8; len];
    assert_eq!(emit(&value, &mut clean), Ok(len));
    assert_eq!(dirty[..len], clean[..], "emit left octets unwritten");
    assert_eq!(parse(&clean).as_ref(), Ok(&value), "parse -> emit -> parse");
    // Command, Accept (acks), Number of Sessions, SIDs survive; MBZ and HMAC become zero.
    assert_eq!(clean[12..len - 16], body[12..len - 16], "count and SIDs");
    assert!(emit(&value, &mut vec![0u8; len - 1]).is_err());
}

/// The keys of stream 0 of a capture in `../shared/vectors` (`owamp_*.decrypted.txt`):
/// AES-Session-Key, HMAC-Session-Key, Client-IV, Server-IV and the test session's SID.
struct Capture {
    aes: &'static str,
    hmac: &'static str,
    client_iv: &'static str,
    server_iv: &'static str,
    sid: &'static str,
}

const AUTH0: Capture = Capture {
    aes: "417d6bf06681438eb64ed4dd7b6f9761",
    hmac: "e7b0cb04e3606141ca19a8baec06dc21ca9b1461860c9255230915341f5497f3",
    client_iv: "e5ee80002a3397f3a64c72dd53856ea8",
    server_iv: "690f9cc43519c9afd6d398560e1da7d3",
    sid: "7f000001eead2a0f4bd3f5b524d32b58",
};

const ENCR0: Capture = Capture {
    aes: "d4e17b65e1970ea5234557feb7376a56",
    hmac: "40bc87bf7bc4f60ca8967621216fd8767f88a5c141f1e7587ca419aecdbd0a7b",
    client_iv: "2e2a3249423e525aacdf073d45842040",
    server_iv: "54794c33d5ef2774a176bee416abbbbc",
    sid: "7f000001eead2a1d986f2628c023f0f9",
};

impl Capture {
    fn session_keys(&self) -> SessionKeys {
        SessionKeys {
            aes: unhex(self.aes),
            hmac: unhex(self.hmac),
        }
    }

    fn test_cipher(&self, security: TestSecurity) -> TestCipher {
        TestCipher::new(
            &TestKeys::derive(&self.session_keys(), &unhex(self.sid)),
            security,
        )
    }
}

/// A fixed key for the secure modes: the keys of stream 0 of the authenticated capture
/// (authenticated mode) or the encrypted one (encrypted mode), so the captured sender packets
/// in the seeds are genuine under it. `None` for open and mixed mode (no test-packet crypto).
pub fn fixed_test_cipher(mode: SecurityMode) -> Option<TestCipher> {
    let security = mode.test_security()?;
    let capture = if security == TestSecurity::Encrypted {
        &ENCR0
    } else {
        &AUTH0
    };
    Some(capture.test_cipher(security))
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("a hex constant");
    }
    out
}

/// Length of the reflector target's header before the datagram.
pub const REFLECTOR_HEADER: usize = 18;
/// The largest datagram the reflector's socket hands it.
pub const MAX_DATAGRAM: usize = 65_535;

/// Target `reflector`: drives `Reflector::reflect` with a FakeClock.
///
/// Input: flags(1) ttl(1) rx-time(8) clock(8), then the datagram. Flags bits 0–1 pick the mode
/// (open, mixed, authenticated, encrypted; the secure modes use [`fixed_test_cipher`]), bit 2 a
/// foreign source address, bit 3 whether the TTL is known, bit 4 the IPv4-mapped form of the
/// peer. The datagram is reflected twice. Each success is at least the reflector base and at
/// most max(datagram, base) long, and parses back (after `open_reflected` in the secure modes)
/// with the sender's sequence number, T2, T3, TTL and the reflector's own count. Returns the
/// number of successful reflections (0, 1 or 2).
pub fn reflector(data: &[u8]) -> u32 {
    if data.len() < REFLECTOR_HEADER {
        return 0;
    }
    let (head, datagram) = data.split_at(REFLECTOR_HEADER);
    let datagram = &datagram[..datagram.len().min(MAX_DATAGRAM)];
    let flags = head[0];
    let mode = MODES[usize::from(flags & 3)];
    let foreign = flags & 4 != 0;
    let ttl = (flags & 8 != 0).then_some(head[1]);
    let from = match (foreign, flags & 16 != 0) {
        (true, _) => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        (false, true) => IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()),
        (false, false) => PEER,
    };
    let at = Timestamp(u64::from_be_bytes(
        head[2..10].try_into().expect("8 octets"),
    ));
    let clock = FakeClock::at(Timestamp(u64::from_be_bytes(
        head[10..18].try_into().expect("8 octets"),
    )));
    let layout = mode.test_layout();
    let (s, r) = (layout.sender, layout.reflector);
    let mut reflector = Reflector::new(layout, fixed_test_cipher(mode), PEER);
    let mut out = vec![0u8; MAX_DATAGRAM + TestLayout::AUTHENTICATED.reflector.base];
    let mut reflected = 0u32;
    for _ in 0..2 {
        let mut rx = datagram.to_vec();
        let len = rx.len();
        let result = reflector.reflect(
            Received {
                bytes: &mut rx,
                from,
                ttl,
                at,
            },
            &clock,
            &mut out,
        );
        match result {
            Ok(n) => {
                assert!(!foreign, "reflected a datagram from a foreign address");
                assert!(
                    n >= r.base,
                    "reflection of {n} octets is shorter than the base {}",
                    r.base
                );
                assert!(
                    n <= len.max(r.base),
                    "reflection of {n} octets is longer than max({len}, {})",
                    r.base
                );
                // `rx` now holds the sender packet as the reflector read it (decrypted in place).
                let sender =
                    SenderPacket::parse(&rx, &s).expect("a reflected packet was a sender packet");
                let mut back = out[..n].to_vec();
                if let Some(c) = fixed_test_cipher(mode) {
                    c.open_reflected(&mut back)
                        .expect("our own reflection authenticates");
                }
                let p = ReflectorPacket::parse(&back, &r).expect("a reflection parses");
                assert_eq!(p.sender_seq, sender.seq);
                assert_eq!(p.sender_timestamp, sender.timestamp);
                assert_eq!(p.sender_error_estimate, sender.error_estimate);
                assert_eq!(p.seq, reflected, "the reflector's own sequence number");
                assert_eq!(p.receive_timestamp, at, "T2");
                assert_eq!(p.timestamp, clock.now(), "T3");
                assert_eq!(p.sender_ttl, ttl.unwrap_or(255));
                reflected += 1;
            }
            Err(DropReason::WrongPeer) => {
                assert!(foreign, "the peer's own datagram refused as foreign")
            }
            Err(DropReason::Short { len: got }) => {
                assert!(!foreign);
                assert_eq!(got, len);
                assert!(
                    len < s.base,
                    "{len} octets is not short for a base of {}",
                    s.base
                );
            }
            Err(DropReason::Undersized { .. }) => {
                unreachable!("Undersized from a reflector with no negotiated size")
            }
            Err(DropReason::NoReply) => unreachable!("NoReply is the light reflector's"),
            Err(DropReason::BadHmac) => {
                assert!(
                    !foreign && mode.test_security().is_some(),
                    "BadHmac in {mode} mode"
                );
            }
            Err(DropReason::Oversized) => panic!(
                "Oversized with a {}-octet output buffer for {len} octets",
                out.len()
            ),
        }
    }
    reflected
}

/// Target `cli_values`: the first octet picks the parser (modulo 6); the rest is the value,
/// as (lossy) UTF-8, or for `Cli::try_from_args` the argv, NUL-separated, any bytes.
pub fn cli_values(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(body);
    let s: &str = &text;
    match which % 6 {
        0 => {
            if let Ok(d) = twamp::config::parse_duration(s) {
                assert!(d.as_secs_f64() <= 1e9, "{s:?} -> {d:?}");
            }
        }
        1 => {
            if let Ok((host, port)) = twamp::config::split_host_port(s, 862) {
                assert!(s.contains(host.as_str()), "{s:?} -> host {host:?}");
                if !s.contains(':') && !s.starts_with('[') {
                    assert_eq!((host.as_str(), port), (s, 862));
                }
            }
        }
        2 => {
            if let Ok((lo, hi)) = twamp::config::parse_port_range(s) {
                assert!(lo != 0 && lo <= hi, "{s:?} -> {lo}-{hi}");
            }
        }
        3 => {
            if let Ok(k) = twamp::config::KeyFile::parse(s) {
                assert!(k.len() <= s.lines().count());
                assert_eq!(k.single_identity().is_some(), k.len() == 1);
                if let Some(id) = k.single_identity() {
                    assert!(k.get(id).is_some());
                }
            }
        }
        4 => {
            if let Ok(list) = control::parse_mode_list(s) {
                assert!(!list.is_empty() && list.len() <= 4);
                assert_eq!(
                    control::modes_of(&list).0.count_ones() as usize,
                    list.len(),
                    "duplicates in {list:?}"
                );
                // Round trip: the canonical names parse back to the same list.
                let names: Vec<&str> = list.iter().map(|m| m.name()).collect();
                assert_eq!(
                    control::parse_mode_list(&names.join(",")).as_ref(),
                    Ok(&list)
                );
            }
        }
        _ => argv(body),
    }
}

#[cfg(unix)]
fn argv(body: &[u8]) {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;

    let mut args = vec![OsString::from("twamp")];
    if !body.is_empty() {
        args.extend(
            body.split(|&b| b == 0)
                .map(|a| OsStr::from_bytes(a).to_os_string()),
        );
    }
    // The Go-style rewrite is idempotent: a second pass changes nothing.
    let once = twamp::cli::normalize_args(args.clone());
    assert_eq!(twamp::cli::normalize_args(once.clone()), once);
    match twamp::cli::Cli::try_from_args(args) {
        // Validation is pure except for reading a key file: skip the configurations that name
        // one (a path from the fuzzer could be a FIFO or /dev/stdin).
        Ok(cli) if cli.keyfile.is_none() => {
            let _ = twamp::config::Mode::from_cli(&cli);
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

#[cfg(not(unix))]
fn argv(body: &[u8]) {
    let args = std::iter::once("twamp".to_string()).chain(
        String::from_utf8_lossy(body)
            .split('\0')
            .map(str::to_string),
    );
    let _ = twamp::cli::Cli::try_from_args(args);
}

/// Target `crypto`: the control-stream and test-packet ciphers with a fixed key, on arbitrary
/// bytes.
///
/// Octet 0: bit 0 picks the part (0: `ControlCipher`, 1: `TestCipher`), bit 1 the key (stream 0
/// of the authenticated or the encrypted capture), bit 2 for `ControlCipher` the role.
///
/// `ControlCipher`: the rest is a stream of messages, each a length octet then that many
/// octets, received as the Server (the chain starts at Client-IV) or as the Control-Client (at
/// Server-IV, and the first message is Server-Start's encrypted block: decrypted and fed to
/// the HMAC unchecked). Each message is decrypted (the first block alone, then the rest, as the
/// Server does) and verified. Lengths that are not whole blocks are `Length` errors that change
/// nothing. `verify` succeeds exactly when the bytes are genuine: when a peer sealing the
/// decrypted message on the same chain would have sent these very bytes.
///
/// `TestCipher`: the rest is one datagram, opened as a Session-Sender packet and as a reflected
/// packet in the key's mode. Short ones are `Length` errors; a failed open leaves the datagram
/// as it was; a successful one is genuine (sealing the plaintext gives back the datagram);
/// and sealing the datagram as plaintext then opening it gives it back.
///
/// Returns how many messages verified and packets opened (every one in the seeds should).
pub fn crypto(data: &[u8]) -> usize {
    let Some((&flags, rest)) = data.split_first() else {
        return 0;
    };
    let capture = if flags & 2 != 0 { &ENCR0 } else { &AUTH0 };
    if flags & 1 == 0 {
        control_stream(capture, flags & 4 != 0, rest)
    } else {
        let security = if flags & 2 != 0 {
            TestSecurity::Encrypted
        } else {
            TestSecurity::Authenticated
        };
        test_packet_crypto(&capture.test_cipher(security), rest)
    }
}

/// What the receive HMAC was fed (Server-Start's block) and has not yet covered by a verify.
#[derive(Clone, Copy)]
enum Fed {
    Nothing,
    /// One block: the chain before it, and its plaintext.
    Block([u8; 16], [u8; 16]),
    /// Something the oracle does not model (a longer feed, or the chain moved since).
    Unknown,
}

fn control_stream(capture: &Capture, client: bool, mut rest: &[u8]) -> usize {
    use twamp::crypto::Error;

    let keys = capture.session_keys();
    let (client_iv, server_iv): ([u8; 16], [u8; 16]) =
        (unhex(capture.client_iv), unhex(capture.server_iv));
    // We receive on the peer's send chain.
    let (send_iv, recv_iv) = if client {
        (client_iv, server_iv)
    } else {
        (server_iv, client_iv)
    };
    let mut us = ControlCipher::new(&keys, send_iv, recv_iv);
    // The receive chain's state (the last ciphertext block decrypted), to start oracles on.
    let mut chain = recv_iv;
    let mut fed = Fed::Nothing;
    let mut first = true;
    let mut verified_count = 0;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        let (wire, tail) = tail.split_at(len);
        rest = tail;
        let whole = len % 16 == 0;
        let mut msg = wire.to_vec();
        if std::mem::take(&mut first) && client {
            // Server-Start's encrypted tail: decrypted and fed to the HMAC, not verified.
            match us.decrypt(&mut msg) {
                Ok(()) => {
                    assert!(whole);
                    us.feed_recv(&msg);
                    if len > 0 {
                        fed = match <[u8; 16]>::try_from(&msg[..]) {
                            Ok(block) => Fed::Block(chain, block),
                            Err(_) => Fed::Unknown,
                        };
                        chain = wire[len - 16..].try_into().expect("16 octets");
                    }
                }
                Err(e) => {
                    assert_eq!(
                        e,
                        Error::Length {
                            need: len.next_multiple_of(16),
                            got: len
                        }
                    );
                    assert_eq!(msg, wire, "a refused decrypt changed the buffer");
                }
            }
            continue;
        }
        // Decrypt as the Server does: the first block (to learn the command), then the rest.
        let split = len.min(16);
        let decrypted = us
            .decrypt(&mut msg[..split])
            .and_then(|()| us.decrypt(&mut msg[split..]));
        let verified = us.verify(&msg);
        if let Err(e) = decrypted {
            assert!(!whole, "decrypt refused {len} octets: {e:?}");
            // Longer than a block: the first block went through, the rest was refused.
            let moved = if len > 16 { 16 } else { 0 };
            let got = len - moved;
            let need = got.next_multiple_of(16);
            assert_eq!(e, Error::Length { need, got });
            assert_eq!(
                msg[moved..],
                wire[moved..],
                "a refused decrypt changed the buffer"
            );
            assert_eq!(
                verified,
                Err(Error::Length {
                    need: len.next_multiple_of(16),
                    got: len
                })
            );
            if len > 16 {
                // The first block was decrypted: the chain moved, the oracle's replay is off.
                chain = wire[..16].try_into().expect("16 octets");
                if let Fed::Block(..) = fed {
                    fed = Fed::Unknown;
                }
            }
            continue;
        }
        assert!(whole, "decrypted {len} octets");
        if len < 16 {
            assert_eq!(verified, Err(Error::Length { need: 16, got: len }));
            continue;
        }
        // The oracle: a peer at the same point of the chain seals the plaintext we decrypted;
        // the bytes are genuine when it would have sent exactly them.
        let genuine = match std::mem::replace(&mut fed, Fed::Nothing) {
            Fed::Unknown => None,
            Fed::Nothing => Some(sealed_by_peer(&keys, chain, None, &msg) == wire),
            Fed::Block(before, block) => {
                Some(sealed_by_peer(&keys, before, Some(block), &msg) == wire)
            }
        };
        match (verified, genuine) {
            (Ok(()), Some(false)) => {
                panic!("verify accepted {len} octets that the peer would not have sent")
            }
            (Err(Error::BadHmac), Some(true)) => {
                panic!("verify refused a genuine {len}-octet message")
            }
            (Ok(()), _) => verified_count += 1,
            (Err(Error::BadHmac), _) => {}
            (Err(e), _) => panic!("verify of {len} octets in whole blocks: {e:?}"),
        }
        chain = wire[len - 16..].try_into().expect("16 octets");
    }
    verified_count
}

/// What a peer whose send chain stands at `iv` sends for `plain` (its HMAC field ignored),
/// after sending `unmacced` (Server-Start's block) first if given.
fn sealed_by_peer(
    keys: &SessionKeys,
    iv: [u8; 16],
    unmacced: Option<[u8; 16]>,
    plain: &[u8],
) -> Vec<u8> {
    let mut peer = ControlCipher::new(keys, iv, [0; 16]);
    if let Some(mut block) = unmacced {
        peer.encrypt_unmacced(&mut block).expect("one block");
    }
    let mut sealed = plain.to_vec();
    peer.seal(&mut sealed).expect("whole blocks, at least one");
    sealed
}

fn test_packet_crypto(cipher: &TestCipher, datagram: &[u8]) -> usize {
    let mut opened = 0;
    type Seal = fn(&TestCipher, &mut [u8]) -> Result<(), twamp::crypto::Error>;
    let ops: [(Seal, Seal, usize); 2] = [
        (
            TestCipher::open_sender,
            TestCipher::seal_sender,
            TestCipher::SENDER_BASE,
        ),
        (
            TestCipher::open_reflected,
            TestCipher::seal_reflected,
            TestCipher::REFLECTOR_BASE,
        ),
    ];
    for (open, seal, base) in ops {
        let mut pkt = datagram.to_vec();
        match open(cipher, &mut pkt) {
            Ok(()) => {
                let mut again = pkt.clone();
                seal(cipher, &mut again).expect("a packet open accepted can be sealed");
                assert_eq!(
                    again, datagram,
                    "open accepted a packet that is not genuine"
                );
                opened += 1;
            }
            Err(twamp::crypto::Error::Length { need, got }) => {
                assert_eq!((need, got), (base, datagram.len()));
                assert_eq!(pkt, datagram, "a refused open changed the packet");
            }
            Err(twamp::crypto::Error::BadHmac) => {
                assert_eq!(pkt, datagram, "a refused open changed the packet")
            }
            Err(e) => panic!("open: {e:?}"),
        }
        // seal -> open round trip with the datagram as plaintext.
        let mut sealed = datagram.to_vec();
        match seal(cipher, &mut sealed) {
            Ok(()) => {
                assert_eq!(sealed[base..], datagram[base..], "seal touched the padding");
                open(cipher, &mut sealed).expect("our own sealed packet opens");
                // The HMAC field is not part of the plaintext: compare everything else.
                let hmac_at = base - 16;
                assert_eq!(
                    sealed[..hmac_at],
                    datagram[..hmac_at],
                    "seal -> open changed the plaintext"
                );
                assert_eq!(sealed[base..], datagram[base..]);
            }
            Err(e) => {
                assert_eq!(
                    e,
                    twamp::crypto::Error::Length {
                        need: base,
                        got: datagram.len()
                    }
                );
                assert_eq!(sealed, datagram, "a refused seal changed the packet");
            }
        }
    }
    opened
}

/// The HMAC key of the `stamp` target's authenticated runs (any octets will do).
pub const STAMP_KEY: &[u8] = b"twamp-fuzz stamp key, 32 octets";

/// Octets before the datagram in a `stamp` input.
pub const STAMP_HEADER: usize = 4;

/// Target `stamp`: the STAMP / TWAMP-Light parsers and the light reflector.
///
/// Header: flags, TOS, TTL, source port selector. Flags bit 0 authenticated mode, 1
/// stateless, 2 TTL known, 3 TOS known, 4 IPv6 source, 5 answer short TWAMP-Light, 6 honour
/// CoS, 7 "genuine": the reflector and the sender have the key, and before reflecting the base
/// HMAC (authenticated) and the first HMAC TLV are made right, so the fuzzer reaches the paths
/// behind the MACs. The rest (≤ 65535) is the datagram.
///
/// Asserts: the TLV walk covers the area exactly; the STAMP parsers fail exactly below the base
/// and round-trip otherwise; `LightReflector::reflect` (twice, same sender) never says
/// `Oversized`, is `Short` exactly under 14 (112 authenticated), `WouldAmplify` only for a
/// 14..40-octet unauthenticated datagram, `BadHmac` only in authenticated mode and never on a
/// genuine one; a reply is never longer than the datagram (but the opt-in 41-octet base), keeps
/// its length for STAMP, parses back with the sender's fields, T2, T3, TTL (255 when unknown),
/// the right sequence numbers for the mode, and is read by `LightSender::parse_reply` without a
/// panic. Returns how many of the two were reflected.
pub fn stamp(data: &[u8]) -> u32 {
    use std::net::SocketAddr;
    use twamp::light::sender::{Format, LightSender, SenderConfig};
    use twamp::light::{
        DropReason as LightDrop, LightConfig, LightKey, LightReceived, LightReflector, SeqMode,
    };
    use twamp::wire::stamp::{SessionReflectorPacket, SessionSenderPacket, StampMode};
    use twamp::wire::tlv::{Entry, Tlvs};

    if data.len() < STAMP_HEADER {
        return 0;
    }
    let (head, datagram) = data.split_at(STAMP_HEADER);
    let datagram = &datagram[..datagram.len().min(65_535)];
    let flags = head[0];
    let mode = if flags & 1 != 0 {
        StampMode::Authenticated
    } else {
        StampMode::Unauthenticated
    };
    let stateless = flags & 2 != 0;
    let ttl = (flags & 4 != 0).then_some(head[2]);
    let tos = (flags & 8 != 0).then_some(head[1]);
    let genuine = flags & 128 != 0;
    let port = 1024 + u16::from(head[3]);
    let from: SocketAddr = if flags & 16 != 0 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            port,
        )
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), port)
    };

    // The TLV walk, from every plausible start: contiguous, covering, never panicking.
    for start in [14usize, 41, 44, 112] {
        let Some(area) = datagram.get(start..) else {
            continue;
        };
        let mut at = 0;
        for e in Tlvs::new(area) {
            assert_eq!(e.offset(), at, "TLV walk skipped octets");
            at = match e {
                Entry::Known(t) | Entry::Unknown(t) | Entry::BadLength(t) => t.end(),
                Entry::Truncated { remaining, .. } => at + remaining,
            };
        }
        assert_eq!(at, area.len(), "TLV walk did not cover the area");
    }
    // The STAMP base parsers.
    for m in [StampMode::Unauthenticated, StampMode::Authenticated] {
        let base = m.base();
        match SessionSenderPacket::parse(datagram, m) {
            Err(e) => {
                assert!(datagram.len() < base);
                assert_eq!(
                    e,
                    twamp::wire::Error::Truncated {
                        need: base,
                        got: datagram.len()
                    }
                );
            }
            Ok(p) => {
                let mut a = datagram.to_vec();
                p.emit(&mut a, m).expect("long enough");
                assert_eq!(SessionSenderPacket::parse(&a, m), Ok(p));
                assert_eq!(&a[base..], &datagram[base..], "emit wrote past the base");
            }
        }
        match SessionReflectorPacket::parse(datagram, m) {
            Err(_) => assert!(datagram.len() < base),
            Ok(p) => {
                let mut a = vec![0xa5; base];
                p.emit(&mut a, m).expect("long enough");
                assert_eq!(SessionReflectorPacket::parse(&a, m), Ok(p));
                let mut b = vec![0u8; base];
                p.emit(&mut b, m).expect("long enough");
                assert_eq!(a, b, "emit left octets unwritten");
            }
        }
    }

    let key = genuine.then(|| LightKey::new(STAMP_KEY));
    let config = LightConfig {
        seq_mode: if stateless {
            SeqMode::Stateless
        } else {
            SeqMode::Stateful
        },
        mode,
        key: key.clone(),
        answer_short_twamp_light: flags & 32 != 0,
        honour_cos: flags & 64 != 0,
        ..LightConfig::default()
    };
    let answer_short = config.answer_short_twamp_light;
    let mut reflector = LightReflector::new(config);
    let mut rx = datagram.to_vec();
    if let Some(k) = &key {
        k.seal_tlv_hmac(&mut rx, mode.base());
        if mode == StampMode::Authenticated {
            k.seal_base(&mut rx);
        }
    }
    let len = rx.len();
    let at = Timestamp::new(0x83aa_7e81, 0x4000_0000);
    let clock = FakeClock::at(Timestamp::new(0x83aa_7e81, 0x8000_0000));
    let mut out = vec![0u8; 65_535 + 112];
    let mut reflected = 0u32;
    let mut first_seq = None;
    let sender_seq = rx
        .get(..4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
    for _ in 0..2 {
        let received = LightReceived {
            bytes: &rx,
            from,
            local_port: 862,
            local_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ttl,
            tos,
            at,
        };
        match reflector.reflect(received, &clock, &mut out) {
            Ok(n) => {
                reflected += 1;
                let limit = if answer_short { len.max(41) } else { len };
                assert!(n <= limit, "reply of {n} octets to a datagram of {len}");
                assert!(n >= 41, "reply of {n} octets is shorter than any base");
                let stamp = mode == StampMode::Authenticated
                    || (len >= 44 && SessionSenderPacket::mbz_is_zero(&rx));
                if stamp {
                    assert_eq!(n, len, "STAMP reply not symmetric");
                }
                let reply = &out[..n];
                // Both STAMP and TWAMP reflected layouts agree on what TWAMP reads.
                let layout = if mode == StampMode::Authenticated {
                    TestLayout::AUTHENTICATED.reflector
                } else {
                    TestLayout::OPEN.reflector
                };
                let p = ReflectorPacket::parse(reply, &layout).expect("a reply parses");
                assert_eq!(Some(p.sender_seq), sender_seq);
                assert_eq!(p.receive_timestamp, at);
                assert_eq!(p.timestamp, clock.now());
                assert_eq!(p.sender_ttl, ttl.unwrap_or(255));
                if stateless {
                    assert_eq!(Some(p.seq), sender_seq, "stateless copies the sender's");
                } else {
                    let want = first_seq.map_or(0, |s: u32| s + 1);
                    assert_eq!(p.seq, want, "stateful counts from 0");
                    first_seq = Some(p.seq);
                }
                if mode == StampMode::Authenticated {
                    assert!(
                        LightKey::new(STAMP_KEY).verify_base(reply),
                        "our own reply authenticates"
                    );
                }
                // The reply's TLV area walks like any other.
                let area = reply.get(mode.base()..).unwrap_or(&[]);
                assert!(Tlvs::new(area).count() <= area.len());
            }
            Err(LightDrop::Short { len: l }) => {
                assert_eq!(l, len);
                assert!(len < 14 || (mode == StampMode::Authenticated && len < 112));
            }
            Err(LightDrop::WouldAmplify { len: l, need }) => {
                assert_eq!((l, need), (len, 41));
                assert!(mode == StampMode::Unauthenticated && (14..41).contains(&len));
                assert!(!answer_short);
            }
            Err(LightDrop::BadHmac) => {
                assert_eq!(mode, StampMode::Authenticated);
                assert!(!genuine, "a genuine packet failed its HMAC");
            }
            Err(LightDrop::NoReplyRequested) => assert!(len > 44),
            Err(LightDrop::Oversized) => panic!("Oversized with a 64 KiB buffer"),
        }
    }
    // The Session-Sender's reader, on the datagram as if it were a reply.
    for format in [
        Format::TwampLight,
        Format::Stamp(StampMode::Unauthenticated),
        Format::Stamp(StampMode::Authenticated),
    ] {
        let s = LightSender::new(SenderConfig {
            format,
            ssid: 0,
            tlvs: Vec::new(),
            packet_len: 0,
            key: (format != Format::TwampLight).then(|| LightKey::new(STAMP_KEY)),
        })
        .expect("a valid sender config");
        if let Ok(p) = s.parse_reply(datagram) {
            let _ = p.tlvs_usable();
        }
    }
    reflected
}
