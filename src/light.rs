//! TWAMP-Light (RFC 5357 Appendix I) and STAMP (RFC 8762, with the extensions of RFC 8972 and
//! RFC 9503): a pure Session-Reflector for one UDP socket serving many Session-Senders, and
//! (in [`sender`]) the Session-Sender's pure pieces. No sockets and no clock of its own: the
//! I/O layer hands in each datagram with its receive metadata ([`LightReceived`]) and a
//! [`Clock`], and sends what [`LightReflector::reflect`] wrote.
//!
//! # What arrives, and what goes back
//!
//! | datagram (octets `len`) | read as | reply |
//! |---|---|---|
//! | `< 14` | nothing | dropped, [`DropReason::Short`] |
//! | authenticated mode, `< 112` | nothing | dropped, [`DropReason::Short`] |
//! | authenticated mode, `≥ 112` | STAMP authenticated sender (RFC 8762 §4.2.2) | 112-octet STAMP reflected base + the TLV area, `len` octets |
//! | `≥ 44`, octets 16..44 all zero | STAMP sender (RFC 8762 §4.2.1) | 44-octet STAMP reflected base + the TLV area, `len` octets |
//! | otherwise, `≥ 41` | TWAMP-Light sender: 14-octet TWAMP base + padding (RFC 5357 §4.1.2) | 41-octet TWAMP reflected base + the sender's padding shortened by 27 (RFC 5357 §4.2.1), `len` octets |
//! | otherwise (`14..41`) | TWAMP-Light sender | dropped, [`DropReason::WouldAmplify`]; or the 41-octet base if [`LightConfig::answer_short_twamp_light`] |
//!
//! Why octets 16..44 tell STAMP from TWAMP-Light: a STAMP Session-Sender "MUST" zero its 28 MBZ
//! octets (RFC 8762 §4.2.1), while a TWAMP-Light sender's padding is arbitrary — twping's is
//! random. Reading a random-padded TWAMP packet as STAMP would take two random octets as the
//! SSID (one sender state per packet, so the stateful sequence numbers would restart every
//! packet) and random octets as TLVs. A zero-padded TWAMP-Light packet of 44 octets or more is
//! read as STAMP with SSID 0 and no TLVs, and its reply is the same either way: the two
//! reflected layouts agree on every octet below 41 (RFC 8762 §4.6) and the rest is copied.
//!
//! An all-zero TLV area is taken as padding and copied untouched, not as a chain of Reserved
//! (type 0) TLVs to flag with U: that is the zero padding of a TWAMP-Light sender (RFC 8762
//! §4.6, "the STAMP Session-Reflector ... will copy the content of the remainder of the
//! received packet"), and flagging it would change octets the sender did not mean as TLVs.
//!
//! # Never an amplifier
//!
//! The reply is never longer than the datagram that arrived ([`LightReflector::reflect`]
//! returns at most `rx.bytes.len()`), unless [`LightConfig::answer_short_twamp_light`] allows
//! the 41-octet TWAMP base for a 14..40-octet TWAMP-Light packet (at most 27 octets more, as
//! RFC 5357 §4.2.1 describes). RFC 8762 §4.6 would answer any packet shorter than 44 octets
//! with the 44-octet base; we answer a 41..43-octet TWAMP-Light packet with the TWAMP layout of
//! its own length instead, which the TWAMP sender reads the same way.
//!
//! # Per-sender state
//!
//! Keyed by (source address with IPv4-mapped addresses unmapped, source port, SSID): the
//! SSID "in combination with elements of the usual 4-tuple" (RFC 8972 §3). It holds the
//! reflector's own Sequence Number (stateful mode, RFC 8762 §4 and §4.3.1: "starts with zero
//! and is incremented by one for each subsequent packet for each test session"), the Direct
//! Measurement counters (RFC 8972 §4.5) and the last reflected packet for Follow-Up Telemetry
//! (RFC 8972 §4.7), in stateless mode too (only the Sequence Number differs: stateless copies
//! the sender's, RFC 8762 §4.3.1).
//!
//! A sender silent for [`LightConfig::idle`] is forgotten (time is the receive timestamps
//! `rx.at`, so tests drive it; checked lazily, at most twice per idle time, and by
//! [`LightReflector::expire`]); a sender that comes back starts again from
//! sequence number 0, as a new session. At most [`LightConfig::max_senders`] are remembered:
//! when a new sender arrives at the cap, the idle ones are expired first, and if none is idle
//! the one silent the longest is evicted ([`LightCounters::senders_evicted`]). Evicting rather
//! than refusing keeps the reflector answering every sender; the price is that a flood of
//! spoofed sources can restart the sequence numbers of quiet real senders — only their
//! numbering, never their replies. The eviction scan is O(cap) and runs only when the table is
//! full and nobody is idle; the lookup per packet is one hash-map access.
//!
//! # TLVs (RFC 8972 §4)
//!
//! The reflector copies the TLV area and then edits it in place, so its length never changes:
//! - a TLV of a type we do not know is copied with U = 1 and not processed (RFC 8972 §4);
//! - a malformed TLV — a Length not valid for its type, or running past the end of the packet
//!   — gets M = 1, and processing stops there: the rest is copied as received (RFC 8972 §4);
//! - when an HMAC TLV is present, or the packet is authenticated and carries TLVs other than
//!   Extra Padding, the HMAC TLV is verified before any TLV data is used (RFC 8972 §4.8); if it
//!   is missing, misplaced, unverifiable (no key) or wrong, every TLV gets I = 1 and none is
//!   processed; if it is good, the reply's HMAC TLV is computed afresh over the reply;
//! - known TLVs get U = M = I = 0 and are filled: see [`LightReflector::reflect`].
//!
//! Per-packet work allocates nothing: the TLV area is walked with [`Tlvs`] over the received
//! bytes and edited at the same offsets in `out`.

