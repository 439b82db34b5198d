//! Wire time: the 64-bit NTP timestamp and the Error Estimate (RFC 4656 §4.1.2, used by
//! RFC 5357 §4.1.2), and the `Clock` seam that lets tests fake time.
//!
//! Invariants:
//! - A `Timestamp` is exactly the wire value: 32 bits of seconds since 1900-01-01 and 32 bits of
//!   fraction in units of 2^-32 s. It is never stored as nanoseconds (twamp-rs did, and put the
//!   wrong fraction on the wire).
//! - An `ErrorEstimate` with the S bit set is only built from a kernel clock that says it is
//!   synchronised (`ClockState::read`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// A 64-bit NTP-format timestamp (RFC 4656 §4.1.2; RFC 5905 §6 "NTP Timestamp Format").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const LEN: usize = 8;

    pub fn new(seconds: u32, fraction: u32) -> Self {
        Timestamp((u64::from(seconds) << 32) | u64::from(fraction))
    }

    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub fn fraction(self) -> u32 {
        self.0 as u32
    }

    pub fn from_bytes(b: [u8; 8]) -> Self {
        Timestamp(u64::from_be_bytes(b))
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Converts wall-clock time. The fraction is rounded to the nearest 2^-32 s, so that a round
    /// trip through `to_system_time` is exact to the nanosecond.
    /// Times before 1970 clamp to the Unix epoch (no clock of ours reads them).
    pub fn from_system_time(t: SystemTime) -> Self {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self::from_unix_duration(since)
    }

    /// Converts a time given as a duration since the Unix epoch (kernel timestamps come so).
    pub fn from_unix_duration(since: Duration) -> Self {
        let secs = since.as_secs() + NTP_UNIX_OFFSET_SECS;
        // frac = round(nanos * 2^32 / 1e9); nanos < 1e9 so this never carries into seconds
        // except when it rounds up to exactly 2^32, handled below.
        let frac = ((u64::from(since.subsec_nanos()) << 32) + 500_000_000) / 1_000_000_000;
        // Era wrap (year 2036) is ignored deliberately: the wire field is 32 bits and RFC 4656
        // leaves era handling to the reader; both ends of a measurement share the era.
        Timestamp((secs << 32).wrapping_add(frac))
    }

    /// The wall-clock time this timestamp names (era 0).
    pub fn to_system_time(self) -> SystemTime {
        let secs = u64::from(self.seconds()).saturating_sub(NTP_UNIX_OFFSET_SECS);
        let nanos = ((u64::from(self.fraction()) * 1_000_000_000) + (1 << 31)) >> 32;
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos)
    }

    /// Milliseconds since the Unix epoch, rounded (era 0; 0 before 1970). Integer arithmetic.
    pub fn unix_millis(self) -> u64 {
        let secs = u64::from(self.seconds()).saturating_sub(NTP_UNIX_OFFSET_SECS);
        secs * 1000 + ((u64::from(self.fraction()) * 1000 + (1 << 31)) >> 32)
    }

    /// Signed difference `self - earlier` in nanoseconds, exact to the rounding of one
    /// 2^-32 s unit. Negative when `earlier` is later (unsynchronised one-way delays can be).
    pub fn diff_nanos(self, earlier: Timestamp) -> i64 {
        let d = self.0.wrapping_sub(earlier.0) as i64; // units of 2^-32 s, two's complement
                                                       // d * 1e9 / 2^32 without overflow: split into seconds and fraction.
        let secs = d >> 32;
        let frac = d & 0xffff_ffff;
        secs * 1_000_000_000 + ((frac * 1_000_000_000 + (1 << 31)) >> 32)
    }

    /// Signed difference in seconds.
    pub fn diff_secs(self, earlier: Timestamp) -> f64 {
        self.diff_nanos(earlier) as f64 * 1e-9
    }

    /// A duration as an NTP-format interval (Request-TW-Session's Timeout field).
    pub fn from_duration(d: Duration) -> Self {
        let frac = ((u64::from(d.subsec_nanos()) << 32) + 500_000_000) / 1_000_000_000;
        Timestamp((d.as_secs() << 32).wrapping_add(frac))
    }

    /// This value read as an interval rather than a point in time.
    pub fn as_duration(self) -> Duration {
        let nanos = ((u64::from(self.fraction()) * 1_000_000_000) + (1 << 31)) >> 32;
        Duration::from_secs(u64::from(self.seconds())) + Duration::from_nanos(nanos)
    }
}

