use super::sender::{Format, LightSender, SenderConfig, TlvIntegrity, TlvRequest};
use super::*;
use crate::time::{ErrorEstimate, FakeClock};
use crate::wire::tlv::Flags;

const FROM: &str = "192.0.2.10:40000";
const LOCAL: &str = "192.0.2.1";

fn t2() -> Timestamp {
    Timestamp::new(0x83aa_7e81, 0x4000_0000)
}

fn clock() -> FakeClock {
    FakeClock::at(Timestamp::new(0x83aa_7e81, 0x8000_0000))
}

fn rx(bytes: &[u8]) -> LightReceived<'_> {
    LightReceived {
        bytes,
        from: FROM.parse().unwrap(),
        local_port: 862,
        local_ip: Some(LOCAL.parse().unwrap()),
        ttl: Some(61),
        tos: Some(0xb9),
        at: t2(),
    }
}

fn reflector(seq_mode: SeqMode) -> LightReflector {
    LightReflector::new(LightConfig {
        seq_mode,
        ..LightConfig::default()
    })
}

/// Reflects into a 0xa5-filled buffer and a zeroed one; both must give the same reply (every
/// octet of it is written), no longer than the request.
fn reflect(
    r: &mut LightReflector,
    rx: LightReceived<'_>,
    clock: &FakeClock,
) -> Result<Vec<u8>, DropReason> {
    let mut dirty = vec![0xa5u8; 70_000];
    let before = (r.senders.clone(), r.counters, r.last_sweep);
    let n = r.reflect(rx, clock, &mut dirty)?;
    let after = (r.senders.clone(), r.counters, r.last_sweep);
    // Replay on a zeroed buffer from the same state.
    (r.senders, r.counters, r.last_sweep) = before;
    let mut clean = vec![0u8; 70_000];
    assert_eq!(r.reflect(rx, clock, &mut clean), Ok(n));
    assert_eq!(dirty[..n], clean[..n], "reflect left octets unwritten");
    (r.senders, r.counters, r.last_sweep) = after;
    assert!(
        n <= rx.bytes.len() || r.config.answer_short_twamp_light,
        "amplifier: {n} > {}",
        rx.bytes.len()
    );
    dirty.truncate(n);
    Ok(dirty)
}

#[rustfmt::skip]
static STAMP_REQUEST: [u8; 82] = [
    0x00, 0x00, 0x00, 0x05,                         // Sequence Number 5
    0x83, 0xaa, 0x7e, 0x81, 0x00, 0x00, 0x00, 0x00, // Timestamp (T1)
    0x00, 0x01,                                     // Error Estimate
    0x12, 0x34,                                     // SSID
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       // MBZ (28)
    0x80, 0x04, 0x00, 0x04,                         // U, Class of Service, Length 4
    0xb8, 0x00, 0x00, 0x00,                         //   DSCP1 46, DSCP2 0, ECN 0, RP 0
    0x80, 0x05, 0x00, 0x0c,                         // U, Direct Measurement, Length 12
    0x00, 0x00, 0x00, 0x09,                         //   S_TxC 9
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //   R_RxC, R_TxC
    0x80, 0x03, 0x00, 0x04,                         // U, Timestamp Information, Length 4
    0x00, 0x00, 0x00, 0x00,                         //   to be filled
    0x80, 0x63, 0x00, 0x02,                         // U, Type 99 (unassigned), Length 2
    0xde, 0xad,                                     //   Value
];

