//! STAMP TLVs (RFC 8972 §4): the area after a STAMP base packet, as a sequence of
//! `Flags(1) | Type(1) | Length(2) | Value(Length)` items, all multi-octet fields in network
//! order (RFC 8972 §4).
//!
//! - [`Tlvs`] walks an area and never panics: each item is [`Entry::Known`] (a type we know,
//!   with a Length valid for it), [`Entry::Unknown`] (a type we do not know, within the area),
//!   [`Entry::BadLength`] (a type we know whose Length is not valid for it: "malformed" in
//!   RFC 8972 §4) or [`Entry::Truncated`] (the header or the value runs past the end of the
//!   area: also malformed). After `Truncated` the walk ends, since nothing after it can be
//!   located.
//! - [`TlvWriter`] emits the TLVs a Session-Sender asks for, with the flags RFC 8972 §4
//!   prescribes for a sender (U = 1, M = 0, I = 0).
//!
//! Field offsets are relative to the start of a TLV (its Flags octet). The value layouts of the
//! types the Session-Reflector fills are in the `value` module, so the reflector and the
//! sender read them from one table.

use std::net::IpAddr;

use super::{Error, Result};

/// Flags, Type and Length: 4 octets (RFC 8972 §4, Figure 3).
pub const HEADER_LEN: usize = 4;

/// STAMP TLV Flags (RFC 8972 §4; IANA "STAMP TLV Flags": bit 0 U, bit 1 M, bit 2 I, the
/// rest reserved, zeroed on transmit and ignored on receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// U (Unrecognized): set by the Session-Sender; cleared by a Session-Reflector that
    /// understood the TLV, left set by one that did not.
    pub const U: u8 = 0x80;
    /// M (Malformed): set by the Session-Reflector on a TLV whose Length is not valid for its
    /// type or runs past the end of the packet.
    pub const M: u8 = 0x40;
    /// I (Integrity): set by the Session-Reflector on every TLV when HMAC verification of the
    /// extensions failed.
    pub const I: u8 = 0x20;
    /// What a Session-Sender puts in every TLV it sends (RFC 8972 §4: U = 1, M = 0, I = 0).
    pub const SENDER: Flags = Flags(Self::U);

    pub fn u(self) -> bool {
        self.0 & Self::U != 0
    }
    pub fn m(self) -> bool {
        self.0 & Self::M != 0
    }
    pub fn i(self) -> bool {
        self.0 & Self::I != 0
    }
}

/// STAMP TLV Types (IANA "STAMP TLV Types"; RFC 8972 §5.1, RFC 9503 §5). Unknown values are
/// kept, so an unrecognised TLV is echoed with its own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlvType {
    /// 1 (RFC 8972 §4.1).
    ExtraPadding,
    /// 2 (RFC 8972 §4.2).
    Location,
    /// 3 (RFC 8972 §4.3).
    TimestampInformation,
    /// 4 (RFC 8972 §4.4).
    ClassOfService,
    /// 5 (RFC 8972 §4.5).
    DirectMeasurement,
    /// 6 (RFC 8972 §4.6).
    AccessReport,
    /// 7 (RFC 8972 §4.7).
    FollowUpTelemetry,
    /// 8 (RFC 8972 §4.8).
    Hmac,
    /// 9 (RFC 9503 §3).
    DestinationNodeAddress,
    /// 10 (RFC 9503 §4).
    ReturnPath,
    /// 0 and 255 (Reserved), anything unassigned, and types from later documents we do not
    /// implement (e.g. 11, Micro-session ID, RFC 9534).
    Unknown(u8),
}

impl From<u8> for TlvType {
    fn from(v: u8) -> Self {
        match v {
            1 => TlvType::ExtraPadding,
            2 => TlvType::Location,
            3 => TlvType::TimestampInformation,
            4 => TlvType::ClassOfService,
            5 => TlvType::DirectMeasurement,
            6 => TlvType::AccessReport,
            7 => TlvType::FollowUpTelemetry,
            8 => TlvType::Hmac,
            9 => TlvType::DestinationNodeAddress,
            10 => TlvType::ReturnPath,
            other => TlvType::Unknown(other),
        }
    }
}

