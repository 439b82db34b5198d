//! Running as a daemon: detaching (`-daemon true`), the pid file (`-pidfile`), and dropping
//! root (`-run-as`).
//!
//! - Detaching is fork, setsid, chdir /, stdio to /dev/null via the daemonize crate, with a
//!   readiness channel so the parent's exit status tells the truth (boringtun's pattern). The
//!   daemon sends `1` when it serves, or `0` and the reason it failed, which the parent prints:
//!   every start failure reaches the terminal with the path and the OS error text. Order
//!   matters (boringtun issue #245): the control socket is bound before, so "address in use"
//!   reaches the terminal; logging and every thread start after.
//! - The pid file is opened with O_NOFOLLOW (a symbolic link is refused, never followed),
//!   locked with flock(2) for the daemon's life, and refused when another live process holds
//!   that lock (twamp's own, or a stale file that still names a running twamp). It is removed
//!   on a clean stop.
//! - Dropping privileges clears the supplementary groups, then sets the group, then the user
//!   (in that order: after setuid the others are no longer allowed), and then checks that
//!   root cannot be regained; it refuses to go on otherwise.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::config::RunAs;
use crate::error::{exit, Error, Op, Result};

/// One malloc arena for the whole process (glibc's `M_ARENA_MAX`). By default glibc gives
/// threads arenas of their own, up to eight per core; each keeps its top pages after its
/// thread ends, which [`trim_heap`] cannot return (measured: 40 control connections left
/// +2.7 MiB behind, +1.3 MiB with one arena). The server allocates per connection and per
/// session, never per packet, so the one lock costs nothing measurable.
pub fn one_arena() {
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only changes the allocator's tunables; called before threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`, which walks every
/// arena). Called when a burst ends (a control connection closes, the engine's last session
/// leaves), never per packet: a server that served 2,000 sessions returns to its idle
/// footprint instead of keeping the high-water mark for months.
pub fn trim_heap() {
    #[cfg(target_env = "gnu")]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only takes the allocator's own locks and releases free memory; it
    // has no preconditions on the caller.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The daemon's end of the readiness channel.
pub struct Ready(UnixStream);

impl Ready {
    /// Tells the waiting parent that the daemon is up; the parent then exits 0.
    pub fn signal(mut self) {
        let _ = self.0.write_all(b"1");
    }

    /// Tells the waiting parent why the daemon did not start; the parent prints it and
    /// exits 8.
    pub fn fail(mut self, why: &str) {
        let _ = self.0.write_all(format!("0{why}").as_bytes());
    }
}

/// Forks into the background. Returns in the daemon only. The original process waits until
/// the daemon calls [`Ready::signal`] (exit 0), [`Ready::fail`] or dies first (exit 8 with a
/// message).
pub fn detach() -> Result<Ready> {
    let (mut parent_end, child_end) =
        UnixStream::pair().map_err(|e| Error::io(Op::Daemonize, None, e))?;
    match daemonize::Daemonize::new().working_directory("/").execute() {
        daemonize::Outcome::Parent(result) => {
            drop(child_end);
            if let Err(e) = result {
                eprintln!("twamp: cannot daemonize: {e}");
                std::process::exit(i32::from(exit::LOCAL));
            }
            let mut answer = Vec::new();
            let _ = parent_end.read_to_end(&mut answer);
            match answer.split_first() {
                Some((b'1', _)) => std::process::exit(i32::from(exit::OK)),
                Some((b'0', why)) => {
                    eprintln!("twamp: {}", String::from_utf8_lossy(why));
                    std::process::exit(i32::from(exit::LOCAL));
                }
                _ => {
                    eprintln!(
                        "twamp: the daemon exited before it was ready (no reason given; see its log)"
                    );
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
            io::Error::other(format!("cannot daemonize: {e}")),
        )),
    }
}

/// A pid file we hold: locked while it exists, removed by [`PidFile::remove`].
pub struct PidFile {
    path: PathBuf,
    file: Flock<File>,
}

fn pid_error(path: &Path, what: String) -> Error {
    Error::io(
        Op::Daemonize,
        None,
        io::Error::other(format!("pid file {}: {what}", path.display())),
    )
}

/// The pid a pid file names, if it names one.
fn named_pid(f: &mut File) -> Option<i32> {
    let mut s = String::new();
    f.rewind().ok()?;
    f.read_to_string(&mut s).ok()?;
    s.trim().parse().ok().filter(|p| *p > 0)
}

/// Whether `pid` is a running twamp (a stale pid file may name a recycled pid of another
/// program: that one does not count).
fn is_running_twamp(pid: i32) -> bool {
    pid as u32 != std::process::id()
        && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "twamp")
}

impl PidFile {
    /// Creates (or takes over a stale) pid file at `path` and writes our pid into it.
    pub fn create(path: &Path) -> Result<PidFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    pid_error(path, format!("is a symbolic link, refused ({e})"))
                } else {
                    pid_error(path, format!("cannot open: {e}"))
                }
            })?;
        let meta = file
            .metadata()
            .map_err(|e| pid_error(path, format!("cannot stat: {e}")))?;
        if !meta.is_file() {
            return Err(pid_error(path, "is not a regular file, refused".into()));
        }
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(f) => f,
            Err((mut f, errno)) => {
                return Err(pid_error(
                    path,
                    match (errno, named_pid(&mut f)) {
                        (nix::errno::Errno::EWOULDBLOCK, Some(pid)) => {
                            format!("held by running process {pid}")
                        }
                        (nix::errno::Errno::EWOULDBLOCK, None) => {
                            "locked by another running process".into()
                        }
                        (e, _) => format!("cannot lock: {}", io::Error::from(e)),
                    },
                ))
            }
        };
        if let Some(pid) = named_pid(&mut file).filter(|p| is_running_twamp(*p)) {
            return Err(pid_error(
                path,
                format!("names running twamp process {pid}"),
            ));
        }
        let write = |f: &mut File| -> io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            f.write_all(format!("{}\n", std::process::id()).as_bytes())?;
            f.sync_all()
        };
        write(&mut file).map_err(|e| pid_error(path, format!("cannot write: {e}")))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the pid file (a clean stop). If its directory no longer lets us (we dropped
    /// root), empties it instead, so it names no process.
    pub fn remove(self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            let _ = self.file.set_len(0);
            log::warn!(
                "cannot remove pid file {}: {e} (emptied it instead)",
                self.path.display()
            );
        }
    }
}

