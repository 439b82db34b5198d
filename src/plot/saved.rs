//! Reading saved records back into [`PlotSession`]s: `-format packets` lines or
//! `-format json` (schema `twamp-result/1`) JSON Lines, as `-output` appends them.
//!
//! # Format detection
//!
//! The first line that is neither blank nor a `#` comment decides: `{` starts JSON Lines,
//! anything else is `-format packets`. Every later line must then be of the same format; one
//! that is not is an [`Error::Malformed`] naming its line.
//!
//! # `-format packets`
//!
//! twping `-R`'s 16 fields per test packet
//! (`SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL`), a lost
//! packet with `RTIME` = 0. A file written by several runs holds their lines one after the
//! other with no header, so a run ends where the sender sequence number does not increase (each
//! run numbers its packets from 0, in send order) and after a `# FAILED (kind): message` line
//! (the last line of a failed run's record). Each run becomes one [`Samples::Packets`] session,
//! computed with [`crate::stats`] exactly as the client computes it. The records do not name the
//! target, so the title says `run N`; a caller that knows better (a file name) may overwrite
//! [`PlotTitle::target`].
//!
//! # `-format json`
//!
//! One record per run (a night of cron runs is a night of records). Runs are grouped by target
//! (`server.host` and `server.port`), one [`Samples::Runs`] session per target in order of first
//! appearance, its runs sorted by `time`. A run's point is its `summary.rtt.median_ms`; its
//! one-way points are the forward and backward medians when the run's `summary.sync` is true.
//! A run with an `error`, no summary, or no RTT (every packet lost) is a lost mark at its
//! time. The title's mode, DSCP and packet size come from the earliest run that has a session;
//! sent and lost are summed over all runs.

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::Value;

use super::{Error, PlotPacket, PlotSession, PlotTitle, Result, Samples};
use crate::control::SecurityMode;
use crate::stats::{self, Reply, Sent};
use crate::time::{ErrorEstimate, Timestamp, NTP_UNIX_OFFSET_SECS};

/// The JSON schema this reader understands (`output::JSON_SCHEMA`; repeated here so the plot
/// module depends on nothing that renders output).
const JSON_SCHEMA: &str = "twamp-result/1";

/// The number of whitespace-separated fields on a `-format packets` line.
const PACKET_FIELDS: usize = 16;

/// Reads saved records, detecting the format (see the module docs).
pub fn sessions_from_saved(text: &str) -> Result<Vec<PlotSession>> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    let sessions = match first {
        None => return Err(Error::NoRecords),
        Some(l) if l.starts_with('{') => from_json_lines(text)?,
        Some(_) => from_packet_lines(text)?,
    };
    if sessions.is_empty() {
        return Err(Error::NoRecords);
    }
    Ok(sessions)
}

fn malformed(line: usize, reason: impl Into<String>) -> Error {
    Error::Malformed {
        line,
        reason: reason.into(),
    }
}

// ---- -format packets ------------------------------------------------------------------------

/// One `-format packets` line.
struct PacketLine {
    sent: Sent,
    reply: Option<Reply>,
}

/// The packets of one run as they are read.
#[derive(Default)]
struct RunLines {
    sent: Vec<Sent>,
    replies: Vec<Reply>,
}

fn from_packet_lines(text: &str) -> Result<Vec<PlotSession>> {
    let mut sessions = Vec::new();
    let mut run = RunLines::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            // output.rs writes `# FAILED (kind): message` as the last line of a failed run's
            // record; other comments (a user's notes) do not end a run.
            if line.starts_with("# FAILED") {
                finish_run(&mut run, &mut sessions);
            }
            continue;
        }
        let p = parse_packet_line(line, i + 1)?;
        if run.sent.last().is_some_and(|last| p.sent.seq <= last.seq) {
            finish_run(&mut run, &mut sessions);
        }
        run.sent.push(p.sent);
        run.replies.extend(p.reply);
    }
    finish_run(&mut run, &mut sessions);
    Ok(sessions)
}