impl From<TlvType> for u8 {
    fn from(t: TlvType) -> u8 {
        match t {
            TlvType::ExtraPadding => 1,
            TlvType::Location => 2,
            TlvType::TimestampInformation => 3,
            TlvType::ClassOfService => 4,
            TlvType::DirectMeasurement => 5,
            TlvType::AccessReport => 6,
            TlvType::FollowUpTelemetry => 7,
            TlvType::Hmac => 8,
            TlvType::DestinationNodeAddress => 9,
            TlvType::ReturnPath => 10,
            TlvType::Unknown(v) => v,
        }
    }
}

impl TlvType {
    /// Whether `len` is a valid Length for this type; `None` for an unknown type.
    pub fn length_is_valid(self, len: usize) -> Option<bool> {
        Some(match self {
            // Any length, including 0 (RFC 8972 §4.1).
            TlvType::ExtraPadding => true,
            // Destination Port, Source Port, then sub-TLVs (RFC 8972 §4.2).
            TlvType::Location => len >= value::location::SUB_TLVS,
            // Four one-octet fields (RFC 8972 §4.3; stamp-suite checks exactly 4 too†).
            TlvType::TimestampInformation => len == value::timestamp_information::LEN,
            TlvType::ClassOfService => len == value::class_of_service::LEN,
            TlvType::DirectMeasurement => len == value::direct_measurement::LEN,
            TlvType::AccessReport => len == value::access_report::LEN,
            TlvType::FollowUpTelemetry => len == value::follow_up_telemetry::LEN,
            TlvType::Hmac => len == value::HMAC_LEN,
            // An IPv4 or an IPv6 address (RFC 9503 §3).
            TlvType::DestinationNodeAddress => len == 4 || len == 16,
            // At least one sub-TLV (RFC 9503 §4).
            TlvType::ReturnPath => len >= HEADER_LEN,
            TlvType::Unknown(_) => return None,
        })
    }
}

/// Value layouts of the TLVs a Session-Reflector fills, offsets from the start of the Value.
pub mod value {
    /// HMAC TLV: HMAC-SHA-256 truncated to 128 bits (RFC 8972 §4.8, RFC 8762 §4.4).
    pub const HMAC_LEN: usize = 16;

    /// Location TLV (RFC 8972 §4.2): ports of the received packet, then sub-TLVs in the TLV
    /// format (RFC 8972 §4.2.1).
    pub mod location {
        pub const DESTINATION_PORT: usize = 0;
        pub const SOURCE_PORT: usize = 2;
        pub const SUB_TLVS: usize = 4;
        /// Sub-TLV types (IANA "STAMP Sub-TLV Types", RFC 8972 §4.2.1 Table 5).
        pub const SOURCE_MAC: u8 = 1;
        pub const SOURCE_EUI48: u8 = 2;
        pub const SOURCE_EUI64: u8 = 3;
        pub const DESTINATION_IP: u8 = 4;
        pub const DESTINATION_IPV4: u8 = 5;
        pub const DESTINATION_IPV6: u8 = 6;
        pub const SOURCE_IP: u8 = 7;
        pub const SOURCE_IPV4: u8 = 8;
        pub const SOURCE_IPV6: u8 = 9;
        /// Value length of the MAC sub-TLVs (types 1–3).
        pub const MAC_LEN: usize = 8;
        /// Value length of the IP address sub-TLVs (types 4–9); IPv4 is followed by 12 MBZ.
        pub const IP_LEN: usize = 16;
    }

    /// Timestamp Information TLV (RFC 8972 §4.3).
    pub mod timestamp_information {
        pub const SYNC_SRC_IN: usize = 0;
        pub const TIMESTAMP_IN: usize = 1;
        pub const SYNC_SRC_OUT: usize = 2;
        pub const TIMESTAMP_OUT: usize = 3;
        pub const LEN: usize = 4;
        /// STAMP Synchronization Sources (RFC 8972 §5.4 Table 7).
        pub const SYNC_NTP: u8 = 1;
        pub const SYNC_PTP: u8 = 2;
        pub const SYNC_SSU_BITS: u8 = 3;
        pub const SYNC_GNSS: u8 = 4;
        pub const SYNC_LOCAL_FREE_RUNNING: u8 = 5;
        /// STAMP Timestamping Methods (RFC 8972 §5.5 Table 9).
        pub const METHOD_HW_ASSIST: u8 = 1;
        pub const METHOD_SW_LOCAL: u8 = 2;
        pub const METHOD_CONTROL_PLANE: u8 = 3;
    }

