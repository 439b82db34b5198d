//! The Session-Sender's pure pieces for TWAMP-Light and STAMP: build a test packet
//! ([`LightSender::emit`], then [`LightSender::stamp`] right before the send), read a reflected
//! packet into what the statistics need ([`LightSender::parse_reply`], [`ParsedReply::to_stats`])
//! and tell a stateful reflector from a stateless one ([`SeqTracker`]).
//!
//! Packet shapes ([`Format`]):
//! - TWAMP-Light: the 14-octet unauthenticated TWAMP sender base (RFC 5357 §4.1.2) and zero
//!   padding. Ask for at least 41 octets: our reflector never answers with more than it got,
//!   and RFC 5357 §4.2.1's reflected base is 41 (PROTOCOL-NOTES §5.12: ≥ 27 octets of padding).
//!   Replies are read in the TWAMP layout, which a STAMP reflector's 44-octet reply also is
//!   (RFC 8762 §4.6).
//! - STAMP: the 44- or 112-octet base with the SSID (RFC 8762 §4.2, RFC 8972 §3), then the
//!   TLVs asked for ([`TlvRequest`]), an Extra Padding TLV up to the size asked for (RFC 8972
//!   §4.1: "RECOMMENDED" for packets larger than the base), and the HMAC TLV last when a key
//!   is set (authenticated mode: always when there are TLVs, RFC 8972 §4.8; unauthenticated:
//!   on request). Extra Padding goes before the HMAC TLV, which RFC 8972 §4.8 does not require
//!   but which reflectors that insist on the HMAC TLV being last accept.

use std::net::IpAddr;

use super::{check_integrity, Integrity, LightKey, HMAC_LEN};
use crate::stats::Reply;
use crate::time::{ErrorEstimate, Timestamp};
use crate::wire::stamp::{SessionReflectorPacket, SessionSenderPacket, StampMode};
use crate::wire::tlv::{Entry, TlvWriter, Tlvs, HEADER_LEN};
use crate::wire::{self, ReflectorPacket, SenderPacket, TestLayout};

/// What the Session-Sender sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    TwampLight,
    Stamp(StampMode),
}

/// A TLV the Session-Sender asks the reflector for (RFC 8972 §4, RFC 9503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvRequest {
    /// Extra Padding with this many value octets (zero).
    ExtraPadding(u16),
    /// Location: Source MAC, Destination IP, Source IP.
    Location,
    TimestampInformation,
    /// Class of Service: the DSCP the reply should carry.
    ClassOfService {
        dscp1: u8,
    },
    /// Direct Measurement: S_TxC is the packet's `s_txc` argument.
    DirectMeasurement,
    AccessReport {
        access_id: u8,
        return_code: u8,
    },
    FollowUpTelemetry,
    DestinationNodeAddress(IpAddr),
    /// Return Path with a Control Code (bit 0: reply on the same link; 0: no reply).
    ReturnPathControlCode(u32),
}

impl TlvRequest {
    /// Octets on the wire, header included.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN
            + match self {
                TlvRequest::ExtraPadding(n) => usize::from(*n),
                TlvRequest::Location => 4 + (HEADER_LEN + 8) + 2 * (HEADER_LEN + 16),
                TlvRequest::TimestampInformation
                | TlvRequest::ClassOfService { .. }
                | TlvRequest::AccessReport { .. } => 4,
                TlvRequest::DirectMeasurement => 12,
                TlvRequest::FollowUpTelemetry => 16,
                TlvRequest::DestinationNodeAddress(IpAddr::V4(_)) => 4,
                TlvRequest::DestinationNodeAddress(IpAddr::V6(_)) => 16,
                TlvRequest::ReturnPathControlCode(_) => HEADER_LEN + 4,
            }
    }

    fn emit(&self, w: &mut TlvWriter<'_>, s_txc: u32) -> wire::Result<()> {
        match *self {
            TlvRequest::ExtraPadding(n) => w.extra_padding(usize::from(n)),
            TlvRequest::Location => w.location(),
            TlvRequest::TimestampInformation => w.timestamp_information(),
            TlvRequest::ClassOfService { dscp1 } => w.class_of_service(dscp1),
            TlvRequest::DirectMeasurement => w.direct_measurement(s_txc),
            TlvRequest::AccessReport {
                access_id,
                return_code,
            } => w.access_report(access_id, return_code),
            TlvRequest::FollowUpTelemetry => w.follow_up_telemetry(),
            TlvRequest::DestinationNodeAddress(a) => w.destination_node_address(a),
            TlvRequest::ReturnPathControlCode(c) => w.return_path_control_code(c),
        }
    }
}