fn finish_run(run: &mut RunLines, sessions: &mut Vec<PlotSession>) {
    let RunLines { sent, replies } = std::mem::take(run);
    let Some(first) = sent.first() else { return };
    let summary = stats::summarize(&sent, &replies);
    let one_way = summary.sync;
    let packets = stats::per_packet(&sent, &replies)
        .iter()
        .map(|p| PlotPacket {
            send_time: unix_secs(p.t1),
            rtt: p.rtt,
            forward: p.fwd.filter(|_| one_way),
            backward: p.bck.filter(|_| one_way),
        })
        .collect();
    let one_way_note = match (summary.received, one_way) {
        (0, _) => Some("no packet came back".to_string()),
        (_, false) => Some("clocks not synchronised (an Error Estimate has S = 0)".to_string()),
        (_, true) => None,
    };
    let number = sessions.len() + 1;
    sessions.push(PlotSession {
        title: PlotTitle {
            target: format!("run {number}"),
            start: rfc3339(unix_secs(first.t1)),
            sent: summary.sent,
            lost: summary.lost,
            lost_forward: summary.lost_forward,
            lost_backward: summary.lost_backward,
            ..PlotTitle::default()
        },
        samples: Samples::Packets,
        packets,
        one_way_note,
    });
}

fn parse_packet_line(line: &str, n: usize) -> Result<PacketLine> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != PACKET_FIELDS {
        return Err(malformed(
            n,
            format!(
                "expected the {PACKET_FIELDS} fields of -format packets \
                 (SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL), found {}",
                f.len()
            ),
        ));
    }
    let num = |i: usize, name: &str| -> Result<u64> {
        f[i].parse()
            .map_err(|_| malformed(n, format!("{name} is not a whole number: {:?}", f[i])))
    };
    let small = |i: usize, name: &str, max: u64| -> Result<u64> {
        let v = num(i, name)?;
        if v > max {
            return Err(malformed(n, format!("{name} {v} is above {max}")));
        }
        Ok(v)
    };
    // An Error Estimate as the record gives it: the S bit and the error in seconds (twping's
    // %g). Only S matters for the picture; the error is kept to the estimate's resolution.
    let estimate = |s: usize, e: usize, name: &str| -> Result<ErrorEstimate> {
        let sync = small(s, name, 1)? == 1;
        let err: f64 = f[e]
            .parse()
            .map_err(|_| malformed(n, format!("{name} error is not a number: {:?}", f[e])))?;
        let err = std::time::Duration::try_from_secs_f64(err)
            .map_err(|_| malformed(n, format!("{name} error is not a duration: {:?}", f[e])))?;
        Ok(ErrorEstimate::from_error(sync, err))
    };
    let seq = small(0, "SSEQ", u64::from(u32::MAX))? as u32;
    let t1 = Timestamp(num(1, "STIME")?);
    let t1_err = estimate(2, 3, "SERR")?;
    let sent = Sent { seq, t1, t1_err };
    let t4 = num(12, "RTIME")?;
    if t4 == 0 {
        // output.rs writes a lost packet as zeros after SERR; a received packet always has a
        // receive time.
        return Ok(PacketLine { sent, reply: None });
    }
    let reply = Reply {
        sender_seq: seq,
        reflector_seq: small(8, "RSEQ", u64::from(u32::MAX))? as u32,
        t1,
        t1_err,
        t2: Timestamp(num(4, "SRTIME")?),
        t2_err: estimate(5, 6, "SRERR")?,
        sender_ttl: small(7, "STTL", 255)? as u8,
        t3: Timestamp(num(9, "RSTIME")?),
        t3_err: estimate(10, 11, "RSERR")?,
        t4: Timestamp(t4),
        t4_err: estimate(13, 14, "RERR")?,
        ttl: Some(small(15, "RTTL", 255)? as u8),
    };
    Ok(PacketLine {
        sent,
        reply: Some(reply),
    })
}

/// Unix seconds of an NTP timestamp (era 0, as [`Timestamp::to_system_time`] reads it).
fn unix_secs(t: Timestamp) -> f64 {
    f64::from(t.seconds()) - NTP_UNIX_OFFSET_SECS as f64 + f64::from(t.fraction()) / 4_294_967_296.0
}

/// RFC 3339 in UTC with milliseconds, the shape of `twamp-result/1`'s `time`.
fn rfc3339(unix: f64) -> Option<String> {
    let ms = (unix * 1e3).round();
    if !ms.is_finite() {
        return None;
    }
    DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, false))
}

// ---- -format json ---------------------------------------------------------------------------

/// One run read from a `twamp-result/1` record.
struct Run {
    time: f64,
    time_text: String,
    utc_offset_secs: i32,
    point: PlotPacket,
    /// Whether the run had a summary with both clocks synchronised.
    sync: bool,
    mode: Option<String>,
    dscp: Option<u8>,
    packet_octets: Option<u32>,
    sent: u64,
    lost: u64,
    lost_forward: u64,
    lost_backward: u64,
}

