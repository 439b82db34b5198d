//! Statistics of one TWAMP test session: per-packet records in, a [`Summary`] out.
//!
//! Pure code: no I/O and no clock. The Session-Sender (RFC 5357 §4.1) records what it sent
//! ([`Sent`]) and what came back, in arrival order ([`Reply`]). [`summarize`] turns them into a
//! [`Summary`], [`per_packet`] into one [`PacketResult`] per test packet, and [`histogram`] bins
//! delays for twping-style `BUCKETS` and terminal histograms.
//!
//! # Invariants
//!
//! - Nothing here panics, whatever the input: empty slices, every packet lost, duplicates,
//!   replies for packets never sent, sequence numbers near `u32::MAX`, garbage timestamps.
//! - Every `f64` in a [`Summary`] is finite. Where there is no data the field is `None` (a
//!   ratio over nothing is 0).
//! - All times are in seconds. Delays are computed in whole nanoseconds
//!   ([`Timestamp::diff_nanos`]) and converted once, so equal inputs give equal outputs.
//! - One-way delays are never clamped, dropped or hidden. They are flagged instead
//!   ([`Summary::sync`], [`Summary::one_way_valid`], [`Summary::negative_forward`]).
//!
//! # Definitions
//!
//! T1 = the Session-Sender's send time, T2 = the Session-Reflector's Receive Timestamp, T3 = the
//! reflector's (transmit) Timestamp, T4 = our receive time (RFC 5357 §4.1.2, §4.2.1).
//!
//! - **Sample.** Every delay statistic is computed over *samples*: for each distinct sender
//!   Sequence Number in `sent` that came back, its *first* reply in arrival order. Later replies
//!   for the same number are duplicates: counted, never measured. T1 and its Error Estimate come
//!   from our own [`Sent`] record, not from the copy the reflector echoes; replies whose echoed
//!   T1 differs are counted in [`Summary::t1_mismatch`]. A sequence number repeated in `sent`
//!   counts once (its first entry).
//! - **Round-trip delay** (RFC 2681, with the reflector's processing time taken out as
//!   RFC 5357 §4.2.1's two reflector timestamps allow, and as twping does):
//!   RTT = (T4 − T1) − (T3 − T2).
//! - **One-way delay** (RFC 7679 §3): forward = T2 − T1, backward = T4 − T3. Only meaningful
//!   when both clocks are synchronised; with unsynchronised clocks they carry the clock offset
//!   and may be negative. They are reported anyway, flagged.
//! - **Reflector processing time**: T3 − T2.
//! - **Loss** (RFC 7680 §2 one-way, RFC 6673 round-trip): a sent packet none of whose
//!   replies came back. `lost = sent − received`, `loss_ratio = lost / sent` (0 when nothing was
//!   sent). A packet still in flight when the caller stopped waiting is lost.
//! - **Loss direction.** A stateful reflector numbers the packets it reflects 0, 1, 2, …
//!   (RFC 5357 §4.2.1, Sequence Number). So every reflector number below the highest one seen
//!   was reflected; those that never arrived were lost on the way back. `lost_backward` = the
//!   reflector numbers missing below the highest seen, capped at `lost` (a forward duplicate
//!   whose reflection was lost leaves a gap without a lost packet);
//!   `lost_forward = lost − lost_backward`. A packet lost after the last reflection we saw
//!   leaves no gap, so it cannot be attributed and is counted as **forward**;
//!   `lost_unattributed` says how many of `lost_forward` are such guesses (the lost packets
//!   sent after the last packet that came back). A stateless reflector that copies the sender's
//!   number instead of counting (STAMP's stateless mode, RFC 8762; twamp-light) makes every
//!   loss before the last reply look backward: nothing here can tell such a reflector apart.
//! - **Duplicates** (RFC 5560): replies beyond the first for a sender Sequence Number.
//!   Forward: the reflector reflected the same sender number more than once (same sender number,
//!   different reflector numbers). Backward: the same reflection (same sender and reflector
//!   numbers) arrived more than once. `duplicates = duplicates_forward + duplicates_backward`.
//!   (Behind a stateless reflector, a forward duplicate keeps its number and counts as backward.)
//! - **Reordering** (RFC 4737 §3, Type-P-Reordered, and §4.1, Type-P-Reordered-Ratio-Stream):
//!   walking a stream in arrival order with NextExp = (highest number seen so far) + 1, a packet
//!   whose number is below NextExp is reordered. Duplicates are left out (RFC 4737 considers only
//!   the first copy). `reordered_ratio = reordered / packets`. Forward: sender numbers taken in
//!   reflector-number order (the order the reflector received them). Backward: reflector numbers
//!   in our arrival order. Round trip: sender numbers in our arrival order. Sender numbers are
//!   compared by their position in `sent`, so a sender that skips a number is not penalised.
//! - **IPDV**, inter-packet delay variation (RFC 3393 §2.4, RFC 5481 §4.1):
//!   IPDV(i) = D(i) − D(i−1) for two consecutive packets of the stream, both received
//!   (RFC 3393 §4.1: a pair with a lost packet has no IPDV). Forward and round trip pair
//!   consecutive sender numbers (the Session-Sender's stream); backward pairs consecutive
//!   reflector numbers (the reflector's stream). Reported: min and max of the signed values,
//!   and mean, P95 and P99 of |IPDV|. The clock offset cancels, so one-way IPDV is meaningful
//!   even without synchronised clocks (skew aside).
//! - **PDV**, packet delay variation (RFC 5481 §4.2): PDV(i) = D(i) − D(min) over all samples;
//!   reported as median, P95, P99 and max.
//! - **twping's "jitter"** (owamp `doc/owping_report.man`; `PDV` in `twping -M`): P95 − P50 of
//!   the delay, here P95 − median with the percentiles below. twping takes its percentiles from
//!   a histogram of `BUCKET_WIDTH` resolution, so its figures are coarser than ours.
//! - **RFC 3550 interarrival jitter** (RFC 3550 §6.4.1, Appendix A.8; what twampy and twamp-rs
//!   call jitter): J starts at 0 and for each sample after the first, in arrival order,
//!   J += (|D(i) − D(i−1)| − J) / 16, where D is the transit time (the delay). Arrival order is
//!   the reflector's (reflector number order) for forward, ours for backward and round trip.
//!   `None` with fewer than two samples.
//! - **Error estimates** (RFC 4656 §4.1.2): `maxerr` = max over samples of the T1 and T4
//!   estimates added (round trip), `maxerr_fwd` of T1 + T2, `maxerr_bck` of T3 + T4, in seconds.
//! - **sync**: true only if there is at least one sample and every Error Estimate of every
//!   sample (T1, T2, T3, T4) has the S bit. `one_way_valid` = `sync` and no negative one-way
//!   delay.
//! - **Hops** (RFC 5357 §4.2.1, Sender TTL): we send with TTL 255 and the reflector replies
//!   with 255, so forward hops = 255 − Sender TTL and backward hops = 255 − the TTL we saw.
//! - **Percentiles**: nearest rank on the sorted values: the P-th percentile of n values is the
//!   ⌈P·n/100⌉-th smallest (at least the first). It is always one of the values, and P100 is the
//!   max. **Median**: the middle value, or the mean of the two middle values when n is even.
//! - **Standard deviation**: the sample standard deviation, √(Σ(x − mean)² / (n − 1));
//!   `None` for fewer than two values. The mean is Σx / n.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::time::{ErrorEstimate, Timestamp};

/// A test packet the Session-Sender sent (RFC 5357 §4.1.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    /// Sequence Number.
    pub seq: u32,
    /// Timestamp (T1).
    pub t1: Timestamp,
    /// Error Estimate of T1.
    pub t1_err: ErrorEstimate,
}

/// A reflected packet the Session-Sender received (RFC 5357 §4.2.1), in arrival order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    /// Sender Sequence Number, echoed by the reflector.
    pub sender_seq: u32,
    /// The reflector's own Sequence Number: its count of packets reflected, from 0.
    pub reflector_seq: u32,
    /// Sender Timestamp, echoed (T1).
    pub t1: Timestamp,
    /// Sender Error Estimate, echoed.
    pub t1_err: ErrorEstimate,
    /// Receive Timestamp at the reflector (T2).
    pub t2: Timestamp,
    pub t2_err: ErrorEstimate,
    /// The reflector's transmit Timestamp (T3).
    pub t3: Timestamp,
    pub t3_err: ErrorEstimate,
    /// Our receive time (T4).
    pub t4: Timestamp,
    pub t4_err: ErrorEstimate,
    /// Sender TTL: the TTL the reflector saw on the forward packet (we send with 255).
    pub sender_ttl: u8,
    /// The TTL or hop limit we saw on the reflected packet (the reflector sends 255); `None`
    /// if the socket did not report it.
    pub ttl: Option<u8>,
}

/// Distribution of a delay (seconds). Percentile and median definitions: see the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct DelayStats {
    /// Number of values.
    pub count: u64,
    pub min: f64,
    pub mean: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    /// Sample standard deviation (n − 1); `None` for a single value.
    pub stddev: Option<f64>,
}

/// Reordering of one stream (RFC 4737 §4.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Reordering {
    /// Packets considered: distinct packets received, duplicates left out.
    pub packets: u64,
    /// Packets whose number was below NextExp on arrival.
    pub reordered: u64,
    /// `reordered / packets`; 0 when `packets` is 0.
    pub reordered_ratio: f64,
}

