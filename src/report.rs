//! The result of one client run, built once and rendered by every output format.
//!
//! A [`Report`] holds the run's metadata, one [`SessionReport`] per test session (what was
//! asked, the raw per-packet [`Outcome`], its [`Summary`] and what is wrong with the peer's
//! timestamps, if anything) and the error if the run failed. [`Report::exit_code`] is the one
//! place a run's exit status is decided. Nothing here does I/O.

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{ClientConfig, SessionSpec};
use crate::control::SecurityMode;
use crate::error::{exit, Error};
use crate::light::sender::{classify, ReflectorKind};
use crate::sender::{Outcome, Schedule};
use crate::stats::{self, DelayStats, PacketResult, PeerProblem, Summary};
use crate::wire::Sid;

/// One test session of a run.
#[derive(Debug, Clone)]
pub struct SessionReport {
    pub sid: Sid,
    /// Our test socket and the reflector's.
    pub local: SocketAddr,
    pub reflector: SocketAddr,
    /// Padding Length requested.
    pub padding: u32,
    /// The Session-Sender's packet size, UDP payload octets (0 until known).
    pub octets: u32,
    /// STAMP's Session-Sender Identifier (RFC 8972 §3); `None` for TWAMP and TWAMP-Light.
    pub ssid: Option<u16>,
    /// TWAMP-Light / STAMP: how the reflector numbers its replies, once measured. TWAMP's is
    /// stateful by RFC 5357 §4.2.1.
    pub reflector_kind: Option<ReflectorKind>,
    /// A TWAMP-Light / STAMP session: no control connection, no SID.
    pub light: bool,
    pub dscp: u8,
    /// TTL our test packets were sent with.
    pub ttl: u8,
    pub count: u32,
    pub schedule: Schedule,
    /// `-duration`: the session sent for this long, `count` only capped it.
    pub duration: Option<Duration>,
    pub loss_timeout: Duration,
    /// Every packet sent and every reflection received.
    pub outcome: Outcome,
    pub summary: Summary,
    /// What is wrong with the reflector's timestamps or SID, if anything.
    pub problems: Vec<PeerProblem>,
}

impl SessionReport {
    /// A session accepted and not yet measured.
    pub fn new(
        sid: Sid,
        local: SocketAddr,
        reflector: SocketAddr,
        padding: u32,
        spec: &SessionSpec,
    ) -> Self {
        SessionReport {
            sid,
            local,
            reflector,
            padding,
            octets: 0,
            ssid: None,
            reflector_kind: None,
            light: false,
            dscp: spec.dscp,
            ttl: spec.ttl,
            count: spec.count,
            schedule: spec.schedule,
            duration: spec.duration,
            loss_timeout: spec.loss_timeout,
            outcome: Outcome::default(),
            summary: stats::summarize(&[], &[]),
            problems: Vec::new(),
        }
    }

    /// Takes the session's outcome and computes its summary.
    pub fn finish(&mut self, outcome: Outcome) {
        self.summary = stats::summarize_ttl(&outcome.sent, &outcome.replies, self.ttl);
        self.problems = stats::peer_problems(&outcome.sent, &outcome.replies);
        if self.is_light() {
            // No SID without a control connection; what the loss split can rest on is how
            // the reflector numbers its replies (RFC 8762 §4).
            self.reflector_kind = Some(classify(
                outcome
                    .replies
                    .iter()
                    .map(|r| (r.sender_seq, r.reflector_seq)),
            ));
        } else if self.sid.0 == [0; 16] {
            self.problems.insert(0, PeerProblem::ZeroSid);
        }
        self.outcome = outcome;
    }

    /// Packets the session was to send: its count, or what it sent when a duration bounded it.
    pub fn sent_or_planned(&self) -> u64 {
        match self.duration {
            Some(_) => self.outcome.sent.len() as u64,
            None => u64::from(self.count),
        }
    }

    /// A TWAMP-Light / STAMP session (no control connection).
    pub fn is_light(&self) -> bool {
        self.light
    }

    /// Whether loss can be split by direction: the reflector numbers its own replies
    /// (TWAMP, or a stateful STAMP reflector seen losing none of our numbering).
    pub fn loss_direction_known(&self) -> bool {
        self.reflector_kind
            .is_none_or(ReflectorKind::per_direction_loss)
    }

    /// One record per test packet, in send order.
    pub fn packets(&self) -> Vec<PacketResult> {
        stats::per_packet(&self.outcome.sent, &self.outcome.replies)
    }

    /// The interval of a periodic schedule, the mean gap of a Poisson one.
    pub fn interval(&self) -> Duration {
        self.schedule.mean_interval()
    }
}

/// The sessions of a run taken together (only for runs of several sessions).
#[derive(Debug, Clone, PartialEq)]
pub struct Total {
    pub sessions: usize,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub lost_forward: u64,
    pub lost_backward: u64,
    /// `lost / sent`; 0 when nothing was sent.
    pub loss_ratio: f64,
    /// Round-trip delays of every session's samples together.
    pub rtt: Option<DelayStats>,
}