pub mod sender;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::addr::unmap_ip;
use crate::config::KeyFile;
use crate::time::{Clock, Timestamp};
use crate::wire::stamp::{SessionReflectorPacket, SessionSenderPacket, StampMode};
use crate::wire::tlv::{self, value, Entry, Flags, TlvType, Tlvs, HEADER_LEN};
use crate::wire::{ReflectorPacket, SenderPacket, TestLayout};

type HmacSha256 = Hmac<Sha256>;

/// Truncated HMAC length: "HMAC-SHA-256 truncated to 128 bits" (RFC 8762 §4.4).
pub const HMAC_LEN: usize = 16;

/// The TWAMP-Light sender base (RFC 5357 §4.1.2): the smallest datagram answered at all.
pub const TWAMP_LIGHT_SENDER_BASE: usize = 14;
/// The TWAMP reflected base (RFC 5357 §4.2.1).
pub const TWAMP_LIGHT_REFLECTOR_BASE: usize = 41;

/// How long a silent sender is remembered: REFWAIT's default (RFC 5357 §4.2).
pub const DEFAULT_IDLE: Duration = Duration::from_secs(900);
/// How many senders one socket remembers by default.
pub const DEFAULT_MAX_SENDERS: usize = 4096;

/// The HMAC-SHA-256 key of STAMP authenticated mode (RFC 8762 §4.4) and of the HMAC TLV
/// (RFC 8972 §4.8). Zeroized on drop (the `hmac` crate's `zeroize` feature); `Debug` prints no
/// key material.
///
/// # Where the key comes from
/// [`LightKey::from_keyfile`] takes an identity's pass-phrase from the key file (twampd's pfs
/// format: `identity hex-passphrase`) and uses its octets, as they are, as the HMAC key. TWAMP
/// derives its key with PBKDF2 from the pass-phrase and the Salt and Count of the
/// Server-Greeting (RFC 4656 §3.1), but STAMP has no control connection to carry a salt, and
/// RFC 8762 §4.4 leaves key management out of scope ("HMAC uses its own key"). STAMP
/// implementations take a raw key (stamp-suite: a hex key or key file), so the raw octets are
/// what interoperates; a derivation would be ours alone. HMAC accepts a key of any length
/// (RFC 2104 §2); RFC 4868 §2.1.2 recommends at least 32 octets for HMAC-SHA-256.
#[derive(Clone)]
pub struct LightKey {
    mac: HmacSha256,
}

impl std::fmt::Debug for LightKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LightKey { .. }")
    }
}

impl LightKey {
    pub fn new(key: &[u8]) -> Self {
        LightKey {
            mac: <HmacSha256 as KeyInit>::new_from_slice(key)
                .expect("HMAC accepts a key of any length"),
        }
    }

    /// The key of `identity` in a key file; `None` if the identity is not there.
    pub fn from_keyfile(keys: &KeyFile, identity: &str) -> Option<Self> {
        keys.get(identity).map(Self::new)
    }

    fn tag(&self, parts: &[&[u8]]) -> [u8; HMAC_LEN] {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; HMAC_LEN];
        tag.copy_from_slice(&full[..HMAC_LEN]);
        tag
    }

    /// Constant-time check of a truncated tag (the `hmac` crate compares with `subtle`).
    fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        tag.len() == HMAC_LEN && mac.verify_truncated_left(tag).is_ok()
    }

    /// Authenticated mode: writes the HMAC of octets 0..96 into 96..112 (RFC 8762 §4.4).
    /// False (nothing written) on a buffer shorter than 112.
    pub fn seal_base(&self, pkt: &mut [u8]) -> bool {
        let Some(at) = StampMode::Authenticated.hmac_at() else {
            return false;
        };
        if pkt.len() < at + HMAC_LEN {
            return false;
        }
        let tag = self.tag(&[&pkt[..at]]);
        pkt[at..at + HMAC_LEN].copy_from_slice(&tag);
        true
    }

    /// Fills in the first HMAC TLV of the TLV area that starts at `base` (RFC 8972 §4.8: over
    /// the Sequence Number and the TLVs before it). False, nothing written, when the area has
    /// no well-formed HMAC TLV before a malformed one.
    pub fn seal_tlv_hmac(&self, pkt: &mut [u8], base: usize) -> bool {
        let Some(area) = pkt.get(base..) else {
            return false;
        };
        let mut at = None;
        for e in Tlvs::new(area) {
            match e {
                Entry::Known(t) if t.tlv_type == TlvType::Hmac => {
                    at = Some(t.offset);
                    break;
                }
                e if e.is_malformed() => break,
                _ => {}
            }
        }
        let (Some(at), Some(seq)) = (at, pkt.get(..4)) else {
            return false;
        };
        let tag = self.tag(&[seq, &pkt[base..base + at]]);
        let v = base + at + HEADER_LEN;
        pkt[v..v + HMAC_LEN].copy_from_slice(&tag);
        true
    }

    /// Authenticated mode: whether octets 96..112 are the HMAC of 0..96. False on a buffer
    /// shorter than 112.
    pub fn verify_base(&self, pkt: &[u8]) -> bool {
        match (StampMode::Authenticated.hmac_at(), pkt.len()) {
            (Some(at), n) if n >= at + HMAC_LEN => {
                self.verify(&[&pkt[..at]], &pkt[at..at + HMAC_LEN])
            }
            _ => false,
        }
    }
}