fn from_json_lines(text: &str) -> Result<Vec<PlotSession>> {
    let mut groups: Vec<(String, Vec<Run>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (target, run) = parse_json_line(line, i + 1)?;
        match groups.iter_mut().find(|(t, _)| *t == target) {
            Some((_, runs)) => runs.push(run),
            None => groups.push((target, vec![run])),
        }
    }
    Ok(groups
        .into_iter()
        .map(|(target, runs)| runs_session(target, runs))
        .collect())
}

fn runs_session(target: String, mut runs: Vec<Run>) -> PlotSession {
    runs.sort_by(|a, b| a.time.total_cmp(&b.time));
    let with_session = runs.iter().find(|r| r.mode.is_some());
    let title = PlotTitle {
        target,
        mode: with_session.and_then(|r| r.mode.clone()),
        dscp: with_session.and_then(|r| r.dscp),
        packet_octets: with_session.and_then(|r| r.packet_octets),
        start: runs.first().map(|r| r.time_text.clone()),
        sent: runs.iter().map(|r| r.sent).sum(),
        lost: runs.iter().map(|r| r.lost).sum(),
        lost_forward: runs.iter().map(|r| r.lost_forward).sum(),
        lost_backward: runs.iter().map(|r| r.lost_backward).sum(),
    };
    let one_way_note =
        (!runs.iter().any(|r| r.sync)).then(|| "no run had both clocks synchronised".to_string());
    PlotSession {
        title,
        samples: Samples::Runs {
            utc_offset_secs: runs.first().map_or(0, |r| r.utc_offset_secs),
        },
        packets: runs.iter().map(|r| r.point).collect(),
        one_way_note,
    }
}