#[rustfmt::skip]
static STAMP_REPLY: [u8; 82] = [
    0x00, 0x00, 0x00, 0x00,                         // Sequence Number: the reflector's first
    0x83, 0xaa, 0x7e, 0x81, 0x80, 0x00, 0x00, 0x00, // Timestamp (T3, the clock)
    0x00, 0x01,                                     // Error Estimate (the clock's)
    0x12, 0x34,                                     // SSID, echoed
    0x83, 0xaa, 0x7e, 0x81, 0x40, 0x00, 0x00, 0x00, // Receive Timestamp (T2, rx.at)
    0x00, 0x00, 0x00, 0x05,                         // Session-Sender Sequence Number
    0x83, 0xaa, 0x7e, 0x81, 0x00, 0x00, 0x00, 0x00, // Session-Sender Timestamp
    0x00, 0x01,                                     // Session-Sender Error Estimate
    0x00, 0x00,                                     // MBZ
    0x3d,                                           // Session-Sender TTL 61
    0x00, 0x00, 0x00,                               // MBZ
    0x00, 0x04, 0x00, 0x04,                         // Class of Service, understood
    0xba, 0xe5, 0x00, 0x00,                         //   DSCP1 46, DSCP2 46, ECN 1, RP 1
    0x00, 0x05, 0x00, 0x0c,                         // Direct Measurement, understood
    0x00, 0x00, 0x00, 0x09,                         //   S_TxC 9, copied
    0x00, 0x00, 0x00, 0x01,                         //   R_RxC 1
    0x00, 0x00, 0x00, 0x01,                         //   R_TxC 1
    0x00, 0x03, 0x00, 0x04,                         // Timestamp Information, understood
    0x05, 0x02, 0x05, 0x02,                         //   local free-running, SW local (in and out)
    0x80, 0x63, 0x00, 0x02,                         // Type 99: U stays set
    0xde, 0xad,                                     //   Value, copied
];

#[test]
fn stamp_vector_with_tlvs() {
    let mut r = reflector(SeqMode::Stateful);
    let reply = reflect(&mut r, rx(&STAMP_REQUEST), &clock()).unwrap();
    assert_eq!(reply, STAMP_REPLY);
    assert_eq!(r.reply_tos(), Some(0xb8), "received DSCP, RP = 1");
    let c = r.counters();
    assert_eq!((c.reflected, c.stamp, c.tlv_unrecognized), (1, 1, 1));
    let key = SenderKey {
        addr: "192.0.2.10".parse().unwrap(),
        port: 40000,
        ssid: 0x1234,
    };
    let s = r.sender(&key).unwrap();
    assert_eq!((s.next_seq, s.received, s.transmitted), (1, 1, 1));
}

#[test]
fn cos_honoured_on_request() {
    let mut r = LightReflector::new(LightConfig {
        honour_cos: true,
        ..LightConfig::default()
    });
    let reply = reflect(&mut r, rx(&STAMP_REQUEST), &clock()).unwrap();
    assert_eq!(&reply[48..50], &[0xba, 0xe4], "RP = 0");
    assert_eq!(r.reply_tos(), Some(46 << 2));
    let mut unknown = rx(&STAMP_REQUEST);
    unknown.tos = None;
    let reply = reflect(&mut r, unknown, &clock()).unwrap();
    assert_eq!(&reply[48..50], &[0xb8, 0x00], "nothing received to copy");
}

#[rustfmt::skip]
static TWAMP_LIGHT_REQUEST: [u8; 41] = [
    0x00, 0x00, 0x00, 0x07,                         // Sequence Number 7
    0xee, 0xad, 0x29, 0xfc, 0x42, 0x07, 0x3d, 0xe1, // Timestamp
    0x00, 0x01,                                     // Error Estimate
    0xdf, 0x96, 0x94, 0xd3, 0x9c, 0x64, 0x0d, 0x07, 0xa1, 0x30, 0x8d, 0x3c, 0x2d, 0x51,
    0x6c, 0x96, 0x61, 0xe8, 0xb3, 0xf2, 0x21, 0x48, 0x15, 0x8b, 0x90, 0x2d, 0x7c,
                                                    // Packet Padding (27, random: twping's)
];

