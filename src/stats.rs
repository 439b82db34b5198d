//! PLACEHOLDER until the stats module lands.
use crate::time::{ErrorEstimate, Timestamp};
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    pub seq: u32,
    pub t1: Timestamp,
    pub t1_err: ErrorEstimate,
}
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    pub sender_seq: u32,
    pub reflector_seq: u32,
    pub t1: Timestamp,
    pub t1_err: ErrorEstimate,
    pub t2: Timestamp,
    pub t2_err: ErrorEstimate,
    pub t3: Timestamp,
    pub t3_err: ErrorEstimate,
    pub t4: Timestamp,
    pub t4_err: ErrorEstimate,
    pub sender_ttl: u8,
    pub ttl: Option<u8>,
}