/// Error Estimate (RFC 4656 §4.1.2): S(1) | Z(1) | Scale(6) | Multiplier(8).
/// The error is Multiplier × 2^-32 × 2^Scale seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ErrorEstimate(pub u16);

impl ErrorEstimate {
    pub const LEN: usize = 2;
    const S: u16 = 0x8000;
    const Z: u16 = 0x4000;

    /// What owamp falls back to when it cannot encode an estimate: unsynchronised, maximum
    /// error (`owamp/endpoint.c` l.1450–1462 sets scale 0x3f, multiplier 0xff, sync 0).
    pub const UNKNOWN: ErrorEstimate = ErrorEstimate(0x3fff);

    pub fn from_bytes(b: [u8; 2]) -> Self {
        ErrorEstimate(u16::from_be_bytes(b))
    }

    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    /// S: "set if the party generating the timestamp has a clock that is synchronized to UTC
    /// using an external source".
    pub fn synchronized(self) -> bool {
        self.0 & Self::S != 0
    }

    /// Z: 0 for NTP-format timestamps (RFC 5357 §4.2.1 as amended by RFC 8186).
    pub fn z(self) -> bool {
        self.0 & Self::Z != 0
    }

    pub fn scale(self) -> u8 {
        ((self.0 >> 8) & 0x3f) as u8
    }

    pub fn multiplier(self) -> u8 {
        self.0 as u8
    }

    /// RFC 4656 §4.1.2: "Multiplier MUST NOT be set to zero"; a packet carrying one is
    /// invalid and SHOULD be discarded by the receiver.
    pub fn is_valid(self) -> bool {
        self.multiplier() != 0
    }

    /// The estimated error in seconds.
    pub fn seconds(self) -> f64 {
        f64::from(self.multiplier()) * 2f64.powi(i32::from(self.scale()) - 32)
    }

    /// Encodes an error bound, rounding up so the estimate is never smaller than the truth.
    pub fn from_error(synchronized: bool, error: Duration) -> Self {
        // Find the smallest scale such that multiplier = ceil(err / 2^(scale-32)) fits in 8 bits.
        let err = error.as_secs_f64().max(2f64.powi(-32));
        let mut scale = 0i32;
        let mut mult;
        loop {
            mult = (err / 2f64.powi(scale - 32)).ceil();
            if mult <= 255.0 || scale == 63 {
                break;
            }
            scale += 1;
        }
        let mult = mult.clamp(1.0, 255.0) as u16;
        let s = if synchronized { Self::S } else { 0 };
        ErrorEstimate(s | ((scale as u16) << 8) | mult)
    }
}

/// A source of wire timestamps, so tests can run the protocol on fake time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// The Error Estimate for timestamps taken with this clock now.
    fn error_estimate(&self) -> ErrorEstimate;
}

/// The system's real-time clock. The Error Estimate comes from the kernel's clock discipline
/// (`adjtimex`), refreshed at most once a second so the per-packet path stays cheap: one atomic
/// load and one monotonic clock read, no lock.
#[derive(Debug)]
pub struct SystemClock {
    base: std::time::Instant,
    /// Bits 0..16: the cached Error Estimate; bits 16..64: milliseconds since `base` at which
    /// it was read, plus one (0 = never read).
    cached: std::sync::atomic::AtomicU64,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            base: std::time::Instant::now(),
            cached: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl SystemClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    fn error_estimate(&self) -> ErrorEstimate {
        use std::sync::atomic::Ordering::Relaxed;
        let now_ms = self.base.elapsed().as_millis() as u64 + 1;
        let c = self.cached.load(Relaxed);
        let (at, ee) = (c >> 16, c as u16);
        if at != 0 && now_ms.saturating_sub(at) < 1000 {
            return ErrorEstimate(ee);
        }
        // Two threads may both refresh at the boundary; both store a fresh value.
        let ee = ClockState::read().error_estimate();
        self.cached.store((now_ms << 16) | u64::from(ee.0), Relaxed);
        ee
    }
}

