//! A client [`Report`] as plot input: one [`PlotSession`] per test session.

use super::{PlotPacket, PlotSession, PlotTitle, Samples};
use crate::report::Report;
use crate::time::Timestamp;

fn unix(t: Timestamp) -> f64 {
    t.to_system_time()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One plot per session of `r`. One-way delays are drawn only when both clocks are
/// synchronised and the reflector's timestamps are sound; the note says why they are absent.
pub fn sessions_from_report(r: &Report) -> Vec<PlotSession> {
    let target = match r.server {
        Some(a) => format!("{} ({a})", r.host),
        None => format!("{}:{}", r.host, r.port),
    };
    r.sessions
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let s = &m.summary;
            let one_way = s.sync && m.problems.is_empty();
            let note = if !m.problems.is_empty() {
                Some(format!(
                    "no one-way delays: the reflector's timestamps are invalid ({})",
                    m.problems[0]
                ))
            } else if !s.sync {
                Some("no one-way delays: the clocks are not both synchronised".to_string())
            } else {
                None
            };
            let packets = m
                .packets()
                .iter()
                .map(|p| PlotPacket {
                    send_time: unix(p.t1),
                    rtt: p.rtt,
                    forward: p.fwd.filter(|_| one_way),
                    backward: p.bck.filter(|_| one_way),
                })
                .collect();

            PlotSession {
                title: PlotTitle {
                    target: if r.sessions.len() > 1 {
                        format!("{target}, session {}", i + 1)
                    } else {
                        target.clone()
                    },
                    mode: r.mode_name().map(str::to_string),
                    dscp: Some(m.dscp),
                    packet_octets: (m.octets > 0).then_some(m.octets),
                    start: Some(r.started.clone()),
                    sent: s.sent,
                    lost: s.lost,
                    lost_forward: s.lost_forward,
                    lost_backward: s.lost_backward,
                },
                samples: Samples::Packets,
                packets,
                one_way_note: note,
            }
        })
        .collect()
}
