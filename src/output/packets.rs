//! `-format packets`: one line per test packet in twping `-R`'s 16 fields:
//! `SSEQ STIME SS SERR SRTIME SRS SRERR STTL RSEQ RSTIME RSS RSERR RTIME RS RERR RTTL`
//! (timestamps as 64-bit NTP integers; a lost packet has zeros where the reply would be).
//! With several sessions, each session's lines follow a `# session N SID` comment line.

use std::fmt::Write as _;

use super::err_g;
use crate::report::Report;

pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let many = r.sessions.len() > 1;
    for (i, m) in r.sessions.iter().enumerate() {
        if many {
            let _ = writeln!(o, "# session {} {}", i + 1, m.sid);
        }
        for p in m.packets() {
            let s = u8::from(p.t1_err.synchronized());
            match &p.reply {
                Some(r) => {
                    let _ = writeln!(
                        o,
                        "{} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                        p.seq,
                        p.t1.0,
                        s,
                        err_g(p.t1_err),
                        r.t2.0,
                        u8::from(r.t2_err.synchronized()),
                        err_g(r.t2_err),
                        r.sender_ttl,
                        r.reflector_seq,
                        r.t3.0,
                        u8::from(r.t3_err.synchronized()),
                        err_g(r.t3_err),
                        r.t4.0,
                        u8::from(r.t4_err.synchronized()),
                        err_g(r.t4_err),
                        r.ttl.unwrap_or(255)
                    );
                }
                None => {
                    let _ = writeln!(
                        o,
                        "{} {} {} {} 0 0 0 0 0 0 0 0 0 0 0 0",
                        p.seq,
                        p.t1.0,
                        s,
                        err_g(p.t1_err)
                    );
                }
            }
        }
    }
    if let Some(e) = &r.error {
        let _ = writeln!(o, "# FAILED ({}): {e}", e.kind());
    }
    o
}