/// Inter-packet delay variation (RFC 3393, RFC 5481 §4.1), seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Ipdv {
    /// Number of IPDV values (pairs of consecutive packets both received).
    pub count: u64,
    /// Smallest signed IPDV.
    pub min: f64,
    /// Largest signed IPDV.
    pub max: f64,
    /// Mean of |IPDV|.
    pub mean_abs: f64,
    /// P95 of |IPDV|.
    pub p95_abs: f64,
    /// P99 of |IPDV|.
    pub p99_abs: f64,
}

/// Packet delay variation D(i) − D(min) (RFC 5481 §4.2), seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Pdv {
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    /// The range: max delay − min delay.
    pub max: f64,
}

/// Every delay-variation figure for one direction, each named by its standard.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DelayVariation {
    /// RFC 3393 / RFC 5481 §4.1 IPDV; `None` without a pair of consecutive received packets.
    pub ipdv: Option<Ipdv>,
    /// RFC 5481 §4.2 PDV; `None` without samples.
    pub pdv: Option<Pdv>,
    /// twping's "jitter": P95 − median of the delay; `None` without samples.
    pub twping_jitter: Option<f64>,
    /// RFC 3550 §6.4.1 interarrival jitter; `None` with fewer than two samples.
    pub rfc3550_jitter: Option<f64>,
}

/// Hop counts seen in one direction (255 − TTL).
#[derive(Debug, Clone, PartialEq)]
pub struct Hops {
    pub min: u8,
    pub max: u8,
    /// (hops, number of samples), sorted by hops. Its length is twping's "hops takes K values";
    /// 255 − hops gives the TTL for twping's `TTLBUCKETS`.
    pub counts: Vec<(u8, u64)>,
}

/// Everything measured in one test session. Times in seconds; definitions in the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Distinct sequence numbers sent.
    pub sent: u64,
    /// Distinct sent sequence numbers that came back at least once.
    pub received: u64,
    /// `sent − received`.
    pub lost: u64,
    /// `lost / sent`; 0 when nothing was sent.
    pub loss_ratio: f64,
    /// Losses on the way to the reflector, including the unattributable ones.
    pub lost_forward: u64,
    /// Losses on the way back: reflector numbers missing below the highest one seen.
    pub lost_backward: u64,
    /// How many of `lost_forward` were sent after the last packet that came back, where the
    /// direction cannot be told: counted as forward by convention.
    pub lost_unattributed: u64,
    /// Replies beyond the first for a sender number: `duplicates_forward + duplicates_backward`.
    pub duplicates: u64,
    /// The reflector reflected a packet more than once (twping's "send duplicates").
    pub duplicates_forward: u64,
    /// One reflection arrived more than once (twping's "reflect duplicates").
    pub duplicates_backward: u64,
    /// Replies whose Sender Sequence Number was never sent. Ignored by everything else.
    pub unexpected: u64,
    /// Replies whose echoed Sender Timestamp differs from the T1 we recorded.
    pub t1_mismatch: u64,
    /// Sender numbers in the order the reflector received them.
    pub reordering_forward: Reordering,
    /// Reflector numbers in the order we received them.
    pub reordering_backward: Reordering,
    /// Sender numbers in the order we received them.
    pub reordering_round_trip: Reordering,
    /// Every Error Estimate of every sample has the S bit (false with no samples).
    pub sync: bool,
    /// `sync` and no one-way delay is negative. When false, `forward` and `backward` are still
    /// reported but are not one-way delays in the RFC 7679 sense.
    pub one_way_valid: bool,
    /// Samples with a negative forward delay (T2 < T1).
    pub negative_forward: u64,
    /// Samples with a negative backward delay (T4 < T3).
    pub negative_backward: u64,
    /// Largest T1 + T4 error estimate (round trip).
    pub maxerr: Option<f64>,
    /// Largest T1 + T2 error estimate (forward).
    pub maxerr_fwd: Option<f64>,
    /// Largest T3 + T4 error estimate (backward).
    pub maxerr_bck: Option<f64>,
    /// Round-trip delay without reflector processing.
    pub rtt: Option<DelayStats>,
    /// Forward one-way delay T2 − T1 (see `one_way_valid`).
    pub forward: Option<DelayStats>,
    /// Backward one-way delay T4 − T3 (see `one_way_valid`).
    pub backward: Option<DelayStats>,
    /// Reflector processing time T3 − T2.
    pub processing: Option<DelayStats>,
    pub rtt_variation: DelayVariation,
    pub forward_variation: DelayVariation,
    pub backward_variation: DelayVariation,
    /// 255 − Sender TTL; `None` without samples.
    pub hops_forward: Option<Hops>,
    /// 255 − our received TTL; `None` if no sample has a TTL.
    pub hops_backward: Option<Hops>,
}

/// One test packet and what became of it, for per-packet output (twping `-R`, `-v`).
#[derive(Debug, Clone, PartialEq)]
pub struct PacketResult {
    pub seq: u32,
    /// Our send time and its Error Estimate.
    pub t1: Timestamp,
    pub t1_err: ErrorEstimate,
    /// The first reply in arrival order; `None` if the packet was lost.
    pub reply: Option<Reply>,
    /// Round-trip delay, seconds.
    pub rtt: Option<f64>,
    /// Forward one-way delay, seconds (may be negative with unsynchronised clocks).
    pub fwd: Option<f64>,
    /// Backward one-way delay, seconds (may be negative with unsynchronised clocks).
    pub bck: Option<f64>,
    /// Reflector processing time, seconds.
    pub proc: Option<f64>,
    /// Replies beyond the first.
    pub dup_count: u64,
}

/// The nearest-rank percentile of already sorted values: the ⌈p·n/1000⌉-th smallest (at least
/// the first), with `per_mille` in thousandths (950 = P95; above 1000 reads as 1000).
/// `None` for no values.
pub fn percentile(sorted: &[f64], per_mille: u32) -> Option<f64> {
    let n = sorted.len() as u128;
    let p = u128::from(per_mille.min(1000));
    let rank = (p * n).div_ceil(1000).max(1);
    let index = usize::try_from(rank - 1).ok()?;
    sorted.get(index).copied()
}

/// The median of already sorted values: the middle one, or the mean of the two middle ones.
/// `None` for no values.
pub fn median(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    let upper = *sorted.get(n / 2)?;
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = *sorted.get(n / 2 - 1)?;
    Some((lower + upper) / 2.0)
}

impl DelayStats {
    /// Statistics of `values` in any order. Non-finite values are skipped; `None` if none is
    /// left.
    pub fn from_values(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        Self::from_sorted(&v)
    }

    fn from_sorted(v: &[f64]) -> Option<Self> {
        let (&min, &max) = (v.first()?, v.last()?);
        let n = v.len() as f64;
        // Rounding can push the mean of equal values a hair outside [min, max]; the true mean
        // is inside.
        let mean = (v.iter().sum::<f64>() / n).clamp(min, max);
        let stddev = (v.len() >= 2).then(|| {
            let squares: f64 = v.iter().map(|x| (x - mean) * (x - mean)).sum();
            (squares / (n - 1.0)).sqrt()
        });
        Some(DelayStats {
            count: v.len() as u64,
            min,
            mean,
            median: median(v)?,
            p95: percentile(v, 950)?,
            p99: percentile(v, 990)?,
            max,
            stddev,
        })
    }
}

/// Counts `values` into buckets of `bucket_width`: bucket index ⌊v / width⌋ → count, sorted by
/// index; negative values get negative indices. A value within a relative 10⁻⁹ of a bucket
/// boundary belongs to the bucket that starts there, so 0.0003 s in 0.0001 s buckets is bucket 3
/// although 0.0003 / 0.0001 is 2.9999999999999996 in binary. Values that are not finite, or
/// whose v / width overflows `f64`, are skipped; a width that is not finite and positive gives
/// no buckets. Indices beyond the `i64` range saturate at `i64::MIN` / `i64::MAX`.
pub fn histogram(values: &[f64], bucket_width: f64) -> Vec<(i64, u64)> {
    if !(bucket_width.is_finite() && bucket_width > 0.0) {
        return Vec::new();
    }
    let mut buckets = BTreeMap::<i64, u64>::new();
    for &v in values {
        let q = v / bucket_width;
        if !q.is_finite() {
            continue;
        }
        let nearest = q.round();
        let tolerance = (nearest.abs().max(1.0) * 1e-9).min(1e-3);
        let index = if (q - nearest).abs() <= tolerance {
            nearest
        } else {
            q.floor()
        };
        // `as` saturates at the i64 range (and never panics).
        *buckets.entry(index as i64).or_insert(0) += 1;
    }
    buckets.into_iter().collect()
}

/// One reply's delays, in nanoseconds. T1 is ours (from `Sent`), the rest from the reply.
#[derive(Debug, Clone, Copy)]
struct Delays {
    rtt: i64,
    fwd: i64,
    bck: i64,
    proc: i64,
}

impl Delays {
    fn new(sent: &Sent, r: &Reply) -> Self {
        let proc = r.t3.diff_nanos(r.t2);
        Delays {
            // Each diff_nanos is within ±2^31 s in ns (< 2.2e18), so this cannot overflow;
            // saturating anyway keeps the no-panic promise independent of time.rs.
            rtt: r.t4.diff_nanos(sent.t1).saturating_sub(proc),
            fwd: r.t2.diff_nanos(sent.t1),
            bck: r.t4.diff_nanos(r.t3),
            proc,
        }
    }
}

fn secs(nanos: i64) -> f64 {
    // Division (not multiplication by 1e-9) is correctly rounded: 10_000_000 ns is exactly
    // the f64 nearest 0.01.
    nanos as f64 / 1e9
}

