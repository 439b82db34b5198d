//! Result records and their formats. INTERIM: counts only, until the stats module lands.

use std::io::Write;

use crate::client::Measurement;
use crate::config::ClientConfig;
use crate::error::{Error, Result};

pub struct Record {
    pub started: String,
    pub host: String,
    pub measurement: Option<Measurement>,
    pub error: Option<(String, String)>,
}

impl Record {
    pub fn measured(cfg: &ClientConfig, started: &str, m: &Measurement) -> Self {
        Record {
            started: started.into(),
            host: cfg.host.clone(),
            measurement: Some(m.clone()),
            error: None,
        }
    }

    pub fn failed(cfg: &ClientConfig, started: &str, e: &Error) -> Self {
        Record {
            started: started.into(),
            host: cfg.host.clone(),
            measurement: None,
            error: Some((e.kind().into(), e.to_string())),
        }
    }

    pub fn all_lost(&self) -> bool {
        self.measurement
            .as_ref()
            .is_some_and(|m| m.outcome.replies.is_empty())
    }
}

pub fn emit(cfg: &ClientConfig, r: &Record) -> Result<()> {
    let text = match (&r.measurement, &r.error) {
        (Some(m), _) => format!(
            "{} sent, {} received\n",
            m.outcome.sent.len(),
            m.outcome.replies.len()
        ),
        (None, Some((k, msg))) => format!("error {k}: {msg}\n"),
        _ => String::new(),
    };
    if !cfg.quiet {
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    Ok(())
}