/// How the reflector numbers its replies (RFC 8762 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeqMode {
    /// Its own Sequence Number per sender, from 0 (RFC 8762 §4.3.1): lets the sender split
    /// loss by direction.
    Stateful,
    /// Copies the sender's Sequence Number (RFC 8762 §4.3.1).
    Stateless,
}

/// Configuration of a [`LightReflector`].
#[derive(Debug, Clone)]
pub struct LightConfig {
    pub seq_mode: SeqMode,
    /// Unauthenticated answers TWAMP-Light and STAMP; authenticated answers only STAMP
    /// authenticated packets, and needs `key`.
    pub mode: StampMode,
    /// The HMAC key: of authenticated mode, and of the HMAC TLV in either mode.
    pub key: Option<LightKey>,
    /// A sender silent this long is forgotten.
    pub idle: Duration,
    /// How many senders are remembered at most (at least 1).
    pub max_senders: usize,
    /// Answer a 14..40-octet TWAMP-Light packet with the 41-octet TWAMP base (RFC 5357 §4.2.1),
    /// i.e. up to 27 octets more than arrived. Off by default: never an amplifier.
    pub answer_short_twamp_light: bool,
    /// Honour the DSCP1 a Class of Service TLV asks for on the reply (RP = 0, RFC 8972 §4.4);
    /// off, the reply keeps the received DSCP and RP = 1. The I/O layer reads the choice from
    /// [`LightReflector::reply_tos`].
    pub honour_cos: bool,
    /// The Synchronization Source reported in Timestamp Information (RFC 8972 §5.4); `None`
    /// derives it from the clock's Error Estimate: NTP when synchronized, else local
    /// free-running.
    pub sync_source: Option<u8>,
}

impl Default for LightConfig {
    fn default() -> Self {
        LightConfig {
            seq_mode: SeqMode::Stateful,
            mode: StampMode::Unauthenticated,
            key: None,
            idle: DEFAULT_IDLE,
            max_senders: DEFAULT_MAX_SENDERS,
            answer_short_twamp_light: false,
            honour_cos: false,
            sync_source: None,
        }
    }
}

/// One received datagram, as the socket layer saw it.
#[derive(Debug, Clone, Copy)]
pub struct LightReceived<'a> {
    pub bytes: &'a [u8],
    /// The sender's address and port.
    pub from: SocketAddr,
    /// The port the datagram arrived on (the Location TLV's Destination Port).
    pub local_port: u16,
    /// The address it was sent to (IP_PKTINFO / IPV6_PKTINFO), if known.
    pub local_ip: Option<IpAddr>,
    /// TTL / Hop Limit, if the kernel told us; 255 goes on the wire otherwise.
    pub ttl: Option<u8>,
    /// The received TOS octet / Traffic Class (DSCP << 2 | ECN), if the kernel told us.
    pub tos: Option<u8>,
    /// Receive time (T2): the kernel's, or the clock's right after the read.
    pub at: Timestamp,
}

/// Why a datagram was not reflected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Shorter than the smallest sender packet of the mode (14, or 112 authenticated).
    Short { len: usize },
    /// The reply base would be longer than the datagram (a 14..40-octet TWAMP-Light packet).
    WouldAmplify { len: usize, need: usize },
    /// `out` is too small for the reply.
    Oversized,
    /// Authenticated mode: the base HMAC does not verify.
    BadHmac,
    /// A Return Path TLV's Control Code asked for no reply (RFC 9503 §4.1.1).
    NoReplyRequested,
}

/// Counters of a [`LightReflector`]; plain numbers, owned by the thread that reflects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LightCounters {
    pub reflected: u64,
    /// Of the reflected: read as TWAMP-Light.
    pub twamp_light: u64,
    /// Of the reflected: read as STAMP.
    pub stamp: u64,
    pub short: u64,
    pub would_amplify: u64,
    pub oversized: u64,
    pub bad_hmac: u64,
    pub no_reply_requested: u64,
    /// TLVs (and sub-TLVs) returned with U = 1.
    pub tlv_unrecognized: u64,
    /// TLVs (and sub-TLVs) returned with M = 1.
    pub tlv_malformed: u64,
    /// Packets whose TLVs were returned with I = 1.
    pub tlv_integrity_failed: u64,
    pub senders_expired: u64,
    pub senders_evicted: u64,
}

impl LightCounters {
    fn count(&mut self, r: DropReason) {
        let c = match r {
            DropReason::Short { .. } => &mut self.short,
            DropReason::WouldAmplify { .. } => &mut self.would_amplify,
            DropReason::Oversized => &mut self.oversized,
            DropReason::BadHmac => &mut self.bad_hmac,
            DropReason::NoReplyRequested => &mut self.no_reply_requested,
        };
        *c += 1;
    }

    pub fn dropped(&self) -> u64 {
        self.short + self.would_amplify + self.oversized + self.bad_hmac + self.no_reply_requested
    }
}

/// What identifies a Session-Sender (RFC 8972 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SenderKey {
    /// Unmapped: `::ffff:192.0.2.1` and `192.0.2.1` are one sender.
    pub addr: IpAddr,
    pub port: u16,
    pub ssid: u16,
}

