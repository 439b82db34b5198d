//! Detaching the server (`-daemon true`): fork, setsid, chdir /, stdio to /dev/null, pidfile,
//! via the daemonize crate, with a readiness channel so the parent's exit status tells the
//! truth (boringtun's pattern). Order matters (boringtun issue #245): the control socket is
//! bound before, so "address in use" reaches the terminal; logging and every thread start after.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::error::{exit, Error, Op, Result};

/// The daemon's end of the readiness channel.
pub struct Ready(UnixStream);

impl Ready {
    /// Tells the waiting parent that the daemon is up; the parent then exits 0.
    pub fn signal(mut self) {
        let _ = self.0.write_all(b"1");
    }
}

/// Forks into the background. Returns in the daemon only. The original process waits until
/// the daemon calls [`Ready::signal`] (exit 0) or dies or fails first (exit 8 with a message):
/// a pidfile that cannot be written is a failure the shell sees.
pub fn detach(pidfile: Option<&Path>) -> Result<Ready> {
    let (mut parent_end, child_end) =
        UnixStream::pair().map_err(|e| Error::io(Op::Daemonize, None, e))?;
    let mut d = daemonize::Daemonize::new().working_directory("/");
    if let Some(p) = pidfile {
        d = d.pid_file(p).chown_pid_file(false);
    }
    match d.execute() {
        daemonize::Outcome::Parent(result) => {
            drop(child_end);
            if let Err(e) = result {
                eprintln!("twamp: cannot daemonize: {e}");
                std::process::exit(i32::from(exit::LOCAL));
            }
            let mut b = [0u8; 1];
            match parent_end.read(&mut b) {
                Ok(1) if b[0] == b'1' => std::process::exit(i32::from(exit::OK)),
                _ => {
                    eprintln!("twamp: the daemon did not start (see -logfile)");
                    std::process::exit(i32::from(exit::LOCAL));
                }
            }
        }
        daemonize::Outcome::Child(Ok(_)) => {
            drop(parent_end);
            Ok(Ready(child_end))
        }
        daemonize::Outcome::Child(Err(e)) => Err(Error::io(
            Op::Daemonize,
            None,
            std::io::Error::other(e.to_string()),
        )),
    }
}
