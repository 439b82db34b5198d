//! `twamp`: a TWAMP (RFC 5357) server and client.
//!
//! Where each part of the protocol lives:
//!
//! | RFC | what | module |
//! |---|---|---|
//! | RFC 5357 §3, RFC 4656 §3 | TWAMP-Control messages on the wire | [`wire`] |
//! | RFC 5357 §4 | TWAMP-Test packets on the wire | [`wire::test`] |
//! | RFC 4656 §4.1.2 | timestamps and Error Estimates | [`time`] |
//! | RFC 5357 §3 | control decisions (modes, Accept codes, message order) | [`control`] |
//! | RFC 5357 §4.2 | the Session-Reflector | [`reflector`] |
//! | RFC 5357 §4.1 | the Session-Sender | [`sender`] |
//! | RFC 5357 App. I, RFC 8762, RFC 8972, RFC 9503 | TWAMP-Light / STAMP packets and TLVs on the wire | [`wire::stamp`], [`wire::tlv`] |
//! | RFC 8762 §4, RFC 8972 §3–4 | the TWAMP-Light / STAMP Session-Reflector (pure), the sender's packet builder and reply reader | [`light`], [`light::sender`] |
//! | RFC 5938, RFC 6038, RFC 7750 | extensions: Modes negotiation and the server's state machine ([`control`]), Start-N/Stop-N ([`wire::command`], [`client::ControlClient`]), layouts and S-DSCP-ECN ([`wire::test`]), the reflector's copy ([`reflector`]), the sender's checks ([`sender::TestExtensions`]) | see docs/rfc-extensions.md |
//! | RFC 5357 §4.1 | the result of a run, and its exit code | [`report`] |
//! | — | rendering a report (`-format`) | [`output`] |
//! | — | Prometheus metrics of a probe and of the Server (exposition format) | [`metrics`] |
//! | — | `-mode exporter` (`/probe`, multi-target pattern) and the Server's `-metrics` | [`exporter`] |
//! | — | several targets from one command (`-targets`, repeated `-server`) | [`mesh`] |
//! | — | SVG pictures of a run and of saved records (cargo feature `plot`) | `plot` |
//!
//! `wire`, `time`, `addr`, `crypto`, `control`, `stats`, `light`, `report`, the renderers in
//! `output` and the cores of `sender` ([`sender::Sender`]) and `reflector`
//! ([`reflector::Reflector`]) are pure: no sockets, no clock of their own. `net`, `channel`,
//! `server`, `client` and the loops in `reflector` and `sender` are the thin I/O around them.
//! README.md ("Architecture") says which module may use which; `tests/architecture.rs` checks
//! it.

pub mod addr;
pub mod app;
pub mod channel;
pub mod cli;
pub mod client;
pub mod config;
pub mod config_file;
pub mod control;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod exporter;
pub mod light;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod net;
pub mod output;
#[cfg(feature = "plot")]
pub mod plot;
pub mod reflector;
pub mod report;
pub mod sender;
pub mod server;
pub mod stats;
pub mod time;
pub mod wire;

pub use error::{Error, Result};