/// What the reflector remembers of one sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderState {
    /// The next reflector Sequence Number (stateful mode).
    pub next_seq: u32,
    /// Packets received (R_RxC of Direct Measurement, RFC 8972 §4.5), including refused
    /// replies (no reply requested).
    pub received: u32,
    /// Packets reflected (R_TxC).
    pub transmitted: u32,
    pub last_seen: Timestamp,
    /// Sequence Number and T3 of the last reflected packet (Follow-Up Telemetry).
    pub last_reflected: Option<(u32, Timestamp)>,
}

/// The shape a datagram was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    TwampLight,
    Stamp(StampMode),
}

/// The STAMP / TWAMP-Light Session-Reflector of one socket. No sockets, no clock of its own.
#[derive(Debug)]
pub struct LightReflector {
    config: LightConfig,
    senders: HashMap<SenderKey, SenderState>,
    counters: LightCounters,
    last_sweep: Option<Timestamp>,
    reply_tos: Option<u8>,
}

impl LightReflector {
    pub fn new(config: LightConfig) -> Self {
        let cap = config.max_senders.clamp(1, 1 << 16);
        LightReflector {
            config,
            senders: HashMap::with_capacity(cap.min(1024)),
            counters: LightCounters::default(),
            last_sweep: None,
            reply_tos: None,
        }
    }

    pub fn config(&self) -> &LightConfig {
        &self.config
    }

    pub fn counters(&self) -> &LightCounters {
        &self.counters
    }

    /// Senders remembered now.
    pub fn senders(&self) -> usize {
        self.senders.len()
    }

    pub fn sender(&self, key: &SenderKey) -> Option<&SenderState> {
        self.senders.get(key)
    }

    /// The TOS octet the I/O layer should send the last reply with, when a Class of Service
    /// TLV asked for one (RFC 8972 §4.4); `None`: the socket's default.
    pub fn reply_tos(&self) -> Option<u8> {
        self.reply_tos
    }

