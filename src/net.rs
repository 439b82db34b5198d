//! Sockets: the only module that knows about socket options and control messages.
//!
//! - One dual-stack `[::]` socket (IPV6_V6ONLY off) serves IPv4 and IPv6; IPv4 peers appear as
//!   v4-mapped addresses, which [`crate::addr::unmap`] turns back into IPv4 for logs and
//!   comparisons.
//! - Waiting: [`wait_readable`] is the one poll wrapper (ppoll, so timeouts are kept to the
//!   microsecond).
//! - Test sockets send with TTL / Hop Limit 255 so the far side can count hops (RFC 5357 §4.2.1
//!   Sender TTL; twping prints hops = 255 − TTL).
//! - Receiving asks the kernel for the TTL / Hop Limit (IP_RECVTTL, IPV6_RECVHOPLIMIT) and the
//!   receive time (SO_TIMESTAMPNS), so T2 and T4 are the kernel's time of arrival, not the
//!   time our thread got around to reading.

use std::io;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, SystemTime};

use nix::sys::socket::{self as nsock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};

use crate::addr::{destination, unmap};
use crate::time::Timestamp;

/// TTL / Hop Limit on test packets we send.
pub const TEST_TTL: u32 = 255;

/// The largest UDP payload we read.
pub const MAX_DATAGRAM: usize = 65_535;

/// Raises the soft limit on open files to the hard limit: a server holding hundreds of control
/// connections and test sockets must not run out at the default 1024. Returns the new limit.
pub fn raise_fd_limit() -> io::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(io::Error::from)?;
    }
    Ok(hard)
}

/// A TCP listener. An unspecified IPv6 address gets a dual-stack socket unless `v6_only`.
pub fn tcp_listener(addr: SocketAddr, v6_only: bool) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(v6_only)?;
    }
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// A UDP test socket bound to `addr`, with TTL 255 and receive-side TTL and timestamp
/// reporting on. `rcvbuf` sets SO_RCVBUF when non-zero (bursts at a busy reflector).
pub fn udp_socket(addr: SocketAddr, rcvbuf: usize) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        if addr.ip().is_unspecified() {
            s.set_only_v6(false)?;
        }
        s.set_unicast_hops_v6(TEST_TTL)?;
        nsock::setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true).map_err(io::Error::from)?;
        // For v4-mapped traffic on a dual-stack socket the IPv4-level options apply too; they
        // fail harmlessly on a v6-only socket.
        let _ = s.set_ttl_v4(TEST_TTL);
        let _ = nsock::setsockopt(&s, sockopt::Ipv4RecvTtl, &true);
    } else {
        s.set_ttl_v4(TEST_TTL)?;
        nsock::setsockopt(&s, sockopt::Ipv4RecvTtl, &true).map_err(io::Error::from)?;
    }
    nsock::setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
    if rcvbuf > 0 {
        let _ = s.set_recv_buffer_size(rcvbuf);
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// What the kernel told us about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub len: usize,
    pub from: SocketAddr,
    /// TTL (IPv4) or Hop Limit (IPv6) of the received packet, when the kernel reported it.
    pub ttl: Option<u8>,
    /// Kernel receive time (SO_TIMESTAMPNS), or the clock right after the read when the kernel
    /// gave none.
    pub at: Timestamp,
    /// The datagram was larger than the buffer and was cut (MSG_TRUNC).
    pub truncated: bool,
    /// TOS / Traffic Class it arrived with (DSCP << 2 | ECN), on sockets that asked for it
    /// ([`set_recv_tos`]).
    pub tos: Option<u8>,
}

/// Control space for what a datagram may carry: its receive time, TTL / Hop Limit and TOS /
/// Traffic Class (and one int to spare).
fn cmsg_space() -> usize {
    nsock::cmsg_space::<nix::sys::time::TimeSpec>() + 3 * nsock::cmsg_space::<libc::c_int>()
}

/// What the kernel said about one datagram in its control messages.
#[derive(Default)]
struct Cmsgs {
    ttl: Option<u8>,
    at: Option<Timestamp>,
    tos: Option<u8>,
}