#[test]
fn twamp_light_vector() {
    let mut r = reflector(SeqMode::Stateful);
    let reply = reflect(&mut r, rx(&TWAMP_LIGHT_REQUEST), &clock()).unwrap();
    #[rustfmt::skip]
    let want: [u8; 41] = [
        0x00, 0x00, 0x00, 0x00,                         // Sequence Number
        0x83, 0xaa, 0x7e, 0x81, 0x80, 0x00, 0x00, 0x00, // Timestamp (T3)
        0x00, 0x01,                                     // Error Estimate
        0x00, 0x00,                                     // MBZ (TWAMP): no SSID here
        0x83, 0xaa, 0x7e, 0x81, 0x40, 0x00, 0x00, 0x00, // Receive Timestamp (T2)
        0x00, 0x00, 0x00, 0x07,                         // Sender Sequence Number
        0xee, 0xad, 0x29, 0xfc, 0x42, 0x07, 0x3d, 0xe1, // Sender Timestamp
        0x00, 0x01,                                     // Sender Error Estimate
        0x00, 0x00,                                     // MBZ
        0x3d,                                           // Sender TTL
    ];
    assert_eq!(reply, want, "41 in, 41 out: no padding left to reuse");
    assert_eq!(r.counters().twamp_light, 1);
    // The random padding is not an SSID: the sender is keyed with SSID 0.
    let key = SenderKey {
        addr: "192.0.2.10".parse().unwrap(),
        port: 40000,
        ssid: 0,
    };
    assert!(r.sender(&key).is_some());

    // Longer: the padding is the sender's, shortened by 27 (RFC 5357 §4.2.1).
    let mut long = TWAMP_LIGHT_REQUEST.to_vec();
    long.extend((0..100u8).map(|i| i.wrapping_mul(7) | 1));
    let reply = reflect(&mut r, rx(&long), &clock()).unwrap();
    assert_eq!(reply.len(), long.len());
    assert_eq!(&reply[41..], &long[14..long.len() - 27]);
    assert_eq!(&reply[..4], &[0, 0, 0, 1], "same sender, next number");
}

#[test]
fn short_twamp_light_is_never_amplified_unless_asked() {
    let mut r = reflector(SeqMode::Stateful);
    for n in 0..14 {
        assert_eq!(
            reflect(&mut r, rx(&TWAMP_LIGHT_REQUEST[..n]), &clock()),
            Err(DropReason::Short { len: n })
        );
    }
    for n in 14..41 {
        assert_eq!(
            reflect(&mut r, rx(&TWAMP_LIGHT_REQUEST[..n]), &clock()),
            Err(DropReason::WouldAmplify { len: n, need: 41 })
        );
    }
    assert_eq!(r.counters().short, 14);
    assert_eq!(r.counters().would_amplify, 27);
    assert_eq!(r.senders(), 0, "nothing remembered of a dropped datagram");

    let mut r = LightReflector::new(LightConfig {
        answer_short_twamp_light: true,
        ..LightConfig::default()
    });
    let reply = reflect(&mut r, rx(&TWAMP_LIGHT_REQUEST[..14]), &clock()).unwrap();
    assert_eq!(reply.len(), 41, "RFC 5357 §4.2.1: the reflected base");
    let p = ReflectorPacket::parse(&reply, &TestLayout::OPEN.reflector).unwrap();
    assert_eq!((p.sender_seq, p.sender_ttl), (7, 61));
}

#[test]
fn every_truncation_of_a_stamp_packet() {
    for mode in [SeqMode::Stateful, SeqMode::Stateless] {
        let mut r = reflector(mode);
        for n in 0..=STAMP_REQUEST.len() {
            let got = reflect(&mut r, rx(&STAMP_REQUEST[..n]), &clock());
            match n {
                0..=13 => assert_eq!(got, Err(DropReason::Short { len: n })),
                // Below 44 the zero MBZ do not make it STAMP: TWAMP-Light, too short.
                14..=40 => assert!(matches!(got, Err(DropReason::WouldAmplify { .. }))),
                41..=43 => assert_eq!(got.unwrap().len(), n),
                _ => {
                    let reply = got.unwrap();
                    assert_eq!(reply.len(), n);
                    assert_eq!(&reply[14..16], &[0x12, 0x34], "n={n}");
                }
            }
        }
        // The cut TLVs were flagged as malformed, never a panic.
        assert!(r.counters().tlv_malformed > 0);
    }
}

