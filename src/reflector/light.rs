//! The TWAMP-Light / STAMP service on the reflector engine: one socket (UDP 862 by default,
//! RFC 8762 §4.1) serving many senders through the pure [`LightReflector`].

use super::{DropReason, Handler, Received};
use crate::light::{self, LightReceived, LightReflector};
use crate::net;
use crate::time::Clock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The engine's owner id of the TWAMP-Light / STAMP socket: never a control connection's.
pub const OWNER: super::Owner = u64::MAX;

/// [`LightReflector`] as an engine [`Handler`].
pub struct LightHandler {
    reflector: LightReflector,
    /// The TOS of the reply being sent: the DSCP the datagram arrived with (most TWAMP-Light
    /// reflectors answer in the sender's class), or what a Class of Service TLV asked for.
    /// ECN is not echoed: the reflector's own path decides it.
    reply_tos: Option<u8>,
    /// Senders remembered, as of the latest datagram (`-metrics`), if someone reads it.
    senders: Option<Arc<AtomicUsize>>,
}

impl LightHandler {
    pub fn new(reflector: LightReflector) -> Self {
        LightHandler {
            reflector,
            reply_tos: None,
            senders: None,
        }
    }

    /// Keeps `gauge` at the number of senders remembered, after every datagram.
    pub fn counting_senders(mut self, gauge: Arc<AtomicUsize>) -> Self {
        self.senders = Some(gauge);
        self
    }
}

fn reason(r: light::DropReason) -> DropReason {
    match r {
        light::DropReason::Short { len } => DropReason::Short { len },
        // Answering would send more than arrived: counted with the undersized datagrams.
        light::DropReason::WouldAmplify { len, need } => DropReason::Undersized { len, want: need },
        light::DropReason::Oversized => DropReason::Oversized,
        light::DropReason::BadHmac => DropReason::BadHmac,
        light::DropReason::NoReplyRequested => DropReason::NoReply,
    }
}

impl Handler for LightHandler {
    /// Without the source port a sender cannot be told apart: the engine always calls
    /// [`Handler::on_datagram_meta`]; this is only its fallback, port 0.
    fn on_datagram(
        &mut self,
        rx: Received<'_>,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        let meta = net::Meta {
            len: rx.bytes.len(),
            from: std::net::SocketAddr::new(rx.from, 0),
            ttl: rx.ttl,
            at: rx.at,
            truncated: false,
            tos: None,
        };
        self.on_datagram_meta(rx, &meta, 0, clock, out)
    }

    fn max_datagram(&self) -> usize {
        net::MAX_DATAGRAM
    }

    fn on_datagram_meta(
        &mut self,
        rx: Received<'_>,
        meta: &net::Meta,
        local_port: u16,
        clock: &dyn Clock,
        out: &mut [u8],
    ) -> Result<usize, DropReason> {
        let r = LightReceived {
            bytes: rx.bytes,
            from: meta.from,
            local_port,
            local_ip: None,
            ttl: rx.ttl,
            tos: meta.tos,
            at: rx.at,
        };
        let reflected = self.reflector.reflect(r, clock, out);
        if let Some(g) = &self.senders {
            g.store(self.reflector.senders(), Ordering::Relaxed);
        }
        let n = reflected.map_err(reason)?;
        self.reply_tos = self
            .reflector
            .reply_tos()
            .or(meta.tos.map(|t| t & 0xfc))
            .filter(|t| *t != 0);
        Ok(n)
    }

    fn reply_tos(&self) -> Option<u8> {
        self.reply_tos
    }
}