/// Replies matched to the packets they answer.
struct Matched<'a> {
    /// `sent` without repeated sequence numbers, in send order. A packet's *position* is its
    /// index here.
    uniq: Vec<&'a Sent>,
    /// Replies for packets in `uniq`, in arrival order, with the packet's position.
    expected: Vec<(usize, &'a Reply)>,
    /// Per position: index into `expected` of its first reply.
    first: Vec<Option<usize>>,
    /// Per position: number of replies.
    count: Vec<u64>,
    unexpected: u64,
}

impl<'a> Matched<'a> {
    fn new(sent: &'a [Sent], replies: &'a [Reply]) -> Self {
        let mut position = HashMap::<u32, usize>::with_capacity(sent.len());
        let mut uniq = Vec::with_capacity(sent.len());
        for s in sent {
            if let std::collections::hash_map::Entry::Vacant(e) = position.entry(s.seq) {
                e.insert(uniq.len());
                uniq.push(s);
            }
        }
        let mut expected = Vec::with_capacity(replies.len());
        let mut first = vec![None; uniq.len()];
        let mut count = vec![0u64; uniq.len()];
        let mut unexpected = 0;
        for r in replies {
            let Some(&pos) = position.get(&r.sender_seq) else {
                unexpected += 1;
                continue;
            };
            if let (Some(f), Some(c)) = (first.get_mut(pos), count.get_mut(pos)) {
                f.get_or_insert(expected.len());
                *c += 1;
            }
            expected.push((pos, r));
        }
        Matched {
            uniq,
            expected,
            first,
            count,
            unexpected,
        }
    }

    /// One sample per received packet (its first reply), in send order.
    fn samples(&self) -> Vec<Sample<'a>> {
        self.uniq
            .iter()
            .zip(&self.first)
            .enumerate()
            .filter_map(|(pos, (&sent, first))| {
                let arrival = (*first)?;
                let &(_, reply) = self.expected.get(arrival)?;
                Some(Sample {
                    pos,
                    arrival,
                    sent,
                    reply,
                    d: Delays::new(sent, reply),
                })
            })
            .collect()
    }
}

/// A received packet's first reply.
#[derive(Debug, Clone, Copy)]
struct Sample<'a> {
    /// Position in send order.
    pos: usize,
    /// Index in arrival order (into `Matched::expected`).
    arrival: usize,
    sent: &'a Sent,
    reply: &'a Reply,
    d: Delays,
}

/// RFC 4737 §3: reordered if below NextExp, the highest number seen so far + 1.
fn reordering(numbers: impl IntoIterator<Item = u64>) -> Reordering {
    let (mut packets, mut reordered, mut next_exp) = (0u64, 0u64, 0u64);
    for n in numbers {
        packets += 1;
        if n >= next_exp {
            next_exp = n.saturating_add(1);
        } else {
            reordered += 1;
        }
    }
    Reordering {
        packets,
        reordered,
        reordered_ratio: ratio(reordered, packets),
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn ipdv(values_ns: &[i64]) -> Option<Ipdv> {
    let min = *values_ns.iter().min()?;
    let max = *values_ns.iter().max()?;
    let mut abs: Vec<f64> = values_ns.iter().map(|v| secs(v.saturating_abs())).collect();
    abs.sort_by(f64::total_cmp);
    Some(Ipdv {
        count: values_ns.len() as u64,
        min: secs(min),
        max: secs(max),
        mean_abs: abs.iter().sum::<f64>() / abs.len() as f64,
        p95_abs: percentile(&abs, 950)?,
        p99_abs: percentile(&abs, 990)?,
    })
}

fn pdv(delays_ns: &[i64]) -> Option<Pdv> {
    let min = *delays_ns.iter().min()?;
    let mut v: Vec<f64> = delays_ns
        .iter()
        .map(|d| secs(d.saturating_sub(min)))
        .collect();
    v.sort_by(f64::total_cmp);
    Some(Pdv {
        median: median(&v)?,
        p95: percentile(&v, 950)?,
        p99: percentile(&v, 990)?,
        max: *v.last()?,
    })
}

/// RFC 3550 §6.4.1 / A.8 over transit times in arrival order.
fn rfc3550_jitter(transit_ns: impl IntoIterator<Item = i64>) -> Option<f64> {
    let mut it = transit_ns.into_iter();
    let mut previous = it.next()?;
    let mut jitter = None::<f64>;
    for t in it {
        let d = secs(t.saturating_sub(previous).saturating_abs());
        let j = jitter.unwrap_or(0.0);
        jitter = Some(j + (d - j) / 16.0);
        previous = t;
    }
    jitter
}

/// All delay-variation figures for one direction.
///
/// - `ipdv_ns`: IPDV values of the stream (consecutive pairs already chosen);
/// - `delays_ns`: every sample's delay;
/// - `arrival_ns`: the same delays in arrival order, for RFC 3550.
fn variation(
    ipdv_ns: &[i64],
    delays_ns: &[i64],
    arrival_ns: impl IntoIterator<Item = i64>,
    stats: Option<&DelayStats>,
) -> DelayVariation {
    DelayVariation {
        ipdv: ipdv(ipdv_ns),
        pdv: pdv(delays_ns),
        twping_jitter: stats.map(|s| s.p95 - s.median),
        rfc3550_jitter: rfc3550_jitter(arrival_ns),
    }
}

/// Hop counts from received TTLs of packets sent with `initial` TTL: initial − TTL (0 for a
/// TTL above `initial`, which only a rewriting middlebox produces).
fn hops(initial: u8, values: impl IntoIterator<Item = u8>) -> Option<Hops> {
    let mut counts = BTreeMap::<u8, u64>::new();
    for ttl in values {
        *counts.entry(initial.saturating_sub(ttl)).or_insert(0) += 1;
    }
    Some(Hops {
        min: *counts.keys().next()?,
        max: *counts.keys().next_back()?,
        counts: counts.into_iter().collect(),
    })
}

fn max_of(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    values.into_iter().reduce(f64::max)
}

fn delay_stats(samples: &[Sample<'_>], f: impl Fn(&Delays) -> i64) -> Option<DelayStats> {
    let mut v: Vec<f64> = samples.iter().map(|s| secs(f(&s.d))).collect();
    v.sort_by(f64::total_cmp);
    DelayStats::from_sorted(&v)
}

/// IPDV over consecutive positions in send order (forward and round trip).
fn ipdv_by_position(samples: &[Sample<'_>], f: impl Fn(&Delays) -> i64) -> Vec<i64> {
    samples
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if b.pos == a.pos + 1 => Some(f(&b.d).saturating_sub(f(&a.d))),
            _ => None,
        })
        .collect()
}

/// Computes the session [`Summary`]. Replies whose Sender Sequence Number is not in `sent` are
/// counted in `unexpected` and otherwise ignored. Never panics.
pub fn summarize(sent: &[Sent], replies: &[Reply]) -> Summary {
    summarize_ttl(sent, replies, u8::MAX)
}

/// [`summarize`] for test packets sent with TTL `sent_ttl` rather than 255: forward hops are
/// then `sent_ttl` − Sender TTL. (The reflector always answers with 255.)
pub fn summarize_ttl(sent: &[Sent], replies: &[Reply], sent_ttl: u8) -> Summary {
    let m = Matched::new(sent, replies);
    let samples = m.samples(); // send order
    let mut by_arrival = samples.clone();
    by_arrival.sort_by_key(|s| s.arrival);
    // The reflector's receive order: reflector number, then our arrival.
    let mut by_reflector = samples.clone();
    by_reflector.sort_by_key(|s| (s.reply.reflector_seq, s.arrival));

    let sent_n = m.uniq.len() as u64;
    let received = samples.len() as u64;
    let lost = sent_n.saturating_sub(received);

    // Duplicates (RFC 5560): a reflection is identified by (sender number, reflector number).
    let reflections: HashSet<(u32, u32)> = m
        .expected
        .iter()
        .map(|(_, r)| (r.sender_seq, r.reflector_seq))
        .collect();
    let duplicates = (m.expected.len() as u64).saturating_sub(received);
    let duplicates_backward = m.expected.len().saturating_sub(reflections.len()) as u64;
    let duplicates_forward = (reflections.len() as u64).saturating_sub(received);

    // Loss direction from gaps in the reflector's numbering.
    let reflector_seqs: HashSet<u32> = m.expected.iter().map(|(_, r)| r.reflector_seq).collect();
    let gaps = reflector_seqs.iter().max().map_or(0, |&highest| {
        (u64::from(highest) + 1).saturating_sub(reflector_seqs.len() as u64)
    });
    let lost_backward = gaps.min(lost);
    let lost_forward = lost - lost_backward;
    let after_last = match samples.last() {
        Some(s) => m.uniq.len().saturating_sub(s.pos + 1),
        None => m.uniq.len(),
    } as u64;
    let lost_unattributed = after_last.min(lost_forward);

    // Reordering (RFC 4737), duplicates left out.
    let reordering_forward = {
        let mut first_by_reflector = BTreeMap::<u32, usize>::new();
        for &(pos, r) in &m.expected {
            first_by_reflector.entry(r.reflector_seq).or_insert(pos);
        }
        let mut seen = HashSet::new();
        reordering(
            first_by_reflector
                .into_values()
                .filter(|&pos| seen.insert(pos))
                .map(|pos| pos as u64),
        )
    };
    let reordering_backward = {
        let mut seen = HashSet::new();
        reordering(
            m.expected
                .iter()
                .filter(|(_, r)| seen.insert((r.sender_seq, r.reflector_seq)))
                .map(|(_, r)| u64::from(r.reflector_seq)),
        )
    };
    let reordering_round_trip = {
        let mut seen = HashSet::new();
        reordering(
            m.expected
                .iter()
                .filter(|&&(pos, _)| seen.insert(pos))
                .map(|&(pos, _)| pos as u64),
        )
    };

    // Clocks.
    let sync = !samples.is_empty()
        && samples.iter().all(|s| {
            [
                s.sent.t1_err,
                s.reply.t2_err,
                s.reply.t3_err,
                s.reply.t4_err,
            ]
            .iter()
            .all(|e| e.synchronized())
        });
    let negative_forward = samples.iter().filter(|s| s.d.fwd < 0).count() as u64;
    let negative_backward = samples.iter().filter(|s| s.d.bck < 0).count() as u64;
    let maxerr = max_of(
        samples
            .iter()
            .map(|s| s.sent.t1_err.seconds() + s.reply.t4_err.seconds()),
    );
    let maxerr_fwd = max_of(
        samples
            .iter()
            .map(|s| s.sent.t1_err.seconds() + s.reply.t2_err.seconds()),
    );
    let maxerr_bck = max_of(
        samples
            .iter()
            .map(|s| s.reply.t3_err.seconds() + s.reply.t4_err.seconds()),
    );

    // Delays.
    let rtt = delay_stats(&samples, |d| d.rtt);
    let forward = delay_stats(&samples, |d| d.fwd);
    let backward = delay_stats(&samples, |d| d.bck);
    let processing = delay_stats(&samples, |d| d.proc);

    // Delay variation.
    let all = |f: fn(&Delays) -> i64| samples.iter().map(|s| f(&s.d)).collect::<Vec<i64>>();
    let rtt_variation = variation(
        &ipdv_by_position(&samples, |d| d.rtt),
        &all(|d| d.rtt),
        by_arrival.iter().map(|s| s.d.rtt),
        rtt.as_ref(),
    );
    let forward_variation = variation(
        &ipdv_by_position(&samples, |d| d.fwd),
        &all(|d| d.fwd),
        by_reflector.iter().map(|s| s.d.fwd),
        forward.as_ref(),
    );
    let backward_ipdv: Vec<i64> = {
        // The reflector's stream: consecutive reflector numbers (first sample wins).
        let mut by_number = BTreeMap::<u32, i64>::new();
        for s in &by_arrival {
            by_number.entry(s.reply.reflector_seq).or_insert(s.d.bck);
        }
        let v: Vec<(u32, i64)> = by_number.into_iter().collect();
        v.windows(2)
            .filter_map(|w| match w {
                [(ra, a), (rb, b)] if u64::from(*rb) == u64::from(*ra) + 1 => {
                    Some(b.saturating_sub(*a))
                }
                _ => None,
            })
            .collect()
    };
    let backward_variation = variation(
        &backward_ipdv,
        &all(|d| d.bck),
        by_arrival.iter().map(|s| s.d.bck),
        backward.as_ref(),
    );

    Summary {
        sent: sent_n,
        received,
        lost,
        loss_ratio: ratio(lost, sent_n),
        lost_forward,
        lost_backward,
        lost_unattributed,
        duplicates,
        duplicates_forward,
        duplicates_backward,
        unexpected: m.unexpected,
        t1_mismatch: m
            .expected
            .iter()
            .filter(|&&(pos, r)| m.uniq.get(pos).is_some_and(|s| s.t1 != r.t1))
            .count() as u64,
        reordering_forward,
        reordering_backward,
        reordering_round_trip,
        sync,
        one_way_valid: sync && negative_forward == 0 && negative_backward == 0,
        negative_forward,
        negative_backward,
        maxerr,
        maxerr_fwd,
        maxerr_bck,
        rtt,
        forward,
        backward,
        processing,
        rtt_variation,
        forward_variation,
        backward_variation,
        // A Sender TTL of 0 cannot have arrived (a router drops such a packet): the reflector
        // did not report one (twampy's 38-octet replies); those samples have no hop count.
        hops_forward: hops(
            sent_ttl,
            samples
                .iter()
                .map(|s| s.reply.sender_ttl)
                .filter(|t| *t != 0),
        ),
        hops_backward: hops(u8::MAX, samples.iter().filter_map(|s| s.reply.ttl)),
    }
}

/// One record per distinct sent sequence number, in send order, with its first reply (in
/// arrival order) and the delays derived from it. Never panics.
pub fn per_packet(sent: &[Sent], replies: &[Reply]) -> Vec<PacketResult> {
    let m = Matched::new(sent, replies);
    m.uniq
        .iter()
        .zip(m.first.iter().zip(&m.count))
        .map(|(&s, (first, &count))| {
            let reply = first.and_then(|i| m.expected.get(i)).map(|&(_, r)| *r);
            let d = reply.as_ref().map(|r| Delays::new(s, r));
            PacketResult {
                seq: s.seq,
                t1: s.t1,
                t1_err: s.t1_err,
                reply,
                rtt: d.map(|d| secs(d.rtt)),
                fwd: d.map(|d| secs(d.fwd)),
                bck: d.map(|d| secs(d.bck)),
                proc: d.map(|d| secs(d.proc)),
                dup_count: count.saturating_sub(1),
            }
        })
        .collect()
}

/// Something wrong with the reflector's timestamps or SID beyond unsynchronised clocks: each
/// makes its one-way figures (or more) meaningless, and says why.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerProblem {
    /// The SID is all zeros (RFC 4656 §3.5: the Server makes it from its address, the time and
    /// random octets; zero means it never did).
    ZeroSid,
    /// The Receive Timestamp (T2) or the Timestamp (T3) is zero in `count` reflections.
    ZeroTimestamps { count: u64 },
    /// T3 is before T2 in `count` reflections: the reflector says it sent before it received.
    TransmitBeforeReceive { count: u64 },
    /// T3 − T2 exceeds our whole T4 − T1 in `count` reflections: the processing time the
    /// reflector claims is longer than the round trip we timed.
    ProcessingExceedsRoundTrip { count: u64 },
    /// One-way delays in one direction spread over `spread` seconds while no round trip took
    /// longer than `max_round_trip` (plus clock drift): a one-way delay cannot vary by more
    /// than a whole round trip, so T2 or T3 do not come from one steady clock.
    OneWaySpread {
        forward: bool,
        spread: f64,
        max_round_trip: f64,
    },
    /// An Error Estimate with Multiplier 0 in `count` reflections (RFC 4656 §4.1.2: it "MUST
    /// NOT be zero").
    ZeroMultiplier { count: u64 },
}

impl PeerProblem {
    /// A short machine-readable name.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerProblem::ZeroSid => "zero-sid",
            PeerProblem::ZeroTimestamps { .. } => "zero-timestamps",
            PeerProblem::TransmitBeforeReceive { .. } => "transmit-before-receive",
            PeerProblem::ProcessingExceedsRoundTrip { .. } => "processing-exceeds-round-trip",
            PeerProblem::OneWaySpread { .. } => "one-way-spread",
            PeerProblem::ZeroMultiplier { .. } => "zero-error-multiplier",
        }
    }
}