impl Cmsgs {
    fn read(cmsgs: impl Iterator<Item = ControlMessageOwned>) -> Cmsgs {
        let mut out = Cmsgs::default();
        for c in cmsgs {
            match c {
                ControlMessageOwned::ScmTimestampns(ts) => {
                    let d = Duration::new(
                        ts.tv_sec().max(0) as u64,
                        ts.tv_nsec().clamp(0, 999_999_999) as u32,
                    );
                    out.at = Some(Timestamp::from_unix_duration(d));
                }
                ControlMessageOwned::Ipv4Ttl(t) => out.ttl = u8::try_from(t).ok(),
                ControlMessageOwned::Ipv6HopLimit(h) => out.ttl = u8::try_from(h).ok(),
                ControlMessageOwned::Ipv4Tos(t) => out.tos = Some(t),
                ControlMessageOwned::Ipv6TClass(t) => out.tos = u8::try_from(t).ok(),
                _ => {}
            }
        }
        out
    }
}

/// Reads datagrams with their metadata; owns the control-message buffer so the per-packet
/// path does not allocate.
pub struct Receiver {
    cmsg: Vec<u8>,
}

impl Default for Receiver {
    fn default() -> Self {
        Self::new()
    }
}

impl Receiver {
    pub fn new() -> Self {
        Receiver {
            cmsg: vec![0; cmsg_space()],
        }
    }

    /// One datagram into `buf`. `Ok(None)` when the socket's read timeout expired.
    pub fn recv(&mut self, sock: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<Meta>> {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = match nsock::recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut self.cmsg),
            MsgFlags::empty(),
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Cmsgs { ttl, at, tos } = msg.cmsgs().map(Cmsgs::read).unwrap_or_default();
        let at = at.unwrap_or_else(|| Timestamp::from_system_time(SystemTime::now()));
        let from = msg.address.as_ref().and_then(to_std);
        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        let len = msg.bytes;
        match from {
            Some(from) => Ok(Some(Meta {
                len,
                from: unmap(from),
                ttl,
                at,
                truncated,
                tos,
            })),
            None => Ok(None), // no source address: not a datagram we can answer
        }
    }
}

/// Datagrams one [`BatchReceiver::recv`] reads at most.
pub const BATCH: usize = 16;

/// The buffer slot of each datagram in a batch: the largest UDP payload, so nothing a session
/// may legitimately receive is cut.
const SLOT: usize = MAX_DATAGRAM + 1;

/// Reads up to [`BATCH`] datagrams with one `recvmmsg`, each with its kernel receive time and
/// TTL as [`Receiver`] gives them. Owns its buffers (zeroed lazily by the OS, so only the
/// octets datagrams fill become resident) and its headers, so the per-packet path does not
/// allocate.
pub struct BatchReceiver {
    /// Headers for IPv4 and for IPv6 sockets. The kernel writes the address and control
    /// lengths it used back into them, and the next call starts from those: one set per
    /// family keeps an IPv4 socket's 16-octet address length from cutting an IPv6 address.
    headers: [nsock::MultiHeaders<SockaddrStorage>; 2],
    bufs: Vec<u8>,
    metas: [Option<Meta>; BATCH],
}

impl Default for BatchReceiver {
    fn default() -> Self {
        Self::new()
    }
}

fn headers() -> nsock::MultiHeaders<SockaddrStorage> {
    let space = cmsg_space();
    nsock::MultiHeaders::preallocate(BATCH, Some(Vec::with_capacity(space)))
}

impl BatchReceiver {
    pub fn new() -> Self {
        BatchReceiver {
            headers: [headers(), headers()],
            bufs: vec![0; BATCH * SLOT],
            metas: [None; BATCH],
        }
    }