fn parse_json_line(line: &str, n: usize) -> Result<(String, Run)> {
    let v: Value =
        serde_json::from_str(line).map_err(|e| malformed(n, format!("not a JSON record: {e}")))?;
    match v.get("schema").and_then(Value::as_str) {
        Some(JSON_SCHEMA) => {}
        Some(other) => {
            return Err(malformed(
                n,
                format!("schema {other:?}, expected {JSON_SCHEMA:?}"),
            ))
        }
        None => return Err(malformed(n, format!("no \"schema\": {JSON_SCHEMA:?}"))),
    }
    let time_text = v
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(n, "no \"time\""))?;
    let time: DateTime<FixedOffset> = DateTime::parse_from_rfc3339(time_text)
        .map_err(|e| malformed(n, format!("\"time\" {time_text:?} is not RFC 3339: {e}")))?;
    let server = v.get("server");
    let host = server
        .and_then(|s| s.get("host"))
        .and_then(Value::as_str)
        .ok_or_else(|| malformed(n, "no \"server\".\"host\""))?;
    let target = match server.and_then(|s| s.get("port")).and_then(Value::as_u64) {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let failed = v.get("error").is_some_and(|e| !e.is_null());
    let session = v.get("session").filter(|s| !s.is_null());
    let mode = session
        .and_then(|s| s.get("mode"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let dscp = session
        .and_then(|s| s.get("dscp"))
        .and_then(Value::as_u64)
        .and_then(|d| u8::try_from(d).ok());
    let padding = session
        .and_then(|s| s.get("padding_octets"))
        .and_then(Value::as_u64);
    // The packet size is the mode's Session-Sender header plus the padding, as `-format text`
    // prints it.
    let packet_octets = match (mode.as_deref().map(str::parse::<SecurityMode>), padding) {
        (Some(Ok(m)), Some(p)) => u32::try_from(m.test_layout().sender.base as u64 + p).ok(),
        _ => None,
    };
    let summary = v.get("summary").filter(|s| !s.is_null());
    let count = |key: &str| -> u64 {
        summary
            .and_then(|s| s.get(key))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let median = |key: &str| -> Option<f64> {
        summary
            .and_then(|s| s.get(key))
            .and_then(|d| d.get("median_ms"))
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
            .map(|ms| ms / 1e3)
    };
    let sync = summary
        .and_then(|s| s.get("sync"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let rtt = median("rtt").filter(|_| !failed);
    let point = PlotPacket {
        send_time: time.timestamp_millis() as f64 / 1e3,
        rtt,
        forward: median("forward").filter(|_| sync && rtt.is_some()),
        backward: median("backward").filter(|_| sync && rtt.is_some()),
    };
    Ok((
        target,
        Run {
            time: point.send_time,
            time_text: time_text.to_string(),
            utc_offset_secs: time.offset().local_minus_utc(),
            point,
            sync,
            mode,
            dscp,
            packet_octets,
            sent: count("sent"),
            lost: count("lost"),
            lost_forward: count("lost_forward"),
            lost_backward: count("lost_backward"),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-made `-format packets` lines in output.rs `packets()`'s shape. NTP seconds
    // 3_972_931_200 = 2025-11-24T00:00:00Z (Unix 1_763_942_400); 2^32 / 1000 = 4_294_967.296
    // units per millisecond.
    //
    // Packet 0: T1 = 0, T2 = T1 + 0.4 ms, T3 = T2 + 0.1 ms, T4 = T3 + 0.5 ms, all S = 1:
    //   RTT = (T4 − T1) − (T3 − T2) = 0.9 ms, forward 0.4 ms, backward 0.5 ms.
    // Packet 1: lost (zeros after SERR).
    // Packet 2: sent 2 ms after packet 0, reflector number 1, same delays.
    const T0: u64 = 3_972_931_200 << 32;
    const MS: f64 = 4_294_967.296;

    fn at(ms: f64) -> u64 {
        T0 + (ms * MS).round() as u64
    }

    fn received(seq: u32, rseq: u32, sent_ms: f64, s: u8) -> String {
        format!(
            "{seq} {} {s} 2.32831e-10 {} {s} 2.32831e-10 255 {rseq} {} {s} 2.32831e-10 {} {s} 2.32831e-10 255",
            at(sent_ms),
            at(sent_ms + 0.4),
            at(sent_ms + 0.5),
            at(sent_ms + 1.0)
        )
    }

    fn lost(seq: u32, sent_ms: f64) -> String {
        format!(
            "{seq} {} 1 2.32831e-10 0 0 0 0 0 0 0 0 0 0 0 0",
            at(sent_ms)
        )
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn packets_lines_become_one_session_with_its_loss() {
        let text = [received(0, 0, 0.0, 1), lost(1, 1.0), received(2, 1, 2.0, 1)].join("\n");
        let s = sessions_from_saved(&text).unwrap();
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!(s.samples, Samples::Packets);
        assert_eq!(s.packets.len(), 3);
        assert!(close(s.packets[0].send_time, 1_763_942_400.0));
        assert!(close(
            s.packets[2].send_time - s.packets[0].send_time,
            0.002
        ));
        assert!(close(s.packets[0].rtt.unwrap(), 0.0009));
        assert!(close(s.packets[0].forward.unwrap(), 0.0004));
        assert!(close(s.packets[0].backward.unwrap(), 0.0005));
        assert_eq!(s.packets[1].rtt, None);
        assert_eq!((s.title.sent, s.title.lost), (3, 1));
        // Reflector numbers 0 and 1 both arrived: nothing lost on the way back.
        assert_eq!((s.title.lost_forward, s.title.lost_backward), (1, 0));
        assert_eq!(
            s.title.start.as_deref(),
            Some("2025-11-24T00:00:00.000+00:00")
        );
        assert_eq!(s.one_way_note, None);
    }

    #[test]
    fn unsynchronised_clocks_drop_one_way_delays_with_a_note() {
        let text = [received(0, 0, 0.0, 0), received(1, 1, 1.0, 0)].join("\n");
        let s = &sessions_from_saved(&text).unwrap()[0];
        assert!(s
            .packets
            .iter()
            .all(|p| p.rtt.is_some() && p.forward.is_none()));
        assert!(s
            .one_way_note
            .as_deref()
            .unwrap()
            .contains("not synchronised"));
    }

    #[test]
    fn runs_split_where_the_sequence_restarts_and_after_a_failure() {
        let text = [
            received(0, 0, 0.0, 1),
            received(1, 1, 1.0, 1),
            // A second run, appended by the next cron job.
            received(0, 0, 60_000.0, 1),
            "# FAILED (closed): the server closed the control connection".into(),
            // A third run, after the failed one.
            received(0, 0, 120_000.0, 1),
            received(1, 1, 120_001.0, 1),
        ]
        .join("\n");
        let s = sessions_from_saved(&text).unwrap();
        assert_eq!(
            s.iter().map(|s| s.packets.len()).collect::<Vec<_>>(),
            [2, 1, 2]
        );
        assert_eq!(s[1].title.target, "run 2");
    }

    #[test]
    fn malformed_packet_lines_name_their_line() {
        for (bad, what) in [
            ("0 1 2 3", "16 fields"),
            (
                "x 16 1 2.3e-10 0 0 0 0 0 0 0 0 0 0 0 0",
                "SSEQ is not a whole number",
            ),
            (
                "0 16 7 2.3e-10 0 0 0 0 0 0 0 0 0 0 0 0",
                "SERR 7 is above 1",
            ),
            ("0 16 1 -1 0 0 0 0 0 0 0 0 0 0 0 0", "not a duration"),
            (
                "0 16 1 nan 0 0 0 0 0 0 0 0 0 0 0 0",
                "SERR error is not a duration",
            ),
            (
                "1 16 1 1e-9 17 1 1e-9 999 0 18 1 1e-9 19 1 1e-9 255",
                "STTL 999",
            ),
            ("{\"schema\":\"twamp-result/1\"}", "16 fields"),
        ] {
            let text = format!("{}\n\n{bad}\n", received(0, 0, 0.0, 1));
            match sessions_from_saved(&text) {
                Err(Error::Malformed { line: 3, reason }) => {
                    assert!(reason.contains(what), "{bad}: {reason}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    // Hand-made `twamp-result/1` records in output.rs `json()`'s shape (keys in its order;
    // summaries shortened to the keys the reader uses plus a few neighbours).
    const RUN_OK: &str = r#"{"schema":"twamp-result/1","time":"2026-11-23T01:00:00.000+01:00","ok":true,"exit_code":0,"error":null,"server":{"host":"twamp.example.net","port":862,"address":"192.0.2.7"},"session":{"sid":"c0000207eeae8200","mode":"open","local":"192.0.2.1:38898","reflector":"192.0.2.7:35988","padding_octets":27,"dscp":46,"count":100,"interval_ms":100.0,"timeout_ms":2000.0,"interrupted":false,"stray_datagrams":0,"malformed_datagrams":0},"summary":{"sent":100,"received":98,"lost":2,"loss_percent":2.0,"lost_forward":1,"lost_backward":1,"lost_unattributed":0,"duplicates":0,"sync":true,"one_way_valid":true,"rtt":{"count":98,"min_ms":10.1,"median_ms":12.5,"mean_ms":12.6,"p95_ms":14.0,"p99_ms":15.0,"max_ms":15.2,"stddev_ms":0.9},"forward":{"count":98,"min_ms":5.0,"median_ms":6.0,"mean_ms":6.1,"p95_ms":7.0,"p99_ms":7.5,"max_ms":7.6,"stddev_ms":0.4},"backward":{"count":98,"min_ms":5.1,"median_ms":6.4,"mean_ms":6.5,"p95_ms":7.1,"p99_ms":7.7,"max_ms":7.8,"stddev_ms":0.4}}}"#;
    const RUN_ALL_LOST: &str = r#"{"schema":"twamp-result/1","time":"2026-11-23T01:05:00.000+01:00","ok":false,"exit_code":4,"error":null,"server":{"host":"twamp.example.net","port":862,"address":"192.0.2.7"},"session":{"sid":"c0000207eeae8201","mode":"open","local":"192.0.2.1:38899","reflector":"192.0.2.7:35989","padding_octets":27,"dscp":46,"count":100,"interval_ms":100.0,"timeout_ms":2000.0,"interrupted":false,"stray_datagrams":0,"malformed_datagrams":0},"summary":{"sent":100,"received":0,"lost":100,"loss_percent":100.0,"lost_forward":100,"lost_backward":0,"lost_unattributed":100,"duplicates":0,"sync":false,"one_way_valid":false,"rtt":null,"forward":null,"backward":null}}"#;
    const RUN_FAILED: &str = r#"{"schema":"twamp-result/1","time":"2026-11-23T00:55:00.000+01:00","ok":false,"exit_code":3,"error":{"kind":"connect","message":"cannot connect to 192.0.2.7:862: Connection refused (os error 111)"},"server":{"host":"twamp.example.net","port":862,"address":null},"session":null,"summary":null}"#;
    const OTHER_TARGET: &str = r#"{"schema":"twamp-result/1","time":"2026-11-23T01:00:00.000+01:00","ok":true,"exit_code":0,"error":null,"server":{"host":"192.0.2.9","port":8620,"address":"192.0.2.9"},"session":{"sid":"c0000209eeae8200","mode":"authenticated","local":"192.0.2.1:38800","reflector":"192.0.2.9:35900","padding_octets":0,"dscp":0,"count":10,"interval_ms":10.0,"timeout_ms":200.0,"interrupted":false,"stray_datagrams":0,"malformed_datagrams":0},"summary":{"sent":10,"received":10,"lost":0,"loss_percent":0.0,"lost_forward":0,"lost_backward":0,"sync":false,"rtt":{"count":10,"min_ms":0.041,"median_ms":0.052,"mean_ms":0.055,"p95_ms":0.081,"p99_ms":0.081,"max_ms":0.081,"stddev_ms":0.011},"forward":{"count":10,"min_ms":-3.0,"median_ms":-2.9,"mean_ms":-2.9,"p95_ms":-2.8,"p99_ms":-2.8,"max_ms":-2.8,"stddev_ms":0.01}}}"#;

    #[test]
    fn json_runs_become_one_series_per_target() {
        let text = [RUN_OK, RUN_ALL_LOST, OTHER_TARGET, RUN_FAILED].join("\n");
        let s = sessions_from_saved(&text).unwrap();
        assert_eq!(s.len(), 2);
        let a = &s[0];
        assert_eq!(a.title.target, "twamp.example.net:862");
        assert_eq!(
            a.samples,
            Samples::Runs {
                utc_offset_secs: 3600
            }
        );
        // Sorted by time: the failed run (00:55) first, then 01:00, then 01:05.
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp() as f64;
        assert_eq!(
            a.packets.iter().map(|p| p.send_time).collect::<Vec<_>>(),
            [
                t("2026-11-23T00:55:00+01:00"),
                t("2026-11-23T01:00:00+01:00"),
                t("2026-11-23T01:05:00+01:00")
            ]
        );
        assert_eq!(a.packets[0].rtt, None, "failed run");
        assert!(close(a.packets[1].rtt.unwrap(), 0.0125));
        assert!(close(a.packets[1].forward.unwrap(), 0.006));
        assert!(close(a.packets[1].backward.unwrap(), 0.0064));
        assert_eq!(a.packets[2].rtt, None, "every packet lost");
        assert_eq!(a.title.mode.as_deref(), Some("open"));
        assert_eq!(a.title.dscp, Some(46));
        assert_eq!(a.title.packet_octets, Some(14 + 27));
        assert_eq!(
            a.title.start.as_deref(),
            Some("2026-11-23T00:55:00.000+01:00")
        );
        assert_eq!((a.title.sent, a.title.lost), (200, 102));
        assert_eq!((a.title.lost_forward, a.title.lost_backward), (101, 1));
        assert_eq!(a.one_way_note, None);

        let b = &s[1];
        assert_eq!(b.title.target, "192.0.2.9:8620");
        assert_eq!(b.title.packet_octets, Some(48), "authenticated header");
        // Unsynchronised: the (negative) forward median is not plotted.
        assert_eq!(b.packets[0].forward, None);
        assert!(b.one_way_note.is_some());
    }

    #[test]
    fn malformed_json_lines_name_their_line() {
        for (bad, what) in [
            ("{\"schema\":", "not a JSON record"),
            (
                "{\"schema\":\"twamp-result/2\"}",
                "expected \"twamp-result/1\"",
            ),
            ("{\"time\":\"2026-11-23T01:00:00Z\"}", "no \"schema\""),
            ("{\"schema\":\"twamp-result/1\"}", "no \"time\""),
            (
                "{\"schema\":\"twamp-result/1\",\"time\":\"yesterday\"}",
                "not RFC 3339",
            ),
            (
                "{\"schema\":\"twamp-result/1\",\"time\":\"2026-11-23T01:00:00Z\",\"server\":7}",
                "no \"server\".\"host\"",
            ),
            ("0 1 2 3", "not a JSON record"),
        ] {
            let text = format!("{RUN_OK}\n{RUN_FAILED}\n{bad}\n");
            match sessions_from_saved(&text) {
                Err(Error::Malformed { line: 3, reason }) => {
                    assert!(reason.contains(what), "{bad}: {reason}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn nothing_to_plot_is_an_error() {
        for text in ["", "\n\n", "# FAILED (connect): refused\n", "# a note\n"] {
            assert_eq!(sessions_from_saved(text), Err(Error::NoRecords), "{text:?}");
        }
    }
}