    /// Forgets every sender silent for at least `idle` at `now`; returns how many.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let idle = duration_nanos(self.config.idle);
        let before = self.senders.len();
        self.senders
            .retain(|_, s| now.diff_nanos(s.last_seen) < idle);
        let gone = before - self.senders.len();
        self.counters.senders_expired += gone as u64;
        self.last_sweep = Some(now);
        gone
    }

    /// Writes the reflection of `rx` into `out` and returns its length, at most
    /// `rx.bytes.len()` (see the module docs for the one opt-in exception).
    ///
    /// The reply carries the reflector's Sequence Number (stateful) or the sender's
    /// (stateless), T2 = `rx.at`, the sender's Sequence Number, Timestamp and Error Estimate,
    /// Sender TTL = `rx.ttl` or 255, the SSID, and the TLVs answered:
    /// - Extra Padding: copied (RFC 8972 §4.1);
    /// - Location: the ports of the received packet, and the sub-TLVs answered with the
    ///   source and destination addresses (zero when unknown) and a zero EUI-64 (no MAC here),
    ///   RFC 8972 §4.2.2;
    /// - Timestamp Information: the Synchronization Source, and "SW local" for T2 and T3
    ///   (RFC 8972 §4.3);
    /// - Class of Service: DSCP2 and ECN as received, RP per [`LightConfig::honour_cos`]
    ///   (RFC 8972 §4.4 with erratum 8199);
    /// - Direct Measurement: S_TxC copied, R_RxC and R_TxC from the sender's counters,
    ///   this packet included (RFC 8972 §4.5);
    /// - Access Report: copied; U = 1 for an Access ID other than 1 or 2, which "MUST be
    ///   discarded" (RFC 8972 §4.6);
    /// - Follow-Up Telemetry: Sequence Number and T3 of the previous reply to this sender,
    ///   zero when stateless or when there is none (RFC 8972 §4.7);
    /// - HMAC: verified, then computed over the reply (RFC 8972 §4.8);
    /// - Destination Node Address: U = 0 when it is `rx.local_ip`, else U = 1 (RFC 9503 §3);
    /// - Return Path: only the first (RFC 9503 §4). A Control Code "no reply requested"
    ///   drops the packet ([`DropReason::NoReplyRequested`], still counted as received);
    ///   "same link" is what we do anyway (U = 0). A Return Address or segment list gets U = 1:
    ///   the reply goes back to the source only, never elsewhere (that would make us a
    ///   reflector of traffic at third parties).
    ///
    /// The clock is read last: T3 right before the base HMAC. Nothing is remembered of a
    /// datagram that is dropped before it is read (short, amplifying, bad HMAC).
    pub fn reflect(
        &mut self,
        rx: LightReceived<'_>,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        self.reply_tos = None;
        let r = self.reflect_inner(&rx, clock, out);
        match r {
            Ok(_) => self.counters.reflected += 1,
            Err(e) => self.counters.count(e),
        }
        r
    }

    fn reflect_inner(
        &mut self,
        rx: &LightReceived<'_>,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        let bytes = rx.bytes;
        let len = bytes.len();
        if len < TWAMP_LIGHT_SENDER_BASE {
            return Err(DropReason::Short { len });
        }
        let shape = match self.config.mode {
            StampMode::Authenticated if len < StampMode::Authenticated.base() => {
                return Err(DropReason::Short { len })
            }
            StampMode::Authenticated => Shape::Stamp(StampMode::Authenticated),
            StampMode::Unauthenticated
                if len >= StampMode::Unauthenticated.base()
                    && SessionSenderPacket::mbz_is_zero(bytes) =>
            {
                Shape::Stamp(StampMode::Unauthenticated)
            }
            StampMode::Unauthenticated => Shape::TwampLight,
        };
        let reply_len = match shape {
            Shape::Stamp(_) => len,
            Shape::TwampLight if len >= TWAMP_LIGHT_REFLECTOR_BASE => len,
            Shape::TwampLight if self.config.answer_short_twamp_light => TWAMP_LIGHT_REFLECTOR_BASE,
            Shape::TwampLight => {
                return Err(DropReason::WouldAmplify {
                    len,
                    need: TWAMP_LIGHT_REFLECTOR_BASE,
                })
            }
        };
        if out.len() < reply_len {
            return Err(DropReason::Oversized);
        }
        let out = &mut out[..reply_len];
        if shape == Shape::Stamp(StampMode::Authenticated) {
            // RFC 8762 §4.4: "HMAC MUST be verified as early as possible".
            let good = self
                .config
                .key
                .as_ref()
                .is_some_and(|k| k.verify_base(bytes));
            if !good {
                return Err(DropReason::BadHmac);
            }
        }

        // The sender's fields; lengths were checked above, so these parses succeed.
        let (seq, timestamp, error_estimate, ssid) = match shape {
            Shape::Stamp(mode) => {
                let p = SessionSenderPacket::parse(bytes, mode)
                    .map_err(|_| DropReason::Short { len })?;
                (p.seq, p.timestamp, p.error_estimate, p.ssid)
            }
            Shape::TwampLight => {
                let p = SenderPacket::parse(bytes, &TestLayout::OPEN.sender)
                    .map_err(|_| DropReason::Short { len })?;
                (p.seq, p.timestamp, p.error_estimate, 0)
            }
        };

        let key = SenderKey {
            addr: unmap_ip(rx.from.ip()),
            port: rx.from.port(),
            ssid,
        };
        self.sweep_if_due(rx.at);
        self.make_room_for(&key, rx.at);
        let LightReflector {
            config,
            senders,
            counters,
            reply_tos,
            ..
        } = self;
        let state = senders.entry(key).or_insert(SenderState {
            next_seq: 0,
            received: 0,
            transmitted: 0,
            last_seen: rx.at,
            last_reflected: None,
        });
        state.received = state.received.wrapping_add(1);
        state.last_seen = rx.at;
        let reply_seq = match config.seq_mode {
            SeqMode::Stateful => state.next_seq,
            SeqMode::Stateless => seq,
        };
        let ee = clock.error_estimate();
        let ttl = rx.ttl.unwrap_or(255);

        match shape {
            Shape::TwampLight => {
                let mut p = ReflectorPacket {
                    seq: reply_seq,
                    timestamp: Timestamp::default(),
                    error_estimate: ee,
                    receive_timestamp: rx.at,
                    sender_seq: seq,
                    sender_timestamp: timestamp,
                    sender_error_estimate: error_estimate,
                    sender_ttl: ttl,
                };
                p.emit(out, &TestLayout::OPEN.reflector)
                    .map_err(|_| DropReason::Oversized)?;
                // RFC 5357 §4.2.1: the reflector "MAY re-use the packet padding", truncated so
                // both directions are equal: sender octet 14 + k goes to reply octet 41 + k.
                let pad = reply_len - TWAMP_LIGHT_REFLECTOR_BASE;
                out[TWAMP_LIGHT_REFLECTOR_BASE..].copy_from_slice(
                    &bytes[TWAMP_LIGHT_SENDER_BASE..TWAMP_LIGHT_SENDER_BASE + pad],
                );
                p.timestamp = clock.now();
                p.emit_timestamp(out, &TestLayout::OPEN.reflector);
                counters.twamp_light += 1;
                finish(state, reply_seq, p.timestamp);
                Ok(reply_len)
            }
            Shape::Stamp(mode) => {
                let base = mode.base();
                let p = SessionReflectorPacket {
                    seq: reply_seq,
                    timestamp: Timestamp::default(),
                    error_estimate: ee,
                    ssid,
                    receive_timestamp: rx.at,
                    sender_seq: seq,
                    sender_timestamp: timestamp,
                    sender_error_estimate: error_estimate,
                    sender_ttl: ttl,
                };
                p.emit(out, mode).map_err(|_| DropReason::Oversized)?;
                // RFC 8762 §4.3: the reflected packet is "symmetric to the packet received",
                // "copying the content beyond the size of the base STAMP packet".
                out[base..].copy_from_slice(&bytes[base..]);
                let mut reply_hmac_at = None;
                let area = &bytes[base..];
                if !tlv::is_zero_padding(area) {
                    let ctx = TlvContext {
                        from: SocketAddr::new(unmap_ip(rx.from.ip()), rx.from.port()),
                        local_port: rx.local_port,
                        local_ip: rx.local_ip.map(unmap_ip),
                        tos: rx.tos,
                        seq_mode: config.seq_mode,
                        received: state.received,
                        transmitted: state.transmitted.wrapping_add(1),
                        last_reflected: state.last_reflected,
                        sync_source: config.sync_source.unwrap_or(if ee.synchronized() {
                            value::timestamp_information::SYNC_NTP
                        } else {
                            value::timestamp_information::SYNC_LOCAL_FREE_RUNNING
                        }),
                        honour_cos: config.honour_cos,
                    };
                    let integrity = check_integrity(
                        area,
                        &bytes[..4],
                        config.key.as_ref(),
                        mode == StampMode::Authenticated,
                    );
                    let (tail_hmac, tos) =
                        match answer_tlvs(area, &mut out[base..], integrity, &ctx, counters) {
                            Answer::Reply { hmac_at, tos } => (hmac_at, tos),
                            Answer::NoReply => return Err(DropReason::NoReplyRequested),
                        };
                    *reply_tos = tos;
                    reply_hmac_at = tail_hmac.map(|at| base + at);
                }
                if let (Some(at), Some(k)) = (reply_hmac_at, config.key.as_ref()) {
                    // RFC 8972 §4.8: over the Sequence Number and the TLVs before the HMAC TLV.
                    let tag = k.tag(&[&out[..4], &out[base..at]]);
                    out[at + HEADER_LEN..at + HEADER_LEN + HMAC_LEN].copy_from_slice(&tag);
                }
                let p = SessionReflectorPacket {
                    timestamp: clock.now(),
                    ..p
                };
                p.emit_timestamp(out, mode);
                if mode == StampMode::Authenticated {
                    if let Some(k) = config.key.as_ref() {
                        k.seal_base(out);
                    }
                }
                counters.stamp += 1;
                finish(state, reply_seq, p.timestamp);
                Ok(reply_len)
            }
        }
    }

    fn sweep_if_due(&mut self, now: Timestamp) {
        let half = duration_nanos(self.config.idle) / 2;
        match self.last_sweep {
            None => self.last_sweep = Some(now),
            Some(t) if now.diff_nanos(t) >= half => {
                self.expire(now);
            }
            Some(_) => {}
        }
    }

    /// At the cap, before a new sender is added: expire the idle, else evict the longest idle.
    fn make_room_for(&mut self, key: &SenderKey, now: Timestamp) {
        let cap = self.config.max_senders.max(1);
        if self.senders.len() < cap || self.senders.contains_key(key) {
            return;
        }
        self.expire(now);
        while self.senders.len() >= cap {
            let Some(oldest) = self
                .senders
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
            else {
                break;
            };
            self.senders.remove(&oldest);
            self.counters.senders_evicted += 1;
        }
    }
}

fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// After a reply is built: the state of the sender moves on.
fn finish(state: &mut SenderState, seq: u32, t3: Timestamp) {
    state.next_seq = state.next_seq.wrapping_add(1);
    state.transmitted = state.transmitted.wrapping_add(1);
    state.last_reflected = Some((seq, t3));
}

/// What the TLV handlers need to know about the packet and its sender.
struct TlvContext {
    from: SocketAddr,
    local_port: u16,
    local_ip: Option<IpAddr>,
    tos: Option<u8>,
    seq_mode: SeqMode,
    /// R_RxC and R_TxC, this packet included.
    received: u32,
    transmitted: u32,
    last_reflected: Option<(u32, Timestamp)>,
    sync_source: u8,
    honour_cos: bool,
}

/// The verdict on a TLV area's integrity (RFC 8972 §4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Integrity {
    /// No HMAC TLV, and none required.
    NotNeeded,
    /// The HMAC TLV at this offset of the area verifies.
    Verified { hmac_at: usize },
    /// Required or present, and missing, misplaced, unverifiable or wrong.
    Failed,
}

/// Checks the HMAC TLV of `area` (the TLVs after a base whose Sequence Number is `seq`).
///
/// Required when present, and in authenticated mode whenever a TLV other than Extra Padding
/// is present ("with the sole exception of when there is only one TLV present and it is the
/// Extended Padding TLV", RFC 8972 §4.8; we also let several Extra Padding TLVs through).
/// Misplaced — anything but Extra Padding after it, or a malformed TLV before it — is a failure:
/// "If the HMAC TLV appears in any other position ... MUST be processed as HMAC verification
/// failure" (RFC 8972 §4.8). Without a key it cannot be verified, which we count as a failure
/// too: the sender learns its extensions were not checked.
pub(crate) fn check_integrity(
    area: &[u8],
    seq: &[u8],
    key: Option<&LightKey>,
    authenticated: bool,
) -> Integrity {
    let mut hmac_at = None;
    let mut only_padding = true;
    let mut misplaced = false;
    let mut malformed_hmac = false;
    for e in Tlvs::new(area) {
        match e {
            Entry::Known(t) if t.tlv_type == TlvType::Hmac => {
                if hmac_at.is_some() {
                    misplaced = true;
                } else {
                    hmac_at = Some(t.offset);
                }
                only_padding = false;
            }
            Entry::Known(t) if t.tlv_type == TlvType::ExtraPadding => {}
            Entry::Known(_) | Entry::Unknown(_) => {
                only_padding = false;
                misplaced |= hmac_at.is_some();
            }
            Entry::BadLength(t) => {
                only_padding = false;
                malformed_hmac |= t.tlv_type == TlvType::Hmac;
                misplaced = true;
            }
            Entry::Truncated { .. } => {
                only_padding = false;
                misplaced = true;
            }
        }
    }
    let needed = hmac_at.is_some() || malformed_hmac || (authenticated && !only_padding);
    if !needed {
        return Integrity::NotNeeded;
    }
    let (Some(at), Some(key), false) = (hmac_at, key, misplaced) else {
        return Integrity::Failed;
    };
    let tag = area.get(at + HEADER_LEN..at + HEADER_LEN + HMAC_LEN);
    let preceding = area.get(..at);
    match (tag, preceding) {
        (Some(tag), Some(pre)) if key.verify(&[seq, pre], tag) => {
            Integrity::Verified { hmac_at: at }
        }
        _ => Integrity::Failed,
    }
}