impl std::fmt::Display for PeerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerProblem::ZeroSid => write!(f, "the server sent an all-zero SID (RFC 4656 §3.5)"),
            PeerProblem::ZeroTimestamps { count } => {
                write!(f, "{count} reflections carry a zero T2 or T3 timestamp")
            }
            PeerProblem::TransmitBeforeReceive { count } => write!(
                f,
                "in {count} reflections the reflector's send time (T3) is before its receive time (T2)"
            ),
            PeerProblem::ProcessingExceedsRoundTrip { count } => write!(
                f,
                "in {count} reflections the reflector's processing time (T3-T2) is longer than the whole round trip"
            ),
            PeerProblem::OneWaySpread {
                forward,
                spread,
                max_round_trip,
            } => write!(
                f,
                "{} delays vary by {:.3} ms although no round trip took over {:.3} ms: the reflector's {} timestamps do not follow one clock",
                if *forward { "forward" } else { "backward" },
                spread * 1e3,
                max_round_trip * 1e3,
                if *forward { "receive (T2)" } else { "send (T3)" },
            ),
            PeerProblem::ZeroMultiplier { count } => write!(
                f,
                "{count} reflections carry an Error Estimate with Multiplier 0 (RFC 4656 §4.1.2)"
            ),
        }
    }
}

/// Clock drift we allow between the two clocks when checking one-way spreads: 500 ppm, the
/// most an undisciplined crystal is specified to drift.
const MAX_DRIFT: f64 = 500e-6;