    /// Class of Service TLV (RFC 8972 §4.4): DSCP1(6) | DSCP2(6) | ECN(2) | RP(2) |
    /// Reserved(16). Bit positions read from the RFC's figure as quoted by peers†.
    pub mod class_of_service {
        pub const LEN: usize = 4;

        /// (DSCP1, DSCP2, ECN, RP).
        pub fn read(v: &[u8; LEN]) -> (u8, u8, u8, u8) {
            let w = u16::from_be_bytes([v[0], v[1]]);
            (
                (w >> 10) as u8 & 0x3f,
                (w >> 4) as u8 & 0x3f,
                (w >> 2) as u8 & 0x03,
                w as u8 & 0x03,
            )
        }

        /// Writes all four octets; Reserved is zeroed.
        pub fn write(v: &mut [u8; LEN], dscp1: u8, dscp2: u8, ecn: u8, rp: u8) {
            let w = (u16::from(dscp1 & 0x3f) << 10)
                | (u16::from(dscp2 & 0x3f) << 4)
                | (u16::from(ecn & 0x03) << 2)
                | u16::from(rp & 0x03);
            v[..2].copy_from_slice(&w.to_be_bytes());
            v[2..].fill(0);
        }
    }

    /// Direct Measurement TLV (RFC 8972 §4.5).
    pub mod direct_measurement {
        pub const S_TXC: usize = 0;
        pub const R_RXC: usize = 4;
        pub const R_TXC: usize = 8;
        pub const LEN: usize = 12;
    }

    /// Access Report TLV (RFC 8972 §4.6): ID(4) | Resv(4) | Return Code(8) | Reserved(16).
    pub mod access_report {
        pub const ID: usize = 0;
        pub const RETURN_CODE: usize = 1;
        pub const LEN: usize = 4;
        /// Access IDs: "All other values are invalid" (RFC 8972 §4.6).
        pub const ID_3GPP: u8 = 1;
        pub const ID_NON_3GPP: u8 = 2;
    }

    /// Follow-Up Telemetry TLV (RFC 8972 §4.7).
    pub mod follow_up_telemetry {
        pub const SEQUENCE_NUMBER: usize = 0;
        pub const FOLLOW_UP_TIMESTAMP: usize = 4;
        pub const TIMESTAMP_M: usize = 12;
        pub const LEN: usize = 16;
    }

    /// Return Path TLV sub-TLVs (RFC 9503 §4.1).
    pub mod return_path {
        pub const CONTROL_CODE: u8 = 1;
        pub const RETURN_ADDRESS: u8 = 2;
        pub const SR_MPLS_LABEL_STACK: u8 = 3;
        pub const SRV6_SEGMENT_LIST: u8 = 4;
        /// Control Code Flags bit 0 (the least significant): "Reply Requested on the Same
        /// Link"; clear means "No Reply Requested" (RFC 9503 §4.1.1)†.
        pub const REPLY_SAME_LINK: u32 = 0x1;
    }
}

/// One TLV whose header and value lie inside the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// Offset of the Flags octet from the start of the area.
    pub offset: usize,
    pub flags: Flags,
    pub tlv_type: TlvType,
    pub value: &'a [u8],
}

impl Tlv<'_> {
    /// Header plus value.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of the octet after this TLV, from the start of the area.
    pub fn end(&self) -> usize {
        self.offset + self.len()
    }
}