#[test]
fn malformed_tlv_stops_processing_and_is_flagged() {
    let mut req = STAMP_REQUEST[..44].to_vec();
    #[rustfmt::skip]
    req.extend_from_slice(&[
        0x80, 0x05, 0x00, 0x03, 1, 2, 3,            // Direct Measurement, Length 3: malformed
        0x80, 0x03, 0x00, 0x04, 0, 0, 0, 0,         // Timestamp Information: not processed
    ]);
    let mut r = reflector(SeqMode::Stateful);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(reply[44], Flags::M);
    assert_eq!(&reply[51..], &req[51..], "the rest is copied as received");
    assert_eq!(r.counters().tlv_malformed, 1);

    // Length past the end of the packet.
    let mut req = STAMP_REQUEST[..44].to_vec();
    req.extend_from_slice(&[0x80, 0x03, 0x00, 0x08, 1, 2]);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(reply[44], Flags::M);
    assert_eq!(&reply[45..], &req[45..]);

    // Follow-Up Telemetry with a bad Length: the fields present are zeroed (RFC 8972 §4.7).
    let mut req = STAMP_REQUEST[..44].to_vec();
    req.extend_from_slice(&[0x80, 0x07, 0x00, 0x06, 9, 9, 9, 9, 9, 9]);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(&reply[44..], &[Flags::M, 7, 0, 6, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn zero_padding_after_a_stamp_base_is_left_alone() {
    let mut req = STAMP_REQUEST[..44].to_vec();
    req.resize(200, 0);
    let mut r = reflector(SeqMode::Stateful);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert!(reply[44..].iter().all(|&b| b == 0));
    assert_eq!(r.counters().tlv_unrecognized, 0);
}

#[test]
fn stateful_and_stateless_numbering() {
    let mut stateful = reflector(SeqMode::Stateful);
    let mut stateless = reflector(SeqMode::Stateless);
    let mut req = STAMP_REQUEST[..44].to_vec();
    for (i, seq) in [10u32, 11, 13, 12].into_iter().enumerate() {
        req[..4].copy_from_slice(&seq.to_be_bytes());
        let a = reflect(&mut stateful, rx(&req), &clock()).unwrap();
        let b = reflect(&mut stateless, rx(&req), &clock()).unwrap();
        assert_eq!(&a[..4], &(i as u32).to_be_bytes(), "its own count");
        assert_eq!(&b[..4], &seq.to_be_bytes(), "a copy of the sender's");
        assert_eq!(&a[24..28], &seq.to_be_bytes());
    }
    // Another port, another SSID, another sender: each starts from 0.
    let mut other = rx(&req);
    other.from = "192.0.2.10:40001".parse().unwrap();
    assert_eq!(
        &reflect(&mut stateful, other, &clock()).unwrap()[..4],
        &[0; 4]
    );
    req[14] = 0x99;
    assert_eq!(
        &reflect(&mut stateful, rx(&req), &clock()).unwrap()[..4],
        &[0; 4]
    );
    // The IPv4-mapped form of a sender is that sender.
    req[14] = 0x12;
    let mut mapped = rx(&req);
    mapped.from = "[::ffff:192.0.2.10]:40000".parse().unwrap();
    assert_eq!(
        &reflect(&mut stateful, mapped, &clock()).unwrap()[..4],
        &[0, 0, 0, 4]
    );
    assert_eq!(stateful.senders(), 3);
}

#[test]
fn unknown_ttl_is_255_and_ipv6_works() {
    let mut r = reflector(SeqMode::Stateful);
    let mut x = rx(&STAMP_REQUEST);
    x.ttl = None;
    x.from = "[2001:db8::1]:5000".parse().unwrap();
    x.local_ip = Some("2001:db8::2".parse().unwrap());
    let reply = reflect(&mut r, x, &clock()).unwrap();
    assert_eq!(reply[40], 255);
}

#[test]
fn idle_senders_are_forgotten() {
    let idle = Duration::from_secs(10);
    let mut r = LightReflector::new(LightConfig {
        idle,
        ..LightConfig::default()
    });
    let c = clock();
    let at = |s: u32| Timestamp::new(1000 + s, 0);
    let req = STAMP_REQUEST[..44].to_vec();
    let mut x = rx(&req);
    x.at = at(0);
    reflect(&mut r, x, &c).unwrap();
    x.at = at(1);
    assert_eq!(&reflect(&mut r, x, &c).unwrap()[..4], &[0, 0, 0, 1]);
    // A second sender keeps talking; the first falls silent.
    let mut req2 = req.clone();
    req2[14] = 0x77;
    let mut y = rx(&req2);
    for s in [4, 8, 12] {
        y.at = at(s);
        reflect(&mut r, y, &c).unwrap();
    }
    assert_eq!(
        r.senders(),
        2,
        "swept at 8 (idle/2 after 0): 7 s silent is not idle yet"
    );
    y.at = at(16);
    reflect(&mut r, y, &c).unwrap();
    assert_eq!(r.counters().senders_expired, 1, "swept at 16: 15 s silent");
    assert_eq!(r.senders(), 1);
    // The first sender is back: a new session, numbered from 0.
    x.at = at(17);
    assert_eq!(&reflect(&mut r, x, &c).unwrap()[..4], &[0; 4]);
    assert_eq!(r.expire(at(100)), 2);
    assert_eq!(r.senders(), 0);
    assert_eq!(r.counters().senders_expired, 3);
}

#[test]
fn at_the_cap_the_longest_idle_is_evicted() {
    let mut r = LightReflector::new(LightConfig {
        max_senders: 2,
        ..LightConfig::default()
    });
    let c = clock();
    let req = STAMP_REQUEST[..44].to_vec();
    let send = |r: &mut LightReflector, port: u16, s: u32| {
        let mut x = rx(&req);
        x.from.set_port(port);
        x.at = Timestamp::new(1000 + s, 0);
        u32::from_be_bytes(reflect(r, x, &c).unwrap()[..4].try_into().unwrap())
    };
    assert_eq!(send(&mut r, 1, 0), 0);
    assert_eq!(send(&mut r, 2, 1), 0);
    assert_eq!(send(&mut r, 1, 2), 1, "port 1 is now the most recent");
    assert_eq!(
        send(&mut r, 3, 3),
        0,
        "port 2, the longest idle, makes room"
    );
    assert_eq!(r.senders(), 2);
    assert_eq!(r.counters().senders_evicted, 1);
    assert_eq!(send(&mut r, 1, 4), 2, "port 1 kept its numbering");
    assert_eq!(send(&mut r, 2, 5), 0, "port 2 starts over");
}

fn key() -> LightKey {
    LightKey::new(b"0123456789abcdef0123456789abcdef")
}

#[test]
fn hmac_sha256_truncated_matches_rfc4231() {
    // RFC 4231 §4.3, Test Case 2, truncated to 128 bits.
    let k = LightKey::new(b"Jefe");
    assert_eq!(
        k.tag(&[b"what do ya ", b"want for nothing?"]),
        [
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
            0x75, 0xc7
        ]
    );
    assert!(k.verify(
        &[b"what do ya want for nothing?"],
        &k.tag(&[b"what do ya want for nothing?"])
    ));
    assert!(!k.verify(&[b"what do ya want for nothing?"], &[0; 16]));
    assert!(!k.verify(&[b"x"], &[0; 15]));
    assert_eq!(format!("{k:?}"), "LightKey { .. }");
}

#[test]
fn key_from_the_key_file() {
    let keys = KeyFile::parse("alice 4a656665\nbob 00ff\n").unwrap();
    let k = LightKey::from_keyfile(&keys, "alice").unwrap();
    assert_eq!(k.tag(&[b"abc"]), LightKey::new(b"Jefe").tag(&[b"abc"]));
    assert!(LightKey::from_keyfile(&keys, "carol").is_none());
}

fn auth_reflector() -> LightReflector {
    LightReflector::new(LightConfig {
        mode: StampMode::Authenticated,
        key: Some(key()),
        ..LightConfig::default()
    })
}

fn auth_sender(tlvs: Vec<TlvRequest>, packet_len: usize) -> LightSender {
    LightSender::new(SenderConfig {
        format: Format::Stamp(StampMode::Authenticated),
        ssid: 0x0042,
        tlvs,
        packet_len,
        key: Some(key()),
    })
    .unwrap()
}

fn build(s: &LightSender, seq: u32) -> Vec<u8> {
    let mut b = vec![0xa5u8; s.packet_len()];
    s.emit(seq, seq + 1, &mut b).unwrap();
    s.stamp(
        &mut b,
        Timestamp::new(0x83aa_7e81, 0),
        ErrorEstimate(0x0001),
    );
    b
}

#[test]
fn authenticated_good_and_bad_hmac() {
    let s = auth_sender(vec![], 0);
    let req = build(&s, 3);
    assert_eq!(req.len(), 112);
    // The base HMAC covers octets 0..96 (RFC 8762 §4.4), checked with the hmac crate directly.
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
    mac.update(&req[..96]);
    assert_eq!(&mac.finalize().into_bytes()[..16], &req[96..112]);

    let mut r = auth_reflector();
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(reply.len(), 112);
    let p = s.parse_reply(&reply).unwrap();
    assert_eq!(
        (p.sender_seq, p.reflector_seq, p.ssid, p.sender_ttl),
        (3, 0, 0x42, 61)
    );
    assert_eq!(p.t2, t2());
    assert_eq!(p.t3, clock().now());

    for i in [0, 20, 95, 96, 111] {
        let mut bad = req.clone();
        bad[i] ^= 1;
        assert_eq!(
            reflect(&mut r, rx(&bad), &clock()),
            Err(DropReason::BadHmac),
            "octet {i}"
        );
    }
    // Octets after the base are not covered by the base HMAC.
    let mut tampered = reply.clone();
    tampered[100] ^= 0x80;
    assert_eq!(s.parse_reply(&tampered), Err(sender::ReplyError::BadHmac));
    assert_eq!(r.counters().bad_hmac, 5);
    assert_eq!(
        reflect(&mut r, rx(&req[..111]), &clock()),
        Err(DropReason::Short { len: 111 })
    );
    // Without a key, nothing verifies.
    let mut keyless = LightReflector::new(LightConfig {
        mode: StampMode::Authenticated,
        ..LightConfig::default()
    });
    assert_eq!(
        reflect(&mut keyless, rx(&req), &clock()),
        Err(DropReason::BadHmac)
    );
}

#[test]
fn authenticated_with_tlvs_and_hmac_tlv() {
    let s = auth_sender(
        vec![TlvRequest::DirectMeasurement, TlvRequest::FollowUpTelemetry],
        200,
    );
    let mut r = auth_reflector();
    let req = build(&s, 0);
    assert_eq!(req.len(), 200);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    let p = s.parse_reply(&reply).unwrap();
    assert_eq!(
        p.tlv_integrity,
        TlvIntegrity::Valid,
        "the reply's HMAC TLV is fresh"
    );
    assert!(p.tlvs_usable());
    let flags: Vec<u8> = Tlvs::new(p.tlvs)
        .map(|e| match e {
            Entry::Known(t) => t.flags.0,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        flags,
        vec![0, 0, 0, 0],
        "DM, FUT, Extra Padding, HMAC all understood"
    );

    // Second packet: Follow-Up Telemetry reports the first reply (stateful).
    let req = build(&s, 1);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    let fut = &reply[112 + 16 + 4..112 + 16 + 20];
    assert_eq!(&fut[..4], &[0; 4], "seq of the previous reply");
    assert_eq!(&fut[4..12], &clock().now().to_bytes(), "its T3");
    assert_eq!(fut[12], value::timestamp_information::METHOD_SW_LOCAL);
    assert_eq!(
        &reply[112 + 4..112 + 16],
        &[0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]
    );

    // A TLV changed after the HMAC TLV was computed: I on every TLV, none processed.
    let mut bad = build(&s, 2);
    bad[112 + 3] = 12; // still Length 12; change S_TxC instead
    bad[112 + 7] ^= 0xff;
    s.stamp(&mut bad, Timestamp::new(1, 0), ErrorEstimate(1)); // base HMAC good again
    let reply = reflect(&mut r, rx(&bad), &clock()).unwrap();
    let flags: Vec<u8> = Tlvs::new(&reply[112..])
        .map(|e| match e {
            Entry::Known(t) => t.flags.0,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(flags.iter().all(|f| f & Flags::I != 0), "{flags:?}");
    assert_eq!(
        &reply[112 + 8..112 + 16],
        &bad[112 + 8..112 + 16],
        "not processed"
    );
    assert_eq!(r.counters().tlv_integrity_failed, 1);
    assert_eq!(
        s.parse_reply(&reply).unwrap().tlv_integrity,
        TlvIntegrity::Invalid
    );
}

#[test]
fn authenticated_tlvs_without_hmac_tlv_fail_integrity() {
    let s = auth_sender(vec![], 0);
    let mut req = build(&s, 0);
    req.extend_from_slice(&[0x80, 0x03, 0x00, 0x04, 0, 0, 0, 0]);
    let mut r = auth_reflector();
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(reply[112], Flags::U | Flags::I);
    assert_eq!(&reply[116..120], &[0; 4]);
    // Only Extra Padding: no HMAC TLV needed (RFC 8972 §4.8).
    let mut req = build(&s, 1);
    req.extend_from_slice(&[0x80, 0x01, 0x00, 0x02, 7, 7]);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(&reply[112..], &[0, 1, 0, 2, 7, 7]);
}

fn open_sender(tlvs: Vec<TlvRequest>, key: Option<LightKey>) -> LightSender {
    LightSender::new(SenderConfig {
        format: Format::Stamp(StampMode::Unauthenticated),
        ssid: 7,
        tlvs,
        packet_len: 0,
        key,
    })
    .unwrap()
}

#[test]
fn hmac_tlv_in_unauthenticated_mode() {
    let s = open_sender(vec![TlvRequest::TimestampInformation], Some(key()));
    let req = build(&s, 0);
    assert_eq!(req.len(), 44 + 8 + 20);
    let mut r = LightReflector::new(LightConfig {
        key: Some(key()),
        ..LightConfig::default()
    });
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(
        s.parse_reply(&reply).unwrap().tlv_integrity,
        TlvIntegrity::Valid
    );
    // A reflector without the key cannot verify it: I everywhere.
    let mut keyless = reflector(SeqMode::Stateful);
    let reply = reflect(&mut keyless, rx(&req), &clock()).unwrap();
    assert_eq!(
        (reply[44], reply[52]),
        (Flags::U | Flags::I, Flags::U | Flags::I)
    );
    let p = s.parse_reply(&reply).unwrap();
    assert!(!p.tlvs_usable());
    // An HMAC TLV followed by a TLV other than Extra Padding is misplaced.
    let mut req2 = req.clone();
    req2.extend_from_slice(&[0x80, 0x03, 0x00, 0x04, 0, 0, 0, 0]);
    let reply = reflect(&mut r, rx(&req2), &clock()).unwrap();
    assert!(Tlvs::new(&reply[44..]).all(|e| matches!(e, Entry::Known(t) if t.flags.i())));
}

#[test]
fn location_answers() {
    let s = open_sender(vec![TlvRequest::Location], None);
    let req = build(&s, 0);
    let mut r = reflector(SeqMode::Stateful);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    #[rustfmt::skip]
    let want: &[u8] = &[
        0x00, 0x02, 0x00, 0x38,                     // Location, understood, Length 56
        0x03, 0x5e, 0x9c, 0x40,                     //   Destination Port 862, Source Port 40000
        0x00, 0x03, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0,   // Source EUI-64: zero (no MAC)
        0x00, 0x05, 0x00, 0x10, 192, 0, 2, 1,       // Destination IPv4 Address
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,         //   MBZ
        0x00, 0x08, 0x00, 0x10, 192, 0, 2, 10,      // Source IPv4 Address
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,         //   MBZ
    ];
    assert_eq!(&reply[44..], want);

    let mut x = rx(&req);
    x.from = "[2001:db8::1]:5000".parse().unwrap();
    x.local_ip = None;
    let reply = reflect(&mut r, x, &clock()).unwrap();
    assert_eq!(reply[44 + 8 + 12 + 1], value::location::DESTINATION_IPV6);
    assert_eq!(
        &reply[44 + 8 + 12 + 4..44 + 8 + 12 + 20],
        &[0; 16],
        "unknown: zeros"
    );
    let src: [u8; 16] = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
    assert_eq!(&reply[44 + 8 + 32 + 4..44 + 8 + 32 + 20], &src);

    // A sub-TLV of an unknown type gets U; a bad one M.
    let mut req = STAMP_REQUEST[..44].to_vec();
    #[rustfmt::skip]
    req.extend_from_slice(&[
        0x80, 0x02, 0x00, 0x0e, 0, 0, 0, 0,         // Location, Length 14
        0x80, 0x33, 0x00, 0x00,                     //   sub-type 51: unknown
        0x80, 0x04, 0x00, 0x02, 0, 0,               //   Destination IP, Length 2: malformed
    ]);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!((reply[44], reply[52], reply[56]), (0, Flags::U, Flags::M));
}

#[test]
fn access_report_destination_node_and_return_path() {
    let s = open_sender(
        vec![
            TlvRequest::AccessReport {
                access_id: 1,
                return_code: 1,
            },
            TlvRequest::AccessReport {
                access_id: 9,
                return_code: 1,
            },
            TlvRequest::DestinationNodeAddress(LOCAL.parse().unwrap()),
            TlvRequest::DestinationNodeAddress("198.51.100.1".parse().unwrap()),
            TlvRequest::ReturnPathControlCode(1),
        ],
        None,
    );
    let req = build(&s, 0);
    let mut r = reflector(SeqMode::Stateful);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    let flags: Vec<u8> = Tlvs::new(&reply[44..])
        .map(|e| match e {
            Entry::Known(t) => t.flags.0,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(flags, vec![0, Flags::U, 0, Flags::U, 0]);
    assert_eq!(
        &reply[48..50],
        &[0x10, 0x01],
        "Access ID and Return Code copied"
    );

    // No reply requested (RFC 9503 §4.1.1): dropped, counted, but received.
    let s = open_sender(vec![TlvRequest::ReturnPathControlCode(0)], None);
    let req = build(&s, 0);
    assert_eq!(
        reflect(&mut r, rx(&req), &clock()),
        Err(DropReason::NoReplyRequested)
    );
    assert_eq!(r.counters().no_reply_requested, 1);
    let k = SenderKey {
        addr: "192.0.2.10".parse().unwrap(),
        port: 40000,
        ssid: 7,
    };
    assert_eq!(
        r.sender(&k).map(|s| (s.received, s.transmitted)),
        Some((2, 1))
    );

    // A Return Address: the reply still goes to the source, U says so.
    let mut req = STAMP_REQUEST[..44].to_vec();
    #[rustfmt::skip]
    req.extend_from_slice(&[
        0x80, 0x0a, 0x00, 0x08,                     // Return Path, Length 8
        0x80, 0x02, 0x00, 0x04, 198, 51, 100, 7,    //   Return Address
        0x80, 0x0a, 0x00, 0x08,                     // A second Return Path: ignored
        0x80, 0x01, 0x00, 0x04, 0, 0, 0, 0,         //   (it would have said "no reply")
    ]);
    let reply = reflect(&mut r, rx(&req), &clock()).unwrap();
    assert_eq!(
        (reply[44], reply[48], reply[56]),
        (Flags::U, Flags::U, Flags::U)
    );
}

#[test]
fn follow_up_telemetry_is_zero_when_stateless() {
    let s = open_sender(vec![TlvRequest::FollowUpTelemetry], None);
    let mut r = reflector(SeqMode::Stateless);
    for seq in 0..2 {
        let reply = reflect(&mut r, rx(&build(&s, seq)), &clock()).unwrap();
        assert_eq!(&reply[48..64], &[0; 16]);
    }
}

#[test]
fn oversized_when_out_is_small() {
    let mut r = reflector(SeqMode::Stateful);
    let mut out = [0u8; 81];
    assert_eq!(
        r.reflect(rx(&STAMP_REQUEST), &clock(), &mut out),
        Err(DropReason::Oversized)
    );
    assert_eq!(r.counters().oversized, 1);
    assert_eq!(r.counters().dropped(), 1);
}

#[test]
fn replies_are_never_larger_than_requests() {
    // Every length of several kinds of content: zeros, a STAMP base with garbage, random-ish.
    let mut r = reflector(SeqMode::Stateful);
    let mut auth = auth_reflector();
    let mut out = vec![0u8; 2048];
    let mut x: u32 = 0x1234_5678;
    for n in 0..600usize {
        for kind in 0..3 {
            let bytes: Vec<u8> = (0..n)
                .map(|i| match kind {
                    0 => 0,
                    1 if (16..44).contains(&i) => 0,
                    _ => {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    }
                })
                .collect();
            for rf in [&mut r, &mut auth] {
                if let Ok(m) = rf.reflect(rx(&bytes), &clock(), &mut out) {
                    assert!(m <= n, "{m} > {n}");
                }
            }
        }
    }
    assert_eq!(
        auth.counters().reflected,
        0,
        "garbage never passes the HMAC"
    );
}
