//! Writes sample pictures made by `twamp::plot`, for the README screenshot
//! (`bench/plot-screenshot.sh`) and for looking at the layout by eye.
//!
//! `cargo run --example plot_sample -- DIR` writes into DIR (default `target/plot-sample`):
//!
//! - `session.svg`: one synthetic test session, 600 packets 100 ms apart with synchronised
//!   clocks: about 12 ms round trip, the forward path 4 ms slower from 35 s on, a burst of ten
//!   lost packets at 20 s and three single losses.
//! - `runs.svg`: a night of five-minute cron runs read back from `twamp-result/1` JSON Lines
//!   (through `sessions_from_saved`), unsynchronised clocks, one failed and one all-lost run.
//!
//! The data are made up and deterministic (a fixed-seed xorshift), so the pictures only change
//! when the renderer does.

use std::path::PathBuf;

use twamp::plot::{render_svg, sessions_from_saved, PlotPacket, PlotSession, PlotTitle, Samples};

/// xorshift64: deterministic noise without a dependency.
struct Noise(u64);

impl Noise {
    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A small positive queueing delay in seconds: mostly under 1 ms, sometimes a few.
    fn queueing(&mut self) -> f64 {
        let u = self.next();
        -0.0004 * (1.0 - u).ln()
    }
}

fn session() -> PlotSession {
    // 2026-11-23T09:14:16Z
    let start = 1_795_424_056.0;
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let lost_at = |i: u32| (200..210).contains(&i) || [57, 388, 512].contains(&i);
    let packets: Vec<PlotPacket> = (0..600u32)
        .map(|i| {
            let t = f64::from(i) * 0.1;
            if lost_at(i) {
                return PlotPacket {
                    send_time: start + t,
                    rtt: None,
                    forward: None,
                    backward: None,
                };
            }
            let route_change = if t >= 35.0 { 0.004 } else { 0.0 };
            let forward = 0.0055 + route_change + noise.queueing();
            let backward = 0.0061 + noise.queueing();
            PlotPacket {
                send_time: start + t,
                rtt: Some(forward + backward),
                forward: Some(forward),
                backward: Some(backward),
            }
        })
        .collect();
    let lost = packets.iter().filter(|p| p.rtt.is_none()).count() as u64;
    PlotSession {
        title: PlotTitle {
            target: "twamp.example.net:862".into(),
            mode: Some("authenticated".into()),
            dscp: Some(46),
            packet_octets: Some(48 + 27),
            start: Some("2026-11-23T09:14:16.000+00:00".into()),
            sent: packets.len() as u64,
            lost,
            lost_forward: lost - 2,
            lost_backward: 2,
        },
        samples: Samples::Packets,
        packets,
        one_way_note: None,
    }
}

/// A night of runs, every five minutes from 22:00 to 06:00 at UTC+01:00, as `-format json`
/// records (shortened to the keys the reader uses).
fn night_of_runs() -> String {
    let mut noise = Noise(0x2545_f491_4f6c_dd1d);
    let mut out = String::new();
    for k in 0..97u32 {
        let minutes = 22 * 60 + 5 * k;
        let (day, h, m) = (23 + minutes / (24 * 60), (minutes / 60) % 24, minutes % 60);
        let time = format!("2026-11-{day:02}T{h:02}:{m:02}:00.000+01:00");
        let head = format!(
            r#"{{"schema":"twamp-result/1","time":"{time}","ok":true,"exit_code":0,"error":null,"server":{{"host":"twamp.example.net","port":862,"address":"192.0.2.7"}}"#
        );
        let session = r#""session":{"sid":"c0000207eeae8200","mode":"open","local":"192.0.2.1:38898","reflector":"192.0.2.7:35988","padding_octets":27,"dscp":0,"count":100,"interval_ms":100.0,"timeout_ms":2000.0,"interrupted":false,"stray_datagrams":0,"malformed_datagrams":0}"#;
        if k == 40 {
            out.push_str(&format!(
                r#"{{"schema":"twamp-result/1","time":"{time}","ok":false,"exit_code":3,"error":{{"kind":"connect","message":"cannot connect to 192.0.2.7:862: Connection refused (os error 111)"}},"server":{{"host":"twamp.example.net","port":862,"address":null}},"session":null,"summary":null}}"#
            ));
        } else if k == 71 {
            out.push_str(&format!(
                r#"{head},{session},"summary":{{"sent":100,"received":0,"lost":100,"lost_forward":100,"lost_backward":0,"sync":false,"rtt":null}}}}"#
            ));
        } else {
            // Busier in the evening, quiet after midnight, a backup window at 02:00-02:30.
            let hour = f64::from(h) + f64::from(m) / 60.0;
            let load = if hour >= 22.0 { 1.5 } else { 0.3 };
            let backup = if (2.0..2.5).contains(&hour) { 6.0 } else { 0.0 };
            let median = 11.8 + load + backup + noise.next();
            let lost = u64::from(noise.next() < 0.2) + if backup > 0.0 { 3 } else { 0 };
            out.push_str(&format!(
                r#"{head},{session},"summary":{{"sent":100,"received":{},"lost":{lost},"lost_forward":{lost},"lost_backward":0,"sync":false,"rtt":{{"count":{},"min_ms":{:.3},"median_ms":{median:.3},"p95_ms":{:.3}}}}}}}"#,
                100 - lost,
                100 - lost,
                median - 0.8,
                median + 2.0
            ));
        }
        out.push('\n');
    }
    out
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/plot-sample".into()),
    );
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("session.svg"), render_svg(&[session()])?)?;
    let runs = sessions_from_saved(&night_of_runs())?;
    std::fs::write(dir.join("runs.svg"), render_svg(&runs)?)?;
    println!("wrote {0}/session.svg and {0}/runs.svg", dir.display());
    Ok(())
}