    /// Reads what is queued (at most [`BATCH`] datagrams, each cut at `max_len` octets:
    /// longer ones come back `truncated`), without blocking. `v6` says whether `sock` is an
    /// IPv6 (or dual-stack) socket. Returns how many slots were filled; 0 when nothing was
    /// queued.
    pub fn recv(&mut self, sock: &UdpSocket, v6: bool, max_len: usize) -> io::Result<usize> {
        let family = usize::from(v6);
        let max_len = max_len.clamp(1, MAX_DATAGRAM);
        let mut rebuild = false;
        let n = {
            let mut chunks = self.bufs.chunks_mut(SLOT);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                let c: &mut [u8] = chunks.next().unwrap_or_default();
                let end = max_len.min(c.len());
                [IoSliceMut::new(&mut c[..end])]
            });
            let results = match nsock::recvmmsg(
                sock.as_raw_fd(),
                &mut self.headers[family],
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(r) => r,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(0),
                Err(e) => return Err(e.into()),
            };
            let mut n = 0;
            for (slot, msg) in self.metas.iter_mut().zip(results) {
                let Cmsgs { ttl, at, tos } = msg.cmsgs().map(Cmsgs::read).unwrap_or_default();
                // If control space or the address ran short (lengths written back by an
                // earlier call), the headers are rebuilt before the next call.
                rebuild |= msg.flags.contains(MsgFlags::MSG_CTRUNC);
                let from = msg.address.as_ref().and_then(to_std);
                rebuild |= from.is_none();
                *slot = from.map(|from| Meta {
                    len: msg.bytes,
                    from: unmap(from),
                    ttl,
                    at: at.unwrap_or_else(|| Timestamp::from_system_time(SystemTime::now())),
                    truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
                    tos,
                });
                n += 1;
            }
            n
        };
        if rebuild {
            self.headers[family] = headers();
        }
        Ok(n)
    }

    /// The `i`th datagram of the last batch: its octets (writable, for in-place decryption)
    /// and what the kernel said about it. `None` for a slot with no source address.
    pub fn datagram(&mut self, i: usize) -> Option<(&mut [u8], Meta)> {
        let meta = (*self.metas.get(i)?)?;
        let start = i * SLOT;
        let bytes = self.bufs.get_mut(start..start + meta.len.min(SLOT))?;
        Some((bytes, meta))
    }
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6().map(|v6| {
        SocketAddr::V6(SocketAddrV6::new(
            v6.ip(),
            v6.port(),
            v6.flowinfo(),
            v6.scope_id(),
        ))
    })
}

/// Sends `buf` to `to` with TOS / Traffic Class `tos` for this datagram only (an IP_TOS or
/// IPV6_TCLASS control message): a reflector answering each sender with its own DSCP. A
/// v4-mapped destination on a dual-stack socket goes out as IPv4, so it takes IP_TOS.
pub fn send_with_tos(sock: &UdpSocket, buf: &[u8], to: SocketAddr, tos: u8) -> io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage};
    let iov = [std::io::IoSlice::new(buf)];
    let v4 = match to {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(v6) => v6.ip().to_ipv4_mapped().is_some(),
    };
    let dest = SockaddrStorage::from(to);
    let tclass = i32::from(tos);
    let cmsg = if v4 {
        [ControlMessage::Ipv4Tos(&tos)]
    } else {
        [ControlMessage::Ipv6TClass(&tclass)]
    };
    sendmsg(
        sock.as_raw_fd(),
        &iov,
        &cmsg,
        MsgFlags::empty(),
        Some(&dest),
    )
    .map_err(io::Error::from)
}

/// Asks the kernel to report each datagram's TOS / Traffic Class ([`Meta::tos`]): for the
/// reflectors that say what DSCP and ECN arrived (RFC 7750, STAMP's Class of Service TLV).
/// Off by default: it adds a control message to every read.
pub fn set_recv_tos(socket: &UdpSocket) -> io::Result<()> {
    if socket.local_addr()?.is_ipv6() {
        // v4-mapped traffic on a dual-stack socket reports through the IPv4 option.
        let _ = nsock::setsockopt(socket, sockopt::IpRecvTos, &true);
        nsock::setsockopt(socket, sockopt::Ipv6RecvTClass, &true).map_err(io::Error::from)
    } else {
        nsock::setsockopt(socket, sockopt::IpRecvTos, &true).map_err(io::Error::from)
    }
}