/// What a Session-Sender sends, once per session.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub format: Format,
    /// STAMP Session Identifier (RFC 8972 §3); 0 = not used. TWAMP-Light has none.
    pub ssid: u16,
    pub tlvs: Vec<TlvRequest>,
    /// The packet size asked for (UDP payload); smaller than what the rest needs means "no
    /// padding". STAMP pads with an Extra Padding TLV, which is at least 4 octets, so the
    /// packet may come out up to 3 octets longer than asked.
    pub packet_len: usize,
    /// HMAC key: required in authenticated mode; in unauthenticated STAMP it adds an HMAC TLV.
    pub key: Option<LightKey>,
}

/// Why a [`SenderConfig`] cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// TWAMP-Light has no SSID, no TLVs and no key.
    NotInTwampLight,
    /// Authenticated mode without a key.
    NoKey,
    /// Larger than a UDP datagram.
    TooLong { len: usize },
}

/// Why a reflected packet was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    Truncated {
        need: usize,
        got: usize,
    },
    /// Authenticated mode: the base HMAC does not verify.
    BadHmac,
}

/// The integrity of a reply's TLVs (RFC 8972 §4.8), as the Session-Sender checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvIntegrity {
    /// No HMAC TLV (and none required).
    Absent,
    Valid,
    /// Missing where required, misplaced, wrong, or no key to check it: "MUST stop processing
    /// TLVs".
    Invalid,
}

/// A reflected packet, read (RFC 5357 §4.2.1, RFC 8762 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedReply<'a> {
    /// The reflector's Sequence Number (its own, or ours when stateless).
    pub reflector_seq: u32,
    /// T3 and the reflector's Error Estimate (for T2 and T3).
    pub t3: Timestamp,
    pub reflector_error_estimate: ErrorEstimate,
    pub t2: Timestamp,
    pub sender_seq: u32,
    pub t1: Timestamp,
    pub t1_err: ErrorEstimate,
    pub sender_ttl: u8,
    /// The SSID echoed (0 in TWAMP-Light, or from a reflector that ignores it: RFC 8972 §3).
    pub ssid: u16,
    /// The TLV area (empty in TWAMP-Light); walk it with [`Tlvs`].
    pub tlvs: &'a [u8],
    pub tlv_integrity: TlvIntegrity,
}

impl ParsedReply<'_> {
    /// What `stats` records, with our receive time (T4) and the TTL we saw.
    pub fn to_stats(&self, t4: Timestamp, t4_err: ErrorEstimate, ttl: Option<u8>) -> Reply {
        Reply {
            sender_seq: self.sender_seq,
            reflector_seq: self.reflector_seq,
            t1: self.t1,
            t1_err: self.t1_err,
            t2: self.t2,
            t2_err: self.reflector_error_estimate,
            t3: self.t3,
            t3_err: self.reflector_error_estimate,
            t4,
            t4_err,
            sender_ttl: self.sender_ttl,
            ttl,
        }
    }

    /// Whether the TLVs may be used: integrity holds and no TLV came back with I set
    /// (RFC 8972 §4: "If the I flag is set, the STAMP system MUST discard all TLVs").
    pub fn tlvs_usable(&self) -> bool {
        self.tlv_integrity != TlvIntegrity::Invalid
            && Tlvs::new(self.tlvs).all(|e| match e {
                Entry::Known(t) | Entry::Unknown(t) | Entry::BadLength(t) => !t.flags.i(),
                Entry::Truncated { .. } => true,
            })
    }
}