fn drop_error(r: &RunAs, what: String) -> Error {
    Error::io(
        Op::Daemonize,
        None,
        io::Error::other(format!("-run-as {}:{}: {what}", r.user, r.group)),
    )
}

/// Becomes `r`'s user and group, with no supplementary groups. Without root it is fine only
/// when we already are that user; after it, root must be out of reach.
pub fn drop_privileges(r: &RunAs) -> Result<()> {
    use nix::unistd::{getegid, geteuid, getgid, getuid, setgid, setgroups, setuid, Gid, Uid};
    let (uid, gid) = (Uid::from_raw(r.uid), Gid::from_raw(r.gid));
    if !geteuid().is_root() {
        if geteuid() == uid && getuid() == uid {
            return Ok(());
        }
        return Err(drop_error(
            r,
            format!(
                "cannot switch users: running as uid {}, not root",
                geteuid()
            ),
        ));
    }
    setgroups(&[]).map_err(|e| drop_error(r, format!("setgroups: {}", io::Error::from(e))))?;
    setgid(gid).map_err(|e| drop_error(r, format!("setgid {gid}: {}", io::Error::from(e))))?;
    setuid(uid).map_err(|e| drop_error(r, format!("setuid {uid}: {}", io::Error::from(e))))?;
    if getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid {
        return Err(drop_error(
            r,
            "the ids did not change; refusing to go on".into(),
        ));
    }
    if !uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(drop_error(
            r,
            "root could be regained after dropping; refusing to go on".into(),
        ));
    }
    log::info!(
        "running as user {} ({}), group {} ({}), no supplementary groups",
        r.user,
        r.uid,
        r.group,
        r.gid
    );
    Ok(())
}