enum Answer {
    Reply {
        /// Offset (in the area) of the HMAC TLV to compute over the reply.
        hmac_at: Option<usize>,
        tos: Option<u8>,
    },
    NoReply,
}

/// Sets a TLV's flags octet in the reply; the reserved bits go out zero (RFC 8972 §4).
fn set_flags(area: &mut [u8], at: usize, flags: u8) {
    if let Some(f) = area.get_mut(at) {
        *f = flags;
    }
}

/// Answers the TLVs of `rx_area` into `out_area` (a copy of it, edited in place).
fn answer_tlvs(
    rx_area: &[u8],
    out_area: &mut [u8],
    integrity: Integrity,
    ctx: &TlvContext,
    counters: &mut LightCounters,
) -> Answer {
    if integrity == Integrity::Failed {
        // RFC 8972 §4.8: "MUST stop processing", "MUST copy the TLVs", "MUST set the I flag
        // in each TLV copied over".
        for e in Tlvs::new(rx_area) {
            let at = e.offset();
            let m = if e.is_malformed() { Flags::M } else { 0 };
            let old = rx_area.get(at).copied().unwrap_or(0) & Flags::U;
            set_flags(out_area, at, old | m | Flags::I);
        }
        counters.tlv_integrity_failed += 1;
        return Answer::Reply {
            hmac_at: None,
            tos: None,
        };
    }
    let mut hmac_at = None;
    let mut tos = None;
    let mut return_path_seen = false;
    for e in Tlvs::new(rx_area) {
        let t = match e {
            Entry::Unknown(t) => {
                // RFC 8972 §4: copy it, set U, skip its processing.
                set_flags(out_area, t.offset, Flags::U);
                counters.tlv_unrecognized += 1;
                continue;
            }
            Entry::BadLength(t) => {
                // RFC 8972 §4: set M, stop processing, copy the rest as received.
                set_flags(out_area, t.offset, Flags::M);
                counters.tlv_malformed += 1;
                if t.tlv_type == TlvType::FollowUpTelemetry {
                    // RFC 8972 §4.7 (erratum 8339): a bad Length zeroes Sequence Number and
                    // Follow-Up Timestamp, as far as they are present.
                    let v0 = t.offset + HEADER_LEN;
                    let n = t.value.len().min(value::follow_up_telemetry::TIMESTAMP_M);
                    if let Some(v) = out_area.get_mut(v0..v0 + n) {
                        v.fill(0);
                    }
                }
                break;
            }
            Entry::Truncated { offset, .. } => {
                set_flags(out_area, offset, Flags::M);
                counters.tlv_malformed += 1;
                break;
            }
            Entry::Known(t) => t,
        };
        set_flags(out_area, t.offset, 0);
        let v0 = t.offset + HEADER_LEN;
        let Some(v) = out_area.get_mut(v0..t.end()) else {
            break;
        };
        let flags = match t.tlv_type {
            TlvType::ExtraPadding => 0,
            TlvType::Location => answer_location(t.value, v, ctx, counters),
            TlvType::TimestampInformation => {
                use value::timestamp_information::*;
                v[SYNC_SRC_IN] = ctx.sync_source;
                v[TIMESTAMP_IN] = METHOD_SW_LOCAL;
                v[SYNC_SRC_OUT] = ctx.sync_source;
                v[TIMESTAMP_OUT] = METHOD_SW_LOCAL;
                0
            }
            TlvType::ClassOfService => {
                let mut a = [0u8; value::class_of_service::LEN];
                a.copy_from_slice(v);
                let (dscp1, _, _, _) = value::class_of_service::read(&a);
                let (dscp2, ecn) = ctx.tos.map_or((0, 0), |t| (t >> 2, t & 0x03));
                let rp = if ctx.honour_cos {
                    tos = Some(dscp1 << 2);
                    0
                } else {
                    tos = ctx.tos.map(|t| t & 0xfc);
                    1
                };
                value::class_of_service::write(&mut a, dscp1, dscp2, ecn, rp);
                v.copy_from_slice(&a);
                0
            }
            TlvType::DirectMeasurement => {
                use value::direct_measurement::*;
                v[R_RXC..R_RXC + 4].copy_from_slice(&ctx.received.to_be_bytes());
                v[R_TXC..R_TXC + 4].copy_from_slice(&ctx.transmitted.to_be_bytes());
                0
            }
            TlvType::AccessReport => {
                use value::access_report::*;
                // Resv and Reserved "MUST be zeroed on transmission".
                v[ID] &= 0xf0;
                v[2..4].fill(0);
                let id = v[ID] >> 4;
                if id == ID_3GPP || id == ID_NON_3GPP {
                    0
                } else {
                    counters.tlv_unrecognized += 1;
                    Flags::U
                }
            }
            TlvType::FollowUpTelemetry => {
                use value::follow_up_telemetry::*;
                v.fill(0);
                if let (SeqMode::Stateful, Some((seq, t3))) = (ctx.seq_mode, ctx.last_reflected) {
                    v[SEQUENCE_NUMBER..SEQUENCE_NUMBER + 4].copy_from_slice(&seq.to_be_bytes());
                    v[FOLLOW_UP_TIMESTAMP..FOLLOW_UP_TIMESTAMP + 8].copy_from_slice(&t3.to_bytes());
                    v[TIMESTAMP_M] = value::timestamp_information::METHOD_SW_LOCAL;
                }
                0
            }
            TlvType::Hmac => {
                if let Integrity::Verified { hmac_at: at } = integrity {
                    if at == t.offset {
                        hmac_at = Some(at);
                    }
                }
                0
            }
            TlvType::DestinationNodeAddress => {
                let addr = match t.value.len() {
                    4 => <[u8; 4]>::try_from(t.value)
                        .ok()
                        .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                    _ => <[u8; 16]>::try_from(t.value)
                        .ok()
                        .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
                };
                if addr.map(unmap_ip).is_some_and(|a| Some(a) == ctx.local_ip) {
                    0
                } else {
                    counters.tlv_unrecognized += 1;
                    Flags::U
                }
            }
            TlvType::ReturnPath => {
                if return_path_seen {
                    // RFC 9503 §4: only the first is processed, the others ignored.
                    counters.tlv_unrecognized += 1;
                    Flags::U
                } else {
                    return_path_seen = true;
                    match answer_return_path(t.value, v, counters) {
                        Some(f) => f,
                        None => return Answer::NoReply,
                    }
                }
            }
            TlvType::Unknown(_) => Flags::U,
        };
        set_flags(out_area, t.offset, flags);
    }
    Answer::Reply { hmac_at, tos }
}