/// A Session-Sender's packet builder and reply reader for one session.
#[derive(Debug, Clone)]
pub struct LightSender {
    config: SenderConfig,
    len: usize,
    /// Extra Padding value octets that fill up to `packet_len`.
    fill: Option<usize>,
    hmac_tlv: bool,
}

impl LightSender {
    pub fn new(config: SenderConfig) -> Result<Self, ConfigError> {
        let (len, fill, hmac_tlv) = match config.format {
            Format::TwampLight => {
                if config.ssid != 0 || !config.tlvs.is_empty() || config.key.is_some() {
                    return Err(ConfigError::NotInTwampLight);
                }
                (
                    config.packet_len.max(TestLayout::OPEN.sender.base),
                    None,
                    false,
                )
            }
            Format::Stamp(mode) => {
                if mode == StampMode::Authenticated && config.key.is_none() {
                    return Err(ConfigError::NoKey);
                }
                let tlvs: usize = config.tlvs.iter().map(TlvRequest::wire_len).sum();
                let mut used = mode.base() + tlvs;
                let hmac_len = HEADER_LEN + HMAC_LEN;
                let with_hmac =
                    |used: usize| used + if config.key.is_some() { hmac_len } else { 0 };
                let fill = if config.packet_len > with_hmac(used) {
                    let r = (config.packet_len - with_hmac(used)).max(HEADER_LEN);
                    used += r;
                    Some(r - HEADER_LEN)
                } else {
                    None
                };
                let any_tlv = tlvs > 0 || fill.is_some();
                let hmac_tlv =
                    config.key.is_some() && (mode == StampMode::Unauthenticated || any_tlv);
                (used + if hmac_tlv { hmac_len } else { 0 }, fill, hmac_tlv)
            }
        };
        if len > 65_507 {
            return Err(ConfigError::TooLong { len });
        }
        Ok(LightSender {
            config,
            len,
            fill,
            hmac_tlv,
        })
    }

    pub fn config(&self) -> &SenderConfig {
        &self.config
    }

    /// Octets of every packet of the session.
    pub fn packet_len(&self) -> usize {
        self.len
    }

    /// Writes packet `seq` into `out` but for its Timestamp, and returns its length. `s_txc` is
    /// the Direct Measurement count of packets sent before this one plus one (RFC 8972 §4.5).
    /// The HMAC TLV, which does not cover the Timestamp, is computed here.
    pub fn emit(&self, seq: u32, s_txc: u32, out: &mut [u8]) -> wire::Result<usize> {
        let got = out.len();
        let Some(out) = out.get_mut(..self.len) else {
            return Err(wire::Error::Truncated {
                need: self.len,
                got,
            });
        };
        match self.config.format {
            Format::TwampLight => {
                SenderPacket {
                    seq,
                    ..SenderPacket::default()
                }
                .emit(out, &TestLayout::OPEN.sender)?;
                out[TestLayout::OPEN.sender.base..].fill(0);
            }
            Format::Stamp(mode) => {
                let base = mode.base();
                SessionSenderPacket {
                    seq,
                    ssid: self.config.ssid,
                    ..SessionSenderPacket::default()
                }
                .emit(out, mode)?;
                let (head, area) = out.split_at_mut(base);
                let mut w = TlvWriter::new(area);
                for t in &self.config.tlvs {
                    t.emit(&mut w, s_txc)?;
                }
                if let Some(n) = self.fill {
                    w.extra_padding(n)?;
                }
                if self.hmac_tlv {
                    let at = w.hmac_placeholder()?;
                    if let Some(k) = &self.config.key {
                        // RFC 8972 §4.8: the Sequence Number and the TLVs before the HMAC TLV.
                        let tag = k.tag(&[&head[..4], &area[..at]]);
                        area[at + HEADER_LEN..at + HEADER_LEN + HMAC_LEN].copy_from_slice(&tag);
                    }
                }
            }
        }
        Ok(self.len)
    }