/// One client run.
#[derive(Debug)]
pub struct Report {
    /// Start of the run, RFC 3339 in local time with its offset.
    pub started: String,
    /// The server as the user named it.
    pub host: String,
    pub port: u16,
    /// The address we connected to, once connected.
    pub server: Option<SocketAddr>,
    /// The security mode, once chosen.
    pub mode: Option<SecurityMode>,
    /// TWAMP-Light / STAMP: what was sent (`stamp`, `stamp-authenticated`, `twamp-light`).
    pub light: Option<&'static str>,
    /// The sessions accepted, in request order.
    pub sessions: Vec<SessionReport>,
    /// Why the run failed, if it did; what was measured before stays in `sessions`.
    pub error: Option<Error>,
}

impl Report {
    /// An empty report for a run starting now.
    pub fn new(cfg: &ClientConfig) -> Self {
        Report {
            started: crate::logging::now_rfc3339(),
            host: cfg.host.clone(),
            port: cfg.port,
            server: None,
            mode: None,
            light: None,
            sessions: Vec::new(),
            error: None,
        }
    }

    /// The mode records name: the security mode, or the TWAMP-Light / STAMP format.
    pub fn mode_name(&self) -> Option<&'static str> {
        self.mode.map(SecurityMode::name).or(self.light)
    }

    /// Records the error that ended the run; the first one wins.
    pub fn fail(&mut self, e: Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// The sessions together, when there are several.
    pub fn total(&self) -> Option<Total> {
        if self.sessions.len() < 2 {
            return None;
        }
        let sum = |f: fn(&Summary) -> u64| self.sessions.iter().map(|s| f(&s.summary)).sum();
        let (sent, lost): (u64, u64) = (sum(|s| s.sent), sum(|s| s.lost));
        let rtts: Vec<f64> = self
            .sessions
            .iter()
            .flat_map(|s| s.packets().into_iter().filter_map(|p| p.rtt))
            .collect();
        Some(Total {
            sessions: self.sessions.len(),
            sent,
            received: sum(|s| s.received),
            lost,
            lost_forward: sum(|s| s.lost_forward),
            lost_backward: sum(|s| s.lost_backward),
            loss_ratio: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            rtt: DelayStats::from_values(&rtts),
        })
    }

    /// Whether the run measured without error and every session got a reply.
    pub fn ok(&self) -> bool {
        self.exit_code() == exit::OK
    }

    /// The run's exit status (README.md, twamp(1) EXIT STATUS): the error's code if it failed;
    /// else [`exit::ALL_LOST`] when a session got no reply at all; else 0.
    pub fn exit_code(&self) -> u8 {
        match &self.error {
            Some(e) => e.exit_code(),
            None if self.sessions.iter().any(|s| s.summary.received == 0) => exit::ALL_LOST,
            None => exit::OK,
        }
    }

    /// The exit status once the report has been written: a failed write (the result is lost)
    /// turns a success into [`exit::LOCAL`]; a run that failed already keeps its own code.
    pub fn exit_code_after_output(&self, written: &Result<(), Error>) -> u8 {
        match (self.exit_code(), written) {
            (exit::OK, Err(_)) => exit::LOCAL,
            (code, _) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Reply, Sent};
    use crate::time::{ErrorEstimate, Timestamp};

    fn report() -> Report {
        Report::new(&ClientConfig::default())
    }

    fn session(replied: bool) -> SessionReport {
        let mut s = SessionReport::new(
            Sid([1; 16]),
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
            27,
            &SessionSpec::default(),
        );
        let t = Timestamp::new(100, 0);
        let e = ErrorEstimate(0x0001);
        let sent = vec![Sent {
            seq: 0,
            t1: t,
            t1_err: e,
        }];
        let replies = if replied {
            vec![Reply {
                sender_seq: 0,
                reflector_seq: 0,
                t1: t,
                t1_err: e,
                t2: t,
                t2_err: e,
                t3: t,
                t3_err: e,
                t4: Timestamp::new(100, 1 << 20),
                t4_err: e,
                sender_ttl: 255,
                ttl: Some(255),
            }]
        } else {
            vec![]
        };
        s.finish(Outcome {
            sent,
            replies,
            ..Outcome::default()
        });
        s
    }

    #[test]
    fn exit_codes_are_decided_here() {
        let mut r = report();
        r.sessions.push(session(true));
        assert_eq!(r.exit_code(), exit::OK);
        assert_eq!(
            r.exit_code_after_output(&Err(Error::Config("x".into()))),
            exit::LOCAL
        );
        assert_eq!(r.total(), None, "one session: no total");
        r.sessions.push(session(false));
        assert_eq!(
            r.exit_code(),
            exit::ALL_LOST,
            "one session got nothing back"
        );
        let t = r.total().expect("two sessions");
        assert_eq!((t.sessions, t.sent, t.received, t.lost), (2, 2, 1, 1));
        assert_eq!(t.loss_ratio, 0.5);
        assert_eq!(t.rtt.map(|d| d.count), Some(1));
        assert_eq!(
            r.exit_code_after_output(&Err(Error::Config("x".into()))),
            exit::ALL_LOST
        );
        r.fail(Error::Timeout {
            waiting_for: "Start-Ack",
            addr: None,
        });
        assert_eq!(r.exit_code(), exit::TIMEOUT);
        r.fail(Error::Config("later".into()));
        assert_eq!(r.exit_code(), exit::TIMEOUT, "the first error wins");
    }

    #[test]
    fn an_all_zero_sid_is_a_peer_problem() {
        let mut s = session(true);
        s.sid = Sid([0; 16]);
        let outcome = s.outcome.clone();
        s.finish(outcome);
        assert_eq!(s.problems.first(), Some(&PeerProblem::ZeroSid));
    }
}