/// The kernel's view of the clock (adjtimex(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockState {
    /// False when adjtimex returns TIME_ERROR or sets STA_UNSYNC, or cannot be read.
    pub synchronized: bool,
    /// The kernel's maximum error bound, in microseconds (`maxerror`).
    pub max_error_us: i64,
    /// The kernel's estimated error, in microseconds (`esterror`).
    pub est_error_us: i64,
}

impl ClockState {
    /// Reads the clock state. On a platform without adjtimex, reports unsynchronised.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub fn read() -> Self {
        // SAFETY: `timex` is a plain C struct; zeroed with modes = 0 asks adjtimex to read only.
        let mut tx: libc::timex = unsafe { std::mem::zeroed() };
        // SAFETY: `tx` is a valid, exclusively borrowed timex for the duration of the call.
        let rc = unsafe { libc::adjtimex(&mut tx) };
        let synchronized = rc >= 0 && rc != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0;
        ClockState {
            synchronized,
            max_error_us: tx.maxerror,
            est_error_us: tx.esterror,
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read() -> Self {
        ClockState {
            synchronized: false,
            max_error_us: 0,
            est_error_us: 0,
        }
    }

    /// An honest Error Estimate: S only when the kernel says synchronised, and the error from
    /// `esterror` (falling back to `maxerror`). Unsynchronised clocks still carry a best-effort
    /// error, as twping's do, but never the S bit.
    pub fn error_estimate(self) -> ErrorEstimate {
        if !self.synchronized {
            return ErrorEstimate::from_error(
                false,
                Duration::from_micros(self.max_error_us.clamp(1, 16_000_000) as u64),
            );
        }
        let us = if self.est_error_us > 0 {
            self.est_error_us
        } else {
            self.max_error_us
        };
        ErrorEstimate::from_error(true, Duration::from_micros(us.max(1) as u64))
    }
}

/// A clock for tests: returns the time it was set to.
#[derive(Debug, Default)]
pub struct FakeClock {
    pub now: std::sync::atomic::AtomicU64,
    pub estimate: u16,
}

impl Timestamp {
    /// This time plus `d` (wrapping at the NTP era, as the format does).
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.wrapping_add(Timestamp::from_duration(d).0))
    }
}

impl FakeClock {
    pub fn at(t: Timestamp) -> Self {
        FakeClock {
            now: std::sync::atomic::AtomicU64::new(t.0),
            estimate: 0x0001,
        }
    }