/// Waits until `fd` is readable or `timeout` passes: `Ok(false)` on timeout or a signal.
///
/// ppoll, not poll: poll's millisecond timeout would round a 10 ms schedule's waits to whole
/// milliseconds; ppoll's timespec keeps them to the kernel timer's resolution.
pub fn wait_readable(fd: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::time::TimeSpec;
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Waits until any of `fds` is readable or `timeout` passes; returns one flag per fd, in order
/// (all false on timeout or a signal). ppoll, as [`wait_readable`].
pub fn wait_readable_any<'a, F: AsFd + 'a>(
    fds: impl IntoIterator<Item = &'a F>,
    timeout: Duration,
) -> io::Result<Vec<bool>> {
    use nix::poll::{ppoll, PollFd, PollFlags};
    use nix::sys::time::TimeSpec;
    let mut pfds: Vec<PollFd<'_>> = fds
        .into_iter()
        .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
        .collect();
    match ppoll(&mut pfds, Some(TimeSpec::from_duration(timeout)), None) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(vec![false; pfds.len()]),
        Err(e) => return Err(e.into()),
    }
    Ok(pfds
        .iter()
        .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
        .collect())
}

/// Marks outgoing packets with `dscp` (TOS / Traffic Class = DSCP << 2, RFC 2474 §3). On a
/// dual-stack socket both the IPv6 and the IPv4 option are set, so v4-mapped traffic is
/// marked too.
pub fn set_dscp(socket: &UdpSocket, dscp: u8) -> io::Result<()> {
    let s = socket2::SockRef::from(socket);
    let tos = u32::from(dscp) << 2;
    if socket.local_addr()?.is_ipv6() {
        let _ = s.set_tos_v4(tos); // fails harmlessly on a v6-only socket
        s.set_tclass_v6(tos)
    } else {
        s.set_tos_v4(tos)
    }
}

/// Sets the TTL / Hop Limit of outgoing packets (both options on a dual-stack socket).
pub fn set_ttl(socket: &UdpSocket, ttl: u8) -> io::Result<()> {
    let s = socket2::SockRef::from(socket);
    if socket.local_addr()?.is_ipv6() {
        let _ = s.set_ttl_v4(u32::from(ttl)); // fails harmlessly on a v6-only socket
        s.set_unicast_hops_v6(u32::from(ttl))
    } else {
        s.set_ttl_v4(u32::from(ttl))
    }
}

/// Sets Don't Fragment on outgoing packets: IPv4's DF bit through IP_MTU_DISCOVER =
/// IP_PMTUDISC_DO (the kernel then also refuses datagrams above the path MTU, EMSGSIZE), and
/// IPV6_DONTFRAG on IPv6 sockets, where only the sender may fragment at all.
pub fn set_df(socket: &UdpSocket) -> io::Result<()> {
    let v6 = socket.local_addr()?.is_ipv6();
    let v4 = set_pmtudisc_do(socket);
    if v6 {
        // On a v6-only socket the IPv4 option fails; the IPv6 one is what matters there.
        nsock::setsockopt(socket, sockopt::Ipv6DontFrag, &true).map_err(io::Error::from)
    } else {
        v4
    }
}

#[allow(unsafe_code)]
fn set_pmtudisc_do(socket: &UdpSocket) -> io::Result<()> {
    let value: libc::c_int = libc::IP_PMTUDISC_DO;
    // SAFETY: neither nix nor socket2 wraps IP_MTU_DISCOVER. The descriptor is open for the
    // call (we hold a borrow of its owner), and the option value is a live c_int whose size we
    // pass.
    let r = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A TCP connection to `to`, from `source` when given, within `timeout`.
pub fn tcp_connect(
    to: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> io::Result<std::net::TcpStream> {
    let Some(src) = source else {
        return std::net::TcpStream::connect_timeout(&to, timeout);
    };
    let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    // An IPv4 source for an IPv6 destination (or the reverse) cannot work; say so plainly.
    if src.is_ipv4() != to.is_ipv4() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("source {src} and server {to} are of different IP versions"),
        ));
    }
    s.bind(&SocketAddr::new(src, 0).into())?;
    s.connect_timeout(&to.into(), timeout)?;
    Ok(s.into())
}

