//! The TWAMP-Control byte stream: whole messages in and out, with the security layer (when the
//! mode has one) applied on the way (RFC 4656 §3.4: after Set-Up-Response every message is
//! encrypted and carries an HMAC in authenticated, encrypted and mixed modes).
//!
//! Generic over the transport: a `TcpStream` in service, a `UnixStream` pair in this module's
//! tests.
//! Every read has a deadline: a peer that stalls mid-message (slowloris) cannot hold a thread
//! for longer than the caller allows.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::crypto::ControlCipher;
use crate::error::{Error, Op, Result};

/// A byte stream we can put a read deadline on and poll.
pub trait Transport: Read + Write + AsFd {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, d)
    }
}

impl Transport for UnixStream {
    fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, d)
    }
}

/// One side of a control connection.
pub struct ControlStream<S: Transport> {
    stream: S,
    peer: Option<SocketAddr>,
    cipher: Option<ControlCipher>,
}

impl<S: Transport> ControlStream<S> {
    pub fn new(stream: S, peer: Option<SocketAddr>) -> Self {
        ControlStream {
            stream,
            peer,
            cipher: None,
        }
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Turns on encryption and HMACs for everything after Server-Start's clear part.
    pub fn set_cipher(&mut self, cipher: ControlCipher) {
        self.cipher = Some(cipher);
    }

    /// Writes bytes as they are (Server-Greeting, Set-Up-Response, Server-Start's first 32).
    pub fn write_clear(&mut self, bytes: &[u8], what: &'static str) -> Result<()> {
        let peer = self.peer;
        self.stream
            .write_all(bytes)
            .map_err(|e| write_error(e, what, peer))
    }

    /// Reads exactly `buf.len()` octets before `deadline`.
    pub fn read_clear(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        what: &'static str,
    ) -> Result<()> {
        read_exact_deadline(&mut self.stream, buf, deadline, what, self.peer)
    }

    /// Encrypts, in place, blocks that the next HMAC covers but that carry none of their own
    /// (Server-Start's Start-Time block). The caller writes them with the clear part in one
    /// write: a message split across TCP segments is legal, but some dissectors and
    /// middleboxes do not reassemble it.
    pub fn seal_unmacced(&mut self, block: &mut [u8], what: &'static str) -> Result<()> {
        if let Some(c) = self.cipher.as_mut() {
            c.encrypt_unmacced(block)
                .map_err(|e| Error::Protocol(format!("{what}: {e}")))?;
        }
        Ok(())
    }

    /// Reads and decrypts blocks that the next HMAC covers (Server-Start's last block).
    pub fn read_unmacced(
        &mut self,
        block: &mut [u8],
        deadline: Instant,
        what: &'static str,
    ) -> Result<()> {
        self.read_clear(block, deadline, what)?;
        if let Some(c) = self.cipher.as_mut() {
            c.decrypt(block)
                .map_err(|e| Error::Protocol(format!("{what}: {e}")))?;
            c.feed_recv(block);
        }
        Ok(())
    }

    /// Sends one whole control message. In the secure modes its last 16 octets receive the
    /// HMAC and the whole message is encrypted; in open mode it goes as emitted (HMAC zero).
    pub fn send(&mut self, msg: &mut [u8], what: &'static str) -> Result<()> {
        if let Some(c) = self.cipher.as_mut() {
            c.seal(msg)
                .map_err(|e| Error::Protocol(format!("{what}: {e}")))?;
        }
        self.write_clear(msg, what)
    }

    /// Reads `buf.len()` octets of a message and decrypts them, without checking the HMAC yet
    /// (the Server reads the first block to learn the command, then the rest).
    pub fn recv_part(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        what: &'static str,
    ) -> Result<()> {
        self.read_clear(buf, deadline, what)?;
        if let Some(c) = self.cipher.as_mut() {
            c.decrypt(buf)
                .map_err(|e| Error::Protocol(format!("{what}: {e}")))?;
        }
        Ok(())
    }

    /// Checks the HMAC of a whole received (decrypted) message. Open mode: nothing to check.
    pub fn verify(&mut self, msg: &[u8], what: &'static str) -> Result<()> {
        match self.cipher.as_mut() {
            Some(c) => c
                .verify(msg)
                .map_err(|_| Error::Auth(format!("bad HMAC on {what}"))),
            None => Ok(()),
        }
    }

    /// Reads, decrypts and verifies one whole message.
    pub fn recv(&mut self, buf: &mut [u8], deadline: Instant, what: &'static str) -> Result<()> {
        self.recv_part(buf, deadline, what)?;
        self.verify(buf, what)
    }

    /// Waits up to `timeout` for the next octet to arrive. `Ok(false)` on timeout.
    pub fn wait_readable(&self, timeout: Duration) -> Result<bool> {
        crate::net::wait_readable(&self.stream, timeout)
            .map_err(|e| Error::io(Op::Poll, self.peer, e))
    }
}

fn write_error(e: io::Error, what: &'static str, peer: Option<SocketAddr>) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Error::Closed {
            waiting_for: what,
            addr: peer,
        },
        _ => Error::io(Op::Send, peer, e),
    }
}

/// `read_exact` that gives up at `deadline`, however the peer dribbles its bytes.
pub fn read_exact_deadline<R: Transport>(
    r: &mut R,
    mut buf: &mut [u8],
    deadline: Instant,
    what: &'static str,
    peer: Option<SocketAddr>,
) -> Result<()> {
    while !buf.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout {
                waiting_for: what,
                addr: peer,
            });
        }
        r.set_read_timeout(Some(left))
            .map_err(|e| Error::io(Op::Recv, peer, e))?;
        match r.read(buf) {
            Ok(0) => {
                return Err(Error::Closed {
                    waiting_for: what,
                    addr: peer,
                })
            }
            Ok(n) => buf = &mut buf[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                return Err(Error::Closed {
                    waiting_for: what,
                    addr: peer,
                })
            }
            Err(e) => return Err(Error::io(Op::Recv, peer, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_messages_across_writes() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut s = ControlStream::new(a, None);
        b.write_all(&[1, 2, 3]).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b.write_all(&[4, 5]).unwrap();
            b
        });
        let mut buf = [0u8; 5];
        s.read_clear(&mut buf, Instant::now() + Duration::from_secs(5), "test")
            .unwrap();
        assert_eq!(buf, [1, 2, 3, 4, 5]);
        drop(t.join());
    }

    #[test]
    fn a_stalled_peer_times_out_at_the_deadline() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut s = ControlStream::new(a, None);
        b.write_all(&[1]).unwrap(); // one octet, then nothing
        let start = Instant::now();
        let mut buf = [0u8; 16];
        let err = s
            .read_clear(
                &mut buf,
                start + Duration::from_millis(200),
                "Start-Sessions",
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    waiting_for: "Start-Sessions",
                    ..
                }
            ),
            "{err}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_closed_peer_is_reported_as_closed() {
        let (a, b) = UnixStream::pair().unwrap();
        drop(b);
        let mut s = ControlStream::new(a, None);
        let mut buf = [0u8; 4];
        let err = s
            .read_clear(
                &mut buf,
                Instant::now() + Duration::from_secs(1),
                "Server-Greeting",
            )
            .unwrap_err();
        assert!(matches!(err, Error::Closed { .. }), "{err}");
    }
}