    /// Writes T1 and its Error Estimate into a packet from [`Self::emit`] and, authenticated,
    /// its HMAC (RFC 8762 §4.4). Call right before the send.
    pub fn stamp(&self, out: &mut [u8], t1: Timestamp, error_estimate: ErrorEstimate) {
        if out.len() < self.len {
            return;
        }
        match self.config.format {
            Format::TwampLight => SenderPacket {
                seq: 0,
                timestamp: t1,
                error_estimate,
            }
            .emit_timestamp(out, &TestLayout::OPEN.sender),
            Format::Stamp(mode) => {
                SessionSenderPacket {
                    timestamp: t1,
                    error_estimate,
                    ..SessionSenderPacket::default()
                }
                .emit_timestamp(out, mode);
                if mode == StampMode::Authenticated {
                    if let Some(k) = &self.config.key {
                        k.seal_base(out);
                    }
                }
            }
        }
    }

    /// Reads a reflected packet. Never panics. In authenticated mode the base HMAC is checked
    /// first (RFC 8762 §4.4: "as early as possible") and the TLVs' integrity is reported, not
    /// enforced: the caller decides what to do with [`ParsedReply::tlvs_usable`].
    pub fn parse_reply<'a>(&self, buf: &'a [u8]) -> Result<ParsedReply<'a>, ReplyError> {
        let truncated = |e: wire::Error| match e {
            wire::Error::Truncated { need, got } => ReplyError::Truncated { need, got },
            wire::Error::BadField { .. } => ReplyError::Truncated {
                need: 0,
                got: buf.len(),
            },
        };
        match self.config.format {
            Format::TwampLight => {
                let p =
                    ReflectorPacket::parse(buf, &TestLayout::OPEN.reflector).map_err(truncated)?;
                Ok(ParsedReply {
                    reflector_seq: p.seq,
                    t3: p.timestamp,
                    reflector_error_estimate: p.error_estimate,
                    t2: p.receive_timestamp,
                    sender_seq: p.sender_seq,
                    t1: p.sender_timestamp,
                    t1_err: p.sender_error_estimate,
                    sender_ttl: p.sender_ttl,
                    ssid: 0,
                    tlvs: &[],
                    tlv_integrity: TlvIntegrity::Absent,
                })
            }
            Format::Stamp(mode) => {
                let p = SessionReflectorPacket::parse(buf, mode).map_err(truncated)?;
                let authenticated = mode == StampMode::Authenticated;
                if authenticated && !self.config.key.as_ref().is_some_and(|k| k.verify_base(buf)) {
                    return Err(ReplyError::BadHmac);
                }
                let tlvs = buf.get(mode.base()..).unwrap_or(&[]);
                let tlv_integrity = if tlvs.iter().all(|&b| b == 0) {
                    TlvIntegrity::Absent
                } else {
                    match check_integrity(tlvs, &buf[..4], self.config.key.as_ref(), authenticated)
                    {
                        Integrity::NotNeeded => TlvIntegrity::Absent,
                        Integrity::Verified { .. } => TlvIntegrity::Valid,
                        Integrity::Failed => TlvIntegrity::Invalid,
                    }
                };
                Ok(ParsedReply {
                    reflector_seq: p.seq,
                    t3: p.timestamp,
                    reflector_error_estimate: p.error_estimate,
                    t2: p.receive_timestamp,
                    sender_seq: p.sender_seq,
                    t1: p.sender_timestamp,
                    t1_err: p.sender_error_estimate,
                    sender_ttl: p.sender_ttl,
                    ssid: p.ssid,
                    tlvs,
                    tlv_integrity,
                })
            }
        }
    }
}

/// Whether the reflector numbers its replies itself (RFC 8762 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReflectorKind {
    NoReplies,
    /// Every reply so far carried our Sequence Number back: a stateless reflector, or a
    /// stateful one that has lost nothing on the way in yet. Per-direction loss cannot be told.
    EchoesSender,
    /// Some reply carried a Sequence Number other than ours: the reflector counts its own
    /// (RFC 8762 §4.3.1), so a gap in its numbers is loss on the way in.
    Stateful,
}