/// Binds a test socket on `local` within the server's test-port range: the requested port
/// when it lies in `range` and is free, else a free port of `range` (tried from a random
/// start). A requested port outside the range is never granted (a peer must not get a
/// privileged or unrelated port bound). With no range (`-test-ports 0`) the OS picks from
/// its ephemeral range and a requested port is never granted.
pub fn bind_test_port(
    local: IpAddr,
    requested: u16,
    range: Option<(u16, u16)>,
    rcvbuf: usize,
) -> io::Result<UdpSocket> {
    let Some((lo, hi)) = range else {
        return udp_socket(SocketAddr::new(local, 0), rcvbuf);
    };
    if (lo..=hi).contains(&requested) {
        if let Ok(s) = udp_socket(SocketAddr::new(local, requested), rcvbuf) {
            return Ok(s);
        }
    }
    let n = u32::from(hi - lo) + 1;
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let start = u32::from_be_bytes(r) % n;
    let mut last_err = None;
    for i in 0..n {
        let port = lo + ((start + i) % n) as u16;
        match udp_socket(SocketAddr::new(local, port), rcvbuf) {
            Ok(s) => return Ok(s),
            // Out of descriptors: trying the rest of the range cannot help.
            Err(e)
                if e.raw_os_error() == Some(libc::EMFILE)
                    || e.raw_os_error() == Some(libc::ENFILE) =>
            {
                return Err(e)
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("empty test port range")))
}

/// Sends to `to` on any socket (one getsockname per call: for occasional sends).
pub fn send_to(sock: &UdpSocket, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
    let v6 = sock.local_addr().is_ok_and(|a| a.is_ipv6());
    sock.send_to(buf, destination(to, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_datagram_reports_ttl_and_kernel_time() {
        let a = udp_socket("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let b = udp_socket("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let before = Timestamp::from_system_time(SystemTime::now());
        send_to(&a, b"hello", b.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let m = Receiver::new()
            .recv(&b, &mut buf)
            .unwrap()
            .expect("datagram");
        assert_eq!(m.len, 5);
        assert_eq!(m.from, a.local_addr().unwrap());
        assert_eq!(
            m.ttl,
            Some(255),
            "we send with TTL 255 and loopback has no hops"
        );
        assert!(m.at >= before);
        assert!(!m.truncated);
    }

    #[test]
    fn batches_from_ipv4_and_ipv6_sockets_keep_addresses_ttl_and_times() {
        let mut batch = BatchReceiver::new();
        for (server, client, v6) in [
            ("127.0.0.1:0", "127.0.0.1:0", false),
            ("[::]:0", "[::1]:0", true),
            ("127.0.0.1:0", "127.0.0.1:0", false),
        ] {
            let srv = udp_socket(server.parse().unwrap(), 0).unwrap();
            let port = srv.local_addr().unwrap().port();
            let to: SocketAddr = if v6 {
                SocketAddr::new("::1".parse().unwrap(), port)
            } else {
                SocketAddr::new("127.0.0.1".parse().unwrap(), port)
            };
            let c = udp_socket(client.parse().unwrap(), 0).unwrap();
            let before = Timestamp::from_system_time(SystemTime::now());
            for n in [5usize, 20, 3000] {
                send_to(&c, &vec![7u8; n], to).unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(batch.recv(&srv, v6, 1501).unwrap(), 3, "{server}");
            for (i, n) in [5usize, 20, 3000].into_iter().enumerate() {
                let (bytes, m) = batch.datagram(i).expect("a datagram");
                assert_eq!(m.from, c.local_addr().unwrap(), "{server}: source");
                assert_eq!(m.ttl, Some(255));
                assert!(m.at >= before);
                assert_eq!(m.truncated, n > 1501, "{n} octets");
                assert_eq!(bytes.len(), n.min(1501));
            }
            assert_eq!(batch.recv(&srv, v6, 1501).unwrap(), 0, "drained");
        }
    }

    #[test]
    fn test_ports_are_granted_only_inside_the_range() {
        let lo = "127.0.0.1".parse().unwrap();
        let port = |s: UdpSocket| s.local_addr().unwrap().port();
        // Find a free 10-port range, then ask inside, outside (privileged) and for any.
        let probe = udp_socket("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let base = port(probe).saturating_sub(5).max(1024);
        let range = Some((base, base + 9));
        let inside = bind_test_port(lo, base + 3, range, 0).unwrap();
        assert_eq!(
            port(inside),
            base + 3,
            "a free port in the range is granted"
        );
        for requested in [990, 0, base + 10, 65535] {
            let s = bind_test_port(lo, requested, range, 0).unwrap();
            assert!((base..=base + 9).contains(&port(s)), "asked {requested}");
        }
        let any = bind_test_port(lo, 990, None, 0).unwrap();
        assert!(
            port(any) >= 1024,
            "no range: the OS picks, never the request"
        );
    }

    #[test]
    fn dual_stack_socket_receives_v4_and_v6() {
        let server = udp_socket("[::]:0".parse().unwrap(), 0).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let mut rx = Receiver::new();
        for client in ["127.0.0.1:0", "[::1]:0"] {
            let c = udp_socket(client.parse().unwrap(), 0).unwrap();
            let to: SocketAddr = if client.starts_with('[') {
                SocketAddr::new("::1".parse().unwrap(), port)
            } else {
                SocketAddr::new("127.0.0.1".parse().unwrap(), port)
            };
            send_to(&c, b"x", to).unwrap();
            let mut buf = [0u8; 8];
            let m = rx.recv(&server, &mut buf).unwrap().expect("datagram");
            assert_eq!(m.from, c.local_addr().unwrap(), "source shown unmapped");
            assert_eq!(m.ttl, Some(255), "TTL read for {client}");
            // And the answer goes back through the same dual-stack socket.
            send_to(&server, b"y", m.from).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            assert!(rx.recv(&c, &mut buf).unwrap().is_some());
        }
    }

    #[test]
    #[allow(unsafe_code)]
    fn df_turns_fragmentation_off() {
        let v4 = udp_socket("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let mode = |s: &UdpSocket| {
            let mut v: libc::c_int = -1;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: an open descriptor, and a c_int buffer whose size we pass.
            let r = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_MTU_DISCOVER,
                    std::ptr::from_mut(&mut v).cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0);
            v
        };
        assert_ne!(mode(&v4), libc::IP_PMTUDISC_DO, "not by default");
        set_df(&v4).unwrap();
        assert_eq!(mode(&v4), libc::IP_PMTUDISC_DO);
        let v6 = udp_socket("[::1]:0".parse().unwrap(), 0).unwrap();
        assert!(!nsock::getsockopt(&v6, sockopt::Ipv6DontFrag).unwrap());
        set_df(&v6).unwrap();
        assert!(nsock::getsockopt(&v6, sockopt::Ipv6DontFrag).unwrap());
    }

    #[test]
    fn ttl_and_dscp_are_set_on_both_families() {
        for a in ["127.0.0.1:0", "[::1]:0", "[::]:0"] {
            let s = udp_socket(a.parse().unwrap(), 0).unwrap();
            set_ttl(&s, 64).unwrap();
            set_dscp(&s, 46).unwrap();
            let r = socket2::SockRef::from(&s);
            if s.local_addr().unwrap().is_ipv6() {
                assert_eq!(r.unicast_hops_v6().unwrap(), 64, "{a}");
                assert_eq!(r.tclass_v6().unwrap(), 46 << 2, "{a}");
            } else {
                assert_eq!(r.ttl_v4().unwrap(), 64, "{a}");
                assert_eq!(r.tos_v4().unwrap(), 46 << 2, "{a}");
            }
        }
    }

    #[test]
    fn tos_is_reported_when_asked_for() {
        for (rx_addr, tx_addr, to) in [
            ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1"),
            ("[::]:0", "127.0.0.1:0", "127.0.0.1"),
            ("[::1]:0", "[::1]:0", "::1"),
        ] {
            let rx = udp_socket(rx_addr.parse().unwrap(), 0).unwrap();
            rx.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let tx = udp_socket(tx_addr.parse().unwrap(), 0).unwrap();
            set_dscp(&tx, 46).unwrap();
            let dest = SocketAddr::new(to.parse().unwrap(), rx.local_addr().unwrap().port());
            let mut r = Receiver::new();
            let mut buf = [0u8; 16];
            send_to(&tx, b"a", dest).unwrap();
            let m = r.recv(&rx, &mut buf).unwrap().expect("datagram");
            assert_eq!(m.tos, None, "{rx_addr}: not asked for");
            set_recv_tos(&rx).unwrap();
            send_to(&tx, b"b", dest).unwrap();
            let m = r.recv(&rx, &mut buf).unwrap().expect("datagram");
            assert_eq!(m.tos, Some(46 << 2), "{rx_addr} from {tx_addr}");
        }
    }
}
