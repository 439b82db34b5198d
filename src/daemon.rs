//! Detaching the server (`-daemon true`): fork, setsid, chdir /, stdio to /dev/null, pidfile,
//! via the daemonize crate. Order matters (boringtun issue #245): the control socket is bound
//! before, so "address in use" reaches the terminal; logging and every thread start after.

use std::path::Path;

use crate::error::{Error, Result};

/// Forks into the background. Returns in the child only; the parent exits 0.
pub fn detach(pidfile: Option<&Path>) -> Result<()> {
    let mut d = daemonize::Daemonize::new().working_directory("/");
    if let Some(p) = pidfile {
        d = d.pid_file(p).chown_pid_file(false);
    }
    d.start().map_err(|e| Error::io("daemon", None, std::io::Error::other(e.to_string())))
}