/// Checks the first reflection of every packet for timestamps no honest reflector sends.
/// Pure; never panics.
pub fn peer_problems(sent: &[Sent], replies: &[Reply]) -> Vec<PeerProblem> {
    let per = per_packet(sent, replies);
    let mut out = Vec::new();
    let received: Vec<(&PacketResult, &Reply)> = per
        .iter()
        .filter_map(|p| p.reply.as_ref().map(|r| (p, r)))
        .collect();
    let count = |f: &dyn Fn(&PacketResult, &Reply) -> bool| {
        received.iter().filter(|(p, r)| f(p, r)).count() as u64
    };
    let zero = count(&|_, r| r.t2.0 == 0 || r.t3.0 == 0);
    if zero > 0 {
        out.push(PeerProblem::ZeroTimestamps { count: zero });
    }
    let backwards = count(&|_, r| r.t3 < r.t2);
    if backwards > 0 {
        out.push(PeerProblem::TransmitBeforeReceive { count: backwards });
    }
    let total = |p: &PacketResult, r: &Reply| secs(r.t4.diff_nanos(p.t1));
    let too_long = count(&|p, r| p.proc.is_some_and(|proc| proc > total(p, r) && proc > 0.0));
    if too_long > 0 {
        out.push(PeerProblem::ProcessingExceedsRoundTrip { count: too_long });
    }
    let max_round_trip = received
        .iter()
        .map(|(p, r)| total(p, r))
        .fold(0.0f64, f64::max);
    let span = match (per.first(), per.last()) {
        (Some(a), Some(b)) => secs(b.t1.diff_nanos(a.t1)).abs(),
        _ => 0.0,
    };
    // A one-way delay lies between 0 and the round trip, so its spread cannot exceed the
    // longest round trip, plus what the clocks can drift apart over the run and a millisecond
    // for the timestamps' own error.
    let allowed = max_round_trip + MAX_DRIFT * span + 1e-3;
    for (forward, f) in [
        (
            true,
            (|p: &PacketResult| p.fwd) as fn(&PacketResult) -> Option<f64>,
        ),
        (false, |p: &PacketResult| p.bck),
    ] {
        let v: Vec<f64> = received.iter().filter_map(|(p, _)| f(p)).collect();
        let (lo, hi) = (
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        if v.len() >= 2 && hi - lo > allowed {
            out.push(PeerProblem::OneWaySpread {
                forward,
                spread: hi - lo,
                max_round_trip,
            });
        }
    }
    let zero_mult = count(&|_, r| r.t2_err.multiplier() == 0 || r.t3_err.multiplier() == 0);
    if zero_mult > 0 {
        out.push(PeerProblem::ZeroMultiplier { count: zero_mult });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// An arbitrary wall-clock origin (2023-11-14), so tests exercise real NTP seconds.
    const ORIGIN_NS: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;
    /// S bit set, 2^-32 s.
    const SYNC: ErrorEstimate = ErrorEstimate(0x8001);
    /// S bit clear, 2^-32 s (what twping sent in the captures).
    const UNSYNC: ErrorEstimate = ErrorEstimate(0x0001);

    /// The Timestamp `ns` nanoseconds after the origin (exact: diff_nanos gives `ns` back).
    fn ts(ns: i64) -> Timestamp {
        Timestamp::from_unix_duration(Duration::from_nanos((ORIGIN_NS + ns) as u64))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    macro_rules! assert_close {
        ($a:expr, $b:expr) => {{
            let (a, b): (f64, f64) = ($a, $b);
            assert!(close(a, b), "{} = {a}, expected {b}", stringify!($a));
        }};
    }

    fn sent(seq: u32) -> Sent {
        Sent {
            seq,
            t1: ts(i64::from(seq) * 100 * MS),
            t1_err: SYNC,
        }
    }

    fn sent_all(n: u32) -> Vec<Sent> {
        (0..n).map(sent).collect()
    }

    /// The reply to `s`, reflected as number `refl`, with the given delays (ns).
    fn reply(s: &Sent, refl: u32, fwd: i64, proc: i64, bck: i64) -> Reply {
        let t1 = s.t1;
        let base = t1.diff_nanos(ts(0));
        Reply {
            sender_seq: s.seq,
            reflector_seq: refl,
            t1,
            t1_err: s.t1_err,
            t2: ts(base + fwd),
            t2_err: SYNC,
            t3: ts(base + fwd + proc),
            t3_err: SYNC,
            t4: ts(base + fwd + proc + bck),
            t4_err: SYNC,
            sender_ttl: 255,
            ttl: Some(255),
        }
    }

    /// Replies with the given (sender seq, reflector seq) in arrival order, 1 ms each way.
    fn replies(s: &[Sent], order: &[(u32, u32)]) -> Vec<Reply> {
        order
            .iter()
            .map(|&(seq, refl)| reply(&s[seq as usize], refl, MS, 0, MS))
            .collect()
    }

    // ---- order statistics -------------------------------------------------------------

    #[test]
    fn stddev_of_0_and_2_is_sqrt_2() {
        let s = DelayStats::from_values(&[0.0, 2.0]).unwrap();
        assert_close!(s.stddev.unwrap(), 2f64.sqrt());
        assert_close!(s.mean, 1.0);
    }

    #[test]
    fn stddev_of_one_value_is_none() {
        let s = DelayStats::from_values(&[5.0]).unwrap();
        assert_eq!(s.stddev, None);
    }

    #[test]
    fn mean_median_min_max_of_small_sets() {
        let odd = DelayStats::from_values(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (odd.count, odd.min, odd.median, odd.max),
            (3, 1.0, 2.0, 3.0)
        );
        assert_close!(odd.mean, 2.0);
        assert_close!(odd.stddev.unwrap(), 1.0); // ((1 + 0 + 1) / 2)^½

        // Even count: median is the mean of the two middle values.
        let even = DelayStats::from_values(&[4.0, 1.0, 3.0, 10.0]).unwrap();
        assert_eq!((even.min, even.median, even.max), (1.0, 3.5, 10.0));
        assert_close!(even.mean, 4.5);
        // Deviations −3.5, −1.5, −0.5, 5.5: squares 12.25 + 2.25 + 0.25 + 30.25 = 45; 45/3 = 15.
        assert_close!(even.stddev.unwrap(), 15f64.sqrt());

        assert_eq!(DelayStats::from_values(&[]), None);
        assert_eq!(DelayStats::from_values(&[f64::NAN, f64::INFINITY]), None);
    }

    #[test]
    fn percentile_of_one_value_is_that_value() {
        for p in [0, 1, 500, 950, 990, 1000, u32::MAX] {
            assert_eq!(percentile(&[7.0], p), Some(7.0), "p={p}");
        }
        assert_eq!(median(&[7.0]), Some(7.0));
        let s = DelayStats::from_values(&[7.0]).unwrap();
        assert_eq!(
            (s.min, s.median, s.p95, s.p99, s.max),
            (7.0, 7.0, 7.0, 7.0, 7.0)
        );
    }

    #[test]
    fn percentile_of_two_values_is_nearest_rank() {
        let v = [1.0, 2.0];
        assert_eq!(percentile(&v, 0), Some(1.0)); // rank max(0, 1) = 1
        assert_eq!(percentile(&v, 500), Some(1.0)); // ⌈0.5·2⌉ = 1
        assert_eq!(percentile(&v, 501), Some(2.0)); // ⌈1.002⌉ = 2
        assert_eq!(percentile(&v, 950), Some(2.0)); // ⌈1.9⌉ = 2
        assert_eq!(percentile(&v, 1000), Some(2.0));
        assert_eq!(median(&v), Some(1.5));
    }

    #[test]
    fn percentile_of_ten_values_is_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 100), Some(1.0)); // ⌈1.0⌉ = 1
        assert_eq!(percentile(&v, 500), Some(5.0)); // ⌈5.0⌉ = 5
        assert_eq!(percentile(&v, 900), Some(9.0)); // ⌈9.0⌉ = 9
        assert_eq!(percentile(&v, 950), Some(10.0)); // ⌈9.5⌉ = 10
        assert_eq!(percentile(&v, 990), Some(10.0));
        assert_eq!(median(&v), Some(5.5));
    }

    #[test]
    fn percentile_and_median_of_nothing_are_none() {
        assert_eq!(percentile(&[], 500), None);
        assert_eq!(median(&[]), None);
    }

    // ---- loss, duplicates, reordering --------------------------------------------------

    /// Sent 0..10. The reflector reflects 0,1,2,3,4,4,5,6,7,8 as numbers 0..=9 (it got 4
    /// twice); its reflection of 5 (number 6) is lost on the way back, 9 never comes back, and
    /// 3 overtakes 2 on the way back. Arrivals (sender, reflector):
    /// (0,0) (1,1) (3,3) (2,2) (4,4) (4,5) (6,7) (7,8) (8,9).
    #[test]
    fn loss_duplicates_and_reordering_from_literal_sequences() {
        let s = sent_all(10);
        let r = replies(
            &s,
            &[
                (0, 0),
                (1, 1),
                (3, 3),
                (2, 2),
                (4, 4),
                (4, 5),
                (6, 7),
                (7, 8),
                (8, 9),
            ],
        );
        let sum = summarize(&s, &r);
        assert_eq!((sum.sent, sum.received, sum.lost), (10, 8, 2)); // 5 and 9
        assert_close!(sum.loss_ratio, 0.2);
        // Reflector number 6 is missing below the highest (9): 5 was lost backward. 9 was lost
        // after the last packet that came back (8): counted forward, unattributed.
        assert_eq!(sum.lost_backward, 1);
        assert_eq!(sum.lost_forward, 1);
        assert_eq!(sum.lost_unattributed, 1);
        // 4 reflected twice (numbers 4 and 5): a forward duplicate.
        assert_eq!(
            (
                sum.duplicates,
                sum.duplicates_forward,
                sum.duplicates_backward
            ),
            (1, 1, 0)
        );
        // Forward: the reflector got 0,1,2,3,4,(4),6,7,8 in order.
        assert_eq!(sum.reordering_forward.packets, 8);
        assert_eq!(sum.reordering_forward.reordered, 0);
        assert_close!(sum.reordering_forward.reordered_ratio, 0.0);
        // Backward: reflector numbers 0,1,3,2,4,5,7,8,9: 2 arrived below NextExp 4.
        assert_eq!(sum.reordering_backward.packets, 9);
        assert_eq!(sum.reordering_backward.reordered, 1);
        assert_close!(sum.reordering_backward.reordered_ratio, 1.0 / 9.0);
        // Round trip: sender numbers 0,1,3,2,4,(4),6,7,8: 2 below NextExp 4.
        assert_eq!(sum.reordering_round_trip.packets, 8);
        assert_eq!(sum.reordering_round_trip.reordered, 1);
        assert_close!(sum.reordering_round_trip.reordered_ratio, 0.125);
        assert_eq!(sum.unexpected, 0);
    }

    /// Sent 0..7. The reflector receives 0,2,1,3,4,6 (5 lost forward) and numbers them 0..=5.
    /// Arrivals (sender, reflector): (0,0) (2,1) (1,2) (3,3) (3,3) (6,5) (4,4): reflection 3
    /// arrives twice, and 6's reflection overtakes 4's.
    #[test]
    fn forward_reordering_backward_duplicates_and_forward_loss() {
        let s = sent_all(7);
        let r = replies(
            &s,
            &[(0, 0), (2, 1), (1, 2), (3, 3), (3, 3), (6, 5), (4, 4)],
        );
        let sum = summarize(&s, &r);
        assert_eq!((sum.sent, sum.received, sum.lost), (7, 6, 1));
        assert_eq!(
            (sum.lost_forward, sum.lost_backward, sum.lost_unattributed),
            (1, 0, 0)
        );
        assert_eq!(
            (
                sum.duplicates,
                sum.duplicates_forward,
                sum.duplicates_backward
            ),
            (1, 0, 1)
        );
        // Forward, in reflector order: 0,2,1,3,4,6 → 1 is reordered.
        assert_eq!(
            (
                sum.reordering_forward.packets,
                sum.reordering_forward.reordered
            ),
            (6, 1)
        );
        assert_close!(sum.reordering_forward.reordered_ratio, 1.0 / 6.0);
        // Backward, reflector numbers in arrival order: 0,1,2,3,(3),5,4 → 4 is reordered.
        assert_eq!(
            (
                sum.reordering_backward.packets,
                sum.reordering_backward.reordered
            ),
            (6, 1)
        );
        // Round trip, sender numbers in arrival order: 0,2,1,3,(3),6,4 → 1 and 4.
        assert_eq!(
            (
                sum.reordering_round_trip.packets,
                sum.reordering_round_trip.reordered
            ),
            (6, 2)
        );
        assert_close!(sum.reordering_round_trip.reordered_ratio, 2.0 / 6.0);
    }

    #[test]
    fn backward_losses_never_exceed_lost() {
        // A reflector number far above the rest (a broken or stateless reflector) would make
        // billions of "gaps"; lost_backward stays within lost.
        let s = sent_all(3);
        let r = replies(&s, &[(0, 0), (1, u32::MAX)]);
        let sum = summarize(&s, &r);
        assert_eq!((sum.lost, sum.lost_backward, sum.lost_forward), (1, 1, 0));
        assert_eq!(sum.lost_unattributed, 0);

        // A forward duplicate whose first reflection was lost leaves a gap (number 1) but no
        // lost packet.
        let r = replies(&s, &[(0, 0), (1, 2), (2, 3)]);
        let sum = summarize(&s, &r);
        assert_eq!((sum.lost, sum.lost_backward, sum.lost_forward), (0, 0, 0));
    }

    #[test]
    fn unexpected_replies_are_counted_and_ignored() {
        let s = sent_all(2);
        let mut r = replies(&s, &[(0, 0), (1, 1)]);
        r.insert(1, reply(&sent(77), 9, MS, 0, MS));
        let sum = summarize(&s, &r);
        assert_eq!(sum.unexpected, 1);
        assert_eq!((sum.received, sum.lost, sum.duplicates), (2, 0, 0));
        assert_eq!(sum.lost_backward, 0); // its reflector number 9 is not looked at
        assert_eq!(sum.reordering_backward.reordered, 0);
    }

    #[test]
    fn repeated_sent_entries_count_once() {
        let mut s = sent_all(2);
        s.push(s[1]);
        let r = replies(&s, &[(0, 0), (1, 1)]);
        let sum = summarize(&s, &r);
        assert_eq!((sum.sent, sum.received, sum.lost), (2, 2, 0));
        assert_eq!(per_packet(&s, &r).len(), 2);
    }

    // ---- delays ------------------------------------------------------------------------

    #[test]
    fn rtt_excludes_reflector_processing_and_t1_is_ours() {
        let s = sent_all(1);
        // 3 ms forward, 5 ms in the reflector, 2 ms back.
        let mut r = reply(&s[0], 0, 3 * MS, 5 * MS, 2 * MS);
        // The reflector echoes a wrong T1: our own T1 is used, and the mismatch counted.
        r.t1 = ts(-123 * MS);
        let sum = summarize(&s, &[r]);
        assert_eq!(sum.t1_mismatch, 1);
        assert_close!(sum.rtt.as_ref().unwrap().min, 0.005);
        assert_close!(sum.forward.as_ref().unwrap().min, 0.003);
        assert_close!(sum.backward.as_ref().unwrap().min, 0.002);
        assert_close!(sum.processing.as_ref().unwrap().max, 0.005);
        let p = per_packet(&s, &[r]);
        assert_eq!(p.len(), 1);
        assert_close!(p[0].rtt.unwrap(), 0.005);
        assert_close!(p[0].fwd.unwrap(), 0.003);
        assert_close!(p[0].bck.unwrap(), 0.002);
        assert_close!(p[0].proc.unwrap(), 0.005);
    }

    #[test]
    fn one_way_with_unsync_estimates_is_flagged_but_reported() {
        let s = sent_all(2);
        let mut r = replies(&s, &[(0, 0), (1, 1)]);
        r[1].t2_err = UNSYNC; // one reflector timestamp without the S bit
        let sum = summarize(&s, &r);
        assert!(!sum.sync);
        assert!(!sum.one_way_valid);
        assert_eq!((sum.negative_forward, sum.negative_backward), (0, 0));
        // Still computed: 1 ms each way.
        assert_close!(sum.forward.as_ref().unwrap().mean, 0.001);
        assert_close!(sum.backward.as_ref().unwrap().mean, 0.001);

        let r = replies(&s, &[(0, 0), (1, 1)]);
        let sum = summarize(&s, &r);
        assert!(sum.sync && sum.one_way_valid);
    }

    #[test]
    fn negative_one_way_is_flagged_never_clamped() {
        let s = sent_all(2);
        // The reflector's clock is 4 ms behind ours: forward reads −3 ms, backward +5 ms; the
        // RTT (2 ms) is unaffected.
        let r: Vec<Reply> = s
            .iter()
            .map(|p| reply(p, p.seq, -3 * MS, 0, 5 * MS))
            .collect();
        let sum = summarize(&s, &r);
        assert!(sum.sync, "all estimates have S, yet...");
        assert!(
            !sum.one_way_valid,
            "...a negative one-way delay is not valid"
        );
        assert_eq!((sum.negative_forward, sum.negative_backward), (2, 0));
        let fwd = sum.forward.as_ref().unwrap();
        assert_close!(fwd.min, -0.003);
        assert_close!(fwd.max, -0.003);
        assert_close!(sum.backward.as_ref().unwrap().min, 0.005);
        assert_close!(sum.rtt.as_ref().unwrap().mean, 0.002);
        assert_close!(per_packet(&s, &r)[0].fwd.unwrap(), -0.003);
    }

    #[test]
    fn empty_input_is_a_valid_summary_with_no_stats() {
        let sum = summarize(&[], &[]);
        assert_eq!((sum.sent, sum.received, sum.lost), (0, 0, 0));
        assert_eq!(sum.loss_ratio, 0.0);
        assert_eq!(
            (sum.lost_forward, sum.lost_backward, sum.lost_unattributed),
            (0, 0, 0)
        );
        assert!(sum.rtt.is_none() && sum.forward.is_none() && sum.backward.is_none());
        assert!(sum.processing.is_none());
        assert_eq!(sum.rtt_variation, DelayVariation::default());
        assert!(sum.hops_forward.is_none() && sum.hops_backward.is_none());
        assert!(sum.maxerr.is_none() && sum.maxerr_fwd.is_none() && sum.maxerr_bck.is_none());
        assert!(!sum.sync && !sum.one_way_valid);
        assert_eq!(sum.reordering_round_trip.reordered_ratio, 0.0);
        assert!(per_packet(&[], &[]).is_empty());
    }

    #[test]
    fn all_lost_gives_loss_ratio_one_and_no_stats() {
        let s = sent_all(5);
        let sum = summarize(&s, &[]);
        assert_eq!((sum.sent, sum.received, sum.lost), (5, 0, 5));
        assert_eq!(sum.loss_ratio, 1.0);
        // Nothing came back, so nothing can be attributed: all forward, all unattributed.
        assert_eq!(
            (sum.lost_forward, sum.lost_backward, sum.lost_unattributed),
            (5, 0, 5)
        );
        assert!(sum.rtt.is_none() && sum.forward.is_none() && sum.backward.is_none());
        assert_eq!(sum.forward_variation, DelayVariation::default());
        assert!(!sum.sync);
        let p = per_packet(&s, &[]);
        assert_eq!(p.len(), 5);
        assert!(p
            .iter()
            .all(|p| p.reply.is_none() && p.rtt.is_none() && p.dup_count == 0));
    }

    #[test]
    fn per_packet_takes_the_first_reply_and_counts_duplicates() {
        let s = sent_all(3);
        let mut r = replies(&s, &[(0, 0), (2, 2), (0, 1)]);
        r[2].t4 = ts(s[0].t1.diff_nanos(ts(0)) + 50 * MS); // the later copy is slower
        let p = per_packet(&s, &r);
        assert_eq!(p.iter().map(|p| p.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(p[0].reply, Some(r[0]));
        assert_eq!(p[0].dup_count, 1);
        assert_close!(p[0].rtt.unwrap(), 0.002);
        assert_eq!((p[1].reply, p[1].rtt, p[1].dup_count), (None, None, 0));
        assert_eq!(p[2].reply, Some(r[1]));
    }

    #[test]
    fn hops_and_max_error_estimates() {
        let s = sent_all(3);
        let mut r = replies(&s, &[(0, 0), (1, 1), (2, 2)]);
        r[0].sender_ttl = 250; // 5 hops
        r[1].sender_ttl = 248; // 7 hops
        r[2].sender_ttl = 248;
        r[0].ttl = Some(247); // 8 hops
        r[1].ttl = None;
        r[2].ttl = Some(247);
        // Error estimates: multiplier × 2^(scale − 32) s. 0x8101 = 2^-31, 0x8201 = 2^-30.
        r[1].t2_err = ErrorEstimate(0x8201);
        r[2].t4_err = ErrorEstimate(0x8101);
        let sum = summarize(&s, &r);
        let mut unreported = r.clone();
        unreported[0].sender_ttl = 0;
        let u = summarize(&s, &unreported);
        assert_eq!(
            u.hops_forward
                .as_ref()
                .map(|h| (h.min, h.max, h.counts.len())),
            Some((7, 7, 1)),
            "a Sender TTL of 0 is no hop count"
        );
        let low = summarize_ttl(&s, &r, 252);
        assert_eq!(
            low.hops_forward.as_ref().map(|h| (h.min, h.max)),
            Some((2, 4)),
            "sent with TTL 252: 252 − 250 and 252 − 248"
        );
        let fwd = sum.hops_forward.unwrap();
        assert_eq!((fwd.min, fwd.max, fwd.counts), (5, 7, vec![(5, 1), (7, 2)]));
        let bck = sum.hops_backward.unwrap();
        assert_eq!((bck.min, bck.max, bck.counts), (8, 8, vec![(8, 2)]));
        let unit = 2f64.powi(-32);
        assert_close!(sum.maxerr.unwrap(), unit + 2.0 * unit); // T1 + T4 of packet 2
        assert_close!(sum.maxerr_fwd.unwrap(), unit + 4.0 * unit); // T1 + T2 of packet 1
        assert_close!(sum.maxerr_bck.unwrap(), unit + 2.0 * unit); // T3 + T4 of packet 2
        assert!(sum.sync);
    }

    // ---- delay variation ---------------------------------------------------------------

    /// Forward delays 10, 12, 11, 15 ms (backward a constant 1 ms, no processing), in order.
    fn delays_10_12_11_15() -> (Vec<Sent>, Vec<Reply>) {
        let s = sent_all(4);
        let r = s
            .iter()
            .zip([10, 12, 11, 15])
            .map(|(p, d)| reply(p, p.seq, d * MS, 0, MS))
            .collect();
        (s, r)
    }

    #[test]
    fn ipdv_from_literal_delays() {
        let (s, r) = delays_10_12_11_15();
        let sum = summarize(&s, &r);
        // IPDV = 2, −1, 4 ms, the same forward and round trip; backward is constant.
        for v in [&sum.forward_variation, &sum.rtt_variation] {
            let ipdv = v.ipdv.as_ref().unwrap();
            assert_eq!(ipdv.count, 3);
            assert_close!(ipdv.min, -0.001);
            assert_close!(ipdv.max, 0.004);
            assert_close!(ipdv.mean_abs, 0.007 / 3.0);
            assert_close!(ipdv.p95_abs, 0.004); // |IPDV| sorted 1, 2, 4: rank ⌈2.85⌉ = 3
            assert_close!(ipdv.p99_abs, 0.004);
        }
        let bck = sum.backward_variation.ipdv.as_ref().unwrap();
        assert_eq!(
            (bck.count, bck.min, bck.max, bck.mean_abs),
            (3, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn ipdv_skips_pairs_broken_by_a_loss() {
        let (s, mut r) = delays_10_12_11_15();
        r.remove(2); // packet 2 (11 ms) lost: only the pair (0, 1) is left
        let ipdv = summarize(&s, &r).forward_variation.ipdv.unwrap();
        assert_eq!(ipdv.count, 1);
        assert_close!(ipdv.min, 0.002);
        assert_close!(ipdv.max, 0.002);

        // One packet: no pair, no IPDV.
        let sum = summarize(&s[..1], &r[..1]);
        assert_eq!(sum.rtt_variation.ipdv, None);
        assert_eq!(sum.rtt_variation.rfc3550_jitter, None);
    }

    #[test]
    fn backward_ipdv_pairs_consecutive_reflector_numbers() {
        // Sender 1 is lost forward, so the reflector numbers 0, 2, 3 as 0, 1, 2: backward
        // pairs are (s0, s2) and (s2, s3) although sender numbers 0 and 2 are not adjacent.
        let s = sent_all(4);
        let r = vec![
            reply(&s[0], 0, MS, 0, 10 * MS),
            reply(&s[2], 1, MS, 0, 13 * MS),
            reply(&s[3], 2, MS, 0, 12 * MS),
        ];
        let ipdv = summarize(&s, &r).backward_variation.ipdv.unwrap();
        assert_eq!(ipdv.count, 2); // +3, −1 ms
        assert_close!(ipdv.min, -0.001);
        assert_close!(ipdv.max, 0.003);
    }

    #[test]
    fn pdv_and_twping_jitter_from_literal_delays() {
        let (s, r) = delays_10_12_11_15();
        let v = summarize(&s, &r).forward_variation;
        // PDV = D − Dmin = 0, 2, 1, 5 ms; sorted 0, 1, 2, 5.
        let pdv = v.pdv.unwrap();
        assert_close!(pdv.median, 0.0015);
        assert_close!(pdv.p95, 0.005);
        assert_close!(pdv.p99, 0.005);
        assert_close!(pdv.max, 0.005);
        // twping: P95 − median of 10, 11, 12, 15 = 15 − 11.5 = 3.5 ms.
        assert_close!(v.twping_jitter.unwrap(), 0.0035);
    }

    #[test]
    fn rfc3550_jitter_from_a_literal_series_in_arrival_order() {
        // Round-trip delays by sender number 10, 12, 11, 15 ms, but 2 arrives before 1, so in
        // arrival order the transit times are 10, 11, 12, 15 ms: differences 1, 1, 3 ms.
        //   J1 = 0 + (1 − 0)/16                   = 0.0625 ms
        //   J2 = 0.0625 + (1 − 0.0625)/16         = 0.12109375 ms
        //   J3 = 0.12109375 + (3 − 0.12109375)/16 = 0.301025390625 ms
        let (s, r) = delays_10_12_11_15();
        let arrival = vec![r[0], r[2], r[1], r[3]];
        let sum = summarize(&s, &arrival);
        assert_close!(
            sum.rtt_variation.rfc3550_jitter.unwrap(),
            0.000_301_025_390_625
        );
        // The reflector received them in send order: forward transit 10, 12, 11, 15 ms,
        // differences 2, 1, 4 ms:
        //   J1 = 2/16 = 0.125; J2 = 0.125 + 0.875/16 = 0.1796875;
        //   J3 = 0.1796875 + 3.8203125/16 = 0.41845703125 ms
        assert_close!(
            sum.forward_variation.rfc3550_jitter.unwrap(),
            0.000_418_457_031_25
        );
        // IPDV still pairs by sender number: 2, −1, 4 ms.
        let ipdv = sum.rtt_variation.ipdv.unwrap();
        assert_close!(ipdv.min, -0.001);
        assert_close!(ipdv.max, 0.004);
    }

    // ---- histogram ---------------------------------------------------------------------

    #[test]
    fn histogram_buckets_by_floor() {
        let v = [0.00005, 0.00015, 0.00019, 0.0003, -0.00001, 0.00025];
        assert_eq!(
            histogram(&v, 0.0001),
            [(-1, 1), (0, 1), (1, 2), (2, 1), (3, 1)]
        );
        // Delays that come from whole nanoseconds land on their boundary.
        let from_ns: Vec<f64> = [1_000, 2_000, 3_000, 7_000].map(secs).to_vec();
        assert_eq!(histogram(&from_ns, 1e-6), [(1, 1), (2, 1), (3, 1), (7, 1)]);
        assert_eq!(histogram(&[1.0, f64::NAN, f64::INFINITY], 0.5), [(2, 1)]);
        assert!(histogram(&[1.0], 0.0).is_empty());
        assert!(histogram(&[1.0], -1.0).is_empty());
        assert!(histogram(&[1.0], f64::NAN).is_empty());
        assert!(histogram(&[], 1.0).is_empty());
        assert_eq!(
            histogram(&[1e300, -1e300], 1.0),
            [(i64::MIN, 1), (i64::MAX, 1)]
        );
        assert!(histogram(&[1e300], 1e-300).is_empty()); // v / width overflows f64
    }

    // ---- the peer's timestamps ---------------------------------------------------------

    #[test]
    fn honest_reflections_have_no_problems() {
        let s = sent_all(10);
        let r: Vec<Reply> = s
            .iter()
            .enumerate()
            .map(|(i, p)| reply(p, i as u32, MS + i as i64 * 1000, 20_000, MS))
            .collect();
        assert_eq!(peer_problems(&s, &r), vec![]);
        // An unsynchronised but steady reflector clock 700 ms off is not a problem either.
        let off: Vec<Reply> = s
            .iter()
            .enumerate()
            .map(|(i, p)| reply(p, i as u32, 700 * MS, 20_000, -700 * MS + 2 * MS))
            .collect();
        assert_eq!(peer_problems(&s, &off), vec![]);
    }

    #[test]
    fn one_way_delays_jumping_700_ms_are_named() {
        // twamp-rs-like: T2 jumps by ±700 ms from packet to packet while round trips are 2 ms.
        let s = sent_all(6);
        let r: Vec<Reply> = s
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let jump = if i % 2 == 0 { 700 * MS } else { -700 * MS };
                reply(p, i as u32, jump, 0, 2 * MS - jump)
            })
            .collect();
        let problems = peer_problems(&s, &r);
        assert!(
            problems.iter().any(|p| matches!(p, PeerProblem::OneWaySpread { forward: true, spread, .. } if (*spread - 1.4).abs() < 1e-6)),
            "{problems:?}"
        );
        assert!(problems
            .iter()
            .any(|p| matches!(p, PeerProblem::OneWaySpread { forward: false, .. })));
        let text = problems[0].to_string();
        assert!(
            text.contains("forward delays vary by 1400.000 ms"),
            "{text}"
        );
    }

    #[test]
    fn impossible_reflector_timestamps_are_named() {
        let s = sent_all(3);
        let mut r = vec![
            reply(&s[0], 0, MS, -5 * MS, 10 * MS),  // T3 before T2
            reply(&s[1], 1, MS, 50 * MS, -48 * MS), // processing 50 ms in a 3 ms round trip
            reply(&s[2], 2, MS, 0, MS),
        ];
        r[2].t2 = Timestamp(0);
        r[2].t3_err = ErrorEstimate(0x8100);
        let p = peer_problems(&s, &r);
        assert!(
            p.contains(&PeerProblem::TransmitBeforeReceive { count: 1 }),
            "{p:?}"
        );
        assert!(
            p.contains(&PeerProblem::ProcessingExceedsRoundTrip { count: 1 }),
            "{p:?}"
        );
        assert!(
            p.contains(&PeerProblem::ZeroTimestamps { count: 1 }),
            "{p:?}"
        );
        assert!(
            p.contains(&PeerProblem::ZeroMultiplier { count: 1 }),
            "{p:?}"
        );
    }

    // ---- no panics, consistent order statistics ----------------------------------------

    /// Knuth's MMIX LCG: deterministic, no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 16
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    fn check_stats(name: &str, s: &DelayStats) {
        let all = [s.min, s.mean, s.median, s.p95, s.p99, s.max];
        assert!(all.iter().all(|x| x.is_finite()), "{name}: {s:?}");
        assert!(s.min <= s.median && s.median <= s.max, "{name}: {s:?}");
        assert!(s.min <= s.mean && s.mean <= s.max, "{name}: {s:?}");
        assert!(s.median <= s.p95, "{name}: {s:?}");
        assert!(s.p95 <= s.p99 && s.p99 <= s.max, "{name}: {s:?}");
        if let Some(sd) = s.stddev {
            assert!(sd.is_finite() && sd >= 0.0, "{name}: {s:?}");
        }
    }

    fn check_variation(name: &str, v: &DelayVariation) {
        if let Some(i) = &v.ipdv {
            assert!(i.min <= i.max && i.count > 0, "{name}: {i:?}");
            assert!(i.mean_abs >= 0.0 && i.p95_abs <= i.p99_abs, "{name}: {i:?}");
            assert!(
                i.mean_abs.is_finite() && i.p99_abs.is_finite(),
                "{name}: {i:?}"
            );
        }
        if let Some(p) = &v.pdv {
            assert!(0.0 <= p.median && p.median <= p.p95, "{name}: {p:?}");
            assert!(p.p95 <= p.p99 && p.p99 <= p.max, "{name}: {p:?}");
        }
        if let Some(j) = v.twping_jitter {
            assert!(j.is_finite() && j >= 0.0, "{name}: {j}");
        }
        if let Some(j) = v.rfc3550_jitter {
            assert!(j.is_finite() && j >= 0.0, "{name}: {j}");
        }
    }

    #[test]
    fn random_inputs_never_panic_and_keep_order_statistics_consistent() {
        let mut rng = Lcg(0x5eed);
        for round in 0..2_000 {
            let n = rng.below(40) as u32;
            let wild = rng.chance(10); // garbage timestamps and numbers
            let mut sent = Vec::new();
            for i in 0..n {
                let seq = if rng.chance(5) {
                    rng.below(50) as u32
                } else {
                    i
                };
                let t1 = if wild {
                    Timestamp(rng.next() << 16 ^ rng.next())
                } else {
                    ts(i64::from(i) * 10 * MS + rng.below(MS as u64) as i64)
                };
                sent.push(Sent {
                    seq,
                    t1,
                    t1_err: ErrorEstimate(rng.next() as u16),
                });
            }
            let mut replies = Vec::new();
            for k in 0..rng.below(60) {
                let sender_seq = match rng.below(10) {
                    0 => rng.next() as u32,
                    1..=2 => rng.below(50) as u32,
                    _ => sent
                        .get(rng.below(u64::from(n)) as usize)
                        .map_or(0, |s| s.seq),
                };
                let reflector_seq = match rng.below(10) {
                    0 => u32::MAX - rng.below(3) as u32,
                    1 => rng.next() as u32,
                    _ => (k + rng.below(3)) as u32,
                };
                let base = sent
                    .iter()
                    .find(|s| s.seq == sender_seq)
                    .map_or(ts(0), |s| s.t1);
                let mut t = |spread: u64| {
                    if wild {
                        Timestamp(rng.next() << 16 ^ rng.next())
                    } else {
                        let off = rng.below(spread) as i64 - (spread as i64) / 4;
                        ts(base.diff_nanos(ts(0)) + off)
                    }
                };
                let (t1, t2, t3, t4) = (
                    t(1),
                    t(40 * MS as u64),
                    t(45 * MS as u64),
                    t(90 * MS as u64),
                );
                replies.push(Reply {
                    sender_seq,
                    reflector_seq,
                    t1,
                    t1_err: ErrorEstimate(rng.next() as u16),
                    t2,
                    t2_err: ErrorEstimate(rng.next() as u16),
                    t3,
                    t3_err: ErrorEstimate(rng.next() as u16),
                    t4,
                    t4_err: ErrorEstimate(rng.next() as u16),
                    sender_ttl: rng.next() as u8,
                    ttl: rng.chance(80).then(|| rng.next() as u8),
                });
            }

            let sum = summarize(&sent, &replies);
            let ctx = format!("round {round}");
            let distinct: HashSet<u32> = sent.iter().map(|s| s.seq).collect();
            assert_eq!(sum.sent, distinct.len() as u64, "{ctx}");
            assert_eq!(sum.received + sum.lost, sum.sent, "{ctx}");
            assert_eq!(sum.lost_forward + sum.lost_backward, sum.lost, "{ctx}");
            assert!(sum.lost_unattributed <= sum.lost_forward, "{ctx}");
            assert_eq!(
                sum.duplicates,
                sum.duplicates_forward + sum.duplicates_backward,
                "{ctx}"
            );
            assert_eq!(
                sum.received + sum.duplicates + sum.unexpected,
                replies.len() as u64,
                "{ctx}"
            );
            assert!((0.0..=1.0).contains(&sum.loss_ratio), "{ctx}");
            for r in [
                &sum.reordering_forward,
                &sum.reordering_backward,
                &sum.reordering_round_trip,
            ] {
                assert!(r.reordered <= r.packets, "{ctx}: {r:?}");
                assert!((0.0..=1.0).contains(&r.reordered_ratio), "{ctx}: {r:?}");
            }
            assert_eq!(sum.rtt.is_some(), sum.received > 0, "{ctx}");
            for (name, s) in [
                ("rtt", &sum.rtt),
                ("forward", &sum.forward),
                ("backward", &sum.backward),
                ("processing", &sum.processing),
            ] {
                if let Some(s) = s {
                    assert_eq!(s.count, sum.received, "{ctx} {name}");
                    check_stats(&format!("{ctx} {name}"), s);
                }
            }
            check_variation(&ctx, &sum.rtt_variation);
            check_variation(&ctx, &sum.forward_variation);
            check_variation(&ctx, &sum.backward_variation);
            for h in [&sum.hops_forward, &sum.hops_backward]
                .into_iter()
                .flatten()
            {
                assert!(h.min <= h.max, "{ctx}: {h:?}");
            }
            for e in [sum.maxerr, sum.maxerr_fwd, sum.maxerr_bck]
                .into_iter()
                .flatten()
            {
                assert!(e.is_finite() && e >= 0.0, "{ctx}: {e}");
            }
            if sum.one_way_valid {
                assert!(sum.sync && sum.forward.as_ref().is_some_and(|f| f.min >= 0.0));
            }

            let packets = per_packet(&sent, &replies);
            assert_eq!(packets.len() as u64, sum.sent, "{ctx}");
            assert_eq!(
                packets.iter().filter(|p| p.reply.is_some()).count() as u64,
                sum.received,
                "{ctx}"
            );
            let rtts: Vec<f64> = packets.iter().filter_map(|p| p.rtt).collect();
            let buckets = histogram(&rtts, 1e-4);
            assert_eq!(
                buckets.iter().map(|b| b.1).sum::<u64>(),
                rtts.len() as u64,
                "{ctx}"
            );
            assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0), "{ctx}");
        }
    }
}