impl ReflectorKind {
    /// Report loss per direction only for a reflector that counts its own packets.
    pub fn per_direction_loss(self) -> bool {
        self == ReflectorKind::Stateful
    }
}

/// Loss per direction, from the replies of a stateful reflector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DirectionLoss {
    /// Lost on the way to the reflector: sender numbers up to the last one it answered that
    /// it never counted.
    pub forward: u64,
    /// Lost on the way back: reflector numbers up to its last that never reached us.
    pub backward: u64,
    /// Sent after the last packet the reflector is known to have answered: lost in one
    /// direction or the other, or still in flight.
    pub unattributed: u64,
}

/// Watches (sender, reflector) Sequence Number pairs of the replies of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTracker {
    replies: u64,
    differing: u64,
    /// The reply with the highest reflector Sequence Number: (reflector seq, sender seq).
    last: Option<(u32, u32)>,
}

impl SeqTracker {
    /// Records one reply (duplicates included: they do not change the verdict).
    pub fn observe(&mut self, sender_seq: u32, reflector_seq: u32) {
        self.replies += 1;
        if sender_seq != reflector_seq {
            self.differing += 1;
        }
        if self.last.is_none_or(|(r, _)| reflector_seq > r) {
            self.last = Some((reflector_seq, sender_seq));
        }
    }

    pub fn kind(&self) -> ReflectorKind {
        match (self.replies, self.differing) {
            (0, _) => ReflectorKind::NoReplies,
            (_, 0) => ReflectorKind::EchoesSender,
            _ => ReflectorKind::Stateful,
        }
    }

    /// Splits the loss of `sent` packets (numbered 0..sent) between the directions, given
    /// `unique_replies` distinct replies received; `None` unless the reflector is stateful.
    /// The reflector counted `r + 1` packets when it sent number `r`, in answer to our `s`:
    /// of our `s + 1` first packets, `s - r` never reached it.
    pub fn direction_loss(&self, sent: u64, unique_replies: u64) -> Option<DirectionLoss> {
        if self.kind() != ReflectorKind::Stateful {
            return None;
        }
        let (r, s) = self.last?;
        let (r, s) = (u64::from(r), u64::from(s));
        let reached = r + 1;
        Some(DirectionLoss {
            forward: (s + 1).saturating_sub(reached),
            backward: reached.saturating_sub(unique_replies),
            unattributed: sent.saturating_sub(s + 1),
        })
    }
}