/// One item of a TLV area (RFC 8972 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A type we know, with a Length valid for it.
    Known(Tlv<'a>),
    /// A type we do not know; the Session-Reflector copies it with U set.
    Unknown(Tlv<'a>),
    /// A type we know with a Length not valid for it (malformed, RFC 8972 §4).
    BadLength(Tlv<'a>),
    /// Fewer than 4 octets left for a header, or a Length past the end of the area (malformed,
    /// RFC 8972 §4). `offset` is where the header starts; the walk ends here.
    Truncated { offset: usize, remaining: usize },
}

impl Entry<'_> {
    /// Offset of the item's first octet (its Flags) from the start of the area.
    pub fn offset(&self) -> usize {
        match self {
            Entry::Known(t) | Entry::Unknown(t) | Entry::BadLength(t) => t.offset,
            Entry::Truncated { offset, .. } => *offset,
        }
    }

    pub fn is_malformed(&self) -> bool {
        matches!(self, Entry::BadLength(_) | Entry::Truncated { .. })
    }
}

/// Iterator over the TLVs of an area. Never panics, on any bytes.
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    area: &'a [u8],
    pos: usize,
    done: bool,
    /// Whether a (type, Length) pair is valid; `None` for an unknown type.
    classify: fn(u8, usize) -> Option<bool>,
}

impl<'a> Tlvs<'a> {
    /// The top-level TLVs of a STAMP packet (RFC 8972 §4), classified by [`TlvType`].
    pub fn new(area: &'a [u8]) -> Self {
        Self::with_classifier(area, |ty, len| TlvType::from(ty).length_is_valid(len))
    }

    /// Sub-TLVs, which share the TLV format but have their own type registry (RFC 8972
    /// §4.2.1, RFC 9503 §4.1): `classify(type, length)` says whether the Length is valid,
    /// `None` for an unknown type. Their `tlv_type` is read with `u8::from`.
    pub fn with_classifier(area: &'a [u8], classify: fn(u8, usize) -> Option<bool>) -> Self {
        Tlvs {
            area,
            pos: 0,
            done: false,
            classify,
        }
    }
}

/// Lengths of the Location sub-TLVs (RFC 8972 §4.2.1).
pub fn location_sub_tlv_length_is_valid(ty: u8, len: usize) -> Option<bool> {
    use value::location::*;
    match ty {
        SOURCE_MAC | SOURCE_EUI48 | SOURCE_EUI64 => Some(len == MAC_LEN),
        DESTINATION_IP..=SOURCE_IPV6 => Some(len == IP_LEN),
        _ => None,
    }
}

/// Lengths of the Return Path sub-TLVs (RFC 9503 §4.1): Control Code 4; Return Address an
/// IPv4 or IPv6 address; segment lists at least one entry (4-octet labels, 16-octet SIDs).
pub fn return_path_sub_tlv_length_is_valid(ty: u8, len: usize) -> Option<bool> {
    use value::return_path::*;
    match ty {
        CONTROL_CODE => Some(len == 4),
        RETURN_ADDRESS => Some(len == 4 || len == 16),
        SR_MPLS_LABEL_STACK => Some(len > 0 && len.is_multiple_of(4)),
        SRV6_SEGMENT_LIST => Some(len > 0 && len.is_multiple_of(16)),
        _ => None,
    }
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.done {
            return None;
        }
        let rest = self.area.get(self.pos..).unwrap_or(&[]);
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        let offset = self.pos;
        let (Some(&flags), Some(&ty), Some(len)) = (
            rest.first(),
            rest.get(1),
            rest.get(2..4)
                .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]]))),
        ) else {
            self.done = true;
            return Some(Entry::Truncated {
                offset,
                remaining: rest.len(),
            });
        };
        let Some(value) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            self.done = true;
            return Some(Entry::Truncated {
                offset,
                remaining: rest.len(),
            });
        };
        self.pos += HEADER_LEN + len;
        let tlv = Tlv {
            offset,
            flags: Flags(flags),
            tlv_type: TlvType::from(ty),
            value,
        };
        Some(match (self.classify)(ty, len) {
            Some(true) => Entry::Known(tlv),
            Some(false) => Entry::BadLength(tlv),
            None => Entry::Unknown(tlv),
        })
    }
}

/// True when the area is all zero octets. Such an area is the zero padding of a TWAMP-Light
/// sender rather than a chain of Reserved (type 0) TLVs: see `light` for why it is copied
/// untouched.
pub fn is_zero_padding(area: &[u8]) -> bool {
    area.iter().all(|&b| b == 0)
}