/// Location TLV (RFC 8972 §4.2.2): fills the ports and answers the sub-TLVs; returns the
/// flags of the TLV itself.
fn answer_location(
    rx_value: &[u8],
    v: &mut [u8],
    ctx: &TlvContext,
    counters: &mut LightCounters,
) -> u8 {
    use value::location::*;
    v[DESTINATION_PORT..DESTINATION_PORT + 2].copy_from_slice(&ctx.local_port.to_be_bytes());
    v[SOURCE_PORT..SOURCE_PORT + 2].copy_from_slice(&ctx.from.port().to_be_bytes());
    let Some(subs_rx) = rx_value.get(SUB_TLVS..) else {
        return 0;
    };
    let v4 = ctx.from.ip().is_ipv4();
    for e in Tlvs::with_classifier(subs_rx, tlv::location_sub_tlv_length_is_valid) {
        let s = match e {
            Entry::Known(s) => s,
            Entry::Unknown(s) => {
                set_flags(v, SUB_TLVS + s.offset, Flags::U);
                counters.tlv_unrecognized += 1;
                continue;
            }
            Entry::BadLength(_) | Entry::Truncated { .. } => {
                // Sub-TLV U and M flags are handled "as defined in Section 4" (RFC 8972
                // §4.2.1): M, and the rest of the sub-TLVs is left as received.
                set_flags(v, SUB_TLVS + e.offset(), Flags::M);
                counters.tlv_malformed += 1;
                return 0;
            }
        };
        let at = SUB_TLVS + s.offset;
        let Some(sub) = v.get_mut(at..at + s.len()) else {
            return 0;
        };
        let (ty, addr) = match u8::from(s.tlv_type) {
            // We see no MAC address on a UDP socket: "MUST zero the EUI-64 field".
            SOURCE_MAC | SOURCE_EUI48 | SOURCE_EUI64 => (SOURCE_EUI64, None),
            DESTINATION_IP | DESTINATION_IPV4 | DESTINATION_IPV6 => (
                if v4 {
                    DESTINATION_IPV4
                } else {
                    DESTINATION_IPV6
                },
                ctx.local_ip,
            ),
            _ => (
                if v4 { SOURCE_IPV4 } else { SOURCE_IPV6 },
                Some(ctx.from.ip()),
            ),
        };
        sub[0] = 0;
        sub[1] = ty;
        let val = &mut sub[HEADER_LEN..];
        val.fill(0);
        // The family follows the packet's; an address of the other family (or none) is
        // reported as zeros ("MAY leave some fields unreported by filling them with zeroes").
        match addr {
            Some(IpAddr::V4(a)) if v4 => val[..4].copy_from_slice(&a.octets()),
            Some(IpAddr::V6(a)) if !v4 => val.copy_from_slice(&a.octets()),
            _ => {}
        }
    }
    0
}

/// Return Path TLV (RFC 9503 §4): `None` when the sender asked for no reply, else the flags
/// of the TLV.
fn answer_return_path(rx_value: &[u8], v: &mut [u8], counters: &mut LightCounters) -> Option<u8> {
    use value::return_path::*;
    let mut flags = Flags::U;
    for e in Tlvs::with_classifier(rx_value, tlv::return_path_sub_tlv_length_is_valid) {
        match e {
            Entry::Known(s) if u8::from(s.tlv_type) == CONTROL_CODE => {
                let cc = <[u8; 4]>::try_from(s.value).map_or(0, u32::from_be_bytes);
                if cc & REPLY_SAME_LINK == 0 {
                    // "No Reply Requested"; "All other Return Path Sub-TLVs MUST be ignored".
                    return None;
                }
                set_flags(v, s.offset, 0);
                // The reply leaves on the link the request came in on: what we do anyway.
                return Some(0);
            }
            Entry::Known(s) | Entry::Unknown(s) => {
                // Return Address, segment lists: we cannot (SR) or will not (redirecting
                // replies to a third party) use them; RFC 9503 §4: U = 1 if "it cannot use
                // the Return Path".
                set_flags(v, s.offset, Flags::U);
            }
            Entry::BadLength(_) | Entry::Truncated { .. } => {
                set_flags(v, e.offset(), Flags::M);
                counters.tlv_malformed += 1;
                flags = Flags::M;
                break;
            }
        }
    }
    if flags == Flags::U {
        counters.tlv_unrecognized += 1;
    }
    Some(flags)
}

#[cfg(test)]
mod tests;