/// The verdict for a finished list of replies: (sender seq, reflector seq) pairs.
pub fn classify(pairs: impl IntoIterator<Item = (u32, u32)>) -> ReflectorKind {
    let mut t = SeqTracker::default();
    for (s, r) in pairs {
        t.observe(s, r);
    }
    t.kind()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::light::{LightConfig, LightReceived, LightReflector};
    use crate::time::{Clock, FakeClock};

    fn t1() -> Timestamp {
        Timestamp::new(0x83aa_7e81, 0x0000_0100)
    }

    fn build(s: &LightSender, seq: u32, s_txc: u32) -> Vec<u8> {
        let mut b = vec![0xa5u8; s.packet_len() + 5];
        assert_eq!(s.emit(seq, s_txc, &mut b), Ok(s.packet_len()));
        s.stamp(&mut b, t1(), ErrorEstimate(0x8001));
        assert!(b[s.packet_len()..].iter().all(|&x| x == 0xa5));
        b.truncate(s.packet_len());
        b
    }

    fn stamp(tlvs: Vec<TlvRequest>, packet_len: usize) -> LightSender {
        LightSender::new(SenderConfig {
            format: Format::Stamp(StampMode::Unauthenticated),
            ssid: 0x0102,
            tlvs,
            packet_len,
            key: None,
        })
        .unwrap()
    }

    #[test]
    fn twamp_light_packet() {
        let s = LightSender::new(SenderConfig {
            format: Format::TwampLight,
            ssid: 0,
            tlvs: vec![],
            packet_len: 41,
            key: None,
        })
        .unwrap();
        #[rustfmt::skip]
        let want: [u8; 41] = [
            0x00, 0x00, 0x00, 0x2a,                         // Sequence Number 42
            0x83, 0xaa, 0x7e, 0x81, 0x00, 0x00, 0x01, 0x00, // Timestamp (T1)
            0x80, 0x01,                                     // Error Estimate
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,          // Packet Padding (27)
        ];
        assert_eq!(build(&s, 42, 0), want);
        let tiny = LightSender::new(SenderConfig {
            packet_len: 0,
            ..s.config().clone()
        })
        .unwrap();
        assert_eq!(tiny.packet_len(), 14);
        for bad in [
            SenderConfig {
                ssid: 1,
                ..s.config().clone()
            },
            SenderConfig {
                tlvs: vec![TlvRequest::FollowUpTelemetry],
                ..s.config().clone()
            },
        ] {
            assert_eq!(
                LightSender::new(bad).err(),
                Some(ConfigError::NotInTwampLight)
            );
        }
    }

    #[test]
    fn stamp_packet_with_tlvs_and_padding() {
        let s = stamp(
            vec![
                TlvRequest::ClassOfService { dscp1: 46 },
                TlvRequest::DirectMeasurement,
            ],
            80,
        );
        assert_eq!(s.packet_len(), 80);
        #[rustfmt::skip]
        let want: [u8; 80] = [
            0x00, 0x00, 0x00, 0x03,                         // Sequence Number 3
            0x83, 0xaa, 0x7e, 0x81, 0x00, 0x00, 0x01, 0x00, // Timestamp (T1)
            0x80, 0x01,                                     // Error Estimate
            0x01, 0x02,                                     // SSID
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       // MBZ (28)
            0x80, 0x04, 0x00, 0x04, 0xb8, 0x00, 0x00, 0x00, // U, Class of Service: DSCP1 46
            0x80, 0x05, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x04, // U, Direct Measurement: S_TxC 4
            0, 0, 0, 0, 0, 0, 0, 0,                         //   R_RxC, R_TxC
            0x80, 0x01, 0x00, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, // U, Extra Padding up to 80 octets
        ];
        assert_eq!(build(&s, 3, 4), want);
        // 1..3 octets to fill round up to the smallest Extra Padding TLV.
        assert_eq!(stamp(vec![], 46).packet_len(), 48);
        assert_eq!(stamp(vec![], 44).packet_len(), 44);
        assert_eq!(stamp(vec![], 10).packet_len(), 44);
        let mut small = [0u8; 79];
        assert!(s.emit(0, 0, &mut small).is_err());
        assert_eq!(
            LightSender::new(SenderConfig {
                format: Format::Stamp(StampMode::Authenticated),
                ..s.config().clone()
            })
            .err(),
            Some(ConfigError::NoKey)
        );
        assert!(matches!(
            LightSender::new(SenderConfig {
                packet_len: 70_000,
                ..s.config().clone()
            }),
            Err(ConfigError::TooLong { .. })
        ));
    }

    fn received(bytes: &[u8]) -> LightReceived<'_> {
        LightReceived {
            bytes,
            from: "[2001:db8::1]:6000".parse().unwrap(),
            local_port: 862,
            local_ip: None,
            ttl: Some(63),
            tos: None,
            at: Timestamp::new(0x83aa_7e81, 0x1000_0000),
        }
    }

    /// Our sender against our reflector, both layouts, and the stats record.
    #[test]
    fn round_trip_through_the_reflector() {
        let clock = FakeClock::at(Timestamp::new(0x83aa_7e81, 0x2000_0000));
        let mut r = LightReflector::new(LightConfig::default());
        let mut out = [0u8; 512];
        // Same address, port and SSID 0: one sender to the reflector, numbered 0 then 1.
        for (i, format) in [
            Format::TwampLight,
            Format::Stamp(StampMode::Unauthenticated),
        ]
        .into_iter()
        .enumerate()
        {
            let s = LightSender::new(SenderConfig {
                format,
                ssid: 0,
                tlvs: vec![],
                packet_len: 60,
                key: None,
            })
            .unwrap();
            let req = build(&s, 9, 10);
            let n = r.reflect(received(&req), &clock, &mut out).unwrap();
            assert_eq!(n, req.len().clamp(44, 60));
            let p = s.parse_reply(&out[..n]).unwrap();
            let t4 = Timestamp::new(0x83aa_7e81, 0x3000_0000);
            let st = p.to_stats(t4, ErrorEstimate(1), Some(64));
            assert_eq!(
                (st.sender_seq, st.reflector_seq, st.t1, st.t1_err),
                (9, i as u32, t1(), ErrorEstimate(0x8001))
            );
            assert_eq!((st.t2, st.t3, st.t4), (received(&req).at, clock.now(), t4));
            assert_eq!((st.t2_err, st.t3_err), (ErrorEstimate(1), ErrorEstimate(1)));
            assert_eq!((st.sender_ttl, st.ttl), (63, Some(64)));
            assert!(p.tlvs_usable());
        }
    }

    /// RFC 8762 §4.6: a STAMP reflector's 44-octet reply read by a TWAMP-Light sender.
    #[test]
    fn twamp_light_sender_reads_a_stamp_reply() {
        let s = LightSender::new(SenderConfig {
            format: Format::TwampLight,
            ssid: 0,
            tlvs: vec![],
            packet_len: 44,
            key: None,
        })
        .unwrap();
        let reply = crate::wire::stamp::SessionReflectorPacket {
            seq: 5,
            sender_seq: 6,
            sender_ttl: 250,
            ..Default::default()
        };
        let mut b = [0xa5u8; 44];
        reply.emit(&mut b, StampMode::Unauthenticated).unwrap();
        let p = s.parse_reply(&b).unwrap();
        assert_eq!((p.reflector_seq, p.sender_seq, p.sender_ttl), (5, 6, 250));
        for n in 0..41 {
            assert_eq!(
                s.parse_reply(&b[..n]),
                Err(ReplyError::Truncated { need: 41, got: n })
            );
        }
        let st = stamp(vec![], 0);
        for n in 0..44 {
            assert_eq!(
                st.parse_reply(&b[..n]),
                Err(ReplyError::Truncated { need: 44, got: n })
            );
        }
    }

    #[test]
    fn stateful_or_stateless_from_the_replies() {
        assert_eq!(classify([]), ReflectorKind::NoReplies);
        // Stateless: our numbers come back, whatever was lost.
        assert_eq!(
            classify([(0, 0), (1, 1), (3, 3)]),
            ReflectorKind::EchoesSender
        );
        // Stateful, nothing lost on the way in yet: indistinguishable.
        assert_eq!(classify([(0, 0), (1, 1)]), ReflectorKind::EchoesSender);
        // Stateful: packet 1 never reached it, so its count lags ours.
        let pairs = [(0, 0), (2, 1), (3, 2)];
        assert_eq!(classify(pairs), ReflectorKind::Stateful);
        assert!(ReflectorKind::Stateful.per_direction_loss());
        assert!(!ReflectorKind::EchoesSender.per_direction_loss());

        let mut t = SeqTracker::default();
        for (s, r) in pairs {
            t.observe(s, r);
        }
        assert_eq!(
            t.direction_loss(5, 3),
            Some(DirectionLoss {
                forward: 1,
                backward: 0,
                unattributed: 1
            })
        );
        // Sender 0 lost on the way in; the reflector's number 1 (for our 2) lost on the way back.
        let mut t = SeqTracker::default();
        for (s, r) in [(1, 0), (3, 2), (3, 2)] {
            t.observe(s, r);
        }
        assert_eq!(
            t.direction_loss(4, 2),
            Some(DirectionLoss {
                forward: 1,
                backward: 1,
                unattributed: 0
            })
        );
        let mut t = SeqTracker::default();
        t.observe(0, 0);
        assert_eq!(t.direction_loss(3, 1), None, "not known to be stateful");
    }
}