/// Writes TLVs one after the other into a buffer, with the Session-Sender's flags.
pub struct TlvWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> TlvWriter<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        TlvWriter { buf, pos: 0 }
    }

    /// Octets written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Writes one TLV with `flags`, `tlv_type` and a zeroed value of `value_len` octets, and
    /// returns the value for the caller to fill. Fails (writing nothing) if it does not fit
    /// or `value_len` exceeds the 16-bit Length.
    pub fn push(&mut self, flags: Flags, tlv_type: TlvType, value_len: usize) -> Result<&mut [u8]> {
        let length = u16::try_from(value_len).map_err(|_| Error::BadField {
            field: "TLV Length",
            value: value_len as u32,
        })?;
        let need = self.pos + HEADER_LEN + value_len;
        let got = self.buf.len();
        let Some(tlv) = self.buf.get_mut(self.pos..need) else {
            return Err(Error::Truncated { need, got });
        };
        tlv[0] = flags.0;
        tlv[1] = u8::from(tlv_type);
        tlv[2..4].copy_from_slice(&length.to_be_bytes());
        tlv[HEADER_LEN..].fill(0);
        self.pos = need;
        Ok(&mut tlv[HEADER_LEN..])
    }

    /// Extra Padding (RFC 8972 §4.1) of `value_len` zero octets ("MAY be filled with all
    /// zeros"); the I/O layer may overwrite them with pseudorandom octets.
    pub fn extra_padding(&mut self, value_len: usize) -> Result<()> {
        self.push(Flags::SENDER, TlvType::ExtraPadding, value_len)
            .map(|_| ())
    }

    /// Location (RFC 8972 §4.2) asking for the Source MAC, Destination IP and Source IP. The
    /// sender "MUST NOT fill any information fields": ports and sub-TLV values stay zero.
    pub fn location(&mut self) -> Result<()> {
        use value::location::*;
        let subs = [
            (SOURCE_MAC, MAC_LEN),
            (DESTINATION_IP, IP_LEN),
            (SOURCE_IP, IP_LEN),
        ];
        let len = SUB_TLVS + subs.iter().map(|(_, l)| HEADER_LEN + l).sum::<usize>();
        let v = self.push(Flags::SENDER, TlvType::Location, len)?;
        let mut at = SUB_TLVS;
        for (ty, l) in subs {
            v[at] = Flags::SENDER.0;
            v[at + 1] = ty;
            v[at + 2..at + 4].copy_from_slice(&(l as u16).to_be_bytes());
            at += HEADER_LEN + l;
        }
        Ok(())
    }

    /// Timestamp Information (RFC 8972 §4.3): all four fields zero, for the reflector to fill.
    pub fn timestamp_information(&mut self) -> Result<()> {
        self.push(
            Flags::SENDER,
            TlvType::TimestampInformation,
            value::timestamp_information::LEN,
        )
        .map(|_| ())
    }

    /// Class of Service (RFC 8972 §4.4): DSCP1 is the DSCP the sender asks the reflected
    /// packet to carry; DSCP2, ECN and RP (the sender "MUST set ... RP to 0") stay zero.
    pub fn class_of_service(&mut self, dscp1: u8) -> Result<()> {
        let v = self.push(
            Flags::SENDER,
            TlvType::ClassOfService,
            value::class_of_service::LEN,
        )?;
        let mut a = [0u8; value::class_of_service::LEN];
        value::class_of_service::write(&mut a, dscp1, 0, 0, 0);
        v.copy_from_slice(&a);
        Ok(())
    }

    /// Direct Measurement (RFC 8972 §4.5): S_TxC = the sender's count of transmitted
    /// packets; the reflector's counters are zeroed.
    pub fn direct_measurement(&mut self, s_txc: u32) -> Result<()> {
        let v = self.push(
            Flags::SENDER,
            TlvType::DirectMeasurement,
            value::direct_measurement::LEN,
        )?;
        v[..4].copy_from_slice(&s_txc.to_be_bytes());
        Ok(())
    }

    /// Access Report (RFC 8972 §4.6): Access ID (1 3GPP, 2 non-3GPP) and Return Code.
    pub fn access_report(&mut self, access_id: u8, return_code: u8) -> Result<()> {
        let v = self.push(
            Flags::SENDER,
            TlvType::AccessReport,
            value::access_report::LEN,
        )?;
        v[0] = (access_id & 0x0f) << 4;
        v[1] = return_code;
        Ok(())
    }

    /// Follow-Up Telemetry (RFC 8972 §4.7): zeroed, for the reflector to fill.
    pub fn follow_up_telemetry(&mut self) -> Result<()> {
        self.push(
            Flags::SENDER,
            TlvType::FollowUpTelemetry,
            value::follow_up_telemetry::LEN,
        )
        .map(|_| ())
    }

    /// Destination Node Address (RFC 9503 §3): the address the sender means to reach.
    pub fn destination_node_address(&mut self, addr: IpAddr) -> Result<()> {
        match addr {
            IpAddr::V4(a) => self
                .push(Flags::SENDER, TlvType::DestinationNodeAddress, 4)?
                .copy_from_slice(&a.octets()),
            IpAddr::V6(a) => self
                .push(Flags::SENDER, TlvType::DestinationNodeAddress, 16)?
                .copy_from_slice(&a.octets()),
        }
        Ok(())
    }

    /// Return Path (RFC 9503 §4) with one Control Code sub-TLV (RFC 9503 §4.1.1).
    pub fn return_path_control_code(&mut self, flags: u32) -> Result<()> {
        let v = self.push(Flags::SENDER, TlvType::ReturnPath, HEADER_LEN + 4)?;
        v[0] = Flags::SENDER.0;
        v[1] = value::return_path::CONTROL_CODE;
        v[2..4].copy_from_slice(&4u16.to_be_bytes());
        v[4..8].copy_from_slice(&flags.to_be_bytes());
        Ok(())
    }

    /// The HMAC TLV (RFC 8972 §4.8) with a zero HMAC, for the security layer to fill; it must
    /// be the last TLV but Extra Padding. Returns its offset in the buffer.
    pub fn hmac_placeholder(&mut self) -> Result<usize> {
        let at = self.pos;
        self.push(Flags::SENDER, TlvType::Hmac, value::HMAC_LEN)?;
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static AREA: [u8; 35] = [
        0x80, 0x01, 0x00, 0x02,             // Flags U, Type 1 Extra Padding, Length 2
        0xaa, 0xbb,                         //   Extra Padding
        0x80, 0x04, 0x00, 0x04,             // Flags U, Type 4 Class of Service, Length 4
        0xb8, 0x00, 0x00, 0x00,             //   DSCP1 46 (EF), DSCP2 0, ECN 0, RP 0, Reserved
        0x80, 0x63, 0x00, 0x01,             // Flags U, Type 99 (unassigned), Length 1
        0x5a,                               //   Value
        0x80, 0x05, 0x00, 0x03,             // Flags U, Type 5 Direct Measurement, Length 3 (needs 12)
        0x01, 0x02, 0x03,                   //   Value
        0x80, 0x08, 0x00, 0x10,             // Flags U, Type 8 HMAC, Length 16 ...
        0x00, 0x00, 0x00, 0x00, 0x00,       //   ... but only 5 octets left
    ];

    #[test]
    fn walks_known_unknown_bad_length_and_truncated() {
        let entries: Vec<Entry<'_>> = Tlvs::new(&AREA).collect();
        assert_eq!(entries.len(), 5);
        let Entry::Known(pad) = entries[0] else {
            panic!("{:?}", entries[0])
        };
        assert_eq!(
            (pad.tlv_type, pad.value, pad.flags),
            (TlvType::ExtraPadding, &[0xaa, 0xbb][..], Flags::SENDER)
        );
        let Entry::Known(cos) = entries[1] else {
            panic!("{:?}", entries[1])
        };
        assert_eq!(cos.offset, 6);
        let v: [u8; 4] = cos.value.try_into().unwrap();
        assert_eq!(value::class_of_service::read(&v), (46, 0, 0, 0));
        assert!(matches!(entries[2], Entry::Unknown(t) if t.tlv_type == TlvType::Unknown(99)));
        assert!(
            matches!(entries[3], Entry::BadLength(t) if t.tlv_type == TlvType::DirectMeasurement)
        );
        assert_eq!(
            entries[4],
            Entry::Truncated {
                offset: 26,
                remaining: 9
            }
        );
        assert!(entries[4].is_malformed() && entries[3].is_malformed());
    }

    #[test]
    fn every_truncation_of_the_area_is_handled() {
        for n in 0..=AREA.len() {
            let entries: Vec<Entry<'_>> = Tlvs::new(&AREA[..n]).collect();
            // Walking covers the area exactly: each entry starts where the last ended.
            let mut at = 0;
            for e in &entries {
                assert_eq!(e.offset(), at, "n={n}");
                at = match e {
                    Entry::Known(t) | Entry::Unknown(t) | Entry::BadLength(t) => t.end(),
                    Entry::Truncated { remaining, .. } => at + remaining,
                };
            }
            assert_eq!(at, n);
        }
        assert_eq!(Tlvs::new(&[]).count(), 0);
        assert_eq!(
            Tlvs::new(&[0x80]).collect::<Vec<_>>(),
            vec![Entry::Truncated {
                offset: 0,
                remaining: 1
            }]
        );
    }

    #[test]
    fn types_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(TlvType::from(v)), v);
        }
        assert_eq!(TlvType::from(0), TlvType::Unknown(0));
        assert_eq!(TlvType::from(255), TlvType::Unknown(255));
        assert_eq!(TlvType::from(11), TlvType::Unknown(11));
    }

    #[test]
    fn writer_emits_sender_tlvs() {
        let mut buf = [0xa5u8; 128];
        let mut w = TlvWriter::new(&mut buf);
        w.class_of_service(46).unwrap();
        w.direct_measurement(7).unwrap();
        w.access_report(1, 2).unwrap();
        w.return_path_control_code(1).unwrap();
        w.destination_node_address("192.0.2.1".parse().unwrap())
            .unwrap();
        let at = w.hmac_placeholder().unwrap();
        let n = w.len();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0x80, 0x04, 0x00, 0x04, 0xb8, 0x00, 0x00, 0x00,             // Class of Service, DSCP1 46
            0x80, 0x05, 0x00, 0x0c,                                     // Direct Measurement
            0x00, 0x00, 0x00, 0x07,                                     //   S_TxC 7
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,             //   R_RxC, R_TxC zero
            0x80, 0x06, 0x00, 0x04, 0x10, 0x02, 0x00, 0x00,             // Access Report: ID 1, Return Code 2
            0x80, 0x0a, 0x00, 0x08,                                     // Return Path, Length 8
            0x80, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,             //   Control Code: reply, same link
            0x80, 0x09, 0x00, 0x04, 192, 0, 2, 1,                       // Destination Node Address
            0x80, 0x08, 0x00, 0x10,                                     // HMAC TLV ...
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,             //   ... zero, filled later
        ];
        assert_eq!(&buf[..n], want);
        assert_eq!(at, n - 20);
        assert!(buf[n..].iter().all(|&b| b == 0xa5));
        let kinds: Vec<bool> = Tlvs::new(&buf[..n])
            .map(|e| matches!(e, Entry::Known(_)))
            .collect();
        assert_eq!(kinds, vec![true; 6]);
    }

    #[test]
    fn writer_refuses_what_does_not_fit() {
        let mut buf = [0u8; 10];
        let mut w = TlvWriter::new(&mut buf);
        assert_eq!(w.timestamp_information(), Ok(()), "4 + 4 octets fit in 10");
        assert_eq!(
            w.timestamp_information(),
            Err(Error::Truncated { need: 16, got: 10 })
        );
        assert_eq!(w.len(), 8, "a refused TLV writes nothing");
        let mut big = vec![0u8; 70_000];
        assert!(TlvWriter::new(&mut big).extra_padding(65_536).is_err());
    }

    #[test]
    fn location_request_is_well_formed() {
        let mut buf = [0u8; 64];
        let mut w = TlvWriter::new(&mut buf);
        w.location().unwrap();
        let n = w.len();
        assert_eq!(n, 4 + 4 + 12 + 20 + 20);
        let Some(Entry::Known(t)) = Tlvs::new(&buf[..n]).next() else {
            panic!()
        };
        let subs: Vec<Entry<'_>> =
            Tlvs::with_classifier(&t.value[4..], location_sub_tlv_length_is_valid).collect();
        assert_eq!(subs.len(), 3);
        assert!(subs.iter().all(|e| matches!(e, Entry::Known(_))));
        assert!(
            t.value[..4].iter().all(|&b| b == 0),
            "ports left to the reflector"
        );
    }
}