    pub fn set(&self, t: Timestamp) {
        self.now.store(t.0, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.set(self.now().plus(d));
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn error_estimate(&self) -> ErrorEstimate {
        ErrorEstimate(self.estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch_is_ntp_2208988800() {
        let ts = Timestamp::from_system_time(UNIX_EPOCH);
        assert_eq!(ts.seconds(), 2_208_988_800);
        assert_eq!(ts.fraction(), 0);
        assert_eq!(ts.to_bytes(), [0x83, 0xaa, 0x7e, 0x80, 0, 0, 0, 0]);
    }

    #[test]
    fn half_second_is_fraction_0x80000000() {
        let ts = Timestamp::from_system_time(UNIX_EPOCH + Duration::from_millis(500));
        assert_eq!(ts.fraction(), 0x8000_0000);
        assert_eq!(ts.to_system_time(), UNIX_EPOCH + Duration::from_millis(500));
    }

    #[test]
    fn fraction_table() {
        // (nanoseconds, fraction) pairs computed by hand: frac = round(ns * 2^32 / 1e9).
        for (ns, frac) in [
            (0u32, 0u32),
            (250_000_000, 0x4000_0000),
            (750_000_000, 0xc000_0000),
            (1, 4),                     // 4.294967296 → 4
            (999_999_999, 0xffff_fffc), // 4294967291.7 → ...fffc (rounds to 4294967292)
        ] {
            let ts = Timestamp::from_unix_duration(Duration::new(0, ns));
            assert_eq!(ts.fraction(), frac, "ns={ns}");
        }
    }

    #[test]
    fn system_time_round_trip_is_exact_to_the_nanosecond() {
        for ns in [0u32, 1, 2, 3, 123_456_789, 500_000_000, 999_999_999] {
            let t = UNIX_EPOCH + Duration::new(1_700_000_000, ns);
            assert_eq!(
                Timestamp::from_system_time(t).to_system_time(),
                t,
                "ns={ns}"
            );
        }
        let now = SystemTime::now();
        let back = Timestamp::from_system_time(now).to_system_time();
        let d = back.duration_since(now).unwrap_or_else(|e| e.duration());
        assert!(d <= Duration::from_nanos(1), "{d:?}");
    }

    #[test]
    fn difference_across_a_seconds_boundary() {
        let a = Timestamp::new(100, 0xc000_0000); // 100.75
        let b = Timestamp::new(101, 0x4000_0000); // 101.25
        assert_eq!(b.diff_nanos(a), 500_000_000);
        assert_eq!(a.diff_nanos(b), -500_000_000);
        assert!((b.diff_secs(a) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn error_estimate_fields() {
        // twping's unsynchronised estimate in the captures: 0x0001 = 2^-32 s, S clear.
        let ee = ErrorEstimate(0x0001);
        assert!(!ee.synchronized());
        assert_eq!(ee.scale(), 0);
        assert_eq!(ee.multiplier(), 1);
        assert!((ee.seconds() - 2.328_306_436_538_696_3e-10).abs() < 1e-20);
        assert!(!ErrorEstimate(0x8100).is_valid());
        assert!(ErrorEstimate(0x8001).synchronized());
        assert!(ErrorEstimate(0x4001).z());
    }

    #[test]
    fn error_estimate_never_understates() {
        for us in [1u64, 7, 100, 1_000, 16_000_000] {
            let d = Duration::from_micros(us);
            let ee = ErrorEstimate::from_error(true, d);
            assert!(ee.synchronized());
            assert!(ee.is_valid());
            assert!(
                ee.seconds() >= d.as_secs_f64(),
                "{us} µs → {}",
                ee.seconds()
            );
            assert!(
                ee.seconds() < d.as_secs_f64() * 1.01 + 1e-9,
                "{us} µs → {}",
                ee.seconds()
            );
        }
    }

    #[test]
    fn unsynchronised_clock_never_sets_s() {
        let st = ClockState {
            synchronized: false,
            max_error_us: 500,
            est_error_us: 1,
        };
        assert!(!st.error_estimate().synchronized());
        let st = ClockState {
            synchronized: true,
            max_error_us: 500,
            est_error_us: 20,
        };
        assert!(st.error_estimate().synchronized());
        // This machine's state, whatever it is, must agree with the kernel's own flag.
        let real = ClockState::read();
        assert_eq!(real.error_estimate().synchronized(), real.synchronized);
    }

    #[test]
    fn unix_millis_of_known_times() {
        assert_eq!(Timestamp::from_system_time(UNIX_EPOCH).unix_millis(), 0);
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(
            Timestamp::from_system_time(t).unix_millis(),
            1_700_000_000_123
        );
        assert_eq!(Timestamp(0).unix_millis(), 0, "before 1970 clamps");
    }

    #[test]
    fn interval_round_trip() {
        let d = Duration::from_millis(2500);
        assert_eq!(Timestamp::from_duration(d), Timestamp::new(2, 0x8000_0000));
        assert_eq!(Timestamp::from_duration(d).as_duration(), d);
    }
}
